r"""Vocab-parallel softmax cross-entropy on ``torch.distributed``: the logits' class axis sharded.

Design
------
Rank :math:`r` of a group of :math:`k` holds the contiguous slice
:math:`[o_r, o_r + V_r)` of the :math:`V` classes (rank order; uneven sizes, empty slices
allowed), and every rank holds the same integer labels. The loss is exactly the unsharded
one of :func:`crossent.softmax_cross_entropy` (formula and names in
:mod:`crossent.losses._softmax`):

.. math::

    L_i = A_i\,\ell_i - B_i + \lambda\,\omega_i\,\operatorname{LSE}_i^2,\qquad
    A_i = (1-\varepsilon)\,w_{y_i} + \tfrac{\varepsilon}{V}\textstyle\sum_{c<V} w_c,\qquad
    B_i = (1-\varepsilon)\,w_{y_i}\sigma_{i y_i}
        + \tfrac{\varepsilon}{V}\textstyle\sum_{c<V} w_c\,\sigma_{ic}

with :math:`z' = s\tanh(z/s)/T`, :math:`m_i = \max_c z'_{ic}`, :math:`\sigma = z' - m \le 0`,
:math:`\ell_i = \log\sum_c e^{\sigma_{ic}}`, :math:`\operatorname{LSE} = m + \ell` and
:math:`\omega_i = w_{y_i}` (0 on ignored rows). Every sum over classes is over the *whole*
vocabulary: the smoothing term uses :math:`V` and :math:`\sum_{c<V} w_c`, never the shard's
(Megatron-LM issue #737: its smoothing term averaged the log-probabilities over the local
shard only, so its loss changed with the parallel degree).

**Forward: three collectives.** The first is the agreement
(:mod:`crossent.torch._agreement`): one ``all_gather`` of a fixed-size record per rank (16
integers) that carries whether this rank's own checks failed, its slice width (so every
rank learns the slice sizes on every call), and what must be the same on every rank: the
number of rows, the batch shape, the dtype and the device type, the options, a fingerprint
of the labels, whether class weights are given and a fingerprint of them, and for the
linear loss the features and whether ``input`` needs a gradient (which decides the
backward's collective). A failed check or a difference on any rank raises the same
:class:`~crossent.errors.InputError` on every rank, naming the rank(s) and the values,
before any collective whose size depends on the data (issue 13: one rank's bad argument
raised there and left the others waiting; a different number of rows, or label smoothing on
one rank only, sent collectives of different sizes, which gloo answers by aborting the
processes; different labels gave a wrong loss without an error).
Then each rank summarises its slice per row against its own maximum :math:`m_{ir}`
(0 where the slice is empty or all ``-inf``): the sum
:math:`\rho_{ir}` of the terms below :math:`m_{ir}`, the number :math:`\tau_{ir}` of terms
equal to it, :math:`z'_{iy} - m_{ir}` if it owns the label, and
:math:`\sum_{c} w_c (z'_{ic} - m_{ir})` over its slice. Then

2. ``all_reduce(MAX)`` of the row maxima, :math:`m_i = \max_r m_{ir}` (one value per row);
3. ``all_reduce(SUM)`` of one ``(rows, 3 or 4)`` buffer (plus one flag entry) fusing the
   sum of exponentials (as :math:`\rho` and :math:`\tau`), the target logit and the smoothing
   sum, each first moved from :math:`m_{ir}` to :math:`m_i` locally:
   :math:`\rho_{ir} + \tau_{ir}` times :math:`e^{m_{ir} - m_i}` where :math:`m_{ir} < m_i`,
   and :math:`m_{ir} - m_i` (times the slice's weight sum) added to the others; both parts
   of each sum are :math:`\le 0`, so there is no cancellation even for logits of
   :math:`\pm 10^4`. The buffer is float64: the target and smoothing sums of
   :math:`(c - m)/T` leave float32's range for logits near :math:`\pm 3\cdot 10^{38}`
   and :math:`T < 1` where the loss, which weighs them by a class weight or
   :math:`\varepsilon/V`, need not (issue 13); they are formed in float64 on each rank.

Then :math:`\ell = \operatorname{log1p}(\rho + \tau - 1)`: the maximal terms are counted,
not added, as in :func:`crossent._xp.log_sum_exp_shifted`, so a near-deterministic row keeps
its tiny log-partition. The flag entry counts NaN and ``+inf`` logits on every rank, so a bad
value on one rank raises the same :class:`~crossent.errors.InputError` on all of them (no
rank is left waiting in a collective).

**Slice sizes** come from the agreement's records, on every call (they used to be
cached per group and re-checked inside the MAX all-reduce: one collective less, but
no rank could tell that the others' rows or options differed from its own).

**Backward: no collectives** for :func:`vocab_parallel_cross_entropy`: each rank writes the
gradient of its own slice,

.. math:: \partial L_i / \partial z'_{ic} = (A_i + 2\lambda\omega_i\operatorname{LSE}_i)\,
          e^{\sigma_{ic} - \ell_i} - (1-\varepsilon)\,\omega_i [c = y_i]
          - \tfrac{\varepsilon}{V} w_c,

times the upstream gradient and the chain rule :math:`\operatorname{sech}^2(z/s)/T`
(``_launch._times_cap_slope_``'s :math:`4v/(1+v)^2`, :math:`v = e^{-2|z|/s}`: no
cancellation where :math:`|z| \gg s`, as :math:`1 - \tanh^2` has), from the saved
logits and the per-row :math:`m, \ell` and coefficients.
:func:`vocab_parallel_linear_cross_entropy` computes the logits
:math:`h W_r^\top + b_r` of its slice of the classifier chunk by chunk of rows (never the
whole ``N x V_r`` block), recomputes them in backward (four matrix products in all, as the
gradients need the global :math:`\operatorname{LSE}`, known only after the forward's
collectives), and ends its backward with one ``all_reduce(SUM)`` of the input gradient
:math:`\sum_r G_r W_r` (each rank holds only its slice's part).

The option terms come from :mod:`crossent.losses._terms`, the one home of each formula
(smoothing coefficients and the :math:`A, B` of a label, the weighted class sums, the
z-loss and its gradient coefficient), called here on torch tensors through the Array
API; only their split across ranks is written here. The soft cap and its slope are
``crossent.torch._launch``'s (``_soft_capped``, ``_times_cap_slope_``), in place where
the tensor is this module's own.

Each rank's own checks (options, types, shapes, class weights) run before the agreement,
which shares their outcome; the checks against the global :math:`V` (label range, class
weights' length) right after it, on data the agreement has shown to be the same on every
rank; the checks of the logits (NaN, ``+inf``, a row of ``-inf``) after the collectives,
which share them: so every rank raises the same error. Not checked: that ``input`` of the
linear loss (the hidden states) is the same on every rank (a pass over it on each call),
and that the slices are in rank order (no data names a class). A rank that passes
another ``group`` than the others, or does not call, cannot be detected by any exchange:
the others wait until the group's timeout (then an ``InputError`` says so). The checks
read values on the host and run on every call, also under ``torch.compile``, where each
is a graph break (issue 13: they were skipped while tracing, so a compiled call took a
label outside ``[0, V)`` without a target term, a negative class weight, or a NaN
logit, and returned a wrong loss); so are the agreement and the exact
re-evaluation of the rows whose logit gaps leave the work dtype's range
(:func:`_far_gap_sums`). The checks that read no value (options, types, shapes:
:func:`_logit_checks`, :func:`_linear_checks`) also run while Dynamo traces, through
``_ops.refused_while_traced``: a refused one puts the op
``crossent::refused_on_every_rank_v1`` in the graph, which runs the agreement with this
rank's failed record at run time, so ``torch.compile(fullgraph=True)`` raises eager's
error on every rank (Dynamo's ``Unsupported`` before: the agreement is a graph break).
A graph cannot name a group other than the default one: there the refusal raises on
its rank alone.

On the default group a valid call under ``torch.compile`` is one custom op
(``crossent::vocab_parallel_ce_v1``, ``crossent::vocab_parallel_linear_ce_v1``,
``_vocab_parallel_ops``): the eager call at run time, its agreement and checks
included, so it compiles with ``fullgraph=True`` and gives eager's loss and gradients
bit for bit (Dynamo's ``Unsupported: ... _blake2.blake2b`` before). With another
``group`` the call still runs eagerly under ``torch.compile``, each check and the
agreement a graph break (no ``fullgraph=True``): no public API lets a graph hold a
process group other than the default one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .._xp import namespace
from ..errors import InputError, InputTypeError
from ..losses._far_gaps import scaled_square_term
from ..losses._terms import (
    SoftmaxRows,
    label_offset,
    label_terms,
    p_coefficient,
    row_loss,
    smoothing_coefficients,
    weighted_class_sum,
)
from . import _ops
from ._agreement import Field, fingerprint, group_and_rank, untraced_exchange
from ._arguments import (
    CallOptions,
    autocast_like_linear,
    autocast_off,
    call_options,
    check_chunk_size,
    check_not_transformed,
    check_on_device_of_input,
    check_one_dtype,
    check_weight_not_differentiated,
    first_order_only,
    floating_tensor,
)
from ._launch import (
    _gap_sum_bits,
    _infinite_at,
    _scaled_gap_sum,
    _soft_capped,
    _times_cap_slope_,
    _times_power_of_two,
    _unshifted_lse,
    work_dtype,
)
from ._linear import _exp_rest_
from ._products import Products
from ._reduction import (
    label_rows,
    label_weight_sum,
    mean_scaled_weight,
    rows_in_range_total,
    rows_upstream,
    weighted_mean,
)

__all__ = [
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]

#: Elements of one chunk of logits (rows x local classes) formed at a time.
_CHUNK_ELEMENTS = 1 << 22

Tensor = torch.Tensor


# --------------------------------------------------------------------------- options
# The checked options of a call are one :class:`CallOptions` (``_arguments.py``), passed
# to the autograd Functions as one object.


def _eager() -> bool:
    """Whether a host sync that only saves work may run (not while ``torch.compile``
    traces: there the work is done unconditionally).  The checks and the exact
    re-evaluations run in both cases."""
    return not torch.compiler.is_compiling()


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """The class slices of a group: ``sizes[r]`` classes on rank ``r``, in rank order."""

    sizes: tuple[int, ...]
    rank: int

    @property
    def offset(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def local(self) -> int:
        return self.sizes[self.rank]

    @property
    def classes(self) -> int:
        return sum(self.sizes)


def _resolve(group: Any, function: str, problem: Exception | None) -> tuple[Any, int]:
    """The process group (default: the world) and this process's rank in it; an error on
    this process only when there is none (``problem`` first, this rank's own), or it is
    not a member (see the module docstring: that cannot be shared)."""
    return group_and_rank(group, function, problem, "vocab-parallel losses need")


def _agree(
    function: str,
    group: Any,
    rank: int,
    problem: Exception | None,
    fields: list[Field],
) -> _Layout:
    """The agreement (collective 1; see the module docstring): the same error on every
    rank, or the slice sizes of this call. ``fields`` end with this rank's width."""
    table = untraced_exchange()(function, group, fields, problem)
    return _Layout(tuple(row[0] for row in table), rank)


def _common_fields(
    rows: int,
    batch: tuple[int, ...],
    data: Tensor,
    opts: CallOptions,
    target: Tensor,
    weight: Tensor | None,
    weight_name: str,
) -> list[Field]:
    """What must be the same on every rank, for both losses (``data``: ``input``).

    The device *type* (``cuda`` on every rank of NCCL, each its own index; a ``meta``
    tensor on one rank passed the agreement and left the others waiting in the next
    collective). Whether class weights are given, apart from their digest: an absent
    tensor's digest is zeros, and so is that of zero weights (``None`` on one rank and
    ``torch.zeros(V)`` on another passed, with different losses on the two). The
    weights' digest is of ``w + 0.0``, where ``-0.0`` is ``0.0`` (the same weights, whose
    sign bits differ, raised "disagree").
    """
    given = weight is not None
    return [
        Field("the number of rows", rows, str(rows)),
        Field("the batch shape", fingerprint(repr(batch)), str(batch)),
        Field("the dtype of the logits", fingerprint(str(data.dtype)), str(data.dtype)),
        Field("the device type of `input`", fingerprint(data.device.type), data.device.type),
        Field("the options", fingerprint(repr(opts)), repr(opts)),
        Field("`target` (the labels)", target.to(torch.int64)),
        Field(f"whether `{weight_name}` is given", int(given), str(given)),
        Field(f"`{weight_name}`", None if weight is None else weight.to(torch.float64) + 0.0),
    ]


# --------------------------------------------------------------------------- row terms


@dataclass
class _Labels:
    """The replicated per-row label quantities (identical on every rank)."""

    vocabulary: int  # V, the classes over all ranks
    safe: Tensor  # labels, ignored rows set to 0 (int64)
    active: Tensor  # rows that count (bool)
    owned: Tensor  # rows whose label lies in this rank's slice (bool)
    local: Tensor  # label - offset where owned, else 0 (int64)
    w_y: Tensor  # w_{y_i} (1 without class weights), compute dtype
    weight: Tensor | None  # the class weights of the whole vocabulary (compute dtype)
    weight_local: Tensor | None  # this rank's slice of the class weights
    slice_weight: float | Tensor  # sum of this rank's slice of the class weights


def _labels(
    target: Tensor,
    weight: Tensor | None,
    layout: _Layout,
    width: int,
    opts: CallOptions,
    dtype: torch.dtype,
) -> _Labels:
    """The label quantities for ``layout`` (``width`` is this rank's number of classes;
    the label range and the weights' length are checked)."""
    active, safe = label_rows(target, opts.ignore_index)
    lo = layout.offset
    owned = (safe >= lo) & (safe < lo + width)
    local = torch.where(owned, safe - lo, torch.zeros_like(safe))
    if weight is None:
        w_y = torch.ones(safe.shape, dtype=dtype, device=safe.device)
        return _Labels(layout.classes, safe, active, owned, local, w_y, None, None, width)
    w = weight.to(dtype)
    w_y = w[safe.clamp(0, w.shape[0] - 1)]  # the label range is checked after the MAX
    w_local = w[lo : lo + width]
    if w_local.shape[0] != width:
        w_local = torch.zeros(width, dtype=dtype, device=w.device)
    return _Labels(layout.classes, safe, active, owned, local, w_y, w, w_local, w_local.sum())


# --------------------------------------------------------------------------- local pass


def _capped(z: Tensor, opts: CallOptions) -> Tensor:
    r"""``s tanh(z / s)`` (Gemma 2 soft-capping), or ``z``: ``_launch._soft_capped``'s,
    out of place (``z`` may be the caller's logits or the saved tensor).

    Not ``_launch._capped_logits``, which shifts by the maximum of a whole row: here
    the temperature divides the capped logits shifted by the global maximum
    (:func:`_tempered`), the rounding order of the unsharded loss
    (``crossent.losses._terms.softmax_rows``), which cannot overflow uncapped logits
    for :math:`T < 1`, and the maxima the ranks exchange are the undivided ones.
    """
    return _soft_capped(z, opts.soft_cap)[0]


def _tempered(shift: Tensor, opts: CallOptions) -> Tensor:
    """Divide a *shifted* capped logit by the temperature (no overflow for ``T < 1``).

    As :func:`crossent.losses._terms.softmax_rows`: :math:`\\sigma = (c - \\max c) / T`, so
    the maxima exchanged between ranks are those of the capped logits ``c``, undivided.
    """
    return shift if opts.temperature == 1.0 else shift / opts.temperature


def _xp() -> Any:
    """The Array API namespace of torch tensors, for the :mod:`crossent.losses._terms` helpers."""
    return namespace(torch.empty(0), names=("input",))[0]


@dataclass
class _Local:
    """One rank's per-row summary of its slice (see the module docstring)."""

    # With c the capped logits, ref = max_c over the slice (0 if none is finite) and
    # sigma_r = (c - ref) / T <= 0:
    top: Tensor  # max of c over the slice; -inf where it is empty or all -inf (or NaN)
    rest: Tensor  # sum of exp(sigma_r) over the terms below ref
    ties: Tensor  # number of terms equal to ref
    # float64 (issue 13): (c - ref) / T overflows float32 where the terms the loss
    # weighs by w_c < 1 or eps / V do not.
    target: Tensor  # sigma_r at the label on the rank that owns it, else 0 (float64)
    smooth: Tensor | None  # sum_c w_c sigma_r,c over the slice (0 * inf = 0; float64)
    bad: Tensor  # number of NaN and +inf logits (scalar)


def _local_rows(z: Tensor, labels: _Labels, rows: slice, opts: CallOptions) -> _Local:
    """Summarise a block of rows (raw logits ``z``, compute dtype) against its own maxima."""
    n, width = z.shape
    zeros = torch.zeros(n, dtype=z.dtype, device=z.device)
    wide = torch.zeros(n, dtype=torch.float64, device=z.device)
    if width == 0:
        smooth = wide if opts.label_smoothing else None
        bad = torch.zeros((), dtype=torch.int64, device=z.device)
        return _Local(zeros - math.inf, zeros, zeros, wide, smooth, bad)
    active = labels.active[rows]
    z = _rows_read(z, active, opts)
    bad = _bad_count(z, z.amax(dim=1))
    capped = _capped(z, opts)
    top = capped.amax(dim=1)
    present = top > -math.inf  # False for -inf and NaN maxima
    ref = torch.where(present, top, zeros)
    ref_wide = ref.double()
    wide_exponentials = capped.dtype != torch.float64 and capped.device.type == "cpu"
    # sigma = (c - r)/T in the work dtype: the exponentials' (but on the CPU's float32
    # work) and the smoothing sum's
    shifted = None
    if opts.label_smoothing or not wide_exponentials:
        shifted = _tempered(capped - ref[:, None], opts)
    if wide_exponentials:
        # The exponentials of float32 work in float64 on the CPU, a few rows at a time,
        # as the fused linear loss's (`_linear._exp_rest_`): c - r rounded to float32
        # before exp left a confident row's loss (4.2e-30, every other class 80 below)
        # 36 float32 ulps off (2.1e-6 relative; cross_entropy 5e-8). The rest leaves
        # out one maximal term, so the ties are that one term.
        _, rest = _exp_rest_(capped, ref, capped.argmax(dim=1), opts.temperature, normalise=False)
        ties = present.to(torch.float64)
    else:
        assert shifted is not None
        at_max = shifted == 0
        rest = torch.where(at_max, torch.zeros_like(shifted), torch.exp(shifted)).sum(dim=1)
        ties = at_max.sum(dim=1).to(z.dtype)
    owned, local = labels.owned[rows], labels.local[rows]
    at_label = capped.gather(1, local[:, None])[:, 0].double() - ref_wide
    target = torch.where(owned, _tempered(at_label, opts), wide)
    smooth = None
    if opts.label_smoothing:
        assert shifted is not None
        smooth = _smoothing_sum(shifted, capped, ref_wide, labels.weight_local, opts)
    return _Local(torch.where(present, top, zeros - math.inf), rest, ties, target, smooth, bad)


def _smoothing_sum(
    shifted: Tensor, capped: Tensor, ref: Tensor, weight: Tensor | None, opts: CallOptions
) -> Tensor:
    r""":math:`\sum_c w_c \sigma_c`, :math:`\sigma = (c - r)/T`, over a slice's capped
    logits :math:`c` (``shifted`` is :math:`\sigma` in the work dtype, ``ref`` the
    maxima :math:`r` in float64), as float64.

    Summed in the work dtype, as before; on the CPU, rows where that sum is not finite
    are summed again in float64 (issue 13): differences of float32 logits reach
    :math:`6.8\cdot 10^{38}` and their quotients by :math:`T < 1` more, ``-inf`` in
    float32 where the loss's :math:`\tfrac{\varepsilon}{V}` times them is finite. Not
    every row in float64: the conversion of a block costs some 20 float32 passes. Not
    on accelerators (the check reads the data on the host): there the work dtype's
    range, float32 on accelerators (``_launch.work_dtype``). Under ``torch.compile`` on
    the CPU it runs, a graph break (it was skipped while tracing before).
    """
    smooth = weighted_class_sum(shifted, weight, xp=_xp())[:, 0].double()
    if shifted.dtype == torch.float64 or shifted.device.type != "cpu":
        return smooth
    redo = ~torch.isfinite(smooth)
    if bool(redo.any()):
        gaps = capped[redo].double() - ref[redo, None]
        w = None if weight is None else weight.double()
        smooth[redo] = _tempered(weighted_class_sum(gaps, w, xp=_xp())[:, 0], opts)
    return smooth


def _cat(parts: list[_Local]) -> _Local:
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    smooth = cat("smooth") if parts[0].smooth is not None else None
    bad = torch.stack([p.bad for p in parts]).sum()
    return _Local(cat("top"), cat("rest"), cat("ties"), cat("target"), smooth, bad)


# --------------------------------------------------------------------------- collectives


@dataclass
class _Rows:
    """The global per-row statistics, identical on every rank after the MAX and SUM."""

    m: Tensor  # max_c of the capped logits (undivided by T)
    ell: Tensor  # in the work dtype, as m
    target: Tensor  # sigma_{i y_i} = (c_{i y_i} - m_i) / T (float64)
    smooth: Tensor | None  # sum over the whole vocabulary of w_c sigma_ic (float64)


def _max(local: _Local, group: Any) -> Tensor:
    """Collective 2: ``all_reduce(MAX)`` of the row maxima (in float64)."""
    buffer = local.top.to(torch.float64, copy=True)  # local.top is read again after it
    dist.all_reduce(buffer, op=dist.ReduceOp.MAX, group=group)
    return buffer.to(local.top.dtype)


def _sum(
    local: _Local,
    labels: _Labels,
    m: Tensor,
    opts: CallOptions,
    group: Any,
    bad_logits: Callable[[int], str] | None = None,
) -> _Rows:
    """Collective 3: one ``all_reduce(SUM)`` of the exponentials, target and smoothing sums.

    ``bad_logits(count)``: the error's message where ``count`` logits (over all ranks)
    are NaN or ``+inf`` (the linear loss's names its inputs and their products)."""
    present = local.top > -math.inf
    ref = torch.where(present, local.top, torch.zeros_like(m))
    # (ref - m) / T <= 0 where present; elsewhere the slice adds nothing to the exponentials.
    at_top = present & (ref == m)
    delta = _tempered(ref - m, opts)
    moved = torch.where(present, (local.rest + local.ties) * torch.exp(delta), 0.0)
    # The target and smoothing sums move in float64 (delta overflows float32 for T < 1),
    # so the buffer is float64; ell is rounded to the work dtype after the sum.
    wide = torch.where(present, _tempered(ref.double() - m.double(), opts), 0.0)
    columns = [
        torch.where(at_top, local.rest, moved).double(),
        torch.where(at_top, local.ties, torch.zeros_like(m)).double(),
        local.target + torch.where(labels.owned, wide, torch.zeros_like(wide)),
    ]
    if local.smooth is not None:
        columns.append(local.smooth + labels.slice_weight * wide)
    stacked = torch.stack(columns, dim=1).reshape(-1)
    buffer = torch.cat([stacked, local.bad.to(torch.float64).reshape(1)])
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=group)
    if bool(buffer[-1] > 0):
        count = int(buffer[-1].item())
        if bad_logits is not None:
            raise InputError(bad_logits(count))
        raise InputError(
            f"`input` has {count} NaN or +inf logits (over all ranks); "
            "logits must be finite or -inf"
        )
    empty = m == -math.inf
    if bool(empty.any()):
        row = int(torch.nonzero(empty)[0, 0])
        raise InputError(
            f"`input` row {row} is -inf for every class (on every rank); "
            "a softmax needs at least one finite logit"
        )
    sums = buffer[:-1].reshape(m.shape[0], len(columns))
    ell = torch.log1p(sums[:, 0] + (sums[:, 1] - 1)).to(m.dtype)
    smooth = sums[:, 3] if local.smooth is not None else None
    return _Rows(m=m, ell=ell, target=sums[:, 2], smooth=smooth)


