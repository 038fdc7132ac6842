# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""Fused per-row summaries of stored probabilities (optional: needs Numba).

One pass over each row of probabilities ``(n, classes)`` in their stored dtype (float32
or float64, read as float64, never copied) gives every number the evaluation metrics
average (:mod:`._summaries`), and validates the row on the way:

* :math:`p_y`, the probability of the label;
* :math:`\sum_{k \ne y} p_k^2`, summed without :math:`p_y` (so that the Brier score of a
  near-certain correct prediction keeps its digits: no :math:`\sum_k p_k^2 - p_y^2`);
* when asked, the top-label confidence :math:`\max_k p_k` and its class (the first
  maximum), compared as bit patterns (for non-negative floats the integer order is the
  float order);
* optionally the entropy :math:`-\sum_k p_k \log p_k` (:math:`0 \log 0 = 0`), with a
  logarithm written as arithmetic (:func:`log_positive`, fdlibm's, within 1 ulp) so
  that the loop vectorises: Numba's ``math.log`` calls the C library for each entry.
  The terms of a chunk of rows (:data:`_CHUNK_ENTRIES` entries, still in cache) are
  taken in one flat loop, so short rows (10 classes) vectorise as well as long ones;
* whether the row is *suspect*: an entry that is NaN or outside [0, 1], or a float64
  row sum farther from 1 than ``limit``.  The caller passes a ``limit`` a little below
  the validation tolerance, so every row the full check would reject is suspect; on any
  suspect row the caller runs the full check, which names the entry (or passes).
  A label outside ``[-classes, classes)`` (possible only unchecked, ``validate=False``)
  stops the kernel before it reads outside the row: an ``IndexError``, as NumPy's
  indexing in the generic path; negative labels count from the end, as there.

The loop over a row's classes is one loop of sums and selects, no branches
(``fastmath`` without ``nnan``/``ninf``: a NaN must stay visible to the comparisons).
The kernel releases the GIL: the caller runs blocks of rows on threads.

Importing this module does not import Numba; :func:`available` does, once.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["available", "log_positive", "row_summaries"]

_CHUNK_ENTRIES = 4096
"""Entries of a chunk of rows whose entropy terms are taken in one flat loop (the
float64 terms, 32 KiB, stay in L1 cache)."""


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the kernel compiles on first use)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]]:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    def bitcast(source: Any, target: Any, llvm_target: Any) -> Any:
        """An intrinsic reinterpreting the bits of a ``source`` value as ``target``."""

        @intrinsic
        def cast(typingctx: Any, value: Any) -> Any:
            return target(source), lambda context, builder, signature, args: builder.bitcast(
                args[0], llvm_target
            )

        return cast

    float64_to_bits = bitcast(types.float64, types.int64, ir.IntType(64))
    bits_to_float64 = bitcast(types.int64, types.float64, ir.DoubleType())

    flags = {"contract", "reassoc", "nsz", "arcp"}  # no nnan/ninf: NaN must stay visible

    # Compiled on its own without ``reassoc`` (LLVM still inlines it, each instruction
    # keeping its flags): reassociation would distribute ``k * ln2`` over the 2^52 of
    # the exponent trick below and cancel catastrophically.  NumPy's error model: with
    # Python's, the division checks for zero, a branch that stops the vectorisation.
    @numba.njit(fastmath={"contract", "nsz"}, inline="never", error_model="numpy")
    def log_positive(x: float) -> float:
        # fdlibm's __ieee754_log for finite x > 0 (subnormals scaled by 2^54 first):
        # x = 2^e m, m in [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f),
        # log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), R a degree-7 minimax polynomial,
        # plus e log 2 split into a high part exact in any product and a low part.
        # Error below 1 ulp, like the C library's.
        tiny = x < 2.2250738585072014e-308
        x = x * 18014398509481984.0 if tiny else x
        bits = float64_to_bits(x)
        mantissa = bits & 0x000FFFFFFFFFFFFF
        # m >= sqrt(2): halve it (0x95F64 complements the top of sqrt(2)'s mantissa)
        upper = (mantissa + 0x95F6400000000) >> 52
        m = bits_to_float64(mantissa | ((1023 - upper) << 52))
        # the exponent as a float64 without an int-to-float conversion (which AVX2 lacks
        # for int64): the biased exponent in the low mantissa bits of 2^52, minus 2^52
        biased = ((bits >> 52) & 0x7FF) + upper
        k = bits_to_float64(biased | 0x4330000000000000) - (4503599627370496.0 + 1023.0)
        k = k - 54.0 if tiny else k
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (0.3999999999940941908 + w * (0.2222219843214978396 + w * 0.1531383769920937332))
        t2 = z * (
            0.6666666666666735130
            + w * (0.2857142874366239149 + w * (0.1818357216161805012 + w * 0.1479819860511658591))
        )
        r = t2 + t1
        hfsq = 0.5 * f * f
        return k * 6.93147180369123816490e-01 - (
            (hfsq - (s * (hfsq + r) + k * 1.90821492927058770002e-10)) - f
        )

    @numba.njit(fastmath=flags, inline="always")
    def sums(row, row_bits, y, with_top):
        # the sum, the sum of squares but the label's, the count of entries that are NaN
        # or outside [0, 1] and, with_top, the maximum, compared as bit patterns (for
        # non-negative floats the integer order is the float order; a row with a
        # negative entry or a NaN is suspect and checked in full anyway): one loop of
        # selects, no branches (LLVM takes the loop-invariant with_top out of it); then
        # the first index of the maximum by a min reduction over the row, in L1 cache.
        # (Tracking the index in the first loop instead is not vectorised: measured per
        # 10^7 float32 entries, 10 classes 0.117 s vs 0.144 s, 1000 classes 0.56 s vs
        # 0.28 s, on the 2-core AMD EPYC under load.)
        total = 0.0
        squares = 0.0
        bad = 0
        top = row_bits[0]
        first = 0
        for j in range(row.shape[0]):
            x = np.float64(row[j])
            total += x
            squares += 0.0 if j == y else x * x
            bad += (x < 0.0) | (x > 1.0) | (x != x)
            if with_top:
                top = max(top, row_bits[j])
        if with_top:  # the first maximum: a min reduction, which vectorises too
            first = row.shape[0]
            for j in range(row.shape[0]):
                first = min(first, j if row_bits[j] == top else row.shape[0])
        return total, squares, bad, first

    @numba.njit(fastmath=flags, inline="always")
    def entropy_terms(flat, start, count, terms):
        # p log p of consecutive entries (0 for p = 0): one flat loop over several rows,
        # vectorised across row boundaries, into a buffer that stays in L1
        for t in range(count):
            x = np.float64(flat[start + t])
            terms[t] = x * log_positive(x) if x > 0.0 else 0.0

    @numba.njit(fastmath=flags, nogil=True, cache=True)
    def kernel(values, flat, bits, labels, with_top, with_entropy, limit, floats, predicted):
        # floats: p_label, others, confidence, entropy (one row each)
        p_label, others, confidence, ent = floats[0], floats[1], floats[2], floats[3]
        n, k = values.shape
        chunk = max(1, _CHUNK_ENTRIES // max(k, 1))
        terms = np.empty(chunk * k if with_entropy else 0)
        suspect = 0
        for c0 in range(0, n, chunk):
            c1 = min(c0 + chunk, n)
            for i in range(c0, c1):
                row = values[i]
                y = labels[i]
                y = y + k if y < 0 else y  # NumPy's indexing, as the generic path
                if (y < 0) | (y >= k):  # unchecked labels (validate=False): no stray read
                    return -1 - i
                total, squares, bad, first = sums(row, bits[i], y, with_top)
                if with_top:
                    confidence[i] = np.float64(row[first])
                    predicted[i] = first
                suspect += 1 if (bad > 0) | (abs(total - 1.0) > limit) else 0
                p_label[i] = np.float64(row[y])
                others[i] = squares
            if with_entropy:  # the chunk's rows are still in cache
                entropy_terms(flat, c0 * k, (c1 - c0) * k, terms)
                for i in range(c0, c1):
                    total = 0.0
                    for j in range((i - c0) * k, (i - c0 + 1) * k):
                        total += terms[j]
                    ent[i] = -total
        return suspect

    @numba.njit(fastmath=flags, nogil=True, cache=True)
    def log_array(x, out):
        for i in range(x.shape[0]):
            out[i] = log_positive(x[i])

    return {"summaries": kernel, "log": log_array}


def log_positive(x: np.ndarray) -> np.ndarray:
    """The kernel's logarithm of positive finite float64 values (for tests)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _kernels()["log"](x, out)
    return out


def row_summaries(
    values: np.ndarray, labels: np.ndarray, *, top: bool, entropy: bool, limit: float
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(suspect rows, p_label, sum_{k != y} p_k^2, confidence, predicted, entropy)`` of
    float32 or float64 rows (confidence and predicted None unless ``top``, entropy None
    unless ``entropy``)."""
    n = values.shape[0]
    values = np.ascontiguousarray(values)
    bits = values.view(np.int32 if values.dtype == np.float32 else np.int64)
    floats = np.empty((4, n))
    predicted = np.empty(n if top else 0, dtype=np.intp)
    ids = np.asarray(labels, dtype=np.intp)
    kernel = _kernels()["summaries"]
    suspect = kernel(values, values.reshape(-1), bits, ids, top, entropy, limit, floats, predicted)
    if suspect < 0:
        row = -1 - int(suspect)
        raise IndexError(
            f"label {labels[row]} of row {row} is out of range for {values.shape[1]} classes"
        )
    return (
        int(suspect),
        floats[0],
        floats[1],
        floats[2] if top else None,
        predicted if top else None,
        floats[3] if entropy else None,
    )
