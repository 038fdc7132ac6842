r"""The distillation gradients' dominant entry, without its cancellation (issue 13).

The gradient of :math:`T^2 D(s\,\|\,t)` in the student's logits is

.. math:: g_c = T\,s_c\,(d_c - D), \qquad d_c = \log s_c - \log t_c,
          \quad D = \textstyle\sum_c s_c d_c .

At the student's top class :math:`r` of a saturated row (:math:`s_r \to 1`), :math:`D`
is :math:`d_r` up to :math:`\sum_{c \ne r} s_c (d_c - d_r)`, so :math:`d_r - D`
cancels: its rounding error is :math:`\varepsilon|D|` against a value of the size of
:math:`(1 - s_r)|d_r - d_c|` (student logits :math:`[0, -34]`, teacher probabilities
:math:`[10^{-70}, 1]`: :math:`D = 161`, :math:`g_r = 3.3\cdot 10^{-13}`, 2% off).
The entries sum to 0 exactly (:math:`\sum_c s_c = 1`), so

.. math:: g_r = -\textstyle\sum_{c \ne r} g_c,

whose error is :math:`\varepsilon \sum_{c \ne r} s_c(|d_c| + |D|)`: at most
:math:`\varepsilon(1 - s_r)` times the terms' size, against :math:`\varepsilon s_r` for
the formula. Where :math:`s_r > 1/2` the entry is formed so (the first top class of
:math:`\log s`); elsewhere the formula stays (a near-uniform row's others may cancel
among themselves: :math:`1 - s_r` is then not small). The other entries are the
formula's, bit for bit.

The forward gradient :math:`T(s - t)` (of :math:`T^2 D(t\,\|\,s)`) cancels at a class
where both are near 1: its error is :math:`\varepsilon(s_r + t_r)` against
:math:`|s_r - t_r|` (student logits :math:`[0, -300, -301]` beside teacher
probabilities :math:`[1 - 2\cdot 10^{-70}, 10^{-70}, 10^{-70}]`: :math:`s_r = t_r = 1`
in float64, the truth :math:`2\cdot 10^{-70}`). Its entries sum to 0 as well, and
:math:`-\sum_{c \ne r} T(s_c - t_c)` errs by :math:`\varepsilon` times
:math:`\sum_{c \ne r}(s_c + t_c) = (1 - s_r) + (1 - t_r)`: where :math:`s_r` and
:math:`t_r` are both above 1/2 (branch distillfwd; ``teacher`` given), never more than
the formula's. Elsewhere (a confident student beside an unsure teacher, the common
case of training) the formula stays, bit for bit.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .._xp import Array, device, numpy_errstate, reduce_sum

__all__ = ["DOMINANT", "dominant_from_others"]

DOMINANT = 0.5
r"""The :math:`s_r` above which the top class's entry is :math:`-\sum_{c \ne r} g_c`."""


def dominant_from_others(
    grad: Array, s: Array, log_s: Array, *, xp: ModuleType, teacher: Array | None = None
) -> Array:
    r"""``grad`` (the reverse gradient, classes last, before the reduction's scale; with
    ``teacher`` :math:`t`, the forward one, :math:`s - t` before :math:`T`) with each
    row's entry at its first top class :math:`r` of ``log_s`` set to
    :math:`-\sum_{c \ne r} g_c` where :math:`s_r` (``s``, :math:`e^{\log s}`), and
    :math:`t_r` where ``teacher`` is given, are above :data:`DOMINANT` (module
    docstring). NumPy: in place, on those rows only (the others summed by
    ``np.add.reduce`` of the row with a 0 at :math:`r`, the lean path's order)."""
    if type(grad) is np.ndarray:
        if not grad.size:
            return grad
        rows = np.asarray(np.maximum.reduce(s, axis=-1) > DOMINANT)  # (s_r: the largest s)
        if teacher is not None:  # (an array: a row of a 1-D call is a 0-d one)
            rows &= np.maximum.reduce(teacher, axis=-1) > DOMINANT
        if not rows.any():  # (the common case: one maximum a row, no fancy indexing)
            return grad
        top = np.argmax(log_s[rows], axis=-1)
        if teacher is not None:  # (t_r at the student's r)
            kept = teacher[rows][np.arange(top.shape[0]), top] > DOMINANT
            rows[rows], top = kept, top[kept]
        at = np.arange(top.shape[0])
        picked = grad[rows]
        picked[at, top] = 0.0
        with np.errstate(invalid="ignore", over="ignore"):  # (rows formed again after)
            picked[at, top] = -np.add.reduce(picked, axis=-1)
        grad[rows] = picked
        return grad
    top = xp.argmax(log_s, axis=-1, keepdims=True)
    at_top = xp.arange(grad.shape[-1], device=device(grad)) == top
    with numpy_errstate(grad, xp, invalid="ignore", over="ignore"):  # (array-api-strict)
        others = xp.where(at_top, xp.zeros_like(grad), grad)
        rest = reduce_sum(others, xp=xp, out_dtype=grad.dtype)[..., None]
    dominant = xp.max(s, axis=-1, keepdims=True) > DOMINANT
    if teacher is not None:
        at_r = xp.where(at_top, teacher, xp.zeros_like(teacher))
        dominant = xp.logical_and(dominant, xp.max(at_r, axis=-1, keepdims=True) > DOMINANT)
    return xp.where(xp.logical_and(at_top, dominant), -rest, grad)
