"""Issue 13: softmax cross-entropy gives the same bits whether its kernels were compiled in
this process or loaded from Numba's disk cache.

The fused kernels (``losses/_cpu_kernels_numba.py``) sum with ``fastmath`` ``reassoc``, so
LLVM chooses the order of their additions; the compiled small call (``_small_numba``)
links a copy of the serial kernels into itself, which LLVM optimises again (its machine
code differs from the kernels' own).  The calibration kernel ``totals`` was found to
give float32 sums an ulp apart between the process that compiled it and every later
one (a helper holding a reassociated sum, not inlined).  Two fresh processes share a
new ``NUMBA_CACHE_DIR``: the first compiles every kernel the calls below reach, the
second loads them all, and every output must agree bit for bit: the public loss and
gradient of float32 and float16 logits (rows 1 to 64, classes 2 to 300, odd sizes,
each reduction, label smoothing, z-loss, temperature, both the compiled small call and
the kernels, serial and parallel), and the kernels on float32, float16 and bfloat16
(``uint16`` bits) with class weights and the gradient's smoothing terms.  The two
processes are those of ``numba_cache_harness``, shared with the other cache tests.
"""

from __future__ import annotations

import json

import pytest

from numba_cache_harness import CacheRuns, register, section_output

pytest.importorskip("numba")

pytestmark = pytest.mark.slow

_SCRIPT = """
import gc
import hashlib
import json

import numpy as np
from numba.core.dispatcher import Dispatcher

import crossent
from crossent.losses import _cpu_kernels
from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions


def digest(*arrays):
    bits = hashlib.sha1()
    for array in arrays:
        bits.update(np.ascontiguousarray(array).tobytes())
    return bits.hexdigest()[:16]


OPTIONS = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.1},
    "z_loss": {"z_loss": 1e-3},
    "temperature": {"temperature": 1.7},
    "all": {"label_smoothing": 0.05, "z_loss": 1e-3, "temperature": 0.6},
}
digests = {}
for rows in (1, 2, 3, 8, 13, 32, 33, 64):
    for classes in (2, 3, 7, 10, 31, 37, 64, 127, 255, 300):
        rng = np.random.default_rng(1000 * rows + classes)
        spread = (0.5, 3.0, 20.0, 200.0)[(rows + classes) % 4]  # 200: near-one-hot rows
        z32 = rng.normal(scale=spread, size=(rows, classes)).astype(np.float32)
        labels = rng.integers(0, classes, rows)
        shape = f"{rows}x{classes}"
        inputs = {
            "float32": z32,
            "float16": z32.astype(np.float16),
            "bfloat16": (z32.view(np.uint32) >> 16).astype(np.uint16),
        }
        for dtype in ("float32", "float16"):
            z = inputs[dtype]
            for name, options in OPTIONS.items():
                for reduction in ("none", "mean", "sum"):
                    kw = dict(options, reduction=reduction)
                    digests[f"api/{dtype}/{name}/{reduction}/{shape}"] = digest(
                        np.asarray(crossent.softmax_cross_entropy(z, labels, **kw)),
                        crossent.softmax_cross_entropy_grad(z, labels, **kw),
                    )
        weight = rng.random(classes)
        for dtype, z in inputs.items():
            for name, options in (
                ("plain", StatisticsOptions()),
                ("temperature", StatisticsOptions(inv_temperature=1 / 1.7, need_sum=True)),
                ("weight", StatisticsOptions(need_sum=True, weight=weight)),
            ):
                stats = _cpu_kernels.row_statistics(z, labels, options)
                digests[f"statistics/{dtype}/{name}/{shape}"] = digest(*stats)
            shift = stats[0] + stats[1]
            p_coef, target_coef = rng.random(rows), rng.random(rows)
            uniform, row_uniform = rng.random(classes), rng.random(rows)
            for name, terms in (
                ("plain", GradientTerms(shift, 1.0, p_coef, target_coef)),
                (
                    "smoothing",
                    GradientTerms(shift, 1 / 1.7, p_coef, target_coef, uniform, row_uniform),
                ),
            ):
                digests[f"gradient/{dtype}/{name}/{shape}"] = digest(
                    _cpu_kernels.write_gradient(z, labels, terms)
                )
stats = {
    f"{d.py_func.__module__}.{d.py_func.__qualname__}": [
        len(d.signatures),
        sum(d.stats.cache_hits.values()),
        sum(d.stats.cache_misses.values()),
    ]
    for d in gc.get_objects()
    if isinstance(d, Dispatcher)
    and d.py_func.__module__.startswith("crossent.losses")
    and d.signatures
}
print(json.dumps({"digests": digests, "stats": stats}))
"""

_CALLED_FROM_PYTHON = {
    "crossent.losses._cpu_kernels_numba.row_statistics_kernel",
    "crossent.losses._cpu_kernels_numba.row_statistics_kernel_serial",
    "crossent.losses._cpu_kernels_numba.gradient_kernel",
    "crossent.losses._cpu_kernels_numba.gradient_kernel_serial",
    "crossent.losses._cpu_kernels_numba.smoothed_gradient_kernel",
    "crossent.losses._cpu_kernels_numba.smoothed_gradient_kernel_serial",
    "crossent.losses._small_numba.label_loss",
    "crossent.losses._small_numba.label_gradient",
}
"""The compiled functions the calls reach from Python (the others only run inside these)."""


register("kernel_bits", _SCRIPT)


def _result(out: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    result = json.loads(out.strip().splitlines()[-1])
    return result["digests"], result["stats"]


def test_issue13_softmax_kernels_loaded_from_the_cache_give_the_compiled_bits(
    numba_cache_runs: CacheRuns,
) -> None:
    cold, warm = section_output(numba_cache_runs, "kernel_bits")
    # {case: digest of its outputs}, {function: [signatures, cache hits, misses]}
    compiled, first = _result(cold)
    assert set(first) >= _CALLED_FROM_PYTHON, first
    loaded, second = _result(warm)
    for name in _CALLED_FROM_PYTHON:  # the second process compiled nothing of these
        signatures, hits, misses = second[name]
        assert (hits, misses) == (signatures, 0), f"{name} compiled again: {second}"
    assert loaded.keys() == compiled.keys()
    differ = sorted(case for case in compiled if loaded[case] != compiled[case])
    assert not differ, f"{len(differ)} of {len(compiled)} cases differ: {differ[:20]}"
