r"""Far rows of a loss traced by a transformation: no host copy, so a NaN gradient.

A far row (``_far_gaps``: a finite loss that the common path forms as ``inf``) is formed
again on float64 host copies, with its exact gradient. Arrays traced by ``jax.grad``,
``jax.jit`` or ``jax.vmap``, and the tensors of ``torch.func.grad`` and ``vmap``, have
no host copy (:func:`.._xp.cannot_copy_to_host`): there the common path's value stands,
``inf``, and so would its gradient. For the softmax losses that gradient is exact,
:math:`((A + 2\lambda\omega\operatorname{LSE})\,p - v)/T` by the chain rule, with
:math:`p = 0` at a far gap; for distillation it is not: :math:`T^2 D` with an
infinite :math:`D` differentiates to 0 in the student's logits under ``jax.grad`` and
``torch.func.grad`` where the truth is :math:`T(s - t)` (``5e-101`` at
:math:`T = 10^{-100}`, logits 1e210 apart).

:func:`poisoned` gives such a loss a gradient of NaN instead, by a term of value 0,
:math:`\sum_x \nu(x)`, whose vector-Jacobian product in each differentiable argument
:math:`x` is NaN in the entries of the rows whose value is not finite and whose upstream
gradient is not 0 (0 elsewhere; JAX: at a zero upstream too), and its tangent NaN in
those rows: a loud refusal, never a silent 0. JAX's form is a ``jax.custom_jvp``
(``jax.jit`` and ``jax.vmap`` trace it), PyTorch's an ``autograd.Function`` with a
forward-mode rule and a generated vmap rule.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

from ._xp import is_jax_tracer

__all__ = ["poisoned"]


def poisoned(result: Any, inputs: list[Any], axis: int) -> Any:
    """``result`` (a traced loss or measure: rows, or a reduced scalar) plus zeros whose
    gradient in each array of ``inputs`` is NaN in the rows where ``result`` is not
    finite (module docstring): an input of one dimension more than ``result`` has its
    classes at ``axis``; any other (a broadcast side, class weights) is NaN wholly where
    a row is not finite."""
    if is_jax_tracer(result):
        import jax.numpy as jnp  # (loaded: result is a tracer)

        far = ~jnp.isfinite(result)
        for x in inputs:
            if is_jax_tracer(x) and jnp.issubdtype(x.dtype, jnp.floating):
                rows = far if x.ndim == far.ndim + 1 else jnp.any(far)
                result = result + _jax_nan_gradient(x.ndim, axis)(x, rows)
        return result
    torch = sys.modules["torch"]
    far = ~torch.isfinite(result.detach())
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            rows = far if x.ndim == far.ndim + 1 else far.any()
            result = result + _torch_nan_gradient().apply(x, rows, axis)
    return result


@functools.cache
def _jax_nan_gradient(ndim: int, axis: int) -> Any:
    r"""``(x, far) -> zeros of far's shape``, a ``jax.custom_jvp`` whose tangent is
    :math:`\sum_c \mathrm{NaN}\,\dot x_c` in the rows ``far`` (classes at ``axis`` where
    ``x`` has one dimension more than ``far``; all of ``x`` for a scalar), 0 elsewhere.
    Linear in :math:`\dot x`, so reverse mode transposes it: a NaN cotangent in the far
    rows' entries (at a zero upstream too: JAX has no transpose of a custom rule that
    reads the upstream, and a ``custom_vjp`` would refuse forward mode, ``jax.hessian``
    of every traced call)."""
    import jax
    import jax.numpy as jnp

    def mask(x: Any, far: Any) -> Any:
        row = jnp.expand_dims(far, axis) if far.ndim + 1 == ndim else far
        return jnp.where(row, jnp.asarray(math.nan, dtype=x.dtype), jnp.zeros((), x.dtype))

    @jax.custom_jvp
    def nan_gradient(x: Any, far: Any) -> Any:
        return jnp.zeros(far.shape, dtype=x.dtype)

    @nan_gradient.defjvp
    def tangent(primals: Any, tangents: Any) -> Any:
        x, far = primals
        dx = tangents[0]
        within = (axis,) if far.ndim + 1 == ndim else None
        return nan_gradient(x, far), jnp.sum(mask(x, far) * dx, axis=within)

    return nan_gradient


@functools.cache
def _torch_nan_gradient() -> Any:
    """PyTorch's :func:`_jax_nan_gradient`: an ``autograd.Function`` of the form that
    ``torch.func`` transforms (``setup_context``, a generated vmap rule)."""
    torch = sys.modules["torch"]

    class NanGradient(torch.autograd.Function):  # type: ignore[name-defined]
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, far: Any, axis: int) -> Any:
            return torch.zeros(far.shape, dtype=x.dtype, device=x.device)

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
            x, far, axis = inputs
            ctx.save_for_backward(far)
            ctx.save_for_forward(far)
            ctx.shape, ctx.axis = x.shape, axis

        @staticmethod
        def jvp(ctx: Any, dx: Any, *_: Any) -> Any:  # (NaN in the far rows)
            (far,) = ctx.saved_tensors
            row = far.unsqueeze(ctx.axis) if far.ndim + 1 == len(ctx.shape) else far
            nan = torch.where(row, math.nan, 0.0).to(dx.dtype) * dx
            within = ctx.axis if far.ndim + 1 == len(ctx.shape) else None
            return nan.sum(dim=within)

        @staticmethod
        def backward(ctx: Any, upstream: Any) -> Any:
            (far,) = ctx.saved_tensors
            hit = far & (upstream != 0)
            hit = hit.unsqueeze(ctx.axis) if hit.ndim + 1 == len(ctx.shape) else hit
            nan = torch.full((), math.nan, dtype=upstream.dtype, device=upstream.device)
            return torch.where(hit.expand(ctx.shape), nan, torch.zeros_like(nan)), None, None

    return NanGradient
