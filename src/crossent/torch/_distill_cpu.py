r"""``crossent.torch.distillation_loss`` of CPU tensors by fused kernels (issue 13 follow-up).

The generic path (:mod:`._far_distillation`) records crossent's array-API formula with
autograd: some 35 arrays of the call's size, 8.7 s for the forward and backward of
4096 x 32000 float32 at :math:`T = 2`, where PyTorch's ``kl_div`` idiom takes 2.6.
Here, for CPU student and teacher logits of one floating dtype, rows x classes
(:func:`applies`: a 2-D call whose teacher requires no gradient, ``reduction`` of
``'mean'``, ``'sum'`` or ``'none'``, a :math:`T` whose square is normal), one custom op
``crossent::distillation_cpu_rows_v2`` forms the per-row :math:`T^2 D(t\,\|\,s)` by
``losses._distill_numba``'s forward kernel (two passes over each row, float64, no
N x V array), and its registered backward ``crossent::distillation_cpu_rows_backward``
the gradient :math:`u_i T (s - t)` in the student by the backward kernel, each entry
formed in float64 and rounded once (to float32 first for float16 and bfloat16 logits,
as the generic path's float32 work rounds them). Only the student gets a gradient.

The rows that the kernels do not form go to the NumPy functions, on float64 host copies
of those rows only (``_far_distillation._host_loss`` and ``_host_gradients``): exact
there, as for the generic path's far rows.

* A row whose KL is not finite: a NaN or an infinity in its logits (the op then runs
  the generic path's validation, ``_far_distillation._validate``: the same
  ``InputError``), a student ``-inf`` beside a teacher probability above 0 (valid:
  ``inf``, formed by NumPy), a gap past the range. Other ``-inf`` logits (a masked
  vocabulary) the kernels form (``losses._distill_numba``).
* A row whose KL is below ``_near_rows.KL_FLOOR`` (student and teacher nearly agree,
  its terms cancel): :func:`crossent.distillation_loss` forms it by ``_near_rows``,
  and its gradient ``_near_rows.NearRows``' (``_host_gradients``' ``near``).
* In the backward, a row whose :math:`\max_c|s_c - t_c|` is below
  ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c` (where :math:`s - t` cancels):
  :func:`crossent.distillation_loss_grad`, which forms those rows the same way.

The reduction is ``_far_distillation._reduced``'s (in float64, a ``'mean'`` whose sum
overflows scaled), rounded once to the generic path's dtype (float64 for float64
logits, float32 otherwise). The kernels read float32 and float64 rows as they are
(each entry widened as it is read; the backward writes the float32 or float64
gradient itself: one compilation of each kernel per dtype); float16 and bfloat16 rows
are widened into float64 blocks a block at a time (exact), their gradient formed in
a float64 block. Blocks of rows are shared between two threads (the kernels release
the GIL): the dispatch of ``losses._distill_rows``, which the NumPy
``crossent.distillation_loss`` shares (``losses._distill_fused``).

Measured (``benchmarks/bench_torch_distill_compile.py --versus-plain --compiled-plain
--shapes 512x32000,4096x32000 --repeats 3 --rounds 3 --against`` acdb998's tree, wall
seconds of forward and backward, T = 2, ``'mean'``, 2-core AMD EPYC Zen 4, quiet, load
0.6-1.7, best (median)): 4096 x 32000 float32 0.69 s (0.72) against acdb998's 1.24
(1.34), PyTorch's ``kl_div`` idiom 2.08-2.16 and the idiom under ``torch.compile``
0.55-0.62; 512 x 32000 0.084 (0.099) against 0.160, idiom 0.26-0.29, compiled idiom
0.074-0.075. A second run of 4096 x 32000 alone: 0.75 s, idiom 2.68, compiled idiom
0.66. Peak resident set of one call in a fresh process at 4096 x 32000 float32:
2421 MiB (the idiom 4242, compiled 2392; the inputs, the student's copy and its
gradient are 2000). The kernels take about 2.6 and 2.0 ns a logit a thread (forward,
backward; ``bench_distill_kernels.py``); the compiled idiom, which keeps float32 and
one exponential a logit each way, was then still 10-25 % faster at this size (since
the forward writes the gradient, below, crossent is ahead: 4096 x 32000 0.405 s against
the compiled idiom's 0.562 s, best of 3, RESULTS.md "Addendum ... 2026-12-03 late").
Half of the backward op's CPU time was the page faults of ``torch.empty``'s gradient
(first touched by the kernel in 4 KiB pages); the gradient is now NumPy's memory
(:func:`_fresh`: transparent huge pages). And an eager call whose float32 or float64
student requires a gradient, reduced by ``'mean'`` or ``'sum'`` (:func:`_upstream_ahead`),
gets its gradient from the forward op, for the upstream that ``loss.backward()`` gives
(:math:`1/N` or 1 a row): the forward kernel writes it from each row's exponentials
(``_distill_numba.distillation_forward_gradient_kernel``: the backward kernel's bits,
two exponentials a logit in all instead of four), and the backward returns it where
the upstream is that one (else, under ``create_graph`` and on a second backward, the
backward op forms it: the same bits). It is held from the forward to the backward
(one N x V array of the student's dtype: the compiled idiom keeps two, its
``log_softmax`` outputs; the peak resident set of one call is unchanged, 2425 MiB).
Under ``torch.compile`` the backward op forms it (no branch on values in the graph).
Measured (``bench_torch_distill_compile.py --breakdown --shapes 1024x32000 --repeats 3
--rounds 3 --against`` main's tree, float32, T = 2, ``'mean'``, one thread, thread CPU
time, best of 9, load 1.2-1.8): forward and backward 105 ms against main's 198 and the
compiled idiom's 167-175 (its forward alone 60; the floor of one read of both inputs
and one write of the gradient: 74-81 ms into ``torch.empty``'s memory, 23-25 into
NumPy's). End to end (``--versus-plain --compiled-plain --shapes 4096x32000 --repeats 3
--rounds 3 --against``, two threads, wall, load 1.2-2.6): 0.48 s (median 0.77) against
main's 0.74 (1.23), the compiled idiom 0.55-0.70 (1.08-1.22).

Every ``teacher_form`` and ``direction`` of :func:`crossent.distillation_loss` (issue 13
follow-up: on main the other options ran the generic path, 21 ms against 1.7 for the
forward and backward of 256 x 1000 float32): the kernels read the teacher as logits
(its log-probabilities as they are, the log of its probabilities formed in float64
into the thread's block, :func:`_wide`), the reverse direction is the forward kernel
of the roles swapped and a reverse backward kernel (``_distill_rows.Options``; no
gradient written ahead), and at :math:`T = 1` a teacher of probabilities or
log-probabilities is taken as it is (the generic path's ``log_t``, not renormalised:
``_distill_numba._given``). Such a teacher is validated as the generic path validates
it (:func:`_validate_teacher`: the kernels' log-sum-exp of each row screens it, one
exponential more a logit at :math:`T \ne 1`; the generic check where a row fails). A reverse
row whose :math:`D(s\,\|\,t)` is truly infinite is a row the op forms on the host
(``kind`` 2: ``inf``, and in the backward NumPy's NaN gradient, 0 in its ``-inf``
classes and where its upstream is 0), by the functions that the generic path's
``_far_distillation._again`` calls for it; the
second derivative of the options' backward op is autograd's through a torch formula
of its output (:func:`_second_derivative_of_options`).

Reverse calls take the op under ``torch.compile`` too (issue 13, branch distrev1).
Before, a reverse call with a truly infinite row left the op for the generic path
(one read of ``kind``; the generic path formed those rows by the same NumPy
functions, so the read bought nothing since branch 0300c4df), and compiled reverse
calls, which cannot read, kept the generic graph: its :math:`s = e^{\log s}` of a
rounded :math:`\log s` (:math:`|\log s|\,2^{-53}` relative), its :math:`D` and its
autograd difference :math:`s(d + 1) - s\sum_k s_k(d_k + 1)` put the student's gradient
3630 units of :math:`2^{-53}` of the row's largest entry off mpmath on 64 rows of
N(0, 60^2) logits at :math:`T = 1` (7960 at :math:`T = 1/2`), 393 of :math:`2^{-23}` in
float32, where the op was 80 (130) and 0.48 (``benchmarks/check_distill_reverse_compiled.py``),
now 4.5 (2.8) and 0.48: the reverse kernel's float64 factor is exact, and the op
leaves every float64 reverse row but those that are not finite to it, near rows too
(branch distgrad1; float32 gradients as before).

Under ``torch.compile`` the op is one node (its fake kernel gives the shapes), with
``fullgraph=True`` too; the validation and the host rows run inside it at run time.
The forward op's name is ``_v3`` since it gained ``teacher_form`` and ``direction``
(``_v2``: ``upstream`` and the gradient written ahead), the backward op's ``_v2`` (a
changed schema takes a new name: compiled-graph caches key a graph by the ops' names,
``_ops``' module note). The backward op has an autograd formula of its own
(:func:`_second_derivative`), by torch operations: a gradient penalty differentiates
through it as through the generic path's graph.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from .._checks import row_sum_tolerance
from .._xp import namespace
from ..losses import _cpu_kernels, _distill_rows
from ..losses._near_rows import formable
from ..losses._numpy_kernels import as_float32
from ._arguments import functorch_reverse_mode, grad_recorded, has_tangent
from ._far_distillation import (
    _host_gradients,
    _host_loss,
    _reduced,
    _square_is_far,
    _validate,
    _work_dtype,
)
from ._launch import _from_stored, _stored

__all__ = ["applies", "fused_distillation"]

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_REDUCTIONS = ("mean", "sum", "none")
_FORMS = ("logits", "probs", "log_probs")
_DIRECTIONS = ("forward", "reverse")


def applies(
    student: Any,
    teacher: Any,
    temperature: Any,
    reduction: Any,
    teacher_form: Any = "logits",
    direction: Any = "forward",
) -> bool:
    """Whether the call goes through the fused op (module docstring); anything else, an
    invalid call included, takes the generic path, which names the error."""
    if not (isinstance(student, torch.Tensor) and isinstance(teacher, torch.Tensor)):
        return False
    if teacher_form not in _FORMS or direction not in _DIRECTIONS:
        return False
    if student.device.type != "cpu" or teacher.device.type != "cpu":
        return False
    if student.dtype not in _DTYPES or teacher.dtype != student.dtype:
        return False
    if student.ndim != 2 or student.shape != teacher.shape or student.numel() == 0:
        return False
    if teacher.requires_grad and grad_recorded():
        return False
    if has_tangent(student, teacher):  # forward-mode AD: the op would drop the tangent
        return False
    if functorch_reverse_mode():  # torch.func.grad, jacrev: the op's autograd cannot run
        return False
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        return False
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, (bool, np.bool_)):
        return False
    value = _value(temperature)
    if not 0.0 < value < math.inf or _square_is_far(student, teacher, value):
        return False
    return _cpu_kernels.available()


def _value(temperature: Any) -> float:
    """``temperature`` as a Python float (a symbolic float under Dynamo by its value,
    as ``_far_distillation._traced`` reads it)."""
    if isinstance(temperature, float):
        return float.fromhex(temperature.hex())
    return float(temperature)


def fused_distillation(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: Any,
    reduction: str,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> Any:
    r""":math:`T^2 D(\operatorname{softmax}(v/T)\,\|\,\operatorname{softmax}(z/T))` of
    student logits ``student`` (:math:`z`) and ``teacher`` (:math:`v`, in
    ``teacher_form``), rows x classes, reduced (``'reverse'``: :math:`T^2 D(s\,\|\,t)`),
    for a call that :func:`applies`. A reverse row whose :math:`D(s\,\|\,t)` is truly
    infinite is one the op forms on the host (``kind`` 2): ``inf``, and in the backward
    ``_far_distillation._host_gradients``' NaN (0 in its ``-inf`` classes, 0 where its
    upstream is 0), as the generic path's ``_again`` forms it (the same functions)."""
    value = _value(temperature)
    ahead = 0.0 if direction == "reverse" else _upstream_ahead(student, reduction)
    v = teacher.detach()
    rows, _, _, _ = distillation_cpu_rows(student, v, value, ahead, teacher_form, direction)
    return _reduced(rows, reduction, None, _work_dtype(student, teacher))


