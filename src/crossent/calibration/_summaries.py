"""Per-example summaries of a prediction: the numbers every evaluation metric averages.

For a predicted distribution :math:`p` over classes and the true label :math:`y`:

* surprisal (negative log-likelihood) :math:`-\\log p_y`;
* Brier score :math:`\\sum_k (p_k - [k = y])^2`, computed as
  :math:`\\sum_{k \\ne y} p_k^2 + (1 - p_y)^2` with :math:`1 - p_y = -\\operatorname{expm1}
  (\\log p_y)`, so a near-certain correct prediction keeps its tiny score instead of
  cancelling to 0;
* spherical score :math:`p_y / \\lVert p \\rVert_2`;
* top-label confidence :math:`\\max_k p_k`, the predicted class (the first maximum) and
  whether it is correct;
* the entropy of the prediction :math:`-\\sum_k p_k \\log p_k` (with :math:`0 \\log 0 = 0`).

Probabilities (the usual input) go through one fused pass per block of rows
(:mod:`._row_kernels` with Numba, its NumPy twin :mod:`._row_numpy` without): it reads
each row once in its stored dtype, takes :math:`p_y`, :math:`\\sum_{k \\ne y} p_k^2`, the
maximum and (when asked) the entropy, and flags rows that the value check would
reject, so that predictions whose check was deferred to this pass
(``as_predictions(..., defer=True)``) are validated on the way, with the same messages.
Every metric is then formed from these few per-row numbers.  Log-probabilities and
logits are converted block by block (:meth:`Predictions.map_blocks`) as before.

The means and the streaming state need only sums over each block
(:class:`BlockTotals`, asked for with a :class:`TotalsRequest`): :func:`map_totals`
forms them on the worker threads, with the Numba kernel in the same compiled call as
the row pass (:func:`._row_kernels.block_totals`), or by NumPy reductions of the
summaries (:func:`totals_of`: the NumPy twin, and the other forms).  Stored float
probabilities of several blocks are read as :func:`stacked_blocks` (the kernel's sums
of every block stacked in arrays, read by the caller's thread and the pool's): the
one-shot means, the top-label calibration error and ``EvaluationState.update``.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .._checks import row_sum_tolerance
from .._numerics import safe_log
from .._parallel import start_beside
from . import _inputs, _row_kernels, _row_numpy
from ._binary import (
    binary_entropy_values,
    binary_label_terms,
    binary_squared_complement,
    binary_top,
)
from ._binning import (
    BinStatistics,
    ClassBinsPart,
    Closed,
    assign_uniform_bins,
    bin_statistics,
    uniform_edges,
)
from ._inputs import Block, FloatArray, IntArray, Predictions

__all__ = [
    "BlockTotals",
    "ExampleSummaries",
    "TotalsRequest",
    "binary_summaries",
    "candidates",
    "clear_unasked",
    "kernel_options",
    "map_summaries",
    "map_totals",
    "stacked_blocks",
    "summarize",
    "summarize_block",
    "summary_blocks",
    "totals_of",
]

_R = TypeVar("_R")


@dataclass(frozen=True)
class ExampleSummaries:
    """One value per example (per row of the predictions), from a few per-row numbers.

    ``log_p_label`` is :math:`\\log p_y`, ``p_label`` :math:`p_y`, ``others``
    :math:`\\sum_{k \\ne y} p_k^2`; ``entropy`` is None unless it was asked for.
    ``complement_values``, where given (1-D binary predictions: :mod:`._binary`), is
    :math:`1 - p_y` formed from :math:`p` (else from :math:`\\log p_y`).
    """

    log_p_label: FloatArray
    p_label: FloatArray
    others: FloatArray
    labels: IntArray
    confidence_values: FloatArray | None = None
    predicted_values: IntArray | None = None
    entropy_values: FloatArray | None = None
    complement_values: FloatArray | None = None

    @property
    def surprisal(self) -> FloatArray:
        # 0 - x, not -x: a label of probability 1 has surprisal +0.0, as
        # ``crossent.surprisal`` gives it (-log 1 printed as -0.0)
        return np.subtract(0.0, self.log_p_label)

    @property
    def brier(self) -> FloatArray:
        if self.complement_values is not None:
            return self.others + np.square(self.complement_values)
        return self.others + np.square(-np.expm1(self.log_p_label))

    @property
    def spherical(self) -> FloatArray:
        return self.p_label / np.sqrt(self.others + np.square(self.p_label))

    @property
    def entropy(self) -> FloatArray:
        return _asked(self.entropy_values, "entropy")

    @property
    def confidence(self) -> FloatArray:
        return _asked(self.confidence_values, "top")

    @property
    def predicted(self) -> IntArray:
        return _asked(self.predicted_values, "top")

    @property
    def correct(self) -> FloatArray:
        return (self.predicted == self.labels).astype(np.float64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _asked(values: Any, option: str) -> Any:
    if values is None:
        raise ValueError(f"not computed: summarize(..., {option}=True)")
    return values


def binary_summaries(
    p: FloatArray,
    labels: IntArray,
    *,
    top: bool = True,
    entropy: bool = True,
    squares: bool = True,
) -> ExampleSummaries:
    """The summaries of rows of a 1-D binary prediction, from :math:`p = P(y = 1)`
    itself (float64; :mod:`._binary`): the one home of every score of such rows.
    ``squares=False`` (:func:`map_totals` asked for no Brier or spherical score) leaves
    ``others`` 0 and ``complement_values`` out: those scores are then not formed."""
    n = p.shape[0]
    surprisal, p_label = np.empty(n), np.empty(n)
    complement = np.empty(n) if squares else None
    binary_label_terms(p, labels, (surprisal, p_label, complement))
    confidence, predicted = binary_top(p) if top else (None, None)
    return ExampleSummaries(
        log_p_label=np.negative(surprisal, out=surprisal),
        p_label=p_label,
        # (the other class's probability is 1 - p_y)
        others=np.zeros(n) if complement is None else np.square(complement),
        labels=labels,
        confidence_values=confidence,
        predicted_values=predicted,
        entropy_values=binary_entropy_values(p) if entropy else None,
        complement_values=complement,
    )


def summarize_block(block: Block, *, entropy: bool = True) -> ExampleSummaries:
    """The summaries of one block of rows converted to float64 (any form)."""
    if block.binary is not None:
        return binary_summaries(block.binary, block.labels, entropy=entropy)
    rows = np.arange(block.labels.shape[0])
    probs, labels = block.probs, block.labels
    squares = np.square(probs)
    squares[rows, labels] = 0.0
    predicted = np.argmax(probs, axis=1) if block.predicted is None else block.predicted
    terms = None
    if entropy:
        if block.log_probs is None:
            from scipy import special  # not at import (issue 13: import time)

            terms = special.entr(probs)
        else:
            terms = np.multiply(probs, block.log_probs, out=np.zeros_like(probs), where=probs > 0)
            np.negative(terms, out=terms)
    return ExampleSummaries(
        log_p_label=block.label_log_probs(),
        p_label=probs[rows, labels],
        others=squares.sum(axis=1),
        labels=labels,
        confidence_values=probs[rows, predicted],
        predicted_values=predicted.astype(np.intp),
        entropy_values=None if terms is None else np.maximum(terms.sum(axis=1), 0.0),
    )


def _stored(values: Any) -> tuple[FloatArray, float]:
    """Stored probabilities as float32 or float64, and the row-sum limit past which a
    row is suspect: a little inside the check's tolerance, so that every row the check
    would reject is suspect."""
    if values.dtype not in (np.float32, np.float64):
        values = np.asarray(values, dtype=np.float64)
    return values, _limit(values.dtype, values.shape[1])


@functools.cache
def _limit(dtype: np.dtype[Any], classes: int) -> float:
    """The suspect rows' limit of :func:`_stored` (once per dtype and width: every block
    of every call asks)."""
    return row_sum_tolerance(dtype, classes, xp=np) - 4 * classes * np.finfo(float).eps


def _check_block_labels(predictions: Predictions, labels: IntArray) -> None:
    """The deferred range check of one block's labels, on the worker thread: two
    reductions over the block's labels (in cache), and the full check, which names the
    first bad label, if they leave ``[0, classes)`` (whatever ``validate`` said: the
    ``summaries`` kernel holds labels to ``[-classes, classes)`` only)."""
    if (
        predictions.labels_pending
        and labels.size
        and (labels.min() < 0 or labels.max() >= predictions.classes)
    ):
        predictions.check_labels()  # raises


def _fused(
    predictions: Predictions,
    values: FloatArray,
    labels: IntArray,
    *,
    top: bool,
    entropy: bool,
    start: int = 0,
) -> ExampleSummaries:
    """The summaries of one block of stored probabilities, whose first row is row
    ``start`` of the predictions, in one pass (validating it if the predictions' check
    was deferred)."""
    _check_block_labels(predictions, labels)
    values, limit = _stored(values)
    kernels = _row_kernels if _row_kernels.available() else _row_numpy
    suspect, p_label, others, confidence, predicted, ent = kernels.row_summaries(
        values,
        labels,
        top=top,
        entropy=entropy,
        limit=limit,
        first_row=predictions.first_row + start,
    )
    if suspect and predictions.pending:
        predictions.check_values()  # raises, naming the entry (or passes near the limit)
    return ExampleSummaries(
        log_p_label=safe_log(p_label, xp=np),
        p_label=p_label,
        others=others,
        labels=labels,
        confidence_values=confidence,
        predicted_values=predicted,
        entropy_values=None if ent is None else np.maximum(ent, 0.0),
    )


def map_summaries(
    predictions: Predictions,
    function: Callable[[int, ExampleSummaries], _R],
    *,
    top: bool = True,
    entropy: bool = True,
) -> Iterator[_R]:
    """``function(first row, summaries)`` of each block of rows, run on the worker threads
    (so per-block reductions run in parallel too), results in block order.  The
    confidence and predicted class are computed only with ``top``, the entropy only with
    ``entropy`` (for probabilities; other forms always give them)."""
    if predictions.binary is not None:
        return predictions.map_stored(
            lambda start, p, labels: function(
                start, binary_summaries(p, labels, top=top, entropy=entropy)
            ),
            binary=True,
        )
    if predictions.form == "probs":
        return predictions.map_stored(
            lambda start, values, labels: function(
                start, _fused(predictions, values, labels, top=top, entropy=entropy, start=start)
            )
        )
    return predictions.map_blocks(
        lambda block: function(block.start, summarize_block(block, entropy=entropy))
    )


def summary_blocks(
    predictions: Predictions, *, top: bool = True, entropy: bool = True
) -> Iterator[tuple[int, ExampleSummaries]]:
    """``(first row, summaries)`` of each block of rows, in order."""
    return map_summaries(predictions, lambda start, s: (start, s), top=top, entropy=entropy)


def summarize(
    predictions: Predictions, *, top: bool = True, entropy: bool = False
) -> ExampleSummaries:
    """The summaries of every row, computed block by block (see :func:`summary_blocks`)."""
    parts = [s for _, s in summary_blocks(predictions, top=top, entropy=entropy)]
    fields = [*_FIELDS, *(_TOP if top else ()), *(("entropy_values",) if entropy else ())]
    if predictions.binary is not None:
        fields.append("complement_values")
    if not parts:
        return ExampleSummaries(
            **{f: np.zeros(0, np.intp if f in _INTEGER else float) for f in fields}
        )
    return ExampleSummaries(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


_FIELDS = ("log_p_label", "p_label", "others", "labels")
_TOP = ("confidence_values", "predicted_values")
_INTEGER = ("labels", "predicted_values")


@dataclass(frozen=True)
class TotalsRequest:
    """What :func:`map_totals` sums over each block: the surprisal (unless
    ``surprisal=False``: those of the bins only need no logarithm); the Brier and
    spherical scores, the entropy, the hits (``top``), per-class counts and surprisals
    (``classes``), ``bins`` equal-width bins of the top-label confidence (``top`` and
    ``bins > 0``) closed on the ``closed`` side, and the ``keep`` most surprising rows.
    A sum not asked for is 0.  ``errors``: the bins' confidence sums' rounding errors
    (``BinStatistics.error``, from the Numba kernel: what
    :class:`~crossent.EvaluationState` keeps without the rows; a caller that has the
    rows at hand finds the few doubtful bins' means from them instead, and its pass
    pays nothing for the errors)."""

    top: bool = False
    entropy: bool = False
    surprisal: bool = True
    brier: bool = False
    spherical: bool = False
    classes: int = 0
    bins: int = 0
    closed: Closed = "left"
    keep: int = 0
    errors: bool = False


@dataclass(frozen=True)
class BlockTotals:
    """One block's sums: ``sums`` holds the summed surprisal, Brier score, spherical
    score, entropy and hits (0 where not requested); ``found`` the ``(surprisal, row in
    the block)`` of its most surprising rows (highest first, earlier rows on ties)."""

    sums: FloatArray
    class_count: IntArray
    class_surprisal: FloatArray
    bins: BinStatistics | ClassBinsPart | None
    found: list[tuple[float, int]]


def candidates(surprisal: FloatArray, keep: int) -> IntArray:
    """Indices of the ``keep`` largest values, ties to the lower index, in O(n).

    A NaN surprisal (unchecked NaN predictions, which ``validate=True`` refuses) takes
    no place: it is no amount of surprise, and a batch gives the rows that batches split
    from it or merged states give (:func:`crossent.calibration._state._top`)."""
    if keep == 0:
        return np.zeros(0, dtype=np.intp)
    valid = ~np.isnan(surprisal)
    if not valid.all():
        rows = np.flatnonzero(valid)
        return rows[candidates(surprisal[rows], keep)]
    if surprisal.size > keep:
        threshold = np.partition(surprisal, surprisal.size - keep)[surprisal.size - keep]
        chosen = np.flatnonzero(surprisal >= threshold)
    else:
        chosen = np.arange(surprisal.size)
    order = np.lexsort((chosen, -surprisal[chosen]))
    return chosen[order[:keep]]


def totals_of(summaries: ExampleSummaries, request: TotalsRequest) -> BlockTotals:
    """:class:`BlockTotals` of a block's summaries, by NumPy reductions (the path of the
    NumPy twin and of log-probabilities and logits)."""
    surprisal = summaries.surprisal
    bins = None
    if request.top and request.bins:
        confidence, correct = summaries.confidence, summaries.correct
        index = assign_uniform_bins(confidence, request.bins, request.closed)
        bins = bin_statistics(index, confidence, correct, request.bins)
    empty = np.zeros(0)
    # Surprisals summing past 1.8e308 total +inf here, unwarned (issue 13); the means
    # are then formed again without the overflow (``_scores.score_means``, the state's
    # scaled sums), finite where every row is.
    with np.errstate(over="ignore"):
        sums = np.array(
            [
                surprisal.sum() if request.surprisal else 0.0,
                summaries.brier.sum() if request.brier else 0.0,
                summaries.spherical.sum() if request.spherical else 0.0,
                summaries.entropy.sum() if request.entropy else 0.0,
                summaries.correct.sum() if request.top else 0.0,
            ]
        )
    return BlockTotals(
        sums=sums,
        class_count=np.bincount(summaries.labels, minlength=request.classes)
        if request.classes
        else empty.astype(np.intp),
        class_surprisal=np.bincount(summaries.labels, weights=surprisal, minlength=request.classes)
        if request.classes
        else empty,
        bins=bins,
        found=[(float(surprisal[i]), int(i)) for i in candidates(surprisal, request.keep)],
    )


def _fused_totals(
    predictions: Predictions,
    values: FloatArray,
    labels: IntArray,
    request: TotalsRequest,
    start: int = 0,
) -> BlockTotals:
    """:class:`BlockTotals` of one block of stored probabilities (its first row: row
    ``start`` of the predictions): the Numba kernel's sums in the same pass as the row
    summaries, or the NumPy twin's summaries reduced."""
    if not _row_kernels.available():
        summaries = _fused(
            predictions, values, labels, top=request.top, entropy=request.entropy, start=start
        )
        return totals_of(summaries, request)
    values, limit = _stored(values)
    try:  # the labels' deferred range check in the kernel's pass too
        suspect, found_p, (sums, class_stats, bin_stats, found) = _row_kernels.block_totals(
            values,
            labels,
            keep=min(request.keep, values.shape[0]),  # a block gives at most its rows
            first_row=predictions.first_row + start,
            **kernel_options(request, limit=limit, pending=predictions.labels_pending),
        )
    except IndexError:  # a label outside [0, classes), whatever ``validate`` said
        predictions.check_labels()  # raises, naming the first bad label
        raise
    if suspect and predictions.pending:
        predictions.check_values()  # raises, naming the entry (or passes near the limit)
    clear_unasked(sums, request)
    rows = found[found >= 0]
    return BlockTotals(
        sums=sums,
        class_count=class_stats[0].astype(np.intp),
        class_surprisal=class_stats[1],
        bins=BinStatistics(*(bin_stats if request.errors else bin_stats[:3]))
        if request.top and request.bins
        else None,
        # the kernels' logarithm, as in the summed and per-class surprisals
        found=list(zip(_row_kernels.surprisal(found_p).tolist(), rows.tolist(), strict=True))
        if rows.size
        else [],
    )


