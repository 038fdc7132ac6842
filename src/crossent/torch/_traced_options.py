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

Branch compile4: :func:`tensor_options_twin` makes each twin from its op (the op's
schema with its one ``float[]`` or ``float`` argument a ``Tensor``; the autograd is the
op's, with its backward op's twin), so no schema is written twice: the class-id and
probability-target twins above, ``linear_cross_entropy``'s
(``crossent::linear_cross_entropy_v4_tensor_options_v1``; its backward, of
``'none'``, keeps the options tensor in the context's settings),
``binary_cross_entropy_with_logits``' ``label_smoothing`` (not 0: the saved tensor is
a buffer that AOTAutograd donates, which ``gradcheck`` then refuses) and
``softmax_focal_loss``' ``gamma``.
"""

from __future__ import annotations

import functools
import math
import re
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

__all__ = [
    "distillation",
    "labels_op",
    "linear_op",
    "packed",
    "probs_op",
    "scalar",
    "tensor_options_labels",
    "tensor_options_probs",
    "tensor_options_twin",
    "tensor_temperature_distillation",
    "traced_temperature",
]

Tensor = torch.Tensor


# Twins made from the ops themselves (branch compile4): the schema written once.


def tensor_options_twin(op: Any, name: str, fake: Any, argument: str = "options") -> Any:
    """The custom op ``name``: ``op`` (a ``torch.library`` custom op) with its ``float[]``
    or ``float`` ``argument`` a float64 tensor (of those floats, or of no dimension),
    which it reads back (``Tensor.tolist``: the Python floats, every bit) before calling
    ``op``. Its schema is ``op``'s with that one type changed, so the arguments are not
    written twice; ``fake`` is ``op``'s fake kernel (the outputs' shapes do not depend
    on the floats)."""
    schema = op._opoverload._schema
    at = [a.name for a in schema.arguments].index(argument)
    text = str(schema)
    signature, count = re.subn(rf"float(\[\])? {argument}\b", f"Tensor {argument}", text)
    assert count == 1, text

    def kernel(*args: Any) -> Any:
        values = list(args)
        values[at] = values[at].tolist()
        return op(*values)

    kernel.__doc__ = f"``{schema.name}`` with its ``{argument}`` read from a float64 tensor."
    twin = torch.library.custom_op(
        name, kernel, mutates_args=(), schema=signature[signature.index("(") :]
    )
    twin.register_fake(fake)
    return twin


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
    return torch.stack([scalar(value) for value in options])


def scalar(value: float) -> Tensor:
    """``value`` (a Python float, symbolic while Dynamo traces) as a float64 CPU tensor
    of no dimension (``Tensor.tolist`` gives the float back)."""
    one = torch.ones((), dtype=torch.float64, device="cpu")  # not the default device
    return one * value


# The twins (their schemas derived from the ops': :func:`tensor_options_twin`); the
# autograd is the op's, its backward op's twin called with the options tensor.
tensor_options_labels = tensor_options_twin(
    softmax_ce_labels,
    "crossent::softmax_ce_labels_tensor_options_v1",
    _ops._softmax_ce_labels_fake,
)
tensor_options_labels.register_autograd(
    functools.partial(
        _ops._ce_backward,
        recompute=tensor_options_twin(
            softmax_ce_labels_backward,
            "crossent::softmax_ce_labels_tensor_options_v1_backward",
            _ops._softmax_ce_labels_backward_fake,
        ),
    ),
    setup_context=_ops._ce_setup_context,
)


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
    """``_distill_cpu.fused_distillation`` of a call under ``torch.compile``
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


tensor_options_probs = tensor_options_twin(
    softmax_ce_probs,
    "crossent::softmax_ce_probs_tensor_options_v1",
    _ops._softmax_ce_probs_fake,
)
tensor_options_probs.register_autograd(
    functools.partial(
        _ops._probs_backward,
        recompute=tensor_options_twin(
            softmax_ce_probs_backward,
            "crossent::softmax_ce_probs_tensor_options_v1_backward",
            _ops._softmax_ce_probs_backward_fake,
        ),
    ),
    setup_context=_ops._probs_setup_context,
)


# ``linear_cross_entropy`` (branch compile4): the fused op's twins, its autograd the op's
# with the backward op's twin (the options tensor kept in the settings of the context).
tensor_options_linear = tensor_options_twin(
    _ops.linear_cross_entropy_op,
    "crossent::linear_cross_entropy_v4_tensor_options_v1",
    _ops._linear_cross_entropy_fake,
)
_tensor_options_linear_backward = tensor_options_twin(
    _ops.linear_cross_entropy_backward,
    "crossent::linear_cross_entropy_v4_tensor_options_v1_backward",
    _ops._linear_cross_entropy_backward_fake,
)
tensor_options_linear.register_autograd(
    functools.partial(_ops._linear_backward, recompute=_tensor_options_linear_backward),
    setup_context=_ops._linear_setup_context,
)


def linear_op(*args: Any) -> tuple[Tensor, ...]:
    """``linear_cross_entropy_op(...)`` with its ``options`` (the eighth argument) passed
    as one float64 tensor (while Dynamo traces: symbolic floats stay so)."""
    return tensor_options_linear(*args[:7], packed(args[7]), *args[8:])


# ``binary_cross_entropy_with_logits``' ``label_smoothing`` (branch compile4): the twins of
# ``crossent::sigmoid_ce_v1`` and its two backward ops, its autograd the op's.
tensor_smoothing_sigmoid_ce = tensor_options_twin(
    _ops.sigmoid_ce,
    "crossent::sigmoid_ce_v1_tensor_smoothing_v1",
    _ops._sigmoid_ce_fake,
    "label_smoothing",
)
tensor_smoothing_sigmoid_ce.register_autograd(
    functools.partial(
        _ops._sigmoid_ce_grad,
        ops=(
            tensor_options_twin(
                _ops.sigmoid_ce_backward,
                "crossent::sigmoid_ce_v1_tensor_smoothing_v1_backward",
                _ops._sigmoid_ce_backward_fake,
                "label_smoothing",
            ),
            tensor_options_twin(
                _ops.sigmoid_ce_input_grads,
                "crossent::sigmoid_ce_v1_tensor_smoothing_v1_input_grads",
                _ops._sigmoid_ce_input_grads_fake,
                "label_smoothing",
            ),
        ),
    ),
    setup_context=_ops._sigmoid_ce_setup,
)


# ``softmax_focal_loss``' ``gamma`` (branch compile4): the focal op's twins.
tensor_gamma_softmax_focal = tensor_options_twin(
    _ops.softmax_focal,
    "crossent::softmax_focal_v2_tensor_gamma_v1",
    _ops._softmax_focal_fake,
    "gamma",
)
tensor_gamma_softmax_focal.register_autograd(
    functools.partial(
        _ops._softmax_focal_grad,
        backward=tensor_options_twin(
            _ops.softmax_focal_backward,
            "crossent::softmax_focal_v2_tensor_gamma_v1_backward",
            _ops._softmax_focal_backward_fake,
            "gamma",
        ),
    ),
    setup_context=_ops._softmax_focal_setup,
)
