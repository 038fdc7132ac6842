r"""Fused row kernels of the measures for NumPy float32 and float64 inputs (Numba).

Design
------
The generic path (``_measures.py`` over ``_numerics.py``) evaluates a measure as a chain
of array operations: from logits, the row maximum, the shift, ``exp``, the exp-sum, the
log-partition, the log-softmax, then the terms and their sum, a dozen NumPy calls. Each
call costs about a microsecond whatever the size, so a row of 10 took 20 to 30 us
(issue 13, "Small inputs"), and on large inputs each call is a pass over the data.

:func:`measure_rows` computes one or several measures of each row in one compiled
call: per row, the log-partition of each side given as logits (the same formula as
``_xp.log_sum_exp_shifted``: the maximal terms counted, not added), then one pass over
the classes that accumulates, in float64 with Neumaier's compensation, the requested
sums among H(P), H(P, Q), D(P||Q) and JS(P, Q), and writes each result divided by
``log(base)`` and rounded once to the compute dtype. It is the path of every NumPy
float64 input and of float32 probabilities (float32 logits and log-probabilities keep
the generic path, whose float32 ``exp`` is vectorised: see the costs below), whatever
the size (rows run in parallel above :data:`PARALLEL_ELEMENTS` elements), so a row's
result does not depend on the batch it comes in; other arrays, batches that flatten
only by a copy and the ``eps=`` compatibility clip take the generic path, which stays
the reference and is what runs without the optional ``fast`` extra.

Cost on large inputs: the kernel's ``exp`` and ``log`` are scalar libm calls (Numba
vectorises neither without SVML), where NumPy's ufuncs are vectorised. Measured on
20000 x 1000 rows (AMD EPYC, AVX2, a loaded 2-core machine, so +-30 %), the kernel
takes 0.5 to 0.9 times the generic path's time for KL, JS, the decomposition and the
binary cross-entropy of probabilities (it saves passes and temporaries), 0.9 times for
the entropy and cross-entropy of float64 logits (one ``exp`` per entry), 1.0 to 1.4
times for the entropy of probabilities, and 2 times for float32 logits (NumPy's float32
``exp`` has twice the lanes), which therefore take the generic path
(``_measures._fused_rows``). An inlined vectorisable ``exp`` as in
``losses/_cpu_kernels.py`` would close that gap; it is not done here.

Each term follows the generic path's convention and formula, branch for branch (the
docstrings of ``_numerics.py`` derive them), so the two paths agree to rounding, which
``tests/info/test_issue13_fused_measures.py`` checks on hard rows:

* both sides probabilities: ``entr``, ``-xlogy``, ``rel_entr`` with the ``log1p`` of
  the exact difference for ratios in [1/2, 2] (and logs for a ratio that overflows),
  and the Jensen-Shannon term :math:`\tfrac{p+q}{4} g(d)`;
* otherwise each entry becomes a log-probability (``(x - m) - \ell`` from logits,
  ``log x`` from probabilities) and a probability (its ``exp``, or ``x``): entropy
  :math:`-p\log p` with 0 at :math:`\log p = -\infty`; cross-entropy :math:`-p\log q`,
  0 where :math:`p = 0`, :math:`+\infty` where only :math:`q = 0`; KL
  :math:`p(\log p - \log q)` with the same conventions.

The generic path computes float32 input in float32 and sums in float64; here each term
is float64 too, so float32 results are at least as accurate (within a float32 ulp or
two of the generic ones). :func:`pointwise` is the elementwise twin of the kernels of
``_pointwise.py`` (surprisal, binary entropy and cross-entropy and its gradient), with
the same screening of the entries (NaN, outside [0, 1]).

Importing this module does not import Numba; :func:`available` checks for it once and
the kernels compile on first use (cached on disk).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "BINARY_CROSS_ENTROPY",
    "BINARY_CROSS_GRAD",
    "BINARY_ENTROPY",
    "CROSS_ENTROPY",
    "ENTROPY",
    "FORM_CODES",
    "JS_DIVERGENCE",
    "KL_DIVERGENCE",
    "PARALLEL_ELEMENTS",
    "SURPRISAL",
    "available",
    "measure_rows",
    "operands",
    "pointwise",
    "reshaped",
]

ENTROPY, CROSS_ENTROPY, KL_DIVERGENCE, JS_DIVERGENCE = 1, 2, 4, 8
"""Bits of ``want``: which sums :func:`measure_rows` computes."""

SURPRISAL, BINARY_ENTROPY, BINARY_CROSS_ENTROPY, BINARY_CROSS_GRAD = 0, 1, 2, 3
"""``which`` of :func:`pointwise`."""

FORM_CODES = {"probs": 0, "log_probs": 1, "logits": 2}
"""The forms of a side as the kernel's integer codes."""

