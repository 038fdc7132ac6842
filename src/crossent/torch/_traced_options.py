r"""Float options that stay symbolic under ``torch.compile`` (``cross_entropy``, distillation).

A custom op's ``float[]`` argument cannot hold a symbolic float: Dynamo guards on its
value (``label_smoothing == 0.1``), so every new value compiles a new graph, until
the recompile limit (8) sends the function back to eager (``fullgraph=True``: an
error). ``torch.nn.functional.cross_entropy`` does the same with ``label_smoothing``
(its ATen op takes a ``float``; torch 2.13: a graph per value up to the limit), but
the torch idiom of a temperature (``logits / T``) becomes dynamic after one
recompile (automatic dynamic: 2 graphs for any number of values).

So while Dynamo traces, :func:`crossent.torch._arguments.call_options` checks the
numeric options by comparisons only (each a range guard such as ``0 <= s <= 1``, not
a guard on the value; NaN fails every comparison), and :func:`labels_op` hands them
to the class-id op as one float64 tensor
(``crossent::softmax_ce_labels_tensor_options_v1``), which reads it back
(``Tensor.tolist``: the Python floats, every bit) and calls
``crossent::softmax_ce_labels_v3`` and its backward eagerly with them. The kernels,
and so the loss and gradient bits, are eager's; ``label_smoothing=0`` is still the
unsmoothed loss exactly (the kernels' branch reads a concrete float, in the op).
Eager calls keep the ``float[]`` op (no tensor made per call).

``distillation_loss`` on the fused CPU op (``_distill_cpu``, forward direction) does
the same with its ``temperature`` (branch compile3): :func:`traced_temperature` checks
it by comparisons (:math:`0 < T < \infty`, :math:`T^2` normal in float32, so the
generic path's far-square case cannot arise), :func:`distillation` passes it as a
float64 tensor to ``crossent::distillation_cpu_rows_tensor_temperature_v1``, which
calls ``crossent::distillation_cpu_rows_v3`` (no gradient written ahead, as under
``torch.compile`` before) and its backward eagerly with the Python float. The twin's
backward has no second derivative: AOTAutograd refuses double backward of a compiled
graph (torch 2.13: ``create_graph=True`` raises, on main's graph too); the eager op's
is kept.

``cross_entropy`` of probability targets on the CPU target op (branch compile3):
:func:`probs_op` hands the same four options to
``crossent::softmax_ce_probs_tensor_options_v1``, which calls
``crossent::softmax_ce_probs_v3`` and its backward eagerly with them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _ops
from ._distill_cpu import (
    _distillation_cpu_rows_fake,
    distillation_cpu_rows,
    distillation_cpu_rows_backward,
)
from ._far_distillation import _reduced, _work_dtype
from ._ops import (
    softmax_ce_labels,
    softmax_ce_labels_backward,
    softmax_ce_probs,
    softmax_ce_probs_backward,
)
from ._reduction import rows_upstream

__all__ = [
    "distillation",
    "labels_op",
    "packed",
    "probs_op",
    "tensor_options_labels",
    "tensor_options_probs",
    "tensor_temperature_distillation",
    "traced_temperature",
]

Tensor = torch.Tensor


def labels_op(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    batch_shape: list[int],
    ignore_index: int | None,
    options: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``softmax_ce_labels(...)`` with ``options`` passed as one float64 tensor (while
    Dynamo traces: a symbolic option stays an input of the graph, not a constant)."""
    return tensor_options_labels(logits, labels, weight, batch_shape, ignore_index, packed(options))


def packed(options: list[float]) -> Tensor:
    """``options`` (Python floats, symbolic ones while Dynamo traces) as one float64 CPU
    tensor, which the ``*_tensor_*`` ops read back with ``Tensor.tolist``."""
    # ``one * value``, not ``torch.tensor(options)``: AOTAutograd's pass that turns
    # symbolic floats into tensor operations takes a product, but specialises a float
    # that ``torch.tensor`` reads (a graph per value again). ``1.0 * v`` is ``v``.
    one = torch.ones((), dtype=torch.float64, device="cpu")  # not the default device
    return torch.stack([one * value for value in options])


