r"""Softmax cross-entropy from logits, with integer labels or probability targets, and its gradient.

Design
------
Every option is a transformation of the logits or a term of one per-row formula.
With :math:`z' = \operatorname{cap}_s(z) / T` (soft-capping :math:`s\tanh(z/s)`, then
temperature), :math:`m = \max_c z'_c`, :math:`\ell = \log\sum_c e^{z'_c - m} \ge 0` (so
:math:`\operatorname{LSE}(z') = m + \ell`) and :math:`\sigma_c = z'_c - m \le 0`, a target
distribution :math:`\tilde t` (one-hot, or given; smoothed as
:math:`(1-\varepsilon)t + \varepsilon/C`) and class weights :math:`w`:

.. math::

    L = \sum_c w_c \tilde t_c\,(\operatorname{LSE}(z') - z'_c)
      = \underbrace{\Big(\sum_c w_c \tilde t_c\Big)}_{A}\,\ell
        \;-\; \underbrace{\sum_c w_c \tilde t_c\,\sigma_c}_{B \,\le\, 0}
      \;+\; \lambda\,\omega\,\operatorname{LSE}(z')^2

Both parts of :math:`A\ell - B` are non-negative, so the sum has no cancellation even
for logits of :math:`\pm 10^4` (``log(softmax(z))`` would round or overflow there).
The z-loss (PaLM, arXiv:2204.02311) is weighted by the example weight
:math:`\omega = \sum_c w_c t_c` (the unsmoothed target's weight; :math:`w_y` for a
label), and the ``"mean"`` reduction divides by :math:`\sum_i \omega_i`: one weighting
model for labels and targets, so one-hot targets give what integer labels give.
For integer labels this is exactly PyTorch's ``F.cross_entropy`` (whose smoothing
term carries the class weights too), except that a batch whose every target is
ignored has mean 0, not NaN.

The gradient with respect to :math:`z'` is

.. math:: \partial L / \partial z' = (A + 2\lambda\omega\,\operatorname{LSE})\,p - w \odot \tilde t,
          \qquad p = \operatorname{softmax}(z'),

which for a one-hot target and no options is the familiar :math:`p - y`. The chain
rule through temperature and soft-capping multiplies it by
:math:`\operatorname{sech}^2(z/s)/T`, formed as :math:`4u/(1+u)^2/T` with
:math:`u = e^{-2|z|/s}` (``_terms.chain_rule``): exact to a few ulps where
:math:`1 - \tanh^2(z/s)` cancels (all its digits past :math:`|z|/s \approx 19`).

Layout
------
The shared batch machinery (options, layout, labels, masks, reduction) is in
``_batch.py``; each option's per-row term, with its derivation, in ``_terms.py``; the
fused float32 CPU kernels in ``_cpu_kernels.py`` (Numba) and their blocked NumPy twins,
used when Numba is absent, in ``_numpy_kernels.py``. This module holds the
value-and-gradient entry points, which the public functions (and ``crossent.torch``'s
autograd Functions) are thin wrappers over:

* ``prepare_softmax_labels(logits, labels, /, *, axis=-1, weight=None,
  ignore_index=None, label_smoothing=0.0, reduction="mean", temperature=1.0,
  z_loss=0.0, soft_cap=None, base=None, validate=True, fused=True) -> SoftmaxProblem``
  and ``prepare_softmax_targets(logits, targets, /, *, axis=-1, weight=None,
  label_smoothing=0.0, reduction="mean", temperature=1.0, z_loss=0.0, soft_cap=None,
  base=None, validate=True) -> SoftmaxProblem``: validate once and compute the
  per-row log-sum-exp (with the fused kernels when they apply: NumPy float32/float16
  logits, classes last and C-contiguous, no soft-capping, ``fused``; Numba's kernels
  when it is installed, else the NumPy twins); the soft targets' generic terms are
  formed on first use, by a loss or gradient off the fused target kernels (issue 13:
  float32 logits and targets with Numba, ``_fused_target_loss`` and
  ``_fused_target_gradient``, read none of them; they share one pass of row
  statistics, ``SoftmaxProblem.fused_rows``, and under class weights form no
  ``w * t``: ``_FusedTargetBatch``). Their keywords are the group
  ``_batch.LossKeywords`` (declared there once, with ``_batch.labelled_batch``'s), given
  to them as one object by ``_batch.keywords_from``.
* ``SoftmaxProblem.loss()``: the reduced loss (per row for ``reduction="none"``);
  ``SoftmaxProblem.row_loss()``: per row, in nats, 0 on ignored rows;
  ``SoftmaxProblem.row_lse``: the per-row log-sum-exp of :math:`z'` (batch shape).
* ``softmax_gradient(problem, *, upstream=None, out=None)`` (also exported as
  ``softmax_label_gradient`` and ``softmax_target_gradient``): the gradient with
  respect to the logits of :math:`\sum_i u_i L_i` (``upstream`` :math:`u`: None for 1,
  a scalar, or an array of the batch shape for ``reduction="none"``), the reduction's
  normaliser and unit folded in, written into ``out`` when given; the log-sum-exp is
  never recomputed, and the fused gradient kernel is used when the problem was fused.

The public ``softmax_cross_entropy`` and ``softmax_cross_entropy_grad`` first try a
lean path (issue 13, small inputs): NumPy logits and labels, the classes last, and no
option that needs per-row weights (class weights, ``ignore_index``, label smoothing)
or soft-capping go to the row statistics (the generic path's for float64, the fused
kernels' for float32 when Numba is installed) and through the same per-row terms and
reduction, without building the problem; the values are the problem's bit for bit,
and anything unusual (a suspect row, a bad argument) is left to the full path, which
names it. On small float32 inputs with int64 labels that path is one compiled call
(``_softmax_small.py`` and ``_small_numba.py``): screening, statistics, loss and
reduction, or the gradient, in one Numba function; on small float64 inputs a few
compiled calls around NumPy's own np.exp and np.log1p, the generic path's values bit
for bit. Those two take label smoothing too. The soft-target loss and its gradient
try ``_small_targets`` first (float32 and float64: the same hybrid, through
:func:`lean_call`).

NumPy float16/float32 logits that the fused kernels do not read as they are (issue 13,
``_widen.py``): the public label and soft-target functions call themselves again on a
C-contiguous, classes-last copy (after the lean and small paths, which such logits never
take), or, with soft-capping, on float64 copies of blocks of rows (``_widen.blocked``),
and round the result to float32. The
small soft-target calls compute float32 logits in float64 (``_small_targets``). The
entry points above compute as given (``crossent.torch`` hands them contiguous views).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .. import _xp
from .._checks import (
    ValuelessArrayError,
    check_flag,
    check_labels,
    check_logits,
    check_logits_of_rows,
    check_out,
    truth_of,
)
from .._sides import prepare
from .._xp import (
    Array,
    cannot_copy_to_host,
    device,
    namespace,
    numpy_errstate,
    row_max,
    take_along_last,
    to_float32,
)
from ..errors import InputError
from . import _cpu_kernels, _numpy_kernels, _small_targets, _softmax_small
from ._batch import (
    Batch,
    Labels,
    LossKeywords,
    LossOptions,
    batch_for,
    class_mask,
    keywords_from,
    label_batch,
    options_of,
    prepare_labels,
    prepare_logits,
    prepare_weight,
    prepared_by,
    zero_where_ignored,
)
from ._far_gaps import (
    FarGradient,
    far_rows_guard,
    host64,
    label_far_rows,
    target_far_rows,
    times_lse64,
)
from ._far_lse import FAR_LSE as _FAR_LSE
from ._far_lse import far_lse_rows_
from ._kernel_inputs import HALF_LOG as _HALF_LOG
from ._kernel_inputs import GradientTerms, statistics_options
from ._reduction import reduce_loss, scale_for_reduction
from ._terms import (
    SoftmaxRows,
    chain_rule,
    label_coefficient,
    label_offset,
    label_target_gradient,
    label_terms,
    p_coefficient,
    probs,
    row_loss,
    smoothing_coefficients,
    softmax_rows,
    target_terms,
    target_weight,
    weighted_class_sum,
)
from ._weight_scale import weight_scaled
from ._widen import blocked, relayout, wide_float32

__all__ = [
    "GenericTerms",
    "SoftmaxProblem",
    "classes_last",
    "label_problem",
    "lean_call",
    "lean_settings",
    "prepare_softmax_labels",
    "prepare_softmax_targets",
    "quiet_ignored_rows",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
    "softmax_gradient",
    "softmax_label_gradient",
    "softmax_target_gradient",
]


@dataclass
class GenericTerms:
    """The generic path's row statistics and per-row terms of a problem (keepdims)."""

    rows: SoftmaxRows  # m + ell = LSE of z', and sigma on the generic path
    a: Array  # A = sum_c w_c t~_c
    b: Array  # B = sum_c w_c t~_c sigma_c
    target_term: Array | None = None  # w * t~ for probability targets