def _binary_totals(
    p: FloatArray, labels: IntArray, request: TotalsRequest, rows: FloatArray | None = None
) -> BlockTotals:
    r""":class:`BlockTotals` of one block of a 1-D binary prediction: NumPy reductions of
    the per-row numbers of :mod:`._binary` (those of :func:`binary_summaries`, the same
    bits), each formed only where ``request`` asks for it.  The top-label sums (hits,
    bins, and with ``request.errors`` the bins' rounding errors) come from the Numba
    kernel's pass over ``p`` (:func:`._row_kernels.binary_bins`: the ``totals``
    kernel's numbers of the rows :math:`[1 - p, p]`, without forming them; ``rows`` is
    not read) where it is available: the confidence :math:`\max(p, \mathrm{fl}(1 -
    p))` and the predicted class are those of :func:`binary_top`, compared and summed in
    row order as ``numpy.bincount``, the hits a count."""
    n = p.shape[0]
    sums = np.zeros(5)
    surprisal = p_label = None
    if request.surprisal or request.spherical or request.classes or request.keep:
        surprisal, p_label = np.empty(n), np.empty(n)
        binary_label_terms(p, labels, (surprisal, p_label, None))
    squares = binary_squared_complement(p, labels) if request.brier or request.spherical else None
    # Surprisals summing past 1.8e308 total +inf, unwarned (as totals_of)
    with np.errstate(over="ignore"):
        if request.surprisal and surprisal is not None:
            sums[0] = surprisal.sum()
        if request.brier and squares is not None:
            sums[1] = np.add(squares, squares).sum()  # (1 - p_y)^2 + the other's square
        if request.spherical and squares is not None and p_label is not None:
            norm = np.square(p_label)
            norm += squares
            sums[2] = np.divide(p_label, np.sqrt(norm, out=norm), out=norm).sum()
        if request.entropy:
            sums[3] = binary_entropy_values(p).sum()
    bins = None
    if request.top:
        if request.bins and _row_kernels.available():
            bins, sums[4] = _binary_bins(p, labels, request)
        else:
            confidence, predicted = binary_top(p)
            correct = (predicted == labels).astype(np.float64)
            sums[4] = correct.sum()
            if request.bins:
                index = assign_uniform_bins(confidence, request.bins, request.closed)
                bins = bin_statistics(index, confidence, correct, request.bins)
    empty = np.zeros(0)
    return BlockTotals(
        sums=sums,
        class_count=_binary_counts(labels, request.classes)
        if request.classes
        else empty.astype(np.intp),
        class_surprisal=np.bincount(labels, weights=surprisal, minlength=request.classes)
        if request.classes
        else empty,
        bins=bins,
        found=[]
        if surprisal is None
        else [(float(surprisal[i]), int(i)) for i in candidates(surprisal, request.keep)],
    )


