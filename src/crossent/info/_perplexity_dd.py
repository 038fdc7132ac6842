r"""Perplexity of probabilities from the entropy in double-double (issue 13).

:math:`\mathrm{PP} = e^{H}` turns an absolute error :math:`\delta` of :math:`H` into the
relative error :math:`\delta` of the result: :math:`H` rounded to a float is already
half an ulp of :math:`H` off, up to :math:`2^{-50}` absolute for :math:`H \ge 8`
(32000 classes: :math:`H = 10.37`), and each term's ``log`` and product add their own
roundings, the same in every term of a uniform row; ``exp`` of the float64 cross-entropy
was 7.5 ulps from the truth there. Here, for NumPy float64 probabilities (and
PyTorch's, JAX's), :math:`H = h + \ell` as a double-double:

* :math:`\log x = e \ln 2 + \log1p(m - 1)` with :math:`x = m 2^e`,
  :math:`m \in [\sqrt{1/2}, \sqrt{2})` (``frexp``): :math:`m - 1` is exact (Sterbenz),
  :math:`e \ln 2_{hi}` is exact (:data:`LN2_HI` has 42 significant bits), and the
  rounding left is that of ``log1p`` of :math:`|{\log m}| \le 0.347`: about
  :math:`2^{-55}` absolute, against :math:`2^{-50}` of a rounded :math:`\log x` near
  :math:`-10`;
* the products :math:`p_i \log x_i` exactly (Dekker's TwoProduct, or an FMA in the
  kernel) plus :math:`p_i` times the logarithm's low part;
* the high parts summed exactly (Rump, Ogita and Oishi's extraction [1]_: each term
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
from fractions import Fraction
from types import ModuleType
from typing import Any

from .._numerics import _two_product, _two_sum

__all__ = ["LN2_HI", "LN2_LO", "constant", "correct", "dd_entropy", "exp_dd", "supports"]

LN2_HI = math.ldexp(math.floor(math.ldexp(math.log(2.0), 42)), -42)
r""":math:`\ln 2` to 42 significant bits: :math:`e \cdot` ``LN2_HI`` is exact for every
exponent :math:`|e| \le 1075` of a float64."""

LN2_LO = float(
    Fraction("0.693147180559945309417232121458176568075500134360255254120680009") - Fraction(LN2_HI)
)
r""":math:`\ln 2 -` :data:`LN2_HI`, rounded."""

_SQRT_HALF = math.sqrt(0.5)


def supports(xp: ModuleType) -> bool:
    """Whether ``xp`` has the functions :func:`dd_entropy` needs (``frexp``,
    ``ldexp``, ``log1p``; array-api-strict has no ``frexp``)."""
    return all(hasattr(xp, name) for name in ("frexp", "ldexp", "log1p"))


def _log_dd(x: Any, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`\log x` for :math:`x > 0` as ``hi + lo`` (the module's first point)."""
    m, e = xp.frexp(x)
    low = m < _SQRT_HALF
    m = xp.where(low, 2.0 * m, m)
    k = xp.astype(e, x.dtype) - xp.astype(low, x.dtype)
    return _two_sum(k * LN2_HI, k * LN2_LO + xp.log1p(m - 1.0))


def dd_entropy(p: Any, q: Any | None, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`H(P)` (``q`` None) or :math:`H(P, Q)` of float64 probability rows (class
    axis last, broadcast against each other) as ``hi + lo``; ``+inf`` (``lo`` 0) where
    :math:`p_i > 0 = q_i`. :math:`0 \log 0 = 0`, and :math:`p_i = 0` adds nothing."""
    x = p if q is None else q
    if q is not None:
        p, x = xp.broadcast_arrays(p, x)
    zero = p == 0.0
    gap = (x == 0.0) & ~zero
    log_hi, log_lo = _log_dd(xp.where(x > 0.0, x, 1.0), xp)
    t_hi, t_lo = _two_product(p, log_hi)
    t_lo = t_lo + p * log_lo
    t_hi = xp.where(zero | gap, 0.0, t_hi)
    t_lo = xp.where(zero | gap, 0.0, t_lo)
    n = t_hi.shape[-1]
    biggest = xp.max(xp.abs(t_hi), axis=-1, keepdims=True)
    e = xp.frexp(biggest)[1]
    sigma = xp.ldexp(xp.ones_like(biggest), e + max(1, math.ceil(math.log2(n + 2))))
    high = (sigma + t_hi) - sigma  # exact parts, their sum exact in any order
    hi = xp.sum(high, axis=-1)
    lo = xp.sum(t_hi - high, axis=-1) + xp.sum(t_lo, axis=-1)
    s = hi + lo
    s_lo = lo - (s - hi)
    infinite = xp.any(gap, axis=-1)
    return xp.where(infinite, math.inf, -s), xp.where(infinite, 0.0, -s_lo)


def exp_dd(hi: Any, lo: Any, xp: ModuleType) -> Any:
    r""":math:`e^{hi + lo} \approx e^{hi} + e^{hi} lo` (``+inf`` past the range, without
    a NaN from ``inf * 0``)."""
    e = xp.exp(hi)
    return xp.where(xp.isinf(e), e, e + e * lo)


def correct(measured: Any, p: Any, q: Any | None, xp: ModuleType) -> Any:
    r""":math:`e^{H}` from ``measured`` (:math:`\hat H` as the measure's path computed
    it, gradient and all) and the double-double :math:`H = h + \ell` of the detached
    rows: :math:`e^{\hat H}(1 + c)`, :math:`c = (h - \hat H) + \ell` a constant, so
    the gradient is :math:`e^{H}\,\nabla\hat H` and the value :math:`e^{H}` to
    :math:`O(c^2)` (:math:`c` is a few :math:`2^{-52}`)."""
    hi, lo = dd_entropy(p, q, xp)
    base = xp.exp(measured)
    flat = constant(measured, xp)
    c = xp.where(xp.isfinite(flat) & xp.isfinite(hi), (hi - flat) + lo, 0.0)
    return xp.where(xp.isinf(base), base, base + base * c)


def constant(x: Any, xp: ModuleType) -> Any:
    """``x`` without its gradient (PyTorch's ``detach``, JAX's ``stop_gradient``)."""
    if hasattr(x, "detach"):
        return x.detach()
    if "jax" in getattr(xp, "__name__", ""):
        import jax

        return jax.lax.stop_gradient(x)
    return x
