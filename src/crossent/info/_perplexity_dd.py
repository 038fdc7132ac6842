r"""Perplexity of probabilities from the entropy in double-double (issue 13).

:math:`\mathrm{PP} = e^{H}` turns an absolute error :math:`\delta` of :math:`H` into the
relative error :math:`\delta` of the result: :math:`H` rounded to a float is already
half an ulp of :math:`H` off, up to :math:`2^{-50}` absolute for :math:`H \ge 8`
(32000 classes: :math:`H = 10.37`), and each term's ``log`` and product add their own
roundings, the same in every term of a uniform row; ``exp`` of the float64 cross-entropy
was 7.5 ulps from the truth there. Here, for NumPy float64 probabilities (and
PyTorch's, JAX's), :math:`H = h + \ell` as a double-double (the primitives are
``crossent._double_double``'s):

* :math:`\log x = e \ln 2 + \log1p(m - 1)` (``_double_double.log_p_dd``) with :math:`x = m 2^e`,
  :math:`m \in [\sqrt{1/2}, \sqrt{2})` (``frexp``): :math:`m - 1` is exact (Sterbenz),
  :math:`e \ln 2_{hi}` is exact (``LN2_HI`` has 42 significant bits), and the
  rounding left is that of ``log1p`` of :math:`|{\log m}| \le 0.347`: about
  :math:`2^{-55}` absolute, against :math:`2^{-50}` of a rounded :math:`\log x` near
  :math:`-10`;
* the products :math:`p_i \log x_i` exactly (Dekker's TwoProduct, or an FMA in the
  kernel) plus :math:`p_i` times the logarithm's low part;
* the high parts summed exactly (Rump, Ogita and Oishi's extraction [1]_,
  ``_double_double.sum_dd``: each term
  split at a power of two :math:`\sigma \ge 2^{\lceil\log_2(n + 2)\rceil}
  \max_i |t_i|`, so that the high parts' sum is exact in any order), the rest in plain
  float64 (its error is of order :math:`n u^2 \sigma`).

The result is :math:`e^{h} + e^{h}\ell` (``exp`` within an ulp, the correction's own
rounding a fraction of one): within about an ulp of :math:`e^{H}` where the plain
``exp`` of the float64 :math:`H` was up to 7.5 ulps off. The value is not capped at the
number of classes: rows of ``fl(1/V)`` entries sum above 1 for some :math:`V`, and their
true perplexity is then slightly above :math:`V`.

References
----------
.. [1] S. M. Rump, T. Ogita and S. Oishi, "Accurate floating-point summation part I:
   faithful rounding", SIAM J. Sci. Comput. 31(1) (2008), doi:10.1137/050645671.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .._double_double import (
    exp_parts,
    exp_residual,
    log_dd,
    log_p_dd,
    sum_dd,
    two_product,
    two_sum,
)

__all__ = [
    "FORMS",
    "constant",
    "correct",
    "dd_entropy",
    "side_dd",
    "supports",
]

_BIG_LOG = 2.0**900
_BIG_TERM = 2.0**1000

_EXP_MAX = math.log(math.ldexp(1.0 - 2.0**-53, 1024))
"""The largest float64 ``x`` whose ``exp`` is finite, about 709.78."""

FORMS = {"probs": 0, "log_probs": 1, "logits": 2}
"""The forms' codes in the kernel (``_perplexity_kernels``)."""


def supports(xp: ModuleType) -> bool:
    """Whether ``xp`` has the functions :func:`dd_entropy` needs: ``frexp`` and
    ``ldexp``, or (array-api-strict, which has neither) ``log2`` and ``floor``, from
    which ``_double_double.frexp`` finds the exponent (``2.0 ** k`` exact there:
    NumPy's)."""
    return all(hasattr(xp, name) for name in ("frexp", "ldexp")) or all(
        hasattr(xp, name) for name in ("log2", "floor")
    )