def _binary_counts(labels: IntArray, classes: int) -> IntArray:
    """``numpy.bincount(labels, minlength=classes)`` of labels 0 and 1 (a count of the
    ones, a pass that writes nothing)."""
    if classes < 2:
        return np.bincount(labels, minlength=classes)
    counts = np.zeros(classes, dtype=np.intp)
    ones = np.count_nonzero(labels)
    counts[:2] = labels.shape[0] - ones, ones
    return counts


def _binary_bins(
    p: FloatArray, labels: IntArray, request: TotalsRequest
) -> tuple[BinStatistics, float]:
    """The bins and the hits of one block of a 1-D binary prediction, from ``p``
    (:func:`._row_kernels.binary_bins`: the ``totals`` kernel's top-label sums of the
    rows :math:`[1 - p, p]`, the same bits, without those rows)."""
    bin_stats, hits = _row_kernels.binary_bins(
        p, labels, _kernel_edges(request.bins), left=request.closed == "left", errors=request.errors
    )
    statistics = BinStatistics(*(bin_stats if request.errors else bin_stats[:3]))
    return statistics, float(hits)


def clear_unasked(sums: FloatArray, request: TotalsRequest) -> None:
    """Zero the kernel's sums (the last axis of ``sums``: surprisal, Brier, ...) that
    ``request`` did not ask for but the kernel formed: the Brier score's from sums of
    squares left out (0), the surprisal's for the per-class sums only."""
    if not request.brier:
        sums[..., 1] = 0.0
    if not request.surprisal:
        sums[..., 0] = 0.0


