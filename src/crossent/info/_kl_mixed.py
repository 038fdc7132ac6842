r"""KL divergence of nearly equal rows where at least one side is not probabilities, or
probabilities face logits: the generic path's exact pieces (issue 13, branch kltiny2).

The plain sum :math:`\sum_i p_i(\log p_i - \log q_i)` of nearly equal rows cancels: each
log is rounded to :math:`u|\log p_i|` (and a logits side's log-partition to
:math:`u\log V`), a first-order error of :math:`u` in a KL that may be
:math:`10^{-17}` or :math:`10^{-295}` (stop 67: logits ``[0, -10.8215004561]``
against log-probabilities ``[-1.99653395e-05, -10.8215227945]``, KL
:math:`5.62\cdot 10^{-17}`, 3.0e-4 relative off). As the fused kernel's
``_kl_exact`` does, the KL is split into non-negative Bregman terms and the masses'
difference,

.. math:: D(P \,\|\, Q) = \sum_i q_i\,\varphi(r_i) + (\Pi - K), \qquad
          r_i = \log p_i - \log q_i, \quad \varphi(r) = 1 + (r - 1)e^r \ge 0,

:math:`\Pi = \sum_i p_i`, :math:`K = \sum_i q_i`. An error :math:`\eta_i` of
:math:`r_i` moves a term by :math:`p_i r_i \eta_i` only (second order), and a common
shift :math:`\delta` of every :math:`r_i` by :math:`\delta D` (:math:`\varphi'(r) =
re^r`); the masses carry the first-order part and are summed exactly
(:func:`kl_mixed_parts` gives the parts, the caller sums them exactly once).

* :math:`r_i`: two log-domain sides, the difference of exact pairs (a logits side's
  :math:`(x_i - m) - \ell` by ``_js_mixed._log_pair``, :math:`\ell` then corrected by
  :math:`\log(1 + \sigma)`, :math:`\sigma` the exact excess of its probabilities
  over 1, ``_js_mixed.excess_of_pairs``); a side of probabilities against a log-domain one,
  :math:`\operatorname{log1p}(d_i/q_i)` with :math:`d_i = p_i - q_i` from the other
  side's probabilities as double-doubles (``_js_mixed.exp_dd``), exact up to their
  :math:`2^{-100}`, where :math:`|d_i| \le q_i/2`.
* :math:`\Pi - K`: a logits side's mass is 1 exactly; a side of probabilities its
  values; a side of log-probabilities :math:`e^{v_i}` as double-doubles, those near 1
  (:math:`|v_i| \le \ln 2/128`) as :math:`1 + \operatorname{expm1}(v_i)`, the 1s
  counted and the ``expm1`` a double-double (``_js_mixed.expm1_reduced``), so that a
  dominant class keeps the digits of :math:`1 - e^{v_i}` (a double-double of
  :math:`e^{v_i}` itself keeps only a float's worth of them).

Error: a few ulps of :math:`D` from the terms, plus about :math:`2^{-100}` of the mass
outside the classes near 1 of a log-probability side and of the probabilities where
one side is probabilities and the other logits or log-probabilities (the
double-double exponentials: exact for rows dominated by one class, as in the issue,
about :math:`10^{-31}` absolute for spread rows; the fused kernel's triple-doubles
reach :math:`2^{-150}`). Elementwise operations and reductions of the standard only.
"""

from __future__ import annotations

import math
from types import ModuleType

from .._numerics import _exp_times_where_subnormal, _two_sum, phi_near_one
from .._xp import Array
from ._js_mixed import _log_pair, expm1_reduced, side_probabilities

__all__ = ["kl_mixed_parts"]

_NEAR_ZERO = math.log(2.0) / 128
r"""The largest :math:`|v|` of a log-probability whose probability is taken as
:math:`1 + \operatorname{expm1}(v)` (:func:`.expm1_reduced`'s range)."""


def _log_side(values: Array, form: str, *, xp: ModuleType) -> tuple[Array, Array, Array, Array]:
    r"""A side of logits or log-probabilities as its logs, an exact pair ``(hi, lo)``,
    and its probabilities, a double-double; logits normalised (:math:`\ell` corrected
    by :math:`\log(1 + \sigma)`, the probabilities divided by :math:`1 + \sigma`,
    :math:`\sigma` their exact excess over 1: :func:`._js_mixed.side_probabilities`). ``lo`` is 0
    where ``hi`` is ``-inf``."""
    s_hi, s_lo = _log_pair(values, form, xp=xp)
    s_lo = xp.where(xp.isfinite(s_lo), s_lo, xp.zeros_like(s_hi))
    e_hi, e_lo, sigma = side_probabilities(s_hi, s_lo, form, xp=xp)
    if sigma is not None:  # (logits)
        s_lo = s_lo - xp.log1p(sigma)
    return s_hi, s_lo, e_hi, e_lo


