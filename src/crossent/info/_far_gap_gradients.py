r"""The gradient of a measure's far-gap rows, in float64 on the host (issue 13).

A row of :math:`H(P, Q)` or :math:`D(P\,\|\,Q)` with ``q`` given as logits :math:`x`
whose gap :math:`x_c - m` passes the float64 range is formed again on host copies
(``_measures._far_gap_rows``) and put back by ``where``; under PyTorch's autograd it
carries the gradient formed here (``.._far_row_gradients.gradient_term``), not the 0
that ``where`` gives it (``cross_entropy([0.6, 0.4], [1.7e308, -1.7e308],
q_form='logits')``: 0 in the logits, against :math:`[0.4, -0.4]`).

With :math:`a_c = -\log q_c = (m - x_c) + \ell`, :math:`\ell = \log\sum_c e^{x_c - m}`,
:math:`A = \sum_c p_c` and :math:`V` the row's value (:math:`H` or :math:`D`, nats):

.. math:: \frac{\partial V}{\partial x_j} = A\,q_j - p_j
          = q_j\sum_{c \ne j} p_c - p_j\sum_{c \ne j} q_c

in the logits, for both measures, in the second form (:func:`_others`: no digits cancel
where :math:`q_j` or :math:`p_j` is near 1, where :math:`A q_j - p_j` gave 0 for
:math:`2.5\cdot 10^{-308}`); in P's side as given,

=============  ===============================  =====================================
``p_form``     :math:`\partial H`                :math:`\partial D`
=============  ===============================  =====================================
``probs``      :math:`a_j`                       :math:`\log p_j + 1 + a_j`
``log_probs``  :math:`p_j a_j`                   :math:`p_j(\log p_j + 1 + a_j)`
``logits``     :math:`p_j(a_j - H)`              :math:`p_j(\log p_j + a_j - D)`
=============  ===============================  =====================================

(0 where :math:`p_j = 0` and the entry is not finite, as the common path gives it). Each
product :math:`p_j y_j` is formed as :math:`2^2\,(p_j\,y_j 2^{-2})` with
:math:`a_j 2^{-2} = (m 2^{-2} - x_j 2^{-2}) + \ell 2^{-2}`, finite where :math:`a_j`
passes the range (the gaps' :math:`|m - x_j|` is at most twice the largest float), and by
:func:`.._numerics.exp_times` of :math:`\log p_j` where :math:`e^{\log p_j}` is
subnormal or underflows (as :func:`.._numerics.far_gap_cross_entropy64` forms the value):
``inf`` only where the gradient truly overflows (:math:`a_j` itself in ``probs`` form,
:math:`3.4\cdot 10^{308}` for the row above: ``inf``).
"""

from __future__ import annotations

import numpy as np

from .._numerics import _subnormal_exp, exp_times

__all__ = ["far_gap_gradients64"]

_BITS = 2
"""The scaling :math:`2^{-2}` of :math:`a_j` (module docstring)."""


def far_gap_gradients64(
    p: np.ndarray,
    x: np.ndarray,
    log_p: np.ndarray | None,
    *,
    p_form: str,
    kl: bool,
    value: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(g_p, g_x)``: the gradients of the rows' :math:`H(P, Q)` (or :math:`D(P\,\|\,Q)`
    for ``kl``) in nats in P's side as given (``p_form``) and in Q's logits ``x``
    (module docstring), float64 rows with classes last: ``p`` the probabilities,
    ``log_p`` their logarithms (None for ``probs``), ``value`` the rows' values (nats)."""
    m = np.max(x, axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gaps = x - m  # (-inf past the range: e^gap = 0 as it truly is)
        terms = np.exp(gaps)
        np.put_along_axis(terms, np.argmax(x, axis=-1)[..., None], 0.0, axis=-1)
        ell = np.log1p(np.add.reduce(terms, axis=-1, keepdims=True))
        q = np.exp(gaps - ell)
        g_x = q * _others(p, np.add.reduce(p, axis=-1, keepdims=True), np.argmax(p, axis=-1))
        rest_q = np.add.reduce(terms, axis=-1, keepdims=True) * np.exp(-ell)
        g_x = g_x - p * _others(q, 1.0, np.argmax(x, axis=-1), rest_q)
        a4 = (np.ldexp(m, -_BITS) - np.ldexp(x, -_BITS)) + np.ldexp(ell, -_BITS)
        v = value[..., None]
        if p_form == "probs":
            g_p = np.ldexp(a4, _BITS)
            if kl:
                g_p = g_p + (np.log(p) + 1.0)
            return np.where((p == 0) & ~np.isfinite(g_p), 0.0, g_p), g_x
        assert log_p is not None
        if p_form == "log_probs":
            y4 = a4 + np.ldexp(log_p + 1.0, -_BITS) if kl else a4
        else:
            y4 = (a4 + np.ldexp(log_p, -_BITS) if kl else a4) - np.ldexp(v, -_BITS)
        return np.ldexp(_times(p, log_p, y4), _BITS), g_x


def _others(
    y: np.ndarray, total: np.ndarray | float, top: np.ndarray, rest: np.ndarray | None = None
) -> np.ndarray:
    r""":math:`\sum_{c \ne j} y_c` for each :math:`j` of nonnegative rows ``y`` of sum
    ``total``: ``total - y_j`` but at each row's largest entry ``top`` (where
    :math:`y_j \le \text{total}/2`, so no digits cancel), which is the sum of the others
    (``rest``, or formed here) instead."""
    top = top[..., None]
    if rest is None:
        masked = y.copy()
        np.put_along_axis(masked, top, 0.0, axis=-1)
        rest = np.add.reduce(masked, axis=-1, keepdims=True)
    out = total - y
    np.put_along_axis(out, top, rest, axis=-1)
    return out


def _times(p: np.ndarray, log_p: np.ndarray, y: np.ndarray) -> np.ndarray:
    r""":math:`p\,y` (0 where :math:`p = 0` and :math:`\log p = -\infty`), by
    :func:`.._numerics.exp_times` of :math:`\log p` where :math:`e^{\log p}` is subnormal
    or underflows (a finite :math:`\log p` weighs its :math:`y` although :math:`p` is 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.where(p != 0, p * y, 0.0)
        small = _subnormal_exp(log_p, xp=np)
        if np.any(small):
            y_small = y[small]
            scaled = np.sign(y_small) * exp_times(log_p[small], np.abs(y_small), xp=np)
            out[small] = np.where(np.isnan(scaled), out[small], scaled)
    return out