def _global_rows(
    local_pass: Callable[[_Labels], _Local],
    target: Tensor,
    weight: Tensor | None,
    layout: _Layout,
    width: int,
    opts: CallOptions,
    group: Any,
    dtype: torch.dtype,
    bad_logits: Callable[[_Labels, int], str] | None = None,
) -> tuple[_Labels, _Rows]:
    """The forward's collectives around the local pass; every rank gets the same rows.
    ``bad_logits(labels, count)``: the message where logits are NaN or ``+inf``."""
    labels = _labels(target, weight, layout, width, opts, dtype)
    local = local_pass(labels)
    m = _max(local, group)
    explain = None if bad_logits is None else functools.partial(bad_logits, labels)
    return labels, _sum(local, labels, m, opts, group, explain)


# --------------------------------------------------------------------------- loss and gradient


@dataclass
class _Coefficients:
    """Per-row coefficients of the gradient ``c p - g e_y - u w`` (before the upstream)."""

    m: Tensor  # max of the capped logits, undivided
    ell: Tensor
    p_coef: Tensor  # A + 2 lambda omega LSE
    target_coef: Tensor  # (1 - eps) omega
    gap: Tensor  # p_coef - target_coef from p_coef's parts (_terms.label_offset)
    uniform: float  # eps / V


