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
fifth of what is left, the two exponentials of a pair of log-domain sides most of it.

Branch klexact4: nearly equal rows (every :math:`|r_i| \le 1/16`, entries finite,
weights above :math:`e^{-700}`, masses within :math:`2^{-40}` of each other) take
:func:`_ratio_parts`: the normalised KL from ratios free of a common shift, so that no
side is normalised, and the masses apart, :math:`\Pi D_n + \Pi\log(\Pi/K)`. One
double-double exponential an entry at most (logits against log-probabilities: the
log-probabilities' own, for their mass; two before), and the masses handed to the
exact sum as four columns a side (:func:`_compact_mass`; :func:`_compact_sum` for
:func:`_log_probs_near`'s products), not :math:`n + 2`: 6x-8x the plain sum on NumPy
(``benchmarks/RESULTS.md``). What is left is mostly that exponential, which a side of
log-probabilities needs: the KL is first order in its mass, so the masses' floor (about
:math:`2^{-104}` of the mass, :math:`10^{-33}` absolute for spread rows) stays
wherever such a side faces another form."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import Decimal, localcontext
from types import ModuleType
from typing import NamedTuple, TypeVar

import numpy as np

from .._double_double import (
    Exp,
    exp_pair32,
    exp_pairs,
    exp_triple32,
    extract_levels32,
    frexp,
    held32,
    level_words,
    level_words32,
    levels32,
    power_of_two32,
    rounded_sum,
    two_product32,
)
from .._numerics import (
    _PHI_SERIES,
    _exp_times_where_subnormal,
    _quick_two_sum,
    _two_product,
    _two_sum,
)
from .._xp import Array, device
from ._js_mixed import _log_pair, excess_of_pairs, side_probabilities

__all__ = ["kl_mixed_parts", "kl_narrow"]

_T = TypeVar("_T")
_Exact = Callable[[Callable[[Array], Array] | None], Array]


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
    ``plus`` is :math:`(q_{hi}r_{hi}, q_{hi}s/2)`, each row of each as three columns
    (:func:`_compact_sum`, branch klexact4: the caller's exact sum reads 7 columns, not
    :math:`2n + 1`), with the Bregman terms and that rest summed, ``minus`` one column
    of zeros."""
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
    plus = xp.concat([*_compact_sum(first, xp=xp), *_compact_sum(second, xp=xp), total], axis=-1)
    return plus, xp.zeros_like(total)


_RATIO_NEAR = 2.0**-4
r"""The largest :math:`|e_i|` of the rows that :func:`_ratio_parts` takes (rows about
0.05 apart and nearer; the careful rows of 1000 classes have KL below about 0.004)."""

_MASS_NEAR = 2.0**-40
r"""The largest :math:`|\kappa|`, the masses' relative difference, of the rows that
:func:`_ratio_parts` takes (rounded log-probabilities: about :math:`2^{-52}`)."""

_PSI_SERIES = 2.0**-12
r""":math:`|\mu|` up to which :func:`_psi` takes its series."""


def _psi(mu: Array, *, xp: ModuleType) -> Array:
    r""":math:`\psi(\mu) = \log(1 + \mu) - \mu/(1 + \mu) = \sum_{k \ge 2}
    (-1)^k\frac{k - 1}{k}\mu^k \ge 0`, within a few ulps for :math:`|\mu| \le
    2^{-12}` (five terms: the rest under :math:`2^{-60}` of it), else in floats
    (:math:`\mu \ge 2^{-12}` comes from a KL about as large: an error of a few ulps of
    :math:`\mu` is a few of the KL's)."""
    series = (mu * mu) * (0.5 + mu * (-2.0 / 3.0 + mu * (0.75 + mu * (-0.8 + mu * (5.0 / 6.0)))))
    small = xp.abs(mu) <= _PSI_SERIES
    plain = xp.log1p(xp.where(small, xp.zeros_like(mu), mu)) - mu / (1.0 + mu)
    return xp.where(small, series, plain)


_WEIGHT_FLOOR = -700.0
r"""The least log-weight (of :math:`\hat q`, and of the other side) :func:`_ratio_parts`
takes: above it :math:`e^y` is normal, its rounding relative."""


def _compact_mass(values: Array, form: str, e: Exp | None, *, xp: ModuleType) -> Array:
    r"""A side's mass as four columns ``(count, top, second, tail)`` whose sum is the
    mass of :func:`_mass_parts` (the same values: the probabilities, or the
    double-double :math:`e^{v}`, :math:`1 + (e^{v} - 1)` near 1) to about
    :math:`2^{-106}\log_2 n` of the row's largest part, as its float sum of the low
    parts is: the high parts extracted in two levels (Rump, Ogita and Oishi; as
    ``_double_double.sum_dd``, whose one level would leave :math:`2^{-53}` of them), at
    :math:`\sigma = 2^{e + s}` for :math:`2^{e - 1} \le \max|h_i| < 2^{e}` and
    :math:`2^{s} \ge n + 2`: :math:`t_i = (\sigma + h_i) - \sigma` and their sum exact,
    the remainders (at most :math:`u\sigma`) again at :math:`\sigma' =
    2^{s}u\sigma`, what is left (at most :math:`2^{2s}u^2\max|h_i|`) and the low parts
    summed in floats. So the caller's exact sum reads four columns a side, not
    :math:`n + 2` (branch klexact4)."""
    column = xp.zeros_like(values[..., :1])
    if form == "logits":
        return xp.concat([column + 1.0, column, column, column], axis=-1)
    if form == "probs" or e is None:
        hi, lo, count = values, None, column
    elif not bool(xp.any(e.near)):  # (concrete arrays: spread rows have no such entry)
        hi, lo, count = e.hi, e.lo, column
    else:
        count = xp.sum(xp.astype(e.near, values.dtype), axis=-1, keepdims=True)
        hi, lo = xp.where(e.near, e.m_hi, e.hi), xp.where(e.near, e.m_lo, e.lo)
    top, second, tail = _compact_sum(hi, xp=xp)
    if lo is not None:
        tail = tail + xp.sum(lo, axis=-1, keepdims=True)
    return xp.concat([count, top, second, tail], axis=-1)


def _compact_sum(x: Array, *, xp: ModuleType) -> tuple[Array, Array, Array]:
    r"""Rows of floats ``x`` as three columns ``(top, second, tail)``, the first two
    exact sums of extracted parts, ``tail`` the float sum of the rest: within about
    :math:`n^2 2^{2s} u^3` of the row's largest :math:`|x_i|`, :math:`2^{s} \ge n + 2`
    (:func:`_compact_mass`): two levels of ``_double_double.level_words`` at
    :math:`u = 2^{-53}` (branch jaxkl3: the start it shares with the float32
    ``level_words32``)."""
    shift = max(1, math.ceil(math.log2(int(x.shape[-1]) + 2)))
    taus, rest = level_words(x, 2, unit=2.0**-53, shift=shift, xp=xp)
    top, second = (xp.expand_dims(tau, axis=-1) for tau in taus)
    return top, second, xp.sum(rest, axis=-1, keepdims=True)


def _exp_shifted(values: Array, form: str, *, xp: ModuleType) -> Exp:
    r"""The double-double :math:`e^{v - c}` of a log-domain side: :math:`c = 0` for
    log-probabilities (then also the side's probabilities, for its mass), the float
    log-partition for logits (:math:`v - c` as an exact pair; any :math:`c` serves
    :func:`_ratio_parts`, whose ratios are free of a common shift)."""
    if form != "logits":
        return exp_pairs(values, None, xp=xp)
    top = xp.max(values, axis=-1, keepdims=True)
    c = top + xp.log(xp.sum(xp.exp(values - top), axis=-1, keepdims=True))
    y_hi, y_lo = _two_sum(values, -c)
    return exp_pairs(y_hi, y_lo, xp=xp)


def _ratio_parts(
    a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType
) -> tuple[Array, Array] | None:
    r""":func:`kl_mixed_parts` of nearly equal rows without normalising a logits side
    (branch klexact4): None unless the rows are not empty, every entry is finite, every
    weight normal (:data:`_WEIGHT_FLOOR`), every :math:`|e_i|` within
    :data:`_RATIO_NEAR` and the masses' :math:`|\kappa|` within :data:`_MASS_NEAR`.

    With :math:`\Pi = \sum_i p_i`, :math:`K = \sum_i q_i` and the normalised
    :math:`D_n = D(P/\Pi\,\|\,Q/K)`, the definition's sum is

    .. math:: \sum_i p_i\log\frac{p_i}{q_i} = \Pi D_n + \Pi\log\frac{\Pi}{K}
              = \Pi D_n + \Delta\Bigl(1 + \frac{\kappa}{2} - \frac{\kappa^2}{6}
              + O(\kappa^3)\Bigr), \qquad \Delta = \Pi - K,\ \kappa = \Delta/K,

    :math:`\Delta` as the masses' parts (:func:`_compact_mass`: four columns a side
    for the caller's exact sum), the rest in floats (:math:`\Delta`, :math:`\Pi` from
    those columns: :math:`\Delta\kappa^3` is below :math:`2^{-120}\Delta`).
    :math:`D_n` needs only weights :math:`\hat q_i \propto q_i` and ratios
    :math:`e_i = \log(p_i/q_i) + c` with any common
    :math:`c`: for :math:`\hat K = \sum \hat q_i`, :math:`\hat B = \sum_i \hat q_i
    \varphi(e_i) \ge 0` and :math:`\hat M = \sum_i \hat q_i\operatorname{expm1}(e_i)`,
    :math:`\mu = \hat M/\hat K`,

    .. math:: D_n = \frac{\hat B}{\hat K + \hat M} - \psi(\mu), \qquad
              \psi(\mu) = \log(1 + \mu) - \frac{\mu}{1 + \mu}
              = \frac{\mu^2}{2} - \frac{2\mu^3}{3} + \cdots \ge 0
              \ (:func:`_psi`)

    (:math:`p_i \propto \hat q_i e^{e_i}`; :math:`\sum p\,e = (\hat B + \hat
    M)/(\hat K + \hat M)`). An error :math:`\eta_i` of :math:`e_i` moves
    :math:`\hat B` by :math:`\hat q_i e_i\eta_i` (second order) and :math:`\psi` by
    :math:`\mu\hat q_i\eta_i/\hat K`; :math:`c` is the :math:`\hat q`-mean of the
    ratios, so :math:`\mu` is the rounding of that mean plus :math:`D_n`, and
    :math:`\psi(\mu)` far below :math:`\hat B`. So a logits side is not normalised
    (its log-partition, which :func:`_log_side` takes to :math:`2^{-100}` by a
    double-double exponential of each entry and an exact sum, cancels), two log-domain
    sides need no exponential for their ratios (:math:`e_i` from the exact difference
    :math:`a_i - b_i`, TwoSum), and only a side of log-probabilities takes
    ``_double_double.exp_pairs``, for its mass (and, facing probabilities, for
    :math:`\operatorname{log1p}((s_i - w_i)/w_i)` as before, :math:`w` its double-double
    :math:`e^{v - c}`, :func:`_exp_shifted`). The masses' floor of a log-probabilities
    side (about :math:`2^{-104}` of its mass) is the definition's: the sum is first
    order in that mass."""
    if 0 in (int(a.shape[0]), int(a.shape[-1])) or tuple(a.shape) != tuple(b.shape):
        return None
    if not bool(xp.all(xp.isfinite(a) & xp.isfinite(b))):
        return None
    p_exp = q_exp = None
    if a_form != "probs" and b_form != "probs":  # (logits against log-probabilities)
        d_hi, d_lo = _two_sum(a, -b)
        if b_form == "log_probs":
            q_exp = exp_pairs(b, None, xp=xp)
            low, q_hat = xp.min(b), q_exp.hi
        else:
            top = xp.max(b, axis=-1, keepdims=True)
            s_hi, s_lo = _two_sum(b, -top)
            low = xp.min(s_hi)
            q_hat = xp.exp(s_hi) * (1.0 + s_lo)
        if a_form == "log_probs":
            p_exp = exp_pairs(a, None, xp=xp)
            other = xp.min(a)
        else:
            other = xp.min(a - xp.max(a, axis=-1, keepdims=True))
        if not (float(low) >= _WEIGHT_FLOOR and float(other) >= _WEIGHT_FLOOR):
            return None
        c = xp.sum(q_hat * d_hi, axis=-1, keepdims=True) / xp.sum(q_hat, axis=-1, keepdims=True)
        e = (d_hi - c) + d_lo
    elif a_form == "probs":  # P probabilities, Q a log-domain side
        w = _exp_shifted(b, b_form, xp=xp)
        q_exp = w if b_form == "log_probs" else None
        if not (float(xp.min(a)) > 0.0 and float(xp.min(w.hi)) >= math.exp(_WEIGHT_FLOOR)):
            return None
        d = (a - w.hi) - w.lo
        e = xp.log1p(d / w.hi)
        q_hat = w.hi
    else:  # P a log-domain side, Q probabilities
        w = _exp_shifted(a, a_form, xp=xp)
        p_exp = w if a_form == "log_probs" else None
        if not (float(xp.min(b)) > 0.0 and float(xp.min(w.hi)) >= math.exp(_WEIGHT_FLOOR)):
            return None
        d = (w.hi - b) + w.lo
        e = xp.log1p(d / b)
        q_hat = b
    if not float(xp.max(xp.abs(e))) <= _RATIO_NEAR:
        return None
    p_mass = _compact_mass(a, a_form, p_exp, xp=xp)
    q_mass = _compact_mass(b, b_form, q_exp, xp=xp)
    whole, part = p_mass[..., :2] - q_mass[..., :2], p_mass[..., 2:] - q_mass[..., 2:]
    delta = (whole[..., :1] + whole[..., 1:]) + (part[..., :1] + part[..., 1:])
    k_mass = xp.sum(q_mass, axis=-1, keepdims=True)
    kappa = delta / k_mass
    if not float(xp.max(xp.abs(kappa))) <= _MASS_NEAR:
        return None
    k_hat = xp.sum(q_hat, axis=-1, keepdims=True)
    bregman = xp.sum(q_hat * _phi_small(e, xp=xp), axis=-1, keepdims=True)
    m_hat = xp.sum(q_hat * xp.expm1(e), axis=-1, keepdims=True)
    mu = m_hat / k_hat
    d_n = bregman / (k_hat + m_hat) - _psi(mu, xp=xp)
    extra = (k_mass + delta) * d_n + delta * (kappa * (0.5 - kappa * (1.0 / 6.0)))
    plus = xp.concat([p_mass[..., :3], p_mass[..., 3:] + extra], axis=-1)
    return plus, q_mass


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
    else:
        ratio = _ratio_parts(a, a_form, b, b_form, xp=xp)
        if ratio is not None:
            return ratio
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


# --- float32 words where the device has no float64 (branch jaxkl1) ----------------------

_NARROW_SERIES = 2.0**-5
r"""The largest :math:`|x|` (:math:`x = d/q`) whose :math:`\operatorname{log1p}` and
:math:`\operatorname{expm1}` :func:`kl_narrow` takes by its series, head exact."""

_NARROW_BITS = 76
r"""Bits below a row's largest mass word that :func:`kl_narrow` sums exactly
(``_double_double.extract_levels32``): :math:`2^{-76}` of a mass near 1 against a KL of
about :math:`10^{-14}` (rows :math:`10^{-7}` apart) whose float32 ulp is
:math:`2^{-70}`."""


def _narrow_side(values: Array, form: str, *, xp: ModuleType) -> tuple[Array, ...]:
    r"""A float32 side as ``(prob_hi, prob_lo, log_hi, log_lo)``: probabilities as they
    are (``lo`` 0, logs None); a log-domain side's :math:`e^{s}` as a float32 pair and
    :math:`s` as an exact pair (``_js_mixed.side_probabilities`` and ``_log_pair``: a
    side of logits divided by its exact sum :math:`1 + \sigma` and :math:`s` less
    :math:`\operatorname{log1p}\sigma`, so that the log-partition's float32 rounding is
    gone to about :math:`2^{-46}`)."""
    if form == "probs":
        return values, xp.zeros_like(values), None, None
    s_hi, s_lo = _log_pair(values, form, xp=xp)
    s_lo = xp.where(xp.isfinite(s_lo), s_lo, xp.zeros_like(s_lo))
    p_hi, p_lo, sigma = side_probabilities(s_hi, s_lo, form, xp=xp)
    if sigma is not None:
        s_lo = s_lo - xp.log1p(sigma)
    return p_hi, p_lo, s_hi, s_lo


def _narrow_ratio(
    p: tuple[Array, Array], q: tuple[Array, Array], *, xp: ModuleType
) -> tuple[Array, Array, Array]:
    r""":math:`r = \log(p/q)` of float32 pairs as ``(r_hi, r_lo, near)``: where
    :math:`|d| \le q/2` (``near``), :math:`d = p - q` by TwoSums, :math:`x = d/q` as a pair
    (the quotient's remainder exact by ``two_product32``) and :math:`r =
    \operatorname{log1p}(x)`, by its series for :math:`|x| \le 2^{-5}` (:math:`x_{hi}`
    the exact head, the rest :math:`x_{lo}(1 - x_{hi}) - x^2/2 + \cdots - x^6/6`), else
    :math:`\operatorname{log1p}(x_{hi}) + x_{lo}/(1 + x_{hi})`; elsewhere (far
    entries, :math:`|r| \ge \log 1.5`) :math:`\log(p_{hi}/q_{hi}) + p_{lo}/p_{hi} -
    q_{lo}/q_{hi}`. ``r_lo`` is within an ulp of ``r_hi`` (TwoSum)."""
    zero = xp.zeros_like(p[0])
    one = zero + 1.0
    big, big_lo = _two_sum(p[0], -q[0])
    d_hi, d_lo = _two_sum(big, big_lo + (p[1] - q[1]))
    positive = (p[0] > 0.0) & (q[0] > 0.0)
    near = positive & (xp.abs(d_hi) <= 0.5 * q[0])
    q_safe = xp.where(near, q[0], one)
    d_safe = xp.where(near, d_hi, zero)
    x_hi = d_safe / q_safe
    product, product_lo = two_product32(x_hi, q_safe)
    x_lo = ((((d_safe - product) - product_lo) - x_hi * xp.where(near, q[1], zero)) + d_lo) / q_safe
    x_lo = xp.where(near, x_lo, zero)
    series = xp.abs(x_hi) <= _NARROW_SERIES
    x = xp.where(series, x_hi, zero)
    tail = x * (1.0 / 3.0 + x * (-0.25 + x * (0.2 + x * (-1.0 / 6.0))))
    rest = x_lo * (1.0 - x) - (x * x) * (0.5 - tail)
    head = xp.where(series, x_hi, xp.log1p(x_hi))
    rest = xp.where(series, rest, x_lo / (1.0 + x_hi))
    r_hi, r_lo = _two_sum(head, rest)
    far = xp.log(xp.where(positive, p[0], one) / xp.where(positive, q[0], one))
    far = far + (xp.where(positive, p[1] / xp.where(positive, p[0], one), zero) - q[1] / q_safe)
    return xp.where(near, r_hi, far), xp.where(near, r_lo, zero), near


def _narrow_bregman(
    r_hi: Array, r_lo: Array, p: Array, q: tuple[Array, Array], *, xp: ModuleType
) -> Array:
    r""":math:`q\varphi(r)`, :math:`\varphi(r) = 1 + (r - 1)e^r \ge 0`, of float32
    ``r = r_hi + r_lo``: for :math:`|r| \le 1` the series (``_numerics._PHI_SERIES``) of
    :math:`r_{hi}` plus :math:`r_{lo}\varphi'(r_{hi})`, :math:`\varphi'(r) = re^r \approx
    r(1 + r + r^2/2)` (:math:`r_{lo}` is an ulp of :math:`r_{hi}`: the rest is second
    order), times the pair :math:`q`; else :math:`q + p(r - 1)` (``p`` the other
    side's probability, float32). Where :math:`p = 0` the term is :math:`q`, where only
    :math:`q = 0` ``inf``."""
    zero = xp.zeros_like(r_hi)
    small = xp.abs(r_hi) <= 1.0
    r = xp.where(small, r_hi, zero)
    series = zero
    for coefficient in _PHI_SERIES:
        series = coefficient + r * series
    phi = r * r * series + r_lo * (r * (1.0 + r * (1.0 + 0.5 * r)))
    near = q[0] * phi + q[1] * phi
    y = xp.where(small, zero, r_hi) - 1.0
    far = q[0] + xp.where(y > -math.inf, p * y, zero)  # (p/q underflowed: p r is 0)
    terms = xp.where(small, near, far)
    p_pos, q_pos = p > 0.0, q[0] > 0.0
    return xp.where(p_pos & q_pos, terms, xp.where(p_pos, zero + math.inf, q[0]))


def _narrow_expm1_words(
    q: tuple[Array, Array], r_hi: Array, r_lo: Array, *, xp: ModuleType
) -> list[Array]:
    r""":math:`q\operatorname{expm1}(r)` of a float32 pair ``q`` and an exact pair
    ``r`` (finite) as five float32 words whose exact sum is it to about :math:`2^{-46}`
    (:math:`q`'s own error) of :math:`q|r|`: for :math:`|r_{hi}| \le 2^{-5}` the series
    with :math:`r_{hi}` and :math:`r_{hi}^2/2` (``two_product32``, exact) as heads,
    else :math:`(E_{hi} - 1) + (E_{lo} + E_{hi}r_{lo})` of the pair :math:`E = e^{r_{hi}}`
    (``exp_pair32``); each head times :math:`q_{hi}` by ``two_product32``."""
    zero = xp.zeros_like(r_hi)
    series = xp.abs(r_hi) <= _NARROW_SERIES
    r = xp.where(series, r_hi, zero)
    square, square_lo = two_product32(r, r)
    tail = r * square * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))
    low = r_lo * (1.0 + r * (1.0 + 0.5 * r)) + (0.5 * square_lo + tail)
    e_hi, e_lo = _unless_all(  # (rows 1e-4 apart and nearer: every entry by its series)
        series, lambda: exp_pair32(xp.where(series, zero, r_hi), xp=xp), (zero, zero), xp=xp
    )
    first = xp.where(series, r, e_hi - 1.0)
    second = xp.where(series, 0.5 * square, zero)
    third = xp.where(series, low, e_lo + e_hi * r_lo)
    a, a_lo = two_product32(q[0], first)
    b, b_lo = two_product32(q[0], second)
    rest = q[0] * third + q[1] * (first + second + third)
    return [a, a_lo, b, b_lo, rest]