def kernel_options(request: TotalsRequest, *, limit: float, pending: bool) -> dict[str, Any]:
    """The options of :func:`._row_kernels.block_totals` (but ``keep``) that ``request``
    asks for, rows past ``limit`` suspect, labels held to ``[0, classes)`` if their
    check is ``pending`` (``Predictions.labels_pending``: deferred to the kernel, with
    or without ``validate``; also those of ``EvaluationState.update``'s
    ``_kernel_settings``)."""
    return {
        "top": request.top,
        "entropy": request.entropy,
        "limit": limit,
        "spherical": request.spherical,
        "squares": request.brier or request.spherical,
        "classes": bool(request.classes),
        "edges": _kernel_edges(request.bins) if request.bins else None,
        "left": request.closed == "left",
        "surprisal": request.surprisal,
        "labels_from_zero": pending,
        "errors": request.errors,
    }


@functools.cache
def _kernel_edges(bins: int) -> FloatArray:
    """:func:`uniform_edges` for the kernel, once per number of bins (every block of every
    call asks).  Shared: never written (``_row_kernels._TotalsSettings.of`` hands the
    kernel a read-only view, as of every array it reads: one compiled signature)."""
    return uniform_edges(bins)


def map_totals(
    predictions: Predictions, request: TotalsRequest
) -> Iterator[tuple[int, BlockTotals]]:
    """``(first row, totals)`` of each block of rows, computed on the worker threads, in
    block order (rows in ``found`` counted from the block's first row)."""
    if predictions.binary is not None:
        return predictions.map_stored(
            lambda start, p, labels: (start, _binary_totals(p, labels, request)),
            binary=True,
        )
    if predictions.form == "probs":
        return predictions.map_stored(
            lambda start, values, labels: (
                start,
                _fused_totals(predictions, values, labels, request, start),
            )
        )
    return predictions.map_blocks(
        lambda block: (
            block.start,
            totals_of(summarize_block(block, entropy=request.entropy), request),
        )
    )


