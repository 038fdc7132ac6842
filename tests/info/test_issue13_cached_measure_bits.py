"""Issue 13: the measures give the same bits whether their kernels were compiled in this
process or loaded from Numba's disk cache.

A cached kernel can differ from the one its process compiled where LLVM chooses an order
of additions (``fastmath`` ``reassoc``) and optimises a helper's copy differently from
the helper (the calibration kernel ``totals`` did, by an ulp). The measures' kernels
(``info/_fused_kernels.py``) are compiled without fast-math, so LLVM must keep every
addition in the source's order; this pins it. Two fresh processes share a new
``NUMBA_CACHE_DIR``: the first compiles the row and pointwise kernels for float32 and
float64 (rows 1 to 64, classes 2 to 300: the serial row kernel), the second loads them,
and the entropy, cross-entropy, KL and JS divergences of probabilities, log-probabilities
and logits in nats and bits, and the pointwise measures, must agree bit for bit (the two
processes of ``numba_cache_harness``, shared with the other cache tests).
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


def digest(array):
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


digests = {}
for rows in (1, 2, 3, 8, 13, 33, 64):
    for classes in (2, 3, 7, 10, 31, 37, 64, 127, 255, 300):
        rng = np.random.default_rng(1000 * rows + classes)
        logits_p, logits_q = rng.normal(scale=3.0, size=(2, rows, classes))
        shape = f"{rows}x{classes}"
        for dtype in (np.float64, np.float32):
            a, b = logits_p.astype(dtype), logits_q.astype(dtype)
            p = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
            q = np.exp(b) / np.exp(b).sum(axis=1, keepdims=True)
            sides = {"probs": (p, q), "log_probs": (np.log(p), np.log(q)), "logits": (a, b)}
            for form, (x, y) in sides.items():
                for base in (None, 2):
                    kw = {"p_form": form, "base": base}
                    case = f"{np.dtype(dtype).name}/{form}/{base}/{shape}"
                    digests["entropy/" + case] = digest(crossent.entropy(x, **kw))
                    for name in ("cross_entropy", "kl_divergence", "js_divergence"):
                        value = getattr(crossent, name)(x, y, q_form=form, **kw)
                        digests[f"{name}/{case}"] = digest(value)
            flat_p, flat_q = p.ravel(), q.ravel()
            case = f"{np.dtype(dtype).name}/{shape}"
            digests["pointwise/" + case] = digest(np.concatenate([
                crossent.surprisal(flat_p),
                crossent.binary_entropy(flat_p),
                crossent.binary_cross_entropy(flat_p, flat_q),
            ]))
stats = {
    f"{d.py_func.__qualname__}": [
        len(d.signatures),
        sum(d.stats.cache_hits.values()),
        sum(d.stats.cache_misses.values()),
    ]
    for d in gc.get_objects()
    if isinstance(d, Dispatcher)
    and d.py_func.__module__.startswith("crossent.info")
    and d.signatures
}
print(json.dumps({"digests": digests, "stats": stats}))
"""


register("measure_bits", _SCRIPT)


def _result(out: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    result = json.loads(out.strip().splitlines()[-1])
    return result["digests"], result["stats"]


def test_issue13_measure_kernels_loaded_from_the_cache_give_the_compiled_bits(
    numba_cache_runs: CacheRuns,
) -> None:
    cold, warm = section_output(numba_cache_runs, "measure_bits")
    # {case: digest of its outputs}, {function: [signatures, cache hits, misses]}
    compiled, first = _result(cold)
    assert {"_rows_serial", "_pointwise"} <= set(first), first
    loaded, second = _result(warm)
    for name in ("_rows_serial", "_pointwise"):  # the second process compiled neither
        signatures, hits, misses = second[name]
        assert (hits, misses) == (signatures, 0), f"{name} compiled again: {second}"
    assert loaded.keys() == compiled.keys()
    differ = sorted(case for case in compiled if loaded[case] != compiled[case])
    assert not differ, f"{len(differ)} of {len(compiled)} cases differ: {differ[:20]}"
