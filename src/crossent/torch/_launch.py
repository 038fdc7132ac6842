"""Launchers: run the backend's per-block functions over a ``(rows, classes)`` tensor.

* CPU, float32, C-contiguous: the tensor *is* a NumPy array (``tensor.numpy()`` shares
  its memory), so the fused kernels read it and write the gradient in place, no copy.
* CPU, bfloat16/float16: the same, the kernels reading the 16-bit values as they are
  (NumPy has no bfloat16: a bf16 tensor goes as its uint16 bits) and decoding each to
  float32 in registers (exact: every bf16/fp16 value is a float32); the gradient is
  computed in float64, rounded to float32 and then once to the tensor's dtype, into
  a new array that becomes the gradient tensor without a copy.
* Anything else (float64, soft-capping, other devices, no Numba): the generic
  array-API path of the losses package on torch tensors, in blocks of rows; with
  soft-capping on the CPU in float64 (:func:`work_dtype`, which also sets the dtype of
  probability targets, of the linear and of the vocab-parallel losses), the results
  rounded once to float32 (the loss) and to ``z``'s dtype (the gradient), as the fused
  kernels' are (issue 13: in float32 the gradient's small entries were up to 90 ulps off).

The per-row log-sum-exp is kept in float64 (N numbers): the gradient's
``exp(z'_c - LSE)`` then carries no rounding of the LSE. So is the per-row
``log p_y = (z'_y - m) - ell`` of the row statistics (N more): the label's entry
``c expm1(log p_y) + (c - g)`` then keeps the digits of ``1 - p_y`` that the rounding
of ``LSE = m + ell`` to an ulp of ``m`` loses (issue 13).
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import row_offset
from . import _backend

__all__ = ["backward", "forward", "uses_fused_kernels", "work_dtype"]

#: float32 bytes of one block of rows of the generic path.
_BLOCK_BYTES = 16 * 2**20


def uses_fused_kernels(z: torch.Tensor, opts: _backend.Options) -> bool:
    """Whether ``z`` (rows x classes) goes to the fused NumPy kernels."""
    return (
        z.device.type == "cpu"
        and z.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and _backend.fused_applies(opts)
    )


def work_dtype(
    z: torch.Tensor, soft_cap: float | None, *, soft_targets: bool = False
) -> torch.dtype:
    r"""The dtype the generic paths compute in: float64 for float64 ``z``; on the CPU
    float64 too with soft-capping (the cap's ``tanh`` and the softmax of capped logits
    in float32 left the gradient's small entries up to 90 ulps off, issue 13) and for
    probability targets (``soft_targets``: the gradient's entries :math:`p - t` cancel,
    1e6 float32 ulps off and more where :math:`t \approx p`); else float32. The fused
    kernels, which take neither, are exact in float32. On accelerators these calls stay
    in float32, as the fused GPU kernels of Liger Kernel and Cut Cross-Entropy compute
    them: float64 there runs at a small fraction of float32's rate on most GPUs (1/64
    on consumer and L4-class parts)."""
    if z.dtype == torch.float64:
        return torch.float64
    widen = soft_cap is not None or soft_targets
    return torch.float64 if widen and z.device.type == "cpu" else torch.float32


def _blocks(rows: int, classes: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_BYTES // (4 * max(classes, 1)))
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def _stored(z: torch.Tensor) -> np.ndarray:
    """A NumPy view of contiguous CPU ``z`` as the kernels read it (bf16: its uint16 bits)."""
    z = z.contiguous()
    if z.dtype == torch.bfloat16:
        return z.view(torch.int16).numpy().view(np.uint16)
    return z.numpy()


def _from_stored(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """The tensor of ``dtype`` whose memory is ``values`` (the inverse of :func:`_stored`)."""
    if dtype == torch.bfloat16:
        return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(values)


def _numpy_weight(weight: torch.Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    return weight.detach().to("cpu", torch.float64).numpy().astype(dtype)


def forward(
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    ignore_index: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row losses (float32, or float64 for float64 ``z``), float64 log-sum-exps and
    float64 ``log p_y`` (of class 0 on ignored rows)."""
    n, classes = z.shape
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    rows = torch.empty(n, dtype=acc, device=z.device)
    lse = torch.empty(n, dtype=torch.float64, device=z.device)
    log_p = torch.empty(n, dtype=torch.float64, device=z.device)
    if n == 0:
        return rows, lse, log_p
    z = z.detach()
    if uses_fused_kernels(z, opts):
        y = labels.numpy()
        w = _numpy_weight(weight, np.dtype(np.float32))
        values, row_lse, row_log_p = _backend.label_rows(
            _stored(z), y, w, opts, ignore_index=ignore_index, validate=True
        )
        rows.numpy()[...] = values
        lse.numpy()[...] = row_lse
        log_p.numpy()[...] = row_log_p
        return rows, lse, log_p
    # Data checks here would be host syncs on an accelerator: only on the CPU.
    validate = z.device.type == "cpu"
    work = work_dtype(z, opts.soft_cap)
    wt = None if weight is None else weight.detach().to(work)
    for start, stop in _blocks(n, classes):
        with row_offset(start):
            values, row_lse, row_log_p = _backend.label_rows(
                z[start:stop].to(work),
                labels[start:stop],
                wt,
                opts,
                ignore_index=ignore_index,
                validate=validate,
            )
        rows[start:stop] = values
        lse[start:stop] = row_lse
        log_p[start:stop] = row_log_p
    return rows, lse, log_p


def backward(
    upstream: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    lse: torch.Tensor,
    label_log_p: torch.Tensor,
    opts: _backend.Options,
    *,
    ignore_index: int | None,
) -> torch.Tensor:
    """``upstream[i] * d L_i / d z[i]`` in ``z``'s dtype (computed in >= float32), from
    the forward's ``lse`` and ``label_log_p`` (the fused kernels; the generic path
    recomputes the row statistics)."""
    n, classes = z.shape
    z = z.detach()
    upstream = upstream.detach()
    if uses_fused_kernels(z, opts):
        if n == 0:
            return torch.empty((n, classes), dtype=z.dtype)
        u = upstream.to(torch.float64).numpy()
        w = _numpy_weight(weight, np.dtype(np.float32))
        # The kernel allocates the gradient in z's format; torch wraps it, no copy.
        grad = _backend.label_gradient(
            _stored(z),
            labels.numpy(),
            w,
            lse.numpy(),
            label_log_p.numpy(),
            u,
            opts,
            ignore_index=ignore_index,
            out=None,
        )
        return _from_stored(grad, z.dtype)
    work = work_dtype(z, opts.soft_cap)
    grad = torch.empty((n, classes), dtype=z.dtype, device=z.device)
    wt = None if weight is None else weight.detach().to(work)
    for start, stop in _blocks(n, classes):
        block = torch.empty((stop - start, classes), dtype=work, device=z.device)
        _backend.label_gradient(
            z[start:stop].to(work),
            labels[start:stop],
            wt,
            lse[start:stop],
            label_log_p[start:stop],
            upstream[start:stop].to(work),
            opts,
            ignore_index=ignore_index,
            out=block,
        )
        grad[start:stop] = block
    return grad
