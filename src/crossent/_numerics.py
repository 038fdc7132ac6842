"""Elementwise terms of the information measures, exact at the limits.

Shared by ``info/`` (the measures), ``losses/`` (distillation) and ``calibration/``
(``safe_log``), so none of them imports another package's private module.

Every kernel here maps arrays to arrays of the same broadcast shape; the measures
sum them.  Conventions (Cover and Thomas 2006, sec. 2.3): ``0 log 0 = 0``,
``0 log(0/q) = 0`` and ``p log(p/0) = +inf`` for ``p > 0``.

Two implementations of each kernel here, and a third beside the measures: the fused
Numba row kernels of ``info/_fused.py`` (NumPy float32/float64 inputs when Numba is
installed) follow these conventions and branches term by term, and
``tests/info/test_issue13_fused_measures.py`` holds them to these ones:

* NumPy: SciPy's C ufuncs (``entr``, ``xlogy``, ``rel_entr``, ``xlog1py``), one pass
  without temporaries and without floating-point warnings; where there is none, the
  same operations as the generic branch with fewer ufunc calls (a row of 10 costs
  about 0.5 us a call, whatever it computes; issue 13): values fixed in place rather
  than through ``where`` and fresh constant arrays, numbers as cached 0-d arrays of
  the dtype (:class:`_Constants`), warnings of discarded entries silenced.
* Any other namespace: the same values from array-API operations, written so that
  no branch evaluates ``log(0)`` or ``x / 0`` (the "double where" pattern).  A branch
  that ``where`` discards still receives gradient ``0 * d(branch)``, which is NaN if
  the discarded branch has an infinite derivative; feeding it safe placeholder
  values keeps torch autograd and ``jax.grad`` finite wherever the value is finite.

At a term with ``p = 0`` the derivative with respect to ``p`` is taken to be the one
of the convention's constant (0 at ``p = q = 0``), because the one-sided derivative
(``-log q`` or ``-log p``) is infinite there.
"""

from __future__ import annotations

import math
import typing
from types import ModuleType
from typing import NamedTuple

import numpy as np

# the error-free transformations' home is ``_double_double``; their old private names
# here stay for ``losses/``, ``calibration/`` and ``info/_kl_mixed``, which import them
from ._double_double import quick_two_sum as _quick_two_sum
from ._double_double import two_product as _two_product
from ._double_double import two_sum as _two_sum  # noqa: F401 (re-exported)
from ._lazy import LazyModule
from ._xp import (
    Array,
    device,
    full_like,
    is_numpy,
    numpy_errstate,
    ones_like,
    zeros_like,
)

if typing.TYPE_CHECKING:
    from scipy import special
else:  # imported on the first NumPy call (issue 13: ``import crossent`` time)
    special = LazyModule("scipy.special", globals(), "special")

__all__ = [
    "binary_cross_grad_terms",
    "binary_cross_terms",
    "binary_entropy_terms",
    "cross_terms",
    "cross_terms_from_log",
    "cross_terms_from_probs",
    "entropy_terms",
    "entropy_terms_from_log",
    "exp_times",
    "far_gap_cross_entropy",
    "far_gap_cross_entropy64",
    "js_terms",
    "js_terms_from_log_ratios",
    "kl_terms",
    "kl_terms_from_log",
    "kl_terms_from_normalised_logs",
    "kl_terms_nonnegative",
    "kl_terms_nonnegative_dd",
    "next_power_of_two",
    "phi_near_one",
    "safe_log",
    "surprisal_terms",
]

# Subnormal denominators make p / q overflow although log(p / q) is finite; scaling
# them by 2**64 (exact) brings every subnormal float32 or float64 into the normal range.
_SCALE_EXPONENT = 64
_LOG_SCALE = _SCALE_EXPONENT * math.log(2.0)

# SciPy releases whose rel_entr computes x * log(x / y) overflow for subnormal y; newer
# ones do not. Probed once, at the first NumPy call of kl_terms (so that importing
# crossent does not import SciPy), so the NumPy path pays for the repair only where needed.
_REL_ENTR_OVERFLOWS: bool | None = None

# SciPy releases whose rel_entr computes x * log(x / y) lose the relative accuracy of
# terms with x / y near 1 (SciPy 1.17's does not): 1 * log(1 / (1 - 2**-30)) is
# 2**-30 + 2**-61 + ..., the rounded ratio 1 + 2**-30 gives 2**-30 - 2**-61.
_REL_ENTR_NAIVE_NEAR_ONE: bool | None = None


def _probe_rel_entr() -> None:
    """Set the ``_REL_ENTR_*`` flags still unknown (None) from SciPy's ``rel_entr``."""
    global _REL_ENTR_OVERFLOWS, _REL_ENTR_NAIVE_NEAR_ONE
    from scipy.special import rel_entr  # SciPy's own, whatever ``special`` is bound to

    if _REL_ENTR_OVERFLOWS is None:
        _REL_ENTR_OVERFLOWS = bool(np.isinf(rel_entr(1.0, 1e-310)))
    if _REL_ENTR_NAIVE_NEAR_ONE is None:
        ratio = rel_entr(1.0, 1.0 - 2.0**-30) / -np.log1p(-(2.0**-30))
        _REL_ENTR_NAIVE_NEAR_ONE = bool(abs(ratio - 1.0) > 1e-12)


# ``ln 2 = _LN2_HIGH + _LN2_LOW``, the first with 12 significant bits: ``k * _LN2_HIGH`` is
# exact in float32 and float64 for an integer ``|k| < 2^12`` (:func:`exp_times`).
_LN2_HIGH = 2839.0 / 4096.0
_LN2_LOW = 3.1946184945309415e-05

# Below this ``log_x`` every product ``e^log_x * y`` with a finite float64 ``y`` (at most
# ``e^710``) underflows to 0 (``e^-1338``): :func:`exp_times` is not used there.
_EXP_TIMES_FLOOR = -2048.0


def _log_smallest_normal(dtype: object, *, xp: ModuleType) -> float:
    """The logarithm of the smallest normal number of ``dtype``."""
    tiny = xp.finfo(dtype).smallest_normal
    # (a long double's is 0.0 as a float: its log taken in long double)
    return math.log(float(tiny)) if float(tiny) > 0 else float(np.log(np.asarray(tiny)))