def kl_narrow(a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType) -> Array:
    r"""KL divergence in nats of float32 rows ``a`` (P) and ``b`` (Q) in forms ``a_form``,
    ``b_form`` (not both logits) in float32 arithmetic only, for devices without float64
    (JAX without x64, Apple's MPS; branch jaxkl1), classes last (the rows broadcast):

    .. math:: D(P \,\|\, Q) = \sum_i q_i\varphi(r_i) + (\Pi - K), \qquad
              r_i = \log p_i - \log q_i, \quad \varphi(r) = 1 + (r - 1)e^r \ge 0,

    :math:`\Pi = \sum_i p_i`, :math:`K = \sum_i q_i`, as the float64 path's
    :func:`kl_mixed_parts`. The Bregman terms are non-negative and need :math:`r_i`
    only to about :math:`2^{-26}` of itself (an error :math:`\eta` moves a term by
    :math:`q r\eta`; a shift :math:`\delta` common to every :math:`r_i`, a log-partition's
    rounding, moves the sum by :math:`\delta D`): :math:`r` as a float32 pair, the
    difference of two sides' exact log pairs (:func:`_narrow_side`), or
    :math:`\operatorname{log1p}(d/q)` facing probabilities (:func:`_narrow_ratio`). The
    masses' difference is first order in each mass and is summed exactly from float32
    words (``_double_double.extract_levels32`` of each array of words,
    :data:`_NARROW_BITS` bits below its largest): a side of logits has mass 1, one of
    probabilities its values, one of log-probabilities its triples :math:`e^{v_i}`
    (``_double_double.exp_triple32``: about :math:`2^{-70}` of themselves), and two
    sides of log-probabilities the words of :math:`\sum_i q_i\operatorname{expm1}
    (r_i)` instead (:func:`_narrow_expm1_words`: the error a fraction :math:`2^{-46}`
    of :math:`\sum_i q_i|r_i|`, not of the masses). The Bregman sum and the level sums
    are added by ``_double_double.rounded_sum`` and rounded once. Traceable by
    ``jax.jit`` (no value read); where an entry is NaN the value is NaN, where
    :math:`q_i = 0 < p_i` ``inf``.

    Screen (branch jaxkl2): that exact pass made every row 8x-30x the plain float32
    sum's time. The Bregman sum is taken first, with the masses' difference from the
    words at hand summed to a bound (:func:`_narrow_screen`); where a row's bound is
    within :math:`2^{-27}` of its value (random rows) that value stands, else the row
    takes the exact words (:func:`_narrow_choice`, branch jaxkl3: under JAX formed on
    chunks of :math:`\lceil R/8\rceil` rows that hold the failing rows only, one
    ``jax.lax.cond`` a chunk; branch jaxkl2 formed them on every row where one failed).

    Quick value (branch jaxkl4): the screen's inputs (the Bregman terms of float32
    pairs, ``exp_pair32`` of every entry) made random rows 5x-9x the plain sum's time.
    :func:`_narrow_quick` comes first: the definition's sum from an exponential split
    into an exact head and a small part and a table logarithm, with a rigorous bound
    against the KL of the given values (within :math:`2^{-27}` of it, or the row
    fails); only the rows that fail it take the screen and, where that fails, the exact
    words (both on the chunks of failing rows).

    Rows sure to fail (branch jaxkl5): nearly equal rows paid that quick value on top
    (0.55x-0.85x of stop 73's time). :func:`_quick_fails` flags, from one pass of plain
    float32 operations (a spread of the log-ratios, the masses, a few sums), rows whose
    KL is provably below what the quick value's bound can pass; where every row of the
    batch is flagged the quick value is not formed (one ``jax.lax.cond``), and the
    rows take the screen and the exact words as before (the same bits: a flagged row
    never passes the quick value).

    Limits: a KL near float32's underflow (below about :math:`10^{-30}`, where a mass
    word or the level sums pass :math:`2^{-126}`, flushed by XLA's CPU) and
    log-probabilities below about :math:`-30` (:func:`._double_double.exp_triple32`'s
    lower words subnormal) keep less; rows of more than :math:`2^{20}` classes are not
    taken (the caller keeps its plain sum)."""
    fast, passed, exact = _narrow_parts(a, a_form, b, b_form, xp=xp)
    return _narrow_choice(passed, fast, exact, xp=xp)