def side_dd(values: Any, form: str, xp: ModuleType) -> tuple[Any, Any, Any, Any, Any, Any]:
    r"""One side's weights :math:`p_i` and logarithms :math:`\log p_i`, each as
    ``hi + lo``, and where :math:`p_i > 0`: probabilities (weights exact,
    :func:`log_p_dd`), log-probabilities :math:`\ell_i` (exact, weights
    :func:`exp_parts`), logits :math:`z_i` (:math:`d_i = z_i - \max z` by TwoSum,
    :math:`S = \sum e^{d_i}` by :func:`exp_parts` and :func:`sum_dd`,
    :math:`\log p_i = d_i - \log S`, :math:`p_i = e^{d_i}/S` with its quotient's
    remainder). Where :math:`p_i = 0` the logarithm is 0 (the caller's ``support``).
    Last, the logarithms' scale: 1, or 2 where :math:`z_i - \max z` passes the float64
    range (``cross_entropy([1, 1e-320], [1.7e308, -1.7e308], q_form='logits')``: the
    logarithm there is halved, :math:`(z_i/2 - m/2) - \log(S)/2`, its weight 0)."""
    zero = xp.zeros_like(values)
    if form == "probs":
        support = values > 0.0
        log_hi, log_lo = log_p_dd(xp.where(support, values, 1.0), xp=xp)
        log_hi, log_lo = xp.where(support, log_hi, 0.0), xp.where(support, log_lo, 0.0)
        return values, zero, log_hi, log_lo, support, None
    support = values > -math.inf
    if form == "log_probs":
        log_hi = xp.where(support, values, 0.0)
        w_hi, w_lo = exp_parts(log_hi, zero, xp=xp)
        return (
            xp.where(support, w_hi, 0.0),
            xp.where(support, w_lo, 0.0),
            log_hi,
            zero,
            support,
            None,
        )
    top = xp.max(values, axis=-1, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    held = xp.where(support, values, top)
    half_hi, half_lo = two_sum(0.5 * held, -0.5 * top)
    far = xp.abs(half_hi) > 2.0**1022  # (a spread past the range, or nearly: halved)
    d_hi, d_lo = two_sum(xp.where(far, top, held), -top)
    d_hi, d_lo = xp.where(far, half_hi, d_hi), xp.where(far, half_lo, d_lo)
    e_hi, e_lo = exp_parts(d_hi, d_lo, xp=xp)
    e_hi, e_lo = xp.where(support & ~far, e_hi, 0.0), xp.where(support & ~far, e_lo, 0.0)
    s_hi, s_lo = sum_dd(e_hi, e_lo, xp=xp)  # at least 1 (the maximum's e^0)
    s_hi = xp.where(s_hi > 0.0, s_hi, 1.0)
    log_s, log_s_lo = log_dd(s_hi, xp=xp)
    scale = 1.0 + xp.astype(far, values.dtype)
    log_hi, log_err = two_sum(d_hi, -log_s / scale)
    log_lo = log_err + (d_lo - (log_s_lo + s_lo / s_hi) / scale)
    w_hi = e_hi / s_hi
    product, product_lo = two_product(w_hi, s_hi)
    w_lo = (((e_hi - product) - product_lo) + (e_lo - w_hi * s_lo)) / s_hi
    log_hi, log_lo = xp.where(support, log_hi, 0.0), xp.where(support, log_lo, 0.0)
    return w_hi, w_lo, log_hi, log_lo, support, scale


def dd_entropy(
    p: Any, q: Any | None, xp: ModuleType, forms: tuple[str, str] = ("probs", "probs")
) -> tuple[Any, Any]:
    r""":math:`H(P)` (``q`` None) or :math:`H(P, Q)` of float64 rows (class axis last,
    broadcast against each other) in the ``forms`` of P and Q, as ``hi + lo``:
    :math:`-\sum_i p_i \log x_i` (:func:`side_dd`), each product by TwoProduct plus its
    low parts' products, summed by :func:`sum_dd`; ``+inf`` (``lo`` 0) where
    :math:`p_i > 0 = x_i`. :math:`0 \log 0 = 0`, and :math:`p_i = 0` adds nothing."""
    if q is not None:
        p, q = xp.broadcast_arrays(p, q)
    w_hi, w_lo, l_hi, l_lo, present, scale = side_dd(p, forms[0], xp)
    if q is None:
        gap = xp.zeros_like(present)
    else:
        _, _, l_hi, l_lo, support, scale = side_dd(q, forms[1], xp)
        gap = present & ~support
    keep = present & ~gap
    # TwoProduct's splitting overflows past 2^996: there the product alone (H past
    # the range unless the weight is tiny, a term under an ulp of it)
    big = xp.abs(l_hi) > _BIG_LOG
    t_hi, t_err = two_product(w_hi, xp.where(big, 0.0, l_hi))
    t_hi = xp.where(big, w_hi * l_hi, t_hi)
    t_lo = xp.where(big, 0.0, t_err + (w_hi * l_lo + w_lo * l_hi))
    if scale is not None:  # (exact: a power of two)
        t_hi, t_lo = t_hi * scale, t_lo * scale
    # a term past 2^1000 (or inf): H = +inf (the terms share their sign: log x <= 0), and
    # sum_dd's power of two would overflow
    gap = gap | (keep & (xp.abs(t_hi) > _BIG_TERM))
    keep = keep & ~gap
    s, s_lo = sum_dd(xp.where(keep, t_hi, 0.0), xp.where(keep, t_lo, 0.0), xp=xp)
    s, s_lo = s[..., 0], s_lo[..., 0]
    infinite = xp.any(gap, axis=-1)
    return xp.where(infinite, math.inf, -s), xp.where(infinite, 0.0, -s_lo)


def correct(
    measured: Any,
    p: Any,
    q: Any | None,
    xp: ModuleType,
    forms: tuple[str, str] = ("probs", "probs"),
) -> Any:
    r""":math:`e^{H}` from ``measured`` (:math:`\hat H` as the measure's path computed
    it, gradient and all) and the double-double :math:`H = h + \ell` of the detached
    rows: :math:`e^{\hat H}(1 + c)`, :math:`c = (h - \hat H) + \ell + r` a constant
    (:math:`r` the rounding of ``exp`` itself, :func:`exp_residual`), so the gradient
    is :math:`e^{H}\,\nabla\hat H` and the value :math:`e^{H}` to :math:`O(c^2)`
    (:math:`c` is a few :math:`2^{-52}`)."""
    hi, lo = dd_entropy(p, q, xp, forms)
    flat = constant(measured, xp)
    over = flat > _EXP_MAX  # (+inf, without an overflow or inf - inf computed)
    base = xp.exp(xp.where(over, 0.0, measured))
    fine = xp.isfinite(hi) & ~over
    r = exp_residual(flat, constant(base, xp), xp=xp)
    c = (xp.where(fine, hi, 0.0) - xp.where(fine, flat, 0.0)) + xp.where(fine, lo, 0.0)
    return xp.where(over, math.inf, base + base * xp.where(fine, c + r, 0.0))


def constant(x: Any, xp: ModuleType) -> Any:
    """``x`` without its gradient (PyTorch's ``detach``, JAX's ``stop_gradient``)."""
    if hasattr(x, "detach"):
        return x.detach()
    if "jax" in getattr(xp, "__name__", ""):
        import jax

        return jax.lax.stop_gradient(x)
    return x
