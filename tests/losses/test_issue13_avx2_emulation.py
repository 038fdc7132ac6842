"""Issue 13, the AVX2 targets: ``EXACT_ALL`` follows NumPy's dispatch, and the emulation.

``_numpy_kernels.EXACT_ALL`` (the float64 ``exp`` for every row of the NumPy forward)
must be on exactly where NumPy runs its AVX-512 loops. NumPy 2.4 dispatches them as
``X86_V4`` and still reports the CPU's ``AVX512F`` when ``NPY_DISABLE_CPU_FEATURES``
turns that target off; its float64 ``exp`` is then the scalar one, four times slower,
so the flag is read from the dispatch target. ``benchmarks/emulate_avx2.sh`` sets
NumPy's, PyTorch's and Numba's knobs so that an AVX-512 machine runs the AVX2 code
paths; the last test runs a probe through it and checks that each knob took effect.
Checked against the mutants: ``_avx512_exp`` reading ``AVX512F`` alone fails the
first test (NumPy 2.4's flags with X86_V4 off) and, on an AVX-512 machine, the third;
the script without
``NUMBA_CPU_FEATURES`` (``NUMBA_CPU_NAME`` alone keeps the host's AVX-512) or without
``NPY_DISABLE_CPU_FEATURES`` fails the third.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.losses import _numpy_kernels

_FEATURES_MODULE = next(
    (
        module
        for module in (getattr(np, "_core", None), getattr(np, "core", None))
        if module is not None and hasattr(module._multiarray_umath, "__cpu_features__")
    ),
    None,
)
_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "emulate_avx2.sh"


def emulation_env(numba_cache: Path) -> dict[str, str]:
    """The environment of a command run under ``emulate_avx2.sh``: this interpreter
    (``PYTHON``, whose NumPy and llvmlite the script asks), a Numba cache folder of its
    own, and none of the knobs the script sets (a caller's would stand)."""
    env = {**os.environ, "PYTHON": sys.executable, "NUMBA_CACHE_DIR": str(numba_cache)}
    for knob in ("NPY_DISABLE_CPU_FEATURES", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        env.pop(knob, None)
    return env


def _host_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            line = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.split()[1:])


@pytest.mark.skipif(_FEATURES_MODULE is None, reason="NumPy reports no CPU features here")
@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"AVX512F": True, "X86_V4": True}, True),  # NumPy >= 2.4 on AVX-512
        ({"AVX512F": True, "X86_V4": False}, False),  # ... with its AVX-512 target off
        ({"AVX512F": False, "X86_V4": False}, False),  # an AVX2 CPU
        ({"AVX512F": True}, True),  # NumPy < 2.4: AVX512F is the dispatch target
        ({"AVX512F": False}, False),
        ({}, False),  # another architecture
    ],
)
def test_issue13_exact_all_reads_numpys_avx512_dispatch_target(
    monkeypatch: pytest.MonkeyPatch, features: dict[str, bool], expected: bool
) -> None:
    assert _FEATURES_MODULE is not None
    monkeypatch.setattr(_FEATURES_MODULE._multiarray_umath, "__cpu_features__", features)
    assert _numpy_kernels._avx512_exp() is expected


def _exp_target() -> str | None:
    """NumPy's current target for its float64 ``exp`` loop (NumPy >= 2), else None."""
    try:
        from numpy.lib.introspect import opt_func_info
    except ImportError:
        return None
    return str(opt_func_info(func_name="^exp$", signature="float64")["exp"]["dd"]["current"])


def test_issue13_exact_all_matches_the_float64_exp_loop_in_use() -> None:
    """On with NumPy's AVX-512 float64 ``exp``, off with any other (AVX2's is scalar)."""
    target = _exp_target()
    if target is None:
        pytest.skip("NumPy < 2: no loop introspection")
    assert _numpy_kernels.EXACT_ALL is ("AVX512" in target or "X86_V4" in target)


_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    report = {}
    from crossent.losses import _numpy_kernels
    from numpy.lib.introspect import opt_func_info
    report["exact_all"] = _numpy_kernels.EXACT_ALL
    info = opt_func_info(func_name="^exp$", signature="float64")
    report["exp"] = info["exp"]["dd"]["current"]
    try:
        import torch
        report["torch"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    try:
        import numba
        import numpy as np
        from crossent._intrinsics_numba import prefer_wide_vectors

        @numba.njit(fastmath=True)
        def wide(x):
            prefer_wide_vectors()
            total = 0.0
            for i in range(x.shape[0]):
                total += np.float64(x[i]) * 1.5
            return total

        wide(np.ones(1000, dtype=np.float32))
        report["zmm"] = wide.inspect_asm(wide.signatures[0]).count("zmm")
        report["ymm"] = wide.inspect_asm(wide.signatures[0]).count("ymm")
    except ImportError:
        pass
    from _machine import vector_width
    report["machine"] = vector_width()
    print(json.dumps(report))
    """
)


@pytest.mark.skipif(
    sys.platform != "linux"
    or platform.machine() not in ("x86_64", "AMD64")
    or "avx2" not in _host_flags()
    or _exp_target() is None,
    reason="needs x86-64 Linux with AVX2 and NumPy >= 2",
)
def test_issue13_emulate_avx2_script_sets_every_knob(tmp_path: Path) -> None:
    source = os.path.dirname(os.path.dirname(crossent.__file__))
    env = emulation_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        ["bash", str(_SCRIPT), sys.executable, "-c", _PROBE, str(_SCRIPT.parent)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "AVX512" not in report["exp"], report
    assert "X86_V4" not in report["exp"], report
    assert report["exact_all"] is False, report
    assert report["machine"].startswith("AVX2 (emulated on "), report
    if "torch" in report:
        assert report["torch"] == "AVX2", report
    if "zmm" in report:
        assert report["zmm"] == 0, report
        assert report["ymm"] > 0, report