@dataclass
class _State:
    """What a backward needs of its forward: the label quantities, the options, the
    per-row coefficients and the row blocks (the linear loss's: also the group and the
    products)."""

    labels: _Labels
    opts: CallOptions
    coefs: _Coefficients
    blocks: list[slice]
    group: Any = None
    products: Products | None = None
    wide: Tensor | None = None  # the rows' losses in float64 (:func:`_loss_rows`)


def _loss_rows(
    rows: _Rows, labels: _Labels, opts: CallOptions, far_b: Callable[[Tensor], Tensor] | None
) -> tuple[Tensor, _Coefficients, Tensor]:
    """Per-row losses (0 on ignored rows), the coefficients the backward needs and the
    losses in float64 (the ``'mean'``'s where a float32 row is past float32's range by
    itself: issue 13, branch torchrow1; :func:`_reduce`).

    The global per-row statistics go through the same helpers as the unsharded loss:
    :func:`~crossent.losses._terms.label_terms` (with the whole vocabulary's size and
    class weights), :func:`~crossent.losses._terms.row_loss` and
    :func:`~crossent.losses._terms.p_coefficient`. With ``far_b``, the rows whose
    loss came out ``inf`` (the same on every rank) take their :math:`B` from it
    (:func:`_far_gap_sums`).
    """
    xp, eps, vocabulary = _xp(), opts.label_smoothing, labels.vocabulary
    zeros = torch.zeros_like(rows.ell)
    omega = torch.where(labels.active, labels.w_y, zeros)[:, None]
    smooth = None if rows.smooth is None else rows.smooth[:, None]
    a, b = label_terms(
        rows.target[:, None],
        smooth,
        labels.w_y[:, None],
        labels.weight,
        eps=eps,
        classes=vocabulary,
        xp=xp,
    )
    lse = _weighed_lse(rows.m, rows.ell, omega, opts)
    summary = SoftmaxRows(z=None, shifted=None, ell=rows.ell[:, None], lse=lse)
    loss = torch.where(labels.active, row_loss(summary, a, b, omega, z_loss=opts.z_loss), zeros)
    far = None if far_b is None else _infinite_at(loss)
    wide_rows = loss.to(torch.float64)
    if far is not None and far_b is not None:
        # In float64, the z-loss by _far_gaps.scaled_square_term (issue 13, branch
        # hostiledist1): lambda LSE^2 where LSE^2 leaves the work dtype's range and the
        # term need not (float32 LSE = 1e20, lambda = 1e-3: 1e37; float64 logits of
        # 1e200, lambda = 1e-300: 1e100; both were inf), as crossent.torch.cross_entropy.
        wide, at = torch.float64, omega[far].to(torch.float64)
        m_far, ell_far = rows.m[far].to(wide), rows.ell[far].to(wide)
        again = SoftmaxRows(z=None, shifted=None, ell=ell_far[:, None], lse=None)
        b_far = far_b(far).to(wide)[:, None]
        wide_loss = row_loss(again, a[far].to(wide), b_far, at, z_loss=0.0)
        if opts.z_loss:
            w_np, m_np, ell_np = (x.detach().cpu().numpy() for x in (at[:, 0], m_far, ell_far))
            square = scaled_square_term(opts.z_loss, w_np, m_np, ell_np, opts.temperature)
            wide_loss = wide_loss + torch.from_numpy(square).to(wide_loss.device)
        loss = loss.index_put((far,), wide_loss.to(loss.dtype))
        wide_rows = wide_rows.index_put((far,), wide_loss.to(torch.float64))
    keep, spread = smoothing_coefficients(eps, vocabulary)
    p_coef = p_coefficient(a, omega, lse, z_loss=opts.z_loss)[:, 0]
    target = keep * omega
    gap = label_offset(a, target, omega, lse, z_loss=opts.z_loss)[:, 0]
    coefs = _Coefficients(rows.m, rows.ell, p_coef, target[:, 0], gap, spread if eps else 0.0)
    return loss, coefs, wide_rows


