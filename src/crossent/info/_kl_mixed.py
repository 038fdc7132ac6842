r"""KL divergence of nearly equal rows where at least one side is not probabilities, or
probabilities face logits: the generic path's exact pieces (issue 13, branches kltiny2,
klexact3).

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
  side's probabilities as double-doubles (``_double_double.exp_pairs``), exact up to their
  :math:`2^{-103}`, where :math:`|d_i| \le q_i/2`.
* :math:`\Pi - K`: a logits side's mass is 1 exactly; a side of probabilities its
  values; a side of log-probabilities :math:`e^{v_i}` as double-doubles, those near 1
  (:math:`|v_i| \le \ln 2/8192`) as :math:`1 + \operatorname{expm1}(v_i)`, the 1s
  counted and the ``expm1`` a double-double (both from ``_double_double.exp_pairs``), so that a
  dominant class keeps the digits of :math:`1 - e^{v_i}` (a double-double of
  :math:`e^{v_i}` itself keeps only a float's worth of them).

Error: a few ulps of :math:`D` from the terms, plus about :math:`2^{-103}` of the mass
outside the classes near 1 of a log-probability side and of the probabilities where
one side is probabilities and the other logits or log-probabilities (the
double-double exponentials: exact for rows dominated by one class, as in the issue,
about :math:`10^{-31}` absolute for spread rows; the fused kernel's triple-doubles
reach :math:`2^{-150}`). Two sides of log-probabilities within :math:`2^{-27}` of each
other take the masses' difference as :math:`\sum_i q_i \operatorname{expm1}(r_i)`
instead (:func:`_log_probs_near`): its error a fraction :math:`2^{-104}` of
:math:`\sum_i q_i|r_i|`, so rows :math:`10^{-9}` apart are within half an ulp or so
(100 of 300 rows of 1000 classes: at most 0.55 eps, where the masses' floor left one
286 eps off). Elementwise operations and reductions of the standard only.

Cost (branch klexact3): the exponentials are most of it. The old
``_js_mixed.exp_dd`` (a table of 64, eleven series terms, six of them in double-double:
about 260 elementwise operations an entry) made the pass 33x-47x the plain sum's time
on NumPy; ``_double_double.exp_pairs`` (moved there by branch exphome1; a table of
4096, six terms whose parts above :math:`2^{-53}` are exact products of a 13-bit head:
about 100) and the series of :math:`\varphi` cut by the block's largest
:math:`|r|` (:func:`_phi_small`), with the caller's blocks of rows on NumPy
and PyTorch CPU (``_measures._kl_mixed_exact``) and exact ties of the parts' sum rounded
without ``math.fsum`` (``_measures._MassExtraction.rounded``), take it to 3.3x-5.4x less
(7x-12x the plain sum, ``benchmarks/RESULTS.md``). The exact sum of the parts is about a
fifth of what is left, the two exponentials of a pair of log-domain sides most of it."""

from __future__ import annotations

import math
from types import ModuleType
from typing import NamedTuple

from .._double_double import Exp, exp_pairs
from .._numerics import (
    _PHI_SERIES,
    _exp_times_where_subnormal,
    _quick_two_sum,
    _two_product,
    _two_sum,
)
from .._xp import Array
from ._js_mixed import _log_pair, excess_of_pairs

__all__ = ["kl_mixed_parts"]


class _LogSide(NamedTuple):
    """A side of logits or log-probabilities (:func:`_log_side`)."""

    log_hi: Array
    log_lo: Array
    exp: Exp


def _log_side(values: Array, form: str, *, xp: ModuleType) -> _LogSide:
    r"""A side of logits or log-probabilities as its logs, an exact pair ``(hi, lo)``,
    and its probabilities (``_double_double.exp_pairs``); logits normalised: :math:`\ell`
    corrected by :math:`\log(1 + \sigma)` and the probabilities divided by :math:`1 +
    \sigma`, :math:`\sigma` their exact excess over 1 (:func:`._js_mixed.excess_of_pairs`;
    the log-partition's rounding, a shift of every log, is then gone). ``lo`` is 0 where
    ``hi`` is ``-inf``."""
    if form != "logits":  # (the values exactly: no low part)
        return _LogSide(values, xp.zeros_like(values), exp_pairs(values, None, xp=xp))
    s_hi, s_lo = _log_pair(values, form, xp=xp)
    s_lo = xp.where(xp.isfinite(s_lo), s_lo, xp.zeros_like(s_hi))
    e = exp_pairs(s_hi, s_lo, xp=xp)
    sigma = xp.expand_dims(excess_of_pairs(e.hi, e.lo, xp=xp), axis=-1)
    shrink = sigma * (sigma - 1.0)  # 1/(1 + sigma) - 1, to sigma^3
    hi, lo = _quick_two_sum(e.hi, e.lo + e.hi * shrink)
    return _LogSide(s_hi, s_lo - xp.log1p(sigma), e._replace(hi=hi, lo=lo))


