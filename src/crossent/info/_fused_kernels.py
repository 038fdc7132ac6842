r"""The compiled kernels of ``_fused.py`` (Numba): imported only when first needed.

Everything compiled is defined at module level, with no closures, so that Numba's
on-disk cache hits across processes: a cache entry is keyed by the function's qualified
name and source file, and its index key hashes the function's bytecode and closure
variables. (Kernels built inside a function close over the helper dispatchers, whose
pickled form differs per process, so every process recompiled them: issue 13.)

Each kernel is compiled for one signature per dtype (:func:`rows`, :func:`pointwise`):
the inputs typed as read-only arrays of any layout (``'A'``), to which a contiguous,
strided, broadcast or read-only NumPy array converts without a new compilation, and the
options (the forms, the measures wanted, the unit, the tolerances) as runtime
arguments. A full test run therefore compiles at most six kernels (serial rows, parallel
rows and pointwise, each for float32 and float64), each once per cache directory.
The row loop :func:`_rows` is compiled with threads (``parallel=True``) and, under the
name ``_rows_serial``, without: one function compiled with two sets of options would
share one cache index entry, each variant replacing the other's. Both call the per-row
work, :func:`_row`, compiled once per dtype.

The derivations of each term are in ``_fused.py`` and ``_numerics.py``.

Every entry is read as ``np.float64(a[i])``: Numba types ``float(a[i])`` of a float32
array as float32, so the float32 kernels computed their logarithms and quotients in
float32 (up to 1.5 ulps off for the binary entropy, thousands for the binary
cross-entropy's gradient, whose two quotients cancel: issue 13).
"""

from __future__ import annotations

import decimal
import math
import types as pytypes
from fractions import Fraction
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .._intrinsics_numba import (
    bits_to_float32,
    bits_to_float64,
    call_intrinsic,
    exp_nonpositive,
    float32_to_bits,
    float64_to_bits,
    prefer_wide_vectors,
    unit_stride,
)

__all__ = ["pointwise", "rows"]

# Two ways to call a helper from a kernel. ``_inline``: Numba inlines it in its IR (the
# caller's fastmath flags then reach its operations) -- for the per-entry helpers of the
# loops.  ``_once``: compiled on its own and called (LLVM may still inline it) -- for the
# helpers a row calls once or a few times.  Numba's IR inlining types the helper's body
# again at every call site, so the row kernel's first compile grew to about 48 s per
# dtype with everything inlined, against about 20 s so (issue 13: a fresh install's
# first call, and every CI run).  For the same reason a ``_once`` helper is called with
# run-time values, not constants, where its other calls pass variables: a constant
# argument is a literal type, and each literal gets a compile of its own.
_inline = numba.njit(inline="always", error_model="numpy")
_once = numba.njit(error_model="numpy", nogil=True)
# ``_contract``: a per-entry helper compiled on its own (not inlined in Numba's IR; LLVM
# inlines it where it is small), with the flags of the kernels that call it, all
# compiled with ``fastmath={"contract"}``: given here, not inherited, so that its
# instructions carry the same flags as they did inlined, and it is compiled once for
# every caller and both dtypes, not typed again at each call site (issue 13: the float64
# row kernel spent a fifth of its compile in Numba's inlining, the largest of these
# bodies inlined at several sites each).
_contract = numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)

# The flags of the float32 inputs' exp-sum loops: ``reassoc`` lets LLVM vectorise the
# sums (several partial sums, added at the end); no ``nnan``/``ninf``, so a NaN
# propagates. :func:`exp_nonpositive` is compiled with its own flags (no ``reassoc``).
_SUM_FLAGS = {"contract", "reassoc", "nsz", "arcp"}

# Below this argument ``exp_nonpositive`` returns e^-708 (its clamp): the terms there
# are set to 0 instead (the true e^s < 3.3e-308 is below any float32 result's ulp).
_EXP_FLOOR = -708.0


def _narrow(a: Any) -> bool:
    """Whether ``a`` holds float32 (compiled: a constant of the array's type), i.e.
    whether the kernel may use the polynomial ``exp``."""
    return bool(a.dtype != np.float64)


@overload(_narrow)
def _narrow_compiled(a: Any) -> Any:
    narrow = a.dtype != types.float64

    def implementation(a: Any) -> bool:
        return narrow

    return implementation


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _exp_sums(row: Any, m: float, with_entropy: bool) -> tuple[float, int, float]:
    r"""For a float32 row and its finite maximum ``m``: ``rest``, the sum of
    :math:`e^{s_i}` over the entries below the maximum (:math:`s_i = x_i - m < 0`),
    the number ``ties`` of entries equal to it, and (``with_entropy``)
    :math:`\sum_i e^{s_i} s_i`, each :math:`e^{s_i}` by :func:`exp_nonpositive`, a NaN
    entry making both sums NaN. Two loops LLVM vectorises (sums reassociated).

    Error: each term :math:`e^{s}` errs by a relative :math:`\delta_e \le 5.2\cdot
    10^{-11}` (the polynomial, ``losses/_cpu_kernels_numba``'s docstring), and by an
    absolute :math:`e^{-708} < 3.3\cdot 10^{-308}` where :math:`s < -708` (set to 0).
    Every term has one sign (:math:`e^s > 0`, :math:`e^s s \le 0`), so a float64 sum
    of :math:`n` of them in any order errs by at most a relative
    :math:`\delta_e + (n - 1) 2^{-53}` (no cancellation): :math:`5.2\cdot 10^{-11} +
    2.8\cdot 10^{-11}` even at :math:`n = 256000`. See :func:`_log_partition` for the
    measures."""
    prefer_wide_vectors()
    rest = 0.0
    weighted = 0.0
    ties = 0
    # Indexed loops (``for x in row`` compiles to gathers) and selects, no ``or``.
    if with_entropy:
        for i in range(row.shape[0]):
            s = np.float64(row[i]) - m
            e = 0.0 if s < _EXP_FLOOR else exp_nonpositive(s)
            ties += s == 0.0
            rest += 0.0 if s == 0.0 else e
            weighted += 0.0 if e == 0.0 else e * s
    else:
        for i in range(row.shape[0]):
            s = np.float64(row[i]) - m
            e = 0.0 if s < _EXP_FLOOR else exp_nonpositive(s)
            ties += s == 0.0
            rest += 0.0 if s == 0.0 else e
    return rest, ties, weighted


@numba.njit(error_model="numpy", nogil=True)
def _max_float32(row: Any) -> float:
    """The largest entry of a float32 row by the order-preserving integer keys of its
    bits (an integer maximum, which LLVM vectorises; a float one it does not without
    ``nnan``): NaN if the row holds a NaN of positive sign or is empty, else its
    maximum (NaNs of negative sign rank below ``-inf``: the caller's sums see them)."""
    prefer_wide_vectors()
    top: Any = -(1 << 31)  # an int64 to Numba
    for i in range(row.shape[0]):
        bits = np.int64(float32_to_bits(np.float32(row[i])))
        top = max(top, bits ^ ((bits >> 31) & 0x7FFFFFFF))
    return np.float64(bits_to_float32(np.int32(top ^ ((top >> 31) & 0x7FFFFFFF))))


@_once
def _fast_sums(row: Any, with_entropy: bool) -> tuple[float, float, int, float]:
    """The maximum ``m`` of a float32 row (NaN: not finite, the caller's exact loop
    then runs) and, if finite, :func:`_exp_sums`, on the row typed C-contiguous where
    its stride allows (plain vector loads instead of gathers)."""
    contiguous = row.strides[0] == row.itemsize
    m = _max_float32(unit_stride(row)) if contiguous else _max_float32(row)
    if not math.isfinite(m):
        return m, 0.0, 0, 0.0
    if contiguous:
        rest, ties, weighted = _exp_sums(unit_stride(row), m, with_entropy)
    else:
        rest, ties, weighted = _exp_sums(row, m, with_entropy)
    return m, rest, ties, weighted


# ``fastmath={"contract"}`` (nothing to contract here) and not the default: a jitted
# function without its own ``fastmath`` is compiled, when a caller with ``fastmath``
# compiles it first, with the caller's flags (``reassoc`` included), and Numba adds a
# function's flags to every float instruction that has none. Then ``(y - m) - ell``
# became ``y - (m + ell)``, 0 at the maximum where ``ell`` < ulp(m) (issue 13: the
# float32 cross-entropy of ``[1, 0]`` against logits ``[1e4, 1e4 - 40]`` was 0, not
# 4.2e-18).
@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True, inline="never")
def _log_softmax_entry(y: float, m: float, ell: float) -> float:
    """``(y - m) - ell`` as :func:`_side`, compiled on its own with its own flags so that
    the caller's ``reassoc`` cannot turn it into ``y - (m + ell)`` (LLVM keeps each
    instruction's flags when it inlines this)."""
    return (y - m) - ell


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _cross_sum(p: Any, q: Any, m: float, ell: float) -> tuple[float, int]:
    r"""For float32 rows ``p`` (probabilities) and ``q`` (logits, maximum ``m`` and
    log-partition ``ell``): :math:`-\sum_i p_i \log q_i` with ``_cross_from_log``'s
    conventions, and the number of negative :math:`p_i` (if any, the caller's
    compensated loop runs instead). With :math:`p_i \ge 0` every term is :math:`\ge 0`,
    so the reassociated float64 sum (vectorised) errs by a relative :math:`(n-1)2^{-53}`
    at most, no cancellation; each term is the compensated loop's own."""
    prefer_wide_vectors()
    total = 0.0
    negatives = 0
    for i in range(p.shape[0]):
        x = np.float64(p[i])
        log_q = _log_softmax_entry(np.float64(q[i]), m, ell)
        total += 0.0 if x == 0.0 else -(x * log_q)
        negatives += 1 if x < 0.0 else 0
    return total, negatives


@_once
def _fast_cross(p: Any, q: Any, m: float, ell: float) -> tuple[float, int]:
    """:func:`_cross_sum` on the rows typed C-contiguous where both strides allow."""
    if p.strides[0] == p.itemsize and q.strides[0] == q.itemsize:
        return _cross_sum(unit_stride(p), unit_stride(q), m, ell)
    return _cross_sum(p, q, m, ell)


# The fast divergence pass (:func:`_divergence_sums`) stands for the compensated loop
# where its rounding error is at most this fraction of the sum: 2^-32, under 1/256 of
# a float32 ulp (2^-24 to 2^-23 relative), so the rounded result is the same.
_FAST_SUM_TOLERANCE = 2.0**-32


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _divergence_sums(
    a: Any, b: Any, sides: tuple[int, int], shifts: tuple[float, float, float, float]
) -> tuple[float, float, float, float, int]:
    r"""For float32 rows ``a`` (P) and ``b`` (Q), each log-probabilities (form 1) or
    logits (form 2, maximum and log-partition in ``shifts``: ``m_a, ell_a, m_b,
    ell_b``): the sums of :math:`H(P)`, :math:`H(P, Q)` and :math:`D(P\|Q)`, of the
    absolute values of the KL's terms, and the number of entries the compensated loop
    must judge (a positive log-probability, or :math:`\log q_i = -\infty` where
    :math:`\log p_i` is not; NaN shows in the sums).

    Each term is the compensated loop's own, from the same ``log p``, ``log q`` and
    :math:`p = e^{\log p}` (by :func:`exp_nonpositive`; 0 below -708, where the
    compensated loop's ``math.exp`` gives less than :math:`3.3\cdot 10^{-308}`, far
    below a float32 result's ulp): :math:`p(\log p - \log q)`, :math:`-p \log p`,
    :math:`-p \log q`, 0 where :math:`\log p = -\infty` (all three whatever the
    caller wants: a branch in the loop keeps LLVM from vectorising it). One loop, which
    LLVM vectorises (the sums reassociated, several partial sums), so each sum of :math:`n`
    terms :math:`t_i` errs by at most :math:`\gamma_{n-1} \sum_i |t_i|`,
    :math:`\gamma_k = k 2^{-53}/(1 - k 2^{-53})`, in whatever order LLVM adds them.
    The entropy's and cross-entropy's terms are all :math:`\ge 0` when the count is 0
    (then :math:`\log p, \log q \le 0`): relative error :math:`\gamma_{n-1}` at most,
    :math:`2.8\cdot 10^{-11}` at :math:`n = 256000`. The KL's terms have both signs:
    the caller compares the bound with the sum (:func:`_divergence_safe`)."""
    prefer_wide_vectors()
    form_a, form_b = sides
    m_a, ell_a, m_b, ell_b = shifts
    h = ce = kl = kl_abs = 0.0
    odd: Any = 0  # a count of booleans
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        log_p = x if form_a == 1 else _log_softmax_entry(x, m_a, ell_a)
        log_q = y if form_b == 1 else _log_softmax_entry(y, m_b, ell_b)
        p = 0.0 if log_p < _EXP_FLOOR else exp_nonpositive(log_p)
        dead = log_p == -math.inf
        odd += (log_p > 0.0) + (log_q > 0.0) + (0 if dead else log_q == -math.inf)
        term = 0.0 if dead else p * (log_p - log_q)
        kl += term
        kl_abs += abs(term)
        h += 0.0 if dead else -(p * log_p)
        ce += 0.0 if dead else -(p * log_q)
    return h, ce, kl, kl_abs, odd


_EXP_POLYNOMIAL_ERROR = 5.2e-11
r"""The relative error of :func:`exp_nonpositive` (``losses/_cpu_kernels_numba``'s
docstring), the float32 kernels' :math:`p_i = e^{\log p_i}`."""


@_inline
def _divergence_safe(kl: float, kl_abs: float, n: int, odd: int) -> bool:
    r"""Whether :func:`_divergence_sums`' KL ``kl`` is within
    :data:`_FAST_SUM_TOLERANCE` of the exact KL of the rows, and no entry needs the
    compensated loop: :math:`(\delta_e + \gamma_{n-1}) \sum |t_i| \le 2^{-32}
    |\sum t_i|`, with :math:`\delta_e` = :data:`_EXP_POLYNOMIAL_ERROR` (each term's
    :math:`p_i` by the polynomial ``exp``: the terms :math:`p_i(\log p_i - \log q_i)`
    of nearly equal rows cancel, so this error, relative to each term, is not relative
    to their sum: issue 13, branch klf32, the KL of two float32 log-probability rows
    1e-4 apart was up to 6.3 ulps off with :math:`\gamma_{n-1}` alone),
    :math:`(n + 2) 2^{-53}` for :math:`\gamma_{n-1}` (the sum, the difference and the
    product of each term) and the computed :math:`\sum |t_i|` (itself within
    :math:`\gamma_{n-1}`) enlarged by :math:`2^{-20}`. False for a NaN sum; true for
    a zero sum only if every term is 0."""
    bound = (_EXP_POLYNOMIAL_ERROR + (n + 2) * 2.0**-53) * kl_abs * (1.0 + 2.0**-20)
    return odd == 0 and bound <= _FAST_SUM_TOLERANCE * abs(kl)


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True, inline="never")
def _minus(x: float, y: float) -> float:
    """``x - y`` with its own flags (see :func:`_log_softmax_entry`): a ``reassoc``
    caller cannot merge it with its neighbours (``(x - m) - (y - m')`` into
    ``(x - y) - (m - m')``, which rounds where the two are exact)."""
    return x - y


_PHI_HORNER = tuple((j + 1) / math.factorial(j + 2) for j in range(13, -1, -1))
r""":math:`\varphi(r) = 1 + (r - 1) e^r = r^2 \sum_j c_j r^j`, :math:`c_j = (j + 1)/(j + 2)!`:
:math:`c_{13}, \dots, c_0` (:func:`_phi_series`, Horner's order)."""


@_inline
def _phi_series(r: float) -> float:
    r"""The Bregman function :math:`\varphi(r) = 1 + (r - 1)e^r = r e^r - (e^r - 1) \ge 0`
    for :math:`|r| \le 1`, by its series truncated after :math:`c_{13} r^{15}`:
    the remainder is at most :math:`c_{14} = 15/16! < 7.2\cdot 10^{-13}` times
    :math:`r^2`, and :math:`\varphi(r) \ge (1 - 2/e) r^2 > 0.26 r^2` there, so a relative
    :math:`2.8\cdot 10^{-12}`; Horner's scheme adds at most :math:`4 \cdot 14 \cdot
    2^{-53}` (the terms' sum is at most :math:`\varphi(1)/0.26 < 4` times the value).
    A value is returned for every ``r``; the caller selects it only where
    :math:`|r| \le 1`."""
    s = 0.0
    for c in _PHI_HORNER:
        s = c + r * s
    return r * r * s


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True, inline="never")
def _two_diff(x: float, y: float) -> tuple[float, float]:
    """``x - y`` as ``s + e`` exactly (Knuth's TwoSum: ``s`` the rounded difference,
    ``e`` its error), with its own flags (see :func:`_minus`: ``reassoc`` would fold
    ``e`` to 0). NaN ``e`` where ``s`` is not finite."""
    s = x - y
    v = s - x
    return s, (x - (s - v)) - (y + v)


@_inline
def _dd_add(hi: float, lo: float, x: float) -> tuple[float, float]:
    """The double-double ``hi + lo`` plus the float ``x``, renormalised (error about
    ``2^-105`` of the sum)."""
    s, e = _two_diff(hi, -x)
    return _two_diff(s, -(e + lo))


_PHI_HORNER64 = tuple((j + 1) / math.factorial(j + 2) for j in range(17, -1, -1))
r""":math:`c_{17}, \dots, c_0` of :data:`_PHI_HORNER`'s series: truncated after
:math:`c_{17} r^{19}`, the remainder is below :math:`1.1 c_{18} < 8.6\cdot 10^{-18}`
times :math:`r^2`, under :math:`2^{-54}` of :math:`\varphi(r) > 0.26 r^2` for
:math:`|r| \le 1`."""

_EXPM1_HORNER64 = tuple(1.0 / math.factorial(k + 1) for k in range(17, -1, -1))
r""":math:`e^r - 1 = r \sum_k r^k/(k + 1)!`, :math:`k = 17, \dots, 0`: for
:math:`|r| \le 1` the remainder is below :math:`1.1/19! < 10^{-17}` times
:math:`|r| \le 1.6 |e^r - 1|`."""


@_inline
def _horner(r: float, coefficients: tuple[float, ...]) -> float:
    r""":math:`\sum_j c_j r^j` by Horner's scheme, ``coefficients`` highest first."""
    s = 0.0
    for c in coefficients:
        s = c + r * s
    return s


_LN2_HIGH = 2839.0 / 4096.0
_LN2_LOW = 3.1946184945309415e-05
r""":math:`\ln 2` in two parts, the first of 12 significant bits (:func:`_exp_times`)."""

_SMALLEST_NORMAL = 2.0**-1022
"""Below it a float is subnormal, its relative error up to 1 (:math:`2^{-1074}`
absolute): :math:`u_i e^{r_i}` is then taken from P's side (:func:`_bregman64_sums`)."""


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _bregman64_sums(
    a: Any,
    b: Any,
    sides: tuple[int, int],
    shifts: tuple[float, float, float, float, float, float],
    fine: bool,
) -> tuple[float, float, float, float, float]:
    r"""The float64 twin of :func:`_bregman_sums` (two logit rows ``a``, ``b``),
    exact to a few float64 ulps: with :math:`u_i = e^{y_i - m_b}` (``math.exp``, the
    difference's rounding error ``e`` added as :math:`u(1 + e)`), the sums

    .. math:: B = \sum_i u_i \varphi(r_i), \quad N = \sum_i u_i (e^{r_i} - 1), \quad
              U = \sum_i u_i,

    so :math:`D = B/U` and :math:`e^{\epsilon} - 1 = N/U` (the shift of every
    :math:`r_i`, see :func:`_bregman_sums`). ``shifts``: ``m_a, ell_a, m_b, ell_b``
    and the double-double ``c = (m_a + ell_a) - (m_b + ell_b)``; each
    :math:`r_i = ((x_i - y_i)_{hi} - c_{hi}) + ((x_i - y_i)_{lo} - c_{lo})`, the first
    difference exact where it cancels (Sterbenz), so an :math:`r_i` errs by a few
    ulps of itself besides the common shift. :math:`\varphi` and :math:`e^r - 1` by
    their series for :math:`|r| \le 1` (:data:`_PHI_HORNER64`, :data:`_EXPM1_HORNER64`),
    else from :math:`e^r` (``math.exp``): :math:`u(1 + (r - 1)e^r)` for :math:`r < -1`
    (cancelling by at most :math:`1/\varphi(-1) < 3.8`), :math:`u + u e^r (r - 1)` for
    :math:`r > 1`, with :math:`u e^r` from P's side, :math:`e^{x_i - m_a} e^s` (the
    probability times :math:`e^s` for probabilities), :math:`s = (m_a - m_b) - c` in
    double-double (:math:`\ell_b - \ell_a` and the shift's corrections): the rounded
    :math:`r` errs by :math:`2^{-53}|r|`, which ``u * exp(r)`` made a relative error of
    the term (340 ulps of a KL of 1.1e-6 at :math:`r = 424`, issue 13), and it
    overflows or :math:`u` is subnormal (rounded to :math:`2^{-1074}`: 29 % off at
    :math:`e^{-744}`, and :math:`u e^r` with it); where
    that is subnormal too, :math:`u e^r (r - 1)` as :func:`_exp_times` of
    :math:`x_i - m_a` and :math:`r - 1`, times :math:`e^{\ell_b - \ell_a}` (issue 13:
    :math:`\log p = -745` against :math:`\log q = -10^{300}` gave :math:`4.94\cdot
    10^{-24}` for :math:`2.82\cdot 10^{-24}`, and 0 below :math:`e^{-745}`).
    Conventions: :math:`u_i` where
    :math:`x_i = -\infty` (:math:`\varphi(-\infty) = 1`), :math:`+\infty` where only
    :math:`y_i = -\infty`. A side of probabilities (form 0 of ``sides``; its ``m``
    and ``ell`` are 0) gives its entries as they are for :math:`u_i` (Q) and
    :math:`u_i e^{r_i}` (P, times :math:`e^{\ell_b}`), and its logarithms in
    double-double (:func:`_log_dd`), so that :math:`r_i` keeps its few ulps where the
    sides nearly agree; a zero probability stands for :math:`-\infty`. Compiled
    without ``reassoc`` (the ``exp`` calls keep the loop scalar anyway); each sum
    compensated (Neumaier's, :func:`_add`: a plain sum of a thousand like terms erred
    by 1e-14), so it errs by about an ulp of itself (of :math:`\sum_i |u_i (e^{r_i} -
    1)|` for :math:`N`).

    With ``fine``, :math:`u_i`, :math:`r_i` and each term of :math:`B` in double-double
    (:func:`_fine_term`), :math:`B` and :math:`U` summed so, to about :math:`2^{-100}`
    of :math:`B`: for a KL far below :math:`B` (:math:`D = B + \Pi - K`, the masses
    cancelling :math:`B`); the entries where :math:`p_i = 0` are then left out of
    :math:`B` and :math:`N` (their :math:`q_i` would cancel :math:`-K`'s;
    :func:`_mass_difference` leaves them out of :math:`K`). Returns :math:`B` and
    :math:`U` as double-doubles (``hi, lo``; ``lo`` 0 unless ``fine``) and :math:`N`."""
    form_a, form_b = sides
    m_a, ell_a, m_b, ell_b, c_hi, c_lo = shifts
    inf = math.inf
    total = total_c = nu = nu_c = mass = mass_c = 0.0
    infinite = False
    # e^s, s = (m_a - m_b) - c: u_i e^{r_i} = e^{(log x_i - m_a) + s} for r_i > 1
    s_hi, s_lo = _two_diff(m_a, m_b)
    s_hi, s_lo = _dd_add(s_hi, s_lo, -c_hi)
    s_rest = s_lo - c_lo
    if not abs(s_rest) <= 2.0**-26:
        # c_lo as large as s_hi (m_b - m_a past 2^53 m_a: c_hi = m_a - m_b and s_hi is
        # the low part of that difference): s renormalised, not e^{s_hi} times a
        # "1 + s_lo" far from 1 (hostile18: inf, and the far scale below not shifted)
        s_hi, s_rest = _two_sum(s_hi, s_rest)
    p_scale = math.exp(s_hi) * (1.0 + s_rest)
    # past 2^1000 the shifts' double-doubles lose their low parts (a far gap, logits
    # near 1e308: 9.3e307 for 1.23e308): u e^r as before, e^r or e^{ell_b - ell_a}
    far = not (abs(m_a) < 2.0**1000 and abs(m_b) < 2.0**1000 and p_scale < inf)
    # P's probability to u e^r there: e^s wherever it is finite, so that it carries the
    # shift c of every r_i as the near terms do (_kl_shifted's correction of that shift
    # by e^{-epsilon} holds for every term only then: hostile18, a far row's KL was
    # 7 % off where m_a (1.1e16) made c_lo round), else e^{ell_b - ell_a}
    scale_far = p_scale if 0.0 < p_scale < inf else math.exp(ell_b - ell_a)
    # The entries' logarithms (double-double for probabilities), then the series of
    # every r_i with |r_i| <= 1, each a row at a time (vectorised); the arrays unpacked
    # here (taken from a tuple in the loop, each entry cost a reference count's
    # increment and decrement).
    log_a_hi, log_a_lo = _entry_logs(a, form_a)
    log_b_hi, log_b_lo = _entry_logs(b, form_b)
    phi, expm1 = np.empty(a.shape[0]), np.empty(a.shape[0])
    _bregman_series_row(log_a_hi, log_a_lo, log_b_hi, log_b_lo, c_hi, c_lo, phi, expm1)
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        log_y, log_y_lo = log_b_hi[i], log_b_lo[i]
        x_dead = x == 0.0 if form_a == 0 else x == -inf
        if log_y == -inf:
            infinite = infinite or not x_dead
            continue
        u_lo = 0.0
        if form_b == 0:
            u = y
        else:
            sy, sy_lo = _two_diff(y, m_b)
            if fine:
                u, u_lo = _exp_dd(sy)
                u, u_lo = _quick_two_sum(u, u_lo + u * (sy_lo * (1.0 + 0.5 * sy_lo)))
            else:
                u = math.exp(sy) * (1.0 + sy_lo)
        if fine:
            mass, mass_c = _dd_sum(mass, mass_c, u, u_lo)
        else:
            mass, mass_c = _add(mass, mass_c, u)
        if x_dead:
            if not fine:  # fine: left out, and out of K (_mass_difference)
                total, total_c = _add(total, total_c, u)
                nu, nu_c = _add(nu, nu_c, -u)
            continue
        log_x, log_x_lo = log_a_hi[i], log_a_lo[i]
        d, d_lo = _two_diff(log_x, log_y)
        d_lo += log_x_lo - log_y_lo
        if fine:
            r, e = _two_diff(d, c_hi)
            r, r_lo = _two_sum(r, (d_lo - c_lo) + e)
            term, term_lo, change = _fine_term(u, u_lo, r, r_lo)
            if term == term:
                total, total_c = _dd_sum(total, total_c, term, term_lo)
                nu, nu_c = _add(nu, nu_c, change)
                continue
        r = _minus(d, c_hi) + _minus(d_lo, c_lo)
        if abs(r) <= 1.0:  # (the series of _bregman_series_row, of this r)
            term = u * phi[i]
            change = u * expm1[i]
        elif r < 0.0:
            er = math.exp(r)
            term = u * (1.0 + (r - 1.0) * er)
            change = u * (er - 1.0)
        elif far:
            pu = u * math.exp(r)
            if not (u >= _SMALLEST_NORMAL and pu < inf):
                if form_a == 0:
                    pu = x * scale_far
                else:
                    sx, sx_lo = _two_diff(x, m_a)
                    pu = math.exp(sx) * (1.0 + sx_lo) * scale_far
            term = u + pu * (r - 1.0)
            change = pu - u
            if pu < _SMALLEST_NORMAL:  # (from P's side) rounded: the product scaled
                if form_a == 0:
                    term = u + (x * (r - 1.0)) * scale_far
                else:
                    sx, sx_lo = _two_diff(x, m_a)
                    scaled = _exp_times(sx, (r - 1.0) * (1.0 + sx_lo))
                    term = u + scaled * scale_far
        else:  # u e^r from P's side (e^r had erred by u|r|: 340 ulps at r = 424)
            sx, sx_lo = (x, 0.0) if form_a == 0 else _two_diff(x, m_a)
            pu = (x if form_a == 0 else math.exp(sx) * (1.0 + sx_lo)) * p_scale
            term = u + pu * (r - 1.0)
            change = pu - u
            if pu < _SMALLEST_NORMAL:  # rounded: the product scaled
                if form_a == 0:
                    term = u + (x * (r - 1.0)) * p_scale
                else:
                    scaled = _exp_times(sx, (r - 1.0) * (1.0 + sx_lo))
                    term = u + scaled * p_scale
        if fine:
            total, total_c = _dd_sum(total, total_c, term, 0.0)
        else:
            total, total_c = _add(total, total_c, term)
        nu, nu_c = _add(nu, nu_c, change)
    if infinite:
        return inf, 0.0, nu + nu_c, mass + mass_c, 0.0
    if fine:
        return total, total_c, nu + nu_c, mass, mass_c
    return total + total_c, 0.0, nu + nu_c, mass + mass_c, 0.0


