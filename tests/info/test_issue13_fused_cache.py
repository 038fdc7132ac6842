"""Issue 13: the measures' Numba kernels (``info/_fused_kernels.py``) load from Numba's
on-disk cache in a second process instead of compiling again.

The first design built its kernels inside a function; their closures held the helper
dispatchers, whose pickled form (hashed into the cache's index key) differs per process,
so every process recompiled (about 7 s per kernel and layout) and CI ran out of time.

Two fresh interpreters against a fresh cache directory (those of ``numba_cache_harness``,
shared with the other cache tests): the first compiles the float64 serial row and
pointwise kernels, the second loads them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from numba_cache_harness import CacheRuns, register, section_output

pytest.importorskip("numba")

# Calls the serial row kernel (entropy) and the pointwise one (surprisal), then prints,
# for every compiled Numba dispatcher of ``crossent.info`` (whatever the design that
# made it), the cache hits and misses of its ``.stats``.
_SCRIPT = """
import gc, json
import numpy as np
from numba.core.dispatcher import Dispatcher
import crossent

x = np.full(10, 0.1)
crossent.entropy(x)
crossent.surprisal(x)
stats = {
    f"{d.py_func.__qualname__}/{i}": [
        sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())
    ]
    for i, d in enumerate(
        o for o in gc.get_objects()
        if isinstance(o, Dispatcher) and o.py_func.__module__.startswith("crossent.info")
    )
    if d.signatures
}
print("STATS", json.dumps(stats))
"""


register("fused_cache", _SCRIPT)


def _stats(out: str) -> dict[str, list[int]]:
    line = next(line for line in out.splitlines() if line.startswith("STATS "))
    return dict(json.loads(line.removeprefix("STATS ")))


def test_issue13_small_inputs_fused_kernels_load_from_cache_in_a_second_process(
    numba_cache_runs: CacheRuns,
) -> None:
    cold, log = section_output(numba_cache_runs, "fused_cache")  # with NUMBA_DEBUG_CACHE
    first = _stats(cold)
    assert first, "no kernel of crossent.info was compiled"
    assert all(misses >= 1 for _, misses in first.values()), first  # a fresh cache

    second = _stats(log)
    for name, (hits, misses) in second.items():
        assert misses == 0, f"{name} compiled again: {second}"
        assert hits >= 1, f"{name} not loaded from the cache: {second}"
    assert "data loaded" in log
    assert "data saved" not in log
    assert {name.split("/")[0] for name in second} >= {"_rows_serial", "_pointwise"}, second


_WITHOUT_NUMBA = """
import math, sys
if sys.argv[1] == "blocked":
    sys.modules["numba"] = None  # as if not installed: find_spec finds nothing
import numpy as np
import crossent
from crossent.info import _fused
imported = "numba" in sys.modules and sys.modules["numba"] is not None
print(imported, _fused.available())
if sys.argv[1] == "blocked":  # the generic path (with Numba, it would compile)
    print(abs(float(crossent.entropy(np.full(4, 0.25))) - math.log(4)) < 1e-15)
"""


def test_issue13_small_inputs_import_crossent_imports_no_numba_and_measures_run_without_it() -> (
    None
):
    runs = {
        mode: subprocess.run(
            [sys.executable, "-c", _WITHOUT_NUMBA, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        for mode in ("blocked", "installed")
    }
    assert runs == {"blocked": ["False", "False", "True"], "installed": ["False", "True"]}
