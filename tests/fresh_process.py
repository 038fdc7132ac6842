"""Run a Python script in a fresh process against this checkout, with its own Numba cache.

Used by the tests that prove a compiled kernel loads from Numba's on-disk cache in a
later process (issue 13): each runs a script twice on one ``NUMBA_CACHE_DIR`` and reads
the dispatchers' statistics the script prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import crossent


def run_python(
    script: str, *, numba_cache: Path, debug_cache: bool = False, timeout: float = 600
) -> str:
    """The standard output of ``python -c script`` in a fresh process; fails the test if
    the process fails.

    The process imports crossent from the source under test (first on ``PYTHONPATH``),
    keeps Numba's disk cache in ``numba_cache``, and compiles (``NUMBA_DISABLE_JIT`` is
    dropped); ``debug_cache`` sets ``NUMBA_DEBUG_CACHE`` (the cache's "data saved" and
    "data loaded" lines, on standard output). ``timeout``: seconds of wall time before
    the process is killed and the test fails.
    """
    source = str(Path(crossent.__file__).parents[1])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    env.pop("NUMBA_DISABLE_JIT", None)
    if debug_cache:
        env["NUMBA_DEBUG_CACHE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return done.stdout
