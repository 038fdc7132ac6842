r"""The vocab-parallel losses as ``torch.library`` custom operators, for ``torch.compile``.

Under ``torch.compile`` a call of :func:`~crossent.torch.vocab_parallel_cross_entropy`
(:func:`~crossent.torch.vocab_parallel_linear_cross_entropy`) on the default process
group is the op ``crossent::vocab_parallel_ce_v1`` (``crossent::vocab_parallel_linear_ce_v1``):
the eager call at run time, opaque to Dynamo (its checks, the rank agreement with its
BLAKE2b fingerprints, its collectives, its value checks), so ``fullgraph=True`` holds
the whole call. Its outputs are the loss, the per-row coefficients the backward needs
(stacked in float64, exactly) and the slices' layout; the backward op
(``..._v1_backward``) forms the label quantities again from the labels and the class
weights and gives the eager backward's gradients, bit for bit (the reduction's gradient
as autograd forms it, :func:`_grad_rows`). The agreement is not weakened: it is the
eager call's own exchange, on every rank, also where compiled ranks meet eager ones.

Only the default group (``group=None`` or ``WORLD``): an op's arguments cannot carry a
process group, so with another ``group`` a compiled call runs eagerly, its agreement and
value checks graph breaks (``fullgraph=True`` raises Dynamo's ``Unsupported``). Checked
on PyTorch 2.13 (branch torchleft5): ``torch.library.custom_op`` refuses a
``ProcessGroup`` parameter (not an opaque type; the schema's types include
``torch.distributed.GroupName``, a string), a hand-written schema with
``__torch__.torch.classes.c10d.ProcessGroup`` refuses the Python group at the call
("missing attribute capsule"), and the name's lookup (``_resolve_process_group``) is
private. Passing the name and remembering the group in a crossent registry filled at
trace time (``torch.compiler.assume_constant_result`` of a function of the group, whose
Dynamo guards follow the group) fails at run time: the traced code sees Dynamo's
``FakeScriptObject``, not the group (``'FakeScriptObject' object has no attribute
'allgather'``), and its real group is reachable only through a private attribute.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from ..losses._terms import smoothing_coefficients
from ._arguments import CallOptions, autocast_off
from ._products import Products
from ._reduction import label_weight_sum
from ._vocab_parallel import (
    _ce_grad,
    _ce_prepare,
    _ce_rows,
    _Coefficients,
    _compute_dtype,
    _labels,
    _Layout,
    _linear_checks,
    _linear_grads,
    _linear_prepare,
    _linear_rows,
    _logit_checks,
    _mean_weight,
    _reduce,
    _row_blocks,
    _State,
)

__all__ = [
    "vocab_parallel_ce_backward_op",
    "vocab_parallel_ce_op",
    "vocab_parallel_linear_ce_backward_op",
    "vocab_parallel_linear_ce_op",
]

Tensor = torch.Tensor

#: The dtypes of the coefficients packed in float64 (each back to its own, exactly).
_CODES = (torch.float32, torch.float64)


def _packed(state: _State, layout: _Layout) -> tuple[Tensor, Tensor]:
    """The coefficients a backward op needs, as tensors: ``(m, ell, p_coef, target_coef,
    gap)`` stacked in float64 (exact: each is float32 or float64), and this rank's
    class offset, slice width, the vocabulary and the five dtypes' codes (int64)."""
    c = state.coefs
    parts = (c.m, c.ell, c.p_coef, c.target_coef, c.gap)
    coefs = torch.stack([x.to(torch.float64) for x in parts])
    codes = [_CODES.index(x.dtype) for x in parts]
    meta = [layout.offset, layout.local, layout.classes, *codes]
    return coefs, torch.tensor(meta, dtype=torch.int64)


def _unpacked(
    coefs: Tensor,
    meta: Tensor,
    target: Tensor,
    weight: Tensor | None,
    opts: CallOptions,
    blocks: Callable[[torch.dtype], list[slice]],
) -> _State:
    """The backward's state of :func:`_packed`'s tensors: the label quantities formed
    again from the labels, the class weights and the layout, as the forward formed them."""
    offset, width, classes, *codes = (int(v) for v in meta.tolist())
    m, ell, p_coef, target_coef, gap = (
        row.to(_CODES[code]) for row, code in zip(coefs.unbind(0), codes, strict=True)
    )
    work = ell.dtype
    layout = _Layout((offset, width, classes - offset - width), 1)
    labels = _labels(target, weight, layout, width, opts, work)
    _, spread = smoothing_coefficients(opts.label_smoothing, classes)
    uniform = spread if opts.label_smoothing else 0.0
    coefficients = _Coefficients(m, ell, p_coef, target_coef, gap, uniform)
    return _State(labels, opts, coefficients, blocks(work))