def _upstream_ahead(student: torch.Tensor, reduction: str) -> float:
    r"""The upstream :math:`u_i` of every row that ``loss.backward()`` of the reduced
    loss gives (:func:`_reduced`: :math:`1/N` for ``'mean'``, 1 for ``'sum'``), for
    which the forward op writes the gradient ahead: an eager call whose float32 or
    float64 student requires a gradient; 0 (none) otherwise, ``'none'`` and under
    ``torch.compile`` included."""
    if reduction == "none" or not (student.requires_grad and grad_recorded()):
        return 0.0
    if student.dtype not in _AHEAD_DTYPES or torch.compiler.is_compiling():
        return 0.0
    return 1.0 / max(student.shape[0], 1) if reduction == "mean" else 1.0


_AHEAD_DTYPES = (torch.float32, torch.float64)
"""The dtypes whose gradient the forward op writes ahead (the kernels' own: ``_wide``)."""


def _wide(
    x: torch.Tensor, blocks: _distill_rows.Blocks, slot: int, probs: bool = False
) -> np.ndarray:
    """``x`` (rows x classes) as the kernels read it: a float32 or float64 tensor as it
    is (contiguous: a copy only where it is not), float16 and bfloat16 widened by NumPy
    (exact) into the thread's float64 block ``slot`` of ``blocks``; bfloat16 by its
    bits, which NumPy cannot read (``_launch._stored`` and ``_numpy_kernels.as_float32``).
    ``probs``: probabilities, as their logarithms formed in float64 into that block
    (``_distill_rows.log_of_probs``)."""
    stored = _stored(x.detach())
    if stored.dtype == np.uint16:
        stored = as_float32(stored)
    elif stored.dtype in _distill_rows.KERNEL_DTYPES and not probs:
        return stored
    block = blocks.get(slot, stored.shape[0])
    if probs:
        return _distill_rows.log_of_probs(stored, block)
    np.copyto(block, stored)
    return block


