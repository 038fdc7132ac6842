"""Issue 13: the measures' Numba kernels (``info/_fused_kernels.py``) load from Numba's
on-disk cache in a second process instead of compiling again.

The first design built its kernels inside a function; their closures held the helper
dispatchers, whose pickled form (hashed into the cache's index key) differs per process,
so every process recompiled (about 7 s per kernel and layout) and CI ran out of time.

Cost: two fresh interpreters against a fresh cache directory; the first compiles the
float64 serial row and pointwise kernels, the second loads them (mostly importing NumPy,
SciPy and Numba): 10 to 13 s in all on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_process import run_python

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


def _run(cache: Path) -> tuple[dict[str, list[int]], str]:
    out = run_python(_SCRIPT, numba_cache=cache, debug_cache=True)
    line = next(line for line in out.splitlines() if line.startswith("STATS "))
    return json.loads(line.removeprefix("STATS ")), out


def test_issue13_small_inputs_fused_kernels_load_from_cache_in_a_second_process(
    tmp_path: Path,
) -> None:
    first, _ = _run(tmp_path)
    assert first, "no kernel of crossent.info was compiled"
    assert all(misses >= 1 for _, misses in first.values()), first  # a fresh cache

    second, log = _run(tmp_path)
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