PARALLEL_ELEMENTS = 1 << 17
"""Above this many elements the rows run in parallel (below, a thread launch costs
more than it saves)."""


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the optional ``fast`` extra)."""
    return importlib.util.find_spec("numba") is not None


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def operands(a: object, b: object) -> tuple[np.ndarray, np.ndarray] | None:
    """``a`` and ``b`` broadcast against each other (views), if the kernels take them:
    Numba is installed and both are NumPy float32 or float64 arrays of one dtype; else
    None (the generic path runs)."""
    if not (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype == b.dtype
        and a.dtype in _DTYPES
        and available()
    ):
        return None
    if a.shape != b.shape:
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    return a, b


def reshaped(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``x.reshape(shape)`` if that is a view, else None (a copy as large as the input
    would undo the kernels' memory saving; the generic path works by blocks)."""
    view = x.reshape(shape)
    return view if x.size <= 1 or np.may_share_memory(view, x) else None


def measure_rows(
    a: np.ndarray,
    b: np.ndarray,
    *,
    forms: tuple[str, str],
    want: int,
    log_base: float | None,
    tolerances: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, bool]:
    """The measures ``want`` of the rows of ``a`` (P) and ``b`` (Q), one row of the
    result per bit set in ``want``, in the order of the bits, and whether a row may
    fail its validation.

    ``a`` and ``b``: 2-D arrays of one shape ``(rows, classes)`` and one dtype, float32
    or float64. Each result is in nats divided by ``log_base``, in the inputs' dtype.
    ``tolerances``: the row-sum tolerance of each side to screen it with (None: not
    screened); a suspect row (see the kernel's ``suspect``) makes the flag True, and
    the caller then validates in full, which raises the validation's own message.
    """
    out = np.empty((want.bit_count(), a.shape[0]), dtype=a.dtype)
    kernel = _kernels()["rows_parallel" if a.size > PARALLEL_ELEMENTS else "rows"]
    tol_a, tol_b = tolerances
    suspects = kernel(
        a,
        b,
        FORM_CODES[forms[0]],
        FORM_CODES[forms[1]],
        want,
        1.0 if log_base is None else log_base,
        -1.0 if tol_a is None else tol_a,
        -1.0 if tol_b is None else tol_b,
        out,
    )
    return out, suspects > 0


