"""Issue 13 (CI time): the test session lets Inductor precompile its kernels' header.

Each Inductor graph's C++ file includes ``torch/csrc/inductor/cpp_prefix.h``, whose parse
is most of g++'s time for the small kernels of this suite (2.1 of 2.4 s); precompiled
once (5.4 s), the header makes each build 0.8-1.0 s. The suite's eight Inductor tests in
one process, cold caches: 48.3 s of CPU with it against 68.9 s without
(``benchmarks/RESULTS.md``, "Inductor's precompiled header"). The root ``conftest.py``
had turned it off (stop 67); it now sets it on. Fails on main: the variable is "0" and
Inductor's setting ``False``.
"""

from __future__ import annotations

import os
import shutil

import pytest


def test_inductor_precompiles_its_kernel_header() -> None:
    """The session's variable (root ``conftest.py``, set before torch is imported) and
    the setting Inductor read from it."""
    config = pytest.importorskip("torch._inductor.config")
    # (without the ``openssl`` program, which PyTorch hashes the header with, it stays off)
    wanted = shutil.which("openssl") is not None
    assert os.environ.get("TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS") == str(int(wanted))
    assert config.cpp_cache_precompile_headers is wanted