def _mass_parts(
    values: Array, form: str, pair: tuple[Array, Array] | None, *, xp: ModuleType
) -> tuple[Array, Array, Array]:
    r"""The side's mass as ``(hi, count, rest)``: its exact sum is :math:`\sum_i
    \mathrm{hi}_i + \mathrm{count} + \mathrm{rest}` (``count``, ``rest``: one column),
    ``rest`` a float sum of parts each below an ulp of their ``hi``. Logits: 1 (a
    count); probabilities: the values; log-probabilities :math:`v`: the double-double
    :math:`e^{v}` (``pair``, from :func:`_log_side`), where :math:`|v| \le \ln 2/128`
    :math:`\operatorname{expm1}(v)` and a count of those entries."""
    column = xp.zeros_like(values[..., :1])
    if form == "logits":
        return xp.zeros_like(values), column + 1.0, column
    if form == "probs" or pair is None:
        return values, column, column
    zero = xp.zeros_like(values)
    near = xp.abs(values) <= _NEAR_ZERO
    if not bool(xp.any(near)):  # (concrete arrays: spread rows have no such entry)
        return pair[0], column, xp.sum(pair[1], axis=-1, keepdims=True)
    m_hi, m_lo = expm1_reduced(xp.where(near, values, zero), zero, xp=xp)
    count = xp.sum(xp.astype(near, values.dtype), axis=-1, keepdims=True)
    rest = xp.sum(xp.where(near, m_lo, pair[1]), axis=-1, keepdims=True)
    return xp.where(near, m_hi, pair[0]), count, rest


def _bregman_terms(
    r: Array, p: Array, q: Array, log_p: tuple[Array, Array] | None, *, xp: ModuleType
) -> Array:
    r""":math:`q\varphi(r)`: by the series where :math:`|r| \le 1`
    (:func:`.phi_near_one`), else :math:`q + p(r - 1)` (``r`` finite), the product
    scaled where :math:`p = e^{\log p}` is subnormal (``log_p``, a pair, given for a
    log-domain side: :func:`._numerics._exp_times_where_subnormal`; a side of
    probabilities is exact as given)."""
    zero = xp.zeros_like(r)
    small = xp.abs(r) <= 1.0
    near = q * phi_near_one(xp.where(small, r, zero), xp=xp)
    y = xp.where(small, zero, r) - 1.0
    if log_p is None:
        return xp.where(small, near, q + p * y)
    log_hi, log_lo = log_p
    safe = xp.where(log_hi > -math.inf, log_hi, zero - 2000.0)
    product = _exp_times_where_subnormal(p, safe, y * (1.0 + log_lo), xp=xp)
    return xp.where(small, near, q + product)


def kl_mixed_parts(
    a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType
) -> tuple[Array, Array]:
    r"""Float64 arrays ``(plus, minus)`` (classes last, two more columns) with
    :math:`D(P\,\|\,Q) = \sum (\mathrm{plus} - \mathrm{minus})` over the last axis,
    summed exactly, to the accuracy of the module's docstring, for rows ``a`` (P) and
    ``b`` (Q) of the same shape in forms ``a_form``, ``b_form`` (not both
    probabilities, not both logits): P's mass parts and the float sum of the Bregman
    terms :math:`q_i\varphi(r_i)` (non-negative: a few ulps), and Q's mass parts
    (:func:`_mass_parts`). Where :math:`p_i = 0` the term is :math:`q_i`; where only
    :math:`q_i = 0`, :math:`+\infty`; NaN propagates (the caller keeps its plain sum
    for rows whose parts are not finite)."""
    zero = xp.zeros_like(a)
    p_pair = q_pair = None
    if a_form != "probs" and b_form != "probs":
        a_hi, a_lo, p_hi, p_lo = _log_side(a, a_form, xp=xp)
        b_hi, b_lo, q_hi, q_lo = _log_side(b, b_form, xp=xp)
        p_pair, q_pair = (p_hi, p_lo), (q_hi, q_lo)
        r_hi, r_err = _two_sum(a_hi, -b_hi)
        r = r_hi + (r_err + (a_lo - b_lo))
        p, q = p_hi + p_lo, q_hi + q_lo
        p_pos, q_pos = a_hi > -math.inf, b_hi > -math.inf
    elif a_form == "probs":
        b_hi, b_lo, q_hi, q_lo = _log_side(b, b_form, xp=xp)
        q_pair = (q_hi, q_lo)
        p, q = a, q_hi + q_lo
        p_pos, q_pos = a > 0, q_hi > 0
        d = (a - q_hi) - q_lo
        near = p_pos & q_pos & (xp.abs(d) <= 0.5 * q_hi)
        ratio = xp.log1p(xp.where(near, d, zero) / xp.where(q_pos, q_hi, zero + 1.0))
        far = xp.log(xp.where(p_pos, a, zero + 1.0)) - (b_hi + b_lo)
        r = xp.where(near, ratio, far)
    else:
        a_hi, a_lo, p_hi, p_lo = _log_side(a, a_form, xp=xp)
        p_pair = (p_hi, p_lo)
        p, q = p_hi + p_lo, b
        p_pos, q_pos = p_hi > 0, b > 0
        d = (p_hi - b) + p_lo
        near = p_pos & q_pos & (xp.abs(d) <= 0.5 * b)
        ratio = xp.log1p(xp.where(near, d, zero) / xp.where(q_pos, b, zero + 1.0))
        far = (a_hi + a_lo) - xp.log(xp.where(q_pos, b, zero + 1.0))
        r = xp.where(near, ratio, far)
    both = p_pos & q_pos
    log_p = None if a_form == "probs" else (a_hi, a_lo)
    terms = _bregman_terms(xp.where(both, r, zero), p, q, log_p, xp=xp)
    terms = xp.where(both, terms, xp.where(p_pos, zero + math.inf, q))
    terms = xp.where(xp.isnan(a) | xp.isnan(b), a + b, terms)
    p_hi, p_count, p_rest = _mass_parts(a, a_form, p_pair, xp=xp)
    q_hi, q_count, q_rest = _mass_parts(b, b_form, q_pair, xp=xp)
    bregman = xp.sum(terms, axis=-1, keepdims=True)
    plus = xp.concat([p_hi, p_count, bregman + p_rest], axis=-1)
    return plus, xp.concat([q_hi, q_count, q_rest], axis=-1)