def _mass_parts(
    values: Array, form: str, e: Exp | None, *, xp: ModuleType
) -> tuple[Array, Array, Array]:
    r"""The side's mass as ``(hi, count, rest)``: its exact sum is :math:`\sum_i
    \mathrm{hi}_i + \mathrm{count} + \mathrm{rest}` (``count``, ``rest``: one column),
    ``rest`` a float sum of parts each below an ulp of their ``hi``. Logits: 1 (a
    count); probabilities: the values; log-probabilities :math:`v`: the double-double
    :math:`e^{v}` (``e``, from :func:`_log_side`), where :math:`|v| \le \ln 2/8192`
    :math:`e^v - 1` and a count of those entries (so that a dominant class keeps the
    digits of :math:`1 - e^{v}`: a double-double of :math:`e^{v}` keeps only a float's
    worth of them)."""
    column = xp.zeros_like(values[..., :1])
    if form == "logits":
        return xp.zeros_like(values), column + 1.0, column
    if form == "probs" or e is None:
        return values, column, column
    if not bool(xp.any(e.near)):  # (concrete arrays: spread rows have no such entry)
        return e.hi, column, xp.sum(e.lo, axis=-1, keepdims=True)
    count = xp.sum(xp.astype(e.near, values.dtype), axis=-1, keepdims=True)
    rest = xp.sum(xp.where(e.near, e.m_lo, e.lo), axis=-1, keepdims=True)
    return xp.where(e.near, e.m_hi, e.hi), count, rest


def _phi_small(r: Array, *, xp: ModuleType) -> Array:
    r""":math:`\varphi(r) = r^2\sum_{j \ge 0} c_j r^j` (:data:`._numerics._PHI_SERIES`)
    for :math:`|r| \le 1`, the series cut where the terms left, at most :math:`2c_J
    \rho^J` for :math:`\rho = \max|r|` (read from ``r``: concrete arrays), are below
    :math:`2^{-57}` (:math:`c_0 = 1/2`): two terms for rows :math:`10^{-9}` apart,
    against the eighteen that :func:`._numerics.phi_near_one` takes for any :math:`r`."""
    rho = float(xp.max(xp.abs(r))) if int(r.shape[0]) else 0.0
    coefficients = _PHI_SERIES[::-1]  # c_0, c_1, ...
    count = len(coefficients)
    for j in range(1, len(coefficients)):
        if 2.0 * coefficients[j] * rho**j < 2.0**-57:
            count = j
            break
    series = xp.zeros_like(r)
    for coefficient in reversed(coefficients[:count]):
        series = coefficient + r * series
    return r * r * series


def _bregman_terms(
    r: Array, p: Array, q: Array, log_p: tuple[Array, Array] | None, *, xp: ModuleType
) -> Array:
    r""":math:`q\varphi(r)`: by the series where :math:`|r| \le 1`
    (:func:`_phi_small`), else :math:`q + p(r - 1)` (``r`` finite), the product
    scaled where :math:`p = e^{\log p}` is subnormal (``log_p``, a pair, given for a
    log-domain side: :func:`._numerics._exp_times_where_subnormal`; a side of
    probabilities is exact as given)."""
    zero = xp.zeros_like(r)
    small = xp.abs(r) <= 1.0
    near = q * _phi_small(xp.where(small, r, zero), xp=xp)
    y = xp.where(small, zero, r) - 1.0
    if log_p is None:
        return xp.where(small, near, q + p * y)
    log_hi, log_lo = log_p
    safe = xp.where(log_hi > -math.inf, log_hi, zero - 2000.0)
    product = _exp_times_where_subnormal(p, safe, y * (1.0 + log_lo), xp=xp)
    return xp.where(small, near, q + product)


_NEAR_RATIO = 2.0**-27
r"""The largest :math:`|r_i|` of rows taken by :func:`_log_probs_near`."""


