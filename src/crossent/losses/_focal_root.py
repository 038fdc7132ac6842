r"""The float64 sigmoid focal gradient where its two terms cancel (issue 13, branch focal2).

:func:`_sigmoid._focal_gradient` forms, per entry,

.. math:: g = m\,[\,f + (\sigma(x) - t)\,], \qquad
          f = \gamma\,(1-2t)\,\frac{\sigma(x)\sigma(-x)}{1-p_t}\,\ell_{\mathrm{BCE}},
          \quad m = (1-p_t)^\gamma,

each term within a few float64 ulps. Where :math:`t` lies between :math:`\sigma(x)` and
the focal optimum the terms have opposite signs, and at the optimum (a root of a
transcendental equation) they cancel: there the sum kept the terms' rounding errors,
about 1-4 ulps of :math:`\sigma(x) - t` (lossulp1's mpmath measurement), so the value
near the root had wrong digits and, nearer, the wrong sign (``gamma = 2, t = 0.80292,
x = 3.042166529584443``: ``1.40e-18`` for ``-1.81e-18``).

No reformulation avoids the cancellation, so the entries where it happens,
:math:`|f + (\sigma - t)| <` :data:`CANCELLED` :math:`|\sigma - t|` in float64, are
formed again with more precision (:func:`refine`):

* in NumPy's ``longdouble`` where it is the x87 extended format (64-bit significand,
  its ``exp``/``log1p`` the C library's): within 4 units of :math:`2^{-52}` of
  :math:`g` where the sum is at least :data:`DEEP` of :math:`|\sigma - t|` (measured
  against :mod:`decimal`; most within 2);
* nearer the root, the bracket :math:`f + (\sigma - t)` per entry in Python's
  :mod:`decimal` at :data:`DIGITS` significant digits (its ``exp`` and ``ln``
  correctly rounded), times the ``longdouble`` :math:`m`, rounded once to float64:
  within an ulp whatever the cancellation down to about :math:`2^{-75}`, beyond that of
  the float64 logits nearest a root (about 64 us an entry on a loaded 2-core Xeon).
  Where ``longdouble`` is float64 (Windows, Apple silicon) :mod:`decimal` forms all of
  :math:`g` on every refined entry (slower, the same digits).

The entries outside the mask keep the float64 formula's error (within a few ulps as
elsewhere: up to about 25 units of :math:`2^{-52}` measured just above
:data:`CANCELLED`, about 17 where nothing cancels; medians 1-2). The cost falls on
inputs that sit at the optimum (every entry refined: about 190 us an entry, measured in
``benchmarks/RESULTS.md``).

The targets are those of the loss (``_Binary.t``: smoothed and rounded, as the
cross-entropy and :math:`\ell_{\mathrm{BCE}}` take them). The factor :math:`\alpha_t`,
the weights and the reduction's scale multiply the refined value as they multiply the
others. The small path (``_small_sigmoid._run``) marks such entries
(``_small_sigmoid_numba._gradient_entry``) and weighs and scales this module's values
for them as the full path does: both paths give the same bits.

References
----------
T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (the gradient).
"""

from __future__ import annotations

import decimal

import numpy as np

__all__ = ["CANCELLED", "DEEP", "DIGITS", "refine", "refined"]

CANCELLED = 0.25
"""An entry is refined where ``|f + (sigma - t)| < CANCELLED * |sigma - t|`` (float64):
outside, the float64 sum is within a few ulps (its terms' errors at most 4 times)."""

DEEP = 2.0**-9
"""Entries whose ``longdouble`` sum is below ``DEEP`` of ``|sigma - t|`` go to
:mod:`decimal` (the ``longdouble`` terms' errors, about :math:`2^{-61}` of them, would be
more than a few ulps of the sum there)."""

DIGITS = 40
"""Significant digits of the :mod:`decimal` evaluation (about 133 bits)."""

_EXTENDED = np.finfo(np.longdouble).nmant >= 63