@_inline
def _dd_sum(hi: float, lo: float, x_hi: float, x_lo: float) -> tuple[float, float]:
    """The double-double ``hi + lo`` plus ``x_hi + x_lo``, to about :math:`2^{-105}` of
    the larger (an infinite ``hi`` stays, ``lo`` then NaN)."""
    s, e = _two_sum(hi, x_hi)
    return _quick_two_sum(s, e + (lo + x_lo))


@_contract
def _fine_term(u: float, u_lo: float, r: float, r_lo: float) -> tuple[float, float, float]:
    r"""The term :math:`u\varphi(r)` of :func:`_bregman64_sums` as a double-double, from
    :math:`u` and :math:`r` as double-doubles, to about :math:`2^{-100}` of itself, and
    :math:`u(e^r - 1)` as a float: :math:`\varphi(r) = r^2 \sum_j c_j r^j`
    (:data:`_PHI_HORNER_DD`, Horner's scheme in double-double) for :math:`|r| \le 1`,
    :math:`1 + (r - 1)e^r` with :math:`e^r` by :func:`_exp_dd` (times :math:`1 +
    r_{lo}`) otherwise, :math:`u + u e^r (r - 1)` for :math:`r > 1`. NaN where
    :math:`u e^r` overflows or :math:`u` is subnormal (the caller's float term, from
    P's side, then stands)."""
    if abs(r) <= 1.0:
        a_hi = a_lo = 0.0
        if abs(r) <= 2.0**-12:
            for c_hi, c_lo in _PHI_HORNER_DD_SHORT:
                a_hi, a_lo = _dd_mul_add(c_hi, c_lo, r, r_lo, a_hi, a_lo)
        else:
            for c_hi, c_lo in _PHI_HORNER_DD:
                a_hi, a_lo = _dd_mul_add(c_hi, c_lo, r, r_lo, a_hi, a_lo)
        square, square_lo = _two_prod(r, r)
        square, square_lo = _quick_two_sum(square, square_lo + 2.0 * r * r_lo)
        phi, phi_lo = _dd_mul_add(0.0, 0.0, square, square_lo, a_hi, a_lo)
        term, term_lo = _dd_mul_add(0.0, 0.0, u, u_lo, phi, phi_lo)
        return term, term_lo, u * (r * _horner(r, _EXPM1_HORNER64))
    er, er_lo = _exp_dd(r)
    er, er_lo = _quick_two_sum(er, er_lo + er * r_lo)
    less, less_lo = _two_sum(r, -1.0)
    less_lo += r_lo
    if r < 0.0:
        inner, inner_lo = _dd_mul_add(1.0, 0.0, less, less_lo, er, er_lo)
        term, term_lo = _dd_mul_add(0.0, 0.0, u, u_lo, inner, inner_lo)
        return term, term_lo, u * (er - 1.0)
    pu, pu_lo = _dd_mul_add(0.0, 0.0, u, u_lo, er, er_lo)
    if not (u >= _SMALLEST_NORMAL and abs(pu) < math.inf):
        return math.nan, math.nan, math.nan
    term, term_lo = _dd_mul_add(u, u_lo, pu, pu_lo, less, less_lo)
    return term, term_lo, pu - u


@_once
def _entry_logs(row: Any, form: int) -> tuple[Any, Any]:
    """:func:`_log_pair` of a row's entries, ``hi`` and ``lo`` as two arrays: by
    :func:`_log_dd_row` for probabilities (form 0), else the entries themselves (as
    float64) and 0."""
    values = _float64_copy(row)
    if form != 0:
        return values, np.zeros(row.shape[0])
    hi, lo = np.empty(row.shape[0]), np.empty(row.shape[0])
    _log_dd_row(values, hi, lo)
    return hi, lo


@_once
def _float64_copy(row: Any) -> Any:
    """A C-contiguous float64 copy of a row: what the vectorised row loops take (one
    compiled loop for rows of either dtype and any stride, read with plain vector
    loads; each variant compiled had cost about a second of the first call)."""
    out = np.empty(row.shape[0])
    for i in range(row.shape[0]):
        out[i] = np.float64(row[i])
    return out


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _bregman_series_row(
    a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any, c_hi: float, c_lo: float, phi: Any, expm1: Any
) -> None:
    r""":func:`_bregman64_sums`' :math:`r_i` of every entry, from the sides' logarithms
    (P's ``hi``, ``lo``, Q's, as :func:`_entry_logs` gives them) and the
    double-double shift ``c_hi + c_lo``, and its series :math:`\varphi(r_i)`
    (:data:`_PHI_HORNER64`) and :math:`(e^{r_i} - 1)` (:data:`_EXPM1_HORNER64`) into
    ``phi[i]`` and ``expm1[i]``: the same operations as the sums' loop, bit for bit, in
    one branch-free loop that LLVM vectorises (the two Horner chains of 18 steps,
    latency-bound entry by entry, were most of that loop's time). Meaningful where
    :math:`|r_i| \le 1` only (the loop's other entries take their other forms)."""
    prefer_wide_vectors()
    n = phi.shape[0]
    r = np.empty(n)
    for i in range(n):
        d, d_lo = _two_diff(a_hi[i], b_hi[i])
        d_lo += a_lo[i] - b_lo[i]
        r[i] = _minus(d, c_hi) + _minus(d_lo, c_lo)
        phi[i] = expm1[i] = 0.0
    # Horner's steps (:func:`_horner`'s, in its order) one coefficient at a time over
    # the row: a loop of 18 steps inside the entries' loop was not vectorised
    for k in range(len(_PHI_HORNER64)):
        c_phi, c_expm1 = _PHI_HORNER64[k], _EXPM1_HORNER64[k]
        for i in range(n):
            phi[i] = c_phi + r[i] * phi[i]
            expm1[i] = c_expm1 + r[i] * expm1[i]
    for i in range(n):
        phi[i] = r[i] * r[i] * phi[i]
        expm1[i] = r[i] * expm1[i]


@_contract
def _log_pair(x: float, form: int) -> tuple[float, float]:
    """An entry's logarithm as a double-double: ``log x`` by :func:`_log_dd` for a
    probability (form 0; ``-inf`` at 0), the entry itself (low part 0) otherwise."""
    if form != 0:
        return x, 0.0
    if x == 0.0:
        return -math.inf, 0.0
    return _log_dd(x)


@_inline
def _log_dd(x: float) -> tuple[float, float]:
    r""":math:`\log x` for :math:`0 < x \le 1` as a double-double ``hi + lo``, about
    :math:`2^{-100}` of :math:`|\log x|` (checked through the KL tests of probability
    sides): ``hi`` the rounded ``math.log`` (within an ulp), :math:`E = e^{hi}` by
    :func:`_exp_dd`, then :math:`\log x - hi = \log(1 + \rho) = \rho - \rho^2/2 +
    \rho^3/3`, :math:`\rho = (x - E)/E`, :math:`|\rho| \le 2^{-52}|hi| < 1.7\cdot
    10^{-13}` (:math:`x - E_{hi}` exact: Sterbenz), the next term below
    :math:`10^{-51}`. Outside (1, ...] ``lo`` is 0 (probabilities above 1 fail
    validation)."""
    hi = math.log(x)
    if not (-745.0 < hi <= 0.0):
        return hi, 0.0
    e_hi, e_lo = _exp_dd(hi)
    return hi, _log_dd_low(x, e_hi, e_lo)


@_inline
def _log_dd_low(x: float, e_hi: float, e_lo: float) -> float:
    r""":func:`_log_dd`'s ``lo``: :math:`\log(1 + \rho)`, :math:`\rho = (x - E)/E`,
    from :math:`E = e^{hi}` as the double-double ``e_hi + e_lo``."""
    rho = ((x - e_hi) - e_lo) / e_hi
    return rho * (1.0 + rho * (-0.5 + rho / 3.0))


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _log_dd_row(row: Any, hi: Any, lo: Any) -> None:
    r""":func:`_log_pair` of every entry of a float64 row of probabilities (form 0)
    into ``hi[i]``, ``lo[i]``: the ``math.log`` calls first (a loop of their own), then
    :math:`e^{hi}` by :func:`_exp_dd_row` and :func:`_log_dd`'s correction in a
    branch-free loop that LLVM vectorises (``lo`` 0 outside :math:`(-745, 0]`), 9 ns an
    entry against the scalar :func:`_log_dd`'s 62. ``hi`` is that of :func:`_log_dd`
    bit for bit, ``lo`` within an ulp of its (about :math:`2^{-105}` of ``hi``: LLVM
    contracts the correction's products into FMAs differently in the two loops), far
    inside :func:`_log_dd`'s :math:`2^{-100}`."""
    n = row.shape[0]
    for i in range(n):
        x = row[i]
        hi[i] = -math.inf if x == 0.0 else math.log(x)
    e_hi, e_lo = np.empty(n), np.empty(n)
    _exp_dd_row(hi, 0.0, e_hi, e_lo)
    prefer_wide_vectors()
    for i in range(n):
        low = _log_dd_low(row[i], e_hi[i], e_lo[i])
        lo[i] = low if -745.0 < hi[i] <= 0.0 else 0.0


