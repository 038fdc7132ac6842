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

Float64 forward rows whose spread is at or above that floor and below
``_near_rows.FUSED_SPREAD`` (1; branch distfwd2: ``CANCEL_SPREAD``, 1/2) times
:math:`\max_c t_c` (``NearGradients``' ``cancelling`` rows; issue 13, branches
distfwd2 and distfwd3) take the fused kernels' gradient in the same backward
(``NearGradients.cancelling_in_student``: on the host, CPU tensors outside a recorded
graph, the forward kernel's, the 2-D op's bits; elsewhere
``_near_rows.exact_forward_gradient``, the array twin of
``_distill_numba._exact_forward_row``, where it holds, :math:`s_j \ge t_j/2` at the
teacher's top class :math:`j`; elsewhere autograd's):
autograd's :math:`T(s - t)` of the softened rows errs by some :math:`\max_c t_c / \max_c
|s_c - t_c|` units of :math:`2^{-53}` of the row's largest entry, 33 on rows of two
classes of :math:`N(0, 1)` at :math:`T = 8` as logits ``(N, 2, 1)``, 38 on three at
:math:`T = 1/2`, now within 4.2 (``benchmarks/check_distill_forward_exact.py``, the
"generic" column); the rows of a spread from :math:`\max_c t_c/2` to :math:`\max_c
t_c`, 9.8 there (eight classes, :math:`T = 8`) and up to 54 on random rows, now within
4.0 and 6.7 (the 2-D op's one pass, branch distfwd3). The ordinary call reads
whether it has one with its other flags and wraps its per-row losses so
(``_far_distillation._ordinary_call``); a call with near rows forms them with the
others (``NearRowsLater.finish``; ``near=False`` where only cancelling rows are
flagged: no ``NearRows`` pass over every row). Not where the teacher requires a
gradient (its rows' gradient stays autograd's, with the student's).

The reverse direction's flagged rows (:func:`gradient_rows`) are the loss's near rows
(a KL below ``NEAR_CEILING``) that the losses' one rule flags
(``_distill.gradient_rows_flagged``: a KL below ``_near_rows.KL_FLOOR``, or a small
spread of :math:`s \odot (\log s - \log t - D)` against :math:`\max_c s_c`): between
the floors autograd's :math:`T s \odot (\log s - \log t - D)` of ``log_softmax`` (or
of ``NearRows``' loss formula) cancels too, where ``NearRows``' :math:`-s \odot (U -
M)` holds no :math:`\log s`: the row above with ``direction='reverse'``
(:math:`D(s\,\|\,t) = 2.9\cdot 10^{-5}`) was 18, 3.4 and 242 units off at :math:`T =
1, 1/2, 2` here and 7.4e5, 1.2e6 and 3.6e6 by the CPU op (issue 13, branch
distilltorch15), and those of a small :math:`\max_c |s_c - t_c|` against :math:`\max_c
t_c`, where :math:`\log s - \log t` cancels though the gradient is not small
(:func:`gradient_rows`). The CPU op's reverse kernel flags the losses' rule's rows
itself (``_distill_rows.backward_rows``, branch distillrev1) and asks
:func:`gradient_rows` for its float64 rows of a KL below ``NEAR_CEILING`` (the second
half); the compiled path (``_far_distillation._traced``) flags its rows by
:func:`gradient_rows` too. Where the teacher requires a gradient,
:func:`reverse_teacher_rows` adds the rows of its own rule (the forward one, the
roles swapped). Branch distillone1 took these rules from ``crossent.losses``.

Every other finite reverse row (issue 13, branch distrev1) takes the reverse kernel's
gradient in the same backward (``NearGradients``' ``cancelling`` rows of a reverse call,
float64 and float32 work, a teacher that requires no gradient; on the host, CPU tensors
outside a recorded graph: ``_distill.fused_reverse_rows``, the 2-D op's bits; elsewhere
autograd's): autograd's :math:`T s \odot (\log s - \log t - D)` of the softened rows
differs terms of the size of :math:`|\tau_r|`, 3630, 202 and 7960 units of
:math:`2^{-53}` of the row's largest entry off at :math:`T = 1, 2, 1/2` on rows of 32
logits of :math:`N(0, 60^2)` as ``(N, C, 1)`` (float32: 393, 138 and 276 units of
:math:`2^{-23}`), now 3.3, 4.5 and 2.8 (1.9, 0.8, 0.9;
``benchmarks/check_distill_reverse_compiled.py``, the "3-D grad" column; 2.2, 2.7 and
2.8 float64 since branch distrev2). Those rows' per-row losses are the kernel's too
(branch distrev2: ``NearGradients.reverse_losses`` in the forward, CPU tensors, the
loss's near rows but; its statistics kept for the backward's kernel): the formula
:math:`\sum_c s_c(\log s_c - \log t_c)` of the softened rows was 2.25, 4.98 and 2.47
units of :math:`2^{-53}` relative at :math:`T = 1, 2, 1/2` there, now 1.58, 1.27 and
2.47 (the 2-D op's bits; float32 at :math:`T = 2`: 3.19 units of :math:`2^{-24}`, now
0.85). In float32
work the kernel forms the flagged rows too (``NearRows``' formula in float32 was up to
17.5 units of :math:`2^{-23}` off on rows of two classes at :math:`T = 0.05`, the
kernel's float64 entries rounded 0.13). A call whose loss has no near row skips
:func:`gradient_rows` (``NearRowsOf(..., some=False)``).

Float64 work only (a float64 student or teacher) in the forward direction: in float32
the two differ by far less than a float32 unit there, and the formula's products of a
subnormal :math:`t_c` round twice where autograd's scaled product
(``_numerics.exp_times``) rounds once (``e^{-100}`` beside a student's ``-3e38``: 14
subnormal units for 13.3, autograd's 13). Only where
the call has near rows (``_distill.NEAR_ROWS_LATER``'s flags, read with the
result: no cost elsewhere), eager calls (under ``torch.func`` transforms and
forward-mode AD the loss's formula is differentiated as before), and a teacher of
logits where the teacher requires a gradient. The reverse direction's student gradient
takes ``NearRows``' formula in float32 work too (issue 13, branch distrev1): autograd's
derivative of the reverse loss's formula in float32 lost whole entries, student logits
``[-91.81, -28.67, -58.71, -48.53, 63.65, -48.45]`` beside teacher logits ``[-51.26,
53.08, -46.24, 34.62, 91.47, -18.82]`` at :math:`T = 2` (:math:`D = 4.6\cdot
10^{-9}`, both sides all but one-hot at one class) gave 0 for :math:`-4.84\cdot
10^{-19}` at two classes and :math:`7.8\cdot 10^{-25}` for :math:`4.84\cdot 10^{-19}`
at the top one (an error of 1.0 of the row's largest entry; the CPU op and the compiled
custom op, float64: 0.4 units of :math:`2^{-23}`); the formula in float32: 8 units. The
teacher's gradient rows (:func:`reverse_teacher_rows_of`) keep float64 work only. The
backward's own operations are recorded where autograd records them
(``create_graph``): a second derivative passes through the gradient's formula.
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses._cpu_kernels import available
from ..losses._distill import (
    NearGradients,
    _Distillation,
    gradient_rows_flagged,
    prepare_distillation,
)
from ..losses._far_gaps import square_is_normal
from ..losses._near_rows import formable, forward_rows_flagged, spread_is_small
from ._arguments import grad_recorded, has_tangent, under_torch_func

__all__ = [
    "NearRowsOf",
    "gradient_rows",
    "reverse_teacher_rows",
    "reverse_teacher_rows_of",
    "softened",
    "takes_near_gradients",
]


def gradient_rows(d: _Distillation, near: Any) -> Any:
    r"""The rows (batch shape, booleans) of the call ``d`` whose gradient is
    ``NearRows``' (module docstring), of the loss's near rows ``near`` (formable, a KL
    below ``_near_rows.NEAR_CEILING``): forward, ``NearGradients.of_loss``' (a small
    spread of :math:`s - t` against :math:`\max_c t_c`, ``_near_rows.spread_is_small``,
    the loss's near rows or not); reverse, those of ``near`` that the losses' one rule
    flags (``_distill.gradient_rows_flagged``: a small spread of :math:`s \odot (\log s
    - \log t - D)` against :math:`\max_c s_c`, or a KL below ``_near_rows.KL_FLOOR``),
    as ``crossent.distillation_loss_grad`` and the CPU op's reverse kernel flag them.
    The eager, compiled and CPU-op paths' one rule; traceable (no read).

    Where this differs from ``gradient_rows_flagged`` and why: forward, the rows of a
    KL below ``KL_FLOOR`` whose spread is not small keep autograd's gradient of
    ``NearRows``' loss formula (the rule's other half), measured no worse than the
    losses' ``NearRows.gradient`` there (issue 13, branch leftovers14,
    ``benchmarks/bench_distill_forward_kl_floor_rows.py``, mpmath at 60 digits, float64,
    units of :math:`2^{-53}` of the row's largest entry): 65 rows of a KL of 0.0007 to
    0.86 floors and a spread of 1.0 to 82 floors (3 to 32 000 classes each moved a
    little, :math:`T = 1/2, 1, 2`; a swap between two bulk classes beside tiny ones
    moved far), at most 7.7 units by the 1-D call and by a teacher that requires a
    gradient, 6.8 by NumPy and the CPU op; per row within 4.2 units of NumPy's (worse
    in 31 rows, better by up to 2.7 in the rest), so they stay unflagged. Reverse, only
    the loss's near rows (the generic path wraps the per-row losses of a call that has
    near rows, ``_distill.NEAR_ROWS_LATER``; the teacher's rows past the ceiling are
    :func:`reverse_teacher_rows`'), and among them also those of a small :math:`\max_c
    |s_c - t_c|` against :math:`\max_c t_c` (``spread_is_small``, branch
    distilltorch15's rule): there :math:`\log s_c - \log t_c` cancels at the bulk
    classes though the gradient is not small (mass moved up to a class the teacher
    leaves empty): student logits ``[0, 0, log 1e-6]`` beside teacher logits ``[0, 0,
    -690]`` (:math:`D(s\,\|\,t) = 6.8\cdot 10^{-4}`, a near row) are 696 units of
    :math:`2^{-53}` of the row's largest entry off by the CPU op's reverse kernel (the
    losses' rule leaves them to it: within its bound of some :math:`2^{12}\varepsilon
    \log C`), 5.0 by ``NearRows``, as the eager generic path's near rows are formed
    (branch distillone1)."""
    if d.direction == "forward":
        return NearGradients.of_loss(d, near).flagged
    xp = d.batch.xp
    teacher = xp.exp(d.log_t)
    moved = spread_is_small(xp.exp(d.log_s) - teacher, teacher, xp)
    # (``near``: formable already, read once: ``gradient_rows_flagged``'s ``among``)
    return xp.logical_or(gradient_rows_flagged(d, near), xp.logical_and(near, moved))


def reverse_teacher_rows(d: _Distillation) -> Any:
    r"""The rows of a reverse call ``d`` whose teacher's gradient :math:`T(t - s)` is
    ``NearRows``' where the teacher requires one: formable, whatever the KL, flagged by
    the forward direction's rule with the roles swapped (``_near_rows.forward_rows_flagged``
    of :math:`t - s` against :math:`\max_c s_c`, or a KL below ``KL_FLOOR``), since
    :math:`T(t - s)` is the forward gradient of a student :math:`t` beside a teacher
    :math:`s` (``NearGradients.in_teacher`` forms it so). This is not the student's
    reverse rule (:func:`gradient_rows`): :math:`s \odot (\log s - \log t - D)` need
    not be small where :math:`t - s` is. Autograd's cancels there: teacher logits ``[0,
    0, -700]`` beside student logits ``[0, 0, log 2.4e-5]`` (:math:`D(s\,\|\,t) =
    0.008`, past ``NEAR_CEILING``; the student's reverse spread 0.008, not small),
    :math:`T = 1`, were 9 855 units of :math:`2^{-53}` of the row's largest entry off
    (the student's gradient 50: within the common path's bound), issue 13, branch
    distilltorch15 (which compared the spread with :math:`\max_c t_c`; the swapped
    rule's :math:`\max_c s_c`, branch distillone1). Traceable (no read)."""
    xp = d.batch.xp
    s = xp.exp(d.log_s)
    flagged = forward_rows_flagged(xp.exp(d.log_t) - s, s, d.row_kl, xp)
    return xp.logical_and(formable(d.student, d.teacher_scores, xp), flagged)


def reverse_teacher_rows_of(
    student: Any,
    teacher: Any,
    temperature: float,
    axis: int,
    teacher_form: str,
    direction: str,
    prepared: _Distillation | None = None,
) -> Any:
    """:func:`reverse_teacher_rows` of an eager call (no graph), for the generic path to
    read with its other flags; None where it takes none: not a reverse call of a teacher
    of logits that requires a gradient, or not :func:`takes_near_gradients`. ``prepared``:
    the loss's own softened sides of this call (``_distill.NearRowsLater.d``), read as
    they are, where given: both sides are not softened again (issue 13, branch
    distillonce2: the second softening was 5-30 % of a reverse 8 x 10 float64 call whose
    teacher requires a gradient); else :func:`softened`."""
    if direction != "reverse" or teacher_form != "logits":
        return None
    if not (isinstance(teacher, torch.Tensor) and teacher.requires_grad and grad_recorded()):
        return None
    if not takes_near_gradients(student, teacher, teacher_form):
        return None
    options = {"teacher_form": teacher_form, "direction": direction}
    with torch.no_grad():
        if prepared is None:
            prepared = softened(student, teacher, temperature, axis, **options)
        return reverse_teacher_rows(prepared)


def softened(
    student: Any,
    teacher: Any,
    temperature: float,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> _Distillation:
    """The call's softened sides for the flags here (``_distill.prepare_distillation``,
    per row, not validated: the caller's call validates)."""
    return prepare_distillation(
        student,
        teacher,
        axis=axis,
        temperature=temperature,
        teacher_form=teacher_form,
        direction=direction,
        reduction="none",
        validate=False,
    )


def takes_near_gradients(
    student: Any, teacher: Any, teacher_form: str, direction: str = "forward"
) -> bool:
    """Whether an eager call's near rows take :class:`_NearRowsGradient` (module
    docstring): tensors whose work dtype is float64 (or any, for the student's gradient
    of a ``'reverse'`` call), outside ``torch.func`` and forward-mode AD, and a teacher
    that requires no gradient unless it is of logits."""
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return False
    if torch.float64 not in (student.dtype, teacher.dtype) and direction != "reverse":
        return False  # (a float32 work dtype, forward: module docstring)
    if torch.compiler.is_compiling() or under_torch_func() or has_tangent(student, teacher):
        return False
    return teacher_form == "logits" or not teacher.requires_grad


class NearRowsOf:
    """``rows_of`` for ``_distill.NearRowsLater.finish``: the per-row losses through
    :class:`_NearRowsGradient`, each call's flags kept (:attr:`flags`: 0-d booleans, on
    the device) for the caller to read with its own; :meth:`settle` hands the read to the
    backwards, which form nothing where no row is flagged (a call whose near rows all
    have a spread past the floor: no ``NearRows`` pass over every row). A reverse
    call's rows are :func:`gradient_rows`' of the loss's near rows ``loss_rows`` (the
    flags the caller read: ``_distill.NearRowsLater.flagged``) and the rows
    ``teacher_rows`` (:func:`reverse_teacher_rows`, where the teacher requires a
    gradient; None for none): ``NearRows`` forms both sides' gradients of a row.
    ``some``: False where the caller read that no row of ``loss_rows`` is flagged (no
    ``gradient_rows`` pass: a reverse call whose rows all take the reverse kernel's
    gradient, branch distrev1)."""

    def __init__(
        self,
        loss_rows: torch.Tensor,
        teacher_rows: torch.Tensor | None = None,
        *,
        some: bool = True,
    ) -> None:
        self.flags: list[torch.Tensor] = []
        self._states: list[list[bool]] = []
        self._loss_rows = loss_rows
        self._teacher_rows = teacher_rows
        self._some = some

    def __call__(self, rows: torch.Tensor, near: NearGradients) -> torch.Tensor:
        if near.d.direction == "reverse":  # (forward: ``of_loss``' already)
            if self._some:
                flagged = gradient_rows(near.d, self._loss_rows)
            else:  # (the caller read that no loss row is near: none of them is flagged)
                flagged = torch.zeros_like(self._loss_rows)
            if self._teacher_rows is not None:
                flagged = flagged | self._teacher_rows
            # (the others, finite: the reverse kernel's gradient, branch distrev1; float32
            # work, the flagged rows too: NearRows' formula in float32 is some 20 units
            # of 2**-23 off where the kernel's float64 entry, rounded, is within one)
            kernel = near.cancelling
            if kernel is not None and near.d.batch.dtype != torch.float32:
                kernel = kernel & ~flagged
            near = NearGradients(near.d, flagged, kernel)
            if kernel is not None and _kernel_values(rows, near.d.temperature):
                # (their values by the kernel too, its statistics kept for the backward;
                # the loss's near rows keep NearRows' values, branch distrev2)
                with torch.no_grad():  # (the rows read on the host: no graph)
                    values, taken, near = near.reverse_losses(kernel & ~self._loss_rows)
                    values = torch.where(taken, values.to(rows.dtype), rows)
                return self.wrapped(rows, near, values)
        return self.wrapped(rows, near)

    def wrapped(
        self, rows: torch.Tensor, near: NearGradients, values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``rows`` through :class:`_NearRowsGradient` with ``near``'s rows, their flags
        kept for :meth:`settle` (whether a row is flagged, and where ``near`` has
        cancelling rows whether one is); ``values``: the result's values in place of
        ``rows``' (no graph; its gradient is that of ``rows``)."""
        state = [True, near.cancelling is not None]  # (until settled: form them)
        self.flags.append(torch.any(near.flagged).reshape(()))
        if near.cancelling is not None:
            self.flags.append(torch.any(near.cancelling).reshape(()))
        self._states.append(state)
        return _NearRowsGradient.apply(rows, near.student, near.teacher, near, state, values)

    def settle(self, read: list[bool]) -> None:
        """Whether each call's rows hold a flagged one (and a cancelling one, where
        asked): the caller's read of :attr:`flags`, in order."""
        values = iter(read)
        for state in self._states:
            state[0] = bool(next(values))
            if state[1]:
                state[1] = bool(next(values))
        if next(values, None) is not None:  # pragma: no cover
            raise RuntimeError("crossent: more flags read than kept")


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
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return rows.view_as(rows) if values is None else values

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.near, ctx.state = inputs[3], inputs[4]

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        near: NearGradients = ctx.near
        some, cancelling = ctx.state
        # (the cancelling rows: the student's gradient alone; a teacher's is autograd's)
        cancelling = cancelling and ctx.needs_input_grad[1] and not ctx.needs_input_grad[2]
        if not (some or cancelling):  # (no row flagged: autograd's gradient throughout)
            return upstream, None, None, None, None, None
        zeros = torch.zeros_like(upstream)
        taken = near.flagged
        student = near.in_student() if some and ctx.needs_input_grad[1] else None
        if cancelling:  # (0 on the flagged rows, as ``in_student`` is on the others)
            # (on the host where nothing is recorded: the compiled formula, its bits)
            host = upstream.device.type == "cpu" and not torch.is_grad_enabled()
            exact, holds = near.cancelling_in_student(host=host)
            taken = torch.logical_or(taken, holds)
            # (reverse, float32 work: a flagged row the kernel forms takes its entries)
            student = exact if student is None else torch.where(holds[..., None], exact, student)
        rest = torch.where(taken, zeros, upstream)
        weight = torch.where(taken, upstream, zeros)[..., None]
        student = student * weight if student is not None else None
        teacher = None
        if some and ctx.needs_input_grad[2]:
            teacher = near.in_teacher() * torch.where(near.flagged, upstream, zeros)[..., None]
        return rest, student, teacher, None, None, None


def _kernel_values(rows: torch.Tensor, temperature: float) -> bool:
    r"""Whether a reverse call's per-row losses ``rows`` take the fused kernels' values
    (``NearGradients.reverse_losses``): CPU tensors, Numba there, :math:`T^2` in the
    normal range (``row_kinds``' product, the 2-D op's)."""
    return rows.device.type == "cpu" and available() and square_is_normal(float(temperature))