@dataclass
class SoftmaxProblem:
    """One validated softmax cross-entropy call: everything the loss and gradient need.

    ``terms``: the generic terms (:attr:`rows`, :attr:`a`, :attr:`b`,
    :attr:`target_term`), or the function that forms them, called once, on first use
    (probability targets, issue 13: their float32 gradient takes the fused kernel,
    which reads none of them).
    """

    batch: Batch  # layout, example weights omega (0 on ignored rows), reduction
    options: LossOptions
    terms: GenericTerms | Callable[[], GenericTerms]
    logits: Array  # the caller's array (to check ``out`` against)
    labels: Labels | None = None  # integer labels (None for probability targets)
    # (rows, classes) float32 NumPy view when the kernels apply: the fused label
    # gradient's logits, or the probability targets' (_fused_target_gradient)
    fast_logits: Any = None
    # z'_y - m per row from the fused statistics (None elsewhere, as in
    # crossent.torch's backward from saved log-sum-exps): the gradient forms the label's
    # entry from log p_y = (z'_y - m) - ell (_label_log_p); a loss call never needs it
    shifted_y: np.ndarray | None = None
    # probability targets as prepared (classes last, compute dtype) and the class
    # weights as given: the float32 gradient's fused kernel forms w (keep t + spread)
    # in float64 from them (issue 13)
    targets: Array | None = None
    class_weight: Any = None
    # the probability targets' fused statistics (_fused_target_rows), formed once for
    # the loss and the gradient of one problem (issue 13); _SUSPECT where a row is
    fused_rows: Any = None

    def generic(self) -> GenericTerms:
        """The generic terms, formed now if they were deferred."""
        terms = self.terms
        if not isinstance(terms, GenericTerms):
            terms = self.terms = terms()
        return terms

    @property
    def rows(self) -> SoftmaxRows:
        r"""The row statistics: :math:`m + \ell`, and :math:`\sigma` on the generic path."""
        return self.generic().rows

    @property
    def a(self) -> Array:
        r""":math:`A = \sum_c w_c\tilde t_c` per row (keepdims)."""
        return self.generic().a

    @property
    def b(self) -> Array:
        r""":math:`B = \sum_c w_c\tilde t_c\sigma_c` per row (keepdims)."""
        return self.generic().b

    @property
    def target_term(self) -> Array | None:
        r""":math:`w\odot\tilde t` of probability targets (None for integer labels)."""
        return self.generic().target_term

    @property
    def row_lse(self) -> Array:
        """Per-row log-sum-exp of the transformed logits :math:`z'`, batch shape."""
        return self.rows.lse[..., 0]

    def row_loss(self) -> Array:
        """Per-row loss in nats, batch shape; 0 on ignored rows."""
        loss = row_loss(
            self.rows,
            self.a,
            self.b,
            self.batch.example_weight,
            z_loss=self.options.z_loss,
            xp=self.batch.xp,
        )
        return zero_where_ignored(loss, self.batch.active, xp=self.batch.xp)

    def loss(self) -> Any:
        """The loss reduced as ``reduction`` says, in the unit of ``base``.

        Probability targets of float32 logits that the fused gradient takes
        (:attr:`fast_logits`) take the fused loss (:func:`_fused_target_loss`), which
        forms no generic terms; any other problem, and a suspect row, the generic terms.
        """
        if self.labels is None and self.fast_logits is not None:
            fused = _fused_target_loss(self)
            if fused is not None:
                return fused
        return self.batch.reduce(self.row_loss())


@keywords_from(LossKeywords)
def prepare_softmax_labels(
    logits: object, labels: object, given: LossKeywords, /, *, fused: bool = True
) -> SoftmaxProblem:
    """Validate a call of :func:`softmax_cross_entropy` once and compute its row statistics.

    The keywords are those of :class:`._batch.LossKeywords`, then ``fused``: use the
    fused CPU kernels when they apply (NumPy float32/float16 logits with the classes
    last, C-contiguous, no soft-capping): Numba's when it is installed, else their
    NumPy twins, which read the logits in blocks of rows.
    """
    opts = given.options()
    xp, (logits_arr, labels_arr) = namespace(logits, labels, names=("logits", "labels"))
    if fused and _fast_path_applies(logits_arr, given.axis, opts) and _native(labels_arr):
        return _fused_label_problem(logits_arr, labels_arr, opts, given, xp=xp)
    batched = label_batch(logits_arr, labels_arr, opts, given, xp=xp)
    lab = batched.labels
    rows, shifted_y, smooth_b = _generic_rows(batched.values, lab.safe, lab.weight, opts, xp=xp)
    return label_problem(batched.batch, lab, opts, rows, shifted_y, smooth_b, logits_arr)


def _generic_rows(
    z: Array, safe: Array, weight: Array | None, opts: LossOptions, *, xp: ModuleType
) -> tuple[SoftmaxRows, Array, Array | None]:
    """The generic path's row statistics (keepdims): the rows, :math:`z'_y - m`, and the
    smoothing's weighted class sum (None without smoothing); ``safe``: the labels with
    ignored rows at class 0."""
    rows = softmax_rows(z, soft_cap=opts.soft_cap, temperature=opts.temperature, xp=xp)
    assert rows.shifted is not None
    shifted_y = take_along_last(rows.shifted, safe[..., None], xp=xp)
    smooth_b = weighted_class_sum(rows.shifted, weight, xp=xp) if opts.label_smoothing else None
    return rows, shifted_y, smooth_b


def label_problem(
    batch: Batch,
    lab: Labels,
    opts: LossOptions,
    rows: SoftmaxRows,
    shifted_y: Array,
    smooth_b: Array | None,
    logits: Array,
    flat: np.ndarray | None = None,
) -> SoftmaxProblem:
    """The problem from the row statistics of either path (``flat``: the fused one's).

    Package-internal: ``crossent.torch``'s fused problems (16-bit logits, the backward
    from saved log-sum-exps) end here too, so the label terms are formed in one place.
    """
    a, b = label_terms(
        shifted_y,
        smooth_b,
        lab.row_weight,
        lab.weight,
        eps=opts.label_smoothing,
        classes=rows.z.shape[-1],
        xp=batch.xp,
        unweighted=lab.unweighted,
    )
    return SoftmaxProblem(
        batch=batch,
        options=opts,
        terms=GenericTerms(rows, a, b),
        logits=logits,
        labels=lab,
        fast_logits=flat,
    )


def _fast_path_applies(logits: Array, axis: object, opts: LossOptions) -> bool:
    """Whether the fused kernels take this call: NumPy float32 or float16 logits, the
    classes last (``axis`` an int naming the last axis), C-contiguous, not empty, no
    soft-capping."""
    if type(logits) is not np.ndarray or logits.dtype.char not in _FUSED_DTYPES:
        return False  # the dtype first: a character, not a dtype comparison (issue 13)
    if not logits.dtype.isnative:  # (Numba's kernels take native byte order only)
        return False
    return classes_last(logits, axis, opts) and bool(logits.flags.c_contiguous)


def classes_last(logits: np.ndarray, axis: object, opts: LossOptions) -> bool:
    """Not empty, no soft-capping, and ``axis`` an int naming the last axis (any other
    axis goes to the generic path, whose ``check_axis`` names a bad one)."""
    ndim = logits.ndim
    if opts.soft_cap is not None or ndim == 0 or type(axis) is not int or not -ndim <= axis < ndim:
        return False
    return axis % ndim == ndim - 1 and logits.size > 0


def _native(labels: Array) -> bool:
    """Whether NumPy ``labels`` are in native byte order, as Numba's kernels take them
    (other arrays are converted before they reach the kernels)."""
    return type(labels) is not np.ndarray or labels.dtype.isnative


_FUSED_DTYPES = (np.dtype(np.float32).char, np.dtype(np.float16).char)
"""The logits the fused kernels take: float32 and float16."""


def _fused_label_problem(
    logits: np.ndarray,
    labels: Array,
    opts: LossOptions,
    given: LossKeywords,
    *,
    xp: ModuleType,
) -> SoftmaxProblem:
    """The fused path, with as few Python and NumPy steps as the checks allow (issue 13).

    The logits are checked by the kernel (its *suspect* rows) and so is the labels'
    range by Numba's (a label outside ``[0, C)`` makes its row suspect; the NumPy twins
    leave it to ``check_labels``); the full checks run only
    for suspect rows, to name what is wrong: the logits' only with ``validate``, the
    labels' always (the kernel never reads such a label's logit).
    """
    z = logits if logits.dtype.char != _FLOAT16 else logits.astype(np.float32)
    weight, ignore_index, validate = given.weight, given.ignore_index, check_flag(given.validate)
    lab = prepare_labels(
        labels,
        logits=logits,
        values=z,
        dtype=z.dtype,
        weight=weight,
        ignore_index=ignore_index,
        validate=validate,
        xp=xp,
        check_range=not _cpu_kernels.available(),  # the NumPy twins do not flag labels
    )
    axis = z.ndim - 1
    flat = z.reshape(-1, z.shape[-1])
    rows, shifted_y, smooth_b, suspect = _kernel_rows(flat, lab.safe, lab.weight, opts)
    if suspect:
        # A NaN, +inf, a row of -inf or a label out of range may be there: the full
        # checks name it (the logits first, as on the generic path).
        classes = z.shape[-1]
        if validate:
            # The rows that count: an ignored row's logits are never read (issue 13).
            check_logits_of_rows(z, lab.active, name="logits", xp=np, axis=axis)
        # the labels' range whatever ``validate`` says (issue 13: never an index out
        # of bounds, nor a -1 read as the last class)
        check_labels(
            labels, xp=xp, batch_shape=lab.safe.shape, classes=classes, ignore_index=ignore_index
        )
        quiet_ignored_rows(rows, shifted_y, smooth_b, lab.active)
    batch = batch_for(
        z,
        axis,
        z.dtype,
        opts,
        xp=xp,
        example_weight=None if lab.unweighted else lab.row_weight,
        active=lab.active,
    )
    problem = label_problem(batch, lab, opts, rows, shifted_y, smooth_b, logits, flat)
    problem.shifted_y = shifted_y
    return problem


