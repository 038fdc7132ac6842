r"""The one place where ``crossent.torch`` reaches into ``crossent.losses``.

Every autograd path of :mod:`crossent.torch` computes the softmax cross-entropy of
integer labels through the functions of this module, on one block of rows at a time
(class axis last):

* :func:`label_rows` returns the per-row loss :math:`L_i` (ignored rows 0) and the
  per-row :math:`\operatorname{LSE}(z'_i)`, from the losses package's prepared problem,
  so the formula (:math:`A\ell - B + \lambda\omega\,\operatorname{LSE}^2`) is the one of
  :func:`crossent.softmax_cross_entropy`;
* :func:`label_gradient` writes :math:`u_i\,\partial L_i / \partial z_i` for a per-row
  upstream gradient :math:`u`, given the log-sum-exp saved by the forward.

Both take NumPy arrays (the fused Numba kernels run when they apply: C-contiguous
float32, no soft-capping) or any Array-API array such as a torch tensor (the generic
path). Isolating them here keeps a change in the losses package's private API a
one-file change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses import _cpu_kernels
from ..losses._softmax import _label_problem, _Options, _options, softmax_cross_entropy_grad

__all__ = ["Options", "fused_available", "label_gradient", "label_rows", "options"]

Options = _Options


def options(
    *, label_smoothing: float, z_loss: float, temperature: float, soft_cap: float | None
) -> Options:
    """Validated options (an :class:`InputError` names a bad one), with per-row reduction."""
    return _options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        base=None,
        reduction="none",
    )


def fused_available() -> bool:
    """Whether the fused CPU kernels (Numba) are installed."""
    return _cpu_kernels.available()


def fused_applies(opts: Options) -> bool:
    """Whether the fused kernels can compute this problem (given float32 NumPy logits)."""
    return opts.soft_cap is None and fused_available()


def label_rows(
    z: Any, labels: Any, weight: Any, opts: Options, *, ignore_index: int | None, validate: bool
) -> tuple[Any, Any]:
    """Per-row losses (0 on ignored rows) and log-sum-exps of the block ``z`` (rows x classes).

    NumPy float32 ``z`` gives float32 losses and float64 log-sum-exps (the kernels'
    accumulators); other arrays give both in their compute dtype.
    """
    problem, _, _ = _label_problem(
        z,
        labels,
        opts,
        axis=-1,
        weight=weight,
        ignore_index=ignore_index,
        validate=validate,
        allow_fast=True,
    )
    rows = problem.reduced_loss()
    lse = problem.rows.lse
    return rows, np.reshape(lse, (-1,)) if isinstance(lse, np.ndarray) else lse.reshape(-1)


def label_gradient(
    z: Any,
    labels: Any,
    weight: Any,
    lse: Any,
    upstream: Any,
    opts: Options,
    *,
    ignore_index: int | None,
    out: Any,
) -> None:
    """Write ``upstream[i] * d L_i / d z[i]`` into ``out`` (rows x classes).

    For NumPy float32 ``z`` (``out`` float32, C-contiguous) one pass of the fused
    kernel, from the saved ``lse``; otherwise the generic gradient times ``upstream``.
    """
    if isinstance(z, np.ndarray) and fused_applies(opts):
        _fused_gradient(z, labels, weight, lse, upstream, opts, ignore_index=ignore_index, out=out)
        return
    grad = softmax_cross_entropy_grad(
        z,
        labels,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=opts.label_smoothing,
        reduction="none",
        temperature=opts.temperature,
        z_loss=opts.z_loss,
        soft_cap=opts.soft_cap,
        validate=False,
    )
    out[...] = grad * upstream[:, None]


def _fused_gradient(
    z: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    lse: np.ndarray,
    upstream: np.ndarray,
    opts: Options,
    *,
    ignore_index: int | None,
    out: np.ndarray,
) -> None:
    """Row i is ``c_i p_i - r_i u - g_i e_{y_i}`` (see ``_softmax._fast_gradient``).

    ``c_i = (A_i + 2 lambda omega_i LSE_i) s_i``, ``g_i = (1 - eps) omega_i s_i``,
    ``u = eps w / C``, ``r_i = s_i``, with ``s_i = upstream_i / T`` (0 on ignored rows).
    """
    classes = z.shape[1]
    eps = opts.label_smoothing
    active = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    safe = np.where(active, labels, 0)
    w_y = np.ones(labels.shape) if weight is None else weight.astype(np.float64)[safe]
    total_w = float(classes) if weight is None else float(weight.astype(np.float64).sum())
    omega = w_y * active
    a = (1 - eps) * w_y + (eps / classes) * total_w if eps else w_y
    scale = upstream.astype(np.float64) * active / opts.temperature
    coef = a + 2 * opts.z_loss * omega * lse if opts.z_loss else a
    uniform = None
    if eps:
        uniform = (eps / classes) * (np.ones(classes) if weight is None else weight)
    _cpu_kernels.write_gradient(
        z,
        safe,
        shift=lse,
        inv_temperature=1.0 / opts.temperature,
        p_coef=coef * scale,
        target_coef=(1 - eps) * omega * scale,
        uniform=uniform,
        row_uniform=scale if eps else None,
        out=out,
    )