def _subnormal_exp(log_x: Array, *, xp: ModuleType) -> Array:
    """Where ``e^log_x`` is finite but below the smallest normal number of its dtype
    (so its relative accuracy is lost, 0 included), and ``log_x`` above
    ``_EXP_TIMES_FLOOR``."""
    threshold = _log_smallest_normal(log_x.dtype, xp=xp)
    return (log_x < threshold) & (log_x > _EXP_TIMES_FLOOR)


def exp_times(log_x: Array, y: Array, *, xp: ModuleType) -> Array:
    r""":math:`e^{\log x}\,y` for :math:`y \ge 0`, without rounding :math:`e^{\log x}`
    where it is subnormal (issue 13: :math:`-p\log q` of :math:`\log p = -745`,
    :math:`\log q = -10^{300}` was :math:`4.94\cdot 10^{-24}`, the subnormal
    :math:`e^{-745}` rounded to :math:`2^{-1074}`, against :math:`2.82\cdot 10^{-24}`).

    .. math:: e^{\log x}\,y = e^{s}\,y\,2^{-k}, \qquad k = \operatorname{round}(-\log x/\ln 2),
              \qquad s = (\log x + k L_1) + k L_2,

    :math:`L_1` (``_LN2_HIGH``) with 12 significant bits, so :math:`k L_1` and the first
    sum are exact (:math:`|\log x| \le 2048`, :math:`|k| < 2^{12}`: both terms are
    multiples of :math:`2^{-43}`, :math:`2^{-13}` in float32, and so is their small
    sum); :math:`|s| \le 0.35`; then ``exp``, the product and the exact scaling by
    :math:`2^{-k}` (in two halves, each normal): about :math:`3u` relative where the
    result is normal. :math:`y` enters as :math:`y/4` (and :math:`2^{2-k}`), so that
    :math:`e^{s} y` does not overflow for :math:`y` near the largest float (issue 13:
    :math:`-p\log q` of :math:`\log p = -1400`, :math:`\log q = -1.7\cdot 10^{308}` was
    :math:`+\infty` for :math:`1.65\cdot 10^{-300}`). For ``log_x`` with
    :math:`e^{\log x}` normal or below ``_EXP_TIMES_FLOOR`` the caller keeps its plain
    product (this is valid there too)."""
    k = xp.round(-log_x / math.log(2.0))
    s = (log_x + k * _LN2_HIGH) + k * _LN2_LOW
    half = xp.floor(k / 2)
    # on the input's device: a CPU scalar beside CUDA logits broke the reverse KL's
    # backward there ("Expected all tensors to be on the same device", an H200 run)
    two = xp.asarray(2.0, dtype=log_x.dtype, device=device(log_x))
    scale = xp.pow(two, -half)
    # 2^(half - k + 2) = 2^-half * (4 or 2), as 2 half - k is 0 or -1: one elementwise
    # pow, not two (the costly operation on other arrays than NumPy's)
    rest = scale * (4 + 2 * (2 * half - k))
    return xp.exp(s) * (y * 0.25) * scale * rest


def _numpy_arrays(a: Array, b: Array) -> bool:
    """Whether the NumPy branches apply: two NumPy arrays of one dtype, not both 0-d (whose
    results would be NumPy scalars, which the branches cannot write into)."""
    return (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and (a.ndim > 0 or b.ndim > 0)
        and a.dtype == b.dtype
    )


_SCIPY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _scipy_takes(*arrays: Array) -> bool:
    """Whether SciPy's ufuncs (``entr``, ``xlogy``, ``rel_entr``, ``xlog1py``) take these
    NumPy arrays: float32 or float64. They have no long double loop, and raised a bare
    ``TypeError`` on ``np.longdouble`` probabilities, which the array-API branches compute
    in long double instead (issue 13, hostile tests)."""
    return all(getattr(a, "dtype", None) in _SCIPY_DTYPES for a in arrays)


class _Constants(NamedTuple):
    """The numbers of the NumPy branches as 0-d arrays of the computation's dtype.

    As operands they cost a fraction of a Python number, which NumPy converts anew on
    every call (about 0.5 us each on 10 elements; issue 13), and they keep the dtype.
    """

    zero: np.ndarray
    half: np.ndarray
    one: np.ndarray
    two: np.ndarray
    four: np.ndarray
    inf: np.ndarray
    minus_inf: np.ndarray
    lowest: np.ndarray  # the most negative finite number


def _constants(dtype: np.dtype) -> _Constants:
    known = _CONSTANTS.get(dtype)
    if known is None:
        # (the lowest number as finfo gives it: ``float()`` of a long double's is -inf,
        # which floored nothing, and ``0 * -inf`` made the terms NaN; issue 13)
        numbers = (0.0, 0.5, 1.0, 2.0, 4.0, math.inf, -math.inf, np.finfo(dtype).min)
        known = _CONSTANTS[dtype] = _Constants(*(np.asarray(v, dtype=dtype) for v in numbers))
    return known


_CONSTANTS: dict[np.dtype, _Constants] = {}


def _floored(log_x: np.ndarray, c: _Constants) -> np.ndarray:
    """``log_x`` with ``-inf`` raised to the lowest finite number of its dtype.

    The NumPy kernels' stand-in for ``where(log_x == -inf, 0, log_x)``, one ufunc call
    instead of three: multiplied by a weight of 0 it gives a zero (``-0.0`` for ``+0.0``,
    which no sum tells apart), and wherever the convention wants ``+inf`` the kernel
    writes it explicitly. NaN stays NaN.
    """
    return np.maximum(log_x, c.lowest)


def _ones(x: Array, *, xp: ModuleType) -> Array:
    return ones_like(x, xp=xp)


def safe_log(x: Array, *, xp: ModuleType) -> Array:
    """``log(x)`` with ``log(0) = -inf``, no warning and a zero gradient at 0 (NaN
    where ``x`` is NaN or negative, as NumPy's)."""
    if is_numpy(xp):
        with np.errstate(divide="ignore"):
            return xp.log(x)
    # (``x == 0``, not ``x <= 0``: a NaN, or a negative value that validate=False let
    # through, takes NaN as NumPy's log gives it; a hostile pass: a NaN probability was
    # -inf here, its KL 0.0 or inf)
    zero = x == 0
    logged = xp.log(xp.where(zero, _ones(x, xp=xp), x))
    return xp.where(zero, full_like(x, -math.inf, xp=xp), logged)