def quiet_ignored_rows(
    rows: SoftmaxRows, shifted_y: np.ndarray, smooth_b: np.ndarray | None, active: Any
) -> None:
    r"""The fused statistics of the ignored rows that are not finite (a NaN or an
    infinity among their logits, which only the rows that count are checked for, issue
    13) set to NaN, in place: the per-row terms then give NaN there quietly (NumPy warns
    where an operation makes a NaN of an infinity, :math:`0 \cdot \infty`, not where one
    passes a NaN on), which the loss's ``where`` and the gradient
    (:func:`_zero_ignored_rows`) set to 0. ``active`` None: no row is ignored."""
    if active is None:
        return
    bad = ~np.isfinite(rows.lse) & ~np.reshape(active, rows.lse.shape)
    if not bad.any():
        return
    for stat in (rows.lse, rows.ell, shifted_y, smooth_b):
        if stat is not None:
            stat[bad] = np.nan


def _label_log_p(shifted_y: Any, rows: SoftmaxRows) -> np.ndarray:
    r""":math:`\log p_y = (z'_y - m) - \ell` per row (flat) from the kernel's statistics:
    exact where the label is the maximum (:math:`z'_y - m = 0`), unlike :math:`z'_y -
    \mathrm{LSE}` with the LSE rounded to an ulp of :math:`m`."""
    return np.reshape(shifted_y, (-1,)) - np.reshape(rows.ell, (-1,))


def _kernel_rows(
    flat: np.ndarray, safe: np.ndarray, weight: np.ndarray | None, opts: LossOptions
) -> tuple[SoftmaxRows, Array, Array | None, int]:
    """Row statistics from the fused kernel, shaped like the generic path's (keepdims),
    and the number of suspect rows (``safe``: the labels, ignored rows at class 0)."""
    m, ell, shifted_y, total, suspect = _kernels().row_statistics(
        flat,
        safe.reshape(-1),
        statistics_options(1.0 / opts.temperature, bool(opts.label_smoothing), weight),
    )
    shape = (*safe.shape, 1)
    ell = ell.reshape(shape)
    rows = SoftmaxRows(z=flat, shifted=None, ell=ell, lse=m.reshape(shape) + ell)
    smooth_b = total.reshape(shape) if opts.label_smoothing else None
    # count_nonzero: no Python layer, unlike .any()
    return rows, shifted_y.reshape(shape), smooth_b, int(np.count_nonzero(suspect))


def _fast_rows(
    flat: np.ndarray, labels: Labels, opts: LossOptions, *, validate: bool, axis: int
) -> tuple[SoftmaxRows, Array, Array | None]:
    """:func:`_kernel_rows` with the logits checked where a row is suspect (``axis``: the
    caller's class axis, for the message); ``crossent.torch``'s backend uses it."""
    rows, shifted_y, smooth_b, suspect = _kernel_rows(flat, labels.safe, labels.weight, opts)
    if validate and suspect:
        # A NaN, +inf or a row of -inf may be there: the full check names it.
        check_logits(flat, name="logits", xp=np, axis=axis)
    return rows, shifted_y, smooth_b


_FLOAT16 = np.dtype(np.float16).char


def _kernels() -> ModuleType:
    """The Numba kernels when Numba is installed, else their blocked NumPy twins (issue 13)."""
    return _cpu_kernels if _cpu_kernels.available() else _numpy_kernels


@keywords_from(LossKeywords, hide=("ignore_index",))
def prepare_softmax_targets(
    logits: object, targets: object, given: LossKeywords, /
) -> SoftmaxProblem:
    """Validate a call of :func:`softmax_cross_entropy_with_targets` once (generic path).

    The keywords are those of :class:`._batch.LossKeywords` but ``ignore_index``.
    """
    opts = given.options()
    xp, (logits_arr, targets_arr) = namespace(logits, targets, names=("logits", "targets"))
    if tuple(logits_arr.shape) != tuple(targets_arr.shape):
        raise InputError(
            f"`logits` and `targets` must have the same shape; got {tuple(logits_arr.shape)} "
            f"and {tuple(targets_arr.shape)}"
        )
    validate = check_flag(given.validate)
    z, normalised_axis, dtype = prepare_logits(
        logits_arr, given.axis, xp=xp, validate=validate, extra=(targets_arr,)
    )
    t = prepare(
        targets_arr,
        name="targets",
        form="probs",
        axis=normalised_axis,
        xp=xp,
        dtype=dtype,
        validate=validate,
    ).values
    w = prepare_weight(
        given.weight, xp=xp, classes=z.shape[-1], dtype=dtype, validate=validate, like=logits_arr
    )
    fast_logits = _fused_target_logits(z, t, opts, normalised_axis)
    batch: Batch
    if w is not None and fast_logits is not None:
        batch = _FusedTargetBatch(
            xp,
            dtype,
            normalised_axis,
            functools.partial(target_weight, t, w, xp=xp),
            opts,
            normalizer=functools.partial(_fused_normalizer, t, given.weight),
        )
    else:
        omega = target_weight(t, w, xp=xp)
        batch = batch_for(z, normalised_axis, dtype, opts, xp=xp, example_weight=omega)
    return SoftmaxProblem(
        batch=batch,
        options=opts,
        terms=functools.partial(_target_terms, z, t, w, opts, xp=xp),
        logits=logits_arr,
        fast_logits=fast_logits,
        targets=t,
        class_weight=given.weight,
    )


class _FusedTargetBatch(Batch):
    r"""The :class:`Batch` of float32 probability targets under class weights that the
    fused kernels take (issue 13): :math:`\omega_i = \sum_c w_c t_{ic}` is not formed
    when the call is prepared, since ``w * t`` is an N x V temporary (500 MiB at 4096 x
    32000).

    The fused loss sums :math:`\omega` in its own kernel and never reads this batch's;
    the generic path (a suspect row) forms ``example_weight`` on first use, as
    ``_terms.target_weight`` always did. :meth:`normalizer` (the ``'mean'`` gradient's
    :math:`\sum_i\omega_i`) is the float64 sum of the kernel's float64 rows, from the
    class weights as given, rounded once to float32 (:func:`_fused_normalizer`): within
    half a float32 ulp of the sum the fused loss divides by, where the float32 products
    and row sums of ``w * t`` had strayed by several.
    """

    def __init__(
        self,
        xp: ModuleType,
        dtype: Any,
        axis: int,
        weights: Callable[[], Array],
        options: LossOptions,
        *,
        normalizer: Callable[[], Any],
    ) -> None:
        self._weights: Array | Callable[[], Array] = weights
        super().__init__(
            xp, dtype, axis, weights, None, options.reduction, options.log_base_in(dtype)
        )
        self._normalizer: Callable[[], Any] | None = normalizer
        self._total: Any = None

    @property
    def example_weight(self) -> Array:
        r""":math:`\omega_i` (keepdims, the compute dtype), formed on first use."""
        weights = self._weights
        if callable(weights):
            weights = self._weights = weights()
        return weights

    @example_weight.setter
    def example_weight(self, weights: Array | Callable[[], Array]) -> None:
        self._weights = weights

    def normalizer(self) -> Array:
        r""":math:`\sum_i \omega_i` from the targets and class weights, no temporary."""
        if self._normalizer is not None:
            self._total, self._normalizer = self._normalizer(), None
        return self._total


def _class_weights64(weight: Any) -> np.ndarray:
    """The class weights as given, as the C-contiguous float64 vector the kernels read."""
    return np.ascontiguousarray(np.reshape(weight, (-1,)), dtype=np.float64)


def _fused_normalizer(targets: np.ndarray, weight: Any) -> np.float32:
    r""":math:`\sum_i\omega_i`, :math:`\omega_i = \sum_c w_c t_{ic}` each summed in
    float64 by ``_cpu_kernels.target_example_weights`` (float32 ``targets``, classes
    last, C-contiguous; the class weights as given), the total in float64, rounded once to
    float32."""
    rows = targets.reshape(-1, targets.shape[-1])
    omega = _cpu_kernels.target_example_weights(rows, _class_weights64(weight))
    return np.float32(np.add.reduce(omega))


def _target_terms(
    z: Array, t: Array, w: Array | None, opts: LossOptions, *, xp: ModuleType
) -> GenericTerms:
    """The generic terms of probability targets (``z``, ``t``, ``w``: as prepared), formed
    when first used: by the loss, and by the gradient only off its fused kernel."""
    rows = softmax_rows(z, soft_cap=opts.soft_cap, temperature=opts.temperature, xp=xp)
    assert rows.shifted is not None
    a, b, wt = target_terms(rows.shifted, t, w, eps=opts.label_smoothing, xp=xp)
    return GenericTerms(rows, a, b, wt)


class _FusedTargetRows(NamedTuple):
    """What the probability targets' fused loss and gradient start from (issue 13)."""

    logits: np.ndarray  # (N, V) float32, C-contiguous (SoftmaxProblem.fast_logits)
    targets: np.ndarray  # (N, V) float32, C-contiguous
    shape: tuple[int, ...]  # the prepared targets' shape (classes last)
    m: np.ndarray  # the fused statistics of z/T per row, float64
    ell: np.ndarray
    keep: float  # _terms.smoothing_coefficients
    spread: float
    weight: np.ndarray | None  # the class weights, C-contiguous float64, or None


def _fused_target_rows(problem: SoftmaxProblem) -> _FusedTargetRows | None:
    """The fused statistics and options of ``problem``'s float32 probability targets, or
    None (the generic path) where a row is suspect (a NaN, ``+inf``, a row of ``-inf``).

    Formed on the first call and kept on ``problem``: the loss and the gradient of one
    prepared problem (the value-and-gradient entry points) read the logits for their
    statistics once, not twice (issue 13).
    """
    rows = problem.fused_rows
    if rows is None:
        rows = problem.fused_rows = _target_statistics(problem)
    return None if rows is _SUSPECT else rows


_SUSPECT = object()  # SoftmaxProblem.fused_rows of a problem with a suspect row