def _narrow_terms(
    a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType
) -> tuple[Array, tuple[Array, ...]]:
    r"""The Bregman sum :math:`\sum_i q_i\varphi(r_i)` of float32 rows (NaN where an
    entry is NaN) and the pieces the exact words read, ``(p_hi, q_hi, q_lo, r_hi,
    r_lo)`` (:func:`_narrow_side`, :func:`_narrow_ratio`, :func:`_narrow_bregman`;
    branch jaxkl4: formed only where the exact words are)."""
    p_hi, p_lo, s_hi, s_lo = _narrow_side(a, a_form, xp=xp)
    q_hi, q_lo, t_hi, t_lo = _narrow_side(b, b_form, xp=xp)
    zero = xp.zeros_like(a)
    if s_hi is not None and t_hi is not None:
        with_log = (s_hi > -math.inf) & (t_hi > -math.inf)
        r_hi, r_err = _two_sum(xp.where(with_log, s_hi, zero), -xp.where(with_log, t_hi, zero))
        r_hi, r_lo = _two_sum(r_hi, r_err + xp.where(with_log, s_lo - t_lo, zero))
        r_hi = xp.where(with_log, r_hi, zero)
    else:
        r_hi, r_lo, _ = _narrow_ratio((p_hi, p_lo), (q_hi, q_lo), xp=xp)
    terms = _narrow_bregman(r_hi, r_lo, p_hi, (q_hi, q_lo), xp=xp)
    terms = xp.where(xp.isnan(a) | xp.isnan(b), a + b, terms)
    return xp.sum(terms, axis=-1), (p_hi, p_lo, q_hi, q_lo, r_hi, r_lo)


