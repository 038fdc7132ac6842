"""Issue 13, CI time: ``numba_cache_harness.seed_cache`` adds the signatures a function's
index in the suite's cache lacks, not only functions the suite's cache has no file of.

Under ``tasks.py test`` the docs build, beside the harness's cold process, compiles some
of the same functions for other dtypes (``totals`` for float64); on main the seeding then
skipped those functions whole, and a test compiled again what the cold process had
compiled (``totals`` for float32: 25.0 s of CPU for ``test_issue10_item17`` in a fresh
process against 2.9 s once merged). Checked on a one-line cached kernel: the cold process
compiles it for float and int, the suite's process for float only; after seeding, a fresh
process on the suite's cache loads both (hits, no miss) with the cold process's bits, and
the suite's own entry is kept.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from numba_cache_harness import seed_cache

pytest.importorskip("numba")

_MODULE = "import numba\n\n\n@numba.njit(cache=True)\ndef half(x):\n    return x / 2.0\n"

_RUN = """
import json, sys
import merged_kernel as m
values = [m.half(x).hex() for x in json.loads(sys.argv[1])]
stats = m.half.stats
print(json.dumps([values, sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
"""


def _run(module: Path, cache: Path, arguments: list[float | int]) -> tuple[list[str], int, int]:
    """``(value hex per argument, cache hits, cache misses)`` of a fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(module))
    env.pop("NUMBA_DISABLE_JIT", None)
    command = [sys.executable, "-c", _RUN, json.dumps(arguments)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    values, hits, misses = json.loads(done.stdout.strip().splitlines()[-1])
    return values, hits, misses


def _entries(cache: Path) -> dict[str, str]:
    """The one index's ``{first argument type: data file}``."""
    (index,) = cache.rglob("*.nbi")
    with index.open("rb") as handle:
        pickle.load(handle)  # Numba's version
        _, overloads = pickle.loads(handle.read())
    return {str(key[0][0]): name for key, name in overloads.items()}


def test_issue13_seed_adds_the_signatures_the_suite_cache_lacks(tmp_path: Path) -> None:
    module, cold, suite = tmp_path / "module", tmp_path / "cold", tmp_path / "suite"
    module.mkdir()
    (module / "merged_kernel.py").write_text(_MODULE)
    compiled, hits, misses = _run(module, cold, [1.0, 3])
    assert (hits, misses) == (0, 2)
    assert _run(module, suite, [1.0]) == (compiled[:1], 0, 1)
    own = _entries(suite)

    (copied,) = seed_cache(cold, suite)
    assert copied.endswith(".nbi")
    merged = _entries(suite)
    assert set(merged) == {"float64", "int64"}
    assert merged["float64"] == own["float64"]  # the suite's own entry, kept
    assert _run(module, suite, [1.0, 3]) == (compiled, 2, 0)
    assert seed_cache(cold, suite) == []  # nothing is missing now