def _target_statistics(problem: SoftmaxProblem) -> _FusedTargetRows | object:
    """:func:`_fused_target_rows` formed: the statistics, or :data:`_SUSPECT`."""
    flat, t = problem.fast_logits, problem.targets
    assert isinstance(t, np.ndarray)
    opts = problem.options
    n, classes = flat.shape
    m, ell, _, _, suspect = _cpu_kernels.row_statistics(
        flat, np.zeros(n, dtype=np.int64), statistics_options(1.0 / opts.temperature, False, None)
    )
    if np.count_nonzero(suspect):
        return _SUSPECT
    keep, spread = smoothing_coefficients(opts.label_smoothing, classes)
    weight = problem.class_weight
    if weight is not None:
        weight = _class_weights64(weight)
    return _FusedTargetRows(flat, t.reshape(-1, classes), t.shape, m, ell, keep, spread, weight)


def _fused_target_loss(problem: SoftmaxProblem) -> Any:
    r"""The probability targets' loss of float32 logits without N x V temporaries (issue
    13), or None (the generic path) where a row is suspect (a NaN, ``+inf``, a row of
    ``-inf``), as :func:`_fused_target_gradient`.

    Each row's :math:`L_i = A_i\ell_i - B_i + \lambda\omega_i\mathrm{LSE}_i^2` (the
    generic :func:`row_loss` of :func:`target_terms`, :math:`\omega_i` that of
    :func:`target_weight`) is formed in float64 from the fused statistics and one pass
    over the logits and targets as given (``_cpu_kernels.target_row_losses``), the class
    weights in float64 as given; the reduction runs in float64 (``'mean'`` divides by
    the float64 :math:`\sum_i\omega_i`) and the result is rounded once to float32: the
    float64 computation's value, as ``_small_targets`` gives small calls. The generic
    float32 path rounded the shifted logits, their exponentials and each term. Peak
    extra memory: a few float64 vectors of the rows.
    """
    rows = _fused_target_rows(problem)
    if rows is None:
        return None
    opts, batch = problem.options, problem.batch
    loss, omega = _cpu_kernels.target_row_losses(
        rows.logits,
        rows.targets,
        m=rows.m,
        ell=rows.ell,
        inv_temperature=1.0 / opts.temperature,
        keep=rows.keep,
        spread=rows.spread,
        weight=rows.weight,
        z_loss=opts.z_loss,
    )
    normalizer = np.float64(loss.size) if rows.weight is None else np.add.reduce(omega)
    reduced = reduce_loss(
        np.reshape(loss, rows.shape[:-1]),
        normalizer,
        reduction=batch.reduction,
        xp=_xp.compat_numpy,
        log_base=batch.log_base,
        dtype=np.float64,
    )
    return to_float32(reduced)


def softmax_gradient(problem: SoftmaxProblem, *, upstream: object = None, out: Any = None) -> Array:
    r"""The gradient of :math:`\sum_i u_i L_i` with respect to the logits, from ``problem``.

    .. math:: \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_i
              - w\odot\tilde t_i

    then through soft-capping and temperature (:func:`chain_rule`), times the
    reduction's scale and ``upstream`` (None: 1; a scalar; or, for ``'none'``, an array
    of the batch shape), zero on ignored rows, in the caller's layout. ``out``: a
    C-contiguous NumPy buffer of the logits' shape and the compute dtype to write into.
    """
    if out is not None:
        check_out(out, problem.logits, dtype=problem.batch.dtype)
    if problem.fast_logits is not None and problem.labels is not None:
        return _fast_gradient(problem, upstream=upstream, out=out)
    if problem.fast_logits is not None:  # probability targets
        grad = _fused_target_gradient(problem, upstream)
        if grad is not None:
            if out is None:
                return grad
            out[...] = grad
            return out
    xp, opts, rows = problem.batch.xp, problem.options, problem.rows
    if problem.labels is not None:
        lab = problem.labels
        target = label_target_gradient(
            lab.safe, lab.row_weight, lab.weight, eps=opts.label_smoothing, like=rows.z, xp=xp
        )
    else:
        assert problem.target_term is not None
        target = problem.target_term
    safe = None if problem.labels is None else problem.labels.safe
    grad = _row_gradient(
        rows, problem.a, problem.batch.example_weight, target, opts, xp=xp, safe=safe
    )
    grad = problem.batch.finish_gradient(grad, upstream)
    if out is None:
        return grad
    out[...] = grad
    return out


def _fused_target_logits(z: Array, t: Array, opts: LossOptions, axis: int) -> np.ndarray | None:
    """The (rows, classes) view of ``z`` when the probability targets' gradient takes
    :func:`_fused_target_gradient`, else None: NumPy float32 logits and targets,
    C-contiguous with the classes last (``_widen``'s relayout makes them so; ``axis``:
    the caller's, normalised), no soft-capping, Numba installed."""
    if not (
        type(z) is np.ndarray
        and type(t) is np.ndarray
        and z.dtype.char == _FLOAT32
        and t.dtype.char == _FLOAT32
        and z.size > 0
        and z.flags.c_contiguous
        and t.flags.c_contiguous
        and opts.soft_cap is None
        and axis == z.ndim - 1
        and _cpu_kernels.available()
    ):
        return None
    return z.reshape(-1, z.shape[-1])


def _fused_target_gradient(problem: SoftmaxProblem, upstream: object) -> np.ndarray | None:
    r"""The probability targets' gradient of float32 logits, each entry
    :math:`s_i\,[(A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_{ic} - w_c\tilde t_{ic}]/T`
    formed in float64 and rounded once (issue 13): the generic path's float32
    :math:`p - \tilde t` lost up to 3.7e-7 where the two cancel. :math:`p` is good to
    about a float64 ulp (``write_target_gradient``: an exact reduction, ``EXP_POLY``'s
    degree-11 ``exp``, the fused statistics' log-sum-exp corrected by a pass over the row), so an
    entry within an ulp of float32 where :math:`t = \mathrm{fl}(p)`; :math:`A` and
    :math:`\omega`: float64 sums of the targets and weights as given, by the kernel; the
    reduction's scale is the compute dtype's, as the label gradient's
    (:func:`_fast_gradient`). None (the generic path) where a row is suspect (a NaN,
    ``+inf``, a row of ``-inf``).
    """
    rows = _fused_target_rows(problem)
    if rows is None:
        return None
    opts, batch = problem.options, problem.batch
    scale = batch.gradient_scale(upstream)
    row_scale = np.reshape(np.asarray(scale, dtype=np.float64), (-1,)) / opts.temperature
    if batch.active is not None:
        row_scale = row_scale * np.reshape(batch.active, (-1,))
    grad = _cpu_kernels.write_target_gradient(
        rows.logits,
        rows.targets,
        m=rows.m,
        ell=rows.ell,
        temperature=opts.temperature,
        row_scale=np.ascontiguousarray(np.broadcast_to(row_scale, rows.m.shape)),
        keep=rows.keep,
        spread=rows.spread,
        z_coef=2.0 * opts.z_loss,
        weight=rows.weight,
    )
    return grad.reshape(rows.shape)


def _row_gradient(
    rows: SoftmaxRows,
    a: Any,
    omega: Any,
    target: Array,
    opts: LossOptions,
    *,
    xp: ModuleType,
    safe: Array | None = None,
) -> Array:
    r""":math:`\partial L_i/\partial z` per row (generic path, classes last): the factor of
    :math:`p` (:func:`p_coefficient`) times :math:`p`, less ``target``, through the chain
    rule; with integer labels (``safe``, ignored rows at class 0), each label's entry by
    :func:`_exact_label_entries`.

    With a z-loss, :math:`\operatorname{LSE} = m/T + \ell` overflows where :math:`|m|/T`
    passes the range (logits of :math:`\pm 10^{308}` at :math:`T < 1`), although
    :math:`2\lambda\omega\operatorname{LSE}` is finite: :func:`_scaled_lse` then gives
    :math:`\lambda\operatorname{LSE}` of those rows formed without the LSE
    (a hostile pass: ``[1e308, -1e308]`` at :math:`T = 1/4`, :math:`\lambda = 10^{-4}`
    gave NaN, :math:`\infty \cdot 0`, where the gradient is :math:`(3.2\cdot
    10^{305}, 0)`). One check of the per-row LSEs, with a z-loss only."""
    lse, z_loss = rows.lse, opts.z_loss
    if z_loss and _lse_overflowed(lse, xp=xp):
        lse, z_loss = _scaled_lse(rows, opts, xp=xp)
    coef = p_coefficient(a, omega, lse, z_loss=z_loss)
    grad = coef * probs(rows, xp=xp) - target
    if safe is None:  # probability targets: the entry where p > 1/2 as a label's (issue 13)
        safe = _confident_classes(rows, xp=xp)
    if safe is not None:
        grad = _exact_label_entries(grad, rows, coef, target, safe, (a, omega, z_loss, lse), xp=xp)
    return chain_rule(
        grad,
        rows.z,
        soft_cap=opts.soft_cap,
        temperature=opts.temperature,
        xp=xp,
    )


def _lse_overflowed(lse: Array, *, xp: ModuleType) -> bool:
    """Whether a per-row log-sum-exp is infinite (NumPy: one ``isinf`` of the rows).

    False for arrays without values to branch on (inside ``jax.jit``, ``vmap``, meta
    tensors): there the plain products stay, NaN where the LSE overflows, as before."""
    if type(lse) is np.ndarray:
        return bool(np.isinf(lse).any())
    if cannot_copy_to_host(lse):  # (no host copy for _scaled_lse: the plain products)
        return False
    try:
        return truth_of(xp.any(xp.isinf(lse)))
    except ValuelessArrayError:
        return False