@torch.library.custom_op("crossent::softmax_ce_labels_tensor_options_v1", mutates_args=())
def tensor_options_labels(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    batch_shape: list[int],
    ignore_index: int | None,
    options: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``crossent::softmax_ce_labels_v3`` with its options read from a float64 tensor."""
    return softmax_ce_labels(logits, labels, weight, batch_shape, ignore_index, options.tolist())


# The fake kernels are the float[] ops' (the same outputs).
tensor_options_labels.register_fake(_ops._softmax_ce_labels_fake)


@torch.library.custom_op("crossent::softmax_ce_labels_tensor_options_v1_backward", mutates_args=())
def _tensor_options_labels_backward(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    label_log_p: Tensor,
    ignore_index: int | None,
    options: Tensor,
) -> Tensor:
    """``crossent::softmax_ce_labels_v2_backward`` (``_v3``'s backward) with its options
    from a float64 tensor."""
    return softmax_ce_labels_backward(
        upstream, logits, labels, weight, lse, label_log_p, ignore_index, options.tolist()
    )


_tensor_options_labels_backward.register_fake(_ops._softmax_ce_labels_backward_fake)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    logits, labels, weight, _, ignore_index, options = inputs
    _, lse, label_log_p, _ = output
    ctx.save_for_backward(logits, labels, weight, lse, label_log_p, options)
    ctx.ignore_index = ignore_index
    ctx.mark_non_differentiable(lse, label_log_p)


def _backward(ctx: Any, grad_rows: Tensor, *grads: Tensor | None) -> tuple[Any, ...]:
    logits, labels, weight, lse, label_log_p, options = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad_rows = rows_upstream(grad_rows, grads[2])  # the float64 rows' upstream joins
        grad = _tensor_options_labels_backward(
            grad_rows, logits, labels, weight, lse, label_log_p, ctx.ignore_index, options
        )
    return (grad,) + (None,) * 5


tensor_options_labels.register_autograd(_backward, setup_context=_setup_context)


# ``distillation_loss``' temperature (branch compile3): the fused CPU op's twin.


def traced_temperature(temperature: object) -> bool:
    r"""While Dynamo traces: whether ``temperature`` is a float with :math:`0 < T <
    \infty` and :math:`T^2` normal in float32 (so in float64 too:
    ``_far_distillation._square_is_far`` is False), checked by comparisons only (range
    guards, no guard on the value; NaN fails them); False otherwise and in eager calls
    (the caller then reads the value, which names a bad one)."""
    if not torch.compiler.is_dynamo_compiling() or type(temperature) is not float:
        return False
    tiny, huge = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max
    square = temperature * temperature
    return bool(0.0 < temperature < math.inf and tiny <= square <= huge)


def distillation(
    student: Tensor,
    teacher: Tensor,
    temperature: float,
    reduction: str,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Tensor:
    """``_distill_cpu.fused_distillation`` of a forward call under ``torch.compile``
    (:func:`traced_temperature`), ``temperature`` passed to the fused op as a float64
    tensor: a symbolic temperature stays an input of the graph."""
    rows = tensor_temperature_distillation(
        student, teacher.detach(), packed([temperature]), teacher_form, direction
    )[0]
    return _reduced(rows, reduction, None, _work_dtype(student, teacher))


@torch.library.custom_op("crossent::distillation_cpu_rows_tensor_temperature_v1", mutates_args=())
def tensor_temperature_distillation(
    student: Tensor,
    teacher: Tensor,
    temperature: Tensor,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``crossent::distillation_cpu_rows_v3`` (no gradient ahead) with its temperature
    read from a float64 tensor of one element."""
    (value,) = temperature.tolist()
    return distillation_cpu_rows(student, teacher, value, 0.0, teacher_form, direction)


@tensor_temperature_distillation.register_fake
def _tensor_temperature_distillation_fake(
    student: Tensor,
    teacher: Tensor,
    temperature: Tensor,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _distillation_cpu_rows_fake(student, teacher, 1.0, 0.0, teacher_form, direction)


@torch.library.custom_op(
    "crossent::distillation_cpu_rows_tensor_temperature_v1_backward", mutates_args=()
)
def _tensor_temperature_distillation_backward(
    upstream: Tensor,
    student: Tensor,
    teacher: Tensor,
    stats: Tensor,
    kind: Tensor,
    temperature: Tensor,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Tensor:
    """``crossent::distillation_cpu_rows_backward_v2`` with its temperature read from a
    float64 tensor of one element."""
    (value,) = temperature.tolist()
    return distillation_cpu_rows_backward(
        upstream, student, teacher, stats, kind, value, teacher_form, direction
    )


@_tensor_temperature_distillation_backward.register_fake
def _tensor_temperature_distillation_backward_fake(
    upstream: Tensor, student: Tensor, *_: Any
) -> Tensor:
    return torch.empty_like(student, memory_format=torch.contiguous_format)


def _distillation_setup_context(
    ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]
) -> None:
    student, teacher, temperature, teacher_form, direction = inputs
    _, stats, kind, ahead = output
    ctx.save_for_backward(student, teacher, stats, kind, temperature)
    ctx.mark_non_differentiable(stats, kind, ahead)
    ctx.set_materialize_grads(False)
    ctx.forms = (teacher_form, direction)


def _distillation_backward(ctx: Any, upstream: Tensor | None, *_: Any) -> tuple[Any, ...]:
    student, teacher, stats, kind, temperature = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0] and upstream is not None:
        grad = _tensor_temperature_distillation_backward(
            upstream, student, teacher, stats, kind, temperature, *ctx.forms
        )
    return grad, None, None, None, None


tensor_temperature_distillation.register_autograd(
    _distillation_backward, setup_context=_distillation_setup_context
)


# ``cross_entropy`` of probability targets (branch compile3): the target op's twin.


def probs_op(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    options: list[float],
    batch_shape: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """``softmax_ce_probs(...)`` with ``options`` passed as one float64 tensor."""
    return tensor_options_probs(logits, targets, weight, packed(options), batch_shape)


@torch.library.custom_op("crossent::softmax_ce_probs_tensor_options_v1", mutates_args=())
def tensor_options_probs(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    options: Tensor,
    batch_shape: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """``crossent::softmax_ce_probs_v3`` with its options read from a float64 tensor."""
    return softmax_ce_probs(logits, targets, weight, options.tolist(), batch_shape)


tensor_options_probs.register_fake(_ops._softmax_ce_probs_fake)


@torch.library.custom_op("crossent::softmax_ce_probs_tensor_options_v1_backward", mutates_args=())
def _tensor_options_probs_backward(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    options: Tensor,
) -> Tensor:
    """``crossent::softmax_ce_probs_v3_backward`` with its options from a float64 tensor."""
    return softmax_ce_probs_backward(upstream, logits, targets, weight, lse, options.tolist())


_tensor_options_probs_backward.register_fake(_ops._softmax_ce_probs_backward_fake)


def _probs_setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    logits, targets, weight, options = inputs[:4]
    ctx.save_for_backward(logits, targets, weight, output[1], options)
    ctx.mark_non_differentiable(output[1])


def _probs_backward(ctx: Any, grad_rows: Tensor, *_: Tensor | None) -> tuple[Any, ...]:
    logits, targets, weight, lse, options = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = _tensor_options_probs_backward(grad_rows, logits, targets, weight, lse, options)
    return (grad, None, None, None, None)


tensor_options_probs.register_autograd(_probs_backward, setup_context=_probs_setup_context)
