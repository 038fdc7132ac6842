"""Collection of ``src/crossent`` when an optional extra is not installed.

pyproject's ``--doctest-modules`` imports every module under ``src/crossent`` to run
its docstring examples. The modules of ``crossent.torch`` import PyTorch, an optional
extra: where it is not installed they are left out (their examples cannot run), instead
of one collection error per module, which stops the whole run.

It also has the test session's OpenMP threads wait passively (``OMP_WAIT_POLICY``, below)
and Inductor build no precompiled header (below).
"""

from __future__ import annotations

import importlib.util
import os

# OpenMP threads (PyTorch's ATen and MKL, Numba's ``omp`` layer, all GNU libgomp) spin
# after each parallel region before they sleep: on CI's 2 cores a spinning thread burns
# the other pytest worker's CPU. A tiny ``linear_cross_entropy`` call with its backward
# cost 32 ms of CPU with spinning and 1.5 ms with passive waiting (40 calls, 2 threads).
# Waiting changes no result. Set before any test imports torch or Numba (libgomp reads
# it when it loads); the xdist workers and the tests' subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Inductor (``torch.compile``'s default backend) precompiles its kernels' common header
# (``cpp_prefix.h``) on the first C++ kernel build of a fresh cache: 7.6 s user + 0.5 s
# sys of g++ (``-x c++-header``) in ``test_inductor_near_and_far_rows``, after which its
# four kernels compiled no faster (14.6 s of g++ with the header, 14.0 s without: g++'s
# time is optimisation, not parsing). CI starts with a cold cache. The same kernels and
# code; an explicit setting wins.
os.environ.setdefault("TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS", "0")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


collect_ignore_glob = [] if _installed("torch") else ["src/crossent/torch/*"]