def _weighed_lse(m: Tensor, ell: Tensor, omega: Tensor, opts: CallOptions) -> Tensor:
    r""":math:`\operatorname{LSE} = m/T + \ell` (keepdims) where the row weighs
    (:math:`\omega > 0`), else 0: the z-loss terms :math:`\lambda\omega\operatorname{LSE}^2`
    and :math:`2\lambda\omega\operatorname{LSE}` of a row of label weight 0 are 0, not
    the NaN of :math:`0\cdot\infty` where :math:`\operatorname{LSE}` or its square
    overflows (issue 13, branch hostiledist1: float32 logits of 1e30 with
    ``z_loss=1e-3`` and a zero class weight gave a NaN loss and NaN gradients on every
    rank, where :func:`crossent.torch.cross_entropy` gives 0). ``LSE`` is used nowhere else.
    """
    lse = _unshifted_lse(m, ell, opts.temperature)[:, None]
    return torch.where(omega != 0, lse, torch.zeros_like(lse)) if opts.z_loss else lse


def _far_gap_sums(
    far: Tensor,
    capped: Tensor,
    labels: _Labels,
    m: Tensor,
    opts: CallOptions,
    group: Any,
) -> Tensor:
    r""":math:`B_i = \sum_{c<V} v_c (c_{ic} - m_i)/T`, :math:`v = (1-\varepsilon) w_{y_i}
    e_{y_i} + \tfrac{\varepsilon}{V} w`, of the rows ``far`` (float64), no gap formed
    before it is scaled by :math:`2^{-j}` (``_launch._weighted_gap_sum``): each rank sums
    its slice (``capped``, its capped logits of those rows) at the same
    :math:`j` (from :math:`V` and the replicated weights), one ``all_reduce(SUM)`` adds
    the parts, then the exact scaling by :math:`2^{j-e}` (issue 13: float64 logits
    :math:`2\cdot 10^{308}` apart gave ``inf`` for a finite loss)."""
    keep, spread = smoothing_coefficients(opts.label_smoothing, labels.vocabulary)
    w_y = labels.w_y[far].double()
    widest = 1.0 if labels.weight is None else float(labels.weight.max())
    bits = _gap_sum_bits(labels.vocabulary, keep * float(w_y.max()) + spread * widest)
    c = capped.double()
    w = labels.weight_local
    ones = torch.ones(c.shape[1], dtype=torch.float64, device=c.device)
    v = (spread * (ones if w is None else w.double())).expand(c.shape).clone()
    if c.shape[1]:
        label = torch.where(labels.owned[far], keep * w_y, torch.zeros_like(w_y))
        v.scatter_add_(1, labels.local[far][:, None], label[:, None])
    part = _scaled_gap_sum(c, m[far].double()[:, None], v, opts.temperature, bits)[:, 0]
    dist.all_reduce(part, op=dist.ReduceOp.SUM, group=group)
    return _times_power_of_two(part, bits - math.frexp(opts.temperature)[1])


def _chunk_gradient(
    z: Tensor,
    scale: Tensor,
    coefs: _Coefficients,
    labels: _Labels,
    rows: slice,
    opts: CallOptions,
) -> Tensor:
    """``scale_i * dL_i/dz`` for a block of rows of this rank's slice (raw logits ``z``)."""
    if z.shape[1] == 0:
        return torch.zeros_like(z)
    sigma = _tempered(_capped(z, opts) - coefs.m[rows, None], opts)
    ell = coefs.ell[rows]
    p = torch.exp(sigma - ell[:, None])
    s, c, g = scale[rows], coefs.p_coef[rows], coefs.target_coef[rows]
    grad = (s * c)[:, None] * p
    # The label's entry c p_y - g as g expm1(log p_y) + (c - g) p_y: p_y - 1 keeps its
    # digits as p_y -> 1, where a rounded p_y minus 1 keeps none (issue 13); c - g
    # from c's parts (a z-loss's part to its own ulp, not to an ulp of c).
    at = labels.local[rows][:, None]
    log_p_y = sigma.gather(1, at)[:, 0] - ell
    label = s * (g * torch.expm1(log_p_y) + coefs.gap[rows] * torch.exp(log_p_y))
    kept = torch.where(labels.owned[rows], label.to(grad.dtype), grad.gather(1, at)[:, 0])
    grad.scatter_(1, at, kept[:, None])
    if coefs.uniform:
        w = labels.weight_local
        u = torch.ones(z.shape[1], dtype=z.dtype, device=z.device) if w is None else w
        grad = grad - (coefs.uniform * s)[:, None] * u[None, :]
    # The chain rule sech^2(z/s)/T, in place on grad (our own) and on a new z/s: not
    # chain_rule's array-API form, whose |z/s|, exp, (1+u)^2 and product were three
    # blocks more at the backward's peak.
    if opts.soft_cap is not None:
        grad = _times_cap_slope_(grad, z / opts.soft_cap)
    return grad if opts.temperature == 1.0 else grad.div_(opts.temperature)


def _row_blocks(
    rows: int, width: int, chunk_size: int | None, work: torch.dtype = torch.float32
) -> list[slice]:
    """Row chunks of ``_CHUNK_ELEMENTS`` float32 elements' bytes (half as many in float64)."""
    per_element = torch.finfo(work).bits // 32
    step = chunk_size if chunk_size else max(1, _CHUNK_ELEMENTS // (per_element * max(width, 1)))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)] or [
        slice(0, 0)
    ]


def _compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """The dtype of the logits' matrix products: float64 if any input is, else float32."""
    present = [t.dtype for t in tensors if t is not None]
    return torch.float64 if torch.float64 in present else torch.float32


def _work_dtype(like: Tensor, dtype: torch.dtype, opts: CallOptions) -> torch.dtype:
    r"""The dtype of the elementwise work (cap, softmax, gradient) on logits of ``dtype``.

    As :func:`crossent.torch._launch.work_dtype`: float64 with soft-capping on the CPU
    (issue 13: in float32 the chain rule, then :math:`1 - \tanh^2`, cancelled and the
    loss and the gradient were up to 1e7 float32 ulps off); the results rounded once (the
    loss to float32, the gradient to the logits' dtype); float32 on accelerators.
    """
    return torch.float64 if dtype == torch.float64 else work_dtype(like, opts.soft_cap)


def _ce_rows(
    z: Tensor,
    target: Tensor,
    weight: Tensor | None,
    opts: CallOptions,
    group: Any,
    layout: _Layout,
) -> tuple[Tensor, _State]:
    """Per-row losses of sharded logits ``(rows, V_r)`` (the forward's collectives) and
    what their backward (:func:`_ce_grad`) needs."""
    dtype = _work_dtype(z, _compute_dtype(z), opts)
    blocks = _row_blocks(z.shape[0], z.shape[1], None, dtype)

    def local_pass(labels: _Labels) -> _Local:
        return _cat([_local_rows(z[b].to(dtype), labels, b, opts) for b in blocks])

    labels, rows = _global_rows(local_pass, target, weight, layout, z.shape[1], opts, group, dtype)

    def far_b(far: Tensor) -> Tensor:
        capped = _capped(_counted(z, far, labels, opts).to(torch.float64), opts)
        return _far_gap_sums(far, capped, labels, rows.m, opts, group)

    loss, coefs, wide = _loss_rows(rows, labels, opts, far_b)
    return loss.to(_compute_dtype(z)), _State(labels, opts, coefs, blocks, wide=wide)


