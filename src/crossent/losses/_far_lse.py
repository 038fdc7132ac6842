r"""The label gradient's rows of a huge log-sum-exp, formed again from the row maximum.

The fused kernels (``_cpu_kernels``, ``_numpy_kernels``, ``_small_numba``) form
:math:`p_c = e^{z'_c - s}` with one shift :math:`s = \mathrm{fl}(m + \ell)`, the float64
log-sum-exp, which rounds to an ulp of the row maximum :math:`m`. Once :math:`|m|` is
large against :math:`\ell \le \log V` the rounding is large against a float32 ulp of
:math:`p`, and from :math:`|m| \approx 2^{53}` it drops :math:`\ell` altogether: float32
logits tied at :math:`10^{30}` each had :math:`p = 1` (the gradient of ``[1e30, 1e30,
0]``, label 0, was ``[0, 1, 0]``, not ``[-0.5, 0.5, 0]``; issue 13). The rows with
:math:`|\mathrm{LSE}| \ge` :data:`FAR_LSE` are formed again here in float64 by the
max-shift formula

.. math:: p_c = e^{(z'_c - m) - \ell}, \qquad \ell = \log\sum_k e^{z'_k - m},

with no rounding of :math:`m + \ell`, each entry rounded once to the gradient's dtype
(bfloat16 through float32, as the kernels), for every format the kernels take
(``crossent.torch``'s fused backward included). Other rows are untouched (bit for
bit): the screen is one comparison of the N float64 log-sum-exps.
"""

from __future__ import annotations

import numpy as np

from ._kernel_inputs import HALF_LOG as _HALF_LOG
from ._kernel_inputs import GradientTerms
from ._numpy_kernels import as_float32, encode_like

__all__ = ["FAR_LSE", "far_lse_rows_"]

#: :math:`|\mathrm{LSE}|` from which a row is formed again: the float64 rounding of
#: :math:`m + \ell` is :math:`|\mathrm{LSE}|\,2^{-53}` at most, under :math:`2^{-33}`
#: below :math:`2^{20}` (far below a float32 ulp of :math:`p`).
FAR_LSE = 2.0**20


def far_lse_rows_(
    grad: np.ndarray,
    z: np.ndarray,
    labels: np.ndarray,
    terms: GradientTerms,
    *,
    unfinished_only: bool = False,
) -> None:
    r"""``grad`` (rows x classes, in the kernel's format: float32, float16 or the uint16
    bits of bfloat16, as ``z``; the kernel's :math:`g_{ic} = a_i p_{ic} - b_i u_c -
    [c = y_i]\,t_i` of ``terms`` for logits ``z`` and ``labels``) with its rows of
    :math:`|s_i| \ge` :data:`FAR_LSE` (``terms.shift``, finite) formed again in float64,
    in place.

    :math:`z' = z/T` in float64 (``terms.temperature`` when given, else times
    ``terms.inv_temperature``); :math:`p` by the max-shift formula (module docstring);
    the label's entry :math:`a\operatorname{expm1}(\log p_y) + (a - t) - b u_y` where
    :math:`\log p_y > \log\tfrac12` (``terms.label_offset`` for :math:`a - t` when
    given), else :math:`a p_y - t - b u_y`, as the kernels' contract. A label that is
    not a class (``validate=False``) leaves its row's other entries formed.

    ``unfinished_only``: only the far rows the kernel left with an ``inf`` or NaN entry
    (label smoothing's kernel, exact to float64 wherever its :math:`z/T` is finite; a
    float32 :math:`z/T` past the range, ``[1, 2, 3]`` at :math:`T = 10^{-30}`, gave
    ``inf`` where the truth is :math:`\pm 3.3\cdot 10^{28}`).
    """
    shift = terms.shift
    far = np.abs(shift) >= FAR_LSE
    far &= np.isfinite(shift)
    if unfinished_only and far.any():
        rows = np.flatnonzero(far)
        far[rows] = ~np.isfinite(as_float32(grad[rows])).all(axis=-1)
    at = np.flatnonzero(far)
    if at.size == 0:
        return
    x = as_float32(z[at]).astype(np.float64)  # (uint16: bfloat16 bits, decoded)
    if terms.temperature is not None and terms.temperature != 1.0:
        x /= terms.temperature  # (one rounding of z/T)
    elif terms.inv_temperature != 1.0:
        x *= terms.inv_temperature
    x -= np.max(x, axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        x -= np.log(np.add.reduce(np.exp(x), axis=-1, keepdims=True))  # log p
        a = terms.p_coef[at]
        g = a[:, None] * np.exp(x)
    if terms.uniform is not None:
        assert terms.row_uniform is not None
        g -= terms.row_uniform[at, None] * terms.uniform
    classes = z.shape[-1]
    y = np.asarray(labels, dtype=np.intp)[at]
    valid = (y >= 0) & (y < classes)
    rows, y, a = np.flatnonzero(valid), y[valid], a[valid]
    t = terms.target_coef[at][valid]
    log_p = x[rows, y]
    offset = a - t if terms.label_offset is None else terms.label_offset[at][valid]
    entry = np.where(log_p > _HALF_LOG, a * np.expm1(log_p) + offset, a * np.exp(log_p) - t)
    if terms.uniform is not None:
        assert terms.row_uniform is not None
        entry -= terms.row_uniform[at][valid] * terms.uniform[y]
    g[rows, y] = entry
    # a gradient past float32's range is its inf, rounded (no defect of the input to warn
    # of: a hostile pass, float32 [3e38, -3e38] at T = 2**-70 with a z-loss, -W error)
    with np.errstate(over="ignore"):
        if grad.dtype == np.uint16:  # bfloat16 bits: rounded through float32, as the kernels'
            grad[at] = encode_like(g.astype(np.float32), grad.dtype)
        else:
            grad[at] = g.astype(grad.dtype)