def surprisal_terms(p: Array, *, xp: ModuleType) -> Array:
    """``-log p``, ``+inf`` at ``p = 0``; under autodiff the derivative ``-1/p``, so
    ``-inf`` at ``p = 0`` (:func:`safe_log`'s placeholder gave 0 there)."""
    if is_numpy(xp):
        return -safe_log(p, xp=xp)
    with numpy_errstate(p, xp, divide="ignore"):  # (array-api-strict: NumPy underneath)
        return -xp.log(p + 0.0)  # (+ 0.0: a -0.0 probability's slope is -inf too)


def entropy_terms(p: Array, *, xp: ModuleType) -> Array:
    """``-p log p``, 0 at ``p = 0``."""
    if is_numpy(xp) and _scipy_takes(p):
        return special.entr(p)
    p_safe = xp.where(p > 0, p, _ones(p, xp=xp))
    return -(p * xp.log(p_safe))


def entropy_terms_from_log(log_p: Array, *, xp: ModuleType) -> Array:
    """``-p log p`` from ``log p``, 0 where ``log p = -inf``."""
    if type(log_p) is np.ndarray and log_p.ndim:  # fewer ufunc calls (issue 13: overhead)
        terms = np.exp(log_p)
        terms *= _floored(log_p, _constants(log_p.dtype))
        return np.negative(terms, out=terms)
    finite = log_p > -math.inf
    log_safe = xp.where(finite, log_p, zeros_like(log_p, xp=xp))
    return -(xp.exp(log_p) * log_safe)


def cross_terms(p: Array, log_q: Array, *, xp: ModuleType) -> Array:
    """``-p log q`` from ``p`` and ``log q``: 0 where ``p = 0``, ``+inf`` where only ``q = 0``."""
    if _numpy_arrays(p, log_q):  # fewer ufunc calls (issue 13: per-call overhead)
        c = _constants(p.dtype)
        zero_q = log_q == c.minus_inf
        terms = np.multiply(p, np.where(zero_q, c.zero, log_q))
        np.negative(terms, out=terms)
        np.copyto(terms, c.inf, where=zero_q & (p > c.zero))
        return terms
    zero_q = log_q == -math.inf
    log_safe = xp.where(zero_q, zeros_like(log_q, xp=xp), log_q)
    terms = -(p * log_safe)
    return xp.where(zero_q & (p > 0), full_like(terms, math.inf, xp=xp), terms)


def cross_terms_from_log(p: Array, log_p: Array, log_q: Array, *, xp: ModuleType) -> Array:
    """:func:`cross_terms` for ``p = exp(log_p)``: ``+inf`` also where ``p`` underflowed to
    0 but ``log p`` is finite (so ``p > 0``) and ``q = 0``, as :func:`kl_terms_from_log`
    decides; the finite cross-entropy there broke H(P, Q) = H(P) + D(P||Q) (issue 13,
    hostile tests: 1400 nats beside an infinite KL)."""
    terms = cross_terms(p, log_q, xp=xp)
    lost = (log_p > -math.inf) & (log_q == -math.inf)
    # ``p`` subnormal (or underflowed to 0) against a finite ``log q``: the product
    # scaled instead (:func:`exp_times`; 4.94e-24 for 2.82e-24, issue 13).
    tiny = _subnormal_exp(log_p, xp=xp) & (log_q > -math.inf)
    if type(terms) is np.ndarray and terms.ndim:
        np.copyto(terms, np.inf, where=lost)
        if tiny.any():
            log_p_b, log_q_b = np.broadcast_arrays(log_p, log_q)
            terms[tiny] = exp_times(log_p_b[tiny], -log_q_b[tiny], xp=np)
        return terms
    terms = xp.where(lost, full_like(terms, math.inf, xp=xp), terms)
    log_p_tiny = xp.where(tiny, log_p, full_like(log_p, -1000.0, xp=xp))
    log_q_tiny = xp.where(tiny, log_q, zeros_like(log_q, xp=xp))
    return xp.where(tiny, exp_times(log_p_tiny, -log_q_tiny, xp=xp), terms)


def cross_terms_from_probs(p: Array, q: Array, *, xp: ModuleType) -> Array:
    """``-p log q`` from probabilities (NumPy: ``-xlogy``)."""
    if is_numpy(xp) and _scipy_takes(p, q):
        return -special.xlogy(p, q)
    return cross_terms(p, safe_log(q, xp=xp), xp=xp)


def kl_terms(p: Array, q: Array, *, xp: ModuleType) -> Array:
    r"""``p log(p / q)`` from probabilities, to a few ulps relative, also for subnormal ``q``.

    Where :math:`q/2 \le p \le 2q` the logarithm is taken as

    .. math:: \log\frac{p}{q} = \operatorname{log1p}\Big(\frac{p - q}{q}\Big),

    whose argument is exact up to one rounding (``p - q`` is exact there, by Sterbenz's
    lemma), so each term keeps its relative accuracy as :math:`p \to q`.  The plain
    ``log(p / q)`` does not: rounding the ratio costs an absolute error of about
    :math:`\epsilon` in a logarithm of size :math:`|p - q|/q`, so the sum of nearly
    equal distributions came out negative.  Elsewhere :math:`|\log(p/q)| > \log 2` and
    the ratio's rounding is harmless.  The derivative is unchanged:
    :math:`\partial_p = \log(p/q) + 1`, :math:`\partial_q = -p/q`.  On NumPy, SciPy's
    ``rel_entr`` keeps this accuracy itself (1.17); older releases are repaired here.
    """
    if is_numpy(xp) and _scipy_takes(p, q):
        terms = np.asarray(special.rel_entr(p, q))
        if _REL_ENTR_OVERFLOWS is None or _REL_ENTR_NAIVE_NEAR_ONE is None:
            _probe_rel_entr()
        p_b, q_b = (p, q) if p.shape == q.shape else np.broadcast_arrays(p, q)
        if _REL_ENTR_OVERFLOWS:
            overflowed = np.isposinf(terms) & (q_b > 0)
            if overflowed.any():  # p / q overflowed although q > 0: redo those with logs
                terms[overflowed] = p_b[overflowed] * (
                    np.log(p_b[overflowed]) - np.log(q_b[overflowed])
                )
        if not _REL_ENTR_NAIVE_NEAR_ONE:
            return terms
        # Near 1 (|p - q| <= min(p, q), i.e. q/2 <= p <= 2q), in place: no gathers.
        difference = np.subtract(p_b, q_b, dtype=terms.dtype)
        near = np.abs(difference) <= np.minimum(p_b, q_b)
        near &= p_b > 0
        np.divide(difference, q_b, out=difference, where=near)
        np.log1p(difference, out=difference, where=near)
        np.multiply(p_b, difference, out=terms, where=near)
        return terms
    ones = _ones(p, xp=xp)
    p_pos = p > 0
    q_pos = ~(q <= 0)  # (a NaN q propagates, as SciPy's rel_entr: it was +inf)
    p_safe = xp.where(p_pos, p, ones)
    q_safe = xp.where(p_pos & q_pos, q, ones)
    near = (p_safe <= 2 * q_safe) & (q_safe <= 2 * p_safe)
    # Near 1: log1p of the exact difference (placeholders of 1 keep the other branch finite).
    p_near = xp.where(near, p_safe, ones)
    q_near = xp.where(near, q_safe, ones)
    log_near = xp.log1p((p_near - q_near) / q_near)
    # Far from 1: the ratio, with subnormal denominators scaled into the normal range.
    p_far = xp.where(near, ones, p_safe)
    q_far = xp.where(near, ones, q_safe)
    tiny = xp.finfo(q.dtype).smallest_normal
    subnormal = q_far < tiny
    q_scaled = xp.where(subnormal, q_far * float(2**_SCALE_EXPONENT), q_far)
    shift = xp.where(subnormal, full_like(q_far, _LOG_SCALE, xp=xp), zeros_like(q_far, xp=xp))
    log_far = xp.log(p_far / q_scaled) + shift
    terms = p * xp.where(near, log_near, log_far)
    return xp.where(p_pos & ~q_pos, full_like(terms, math.inf, xp=xp), terms)