def _ce_grad(z: Tensor, grad_rows: Tensor, state: _State) -> Tensor:
    """``dL/dz`` of :func:`_ce_rows`'s losses times ``grad_rows`` (no collectives)."""
    labels, opts, coefs = state.labels, state.opts, state.coefs
    scale = torch.where(labels.active, grad_rows.to(coefs.ell.dtype), 0.0)
    grad = torch.empty_like(z)
    for b in state.blocks:
        zb = _rows_read(z[b].to(coefs.ell.dtype), labels.active[b], opts)
        grad[b] = _chunk_gradient(zb, scale, coefs, labels, b, opts)
    return grad


class _VocabParallelCE(torch.autograd.Function):
    """Per-row losses of sharded logits ``(rows, V_r)``; backward without collectives."""

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        target: Tensor,
        weight: Tensor | None,
        opts: CallOptions,
        group: Any,
        layout: _Layout,
    ) -> tuple[Tensor, Tensor]:
        loss, ctx.state = _ce_rows(z, target, weight, opts, group, layout)
        # The labels and the class weights too, though the backward reads ``ctx.state``'s
        # (a view of the weights among them): autograd then refuses a backward after
        # either was changed in place, as F.cross_entropy's (the weights' change reached
        # the smoothing term's gradient, silently).
        ctx.save_for_backward(z, target, weight)
        return loss, ctx.state.wide

    @staticmethod
    def backward(ctx: Any, grad_rows: Tensor, grad_wide: Tensor) -> tuple[Tensor | None, ...]:
        z, *_ = ctx.saved_tensors  # (the version checks of all three)
        grad_rows = rows_upstream(grad_rows, grad_wide)
        grad = _ce_grad(z, grad_rows, ctx.state)
        if torch.is_grad_enabled():  # a ``create_graph`` backward
            nothing = (None, None, None, None, None)
            return _first_order_only(
                "vocab_parallel_cross_entropy", (grad, *nothing), (z, grad_rows)
            )
        return grad, None, None, None, None, None


def _linear_rows(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    class_weight: Tensor | None,
    opts: CallOptions,
    group: Any,
    chunk_size: int | None,
    layout: _Layout,
) -> tuple[Tensor, _State]:
    """Per-row losses of ``h W_r^T + b_r``, chunked over rows (the forward's collectives),
    and what their backward (:func:`_linear_grads`) needs."""
    dtype = _compute_dtype(h, weight, bias)
    work = _work_dtype(h, dtype, opts)
    products = Products.of(h, weight)  # one dtype (checked): native bf16/fp16 on CUDA
    w = weight.to(products.operand)
    b_ = None if bias is None else bias.to(products.output)
    blocks = _row_blocks(h.shape[0], weight.shape[0], chunk_size, work)

    def local_pass(labels: _Labels) -> _Local:
        parts = [
            _local_rows(
                products.logits(_counted(h, k, labels, opts).to(products.operand), w, b_).to(work),
                labels,
                k,
                opts,
            )
            for k in blocks
        ]
        return _cat(parts)

    def bad_logits(labels: _Labels, count: int) -> str:
        return _linear_bad_logits(h, weight, bias, products, blocks, labels, opts, count)

    labels, rows = _global_rows(
        local_pass, target, class_weight, layout, weight.shape[0], opts, group, work, bad_logits
    )

    def far_b(far: Tensor) -> Tensor:
        hf = _counted(h, far, labels, opts).to(products.operand)
        capped = _capped(products.logits(hf, w, b_).to(torch.float64), opts)
        return _far_gap_sums(far, capped, labels, rows.m, opts, group)

    loss, coefs, wide = _loss_rows(rows, labels, opts, far_b)
    return loss.to(dtype), _State(labels, opts, coefs, blocks, group, products, wide)


def _linear_bad_logits(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    products: Products,
    blocks: list[slice],
    labels: _Labels,
    opts: CallOptions,
    count: int,
) -> str:
    r"""The error of :func:`_linear_rows` where ``count`` logits :math:`hW_r^\top + b_r`
    (over all ranks) are NaN or ``+inf``: this rank's first such row and class, and why.
    Where that row's ``input``, ``weight`` and ``bias`` are finite, their products
    overflow the dtype they are formed in (float32 for float32, bf16 and fp16 inputs),
    named with the logit summed in float64, as ``linear_cross_entropy`` says
    (``_ops._overflow``); else an input holds a NaN or an infinity. Formed at the error
    only (the local products again, row block by row block)."""
    names = "`input` and `weight`" if bias is None else "`input`, `weight` and `bias`"
    w = weight.to(products.operand)
    b = None if bias is None else bias.to(products.output)
    for k in blocks:
        z = products.logits(_counted(h, k, labels, opts).to(products.operand), w, b)
        bad = torch.isnan(z) | (z == math.inf)
        if not bool(bad.any()):
            continue
        i, c = (int(v) for v in torch.nonzero(bad)[0])
        row = (k.start or 0) + i
        inputs = (h[row], weight) if bias is None else (h[row], weight, bias)
        where = f"{count} logits (over all ranks) are NaN or +inf; on this rank, row {row}"
        if not all(bool(torch.isfinite(t).all()) for t in inputs):
            held = names.replace(" and ", " or ")
            return f"{where}: {held} holds a NaN or an infinity there"
        exact = h[row].double() @ weight[c].double()
        if bias is not None:
            exact = exact + bias[c].double()
        dtype = str(z.dtype).removeprefix("torch.")
        return (
            f"{where}: {names} are finite there, but their products overflow {dtype}, the "
            f"dtype they are formed in (class {c} of this rank's slice: {float(z[i, c])} in "
            f"{dtype}, {float(exact):.6g} summed in float64; {dtype}'s largest is "
            f"{torch.finfo(z.dtype).max:.6g}): give float64 tensors, or scale them down"
        )
    return (
        f"{count} logits `input @ weight.T + bias` (over all ranks) are NaN or +inf, on "
        "other ranks: an input holds a NaN or an infinity, or their products overflow"
    )