def stacked_blocks(
    predictions: Predictions, request: TotalsRequest
) -> _row_kernels.BlocksTotals | None:
    """The totals of every block of ``predictions`` stacked by block
    (:func:`_stacked_totals`: the caller's thread and the pool's, the pool's kept off
    the caller's CPU), or None where that path does not apply (:func:`_stacked_applies`;
    then :func:`map_totals`).  The same kernel calls on the same blocks as
    :func:`map_totals`, hence the same numbers, for :func:`._scores.score_means` and
    :func:`._error.uniform_top_label_statistics` as for ``EvaluationState.update``.

    Through :func:`map_totals` (:func:`._parallel.ordered_map`: both pool threads read
    while the caller waits) the one-shot metrics ran on one CPU when the machine was
    otherwise quiet: a KVM guest's Linux wakes a thread on the waker's CPU when it finds
    no other idle one, so both blocks' threads often shared the caller's CPU
    (``negative_log_likelihood`` of 10^6 x 10 float32 3.4x the read, about its
    one-thread time, on the 2-core AMD EPYC; issue 13, branch short10)."""
    if not _stacked_applies(predictions):
        return None
    return _stacked_totals(predictions, request, _block_bounds(predictions))


def _stacked_applies(predictions: Predictions) -> bool:
    """Whether :func:`_stacked_totals` reads these predictions: stored float32 or
    float64 probabilities, C-contiguous, all rows, and Numba (otherwise
    :func:`map_totals`, whose blocks convert or copy what they read; and
    for one block, whose one call costs less than stacking: 40 against 46 us,
    16 x 10).  At most ``_BLOCK_ELEMENTS`` entries are one block (see
    :meth:`Predictions._spans`)."""
    values = predictions.values
    return (
        predictions.n * predictions.classes > _inputs._BLOCK_ELEMENTS
        and predictions.binary is None  # (1-D binary: scored from p, map_totals)
        and predictions.form == "probs"
        and predictions.selected is None
        and isinstance(values, np.ndarray)
        and values.dtype in (np.float32, np.float64)
        and values.flags.c_contiguous
        and _row_kernels.available()
    )