def _scaled_lse(rows: SoftmaxRows, opts: LossOptions, *, xp: ModuleType) -> tuple[Array, Array]:
    r"""Per row, the pair :math:`(\operatorname{LSE}', \lambda')` whose product
    :func:`p_coefficient` and :func:`label_offset` take for :math:`\lambda
    \operatorname{LSE}`: :math:`(\operatorname{LSE}, \lambda)` where the LSE is finite
    (the same bits), and :math:`(\lambda\operatorname{LSE}, 1)` where it overflowed,
    :math:`\lambda\operatorname{LSE}` formed by :func:`._far_gaps.times_lse64` from the
    row maximum :math:`m` of the (capped) logits and :math:`\ell` in float64 on host
    copies (those of other libraries too: a rare pass), ``inf`` only where it truly
    overflows. Any :math:`T`: a fixed :math:`2^{-64}` scaling of the LSE (before)
    overflowed again below :math:`T = 2^{-64}` (a hostile pass: ``[1e308, -1e308]`` at
    :math:`T = 2^{-70}`, :math:`\lambda = 10^{-50}` gave NaN, truth
    :math:`2.8\cdot 10^{300}`)."""
    z, lse = rows.z, rows.lse
    capped = z if opts.soft_cap is None else opts.soft_cap * xp.tanh(z / opts.soft_cap)
    top = host64(row_max(capped, xp=xp), name="logits")
    ell, lse64 = host64(rows.ell, name="logits"), host64(lse, name="logits")
    far = np.isinf(lse64)
    product = np.where(far, times_lse64(opts.z_loss, top, ell, opts.temperature), 0.0)
    if type(lse) is np.ndarray:
        with numpy_errstate(lse, xp, over="ignore"):  # (float32: inf past their range)
            again = product.astype(lse.dtype)
        return np.where(far, again, lse), np.where(far, 1.0, opts.z_loss).astype(lse.dtype)
    where = device(lse)
    far_xp = xp.asarray(far, device=where)
    again = xp.asarray(product.astype(np.float32) if lse.dtype == xp.float32 else product)
    again = xp.asarray(again, dtype=lse.dtype, device=where)
    ones = xp.ones_like(lse)
    return xp.where(far_xp, again, lse), xp.where(far_xp, ones, opts.z_loss * ones)


def _exact_label_entries(
    grad: Array,
    rows: SoftmaxRows,
    coef: Any,
    target: Array,
    safe: Array,
    coefficient: tuple[Any, Any, Any, Array],
    *,
    xp: ModuleType,
) -> Array:
    r"""``grad`` (:math:`c\,p - t`) with each label's entry as :math:`c \operatorname{expm1}
    (\sigma_y - \ell) + (c - t_y)`: :math:`p_y - 1` without the rounding of :math:`p_y`
    (an ulp of 1, large against :math:`1 - p_y` at extreme confidence); :math:`\sigma_y
    - \ell = \log p_y` is exact where the label is the maximum (:math:`\sigma_y = 0`).
    :math:`c - t_y` is :func:`label_offset`'s, from :math:`c`'s parts (``coefficient``:
    :math:`A`, :math:`\omega`, :math:`\lambda` and the LSE, both perhaps scaled by
    :func:`_scaled_lse`), not from :math:`c` rounded.
    Only where :math:`p_y > 1/2` (:data:`._kernel_inputs.HALF_LOG`): below, :math:`c\,p_y - t_y` as
    formed keeps :math:`t_y`'s digits, which :math:`c \operatorname{expm1} + c` would
    cancel when :math:`c` is large (a z-loss on large logits).

    NumPy: written per row, in place (``grad`` is our own temporary); elsewhere one
    ``where``. A label that is not a class (``validate=False``) keeps its row as it was.
    """
    assert rows.shifted is not None
    a, omega, z_loss, lse = coefficient
    classes = grad.shape[-1]
    if type(grad) is np.ndarray and grad.ndim == 2:  # (issue 13: NumPy calls, not xp's)
        at, labels = np.arange(grad.shape[0]), np.reshape(safe, (-1,))
        valid = labels.astype(np.uint64) < classes  # (a negative label: not a class)
        if not valid.all():
            at, labels = at[valid], labels[valid]
        log_p = rows.shifted[at, labels] - rows.ell[at, 0]
        confident = log_p > _HALF_LOG
        if not confident.all():
            at, labels, log_p = at[confident], labels[confident], log_p[confident]
        # (np.broadcast_to only where needed: microseconds a call)
        column = (grad.shape[0], 1)
        c = (coef if np.shape(coef) == column else np.broadcast_to(coef, column))[at, 0]
        full = target if target.shape == grad.shape else np.broadcast_to(target, grad.shape)
        t_y = full[at, labels]
        gap = label_offset(
            _rows_of(a, at, column),
            t_y,
            _rows_of(omega, at, column),
            lse[at, 0],
            z_loss=z_loss if isinstance(z_loss, float) else z_loss[at, 0],
        )
        grad[at, labels] = c * np.expm1(log_p) + gap
        return grad
    index = xp.clip(safe, 0, classes - 1)[..., None]
    sigma_y = take_along_last(rows.shifted, index, xp=xp)
    t_y = take_along_last(xp.broadcast_to(target, grad.shape), index, xp=xp)
    log_p = sigma_y - rows.ell
    value = coef * xp.expm1(log_p) + label_offset(a, t_y, omega, lse, z_loss=z_loss)
    return xp.where(class_mask(safe, classes, xp=xp) & (log_p > _HALF_LOG), value, grad)


def _confident_classes(rows: SoftmaxRows, *, xp: ModuleType) -> Array | None:
    r"""Per row, the class with :math:`p_c > 1/2` where it has one, else -1 (no class);
    None where no row has one. Such a class is the row's maximum (:math:`\sigma_c = 0`),
    so the test is per row: :math:`\log p_c = -\ell > \log\tfrac12`
    (:data:`._kernel_inputs.HALF_LOG`), and only those rows are searched (NumPy). With it
    :func:`_exact_label_entries` forms that entry of probability targets,
    :math:`c\,p_c - t_c`, as :math:`c\operatorname{expm1}(\log p_c) + (c - t_c)`: a
    one-hot row at logits ``[0, -80]`` has :math:`-(1 - p_0) = -1.8\times10^{-35}`
    there, not 0 (:math:`p_0` rounded to 1; issue 13).
    """
    assert rows.shifted is not None
    confident = -rows.ell[..., 0] > _HALF_LOG
    if type(confident) is np.ndarray:
        if not confident.any():
            return None
        if confident.all():  # (no copy of the rows)
            return np.argmax(rows.shifted, axis=-1)
        classes = np.full(confident.shape, -1, dtype=np.intp)
        classes[confident] = np.argmax(rows.shifted[confident], axis=-1)
        return classes
    return xp.where(confident, xp.argmax(rows.shifted, axis=-1), -1)


def _rows_of(x: Any, at: np.ndarray, column: tuple[int, int]) -> Any:
    """The entries ``at`` of a per-row ``x`` (broadcast to ``column``); a scalar as it is
    (a Python float stays one: NumPy's weak scalar, as in the ``where`` form)."""
    if np.ndim(x) == 0:
        return x
    return (x if np.shape(x) == column else np.broadcast_to(x, column))[at, 0]


#: The names the brief of ``crossent.torch`` uses; one function serves both forms.
softmax_label_gradient = softmax_gradient
softmax_target_gradient = softmax_gradient


def _fast_gradient(problem: SoftmaxProblem, *, upstream: object, out: Any) -> Array:
    """The label gradient of a fused problem (:func:`kernel_gradient`).

    Its coefficients are formed in float64 from the weights as given (issue 13):
    :math:`A`, :math:`\\omega` and :math:`w` rounded to float32 (as the loss holds
    them) would cost the entries where :math:`A p - w\\odot\\tilde t` cancels many
    float32 ulps; the kernel rounds each entry once. The ``'mean'`` scale stays
    :math:`1/\\sum_i\\omega_i` in the compute dtype (an ulp of it at most): it is what
    ``crossent.torch``'s mean hands its backward as the upstream gradient (bit for bit).
    """
    lab = problem.labels
    assert lab is not None
    shifted_y = problem.shifted_y
    log_p = None if shifted_y is None else _label_log_p(shifted_y, problem.rows)
    opts = problem.options
    omega, weight = lab.float64_weights()
    a = label_coefficient(
        omega, weight, eps=opts.label_smoothing, classes=problem.fast_logits.shape[-1], xp=np
    )
    return _kernel_gradient(
        problem.fast_logits,
        lab.safe,
        lse=np.reshape(problem.rows.lse, (-1,)),
        a=a,
        omega=omega,
        scale=problem.batch.gradient_scale(upstream),
        active=lab.active,
        weight=weight,
        opts=opts,
        out=out,
        label_log_p=log_p,
    )


