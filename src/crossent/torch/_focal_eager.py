r"""The eager gradient of ``crossent.torch.softmax_focal_loss`` in its closed form.

For logits :math:`z` (rows x classes), :math:`p = \operatorname{softmax}(z)`, a label
:math:`y_i` and :math:`\ell_i = \log p_{iy_i}`, the row loss
:math:`-w_{y_i}(1 - p_{iy_i})^\gamma \ell_i` has the logit gradient

.. math:: \frac{\partial L}{\partial z_{ij}} = c_i\,(p_{ij} - [j = y_i]), \qquad
          c_i = u_i\,w_{y_i}\,m_i\,(1 - \gamma\,p_{iy_i}\,\ell_i / (1 - p_{iy_i})),

:math:`m_i = (1 - p_{iy_i})^\gamma`, :math:`u_i` the upstream gradient (divided by
:math:`W = \sum_i w_{y_i}` for ``'mean'``; 0 on ignored rows and where :math:`W = 0`),
the ratio's limit :math:`-1` at :math:`p_{iy_i} = 1` (``crossent.softmax_focal_loss_grad``'s
formula). The backward forms it in four passes over the logits: the rows' maxima,
:math:`e = \exp(z - \max)` in place, its row sums :math:`s_i` in float64, :math:`e`
scaled in place by :math:`c_i / s_i`; the label entries set to
:math:`c_i\,\mathrm{expm1}(\ell_i)` (no cancellation in :math:`p_{iy_i} - 1`). The
per-row quantities are float64. Autograd's graph of the formula (the eager path
before) took about 4x the time and was 171 float32 ulps from the float64 truth where
this is 18 (1024 x 32000 float32, class weights; ``benchmarks/RESULTS.md``).

The loss is the generic path's value, bit for bit (its checks included), formed
without a graph. A ``create_graph`` backward (a second derivative) differentiates the
generic formula instead (autograd's, as before). Used only where it applies
(:func:`applies`): eager CPU calls, float32/float64 logits of shape (N, C) that
require grad, class weights that require none, no forward-mode tangent, no
``torch.func`` transform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..losses._weight_scale import scaled_weight
from ._arguments import has_tangent, under_torch_func

__all__ = ["applies", "closed_gradient", "focal_with_closed_gradient"]

Tensor = torch.Tensor

_DTYPES = (torch.float32, torch.float64)


def applies(input: Tensor, labels: Tensor, weight: Tensor | None) -> bool:
    """Whether :func:`focal_with_closed_gradient` serves the call (module docstring)."""
    return (
        input.ndim == 2
        and input.dtype in _DTYPES
        and input.device.type == "cpu"
        and input.requires_grad
        and torch.is_grad_enabled()
        and not (weight is not None and weight.requires_grad)
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not under_torch_func()
        and not has_tangent(input, labels, weight)
    )


def focal_with_closed_gradient(
    generic: Callable[[Tensor], Tensor],
    input: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> Tensor:
    """The loss ``generic(input)`` (the generic path's value and checks), whose gradient
    in ``input`` is the closed form's (module docstring)."""
    with torch.no_grad():
        loss = generic(input)
    out: Tensor = _ClosedFocal.apply(
        input, loss, labels, weight, float(gamma), ignore_index, reduction, generic
    )
    return out


class _ClosedFocal(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        input: Tensor,
        loss: Tensor,
        labels: Tensor,
        weight: Tensor | None,
        gamma: float,
        ignore_index: int | None,
        reduction: str,
        generic: Callable[[Tensor], Tensor],
    ) -> Tensor:
        ctx.save_for_backward(input, labels, weight)
        ctx.options = (gamma, ignore_index, reduction, generic)
        return loss.clone()

    @staticmethod
    def backward(ctx: Any, upstream: Tensor) -> tuple[Tensor | None, ...]:
        input, labels, weight = ctx.saved_tensors
        gamma, ignore_index, reduction, generic = ctx.options
        if torch.is_grad_enabled():  # create_graph: autograd's graph of the formula
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(generic(input), input, upstream, create_graph=True)
        else:
            grad = closed_gradient(upstream, input, labels, weight, gamma, ignore_index, reduction)
        return (grad, *([None] * 7))


def closed_gradient(
    upstream: Tensor,
    z: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> Tensor:
    r""":math:`\partial L / \partial z` times ``upstream`` (module docstring), in ``z``'s
    dtype; ``labels`` checked (in :math:`[0, C)` or ``ignore_index``)."""
    wide = torch.float64
    active = labels != ignore_index if ignore_index is not None else torch.ones_like(labels) > 0
    safe = torch.where(active, labels, torch.zeros_like(labels)).to(torch.int64)[:, None]
    top = z.detach().amax(1, keepdim=True)
    e = torch.sub(z.detach(), top).exp_()
    s = e.sum(1, dtype=wide)
    ell = (z.detach().gather(1, safe) - top)[:, 0].to(wide) - s.log()
    one_minus, p_y = -torch.expm1(ell), ell.exp()
    # p_y log p_y / (1 - p_y): -1 at p_y = 1 (the limit), 0 at p_y = 0 (not 0 * -inf)
    inside = (one_minus > 0) & (p_y > 0)
    ratio = torch.where(inside, p_y * ell / torch.where(inside, one_minus, 1.0), 0.0)
    ratio = torch.where(one_minus > 0, ratio, -1.0)
    coef = one_minus**gamma * (1.0 - gamma * ratio)
    if weight is not None:  # (scaled by a power of two: W cannot overflow; w_y / W is kept)
        scaled = torch.as_tensor(scaled_weight(weight.detach())[0]).to(wide)
        coef = coef * scaled[safe[:, 0]]
    coef = torch.where(active, coef, 0.0)
    up = upstream.detach().to(wide)
    if reduction == "mean":
        total = torch.where(active, 1.0 if weight is None else scaled[safe[:, 0]], 0.0).sum()
        up = torch.where(total > 0, up / torch.where(total > 0, total, 1.0), 0.0)
    coef = coef * up  # (one per row for 'none')
    e.mul_((coef / s).to(e.dtype)[:, None])
    e.scatter_(1, safe, (coef * torch.expm1(ell)).to(e.dtype)[:, None])
    return e
