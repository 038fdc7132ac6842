r"""The generic distillation path's dominant gradient entry, without its cancellation (issue 13).

``crossent.torch.distillation_loss`` off its CPU op (a 1-D call, an accelerator's
tensors, a teacher that requires a gradient, ...) gets the student's gradient from
autograd through ``log_softmax``: :math:`g_c - s_c\sum_k g_k` over :math:`T`. At the
student's top class :math:`r` of a saturated row that difference cancels, as the NumPy
formulas' did (``losses._dominant_entry``): reverse, student logits ``[0, -34]``
beside teacher probabilities ``[1e-70, 1]`` gave :math:`3.41\cdot 10^{-13}` for
:math:`3.345\cdot 10^{-13}`; forward, logits ``[0, -20, ...]`` beside teacher logits
``[0, -8, ...]`` up to 934 units of :math:`2^{-53}` off. The loss depends on the
student's logits only through :math:`\operatorname{softmax}(z/T)`, so its gradient's
entries sum to 0 in every row, and :func:`dominant_gradient` (an identity whose
backward forms the entry at :math:`r` as :math:`-\sum_{c \ne r} g_c`) fixes that entry
where ``_dominant_entry`` does: :math:`s_r > 1/2` (reverse), :math:`s_r` and
:math:`t_r > 1/2` (forward); a float64 reverse row's sum all but exactly
(:func:`_split_sum`, as the reverse kernel's top entry; issue 13, branch distrev2: a
plain sum's roundings were up to 1.4 units of :math:`2^{-53}` of the row's largest
entry). The other entries, and the other rows, keep autograd's bits; the backward's
own operations are recorded (a second derivative passes through this linear map).

Float32 and float64 students only (a half-precision gradient is rounded before this
backward sees it). Eager calls and ``torch.compile`` (there through the custom op
``crossent::dominant_entry_v1``, a copy of the logits whose backward is the same
operations; branch torchrev1): under ``torch.func`` transforms and forward-mode AD the
student goes on as it is (autograd's entry).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..losses import _dominant_entry
from ._arguments import grad_recorded, has_tangent, under_torch_func

__all__ = ["dominant_gradient"]


def dominant_gradient(
    student: Any,
    teacher: Any,
    temperature: float,
    axis: int,
    teacher_form: str,
    direction: str,
) -> Any:
    """``student`` as it is, through :class:`_DominantEntry` where its gradient is
    recorded in an eager call (module docstring)."""
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return student
    if not (student.requires_grad and grad_recorded()) or student.ndim == 0:
        return student
    if under_torch_func() or has_tangent(student, teacher):
        return student
    if not student.dtype.is_floating_point or student.shape != teacher.shape:
        return student  # (the generic path names the error)
    if student.dtype.itemsize < 4:
        # a float16/bfloat16 student's gradient reaches this backward rounded to its dtype
        # (the loss computes in float32): the others' rounding, summed, would be several
        # of its units where autograd's entry, rounded once, is within one
        return student
    if not isinstance(temperature, (int, float)) or not 0.0 < temperature < math.inf:
        return student
    options = (float(temperature), axis, teacher_form, direction)
    if torch.compiler.is_compiling():  # (Dynamo instantiates a Function: -W error fails)
        return _dominant_entry_op(student, teacher.detach(), *options)
    return _DominantEntry.apply(student, teacher.detach(), *options)


def _above_half(x: torch.Tensor, top: torch.Tensor, temperature: float, axis: int) -> torch.Tensor:
    r"""Whether :math:`\operatorname{softmax}(x/T)` at ``top`` (keepdim) is above 1/2:
    :math:`\sum_c e^{(x_c - x_r)/T} < 2`, in ``x``'s dtype (one exponential a logit; an
    ``inf`` sum where another class is far above, a NaN row: False)."""
    shifted = (x - torch.gather(x, axis, top)) / temperature
    return torch.sum(torch.exp(shifted), axis, keepdim=True) < 1.0 / _dominant_entry.DOMINANT


def _dominant_rows(
    z: torch.Tensor, v: torch.Tensor, temperature: float, axis: int, form: str, direction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's first top class (keepdim) and whether its row's entry is formed from
    the others (:math:`s_r > 1/2`, and :math:`t_r > 1/2` forward; near 1/2 either
    choice is the gradient to a few units of its dtype)."""
    with torch.no_grad():
        top = torch.argmax(z, axis, keepdim=True)
        flags = _above_half(z, top, temperature, axis)
        if direction == "forward":
            if form == "logits" or temperature != 1.0:
                scores = v.log() if form == "probs" else v
                flags = flags & _above_half(scores, top, temperature, axis)
            else:  # (T = 1, probabilities or log-probabilities as they are)
                taken = torch.gather(v, axis, top)
                mass = taken if form == "probs" else taken.exp()
                flags = flags & (mass > _dominant_entry.DOMINANT)
    return top, flags


