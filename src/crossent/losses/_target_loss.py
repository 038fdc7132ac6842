r"""The fused per-row loss of probability targets of float32 logits (issue 13).

:func:`row_losses` is the loss's counterpart of ``_cpu_kernels.write_target_gradient``:
after ``_cpu_kernels.row_statistics`` (:math:`m` and :math:`\ell` per row, float64), one
pass over the float32 logits and targets gives each row's
:math:`L_i = A_i\ell_i - B_i + \lambda\,\omega_i\,(m_i + \ell_i)^2` and :math:`\omega_i`
in float64 (the kernel and its accuracy: :mod:`._target_loss_numba`), with no N x V
temporary: the generic path's float32 ``softmax_rows`` and ``target_terms`` formed the
shifted logits, their exponentials and the weighted targets (about 2.2 times the
logits at 4096 x 32000).

Importing this module does not import Numba: the first call imports
:mod:`._target_loss_numba` (whose kernels compile on their first call, or load from
Numba's on-disk cache). Callers check ``_cpu_kernels.available()`` first.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np

from . import _cpu_kernels

__all__ = ["row_losses"]

_EMPTY = np.zeros(0)


@functools.cache
def _compiled() -> ModuleType:
    """:mod:`._target_loss_numba` (imports Numba, once)."""
    from . import _target_loss_numba

    return _target_loss_numba


def row_losses(
    z: np.ndarray,
    targets: np.ndarray,
    *,
    m: np.ndarray,
    ell: np.ndarray,
    inv_temperature: float,
    keep: float,
    spread: float,
    weight: np.ndarray | None,
    z_loss: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per row of float32 ``z`` and ``targets`` (N x V, C-contiguous): the loss
    :math:`A\ell - B + \lambda\omega\,\mathrm{LSE}^2` and the example weight
    :math:`\omega` (1 without class weights), both float64 of shape (N,).

    ``m`` and ``ell``: the row statistics of :math:`z/T` (float64, shape (N,));
    ``keep`` and ``spread``: ``_terms.smoothing_coefficients``; ``weight``: the class
    weights as C-contiguous float64, or None; ``z_loss``: :math:`\lambda`. Up to
    :data:`._cpu_kernels.SERIAL_ELEMENTS` logits run on the calling thread.
    """
    n = z.shape[0]
    loss, omega = np.empty((2, n))  # one allocation
    compiled = _compiled()
    kernel = (
        compiled.target_loss_kernel_serial
        if z.size <= _cpu_kernels.SERIAL_ELEMENTS
        else compiled.target_loss_kernel
    )
    kernel(
        z,
        targets,
        m,
        ell,
        inv_temperature,
        keep,
        spread,
        _EMPTY if weight is None else weight,
        z_loss,
        loss,
        omega,
    )
    return loss, omega