def _blocks_of(
    student: torch.Tensor,
    teacher: torch.Tensor,
    blocks: _distill_rows.Blocks,
    teacher_form: str = "logits",
) -> _distill_rows.Wide:
    """The kernels' ``wide(start, stop)`` of ``student`` and ``teacher`` (:func:`_wide`,
    in ``blocks``' slots 0 and 1; a teacher of probabilities as their logarithms)."""
    probs = teacher_form == "probs"
    return lambda start, stop: (
        _wide(student[start:stop], blocks, 0),
        _wide(teacher[start:stop], blocks, 1, probs),
    )


def _threads() -> int:
    """The threads over the blocks of rows: two at most, within torch's own count."""
    return min(max(1, torch.get_num_threads()), 2)


@torch.library.custom_op("crossent::distillation_cpu_rows_v3", mutates_args=())
def distillation_cpu_rows(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    upstream: float = 0.0,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-row :math:`T^2 D(t\,\|\,s)` (float64), each row's statistics :math:`(D, m_z,
    \ell_s, m_v, \ell_t, L)` (float64, rows x 6: the backward's, ``_distill_rows.
    forward_statistics``) and its ``kind`` (int8: 0
    formed by the kernel, 1 a near row, 2 a row that is not finite, both formed by the
    NumPy function) of student and teacher logits (rows x classes, CPU); and where
    ``upstream`` is not 0 (a float32 or float64 student), the gradient that
    :func:`distillation_cpu_rows_backward` gives for that upstream on every row, the same
    bits, formed by the forward kernel from each row's exponentials (two a logit in all,
    not four; :func:`_upstream_ahead`), else an empty 0 x classes tensor.

    ``teacher_form`` and ``direction`` as :func:`crossent.distillation_loss`'s
    (``_distill_rows.Options``: the teacher's log-probabilities, or the log of its
    probabilities, as logits; ``'reverse'``: :math:`T^2 D(s\,\|\,t)`, ``upstream`` 0); a
    teacher of probabilities or log-probabilities validated as the generic path does
    (:func:`_validate_teacher`)."""
    rows, classes = student.shape
    options = _distill_rows.Options(teacher_form, direction)
    wide = _blocks_of(student, teacher, _distill_rows.Blocks(classes), teacher_form)
    ahead, gradient = None, None
    if upstream and not options.reverse:
        ahead, small = _fresh(student), np.zeros(rows, dtype=np.bool_)
        scale = np.full(rows, upstream * temperature)  # (the backward op's u T, bit for bit)
        gradient = (scale, lambda start, stop: ahead[start:stop].numpy(), small)
    stats = _distill_rows.forward_statistics(
        rows, classes, temperature, wide, _threads(), gradient, options
    )
    _validate_teacher(student, teacher, stats, teacher_form)
    loss_rows, kinds = _distill_rows.row_kinds(stats, temperature)
    loss, kind = torch.from_numpy(loss_rows), torch.from_numpy(kinds)
    # (the flags tested in NumPy: each torch op on a tensor of the rows cost some 3 us a
    # call, issue 13, branch nearrows2)
    flagged_rows = kinds != 0
    if flagged_rows.any():
        if (kinds == 2).any():  # a NaN or an infinity: the generic path's error, if any
            _validate(student, teacher, 1, teacher_form)
        flagged = torch.from_numpy(flagged_rows)
        z, v = student[flagged], teacher[flagged]
        loss[flagged] = _host_loss(z, v, temperature, teacher_form, direction)
    if ahead is None:
        return loss, torch.from_numpy(stats), kind, student.new_empty((0, classes))
    u = torch.full((rows,), upstream, dtype=torch.float64)
    _host_rows(ahead, student, teacher, kind, small, u, temperature, options)
    return loss, torch.from_numpy(stats), kind, ahead


def _validate_teacher(
    student: torch.Tensor, teacher: torch.Tensor, stats: np.ndarray, teacher_form: str
) -> None:
    """The generic path's validation of a teacher of probabilities or log-probabilities
    (``_far_distillation._validate``: ``InputError`` naming the argument and the row, the
    student first), only where the kernels' statistics do not surely pass it
    (``_distill_rows.teacher_passes``: the teacher's log-sum-exp of each row)."""
    if teacher_form == "logits":
        return
    xp, _ = namespace(teacher, names=("teacher",))
    tolerance = row_sum_tolerance(teacher.dtype, teacher.shape[1], xp=xp)
    if not _distill_rows.teacher_passes(stats, teacher_form, tolerance):
        _validate(student, teacher, 1, teacher_form)


@distillation_cpu_rows.register_fake
def _distillation_cpu_rows_fake(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    upstream: float = 0.0,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, classes = student.shape
    ahead = upstream and direction == "forward"
    return (
        student.new_empty((rows,), dtype=torch.float64),
        student.new_empty((rows, 6), dtype=torch.float64),
        student.new_empty((rows,), dtype=torch.int8),
        student.new_empty((rows if ahead else 0, classes)),
    )


@torch.library.custom_op("crossent::distillation_cpu_rows_backward_v2", mutates_args=())
def distillation_cpu_rows_backward(
    upstream: torch.Tensor,
    student: torch.Tensor,
    teacher: torch.Tensor,
    stats: torch.Tensor,
    kind: torch.Tensor,
    temperature: float,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> torch.Tensor:
    r"""``upstream[i]`` times the gradient :math:`T(s_i - t_i)` of row ``i`` of
    :func:`distillation_cpu_rows` in ``student`` (``'reverse'``: :math:`T s_i \odot
    (\log s_i - \log t_i - D_i)`), in its dtype (contiguous): the kernel's rows, the
    flagged ones (``kind``, the backward kernel's small spreads) by
    ``_far_distillation._host_gradients``."""
    classes = student.shape[1]
    options = _distill_rows.Options(teacher_form, direction)
    grad = _fresh(student)
    scale = _scale(upstream.detach(), temperature)
    statistics = stats.contiguous().numpy()
    numpy_grad = None if student.dtype == torch.bfloat16 else grad.numpy()
    direct = numpy_grad is not None and numpy_grad.dtype in _distill_rows.KERNEL_DTYPES  # (_wide)

    blocks = _distill_rows.Blocks(classes)

    def target(start: int, stop: int) -> np.ndarray:
        return grad[start:stop].numpy() if direct else blocks.get(2, stop - start)

    def store(start: int, stop: int, block: np.ndarray) -> None:
        narrow = block.astype(np.float32)  # rounded to float32 first, as the generic path's work
        if numpy_grad is not None:  # float16 (float32 where KERNEL_DTYPES leaves it out)
            numpy_grad[start:stop] = narrow
        else:
            grad[start:stop] = torch.from_numpy(narrow).to(torch.bfloat16)

    wide = _blocks_of(student, teacher, blocks, teacher_form)
    spread_small = _distill_rows.backward_rows(
        classes,
        statistics,
        temperature,
        scale,
        wide,
        target,
        None if direct else store,
        _threads(),
        options,
    )
    _host_rows(grad, student, teacher, kind, spread_small, upstream.detach(), temperature, options)
    return grad


def _host_rows(
    grad: torch.Tensor,
    student: torch.Tensor,
    teacher: torch.Tensor,
    kind: torch.Tensor,
    spread_small: np.ndarray,
    upstream: torch.Tensor,
    temperature: float,
    options: _distill_rows.Options = _distill_rows.FORWARD_LOGITS,
) -> None:
    """The rows of ``grad`` that the kernels leave to the host (``kind`` not 0, a small
    spread) formed again by ``_far_distillation._host_gradients`` (with ``options``'
    ``teacher_form`` and ``direction``), in place."""
    # (a reverse gradient but float32's: the kernel forms near rows (kind 1) within a few
    # units, NearRows' gradient some 5; only rows that are not finite go to the host)
    exact = options.reverse and grad.dtype != torch.float32
    host = ((kind == 2) if exact else (kind != 0)) | torch.from_numpy(spread_small)
    if bool(host.any()):
        z, v, u = student[host], teacher[host], upstream[host]
        # near rows by NearRows' gradients, but those it cannot form (a -inf logit on one
        # side: NaN there): distillation_loss_grad's, as before the kernels formed them
        scores = v.double().log() if options.teacher_form == "probs" else v.double()
        near = (kind[host] == 1) & formable(z.double(), scores, torch)
        form, direction = options.teacher_form, options.direction
        formed, _ = _host_gradients(z, v, temperature, u, True, False, near, form, direction)
        if formed is not None:  # (always: the student's gradient was asked for)
            grad[host] = formed


def _fresh(student: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``student``'s shape and dtype whose memory
    NumPy allocates: NumPy asks Linux for transparent huge pages for a large array
    (``madvise``), so the gradient's first touch faults in 2 MiB pages, not 4 KiB ones
    (``torch.empty``'s: some 0.45 ms a MiB on the Zen 4 KVM guest below, as much CPU time
    as the backward kernel's arithmetic; ``_launch.backward``'s gradient is NumPy's too)."""
    memory = np.empty(tuple(student.shape), dtype=_STORED[student.dtype])
    return _from_stored(memory, student.dtype)


def _scale(upstream: torch.Tensor, temperature: float) -> np.ndarray:
    """:math:`u T` per row in float64 (contiguous): by NumPy where ``upstream`` is float32
    or float64 (the same products; three torch ops on a tensor of the rows cost some 10
    us a call, issue 13, branch nearrows2), else by torch."""
    if upstream.dtype in _AHEAD_DTYPES and upstream.device.type == "cpu" and not upstream.is_neg():
        return upstream.numpy().astype(np.float64) * temperature
    return (upstream.to(torch.float64) * temperature).contiguous().numpy()


_STORED = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.float16: np.float16,
    torch.bfloat16: np.uint16,
}
"""The NumPy dtype of a gradient's memory (bfloat16: its bits, ``_launch._from_stored``)."""


@distillation_cpu_rows_backward.register_fake
def _distillation_cpu_rows_backward_fake(
    upstream: torch.Tensor, student: torch.Tensor, *_: Any
) -> torch.Tensor:
    return torch.empty_like(student, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    student, teacher, temperature, upstream, teacher_form, direction = inputs
    _, stats, kind, ahead = output
    ctx.save_for_backward(student, teacher, stats, kind)
    ctx.mark_non_differentiable(stats, kind, ahead)
    ctx.set_materialize_grads(False)  # (no N x V zeros for ahead's gradient: None)
    ctx.temperature = temperature
    ctx.forms = (teacher_form, direction)
    upstream = upstream if direction == "forward" else 0.0  # (reverse: no gradient ahead)
    # (not saved for backward: its one reference goes to autograd, which keeps it as the
    # leaf's gradient instead of a copy)
    ctx.ahead = (ahead, upstream) if upstream else None


def _backward(ctx: Any, upstream: torch.Tensor | None, *_: Any) -> tuple[Any, ...]:
    r"""The gradient in the student: the forward op's, written ahead, where every row's
    upstream is the one it assumed (once; not under ``create_graph``, whose gradient
    records the backward op), else :func:`distillation_cpu_rows_backward`'s (the same
    bits)."""
    student, teacher, stats, kind = ctx.saved_tensors
    ahead, ctx.ahead = ctx.ahead, None
    grad = None
    if ctx.needs_input_grad[0] and upstream is not None:
        if ahead is not None and not torch.is_grad_enabled() and bool((upstream == ahead[1]).all()):
            return ahead[0], None, None, None, None, None
        grad = distillation_cpu_rows_backward(
            upstream, student, teacher, stats, kind, ctx.temperature, *ctx.forms
        )
    return grad, None, None, None, None, None


distillation_cpu_rows.register_autograd(_backward, setup_context=_setup_context)


def _backward_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    upstream, student, teacher, _, _, temperature, teacher_form, direction = inputs
    ctx.save_for_backward(upstream, student, teacher)
    ctx.temperature = temperature
    ctx.forms = (teacher_form, direction)


def _second_derivative(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
    r"""The derivatives of :math:`\langle W, G\rangle`, :math:`G_i = u_i T (s_i - t_i)`
    (the backward op's output), in the upstream :math:`u` and the student :math:`z`:

    .. math:: T \sum_c W_{ic}(s_{ic} - t_{ic}), \qquad
              u_i\big(s_i \odot W_i - s_i\,(s_i \cdot W_i)\big)

    (:math:`\partial s/\partial z = (\operatorname{diag} s - s s^\top)/T`), by torch
    operations in the generic path's work dtype, recorded by autograd in their turn."""
    upstream, student, teacher = ctx.saved_tensors
    temperature = ctx.temperature
    needs = ctx.needs_input_grad
    if ctx.forms != ("logits", "forward"):
        return _second_derivative_of_options(ctx, w)
    work = _work_dtype(student, teacher)
    s = torch.softmax(student.to(work) / temperature, 1)
    w = w.to(work)
    grad_u = grad_z = None
    if needs[0]:
        t = torch.softmax(teacher.to(work) / temperature, 1)
        grad_u = (temperature * ((s - t) * w).sum(1)).to(upstream.dtype)
    if needs[1]:
        sw = s * w
        grad_z = upstream.to(work)[:, None] * (sw - s * sw.sum(1, keepdim=True))
        grad_z = grad_z.to(student.dtype)
    return grad_u, grad_z, None, None, None, None


distillation_cpu_rows_backward.register_autograd(
    _second_derivative, setup_context=_backward_setup_context
)


def _second_derivative_of_options(ctx: Any, w: torch.Tensor) -> tuple[Any, ...]:
    r""":func:`_second_derivative` of the other options (``ctx.forms``): the backward
    op's output :math:`G` formed again by torch operations in the work dtype
    (:func:`_gradient_formula`), its vector-Jacobian product with :math:`W` by
    autograd (recorded in its turn, for a third derivative too)."""
    upstream, student, teacher = ctx.saved_tensors
    needs = ctx.needs_input_grad
    work = _work_dtype(student, teacher)
    with torch.enable_grad():
        u = upstream.detach().to(work).requires_grad_(needs[0])
        z = student.detach().to(work).requires_grad_(needs[1])
        g = _gradient_formula(u, z, teacher.detach().to(work), ctx.temperature, *ctx.forms)
        inputs = [x for x, need in ((u, needs[0]), (z, needs[1])) if need]
        grads = list(torch.autograd.grad(g, inputs, w.to(work), create_graph=True))
    grad_u = grads.pop(0).to(upstream.dtype) if needs[0] else None
    grad_z = grads.pop(0).to(student.dtype) if needs[1] else None
    return grad_u, grad_z, None, None, None, None, None, None


def _gradient_formula(
    u: torch.Tensor,
    z: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    teacher_form: str,
    direction: str,
) -> torch.Tensor:
    r"""The backward op's :math:`G_i = u_i T (s_i - t_i)` (``'reverse'``: :math:`u_i T
    s_i \odot (\log s_i - \log t_i - D(s_i\,\|\,t_i))`) by torch operations, the
    teacher softened as the generic path softens it (at :math:`T = 1` probabilities and
    log-probabilities as they are; a teacher probability 0 adds nothing)."""
    log_s = torch.log_softmax(z / temperature, 1)
    log_t = v.log() if teacher_form == "probs" else v
    if teacher_form == "logits" or temperature != 1.0:
        log_t = torch.log_softmax(log_t / temperature, 1)
    s = log_s.exp()
    if direction == "forward":
        return u[:, None] * temperature * (s - log_t.exp())
    difference = log_s - log_t.masked_fill(torch.isneginf(log_t), 0.0)
    terms = torch.where(s > 0, s * difference, 0.0)
    kl = terms.sum(1, keepdim=True)
    return u[:, None] * temperature * torch.where(s > 0, s * (difference - kl), 0.0)
