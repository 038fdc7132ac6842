"""Collection of ``src/crossent`` when an optional extra is not installed.

pyproject's ``--doctest-modules`` imports every module under ``src/crossent`` to run
its docstring examples. The modules of ``crossent.torch`` import PyTorch, an optional
extra: where it is not installed they are left out (their examples cannot run), instead
of one collection error per module, which stops the whole run.

It also has the test session's OpenMP threads wait passively (``OMP_WAIT_POLICY``, below)
and Inductor precompile its kernels' common header (below).
"""

from __future__ import annotations

import importlib.util
import os
import shutil

# OpenMP threads (PyTorch's ATen and MKL, Numba's ``omp`` layer, all GNU libgomp) spin
# after each parallel region before they sleep: on CI's 2 cores a spinning thread burns
# the other pytest worker's CPU. A tiny ``linear_cross_entropy`` call with its backward
# cost 32 ms of CPU with spinning and 1.5 ms with passive waiting (40 calls, 2 threads).
# Waiting changes no result. Set before any test imports torch or Numba (libgomp reads
# it when it loads); the xdist workers and the tests' subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Inductor (``torch.compile``'s default backend) compiles each graph's C++ kernels with g++,
# and g++ spends most of each build parsing the common header ``cpp_prefix.h`` (ATen's
# vector classes): 2.1 s of 2.4 s of CPU for a small kernel file, ``-fsyntax-only`` as
# long as ``-O3``. With the header precompiled (PyTorch's default, once per set of flags,
# 5.4 s of g++, kept under ``$TMPDIR/torchinductor_<user>/precompiled_headers`` and shared
# by the pytest-xdist workers) a kernel file builds in 0.8-1.0 s. The suite's eight
# Inductor tests in one process, cold caches: 48.3 s of CPU against 68.9 s with the header
# off (benchmarks/bench_inductor_header.py). Stop 67 had turned it off after a measurement
# in which kernels built no faster with it; that is seen here only where the compiler's
# path does not say ``g++``/``gcc`` (a timing wrapper, say): PyTorch then names the header
# ``.pch``, which g++ never reads. Set explicitly, as PyTorch's default on Linux; the same
# kernels and code; an explicit setting wins. PyTorch hashes the preprocessed header with
# the ``openssl`` program (a missing one fails every Inductor compile): off without it.
os.environ.setdefault(
    "TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS", "1" if shutil.which("openssl") else "0"
)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


# ``crossent._torch_binary`` (the binary losses' autograd wrapper, which ``crossent.losses``
# imports lazily on tensors only) imports PyTorch too.
collect_ignore_glob = (
    [] if _installed("torch") else ["src/crossent/torch/*", "src/crossent/_torch_binary.py"]
)
