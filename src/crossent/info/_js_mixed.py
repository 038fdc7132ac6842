r"""JS divergence of a side of probabilities against logits or log-probabilities, exactly,
in any array namespace (JAX, array-api-strict, PyTorch): the generic path's twin of the
fused kernel's ``_js_of_logs`` beside a side of probabilities (issue 13, hostile22).

The plain sum (:func:`.._numerics.js_terms` of the other side's rounded probabilities)
stands where its error bound allows (:func:`careful_rows`, the fused kernel's screen);
the other rows take :func:`js_mixed_exact`: the other side's probabilities as
double-doubles :math:`q = e^{s}`, :math:`s = \log q` an exact pair, by :func:`exp_dd`,
normalised exactly where they are logits (:func:`excess_of_pairs`), and the terms from
:math:`d = ((p - q_{hi}) - q_{lo})/(p + q)`, which keeps the digits of nearly equal
rows (``js_divergence([0.5, 0.5], [9.7e-18, -6.5e-18], q_form='logits')`` was 0 for
8.154e-36; JAX float64 rows :math:`10^{-9}` apart 4e-7 relative off). Elementwise
operations and reductions of the standard only: no loop over rows, no host copy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction
from types import ModuleType

from .._numerics import _quick_two_sum, _two_product, _two_sum, js_terms
from .._xp import Array, device, finite_row_max, is_jax_tracer, log_sum_exp_shifted, settled

__all__ = [
    "careful_rows",
    "exact_where",
    "excess_of_pairs",
    "exp_dd",
    "expm1_reduced",
    "js_mixed_exact",
    "side_probabilities",
]

_U64 = 2.0**-53

_STEPS = 64
"""Table entries of :func:`exp_dd`: :math:`2^{j/64}`, :math:`0 \\le j < 64`."""


def _dd_of(value: Fraction | Decimal) -> tuple[float, float]:
    """A high-precision constant as a float64 pair ``hi + lo``."""
    hi = float(value)
    if isinstance(value, Decimal):
        return hi, float(value - Decimal(hi))
    return hi, float(value - Fraction(hi))


@functools.cache
def _constants() -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, float, float]]:
    r""":math:`2^{j/64}` as pairs (``hi``, ``lo`` tuples) and :math:`\ln 2/64` in three
    parts, the first two of 36 bits (so that :math:`n L_1`, :math:`n L_2` are exact
    for :math:`|n| < 2^{17}`), from :mod:`decimal` at 60 digits (once)."""
    with localcontext() as context:
        context.prec = 60
        steps = [_dd_of(Decimal(2) ** (Decimal(j) / _STEPS)) for j in range(_STEPS)]
        step = Decimal(2).ln() / _STEPS
        parts = []
        for _ in range(2):
            exponent = math.frexp(float(step))[1]
            part = math.ldexp(round(math.ldexp(float(step), 36 - exponent)), exponent - 36)
            parts.append(part)
            step -= Decimal(part)
        parts.append(float(step))
    return (
        tuple(h for h, _ in steps),
        tuple(lo for _, lo in steps),
        (parts[0], parts[1], parts[2]),
    )


_TAYLOR = tuple(_dd_of(Fraction(1, math.factorial(k))) for k in (5, 4, 3, 2, 1))
""":math:`1/k!`, :math:`k = 5, \\dots, 1` as pairs (Horner's order)."""
_TAIL = tuple(1.0 / math.factorial(k) for k in (11, 10, 9, 8, 7, 6))
""":math:`1/k!`, :math:`k = 11, \\dots, 6` (floats: their part is below :math:`4\\cdot
10^{-17}` of the series)."""


def _dd_mul_add(
    a: tuple[Array, Array], b: tuple[Array, Array], c: tuple[Array, Array]
) -> tuple[Array, Array]:
    """``a b + c`` of double-doubles (``|c|`` the larger), as a double-double."""
    p, e = _two_product(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    s, f = _two_sum(c[0], p)
    return _quick_two_sum(s, f + e + c[1])


def expm1_reduced(t_hi: Array, t_lo: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^t - 1` of a float64 pair :math:`t = t_{hi} + t_{lo}`,
    :math:`|t| \le \ln 2/128`, as a double-double, about :math:`2^{-100}` of itself:
    :math:`t\sum_{i \ge 1} t^{i-1}/i!` by Horner's scheme, the terms :math:`i \le 5`
    in double-double, the rest in floats (the series cut after :math:`i = 11`:
    :math:`3\cdot 10^{-33}`). The core of :func:`exp_dd`; alone, it keeps the digits
    of :math:`e^t` near 1 that :func:`exp_dd`'s float ``lo`` rounds (``_kl_mixed``)."""
    zero = xp.zeros_like(t_hi)
    tail = zero
    for c in _TAIL:
        tail = c + t_hi * tail
    a = (tail, zero)
    t = (t_hi, t_lo)
    for c_hi, c_lo in _TAYLOR:
        a = _dd_mul_add(a, t, (xp.full_like(t_hi, c_hi), xp.full_like(t_hi, c_lo)))
    return _dd_mul_add(a, t, (zero, zero))


def exp_dd(y: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^y` of float64 :math:`y \le 0` as a double-double ``hi + lo``, about
    :math:`2^{-100}` relative where it is normal: :math:`y = n\ln 2/64 + t`,
    :math:`|t| \le \ln 2/128`, :math:`t` a pair (the products by the 36-bit parts
    exact, the first difference exact); :math:`e^y = 2^k\, 2^{j/64}\, e^t`,
    :math:`n = 64k + j`, the table from :func:`_constants`, :math:`e^t - 1 = t\sum_{i
    \ge 1} t^{i-1}/i!` by Horner's scheme, the terms :math:`i \le 5` in double-double,
    the rest in floats (the series cut after :math:`i = 11`: :math:`3\cdot 10^{-33}`).
    The fused kernel's ``_exp_dd``, branch-free. ``-inf`` gives 0; a NaN, NaN."""
    steps_hi, steps_lo, (l1, l2, l3) = _constants()
    where = device(y)
    finite = y > -800.0  # (below: e^y is 0; NaN stays, by the product with y)
    y0 = xp.where(finite, y, xp.zeros_like(y))
    n = xp.round(y0 * (_STEPS / math.log(2.0)))
    k = xp.floor(n / _STEPS)
    j = n - _STEPS * k
    t_hi, t_lo = _two_sum(y0 - n * l1, -(n * l2))
    t_hi, t_lo = _quick_two_sum(t_hi, t_lo - n * l3)
    m_hi, m_lo = expm1_reduced(t_hi, t_lo, xp=xp)
    index = xp.reshape(xp.astype(j, xp.int64), (-1,))
    table_hi = xp.asarray(steps_hi, dtype=y.dtype, device=where)
    table_lo = xp.asarray(steps_lo, dtype=y.dtype, device=where)
    s_hi = xp.reshape(xp.take(table_hi, index, axis=0), y.shape)
    s_lo = xp.reshape(xp.take(table_lo, index, axis=0), y.shape)
    hi, lo = _dd_mul_add((s_hi, s_lo), (m_hi, m_lo), (s_hi, s_lo))  # 2^(j/64) e^t
    # 2^k exactly, in two halves (each normal) where 2^k alone underflows
    two = xp.asarray(2.0, dtype=y.dtype, device=where)
    half = xp.floor(k / 2)
    first, second = xp.pow(two, half), xp.pow(two, k - half)
    outside = xp.where(xp.isnan(y), y, xp.zeros_like(y0))
    return (
        xp.where(finite, hi * first * second, outside),
        xp.where(finite, lo * first * second, outside),
    )


def excess_of_pairs(hi: Array, lo: Array, *, xp: ModuleType) -> Array:
    r""":math:`\sum_i (h_i + l_i) - 1` of rows of float64 pairs with
    :math:`0 \le h_i \le 2`, to about :math:`2^{-100}`: two levels of exact extraction
    (Rump, Ogita and Oishi 2008, as ``_measures._MassExtraction``): with
    :math:`2^M \ge n + 2` and :math:`\sigma = 2^{M + 1}`, :math:`t_i = (\sigma + h_i) -
    \sigma` is exact and so is :math:`\tau = \sum_i t_i` (a multiple of :math:`u\sigma`
    below :math:`\sigma`); the remainders (at most :math:`u\sigma`) again at
    :math:`\sigma' = 2^M u \sigma`; what is left (at most :math:`2^{2M + 1} u^2`, and
    the :math:`l_i`) summed in floats. :math:`\tau - 1` is exact (Sterbenz) where the
    row sums to about 1."""
    shift = max(2, math.ceil(math.log2(int(hi.shape[-1]) + 2)))
    taus = []
    sigma = 2.0 ** (shift + 1)
    rest = hi
    for _ in range(2):
        (raised,) = settled(sigma + rest)  # (XLA would fold (s + x) - s to x)
        top = raised - sigma
        taus.append(xp.sum(top, axis=-1))
        rest = rest - top
        sigma *= 2.0**shift * _U64
    tail = xp.sum(rest, axis=-1) + xp.sum(lo, axis=-1)
    return ((taus[0] - 1.0) + taus[1]) + tail


def _log_pair(values: Array, form: str, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`\log q` of a side of logits or log-probabilities as an exact pair: the
    entries themselves, or :math:`((x - m) - \ell)` by two TwoSums (:math:`m` the row
    maximum, :math:`\ell` the log-partition, whose error :func:`js_mixed_exact`
    removes)."""
    if form != "logits":
        return values, xp.zeros_like(values)
    m = finite_row_max(values, xp=xp)
    high, low = _two_sum(values, -m)
    ell = log_sum_exp_shifted(high, xp=xp)
    s, e = _two_sum(high, -ell)
    return s, e + low


def js_mixed_exact(p: Array, other: Array, form: str, *, xp: ModuleType) -> Array:
    r"""JS in nats of each row of probabilities ``p`` against ``other`` (``form``
    ``"logits"`` or ``"log_probs"``), float64 (classes last, broadcast), within a few
    ulps: :math:`q = e^{s}` as a pair (:func:`exp_dd` of :math:`s_{hi}`, times
    :math:`1 + s_{lo} + s_{lo}^2/2`), for logits divided by its exact sum
    :math:`1 + \sigma` (:func:`excess_of_pairs`: the log-partition's error, a constant shift of
    every :math:`s_i`, is then gone: :math:`\sum_i q_i = 1` as the softmax's is), and
    :func:`.._numerics.js_terms` of :math:`p` and the pair, whose
    :math:`d = ((p - q_{hi}) - q_{lo})/(p + q)` is then a few ulps of itself
    (:math:`p - q_{hi}` exact where :math:`|d| \le 1/3`, Sterbenz). The terms are
    non-negative: their float sum is within :math:`(\log_2 n) u` of itself."""
    s_hi, s_lo = _log_pair(other, form, xp=xp)
    q_hi, q_lo, _ = side_probabilities(s_hi, s_lo, form, xp=xp)
    return xp.sum(js_terms(p, q_hi, xp=xp, q_low=q_lo), axis=-1)


def side_probabilities(
    s_hi: Array, s_lo: Array, form: str, *, xp: ModuleType
) -> tuple[Array, Array, Array | None]:
    r"""The probabilities :math:`e^{s}` of a side of logits or log-probabilities given as
    the exact pairs :math:`s = s_{hi} + s_{lo}` of :func:`_log_pair`, as a double-double
    ``(hi, lo)``: :func:`exp_dd` of :math:`s_{hi}` times :math:`1 + s_{lo} +
    s_{lo}^2/2` (:math:`s_{lo}` taken as 0 where it is not finite). For logits also
    divided by their exact sum :math:`1 + \sigma` (:func:`excess_of_pairs`; the
    log-partition's rounding, a shift of every :math:`s_i`, is then gone), and
    :math:`\sigma` returned as a column (None for log-probabilities, which are taken as
    given)."""
    e_hi, e_lo = exp_dd(s_hi, xp=xp)
    zero = xp.zeros_like(s_lo)
    scale = xp.where(xp.isfinite(s_lo), s_lo + 0.5 * s_lo * s_lo, zero)
    q_hi, q_lo = _quick_two_sum(e_hi, e_lo + e_hi * scale)
    if form != "logits":
        return q_hi, q_lo, None
    sigma = xp.expand_dims(excess_of_pairs(q_hi, q_lo, xp=xp), axis=-1)
    shrink = sigma * (sigma - 1.0)  # 1/(1 + sigma) - 1, to sigma^3
    q_hi, q_lo = _quick_two_sum(q_hi, q_lo + q_hi * shrink)
    return q_hi, q_lo, sigma


def exact_where(
    careful: Array, plain: Array, p: Array, other: Array, form: str, *, xp: ModuleType
) -> Array:
    r""":func:`js_mixed_exact` of the rows ``careful`` flags (some, concretely: a
    value to branch on), ``plain`` elsewhere (branch jsfast1: the exact pass was
    formed on every row and selected by ``where``, op by op). Concrete JAX arrays take
    one ``jax.jit`` of :func:`js_mixed_exact` on every row (a compile per shape, as
    eager JAX's per operation: 200 x 1000 rows 1e-9 apart 20 ms of CPU against 227,
    the first call 0.7 s against 3.2); other namespaces take it on the flagged rows
    only (``take``, then back in place by the flags' running count)."""
    if not is_jax_tracer(plain) and type(plain).__module__.startswith("jax"):
        return xp.where(careful, _jitted_exact(form, xp)(p, other), plain)
    if careful.ndim == 0:
        return xp.where(careful, js_mixed_exact(p, other, form, xp=xp), plain)
    flags = xp.reshape(careful, (-1,))
    index = xp.nonzero(flags)[0]
    if int(index.shape[0]) == int(flags.shape[0]):
        return xp.where(careful, js_mixed_exact(p, other, form, xp=xp), plain)
    p, other = xp.broadcast_arrays(p, other)
    classes = (-1, int(p.shape[-1]))
    exact = js_mixed_exact(
        xp.take(xp.reshape(p, classes), index, axis=0),
        xp.take(xp.reshape(other, classes), index, axis=0),
        form,
        xp=xp,
    )
    place = xp.cumulative_sum(xp.astype(flags, xp.int64)) - 1  # (the row's rank)
    place = xp.where(flags, place, xp.zeros_like(place))
    back = xp.reshape(xp.take(exact, place, axis=0), careful.shape)
    return xp.where(careful, back, plain)


@functools.cache
def _jitted_exact(form: str, xp: ModuleType) -> Callable[[Array, Array], Array]:
    """``jax.jit`` of :func:`js_mixed_exact` for ``form`` (made once)."""
    import jax  # (loaded: a JAX array)

    return jax.jit(functools.partial(js_mixed_exact, form=form, xp=xp))


def careful_rows(
    plain: Array,
    p: Array,
    q: Array,
    log_other: Array,
    side_error: float,
    *,
    xp: ModuleType,
    tolerance: float = 2.0**-44,
) -> Array:
    r"""The rows whose plain JS ``plain`` (nats, from ``p`` and the other side's rounded
    probabilities ``q``, whose logs are ``log_other``) may be off by more than
    ``tolerance`` of itself (:math:`2^{-44}`; :math:`2^{-32}` for float32 inputs
    computed in float64): the fused kernel's screen. Each rounded :math:`q_i` is
    within :math:`\eta_i = 2u + e + 2u|\log q_i|` of itself (``side_error``
    :math:`e`: the log-partition's, for logits), which moves a term by at most
    :math:`\eta_i |p_i - q_i|/2` (to first order) plus :math:`\eta_i^2 q_i/2`; the
    sum's rounding adds :math:`10u` of it. NaN rows are not careful."""
    u = float(xp.finfo(plain.dtype).eps) / 2
    zero = xp.zeros_like(log_other)
    log_safe = xp.where(xp.isfinite(log_other), log_other, zero)
    eta = (2.0 * u + side_error) + 2.0 * u * xp.abs(log_safe)
    bound = xp.sum(eta * (xp.abs(p - q) + eta * q), axis=-1)
    return ~(0.5 * bound + 10.0 * u * plain <= tolerance * plain) & xp.isfinite(plain)