@intrinsic
def _fma(typingctx: Any, x: Any, y: Any, z: Any) -> Any:
    """:math:`xy + z` rounded once (LLVM's ``llvm.fma.f64``: the FMA instruction, or
    libm's correctly rounded ``fma`` where the CPU has none)."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        return call_intrinsic(builder, "llvm.fma.f64", ir.DoubleType(), *args)

    return signature, codegen


@_inline
def _two_prod(x: float, y: float) -> tuple[float, float]:
    """``x * y`` as ``p + e`` exactly (the error by one FMA: Dekker's splitting took
    fifteen operations, a third of :func:`_exp_dd`'s time), where ``e`` does not
    underflow."""
    p = x * y
    return p, _fma(x, y, -p)


@_inline
def _quick_two_sum(x: float, y: float) -> tuple[float, float]:
    """``x + y`` as ``s + e`` exactly where ``|x| >= |y|`` (or ``x`` is 0)."""
    s = x + y
    return s, y - (s - x)


@_inline
def _dd_mul_add(
    c_hi: float, c_lo: float, t_hi: float, t_lo: float, a_hi: float, a_lo: float
) -> tuple[float, float]:
    """The double-double ``c + t a`` (each a pair ``hi, lo``), to about :math:`2^{-104}`
    of its terms. For kernels compiled without ``reassoc`` only."""
    p, e = _two_prod(t_hi, a_hi)
    e += t_hi * a_lo + t_lo * a_hi
    p, e = _quick_two_sum(p, e)
    s, f = _two_diff(c_hi, -p)
    return _quick_two_sum(s, f + (e + c_lo))


def _double_double(value: Fraction) -> tuple[float, float]:
    """``value`` as the pair of floats ``hi + lo`` nearest to it."""
    hi = float(value)
    return hi, float(value - Fraction(hi))


_PHI_HORNER_DD = tuple(
    _double_double(Fraction(j + 1, math.factorial(j + 2))) for j in range(29, -1, -1)
)
r""":data:`_PHI_HORNER`'s coefficients :math:`c_{29}, \dots, c_0` as double-doubles: the
remainder is below :math:`1.1 c_{30} < 2^{-108}` of :math:`\varphi(r)/r^2 > 0.26` for
:math:`|r| \le 1`."""

_PHI_HORNER_DD_SHORT = _PHI_HORNER_DD[-9:]
r""":math:`c_8, \dots, c_0` of :data:`_PHI_HORNER_DD`: enough for :math:`|r| \le
2^{-12}` (remainder below :math:`c_9 2^{-108} < 2^{-124}`)."""


def _ln2_parts() -> tuple[float, float, float]:
    r""":math:`\ln 2 = L_1 + L_2 + L_3` to about :math:`2^{-140}`, :math:`L_1` and
    :math:`L_2` with 32 significant bits (so that :math:`k L_1`, :math:`k L_2` are exact
    for an integer :math:`|k| < 2^{21}`)."""
    ln2 = Fraction("0.69314718055994530941723212145817656807550013436025525412068")
    l1 = Fraction(math.floor(ln2 * 2**32), 2**32)
    l2 = Fraction(math.floor((ln2 - l1) * 2**64), 2**64)
    return float(l1), float(l2), float(ln2 - l1 - l2)


_EXP_DD_STEPS = 64
r""":func:`_exp_dd` reduces :math:`y` by multiples of :math:`\ln 2/64`."""

_LN2_STEP_PARTS = tuple(part / _EXP_DD_STEPS for part in _ln2_parts())
r""":math:`\ln 2/64` as :func:`_ln2_parts` (divided by a power of 2, exactly): each part
times an integer below :math:`2^{21}` exact."""


def _exp2_steps() -> tuple[np.ndarray, np.ndarray]:
    r""":math:`2^{j/64}`, :math:`j = 0, \dots, 63`, as double-doubles (the ``hi`` and the
    ``lo`` parts), from 60 significant digits (``decimal``)."""
    with decimal.localcontext() as context:
        context.prec = 60
        values = [decimal.Decimal(2) ** (decimal.Decimal(j) / _EXP_DD_STEPS) for j in range(64)]
    pairs = [_double_double(Fraction(v)) for v in values]
    return np.array([hi for hi, _ in pairs]), np.array([lo for _, lo in pairs])


_EXP2_STEPS_HI, _EXP2_STEPS_LO = _exp2_steps()

_EXP_DD_TAYLOR = tuple(_double_double(Fraction(1, math.factorial(n))) for n in range(5, 0, -1))
r""":math:`1/n!` as double-doubles, :math:`n = 5, \dots, 1` (:func:`_exp_dd`)."""

_EXP_DD_TAIL = tuple(1.0 / math.factorial(n) for n in range(11, 5, -1))
r""":math:`1/n!`, :math:`n = 11, \dots, 6` (:func:`_exp_dd`, in plain floats)."""


@_inline
def _scaled(x: float, k: int) -> float:
    """:math:`x 2^k`: by ``2.0**k`` (a few multiplications) where that is normal, else
    ``math.ldexp`` (compiled, ``2.0**k`` is ``1/2^-k``: 0 below :math:`2^{-1023}`, and
    :func:`_exp_dd`'s subnormal results were 0, :func:`_log_dd`'s quotient by them
    infinite)."""
    if k >= -1022:
        return x * 2.0**k
    return math.ldexp(x, k)


@_contract
def _exp_dd(y: float) -> tuple[float, float]:
    r""":math:`e^y` for :math:`-745 < y \le 0` as a double-double ``hi + lo``, relative
    error about :math:`2^{-104}` (tested against mpmath): :math:`y = (64k + j)\ln 2/64
    + t`, :math:`0 \le j < 64`, :math:`|t| \le \ln 2/128 < 0.0055`, with :math:`t` a
    double-double (:data:`_LN2_STEP_PARTS`: the first two products and the first
    difference exact), :math:`e^y = 2^k\, 2^{j/64} e^t` (:data:`_EXP2_STEPS_HI`,
    ``_LO``), :math:`e^t - 1 = t \sum_{n \ge 1} t^{n-1}/n!` by Horner's scheme, the
    terms :math:`n \le 5` in double-double, the rest (below :math:`3.6\cdot 10^{-17}`)
    in floats, the series cut after :math:`n = 11` (remainder below
    :math:`3\cdot 10^{-33}`). (The reduction by :math:`\ln 2` alone, :math:`|t| \le
    0.35`, took thirteen double-double steps; the table leaves six and one product.)
    Where :math:`2^k` scales ``lo`` below the normal range its bits are lost (terms
    under :math:`10^{-292}`). For kernels compiled without ``reassoc`` only."""
    hi, lo, k = _exp_dd_parts(y)
    return _scaled(hi, k), _scaled(lo, k)


@_inline
def _exp_dd_parts(y: float) -> tuple[float, float, int]:
    r""":func:`_exp_dd` before its scaling: ``hi``, ``lo`` and ``k`` with
    :math:`e^y = 2^k(hi + lo)`, :math:`hi \in [2^{-1/128}, 2^{1/128}]`."""
    l1, l2, l3 = _LN2_STEP_PARTS
    n = math.floor(y * (_EXP_DD_STEPS / math.log(2.0)) + 0.5)
    k, j = n >> 6, n & 63
    t_hi, t_lo = _two_diff(y - n * l1, n * l2)
    t_hi, t_lo = _quick_two_sum(t_hi, t_lo - n * l3)
    tail = 0.0
    for c in _EXP_DD_TAIL:
        tail = c + t_hi * tail
    a_hi, a_lo = tail, 0.0
    for c_hi, c_lo in _EXP_DD_TAYLOR:
        a_hi, a_lo = _dd_mul_add(c_hi, c_lo, t_hi, t_lo, a_hi, a_lo)
    m_hi, m_lo = _dd_mul_add(0.0, 0.0, t_hi, t_lo, a_hi, a_lo)  # e^t - 1
    step_hi, step_lo = _EXP2_STEPS_HI[j], _EXP2_STEPS_LO[j]
    hi, lo = _dd_mul_add(step_hi, step_lo, step_hi, step_lo, m_hi, m_lo)  # 2^(j/64) e^t
    return hi, lo, k


@_once
def _exp_dd_of_row(row: Any, shift: float, wanted: bool) -> tuple[Any, Any]:
    """:func:`_exp_dd_row` of ``row`` and ``shift`` into two new arrays (``hi``,
    ``lo``) if ``wanted``, else two empty arrays."""
    n = row.shape[0] if wanted else 0
    hi, lo = np.empty(n), np.empty(n)
    if wanted:
        _exp_dd_row(_float64_copy(row), shift, hi, lo)
    return hi, lo


_DD_ROW_FLOOR = -745.0
r"""The least argument of :func:`_exp_dd` (:math:`e^{-745}` is the least subnormal,
rounded): :func:`_exp_dd_row` clamps its arguments into :math:`[-745, 0]`."""


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _exp_dd_row(row: Any, shift: float, hi: Any, lo: Any) -> None:
    r""":func:`_exp_dd` of every ``row[i] - shift`` (a float64 row; the difference
    rounded) into
    ``hi[i]``, ``lo[i]``, bit for bit, for the arguments in :math:`(-745, 0]`; others
    are first clamped into :math:`[-745, 0]` (NaN to :math:`-745`), and their results
    are for the caller to ignore. One branch-free loop, which LLVM vectorises (8
    lanes with AVX-512): 6.7 ns an entry against 52 ns for the scalar calls, whose
    dependent double-double steps left the core waiting (issue 13: the exact KL sums
    spent most of their time there). The power of two is applied as two products,
    :math:`2^{k + 600}` (exact: :math:`k \ge -1076`) then :math:`2^{-600}`, the one
    rounding of :func:`_scaled`'s ``math.ldexp`` where the result is subnormal."""
    prefer_wide_vectors()
    for i in range(row.shape[0]):
        hi[i], lo[i] = _exp_dd_clamped(row[i] - shift)


@_inline
def _exp_dd_clamped(y: float) -> tuple[float, float]:
    """:func:`_exp_dd` of ``y`` clamped into :math:`[-745, 0]` (NaN to :math:`-745`),
    without branches (:func:`_exp_dd_row`)."""
    y = y if y > _DD_ROW_FLOOR else _DD_ROW_FLOOR
    y = y if y < 0.0 else 0.0
    hi, lo, k = _exp_dd_parts(y)
    up = bits_to_float64((k + 1623) << 52)  # 2^(k + 600), a normal float
    down = 2.0**-600
    return (hi * up) * down, (lo * up) * down


def _triple_double(value: Fraction) -> tuple[float, float, float]:
    """``value`` as three floats ``hi + mid + lo``, each the nearest to what is left."""
    hi = float(value)
    mid = float(value - Fraction(hi))
    return hi, mid, float(value - Fraction(hi) - Fraction(mid))


def _ln2_step_parts5() -> tuple[float, ...]:
    r""":math:`\ln 2/64` as five floats, the first four of 32 significant bits (each
    times an integer below :math:`2^{21}` exact), to about :math:`2^{-190}`."""
    ln2 = Fraction("0.693147180559945309417232121458176568075500134360255254120680009493393621969")
    parts = []
    rest = ln2 / _EXP_DD_STEPS
    scale = 2**38  # ln2/64 < 2^-6: 32 bits from 2^-6 down
    for _ in range(4):
        part = Fraction(math.floor(rest * scale), scale)
        parts.append(float(part))
        rest -= part
        scale *= 2**32
    parts.append(float(rest))
    return tuple(parts)


_LN2_STEP_PARTS5 = _ln2_step_parts5()


def _exp2_steps_td() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`2^{j/64}`, :math:`j = 0, \dots, 63`, as triple-doubles, from 80 digits."""
    with decimal.localcontext() as context:
        context.prec = 80
        values = [decimal.Decimal(2) ** (decimal.Decimal(j) / _EXP_DD_STEPS) for j in range(64)]
    parts = [_triple_double(Fraction(v)) for v in values]
    return tuple(np.array([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


_EXP2_STEPS_TD = _exp2_steps_td()

_EXP_TD_TAYLOR = tuple(_triple_double(Fraction(1, math.factorial(n))) for n in range(5, 0, -1))
r""":math:`1/n!`, :math:`n = 5, \dots, 1`, as triple-doubles (:func:`_exp_td`)."""

_EXP_TD_MIDDLE = tuple(_double_double(Fraction(1, math.factorial(n))) for n in range(11, 5, -1))
r""":math:`1/n!`, :math:`n = 11, \dots, 6`, as double-doubles (:func:`_exp_td`)."""

_EXP_TD_TAIL = tuple(1.0 / math.factorial(n) for n in range(17, 11, -1))
r""":math:`1/n!`, :math:`n = 17, \dots, 12` (:func:`_exp_td`, in plain floats)."""


@_inline
def _two_sum(x: float, y: float) -> tuple[float, float]:
    """``x + y`` as ``s + e`` exactly (:func:`_two_diff`)."""
    return _two_diff(x, -y)


@_inline
def _td_renormalise(hi: float, mid: float, lo: float) -> tuple[float, float, float]:
    """``hi + mid + lo`` (``|mid|``, ``|lo|`` at most a few ulps of the part above)
    as three floats, each at most half an ulp of the one above."""
    mid, lo = _two_sum(mid, lo)
    hi, mid = _two_sum(hi, mid)
    mid, lo = _two_sum(mid, lo)
    return hi, mid, lo


@_inline
def _td_mul_add(
    c: tuple[float, float, float], t: tuple[float, float, float], a: tuple[float, float, float]
) -> tuple[float, float, float]:
    r"""The triple-double :math:`c + t a`, to about :math:`2^{-155}` of
    :math:`|c| + |ta|`: the products of parts down to :math:`2^{-106}` of
    :math:`|ta|` exact (FMA), those below in floats, the products of the lowest parts
    (below :math:`2^{-159}`) left out. For kernels compiled without ``reassoc`` only."""
    c0, c1, c2 = c
    t0, t1, t2 = t
    a0, a1, a2 = a
    p00, e00 = _two_prod(t0, a0)
    p01, e01 = _two_prod(t0, a1)
    p10, e10 = _two_prod(t1, a0)
    low = (e01 + e10) + (t0 * a2 + t1 * a1 + t2 * a0)
    hi, x1 = _two_sum(c0, p00)
    m1, x2 = _two_sum(c1, e00)
    m2, x3 = _two_sum(p01, p10)
    mid, x4 = _two_sum(m1, m2)
    mid, x5 = _two_sum(mid, x1)
    lo = (c2 + low) + ((x2 + x3) + (x4 + x5))
    return _td_renormalise(hi, mid, lo)


@_inline
def _td_add(
    a: tuple[float, float, float], b: tuple[float, float, float]
) -> tuple[float, float, float]:
    """The triple-double ``a + b`` of two non-negative ones, to about :math:`2^{-155}`
    of the sum."""
    hi, x1 = _two_sum(a[0], b[0])
    mid, x2 = _two_sum(a[1], b[1])
    mid, x3 = _two_sum(mid, x1)
    return _td_renormalise(hi, mid, (a[2] + b[2]) + (x2 + x3))


@_inline
def _exp_td(y: float) -> tuple[float, float, float]:
    """:func:`_exp_td_scaled` with its power of two applied."""
    (hi, mid, lo), k = _exp_td_scaled(y)
    return _scaled(hi, k), _scaled(mid, k), _scaled(lo, k)


@_inline
def _exp_td_scaled(y: float) -> tuple[tuple[float, float, float], int]:
    r""":math:`e^y = 2^k (hi + mid + lo)` for :math:`-23000 < y \le 0` as a triple-double
    in :math:`[2^{-1/128}, 2)` and the integer :math:`k`, relative error about
    :math:`2^{-150}` (measured against mpmath: :math:`2^{-159}` for results above
    :math:`10^{-260}`), as :func:`_exp_dd`: :math:`y = (64k + j)\ln 2/64 + t`,
    :math:`t` a triple-double (:data:`_LN2_STEP_PARTS5`: the products by the 32-bit
    parts exact, the first difference exact), :math:`e^y = 2^k\,
    2^{j/64}(1 + (e^t - 1))` (:data:`_EXP2_STEPS_TD`), :math:`e^t - 1 = t\sum_{n \ge 1}
    t^{n-1}/n!` by Horner's scheme: the terms :math:`n \le 5` in triple-double, those
    up to :math:`n = 11` (below :math:`2^{-55}`) in double-double, the rest (below
    :math:`2^{-115}`) in floats, cut after :math:`n = 17` (remainder below
    :math:`2^{-180}`). Where :math:`2^k` scales the low parts below the normal range
    their bits are lost (terms under :math:`10^{-290}`): unscaled, none are (the
    product by a tiny :math:`e^y` can be taken before the scaling). For kernels
    compiled without ``reassoc`` only."""
    l1, l2, l3, l4, l5 = _LN2_STEP_PARTS5
    n = math.floor(y * (_EXP_DD_STEPS / math.log(2.0)) + 0.5)
    k, j = n >> 6, n & 63
    # t = y - n ln2/64: the products n*l1..n*l4 exact, y - n*l1 exact (Sterbenz); their
    # sum exact as t0 + e0 + ... + e3 (two TwoSum passes), then to three parts.
    s, e3 = _two_sum(-n * l4, -n * l5)
    s, e2 = _two_sum(-n * l3, s)
    s, e1 = _two_sum(-n * l2, s)
    t0, e0 = _two_sum(y - n * l1, s)
    s, f2 = _two_sum(e2, e3)
    s, f1 = _two_sum(e1, s)
    s, f0 = _two_sum(e0, s)
    t = _td_renormalise(t0, s, f0 + (f1 + f2))
    tail = 0.0
    for c in _EXP_TD_TAIL:
        tail = c + t[0] * tail
    a_hi, a_lo = tail, 0.0
    for c_hi, c_lo in _EXP_TD_MIDDLE:
        a_hi, a_lo = _dd_mul_add(c_hi, c_lo, t[0], t[1], a_hi, a_lo)
    series: tuple[float, float, float] = (a_hi, a_lo, 0.0)
    for coefficient in _EXP_TD_TAYLOR:
        series = _td_mul_add(coefficient, t, series)
    m = _td_mul_add((0.0, 0.0, 0.0), t, series)  # e^t - 1
    hi_steps, mid_steps, lo_steps = _EXP2_STEPS_TD
    step = (hi_steps[j], mid_steps[j], lo_steps[j])
    return _td_mul_add(step, step, m), k  # 2^(j/64) e^t


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _masses(
    row: Any, form: int, shift: float, precision: int, other: Any, other_form: int
) -> tuple[tuple[float, float, float], tuple[float, float, float], bool]:
    r"""The mass of a row in triple-double: :math:`\sum_i e^{v_i - \mathrm{shift}}`
    (logits, form 2, ``shift`` their maximum; log-probabilities, form 1, ``shift`` 0),
    each term by ``math.exp`` (``precision`` 0, an ulp), :func:`_exp_dd` (1, about
    :math:`2^{-104}`; :func:`_exp_dd_row` of the row, before the sum) or
    :func:`_exp_td` (2, about :math:`2^{-155}`), the difference's rounding error
    :math:`e` taken as :math:`e^{h}(1 + e + e^2/2)`; :math:`\sum_i x_i` for
    probabilities (form 0), exact to about :math:`2^{-155}`. Also the mass over the
    entries where the ``other`` row (in ``other_form``) is not zero (not ``-inf``),
    and whether the row could be summed (not: a negative probability, a positive
    log-probability, a NaN)."""
    total = live = (0.0, 0.0, 0.0)
    apart = False
    e: tuple[float, float, float]
    exp_hi, exp_lo = _exp_dd_of_row(row, shift, form != 0 and precision == 1)
    for i in range(row.shape[0]):
        v = float(np.float64(row[i]))
        if form == 0:
            if not v >= 0.0:
                return total, live, False
            e = (v, 0.0, 0.0)
        else:
            if not (v <= 0.0 or form == 2) or v != v:
                return total, live, False
            h, h_lo = _two_diff(v, shift)
            if h <= -745.0:
                continue
            if precision == 2:
                e = _exp_td(h)
            elif precision == 1:
                e = (exp_hi[i], exp_lo[i], 0.0)  # _exp_dd(h)
            else:
                e = (math.exp(h), 0.0, 0.0)
            if h_lo != 0.0:
                e = _td_mul_add(e, e, (h_lo * (1.0 + 0.5 * h_lo), 0.0, 0.0))
        # ``live`` is ``total`` until the first zero of ``other`` (then apart): the
        # same additions in the same order as a sum of its own, half the work where
        # ``other`` has no zero
        w = np.float64(other[i])
        dead = w == 0.0 if other_form == 0 else w == -math.inf
        if dead and not apart:
            live, apart = total, True
        elif apart and not dead:
            live = _td_add(live, e)
        total = _td_add(total, e)
    return total, (live if apart else total), True


@_inline
def _td_to_dd(x: tuple[float, float, float]) -> tuple[float, float]:
    """A triple-double rounded to a double-double."""
    hi, mid, lo = _td_renormalise(x[0], x[1], x[2])
    return _quick_two_sum(hi, mid + lo)


@_inline
def _td_neg(x: tuple[float, float, float]) -> tuple[float, float, float]:
    """``-x``."""
    return -x[0], -x[1], -x[2]


@_once
def _mass_difference(
    a: Any, b: Any, sides: tuple[int, int], tops: tuple[float, float], precision: int, fine: bool
) -> tuple[tuple[float, float], float, bool]:
    r""":math:`\Pi - K` (P's and Q's masses; 1 for logits) as a double-double, to about
    :math:`2^{-150}` of the masses at ``precision`` 2, :math:`\Pi`, and whether the
    masses could be summed (:func:`_masses`; ``tops``: the logit sides' maxima).

    With ``fine`` (:func:`_bregman64_sums` ``fine``, which leaves out the entries
    where :math:`p_i = 0`), :math:`K` is Q's mass where :math:`p_i > 0` only,
    :math:`U_{live}/U` for logits (:math:`\Pi - U_{live}/U = (\Pi U - U_{live})/U`, the
    numerator in triple-double): otherwise the Bregman sum's terms :math:`q_i` there
    and :math:`-K` cancel (zeros in an unnormalised P: :math:`\Pi < 1`)."""
    form_a, form_b = sides
    one = (1.0, 0.0, 0.0)
    p_mass = one
    if form_a != 2:
        p_mass, _, ok = _masses(a, form_a, 0.0, precision, a, form_a)
        if not ok:
            return (math.nan, math.nan), math.nan, False
    if form_b != 2:
        q_all, q_live, ok = _masses(b, form_b, 0.0, precision, a, form_a)
        if not ok:
            return (math.nan, math.nan), math.nan, False
        difference = _td_add(p_mass, _td_neg(q_live if fine else q_all))
        return _td_to_dd(difference), p_mass[0], True
    if fine:  # (form_b is 2 here: a run-time 2, so that one _masses is compiled)
        u_all, u_live, ok = _masses(b, form_b, tops[1], precision, a, form_a)
        if ok and u_live != u_all:
            numerator = _td_to_dd(_td_mul_add(_td_neg(u_live), p_mass, u_all))
            hi, lo = _td_to_dd(u_all)
            return _dd_divide(numerator[0], numerator[1], hi, lo), p_mass[0], True
    return _td_to_dd(_td_add(p_mass, _td_neg(one))), p_mass[0], True


_KL64_TOLERANCE = 2.0**-47
r"""The fast float64 KL (:func:`_kl64_sums`) stands where its error bound is at most
this fraction of it (4 ulps where the KL is a power of 2), else the exact sums run."""

_U = 2.0**-53
"""The unit roundoff of float64."""


@_inline
def _add_select(total: float, compensation: float, x: float) -> tuple[float, float]:
    """:func:`_add` without branches (a select: Neumaier's test is unpredictable on
    random terms), and without its guard: a non-finite total makes the compensation
    NaN, which the caller checks once at the end."""
    t = total + x
    big = total if abs(total) >= abs(x) else x
    small = x if abs(total) >= abs(x) else total
    return t, compensation + ((big - t) + small)


@_inline
def _row_max(row: Any) -> float:
    """The largest entry of a row, NaNs skipped (``-inf`` for an all-NaN row)."""
    m = -math.inf
    for x in row:
        if x > m:
            m = np.float64(x)
    return m


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _kl64_sums(
    a: Any, b: Any, sides: tuple[int, int], tops: tuple[float, float]
) -> tuple[float, bool]:
    """The KL of :func:`_kl64_pass` and whether it stands."""
    kl, stands, _, _, _ = _kl64_pass(a, b, sides, tops, False)
    return kl, stands


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _kl64_pass(
    a: Any, b: Any, sides: tuple[int, int], tops: tuple[float, float], with_entropies: bool
) -> tuple[float, bool, float, float, bool]:
    r"""KL of float64 rows ``a`` (P) and ``b`` (Q), each logits (form 2) or
    log-probabilities (form 1), in one pass with two ``math.exp`` calls an entry at
    most (main's compensated loop took three), a rigorous bound on its error, and from
    the same sums the entropy :math:`H(P)` and cross-entropy :math:`H(P, Q)` (the
    decomposition). ``tops``: each side's finite maximum (0 for log-probabilities).
    Returns the KL, whether it stands, :math:`H(P)` and :math:`H(P, Q)` (0 unless
    ``with_entropies``: their sums cost a fifth of the pass), and whether the sums are
    valid (not: a NaN entry or a positive log-probability; then nothing
    stands and the caller's exact sums or loop judge the row).

    With :math:`w_i = x_i - m_a` and :math:`w'_i = y_i - m_b`, each exact as a pair
    ``h + l`` (:func:`_two_diff`), :math:`e_i = e^{h}(1 + l)` (P's unnormalised
    probability), :math:`S_a = \sum_i e_i`, :math:`S_b = \sum_i e^{w'_i}` (logits only)
    and :math:`T = \sum_i e_i (w_i - w'_i)` (each sum Neumaier's, :func:`_add`):

    .. math:: D = T/S_a - \log(S_a/S_b) \ \text{(P logits)}, \qquad
              D = T + S_a \log S_b \ \text{(P log-probabilities)},

    :math:`S = 1` standing for a log-probability side's normaliser. No log-partition is
    rounded to a float (its rounding, up to :math:`2^{-53}\log V`, was main's
    first-order error), and the differences :math:`w_i - w'_i` keep their low parts.

    Entropy and cross-entropy, with :math:`W = \sum_i e_i w_i` and
    :math:`W' = \sum_i e_i w'_i` (Neumaier's sums of terms :math:`\le 0`):

    .. math:: H(P) = \log S_a - W/S_a, \quad H(P, Q) = \log S_b - W'/S_a
              \ \text{(P logits)}; \qquad H(P) = -W, \quad H(P, Q) = S_a \log S_b - W'
              \ \text{(P log-probabilities)},

    each the sum of two non-negative parts (:math:`S \ge 1` for logits, the maximal
    entries counted as exactly 1), so no cancellation: a few ulps, as main's
    compensated loop of :math:`-p_i \log p_i` and :math:`-p_i \log q_i` (which took a
    third ``exp`` an entry and the two log-partitions' passes). :math:`\log S` is
    ``log1p`` of :math:`S - 1` taken from the compensated sum before its final rounding
    (:math:`s_{hi} - 1` exact for :math:`s_{hi} \in [1, 2]`), so a dominant logit's
    tiny entropy keeps its relative accuracy. ``+inf`` for :math:`H(P, Q)` (and the KL)
    where only :math:`q_i = 0`.

    Bound (:math:`u = 2^{-53}`, ``math.exp`` within an ulp, :math:`2u` relative):
    each :math:`e_i` errs by :math:`\rho = 4.1u` relative (the exp, the rounded
    :math:`1 + l`, the product, :math:`e^l - 1 - l`) and :math:`2^{-1074}` absolute
    (underflow); each difference :math:`d_i` by :math:`2.01u|d_i| + 2.01u^2(|h| + |h'|)`;
    so each term :math:`t_i = e_i d_i` by :math:`7.2u|t_i| + 2.1u^2 e_i(|h| + |h'|) +
    2^{-1074}|d_i|`. A Neumaier sum of :math:`n` terms errs by :math:`u|s| +
    \gamma_{n-1}^2 \sum|x_i|` (Ogita, Rump and Oishi's Sum2), so :math:`S` by
    :math:`(u + \rho + 1.01 n^2u^2) S + n 2^{-1074}` and :math:`T` by the terms' bounds
    plus :math:`u|T| + 1.01 n^2 u^2 \sum|t_i|`; then the quotient, the logarithm
    (an ulp, :math:`|\log(1 + \delta)| \le 1.01|\delta|`), the product and the
    difference, each rounded once; the whole enlarged by :math:`2^{-20}`. The KL stands
    where the bound is at most :data:`_KL64_TOLERANCE` of it (float32 rows:
    :data:`_FAST_SUM_TOLERANCE`, their rounding's); not: nearly equal P and
    Q, a tiny KL (the terms cancel)."""
    form_a, form_b = sides
    m_a, m_b = tops
    logits_a, logits_b = form_a == 2, form_b == 2
    inf = math.inf
    n = a.shape[0]
    s_a = s_a_c = s_b = s_b_c = t = t_c = 0.0
    w_a = w_a_c = w_b = w_b_c = 0.0
    t_abs = w_abs = d_abs = 0.0
    infinite = False
    odd = 0
    for i in range(n):
        x = np.float64(a[i])
        y = np.float64(b[i])
        if (x > 0.0 and not logits_a) or (y > 0.0 and not logits_b) or x != x or y != y:
            odd += 1
        # q_i = 0 (p_i = 0): y = -inf, or y - m_b overflowing to -inf (_two_diff's low
        # part then NaN), as the generic log-softmax has it.
        h_b, l_b = _two_diff(y, m_b) if logits_b else (y, 0.0)
        if h_b == -inf:
            l_b = 0.0
        if logits_b:
            s_b, s_b_c = _add_select(s_b, s_b_c, math.exp(h_b) * (1.0 + l_b))
        h_a, l_a = _two_diff(x, m_a) if logits_a else (x, 0.0)
        if h_a == -inf:
            continue
        e = math.exp(h_a) * (1.0 + l_a)
        s_a, s_a_c = _add_select(s_a, s_a_c, e)
        if with_entropies:
            w_a, w_a_c = _add_select(w_a, w_a_c, e * h_a)
        if h_b == -inf:
            infinite = True
            continue
        if with_entropies:
            # e subnormal: e h_b scaled (_exp_times; the decomposition's H(P, Q))
            tiny = h_a < _LOG_SMALLEST_NORMAL
            cross = -_exp_times(h_a, -h_b) * (1.0 + l_a) if tiny else e * h_b
            w_b, w_b_c = _add_select(w_b, w_b_c, cross)
        d = (h_a - h_b) + (l_a - l_b)
        term = e * d
        t, t_c = _add_select(t, t_c, term)
        t_abs += abs(term)
        w_abs += e * (abs(h_a) + abs(h_b))
        d_abs += abs(d)
    # S - 1 before the final rounding of the compensated sums (see the docstring).
    log_s_a = math.log1p((s_a - 1.0) + s_a_c) if logits_a else 0.0
    log_s_b = math.log1p((s_b - 1.0) + s_b_c) if logits_b else 0.0
    s_a, t = s_a + s_a_c, t + t_c
    w_a, w_b = w_a + w_a_c, w_b + w_b_c
    s_b = s_b + s_b_c if logits_b else 1.0
    if odd or not (math.isfinite(s_a) and math.isfinite(s_b) and math.isfinite(t)):
        return math.nan, False, math.nan, math.nan, False
    if logits_a:
        h = log_s_a - w_a / s_a
        ce = inf if infinite else log_s_b - w_b / s_a
    else:
        h = -w_a
        ce = inf if infinite else s_a * log_s_b - w_b
    if infinite:
        return inf, True, h, ce, True
    kl, bound = _kl64_bound(t, s_a, s_b, (logits_a, logits_b), n, (t_abs, w_abs, d_abs))
    # float32 rows (branch klf32: two log-probability sides the fast pass flagged) stand
    # within a float32 result's tolerance
    tolerance = _FAST_SUM_TOLERANCE if _narrow(a) else _KL64_TOLERANCE
    return kl, bound <= tolerance * abs(kl), h, ce, True


@_once
def _kl64_bound(
    t: float,
    s_a: float,
    s_b: float,
    logits: tuple[bool, bool],
    n: int,
    magnitudes: tuple[float, float, float],
) -> tuple[float, float]:
    r"""The KL of :func:`_kl64_pass` from its sums :math:`T, S_a, S_b`, and the bound
    on its error derived there; ``magnitudes``: :math:`\sum|t_i|`,
    :math:`\sum e_i(|h_i| + |h'_i|)` and :math:`\sum|d_i|`."""
    logits_a, logits_b = logits
    t_abs, w_abs, d_abs = magnitudes
    u = _U
    tiny = 2.0**-1070  # above 2^-1074 times n's rounding
    rho = 4.1 * u
    sq = 1.01 * (n * u) ** 2
    e_t = 7.2 * u * t_abs + 2.1 * u * u * w_abs + tiny * (d_abs + n) + u * abs(t) + sq * t_abs
    rel_a = (u + rho + sq) + n * tiny / s_a if logits_a else 0.0
    rel_b = (u + rho + sq) + n * tiny / s_b if logits_b else 0.0
    if logits_a and logits_b:
        ell = math.log(s_a / s_b)
        rel = rel_a + rel_b + u
    elif logits_a:
        ell, rel = math.log(s_a), rel_a
    else:
        ell, rel = -math.log(s_b), rel_b
    e_ell = 1.01 * rel + 2.0 * u * abs(ell)
    if logits_a:
        quotient = t / s_a
        kl = quotient - ell
        bound = (e_t / s_a + abs(quotient) * (rel_a + u)) + e_ell
    else:
        weighted = s_a * ell
        kl = t - weighted
        # log-probabilities: S_a (= the mass of P) from a Neumaier sum too
        e_s_a = (u + rho + sq) * s_a + n * tiny
        bound = e_t + (e_s_a * abs(ell) + s_a * e_ell + u * abs(weighted))
    return kl, (bound + u * abs(kl)) * (1.0 + 2.0**-20)


_EXP_CLOSE_TAYLOR = tuple(1.0 / math.factorial(j) for j in range(14))
r""":math:`1/j!`, :math:`j = 0, \dots, 13` (:func:`_exp_close`)."""

_EXP_CLOSE_LN2 = (
    _ln2_parts()[0],
    float(Fraction(_ln2_parts()[1]) + Fraction(_ln2_parts()[2])),
)
r""":math:`\ln 2 = L_1 + L_2`: :math:`L_1` of 32 significant bits (:math:`k L_1` exact
for :math:`|k| < 2^{21}`), :math:`L_2` the rest rounded (within :math:`2^{-85}`)."""

_EXP_CLOSE_MAGIC = 6755399441056767.0
"""1.5 * 2**52 + 1023: adding it rounds to an integer ``k`` and leaves ``k + 1023`` (the
biased exponent of 2^k) in the low bits of the sum (``_intrinsics_numba``'s)."""

_EXP_CLOSE_ERROR = 8.0 * 2.0**-53
r"""A bound on the relative error of :func:`_exp_close` (derived there: 5.8u)."""


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True, inline="never")
def _exp_close(x: float) -> float:
    r""":math:`e^x` for :math:`-708 \le x \le 0` within a relative :math:`5.8u`
    (:data:`_EXP_CLOSE_ERROR` says 8u; measured 1.93u at worst against mpmath over 80000
    arguments), branch-free so that the loops calling it vectorise:
    :func:`exp_nonpositive`'s scheme (5.2e-11) with Cody and Waite's two-part
    :math:`\ln 2` and Taylor's polynomial of degree 13 in Estrin's order (a short
    dependency chain: rows of a few entries are latency-bound). Issue 13, branch
    klf32b: the float32 KL of two log-probability sides, whose terms cancel on nearly
    equal rows. Compiled on its own without ``reassoc`` (``(t + M) - M`` must round).
    NaN passes through; below -708 the caller takes 0.

    Error (:math:`u = 2^{-53}`): :math:`k` = ``rint(x log2(e))`` (the product rounded,
    so :math:`|r| \le \ln 2/2 + 708 \cdot 2u < 0.35`); :math:`k L_1` is exact
    (:math:`|k| \le 1021`) and so is :math:`x - k L_1` (Sterbenz: the two are within a
    factor 2 for :math:`k \ne 0`); :math:`r = (x - k L_1) - k L_2` errs by at most
    :math:`u|r| + 2^{-74} < 0.36u` absolute, :math:`e^r` so by a relative :math:`0.36u`.
    The polynomial :math:`(1 + r) + r^2 T`, :math:`T = \sum_{j \ge 2} r^{j - 2}/j!`
    (every partial sum of :math:`T` at most :math:`(e^{0.35} - 1.35)/0.35^2 < 0.565` in
    magnitude): Taylor's remainder at most :math:`e^{0.35} 0.35^{14}/14! < 1.2\cdot
    10^{-17}`, :math:`0.14u` of :math:`e^r \ge e^{-0.35} > 0.704`; the coefficients
    rounded, :math:`(u/2)(e^{0.35} - 1.35) < 0.04u`; :math:`1 + r` and the last sum
    rounded, :math:`1.35u + 1.42u`; :math:`r^2` and its product with :math:`T`,
    :math:`0.07u + 0.07u`; :math:`T`'s own steps (each term through at most eight
    roundings, a product and a sum at each of four levels, and :math:`r^2`, :math:`r^4`
    within :math:`3u`), :math:`11u \cdot 0.565` times :math:`r^2 < 0.1225`,
    :math:`0.77u`: in all :math:`3.68u` absolute, :math:`5.23u` relative. The power of 2
    is exact (:math:`x \ge -708`: :math:`2^k` and the result normal). In all
    :math:`5.77u`, :math:`5.8u` with the second-order terms."""
    x = -708.0 if x < -708.0 else x
    shifted = x * 1.4426950408889634 + _EXP_CLOSE_MAGIC
    k = shifted - _EXP_CLOSE_MAGIC
    r = (x - k * _EXP_CLOSE_LN2[0]) - k * _EXP_CLOSE_LN2[1]
    c = _EXP_CLOSE_TAYLOR
    r2 = r * r
    r4 = r2 * r2
    low = (c[2] + r * c[3]) + r2 * (c[4] + r * c[5])
    mid = (c[6] + r * c[7]) + r2 * (c[8] + r * c[9])
    top = (c[10] + r * c[11]) + r2 * (c[12] + r * c[13])
    tail = low + r4 * (mid + r4 * top)
    return ((1.0 + r) + r2 * tail) * bits_to_float64(float64_to_bits(shifted) << 52)


_CLOSE_BLOCK = 16
r""":func:`_log_probs_sums` sums its terms in blocks of this many (each vectorised, in
any order: :math:`\gamma_{15}`), the blocks' sums compensated."""


@_inline
def _log_probs_terms(x: float, y: float) -> tuple[float, float, float, int]:
    r"""The terms :math:`-p \log p`, :math:`-p \log q`, :math:`p(\log p - \log q)` of
    log-probabilities ``x``, ``y`` (:math:`p = e^x` by :func:`_exp_close`; 0 below
    -708 and where :math:`x = -\infty`) and whether the entry is odd (a positive entry,
    or :math:`\log q = -\infty` where :math:`\log p` is not), as
    :func:`_divergence_sums`."""
    p = 0.0 if x < _EXP_FLOOR else _exp_close(x)
    dead = x == -math.inf
    odd = (x > 0.0) + (y > 0.0) + (0 if dead else y == -math.inf)
    term = 0.0 if dead else p * (x - y)
    return 0.0 if dead else -(p * x), 0.0 if dead else -(p * y), term, odd


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _log_probs_sums(a: Any, b: Any) -> tuple[float, float, float, bool, bool]:
    r"""For float32 rows of log-probabilities ``a`` (P) and ``b`` (Q): :math:`H(P)`,
    :math:`H(P, Q)` and :math:`D(P\|Q)` in one vectorised pass with :math:`p_i` by
    :func:`_exp_close`, whether the KL stands (within :data:`_FAST_SUM_TOLERANCE` of
    the exact KL of the rows) and whether the sums are valid (no odd entry, H and CE
    finite: their terms are then :math:`\ge 0`, relative error :math:`(8 + n + 1)u`,
    far within a float32 result's tolerance).

    The rows :func:`_divergence_sums` flags (its polynomial ``exp``'s 5.2e-11 relative to
    each term, not to their sum: nearly equal rows, and 30 % of random 2-class rows,
    whose two terms have opposite signs, :math:`|D| < 0.22 \sum_i |t_i|`) took
    ``math.exp`` a term (:func:`_kl64_pass`, scalar) and, for the decomposition, the
    compensated loop for H and CE: 1.4x-12x their cost before branch klf32 (issue 13,
    branch klf32b).

    Bound: each term :math:`t_i = p_i d_i` errs by :math:`(\delta + 2u)|t_i|`,
    :math:`\delta` = :data:`_EXP_CLOSE_ERROR` (:math:`p_i`), :math:`2u` the
    difference :math:`d_i` and the product; a block's sum of at most
    :math:`B` = :data:`_CLOSE_BLOCK` terms in any order by :math:`\gamma_{B-1}` of
    their magnitudes; the :math:`n_B` blocks' sums added compensated (TwoSum,
    :func:`_two_diff`, the errors summed apart: Ogita, Rump and Oishi's Sum2),
    :math:`u|D| + 1.01(n_B u)^2 \sum|t_i|`. So

    .. math:: |\hat D - D| \le \bigl(\delta + (B + 2)u + 1.01 (n_B u)^2\bigr)
              \sum_i |t_i| + u|\hat D|,

    enlarged by :math:`2^{-20}` (the computed :math:`\sum_i |t_i|` errs by
    :math:`\gamma_{n-1}`), and the KL stands where that is at most :math:`2^{-32}
    |\hat D|`: :math:`|D| \ge 1.2\cdot 10^{-5}\sum_i |t_i|`, 99.998 % of random
    2-class rows and 92 %-99 % of rows 1e-4 apart (``benchmarks/``
    ``bench_kl_float32_log_probs_ab.py``), against :math:`0.22` with the polynomial."""
    prefer_wide_vectors()
    n = a.shape[0]
    h = ce = kl = kl_c = kl_abs = 0.0
    odd: Any = 0  # a count of booleans
    # Blocks of _CLOSE_BLOCK (a constant trip count: unrolled, vectorised), then the
    # rest, each block's KL sum reassociated within it but added to the total by TwoSum
    # (``_two_diff``, its own flags: ``reassoc`` cannot reach across it); H, CE and the
    # magnitudes summed in any order (terms of one sign).
    full = n - n % _CLOSE_BLOCK
    for start in range(0, full, _CLOSE_BLOCK):
        block = 0.0
        for j in range(_CLOSE_BLOCK):
            x, y = np.float64(a[start + j]), np.float64(b[start + j])
            h_i, ce_i, t, odd_i = _log_probs_terms(x, y)
            h += h_i
            ce += ce_i
            block += t
            kl_abs += abs(t)
            odd += odd_i
        kl, e = _two_diff(kl, -block)
        kl_c += e
    block = 0.0
    for i in range(full, n):
        h_i, ce_i, t, odd_i = _log_probs_terms(np.float64(a[i]), np.float64(b[i]))
        h += h_i
        ce += ce_i
        block += t
        kl_abs += abs(t)
        odd += odd_i
    if full:
        kl, e = _two_diff(kl, -block)
        kl += kl_c + e
    else:  # one block: its sum alone
        kl = block
    blocks = (n + _CLOSE_BLOCK - 1) // _CLOSE_BLOCK
    return _log_probs_verdict(h, ce, kl, kl_abs, odd, (blocks, _CLOSE_BLOCK))


_SHORT_BLOCK = 8
r""":func:`_log_probs_short` reads a row of 8 to 15 entries as two blocks of this many."""

_NO_SUMS = (0.0, 0.0, 0.0, 0.0, 0)
""":func:`_add_kept_terms`' start: no terms, no odd entry."""


@_inline
def _add_kept_terms(
    sums: tuple[float, float, float, float, int], x: float, y: float, keep: bool
) -> tuple[float, float, float, float, int]:
    r"""``sums`` (:math:`H(P)`, :math:`H(P, Q)` and :math:`D(P\|Q)` so far, the sum
    :math:`\sum_i |t_i|` of the KL terms' magnitudes and the count of odd entries) with
    :func:`_log_probs_terms` of ``x`` and ``y`` added where ``keep``, else 0: the terms
    are computed, then discarded by a select (a NaN or infinity among them too), so
    that :func:`_log_probs_short` and :func:`_log_probs_padded` compute a block's
    terms as whole vectors over entries not all their own (issue 13, branch review75:
    the one home of their masked accumulation, the same operations in the same order).
    Inlined in Numba's IR: the additions take the caller's flags (``reassoc``)."""
    h, ce, kl, kl_abs, odd = sums
    h_i, ce_i, t, odd_i = _log_probs_terms(x, y)
    h += h_i if keep else 0.0
    ce += ce_i if keep else 0.0
    kl += t if keep else 0.0
    kl_abs += abs(t) if keep else 0.0
    odd += odd_i if keep else 0
    return h, ce, kl, kl_abs, odd


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _log_probs_short(a: Any, b: Any) -> tuple[float, float, float, bool, bool]:
    r""":func:`_log_probs_sums` of unit-stride rows of :math:`8 \le n \le 15` entries:
    the entries :math:`0, \dots, 7`, then :math:`n - 8, \dots, n - 1`, those of the
    second block below 8 (the first's) counted as 0 (their terms computed, then
    discarded by a select), each block a loop of a constant trip count over
    consecutive entries, so that LLVM vectorises both with plain loads.
    :func:`_log_probs_sums` read such a row in its loop over the rest, which LLVM
    vectorises with gathers and masks: 65 against 48 ns a row of 9 (issue 13, branch
    klf32c). The sums hold :math:`n` terms (and zeros, added exactly) in any order:
    its bound with one block of :math:`n` terms, :math:`(\delta + (n + 2)u)\sum_i
    |t_i|`, not the 16-term block's :math:`\delta + 18u` (at :math:`n = 9`, 19u
    against 26u: more nearly equal rows stand)."""
    prefer_wide_vectors()
    n = a.shape[0]
    sums = _NO_SUMS
    for k in range(2):
        start = k * (n - _SHORT_BLOCK)
        first = k * _SHORT_BLOCK  # the second block's entries below it are the first's
        for j in range(_SHORT_BLOCK):
            i = start + j
            sums = _add_kept_terms(sums, np.float64(a[i]), np.float64(b[i]), i >= first)
    h, ce, kl, kl_abs, odd = sums
    return _log_probs_verdict(h, ce, kl, kl_abs, odd, (1, n))


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _log_probs_padded(a: Any, b: Any) -> tuple[float, float, float, bool, bool]:
    r""":func:`_log_probs_sums` of unit-stride rows of :math:`3 \le n \le 7` entries:
    one block of :data:`_SHORT_BLOCK`, the entries past the row's last reading it
    again (the index clamped) and counted as 0 (a select), so that LLVM computes the
    block's terms as whole vectors. :func:`_log_probs_sums` read such a row in its loop
    over the rest (vectorised with gathers and masks): 40-44 against 26-31 ns a row of
    3 to 7 alone (issue 13, branch klf32d; blocks of 4, a loop over them, cost 57-58).
    Its sums hold :math:`n` terms and zeros in any order: the bound of one block of
    :math:`n` terms, :math:`(\delta + (n + 2)u)\sum_i |t_i|`, as
    :func:`_log_probs_short`'s (the 16-term block's :math:`\delta + 18u` before)."""
    prefer_wide_vectors()
    n = a.shape[0]
    sums = _NO_SUMS
    for j in range(_SHORT_BLOCK):
        i = min(j, n - 1)
        sums = _add_kept_terms(sums, np.float64(a[i]), np.float64(b[i]), j < n)
    h, ce, kl, kl_abs, odd = sums
    return _log_probs_verdict(h, ce, kl, kl_abs, odd, (1, n))


@_inline
def _log_probs_verdict(
    h: float, ce: float, kl: float, kl_abs: float, odd: int, blocks: tuple[int, int]
) -> tuple[float, float, float, bool, bool]:
    """:func:`_log_probs_sums`' H, CE and KL, whether the KL stands (its bound, derived
    there, of ``blocks``: how many blocks, of at most how many terms) and whether the
    sums are valid."""
    count, size = blocks
    coefficient = _EXP_CLOSE_ERROR + (size + 2) * _U + 1.01 * (count * _U) * (count * _U)
    bound = (coefficient * kl_abs + _U * abs(kl)) * (1.0 + 2.0**-20)
    valid = odd == 0 and math.isfinite(h) and math.isfinite(ce) and math.isfinite(kl)
    return h, ce, kl, valid and bound <= _FAST_SUM_TOLERANCE * abs(kl), valid


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _log_probs_pair(a: Any, b: Any) -> tuple[float, float, float, bool, bool]:
    """:func:`_log_probs_sums` of rows of two entries, straight-line."""
    h0, ce0, t0, odd0 = _log_probs_terms(np.float64(a[0]), np.float64(b[0]))
    h1, ce1, t1, odd1 = _log_probs_terms(np.float64(a[1]), np.float64(b[1]))
    h, ce, kl = h0 + h1, ce0 + ce1, t0 + t1
    coefficient = _EXP_CLOSE_ERROR + 3.0 * _U
    bound = (coefficient * (abs(t0) + abs(t1)) + _U * abs(kl)) * (1.0 + 2.0**-20)
    valid = odd0 + odd1 == 0 and math.isfinite(h) and math.isfinite(ce) and math.isfinite(kl)
    return h, ce, kl, valid and bound <= _FAST_SUM_TOLERANCE * abs(kl), valid


@_inline
def _log_probs_pass(a: Any, b: Any) -> tuple[float, float, float, bool, bool]:
    """:func:`_log_probs_sums` (:func:`_log_probs_pair` for two entries: its loops cost
    twice the pair's 20 ns; :func:`_log_probs_padded` for 3 to 7, :func:`_log_probs_short`
    for 8 to 15 where both rows have unit stride), on the rows typed C-contiguous where
    both strides allow."""
    if a.shape[0] == 2:
        return _log_probs_pair(a, b)
    if a.strides[0] == a.itemsize and b.strides[0] == b.itemsize:
        if 2 < a.shape[0] < _SHORT_BLOCK:
            return _log_probs_padded(unit_stride(a), unit_stride(b))
        if _SHORT_BLOCK <= a.shape[0] < 2 * _SHORT_BLOCK:
            return _log_probs_short(unit_stride(a), unit_stride(b))
        return _log_probs_sums(unit_stride(a), unit_stride(b))
    return _log_probs_sums(a, b)


_KL_DD_EXP_ERROR = 2.0**-96
r"""What :func:`_kl_log_probs_dd` counts as :func:`_exp_dd`'s relative error (about
:math:`2^{-104}`, tested; :data:`_MASS_ERROR` counts the same for its sums)."""


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _kl_log_probs_dd(a: Any, b: Any) -> tuple[float, bool]:
    r"""KL of float32 rows of log-probabilities :math:`v`, :math:`w` as it is defined,
    :math:`\sum_i e^{v_i}(v_i - w_i)`, in double-double, and whether it stands within
    :data:`_FAST_SUM_TOLERANCE` (not: a positive or NaN entry, or terms that cancel to
    below about :math:`2^{-60}` of their magnitudes; the caller's exact sums then run).
    The rows :func:`_log_probs_sums` and :func:`_kl64_pass` leave (nearly equal rows,
    2 %-3 % of rows 1e-4 apart) took :func:`_kl_exact`, whose masses and Bregman sums
    in double-double and then :func:`_kl_log_probs_td` cost 3.5 us a row of 9 and
    290 us a row of 1000, 70 % of those rows' whole cost at 1000 classes (issue 13,
    branch klf32b).

    :math:`e^{v_i}` by :func:`_exp_dd` (:data:`_KL_DD_EXP_ERROR`; where
    :math:`v_i < -650` its low part loses bits to the subnormal range: those terms
    count :math:`2u`, and below -708, where :math:`e^{v_i} < 3.4\cdot 10^{-308}`, they
    are left out and count :math:`3.4\cdot 10^{-308}|v_i - w_i|`); :math:`v_i - w_i`
    exact as a pair (:func:`_two_diff`); the product exact to :math:`3u^2` of the term
    (:func:`_two_prod` and the two cross products); the terms added by
    :func:`_dd_sum`, each step within :math:`4u^2` of the partial sum's and the term's
    magnitudes, :math:`8nu^2 \sum_i |t_i|` in all; the pair rounded to a float,
    :math:`u|D|`; the whole enlarged by :math:`2^{-20}`. Conventions: 0 where
    :math:`v_i = -\infty`, :math:`+\infty` where only :math:`w_i = -\infty`."""
    n = a.shape[0]
    s_hi = s_lo = magnitude = coarse = floor = 0.0
    infinite = False
    for i in range(n):
        v = np.float64(a[i])
        w = np.float64(b[i])
        if not (v <= 0.0 and w <= 0.0):
            return math.nan, False
        if v == -math.inf:
            continue
        if w == -math.inf:
            infinite = True
            continue
        d_hi, d_lo = _two_diff(v, w)
        if v < _EXP_FLOOR:
            floor += abs(d_hi) + abs(d_lo)
            continue
        e_hi, e_lo = _exp_dd(v)
        t_hi, t_err = _two_prod(e_hi, d_hi)
        t_lo = t_err + (e_hi * d_lo + e_lo * d_hi)
        s_hi, s_lo = _dd_sum(s_hi, s_lo, t_hi, t_lo)
        if v < -650.0:
            coarse += abs(t_hi)
        else:
            magnitude += abs(t_hi)
    if infinite:
        return math.inf, True
    kl = s_hi + s_lo
    total = magnitude + coarse
    bound = (_KL_DD_EXP_ERROR + 3.0 * _U * _U + 8.0 * n * _U * _U) * total
    bound += 2.0 * _U * coarse + 3.4e-308 * floor + _U * abs(kl)
    bound *= 1.0 + 2.0**-20
    return kl, math.isfinite(kl) and bound <= _FAST_SUM_TOLERANCE * abs(kl)


# The shift of the Bregman sums is corrected in closed form where its square is at
# most this fraction of the KL (:func:`_kl_exact`), else by another pass.
_SHIFT_SQUARED_TOLERANCE = 2.0**-20


# Cached (as ``_row``, its caller): compiling ``_row`` saves it too, so a process that
# calls it alone with ``_row``'s argument types loads it (13 s of CPU to compile).
@numba.njit(error_model="numpy", nogil=True, cache=True)
def _kl_exact(
    a: Any,
    b: Any,
    sides: tuple[int, int],
    shifts: tuple[float, float, float, float],
    estimate: float = math.nan,
) -> tuple[float, bool]:
    r"""KL of rows of logits (form 2) or log-probabilities (form 1), exact to a few
    float64 ulps (tested against mpmath), and whether it could be computed (not: a
    positive or NaN log-probability; the caller's loop then runs). ``shifts``: ``m,
    ell`` of each side (0 for log-probabilities; two log-probability sides need no
    shift, their :math:`r_i` are exact, and the closed form below then removes only
    the rounding of :math:`N`, a relative change of about :math:`2^{-53}\sum_i|p_i -
    q_i|` in :math:`D`). ``estimate``: the KL as far as the caller knows it (NaN: not
    known), which only chooses where to start (below).

    By :func:`_bregman64_sums`: with :math:`q_i` Q's probabilities (:math:`u_i/U` for
    logits, :math:`u_i` for log-probabilities), :math:`B = \sum_i q_i \varphi(r_i)`,
    :math:`N = \sum_i q_i (e^{r_i} - 1)` and the masses :math:`\Pi = \sum p`,
    :math:`K = \sum q` (1 for logits; else by :func:`_mass_minus_one`, in
    double-double: :math:`\Pi - K` is a first-order term, which a float sum of the
    :math:`e^{v_i}` would leave off by :math:`10^{-16}`),

    .. math:: D = B + \Pi - K, \qquad \Pi e^{\epsilon} = N + K,

    :math:`\epsilon` the common shift of the :math:`r_i` (the log-partitions' error).
    The shifted sums give :math:`D_1 = \Pi + e^{\epsilon}(D + (\epsilon - 1)\Pi)`, so

    .. math:: D = e^{-\epsilon}\bigl(D_1 - \Pi\,\varphi(\epsilon)\bigr),

    taken where :math:`\epsilon^2 \le 2^{-20} |D_1|` (no cancellation there: the error
    of :math:`\epsilon`, a few ulps of :math:`\sum_i |q_i (e^{r_i} - 1)|/\Pi`, is then a
    few ulps of :math:`D`); else ``c`` is corrected by :math:`\epsilon` (a double-double,
    so that it can hold the log-partitions' difference more finely than a float) and the
    sums taken again (at most four passes: each leaves a shift of order
    :math:`2^{-53}` of the previous one and of :math:`\sqrt{D}`). Where Q is not
    normalised :math:`D` may be small against :math:`B` and :math:`K - \Pi` (they then
    cancel). So the masses (:func:`_mass_difference`) are summed at three precisions,
    each only where the one before could not stand: ``math.exp`` (an ulp each), in
    double-double (:func:`_exp_dd`, where :math:`2(\Pi + K) > |D|`), in
    triple-double (:func:`_exp_td`, where :math:`2^{-96}(\Pi + K) > 2^{-56}|D|` or
    :math:`B > 8|D|`), and that again with :math:`B` in double-double (``fine``) where
    still :math:`B > 8|D|` (the masses cancel it), starting where
    ``estimate`` says the cheaper ones would be thrown away (:data:`_MASS_SKIP`). Two
    log-probability sides take, at the last precision, their defining sum instead
    (:func:`_kl_log_probs_td`): their :math:`r_i` are exact and nothing is left to
    the Bregman sum's rounding. A side of probabilities: its logarithms in
    double-double (:func:`_bregman64_sums`), its mass exact.

    Error (tested against mpmath down to a KL of 1e-40,
    ``tests/info/test_issue13_kl_tiny_exact.py``): 4 ulps; and about :math:`2^{-150}`
    absolute besides where one side is probabilities or logits and the other not
    (double-double logarithms of probabilities and Bregman sum: above 1e-30, a few ulps
    too)."""
    form_a, form_b = sides
    if form_a == form_b == 2:
        # ``fine`` False, as a run-time value: one compiled _kl_shifted, not a second
        # one for the constant (see _once)
        fine = form_a != form_b
        return _kl_shifted(a, b, sides, shifts, (0.0, 0.0), 1.0, fine)[0], True
    for precision in range(4):
        if precision < 2 and abs(estimate) < _MASS_SKIP[precision]:
            continue
        if precision == 2 and form_a == form_b == 1:
            return _kl_log_probs_td(a, b)
        tops = (shifts[0], shifts[2])
        fine = precision == 3
        delta, p_mass, ok = _mass_difference(a, b, sides, tops, min(precision, 2), fine)
        if not ok:
            return math.nan, False
        kl, bregman = _kl_shifted(a, b, sides, shifts, delta, p_mass, fine)
        # The masses' error, about 2^-55, 2^-100 or 2^-150 of Pi + K, within 2^-56 of
        # the KL, and the float Bregman sum's (a few ulps of B) within 2^-47 of it (the
        # last precision, B in double-double, stands whatever it gives).
        masses = (2.0 + p_mass + abs(delta[0])) * _MASS_ERROR[min(precision, 2)]
        if fine or (masses <= 2.0**-56 * abs(kl) and bregman <= 8.0 * abs(kl)):
            return kl, True
    return math.nan, False


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _kl_log_probs_td(a: Any, b: Any) -> tuple[float, bool]:
    r"""KL of two rows of log-probabilities :math:`v`, :math:`w` as it is defined,
    :math:`\sum_i e^{v_i}(v_i - w_i)`, to about :math:`2^{-150}` of :math:`\sum_i
    e^{v_i}|v_i - w_i|` (and whether it could be computed: not for a positive or NaN
    entry): :math:`e^{v_i}` by :func:`_exp_td_scaled`, :math:`v_i - w_i` exact as a
    double-double, their product in triple-double (the products of parts down to
    :math:`2^{-106}` exact), scaled by the power of two only then (a subnormal
    :math:`e^{v_i}` had lost its bits first, and below :math:`v_i = -745` the term, up
    to :math:`e^{v_i + 710}`, was left out: 0 for :math:`e^{-745} \cdot 10^{300}`), the
    positive and the negative terms summed apart in triple-double (no cancellation), one
    difference at the end, rounded once.

    Where the terms cancel (nearly equal rows whose first-order terms
    :math:`e^{v_i}(v_i - w_i)` add up to a KL far below their magnitudes) the masses'
    route of :func:`_kl_exact` leaves the error of its float Bregman sum, an ulp of
    :math:`\sum_i q_i\varphi(r_i)`, which may be many of the KL; this sum has none.
    Conventions: 0 where :math:`v_i = -\infty`, :math:`+\infty` where only
    :math:`w_i = -\infty`."""
    positive = negative = (0.0, 0.0, 0.0)
    infinite = False
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        w = np.float64(b[i])
        if not (v <= 0.0 and w <= 0.0):
            return math.nan, False
        if v == -math.inf:
            continue
        if w == -math.inf:
            infinite = True
            continue
        if v < -1500.0:  # e^v |v - w| <= e^(v + 710) < 2^-1075: no term
            continue
        # e^v = 2^k (p0 + p1 + p2), p0 < 1: the product cannot overflow.
        (p0, p1, p2), k = _exp_td_scaled(v)
        p0, p1, p2, k = 0.5 * p0, 0.5 * p1, 0.5 * p2, k + 1
        r0, r1 = _two_diff(v, w)
        t0, e00 = _two_prod(p0, r0)
        t01, e01 = _two_prod(p0, r1)
        t10, e10 = _two_prod(p1, r0)
        low = (e01 + e10) + (p1 * r1 + p2 * r0)
        mid, x = _two_sum(e00, t01)
        mid, y = _two_sum(mid, t10)
        t0, mid, low = _td_renormalise(t0, mid, low + (x + y))
        term = (_scaled(t0, k), _scaled(mid, k), _scaled(low, k))
        if term[0] >= 0.0:
            positive = _td_add(positive, term)
        else:
            negative = _td_add(negative, (-term[0], -term[1], -term[2]))
    if infinite:
        return math.inf, True
    hi, mid, lo = _td_add(positive, (-negative[0], -negative[1], -negative[2]))
    hi, mid, lo = _td_renormalise(hi, mid, lo)
    return hi + (mid + lo), True


_MASS_ERROR = (2.0**-55, 2.0**-96, 0.0)
r"""What :func:`_kl_exact` counts as the error of the masses (:func:`_masses`) at each
``precision``, relative: :math:`2^{-55}` at 0 (``math.exp``; then the masses stand
where :math:`2(\Pi + K) \le |D|`, as before), :math:`2^{-96}` at 1 (:func:`_exp_dd`,
about :math:`2^{-104}` each, the sum in triple-double)."""

_MASS_SKIP = (4.0, 2.0**-36)
"""Below these estimates of the KL, the masses at ``precision`` 0 and 1 could not stand
(:data:`_MASS_ERROR`): :func:`_kl_exact` starts at the next."""


@_once
def _kl_shifted(
    a: Any,
    b: Any,
    sides: tuple[int, int],
    shifts: tuple[float, float, float, float],
    delta: tuple[float, float],
    p_mass: float,
    fine: bool,
) -> tuple[float, float]:
    r"""The passes of :func:`_kl_exact`, given :math:`\Pi - K` (``delta``, a
    double-double) and :math:`\Pi` (``p_mass``), the Bregman sums ``fine`` or not
    (:func:`_bregman64_sums`); the KL and :math:`B` (to judge the float sums' error)."""
    m_a, ell_a, m_b, ell_b = shifts
    delta_hi, delta_lo = delta
    hi, lo = _two_diff(m_a, m_b)
    c_hi, c_lo = _dd_add(hi, lo, ell_a - ell_b)
    kl = total = math.nan
    for k in range(4):
        sums = _bregman64_sums(a, b, sides, (m_a, ell_a, m_b, ell_b, c_hi, c_lo), fine)
        total, total_lo, nu, mass, mass_lo = sums
        if not total < math.inf:
            return total, total
        if sides[1] == 2:
            total, total_lo = _dd_divide(total, total_lo, mass, mass_lo)
            nu = nu / (mass + mass_lo)
        s, e = _two_sum(total, delta_hi)
        kl = s + (e + (total_lo + delta_lo))
        eps = math.log1p(((nu - delta_hi) - delta_lo) / p_mass)
        if eps * eps <= _SHIFT_SQUARED_TOLERANCE * abs(kl) or k == 3:
            phi = eps * eps * _horner(eps, _PHI_HORNER64)
            return math.exp(-eps) * (kl - p_mass * phi), total
        c_hi, c_lo = _dd_add(c_hi, c_lo, eps)
    return kl, total


@_inline
def _dd_divide(hi: float, lo: float, d_hi: float, d_lo: float) -> tuple[float, float]:
    """The double-double ``(hi + lo) / (d_hi + d_lo)``, to about :math:`2^{-104}`."""
    q = hi / d_hi
    p, e = _two_prod(q, d_hi)
    rest = (((hi - p) - e) + lo) - q * d_lo
    return _quick_two_sum(q, rest / d_hi)


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _bregman_sums(
    a: Any, b: Any, shifts: tuple[float, float, float, float, float]
) -> tuple[float, float]:
    r"""KL of float32 logit rows ``a`` (P) and ``b`` (Q) as a sum of non-negative terms:

    .. math:: D(P\|Q) = \sum_i \bigl(p_i r_i - p_i + q_i\bigr)
                      = \sum_i q_i\, \varphi(r_i), \qquad r_i = \log p_i - \log q_i,

    (:math:`\sum p = \sum q = 1`; :math:`\varphi` as :func:`_phi_series`), so no
    cancellation in the sum, however close P and Q are. ``shifts``: ``m_a, ell_a,
    m_b, ell_b`` (:func:`_log_partition`) and ``shift``; each :math:`r_i` is
    :math:`((x_i - m_a) - (y_i - m_b)) - (\ell_a - \ell_b) - \mathrm{shift}`, so that
    the error of the log-partitions (up to :math:`8\cdot 10^{-11}` each: the
    polynomial ``exp``) is one shift :math:`\epsilon` common to every :math:`r_i`, which
    changes the sum by :math:`\epsilon D + \epsilon^2/2` only (:math:`\sum_i q_i
    \varphi(r_i + \epsilon) = 1 + e^\epsilon (D + \epsilon - 1)`), not by
    :math:`\epsilon` as in :math:`\sum_i p_i (\log p_i - \log q_i)`.

    Each term: :math:`q_i \varphi(r_i)` for :math:`|r_i| \le 1`, else
    :math:`q_i + p_i (r_i - 1)` (two terms of one sign for :math:`r > 1`; for
    :math:`r < -1` they cancel by at most :math:`1/\varphi(-1) < 3.8`), with
    :math:`p_i, q_i` by :func:`exp_nonpositive` (0 below -708): relative error below
    :math:`4.2\cdot 10^{-10}`. Conventions: :math:`q_i` where :math:`p_i = 0`
    (:math:`\log p_i = -\infty`; the term of :math:`-p_i + q_i`), :math:`+\infty` where
    only :math:`q_i = 0`.

    Returns the sum of the KL, that of :math:`\nu = \sum_i q_i (e^{r_i} - 1)` (as
    :math:`p_i r_i - q_i \varphi(r_i)` for :math:`|r_i| \le 1`, else :math:`p_i - q_i`:
    :math:`\log(1 + \nu)` is the shift's error :math:`\epsilon`, to within
    :math:`10^{-10} \sum_i |q_i (e^{r_i} - 1)|`). One loop, vectorised by LLVM (with the
    entropy's and cross-entropy's sums added, it was not: :func:`_divergence_sums` has
    them): a non-negative sum errs by a relative :math:`\gamma_{n-1}` at most in any
    order."""
    prefer_wide_vectors()
    m_a, ell_a, m_b, ell_b, shift = shifts
    e = _minus(ell_a, ell_b)
    kl = nu = 0.0
    for i in range(a.shape[0]):
        sx = _minus(np.float64(a[i]), m_a)
        sy = _minus(np.float64(b[i]), m_b)
        log_p = _minus(sx, ell_a)
        log_q = _minus(sy, ell_b)
        r = _minus(_minus(_minus(sx, sy), e), shift)
        p = 0.0 if log_p < _EXP_FLOOR else exp_nonpositive(log_p)
        q = 0.0 if log_q < _EXP_FLOOR else exp_nonpositive(log_q)
        phi = _phi_series(r)
        small = abs(r) <= 1.0
        dead = log_p == -math.inf
        only_q = (log_q == -math.inf) & (log_p != -math.inf)
        term = q * phi if small else q + p * (r - 1.0)
        kl += q if dead else (math.inf if only_q else term)
        nu += p * r - q * phi if small else p - q
    return kl, nu


@_inline
def _bregman(
    a: Any, b: Any, shifts: tuple[float, float, float, float, float]
) -> tuple[float, float]:
    """:func:`_bregman_sums` on the rows typed C-contiguous where both strides allow."""
    if a.strides[0] == a.itemsize and b.strides[0] == b.itemsize:
        return _bregman_sums(unit_stride(a), unit_stride(b), shifts)
    return _bregman_sums(a, b, shifts)


@_inline
def _shift_negligible(kl: float, n: int, ell_a: float, ell_b: float) -> bool:
    r"""Whether :func:`_bregman_sums`' KL ``kl`` may stand without correcting the
    shift: :math:`\epsilon^2/2 \le 2^{-32} D` for the bound :math:`\epsilon \le
    2(5.3\cdot 10^{-11} + (n + 2) 2^{-53}) + 2^{-50}(\ell_a + \ell_b)` (each side's
    log-partition: the polynomial's and the exp-sum's relative error, then its ``log1p``
    and the difference rounded); the part :math:`\epsilon D` is within the same
    tolerance. True for an infinite ``kl``, false for NaN."""
    bound = _partition_error(n, ell_a) + _partition_error(n, ell_b)
    return bound * bound / 2.0 * (1.0 + 2.0**-20) <= _FAST_SUM_TOLERANCE * kl


@_inline
def _partition_error(n: int, ell: float) -> float:
    """A bound on the error of a float32 row's log-partition ``ell`` (:func:`_log_partition`
    with the polynomial ``exp``, ``n`` entries): the polynomial's and the exp-sum's
    relative error, then ``log1p``'s rounding and that of a difference with it."""
    return 5.3e-11 + (n + 2) * 2.0**-53 + 2.0**-51 * abs(ell)


@_inline
def _fast_divergence(
    a: Any, b: Any, sides: tuple[int, int], shifts: tuple[float, float, float, float], want: int
) -> tuple[float, float, float, bool]:
    """The sums of H, CE and KL of float32 rows of log-probabilities or logits, and
    whether the caller may take them (else its compensated loop runs).

    Two logit sides: :func:`_bregman_sums` (no cancellation); where the KL is so small
    that the log-partitions' error could show (:func:`_shift_negligible`, nearly equal
    P and Q), a second pass with the shift corrected by :math:`\\log(1 + \\nu)`; H and CE
    (the decomposition) from :func:`_divergence_sums`. Not taken: a log-partition not
    finite (NaN, ``+inf`` or all ``-inf`` logits), a NaN KL, or H and CE wanted beside
    an entry with only :math:`q_i = 0` (or a positive log-probability).
    Otherwise :func:`_divergence_sums`, whose KL stands where its error bound allows
    (:func:`_divergence_safe`)."""
    form_a, form_b = sides
    m_a, ell_a, m_b, ell_b = shifts
    n = a.shape[0]
    if form_a == 2 and form_b == 2:
        if not (math.isfinite(ell_a) and math.isfinite(ell_b)):
            return 0.0, 0.0, 0.0, False
        h = ce = 0.0
        if want & 3:  # the decomposition: H and CE from the other pass
            h, ce, _, _, odd = _divergence_pass(a, b, sides, shifts)
            if odd:
                return 0.0, 0.0, 0.0, False
        kl, nu = _bregman(a, b, (m_a, ell_a, m_b, ell_b, 0.0))
        if kl == kl and not _shift_negligible(kl, n, ell_a, ell_b):
            kl = _bregman(a, b, (m_a, ell_a, m_b, ell_b, math.log1p(nu)))[0]
        return h, ce, kl, kl == kl
    h, ce, kl, kl_abs, odd = _divergence_pass(a, b, sides, shifts)
    safe = _divergence_safe(kl, kl_abs, n, odd)
    if form_a + form_b == 3:
        # One side logits: its log-partition's error is a first-order error of the KL
        # (times sum p, at most 2 where the rows may pass validation).
        ell = ell_a if form_a == 2 else ell_b
        safe = safe and 2.0 * _partition_error(n, ell) <= _FAST_SUM_TOLERANCE * abs(kl)
    return h, ce, kl, safe


@_inline
def _divergence_pass(
    a: Any, b: Any, sides: tuple[int, int], shifts: tuple[float, float, float, float]
) -> tuple[float, float, float, float, int]:
    """:func:`_divergence_sums` on the rows typed C-contiguous where both strides allow."""
    if a.strides[0] == a.itemsize and b.strides[0] == b.itemsize:
        return _divergence_sums(unit_stride(a), unit_stride(b), sides, shifts)
    return _divergence_sums(a, b, sides, shifts)


@_inline
def _exp(x: float, fast: bool) -> float:
    r""":math:`e^x`: by :func:`exp_nonpositive` where ``fast`` (float32 inputs) and
    :math:`-708 \le x \le 0` (relative error at most 5.2e-11), else ``math.exp``
    (float64 inputs always: their results are those of ``math.exp``, bit for bit)."""
    if fast and _EXP_FLOOR <= x <= 0.0:
        return exp_nonpositive(x)
    return math.exp(x)


@_inline
def _add(total: float, compensation: float, x: float) -> tuple[float, float]:
    """Neumaier's compensated ``total + x``: the new total and the lost low part (none
    once the total is infinite or NaN, which it then stays)."""
    t = total + x
    if not math.isfinite(t):
        pass
    elif abs(total) >= abs(x):
        compensation += (total - t) + x
    else:
        compensation += (x - t) + total
    return t, compensation


@_once
def _log_partition(row: Any, with_entropy: bool, fast: bool) -> tuple[float, float, float]:
    r"""The shift ``m`` (the row maximum, 0 if not finite),
    ``ell = log1p(sum_{x < m} e^{x - m} + ties - 1)`` as ``_xp.log_sum_exp_shifted``,
    and (``with_entropy``) the entropy of the softmax from the same ``exp`` calls:

    .. math:: H = -\sum_i p_i \log p_i = \ell - \frac{1}{S}\sum_i e^{s_i} s_i,
              \qquad s_i = x_i - m,\ S = e^{\ell} = \sum_i e^{s_i},

    two non-negative parts (:math:`s_i \le 0`), so no cancellation; terms with
    :math:`e^{s_i} = 0` (``-inf`` logits) contribute 0."""
    if fast:
        m, rest, ties, weighted = _fast_sums(row, with_entropy)
        if math.isfinite(m):
            ell = math.log1p(rest + (ties - 1))
            if not with_entropy:
                return m, ell, 0.0
            return m, ell, ell - weighted / (rest + ties)
    m = -math.inf
    for x in row:
        if x > m:
            m = np.float64(x)
    if not math.isfinite(m):
        m = 0.0
    rest = 0.0
    ties = 0
    weighted = weighted_c = 0.0
    for x in row:
        s = np.float64(x) - m
        if s == 0.0:
            ties += 1
        else:
            e = math.exp(s)
            rest += e
            if with_entropy and e > 0.0:
                weighted, weighted_c = _add(weighted, weighted_c, e * s)
    ell = math.log1p(rest + (ties - 1))
    if not with_entropy:
        return m, ell, 0.0
    return m, ell, ell - (weighted + weighted_c) / (rest + ties)


@_inline
def _log_of(x: float) -> float:
    """``log x``, ``-inf`` at 0 (the generic ``safe_log``)."""
    return -math.inf if x == 0.0 else math.log(x)


@_inline
def _side(x: float, form: int, m: float, ell: float, need: int, fast: bool) -> tuple[float, float]:
    """An entry of a side as (probability, log-probability), each computed only if
    ``need`` has its bit (1: the probability, 2: the logarithm; 0.0 stands in); the
    probability by :func:`_exp` (``fast``: float32 inputs)."""
    if form == 0:
        return x, (_log_of(x) if need & 2 else 0.0)
    log_p = x if form == 1 else (x - m) - ell
    return (_exp(log_p, fast) if need & 1 else 0.0), log_p


@_inline
def _entr(x: float) -> float:
    """``scipy.special.entr``: ``-x log x``, 0 at 0, ``-inf`` below."""
    if x > 0.0:
        return -x * math.log(x)
    return 0.0 if x == 0.0 else (-math.inf if x < 0.0 else x)


@_inline
def _xlogy(x: float, y: float) -> float:
    """``scipy.special.xlogy``: 0 where ``x = 0`` (unless ``y`` is NaN)."""
    if x == 0.0 and y == y:
        return 0.0
    return x * _log_of(y)


@_inline
def _xlog1py(x: float, y: float) -> float:
    """``scipy.special.xlog1py``: 0 where ``x = 0`` (unless ``y`` is NaN)."""
    if x == 0.0 and y == y:
        return 0.0
    return x * math.log1p(y)


@_inline
def _rel_entr(x: float, y: float) -> float:
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


@_inline
def _js_term(p: float, q: float) -> float:
    """``_numerics.js_terms``: ``(p + q) / 4 * g(d)``, ``d = (p - q) / (p + q)``."""
    total = p + q
    if total == 0.0:  # (a NaN propagates: a hostile pass, it gave 0.0)
        return 0.0
    d = (p - q) / total
    if abs(d) <= 0.5:
        g = 2.0 * d * math.atanh(d) + math.log1p(-(d * d))
    else:
        g = -(_entr(2.0 * p / total) + _entr(2.0 * q / total))
    return total * g / 4.0


_LOG_SMALLEST_NORMAL = math.log(2.0**-1022)
"""Below it :math:`e^x` is subnormal in float64: :func:`_exp_times` scales the product."""


@_once
def _exp_times(log_x: float, y: float) -> float:
    r""":math:`e^{\log x}\,y` for :math:`y \ge 0` where :math:`e^{\log x}` is subnormal
    or underflows (``_numerics.exp_times``: :math:`e^{s} y 2^{-k}`, :math:`s = (\log x +
    k L_1) + k L_2` with the first sum exact; about :math:`3u`): issue 13, the
    cross-entropy of :math:`\log p = -745` against :math:`\log q = -10^{300}` was the
    rounded :math:`e^{-745} = 2^{-1074}` times :math:`10^{300}`. Called only for such
    entries (and ``log_x`` above -2048, below which every product is 0). :math:`y/4`
    and :math:`2^{2-k}`: :math:`e^{s} y` overflowed for :math:`y` near the largest float
    (:math:`+\infty` for :math:`e^{-1400} \cdot 1.7\cdot 10^{308}`)."""
    if not log_x > -2048.0:
        return math.exp(log_x) * y
    k = math.floor(-log_x / math.log(2.0) + 0.5)
    s = (log_x + k * _LN2_HIGH) + k * _LN2_LOW
    return math.ldexp(math.exp(s) * (0.25 * y), 2 - int(k))


@_inline
def _cross_from_log(p: float, log_p: float, log_q: float) -> float:
    """``-p log q``: 0 where ``p = 0``, ``+inf`` where only ``q = 0``: where ``p > 0`` or
    ``log p`` is finite (``p`` underflowed to 0; ``log_p`` is ``-inf`` for a zero
    probability), as ``_numerics.cross_terms_from_log``."""
    if log_q == -math.inf:
        return math.inf if p > 0.0 or log_p > -math.inf else 0.0
    if log_p < _LOG_SMALLEST_NORMAL and log_p > -math.inf:  # p subnormal: scaled
        return _exp_times(log_p, -log_q)
    return -(p * log_q)


@_inline
def _kl_from_log(p: float, log_p: float, log_q: float, p_from_log: bool = True) -> float:
    """``p (log p - log q)``: 0 where ``p = 0``, ``+inf`` where only ``q = 0``; the
    product scaled (:func:`_exp_times`) where ``p = exp(log p)`` (``p_from_log``) is
    subnormal (a given probability is exact, its rounded log not)."""
    if log_p == -math.inf:
        return 0.0
    if log_q == -math.inf:
        return math.inf
    if p_from_log and log_p < _LOG_SMALLEST_NORMAL:  # p subnormal: scaled
        difference = log_p - log_q
        return math.copysign(_exp_times(log_p, abs(difference)), difference)
    return p * (log_p - log_q)


@_once
def _suspect(
    form: int, m: float, ell: float, total: float, lo: float, hi: float, tol: float
) -> bool:
    """Whether a row may fail its validation (then checked in full): probabilities
    outside [0, 1] or summing to more than ``tol`` from 1, log-probabilities whose
    exp-sum is or whose largest entry ``m`` is above 0 (a probability above 1), logits
    with NaN or ``+inf`` or all ``-inf`` (``ell`` not finite).  NaN fails every
    comparison."""
    if form == 0:
        return not (abs(total - 1.0) <= tol and lo >= 0.0 and hi <= 1.0)
    if form == 1:
        return not (abs(math.exp(m + ell) - 1.0) <= tol and m <= 0.0)
    return not math.isfinite(ell)


@_once
def _side_error(form: int, n: int, ell: float, fast: bool) -> float:
    r"""A bound on the error of the loop's log-probabilities of a side, besides
    :math:`2u|\log p_i|` an entry (:func:`_loop_kl_bound`): 0 for probabilities and
    log-probabilities; for logits, the log-partition's error (:func:`_partition_error`
    for float32 inputs; for float64, :func:`_log_partition_compensated`'s:
    :math:`(4 + \log n)u + 2.02(n u)^2 + 2u|\ell|`, here with :math:`2u` and 1 % to
    spare) and the rounding of :math:`x - m`, :math:`u\ell`."""
    if form != 2:
        return 0.0
    if fast:
        return _partition_error(n, ell) + _U * abs(ell)
    spread = (n + 1.0) * _U
    return (6.0 + math.log(n + 1.0)) * 1.01 * _U + 2.02 * spread * spread + 3.0 * _U * abs(ell)


@_once
def _log_partition_compensated(row: Any) -> tuple[float, float]:
    r"""``m`` and ``ell`` of :func:`_log_partition` (float64, no entropy) with the
    exp-sum compensated, branch-free.

    The sum starts at 1 and adds every :math:`e_i = e^{x_i - m}`, the maximal terms
    (:math:`e_i = 1`) among them, by Fast2Sum: :math:`t = T + e`, whose rounding error
    :math:`e - (t - T)` is exact since :math:`T \ge 1 \ge e` (Dekker's condition
    :math:`|T| \ge |e|`), and gathered in ``c``. Then
    :math:`\ell = \operatorname{log1p}((T - 2) + c)`, the 2 removing the start and
    the 1 of :math:`\log(1 + (S - 1))`, :math:`S = \sum_i e_i \ge 1`.

    Error of ``ell``: the cascade (Ogita, Rump and Oishi's Sum2, with Fast2Sum where its
    condition holds: the same error-free transformation) gives :math:`T + c` within
    :math:`\gamma_n^2 (1 + S)` of :math:`1 + S`; :math:`T - 2` (exact while
    :math:`T \le 4`, Sterbenz) and the addition of ``c`` round by :math:`u(S - 1)`
    each, so ``log1p``'s argument errs by at most :math:`(2u + 2.02(nu)^2) S` and
    ``ell`` by its quotient by :math:`S`; besides, ``math.exp`` (:math:`2u` relative),
    the rounding of :math:`s_i = x_i - m` (:math:`u|s_i|` relative,
    :math:`u\sum_i p_i |s_i| = u(H - \ell) \le u \log n` in all) and ``log1p``
    (:math:`2u|\ell|`): at most :math:`(4 + \log n)u + 2.02(nu)^2 + 2u|\ell|`
    (:func:`_side_error`), where the plain sum's :math:`\gamma_{n-1}` made the bound
    :math:`n` ulps. Neumaier's sum (:func:`_add`, a branch and a finiteness test an
    entry) took 1.1 times the plain sum's time; this one takes about the plain sum's.

    Not finite entries: an infinite or NaN ``T`` drops ``c`` (the compensation is then
    NaN), so ``ell`` is :math:`+\infty` or NaN as the plain sum's; a row of
    :math:`-\infty` (``m`` then 0) sums to 1, ``ell`` :math:`-\infty`."""
    m, ell, _ = _log_partition_pair(row)
    return m, ell


@_once
def _log_partition_pair(row: Any) -> tuple[float, float, float]:
    r""":func:`_log_partition_compensated`'s ``m`` and ``ell`` (the same bits) and
    ``ell``'s rounding as a low part, :math:`\ell_{lo} = \operatorname{log1p}\sigma -
    \ell \approx (\sigma - \operatorname{expm1}\ell)/(1 + \sigma)`, :math:`\sigma =
    (T - 2) + c` (exact by Sterbenz; ``expm1``'s rounding, an ulp of :math:`\sigma`,
    leaves :math:`\ell + \ell_{lo}` within about :math:`u` of the log of the computed
    sum, itself within :math:`(2 + \log n)u` of the true one: see there). 0 where
    ``ell`` is not finite."""
    m = _row_max(row)
    if not math.isfinite(m):
        m = 0.0
    total = 1.0
    lost = 0.0
    for x in row:
        e = math.exp(np.float64(x) - m)
        t = total + e
        lost += e - (t - total)
        total = t
    if not math.isfinite(total):
        lost = 0.0
    sigma = (total - 2.0) + lost
    ell = math.log1p(sigma)
    low = (sigma - math.expm1(ell)) / (1.0 + sigma) if math.isfinite(ell) else 0.0
    return m, ell, low


_EXP_POSITIVE_FLOOR = 746.0
r"""Where :math:`e^x > 0` in float64, :math:`x > -745.2`: a bound on :math:`|\log p_i|`
where P is logits (:math:`\log p_i \le 0`) or log-probabilities (:math:`e^x` finite)
and :math:`p_i > 0`."""


@_once
def _loop_bound_weights(
    form_a: int, errors: tuple[float, float], n: int, fast: bool
) -> tuple[float, float, float, int]:
    r"""The weights of the loop's cheap error bound (:func:`_loop_kl_bound_cheap`):
    ``slope`` and ``kappa`` of its one sum :math:`L`, the factor ``t_weight`` of
    :math:`T = \sum_i |t_i|` (0 where the loop does not sum it) and the form of
    :math:`L`'s terms, ``mode`` (:func:`_cheap_bound_term`).

    The precise bound (:func:`_loop_kl_bound`) is :math:`2u L_w + e^P(\Pi + T) +
    e^Q\Pi + c_t T + u|D|`, :math:`c_t = \rho + 2u + 1.01 n^2u^2` (the rounding of the
    terms and of Neumaier's sum; :math:`\rho = 0` where P is probabilities, exact
    inputs), :math:`L_w = \sum_i p_i(|\log p_i| w_i + |\log q_i|)`, :math:`w_i = 1 +
    |r_i|` where P is logits, else 1. Each mode bounds it by
    :math:`\mathrm{slope}\cdot L + t_{\mathrm{weight}} T + u|D|`, the mass term
    :math:`(e^P + e^Q)\Pi` riding in :math:`L` as :math:`\kappa\Pi`,
    :math:`\kappa = (e^P + e^Q)/\mathrm{slope}`:

    * 0, P probabilities or float64 log-probabilities (:math:`e^P = 0`, :math:`c_t`
      a few :math:`u`): :math:`L = \sum_i p_i(|\log p_i| + |\log q_i| + \kappa)` and
      :math:`T \le L_w` (:math:`|r_i| \le |\log p_i| + |\log q_i|`): slope
      :math:`2u + c_t`, no :math:`T`;
    * 1, float64 logits (:math:`e^P` tens of :math:`u`, :math:`T` near :math:`|D|`
      where :math:`L_w` is near :math:`H + H(P, Q)`, so :math:`T` apart):
      :math:`L = \sum_i p_i(|\log p_i|(1 + |r_i|) + |\log q_i| + \kappa)`, slope
      :math:`2u`, ``t_weight`` :math:`e^P + c_t`;
    * 2, float32 logits or log-probabilities (:math:`\rho = 5.2\cdot 10^{-11}`
      dwarfs :math:`u`): :math:`L = \sum_i p_i(|\log q_i| + \kappa)`, slope
      :math:`4u`, ``t_weight`` :math:`e^P + c_t + 2u(1 + 746)`, from
      :math:`\sum_i p_i|\log p_i| \le T + \sum_i p_i|\log q_i|` and, where P is logits,
      :math:`\sum_i p_i|\log p_i||r_i| \le 746\,T` (:data:`_EXP_POSITIVE_FLOOR`)."""
    u = _U
    rho = 0.0 if form_a == 0 else (5.2e-11 if fast else 2.0 * u)
    rounding = rho + 2.0 * u + 1.01 * (n * u) ** 2
    mass = errors[0] + errors[1]
    if form_a != 0 and fast:
        t_weight = errors[0] + rounding + 2.0 * u * (1.0 + _EXP_POSITIVE_FLOOR)
        return 4.0 * u, mass / (4.0 * u), t_weight, 2
    if form_a == 2:
        return 2.0 * u, mass / (2.0 * u), errors[0] + rounding, 1
    slope = 2.0 * u + rounding
    return slope, mass / slope, 0.0, 0


@_inline
def _cheap_bound_term(p: float, log_p: float, log_q: float, kappa: float, mode: int) -> float:
    r"""An entry's term of the cheap bound's sum :math:`L` in ``mode``
    (:func:`_loop_bound_weights`): 0, :math:`p(|\log p| + |\log q| + \kappa)`; 1,
    :math:`p(|\log p|(1 + |\log p - \log q|) + |\log q| + \kappa)`; 2,
    :math:`p(|\log q| + \kappa)`."""
    if mode == 0:
        return p * ((abs(log_p) + abs(log_q)) + kappa)
    if mode == 1:
        return p * (abs(log_p) * (1.0 + abs(log_p - log_q)) + (abs(log_q) + kappa))
    return p * (abs(log_q) + kappa)


@_once
def _loop_kl_bound_cheap(
    kl: float, logs: float, t_abs: float, weights: tuple[float, float, float, int], n: int
) -> float:
    r"""A bound on the error of the compensated loop's KL from its one or two cheap
    sums: :math:`\mathrm{slope}\cdot L + t_{\mathrm{weight}} T + u|D|`
    (:func:`_loop_bound_weights`), enlarged for its own rounding.

    It bounds :func:`_loop_kl_bound`'s
    :math:`2u L_w + e^P(\Pi + T) + e^Q\Pi + c_t T + u|D|` in each mode (the derivations
    are :func:`_loop_bound_weights`'): :math:`|t_i|` and :math:`p_i|r_i|` agree to two
    roundings, so the computed :math:`T` may stand for :math:`\sum_i p_i|r_i|` within a
    factor :math:`1 + 3u`. Rounding: :math:`L`'s terms are non-negative and each
    carries at most six roundings, so the computed sum is within a factor
    :math:`1 + \gamma_{n+6}` of its value; the whole is enlarged by
    :math:`(1 + 2(n + 8)u)(1 + 2^{-20})`, which covers both."""
    slope, _, t_weight, _ = weights
    u = _U
    bound = slope * logs + t_weight * t_abs + u * abs(kl)
    return bound * (1.0 + 2.0 * (n + 8.0) * u) * (1.0 + 2.0**-20)


@numba.njit(error_model="numpy", nogil=True)
def _kl_loop_one_probs(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    shifts: tuple[float, float, float, float],
    bound: tuple[float, int, bool],
    checks: tuple[bool, bool],
) -> tuple[float, float, float, float, tuple[float, float, float, float, float, float]]:
    r"""The loop of :func:`_row` for the KL alone where one side is probabilities, in a
    function of its own (no branch on the measures wanted, fewer values live across
    the ``log``/``exp`` calls): the same entries (:func:`_side`), terms and Neumaier
    sum in the same order, so the same KL, bit for bit.

    ``bound``: ``kappa``, the form of the cheap bound's terms and whether :math:`T` is
    summed (:func:`_loop_bound_weights`); ``checks``: whether each side's
    probabilities are screened (their sum, least and largest entry, in the loop's
    order). Returns the KL's sum and compensation, the cheap bound's :math:`L` and
    :math:`T`, and the screening's six values."""
    form_a, form_b = forms
    m_a, ell_a, m_b, ell_b = shifts
    kappa, mode, apart = bound
    check_a, check_b = checks
    fast = _narrow(a)
    kl = kl_c = logs = t_abs = 0.0
    sum_a = sum_b = 0.0
    lo_a = lo_b = math.inf
    hi_a = hi_b = -math.inf
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        if check_a:  # a NaN makes the sum NaN
            sum_a += x
            lo_a, hi_a = min(lo_a, x), max(hi_a, x)
        if check_b:
            sum_b += y
            lo_b, hi_b = min(lo_b, y), max(hi_b, y)
        p, log_p = _side(x, form_a, m_a, ell_a, 3, fast)
        _, log_q = _side(y, form_b, m_b, ell_b, 2, fast)
        term = _kl_from_log(p, log_p, log_q, form_a != 0)
        kl, kl_c = _add(kl, kl_c, term)
        if log_p != -math.inf:
            logs += _cheap_bound_term(p, log_p, log_q, kappa, mode)
            if apart:
                t_abs += abs(term)
    return kl, kl_c, logs, t_abs, (sum_a, lo_a, hi_a, sum_b, lo_b, hi_b)


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _loop_bound_sums(
    a: Any, b: Any, forms: tuple[int, int], shifts: tuple[float, float, float, float]
) -> tuple[float, float, float]:
    r""":func:`_loop_kl_bound`'s sums :math:`\sum_i |t_i|`,
    :math:`\sum_i p_i(|\log p_i| w_i + |\log q_i|)` and :math:`\Pi` of rows ``a``, ``b``,
    from the loop's own entries (:func:`_side` with the same shifts, so the same
    values): the precise bound, for the rows the cheap one did not certify."""
    form_a, form_b = forms
    m_a, ell_a, m_b, ell_b = shifts
    fast = _narrow(a)
    t_abs = logs = mass = 0.0
    for i in range(a.shape[0]):
        p, log_p = _side(np.float64(a[i]), form_a, m_a, ell_a, 3, fast)
        _, log_q = _side(np.float64(b[i]), form_b, m_b, ell_b, 2, fast)
        if log_p == -math.inf:
            continue
        t_abs += abs(_kl_from_log(p, log_p, log_q, form_a != 0))
        weight = 1.0 + abs(log_p - log_q) if form_a == 2 else 1.0
        logs += p * (abs(log_p) * weight + abs(log_q))
        mass += p
    return t_abs, logs, mass


@_once
def _loop_kl_bound(
    kl: float,
    sums: tuple[float, float, float],
    errors: tuple[float, float],
    n: int,
    sides: tuple[int, bool],
) -> float:
    r"""A bound on the error of the compensated loop's KL :math:`\sum_i t_i`,
    :math:`t_i = p_i(\log p_i - \log q_i)`, where one side is probabilities (the
    precise bound: :func:`_loop_bound_sums` gives its sums in a pass of their own).

    Each computed logarithm errs by :math:`2u|\log p_i|` (``math.log`` within an ulp, or
    the rounding of :math:`(x - m) - \ell`; 0 for log-probabilities, their inputs, so
    there the term is spare) plus its side's ``errors`` (0, or a logits side's
    :func:`_side_error`); where P is logits or log-probabilities,
    :math:`p_i = e^{\log p_i}` takes that error, relative, and its own :math:`\rho`
    (``math.exp``: :math:`2u`; the polynomial: 5.2e-11), so :math:`t_i` errs by
    :math:`p_i(e^P_i (1 + |r_i|) + e^Q_i) + (\rho + 2u)|t_i|` (the difference and the
    product rounded), :math:`r_i = \log p_i - \log q_i`, :math:`e^P_i`, :math:`e^Q_i`
    the two logarithms' errors; where P is probabilities :math:`p_i` is the input,
    exact: no factor :math:`1 + |r_i|` and :math:`\rho = 0` (and where P is
    log-probabilities :math:`e^P_i = 0`: the factor multiplies nothing). Neumaier's sum
    errs by :math:`u|D| + 1.01 n^2u^2 \sum|t_i|`. ``sums``: :math:`T = \sum|t_i|`,
    :math:`L_w = \sum p_i(|\log p_i| w_i + |\log q_i|)` (:math:`w_i = 1 + |r_i|` where P
    is logits, else 1) and :math:`\Pi`; ``sides``: P's form and whether the inputs are
    float32 (the polynomial ``exp``). The whole enlarged by :math:`2^{-20}` (the bound's
    own rounding)."""
    t_abs, logs, mass = sums
    form_a, fast = sides
    u = _U
    rho = 0.0 if form_a == 0 else (5.2e-11 if fast else 2.0 * u)
    mass_terms = errors[0] * (mass + t_abs) + errors[1] * mass
    rounding = (rho + 2.0 * u + 1.01 * (n * u) ** 2) * t_abs + u * abs(kl)
    return (2.0 * u * logs + mass_terms + rounding) * (1.0 + 2.0**-20)


_PSI_EVEN64 = tuple(1.0 / math.factorial(k + 2) for k in range(16, -1, -2))
_PSI_ODD64 = tuple(1.0 / math.factorial(k + 2) for k in range(17, 0, -2))
r""":math:`\psi(x) = e^x - 1 - x = x^2 \sum_k a_k x^k`, :math:`a_k = 1/(k + 2)!`:
the even :math:`a_{16}, \dots, a_0` and odd :math:`a_{17}, \dots, a_1` coefficients
(Horner's order, in :math:`x^2`; :func:`_psi_series`). For :math:`|x| \le 1` the
remainder is below :math:`1.1/20! < 4.4\cdot 10^{-19}`, under :math:`2^{-55}` of
:math:`\psi(x)/x^2 \ge e^{-1}`."""


@_inline
def _psi_series(x: float) -> float:
    r""":math:`\psi(x)/x^2 = E(x^2) + x\,O(x^2)` for :math:`|x| \le 1`
    (:data:`_PSI_EVEN64`, :data:`_PSI_ODD64`): two Horner chains of nine steps in
    :math:`y = x^2 \ge 0`, independent (half the latency of one chain of eighteen).
    Error: each chain's coefficients are positive and every partial sum is within
    :math:`1 + 1/12` of its leading coefficient's share, so each chain errs by at most
    :math:`1.1u` of its value (and :math:`y` by :math:`u`, :math:`1.1u` more); the
    product and the sum add :math:`u(|E| + |xO|)` each, and :math:`|E| + |xO| \le
    \sum_k a_k|x|^k \le e - 2 < 1.95\,\psi(x)/x^2`: at most :math:`1.95 \cdot 4.3u
    < 8.4u` of the value, :math:`0.25u` more for the truncation."""
    y = x * x
    return _horner(y, _PSI_EVEN64) + x * _horner(y, _PSI_ODD64)


_RATIO_SERIES = 1.0
r"""Where :math:`|r_i| \le` this, :func:`_kl_ratio_pass` takes :math:`\psi(-r_i)` from
its series (:func:`_psi_series`), else :math:`(q_i - p_i) + p_i r_i`."""

_RATIO_RANGE = 2.0**1000
"""The ratios :math:`p_i/q_i` :func:`_kl_ratio_pass` takes: within a factor of this
from 1 (no subnormal or infinite quotient), else it gives way."""

_NORMAL = 2.0**-1022
"""The least positive normal float64: a computed probability below it (but not 0 from
a ``-inf`` entry) lost its relative accuracy, and :func:`_kl_ratio_pass` gives way."""


@_contract
def _computed_probability(
    y: float, form: int, m: float, scale: float, exp_y: tuple[float, float, bool]
) -> tuple[float, float]:
    r"""An entry of the side that is not probabilities as a probability ``hi + lo``:
    logits (form 2), :math:`e^{h}(1 + l)\cdot` ``scale`` with :math:`h + l = y - m`
    exact (:func:`_two_diff`), relative error at most :math:`4.1u + u` (the exp, the
    rounded :math:`1 + l`, the product, :math:`e^l - 1 - l`, the scaling), ``lo`` 0;
    log-probabilities (form 1), :math:`e^y` by :func:`_exp_dd` (``hi`` within
    :math:`u`, ``hi + lo`` within about :math:`2^{-104}`): ``exp_y``'s first two
    values where its third is true (the caller's :func:`_exp_dd_row` of the row, the
    same bit for bit), else computed here. 0 at ``-inf``; NaN where
    the pass cannot take the entry (a NaN, a positive log-probability, or
    :math:`y \le -745`)."""
    if y == -math.inf:
        return 0.0, 0.0
    if form == 2:
        h, low = _two_diff(y, m)
        return math.exp(h) * (1.0 + low) * scale, 0.0
    if not (-745.0 < y <= 0.0):
        return math.nan, 0.0
    if exp_y[2]:
        return exp_y[0], exp_y[1]
    return _exp_dd(y)


@_inline
def _ratio_term(p: float, q: float, eta: tuple[float, float]) -> tuple[float, float, bool]:
    r"""The Bregman term :math:`p\,\psi(-r) = q - p + p r \ge 0`, :math:`r = \log(p/q)`,
    of positive normal :math:`p`, :math:`q`, and its error weight :math:`w` (the
    bound of :func:`_kl_ratio_pass` is :math:`u \sum_i w_i` plus terms of the sums);
    whether the ratio is in range (:data:`_RATIO_RANGE`). ``eta``: the relative
    error of the computed side, counted as :math:`\eta_Q|q - p|` (Q computed) and as
    :math:`\eta_P p|r|` (P computed), in units of :math:`u`."""
    eta_q, eta_p = eta
    t = p / q
    if not (1.0 / _RATIO_RANGE < t < _RATIO_RANGE):
        return 0.0, 0.0, False
    r = math.log(t)
    gap = abs(q - p)
    size = abs(r)
    if size <= _RATIO_SERIES:
        x = -r
        term = p * ((x * x) * _psi_series(x))
        weight = gap * ((1.01 + eta_q) + 2.0 * size) + eta_p * (p * size)
    else:
        term = (q - p) + p * r
        weight = (2.0 + eta_q) * gap + (5.01 + eta_p) * (p * size)
    return term, weight, True


_RATIO_LEAST_KL = 2.0**-10
r"""The least KL (as the loop gives it) for which :func:`_row` tries
:func:`_kl_ratio_pass` after the loop's bound failed: below it, rows of realistic
sides nearly agree and the pass's bound, about :math:`u\sum_i |q_i - p_i|`, does not
stand against :math:`2^{-47}` of a KL of order :math:`\sum_i (p_i - q_i)^2/q_i`, so
the exact sums run at once (the pass cost some 20 ms per 10^6 entries for nothing).
A speed choice only: every returned KL is certified or exact either way."""


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _kl_ratio_pass(
    a: Any,
    b: Any,
    sides: tuple[tuple[int, int], tuple[bool, bool]],
    shifts: tuple[float, float, float, float],
) -> tuple[float, float, bool, tuple[float, float, float, float, float, float]]:
    r"""KL of a row of probabilities against logits or log-probabilities, or the
    reverse, in Bregman (ratio) form: the KL, a rigorous bound on its error, whether
    the pass could take the row, and the screening values of
    :func:`_kl_loop_one_probs` (the same sums, in the same order). ``sides``: the two
    forms and whether each side's probabilities are screened.

    With :math:`p_i`, :math:`q_i` the two sides' probabilities (the computed side's by
    :func:`_computed_probability`: logits scaled by :math:`e^{-\ell}`), :math:`r_i =
    \log(p_i/q_i)` taken from the ratio (so its error is a few :math:`u` absolute,
    plus :math:`2u|r_i|`, where :math:`\log p_i - \log q_i` erred by
    :math:`u(|\log p_i| + |\log q_i|)`) and the masses :math:`\Pi = \sum_i p_i`,
    :math:`K = \sum_i q_i`:

    .. math:: D = B + \Pi - K, \qquad B = \sum_i p_i \psi(-r_i), \quad \psi(x) = e^x
              - 1 - x \ge 0,

    every term of :math:`B` non-negative (no cancellation), by its series
    (:func:`_psi_series`) where :math:`|r_i| \le 1`, else as :math:`(q_i - p_i) +
    p_i r_i`; a :math:`p_i = 0` contributes :math:`q_i`. Each sum is Neumaier's
    (:func:`_add_select`). Where P is logits its computed probabilities
    :math:`\tilde p_i` need not sum to 1: with :math:`\tilde\Pi = \sum_i \tilde p_i =
    1 + g`, :math:`D(\tilde P/\tilde\Pi\,\|\,Q) = B/\tilde\Pi + g/(1 + g) -
    \log(1 + g) - (K - 1)/(1 + g)`, the middle two by their series (:math:`|g| \le
    2^{-20}`, else the pass gives way); where Q is logits, :math:`K = 1` exactly and
    the computed :math:`\tilde q_i = c\,q_i(1 + \eta_i)` only shift every :math:`r_i`
    by :math:`\epsilon = -\log c`, which changes :math:`D` by :math:`\epsilon(\Pi - 1)
    + O(\epsilon^2)`; log-probabilities' masses come from :func:`_exp_dd` in
    double-double.

    Bound (:math:`u = 2^{-53}`; the constants carry a few per cent to spare): an
    error :math:`\delta_i` of :math:`r_i` (of :math:`q_i`, relative) changes the term
    by :math:`(p_i - q_i)\delta_i + q_i\psi(-\delta_i)`, so only in the second order
    of the two sides' distance: this is what the loop's first-order form
    :math:`p_i(\log p_i - \log q_i)` lacks. Per entry, :math:`w_i` in units of
    :math:`u` (:func:`_ratio_term`): the quotient (:math:`u`, :math:`1.01u` in
    :math:`r_i`) and ``math.log`` (an ulp, :math:`2u|r_i|`) give :math:`|q_i - p_i|
    (1.01 + 2|r_i|)` through the series, whose own rounding (:func:`_psi_series`,
    :math:`8.7u`, then three products) is at most :math:`12u` of the term,
    :math:`12u B` in all; the direct form, with
    :math:`|r_i| > 1`, errs by :math:`p_i|\alpha_i| + u|q_i - p_i| + 2u p_i|r_i|`
    (:math:`\alpha_i` the error of :math:`r_i`), at most :math:`2|q_i - p_i| +
    5.01p_i|r_i|`; the computed side's relative error :math:`\eta` adds
    :math:`\eta|q_i - p_i|` where Q is computed (:math:`(p - q)\delta`), and
    :math:`\eta p_i|r_i|` (and :math:`\eta D` once) where P is, :math:`\eta = 5.2` for
    logits and :math:`1.01` for :func:`_exp_dd`'s ``hi`` (its ``lo`` goes into the
    mass). Besides: Neumaier's sum of :math:`B` (:math:`uB + 1.01n^2u^2B`), the
    masses (:math:`u|\Pi - K| + 1.01n^2u^2(\Pi + K)`, :func:`_exp_dd`'s
    :math:`2^{-100}K`), the common shift (:math:`|\epsilon||\Pi - 1|`, :math:`|\epsilon|
    \le |\tilde K - 1| + 6.3u`: the logits' :math:`\eta = 5.2` and the logarithm's
    rounding, with a few per cent to spare), the second-order terms
    :math:`q_i\psi(-\delta_i)` and :math:`g^4` (below :math:`2^{-80}(\Pi + K)`), the
    final divisions and additions (:math:`u` each of their results). The sum
    :math:`\sum_i w_i` of non-negative terms, each with at most eight roundings, is
    within :math:`1 + \gamma_{n+8}` of its value: the whole is enlarged by
    :math:`(1 + 2(n + 8)u)(1 + 2^{-20})`.

    Gives way (the caller's loop then runs) on anything outside these assumptions: a
    NaN, a probability outside :math:`[0, \infty)`, a positive log-probability, an
    entry below :math:`e^{-745}` or a computed probability below the normal range, a
    zero :math:`q_i` where :math:`p_i > 0` (the KL is then :math:`+\infty`, which the
    loop gives), a quotient out of range."""
    (form_a, form_b), (check_a, check_b) = sides
    m_a, ell_a, m_b, ell_b = shifts
    probs_a = form_a == 0
    computed_form = form_b if probs_a else form_a
    logits = computed_form == 2
    eta_side = 5.2 if logits else 1.01
    eta = (eta_side, 0.0) if probs_a else (0.0, eta_side)
    m = m_b if probs_a else m_a
    scale = math.exp(-(ell_b if probs_a else ell_a)) if logits else 1.0
    bregman = bregman_c = weights = 0.0
    p_s = p_c = q_s = q_c = lows = 0.0
    sum_a = sum_b = 0.0
    lo_a = lo_b = math.inf
    hi_a = hi_b = -math.inf
    fail = (0.0, 0.0, False, (sum_a, lo_a, hi_a, sum_b, lo_b, hi_b))
    # A log-probability side's e^y (_exp_dd) of the whole row first, vectorised, where
    # its stride is unit (strided, the vectorised loop's gathers gained nothing); else
    # entry by entry. (The row's arrays unpacked here: taken from a tuple in the loop,
    # each entry cost a reference count's increment and decrement. Written otherwise,
    # without the scalar call kept in the loop, LLVM compiled the logits' loop 25 %
    # slower, measured.)
    computed_row = b if probs_a else a
    rowwise = computed_form == 1 and computed_row.strides[0] == computed_row.itemsize
    exp_hi, exp_lo = np.empty(1), np.empty(1)
    if rowwise:
        exp_hi, exp_lo = _exp_dd_of_row(computed_row, 0.0, np.bool_(True))  # (not a literal)
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        if check_a:
            sum_a += x
            lo_a, hi_a = min(lo_a, x), max(hi_a, x)
        if check_b:
            sum_b += y
            lo_b, hi_b = min(lo_b, y), max(hi_b, y)
        given = x if probs_a else y
        j = i if rowwise else 0
        at = (exp_hi[j], exp_lo[j], rowwise)
        hi, lo = _computed_probability(y if probs_a else x, computed_form, m, scale, at)
        if not (given >= 0.0 and hi >= 0.0) or given == math.inf:
            return fail
        p, q = (given, hi) if probs_a else (hi, given)
        p_s, p_c = _add_select(p_s, p_c, p)
        q_s, q_c = _add_select(q_s, q_c, q)
        lows += lo
        if p == 0.0:
            if not probs_a and x != -math.inf:
                return fail  # an underflowed e^{x_i}
            bregman, bregman_c = _add_select(bregman, bregman_c, q)
            weights += eta[0] * q
            continue
        if q < _NORMAL or p < _NORMAL:
            return fail  # q = 0 (an infinite KL) or a subnormal side
        term, weight, ok = _ratio_term(p, q, eta)
        if not ok:
            return fail
        bregman, bregman_c = _add_select(bregman, bregman_c, term)
        weights += weight
    screened = (sum_a, lo_a, hi_a, sum_b, lo_b, hi_b)
    b_total = bregman + bregman_c
    if not math.isfinite(b_total):
        return fail
    n = a.shape[0]
    u = _U
    sq = 1.01 * (n * u) ** 2
    pi_total, k_total = p_s + (p_c + (lows if not probs_a else 0.0)), q_s + q_c
    if probs_a:
        mass = (p_s - q_s) + ((p_c - q_c) - lows) if not logits else (p_s - 1.0) + p_c
        kl = b_total + mass
        shift = abs(k_total - 1.0) + 6.3 * u if logits else 0.0
        mass_error = u * abs(mass) + sq * (pi_total + k_total) + shift * abs(mass)
        extra = 0.0
    elif logits:
        g = (p_s - 1.0) + p_c
        if not abs(g) <= 2.0**-20:
            return fail
        k = (q_s - 1.0) + q_c
        correction = -(g * g) * (0.5 - g * (2.0 / 3.0))
        mass = correction - k / (1.0 + g)
        kl = b_total / pi_total + mass
        mass_error = u * (abs(b_total) + 3.0 * abs(k)) + sq * (pi_total + k_total)
        extra = eta_side * u * abs(kl)
    else:
        mass = (p_s - q_s) + ((p_c - q_c) + lows)
        kl = b_total + mass
        mass_error = u * abs(mass) + sq * (pi_total + k_total)
        extra = 0.0
    tiny = 2.0**-80 * (pi_total + k_total)
    bound = (
        u * weights
        + (12.0 * u + u + sq) * b_total
        + mass_error
        + extra
        + tiny
        + 2.0**-100 * k_total
        + u * abs(kl)
    )
    return kl, bound * (1.0 + 2.0 * (n + 8.0) * u) * (1.0 + 2.0**-20), True, screened


_ATANH_TAIL = tuple(1.0 / (2 * k + 3) for k in range(17, -1, -1))
r""":math:`1/(2k + 3)`, :math:`k = 17, \dots, 0` (Horner's order, in :math:`s^2`) of
:func:`_kl_probs_nonnegative`'s series: for :math:`s^2 \le 1/9` the remainder is below
:math:`9^{-18} < 2^{-57}` of the sum."""


@_once
def _kl_probs_nonnegative(a: Any, b: Any) -> float:
    r"""D(P||Q) of probability rows ``a``, ``b`` as a sum of non-negative terms plus the
    exact mass difference, for nearly equal rows, where the plain terms
    :math:`p\log(p/q)` cancel (issue 13: ``[.25, .25, .5]`` against ``[.25, .25 +
    2^-30, .5 - 2^-30]`` was :math:`1.2\cdot 10^{-9}` relative off):

    .. math:: D = \sum_i t_i + \sum_i (p_i - q_i), \qquad
              t_i = p_i \log\frac{p_i}{q_i} - p_i + q_i = p_i\,(r - \operatorname{log1p} r)
              \ge 0, \qquad r = \frac{q_i - p_i}{p_i}.

    Where :math:`q/2 \le p \le 2q` (:math:`p - q` exact, :math:`r \in [-1/2, 1]`), with
    :math:`s = r/(2 + r) \in [-1/3, 1/3]` and :math:`\operatorname{log1p} r = 2
    \operatorname{atanh} s`: :math:`r - \operatorname{log1p} r = rs - 2s^3 \sum_k
    s^{2k}/(2k + 3)` (:data:`_ATANH_TAIL`), whose two parts cancel by at most 8 %: about
    :math:`8u` a term. Elsewhere :math:`t_i` = :func:`_rel_entr` :math:`- (p_i - q_i)`,
    which cancels by a factor below 12 (:math:`p/q \notin [1/2, 2]`): under
    :math:`48u`. :math:`t_i = q_i` where :math:`p_i = 0`, :math:`+\infty` where only
    :math:`q_i = 0`. :math:`\sum_i (p_i - q_i)` from the exact differences
    (:func:`_two_diff`) as a double-double.

    Where :math:`|r| \le 2^{-6}` the term is a double-double (:func:`_near_term_dd`),
    and the terms are summed as one, the mass difference added, and the sum rounded
    once: the two sums can cancel (review follow-up: rows rounded to float64 whose
    ratios are near :math:`1 \pm 10^{-8}` have :math:`\sum_i t_i \approx
    -\sum_i (p_i - q_i)`; a row of 7 classes cancelled by 63 and was 19 ulps off with
    terms of a few ulps each, Neumaier's sum)."""
    hi = lo = mass_hi = mass_lo = 0.0
    special = 0.0
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        d_hi, d_lo = _two_diff(x, y)
        term_lo = 0.0
        if x > 0.0 and y > 0.0:
            if abs(d_hi) <= min(x, y):  # exact difference (Sterbenz)
                r = -d_hi / x
                if abs(r) <= _NEAR_RATIO:
                    term, term_lo = _near_term_dd(x, d_hi, r)
                else:
                    t = r / (2.0 + r)
                    t2 = t * t
                    term = x * (r * t - 2.0 * t * t2 * _horner(t2, _ATANH_TAIL))
            else:
                term = _rel_entr(x, y) - d_hi
        elif x == 0.0 and y >= 0.0:
            term = y
        else:
            term = _rel_entr(x, y)
        if math.isfinite(term):
            hi, lo = _dd_sum(hi, lo, term, term_lo)
        else:
            special += term
        if math.isfinite(d_hi):
            mass_hi, mass_lo = _dd_add(mass_hi, mass_lo + d_lo, d_hi)
    if special != 0.0 or special != special:  # (+inf, or a NaN of unvalidated input)
        return special
    hi, lo = _dd_sum(hi, lo, mass_hi, mass_lo)
    return hi + lo


_NEAR_RATIO = 2.0**-6
r"""The largest :math:`|r|` whose term :func:`_kl_probs_nonnegative` forms as a
double-double (:func:`_near_term_dd`)."""

_LOG1P_TAIL = tuple((-1.0) ** k / k for k in range(16, 2, -1))
r""":math:`(-1)^k/k`, :math:`k = 16, \dots, 3` (Horner's order): :math:`r - \operatorname
{log1p} r = r^2/2 + r^3 \sum_{k \ge 3} (-1)^k r^{k-3}/k`, the remainder below
:math:`|r|^{14}/17 < 2^{-88}` of :math:`r^2/2` for :math:`|r| \le 2^{-6}`."""


@_inline
def _near_term_dd(x: float, d: float, r: float) -> tuple[float, float]:
    r""":math:`x\,(r - \operatorname{log1p} r)` as a double-double, :math:`r = -d/x`
    (``r`` its rounding, :math:`|r| \le 2^{-6}`; :math:`d = x - y` exact): :math:`r`'s
    rounding error by one FMA (the remainder of the division is exact), :math:`r^2/2`
    in double-double, the rest :math:`r^3 \sum_k (-1)^k r^{k-3}/k` (under
    :math:`2^{-5}` of it) as a float: about :math:`2^{-100}` of the term, where
    :math:`x` times it does not underflow."""
    r_lo = -_fma(r, x, d) / x
    sq, sq_lo = _two_prod(r, r)
    sq_lo += 2.0 * r * r_lo
    rest = sq * r * _horner(r, _LOG1P_TAIL)
    f_hi, f_lo = _quick_two_sum(0.5 * sq, 0.5 * sq_lo + rest)
    p, e = _two_prod(x, f_hi)
    return _quick_two_sum(p, e + x * f_lo)


_LOG3 = math.log(3.0)
r""":math:`2\operatorname{atanh}(1/2)`: where :math:`|\delta| \le \log 3`,
:math:`|\tanh(\delta/2)| \le 1/2` (:func:`_js_logs_pass`; beyond it :func:`_js_term`,
whose far form has no cancellation, computes the term)."""


@_inline
def _shifted_pairs(x: float, m: float, ell: float) -> tuple[float, float, float, float]:
    """``x - m = h + l`` and ``h - ell = s + e``, each exact (TwoSum written out, inlined
    in :func:`_js_logs_pass`'s loop, whose flags have no ``reassoc``)."""
    h = x - m
    v = h - x
    low = (x - (h - v)) - (m + v)
    s = h - ell
    v = s - h
    return h, low, s, (h - (s - v)) - (ell + v)


@_inline
def _log_ratio(
    h_a: float, l_a: float, h_b: float, l_b: float, c_hi: float, c_lo: float, fast: bool
) -> float:
    r""":math:`\delta = (h_a + l_a) - (h_b + l_b) - (c_{hi} + c_{lo})` (:func:`_js_logs_pass`),
    with :math:`h_a - h_b` exact as :math:`d + d_{lo}` (TwoSum written out): :math:`d -
    c_{hi}` is exact by Sterbenz where :math:`c_{hi}` is near :math:`d` (nearly equal
    rows), so no digit of :math:`\delta` is lost to the rounding of :math:`h_a - h_b`
    (branch jsmixed3: up to :math:`2^{-52}` against log-ratios of 1e-12, where
    :math:`|h_b| < |h_a - h_b|/2`; JS of logits N(0, 1) 1e-12 apart against log-
    probabilities was 7e-5 relative off, 1e-3 apart 110 ulps). An infinite
    :math:`h` gives NaN (was :math:`\pm\infty`): not finite either way. Float32 rows
    (``fast``) keep the rounded difference (their entries' differences are exact in
    float64 but beside huge ones; their results kept bit for bit and their pass its
    speed)."""
    if fast:  # (float32 entries: their h_a - h_b exact but beside huge ones)
        return ((h_a - h_b) - c_hi) + ((l_a - l_b) - c_lo)
    d = h_a - h_b
    v = d - h_a
    d_lo = (h_a - (d - v)) - (h_b + v)
    return (d - c_hi) + (((l_a - l_b) + d_lo) - c_lo)


@_inline
def _side_of_js(x: float, m: float, ell: float, fast: bool) -> tuple[float, float, float]:
    r"""One side of :func:`_js_logs_pass`'s entry, a logit or a log-probability: the
    exact :math:`x - m` as the pair ``(h, l)`` and its probability :math:`e^{s}(1 + e + l)`,
    with :math:`s = (x - m) - \ell` and its low part ``e`` (:func:`_shifted_pairs`)."""
    h, low, s, e = _shifted_pairs(x, m, ell)
    # (a NaN log goes to the exp: it propagates, where ``s > -inf`` made it 0)
    p = _exp(s, fast) * (1.0 + (e + low)) if s != -math.inf else 0.0
    return h, low, p


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _js_logs_pass(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    partitions: tuple[float, float, float, float],
    c: tuple[float, float],
) -> tuple[float, float]:
    r"""One pass of :func:`_js_of_logs` with the log-ratio shift ``c`` (a pair
    ``hi + lo``): the JS sum and :math:`\sum_i q_i \operatorname{expm1}(\delta_i)` (as
    :math:`2qt/(1 - t)` where :math:`|t| \le 1/2`, else :math:`p - q`: no ``expm1``;
    :math:`p - q` too where :math:`\delta_i = \pm\infty`, a zero probability, whose
    :math:`q_i(e^{\delta_i} - 1)` is :math:`-q_i` or :math:`p_i`).
    Each term :math:`\tfrac{p + q}{4} g(t)`, :math:`t = \tanh(\delta/2)`,
    :math:`g = t\delta + \operatorname{log1p}(-t^2)` where :math:`|t| \le 1/2` (the two
    parts cancel by a factor below 3), else :func:`_js_term`; :math:`p` as
    :math:`e^{s}(1 + e + l)` from the exact :math:`x - m` (:func:`_two_diff`), so its
    rounding does not grow with :math:`|\log p|`. Both sides are logits or
    log-probabilities (forms 1 and 2: a side of probabilities takes :func:`_js_mixed_exact`)."""
    m_a, ell_a, m_b, ell_b = partitions
    form_a, form_b = forms
    c_hi, c_lo = c
    fast = _narrow(a)
    js = js_c = mass = mass_c = 0.0
    exact_mass = form_a != 2 or form_b != 2
    for i in range(a.shape[0]):
        h_a, l_a, p = _side_of_js(np.float64(a[i]), m_a, ell_a, fast)
        h_b, l_b, q = _side_of_js(np.float64(b[i]), m_b, ell_b, fast)
        # x - m_a and y - m_b exact as pairs: their difference keeps the digits of
        # nearly equal rows (shifted too), and huge logits never meet (x - y of 1e30s)
        delta = _log_ratio(h_a, l_a, h_b, l_b, c_hi, c_lo, fast)
        if not math.isfinite(delta):  # a zero probability (both: NaN, p - q = 0)
            term = _js_term(p, q)
            share = p - q
        elif abs(delta) <= _LOG3:  # |t| <= 1/2
            t = math.tanh(0.5 * delta)
            term = (p + q) * (t * delta + math.log1p(-(t * t))) / 4.0
            share = 2.0 * q * t / (1.0 - t)  # q (e^delta - 1), e^delta = (1 + t)/(1 - t)
        else:
            term = _js_term(p, q)
            share = p - q  # |p - q| >= (p + q)/2 here: a few ulps
        js, js_c = _add(js, js_c, term)
        # (compensated beside a side not exactly normalised, whose excess weighs the
        # shift's error to first order: the float sum's u^2 left rows of logits and
        # their own log-softmax 29 ulps off, jsexact2; two sides of logits keep the
        # plain sum, weighed to second order only)
        if exact_mass:
            mass, mass_c = _add(mass, mass_c, share)
        else:
            mass += share
    return js + js_c, mass + mass_c


@_inline
def _rescaled(js: float, scale: float) -> float:
    """``js`` times ``1 + scale`` (:func:`_js_of_logs`), as it is where ``scale`` is 0 or
    ``js`` not finite (``-0.0 * inf`` is NaN)."""
    return js + scale * js if scale != 0.0 and math.isfinite(js) else js


@_once
def _js_of_logs(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    partitions: tuple[float, float, float, float],
    lows: tuple[float, float],
) -> float:
    r"""JS(P, Q) of rows not both probabilities from the log-ratios
    :math:`\delta_i = \log p_i - \log q_i = (x_i - m_a) - (y_i - m_b) - c`,
    :math:`c = \ell_a - \ell_b` (``partitions``: each logits side's maximum and
    log-partition, 0 for log-probabilities), each :math:`x_i - m` exact as a pair
    (issue 13: from the separately rounded probabilities, :math:`p - q` of nearly equal
    rows lost its digits; up to 1e-4 relative off). Both sides are logits or
    log-probabilities: a side of probabilities takes :func:`_js_mixed_exact` (jsexact2).

    An error :math:`\epsilon` of :math:`c` (the log-partitions' and its own rounding)
    shifts every :math:`\delta_i`; to first order it moves the sum by
    :math:`\tfrac{\epsilon}{2}\sum_i (p_i - q_i) = 0`, to second by about
    :math:`\epsilon^2/8`. Where the bound :math:`\epsilon^2/4` exceeds :math:`2^{-49}`
    of the sum (nearly equal rows of logits), :math:`c` is corrected by
    :math:`\operatorname{log1p}\sum_i q_i \operatorname{expm1}(\delta_i) = \epsilon`
    (as :math:`\sum_i q_i e^{\delta_i} = \sum_i p_i = 1`), with the excess
    :math:`\sum_i p_i - 1` of a side of probabilities or log-probabilities
    (:func:`_side_excess`), kept as the low part of :math:`c`, and the sum taken again.
    Beside such a side the sum moves with the shift to first order (by about
    :math:`\epsilon` times the excess): the mass is summed compensated and the shift
    solved exactly (branch jsexact2: JS of logits and their own rounded log-softmax
    was 1.25e17 ulps off, uncorrected; probabilities and their logits up to 22).

    A logits side's probabilities :math:`e^{s_i}` (:math:`s_i = x_i - m - \ell`) are
    its true ones times :math:`e^{\ell_{lo}}` (``lows``: the rounding of its
    log-partition, :func:`_log_partition_pair`; 0 for float32 rows and other forms),
    which moves a pass's sum by :math:`\ell_{lo}\,D(P\,\|\,M)/2` (P that side; about
    :math:`\ell_{lo}\,\mathrm{JS}/2` for nearly equal rows, and never more than
    :math:`|\ell_{lo}|\,\mathrm{JS}`: :math:`D(P\,\|\,M) \le 2\,\mathrm{JS}`): each
    pass's sum is taken times :math:`1 - (\ell_{lo,a} + \ell_{lo,b})/2` (branch
    jsexact4: logits against log-probabilities 1e-3 apart were 3.2 ulps off, random
    rows and two sides of logits up to 5)."""
    _, ell_a, _, ell_b = partitions
    scale = -0.5 * (lows[0] + lows[1])
    c = ell_a - ell_b
    # The correction needs each side's exact sum: a side of logits is exactly
    # normalised, one of probabilities sums to 1 + excess (summed compensated), one of
    # log-probabilities to 1 + excess (summed in triple-double, _side_excess:
    # branch jsexact2, JS of logits and their own rounded log-softmax was 1.25e17
    # ulps off, c's rounding uncorrected); between log-probabilities and probabilities
    # (or two sides of log-probabilities) c = 0 exactly.
    if forms[0] != 2 and forms[1] != 2:
        js, _ = _js_logs_pass(a, b, forms, partitions, (c, 0.0))
        return js  # (no logits: no scale)
    n = a.shape[0]
    fast = _narrow(a)
    epsilon = 2.0 * _U * (abs(ell_a) + abs(ell_b)) + (
        _partition_error(n, ell_a) + _partition_error(n, ell_b)
        if fast
        else 2.0 * (n + 2) * _U + 2.0**-51 * (abs(ell_a) + abs(ell_b))
    )
    # Float64 logits against log-probabilities whose log-ratios are all so small that
    # the bound below must fail: the logits' exact log-partition at once and one pass
    # of series terms (branch jsmixed3: the first pass, the log-probabilities' excess
    # and the second pass took 2.3x stop 67's single pass).
    if not fast and forms[0] != forms[1]:
        js = _js_near_float64(a, b, forms, partitions, epsilon)
        if not math.isnan(js):
            return js
    js, mass = _js_logs_pass(a, b, forms, partitions, (c, 0.0))
    # (a zero probability on one side weighs in the mass too: a hostile pass, JS of the
    # logits [-inf, -5e-324, 5e-324] and [-745.1, -5e-324, 8.7e-19] took no correction
    # and was twice its 2.365e-38; a NaN mass, of NaN rows, takes none)
    # (the shift moves the sum by about epsilon^2/8 and, beside a side not exactly
    # normalised, by epsilon times its excess, about the mass, to first order)
    first = abs(mass) if forms[0] != 2 or forms[1] != 2 else 0.0
    if epsilon * (epsilon / 4.0 + first) <= 2.0**-49 * js:
        return _rescaled(js, scale)
    excess_a = _side_excess(a, forms[0])
    excess_b = _side_excess(b, forms[1])
    # A side of logits's computed probabilities and logs carry its log-partition's
    # error: p e^-eta_a, log p - eta_a (q likewise), so sum_i q_i e^delta_i = sum_i p_i
    # of the computed values and mass = e^-eta_a (1 + excess_a) - e^-eta_b (1 +
    # excess_b), the shift eta_b - eta_a. Beside a side given exactly (eta 0) that is
    # solved exactly (jsexact2: log1p(mass) - log1p(excess_a) for logits on Q's side
    # is off by about mass * excess_a, which weighs by excess_a: rows of log-
    # probabilities and their logits 13 ulps off); two sides of logits (no excess:
    # the shift weighs only to second order) take log1p(mass). NaN or infinite for
    # rows of NaN (then none).
    shift = math.log1p(mass + excess_b) if forms[1] != 2 else -math.log1p(excess_a - mass)
    if not math.isfinite(shift):
        return _rescaled(js, scale)
    # (the correction kept as c's low part: added to c it would round again)
    js, _ = _js_logs_pass(a, b, forms, partitions, (c, shift))
    return _rescaled(js, scale)


_NEAR_LOG_RATIO = 2.0**24
r""":func:`_js_near` takes over where every :math:`|\delta_i| \le \min(2^{24}\epsilon,
2^{-10})`: there the sum is at most about :math:`\tfrac{2.03}{16}\max_i \delta_i^2 <
2^{45}\epsilon^2` (each term :math:`\tfrac{p + q}{4} g(\delta) \le \tfrac{p + q}{16}
\delta^2`, :math:`\sum_i (p_i + q_i) \le 2 e^{|\delta|}(1 + \epsilon)`), so
:func:`_js_of_logs`' bound :math:`\epsilon^2/4 \le 2^{-49}\,\mathrm{JS}` fails by a
factor 3.8 at least: its first pass would only have found the shift."""

_G_SERIES = (2.0 / 9.0, -0.5, 1.0)
r""":math:`g(\delta)/x^2 = 1 - x^2/2 + 2x^4/9 - 17x^6/180 + \dots`, :math:`x = \delta/2`
(Horner's order, in :math:`x^2`; :math:`g = 2x\tanh x - 2\log\cosh x`, mpmath's
Taylor coefficients): for :math:`|x| \le 2^{-11}` the remainder is below
:math:`2^{-69}` of the sum."""


def _js_near_float64(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    partitions: tuple[float, float, float, float],
    epsilon: float,
) -> float:
    """:func:`_js_near` of float64 rows; NaN (none) for float32 ones, for which it is
    not compiled (compiled: the choice made by the rows' type)."""
    return _js_near(a, b, forms, partitions, epsilon) if a.dtype == np.float64 else math.nan


@overload(_js_near_float64)
def _js_near_float64_compiled(a: Any, b: Any, forms: Any, partitions: Any, epsilon: Any) -> Any:
    # (the implementations' annotations as these: Numba compares them)
    if a.dtype != types.float64:
        return _no_js_near
    return _js_near_of_float64


def _no_js_near(a: Any, b: Any, forms: Any, partitions: Any, epsilon: Any) -> Any:
    """:func:`_js_near_float64` of float32 rows: none."""
    return math.nan


def _js_near_of_float64(a: Any, b: Any, forms: Any, partitions: Any, epsilon: Any) -> Any:
    """:func:`_js_near_float64` of float64 rows."""
    return _js_near(a, b, forms, partitions, epsilon)


@_once
def _js_near(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    partitions: tuple[float, float, float, float],
    epsilon: float,
) -> float:
    r"""JS of float64 logits against log-probabilities (either side) in one pass of
    series terms where every log-ratio is so small that :func:`_js_of_logs`' bound
    must fail (:data:`_NEAR_LOG_RATIO`), else NaN (then also where a log-probability
    is positive: :func:`_js_of_logs` keeps its first pass there, whose excess is NaN).

    Every :math:`\delta_i` as :func:`_js_logs_pass` forms it (``c`` without its low
    part) checked first: rows apart leave at their first entry. The logits' exact
    log-partition is :math:`\ell + \gamma`, :math:`\gamma = \operatorname{log1p}
    \sigma` (:func:`_partition_excess`, :math:`\sigma` to about :math:`2^{-104}`), the
    low part of ``c`` (:math:`\pm\gamma`) and of the logits' probabilities,
    :math:`e^{s_i + r_i - \gamma}` from :func:`_exp_dd_row`'s double-doubles (no
    ``exp``, about half an ulp each); the other side's :math:`e^{y_i}` as
    :func:`_js_logs_pass` takes it. Each term :math:`\tfrac{p + q}{4}\,x^2(1 - x^2/2
    + 2x^4/9)`, :math:`x = \delta/2` (:data:`_G_SERIES`; no ``tanh``, no ``log1p``
    and no cancellation between them), summed compensated. In place of the first pass,
    the log-probabilities' excess (:func:`_side_excess`) and the second pass of
    :func:`_js_of_logs`: about a third of their time (``bench_info_float64.py``)."""
    m_a, ell_a, m_b, ell_b = partitions
    c = ell_a - ell_b
    bound = min(_NEAR_LOG_RATIO * epsilon, 2.0**-10)
    logs_a = forms[0] == 1
    n = a.shape[0]
    for i in range(n):
        x, y = np.float64(a[i]), np.float64(b[i])
        h_a, l_a, _, _ = _shifted_pairs(x, m_a, ell_a)
        h_b, l_b, _, _ = _shifted_pairs(y, m_b, ell_b)
        delta = _log_ratio(h_a, l_a, h_b, l_b, c, 0.0, False)
        if not (abs(delta) <= bound and (x if logs_a else y) <= 0.0):
            return math.nan
    s, r, hi, lo = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    if logs_a:
        gap = math.log1p(_partition_excess(b, m_b, ell_b, (s, r, hi, lo)))
        c_lo = -gap
    else:
        gap = math.log1p(_partition_excess(a, m_a, ell_a, (s, r, hi, lo)))
        c_lo = gap
    js = js_c = 0.0
    for i in range(n):
        x, y = np.float64(a[i]), np.float64(b[i])
        h_a, l_a, _, _ = _shifted_pairs(x, m_a, ell_a)
        h_b, l_b, _, _ = _shifted_pairs(y, m_b, ell_b)
        half = 0.5 * _log_ratio(h_a, l_a, h_b, l_b, c, c_lo, False)
        p = hi[i] + (lo[i] + hi[i] * (r[i] - gap)) if s[i] > _DD_ROW_FLOOR else 0.0
        q = math.exp(x if logs_a else y)
        square = half * half
        series = 0.0
        for coefficient in _G_SERIES:
            series = coefficient + square * series
        js, js_c = _add(js, js_c, (p + q) * (square * series) / 4.0)
    return js + js_c


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _partition_excess(row: Any, m: float, ell: float, work: tuple[Any, Any, Any, Any]) -> float:
    r""":math:`\sigma = \sum_i e^{(x_i - m) - \ell} - 1` of a float64 row of logits
    with maximum ``m`` and log-partition ``ell`` (rounded: :math:`\operatorname{log1p}
    \sigma` is its error), to about :math:`2^{-104}`: the exponents exact as
    :math:`s_i + r_i` (:func:`_shifted_pairs`; ``work[0]``, ``work[1]``), each term
    :math:`e^{s_i}(1 + r_i)` from the double-double :math:`e^{s_i}` (``work[2]``,
    ``work[3]``: :func:`_exp_dd_row`, the vectorised loop; :math:`r_i^2/2` in
    :math:`r_i`), summed exactly by extraction (Rump's ExtractScalar: a part rounded to
    a multiple of the ulp of :math:`1.5 \cdot 2^k` by adding and subtracting it, the
    remainder exact; three levels whose ulps leave :math:`\log_2 n + 1` bits of
    headroom, each level's sum exact in any order) and the last remainders plainly
    (their rounding below :math:`n^5 2^{-212}`). The terms where :math:`s_i \le -745`
    (:math:`e^{s_i}` below the least subnormal) are left out. One branch-free pass after
    :func:`_exp_dd_row`, in place of :func:`_masses`' dependent triple-double
    additions."""
    s, r, hi, lo = work
    n = row.shape[0]
    for i in range(n):
        _, low, y, e = _shifted_pairs(np.float64(row[i]), m, ell)
        r_hi, r_lo = _two_sum(e, low)
        s[i], r[i] = y, r_hi + (r_lo + 0.5 * r_hi * r_hi)
    _exp_dd_row(s, 0.0, hi, lo)
    # |T1| <= n(1 + 2^-40) < 2^(k + 1), ulp 2^(k - 52); the remainders (below
    # 2^(k - 53)) and the low parts (below 2^-52), 2n in all, into T2, ulp 2^(2k - 105);
    # theirs (below 2^(2k - 106)) into T3, ulp 2^(3k - 158); the rest into T4
    k = 1
    while 2.0**k < n + 1.0:
        k += 1
    k += 1
    sigma1 = math.ldexp(1.5, k)
    sigma2 = math.ldexp(1.5, 2 * k - 53)
    sigma3 = math.ldexp(1.5, 3 * k - 106)
    t1 = t2 = t3 = t4 = 0.0
    for i in range(n):
        if not s[i] > _DD_ROW_FLOOR:
            continue
        x_hi, x_lo = hi[i], lo[i] + hi[i] * r[i]
        q = (sigma1 + x_hi) - sigma1
        t1 += q
        x_hi -= q
        q = (sigma2 + x_hi) - sigma2
        t2 += q
        x_hi -= q
        v = (sigma2 + x_lo) - sigma2
        t2 += v
        x_lo -= v
        q = (sigma3 + x_hi) - sigma3
        t3 += q
        v = (sigma3 + x_lo) - sigma3
        t3 += v
        t4 += (x_hi - q) + (x_lo - v)
    total, error = _two_sum(t1 - 1.0, t2)
    return total + ((error + t3) + t4)


@_inline
def _js_pair_term(p: float, q_hi: float, q_lo: float) -> float:
    r""":func:`_js_term` of :math:`p` and the double-double :math:`q = q_{hi} + q_{lo}`:
    :math:`d = ((p - q_{hi}) - q_{lo})/(p + q_{hi})`, :math:`p - q_{hi}` exact where
    :math:`|d| \le 1/3` (Sterbenz), so nearly equal entries keep their digits
    (``_numerics.js_terms`` with ``q_low``)."""
    total = p + q_hi
    if total == 0.0:
        return 0.0
    d = ((p - q_hi) - q_lo) / total
    if abs(d) <= 0.5:
        return total * (2.0 * d * math.atanh(d) + math.log1p(-(d * d))) / 4.0
    return _js_term(p, q_hi)


@numba.njit(fastmath={"contract"}, error_model="numpy", nogil=True)
def _js_mixed_exact(
    a: Any, b: Any, forms: tuple[int, int], partitions: tuple[float, float, float, float]
) -> float:
    r"""JS(P, Q) of a row of probabilities against one of logits or log-probabilities
    (``info._js_mixed.js_mixed_exact``, the generic path's, in one loop): the other
    side's probabilities as double-doubles :math:`q = e^{s}(1 + e + l)` by
    :func:`_exp_dd` (about :math:`2^{-104}` of :math:`q`), :math:`s + e + l` its log
    exactly (:func:`_shifted_pairs`; :math:`e + l` by TwoSum: their rounded sum is
    :math:`u^2|s|` off), for logits divided by their triple-double sum :math:`1 +
    \sigma` (the log-partition's error, a constant factor, is then gone), and the terms
    by :func:`_js_pair_term`, non-negative, summed compensated.

    Branch jsexact2: the log-ratios :math:`\log p - \log q` of :func:`_js_of_logs`
    had :math:`\log p` as a double-double, whose low part alone is :math:`u^2|\log p|`
    off, against :math:`\delta \approx u` of a row and its own rounded softmax: JS of
    such rows of logits N(0, 10) was 210 ulps off (N(0, 3): 22)."""
    form_a, form_b = forms
    m_a, ell_a, m_b, ell_b = partitions
    if form_a == 0:
        probs, other, form, m, ell = a, b, form_b, m_b, ell_b
    else:
        probs, other, form, m, ell = b, a, form_a, m_a, ell_a
    n = probs.shape[0]
    q_hi, q_lo = np.empty(n), np.empty(n)
    total = (0.0, 0.0, 0.0)
    # the exponents first, then their e^y by the vectorised _exp_dd_row (bit for bit
    # _exp_dd's in (-745, 0]; branch jsmixed3: the scalar calls, a dependent chain
    # each, took about a third of the time)
    ys, corrections = np.empty(n), np.empty(n)
    for i in range(n):
        x = np.float64(other[i])
        if form == 2:
            _, low, y, e = _shifted_pairs(x, m, ell)
        else:
            low, y, e = 0.0, x, 0.0
        r_hi, r_lo = _two_sum(e, low)
        ys[i], corrections[i] = y, r_hi + (r_lo + 0.5 * r_hi * r_hi)
    _exp_dd_row(ys, 0.0, q_hi, q_lo)
    for i in range(n):
        y = ys[i]
        if not y > -745.0:  # (e^y below the least subnormal, or -inf: its low parts
            hi = lo = 0.0  # NaN; NaN rows are not here)
        else:
            # (a positive log-probability, within validation's tolerance: math.exp)
            hi, lo = (q_hi[i], q_lo[i]) if y <= 0.0 else (math.exp(y), 0.0)
            hi, lo = _quick_two_sum(hi, lo + hi * corrections[i])
        q_hi[i], q_lo[i] = hi, lo
        if form == 2:
            total = _td_add(total, (hi, lo, 0.0))
    if form == 2:
        sigma = ((total[0] - 1.0) + total[1]) + total[2]
        shrink = sigma * (sigma - 1.0)  # 1/(1 + sigma) - 1, to sigma^3
        for i in range(n):
            q_hi[i], q_lo[i] = _quick_two_sum(q_hi[i], q_lo[i] + q_hi[i] * shrink)
    js = js_c = 0.0
    for i in range(n):
        js, js_c = _add(js, js_c, _js_pair_term(np.float64(probs[i]), q_hi[i], q_lo[i]))
    return js + js_c


@_once
def _side_excess(row: Any, form: int) -> float:
    r""":math:`\sum_i p_i - 1` of a row in ``form``: 0 for logits (exactly normalised),
    :func:`_excess` of probabilities, and of log-probabilities :math:`\sum_i e^{x_i} - 1`
    from :func:`_masses`' triple-double sum of :func:`_exp_dd` (about :math:`2^{-104}`
    an entry, one vectorised loop): the correction of :func:`_js_of_logs` needs it to far below
    :math:`u^2` (JS of nearly equal rows is about :math:`u^2` itself). NaN where the
    row cannot be summed (a positive log-probability, a NaN): no correction."""
    if form == 2:
        return 0.0
    if form == 0:
        return _excess(row)
    total, _, summed = _masses(row, 1, 0.0, 1, row, 1)
    if not summed:
        return math.nan
    return ((total[0] - 1.0) + total[1]) + total[2]


@_once
def _excess(row: Any) -> float:
    r""":math:`\sum_i x_i - 1` of a row of probabilities, summed compensated from
    :math:`-1` (:func:`_add`): within a few ulps of itself where the row sums to about 1
    (:func:`_js_of_logs`'s correction)."""
    total, compensation = -1.0, 0.0
    for i in range(row.shape[0]):
        total, compensation = _add(total, compensation, np.float64(row[i]))
    return total + compensation


@numba.njit(error_model="numpy", nogil=True)
def _loop_certified(
    a: Any,
    b: Any,
    forms: tuple[int, int],
    partitions: tuple[float, float, float, float],
    loop_kl: float,
    sums: tuple[float, float],
    bounds: tuple[tuple[float, float, float, int], tuple[float, float], int, bool],
) -> bool:
    r"""Whether the loop's KL ``loop_kl`` of rows ``a``, ``b`` (one side probabilities)
    stands: :func:`_loop_kl_bound_cheap` of the loop's sums (``sums``: its
    :math:`\sum` of :func:`_cheap_bound_term` and of the terms' magnitudes) within
    :data:`_KL64_TOLERANCE` (:data:`_FAST_SUM_TOLERANCE` with ``fast``) of it, or else
    :func:`_loop_kl_bound` of a second pass (:func:`_loop_bound_sums`), taken only where
    it could stand: it is at least :math:`2uL` (its :math:`2uL_w + (e^P + e^Q)\Pi`,
    :math:`\kappa \le (e^P + e^Q)/2u`). ``bounds``: the loop's bound weights, the
    sides' errors (:func:`_side_error`), the row's length and ``fast``."""
    weights, errors, n, fast = bounds
    kl_logs, kl_abs = sums
    tolerance = (_FAST_SUM_TOLERANCE if fast else _KL64_TOLERANCE) * abs(loop_kl)
    if _loop_kl_bound_cheap(loop_kl, kl_logs, kl_abs, weights, n) <= tolerance:
        return True
    if not 2.0 * _U * kl_logs * (1.0 - 2.0**-20) <= tolerance:
        return False
    precise = _loop_bound_sums(a, b, forms, partitions)
    return _loop_kl_bound(loop_kl, precise, errors, n, (forms[0], fast)) <= tolerance


@numba.njit(error_model="numpy", nogil=True, cache=True)
def _row(
    a: Any, b: Any, r: int, codes: tuple[int, int, int], reals: tuple[float, float, float], out: Any
) -> int:
    """Row ``r`` of :func:`rows`: writes its measures into ``out[:, r]`` and returns
    how many of its sides are suspect (0, 1 or 2)."""
    form_a, form_b, want = codes
    scale, tol_a, tol_b = reals
    both_probs = form_a == 0 and form_b == 0
    # What ``_side`` computes: P's probability always, its log for KL and for H from
    # logs; Q's log for CE and KL, its probability for JS.
    need_a = 1 | (2 if want & 4 or (want & 1 and form_a != 0) else 0)
    need_b = (1 if want & 8 else 0) | (2 if want & 6 else 0)
    partition_a = form_a == 2 or (form_a == 1 and tol_a >= 0.0)
    partition_b = form_b == 2 or (form_b == 1 and tol_b >= 0.0)
    # The entropy of logits alone comes from the log-partition's own pass.
    direct = want == 1 and form_a == 2
    fast = _narrow(a)
    # The flags passed to ``_once`` helpers typed ``bool``, not as the literals
    # ``fast`` (a constant of the dtype) and ``False``: Numba compiles a helper once
    # more for each literal a caller passes it, and the helpers that take no array
    # then serve both dtypes (issue 13: 11 of the 22 literal compiles of a cold
    # cache's measures, about 3 s of CPU for float32 and float64).
    fast_flag, no_entropy = np.bool_(fast), np.bool_(False)
    # KL of float64 logits or log-probabilities (alone or in the decomposition): one
    # pass with its error bound, and H and CE from its sums (``sums``: they are valid);
    # the exact sums below only for a KL that does not stand. Where it stands a logits
    # side needs only its maximum (its ``ell`` stays 0: finite, as it is).
    quick_kl, quick, sums, h_sums, ce_sums = math.nan, False, False, 0.0, 0.0
    no_probs = form_a != 0 and form_b != 0
    if not fast and want & 4 and not want & 8 and no_probs:
        tops = (_row_max(a[r]) if form_a == 2 else 0.0, _row_max(b[r]) if form_b == 2 else 0.0)
        if math.isfinite(tops[0]) and math.isfinite(tops[1]):
            quick_kl, quick, h_sums, ce_sums, sums = _kl64_pass(
                a[r], b[r], (form_a, form_b), tops, want != 4
            )
    m_a = ell_a = h_a = m_b = ell_b = 0.0
    alone = quick
    # One side probabilities, the other float64 logits, for the KL or JS: the log-partition by
    # a compensated sum (its error, first order in the loop's KL, is then a few ulps,
    # not n: see _side_error), so that the loop's bound stands on random rows; branch-free
    # (Fast2Sum), about the plain sum's cost.
    bounded = (form_a == 0) != (form_b == 0) and want & 12 and not fast
    # JS of float64 rows of logits against logits or log-probabilities: the same
    # compensated log-partition with its rounding as a low part (``lows``), by which
    # _js_of_logs corrects the scale of the logits' probabilities (branch jsexact4)
    js_logs = want == 8 and no_probs and not fast
    lows = (0.0, 0.0)
    if partition_a and not (alone and form_a == 2):
        if js_logs and form_a == 2:
            m_a, ell_a, low_a = _log_partition_pair(a[r])
            lows = (low_a, lows[1])
        elif bounded and form_a == 2 and not direct:
            m_a, ell_a = _log_partition_compensated(a[r])
        else:
            m_a, ell_a, h_a = _log_partition(a[r], direct, fast)
    if partition_b and not (alone and form_b == 2):
        if js_logs and form_b == 2:
            m_b, ell_b, low_b = _log_partition_pair(b[r])
            lows = (lows[0], low_b)
        elif bounded and form_b == 2:
            m_b, ell_b = _log_partition_compensated(b[r])
        else:
            m_b, ell_b, _ = _log_partition(b[r], no_entropy, fast)
    h = h_c = ce = ce_c = kl = kl_c = js = js_c = 0.0
    # ``exact``: the KL is ``exact_kl`` (the loop below then runs for H and CE only,
    # unless ``sums``).
    exact_kl, exact, direct = quick_kl, quick, direct or alone
    # The cross-entropy alone of float32 probabilities (unscreened) against logits: one
    # vectorised pass where no probability is negative (then every term is >= 0).
    if fast and want == 2 and form_a == 0 and form_b == 2 and tol_a < 0.0:
        total, negatives = _fast_cross(a[r], b[r], m_b, ell_b)
        if negatives == 0:
            ce, direct = total, True
    # KL (and H, CE beside it) of float32 log-probabilities or logits: one vectorised
    # pass, whose sums stand where their error bound allows (else the loop below).
    # (Two log-probability sides of two entries: the pass below alone, which costs
    # about as much there, 20 against 17 ns, and stands on 99.998 % of random rows.)
    close_only = form_a == 1 and form_b == 1 and a.shape[1] == 2
    if fast and want & 4 and not want & 8 and form_a != 0 and form_b != 0 and not close_only:
        shifts = (m_a, ell_a, m_b, ell_b)
        h, ce, kl, direct = _fast_divergence(a[r], b[r], (form_a, form_b), shifts, want)
        if not direct:
            h = ce = kl = 0.0
    # Two float32 log-probability sides the fast pass flagged (its polynomial exp's error,
    # relative to each term, is not to their sum where they cancel): the same sums with
    # an exp within 8 ulps (vectorised; H and CE stand from it where its sums are valid,
    # ``sums``, and its KL is the exact sums' estimate), then the float64 pass
    # (``math.exp``, scalar, its tighter bound within 2^-32), then the defining sum in
    # double-double, then the exact sums below (branch klf32; branch klf32b: the first
    # and the third, the second alone cost 1.4x-12x of the cost before klf32).
    if fast and want & 4 and not want & 8 and form_a == 1 and form_b == 1 and not direct:
        h_sums, ce_sums, close_kl, stands, sums = _log_probs_pass(a[r], b[r])
        quick_kl = close_kl
        if not stands:
            close_kl, stands, _, _, _ = _kl64_pass(
                a[r], b[r], (form_a, form_b), (0.0, 0.0), want == 0
            )
        if not stands and sums:
            close_kl, stands = _kl_log_probs_dd(a[r], b[r])
        if stands:
            exact_kl, exact = close_kl, True
            direct = want == 4 or sums
    # KL of float64 logits and log-probabilities, and of float32 logits against
    # log-probabilities or two float32 log-probability sides, where the fast pass did
    # not stand: the Bregman sums (exact where P and Q are close); the loop below then
    # runs only for H and CE (the decomposition) where the fast pass did not give them.
    # (Two float32 log-probability sides took the loop, whose polynomial exp left nearly
    # equal rows up to 6.3 ulps off: issue 13, branch klf32.)
    sides_fit = form_a + form_b == 3 or (no_probs and not (fast and form_a == 2))
    finite = math.isfinite(ell_a) and math.isfinite(ell_b)
    if want & 4 and not want & 8 and not direct and not exact and sides_fit and finite:
        logits_a, logits_b = form_a == 2, form_b == 2  # log-probabilities: no shift
        shifts = (
            m_a if logits_a else 0.0,
            ell_a if logits_a else 0.0,
            m_b if logits_b else 0.0,
            ell_b if logits_b else 0.0,
        )
        estimate = quick_kl if sums else math.nan
        exact_kl, exact = _kl_exact(a[r], b[r], (form_a, form_b), shifts, estimate)
        direct = exact and (want == 4 or sums)

    # One side probabilities (the other not): the loop's KL, with a cheap error bound
    # (one sum an entry, two where P is logits or float32 log-probabilities:
    # _loop_kl_bound_cheap); where it does not stand, the precise one of
    # _loop_kl_bound (a second pass) where that may, else the exact sums.
    one_probs = (form_a == 0) != (form_b == 0) and want & 4 and not exact
    kl_abs = kl_logs = 0.0
    n = a.shape[1]
    errors = (0.0, 0.0)
    weights = (0.0, 0.0, 0.0, 0)
    if one_probs and finite:
        errors = (
            _side_error(form_a, n, ell_a, fast_flag),
            _side_error(form_b, n, ell_b, fast_flag),
        )
        weights = _loop_bound_weights(form_a, errors, n, fast_flag)
    kappa, mode, apart = weights[1], weights[3], weights[2] > 0.0
    sum_a = sum_b = 0.0
    lo_a = lo_b = math.inf
    hi_a = hi_b = -math.inf
    # The KL alone: first the loop (one pass, its cheap bound stands where the KL is
    # not small against the sides' entropies); where that bound fails and the KL is
    # not tiny, the Bregman (ratio) pass, whose bound stands on realistic rows
    # (:func:`_kl_ratio_pass`), and where it does not, the exact sums at once; where
    # the pass gives way (an odd entry), the loop's own bounds below.  The order and
    # the threshold (:data:`_RATIO_LEAST_KL`) choose only which certified sum is
    # returned, never whether it is certified.
    ratio = certified = loop_failed = False
    kl_bound = ratio_kl = 0.0
    # each side's (m, ell) where it is logits, else 0 (the exact sums' and the precise
    # bound's shifts); the loop's bound settings
    partitions = (
        m_a if form_a == 2 else 0.0,
        ell_a if form_a == 2 else 0.0,
        m_b if form_b == 2 else 0.0,
        ell_b if form_b == 2 else 0.0,
    )
    bounds = (weights, errors, n, fast_flag)
    # JS of two sides of logits or log-probabilities: from the exact log-ratios.
    if want == 8 and no_probs and finite and not direct:
        js, direct = _js_of_logs(a[r], b[r], (form_a, form_b), partitions, lows), True
    # JS of probabilities against logits or log-probabilities: the loop's sum, with a
    # bound on what the other side's rounded probabilities (relative error eta_i) cost
    # it, sum_i eta_i (|p_i - q_i| + eta_i q_i) / 2 (a term moves by at most
    # eta q |log(q/m)| / 2 <= eta |p - q| / 2); where it does not stand, the exact
    # log-ratios (hostile22: JS of [0.5, 0.5] against the logits [9.7e-18, -6.5e-18]
    # was 0 for 8.15e-36, rows 1e-5 apart 2.8e-12 relative off).
    js_mixed = want == 8 and not both_probs and not no_probs and finite and not direct
    js_eta = js_bound = 0.0
    if js_mixed:  # (the probabilities side's error is 0; exp's, 2u: math.exp's)
        # float32 rows: the polynomial exp's 5.2e-11 (branch jsexact4: with 2u, JS of
        # float32 probabilities and log-probabilities 1e-5 apart was 25 ulps off)
        js_eta = (
            (5.2e-11 if fast else 2.0 * _U)
            + _side_error(form_a, n, ell_a, fast_flag)
            + _side_error(form_b, n, ell_b, fast_flag)
        )
    if one_probs and want == 4 and not direct:
        checks = (form_a == 0 and tol_a >= 0.0, form_b == 0 and tol_b >= 0.0)
        shifts = (m_a, ell_a, m_b, ell_b)
        bound_options = (kappa, mode, apart)
        kl, kl_c, kl_logs, kl_abs, screened = _kl_loop_one_probs(
            a[r], b[r], (form_a, form_b), shifts, bound_options, checks
        )
        sum_a, lo_a, hi_a, sum_b, lo_b, hi_b = screened
        direct = True
        loop_kl = kl + kl_c
        if finite and math.isfinite(loop_kl) and abs(loop_kl) >= _RATIO_LEAST_KL:
            certified = _loop_certified(
                a[r], b[r], (form_a, form_b), partitions, loop_kl, (kl_logs, kl_abs), bounds
            )
            loop_failed = not certified
            if loop_failed:
                ratio_kl, kl_bound, ratio, _ = _kl_ratio_pass(
                    a[r], b[r], ((form_a, form_b), checks), shifts
                )
        if ratio:
            tolerance = (_FAST_SUM_TOLERANCE if fast else _KL64_TOLERANCE) * abs(ratio_kl)
            if kl_bound <= tolerance:
                exact_kl, exact = ratio_kl, True
            else:
                exact_kl, exact = _kl_exact(a[r], b[r], (form_a, form_b), partitions, ratio_kl)
    for i in range(0 if direct else a.shape[1]):
        x = np.float64(a[r, i])
        y = np.float64(b[r, i])
        if form_a == 0 and tol_a >= 0.0:  # a NaN makes the sum NaN
            sum_a += x
            lo_a, hi_a = min(lo_a, x), max(hi_a, x)
        if form_b == 0 and tol_b >= 0.0:
            sum_b += y
            lo_b, hi_b = min(lo_b, y), max(hi_b, y)
        if both_probs:
            if want & 1:
                h, h_c = _add(h, h_c, _entr(x))
            if want & 2:
                ce, ce_c = _add(ce, ce_c, -_xlogy(x, y))
            if want & 4:
                term = _rel_entr(x, y)
                kl, kl_c = _add(kl, kl_c, term)
                kl_abs += abs(term)
            if want & 8:
                js, js_c = _add(js, js_c, _js_term(x, y))
            continue
        p, log_p = _side(x, form_a, m_a, ell_a, need_a, fast)
        if want & 1:
            h_term = _entr(x) if form_a == 0 else (0.0 if log_p == -math.inf else -p * log_p)
            h, h_c = _add(h, h_c, h_term)
        if want == 1:
            continue
        q, log_q = _side(y, form_b, m_b, ell_b, need_b, fast)
        if want & 2:
            # A probability's log is not computed for CE (0.0 stands in): -inf, its
            # zero being p's own.
            known_log_p = log_p if form_a != 0 else -math.inf
            ce, ce_c = _add(ce, ce_c, _cross_from_log(p, known_log_p, log_q))
        if want & 4:
            term = _kl_from_log(p, log_p, log_q, form_a != 0)
            kl, kl_c = _add(kl, kl_c, term)
            if one_probs and log_p != -math.inf:
                kl_logs += _cheap_bound_term(p, log_p, log_q, kappa, mode)
                if apart:
                    kl_abs += abs(term)
        if want & 8:
            js, js_c = _add(js, js_c, _js_term(p, q))
            if js_mixed:
                eta = js_eta + 2.0 * _U * abs(log_p if form_a != 0 else log_q)
                js_bound += eta * (abs(p - q) + eta * (q if form_a == 0 else p))
    if js_mixed and math.isfinite(js):
        total = js + js_c
        # (float64: 2^-44, about 250 ulps: the bound's log-partition term is (log n)u
        # an entry, and 2^-47 sent random 1000-class rows to the exact pass, 1.8x)
        tolerance = _FAST_SUM_TOLERANCE if fast else 2.0**-44
        if not 0.5 * js_bound + 10.0 * _U * total <= tolerance * total:
            js, js_c = _js_mixed_exact(a[r], b[r], (form_a, form_b), partitions), 0.0
    if one_probs and finite and math.isfinite(kl) and not (ratio or certified):
        loop_kl = kl + kl_c
        # (the bounds already failed above where the ratio pass then gave way)
        if loop_failed or not _loop_certified(
            a[r], b[r], (form_a, form_b), partitions, loop_kl, (kl_logs, kl_abs), bounds
        ):
            exact_kl, exact = _kl_exact(a[r], b[r], (form_a, form_b), partitions, loop_kl)
    # Probabilities against probabilities: the loop's KL stands where its error (each
    # term 4.5u, the compensated sum's 2u and n^2 u^2 of the magnitudes) is at most
    # _KL64_TOLERANCE of it; else (nearly equal rows, whose terms cancel) the sum of
    # non-negative terms, _kl_probs_nonnegative.
    if both_probs and want & 4 and math.isfinite(kl) and not direct:
        loop_kl = kl + kl_c
        error = (4.5 + n * n * _U) * _U * kl_abs + 3.0 * _U * abs(loop_kl)
        if not error <= _KL64_TOLERANCE * abs(loop_kl):
            exact_kl, exact = _kl_probs_nonnegative(a[r], b[r]), True
    suspects = 0
    if tol_a >= 0.0 and _suspect(form_a, m_a, ell_a, sum_a, lo_a, hi_a, tol_a):
        suspects += 1
    if tol_b >= 0.0 and _suspect(form_b, m_b, ell_b, sum_b, lo_b, hi_b, tol_b):
        suspects += 1
    # One output row per bit of ``want``; + 0.0 turns a -0.0 total into +0.0, as
    # ``_xp.finalize`` does.
    k = 0
    if direct and want == 1:
        h, h_c = h_a, 0.0
    if direct and sums:
        h, h_c, ce, ce_c = h_sums, 0.0, ce_sums, 0.0
    if want & 1:
        out[k, r] = (h + h_c) / scale + 0.0
        k += 1
    if want & 2:
        out[k, r] = (ce + ce_c) / scale + 0.0
        k += 1
    if want & 4:
        if exact:
            kl, kl_c = exact_kl, 0.0
        out[k, r] = (kl + kl_c) / scale + 0.0
        k += 1
    if want & 8:
        out[k, r] = (js + js_c) / scale + 0.0
    return suspects


_NEAR_ENTRIES = 2.0**-6
r"""Where :math:`|\log p_i - \log q_i|` is below this at a row's first and last
entries (:func:`_log_probs_row`), the row is taken for nearly equal: the polynomial
pass, whose KL stands only where :math:`|D| \ge 0.22 \sum_i |t_i|` (and :math:`|D|`
is about :math:`\max_i |\log p_i - \log q_i|/2` of :math:`\sum_i |t_i|` at most
where every entry is that near), is not run. A choice of the pass only: each pass's
own bound decides whether its KL stands."""


@_inline
def _near_entry(x: float, y: float) -> bool:
    """Whether float32 log-probabilities ``x`` and ``y`` are within
    :data:`_NEAR_ENTRIES` (false for NaN and where both are infinite)."""
    return bool(abs(np.float64(x) - np.float64(y)) < _NEAR_ENTRIES)


@numba.njit(fastmath=_SUM_FLAGS, error_model="numpy", nogil=True)
def _log_probs_masses(a: Any, b: Any) -> tuple[float, float]:
    r"""For float32 rows of log-probabilities ``a`` and ``b``: :math:`\sum_i e^{a_i}`
    and :math:`\sum_i e^{b_i}` (each :math:`e^x` by :func:`exp_nonpositive`, 0 below
    -708; a NaN makes its sum NaN), in one loop LLVM vectorises:
    :func:`_log_probs_suspects`' screen."""
    prefer_wide_vectors()
    total_a = total_b = 0.0
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        total_a += 0.0 if x < _EXP_FLOOR else exp_nonpositive(x)
        total_b += 0.0 if y < _EXP_FLOOR else exp_nonpositive(y)
    return total_a, total_b


@_inline
def _log_probs_suspects(a: Any, b: Any, tol_a: float, tol_b: float) -> int:
    r"""How many of float32 rows of log-probabilities ``a`` and ``b`` may fail their
    validation (a side whose ``tol`` is negative is not screened), as :func:`_suspect`
    of their log-partitions: :math:`|\sum_i e^{x_i} - 1| >` ``tol`` or NaN. One pass
    over both (:func:`_log_probs_masses`) where :func:`_row` took two a side (the
    maximum, then the exp-sum shifted by it, :func:`_log_partition`): the entries are
    at most 0 where the row passes, so no shift is needed. Each sum errs by a relative
    5.2e-11 (the polynomial's) plus :math:`(n - 1)u` (terms of one sign), as
    :func:`_log_partition`'s: far below ``tol`` (6.2e-5 for a float32 row of 9).

    No entry above 0 (a probability above 1) reaches it: :func:`_log_probs_row`'s
    passes count one on either side as odd and leave the row to :func:`_row`, whose
    screen (:func:`_suspect`, the largest entry) refuses it. Branch klf32d counted the
    positive entries here too, a count no row could make decide; branch review75
    removed it (issue 13), and ``tests/info/test_issue13_kl_float32_screen_positive.py``
    pins the refusal of a positive entry whose exp-sum is within ``tol``, whichever
    screen sees it. A NaN does reach it: in ``b`` where :math:`p_i = 0` (its term is 0,
    so the passes stand), which the NaN sum refuses (that test too)."""
    if a.strides[0] == a.itemsize and b.strides[0] == b.itemsize:
        total_a, total_b = _log_probs_masses(unit_stride(a), unit_stride(b))
    else:
        total_a, total_b = _log_probs_masses(a, b)
    suspects = 0
    if tol_a >= 0.0 and not abs(total_a - 1.0) <= tol_a:
        suspects += 1
    if tol_b >= 0.0 and not abs(total_b - 1.0) <= tol_b:
        suspects += 1
    return suspects


@numba.njit(error_model="numpy", nogil=True, inline="always")
def _log_probs_row(
    a: Any, b: Any, r: int, codes: tuple[int, int, int], reals: tuple[float, float, float], out: Any
) -> int:
    r"""Row ``r`` of float32 log-probabilities against log-probabilities, their KL
    alone or with :math:`H(P)` and :math:`H(P, Q)` (the decomposition):
    :func:`_row`'s passes for it, with its arguments, written into ``out[:, r]``, and
    how many of its sides are suspect (:func:`_log_probs_suspects` of the screened
    sides); -1 (nothing written) for any other row, or where those passes leave the row
    to :func:`_row`'s exact sums or loop (an odd entry, terms that cancel below the
    double-double sum's bound), which then computes it and screens it.

    The polynomial pass (:func:`_divergence_sums`; not for two entries, nor where the
    row's first and last entries are within :data:`_NEAR_ENTRIES`, on which it fails),
    then :func:`_log_probs_pass`, :func:`_kl64_pass` and :func:`_kl_log_probs_dd`
    where each before did not stand. Called a row, it spares these rows :func:`_row`'s
    entry (a stack frame of 1.7 kB, zeroed, and the many checks of the other forms):
    about 20 of the 50 ns a row of two or nine entries cost besides the passes (issue
    13, branch klf32c). Inlined in :func:`_rows` (Numba's IR; with its row views made
    once): called, its arguments (three arrays, two tuples) went as about 40 scalars,
    most on the stack, and the call cost 20-30 ns a row, as much as a row of two's
    passes (issue 13, branch klf32d: 53 -> 22 ns a row of 2, 91 -> 60 nearly equal
    rows of 9). Screened rows (``validate=True``, the default) took :func:`_row`
    throughout, with two passes a side for the screen besides (2.3x-3x this path's
    cost); their screen is now :func:`_log_probs_suspects`, one pass over both sides
    (branch klf32d)."""
    form_a, form_b, want = codes
    scale, tol_a, tol_b = reals
    if not (form_a == 1 and form_b == 1 and want & 4 and not want & 8):
        return -1
    row_a, row_b = a[r], b[r]  # (the views made once: each costs a reference count)
    n = row_a.shape[0]
    sides = (form_a, form_b)
    h = ce = kl = exact_kl = h_sums = ce_sums = 0.0
    direct = exact = sums = False
    # Rows whose first and last entries are within _NEAR_ENTRIES take the second pass
    # at once: on nearly equal rows the first fails (their terms cancel), and costs a
    # third of the row (two entries: _log_probs_pair alone, as _row).
    near = n > 0 and _near_entry(row_a[0], row_b[0]) and _near_entry(row_a[n - 1], row_b[n - 1])
    if n != 2 and not near:
        shifts = (0.0, 0.0, 0.0, 0.0)
        h, ce, kl, kl_abs, odd = _divergence_pass(row_a, row_b, sides, shifts)
        direct = _divergence_safe(kl, kl_abs, n, odd)
    if not direct:
        h_sums, ce_sums, close_kl, stands, sums = _log_probs_pass(row_a, row_b)
        if not stands:
            close_kl, stands, _, _, _ = _kl64_pass(row_a, row_b, sides, (0.0, 0.0), want == 0)
        if not stands and sums:
            close_kl, stands = _kl_log_probs_dd(row_a, row_b)
        if not (stands and (want == 4 or sums)):
            return -1
        exact_kl, exact = close_kl, True
    if sums:
        h, ce = h_sums, ce_sums
    if exact:
        kl = exact_kl
    k = 0
    if want & 1:
        out[k, r] = (h + 0.0) / scale + 0.0
        k += 1
    if want & 2:
        out[k, r] = (ce + 0.0) / scale + 0.0
        k += 1
    out[k, r] = (kl + 0.0) / scale + 0.0
    if tol_a < 0.0 and tol_b < 0.0:
        return 0
    return _log_probs_suspects(row_a, row_b, tol_a, tol_b)


def _close_row(
    a: Any, b: Any, r: Any, codes: tuple[int, int, int], reals: tuple[float, float, float], out: Any
) -> int:
    """:func:`_log_probs_row` of float32 rows; -1 for float64 ones, for which it is
    not compiled (compiled: the choice made by the rows' type)."""
    return -1 if a.dtype == np.float64 else _log_probs_row(a, b, r, codes, reals, out)


@overload(_close_row, inline="always")
def _close_row_compiled(a: Any, b: Any, r: Any, codes: Any, reals: Any, out: Any) -> Any:
    # (the implementations' annotations as these: Numba compares them)
    if a.dtype != types.float32:
        return _no_close_row
    return _close_row_of_float32


def _no_close_row(a: Any, b: Any, r: Any, codes: Any, reals: Any, out: Any) -> Any:
    """:func:`_close_row` of float64 rows: none."""
    return -1


def _close_row_of_float32(a: Any, b: Any, r: Any, codes: Any, reals: Any, out: Any) -> Any:
    """:func:`_close_row` of float32 rows."""
    return _log_probs_row(a, b, r, codes, reals, out)


def _rows(
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
    """:func:`_row` of each row (on Numba's threads where compiled with ``parallel``,
    else in turn); the number of suspect sides."""
    codes = (form_a, form_b, want)
    reals = (scale, tol_a, tol_b)
    suspects = 0
    for r in numba.prange(a.shape[0]):
        # prange's index is unsigned: as int64, one compiled _row serves both variants.
        row = np.int64(r)
        # (float32 log-probability rows, their KL: _log_probs_row, inlined here; else
        # _row, called: -1 from the first)
        close = _close_row(a, b, row, codes, reals, out)
        suspects += _row(a, b, row, codes, reals, out) if close < 0 else close
    return suspects


@_inline
def _binary_cross_grad_term(x: float, y: float) -> float:
    """``_numerics.binary_cross_grad_terms``: for ``0 < y < 1`` as ``((y - x)/y)/(1 - y)``
    (the two quotients of ``-x/y + (1-x)/(1-y)`` cancel as ``x`` nears ``y``); at ``y = 0``
    and ``y = 1`` the two terms, each 0 where its weight is, infinite where only its
    denominator is 0."""
    if 0.0 < y < 1.0:
        return ((y - x) / y) / (1.0 - y)
    first = 0.0
    if x > 0.0:
        first = -math.inf if y == 0.0 else (-x / y if y > 0.0 else -x)
    weight = 1.0 - x
    second = 0.0
    if weight > 0.0:
        second = math.inf if y == 1.0 else (weight / (1.0 - y) if y < 1.0 else weight)
    return first + second


def _pointwise(p: Any, q: Any, which: int, scale: float, screen: bool, out: Any) -> int:
    """The elementwise measure ``which`` of ``p`` and ``q`` into ``out``; the number of
    entries outside [0, 1] or NaN (with ``screen``)."""
    suspects = 0
    for i in range(p.shape[0]):
        x = np.float64(p[i])
        y = np.float64(q[i])
        if screen and not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # NaN fails too
            suspects += 1
        if which == 0:  # _numerics.surprisal_terms
            value = -_log_of(x)
        elif which == 1:  # _numerics.binary_entropy_terms
            value = _entr(x) - _xlog1py(1.0 - x, -x)
        elif which == 2:  # _numerics.binary_cross_terms
            value = -_xlogy(x, y) - _xlog1py(1.0 - x, -y)
        else:
            value = _binary_cross_grad_term(x, y)
        out[i] = value / scale + 0.0
    return suspects


def _renamed(function: Any, qualname: str) -> Any:
    """A copy of the module-level ``function`` under another qualified name, so that a
    variant compiled with other options has its own cache index (Numba names the index
    after the function, and its key holds the signature, not the options)."""
    copy = pytypes.FunctionType(function.__code__, function.__globals__, function.__name__)
    copy.__qualname__ = qualname
    return copy


def _signature(dtype: np.dtype, ndim: int, *options: types.Type) -> tuple[types.Type, ...]:
    """Two read-only inputs of any layout, the options, and a C-contiguous output."""
    value = numba.from_dtype(dtype)
    side = types.Array(value, ndim, "A", readonly=True)
    return (side, side, *options, types.Array(value, ndim, "C"))


_ROW_OPTIONS = (types.int64,) * 3 + (types.float64,) * 3
"""``form_a, form_b, want, scale, tol_a, tol_b``."""


def rows(dtype: np.dtype, *, parallel: bool) -> Any:
    """The row kernel for ``dtype`` (float32 or float64), on threads if ``parallel``:
    ``kernel(a, b, form_a, form_b, want, scale, tol_a, tol_b, out) -> suspects``.
    Compiled (or loaded from the cache) for this one signature; ``_fused`` keeps it."""
    compile_ = numba.njit(
        [_signature(dtype, 2, *_ROW_OPTIONS)],
        error_model="numpy",
        nogil=True,
        cache=True,
        parallel=parallel,
    )
    return compile_(_rows if parallel else _renamed(_rows, "_rows_serial"))


def pointwise(dtype: np.dtype) -> Any:
    """The elementwise kernel for ``dtype``:
    ``kernel(p, q, which, scale, screen, out) -> suspects``."""
    signature = _signature(dtype, 1, types.int64, types.float64, types.boolean)
    return numba.njit([signature], error_model="numpy", nogil=True, cache=True)(_pointwise)