def _linear_grads(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    grad_rows: Tensor,
    state: _State,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients in ``h``, ``weight`` and ``bias`` (where ``needs``) of
    :func:`_linear_rows`'s losses times ``grad_rows``; ``dh`` all-reduced over the group."""
    labels, opts, coefs, products = state.labels, state.opts, state.coefs, state.products
    assert products is not None
    dtype, work = products.output, coefs.ell.dtype
    need_h, need_w, need_b = needs
    w = weight.to(products.operand)
    b_ = None if bias is None else bias.to(dtype)
    scale = torch.where(labels.active, grad_rows.to(work), 0.0)
    grad_h = torch.zeros(h.shape, dtype=dtype, device=h.device) if need_h else None
    grad_w = torch.zeros(w.shape, dtype=dtype, device=w.device) if need_w else None
    grad_b = torch.zeros_like(b_) if need_b and b_ is not None else None
    for blk in state.blocks:
        hb = _counted(h, blk, labels, opts).to(products.operand)
        z = products.logits(hb, w, b_).to(work)
        # Rounded once to the products' results' dtype (float32 for float64 work).
        g = _chunk_gradient(z, scale, coefs, labels, blk, opts).to(dtype)
        del z
        if grad_b is not None:
            grad_b += g.sum(dim=0)
        # dh = G W (written), dW += G^T h (native: G split in two bf16 halves).
        products.gradient_products(
            g,
            hb,
            w,
            None if grad_h is None else grad_h[blk],
            grad_w,
            first_h=True,
            first_w=False,
        )
    if grad_h is not None:
        # Each rank holds the part of dL/dh from its slice of the classes.
        dist.all_reduce(grad_h, op=dist.ReduceOp.SUM, group=state.group)
    return (
        None if grad_h is None else grad_h.to(h.dtype),
        None if grad_w is None else grad_w.to(weight.dtype),
        None if grad_b is None or bias is None else grad_b.to(bias.dtype),
    )


class _VocabParallelLinearCE(torch.autograd.Function):
    """Per-row losses of ``h W_r^T + b_r``, chunked over rows; backward all-reduces ``dh``."""

    @staticmethod
    def forward(
        ctx: Any,
        h: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        class_weight: Tensor | None,
        opts: CallOptions,
        group: Any,
        chunk_size: int | None,
        layout: _Layout,
    ) -> tuple[Tensor, Tensor]:
        loss, ctx.state = _linear_rows(
            h, weight, bias, target, class_weight, opts, group, chunk_size, layout
        )
        # The labels and the class weights too, as _VocabParallelCE's.
        ctx.save_for_backward(h, weight, bias, target, class_weight)
        return loss, ctx.state.wide

    @staticmethod
    def backward(ctx: Any, grad_rows: Tensor, grad_wide: Tensor) -> tuple[Tensor | None, ...]:
        h, weight, bias, *_ = ctx.saved_tensors
        grad_rows = rows_upstream(grad_rows, grad_wide)
        needs = tuple(ctx.needs_input_grad[:3])
        grads = _linear_grads(h, weight, bias, grad_rows, ctx.state, needs)
        if torch.is_grad_enabled():  # a ``create_graph`` backward
            grads = _first_order_only(
                "vocab_parallel_linear_cross_entropy", grads, (h, weight, bias, grad_rows)
            )
        return (*grads, None, None, None, None, None, None)


def _first_order_only(
    name: str, grads: tuple[Tensor | None, ...], anchors: tuple[Tensor | None, ...]
) -> tuple[Any, ...]:
    """The gradients of a ``create_graph`` backward, whose own gradient raises naming
    the loss ``name`` (also for ``torch.autograd.grad`` of the ``anchors``, the loss's
    inputs): the backward forms them by hand, from blocks it writes in place
    (a second derivative through them raised an in-place modification error that named
    no loss) and the forward's collectives, which autograd did not record."""
    return first_order_only(
        grads,
        f"crossent.torch.{name} has no second derivative (its backward is formed by hand "
        "from the forward's collectives): for a gradient penalty, gather the logits and "
        "use crossent.torch.cross_entropy",
        anchors,
    )


def _rows_read(z: Tensor, active: Tensor, opts: CallOptions) -> Tensor:
    r"""The block of logits ``z`` (rows x classes) with the ignored rows (``active``
    False) that hold a NaN or an infinity replaced by 0 (a copy, where there are any).

    An ignored row is never used (issue 13): its loss and gradient are 0, also where
    its logits are not finite, which then raise no error. Such a row is found from its
    maximum (NaN, or :math:`\pm\infty`: a NaN propagates through ``amax``), one pass
    with N results; on the CPU, eagerly, only a block that has one is copied
    (elsewhere always with ``ignore_index``: no host sync)."""
    if opts.ignore_index is None or z.shape[1] == 0:  # (an empty slice has no maximum)
        return z
    unread = ~torch.isfinite(z.amax(dim=1)) & ~active
    if z.device.type == "cpu" and _eager() and not bool(unread.any()):
        return z
    return torch.where(unread[:, None], 0.0, z)


def _bad_count(z: Tensor, top: Tensor) -> Tensor:
    """The number of NaN and ``+inf`` logits in ``z`` (a scalar; :func:`_rows_read` has
    zeroed the ignored rows that hold one), from the rows' maxima ``top`` (NaN or
    ``+inf`` exactly where a row holds one): on the CPU, eagerly, the rows it names
    counted entry by entry, none on most calls (issue 13: ``isnan | isposinf`` summed
    over a 512 x 8000 float32 block took 9.6 ms of thread CPU time, its row maxima
    0.3 ms, its ``exp`` 3.6 ms)."""
    suspect = torch.isnan(top) | torch.isposinf(top)
    if z.device.type == "cpu" and _eager():
        if not bool(suspect.any()):
            return torch.zeros((), dtype=torch.int64, device=z.device)
        rows = z[suspect]
        return (torch.isnan(rows) | torch.isposinf(rows)).sum()
    return ((torch.isnan(z) | torch.isposinf(z)) & suspect[:, None]).sum()


def _counted(x: Tensor, rows: slice | Tensor, labels: _Labels, opts: CallOptions) -> Tensor:
    r"""Rows ``rows`` of ``x`` (hidden states, or the few far rows' logits; rows first),
    the ignored rows' values replaced by 0 (a copy) where there are any (N x D work
    beside the N x V_r x D products; the logits blocks take :func:`_rows_read`).

    An ignored row is never used (issue 13): its loss and gradient are 0, also where
    it holds a NaN or an infinity, which then raise no error and cannot reach the
    gradients (:math:`0 \cdot \mathrm{NaN}`) nor the count of NaN and ``+inf`` logits.
    On the CPU, eagerly, only blocks with an ignored row are copied; elsewhere always
    with ``ignore_index`` (no host sync)."""
    block, active = x[rows], labels.active[rows]
    if opts.ignore_index is None:
        return block
    if block.device.type == "cpu" and _eager() and bool(active.all()):
        return block
    return torch.where(active[:, None], block, 0.0)


# --------------------------------------------------------------------------- checks


def _check_target(target: object, batch_shape: tuple[int, ...], *, what: str) -> Tensor:
    if not isinstance(target, torch.Tensor):
        raise InputTypeError(f"`target` must be a torch.Tensor; got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise InputTypeError(
            f"`target` must hold integer class ids; got dtype {target.dtype} "
            "(probability targets are not supported by the vocab-parallel losses)"
        )
    if tuple(target.shape) != batch_shape:
        raise InputError(
            f"`target` must have the batch shape of {what} {batch_shape}; got {tuple(target.shape)}"
        )
    return target


def _check_classifier_device(h: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """The classifier's slice (and bias) on ``input``'s device, as ``F.linear`` requires.

    A rank's own check, shared by the agreement: a ``meta`` classifier slice beside CPU
    hidden states on one rank passed it and gave every rank a wrong loss (``1.9e231``),
    a ``meta`` bias failed on that rank alone in the MAX all-reduce (the other waited).
    """
    check_on_device_of_input(h, weight=weight, bias=bias)


def _check_label_range(target: Tensor, classes: int, ignore_index: int | None) -> None:
    """Every label in ``[0, classes)`` or ``ignore_index`` (labels are the same on every rank)."""
    if target.numel() == 0:
        return
    bad = (target < 0) | (target >= classes)
    if ignore_index is not None:
        bad = bad & (target != ignore_index)
    if not bool(bad.any()):
        return
    flat = target.reshape(-1)
    row = int(torch.nonzero(bad.reshape(-1))[0, 0])
    allowed = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
    raise InputError(
        f"`target` must be integers in [0, {classes}){allowed} (the classes over all ranks); "
        f"got values in [{int(flat.min())}, {int(flat.max())}] (row {row} has {int(flat[row])})"
    )


def _class_weight(weight: object, *, name: str) -> Tensor | None:
    """Class weights of the whole vocabulary, the same on every rank (length checked
    later; their values by :func:`_check_class_weight_values`)."""
    if weight is None:
        return None
    w = floating_tensor(weight, name=name)
    if w.ndim != 1:
        raise InputError(f"`{name}` must be one weight per class, shape (V,); got {tuple(w.shape)}")
    return w


def _check_class_weight_values(w: Tensor | None, *, name: str) -> None:
    """Class weights finite and non-negative (a read of their values: eager only)."""
    if w is not None and not bool((torch.isfinite(w) & (w >= 0)).all()):
        raise InputError(f"`{name}` must be finite and non-negative")


def _check_globally(
    target: Tensor,
    weight: Tensor | None,
    classes: int,
    ignore_index: int | None,
    *,
    weight_name: str,
) -> None:
    """The checks against the whole vocabulary's ``classes``, after the agreement (on data
    it has shown to be the same on every rank, so every rank raises the same error)."""
    _check_weight_length(weight, classes, name=weight_name)
    _check_label_range(target, classes, ignore_index)


def _check_weight_length(weight: Tensor | None, classes: int, *, name: str) -> None:
    """One class weight per class of the whole vocabulary (``classes``, over all ranks)."""
    if weight is not None and weight.shape[0] != classes:
        raise InputError(
            f"`{name}` must have shape ({classes},), one weight per class of the whole "
            f"vocabulary (the same on every rank); got {tuple(weight.shape)}"
        )


def _reduce(
    rows: Tensor,
    target: Tensor,
    weight: Tensor | None,
    opts: CallOptions,
    batch_shape: tuple[int, ...],
    wide: Tensor | None = None,
) -> Tensor:
    """Apply the reduction; sums accumulate in float64, the mean divides by sum of w_y.
    ``wide``: the rows in float64, whose ``inf`` float32 rows a ``'mean'`` takes where
    their float64 sum is ``inf`` (:func:`._reduction.rows_in_range_total`)."""
    if opts.reduction == "none":
        return rows.reshape(batch_shape)
    total = rows.sum(dtype=torch.float64)
    if opts.reduction == "mean":
        if wide is not None:
            total = rows_in_range_total(total, rows, wide)
        norm = label_weight_sum(target, weight, opts.ignore_index, torch.float64)
        total = weighted_mean(total, norm)
    return total.to(rows.dtype)


def _logit_rows(logits: Tensor, target: object) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Logits as ``(rows, V_r)`` and labels as ``(rows,)``; class axis 1 as in PyTorch."""
    if logits.ndim == 0:
        raise InputError("`input` must have a class axis; got a 0-d tensor")
    if logits.ndim == 1:
        batch: tuple[int, ...] = ()
        z = logits[None, :]
    else:
        batch = (logits.shape[0], *logits.shape[2:])
        z = logits if logits.ndim == 2 else torch.movedim(logits, 1, -1)
        z = z.reshape(math.prod(batch), logits.shape[1])  # -1 is ambiguous for empty slices
    y = _check_target(target, batch, what="`input` (the class axis 1 removed)")
    return z, y.reshape(-1), batch


def _logit_checks(
    input: object,
    target: object,
    weight: object,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    z_loss: Any,
    soft_cap: Any,
    temperature: Any,
) -> tuple[CallOptions, Tensor, Tensor, tuple[int, ...], Tensor | None]:
    """:func:`vocab_parallel_cross_entropy`'s checks of this rank that read no value (the
    options, the types, the shapes), in its order: the options, the logits as rows, the
    labels, the batch shape and the class weights (their values unchecked). Run by the
    eager call and, while Dynamo traces, by ``_ops.refused_while_traced``."""
    opts = call_options(
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=soft_cap,
        temperature=temperature,
    )
    z, y, batch = _logit_rows(floating_tensor(input, name="input"), target)
    return opts, z, y, batch, _class_weight(weight, name="weight")


def _linear_checks(
    input: object,
    weight: object,
    target: object,
    bias: object,
    class_weight: object,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    z_loss: Any,
    soft_cap: Any,
    temperature: Any,
    chunk_size: Any,
) -> tuple[CallOptions, Tensor, Tensor, Tensor | None, Tensor, Tensor | None, int | None]:
    """:func:`vocab_parallel_linear_cross_entropy`'s checks of this rank that read no
    value, in its order: the options, ``input``, ``weight`` and ``bias`` (types, shapes,
    device, one dtype), ``chunk_size``, the labels as rows and the class weights (their
    values unchecked). Run by the eager call and, while Dynamo traces, by
    ``_ops.refused_while_traced``."""
    opts = call_options(
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=soft_cap,
        temperature=temperature,
    )
    h = floating_tensor(input, name="input")
    w = floating_tensor(weight, name="weight")
    b = None if bias is None else floating_tensor(bias, name="bias")
    if h.ndim == 0 or w.ndim != 2 or w.shape[1] != h.shape[-1]:
        raise InputError(
            f"`weight` must have shape (V_r, {h.shape[-1] if h.ndim else 'D'}) for `input` "
            f"of shape {tuple(h.shape)}; got {tuple(w.shape)}"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise InputError(f"`bias` must have shape ({w.shape[0]},); got {tuple(b.shape)}")
    _check_classifier_device(h, w, b)
    # One dtype, as F.linear and linear_cross_entropy (issue 13: they were promoted);
    # inside torch.autocast mixed ones cast as F.linear's there.
    h, w, b = autocast_like_linear(h, w, b)
    check_one_dtype(input=h, weight=w, bias=b)
    chunk = check_chunk_size(chunk_size)
    batch = tuple(h.shape[:-1])
    y = _check_target(target, batch, what="`input` (the feature axis removed)").reshape(-1)
    return opts, h, w, b, y, _class_weight(class_weight, name="class_weight"), chunk


# --------------------------------------------------------------------------- agreement


def _mean_weight(weight: Tensor | None, opts: CallOptions) -> Tensor | None:
    """The class weights the losses use: for ``'mean'`` scaled by a power of 2
    (:func:`~crossent.torch._reduction.mean_scaled_weight`; the same on every rank, the
    weights being replicated), so that a weight above 1 makes no row ``inf`` whose
    mean is finite (issue 13, branch torchweight1: float32 logits near ``3e38/4`` and
    weights up to 2 gave ``inf`` for 1.49e38). The backward ops scale them alike."""
    return mean_scaled_weight(weight) if opts.reduction == "mean" else weight


def _ce_prepare(
    checks: Callable[[], tuple[CallOptions, Tensor, Tensor, tuple[int, ...], Tensor | None]],
    group: Any,
    weight_grad: bool | None,
) -> tuple[CallOptions, Tensor, Tensor, tuple[int, ...], Tensor | None, Any, _Layout]:
    """:func:`vocab_parallel_cross_entropy`'s checks and agreement before its collectives:
    this rank's checks (``checks``, :func:`_logit_checks`, then the class weights'
    values and gradient: ``weight_grad`` whether they would need one, None: read
    here), their outcome and the fields shared by the agreement, then the checks
    against the whole vocabulary; the options, the logits as rows, the labels, the
    batch shape, the class weights, the group and the slices' layout."""
    name = "vocab_parallel_cross_entropy"
    problem: Exception | None = None
    try:  # this rank's own checks: their outcome is shared by the agreement
        opts, z, y, batch, w = checks()
        _check_class_weight_values(w, name="weight")
        check_weight_not_differentiated(w, requires_grad=weight_grad)
        fields = _common_fields(z.shape[0], batch, z, opts, y, w, "weight")
        fields.append(Field("slice width", z.shape[1], same=False))
    except Exception as error:  # any failure: the agreement raises it on every rank
        problem, fields = error, []
    group, rank = _resolve(group, name, problem)
    layout = _agree(name, group, rank, problem, fields)
    _check_globally(y, w, layout.classes, opts.ignore_index, weight_name="weight")
    return opts, z, y, batch, _mean_weight(w, opts), group, layout