_ATANH_TAIL = tuple(1.0 / (2 * k + 3) for k in range(17, -1, -1))
r""":math:`1/(2k + 3)`, :math:`k = 17, \dots, 0` (Horner's order, in :math:`s^2`): for
:math:`s^2 \le 1/9` the remainder of :math:`\sum_k s^{2k}/(2k + 3)` is below
:math:`2^{-57}` of it (:func:`kl_terms_nonnegative`)."""


def kl_terms_nonnegative(p: Array, q: Array, *, xp: ModuleType) -> Array:
    r"""The non-negative terms :math:`p\log(p/q) - p + q` of D(P||Q) from probabilities,
    each to a few ulps: D is their sum plus :math:`\sum_i (p_i - q_i)` (issue 13: the
    plain terms of nearly equal rows cancel).

    .. math:: p\log\frac{p}{q} - p + q = p\,(r - \operatorname{log1p} r)
              = p\Big(rs - 2s^3 \sum_k \frac{s^{2k}}{2k + 3}\Big),
              \qquad r = \frac{q - p}{p}, \quad s = \frac{r}{2 + r}

    where :math:`q/2 \le p \le 2q` (:math:`p - q` exact, :math:`|s| \le 1/3`, the two
    parts cancel by at most 8 %); elsewhere :func:`kl_terms` minus :math:`p - q` (a
    cancellation by a factor below 12). :math:`q` where :math:`p = 0`, :math:`+\infty`
    where only :math:`q = 0` (the fused twin: ``_fused_kernels._kl_probs_nonnegative``).
    """
    ones = _ones(p, xp=xp)
    both = (p > 0) & (q > 0)
    near = both & (xp.abs(p - q) <= xp.minimum(p, q))
    p_near = xp.where(near, p, ones)
    r = (xp.where(near, q, ones) - p_near) / p_near
    s = r / (2 + r)
    s2 = s * s
    series = zeros_like(s, xp=xp)
    for coefficient in _ATANH_TAIL:
        series = coefficient + s2 * series
    near_terms = p_near * (r * s - 2 * s * s2 * series)
    far_terms = kl_terms(p, q, xp=xp) - (p - q)
    terms = xp.where(near, near_terms, far_terms)
    return xp.where(p == 0, q, terms)


_NEAR_RATIO = 2.0**-6
r"""The largest :math:`|r|` whose term :func:`kl_terms_nonnegative_dd` forms as a
double-double (as ``_fused_kernels._NEAR_RATIO``)."""

_LOG1P_TAIL = tuple((-1.0) ** k / k for k in range(16, 2, -1))
r""":math:`(-1)^k/k`, :math:`k = 16, \dots, 3` (Horner's order): :math:`r - \operatorname
{log1p} r = r^2/2 + r^3 \sum_{k \ge 3} (-1)^k r^{k-3}/k`, the remainder below
:math:`|r|^{14}/17 < 2^{-88}` of :math:`r^2/2` for :math:`|r| \le 2^{-6}`."""

_SPLIT_LIMIT = 2.0**900  # above it the splitting may overflow: those terms stay plain


