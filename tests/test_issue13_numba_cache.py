"""Issue 13, speed: the Numba kernels load from Numba's on-disk cache in a new process.

Defined inside a function, the kernels were closures, and Numba keys a cache entry by a
hash of the pickled closure variables (other dispatchers, intrinsics), which differs
from process to process: every process compiled every kernel again (seconds each). Two
fresh processes share a new ``NUMBA_CACHE_DIR``: the first compiles and saves, the
second must load every kernel it calls (``dispatcher.stats``: hits, no misses).  The
cheapest kernels prove it: the serial losses kernels on float32 and the calibration
kernels' logarithm.  The two processes are those of ``numba_cache_harness`` (shared with
the other cache tests); this script runs first in each, so the kernels it finds compiled
are its own.
"""

from __future__ import annotations

import json

import pytest

from numba_cache_harness import CacheRuns, register, section_output

pytest.importorskip("numba")

_SCRIPT = """
import json

import numpy as np

from crossent.calibration import _row_kernels
from crossent.losses import _cpu_kernels
from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions

z = np.linspace(-3.0, 3.0, 40, dtype=np.float32).reshape(4, 10)  # serial: a few logits
labels = np.array([0, 3, 9, 5])
m, ell, *_ = _cpu_kernels.row_statistics(z, labels, StatisticsOptions())
_cpu_kernels.write_gradient(z, labels, GradientTerms(m + ell, 1.0, np.ones(4), np.ones(4)))
_row_kernels.log_positive(np.array([0.5, 2.0]))
kernels = {
    "losses." + name: kernel for name, kernel in _cpu_kernels._kernels().items()
} | {"calibration." + name: kernel for name, kernel in _row_kernels._kernels().items()}
print(json.dumps({
    name: [
        len(kernel.signatures),
        sum(kernel.stats.cache_hits.values()),
        sum(kernel.stats.cache_misses.values()),
    ]
    for name, kernel in kernels.items()
    if kernel.signatures
}))
"""


register("numba_cache", _SCRIPT)


def test_issue13_numba_kernels_load_from_the_disk_cache_in_a_new_process(
    numba_cache_runs: CacheRuns,
) -> None:
    first, second = (
        dict(json.loads(out.strip().splitlines()[-1]))
        for out in section_output(numba_cache_runs, "numba_cache")
    )  # {kernel: [signatures, cache hits, cache misses]} of each process
    assert set(first) == {
        "losses.row_statistics_serial",
        "losses.gradient_serial",
        "calibration.log",
    }
    assert all(misses == signatures for signatures, _, misses in first.values()), first
    assert set(second) == set(first)
    for name, (signatures, hits, misses) in second.items():
        assert (hits, misses) == (signatures, 0), f"{name} compiled again: {second}"


def test_issue13_the_warm_process_of_every_cache_test_compiles_nothing(
    numba_cache_runs: CacheRuns,
) -> None:
    """Every section of ``numba_cache_harness`` (the kernels of losses, measures and
    calibration) loads in the warm process: Numba's cache log says "data saved" in none."""
    assert numba_cache_runs.warm, "no section ran"
    assert numba_cache_runs.warm_sections_that_saved() == []