def _linear_prepare(
    checks: Callable[
        [], tuple[CallOptions, Tensor, Tensor, Tensor | None, Tensor, Tensor | None, int | None]
    ],
    group: Any,
    grads: tuple[bool, bool] | None,
) -> tuple[
    CallOptions,
    Tensor,
    Tensor,
    Tensor | None,
    Tensor,
    Tensor | None,
    int | None,
    tuple[int, ...],
    Any,
    _Layout,
]:
    """:func:`vocab_parallel_linear_cross_entropy`'s checks and agreement, as
    :func:`_ce_prepare`'s (``checks``: :func:`_linear_checks`); ``grads``: whether the
    class weights and ``input`` would need a gradient (None: read here)."""
    name = "vocab_parallel_linear_cross_entropy"
    problem: Exception | None = None
    try:  # this rank's own checks: their outcome is shared by the agreement
        opts, h, w, b, y, cw, chunk_size = checks()
        _check_class_weight_values(cw, name="class_weight")
        wanted = None if grads is None else grads[0]
        check_weight_not_differentiated(cw, name="class_weight", requires_grad=wanted)
        batch = tuple(h.shape[:-1])
        fields = _common_fields(math.prod(batch), batch, h, opts, y, cw, "class_weight")
        # The backward all-reduces dL/dinput of N x D where `input` needs a gradient.
        grad = torch.is_grad_enabled() and h.requires_grad if grads is None else grads[1]
        fields += [
            Field("the features of `input`", h.shape[-1], str(h.shape[-1])),
            Field("whether `input` requires grad", int(grad), str(grad)),
            Field("slice width", w.shape[0], same=False),
        ]
    except Exception as error:  # any failure: the agreement raises it on every rank
        problem, fields = error, []
    group, rank = _resolve(group, name, problem)
    layout = _agree(name, group, rank, problem, fields)
    _check_globally(y, cw, layout.classes, opts.ignore_index, weight_name="class_weight")
    return opts, h, w, b, y, _mean_weight(cw, opts), chunk_size, batch, group, layout


# --------------------------------------------------------------------------- public