def _grad_rows(
    grad_loss: Tensor, target: Tensor, weight: Tensor | None, opts: CallOptions, dtype: torch.dtype
) -> Tensor:
    """The gradient of the rows' losses (``dtype``) of :func:`_reduce` times
    ``grad_loss``, as autograd forms it eagerly, operation for operation (the ``'mean'``:
    :math:`[W > 0]\\,g / W` in float64, :math:`W = \\sum_i w_{y_i}`)."""
    rows = target.shape[0]
    if opts.reduction == "none":
        return grad_loss.reshape(rows).to(dtype)
    g = grad_loss.to(torch.float64)
    if opts.reduction == "mean":
        norm = label_weight_sum(target, weight, opts.ignore_index, torch.float64)
        positive = norm > 0
        g = torch.where(positive, g, 0.0) / torch.where(positive, norm, torch.ones_like(norm))
    return g.expand(rows).to(dtype)


def _fresh(x: Tensor) -> Tensor:
    """``x``, copied where it is a view (a custom op's outputs alias nothing)."""
    return x.clone() if x._base is not None else x


def _fake_outputs(
    like: Tensor, batch: tuple[Any, ...], dtype: torch.dtype, reduction: str
) -> tuple[Tensor, Tensor, Tensor]:
    rows = math.prod(batch)
    loss = like.new_empty(batch if reduction == "none" else (), dtype=dtype)
    coefs = like.new_empty((5, rows), dtype=torch.float64)
    return loss, coefs, like.new_empty((3 + 5,), dtype=torch.int64, device="cpu")