class _DominantEntry(torch.autograd.Function):
    """The identity on the student's logits whose backward forms each dominant row's top
    entry as minus the sum of the others (module docstring)."""

    @staticmethod
    def forward(
        z: torch.Tensor,
        v: torch.Tensor,
        temperature: float,
        axis: int,
        teacher_form: str,
        direction: str,
    ) -> torch.Tensor:
        return z.view_as(z)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        z, v, *options = inputs
        ctx.save_for_backward(z, v)  # (the rows told in the backward: no cost without it)
        ctx.options = options

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        z, v = ctx.saved_tensors
        return _formed(grad, z, v, *ctx.options), None, None, None, None, None


def _formed(
    grad: torch.Tensor,
    z: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    axis: int,
    teacher_form: str,
    direction: str,
) -> torch.Tensor:
    """``grad`` with each dominant row's top entry minus the sum of the others."""
    top, flags = _dominant_rows(z, v, temperature, axis, teacher_form, direction)
    others = grad.scatter(axis, top, 0.0)
    if grad.dtype == torch.float64 and direction == "reverse":
        rest = -_split_sum(others, axis)
    else:
        # summed in float64 (float32 on MPS, which has no float64) and rounded once: a
        # half-precision or float32 sum of the others cancels as the entry itself did
        wide = torch.float32 if grad.device.type == "mps" else torch.float64
        rest = (-torch.sum(others, axis, keepdim=True, dtype=wide)).to(grad.dtype)
    entry = torch.where(flags, rest, torch.gather(grad, axis, top))
    return grad.scatter(axis, top, entry)


def _split_sum(x: torch.Tensor, axis: int) -> torch.Tensor:
    r"""The float64 sum of ``x`` along ``axis`` (keepdim), all but rounded once: each
    entry split as :math:`q + (x - q)`, :math:`q = (\sigma + x) - \sigma` on the grid of
    the ulp of :math:`\sigma`, a power of two at or above :math:`2n\max|x|` (Rump's
    extraction), so the :math:`q` sum exactly in any order and only the small parts'
    sum rounds (some :math:`n^3 2^{-106}\max|x|`). A float64 reverse row's top entry is
    minus its others' sum, which a plain sum rounded at each of its partial sums (up to
    1.4 units of :math:`2^{-53}` of the row's largest entry on the rows of
    ``benchmarks/check_distill_reverse_compiled.py``; the reverse kernel's top entry
    is this sum too, ``_distill_numba._exact_sum_without``; issue 13, branch
    distrev2)."""
    largest = torch.amax(torch.abs(x), axis, keepdim=True)
    # (4n max|x|, a power of two at or above 2n max|x| whatever log2's rounding; 0 where
    # the row is 0: then q = x, the plain sum)
    sigma = torch.exp2(torch.ceil(torch.log2(largest * (4.0 * x.shape[axis]))))
    sigma = torch.where(torch.isfinite(sigma), sigma, 0.0)  # (an inf or NaN: plain)
    q = (x + sigma) - sigma
    return torch.sum(q, axis, keepdim=True) + torch.sum(x - q, axis, keepdim=True)


@torch.library.custom_op("crossent::dominant_entry_v1", mutates_args=())
def _dominant_entry_op(
    z: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    axis: int,
    teacher_form: str,
    direction: str,
) -> torch.Tensor:
    r""":class:`_DominantEntry` while ``torch.compile`` traces (Dynamo 2.13 instantiates
    an ``autograd.Function`` as it traces one, and PyTorch's own ``DeprecationWarning``
    about that is an ``InternalTorchDynamoError`` under ``-W error``): a copy of ``z``
    (a custom op returns no alias of its input) whose backward is :func:`_formed`'s
    plain operations, traced into the graph. Issue 13, branch torchrev1: compiled
    ``'reverse'`` calls at :math:`T = 2` gave a saturated row's top entry with its
    cancellation, 4.5e15 units of :math:`2^{-53}` of the row's largest entry off (eager:
    0.9)."""
    return z.clone()


@_dominant_entry_op.register_fake
def _dominant_entry_fake(z: torch.Tensor, *_: Any) -> torch.Tensor:
    return torch.empty_like(z)


_dominant_entry_op.register_autograd(
    _DominantEntry.backward, setup_context=_DominantEntry.setup_context
)