def _log_probs_near(a: Array, b: Array, *, xp: ModuleType) -> tuple[Array, Array] | None:
    r""":func:`kl_mixed_parts` of two sides of log-probabilities ``a``, ``b`` whose
    entries are all finite and within :data:`_NEAR_RATIO` of each other (None
    otherwise), with the masses' difference as :math:`\sum_i q_i\operatorname{expm1}
    (r_i)`: one exponential (:math:`q`, ``_double_double.exp_pairs``) instead of two, and the
    difference's error a fraction :math:`2^{-104}` of :math:`\sum_i q_i|r_i|` rather
    than of the masses (about :math:`10^{-40}` for rows :math:`10^{-9}` apart, against
    :math:`2\cdot 10^{-33}`).

    :math:`r = a - b = r_{hi} + r_{lo}` exactly (TwoSum), :math:`\operatorname{expm1}(r)
    = r_{hi} + s/2 + \epsilon`, :math:`s = r_{hi}^2` exactly (TwoProduct, its error
    :math:`s_{lo}`), :math:`\epsilon = r_{lo} + s_{lo}/2 + r_{hi}r_{lo} + r_{hi}s/6 +
    s^2/24` in floats (each at most :math:`2^{-79}`, the series' rest :math:`|r|^5/120`
    and the roundings about :math:`2^{-106}|r|`); :math:`q\operatorname{expm1}(r)` as
    the exact products :math:`q_{hi}r_{hi}` and :math:`q_{hi}s/2` (TwoProduct) and the
    float rest :math:`q_{hi}\epsilon + q_{lo}(r_{hi} + s/2)` plus the products' errors.
    ``plus`` is :math:`(q_{hi}r_{hi}, q_{hi}s/2)` with the Bregman terms and that rest
    summed, ``minus`` one column of zeros."""
    every = xp.all(xp.isfinite(a) & xp.isfinite(b))
    if not bool(every):
        return None
    r_hi, r_lo = _two_sum(a, -b)
    if int(r_hi.shape[0]) and not float(xp.max(xp.abs(r_hi))) <= _NEAR_RATIO:
        return None
    q = exp_pairs(b, None, xp=xp)
    square, square_lo = _two_product(r_hi, r_hi)
    half = 0.5 * square
    epsilon = (
        (r_lo + 0.5 * square_lo)
        + r_hi * (r_lo + square * (1.0 / 6.0))
        + square * (square * (1.0 / 24.0))
    )
    first, first_lo = _two_product(q.hi, r_hi)
    second, second_lo = _two_product(q.hi, half)
    rest = (first_lo + second_lo) + (q.hi * epsilon + q.lo * (r_hi + half))
    r = r_hi + r_lo
    terms = (q.hi + q.lo) * _phi_small(r, xp=xp)
    total = xp.sum(terms, axis=-1, keepdims=True) + xp.sum(rest, axis=-1, keepdims=True)
    plus = xp.concat([first, second, total], axis=-1)
    return plus, xp.zeros_like(total)


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
    if a_form == b_form == "log_probs":
        near = _log_probs_near(a, b, xp=xp)
        if near is not None:
            return near
    p_exp = q_exp = None
    if a_form != "probs" and b_form != "probs":
        side_a, side_b = _log_side(a, a_form, xp=xp), _log_side(b, b_form, xp=xp)
        (a_hi, a_lo, p_exp), (b_hi, b_lo, q_exp) = side_a, side_b
        r_hi, r_err = _two_sum(a_hi, -b_hi)
        r = r_hi + (r_err + (a_lo - b_lo))
        p, q = p_exp.hi + p_exp.lo, q_exp.hi + q_exp.lo
        p_pos, q_pos = a_hi > -math.inf, b_hi > -math.inf
    elif a_form == "probs":
        b_hi, b_lo, q_exp = _log_side(b, b_form, xp=xp)
        q_hi = q_exp.hi
        p, q = a, q_hi + q_exp.lo
        p_pos, q_pos = a > 0, q_hi > 0
        d = (a - q_hi) - q_exp.lo
        near = p_pos & q_pos & (xp.abs(d) <= 0.5 * q_hi)
        ratio = xp.log1p(xp.where(near, d, zero) / xp.where(q_pos, q_hi, zero + 1.0))
        far = xp.log(xp.where(p_pos, a, zero + 1.0)) - (b_hi + b_lo)
        r = xp.where(near, ratio, far)
    else:
        a_hi, a_lo, p_exp = _log_side(a, a_form, xp=xp)
        p_hi = p_exp.hi
        p, q = p_hi + p_exp.lo, b
        p_pos, q_pos = p_hi > 0, b > 0
        d = (p_hi - b) + p_exp.lo
        near = p_pos & q_pos & (xp.abs(d) <= 0.5 * b)
        ratio = xp.log1p(xp.where(near, d, zero) / xp.where(q_pos, b, zero + 1.0))
        far = (a_hi + a_lo) - xp.log(xp.where(q_pos, b, zero + 1.0))
        r = xp.where(near, ratio, far)
    both = p_pos & q_pos
    log_p = None if a_form == "probs" else (a_hi, a_lo)
    terms = _bregman_terms(xp.where(both, r, zero), p, q, log_p, xp=xp)
    terms = xp.where(both, terms, xp.where(p_pos, zero + math.inf, q))
    terms = xp.where(xp.isnan(a) | xp.isnan(b), a + b, terms)
    p_hi, p_count, p_rest = _mass_parts(a, a_form, p_exp, xp=xp)
    q_hi, q_count, q_rest = _mass_parts(b, b_form, q_exp, xp=xp)
    bregman = xp.sum(terms, axis=-1, keepdims=True)
    plus = xp.concat([p_hi, p_count, bregman + p_rest], axis=-1)
    return plus, xp.concat([q_hi, q_count, q_rest], axis=-1)