@torch.library.custom_op("crossent::vocab_parallel_ce_v1", mutates_args=())
def vocab_parallel_ce_op(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    weight_grad: bool,
    ignore_index: int | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    temperature: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`vocab_parallel_cross_entropy` on the default group as its eager call computes
    it (its checks, its agreement, its collectives), for ``torch.compile``: the loss,
    and the backward's coefficients and layout (:func:`_packed`). ``weight_grad``:
    whether the class weights would need a gradient (an error, on every rank), read
    while tracing (an op's inputs require none)."""
    options = (ignore_index, reduction, label_smoothing, z_loss, soft_cap, temperature)
    checks = functools.partial(_logit_checks, input, target, weight, *options)
    opts, z, y, batch, w, group, layout = _ce_prepare(checks, None, weight_grad)
    rows, state = _ce_rows(z, y, w, opts, group, layout)
    loss = _reduce(rows, y, w, opts, batch, state.wide)
    return (_fresh(loss), *_packed(state, layout))


@vocab_parallel_ce_op.register_fake
def _vocab_parallel_ce_fake(input: Tensor, *args: Any) -> tuple[Tensor, Tensor, Tensor]:
    batch = () if input.ndim < 2 else (input.shape[0], *input.shape[2:])
    return _fake_outputs(input, batch, _compute_dtype(input), args[4])


@torch.library.custom_op("crossent::vocab_parallel_ce_v1_backward", mutates_args=())
def vocab_parallel_ce_backward_op(
    grad_loss: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    coefs: Tensor,
    meta: Tensor,
    ignore_index: int | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    temperature: float,
) -> Tensor:
    """The gradient in ``input`` of :func:`vocab_parallel_ce_op`'s loss times
    ``grad_loss``: the eager backward's (no collectives), in ``input``'s layout."""
    options = (ignore_index, reduction, label_smoothing, z_loss, soft_cap, temperature)
    opts, z, y, _, w = _logit_checks(input, target, weight, *options)
    w = _mean_weight(w, opts)  # (the forward's, :func:`_ce_prepare`'s)
    state = _unpacked(
        coefs, meta, y, w, opts, lambda work: _row_blocks(z.shape[0], z.shape[1], None, work)
    )
    grad = _ce_grad(z, _grad_rows(grad_loss, y, w, opts, _compute_dtype(z)), state)
    if input.ndim == 1:
        grad = grad[0]
    elif input.ndim > 2:
        grad = grad.reshape(input.shape[0], *input.shape[2:], input.shape[1]).movedim(-1, 1)
    return torch.empty_like(input).copy_(grad)


@vocab_parallel_ce_backward_op.register_fake
def _vocab_parallel_ce_backward_fake(grad_loss: Tensor, input: Tensor, *_: Any) -> Tensor:
    return torch.empty_like(input)


def _ce_op_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, target, weight, _, *options = inputs
    _, coefs, meta = output
    ctx.mark_non_differentiable(coefs, meta)
    ctx.save_for_backward(input, target, weight, coefs, meta)
    ctx.options = options


def _ce_op_grad(ctx: Any, grad_loss: Tensor, *_: Any) -> tuple[Any, ...]:
    input, target, weight, coefs, meta = ctx.saved_tensors
    grad = vocab_parallel_ce_backward_op(
        grad_loss, input, target, weight, coefs, meta, *ctx.options
    )
    return (grad, *([None] * 9))


vocab_parallel_ce_op.register_autograd(_ce_op_grad, setup_context=_ce_op_setup)


@torch.library.custom_op("crossent::vocab_parallel_linear_ce_v1", mutates_args=())
def vocab_parallel_linear_ce_op(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    class_weight: Tensor | None,
    class_weight_grad: bool,
    input_grad: bool,
    ignore_index: int | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    temperature: float,
    chunk_size: int | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`vocab_parallel_linear_cross_entropy` on the default group as its eager call
    computes it, for ``torch.compile`` (as :func:`vocab_parallel_ce_op`); ``input_grad``:
    whether ``input`` needs a gradient (a field of the agreement), read while tracing."""
    options = (ignore_index, reduction, label_smoothing, z_loss, soft_cap, temperature)
    checks = functools.partial(
        _linear_checks, input, weight, target, bias, class_weight, *options, chunk_size
    )
    prepared = _linear_prepare(checks, None, (class_weight_grad, input_grad))
    opts, h, w, b, y, cw, chunk, batch, group, layout = prepared
    with autocast_off(h.device.type):
        rows, state = _linear_rows(
            h.reshape(math.prod(batch), h.shape[-1]), w, b, y, cw, opts, group, chunk, layout
        )
    loss = _reduce(rows, y, cw, opts, batch, state.wide)
    return (_fresh(loss), *_packed(state, layout))


@vocab_parallel_linear_ce_op.register_fake
def _vocab_parallel_linear_ce_fake(
    input: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None, *args: Any
) -> tuple[Tensor, Tensor, Tensor]:
    dtype = _compute_dtype(input, weight, bias)
    return _fake_outputs(input, tuple(input.shape[:-1]), dtype, args[4])


@torch.library.custom_op("crossent::vocab_parallel_linear_ce_v1_backward", mutates_args=())
def vocab_parallel_linear_ce_backward_op(
    grad_loss: Tensor,
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    class_weight: Tensor | None,
    coefs: Tensor,
    meta: Tensor,
    needs: list[bool],
    ignore_index: int | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    temperature: float,
    chunk_size: int | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients in ``input``, ``weight`` and ``bias`` (where ``needs``; else empty
    tensors) of :func:`vocab_parallel_linear_ce_op`'s loss times ``grad_loss``: the eager
    backward's, ``input``'s all-reduced over the default group."""
    options = (ignore_index, reduction, label_smoothing, z_loss, soft_cap, temperature)
    opts, h, w, b, y, cw, chunk = _linear_checks(
        input, weight, target, bias, class_weight, *options, chunk_size
    )
    cw = _mean_weight(cw, opts)  # (the forward's, :func:`_linear_prepare`'s)
    h2 = h.reshape(y.shape[0], h.shape[-1])
    state = _unpacked(
        coefs, meta, y, cw, opts, lambda work: _row_blocks(h2.shape[0], w.shape[0], chunk, work)
    )
    state.group, state.products = dist.group.WORLD, Products.of(h2, w)
    dtype = _compute_dtype(h2, w, b)
    with autocast_off(h.device.type):
        gh, gw, gb = _linear_grads(
            h2,
            w,
            b,
            _grad_rows(grad_loss, y, cw, opts, dtype),
            state,
            tuple(needs),  # type: ignore[arg-type]
        )
    empty = input.new_empty((0,))
    return (
        empty if gh is None else torch.empty_like(input).copy_(gh.reshape(input.shape)),
        empty.clone() if gw is None else torch.empty_like(weight).copy_(gw),
        empty.clone() if gb is None or bias is None else torch.empty_like(bias).copy_(gb),
    )


@vocab_parallel_linear_ce_backward_op.register_fake
def _vocab_parallel_linear_ce_backward_fake(
    grad_loss: Tensor,
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None,
    class_weight: Tensor | None,
    coefs: Tensor,
    meta: Tensor,
    needs: list[bool],
    *_: Any,
) -> tuple[Tensor, Tensor, Tensor]:
    def like(x: Tensor | None, need: bool) -> Tensor:
        return torch.empty_like(x) if need and x is not None else input.new_empty((0,))

    return like(input, needs[0]), like(weight, needs[1]), like(bias, needs[2])


def _linear_op_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, weight, target, bias, class_weight, _, _, *options = inputs
    _, coefs, meta = output
    ctx.mark_non_differentiable(coefs, meta)
    ctx.save_for_backward(input, weight, target, bias, class_weight, coefs, meta)
    ctx.options = options


def _linear_op_grad(ctx: Any, grad_loss: Tensor, *_: Any) -> tuple[Any, ...]:
    input, weight, target, bias, class_weight, coefs, meta = ctx.saved_tensors
    asked = ctx.needs_input_grad
    needs = [bool(asked[0]), bool(asked[1]), bool(asked[3])]  # input, weight, bias
    gh, gw, gb = vocab_parallel_linear_ce_backward_op(
        grad_loss, input, weight, target, bias, class_weight, coefs, meta, needs, *ctx.options
    )
    h, w, b = (g if need else None for g, need in zip((gh, gw, gb), needs, strict=True))
    return (h, w, None, b, *([None] * 10))


vocab_parallel_linear_ce_op.register_autograd(_linear_op_grad, setup_context=_linear_op_setup)