def kl_terms_nonnegative_dd(p: Array, q: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":func:`kl_terms_nonnegative` as double-doubles ``(hi, lo)`` where the ratio is
    near 1, :math:`|r| \le 2^{-6}` with :math:`r = (q - p)/p` (``lo`` 0 elsewhere): the
    terms of nearly equal rows, whose sum can cancel against the mass difference
    (float64 only; the generic twin of ``_fused_kernels._near_term_dd``).

    .. math:: p\,(r - \operatorname{log1p} r) = p\Big(\frac{r^2}{2} + r^3 \sum_{k \ge 3}
              \frac{(-1)^k r^{k-3}}{k}\Big)

    with :math:`p - q` exact (Sterbenz), :math:`r`'s rounding error from the exact
    remainder :math:`r p + (p - q)` (:func:`_two_product`), :math:`r^2/2` as a
    double-double and the rest (under :math:`2^{-5}` of it) as a float: about
    :math:`2^{-100}` of the term where :math:`p` times it does not underflow. Other
    terms (``lo`` 0) are :func:`kl_terms_nonnegative`'s, formed only if there are any
    (one synchronisation)."""
    ones = _ones(p, xp=xp)
    zeros = zeros_like(p, xp=xp)
    difference = p - q
    near = (p > 0) & (q > 0) & (xp.abs(difference) <= xp.minimum(p, q)) & (p <= _SPLIT_LIMIT)
    x = xp.where(near, p, ones)
    d = xp.where(near, difference, zeros)
    r = -d / x
    near = near & (xp.abs(r) <= _NEAR_RATIO)
    r = xp.where(near, r, zeros)
    rx, rx_lo = _two_product(r, x)
    r_lo = -((rx + d) + rx_lo) / x  # rx + d exact: rx is within an ulp of -d
    square, square_lo = _two_product(r, r)
    square_lo = square_lo + 2.0 * r * r_lo
    tail = zeros_like(r, xp=xp)
    for coefficient in _LOG1P_TAIL:
        tail = coefficient + r * tail
    f_hi, f_lo = _quick_two_sum(0.5 * square, 0.5 * square_lo + square * r * tail)
    product, error = _two_product(x, f_hi)
    hi, lo = _quick_two_sum(product, error + x * f_lo)
    if bool(xp.all(near)):  # (nearly equal rows: the usual case) no other term to form
        return hi, lo
    return xp.where(near, hi, kl_terms_nonnegative(p, q, xp=xp)), xp.where(near, lo, zeros)


def kl_terms_from_log(
    log_p: Array, log_q: Array, *, xp: ModuleType, p: Array | None = None
) -> Array:
    """``p (log p - log q)`` from log-probabilities.

    0 where ``p = 0``; ``+inf`` where ``p > 0`` and ``q = 0``. Where ``p = exp(log p)``
    is subnormal the product is scaled (:func:`exp_times`), unless ``p`` is given (a
    side of probabilities, exact): then it is ``p (log p - log q)`` itself there (the
    scaled product of its rounded logarithm was some 300 ulps off; issue 13).
    """
    if _numpy_arrays(log_p, log_q):  # fewer ufunc calls (issue 13: per-call overhead)
        c = _constants(log_p.dtype)
        terms = np.subtract(_floored(log_p, c), _floored(log_q, c))
        tiny = _subnormal_exp(log_p, xp=np) & (log_q > c.minus_inf)
        if tiny.any():  # p subnormal: the product scaled (:func:`exp_times`) or exact
            difference = terms[tiny]
            if p is None:
                log_p_b = np.broadcast_to(log_p, terms.shape)[tiny]
                scaled = np.copysign(exp_times(log_p_b, np.abs(difference), xp=np), difference)
            else:
                scaled = np.broadcast_to(p, terms.shape)[tiny] * difference
        terms *= np.exp(log_p)
        if tiny.any():
            terms[tiny] = scaled
        np.copyto(terms, c.inf, where=(log_p > c.minus_inf) & (log_q == c.minus_inf))
        return terms
    p_pos = log_p > -math.inf
    q_zero = log_q == -math.inf
    zeros = zeros_like(log_p, xp=xp)
    log_p_safe = xp.where(p_pos, log_p, zeros)
    log_q_safe = xp.where(q_zero, zeros, log_q)
    difference = log_p_safe - log_q_safe
    terms = xp.exp(log_p) * difference
    tiny = _subnormal_exp(log_p, xp=xp) & ~q_zero
    if p is None:
        log_p_tiny = xp.where(tiny, log_p, full_like(log_p, -1000.0, xp=xp))
        scaled = exp_times(log_p_tiny, xp.abs(difference), xp=xp)
        terms = xp.where(tiny, xp.where(difference < 0, -scaled, scaled), terms)
    else:
        terms = xp.where(tiny, p * difference, terms)
    return xp.where(p_pos & q_zero, full_like(terms, math.inf, xp=xp), terms)


def _exp_times_where_subnormal(x: Array, log_x: Array, y: Array, *, xp: ModuleType) -> Array:
    r""":math:`x y` for :math:`x = e^{\log x}` and a finite :math:`y`, by
    :func:`exp_times` where :math:`x` is subnormal (:func:`_subnormal_exp`; its formula
    holds for :math:`y` of either sign): the rounded :math:`x` times a huge :math:`y`
    may be a normal number, off by up to 100 % (issue 13: the KL of two sides of
    logits, :math:`p(r - 1)` of :func:`kl_terms_from_normalised_logs` with
    :math:`\log p = -745`, :math:`\log q = -10^{300}`, was :math:`4.94\cdot 10^{-24}`
    against :math:`2.82\cdot 10^{-24}`). NumPy: only those entries, if any; other
    arrays: everywhere, ``log x`` clipped into :func:`exp_times`' range (finite values
    and gradients where its result is not taken)."""
    products = x * y
    if type(products) is np.ndarray and products.ndim:
        if log_x.size and log_x.min() < _log_smallest_normal(log_x.dtype, xp=np):
            tiny = np.broadcast_to(_subnormal_exp(log_x, xp=np), products.shape)
            log_x_b, y_b = np.broadcast_arrays(log_x, y)
            products[tiny] = exp_times(log_x_b[tiny], y_b[tiny], xp=np)
        return products
    log_x_safe = xp.clip(log_x, _EXP_TIMES_FLOOR, 0.0)
    return xp.where(_subnormal_exp(log_x, xp=xp), exp_times(log_x_safe, y, xp=xp), products)


_PHI_SERIES = tuple((j + 1) / math.factorial(j + 2) for j in range(17, -1, -1))
r""":math:`c_{17}, \dots, c_0` of :math:`\varphi(r) = r^2 \sum_j c_j r^j`,
:math:`c_j = (j + 1)/(j + 2)!` (Horner's order): for :math:`|r| \le 1` the remainder is
below :math:`1.1\,c_{18} < 8.6\cdot 10^{-18}` times :math:`r^2`, under :math:`2^{-54}` of
:math:`\varphi(r) \ge (1 - 2/e)\,r^2 > 0.26\,r^2`."""


def phi_near_one(r: Array, *, xp: ModuleType) -> Array:
    r""":math:`\varphi(r) = 1 + (r - 1)e^r` for :math:`|r| \le 1` by its series
    :math:`r^2\sum_{j \ge 0} (j + 1) r^j/(j + 2)!` (``_PHI_SERIES``, to about an ulp;
    :math:`q\varphi(r)` is a term of :func:`kl_terms_from_normalised_logs`)."""
    series = zeros_like(r, xp=xp)
    for coefficient in _PHI_SERIES:
        series = coefficient + r * series
    return r * r * series


def kl_terms_from_normalised_logs(
    log_p: Array, log_q: Array, *, xp: ModuleType, r: Array | None = None
) -> Array:
    r"""Terms of D(P||Q) that are each :math:`\ge 0`, for two sides that sum to 1 exactly
    by construction (both log-softmaxes of logits).

    .. math:: D(P \,\|\, Q) = \sum_i \big(p_i \log\tfrac{p_i}{q_i} - p_i + q_i\big)
              = \sum_i q_i\, \varphi(r_i), \qquad r_i = \log p_i - \log q_i,
              \qquad \varphi(r) = 1 + (r - 1) e^r \ge 0,

    as :math:`\sum_i p_i = \sum_i q_i = 1`. The plain terms :math:`p_i r_i` of nearly
    equal rows cancel: their sum was off by about :math:`\epsilon`, below 0 for half
    of such rows (issue 13, hostile tests: -3e-16 where the truth is 1e-24). Here
    nothing cancels, and an error :math:`\delta` common to every :math:`r_i` (the
    log-partitions' rounding) moves the sum by :math:`\delta D` only
    (:math:`\varphi'(r) = r e^r`). :math:`\varphi` by its series (``_PHI_SERIES``)
    where :math:`|r| \le 1`, else :math:`q\varphi(r) = q + p(r - 1)`, which cancels by
    at most :math:`1/\varphi(-1) < 3.8` and does not overflow. Where :math:`p_i = 0`
    the term is :math:`q_i` (:math:`\varphi(-\infty) = 1`), where only :math:`q_i = 0`
    it is :math:`+\infty`. The fused kernels sum the same terms
    (``info/_fused_kernels._bregman_sums``). ``r``: the log-ratios where both are
    finite, if the caller has them more accurately than ``log_p - log_q`` (float32
    logits where the device has no float64: ``info/_measures._kl_nats``).
    """
    minus_inf = -math.inf
    # (NaN counts as positive, so that it reaches the term: a hostile pass, the KL of
    # logits [nan, 0] against [0, 0] with validate=False was 1.0, the q of "p = 0")
    p_pos = log_p != minus_inf
    both = p_pos & (log_q != minus_inf)
    zeros = zeros_like(log_p, xp=xp)
    if r is None:
        r = xp.where(both, log_p, zeros) - xp.where(both, log_q, zeros)
    else:
        r = xp.where(both, r, zeros)
    small = xp.abs(r) <= 1
    r_small = xp.where(small, r, zeros)
    p, q = xp.exp(log_p), xp.exp(log_q)
    far = q + _exp_times_where_subnormal(p, log_p, xp.where(small, zeros, r) - 1, xp=xp)
    terms = xp.where(small, q * phi_near_one(r_small, xp=xp), far)
    outside = xp.where(p_pos, full_like(terms, math.inf, xp=xp), q)
    return xp.where(both, terms, outside)


def js_terms(p: Array, q: Array, *, xp: ModuleType, q_low: Array | None = None) -> Array:
    r"""Per-class Jensen-Shannon terms :math:`\tfrac12[p\log(2p/(p+q)) + q\log(2q/(p+q))]`.

    Each term is :math:`\tfrac{p+q}{4}\,g(d)` with :math:`d = (p-q)/(p+q)` and
    :math:`g(d) = (1+d)\log(1+d) + (1-d)\log(1-d) \ge 0`, so the sum has no
    cancellation.  For :math:`|d| \le 1/2`, :math:`g(d) = 2d\,\operatorname{atanh}(d) +
    \log(1-d^2)`, whose two terms cancel by a factor of at most 3 (plain
    :math:`p\log(p/m) + q\log(q/m)` loses all digits as :math:`p \to q`); otherwise
    :math:`g = a\log a + b\log b` with :math:`a = 2p/(p+q)`, :math:`b = 2q/(p+q)`.

    ``q_low``: :math:`q` is the pair ``q + q_low`` (``info._js_mixed``), and
    :math:`d = ((p - q) - q_{low})/(p + q)`: :math:`p - q` is exact where
    :math:`|d| \le 1/3` (Sterbenz), so nearly equal rows keep their digits.
    """
    if q_low is None and _numpy_arrays(p, q) and _scipy_takes(p):
        return _numpy_js_terms(p, q)
    ones = _ones(p, xp=xp)
    total = p + q
    nonzero = total != 0  # (NaN too: it propagates, where `> 0` made it a 0 term)
    total_safe = xp.where(nonzero, total, ones)
    d = ((p - q) if q_low is None else ((p - q) - q_low)) / total_safe
    near = xp.abs(d) <= 0.5
    d_near = xp.where(near, d, zeros_like(d, xp=xp))
    g_near = 2 * d_near * xp.atanh(d_near) + xp.log1p(-(d_near * d_near))
    a = xp.where(near, ones, 2 * p / total_safe)
    b = xp.where(near, ones, 2 * q / total_safe)
    g_far = entropy_terms(a, xp=xp) + entropy_terms(b, xp=xp)
    g = xp.where(near, g_near, -g_far)
    return xp.where(nonzero, total * g / 4, zeros_like(total, xp=xp))


def js_terms_from_log_ratios(delta: Array, p: Array, q: Array, *, xp: ModuleType) -> Array:
    r""":func:`js_terms` from accurate log-ratios :math:`\delta = \log p - \log q` (two
    sides of logits or log-probabilities: issue 13, :math:`d = (p - q)/(p + q)` from
    separately rounded probabilities lost the digits of nearly equal rows).

    With :math:`t = \tanh(\delta/2) = d`, :math:`2\operatorname{atanh} t = \delta`, so
    :math:`g = t\delta + \operatorname{log1p}(-t^2)` where :math:`|t| \le 1/2` (the two
    parts cancel by a factor below 3; :math:`p, q` only weigh the term), else
    :func:`js_terms` of :math:`p, q`. A non-finite :math:`\delta` (a zero probability)
    takes :func:`js_terms` too."""
    finite = xp.isfinite(delta)
    zeros = zeros_like(delta, xp=xp)
    delta_safe = xp.where(finite, delta, zeros)
    t = xp.tanh(delta_safe / 2)
    near = finite & (xp.abs(t) <= 0.5)
    t_near = xp.where(near, t, zeros)
    g = t_near * xp.where(near, delta_safe, zeros) + xp.log1p(-(t_near * t_near))
    return xp.where(near, (p + q) * g / 4, js_terms(p, q, xp=xp))


def _numpy_js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`js_terms` on NumPy: the same operations on both branches of every entry, the
    unused one discarded, in half the ufunc calls (issue 13: per-call overhead)."""
    c = _constants(p.dtype)
    total = p + q
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (p - q) / total  # NaN where p = q = 0, which the last line zeroes
        g = c.two * d * np.arctanh(d) + np.log1p(-(d * d))
        g_far = special.entr(c.two * p / total)
        g_far += special.entr(c.two * q / total)
    np.negative(g_far, out=g_far)
    np.copyto(g_far, g, where=np.abs(d) <= c.half)
    terms = total * g_far / c.four
    np.copyto(terms, c.zero, where=total == c.zero)  # (a NaN stays: a hostile pass)
    return terms


def binary_entropy_terms(p: Array, *, xp: ModuleType) -> Array:
    """``-p log p - (1-p) log(1-p)``, with ``log1p`` for the second logarithm."""
    one_minus = 1 - p
    if is_numpy(xp) and _scipy_takes(p):
        return special.entr(p) - special.xlog1py(one_minus, -p)
    # h(p) = BCE(p, p): the same operations, and autodiff's derivative is the sum of
    # BCE's two partial derivatives, log((1 - p)/p), +inf at p = 0 and -inf at p = 1
    # (the placeholders of the plain terms gave 1 and -1 there)
    return binary_cross_terms(p, p, xp=xp)


def binary_cross_terms(p: Array, q: Array, *, xp: ModuleType) -> Array:
    """``-p log q - (1-p) log(1-q)``; ``log1p`` keeps the second term exact for small ``q``."""
    one_minus_p = 1 - p
    if is_numpy(xp) and _scipy_takes(p, q):
        return -special.xlogy(p, q) - special.xlog1py(one_minus_p, -q)
    q_below_one = q < 1
    q_safe = xp.where(q_below_one, q, zeros_like(q, xp=xp))
    second = -(one_minus_p * xp.log1p(-q_safe))
    second = xp.where(~q_below_one & (one_minus_p > 0), full_like(second, math.inf, xp=xp), second)
    terms = cross_terms_from_probs(p, q, xp=xp) + second
    return _binary_cross_edges(p, q, terms, xp=xp)


def _binary_cross_edges(p: Array, q: Array, terms: Array, *, xp: ModuleType) -> Array:
    r"""``terms`` (:func:`binary_cross_terms`' values) with, at ``q = 0`` and ``q = 1``,
    the same values formed so that autodiff gives the one-sided derivatives

    .. math:: \partial_q = -\frac{p}{q} + \frac{1 - p}{1 - q}, \qquad
              \partial_p = \log\frac{1 - q}{q}

    each term 0 where its weight is 0 (as :func:`binary_cross_grad_terms`): at ``q = 0``,
    :math:`\partial_p = +\infty` and :math:`\partial_q = -\infty` (``p > 0``) or 1
    (``p = 0``); at ``q = 1`` the mirror image. The plain terms' placeholders made these
    finite (issue 13: ``d/dq`` of ``BCE(0.5, q)`` was 0.5 at ``q = 0``). An infinite term
    is ``w\,(-\log x)`` of its weight ``w > 0`` and ``x = 0`` (slopes :math:`+\infty`
    in ``w``, :math:`-\infty` in ``x``); a zero one is :math:`\sqrt{w}` at ``w = 0``
    (value 0, slope :math:`+\infty`). Every input of an unused branch is a placeholder
    of 1, so no 0 times infinity reaches a gradient."""
    ones = _ones(terms, xp=xp)
    one_minus_p = 1 - p
    log_term = q == 0
    first = _edge_term(p, q, log_term, ones, xp=xp)
    second = _edge_term(one_minus_p, 1 - q, q == 1, ones, xp=xp)
    edge = log_term | (q == 1)
    # (at q = 0 the other weight's term is the plain one, -(1 - p) log1p(-q), whose
    # slopes are right there; at q = 1 it is -p log q)
    plain_second = -(one_minus_p * xp.log1p(-xp.where(log_term, q, zeros_like(q, xp=xp))))
    plain_first = -(p * xp.log(xp.where(q == 1, q, ones)))
    edge_terms = xp.where(log_term, first + plain_second, second + plain_first)
    return xp.where(edge, edge_terms, terms)


def _edge_term(w: Array, x: Array, at: Array, ones: Array, *, xp: ModuleType) -> Array:
    """``-w log x`` where ``at`` (``x = 0`` there): ``+inf`` for ``w > 0``, 0 for
    ``w = 0``, with the slopes of :func:`_binary_cross_edges`; 1 elsewhere (unused)."""
    infinite = at & (w > 0)
    zero = at & (w == 0)
    w_inf = xp.where(infinite, w, ones)
    with numpy_errstate(w, xp, divide="ignore"):
        inf_term = -(w_inf * xp.log(xp.where(infinite, x, ones) + 0.0))
    zero_term = xp.sqrt(xp.where(zero, w, ones) + 0.0)
    return xp.where(infinite, inf_term, xp.where(zero, zero_term, ones))


def binary_cross_grad_terms(p: Array, q: Array, *, xp: ModuleType) -> Array:
    r"""``-p / q + (1 - p) / (1 - q)``, each term 0 where its weight is 0.

    For :math:`0 < q < 1` as :math:`\big((q - p)/q\big)/(1 - q)`, four roundings at most
    (``1 - q`` is exact for :math:`q \ge 1/2`): the two quotients cancel where
    :math:`p` nears :math:`q`, where their sum was 18 % off in float64 and 5 % in
    float32 (issue 13, hostile tests). At :math:`q = 0` and :math:`q = 1` the two terms,
    with the conventions above.
    """
    if _numpy_arrays(p, q):
        return _numpy_binary_cross_grad_terms(p, q)
    # array-api-strict (NumPy underneath): a quotient past the range is -inf, not a warning
    with numpy_errstate(q, xp, over="ignore"):
        return _generic_binary_cross_grad_terms(p, q, xp=xp)


def _generic_binary_cross_grad_terms(p: Array, q: Array, *, xp: ModuleType) -> Array:
    """:func:`binary_cross_grad_terms` in any namespace."""
    one_minus_p = 1 - p
    ones = ones_like(q, xp=xp)
    first = xp.where(p > 0, -p / xp.where(q > 0, q, ones), zeros_like(q, xp=xp))
    first = xp.where((p > 0) & (q == 0), full_like(first, -math.inf, xp=xp), first)
    second = xp.where(
        one_minus_p > 0, one_minus_p / xp.where(q < 1, 1 - q, ones), zeros_like(q, xp=xp)
    )
    second = xp.where((one_minus_p > 0) & (q == 1), full_like(second, math.inf, xp=xp), second)
    inside = (q > 0) & (q < 1)
    q_inside = xp.where(inside, q, full_like(q, 0.5, xp=xp))
    return xp.where(inside, ((q_inside - p) / q_inside) / (1 - q_inside), first + second)


def _numpy_binary_cross_grad_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`binary_cross_grad_terms` on NumPy: the same values, the fixed ones written
    in place instead of through ``where`` and fresh constant arrays (issue 13)."""
    c = _constants(p.dtype)
    p_pos = p > c.zero
    with np.errstate(over="ignore"):  # -p/q of a subnormal q: -inf, as it should be
        first = np.divide(-p, np.where(q > c.zero, q, c.one))
    np.copyto(first, c.minus_inf, where=p_pos & (q == c.zero))
    np.copyto(first, c.zero, where=~p_pos)
    one_minus_p = c.one - p
    weight_pos = one_minus_p > c.zero
    second = np.divide(one_minus_p, np.where(q < c.one, c.one - q, c.one))
    np.copyto(second, c.inf, where=weight_pos & (q == c.one))
    np.copyto(second, c.zero, where=~weight_pos)
    first += second
    inside = (q > c.zero) & (q < c.one)
    q_inside = np.where(inside, q, c.half)
    with np.errstate(over="ignore"):
        interior = np.subtract(q_inside, p)
        interior /= q_inside
    interior /= c.one - q_inside
    np.copyto(first, interior, where=inside)
    return first


def far_gap_cross_entropy(
    p: Array, x: Array, log_p: Array | None = None, *, xp: ModuleType
) -> Array:
    r"""Per row, :math:`H(p, \operatorname{softmax}(x)) = \sum_c p_c\,(\operatorname{LSE}(x)
    - x_c)` of float rows (probabilities ``p``, logits ``x``, classes last), finite
    wherever it is, although a gap :math:`x_c - m` (:math:`m = \max_c x_c`) may pass the
    float range (logits near :math:`\pm 10^{308}`), where :math:`\log q_c` is ``-inf``
    and :math:`p_c \log q_c` with it (a hostile review: ``cross_entropy([0.6, 0.4],
    [1.7e308, -1.7e308], q_form='logits')`` was ``inf``, the loss
    ``softmax_cross_entropy_with_targets`` of the same rows 1.36e308):

    .. math:: H = A\,\ell - 2^{j}\sum_c p_c\,(x_c 2^{-j} - m 2^{-j}),\qquad
              A = \sum_c p_c,\quad \ell = \log\sum_c e^{x_c - m},\quad
              2^j \ge 4C\max(1, \max_c p_c)

    (:math:`2^j` per row, exact by :func:`next_power_of_two`). Each scaled gap is finite
    and each product at most :math:`\text{max}/C`, so the sum is finite; the scalings
    by :math:`2^{\pm j}` are exact (``inf`` only where :math:`H` truly overflows). A
    ``-inf`` logit weighs as :math:`+\infty` where :math:`p_c > 0` and is absent where
    :math:`p_c = 0`. Elementwise operations and reductions of the standard only: the
    NumPy host pass (:func:`far_gap_cross_entropy64`) and arrays traced by ``jax.jit``
    (issue 13: the jitted ``cross_entropy`` of log-probabilities against logits
    spreading from :math:`-10^{308}` to :math:`10^{308}` was ``inf``, NumPy's
    1.6587e308 bits) compute it alike. The tempered twin of the softmax losses is
    ``losses._far_gaps.gap_sum_parts``.

    ``log_p`` (the logarithms ``p`` came from, if any, broadcast like ``p``): where
    :math:`e^{\log p_c}` is subnormal or underflows to 0 the product with the scaled
    gap is :func:`exp_times` of :math:`\log p_c` (a hostile review: ``cross_entropy([0,
    -800], [1.7e308, -1.7e308], p_form='logits', q_form='logits')`` was 0.0, the
    underflowed :math:`p_1 = e^{-800}` times :math:`3.4\cdot 10^{308}`, against
    :math:`1.247\cdot 10^{-39}`).
    """
    n = int(x.shape[-1])
    m = xp.max(x, axis=-1, keepdims=True)
    top = xp.argmax(x, axis=-1, keepdims=True)
    at_top = xp.arange(n, device=device(x)) == top
    zero = zeros_like(m, xp=xp)
    # a gap past the range: -inf, and e^gap = 0 as it truly is; the maximum's 1 apart
    terms = xp.where(at_top, zero, xp.exp(x - m))
    ell = xp.log1p(xp.sum(terms, axis=-1))
    largest = xp.max(p, axis=-1, keepdims=True)
    limit = 2.0**960 if x.dtype == xp.float64 else 2.0**100  # (the doubling stays finite)
    bound = xp.clip(4.0 * n * xp.maximum(largest, xp.ones_like(largest)), None, limit)
    scale = next_power_of_two(bound, xp=xp)
    gaps = x / scale - m / scale
    products = p * xp.where(p != 0, gaps, zero)
    if log_p is not None:
        small = _subnormal_exp(log_p, xp=xp)
        # (safe operands where not taken: a NaN there would reach jax.grad's cotangent)
        scaled = -exp_times(xp.where(small, log_p, -1.0), xp.where(small, -gaps, 0.0), xp=xp)
        products = xp.where(small & ~xp.isnan(scaled), scaled, products)
    b = xp.sum(products, axis=-1)
    return xp.sum(p, axis=-1) * ell - b * scale[..., 0]


def far_gap_cross_entropy64(
    p: np.ndarray, x: np.ndarray, log_p: np.ndarray | None = None
) -> np.ndarray:
    """:func:`far_gap_cross_entropy` of float64 NumPy rows, without warnings."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.asarray(far_gap_cross_entropy(p, x, log_p, xp=np))


def next_power_of_two(mu: Array, *, xp: ModuleType) -> Array:
    r"""The least power of two :math:`\ge \mu` for float64 :math:`0 \le \mu \le
    2^{969}` (0 for 0), exactly: :math:`q = 2^{53}\mu`, :math:`|(q + \mu) - q|`, or
    :math:`\mu` itself where that is 0 (:math:`\mu` a power of two: the tie rounds to
    :math:`q`). Rump, Ogita and Oishi 2008, Algorithm 3.5 (float32: :math:`2^{24}`,
    :math:`\mu \le 2^{100}`)."""
    q = mu * (2.0**53 if mu.dtype == xp.float64 else 2.0**24)
    step = xp.abs((q + mu) - q)
    return xp.where(step == 0, mu, step)