def _block_bounds(predictions: Predictions) -> list[int]:
    """The first row of each of the predictions' blocks, then the rows: the blocks of
    :meth:`Predictions.map_stored`, whose sums the state adds (the same numbers)."""
    spans = list(predictions._spans())
    return [first for first, _ in spans] + [spans[-1][1] if spans else 0]


def _widest_block(bounds: list[int]) -> int:
    """The most rows of one block of :func:`_block_bounds`' ``bounds`` (which bound the
    most surprising rows a block gives, and the bins' rounding errors that the kernel
    keeps: :func:`_stacked_totals`, ``EvaluationState.update``)."""
    return max(b - a for a, b in itertools.pairwise(bounds))


def _stacked_totals(
    predictions: Predictions, request: TotalsRequest, bounds: list[int]
) -> _row_kernels.BlocksTotals:
    """The sums of every block of stored probabilities, stacked by block
    (:func:`._row_kernels.blocks_reader`), read by the caller's thread and the pool's
    (:func:`._parallel.start_beside`), each taking the next block not yet taken
    (:class:`_NextBlocks`): the caller's from the first block on, the pool's from the
    last back, until the two meet.

    The same kernel calls on the same blocks as :func:`map_totals`, the same
    checks of each, hence the same numbers whichever thread reads which block.  A block
    with a suspect row or a label out of range runs the full check of the predictions
    if theirs was deferred (which raises, naming the first bad entry or label, or
    passes near the limit; the other threads then take no more blocks); labels out of
    range with ``validate=False`` (whose range check is deferred all the same: issue
    13) raise the labels' ``InputError``, naming the first one, once every block is
    read.  Each thread's blocks are read by one call,
    with no Python between two blocks but their slices and the taking of the next.

    Taken as they come rather than in one contiguous part a thread: a thread that
    another process slows on its CPU reads fewer blocks (the pool's, kept off the
    caller's CPU while the caller reads, was often on the busy one, and the caller
    waited for its half).  From the two ends, each thread's blocks stay contiguous, as
    the parts were, on a machine where nothing else runs.  Measured (10^6 x 10
    float32, 10 blocks, the 2-core AMD EPYC, in one process against contiguous parts,
    median of 61 calls): one other process busy, 12.0 against 13.1-14.0 ms; several,
    22.7 against 24.7; under ``chrt -f`` (a quiet machine's case), level (7.14 against
    7.08, 8.85 against 8.90); ``benchmarks/bench_update_stages.py`` has the rest.
    Tried before and not kept: one kernel-reading call a block (its arguments formed
    again for each), 0.2 and 0.7 ms slower than contiguous parts (median of 61, under
    ``chrt -f``, the machine loaded by other work).

    Once the caller finds no block left it waits only for the pool's blocks that are
    being read, and for each at most until it has run half as long again as the
    caller's own blocks took (:meth:`_NextBlocks.stragglers`); a block still being read
    then is read again by the caller (:func:`_taken_over`: into a copy of the outputs,
    since the pool's thread goes on writing the old ones), and the caller never waits
    for a pool thread that has not started or has nothing left to read.  Under load a
    pool thread that has taken a block may sit descheduled for several of the
    scheduler's slices, and the caller waited for it (branch short10, load about 9:
    ``negative_log_likelihood`` of 10^6 x 10 float32, median 12.2 ms against 5.5 by the
    older pool-only path; issue 13, branch steal1).  Each block is still one kernel call
    on the same rows, so the numbers are the same bits whichever thread's are kept.
    """
    values, labels = predictions.values, predictions.labels
    k, blocks = values.shape[1], len(bounds) - 1
    shape = (blocks, k if request.classes else 0, request.bins if request.top else 0, request.keep)
    totals = _row_kernels.BlocksTotals.empty(*shape)
    rows = 1 << (_widest_block(bounds) - 1).bit_length()
    settings = _kernel_settings(request, values.dtype, k, predictions.labels_pending, rows)
    read_blocks = _row_kernels.blocks_reader(values, labels, bounds, totals, settings)
    unread = _NextBlocks(blocks)
    flagged_blocks: list[int] = []  # the blocks read with a suspect row or label

    def read(
        taken: Iterator[int], reader: Callable[[Iterator[int]], int | None] = read_blocks
    ) -> None:
        try:
            while (block := reader(taken)) is not None:
                flagged_blocks.append(block)
                if predictions.pending:
                    predictions.check_values()  # raises, naming the entry or label (or passes)
        except BaseException:
            unread.close()
            raise

    def read_back() -> None:  # (the pool's threads)
        try:
            read(unread.taking(front=False))
        finally:
            unread.done()

    pool, restore = start_beside(read_back, blocks)
    try:
        began = time.perf_counter()
        read(unread.taking(front=True))
        restore()  # the caller's CPU now only waits: a block delayed elsewhere may move there
        stolen = unread.stragglers(began)
        if unread.closed:  # a pool thread's block raised: its error
            for future in pool:
                if not future.cancel():
                    future.result()
        if stolen:
            totals = _taken_over(totals, shape, stolen)
            read(iter(stolen), _row_kernels.blocks_reader(values, labels, bounds, totals, settings))
    except BaseException:
        unread.close()
        for future in pool:
            future.cancel()
        wait(pool)
        restore()
        raise
    # the blocks read with a suspect row or label (a stolen one perhaps twice)
    flagged = sorted(set(flagged_blocks)) if flagged_blocks else ()
    if any(int(totals.suspect[block]) < 0 for block in flagged):
        predictions.check_labels()  # raises, naming the first bad label in the whole data
    for block in flagged:  # (labels checked above: never raises)
        _row_kernels._raise_for_label(
            int(totals.suspect[block]),
            labels[bounds[block] : bounds[block + 1]],
            k,
            predictions.first_row + bounds[block],
        )
    clear_unasked(totals.sums, request)
    return totals


