r"""The generic distillation path's near rows: their gradient by the near rows' formulas (issue 13).

``crossent.torch.distillation_loss`` off its CPU op (a 1-D call, an accelerator's
tensors, a teacher that requires a gradient, ...) forms the loss of a row whose KL is
below ``_near_rows.NEAR_CEILING`` by ``_near_rows.NearRows`` (its terms cancel on the
common path), in torch operations recorded by autograd. Its gradient was autograd's
derivative of that formula (shifts, series, :math:`\log(1 + y)`), not the formula of
the gradient: student logits ``[0, log 3e-5, -30]`` beside teacher logits ``[0, log
1e-5, -30]`` (:math:`T = 1`) gave 16.8 units of :math:`2^{-53}` off at two classes,
where :func:`crossent.distillation_loss_grad` (``NearRows.gradient``) and the CPU op
give under 1. :class:`NearRowsOf` puts the per-row losses through
:class:`_NearRowsGradient`, an identity on their values whose backward sends the
flagged rows' upstream :math:`w_i` nowhere in the loss's graph and gives the student
:math:`w_i` times ``NearRows``' gradient of those rows instead (the teacher too, where
it requires a gradient: its logits' gradient is the reverse direction's, the roles
swapped); every other row keeps autograd's bits. The compiled path's custom op forms
the same rows so (``_far_distillation._host_gradients``, in float64 on the host).

The forward direction's flagged rows are those whose :math:`\max_c |s_c - t_c|` is
below ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c` (``NearGradients.of_loss``),
the loss's near rows or not: a row whose KL is at or above ``NEAR_CEILING`` (its loss
the common path's) kept autograd's :math:`T(s - t)` of ``log_softmax``, which cancels
there: student logits ``[0, log1p(-2.9e-5) + 1e-7, log(2.9e-5) - 70]`` beside teacher
logits ``[0, log1p(-2.9e-5), log(2.9e-5)]`` (:math:`T = 1`) were 61 901 and 44 265 units
off, NumPy 7 and 10 (issue 13, branch distilltorch14). An ordinary call
(``_far_distillation._ordinary_call``) reads whether it has such a row with its other
flags (one host read, as before).

Float64 work only (a float64 student or teacher): in float32 the two differ by far less
than a float32 unit, and the formula's products of a subnormal :math:`t_c` round twice
where autograd's scaled product (``_numerics.exp_times``) rounds once (``e^{-100}``
beside a student's ``-3e38``: 14 subnormal units for 13.3, autograd's 13). Only where
the call has near rows (``_distill.NEAR_ROWS_LATER``'s flags, read with the
result: no cost elsewhere), eager calls (under ``torch.func`` transforms and
forward-mode AD the loss's formula is differentiated as before), and a teacher of
logits where the teacher requires a gradient. The backward's own operations are
recorded where autograd records them (``create_graph``): a second derivative passes
through the gradient's formula.
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses._distill import NearGradients
from ._arguments import has_tangent, under_torch_func

__all__ = ["NearRowsOf", "takes_near_gradients"]


def takes_near_gradients(student: Any, teacher: Any, teacher_form: str) -> bool:
    """Whether an eager call's near rows take :class:`_NearRowsGradient` (module
    docstring): tensors whose work dtype is float64, outside ``torch.func`` and
    forward-mode AD, and a teacher that requires no gradient unless it is of logits."""
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return False
    if torch.float64 not in (student.dtype, teacher.dtype):
        return False  # (a float32 work dtype: module docstring)
    if torch.compiler.is_compiling() or under_torch_func() or has_tangent(student, teacher):
        return False
    return teacher_form == "logits" or not teacher.requires_grad


class NearRowsOf:
    """``rows_of`` for ``_distill.NearRowsLater.finish``: the per-row losses through
    :class:`_NearRowsGradient`, each call's flags kept (:attr:`flags`: 0-d booleans, on
    the device) for the caller to read with its own; :meth:`settle` hands the read to the
    backwards, which form nothing where no row is flagged (a call whose near rows all
    have a spread past the floor: no ``NearRows`` pass over every row)."""

    def __init__(self) -> None:
        self.flags: list[torch.Tensor] = []
        self._states: list[list[bool]] = []

    def __call__(self, rows: torch.Tensor, near: NearGradients) -> torch.Tensor:
        state = [True]  # (until settled: form them)
        self.flags.append(torch.any(near.flagged).reshape(()))
        self._states.append(state)
        return _NearRowsGradient.apply(rows, near.student, near.teacher, near, state)

    def settle(self, read: list[bool]) -> None:
        """Whether each call's rows hold a flagged one (the caller's read of
        :attr:`flags`, in order)."""
        for state, some in zip(self._states, read, strict=True):
            state[0] = bool(some)


class _NearRowsGradient(torch.autograd.Function):
    """The identity on the per-row losses whose backward forms the near rows' gradients
    (module docstring)."""

    @staticmethod
    def forward(
        rows: torch.Tensor,
        student: torch.Tensor,
        teacher: torch.Tensor,
        near: NearGradients,
        state: list[bool],
    ) -> torch.Tensor:
        return rows.view_as(rows)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.near, ctx.state = inputs[3], inputs[4]

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        near: NearGradients = ctx.near
        if not ctx.state[0]:  # (no row flagged: autograd's gradient throughout)
            return upstream, None, None, None, None
        flagged = near.flagged
        rest = torch.where(flagged, torch.zeros_like(upstream), upstream)
        weight = torch.where(flagged, upstream, torch.zeros_like(upstream))[..., None]
        student = near.in_student() * weight if ctx.needs_input_grad[1] else None
        teacher = near.in_teacher() * weight if ctx.needs_input_grad[2] else None
        return rest, student, teacher, None, None