def _longdouble(x: np.ndarray, t: np.ndarray, gamma: float) -> tuple[np.ndarray, ...]:
    r"""``(g, deep, m)``: :math:`g` in ``longdouble`` rounded to float64, where its sum is
    below :data:`DEEP` of :math:`|\sigma - t|` (those need :func:`_bracket`), and
    :math:`m = (1-p_t)^\gamma` in ``longdouble``."""
    wx = x.astype(np.longdouble)
    wt = t.astype(np.longdouble)
    one = np.longdouble(1)
    small = np.exp(-np.abs(wx))  # e^{-|x|}
    rest = np.log1p(small)
    sp_pos = np.maximum(wx, 0) + rest  # -log sigma(-x)
    sp_neg = np.maximum(-wx, 0) + rest  # -log sigma(x)
    big = one / (one + small)
    tail = small / (one + small)
    above = wx >= 0
    sigma = np.where(above, big, tail)
    sigma_neg = np.where(above, tail, big)
    q = wt * sigma_neg + (one - wt) * sigma  # 1 - p_t
    bce = wt * sp_neg + (one - wt) * sp_pos
    focus = np.longdouble(gamma) * (one - 2 * wt) * (sigma * sigma_neg / q) * bce
    plain = sigma - wt
    total = focus + plain
    modulation = np.exp(np.longdouble(gamma) * np.log(q))
    deep = np.abs(total) < DEEP * np.abs(plain)
    return (modulation * total).astype(np.float64), deep, modulation


def _bracket(x: float, t: float, gamma: float, *, modulated: bool) -> decimal.Decimal:
    r""":math:`f + (\sigma - t)` at one entry in :mod:`decimal` (:data:`DIGITS` digits),
    times :math:`m` if ``modulated``."""
    with decimal.localcontext() as context:
        context.prec = DIGITS
        context.Emin, context.Emax = -(10**9), 10**9
        wx, wt, g = decimal.Decimal(x), decimal.Decimal(t), decimal.Decimal(gamma)
        one, zero = decimal.Decimal(1), decimal.Decimal(0)
        small = (-abs(wx)).exp()
        rest = (one + small).ln()
        sp_pos = max(wx, zero) + rest
        sp_neg = max(-wx, zero) + rest
        big, tail = one / (one + small), small / (one + small)
        sigma, sigma_neg = (big, tail) if wx >= 0 else (tail, big)
        q = wt * sigma_neg + (one - wt) * sigma
        bce = wt * sp_neg + (one - wt) * sp_pos
        total = g * (one - 2 * wt) * (sigma * sigma_neg / q) * bce + (sigma - wt)
        return (g * q.ln()).exp() * total if modulated else +total


def refined(x: np.ndarray, t: np.ndarray, gamma: float) -> np.ndarray:
    r""":math:`g` at the entries of the 1-d float64 ``x`` and ``t`` (see the module
    notes): ``longdouble`` where it is extended, nearer the root the bracket in
    :mod:`decimal` times the ``longdouble`` :math:`m` (one product, then rounded)."""
    out = np.empty(x.shape, dtype=np.float64)
    gamma = float(gamma)
    if not _EXTENDED:
        for i, (xi, ti) in enumerate(zip(x.tolist(), t.tolist(), strict=True)):
            out[i] = float(_bracket(xi, ti, gamma, modulated=True))
        return out
    out[:], deep, modulation = _longdouble(x, t, gamma)
    for i in np.flatnonzero(deep).tolist():
        total = np.longdouble(str(_bracket(float(x[i]), float(t[i]), gamma, modulated=False)))
        out[i] = np.float64(modulation[i] * total)
    return out


def refine(
    grad: np.ndarray,
    total: np.ndarray,
    plain: np.ndarray,
    x: np.ndarray,
    t: np.ndarray,
    gamma: float,
) -> np.ndarray:
    r"""``grad`` (:math:`g` in float64, NumPy, the shape of ``x``) with the entries where
    ``total``, :math:`f + (\sigma - t)` in float64, cancels (:data:`CANCELLED`) formed
    again (:func:`refined`); ``grad`` itself where none does (the common case)."""
    bound = np.abs(plain)
    bound *= CANCELLED
    close = np.abs(total) < bound
    if not close.any():
        return grad
    out = np.array(grad, dtype=np.float64)  # (a copy: ``grad`` may be 0-d or shared)
    flat, where = out.reshape(-1), np.flatnonzero(close)
    xs = np.broadcast_to(x, out.shape).reshape(-1)[where]
    ts = np.broadcast_to(t, out.shape).reshape(-1)[where]
    flat[where] = refined(xs, ts, gamma)
    return out if out.ndim else out[()]
