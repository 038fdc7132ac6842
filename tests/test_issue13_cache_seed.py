"""Issue 13, CI time: ``numba_cache_harness.seed_cache`` hands the kernels its cold
process compiled to the suite's own Numba cache, and a later process loads them.

Checked on a one-line cached kernel in a module of its own (a second of compilation):
a process compiles it into one cache folder, ``seed_cache`` copies it into an empty
one, and a fresh process on that folder loads it (a cache hit, no miss) and gives the
same bits; seeding again copies nothing, nor over a function the target has files of.
The harness's cold process seeds the suite's cache after each of its sections, not only
at its end (``tasks.py test`` builds the site beside it, and the build's examples load
the kernels the first sections compiled instead of compiling them again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numba_cache_harness import _run_once, seed_cache

pytest.importorskip("numba")

_KERNEL = """
import numba


@numba.njit(cache=True)
def third(x):
    return x / 3.0
"""

_CALL = """
import json
import seeded_kernel
print(json.dumps([seeded_kernel.third(1.0).hex(), dict(
    hits=sum(seeded_kernel.third.stats.cache_hits.values()),
    misses=sum(seeded_kernel.third.stats.cache_misses.values()),
)]))
"""


def _call(module: Path, cache: Path) -> list[object]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(module))
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run(
        [sys.executable, "-c", _CALL], env=env, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_issue13_seeded_cache_loads_in_a_new_process(tmp_path: Path) -> None:
    module, cold, suite = tmp_path / "module", tmp_path / "cold", tmp_path / "suite"
    module.mkdir()
    (module / "seeded_kernel.py").write_text(_KERNEL)
    compiled, stats = _call(module, cold)
    assert stats == {"hits": 0, "misses": 1}

    (copied,) = seed_cache(cold, suite)
    assert copied.endswith(".nbi")
    assert _call(module, suite) == [compiled, {"hits": 1, "misses": 0}]
    assert seed_cache(cold, suite) == []  # the function has files there now

    (other := tmp_path / "other").mkdir()
    folder = other / Path(copied).parent
    folder.mkdir()
    (folder / Path(copied).name.replace(".nbi", ".1.nbc")).write_bytes(b"")
    assert seed_cache(cold, other) == []  # a test process's file: never copied over


def test_issue13_cold_process_seeds_the_suite_after_each_section(tmp_path: Path) -> None:
    module, cold, suite = tmp_path / "module", tmp_path / "cold", tmp_path / "suite"
    module.mkdir()
    (module / "seeded_kernel.py").write_text(_KERNEL)
    compile_it = f"import sys\nsys.path.insert(0, {str(module)!r})\n" + _CALL
    files = f"pathlib.Path({str(suite)!r}).rglob('*.nb*')"
    look = f"import pathlib\nprint(sorted(p.suffix for p in {files}))"
    outputs = _run_once([("compile", compile_it), ("look", look)], cold, seed=suite)
    assert outputs["compile"]["error"] is None, outputs
    assert json.loads(str(outputs["compile"]["stdout"]).splitlines()[-1])[1] == {
        "hits": 0,
        "misses": 1,
    }
    # the second section already finds the first's kernel in the suite's cache
    assert outputs["look"] == {"stdout": "['.nbc', '.nbi']\n", "error": None}