def _taken_over(
    totals: _row_kernels.BlocksTotals, shape: tuple[int, int, int, int], stolen: list[int]
) -> _row_kernels.BlocksTotals:
    """New outputs holding the outputs of every block of ``totals`` but ``stolen``
    (whose rows are left as :meth:`~._row_kernels.BlocksTotals.empty` makes them, for
    the caller to read those blocks again): the pool's threads that read them write the
    old outputs, at any time."""
    fresh = _row_kernels.BlocksTotals.empty(*shape)
    done = np.setdiff1d(np.arange(shape[0]), stolen)
    for name in ("sums", "class_stats", "bin_stats", "found", "found_p", "suspect"):
        getattr(fresh, name)[done] = getattr(totals, name)[done]
    return fresh


@functools.lru_cache(maxsize=64)
def _kernel_settings(
    request: TotalsRequest, dtype: np.dtype[Any], classes: int, pending: bool, rows: int
) -> _row_kernels._TotalsSettings:
    """The ``totals`` kernel's settings for ``request`` on rows of ``classes`` entries of
    ``dtype`` in blocks of at most ``rows`` rows (a power of two: the bins'
    :func:`._row_kernels.rounding_bins`; labels held to ``[0, classes)`` if their check
    is ``pending``): those of :func:`map_totals`' blocks
    (:func:`kernel_options`), formed once per such key (every call of
    ``update`` asks; the arrays in them, the bins' edges, are shared and never
    written)."""
    options = kernel_options(request, limit=_limit(dtype, classes), pending=pending)
    single = dtype == np.float32
    return _row_kernels._TotalsSettings.of(classes, **options, rows=rows, single=single)