def pointwise(
    p: np.ndarray, q: np.ndarray, *, which: int, log_base: float | None, screen: bool
) -> tuple[np.ndarray, bool]:
    """The elementwise measure ``which`` (:data:`SURPRISAL`, ...; ``q`` unused by the
    first two) of 1-D ``p``, ``q`` of one shape and dtype, divided by ``log_base``, and
    (with ``screen``) whether an entry may fail validation (NaN, or outside [0, 1])."""
    out = np.empty(p.shape, dtype=p.dtype)
    scale = 1.0 if log_base is None else log_base
    suspects = _kernels()["pointwise"](p, q, which, scale, screen, out)
    return out, suspects > 0


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]]:
    import numba

    inline = numba.njit(inline="always", error_model="numpy")

    @inline
    def add(total: float, compensation: float, x: float) -> tuple[float, float]:
        """Neumaier's compensated ``total + x``: the new total and the lost low part
        (none once the total is infinite or NaN, which it then stays)."""
        t = total + x
        if not math.isfinite(t):
            pass
        elif abs(total) >= abs(x):
            compensation += (total - t) + x
        else:
            compensation += (x - t) + total
        return t, compensation

    @inline
    def log_partition(row: Any, with_entropy: bool) -> tuple[float, float, float]:
        r"""The shift ``m`` (the row maximum, 0 if not finite),
        ``ell = log1p(sum_{x < m} e^{x - m} + ties - 1)`` as ``_xp.log_sum_exp_shifted``,
        and (``with_entropy``) the entropy of the softmax from the same ``exp`` calls:

        .. math:: H = -\sum_i p_i \log p_i = \ell - \frac{1}{S}\sum_i e^{s_i} s_i,
                  \qquad s_i = x_i - m,\ S = e^{\ell} = \sum_i e^{s_i},

        two non-negative parts (:math:`s_i \le 0`), so no cancellation; terms with
        :math:`e^{s_i} = 0` (``-inf`` logits) contribute 0."""
        m = -math.inf
        for x in row:
            if x > m:
                m = float(x)
        if not math.isfinite(m):
            m = 0.0
        rest = 0.0
        ties = 0
        weighted = weighted_c = 0.0
        for x in row:
            s = float(x) - m
            if s == 0.0:
                ties += 1
            else:
                e = math.exp(s)
                rest += e
                if with_entropy and e > 0.0:
                    weighted, weighted_c = add(weighted, weighted_c, e * s)
        ell = math.log1p(rest + (ties - 1))
        if not with_entropy:
            return m, ell, 0.0
        return m, ell, ell - (weighted + weighted_c) / (rest + ties)

    @inline
    def log_of(x: float) -> float:
        """``log x``, ``-inf`` at 0 (the generic ``safe_log``)."""
        return -math.inf if x == 0.0 else math.log(x)

    @inline
    def side(x: float, form: int, m: float, ell: float, need: int) -> tuple[float, float]:
        """An entry of a side as (probability, log-probability), each computed only if
        ``need`` has its bit (1: the probability, 2: the logarithm; 0.0 stands in)."""
        if form == 0:
            return x, (log_of(x) if need & 2 else 0.0)
        log_p = x if form == 1 else (x - m) - ell
        return (math.exp(log_p) if need & 1 else 0.0), log_p

    @inline
    def entr(x: float) -> float:
        """``scipy.special.entr``: ``-x log x``, 0 at 0, ``-inf`` below."""
        if x > 0.0:
            return -x * math.log(x)
        return 0.0 if x == 0.0 else (-math.inf if x < 0.0 else x)

    @inline
    def xlogy(x: float, y: float) -> float:
        """``scipy.special.xlogy``: 0 where ``x = 0`` (unless ``y`` is NaN)."""
        if x == 0.0 and y == y:
            return 0.0
        return x * log_of(y)

    @inline
    def rel_entr(x: float, y: float) -> float:
        """``x log(x / y)`` as ``_numerics.kl_terms``: ``log1p`` of the exact difference
        where ``y/2 <= x <= 2y``, the logs where the ratio overflows."""
        if x > 0.0 and y > 0.0:
            difference = x - y
            if abs(difference) <= min(x, y):
                return x * math.log1p(difference / y)
            ratio = x / y
            if math.isinf(ratio):
                return x * (math.log(x) - math.log(y))
            return x * math.log(ratio)
        if x == 0.0 and y >= 0.0:
            return 0.0
        return math.inf if x == x and y == y else math.nan

    @inline
    def js_term(p: float, q: float) -> float:
        """``_numerics.js_terms``: ``(p + q) / 4 * g(d)``, ``d = (p - q) / (p + q)``."""
        total = p + q
        if not total > 0.0:
            return 0.0
        d = (p - q) / total
        if abs(d) <= 0.5:
            g = 2.0 * d * math.atanh(d) + math.log1p(-(d * d))
        else:
            g = -(entr(2.0 * p / total) + entr(2.0 * q / total))
        return total * g / 4.0

    @inline
    def cross_from_log(p: float, log_q: float) -> float:
        """``-p log q``: 0 where ``p = 0``, ``+inf`` where only ``q = 0``."""
        if log_q == -math.inf:
            return math.inf if p > 0.0 else 0.0
        return -(p * log_q)

    @inline
    def kl_from_log(p: float, log_p: float, log_q: float) -> float:
        """``p (log p - log q)``: 0 where ``p = 0``, ``+inf`` where only ``q = 0``."""
        if log_p == -math.inf:
            return 0.0
        if log_q == -math.inf:
            return math.inf
        return p * (log_p - log_q)

    @inline
    def suspect(
        form: int, m: float, ell: float, total: float, lo: float, hi: float, tol: float
    ) -> bool:
        """Whether a row may fail its validation (then checked in full): probabilities
        outside [0, 1] or summing to more than ``tol`` from 1, log-probabilities whose
        exp-sum is, logits with NaN or ``+inf`` or all ``-inf`` (``ell`` not finite).
        NaN fails every comparison."""
        if form == 0:
            return not (abs(total - 1.0) <= tol and lo >= 0.0 and hi <= 1.0)
        if form == 1:
            return not abs(math.exp(m + ell) - 1.0) <= tol
        return not math.isfinite(ell)

    def rows(
        a: Any,
        b: Any,
        form_a: int,
        form_b: int,
        want: int,
        scale: float,
        tol_a: float,
        tol_b: float,
        out: Any,
    ) -> int:
        both_probs = form_a == 0 and form_b == 0
        # What ``side`` computes: P's probability always, its log for KL and for H from
        # logs; Q's log for CE and KL, its probability for JS.
        need_a = 1 | (2 if want & 4 or (want & 1 and form_a != 0) else 0)
        need_b = (1 if want & 8 else 0) | (2 if want & 6 else 0)
        suspects = 0
        for r in numba.prange(a.shape[0]):
            partition_a = form_a == 2 or (form_a == 1 and tol_a >= 0.0)
            partition_b = form_b == 2 or (form_b == 1 and tol_b >= 0.0)
            # The entropy of logits alone comes from the log-partition's own pass.
            direct = want == 1 and form_a == 2
            m_a, ell_a, h_a = log_partition(a[r], direct) if partition_a else (0.0, 0.0, 0.0)
            m_b, ell_b, _ = log_partition(b[r], False) if partition_b else (0.0, 0.0, 0.0)
            h = h_c = ce = ce_c = kl = kl_c = js = js_c = 0.0
            sum_a = sum_b = 0.0
            lo_a = lo_b = math.inf
            hi_a = hi_b = -math.inf
            for i in range(0 if direct else a.shape[1]):
                x = float(a[r, i])
                y = float(b[r, i])
                if form_a == 0 and tol_a >= 0.0:  # a NaN makes the sum NaN
                    sum_a += x
                    lo_a, hi_a = min(lo_a, x), max(hi_a, x)
                if form_b == 0 and tol_b >= 0.0:
                    sum_b += y
                    lo_b, hi_b = min(lo_b, y), max(hi_b, y)
                if both_probs:
                    if want & 1:
                        h, h_c = add(h, h_c, entr(x))
                    if want & 2:
                        ce, ce_c = add(ce, ce_c, -xlogy(x, y))
                    if want & 4:
                        kl, kl_c = add(kl, kl_c, rel_entr(x, y))
                    if want & 8:
                        js, js_c = add(js, js_c, js_term(x, y))
                    continue
                p, log_p = side(x, form_a, m_a, ell_a, need_a)
                if want & 1:
                    h_term = entr(x) if form_a == 0 else (0.0 if log_p == -math.inf else -p * log_p)
                    h, h_c = add(h, h_c, h_term)
                if want == 1:
                    continue
                q, log_q = side(y, form_b, m_b, ell_b, need_b)
                if want & 2:
                    ce, ce_c = add(ce, ce_c, cross_from_log(p, log_q))
                if want & 4:
                    kl, kl_c = add(kl, kl_c, kl_from_log(p, log_p, log_q))
                if want & 8:
                    js, js_c = add(js, js_c, js_term(p, q))
            if tol_a >= 0.0 and suspect(form_a, m_a, ell_a, sum_a, lo_a, hi_a, tol_a):
                suspects += 1
            if tol_b >= 0.0 and suspect(form_b, m_b, ell_b, sum_b, lo_b, hi_b, tol_b):
                suspects += 1
            # One output row per bit of ``want``; + 0.0 turns a -0.0 total into +0.0, as
            # ``_xp.finalize`` does.
            k = 0
            if direct:
                h, h_c = h_a, 0.0
            if want & 1:
                out[k, r] = (h + h_c) / scale + 0.0
                k += 1
            if want & 2:
                out[k, r] = (ce + ce_c) / scale + 0.0
                k += 1
            if want & 4:
                out[k, r] = (kl + kl_c) / scale + 0.0
                k += 1
            if want & 8:
                out[k, r] = (js + js_c) / scale + 0.0
        return suspects

    @inline
    def xlog1py(x: float, y: float) -> float:
        """``scipy.special.xlog1py``: 0 where ``x = 0`` (unless ``y`` is NaN)."""
        if x == 0.0 and y == y:
            return 0.0
        return x * math.log1p(y)

    @inline
    def binary_cross_grad_term(x: float, y: float) -> float:
        """``_numerics.binary_cross_grad_terms``: ``-x/y + (1-x)/(1-y)``, each term 0
        where its weight is, infinite where only its denominator is 0."""
        first = 0.0
        if x > 0.0:
            first = -math.inf if y == 0.0 else (-x / y if y > 0.0 else -x)
        weight = 1.0 - x
        second = 0.0
        if weight > 0.0:
            second = math.inf if y == 1.0 else (weight / (1.0 - y) if y < 1.0 else weight)
        return first + second

    def pointwise_kernel(p: Any, q: Any, which: int, scale: float, screen: bool, out: Any) -> int:
        suspects = 0
        for i in range(p.shape[0]):
            x = float(p[i])
            y = float(q[i])
            if screen and not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # NaN fails too
                suspects += 1
            if which == 0:  # _numerics.surprisal_terms
                value = -log_of(x)
            elif which == 1:  # _numerics.binary_entropy_terms
                value = entr(x) - xlog1py(1.0 - x, -x)
            elif which == 2:  # _numerics.binary_cross_terms
                value = -xlogy(x, y) - xlog1py(1.0 - x, -y)
            else:
                value = binary_cross_grad_term(x, y)
            out[i] = value / scale + 0.0
        return suspects

    compile_ = functools.partial(numba.njit, error_model="numpy", nogil=True, cache=True)
    return {
        "rows": compile_()(rows),
        "rows_parallel": compile_(parallel=True)(rows),
        "pointwise": compile_()(pointwise_kernel),
    }