def _narrow_parts(
    a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType
) -> tuple[Array, Array, _Exact]:
    r""":func:`kl_narrow`'s pieces: the quick value and where it stands
    (:func:`_narrow_quick`, branch jaxkl4), and the slow value as a function (called
    only where some row does not stand), of every row or of the rows that its argument
    takes (a gather of each input, :func:`_narrow_choice`): the Bregman terms
    (:func:`_narrow_terms`) and the screen (:func:`_narrow_screen`) on those rows, and
    where a row fails that too the masses' words summed exactly."""
    a, b = xp.broadcast_arrays(a, b)
    fails = _quick_fails(a, a_form, b, b_form, xp=xp)
    nothing = xp.zeros_like(a[..., 0])
    fast, passed = _unless_all(  # (branch jaxkl5: not where every row fails it)
        fails,
        lambda: _narrow_quick(a, a_form, b, b_form, xp=xp),
        (nothing, nothing != nothing),
        xp=xp,
    )

    def exact(rows: Callable[[Array], Array] | None = None) -> Array:
        # (``rows``: the rows to take, by a gather of each row-wise array; all rows
        # where None)
        # (branch jaxkl4: the exact words' inputs formed here, on the rows taken only)
        take = rows if rows is not None else (lambda x: x)
        a_, b_ = take(a), take(b)
        bregman_, pieces = _narrow_terms(a_, a_form, b_, b_form, xp=xp)
        p_hi, p_lo, q_hi, q_lo = pieces[:4]
        screened, stands = _narrow_screen(
            bregman_, (a_, a_form, p_hi, p_lo), (b_, b_form, q_hi, q_lo), xp=xp
        )
        return _unless_all(
            stands,
            lambda: xp.where(stands, screened, exact_words(a_, b_, bregman_, pieces)),
            screened,
            xp=xp,
        )

    def exact_words(a_: Array, b_: Array, bregman_: Array, pieces: tuple[Array, ...]) -> Array:
        p_hi, _, q_hi, q_lo, r_hi, r_lo = pieces
        zero_ = xp.zeros_like(a_)
        if a_form == b_form == "log_probs":
            both = (a_ > -math.inf) & (b_ > -math.inf)
            words = _narrow_expm1_words((q_hi, q_lo), r_hi, r_lo, xp=xp)
            words = [xp.where(both, w, zero_) for w in words]
            ends = xp.where(both, zero_, p_hi - q_hi)  # (-q where p is 0; else 0)
        else:
            ends = None
            words = []
            for values, form, sign in ((a_, a_form, 1.0), (b_, b_form, -1.0)):
                if form == "logits":
                    words.append(xp.zeros_like(a_[..., :1]) + sign)
                elif form == "probs":
                    words.append(sign * values)
                else:
                    words.extend(sign * word for word in exp_triple32(values, xp=xp))
        columns = [bregman_]
        for word in words:  # (each word apart: XLA took 80 s of CPU to compile the
            # extraction of the triples' words concatenated, on rows of 2 classes)
            word = xp.where(xp.isfinite(word), word, xp.zeros_like(word))
            if int(word.shape[-1]) == 1:
                columns.append(word[..., 0])
                continue
            taus, rest = extract_levels32(word, _NARROW_BITS, xp=xp)
            columns.extend([*taus, rest])
        if ends is not None:  # (rows of finite entries: a word of zeros, its levels 0)
            nothing = [xp.zeros_like(bregman_)] * (levels32(ends, _NARROW_BITS) + 1)

            def extracted() -> list[Array]:
                taus, rest = extract_levels32(ends, _NARROW_BITS, xp=xp)
                return [*taus, rest]

            columns.extend(_unless_all(both, extracted, nothing, xp=xp))
        total = rounded_sum(columns[::-1], passes=4)
        return xp.where(xp.isfinite(bregman_), total, bregman_)  # (TwoSum of inf is NaN)

    return fast, passed, exact


_U32 = 2.0**-24  # float32's unit roundoff

_SCREEN_TOLERANCE = 2.0**-27
r"""The fraction of :math:`|D|` within which :func:`_narrow_screen`'s bound must keep
the fast value's distance from the exact one, so that the fast value stands (rounded
once, within an ulp of the exact value: float32's :math:`u` is :math:`2^{-24}`)."""

_PAIR_ERROR = 2.0**-40
r"""A bound on the relative error of ``_double_double.exp_pair32``'s pairs (about
:math:`2^{-44}`, with a factor 16 to spare), which :func:`_narrow_screen` takes for the
mass of a side of log-probabilities."""

_SCREEN_FLOOR = 2.0**-100
r"""An absolute slack of :func:`_narrow_screen`'s bound an entry of each word array:
XLA's CPU flushes subnormals (a level of extraction whose :math:`\sigma_k` is below
:math:`2^{-126}` rounds, at that scale), and a log-probability below :math:`-87` has
the rounded ``exp`` and a low word 0: at most :math:`2^{-126}` an entry either way."""


def _narrow_screen(
    bregman: Array,
    p_side: tuple[Array, str, Array, Array],
    q_side: tuple[Array, str, Array, Array],
    *,
    xp: ModuleType,
) -> tuple[Array, Array]:
    r"""The fast value of :func:`kl_narrow` and where it stands (branch jaxkl2): the
    Bregman sum plus the masses' difference :math:`\Pi - K` from words already at hand
    (a side of logits 1, of probabilities its values, of log-probabilities the pairs
    :math:`e^{v_i}` of ``_double_double.exp_pair32`` that its Bregman terms took), each
    array of words summed by three levels of exact extraction
    (``_double_double.extract_levels32``) and a float sum of what they leave, the
    columns by ``_double_double.rounded_sum``; no ``exp_triple32``, no expm1 words and
    no 76-bit extraction. Its distance from the exact value (the same Bregman sum and the
    exactly summed masses) is at most

    .. math:: E = \sum_{\text{log-probability sides}} \epsilon_e \sum_i e_i
              + \sum_{\text{word arrays}} \Bigl(\gamma_n \sum_i |\rho_i| + n f\Bigr)
              + 2^{-70}\sum_k |c_k|,

    :math:`\epsilon_e` :data:`_PAIR_ERROR` (the pairs' error), :math:`f`
    :data:`_SCREEN_FLOOR`, :math:`\rho_i` what the levels leave and :math:`\gamma_n
    = nu/(1 - nu)` its float sum's rounding (any order, :math:`u = 2^{-24}`; the
    :math:`|\rho_i|` summed in floats: :math:`\gamma_n` once more, within the factor
    :math:`(1 + \gamma_n)` taken as 2), the last term ``rounded_sum``'s own (three
    passes: about :math:`2^{-75}` of the columns' magnitudes :math:`|c_k|`, taken as
    :math:`2^{-70}`). The fast value stands where :math:`E \le 2^{-27}|\hat D|`
    (:data:`_SCREEN_TOLERANCE`): it is then within an ulp of the exact value, before
    that value's own rounding. Three levels leave each entry at most
    :math:`2^{3M - 72}` of the array's largest (:math:`2^M \ge n + 2`), the bound's
    part from them about :math:`2^{5M - 95}` of it (:math:`2^{-45}` at :math:`n =
    1000`), so that rows of a KL above about :math:`2^{-18}` pass (:math:`2^{-13}` with
    a side of log-probabilities: the pairs' error): random rows; rows whose KL is near
    the masses' rounding (nearly equal rows, or sides whose masses differ from 1 by
    about their KL) do not. Rows whose Bregman sum is not finite pass (the exact value
    is that sum too).

    Returns ``(fast, passed)``, one entry a row."""
    n = int(p_side[0].shape[-1])
    gamma = 2.0 * (n * _U32) / (1.0 - n * _U32)
    zero = xp.zeros_like(p_side[0])
    columns = [bregman]
    bound = xp.zeros_like(bregman)
    for (values, form, hi, lo), sign in ((p_side, 1.0), (q_side, -1.0)):
        if form == "logits":
            columns.append(xp.zeros_like(bregman) + sign)
            continue
        words = [values] if form == "probs" else [hi, lo]
        if form == "log_probs":
            mass = xp.sum(xp.where(xp.isfinite(hi), xp.abs(hi), zero), axis=-1)
            bound = bound + _PAIR_ERROR * mass
        for word in words:
            word = xp.where(xp.isfinite(word), sign * word, zero)
            taus, rest, size = _level_sums32(word, 3, xp=xp)
            columns.extend([*taus, rest])
            bound = bound + (gamma * size + n * _SCREEN_FLOOR)
    fast = rounded_sum(columns[::-1], passes=3)
    magnitude = columns[0] * 0.0
    for column in columns:
        magnitude = magnitude + xp.abs(column)
    bound = bound + 2.0**-70 * magnitude
    finite = xp.isfinite(bregman)
    fast = xp.where(finite, fast, bregman)
    passed = ~finite | (bound <= _SCREEN_TOLERANCE * xp.abs(fast))
    return fast, passed


