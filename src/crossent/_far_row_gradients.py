r"""The exact gradient of far rows formed again on host copies, under PyTorch's autograd.

A far row (a finite loss or measure that the common path forms as ``inf``: a gap
:math:`x_c - m` past the float64 range) is formed again in NumPy float64 on host copies
(``losses._far_gaps``, ``info._measures``) and put back by ``where``, which gives it no
gradient: its arguments would get a silent 0 where the truth is finite. Each such row
carries instead its gradient :math:`g` (formed on the host too) by a term of value 0:

.. math:: L_i \leftarrow L_i + \sum_c g_{ic}\,(x_{ic} - \operatorname{detach}(x_{ic}))

(:func:`gradient_term`). :math:`x - \operatorname{detach}(x)` is 0 exactly, so each value
keeps its bits, and first-order autograd sees :math:`g`. JAX has no autograd outside its
transformations, whose traced arrays have no host copy (``_traced_far_rows``).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import truth_of
from ._xp import device

__all__ = ["carried_zeros", "gradient_term", "overflowing", "unformed", "wants_gradient"]


def wants_gradient(x: object) -> bool:
    """Whether PyTorch's autograd records operations on ``x`` (a tensor that requires a
    gradient, with gradients enabled). JAX's transformations trace their arrays, which
    the far-row passes do not reach; array-api-strict has no autograd."""
    if not getattr(x, "requires_grad", False):
        return False
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.is_grad_enabled())


def gradient_term(x: Any, g: np.ndarray, far: Any, axis: int, *, xp: Any) -> Any:
    r"""Zeros of the batch shape (``far``'s, a boolean tensor of the far rows) whose gradient in the
    PyTorch tensor ``x`` (classes at ``axis``) is ``g``: float64 NumPy of the shape
    ``x`` broadcasts to (0 outside the far rows), rounded once to ``x``'s dtype.

    An entry past ``x``'s range there (:math:`|g|` above its largest, or :math:`\pm\infty`)
    is carried by :func:`overflowing`: the upstream :math:`u` times :math:`g` formed in
    float64 and rounded once to ``x``'s dtype, so :math:`u g` is right for any
    :math:`u` (finite where it fits, :math:`\pm\infty` where it does not; 0 at a zero
    upstream); a NaN entry gets NaN where a far row's upstream gradient is not 0
    (:func:`unformed`), not a silent 0.

    A zero of ``g`` (the other rows') is carried as -0.0 (:data:`_MINUS_ZERO`)."""
    # rounded once to the dtype of x (float16 too), finite or not there; a zero as -0.0
    # (:data:`_MINUS_ZERO`)
    g_x = xp.asarray(np.where(g == 0, _MINUS_ZERO, g), device=device(x)).to(x.dtype)
    held = x.detach()
    # x - detach(x) is NaN at an infinite entry (a -inf logit of a far or infinite row:
    # the loss was NaN, issue 13, branch hostile1): zeros that carry the gradient there
    d = x - held if truth_of(xp.all(xp.isfinite(held))) else carried_zeros()(x)
    finite = xp.isfinite(g_x)
    zero = xp.full_like(g_x, _MINUS_ZERO)
    term = xp.sum(d * xp.where(finite, g_x, zero), axis=axis)
    if truth_of(xp.all(finite)):
        return term
    past = np.where(np.isnan(g), 0.0, g) * ~finite.cpu().numpy()  # (NaN: unformed's)
    if bool(past.any()):
        term = term + overflowing()(x, xp.asarray(past), axis)
    nan = xp.isnan(g_x)
    if truth_of(xp.any(nan)):
        return unformed()(x, far, nan, axis) + term
    return term


@functools.cache
def carried_zeros() -> Callable[[Any], Any]:
    r"""A PyTorch function of ``x``: zeros of ``x``'s shape (+0) whose gradient in ``x``
    is the upstream itself, :math:`x - \operatorname{detach}(x)` also where ``x`` is
    :math:`\pm\infty` (whose difference is NaN). Its backward is the identity, so
    differentiable again (second derivatives 0, as those of the difference)."""
    torch = sys.modules["torch"]

    class CarriedZeros(torch.autograd.Function):  # type: ignore[name-defined]
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return torch.zeros_like(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad

    return CarriedZeros.apply


@functools.cache
def overflowing() -> Callable[[Any, Any, int], Any]:
    r"""A PyTorch function of ``(x, past, axis)``: zeros of ``past``'s shape less ``axis``
    whose gradient in ``x`` (of a shape that broadcasts to ``past``'s, a float64 CPU
    tensor) is :math:`u\,g` with :math:`g` = ``past``, for the upstream :math:`u`:
    formed in float64 on the CPU (:math:`u = 0` gives 0, also where :math:`g = \pm\infty`),
    summed over the entries ``x`` was broadcast to, and rounded once to ``x``'s dtype (an
    overflow there is :math:`\pm\infty`); a zero as -0.0 (:data:`_MINUS_ZERO`).

    (Carried as :math:`((x - \operatorname{detach} x)\cdot\text{max})\cdot 2`, the
    gradient was :math:`2\,\text{max}\,u`: finite below :math:`u = 1/2`, 1.7014e38
    of float32 at :math:`u = 1/4` where :math:`u g` is 2.5e38 or :math:`\infty`.)"""
    torch = sys.modules["torch"]

    class Overflowing(torch.autograd.Function):  # type: ignore[name-defined]
        @staticmethod
        def forward(ctx: Any, x: Any, past: Any, axis: int) -> Any:
            ctx.save_for_backward(past)
            ctx.shape, ctx.dtype, ctx.device, ctx.axis = x.shape, x.dtype, x.device, axis
            rows = past.shape[:axis] + past.shape[axis:][1:]
            return torch.zeros(rows, dtype=x.dtype, device=x.device)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (past,) = ctx.saved_tensors
            u = grad.to(device="cpu", dtype=torch.float64).unsqueeze(ctx.axis)
            ug = torch.where((u == 0) | (past == 0), 0.0, u * past).sum_to_size(ctx.shape)
            ug = torch.where(ug == 0, _MINUS_ZERO, ug)
            return ug.to(dtype=ctx.dtype, device=ctx.device), None, None

    return Overflowing.apply


_MINUS_ZERO = -0.0
r"""The zeros of :func:`gradient_term`'s :math:`g`: autograd adds the term's gradient
to the common path's, and where the upstream is :math:`+0` (``where``'s backward outside
the far rows) the term's is :math:`+0\cdot(-0) = -0`, and :math:`y + (-0) = y` bit for
bit (:math:`-0 + (+0)` would be :math:`+0`): the other rows' gradients keep the bits of
the common path's, a :math:`-0` too."""


@functools.cache
def unformed() -> Callable[[Any, Any, Any, int], Any]:
    r"""A PyTorch function of ``(x, far, entries, axis)``: zeros of the batch shape
    (``far``'s) whose gradient in ``x`` is NaN where a far row's upstream gradient is not
    0 (at the ``entries`` of that row, a mask of ``x``'s shape, or all of them; every
    entry of an ``x`` without the rows' layout: class weights, a side broadcast against
    the other), else 0.
    (:math:`0\cdot\sqrt{|x - \operatorname{detach} x|}` would be NaN at a zero
    upstream too.)"""
    torch = sys.modules["torch"]

    class Unformed(torch.autograd.Function):  # type: ignore[name-defined]
        @staticmethod
        def forward(ctx: Any, x: Any, far: Any, entries: Any, axis: int) -> Any:
            ctx.save_for_backward(far, entries)
            ctx.shape, ctx.axis = x.shape, axis
            rows = tuple(x.shape[:axis]) + tuple(x.shape[axis:][1:]) if x.ndim else ()
            ctx.per_row = rows == tuple(far.shape) and (entries is None or entries.shape == x.shape)
            return torch.zeros(far.shape, dtype=x.dtype, device=x.device)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            far, entries = ctx.saved_tensors
            hit = far & (grad != 0)
            if ctx.per_row:
                hit = hit.unsqueeze(ctx.axis).expand(ctx.shape)
                if entries is not None:
                    hit = hit & entries
            else:
                hit = hit.any().expand(ctx.shape)
            nan = torch.full((), math.nan, dtype=grad.dtype, device=grad.device)
            return torch.where(hit, nan, torch.zeros_like(nan)), None, None, None

    return Unformed.apply
