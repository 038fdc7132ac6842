r"""JS divergence of a side of probabilities against logits or log-probabilities, exactly,
in any array namespace (JAX, array-api-strict, PyTorch): the generic path's twin of the
fused kernel's ``_js_of_logs`` beside a side of probabilities (issue 13, hostile22).

The plain sum (:func:`.._numerics.js_terms` of the other side's rounded probabilities)
stands where its error bound allows (:func:`careful_rows`, the fused kernel's screen);
the other rows take :func:`js_mixed_exact`: the other side's probabilities as
double-doubles :math:`q = e^{s}`, :math:`s = \log q` an exact pair, by
``_double_double.exp_dd``, normalised exactly where they are logits
(``_double_double.excess_of_pairs``), and the terms from
:math:`d = ((p - q_{hi}) - q_{lo})/(p + q)`, which keeps the digits of nearly equal
rows (``js_divergence([0.5, 0.5], [9.7e-18, -6.5e-18], q_form='logits')`` was 0 for
8.154e-36; JAX float64 rows :math:`10^{-9}` apart 4e-7 relative off). Elementwise
operations and reductions of the standard only: no loop over rows, no host copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType

from .._double_double import (
    excess_of_pairs,
    excess_of_pairs32,
    exp_dd,
    exp_pair32,
    quick_two_sum,
    two_sum,
)
from .._numerics import js_terms
from .._xp import Array, finite_row_max, is_jax_tracer, log_sum_exp_shifted

__all__ = [
    "careful_rows",
    "exact_where",
    "js_mixed_exact",
    "side_probabilities",
]


def _log_pair(values: Array, form: str, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`\log q` of a side of logits or log-probabilities as an exact pair: the
    entries themselves, or :math:`((x - m) - \ell)` by two TwoSums (:math:`m` the row
    maximum, :math:`\ell` the log-partition, whose error :func:`js_mixed_exact`
    removes)."""
    if form != "logits":
        return values, xp.zeros_like(values)
    m = finite_row_max(values, xp=xp)
    high, low = two_sum(values, -m)
    ell = log_sum_exp_shifted(high, xp=xp)
    s, e = two_sum(high, -ell)
    return s, e + low


def js_mixed_exact(p: Array, other: Array, form: str, *, xp: ModuleType) -> Array:
    r"""JS in nats of each row of probabilities ``p`` against ``other`` (``form``
    ``"logits"`` or ``"log_probs"``), float64 (classes last, broadcast), within a few
    ulps: :math:`q = e^{s}` as a pair (``_double_double.exp_dd`` of :math:`s_{hi}`,
    times :math:`1 + s_{lo} + s_{lo}^2/2`), for logits divided by its exact sum
    :math:`1 + \sigma` (``_double_double.excess_of_pairs``: the log-partition's error,
    a constant shift of every :math:`s_i`, is then gone: :math:`\sum_i q_i = 1` as the
    softmax's is), and :func:`.._numerics.js_terms` of :math:`p` and the pair, whose
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
    ``(hi, lo)``: ``_double_double.exp_dd`` of :math:`s_{hi}` times :math:`1 + s_{lo} +
    s_{lo}^2/2` (:math:`s_{lo}` taken as 0 where it is not finite). For logits also
    divided by their exact sum :math:`1 + \sigma` (``_double_double.excess_of_pairs``; the
    log-partition's rounding, a shift of every :math:`s_i`, is then gone), and
    :math:`\sigma` returned as a column (None for log-probabilities, which are taken as
    given). Float32 pairs (JAX without x64, where there is no float64: branch jaxf32)
    take ``_double_double.exp_pair32`` and ``excess_of_pairs32``: about
    :math:`2^{-44}` of each probability."""
    narrow = xp.finfo(s_hi.dtype).bits == 32
    e_hi, e_lo = (exp_pair32 if narrow else exp_dd)(s_hi, xp=xp)
    zero = xp.zeros_like(s_lo)
    scale = xp.where(xp.isfinite(s_lo), s_lo + 0.5 * s_lo * s_lo, zero)
    q_hi, q_lo = quick_two_sum(e_hi, e_lo + e_hi * scale)
    if form != "logits":
        return q_hi, q_lo, None
    excess = excess_of_pairs32 if narrow else excess_of_pairs
    sigma = xp.expand_dims(excess(q_hi, q_lo, xp=xp), axis=-1)
    shrink = sigma * (sigma - 1.0)  # 1/(1 + sigma) - 1, to sigma^3
    q_hi, q_lo = quick_two_sum(q_hi, q_lo + q_hi * shrink)
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