def _level_sums32(x: Array, levels: int, *, xp: ModuleType) -> tuple[list[Array], Array, Array]:
    r"""``levels`` levels of exact extraction of rows of float32 ``x``
    (``_double_double.level_words32``, from the row's largest entry) as the level sums,
    the float sum of what they leave and the float sum of its magnitudes (for
    :func:`_narrow_screen`'s bound)."""
    taus, rest = level_words32(x, levels, xp=xp)
    return taus, xp.sum(rest, axis=-1), xp.sum(xp.abs(rest), axis=-1)


def _unless_all(
    flags: Array,
    compute: Callable[[], _T],
    otherwise: _T,
    *,
    xp: ModuleType,
    every: bool = True,
) -> _T:
    r"""``otherwise`` where every entry of ``flags`` holds, else ``compute()`` (branch
    jaxkl3: work whose result the flags' entries do not read, skipped where none reads
    it); with ``every=False``, ``otherwise`` where some entry does not hold (branch
    jaxkl5). Under JAX one ``jax.lax.cond`` (under ``jax.jit`` only the branch taken
    runs; under ``jax.vmap`` both), elsewhere a Python branch on the flags' value."""
    if "jax" in getattr(xp, "__name__", ""):
        import jax  # (loaded: JAX arrays)

        return jax.lax.cond(xp.all(flags) == every, lambda: otherwise, compute)
    if bool(xp.all(flags)) == every:
        return otherwise
    return compute()


_NARROW_CHUNKS = 8
r"""The most chunks :func:`_narrow_choice` cuts a batch's rows into (JAX): the exact
words of rows that fail the screen are formed a chunk of :math:`\lceil R/8\rceil` rows at
a time, not on all :math:`R` rows where one fails."""