def vocab_parallel_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    group: Any = None,
    weight: Tensor | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
) -> Tensor:
    r"""Softmax cross-entropy of logits whose class axis is sharded across ``group``.

    Rank :math:`r` holds classes :math:`[o_r, o_r + V_r)` of the logits, the slices in
    rank order (uneven, even empty); every rank holds the same ``target``. Every rank
    returns the loss of the whole vocabulary, exactly
    :func:`crossent.softmax_cross_entropy` of the gathered logits (``axis=1``), and
    backpropagates into its own slice only:

    .. math::

        L_i = w_{y_i}(1-\varepsilon)\bigl(\operatorname{LSE}(z'_i) - z'_{iy_i}\bigr)
            + \tfrac{\varepsilon}{V}\sum_{c<V} w_c\bigl(\operatorname{LSE}(z'_i) - z'_{ic}\bigr)
            + \lambda\,w_{y_i}\operatorname{LSE}(z'_i)^2,\qquad z' = s\tanh(z/s)/T

    Parameters
    ----------
    input : Tensor, shape (V_r,), (N, V_r) or (N, V_r, d1, ...)
        This rank's slice of the logits (class axis 1, as in ``F.cross_entropy``).
        float16/bfloat16 are computed in float32.
    target : integer Tensor, shape (), (N,) or (N, d1, ...)
        Global class ids in ``[0, V)`` or ``ignore_index``; the same on every rank.
    group : ProcessGroup, optional
        The tensor-parallel group (default: the world).
    weight : Tensor, shape (V,), optional
        Class weights of the *whole* vocabulary, the same on every rank; not
        differentiated (one that requires grad is an error, as in ``F.cross_entropy``).
    ignore_index : int or None, default -100
        Label whose rows count neither in the sum nor in the mean's denominator. Their
        logits are never used (zeroed): a NaN or an infinity there is no error, their
        loss and gradient are 0.
    reduction : {'mean', 'sum', 'none'}
        ``'mean'`` divides by the sum of the rows' label weights (0 when every row is
        ignored, with zero gradients).
    label_smoothing, z_loss, soft_cap, temperature
        As in :func:`crossent.softmax_cross_entropy`, over the whole vocabulary (with
        ``weight`` and smoothing, ``'mean'`` of labels all of weight 0 is 0, where
        PyTorch's is NaN).

    Returns
    -------
    Tensor
        The same value on every rank: a scalar, or shape (N, d1, ...) for ``'none'``;
        float64 for float64 input, else float32.

    Raises
    ------
    InputError
        The same on every rank, naming the rank(s): labels out of range, NaN or ``+inf``
        logits of a row that counts on any rank, a row that counts ``-inf`` on every
        rank, bad options or weights (also one that requires grad) on any rank, ranks
        that disagree on what must be the same on every rank (the number of rows, the
        batch shape, the dtype, the device type, the options, ``target``, whether
        ``weight`` is given, ``weight``). On this process
        only: no process group, or this process not in ``group``.
    InputTypeError
        Non-floating ``input``, non-integer ``target`` (on any rank: on every rank).

    See Also
    --------
    vocab_parallel_linear_cross_entropy : the classifier's rows sharded instead of logits.
    crossent.softmax_cross_entropy : the unsharded loss.
    torch.distributed.tensor.parallel.loss_parallel : PyTorch's (no label smoothing).

    Notes
    -----
    Forward: exactly three collectives per call: an ``all_gather`` of 16 integers per rank
    (the agreement: the ranks' own checks, what must be the same on every rank, the
    slice sizes), an ``all_reduce(MAX)`` of ``N`` numbers (the row maxima) and one
    ``all_reduce(SUM)`` of ``3N + 1`` numbers (``4N + 1`` with label smoothing; float64).
    Backward: no collectives. The design and the derivation are in the module docstring.
    There is no second derivative: backpropagating through gradients taken with
    ``create_graph=True`` (a gradient penalty) raises an error naming this loss.
    Every rank of ``group`` must call with the same group: a rank that passes another
    (``None`` where the others pass a subgroup) or does not call leaves the others
    waiting until the group's timeout, after which they raise an ``InputError`` saying
    so (no exchange can detect it). Not checked: that the slices are in rank order.
    Under ``torch.compile`` a refused option or argument type (a check that reads no
    value) raises eager's error at run time, also with ``fullgraph=True``, on every rank
    of the default group; with another ``group``, on its rank only (the others wait
    until the timeout unless they refuse too). A valid call on the default group
    compiles with ``fullgraph=True`` (one custom op, the eager call at run time: eager's
    loss and gradients bit for bit, the same agreement); with another ``group`` it
    does not (its agreement and value checks are graph breaks): PyTorch 2.13 has no
    public way for a custom op to reach that group at run time (an op's schema takes
    a ``GroupName`` string but not a ``ProcessGroup``; the lookup by name,
    ``_resolve_process_group``, is private; the group Dynamo hands to traced code is a
    ``FakeScriptObject`` whose real group is again only reachable privately).

    References
    ----------
    .. [1] M. Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language
       Models Using Model Parallelism", arXiv:1909.08053 (the vocab-parallel loss).
    """
    name = "vocab_parallel_cross_entropy"
    check_not_transformed(name)  # (the same on every rank: no exchange under a transform)
    checks = functools.partial(
        _logit_checks,
        input,
        target,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        soft_cap,
        temperature,
    )
    refused = _ops.refused_while_traced(input, checks, (name, group))
    if refused is not None:
        return refused
    if _traced_on_default_group(group):  # torch.compile: the call in one custom op
        opts = checks()[0]
        wanted = isinstance(weight, Tensor) and weight.requires_grad and torch.is_grad_enabled()
        loss: Tensor = torch.ops.crossent.vocab_parallel_ce_v1(
            input, target, weight, wanted, *_option_args(opts)
        )[0]
        return loss
    opts, z, y, batch, w, group, layout = _ce_prepare(checks, group, None)
    rows, wide = _VocabParallelCE.apply(z, y, w, opts, group, layout)
    return _reduce(rows, y, w, opts, batch, wide)


def vocab_parallel_linear_cross_entropy(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    group: Any = None,
    class_weight: Tensor | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Cross-entropy of ``input @ W.T + b`` with the classifier's rows sharded across ``group``.

    Rank :math:`r` holds rows :math:`[o_r, o_r + V_r)` of the classifier ``weight``
    (and ``bias``), in rank order (uneven, even empty); ``input`` and ``target`` are the
    same on every rank. Equal to :func:`vocab_parallel_cross_entropy` of the local logits
    :math:`h W_r^\top + b_r`, without ever holding them: the logits are formed
    ``chunk_size`` rows at a time, in forward and again in backward.

    Parameters
    ----------
    input : Tensor, shape (*batch, D)
        Hidden states, replicated on every rank of ``group``.
    weight : Tensor, shape (V_r, D)
        This rank's rows of the classifier.
    target : integer Tensor, shape (*batch)
        Global class ids in ``[0, V)`` or ``ignore_index``.
    bias : Tensor, shape (V_r,), optional
        This rank's part of the classifier's bias. ``input``, ``weight`` and ``bias``
        have one dtype (as in ``F.linear``; another is an :class:`InputTypeError`).
    group : ProcessGroup, optional
    class_weight : Tensor, shape (V,), optional
        Class weights of the whole vocabulary (``weight`` of
        :func:`vocab_parallel_cross_entropy`; here ``weight`` is the classifier); not
        differentiated. The hidden states of ignored rows are never used (zeroed).
    ignore_index, reduction, label_smoothing, z_loss, soft_cap, temperature
        As in :func:`vocab_parallel_cross_entropy`.
    chunk_size : int, optional
        Rows of logits formed at a time (default: about :math:`2^{22} / V_r`).

    Returns
    -------
    Tensor
        As in :func:`vocab_parallel_cross_entropy`.

    Raises
    ------
    InputError, InputTypeError
        As in :func:`vocab_parallel_cross_entropy`; also mismatched feature sizes, and
        ranks that disagree on the features or on whether ``input`` requires grad. Not
        checked: that ``input`` holds the same values on every rank.

    See Also
    --------
    vocab_parallel_cross_entropy

    Notes
    -----
    Forward: the same three collectives as :func:`vocab_parallel_cross_entropy`. Backward: one
    ``all_reduce(SUM)`` of the ``N x D`` input gradient, whose every rank holds only its slice's
    part :math:`G_r W_r` (skipped when ``input`` needs no gradient: then on every rank, which
    the agreement checks); so every rank must run the backward (a rank that drops its loss
    leaves the others waiting there until the group's timeout). Four matrix products in all: the
    backward recomputes the logits, because the gradient needs the global log-sum-exp, which is
    known only after the forward's collectives. Low-precision inputs: on the CPU the products
    are computed in float32 (the classifier slice cast once per call); on CUDA in
    bfloat16/float16 with float32 results (no float32 copy of the slice), the backward's from
    the two-term split of the float32 gradient block, as
    :func:`crossent.torch.linear_cross_entropy` (``crossent/torch/_products.py``). No second
    derivative, and ``torch.compile``, as :func:`vocab_parallel_cross_entropy`.
    """
    name = "vocab_parallel_linear_cross_entropy"
    check_not_transformed(name)  # (the same on every rank: no exchange under a transform)
    checks = functools.partial(
        _linear_checks,
        input,
        weight,
        target,
        bias,
        class_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        soft_cap,
        temperature,
        chunk_size,
    )
    refused = _ops.refused_while_traced(input, checks, (name, group))
    if refused is not None:
        return refused
    if _traced_on_default_group(group):  # torch.compile: the call in one custom op
        opts, h = checks()[:2]
        grad = torch.is_grad_enabled()
        wanted = isinstance(class_weight, Tensor) and class_weight.requires_grad and grad
        loss: Tensor = torch.ops.crossent.vocab_parallel_linear_ce_v1(
            input,
            weight,
            target,
            bias,
            class_weight,
            wanted,
            grad and h.requires_grad,
            *_option_args(opts),
            chunk_size,
        )[0]
        return loss
    opts, h, w, b, y, cw, chunk_size, batch, group, layout = _linear_prepare(checks, group, None)
    with autocast_off(h.device.type):  # the products are the loss's (_arguments)
        rows, wide = _VocabParallelLinearCE.apply(
            h.reshape(math.prod(batch), h.shape[-1]), w, b, y, cw, opts, group, chunk_size, layout
        )
    return _reduce(rows, y, cw, opts, batch, wide)


# --------------------------------------------------------------------------- compiled
# Under torch.compile the call on the default group is one custom op
# (``_vocab_parallel_ops``).


def _traced_on_default_group(group: Any) -> bool:
    """Whether the call is the custom op's: while Dynamo traces, on the default group of
    an initialised process group."""
    return (
        torch.compiler.is_compiling()
        and (group is None or group is dist.group.WORLD)
        and dist.is_available()
        and dist.is_initialized()
    )


def _option_args(opts: CallOptions) -> tuple[Any, ...]:
    """The checked options as the ops take them."""
    return (
        opts.ignore_index,
        opts.reduction,
        opts.label_smoothing,
        opts.z_loss,
        opts.soft_cap,
        opts.temperature,
    )
