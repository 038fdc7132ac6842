r"""Distillation rows that ``crossent.torch`` cannot form in its work dtype (issue 13 follow-up).

:func:`crossent.torch.distillation_loss` runs crossent's generic array-API formula on
torch tensors, :math:`T^2\sum_c t_c(\log t_c - \log s_c)` with :math:`s, t` the
softened student and teacher, recorded by autograd. Two kinds of call leave it:

* a row whose gap :math:`x_c - m` passes the work dtype's range (float64 logits of
  :math:`\pm 10^{308}`, float32 ones of :math:`\pm 3\cdot 10^{38}`, or
  :math:`(x_c - m)/T` for a small :math:`T`): its :math:`\log s_c` is ``-inf`` beside a
  :math:`t_c > 0`, its loss ``inf`` (the truth can be finite: :math:`10^{308}` times a
  small :math:`t_c`) and its gradient wrong;
* a temperature whose :math:`T^2` is not a normal number of the work dtype (float64:
  :math:`T > 1.3\cdot 10^{154}` or :math:`T < 1.5\cdot 10^{-154}`; float32, the work
  dtype of float32, float16 and bfloat16: :math:`T > 1.8\cdot 10^{19}` or :math:`T <
  1.1\cdot 10^{-19}`): autograd multiplies by :math:`T^2` (``inf`` or 0), so the
  gradient is NaN or 0 where it is finite and not 0.

The NumPy :func:`crossent.distillation_loss` forms both right in float64 (its far-row
guard and ``losses._far_gaps``: gaps scaled by powers of two, :math:`T^2 D` by
``times_temperature_squared``, gradients that hold no gap), and its gradient twin
:func:`crossent.distillation_loss_grad` is exact there too. :class:`_HostRows` calls
both on float64 host copies of the rows it is given: one home for each formula, the
torch side only selects rows, rounds and reduces.

An ordinary eager call (:func:`_ordinary_call`: the teacher requires no gradient; the
result finite, no near row, no subnormal :math:`t_c`, which its one host read checks)
forms the generic path's terms without the branches that pick nothing there, and returns
the generic path's value and gradient bit for bit (but, float64 and forward, the rows
whose :math:`s - t` cancels: the fused kernels' gradient, ``_near_gradient``; branch
distfwd2); any other call goes on as follows.

The common path costs one host read (beside the four of its validation; on a GPU each
read waits for the stream): one ``tolist`` of the finiteness of its result, of whether
the generic path flagged near rows (student and teacher nearly agree, which it leaves
to this caller: ``losses._distill.NEAR_ROWS_LATER``, formed then, their gradient by
``NearRows``' formula in float64 work (``_near_gradient``), and the result read once
more) and, where the teacher requires a gradient, of its far gaps (below). Its rows
keep their bits, its graph its operations. Only a result that is not finite sends
the call to :func:`_again`, which forms the per-row losses (for ``'mean'`` and
``'sum'``), the far rows again by :class:`_HostRows`, and reduces them as NumPy does
(:func:`_reduced`: a ``'mean'`` of rows near the largest float does not overflow its
sum). Where the teacher requires a gradient, rows with a gap past the range on either
side go there too (one pass over both, :func:`_teacher_far_gaps`). A temperature of
the second kind sends the whole call to :class:`_HostRows` (a check of a Python float, no read).

Under ``torch.compile`` (:func:`_traced`) nothing may be read while Dynamo traces, so
the graph holds the generic per-row losses (Inductor fuses them) and each row's
``kind``: 0, the graph's own; 1, near (the generic path's own flags, and the rows
whose gradient the eager call forms by ``NearRows``: ``_near_gradient.gradient_rows``);
2, far (not finite; a teacher's far gaps where it requires a gradient; every row of a
far :math:`T^2`). One custom op, ``crossent::distillation_rows_formed``
(:func:`_rows_formed`, opaque to Dynamo, with a fake kernel and registered autograd),
runs at run time: the eager call's validation of both sides, its one host read
(whether a row is flagged), and the flagged rows' losses by the NumPy function (float64:
near rows too, where eager forms them in the work dtype). Its backward sends the
generic rows their upstream but on the flagged rows, and forms those rows' gradients
by ``crossent::distillation_rows_formed_backward``: :func:`crossent.distillation_loss_grad`
(far rows), ``_near_rows.NearRows``' gradients (near rows), each times its upstream
row and rounded once (:func:`_host_gradients`). :func:`_reduced` reduces in the graph
for every call. Measured (``benchmarks/bench_torch_distill_compile.py``, float32,
``'mean'``, forward and backward, one thread): 0.26, 2.7 and 2010 ms a call at 8 x 10,
256 x 1000 and 4096 x 32000, where the generic formula compiled with graph breaks took
0.83, 7.2 and 7570 (main, 21 graphs); 0 to 19% over a graph of the generic rows alone
(which gives wrong numbers there; two runs on a loaded machine), at 4096 x 32000
mostly the zero gradient the op returns beside the graph's (0.22 s, its pages).

The NumPy function's ``teacher_form`` (logits, probabilities, log-probabilities) and
``direction`` (``'forward'``, ``'reverse'``) go to every call above that forms rows:
the generic one, :class:`_HostRows` (the NumPy function and its gradient twin of the
same options) and both custom ops (their validation of the teacher in its form too).
A reverse row whose :math:`D(s\,\|\,t)` is truly infinite (a teacher probability 0
where the student's is not) is formed by the NumPy functions as a far row is: its loss
``inf``, its gradient in the student NaN (0 in a class whose logit is ``-inf``) times a
nonzero upstream, 0 where the row's upstream is 0, as
:func:`crossent.distillation_loss_grad` gives it (the generic graph's was finite, the
gradient of its finite terms alone). A teacher's gradient is
formed here in its logits only: a teacher of probabilities or log-probabilities that
requires a gradient takes the generic formula alone (:func:`distillation_rows_checked`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, cast

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import losses
from .._checks import Form, check_reduction
from .._numerics import _subnormal_exp
from .._sides import prepare_pair
from .._xp import cannot_copy_to_host, namespace, reduce_sum
from ..errors import InputError
from ..losses import LossParts, _distill, _far_gaps
from ..losses._distill import NearGradients
from ..losses._near_rows import FUSED_SPREAD as _FUSED_SPREAD
from ..losses._near_rows import NEAR_CEILING as _NEAR_CEILING
from ..losses._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR
from ..losses._near_rows import NearRows, spread_and_top
from . import _near_gradient
from ._arguments import (
    example_stack,
    examples,
    first_order_only,
    grad_recorded,
    under_torch_func,
)
from ._dominant_gradient import dominant_gradient

__all__ = ["distillation_rows_checked", "distillation_rows_vmapped"]


def distillation_rows_checked(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    reduction: str,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r"""``crossent.distillation_loss`` of torch tensors (classes on axis 1, or 0 for a
    vector) with its far rows formed again (module docstring).

    ``teacher_form`` and ``direction`` are the NumPy function's, passed on to every
    call that forms rows (the generic one, :class:`_HostRows`', the custom ops under
    ``torch.compile``). One call leaves the path above: a teacher of probabilities or
    log-probabilities that requires a gradient takes the generic formula alone,
    recorded by autograd (:class:`_HostRows` forms a teacher's gradient in its logits
    only), its far rows not formed again (and, under ``torch.compile``, its
    validation's reads break the graph)."""
    axis = 1 if student.ndim > 1 else 0
    options = {"teacher_form": teacher_form, "direction": direction}
    # (autograd's top entry of a saturated row cancels: formed from the others)
    student = dominant_gradient(student, teacher, temperature, axis, teacher_form, direction)
    if teacher_form != "logits" and _teacher_needs_gradient(teacher):
        return losses.distillation_loss(
            student, teacher, axis=axis, temperature=temperature, reduction=reduction, **options
        )
    if torch.compiler.is_compiling():
        return _traced(student, teacher, temperature, reduction, axis, **options)
    if _square_is_far(student, teacher, temperature):
        check_reduction(reduction)  # (the NumPy call below is of 'none')
        _validate(student, teacher, axis, teacher_form)  # (in their dtype: _host_loss's is not)
        rows = _host_rows(student, teacher, float(temperature), axis, **options)
        return _reduced(rows, reduction, None, _work_dtype(student, teacher))
    ordinary = _ordinary_call(student, teacher, temperature, reduction, axis, **options)
    if ordinary is not None:
        return ordinary
    later: list[_distill.NearRowsLater] = []
    token = _distill.NEAR_ROWS_LATER.set(later)  # (its near-row flags: read below)
    screened = _far_gaps.CALLER_FORMS_FAR_ROWS.set(True)  # (its far rows: flagged below)
    try:
        loss = losses.distillation_loss(
            student, teacher, axis=axis, temperature=temperature, reduction=reduction, **options
        )
    finally:
        _far_gaps.CALLER_FORMS_FAR_ROWS.reset(screened)
        _distill.NEAR_ROWS_LATER.reset(token)
    teacher_far = _teacher_far_gaps(student, teacher, temperature, axis)
    # (reverse, a teacher requiring a gradient: its rows of a small spread, any KL)
    prepared = later[0].d if len(later) == 1 else None  # (the loss's softened sides)
    spread = _near_gradient.reverse_teacher_rows_of(
        student, teacher, temperature, axis, teacher_form, direction, prepared
    )
    near_flags = [*(x.flagged.any() for x in later)]
    near_flags += [] if spread is None else [spread.any().reshape(())]
    # (float64, forward: rows whose s - t cancels, their gradient the fused kernels')
    cancelling = later[0].cancelling if len(later) == 1 else None
    cancelling = None if _teacher_needs_gradient(teacher) else cancelling
    flags = [_not_finite(loss), *near_flags]
    flags += [] if cancelling is None else [cancelling.any().reshape(())]
    flags += [] if teacher_far is None else [teacher_far.any().reshape(())]
    read = torch.stack(flags).tolist()  # the one host read of an ordinary call
    not_finite, near, rest = read[0], read[1 : 1 + len(near_flags)], read[1 + len(near_flags) :]
    cancels, far = (rest[0], rest[1:]) if cancelling is not None else (False, rest)
    takes = any(near) or cancels
    takes = takes and _near_gradient.takes_near_gradients(student, teacher, teacher_form, direction)
    if any(near) or takes:  # rows near the teacher: formed, and the result read once more
        # (their gradient by the near rows' formulas, not autograd's of the loss's)
        rows_of = None
        if takes:
            rows_of = _near_gradient.NearRowsOf(later[0].flagged, spread, some=any(near[:1]))
        loss = later[0].finish(rows_of, near=any(near))
        flags = [_not_finite(loss), *([] if rows_of is None else rows_of.flags)]
        read = torch.stack(flags).tolist()  # (and whether a row takes the formula)
        not_finite = read[0]
        if rows_of is not None:
            rows_of.settle(read[1:])
    if not_finite or any(far):
        return _again(student, teacher, temperature, reduction, loss, axis, **options)
    return loss


def distillation_rows_vmapped(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    reduction: str,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r""":func:`distillation_rows_checked` under ``torch.func.vmap``, whose batched tensors
    give no value to read: the examples (:func:`example_stack`) are validated by the
    generic path's rows of them (no graph), then the generic formula runs on the
    batched tensors with ``validate=False`` (its near rows formed on every row, then
    picked: no read). Rows that the eager call forms again on the host (a loss that is
    not finite: far gaps, or a reverse :math:`D(s\,\|\,t) = \infty`; a :math:`T^2`
    past the work dtype's range; a teacher gap past it where the teacher is
    differentiated) cannot be selected under vmap: an :class:`InputError` naming vmap."""
    axis = 1 if student.ndim > 1 else 0
    options = {"teacher_form": teacher_form, "direction": direction}
    lead, (z, v) = example_stack(student, teacher)
    if z is None or v is None:  # pragma: no cover (both are tensors here)
        raise RuntimeError("crossent: no examples")
    inner = axis + len(lead)
    with torch.no_grad():
        rows = losses.distillation_loss(
            z, v, axis=inner, temperature=temperature, reduction="none", **options
        )
        far = _square_is_far(z, v, temperature) or not bool(torch.isfinite(rows).all())
        if not far and _teacher_needs_gradient(teacher):
            far = bool(
                (_far_gap_rows(z, temperature, inner) | _far_gap_rows(v, temperature, inner)).any()
            )
    if far:
        raise InputError(
            "under torch.func.vmap a row's distillation loss is not finite, or its gaps "
            "or the temperature's square pass the range of the work dtype: such rows are "
            "formed again one by one, which vmap cannot batch; call distillation_loss "
            "on each example outside vmap"
        )
    return losses.distillation_loss(
        student,
        teacher,
        axis=axis,
        temperature=temperature,
        reduction=reduction,
        validate=False,
        **options,
    )


def _teacher_needs_gradient(teacher: Any) -> bool:
    """Whether autograd will form a gradient in ``teacher``."""
    return isinstance(teacher, torch.Tensor) and teacher.requires_grad and grad_recorded()


def _ordinary_call(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: Any,
    reduction: str,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r"""The call's result where every row is ordinary, or None (the generic path then
    runs as before).

    The generic formula recorded by autograd made some 50 arrays of the call's size on
    every call, most of them for ``kl_terms_from_log``'s scaled product of a subnormal
    :math:`t_c` (``_numerics.exp_times``), formed everywhere then picked by ``where``,
    and their backward: 49 s at 4096 x 32000 float32 on 2 cores, where PyTorch's
    ``kl_div`` idiom takes 3 (issue 13 follow-up; each new array of 0.5 GB costs its
    pages, about 0.3 s there, more than the arithmetic). Here the same softened sides
    (``_distill.prepare_distillation``: its validation, its :math:`\log s` recorded by
    autograd, its :math:`\log t`) give the terms :math:`t_c(\log t_c - \log s_c)`
    without the branches that pick nothing on an ordinary call (:func:`_ordinary_terms`):
    the generic path's rows and gradient bit for bit. One host read: whether the
    result is finite, a row's KL is below :data:`._near_rows.NEAR_CEILING` (near rows), a
    :math:`t_c` is subnormal or (a float64 student that requires a gradient,
    ``_near_gradient``) a row's spread :math:`\max_c |s_c - t_c|` is below
    ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c`; any of them, or a teacher
    that requires a gradient, and the call goes the generic way (its far and near
    rows formed as there). Read with them, where the spread is formed and the work
    dtype is float64: whether a row's spread is below ``_near_rows.FUSED_SPREAD``
    :math:`\max_c t_c` (``_ordinary_terms``' third value); where one is, the per-row
    losses are reduced again through ``_near_gradient.NearRowsOf`` (an identity whose
    backward gives those rows ``NearGradients.cancelling_in_student``; the same value;
    issue 13, branch distfwd2). What is left
    (some 35 arrays of the call's size where the idiom makes 10: the generic path's
    exact log-partitions, the teacher softened twice, the float64 sum, autograd through
    them) is what keeping its bits costs.
    The forward direction only (any ``teacher_form``: the softened :math:`\log t` is
    the same); ``'reverse'`` goes the generic way."""
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return None
    if direction != "forward":
        return None  # (its terms s_c(log s_c - log t_c): the generic path's)
    if teacher.requires_grad and grad_recorded():
        return None  # (its far gaps and reverse gradient: the generic path's)
    d = _distill.prepare_distillation(
        student,
        teacher,
        axis=axis,
        temperature=temperature,
        teacher_form=teacher_form,
        reduction=reduction,
    )
    if d.log_t.requires_grad:
        return None
    # (rows whose gradient NearRows forms, a spread below the floor: _near_gradient)
    spread = student.requires_grad and grad_recorded()
    spread = spread and _near_gradient.takes_near_gradients(student, teacher, teacher_form)
    terms, leave, cancelling = _ordinary_terms(d, spread=spread)
    kl = reduce_sum(terms, xp=d.batch.xp, out_dtype=d.batch.dtype)
    del terms
    rows = _distill._times_temperature_squared(kl, d.temperature)
    loss = d.batch.reduce(rows)
    near = (kl.detach() < _NEAR_CEILING).any().reshape(())
    # (float64: whether a row's s - t cancels, read with the rest)
    cancels = [] if cancelling is None else [cancelling.any().reshape(())]
    read = torch.stack([_not_finite(loss), near, *leave, *cancels]).tolist()
    if any(read[: len(read) - len(cancels)]):
        return None
    if cancelling is not None and read[-1]:  # (the rows reduced again, through the wrap)
        none = torch.zeros_like(cancelling)  # (no near row here)
        rows_of = _near_gradient.NearRowsOf(none)
        loss = d.batch.reduce(rows_of.wrapped(rows, NearGradients(d, none, cancelling)))
        rows_of.settle([False, True])
    return loss


def _ordinary_terms(
    d: _distill._Distillation, *, spread: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    r"""The terms :math:`t_c(\log t_c - \log s_c)` of the softened student ``log_s``
    (recorded by autograd) and teacher ``log_t`` (no graph), :math:`0` where
    :math:`t_c = 0`, and whether a :math:`t_c` is subnormal and, where ``spread``,
    whether a row's :math:`\max_c |s_c - t_c|` is below the floor
    (``_near_rows.spread_is_small``: its gradient is ``NearRows``', which the generic
    path gives it, ``_near_gradient``; autograd's :math:`T(s - t)` cancels there, student
    logits ``[0, log1p(-2.9e-5) + 1e-7, log(2.9e-5) - 70]`` beside teacher logits ``[0,
    log1p(-2.9e-5), log(2.9e-5)]`` at :math:`T = 1` were 61 901 and 44 265 units of
    :math:`2^{-53}` off, issue 13) (0-d booleans).

    ``_numerics.kl_terms_from_log``'s operations where no :math:`t_c` is subnormal and no
    :math:`s_c` is 0: its value and gradient there bit for bit (each ``where`` it adds
    picks these terms, and passes their gradient as it is). Where one is, the terms are
    not taken (:func:`_ordinary_call`): a subnormal :math:`t_c` is scaled there
    (``_numerics.exp_times``), and an :math:`s_c = 0` gives an infinite or NaN term
    here (the generic path's ``inf`` beside :math:`t_c > 0`, 0 beside :math:`t_c = 0`).

    The third value: where ``spread`` and the work dtype is float64, the rows whose
    spread is below ``_near_rows.FUSED_SPREAD`` :math:`\max_c t_c` (batch shape), whose
    gradient ``NearGradients.cancelling_in_student`` forms (the fused kernels' formula;
    issue 13, branch distfwd2), from the same spread; else None."""
    log_s, log_t, xp = d.log_s, d.log_t, d.batch.xp
    cancelling = None
    with torch.no_grad():
        t = torch.exp(log_t)
        difference = log_t.masked_fill(torch.isneginf(log_t), 0.0)
        # (beside an s_c = 0 as well: that term is not finite, the call not taken anyway)
        leave = [_subnormal_exp(log_t, xp=xp).any()]
        if spread:
            width, top = spread_and_top(torch.exp(log_s).sub_(t), t, xp)
            leave.append((width < _SPREAD_FLOOR * top).any())
            if d.batch.dtype == torch.float64 and not d.given:
                cancelling = width < _FUSED_SPREAD * top
    # in place, on its own temporary (autograd records the same operations)
    return difference.sub_(log_s).mul_(t), leave, cancelling


def _not_finite(loss: Any) -> torch.Tensor:
    """Whether the common path's result is not finite, on its device (a 0-d boolean;
    a sum of ``'none'`` rows that overflows sends finite rows to :func:`_again`, which
    returns them as they are)."""
    total = loss.total if type(loss) is LossParts else loss
    total = total.detach()
    return ~torch.isfinite(total if total.numel() == 1 else total.sum()).reshape(())


def _teacher_far_gaps(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, axis: int
) -> torch.Tensor | None:
    r"""The rows (batch shape, on the device) whose teacher gradient autograd will form
    with a gap :math:`(x_c - m)/T` past the range (either side, or a ``-inf`` logit),
    or None where the teacher requires no gradient: such a row's loss
    can be finite and right, its gradient in the teacher NaN (a teacher gap of 2e308 at
    :math:`T = 2`, ``reduction='none'``: the second softening of :math:`\log t`, which
    holds a ``-inf``). One pass over both sides, only where the teacher requires a
    gradient (distillation's teacher usually does not)."""
    if not (grad_recorded() and teacher.requires_grad):
        return None
    return _far_gap_rows(student, temperature, axis) | _far_gap_rows(teacher, temperature, axis)


def _far_gap_rows(x: torch.Tensor, temperature: float, axis: int) -> torch.Tensor:
    r"""The rows of ``x`` (batch shape) with a tempered gap :math:`(x_c - m)/T` that is
    not finite, in the work dtype of the generic path."""
    with torch.no_grad():
        x = x.detach()
        x = x if x.dtype == torch.float64 else x.float()
        return torch.isinf((x - x.amax(axis, keepdim=True)) / temperature).any(axis)


def _work_dtype(student: torch.Tensor, teacher: torch.Tensor) -> torch.dtype:
    """The dtype the generic path computes in: float64 if either side is, else float32."""
    wide = torch.float64 in (student.dtype, teacher.dtype)
    return torch.float64 if wide else torch.float32


def _square_is_far(student: Any, teacher: Any, temperature: object) -> bool:
    r"""Whether :math:`T^2` leaves the normal range of the work dtype, for a call the
    generic path would take (floating tensors of one shape, a finite :math:`T > 0`;
    anything else stays on it, which names the error)."""
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, (bool, np.bool_)):
        return False  # (a NumPy float32 is a real number too)
    value = float(temperature)
    square = value * value
    if _NORMAL_SQUARES[0] <= square <= _NORMAL_SQUARES[1]:  # the common case: no tensor read
        return False
    if not 0 < value < math.inf:
        return False
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return False
    if student.shape != teacher.shape or student.ndim == 0:
        return False
    if not (student.dtype.is_floating_point and teacher.dtype.is_floating_point):
        return False
    info = torch.finfo(_work_dtype(student, teacher))
    return not info.tiny <= square <= info.max


_NORMAL_SQUARES = (torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max)
"""The :math:`T^2` normal in float32, hence in float64 too (:func:`_square_is_far`)."""


def _again(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    reduction: str,
    loss: Any,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r"""The call whose result was not finite (or whose teacher gradient would not be), its
    far rows by :class:`_HostRows`. ``index_put`` sends them no gradient through the
    common path's graph (whose terms hold no :math:`0\cdot\infty`: ``kl_terms_from_log``
    masks ``-inf`` before its products). Reverse rows whose :math:`D(s\,\|\,t)` is truly
    infinite (their rows' loss is not finite) are formed there too: ``inf``, and NumPy's
    gradient (NaN; the generic graph's is finite, that of the finite terms alone)."""
    options = {"teacher_form": teacher_form, "direction": direction}
    if reduction == "none":
        rows = loss
    else:
        rows = _common_rows(student, teacher, temperature, axis, **options)
    far = ~torch.isfinite(rows.detach())  # (truly infinite reverse rows too: NaN gradient)
    teacher_far = _teacher_far_gaps(student, teacher, temperature, axis)
    if teacher_far is not None:
        far |= teacher_far
    if not bool(far.any()):  # finite rows, an overflowed sum ('mean' of rows near max)
        return _reduced(rows, reduction, loss, rows.dtype)
    at = far.reshape(-1).nonzero()[:, 0]
    again = _HostRows.apply(
        _rows_last(student, axis)[at],
        _rows_last(teacher, axis)[at],
        float(temperature),
        teacher_form,
        direction,
    )
    flat = rows.reshape(-1).double().index_put((at,), again)
    return _reduced(flat.reshape(rows.shape), reduction, loss, rows.dtype)


def _common_rows(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> torch.Tensor:
    """The generic path's per-row losses (batch shape)."""
    return losses.distillation_loss(
        student,
        teacher,
        axis=axis,
        temperature=temperature,
        teacher_form=teacher_form,
        direction=direction,
        reduction="none",
    )


def _rows_last(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` as rows x classes (classes last)."""
    return x.movedim(axis, -1).reshape(-1, x.shape[axis])


def _host_rows(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> torch.Tensor:
    """Every row of the call by :class:`_HostRows` (batch shape, float64)."""
    batch = student.movedim(axis, -1).shape[:-1]
    rows = _HostRows.apply(
        _rows_last(student, axis),
        _rows_last(teacher, axis),
        temperature,
        teacher_form,
        direction,
    )
    return rows.reshape(batch)


def _host64(x: torch.Tensor) -> np.ndarray:
    """A float64 NumPy copy of ``x`` (exact for every floating dtype)."""
    return x.detach().to("cpu", torch.float64).contiguous().numpy()


def _host_loss(
    z: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> torch.Tensor:
    r"""Per-row :math:`T^2 D(t\,\|\,s)` (``'reverse'``: :math:`T^2 D(s\,\|\,t)`) of
    student rows ``z`` and teacher rows ``v`` in ``teacher_form`` (rows x classes) by the
    NumPy :func:`crossent.distillation_loss` on float64 host copies (float64, on their
    device). Not validated: the callers validate ``z`` and ``v`` in their own dtype
    (``_validate``; float32 probabilities widened to float64 would fail float64's
    row-sum tolerance)."""
    rows = losses.distillation_loss(
        _host64(z),
        _host64(v),
        temperature=temperature,
        teacher_form=teacher_form,
        direction=direction,
        reduction="none",
        validate=False,
    )
    return torch.from_numpy(np.array(rows, dtype=np.float64).reshape(-1)).to(z.device)


def _host_gradients(
    z: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    upstream: torch.Tensor,
    student: bool,
    teacher: bool,
    near: torch.Tensor | None = None,
    teacher_form: str = "logits",
    direction: str = "forward",
    fused: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    r"""The gradients of :func:`_host_loss` in ``z`` (where ``student``) and ``v`` (where
    ``teacher``), times the ``upstream`` rows, each rounded once to its input's dtype
    (None where not asked): :func:`crossent.distillation_loss_grad`, forward in ``z``,
    reverse with the roles swapped in ``v`` (:class:`_HostRows`). The rows ``near``
    (booleans, where given: rows the loss forms by ``_near_rows``) take
    ``_near_rows.NearRows``' gradients of that loss, as eager autograd does through
    it (``distillation_loss_grad`` picks its own rows, by the spread of :math:`s - t`:
    1.5e-12 relative at :math:`T = 10^4`, against eager's 1e-16). ``teacher_form`` and
    ``direction`` as :func:`_host_loss`'s; a teacher's gradient is formed in its logits
    only (the other direction's student gradient, the roles swapped). The rows
    ``fused`` (booleans, where given: forward, a teacher that needs no gradient) take
    the fused forward kernel's student gradient, the eager generic path's
    (``_distill.NearGradients.cancelling_in_student``), ``NearRows``' where it does not
    form them."""
    u, z64, v64 = _host64(upstream)[:, None], _host64(z), _host64(v)
    at = None if near is None or not bool(near.any()) else near.cpu().numpy()
    kernel_rows = None if fused is None or not bool(fused.any()) else fused.cpu().numpy()
    forward = direction == "forward"
    grad_z = grad_v = None
    if student and kernel_rows is not None:
        g = _fused_gradient64(z64, v64, temperature, at, kernel_rows, teacher_form)
        grad_z = torch.from_numpy(_times_upstream(u, g)).to(z.device, z.dtype)
    elif student:
        g = _gradient64(z64, v64, temperature, at, forward, teacher_form)
        grad_z = torch.from_numpy(_times_upstream(u, g)).to(z.device, z.dtype)
    if teacher:
        if teacher_form != "logits":  # (distillation_rows_checked never asks)
            raise NotImplementedError("a teacher's gradient is formed in its logits only")
        g = _gradient64(v64, z64, temperature, at, not forward)
        grad_v = torch.from_numpy(_times_upstream(u, g)).to(v.device, v.dtype)
    return grad_z, grad_v


def _gradient64(
    first: np.ndarray,
    second: np.ndarray,
    temperature: float,
    at: np.ndarray | None,
    forward: bool,
    teacher_form: str = "logits",
) -> np.ndarray:
    """:func:`crossent.distillation_loss_grad` (per row, not validated) of the float64
    rows ``first`` beside ``second`` (in ``teacher_form``), the rows ``at`` (where given)
    ``NearRows``' (:func:`_host_gradients`). Where every row is one of ``at``, the NumPy
    call is not made (its rows were all replaced: the CPU op's host rows of a call whose
    rows all take ``NearRows``' gradient; branch distillonce2)."""
    if at is not None and bool(at.all()):
        g = np.empty(first.shape, dtype=np.float64)
    else:
        g = losses.distillation_loss_grad(
            first,
            second,
            temperature=temperature,
            teacher_form=teacher_form,
            direction="forward" if forward else "reverse",
            reduction="none",
            validate=False,
        )
    if at is not None:  # (``near``: under torch.compile, and the CPU op's near rows)
        scores = _teacher_scores(second[at], teacher_form)
        g[at] = NearRows(first[at], scores, temperature).gradient(forward=forward)
    return g


def _fused_gradient64(
    z: np.ndarray,
    v: np.ndarray,
    temperature: float,
    at: np.ndarray | None,
    fused: np.ndarray,
    teacher_form: str,
) -> np.ndarray:
    """:func:`_gradient64`'s forward student gradient but on the rows ``fused``: the
    fused forward kernel's (the eager generic path's, ``NearGradients``' host rows),
    ``NearRows``' where the kernel does not form them."""
    rest = ~fused
    g = np.zeros(z.shape, dtype=np.float64)
    if rest.any():
        near = None if at is None else at[rest]
        g[rest] = _gradient64(z[rest], v[rest], temperature, near, True, teacher_form)
    zf = np.ascontiguousarray(z[fused])
    vf = np.ascontiguousarray(_teacher_scores(v[fused], teacher_form))
    formed, kept = _distill.fused_forward_rows(zf, vf, temperature)
    if not kept.all():
        formed[~kept] = NearRows(zf[~kept], vf[~kept], temperature).gradient(forward=True)
    g[fused] = formed
    return g


def _times_upstream(u: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""The rows ``g`` times their upstream ``u`` (a column), 0 where ``u`` is 0: a row
    that does not enter the result sends no gradient, even where its own is not finite
    (a reverse row of :math:`D(s\,\|\,t) = +\infty`, formed here for its teacher's
    gradient, then masked by the caller)."""
    with np.errstate(invalid="ignore"):
        return np.where(u == 0.0, 0.0, u * g)


def _teacher_scores(v: np.ndarray, teacher_form: str) -> np.ndarray:
    r"""The teacher's rows as ``_near_rows`` takes them (``_distill``'s
    ``teacher_scores``): logits and log-probabilities as they are, :math:`\log p` of
    probabilities (``-inf`` for 0)."""
    if teacher_form != "probs":
        return v
    with np.errstate(divide="ignore"):
        return np.log(v)


class _HostRows(torch.autograd.Function):
    r"""Per-row :math:`T^2 D(t\,\|\,s)` of student rows ``z`` and teacher rows ``v``
    (rows x classes) in float64, by the NumPy :func:`crossent.distillation_loss` on host
    copies; the gradients by :func:`crossent.distillation_loss_grad`: :math:`T(s - t)`
    in ``z``, and in ``v`` the reverse direction's with the roles swapped,

    .. math:: \frac{\partial\,T^2 D(t\,\|\,s)}{\partial v}
              = T\,t\odot\big(\log t - \log s - D(t\,\|\,s)\big),

    each times the upstream row and rounded once to its input's dtype. With
    ``teacher_form`` and ``direction`` (:func:`_host_loss`), the same functions of the
    same options; the teacher's gradient in its logits only."""

    @staticmethod
    def forward(
        z: torch.Tensor,
        v: torch.Tensor,
        temperature: float,
        teacher_form: str = "logits",
        direction: str = "forward",
    ) -> torch.Tensor:
        return _host_loss(z, v, temperature, teacher_form, direction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        # (the form torch.func takes: under torch.func.grad its forward runs on the
        # unwrapped tensors, host copies as in eager calls)
        z, v, temperature, *options = inputs
        ctx.save_for_backward(z, v)
        ctx.temperature = temperature
        ctx.options = dict(zip(("teacher_form", "direction"), options, strict=False))

    @staticmethod
    def jvp(ctx: Any, *_: Any) -> Any:
        raise InputError(_HOST_UNDER_TORCH_FUNC)

    @staticmethod
    def vmap(info: Any, in_dims: Any, *_: Any) -> Any:
        raise InputError(_HOST_UNDER_TORCH_FUNC)

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # (torch.func.vjp's function runs this after its transform, on its wrappers)
        if under_torch_func() or any(cannot_copy_to_host(x) for x in ctx.saved_tensors):
            return _HostRows._transformed_gradients(ctx, upstream)
        grads = _HostRows._gradients(ctx, upstream)
        if torch.is_grad_enabled() and not upstream.requires_grad:
            return _no_second_derivative(grads, ctx.saved_tensors)
        return grads

    @staticmethod
    @once_differentiable
    def _gradients(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, v = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grads = _host_gradients(z, v, ctx.temperature, upstream, needs[0], needs[1], **ctx.options)
        return (*grads, None, None, None)

    @staticmethod
    def _transformed_gradients(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        r"""The backward under ``torch.func`` (``grad``, ``vjp``, ``jacrev``: eager's
        values, NaN in a truly infinite reverse row). The rows' gradients at a unit
        upstream, :math:`g`, formed on the host from the saved rows' values (under
        functorch's wrappers), then :math:`u\,g` (0 where :math:`u = 0`) by torch
        operations on the upstream :math:`u`, in float64 rounded once, the products
        of eager's :func:`_times_upstream`: so a batched upstream (``jacrev``'s basis)
        is vmap's to batch. :math:`g` is a constant whose derivative raises
        (:class:`_HostConstant`): no second derivative, as in eager calls."""
        z, v = ctx.saved_tensors
        needs = ctx.needs_input_grad[:2]
        values = [examples(x.detach()) for x in (z, v)]
        if values[0][1] or values[1][1]:  # pragma: no cover (the vmapped path raises first)
            raise InputError("crossent: distillation rows formed on the host under vmap")
        # Plain tensors here: under torch.func.grad an operation (a factory too) makes
        # a wrapped tensor, which has no host copy.
        with torch._C._DisableFuncTorch():
            ones = torch.ones(values[0][0].shape[0], dtype=torch.float64)
            units = _host_gradients(
                values[0][0], values[1][0], ctx.temperature, ones, *needs, **ctx.options
            )
        u = upstream.to(torch.float64)[:, None]
        grads: list[torch.Tensor | None] = []
        for g, x in zip(units, (z, v), strict=True):
            if g is None:
                grads.append(None)
                continue
            g = _HostConstant.apply(g.to(torch.float64), z, v)
            grads.append(torch.where(u == 0, 0.0, u * g).to(x.dtype))
        return (*grads, None, None, None)


class _HostConstant(torch.autograd.Function):
    """``value`` (host rows' gradients under ``torch.func``) as a function of the rows
    ``z`` and ``v`` whose derivative raises: a second derivative through host rows
    (``hessian``, ``grad`` of ``grad``) is an error, as in eager calls, not a silent 0."""

    generate_vmap_rule = True

    @staticmethod
    def forward(value: torch.Tensor, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, *_: Any) -> Any:
        raise InputError(_HOST_SECOND_DERIVATIVE)

    @staticmethod
    def jvp(ctx: Any, *_: Any) -> Any:
        raise InputError(_HOST_SECOND_DERIVATIVE)


def _no_second_derivative(
    grads: tuple[torch.Tensor | None, ...], rows: tuple[torch.Tensor, ...]
) -> tuple[Any, ...]:
    r"""``grads`` whose own gradient raises (a ``create_graph`` backward: the host rows
    have no second derivative), also for ``torch.autograd.grad`` of the saved ``rows``.
    ``once_differentiable`` does so only where the upstream requires a gradient; the
    gradients here also depend on the saved rows, so a second derivative through them
    (a gradient penalty) would otherwise be a silent 0."""
    return first_order_only(grads, _HOST_SECOND_DERIVATIVE, tuple(rows))


_HOST_UNDER_TORCH_FUNC = (
    "crossent.torch.distillation_loss: rows formed on the host (far gaps or temperatures, "
    "reverse rows of infinite loss) have reverse-mode derivatives only under torch.func "
    "(grad, vjp, jacrev), not forward mode (jvp, jacfwd, hessian) or vmap: call it outside "
    "vmap, in reverse mode"
)

_HOST_SECOND_DERIVATIVE = (
    "crossent.torch.distillation_loss: rows formed on the host (far gaps or "
    "temperatures) have no second derivative"
)


def _reduced(rows: torch.Tensor, reduction: str, loss: Any, dtype: torch.dtype) -> Any:
    r"""Per-row losses ``rows`` reduced as NumPy's far-row guard reduces them
    (``_far_gaps._reduce``), in float64 and rounded once to ``dtype``: a ``'mean'``
    whose sum :math:`S` overflows as :math:`2^{64}(\sum_i L_i 2^{-64})/N`, which cannot
    overflow where the mean does not (:math:`N < 2^{63}`; rows below
    :math:`2^{-958}` lose bits there, beside a sum past :math:`10^{308}`), else
    :math:`S/N`, the same bits as the scaled form. ``'parts'`` keeps the normalizer of
    the common path's result ``loss`` (:math:`N` without one). No Python number of the
    values or of the shape: traceable, shapes dynamic."""
    if reduction == "none":
        return rows.to(dtype)
    wide, n = rows.double(), rows.numel()
    total = wide.sum()
    if reduction == "mean":
        count = max(n, 1)
        scaled = ((wide * 2.0**-_MEAN_SCALING).sum() / count) * 2.0**_MEAN_SCALING
        return torch.where(torch.isfinite(total), total / count, scaled).to(dtype)
    if reduction == "parts":
        normalizer = rows.new_full((), n, dtype=dtype) if loss is None else loss.normalizer
        return LossParts(total=total.to(dtype), normalizer=normalizer)
    return total.to(dtype)


_MEAN_SCALING = 64
"""The power of two that scales the rows of a ``'mean'`` whose sum overflows (:func:`_reduced`)."""


# ------------------------------------------------------------------ under torch.compile


def _traced(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    reduction: str,
    axis: int,
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r"""The call while ``torch.compile`` traces it: no host read and no graph break. The
    graph holds the generic rows (``_distill.common_rows_and_near_flags``, which
    Inductor fuses) and the rows an eager call forms again, by ``kind``: near rows,
    and far ones (not finite, or where the teacher requires a gradient its far gaps,
    :func:`_teacher_far_gaps`; every row where :math:`T^2` is far). The custom op
    :func:`_rows_formed` forms them at run time, with the one host read of the eager
    call; :func:`_reduced` reduces (a Python branch on ``reduction`` only). A
    ``temperature`` that Dynamo made symbolic (a second value passed to the compiled
    function) is taken by its value, guarded: ``float.hex`` reads it (the option
    checks' ``math.isfinite`` cannot take a symbol), so each value compiles its own
    graph, as a constant does. ``teacher_form`` and ``direction`` go to every call
    that forms rows (reverse rows that are truly infinite are far rows, not finite: eager's
    NaN gradient)."""
    if isinstance(temperature, float):  # (a SymFloat too, under Dynamo)
        temperature = float.fromhex(temperature.hex())
    if _square_is_far(student, teacher, temperature):
        check_reduction(reduction)
        batch = student.movedim(axis, -1).shape[:-1]
        rows = student.new_zeros(batch, dtype=torch.float64)
        near = torch.zeros(batch, dtype=torch.bool, device=student.device)
        far = ~near
    else:
        options = {"teacher_form": teacher_form, "direction": direction}
        d = _near_gradient.softened(student, teacher, temperature, axis, **options)
        rows, near = _distill.common_rows_and_near_flags_of(d)  # (both sides softened once)
        near = _gradient_rows_traced(d, student, teacher, near, teacher_form)
        far = ~torch.isfinite(rows.detach())
        teacher_far = _teacher_far_gaps(student, teacher, temperature, axis)
        far = far if teacher_far is None else far | teacher_far
        fused = _fused_rows_traced(d, student, teacher)
        if fused is not None:  # (kind _FUSED: the graph's loss, the kernels' gradient)
            near = torch.where(near, 1, torch.where(fused, _FUSED, 0))
    kind = torch.where(far, _FAR, near.to(torch.int8))  # (0: the graph's own row)
    formed = _rows_formed(
        rows, student, teacher, kind, float(temperature), axis, teacher_form, direction
    )
    return _reduced(formed, reduction, None, _work_dtype(student, teacher))


def _gradient_rows_traced(
    d: _distill._Distillation,
    student: torch.Tensor,
    teacher: torch.Tensor,
    near: torch.Tensor,
    teacher_form: str,
) -> torch.Tensor:
    r"""The loss's near rows ``near`` of a traced call ``d`` (the prepared sides of
    ``student`` and ``teacher``, whose rows and ``near`` the graph holds: softened once,
    branch distillonce2) and, as the eager call flags them,
    the rows whose gradient is ``NearRows``' (``_near_gradient.gradient_rows``: forward,
    a spread below the floor, the loss's near rows or not), where the eager call forms
    them (a float64 student or teacher, one of them requiring a gradient). Issue 13,
    branch distilltorch15: the compiled call flagged the loss's near rows alone, so a
    row of a small spread and a KL past ``NEAR_CEILING`` kept the graph's gradient:
    student logits ``[0, log1p(-m) + 5e-8, log(m) - 35]`` beside teacher logits ``[0,
    log1p(-m), log(m)]``, :math:`m = (2.9\cdot 10^{-5})^{1/2}`, :math:`T = 1/2`, a
    teacher requiring a gradient: 40 392 units of :math:`2^{-53}` of the row's largest
    entry off (eager 64). Reverse: ``gradient_rows`` picks among ``near`` only, which
    the custom op forms by ``NearRows`` already; where the teacher requires a gradient,
    ``_near_gradient.reverse_teacher_rows`` too (the forward rule of the roles
    swapped, any KL), as eager."""
    if torch.float64 not in (student.dtype, teacher.dtype):
        return near
    forward = d.direction == "forward" and (student.requires_grad or teacher.requires_grad)
    if not (forward or (teacher.requires_grad and teacher_form == "logits")):
        return near
    if forward:
        return near | _near_gradient.gradient_rows(d, near)
    return near | _near_gradient.reverse_teacher_rows(d)


def _fused_rows_traced(
    d: _distill._Distillation, student: torch.Tensor, teacher: torch.Tensor
) -> torch.Tensor | None:
    r"""The rows of a traced call ``d`` whose student gradient the eager call takes from
    the fused kernels (``NearGradients``' ``cancelling`` rows: forward, float64 work, a
    student that requires a gradient beside a teacher that does not, not a teacher taken
    as it is; a spread below ``_near_rows.FUSED_SPREAD`` :math:`\max_c t_c`; the rows
    below ``SPREAD_FLOOR``'s are near rows already), else None. Issue 13, branch
    distfwd3: the compiled call gave them autograd's :math:`T(s - t)` (module
    docstring)."""
    if d.direction != "forward" or d.batch.dtype != torch.float64 or d.given:
        return None
    if not student.requires_grad or teacher.requires_grad:
        return None
    with torch.no_grad():
        t = torch.exp(d.log_t)
        width, top = spread_and_top(torch.exp(d.log_s) - t, t, d.batch.xp)
        return width < _FUSED_SPREAD * top


@torch.library.custom_op("crossent::distillation_rows_formed", mutates_args=())
def _rows_formed(
    rows: torch.Tensor,
    student: torch.Tensor,
    teacher: torch.Tensor,
    kind: torch.Tensor,
    temperature: float,
    axis: int,
    teacher_form: str,
    direction: str,
) -> torch.Tensor:
    r"""The generic path's per-row losses ``rows`` (batch shape) in float64, the rows
    whose ``kind`` (int8, batch shape) is not 0 (1: near, :data:`_FAR`: far) formed
    again by :func:`_host_loss` (the NumPy function, exact there, of ``teacher_form``
    and ``direction``), after the eager call's validation of both sides
    (:func:`_validate`). Its one host read: whether a row is flagged."""
    _validate(student, teacher, axis, teacher_form)
    formed = rows.to(torch.float64, copy=True, memory_format=torch.contiguous_format)
    flagged = (kind == 1) | (kind == _FAR)  # (_FUSED rows: the graph's loss)
    if bool(flagged.any()):
        z, v = student.movedim(axis, -1)[flagged], teacher.movedim(axis, -1)[flagged]
        formed[flagged] = _host_loss(z, v, temperature, teacher_form, direction)
    return formed


@_rows_formed.register_fake
def _rows_formed_fake(rows: torch.Tensor, *_: Any) -> torch.Tensor:
    return rows.new_empty(rows.shape, dtype=torch.float64)


@torch.library.custom_op("crossent::distillation_rows_formed_backward", mutates_args=())
def _rows_formed_backward(
    upstream: torch.Tensor,
    student: torch.Tensor,
    teacher: torch.Tensor,
    kind: torch.Tensor,
    options: list[float],
    need_student: bool,
    need_teacher: bool,
    teacher_form: str,
    direction: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradients of the flagged rows of :func:`_rows_formed` in ``student`` and
    ``teacher`` (:func:`_host_gradients` times the ``upstream`` rows; the near rows but
    the far ones by ``NearRows``), 0 on the other rows (the graph's own), each in its
    input's shape and dtype (contiguous); an empty tensor where not needed. ``options``:
    the forward's temperature and class axis; ``teacher_form`` and ``direction`` its
    own (a teacher's gradient: of its logits only)."""
    grads = _gradient_buffers(student, teacher, need_student, need_teacher, torch.zeros_like)
    flagged = kind != 0
    if not bool(flagged.any()):
        return grads[0], grads[1]
    temperature, axis = options[0], int(options[1])
    z, v = student.movedim(axis, -1)[flagged], teacher.movedim(axis, -1)[flagged]
    near = kind[flagged] == 1
    formed = _host_gradients(
        z,
        v,
        temperature,
        upstream[flagged],
        need_student,
        need_teacher,
        near,
        teacher_form,
        direction,
        kind[flagged] == _FUSED,
    )
    for grad, rows in zip(grads, formed, strict=True):
        if rows is not None:
            grad.movedim(axis, -1)[flagged] = rows
    return grads[0], grads[1]


@_rows_formed_backward.register_fake
def _rows_formed_backward_fake(
    upstream: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor, *rest: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    # rest: kind, options, need_student, need_teacher
    grads = _gradient_buffers(student, teacher, rest[2], rest[3], torch.empty_like)
    return grads[0], grads[1]


def _gradient_buffers(
    student: torch.Tensor,
    teacher: torch.Tensor,
    need_student: bool,
    need_teacher: bool,
    like: Any,
) -> list[torch.Tensor]:
    """Each side's gradient buffer, ``like(x)`` contiguous where needed, else empty."""
    return [
        like(x, memory_format=torch.contiguous_format) if need else x.new_empty((0,))
        for x, need in ((student, need_student), (teacher, need_teacher))
    ]


_FAR = 2
"""The ``kind`` of a far row (:func:`_rows_formed`; 1: a near row, 0: the graph's own)."""

_FUSED = 3
"""The ``kind`` of a row whose loss is the graph's and whose student gradient is the
fused kernels' (:func:`_fused_rows_traced`, :func:`_host_gradients`)."""


def _rows_formed_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    rows, student, teacher, kind, temperature, axis, teacher_form, direction = inputs
    ctx.save_for_backward(student, teacher, kind)
    ctx.options = [temperature, float(axis)]
    ctx.forms = (teacher_form, direction)
    ctx.rows_dtype = rows.dtype


def _rows_formed_autograd(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
    r"""The rows' gradient: ``upstream`` to the generic rows but the flagged ones (0
    there: ``kl_terms_from_log`` holds no :math:`0\cdot\infty`, as for ``_again``'s
    ``index_put``), and :func:`_rows_formed_backward` for those."""
    student, teacher, kind = ctx.saved_tensors
    needs = ctx.needs_input_grad
    grad_rows = grad_z = grad_v = None
    if needs[0]:
        grad_rows = torch.where(kind != 0, 0.0, upstream).to(ctx.rows_dtype)
    if needs[1] or needs[2]:
        grad_z, grad_v = _rows_formed_backward(
            upstream, student, teacher, kind, ctx.options, needs[1], needs[2], *ctx.forms
        )
    return (grad_rows, grad_z if needs[1] else None, grad_v if needs[2] else None) + (None,) * 5


_rows_formed.register_autograd(_rows_formed_autograd, setup_context=_rows_formed_setup)


def _validate(
    student: torch.Tensor, teacher: torch.Tensor, axis: int, teacher_form: str = "logits"
) -> None:
    """The eager call's validation of both sides, the teacher in ``teacher_form``
    (``_sides.prepare_pair``: ``InputError`` naming the argument and the row)."""
    xp, (z, v) = namespace(student, teacher, names=("student_logits", "teacher"))
    prepare_pair(
        z,
        v,
        names=("student_logits", "teacher"),
        forms=("logits", cast("Form", teacher_form)),  # (checked by the trace: the options)
        axis=axis,
        xp=xp,
        validate=True,
    )
