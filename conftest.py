"""Collection of ``src/crossent`` when an optional extra is not installed.

pyproject's ``--doctest-modules`` imports every module under ``src/crossent`` to run
its docstring examples. The modules of ``crossent.torch`` import PyTorch, an optional
extra: where it is not installed they are left out (their examples cannot run), instead
of one collection error per module, which stops the whole run.
"""

from __future__ import annotations

import importlib.util


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


collect_ignore_glob = [] if _installed("torch") else ["src/crossent/torch/*"]