class _NextBlocks:
    """The blocks ``0, 1, ..., blocks - 1``, each given once to whichever thread asks
    next: :meth:`taking` from the front (``0, 1, ...``: the caller's thread) or from the
    back (``blocks - 1, blocks - 2, ...``: the pool's), until the two meet (a lock
    around the two ends); the blocks taken from the back are timed, so that the caller
    can tell a block being read from one whose thread has stalled
    (:meth:`stragglers`).  Plain locks, no ``threading.Condition`` (5 us to make, 1 us
    a notice, on a call of 2.5 ms): the caller's wait is a lock made only when it must
    wait, which a back thread releases when it has no block left (:meth:`done`)."""

    def __init__(self, blocks: int) -> None:
        self._low = 0
        self._high = blocks
        self._lock = threading.Lock()
        self._reading: dict[int, float] = {}  # the back's blocks being read: when taken
        self._back_blocks = 0  # the back's blocks read
        self._back_seconds = 0.0  # and the seconds they took
        self._waiting: threading.Lock | None = None  # held: the caller waits on it
        self.closed = False

    def taking(self, *, front: bool) -> Iterator[int]:
        """The blocks this thread takes, one at a time, from the front or the back (a
        block from the back counts as read when the thread asks for the next)."""
        block, taken = -1, 0.0
        while True:
            with self._lock:
                if block >= 0 and self._reading.pop(block, None) is not None:
                    self._back_blocks += 1
                    self._back_seconds += time.perf_counter() - taken
                if self._low >= self._high:
                    return
                if front:
                    block = self._low
                    self._low += 1
                else:
                    self._high -= 1
                    block = self._high
                    taken = time.perf_counter()
                    self._reading[block] = taken
            yield block

    def done(self) -> None:
        """Let the waiting caller look again: a back thread has no block left (its
        last block read, or its reading ended by an error)."""
        with self._lock:
            self._wake()

    def _wake(self) -> None:
        """:meth:`done` under the lock."""
        if self._waiting is not None:
            self._waiting.release()
            self._waiting = None

    def stragglers(self, began: float) -> list[int]:
        """The blocks that the caller, which began taking from the front at ``began``
        (``time.perf_counter``) and has found no block left, reads again itself: wait
        for the back's blocks being read, each until it has been read for 1.5 times the
        caller's mean time a block (or the back's, if the caller read none), and
        return those still being read then (now the caller's: their threads' reading
        counts for nothing), none once one raised (:meth:`close`)."""
        allowed = -1.0
        while True:
            with self._lock:
                if not self._reading or self.closed:
                    return []
                now = time.perf_counter()
                if allowed < 0:  # (once, and only where the caller may wait)
                    done, seconds = self._low, now - began
                    if done == 0:  # (the back read all but its own block)
                        done, seconds = self._back_blocks, self._back_seconds
                    allowed = 1.5 * seconds / max(done, 1)
                late = min(self._reading.values()) + allowed - now
                if late <= 0:
                    stolen = sorted(self._reading)
                    self._reading.clear()
                    return stolen
                waiting = self._waiting = threading.Lock()
                waiting.acquire()
            if not waiting.acquire(timeout=late):  # (released by a back thread's done)
                with self._lock:
                    if self._waiting is waiting:  # (timed out: no one released it)
                        self._waiting = None

    def close(self) -> None:
        """Give no more blocks (a thread's block raised: :attr:`closed`)."""
        with self._lock:
            self._low = self._high
            self.closed = True
            self._wake()