def _kernel_gradient(
    flat: np.ndarray,
    safe: np.ndarray,
    *,
    lse: np.ndarray,
    a: Any,
    omega: Any,
    scale: Any,
    active: np.ndarray | None,
    weight: np.ndarray | None,
    opts: LossOptions,
    out: Any,
    label_log_p: np.ndarray | None = None,
) -> Array:
    """The label gradient from the fused kernel, every option folded into row coefficients.

    Row i is ``c_i p_i - r_i u - g_i e_{y_i}`` with ``c_i = (A_i + 2 lambda omega_i
    LSE_i) s_i`` (:func:`p_coefficient`), ``g_i = keep omega_i s_i``, ``u = spread w``
    (:func:`smoothing_coefficients`) and ``r_i = s_i``, where ``s_i`` holds the
    reduction's scale and ``upstream`` (``scale``: :meth:`Batch.gradient_scale`), the
    temperature's ``1/T`` (:func:`chain_rule`) and the row mask (``active``). ``a``
    and ``omega`` are per row (float64), or 1.0 for every row; ``safe`` holds the
    labels with the ignored rows at class 0, in the batch shape. ``label_log_p``: each
    row's log p_y (:func:`_label_log_p`), for the label's entry exact at any
    confidence (:class:`GradientTerms`); None to form it from the LSE.
    """
    n, classes = flat.shape
    # A scalar scale stays a Python float (issue 13: every NumPy call on a few rows
    # costs about a microsecond); an upstream array is one float64 value per row.
    if np.ndim(scale):
        row_scale: Any = np.reshape(scale, (-1,)).astype(np.float64) / opts.temperature
    else:
        row_scale = float(scale) / opts.temperature
    if active is not None:
        row_scale = row_scale * np.reshape(active, (-1,))
    coef = p_coefficient(a, omega, lse, z_loss=opts.z_loss)
    keep, spread = smoothing_coefficients(opts.label_smoothing, classes)
    uniform = row_uniform = None
    if opts.label_smoothing:
        uniform = spread * (np.ones(classes) if weight is None else weight)
        row_uniform = np.broadcast_to(row_scale, (n,))
    target = omega if keep == 1.0 else keep * omega  # 1.0 * x is x
    offset = None
    if opts.z_loss and label_log_p is not None:  # c - g from c's parts (issue 13)
        gap = label_offset(a, target, omega, lse, z_loss=opts.z_loss)
        offset = np.broadcast_to(gap * row_scale, (n,))
    terms = GradientTerms(
        shift=lse,
        inv_temperature=1.0 / opts.temperature,
        p_coef=np.broadcast_to(coef * row_scale, (n,)),
        target_coef=np.broadcast_to(target * row_scale, (n,)),
        uniform=uniform,
        row_uniform=row_uniform,
        label_log_p=label_log_p,
        label_offset=offset,
        temperature=opts.temperature,
    )
    flat_labels = np.reshape(safe, (-1,))
    grad = _kernels().write_gradient(
        flat, flat_labels, terms, out=None if out is None else np.reshape(out, flat.shape)
    )
    # Rows of |LSE| >= 2**20 again from the row maximum (issue 13: the kernels' shift
    # fl(m + ell) rounds to an ulp of m); two reductions of the N log-sum-exps screen.
    # (With smoothing the kernels correct the shift by a pass over each row already;
    # only the rows they leave non-finite, a float32 z/T past its range at T = 1e-30,
    # are formed again.)
    if np.maximum.reduce(lse, None) >= _FAR_LSE or np.minimum.reduce(lse, None) <= -_FAR_LSE:
        far_lse_rows_(grad, flat, flat_labels, terms, unfinished_only=uniform is not None)
    # One reduction: the sum of the log-sum-exps is finite exactly when each is (float64,
    # of float32 logits: no overflow), so calls with no such row pay only that.
    if active is not None and not math.isfinite(np.add.reduce(lse, None)):
        _zero_ignored_rows(grad, active, lse)
    return out if out is not None else np.reshape(grad, (*safe.shape, classes))


def _zero_ignored_rows(grad: np.ndarray, active: np.ndarray, lse: np.ndarray) -> None:
    """0 in place on the ignored rows of the kernel's ``grad`` (rows x classes) whose
    ``lse`` is not finite: their logits hold a NaN or an infinity, unchecked (issue 13),
    which the kernel turns into NaN times the row's zero coefficient. The other ignored
    rows are 0 already."""
    flat = np.reshape(grad, (-1, grad.shape[-1]))
    ignored = ~np.reshape(active, (-1,)) & ~np.isfinite(np.reshape(lse, (-1,)))
    if ignored.any():
        flat[ignored] = 0


# ------------------------------------------------------------ the lean path (issue 13)
# A call with NumPy logits and labels and none of the options that need per-row weights
# (class weights, ignore_index, label smoothing but in the compiled small calls) goes
# from the public function to the row statistics and back without the problem's
# objects (labels, batch, problem) and their checks of what cannot happen here. The
# statistics are those of the problem: the fused kernels' for float32 logits (when
# Numba is installed), the generic path's ``softmax_rows`` for float64; then the same
# per-row terms (``_terms``) and the same reduction (``reduce_loss``), so the values
# are the problem's, bit for bit (pinned by tests/losses/test_issue13_small_dispatch.py).
# Anything unusual (a suspect row for the kernels, another dtype or layout, another
# option) leaves it for the full path, which also names what is wrong. A float32 call
# that ``_softmax_small.takes`` is one compiled call instead of the statistics and
# terms below (pinned bit for bit by tests/losses/test_issue13_compiled_small.py and,
# with smoothing, test_issue13_compiled_small_smoothing.py), a float64 one compiled
# calls around NumPy's exp and log1p (tests/losses/test_issue13_float64_small.py).

_LEAN_DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(prepare_softmax_labels).parameters.items()
    if name in {"axis", "label_smoothing", "reduction", "temperature", "z_loss", "base", "validate"}
}
"""The keywords the lean path takes, with their defaults; any other leaves it."""

_FLOAT64 = np.dtype(np.float64).char


def _lean_options(given: dict[str, Any]) -> LossOptions:
    """The options of a lean call (no soft-capping), checked; label smoothing only the
    compiled small calls take (:func:`_lean_loss`)."""
    return options_of(
        given["label_smoothing"],
        given["temperature"],
        given["z_loss"],
        None,
        given["base"],
        given["reduction"],
    )


_DEFAULT_OPTIONS = _lean_options(_LEAN_DEFAULTS)
_DEFAULT_AXIS, _DEFAULT_VALIDATE = _LEAN_DEFAULTS["axis"], _LEAN_DEFAULTS["validate"]
_DEFAULT_SETTINGS = (_DEFAULT_OPTIONS, _DEFAULT_AXIS, _DEFAULT_VALIDATE)
_DEFAULT_LAST = (
    type(_DEFAULT_AXIS) is int and _DEFAULT_AXIS == -1 and _DEFAULT_OPTIONS.soft_cap is None
)
"""Whether the default axis names the last axis of any logits but 0-d ones (issue 13:
``lean_call`` of a call without options then calls no ``classes_last``)."""

_Settings = tuple[LossOptions, Any, Any]
"""``(options, axis, validate)`` of a lean call."""


def lean_settings(kwargs: dict[str, Any]) -> _Settings | None:
    """The settings of a call's keywords, or None when the lean path does not take them
    (another keyword: an option it does not handle, ``out``, or an unknown one, which the
    full path names); a bad option value raises the full path's ``InputError``.

    Kept by the keywords' names, values and types (``lru_cache(typed=True)``: 1, 1.0
    and True are different keys, so a bool is still refused), as :func:`options_of`
    keeps options (issue 13: merging the keywords into the defaults and looking the
    options up cost some 2-4 us a call). A value that cannot be a key (an array) is
    looked at afresh.
    """
    try:
        return _cached_settings(**kwargs)
    except TypeError:  # unhashable
        return _settings_of(kwargs)


def _settings_of(kwargs: dict[str, Any]) -> _Settings | None:
    """:func:`lean_settings` without the cache."""
    if not _LEAN_DEFAULTS.keys() >= kwargs.keys():
        return None
    given = _LEAN_DEFAULTS | kwargs
    return _lean_options(given), given["axis"], check_flag(given["validate"])


@functools.lru_cache(maxsize=256, typed=True)
def _cached_settings(**kwargs: Any) -> _Settings | None:
    """:func:`_settings_of`, kept (a bad option's error is raised each time, not kept)."""
    return _settings_of(kwargs)


@dataclass
class _Lean:
    """The row statistics of a lean call (keepdims), as the problem would hold them."""

    logits: np.ndarray  # the caller's
    labels: np.ndarray
    options: LossOptions
    rows: SoftmaxRows  # shifted is None from the kernel
    shifted_y: np.ndarray  # z'_y - m


def lean_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, LossOptions, Any] | None:
    """``(logits, labels, options, validate)`` of a call the lean path takes, or None."""
    if len(args) != 2:
        return None
    logits, labels = args
    if type(labels) is not np.ndarray or type(logits) is not np.ndarray:
        return None
    char = logits.dtype.char
    if char != _FLOAT64 and not (char == _FLOAT32 and _cpu_kernels.available()):
        return None  # (the NumPy twins do not check the labels' range)
    if not (logits.dtype.isnative and labels.dtype.isnative):  # (nor Numba's kernels)
        return None
    if not kwargs or (len(kwargs) == 1 and "validate" in kwargs):  # the defaults: no lookup
        validate = check_flag(kwargs["validate"]) if kwargs else _DEFAULT_VALIDATE
        if _DEFAULT_LAST:  # (``classes_last`` of the default axis, -1, without a call)
            taken = logits.ndim != 0 and logits.size > 0
            return (logits, labels, _DEFAULT_OPTIONS, validate) if taken else None
        settings: _Settings | None = (_DEFAULT_OPTIONS, _DEFAULT_AXIS, validate)
    else:
        settings = lean_settings(kwargs)
    if settings is None:
        return None
    opts, axis, validate = settings
    if not classes_last(logits, axis, opts):
        return None
    return logits, labels, opts, validate


