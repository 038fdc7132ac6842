"""Issue 13: the softmax CE kernels ask LLVM for 512-bit vectors (Intel AVX-512 cores).

LLVM's tuning for Intel's AVX-512 cores prefers 256-bit vectors, so without
``prefer_wide_vectors`` the kernels' loops use ``ymm`` registers there and half the
lanes of the hardware. The attribute must sit on the function that holds each hot
loop: for the parallel kernels that is the function Numba outlines from the ``prange``
body, not the kernel itself, so these tests read the LLVM IR and, on an AVX-512 CPU,
the machine code of every kernel. A fresh compilation is needed to inspect it (Numba
refuses to inspect a kernel loaded from its cache), hence a process with its own cache
directory: the cold process of ``numba_cache_harness`` (this script its cold-only
section, after ``kernel_bits``, which compiled these float32 kernels already there:
once, not again in a process of this test's own). Every signature compiled there is
inspected (the float16 and bfloat16 ones of ``kernel_bits`` too).
"""

from __future__ import annotations

import json
import textwrap

import pytest

from numba_cache_harness import CacheRuns, register, section_output

from numba_target import numba_target_has

pytest.importorskip("numba")
llvm = pytest.importorskip("llvmlite.binding")

_PROBE = textwrap.dedent(
    """
    import json, re
    import numpy as np
    from crossent.losses import _cpu_kernels, _cpu_kernels_numba as kernels
    from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions

    rng = np.random.default_rng(0)
    report = {}
    for rows, serial in ((64, False), (4, True)):
        z = rng.standard_normal((rows, 1000), dtype=np.float32)
        y = np.zeros(rows, dtype=np.int64)
        _cpu_kernels.row_statistics(z, y, StatisticsOptions())
        ones = np.ones(rows)
        _cpu_kernels.write_gradient(
            z, y, GradientTerms(ones, 1.0, ones, ones), out=np.empty_like(z)
        )
    names = ["row_statistics_kernel", "gradient_kernel", "row_max_bits"]
    names += [name + "_serial" for name in names[:2]]
    for name in names:
        dispatcher = getattr(kernels, name)
        for number, signature in enumerate(dispatcher.signatures):
            ir = dispatcher.inspect_llvm(signature)
            asm = dispatcher.inspect_asm(signature)
            # the functions defined with the attribute group that carries the width
            groups = set(re.findall(r'attributes (#\\d+) = {[^}]*"prefer-vector-width"="512"', ir))
            wide = [
                line.split("@", 1)[1].split("(", 1)[0]
                for line in ir.splitlines()
                if line.startswith("define") and set(re.findall(r"#\\d+", line)) & groups
            ]
            report[f"{name}/{number}"] = {"wide": wide, "zmm": asm.count("zmm")}
    print(json.dumps(report))
    """
)
register("wide_kernels", _PROBE)


@pytest.fixture(scope="module")
def report(numba_cache_runs: CacheRuns) -> dict[str, dict[str, object]]:
    cold, _ = section_output(numba_cache_runs, "wide_kernels")
    return dict(json.loads(cold.strip().splitlines()[-1]))


def test_issue13_every_kernel_loop_function_prefers_512_bit_vectors(
    report: dict[str, dict[str, object]],
) -> None:
    for name in ("row_statistics_kernel", "gradient_kernel"):
        # the prange body, outlined by Numba into a function of its own
        assert any("parfor_gufunc" in f for f in report[name + "/0"]["wide"]), report
    for name in ("row_statistics_kernel_serial", "gradient_kernel_serial", "row_max_bits"):
        assert report[name + "/0"]["wide"], report
    for key, found in report.items():  # every signature compiled in that process
        if key.startswith(("row_statistics_kernel/", "gradient_kernel/")):
            assert any("parfor_gufunc" in f for f in found["wide"]), (key, found)
        assert found["wide"], (key, found)


@pytest.mark.skipif(not numba_target_has("avx512f"), reason="needs Numba to target AVX-512")
def test_issue13_kernels_use_zmm_registers_on_avx512(
    report: dict[str, dict[str, object]],
) -> None:
    for name, found in report.items():
        assert found["zmm"], (name, found)
