"""Issue 13, speed: the Numba kernels load from Numba's on-disk cache in a new process.

Defined inside a function, the kernels were closures, and Numba keys a cache entry by a
hash of the pickled closure variables (other dispatchers, intrinsics), which differs
from process to process: every process compiled every kernel again (seconds each). Two
fresh processes share a new ``NUMBA_CACHE_DIR``: the first compiles and saves, the
second must load every kernel it calls (``dispatcher.stats``: hits, no misses).  The
cheapest kernels prove it: the serial losses kernels on float32 and the calibration
kernels' logarithm (about 10 s in all on a 2-core machine, most of it the first
process's compiles).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fresh_process import run_python

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


def _run(cache: Path) -> dict[str, list[int]]:
    """``{kernel: [signatures, cache hits, cache misses]}`` of a fresh process."""
    return dict(json.loads(run_python(_SCRIPT, numba_cache=cache).strip().splitlines()[-1]))


def test_issue13_numba_kernels_load_from_the_disk_cache_in_a_new_process(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path)
    assert set(first) == {
        "losses.row_statistics_serial",
        "losses.gradient_serial",
        "calibration.log",
    }
    assert all(misses == signatures for signatures, _, misses in first.values()), first
    second = _run(tmp_path)
    assert set(second) == set(first)
    for name, (signatures, hits, misses) in second.items():
        assert (hits, misses) == (signatures, 0), f"{name} compiled again: {second}"