def _lean_statistics(
    logits: np.ndarray, labels: np.ndarray, opts: LossOptions, validate: Any
) -> _Lean | None:
    """The statistics of a call :func:`lean_call` takes, or None (a suspect row)."""
    classes, generic = logits.shape[-1], logits.dtype.char == _FLOAT64
    if generic and validate:  # the generic path's checks, in its order
        check_logits(logits, name="logits", xp=_xp.compat_numpy, axis=logits.ndim - 1)
    if not (generic or logits.flags.c_contiguous):
        return None
    check_labels(
        labels,
        xp=_xp.compat_numpy,
        batch_shape=logits.shape[:-1],
        classes=classes,
        ignore_index=None,
        check_range=generic,  # (the kernel flags a label that is not a class)
    )
    if generic:  # the generic path's statistics
        rows, shifted_y, _ = _generic_rows(logits, labels, None, opts, xp=_xp.compat_numpy)
        return _Lean(logits, labels, opts, rows, shifted_y)
    rows, shifted_y, _, suspect = _kernel_rows(logits.reshape(-1, classes), labels, None, opts)
    if suspect:
        return None  # the full path checks, and names what is wrong
    return _Lean(logits, labels, opts, rows, shifted_y)


_FLOAT32 = np.dtype(np.float32).char


def _lean_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`softmax_cross_entropy` by the lean path, or None."""
    call = lean_call(args, kwargs)
    if call is None:
        return None
    if _softmax_small.takes(call[0], call[1]):  # compiled (small)
        return _softmax_small.label_loss(*call[:3])
    if call[2].label_smoothing:  # (the statistics below are those of unsmoothed labels)
        return None
    lean = _lean_statistics(*call)
    if lean is None:
        return None
    opts = lean.options
    # Every example weight is 1: A = 1 and B = z'_y - m (exactly the problem's ones
    # times ell, and the normaliser the number of rows).
    a, b = label_terms(
        lean.shifted_y, None, 1.0, None, eps=0.0, classes=0, xp=_xp.compat_numpy, unweighted=True
    )
    dtype = lean.logits.dtype  # the compute dtype: float32 or float64
    # omega: a 1 of the compute dtype, as the problem's (z_loss * omega is float32 for
    # float32 logits)
    return reduce_loss(
        row_loss(lean.rows, a, b, dtype.type(1.0), z_loss=opts.z_loss),
        dtype.type(lean.labels.size),
        reduction=opts.reduction,
        xp=_xp.compat_numpy,
        log_base=opts.log_base,
        dtype=dtype,
    )


def _lean_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`softmax_cross_entropy_grad` by the lean path, or None."""
    out = kwargs.get("out")
    if "out" in kwargs:
        kwargs = {k: v for k, v in kwargs.items() if k != "out"}
    call = lean_call(args, kwargs)
    if call is None:
        return None
    if _softmax_small.takes(call[0], call[1], out):  # compiled (small)
        return _softmax_small.label_gradient(*call[:3], out)
    if call[2].label_smoothing:  # (the gradient below is that of unsmoothed labels)
        return None
    lean = _lean_statistics(*call)
    if lean is None:
        return None
    rows, opts, labels = lean.rows, lean.options, lean.labels
    dtype = lean.logits.dtype  # the compute dtype: float32 or float64
    if out is not None:
        check_out(out, lean.logits, dtype=dtype)
    scale = scale_for_reduction(
        dtype.type(labels.size),
        reduction=opts.reduction,
        xp=_xp.compat_numpy,
        log_base=opts.log_base,
    )
    if rows.shifted is None:  # the kernel's statistics: the kernel's gradient
        return _kernel_gradient(
            rows.z,
            labels,
            lse=rows.lse.reshape(-1),
            a=1.0,
            omega=1.0,
            scale=scale,
            active=None,
            weight=None,
            opts=opts,
            out=out,
            label_log_p=_label_log_p(lean.shifted_y, rows),
        )
    one = np.ones(1, dtype=dtype)  # every example weight
    target = label_target_gradient(labels, one, None, eps=0.0, like=rows.z, xp=_xp.compat_numpy)
    grad = _row_gradient(rows, 1.0, 1.0, target, opts, xp=_xp.compat_numpy, safe=labels) * scale
    if out is None:
        return grad
    out[...] = grad
    return out


# ------------------------------------------------------------------------------- public


def _fused_layout(logits: np.ndarray, axis: object, kwargs: dict[str, Any]) -> bool:
    """Whether the fused kernels take a call of these keywords on C-contiguous, native
    ``logits`` of their dtype with the classes last: no soft-capping, ``axis`` an int
    naming an axis, not empty (``_widen.relayout``; issue 13)."""
    ndim = logits.ndim
    return (
        kwargs.get("soft_cap") is None
        and type(axis) is int
        and -ndim <= axis < ndim
        and logits.size > 0
    )


_RELAYOUT = relayout(_fused_layout, blocked(labelled=True))
"""NumPy float16/float32 logits off the fused path: a classes-last C-contiguous copy
where the layout alone keeps them off it, else float64, in blocks of rows when large
(issue 13, ``_widen.py``)."""


def _float32_layout(logits: np.ndarray, axis: object, kwargs: dict[str, Any]) -> bool:
    """:func:`_fused_layout` for float32 logits (the soft-target calls: float16 ones,
    which no kernel of theirs takes, are computed in float64)."""
    return logits.dtype.char == _FLOAT32 and _fused_layout(logits, axis, kwargs)


_RELAYOUT_TARGETS = relayout(_float32_layout, blocked(labelled=False, weighs=True))
"""The soft-target calls' ``widen``: float32 logits in another layout as C-contiguous
float32 (the contiguous call's bits), float16 logits or soft-capping in float64 (in
blocks of rows when large, each row weighing its targets' class weight)."""


def _float32_gradient_layout(logits: np.ndarray, axis: object, kwargs: dict[str, Any]) -> bool:
    """:func:`_float32_layout` where the fused target gradient's kernel is installed
    (Numba): without it, the gradient of float32 logits is computed in float64 (its
    float32 :math:`p - \tilde t` lost up to a percent where the two cancel)."""
    return _float32_layout(logits, axis, kwargs) and _cpu_kernels.available()


_RELAYOUT_TARGET_GRADIENT = relayout(_float32_gradient_layout, blocked(labelled=False, weighs=True))
"""The soft targets' gradient's ``widen`` for NumPy arrays: :data:`_RELAYOUT_TARGETS`,
but float64 also for float32 logits without Numba."""


def _widen_target_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`_widen_targets` for the gradient: NumPy arrays by
    :data:`_RELAYOUT_TARGET_GRADIENT`, float32 arrays of other libraries in float64
    where they offer it (:func:`._widen.wide_float32`)."""
    if "out" in kwargs:
        return None
    return _RELAYOUT_TARGET_GRADIENT(args, kwargs) or wide_float32(args, kwargs)


def _widen_label_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The label gradient's ``widen``: NumPy arrays by :data:`_RELAYOUT` (as the loss),
    float32 logits of other libraries in float64 where they offer it (the labels as
    given; :func:`._widen.wide_float32`), but not with ``out`` (NumPy's alone)."""
    numpy = _RELAYOUT(args, kwargs)
    return numpy or (None if "out" in kwargs else wide_float32(args, kwargs, labelled=True))