def _narrow_choice(passed: Array, fast: Array, exact: _Exact, *, xp: ModuleType) -> Array:
    r"""``fast`` where a row ``passed``, else the row's exact value. Under JAX (branch
    jaxkl3) the rows that fail are gathered, flagged first (``nonzero`` of a static
    size), into :data:`_NARROW_CHUNKS` chunks of :math:`k = \lceil R/8\rceil` rows; a
    ``jax.lax.fori_loop`` forms ``exact`` of each chunk that holds a failing row (one
    ``jax.lax.cond`` each: a chunk of none is skipped) and puts its values back in
    place (a scatter that drops the padding), so that one failing row costs the exact
    words of :math:`k` rows, not of all (branch jaxkl2: one ``cond`` a batch; a row's
    exact value is the same either way, bit for bit). Traceable; under ``jax.vmap``
    each ``cond`` becomes a select: every chunk's exact words are formed. Elsewhere
    (PyTorch on MPS) every row's exact value where some row fails (a Python branch on
    the flags' value)."""
    if "jax" not in getattr(xp, "__name__", ""):
        if bool(xp.all(passed)):
            return fast
        return xp.where(passed, fast, exact(None))
    import jax  # (loaded: JAX arrays)

    shape = tuple(fast.shape)
    count = math.prod(shape)
    if count <= 1:
        return jax.lax.cond(xp.all(passed), lambda: fast, lambda: exact(None))
    size = -(-count // _NARROW_CHUNKS)
    chunks = -(-count // size)
    order = xp.nonzero(xp.reshape(~passed, (count,)), size=chunks * size, fill_value=count)[0]
    depth = len(shape)

    def body(chunk: Array, out: Array) -> Array:
        index = jax.lax.dynamic_slice(order, (chunk * size,), (size,))
        held = xp.minimum(index, count - 1)  # (the padding reads the last row: dropped)

        def rows(x: Array) -> Array:
            flat = xp.reshape(x, (count, *tuple(x.shape)[depth:]))
            return xp.take(flat, held, axis=0)

        def run() -> Array:
            return out.at[index].set(exact(rows), mode="drop")

        return jax.lax.cond(index[0] < count, run, lambda: out)

    out = jax.lax.fori_loop(0, chunks, body, xp.reshape(fast, (count,)))
    return xp.reshape(out, shape)


# --- the fast value without double-float inputs (branch jaxkl4) --------------------------

_SPLIT_STEPS = 512
r"""Table entries of :func:`_exp_split`: :math:`2^{j/512}`, :math:`0 \le j < 512`."""

_SPLIT_RANGE = 60.0
r"""The largest :math:`|x|` that :func:`_exp_split` takes (rows of other arguments fail
:func:`_narrow_quick`): :math:`e^{x}` and its low part stay normal float32."""

_SPLIT_ERROR = 2.0**-32
r"""A bound on :func:`_exp_split`'s relative error (about :math:`2^{-32.8}`: three
roundings of a part below :math:`2^{-10.5}` of the head)."""

_LOG_STEPS = 256
r"""Table entries of :func:`_log_split`."""

_LOG_ERROR = 2.0**-36
r"""A bound on :func:`_log_split`'s absolute error (about :math:`2^{-39}`)."""

_QUICK_TOLERANCE = 2.0**-27
r"""The fraction of :math:`|D|` within which :func:`_narrow_quick`'s bound must keep
its value's distance from the KL of the given float32 values, so that the value stands
(rounded once, within :math:`1/2 + 1/8` ulp of that KL: float32's :math:`u` is
:math:`2^{-24}`)."""

_QUICK_FLOOR = 2.0**-100
r"""An absolute slack of :func:`_narrow_quick`'s bound an entry of each sum: XLA's CPU
flushes subnormals (products of weights near :math:`2^{-87}` and small log-ratios, a
level of extraction below :math:`2^{-126}`): at most :math:`2^{-126}` an entry."""

_QUICK_LEVELS = 2
r"""Levels of exact extraction of :func:`_narrow_quick`'s sums of heads (what two levels
leave, at most :math:`2^{2M - 48}` of the row's largest entry, :math:`2^M \ge n + 2`, is
summed in floats and bounded)."""

_WIDE = 2.0**40
r"""The largest :math:`|v|` of a log-domain entry (logits, log-probabilities) that
:func:`_narrow_quick` takes: products with weights stay far from overflow."""


def _bits_parts(value: Decimal, count: int, bits: int) -> tuple[float, ...]:
    r"""``value`` as ``count`` floats, the first ``count - 1`` of at most ``bits``
    significant bits (each the rounded rest), the last the rest rounded to float32."""
    parts, rest = [], value
    for i in range(count):
        if i == count - 1:
            part = float(np.float32(float(rest)))
        else:
            exponent = math.floor(math.log2(abs(float(rest))))
            scale = Decimal(2) ** (bits - 1 - exponent)
            part = float((rest * scale).to_integral_value() / scale)
        parts.append(part)
        rest -= Decimal(part)
    return tuple(parts)


@functools.cache
def _exp_split_constants() -> tuple[tuple[float, ...], np.ndarray, np.ndarray]:
    r""":math:`\ln 2/512` as four float32 parts (the first three of 8 bits: :math:`N`
    times them exact for :math:`|N| < 2^{16}`) and the table :math:`2^{j/512}` as float32
    pairs (from 60 digits, once)."""
    with localcontext() as ctx:
        ctx.prec = 60
        parts = _bits_parts(Decimal(2).ln() / _SPLIT_STEPS, 4, 8)
        table = [Decimal(2) ** (Decimal(j) / _SPLIT_STEPS) for j in range(_SPLIT_STEPS)]
        hi = np.array([np.float32(float(t)) for t in table], dtype=np.float32)
        lo = np.array(
            [np.float32(float(t - Decimal(float(h)))) for t, h in zip(table, hi, strict=True)],
            dtype=np.float32,
        )
    return parts, hi, lo


def _exp_split(x_hi: Array, x_lo: Array | None, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^{x}` of a float32 pair :math:`x = x_{hi} + x_{lo}`, :math:`|x| \le 60`
    (:data:`_SPLIT_RANGE`; other entries give values no caller reads), as a head and a
    small part ``(a, b)``: :math:`a = 2^k T_{hi}` exactly, :math:`b = 2^k(T_{hi}m +
    T_{lo}(1 + m))` in floats, :math:`|b| \le 2^{-10}a`, for :math:`x = N\ln 2/512 + r`,
    :math:`N = 512k + j`, :math:`T = 2^{j/512}` a float32 pair and :math:`m =
    \operatorname{expm1} r = r + r^2/2 + r^3/6 + r^4/24` (:math:`|r| \le 2^{-10.5}`).
    :math:`r` is the exact pair of :math:`(x_{hi} - Nc_1) - Nc_2 - Nc_3` (Sterbenz, then
    TwoSums) plus :math:`x_{lo} - Nc_4`. So :math:`a + b` is within :data:`_SPLIT_ERROR`
    of :math:`e^{x}` with no double-float product: the head is exact and the float32
    roundings fall on :math:`b` only (about 50 elementwise operations an entry, against
    ``_double_double.exp_pair32``'s 150)."""
    (c1, c2, c3, c4), table_hi, table_lo = _exp_split_constants()
    n = xp.round(x_hi * float(_SPLIT_STEPS / math.log(2.0)))
    r_hi, r_lo = _two_sum(x_hi - n * c1, -(n * c2))
    r_hi, r_err = _two_sum(r_hi, -(n * c3))
    r_lo = (r_lo + r_err) - n * c4
    if x_lo is not None:
        r_lo = r_lo + x_lo
    m = r_hi + (
        r_hi * r_hi * (0.5 + r_hi * (1.0 / 6.0 + r_hi * (1.0 / 24.0))) + r_lo * (1.0 + r_hi)
    )
    whole = xp.astype(n, xp.int32)
    j = whole - _SPLIT_STEPS * (whole // _SPLIT_STEPS)
    k = xp.astype((whole - j) // _SPLIT_STEPS, x_hi.dtype)
    shape = tuple(x_hi.shape)
    index = xp.reshape(j, (-1,))
    t_hi = xp.reshape(xp.take(xp.asarray(table_hi, device=device(x_hi)), index, axis=0), shape)
    t_lo = xp.reshape(xp.take(xp.asarray(table_lo, device=device(x_hi)), index, axis=0), shape)
    scale = power_of_two32(xp.clip(k, -126.0, 127.0), xp=xp)
    return t_hi * scale, (t_hi * m + t_lo * (1.0 + m)) * scale


@functools.cache
def _log_split_constants() -> tuple[tuple[float, ...], np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`\ln 2` as three float32 parts (the first two of 17 bits: :math:`e` times
    them exact for :math:`|e| < 2^7`), and for :math:`0 \le j < 256` a 12-bit
    :math:`\rho_j \approx 1/(1 + (j + 1/2)/256)` with :math:`-\log\rho_j` as a float32
    pair (from 60 digits, once)."""
    with localcontext() as ctx:
        ctx.prec = 60
        ln2 = _bits_parts(Decimal(2).ln(), 3, 17)
        rhos, his, los = [], [], []
        for j in range(_LOG_STEPS):
            rho = Decimal(float(_log_rho(np.float32(j), xp=np)))
            value = -rho.ln()
            hi = np.float32(float(value))
            rhos.append(float(rho))
            his.append(hi)
            los.append(np.float32(float(value - Decimal(float(hi)))))
    as32 = functools.partial(np.array, dtype=np.float32)
    return ln2, as32(rhos), as32(his), as32(los)


def _log_rho(j: Array, *, xp: ModuleType) -> Array:
    r""":math:`\rho_j = \operatorname{round}(4096 / c_j)/4096`, :math:`c_j = 1 + (j +
    1/2)/256`, in float32 (each step correctly rounded: the table's and the traced
    values agree; no gather)."""
    c = 1.0 + (j + 0.5) * (1.0 / _LOG_STEPS)
    return xp.round(4096.0 / c) * (1.0 / 4096.0)


def _log_split(v: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`\log v` of float32 :math:`v \in [2^{-100}, 2^{100}]` (other entries give
    values no caller reads) as a pair ``(hi, lo)`` within :data:`_LOG_ERROR` absolute:
    :math:`v = 2^{e}f`, :math:`f \in [1, 2)`, :math:`j = \lfloor 256(f - 1)\rfloor`,
    :math:`\log v = e\ln 2 - \log\rho_j + \operatorname{log1p}(z)`, :math:`z = f\rho_j
    - 1` exact as :math:`(f_h\rho_j - 1) + f_l\rho_j` (:math:`f = f_h + f_l`, 12 bits
    each, :math:`\rho_j` of 12: exact products, the difference Sterbenz's),
    :math:`|z| \le 2^{-8.8}`, :math:`\operatorname{log1p}(z) = z - z^2/2 + \cdots -
    z^6/6` in floats but its head; :math:`e\ln 2` as exact products of 17-bit parts.
    The heads joined by TwoSums (about 45 elementwise operations an entry)."""
    (l1, l2, l3), _, hi_t, lo_t = _log_split_constants()
    half, exponent = frexp(v, xp=xp)
    f = 2.0 * half
    e = exponent - 1.0
    j_float = xp.clip(xp.floor((f - 1.0) * float(_LOG_STEPS)), 0.0, _LOG_STEPS - 1.0)
    j = xp.astype(j_float, xp.int32)
    shape = tuple(v.shape)
    index = xp.reshape(j, (-1,))

    def table(values: np.ndarray) -> Array:
        column = xp.asarray(values, device=device(v))
        return xp.reshape(xp.take(column, index, axis=0), shape)

    rho, neg_hi, neg_lo = _log_rho(j_float, xp=xp), table(hi_t), table(lo_t)
    f_h = xp.floor(f * 2048.0) * (1.0 / 2048.0)
    z_hi, z_lo = _two_sum(f_h * rho - 1.0, (f - f_h) * rho)
    series = (z_hi * z_hi) * (
        -0.5 + z_hi * (1.0 / 3.0 + z_hi * (-0.25 + z_hi * (0.2 - z_hi * (1.0 / 6.0))))
    )
    s1, t1 = _two_sum(e * l1, neg_hi)
    s2, t2 = _two_sum(s1, z_hi)
    s3, t3 = _two_sum(s2, e * l2)
    lo = ((t1 + t2) + t3) + ((neg_lo + z_lo) + ((series - z_hi * z_lo) + e * l3))
    hi, lo = held32(s3, lo, xp=xp)
    return hi, lo  # (held: each consumer would recompute the chain, XLA's fusion)


def _row_sum(
    x: Array, levels: int, gamma: float, n: int, *, xp: ModuleType
) -> tuple[list[Array], Array]:
    r"""Rows of ``x`` as exact level sums and a float rest
    (``_double_double.level_words32``), with a bound on the rest's rounding
    (:math:`\gamma_n\sum_i|\rho_i|` and the flush floor): ``(columns, bound)``."""
    taus, rest = level_words32(x, levels, xp=xp)
    bound = gamma * xp.sum(xp.abs(rest), axis=-1) + n * _QUICK_FLOOR
    return [*taus, xp.sum(rest, axis=-1)], bound


def _pair_sum(columns: list[Array], *, xp: ModuleType) -> tuple[Array, Array, Array]:
    r"""The sum of a handful of float32 ``columns`` as a pair ``(hi, lo)`` (three sweeps
    of TwoSums, the rest in floats, TwoSum), and :math:`\sum_k|c_k|` (its error is
    below :math:`2^{-40}` of that)."""
    cols = list(columns)
    magnitude = xp.abs(cols[0])
    for column in cols[1:]:
        magnitude = magnitude + xp.abs(column)
    for _ in range(3):
        for i in range(1, len(cols)):
            cols[i], cols[i - 1] = _two_sum(cols[i], cols[i - 1])
    rest = cols[0]
    for column in cols[1:-1]:
        rest = rest + column
    hi, lo = _two_sum(cols[-1], rest)
    return hi, lo, magnitude


def _log_pair_of(s_hi: Array, s_lo: Array, *, xp: ModuleType) -> tuple[Array, Array, Array]:
    r""":math:`\log S` of positive pairs :math:`S = s_{hi} + s_{lo}` (one a row) as a pair
    :math:`(\ell_0, \delta - \delta^2/2)`, :math:`\ell_0` the float32 ``log``,
    :math:`\delta = (S - E)/E` for ``exp_pair32``'s :math:`E = e^{\ell_0}`, with a bound
    on its error: :math:`2^{-39} + 5u|\delta| + |\delta|^3` (the pair's
    :math:`2^{-40}`, the quotient's rounding, the series' rest)."""
    l0 = xp.log(s_hi)
    e_hi, e_lo = exp_pair32(l0, xp=xp)
    delta = ((s_hi - e_hi) + (s_lo - e_lo)) / e_hi
    size = xp.abs(delta)
    return l0, delta - 0.5 * delta * delta, 2.0**-39 + 5.0 * _U32 * size + size * size * size


_FAIL_SPREAD = 2.0**-2
r"""The largest spread of a row's log-ratios that :func:`_quick_fails` flags (rows
further apart have a KL the quick value passes, or nearly: its other parts are formed
only where every row of the batch is within it)."""


def _quick_fails(a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType) -> Array:
    r"""Rows that :func:`_narrow_quick` is sure to fail, from one pass of plain float32
    operations (branch jaxkl5: nearly equal rows paid the quick value before the screen,
    0.55x-0.85x of stop 73's time): True only where the row's KL is provably too small
    for the quick value's own bound :math:`E` (:math:`E > 2^{-27}|\hat D|`), so a row
    that it flags takes the screen and the exact words exactly as it would after the
    quick value (same bits); a row it does not flag may fail too.

    With :math:`\mu_i = \log p_i - \log q_i` (a side of logits normalised, other sides
    as given), :math:`\Pi = \sum_i p_i`, :math:`K = \sum_i q_i = \Pi E_{\hat p}
    e^{-\mu}` and :math:`\mu = \bar\mu + \delta_i`, :math:`\bar\mu = E_{\hat p}\mu`,
    :math:`|\delta_i| \le s` (the row's spread :math:`\max\mu - \min\mu`, free of any
    shift common to the row: read from the forms' values, no log-partition),

    .. math:: D = \Pi\bar\mu = \Pi\Bigl(\log\frac{\Pi}{K} + \log E_{\hat p}e^{-\delta}
              \Bigr), \qquad |D| \le U = \Pi\Bigl(\Bigl|\log\frac{\Pi}{K}\Bigr| +
              \frac{e^{s}s^2}{2}\Bigr),

    :math:`0 \le \log E e^{-\delta} \le \log(1 + e^{s}E\delta^2/2)`. The masses'
    :math:`\log(\Pi/K)` from float32 sums, each within :math:`\rho = (n + 8)2^{-24}`
    of itself (the sum's :math:`\gamma_n`, the exponential's few ulps; a side of
    logits 1), for two sides of log-probabilities as :math:`\operatorname{log1p}(R)`,
    :math:`R = \sum_i q_i\operatorname{expm1}(\mu_i)/K` (an error of :math:`\rho` of
    :math:`\sum_i q_i|\operatorname{expm1}\mu_i|/K`, not of the masses), :math:`s`
    plus :math:`2^{-19}\max_i(|x^P_i| + |x^Q_i|)` (the logs' roundings).
    :math:`E` is at least :math:`L`, half of its parts that do not shrink with the KL:
    :data:`_LOG_ERROR` of twice P's mass a side of probabilities, :math:`2^{-30}` of it
    for Q's logits (:math:`\log S_Q`'s weights), and for a log-domain P against
    log-probabilities :math:`2^{-30}\sum_i p_i|\mu^{\circ}_i| + 2^{-43}\sum_i
    p_i(|\lambda_i| + |v_i|)` (:math:`\mu^\circ` the unnormalised ratio the quick value
    weighs, :math:`\lambda` P's logs, :math:`v` Q's), each over :math:`S_P` for P's
    logits. The quick value :math:`\hat D` is within :math:`E` of :math:`D`, so
    :math:`2^{-26}U < L` gives :math:`2^{-27}|\hat D| < E`: it fails. Rows with an
    entry not finite, a probability 0, :math:`s >` :data:`_FAIL_SPREAD` or
    :math:`\rho > 2^{-10}` are not flagged, nor any row of a batch that holds a row of
    such a spread (the spread is one reduction; the rest is formed only where every
    row is within it: random rows pay that pass only). Assumes XLA's (or the
    device's) float32 ``exp``, ``expm1``, ``log`` within :math:`2^{-20}` relative,
    about 16 ulps (they are within 1-2).
    Returns one flag a row."""
    n = int(a.shape[-1])
    rho = 1.01 * (n + 8) * _U32
    if rho > 2.0**-10:
        return xp.zeros(tuple(a.shape[:-1]), dtype=xp.bool, device=device(a))

    def logs(values: Array, form: str) -> Array:
        return xp.log(values) if form == "probs" else values

    # (a batch with a row whose first 16 ratios spread beyond _FAIL_SPREAD: no flag, and
    # no pass over the rows; the full spread below is at least 1.005 times theirs)
    head = logs(a[..., :16], a_form) - logs(b[..., :16], b_form)
    opening = xp.max(head, axis=-1) - xp.min(head, axis=-1)
    return _unless_all(
        opening <= _FAIL_SPREAD,
        lambda: _quick_fails_spread(a, a_form, b, b_form, rho, xp=xp),
        opening < opening,  # (no flag; NaN too)
        xp=xp,
        every=False,
    )


def _quick_fails_spread(
    a: Array, a_form: str, b: Array, b_form: str, rho: float, *, xp: ModuleType
) -> Array:
    r""":func:`_quick_fails` past the first 16 ratios of each row: the spread bound
    :math:`s`, and where every row is within :data:`_FAIL_SPREAD`,
    :func:`_quick_fails_near`."""
    x_p = xp.log(a) if a_form == "probs" else a
    x_q = xp.log(b) if b_form == "probs" else b
    d = x_p - x_q
    # (one reduction: |mu_i - mu_j| <= |d_i - d_0| + |d_j - d_0| and the logs' roundings;
    # NaN, an infinite entry, a probability 0 or a huge entry give s > 1 or NaN)
    t = xp.abs(d - d[..., :1]) + 2.0**-20 * (xp.abs(x_p) + xp.abs(x_q))
    first = 2.0**-20 * (xp.abs(x_p[..., 0]) + xp.abs(x_q[..., 0]))
    spread = 2.01 * (xp.max(t, axis=-1) + first)
    near = spread <= _FAIL_SPREAD  # (NaN: False)
    return _unless_all(  # (a batch with a row further apart: this pass only, no flag)
        near,
        lambda: near & _quick_fails_near(a, a_form, b, b_form, d, spread, rho, xp=xp),
        near & ~near,
        xp=xp,
        every=False,
    )


def _quick_fails_near(
    a: Array,
    a_form: str,
    b: Array,
    b_form: str,
    d: Array,
    spread: Array,
    rho: float,
    *,
    xp: ModuleType,
) -> Array:
    r""":func:`_quick_fails` past its spread (``d`` the log-ratios up to a row's shift,
    ``spread`` the bound :math:`s`, ``rho`` the sums' relative error): :math:`2^{-26}U
    < L`."""
    one = xp.ones_like(spread)
    lower = xp.zeros_like(spread)
    if a_form == b_form == "log_probs":  # (Pi/K = 1 + R)
        q = xp.exp(b)
        change = xp.expm1(d)
        k = xp.sum(q, axis=-1)
        ratio = xp.sum(q * change, axis=-1) / k
        widest = xp.expm1(xp.abs(d[..., 0]) + spread)  # (at least max |expm1(d_i)|)
        masses = 1.1 * xp.abs(ratio) + (2.0 * rho) * widest
        masses = xp.where(xp.abs(ratio) <= 2.0**-4, masses, one + math.inf)
        mass_p = k * (1.0 + ratio)
        w = q + q * change
        terms = w * (2.0**-31 * xp.abs(d) + 2.0**-44 * (xp.abs(a) + xp.abs(b)))
        lower = xp.sum(terms, axis=-1) * (1.0 - 2.0 * rho)
    else:
        if a_form == "logits":
            mass_p = one
        else:
            mass_p = xp.sum(a if a_form == "probs" else xp.exp(a), axis=-1)
        k = one if b_form == "logits" else xp.sum(b if b_form == "probs" else xp.exp(b), axis=-1)
        sides = (a_form != "logits") + (b_form != "logits")
        masses = xp.abs(xp.log(mass_p / k)) + (2.0 * rho) * sides
    if a_form == "logits":
        outer = inner = one
    else:
        outer, inner = mass_p * (1.0 + 2.0 * rho), mass_p * (1.0 - 2.0 * rho)
    upper = outer * (masses + 1.5 * spread * spread)
    probs_sides = (a_form == "probs") + (b_form == "probs")
    if probs_sides:
        lower = lower + (probs_sides * _LOG_ERROR) * inner
    if b_form == "logits":
        lower = lower + 2.0**-31 * inner
    elif a_form == "logits" and b_form == "log_probs":  # (the quick value's weighed ratios)
        logs = a - xp.max(a, axis=-1, keepdims=True)
        w = xp.exp(logs)
        terms = w * (2.0**-31 * xp.abs(logs - b) + 2.0**-44 * (xp.abs(logs) + xp.abs(b)))
        lower = xp.sum(terms, axis=-1) / xp.sum(w, axis=-1) * (1.0 - 2.0 * rho)
    return 2.0**-26 * upper < lower


def _narrow_quick(
    a: Array, a_form: str, b: Array, b_form: str, *, xp: ModuleType
) -> tuple[Array, Array]:
    r"""The fast value of :func:`kl_narrow` and where it stands (branch jaxkl4): the
    definition's sum :math:`D = \sum_i p_i(\log p_i - \log q_i)` from float32 words with
    no double-float exponential, and a rigorous bound :math:`E` on its distance from the
    KL of the given float32 values; the value stands where :math:`E \le 2^{-27}|D|`
    (:data:`_QUICK_TOLERANCE`), within :math:`1/2 + 1/8` ulp of that KL once rounded.

    A side's logs are :math:`\lambda_i + c`: :math:`\lambda` exact for log-probabilities
    (the values) and logits (:math:`x_i - m`, a TwoSum pair; :math:`c = -\log S`,
    :math:`S = \sum_i e^{x_i - m}`), a pair within :data:`_LOG_ERROR` for probabilities
    (:func:`_log_split`). P's weights are :math:`w_i = a_i + b_i`: the probabilities
    themselves (:math:`b = 0`), or :math:`e^{\lambda_i}` by :func:`_exp_split` (an exact
    head :math:`a`, a small part :math:`b`), so that with :math:`\mu_i = \lambda^P_i -
    \lambda^Q_i` (TwoSum: :math:`\mu_{hi} + \mu_{lo}`) and :math:`T = \sum_i w_i\mu_i`

    .. math:: D = T/S_P + \log S_Q - \log S_P \ (\text{P logits}), \qquad
              D = T + \Pi\log S_Q \ (\text{else}; \Pi = \sum_i w_i),

    :math:`\log S_Q = 0` unless Q is logits. :math:`T` is the exact products
    :math:`a_i\mu_{hi}` (``two_product32``) summed by three levels of exact extraction
    (``_double_double.level_words32``) and :math:`a_i\mu_{lo} + b_i\mu` (floats, below
    :math:`2^{-10}` of :math:`|a_i\mu_i|`) by one; :math:`S`, :math:`\Pi` likewise
    (heads three levels, small parts one); :math:`\log S` a pair (:func:`_log_pair_of`)
    and the last steps in pairs, one a row. The bound adds the weights' error
    (:data:`_SPLIT_ERROR` of :math:`A = \sum_i a_i|\mu_i|`), the small parts' roundings
    (:math:`2^{-31}A`), the logs' (:data:`_LOG_ERROR` of :math:`\Pi` a side of
    probabilities, :math:`2^{-44}\sum_i a_i(|\lambda^P_i| + |\lambda^Q_i|)` for the
    pairs' low parts), each level sum's rest (:math:`\gamma_n\sum|\rho_i|`), the
    flush floor (:data:`_QUICK_FLOOR` an entry), those of :math:`S` carried through
    :math:`\log S` and the quotient, and :math:`2^{-40}` of the last steps'
    magnitudes.

    Rows it does not take (they fail, and take the exact words): an entry NaN, a
    weight of P outside its range (log-domain :math:`|\lambda_i| > 60`,
    probabilities outside :math:`[2^{-100}, 2^{100}]` but 0), Q's entries facing a
    positive weight likewise (probabilities, log-probabilities beyond
    :math:`2^{40}`), a side of logits with an entry not finite or beyond
    :math:`2^{40}`; Q's logits below :math:`-60` are left out of :math:`S_Q`, within
    :math:`n e^{-60}` of it. Rows of a KL near the rounding of its pieces (nearly equal
    rows) fail the bound. Returns ``(fast, passed)``, one entry a row."""
    n = int(a.shape[-1])
    gamma = 2.0 * (n * _U32) / (1.0 - n * _U32)
    zero = xp.zeros_like(a)
    one = zero + 1.0
    ok = ~(xp.isnan(a) | xp.isnan(b))
    if a_form == "probs":
        live = a > 0.0
        ok = ok & ((a == 0.0) | ((a >= 2.0**-100) & (a <= 2.0**100)))
        w_a = xp.where(live, a, zero)
        w_b = None
        lp_hi, lp_lo = _log_split(xp.where(live, a, one), xp=xp)
        s_p = None
    else:
        if a_form == "log_probs":
            live = a > -math.inf
            lp_hi, lp_lo = xp.where(live, a, zero), None
            ok = ok & (~live | (xp.abs(a) <= _SPLIT_RANGE))
        else:
            live = xp.isfinite(a)
            m = xp.max(xp.where(live, a, zero), axis=-1, keepdims=True)
            lp_hi, lp_lo = _two_sum(xp.where(live, a, m), -m)
            ok = ok & live & (xp.abs(a) <= _WIDE) & (lp_hi >= -_SPLIT_RANGE)
        safe = xp.where(live & (xp.abs(lp_hi) <= _SPLIT_RANGE), lp_hi, zero)
        w_a, w_b = _exp_split(safe, lp_lo, xp=xp)
        w_a, w_b = xp.where(live, w_a, zero), xp.where(live, w_b, zero)
        s_p = a_form == "logits"
    if b_form == "probs":
        ok = ok & (~live | ((b >= 2.0**-100) & (b <= 2.0**100)))
        lq_hi, lq_lo = _log_split(xp.where(live & (b > 0.0), b, one), xp=xp)
    elif b_form == "log_probs":
        ok = ok & (~live | (xp.abs(b) <= _WIDE))
        lq_hi, lq_lo = xp.where(live & xp.isfinite(b), b, zero), None
    else:
        finite = xp.isfinite(b)
        ok = ok & finite & (xp.abs(b) <= _WIDE)
        m_q = xp.max(xp.where(finite, b, zero), axis=-1, keepdims=True)
        lq_hi, lq_lo = _two_sum(xp.where(finite, b, m_q), -m_q)
    if b_form == "logits":  # log S_Q first: it joins each mu (branch jaxkl4)
        below = lq_hi < -_SPLIT_RANGE
        q_a, q_b = _exp_split(xp.where(below, zero, lq_hi), lq_lo, xp=xp)
        q_a, q_b = xp.where(below, zero, q_a), xp.where(below, zero, q_b)
        heads, bound_s = _row_sum(q_a, _QUICK_LEVELS, gamma, n, xp=xp)
        tails, bound_tail = _row_sum(q_b, 1, gamma, n, xp=xp)
        sq_hi, sq_lo, sq_size = _pair_sum([*tails[::-1], *heads[::-1]], xp=xp)
        sq_rel = (bound_s + bound_tail + 2.0**-40 * sq_size + n * 2.0**-86) / sq_hi
        lq0, lq1, lq_err = _log_pair_of(sq_hi, sq_lo, xp=xp)
        lq_err = lq_err + 1.01 * (sq_rel + 2.0 * _SPLIT_ERROR)
    # mu = log p - log q but log S_P as mu_hi + mu_lo (TwoSums of the heads, low parts added)
    mu_hi, mu_lo = _two_sum(lp_hi, -lq_hi)
    if b_form == "logits":
        mu_hi, mu_err = _two_sum(mu_hi, xp.expand_dims(lq0, axis=-1))
        mu_lo = mu_lo + (mu_err + xp.expand_dims(lq1, axis=-1))
    for low, sign in ((lp_lo, 1.0), (lq_lo, -1.0)):
        if low is not None:
            mu_lo = mu_lo + sign * low
    mu_hi, mu_lo = xp.where(live, mu_hi, zero), xp.where(live, mu_lo, zero)
    product, product_lo = two_product32(w_a, mu_hi)
    small = product_lo + w_a * mu_lo
    if w_b is not None:
        small = small + w_b * (mu_hi + mu_lo)
    big_cols, bound_t = _row_sum(product, _QUICK_LEVELS, gamma, n, xp=xp)
    small_cols, bound_small = _row_sum(small, 1, gamma, n, xp=xp)
    t_hi, t_lo, t_size = _pair_sum([*small_cols[::-1], *big_cols[::-1]], xp=xp)
    weighted = xp.sum(w_a * xp.abs(mu_hi), axis=-1)
    logs = xp.sum(w_a * (xp.abs(lp_hi) + xp.abs(lq_hi)), axis=-1)
    mass = 2.0 * xp.sum(w_a, axis=-1)  # (Pi, or S_P, with room: a float sum)
    bound_t = bound_t + bound_small + 2.0**-40 * t_size + 2.0**-30 * weighted + 2.0**-43 * logs
    if w_b is not None:
        bound_t = bound_t + (2.0 * _SPLIT_ERROR) * weighted
    probs_sides = (a_form == "probs") + (b_form == "probs")
    if probs_sides:
        bound_t = bound_t + (probs_sides * _LOG_ERROR) * mass
    if b_form == "logits":
        bound_t = bound_t + lq_err * mass
    if s_p and w_b is not None:  # D = T/S_P - log S_P
        heads, bound_sp = _row_sum(w_a, _QUICK_LEVELS, gamma, n, xp=xp)
        tails, bound_tail = _row_sum(w_b, 1, gamma, n, xp=xp)
        sp_hi, sp_lo, sp_size = _pair_sum([*tails[::-1], *heads[::-1]], xp=xp)
        sp_rel = (bound_sp + bound_tail + 2.0**-40 * sp_size) / sp_hi + 2.0 * _SPLIT_ERROR
        quotient = t_hi / sp_hi
        p, p_lo = two_product32(quotient, sp_hi)
        remainder = (((t_hi - p) - p_lo) + t_lo) - quotient * sp_lo
        q_hi, q_lo = _two_sum(quotient, remainder / sp_hi)
        lp0, lp1, lp_err = _log_pair_of(sp_hi, sp_lo, xp=xp)
        pieces = [q_lo, -lp1, q_hi, -lp0]
        error = bound_t / sp_hi + xp.abs(q_hi) * (sp_rel + 2.0**-40) + lp_err + 1.01 * sp_rel
    else:  # D = T
        pieces = [t_lo, t_hi]
        error = bound_t
    d_hi, d_lo, d_size = _pair_sum(pieces, xp=xp)
    fast = d_hi + d_lo
    error = error + 2.0**-40 * d_size
    rows_ok = xp.all(ok, axis=-1)
    passed = rows_ok & xp.isfinite(fast) & (error <= _QUICK_TOLERANCE * xp.abs(fast))
    return xp.where(rows_ok, fast, zero[..., 0]), passed