def _widen_targets(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:data:`_RELAYOUT_TARGETS` for a call without ``out``. Neither soft-target function
    takes ``out`` (it is in neither signature): such a call goes on to
    ``prepare_softmax_targets``, whose ``TypeError`` names it, before any check, for
    every dtype and layout (the widened gradient had written into it; issue 13)."""
    return None if "out" in kwargs else _RELAYOUT_TARGETS(args, kwargs)


_label_function = functools.partial(
    prepared_by, prepare_softmax_labels, hide=("fused",), widen=_RELAYOUT
)
"""``prepared_by`` for the label loss and its gradient (after the lean path, widened)."""


@weight_scaled
@far_rows_guard(label_far_rows, FarGradient("softmax_cross_entropy_grad", "logits", ("weight",)))
@_label_function(shortcut=_lean_loss)
def softmax_cross_entropy(problem: SoftmaxProblem) -> Any:
    r"""Softmax cross-entropy of integer class labels under logits.

    .. math::

        L_i = w_{y_i}\,\bigl[(1-\varepsilon)(\operatorname{LSE}(z'_i) - z'_{i,y_i})\bigr]
            + \tfrac{\varepsilon}{C}\sum_c w_c\,(\operatorname{LSE}(z'_i) - z'_{ic})
            + \lambda\,w_{y_i}\operatorname{LSE}(z'_i)^2,
        \qquad z' = s\tanh(z/s)/T

    Parameters
    ----------
    logits : array, shape (*batch, C) with the classes along ``axis``
        Unnormalised log-probabilities. float16/bfloat16 are computed in float32.
    labels : integer array, shape (*batch)
        Class ids in ``[0, C)``, or ``ignore_index``.
    axis : int, optional
        The class axis of ``logits`` (1 for PyTorch's ``(N, C, d1, ...)`` layout).
    weight : array, shape (C,), optional
        Non-negative class weights (PyTorch's ``weight``). Their scale cancels in the
        ``'mean'`` at any size: weights far from 1 (up to ``1.8e308``, down to the
        subnormals) are taken at a power of two of their size (``_weight_scale``).
    ignore_index : int, optional
        Label value whose rows contribute nothing, to the sum or to the mean's
        denominator. Default None: every label must be a class (PyTorch: -100). Their
        logits are never used: a NaN or an infinity there is no error, and their
        loss and gradient are 0 (the rows that count are checked as always).
    label_smoothing : float in [0, 1], optional
        Mix the one-hot target with the uniform distribution (Szegedy et al. 2016).
        With ``weight`` its term weighs every class :math:`c` by :math:`w_c` (as
        PyTorch's), so a row whose label has weight 0 still has a loss (``'none'``,
        ``'sum'``, the total of ``'parts'``); ``'mean'`` divides by the labels'
        weights, and is 0 where they are all 0, where PyTorch's is NaN.
    reduction : {'mean', 'sum', 'none', 'parts'}, optional
        ``'mean'``: sum over rows divided by the sum of the rows' label weights
        (PyTorch's weighted mean; 0 when every row is ignored). ``'parts'``: a
        :class:`LossParts` ``(total, normalizer)`` for exact gradient accumulation
        and distributed averaging (sum the parts, then divide once).
    temperature : float > 0, optional
        Divide the (capped) logits by ``T`` before the softmax.
    z_loss : float >= 0, optional
        Coefficient :math:`\lambda` of the z-loss :math:`\lambda\,\mathrm{LSE}^2` (PaLM),
        which keeps the log-partition near 0.
    soft_cap : float > 0, optional
        Soft-cap the logits to :math:`s\tanh(z/s)` (Gemma 2) before the temperature.
    base : float, optional
        None for nats, 2 for bits (bits per token).
    validate : bool, optional
        Check logits (no NaN or +inf, no all ``-inf`` row) and weights. The labels'
        range is checked in any case (a label outside ``[0, C)`` other than
        ``ignore_index`` is an index out of bounds), as are shapes and dtypes.

    Returns
    -------
    array or LossParts
        Shape (*batch) for ``'none'``, a scalar for ``'mean'``/``'sum'``; float32 for
        low-precision logits.

    Raises
    ------
    InputError
        Labels out of range (naming the row and value), bad logits, shapes, options.
    InputTypeError
        Float labels, complex logits, arrays from two libraries.

    See Also
    --------
    softmax_cross_entropy_grad : the gradient with respect to ``logits``.
    softmax_cross_entropy_with_targets : probability (soft) targets.
    crossent.cross_entropy : the measure, with ``q_form='logits'``.

    Notes
    -----
    Computed as :math:`A\ell - B` with both parts non-negative (see the module
    docstring), so logits of :math:`\pm 10^4` stay exact and a ``-inf`` logit on a
    non-target class contributes exactly 0 (``+inf`` on the target). With ``soft_cap``
    a ``-inf`` logit is capped as any other, to :math:`s\tanh(-\infty) = -s` (as
    PyTorch's and JAX's ``s * tanh(z / s)``): no mask there, a label on it has a finite
    loss, and its gradient entry is 0 (:math:`\operatorname{sech}^2(-\infty) = 0`).

    NumPy float16/float32 logits give float32 results within an ulp or two of the same
    call on float64 logits, whatever their layout: logits that are not C-contiguous
    with the classes last (a Fortran-ordered array, a column slice, ``axis=1``) are
    first copied so (one more array of the logits' size; the gradient comes back in
    their axis order), and with ``soft_cap`` they are computed in float64 (a float64
    copy of blocks of about 2 MiB of rows, the whole batch's reduction applied after:
    the bits of the whole float64 call). The soft-target loss and gradient do the same
    (float16 logits in float64 too); focal, poly-1 and distillation
    compute all float16/float32 logits in float64 (small calls on a float64 copy of their
    few entries); hinge computes float32 as given (exact within an ulp).

    References
    ----------
    .. [1] C. Szegedy et al., "Rethinking the Inception Architecture for Computer
       Vision", CVPR 2016, arXiv:1512.00567 (label smoothing).
    .. [2] A. Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways",
       arXiv:2204.02311 (z-loss).
    .. [3] Gemma Team, "Gemma 2: Improving Open Language Models at a Practical
       Size", arXiv:2408.00118 (logit soft-capping).

    Examples
    --------
    >>> import crossent
    >>> logits = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]
    >>> print(round(float(crossent.softmax_cross_entropy(logits, [0, 2])), 6))
    0.175456
    >>> per_row = crossent.softmax_cross_entropy(logits, [0, 2], reduction="none")
    >>> bool(abs(per_row[0] - crossent.cross_entropy([1, 0, 0], logits[0], q_form="logits"))
    ...      < 1e-15)
    True
    >>> crossent.softmax_cross_entropy(logits, [-100, -100], ignore_index=-100)  # not NaN
    np.float64(0.0)
    """
    return problem.loss()


@weight_scaled
@_label_function(shortcut=_lean_gradient, widen=_widen_label_gradient)
def softmax_cross_entropy_grad(problem: SoftmaxProblem, *, out: Array | None = None) -> Array:
    r"""Gradient of :func:`softmax_cross_entropy` with respect to ``logits``.

    .. math::

        \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda w_{y_i}\mathrm{LSE}_i)\,p_i
            - (1-\varepsilon)\,w_{y_i} e_{y_i} - \tfrac{\varepsilon}{C} w,
        \qquad A_i = (1-\varepsilon) w_{y_i} + \tfrac{\varepsilon}{C}\textstyle\sum_c w_c

    then multiplied by :math:`\operatorname{sech}^2(z/s)/T` (as :math:`4u/(1+u)^2/T`,
    :math:`u = e^{-2|z|/s}`, which does not cancel where :math:`1-\tanh^2(z/s)` does),
    divided by the normaliser for ``'mean'`` and by :math:`\ln b` for ``base=b``; zero
    on ignored rows. With no
    options it is :math:`p - y` per row: the seeds' feedback signal.

    Parameters
    ----------
    logits, labels, axis, weight, ignore_index, label_smoothing, reduction
        As in :func:`softmax_cross_entropy`.
    temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy`. For ``'none'`` and ``'sum'`` each row
        gets the gradient of its own loss; for ``'parts'``, of the total.
    out : numpy.ndarray or torch.Tensor, optional
        A C-contiguous, writable NumPy array (not a subclass: no ``np.matrix`` or
        masked array) of the shape of ``logits`` and the result's dtype (float32 for
        float32/float16 logits, else float64), not overlapping ``logits``, to write the
        gradient into and return; for PyTorch ``logits``, a tensor of their device and
        shape and the result's dtype that does not require grad.  Reusing one buffer
        across training steps saves allocating (and first-touching) an N x V array per
        call.

    Returns
    -------
    array, the shape of ``logits``
        float32 for low-precision logits; ``out`` when given. Errors as in
        :func:`softmax_cross_entropy`.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_cross_entropy_grad([[0.5, 2.0, 0.5]], [1], reduction="sum")
    >>> p = np.exp([0.5, 2.0, 0.5]) / np.exp([0.5, 2.0, 0.5]).sum()
    >>> bool(np.allclose(g, p - [0, 1, 0]))  # p - y
    True
    >>> bool(abs(g.sum()) < 1e-15)  # sums to zero over the classes
    True
    """
    return softmax_gradient(problem, out=out)


@weight_scaled
@far_rows_guard(
    target_far_rows,
    FarGradient("softmax_cross_entropy_with_targets_grad", "logits", ("targets", "weight")),
)
@prepared_by(
    prepare_softmax_targets,
    shortcut=_small_targets.target_loss,
    widen=_widen_targets,
)
def softmax_cross_entropy_with_targets(problem: SoftmaxProblem) -> Any:
    r"""Softmax cross-entropy of probability (soft) targets under logits.

    .. math::

        L_i = \sum_c w_c \tilde t_{ic}\,(\operatorname{LSE}(z'_i) - z'_{ic})
              + \lambda\,\omega_i\,\operatorname{LSE}(z'_i)^2,
        \qquad \tilde t = (1-\varepsilon)\,t + \varepsilon/C,\quad
        \omega_i = \textstyle\sum_c w_c t_{ic}

    One weighting model with :func:`softmax_cross_entropy`: the ``'mean'`` divides by
    :math:`\sum_i \omega_i`, so one-hot targets give what integer labels give (bit
    for bit without smoothing). PyTorch divides by the number of rows for
    probability targets and by the summed label weights for class indices.

    Parameters
    ----------
    logits : array, shape (*batch, C)
    targets : array, shape (*batch, C)
        Probability distributions along ``axis`` (validated: rows sum to 1).
    axis, weight, label_smoothing, reduction, temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy`.

    Returns
    -------
    array or LossParts
        One-hot ``targets`` give exactly what integer labels give.

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`, and targets that are not distributions.

    See Also
    --------
    softmax_cross_entropy, softmax_cross_entropy_with_targets_grad
    crossent.cross_entropy : the same value per row, as a measure.

    Examples
    --------
    >>> import crossent
    >>> logits = [[2.0, 0.5, -1.0]]
    >>> a = crossent.softmax_cross_entropy_with_targets(logits, [[1.0, 0.0, 0.0]])
    >>> b = crossent.softmax_cross_entropy(logits, [0])
    >>> bool(a == b)
    True
    """
    return problem.loss()


@weight_scaled
@prepared_by(
    prepare_softmax_targets,
    shortcut=_small_targets.target_gradient,
    widen=_widen_target_gradient,
)
def softmax_cross_entropy_with_targets_grad(problem: SoftmaxProblem) -> Array:
    r"""Gradient of :func:`softmax_cross_entropy_with_targets` with respect to ``logits``.

    .. math:: \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_i
              - w \odot \tilde t_i, \qquad A_i = \textstyle\sum_c w_c \tilde t_{ic}

    then through temperature and soft-capping, and scaled for the reduction and base.

    Parameters
    ----------
    logits, targets, axis, weight, label_smoothing, reduction
        As in :func:`softmax_cross_entropy_with_targets`.
    temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy_with_targets`.

    Returns
    -------
    array, the shape of ``logits``
        ``(A + 2 lambda omega LSE) p - w * t~`` per row, through the chain rule; errors as
        in :func:`softmax_cross_entropy_with_targets`.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_cross_entropy_with_targets_grad([[0.0, 0.0]], [[0.25, 0.75]])
    >>> print(g)
    [[ 0.25 -0.25]]
    """
    return softmax_gradient(problem)
