"""A mergeable evaluation state: fixed-size sums, never a list of predictions.

:class:`EvaluationState` accumulates, batch by batch, the sums behind the log score,
Brier and spherical scores, accuracy, the mean entropy, per-class cross-entropy and the
calibration bins (:mod:`._binning`), plus the ``k`` most surprising examples.  Its size
depends on the number of classes and bins only.  ``merge`` adds two states, so any split
of the data followed by merging gives the one-shot result (counts exactly; sums up to
floating-point reassociation).
"""

from __future__ import annotations

import contextlib
import functools
import math
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_integer
from .._read_only import read_only
from .._reprs import one_line, options
from ..errors import InputError, InputTypeError
from . import _row_kernels
from ._binning import (
    FINE_CELLS,
    BinStatistics,
    ClassBinsPart,
    Closed,
    assign_uniform_bins,
    bin_statistics,
    check_class_bins,
    fine_cell,
    fine_edges,
    group_fine_cells,
    uniform_edges,
)
from ._error import (
    CalibrationError,
    CalibrationSpec,
    check_spec,
    error_from_statistics,
    exact_means,
)
from ._inputs import Block, FloatArray, IntArray, Predictions, as_predictions
from ._summaries import (
    BlockTotals,
    ExampleSummaries,
    TotalsRequest,
    _block_bounds,
    _stacked_applies,
    _stacked_totals,
    _widest_block,
    map_summaries,
    map_totals,
    summarize_block,
    summary_blocks,
    totals_of,
)

__all__ = [
    "FINE_CELLS",
    "EvaluationState",
    "EvaluationSummary",
    "add_summarized_block",
    "adding_batch",
    "class_bins_part",
    "class_bins_uniform",
    "perplexity_of",
]


def perplexity_of(x: float) -> float:
    """:math:`e^x` as a float: ``inf`` only where it overflows float64 (from
    :math:`x > 709.78`), NaN for NaN.  The state's perplexity was ``inf`` for every mean
    NLL above 709 (:math:`e^{709.5}` is 1.35e308) and for a NaN NLL (unchecked NaN
    predictions), whose perplexity is NaN as ``exp`` gives it."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


#: Surprisal totals above this enter the scaled sums (:attr:`EvaluationState._huge`): a
#: total at most :math:`2^{1023}` of non-negative terms leaves every per-class total
#: (a subset of its terms) below float64's overflow at :math:`2^{1024}`.
_HUGE = 2.0**1023

#: The scaled sums hold surprisals times :math:`2^{-64}` (a power of two: exact, but for
#: terms below :math:`2^{-958}`, far under an ulp of a total above :math:`2^{959}`), so
#: that up to :math:`2^{63}` rows of at most float64's largest number do not overflow.
_SCALE = 64


def _scaled_block(
    surprisal: FloatArray,
    labels: IntArray,
    classes: int,
    far: tuple[IntArray, FloatArray] | None = None,
) -> FloatArray:
    """``[total, per-class totals...]`` of one block's surprisals times :math:`2^{-64}`;
    ``far``: the block's rows whose surprisal passed float64 and their scaled surprisals
    (:func:`_far_rows`)."""
    scaled = np.ldexp(surprisal, -_SCALE)
    if far is not None:
        scaled[far[0]] = far[1]
    out = np.empty(classes + 1)
    out[0] = scaled.sum()
    out[1:] = np.bincount(labels, weights=scaled, minlength=classes)
    return out


@dataclass(frozen=True)
class EvaluationSummary:
    """The metrics of everything an :class:`EvaluationState` has seen.

    Attributes
    ----------
    n, classes : int
    accuracy : float
    nll : float
        Mean surprisal of the labels in nats; ``nll_bits`` in bits; ``perplexity`` is
        ``exp(nll)``.
    brier : float
        Sum-over-classes Brier score, in [0, 2].
    spherical : float
    mean_entropy : float or None
        Mean entropy of the predicted distributions, in nats; None for a state made
        with ``entropy=False``.
    calibration : CalibrationError
    per_class_nll : ndarray, shape (classes,)
        Mean surprisal of the examples of each true class (NaN for a class never seen).
    per_class_count : ndarray of int, shape (classes,)
    most_surprising : list of (int, float)
        ``(row, surprisal)`` of the highest-surprisal examples, highest first.
    """

    n: int
    classes: int
    accuracy: float
    nll: float
    nll_bits: float
    perplexity: float
    brier: float
    spherical: float
    mean_entropy: float | None
    per_class_nll: FloatArray = field(repr=False)
    calibration: CalibrationError
    per_class_count: IntArray = field(repr=False)
    most_surprising: list[tuple[int, float]] = field(repr=False)


class EvaluationState:
    """Streaming evaluation of predicted distributions, mergeable across batches and workers.

    Parameters
    ----------
    classes : int
        Number of classes.
    bins : int, default 15
        Number of bins, at most 2**20 (the state keeps three float64 sums a bin).
    binning : {"uniform", "quantile"}, default "uniform"
        Equal-width bins (kept exactly), or equal-mass bins from a fine logit-spaced grid
        (see :mod:`crossent.calibration._binning`; masses equal to within one fine cell).
        Quantiles that fall in one cell leave bins empty, ``[e, e)``, after the bin
        that holds the cell; at the top they go below the last bin, which holds the
        top cell ``[0.99999989, 1]`` (confidences of 1), as :func:`calibration_error`'s
        last bin holds them.
    closed : {"left", "right"}, default "left"
        Bin membership at the edges (see :func:`calibration_error`); for equal-mass
        bins, at the fine cells' edges that the bins' edges are.
    scope : {"top-label", "class-wise", "positive-class"}, default "top-label"
    keep : int, default 10
        How many of the most surprising examples to remember. A NaN surprisal (NaN
        predictions passed with ``validate=False``, which ``validate=True`` refuses)
        takes no place, so one update, split updates and merged states keep the same
        rows.
    entropy : bool, default True
        Whether to sum the entropy :math:`-\\sum_k p_k \\log p_k` of each prediction
        (``compute().mean_entropy``; None with False).  For stored probabilities it is
        the one logarithm of every entry: about half of :meth:`update`'s time on 10
        classes, more on wide rows.  The other metrics are the same numbers either way.

    Examples
    --------
    Any split followed by ``merge`` gives the one-shot numbers:

    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(1000, 5)) * 2
    >>> labels = rng.integers(0, 5, size=1000)
    >>> whole = crossent.EvaluationState(5).update(logits, labels, form="logits")
    >>> left = crossent.EvaluationState(5).update(logits[:300], labels[:300], form="logits")
    >>> right = crossent.EvaluationState(5).update(
    ...     logits[300:], labels[300:], form="logits", first_row=300)
    >>> a, b = whole.compute(), left.merge(right).compute()
    >>> bool(np.isclose(a.nll, b.nll, rtol=1e-14))
    True
    >>> bool(np.isclose(a.calibration.value, b.calibration.value, rtol=1e-12))
    True
    >>> one_shot = crossent.negative_log_likelihood(logits, labels, form="logits")
    >>> bool(np.isclose(a.nll, one_shot, rtol=1e-14))
    True
    """

    def __init__(
        self,
        classes: int,
        *,
        bins: int = 15,
        binning: str = "uniform",
        closed: str = "left",
        scope: str = "top-label",
        keep: int = 10,
        entropy: bool = True,
    ) -> None:
        classes = check_integer(classes, name="classes", low=1)
        keep = check_integer(keep, name="keep", low=0)
        if not isinstance(entropy, (bool, np.bool_)):
            raise InputTypeError(f"`entropy` must be True or False; got {entropy!r}")
        self._spec = check_spec(
            bins=bins, binning=binning, norm="l1", scope=scope, debias=False, closed=closed
        )
        if scope == "positive-class" and classes != 2:
            raise InputError(f"`scope='positive-class'` needs 2 classes; got classes={classes}")
        self.classes = int(classes)
        self.keep = keep
        self.entropy = bool(entropy)
        self.n = 0
        self._next_row = 0  # update's default first_row: the row after the last batch's
        self._sums = np.zeros(5)  # surprisal, brier, spherical, entropy, correct
        try:
            self._class_count = np.zeros(self.classes, dtype=np.int64)
            self._class_surprisal = np.zeros(self.classes)
        except (MemoryError, ValueError):  # NumPy's "Unable to allocate 8.00 TiB" (2**40),
            # "array is too big" (2**60): no argument named
            raise InputError(
                f"`classes` is too large: the state keeps a count and a surprisal sum for "
                f"each of {self.classes} classes ({16 * self.classes} bytes); got "
                f"classes={classes!r}"
            ) from None
        cells = self._spec.bins if binning == "uniform" else FINE_CELLS + 2
        if scope == "class-wise":
            check_class_bins(cells, self.classes, binning=binning)
        shape = (self.classes, cells) if scope == "class-wise" else (cells,)
        # the confidence sums' rounding errors are kept where the bins come from the
        # ``totals`` kernel (equal-width top-label bins; see _add)
        exact = scope == "top-label" and binning == "uniform"
        self._bins = BinStatistics.zeros(shape, error=exact)
        self._surprising: list[tuple[float, int]] = []
        self._huge = None

    # ``[total, per-class totals...]`` of the surprisals times 2**-64, kept only once the
    # surprisal total passes ``_HUGE`` (None before: nothing kept, nothing computed).
    # Surprisals of about 1e308 each overflowed the float64 sums, and the NLL of rows
    # 1e308, 1e308 and log 2 was inf, not 6.67e307.  A class attribute too, for a state
    # unpickled from an older version.
    _huge: FloatArray | None = None

    def __repr__(self) -> str:
        """One line: the classes, the rows seen, the binning, and the options that are not
        the defaults."""
        spec = self._spec
        parts = [
            f"classes={self.classes}",
            f"n={self.n}",
            f"bins={spec.bins}",
            f"binning={spec.binning!r}",
            f"scope={spec.scope!r}",
            f"closed={spec.closed!r}",
        ]
        return one_line("EvaluationState", parts + options(self, {"keep": 10, "entropy": True}))

    @property
    def spec(self) -> CalibrationSpec:
        """The binning of this state (``norm`` and ``debias`` are chosen at ``compute``)."""
        return self._spec

    # ------------------------------------------------------------------ accumulation

    def update(
        self,
        probs: Any,
        labels: Any,
        /,
        *,
        form: str = "probs",
        validate: bool = True,
        first_row: int | None = None,
    ) -> EvaluationState:
        """Add a batch of predictions ``(batch, classes)`` and labels ``(batch,)``.

        ``first_row`` is the index of the batch's first row in the whole data set, used
        in error messages and for the most surprising examples.  By default a batch
        starts at the row after the previous batch's last row (0 for the first batch;
        after :meth:`merge`, the number of rows the merged state holds), so a batch cut
        into chunks numbers its rows as the whole batch does, also after a chunk that
        gave ``first_row``.  Returns the state, so calls chain.
        A batch that raises (a bad entry or label in any block) leaves the state as it
        was.
        ``validate=False`` skips the values' check (as :func:`calibration_error`), never
        the labels' range (a label outside ``[0, classes)`` is an index out of bounds).
        An empty batch adds nothing: ``(0, classes)`` predictions, or empty lists
        (``update([], [])``, whose labels NumPy would make float64).
        """
        start = (
            self._next_row
            if first_row is None
            else check_integer(first_row, name="first_row", low=0)
        )
        predictions = as_predictions(
            probs,
            labels,
            form=form,
            validate=validate,
            first_row=start,
            defer=True,
            # a 1-D column's top-label sums are formed from p alone (map_totals,
            # map_summaries): its rows [1 - p, p] are for the other scopes' bins
            rows=self._spec.scope != "top-label",
        )
        if predictions.n == 0 and np.ndim(probs) == 1:
            # no rows: an empty list (``update([], [])``) is read as a 1-D array, two
            # binary classes, whatever the state counts; nothing to add
            self._next_row = start
            return self
        if predictions.classes != self.classes:
            raise InputError(
                f"`{predictions.name}` has {predictions.classes} classes; this state counts "
                f"{self.classes}"
            )
        before = (self._sums, self._class_surprisal, self._huge)
        if self._spec.scope == "top-label" and self._spec.binning == "uniform":
            if _stacked_applies(predictions):  # stored float probabilities, several blocks
                bounds = _block_bounds(predictions)
                request = self._request(self._spec.bins, rows=_widest_block(bounds))
                blocks = _stacked_totals(predictions, request, bounds)
                with self._all_or_nothing():  # (an interrupt in the adds' Python)
                    self._add_blocks(blocks, bounds, start)
                    self._follow_huge(predictions, before)
                self.n += predictions.n
                self._next_row = start + predictions.n
                return self
            # every number in the same pass as the validation (the Numba kernel's sums)
            parts: Iterator[BlockTotals] = (
                _shifted(totals, start + block_start)
                for block_start, totals in map_totals(
                    predictions, self._request(self._spec.bins, rows=predictions.n)
                )
            )
        elif self._spec.scope == "top-label":  # the summaries are all it needs: one pass
            parts = map_summaries(
                predictions,
                lambda block_start, summaries: self._totals(summaries, start + block_start, None),
                top=True,
                entropy=self.entropy,
            )
        else:
            parts = predictions.map_blocks(
                lambda block: self._totals(
                    summarize_block(block, entropy=self.entropy), start + block.start, block.probs
                )
            )
        # in block order (the same sums whatever the threads); a block that raises
        # leaves the state as it was
        with self._all_or_nothing():
            for part in parts:
                self._add(part)
            self._follow_huge(predictions, before)
        self.n += predictions.n
        # the next batch goes on from here: update(x[300:400], first_row=300) and then
        # update(x[400:500]) numbered the second batch's rows 100 to 199 (the rows seen),
        # where one update(x[300:500], first_row=300) numbers them 400 to 499
        self._next_row = start + predictions.n
        return self

    def _follow_huge(
        self, predictions: Predictions, before: tuple[FloatArray, FloatArray, FloatArray | None]
    ) -> None:
        """Keep the scaled sums (:attr:`_huge`) once the surprisal total passes
        ``_HUGE``: one scalar comparison a batch on ordinary data.  Past it, the batch's
        surprisals are read again, block by block, scaled by :math:`2^{-64}` and added
        to the scaled sums from before the batch (the state's sums then, scaled: none
        had overflowed).  ``before``: the sums, per-class sums and scaled sums the state
        held before the batch (arrays a batch never writes)."""
        sums, class_surprisal, huge = before
        if huge is None and not self._sums[0] > _HUGE:  # (a NaN total stays NaN)
            return
        total = _scaled_of(sums, class_surprisal) if huge is None else huge.copy()
        for start, block in summary_blocks(predictions, top=False, entropy=False):
            far = _far_rows(predictions, start, block.surprisal)
            total += _scaled_block(block.surprisal, block.labels, self.classes, far)
        self._huge = total

    def _scaled(self) -> FloatArray:
        """The state's scaled sums: :attr:`_huge`, or its float64 sums scaled."""
        if self._huge is not None:
            return self._huge
        return _scaled_of(self._sums, self._class_surprisal)

    def _totals(
        self, summaries: ExampleSummaries, first_row: int, probs: FloatArray | None
    ) -> BlockTotals:
        """One block's contribution (computed on a worker thread; the state is only
        read).  ``probs``, the block's rows, for the scopes that bin every class's or the
        positive class's probability."""
        correct = summaries.correct
        scope = self._spec.scope
        bins: BinStatistics | ClassBinsPart
        if scope == "top-label":
            bins = self._binned(summaries.confidence, correct)
        elif scope == "positive-class" and probs is not None:
            bins = self._binned(probs[:, 1], (summaries.labels == 1).astype(np.float64))
        elif probs is not None:
            bins = self._binned_classes(probs, summaries.labels)
        else:  # pragma: no cover - update() passes probs for these scopes
            raise AssertionError(f"scope {scope!r} needs the block's probabilities")
        sums = totals_of(summaries, self._request(0))  # the bins above: by scope
        return BlockTotals(
            sums.sums, sums.class_count, sums.class_surprisal, bins, _shifted(sums, first_row).found
        )

    def _request(self, bins: int, *, rows: int | None = None) -> TotalsRequest:
        """Every sum of the state, with ``bins`` uniform top-label bins (0: none).

        ``rows``: the most rows a block holds, which bound the most surprising rows it
        can give (the kernels hold ``keep`` slots a block: ``keep=10**12``, "keep them
        all", asked for 7.3 TiB before this bound, a hostile pass)."""
        keep = self.keep if rows is None else min(self.keep, rows)
        return _state_request(self.entropy, self.classes, bins, self._spec.closed, keep)

    # Where the adding of a batch stands (:meth:`_all_or_nothing`): _OUTSIDE a batch,
    # _OPENED (in a batch, the sums' arrays the state's from before it: another state,
    # a result of :meth:`compute` or the saved copy may hold them) or _OWNED (the
    # arrays made by the batch's first :meth:`_add`: nothing else holds them yet).  A
    # class attribute, so that a state unpickled from an older version has it.
    _OUTSIDE, _OPENED, _OWNED = 0, 1, 2
    _adding = _OUTSIDE

    _BATCH_FIELDS = (
        "_sums",
        "_class_count",
        "_class_surprisal",
        "_bins",
        "_surprising",
        "_huge",
    )
    """The attributes a batch replaces, put back by :meth:`_all_or_nothing` if it raises."""

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """The state's sums put back as they stood if the body raises.

        :meth:`_add_blocks` replaces the sums; :meth:`_add` replaces them at the
        batch's first block and adds the later blocks into those new arrays in place
        (``a += b``: the same numbers as ``a + b``), so that a batch of many blocks
        allocates the sums once, not once a block (class-wise bins of 50 000 classes
        are three arrays of 6 MB: ``crossent report``'s first pass on wide outputs
        spent most of its time allocating them).  The arrays the state held before the
        batch are never written.
        """
        saved = [(name, getattr(self, name)) for name in self._BATCH_FIELDS]
        self._adding = self._OPENED
        try:
            yield
        except BaseException:
            for name, value in saved:
                setattr(self, name, value)
            raise
        finally:
            self._adding = self._OUTSIDE

    def _add(self, part: BlockTotals) -> None:
        if self._adding == self._OWNED:  # this batch's own arrays: in place
            with np.errstate(over="ignore"):  # a +inf total: the scaled sums keep the mean
                self._sums += part.sums
                self._class_count += part.class_count
                self._class_surprisal += part.class_surprisal
            if isinstance(part.bins, ClassBinsPart):
                part.bins.add_into(self._bins)
            elif part.bins is not None:
                if part.bins.error is None:  # (the summaries' bins: no errors kept)
                    self._bins = self._bins.without_error()
                self._bins.add_into(part.bins)
        else:
            with np.errstate(over="ignore"):  # a +inf total: the scaled sums keep the mean
                self._sums = self._sums + part.sums
                self._class_count = self._class_count + part.class_count
                self._class_surprisal = self._class_surprisal + part.class_surprisal
            if isinstance(part.bins, ClassBinsPart):  # a copy, then the part added in
                bins = BinStatistics(*(a.copy() for a in self._bins.arrays()))
                part.bins.add_into(bins)
                self._bins = bins
            elif part.bins is not None:  # (errors kept only if both keep them)
                self._bins = self._bins + part.bins
            if self._adding == self._OPENED and part.bins is not None:
                self._adding = self._OWNED  # (every array new: the bins too)
        if self.keep:
            self._surprising = _top(self._surprising + part.found, self.keep)

    def _add_blocks(
        self, blocks: _row_kernels.BlocksTotals, bounds: list[int], first_row: int
    ) -> None:
        """:meth:`_add` of each block of ``blocks`` in turn, as ``update``'s blocks came
        (block ``b``: rows ``bounds[b]`` on, counted from ``first_row``): the same sums.

        Each float sum is added block after block, in block order, over the blocks of
        every float sum side by side (``blocks.running``, whose first row is set to the
        state's sums: one addition a block for each column, in order, whatever the
        width); the counts are integers, summed from 0 as float64 (exact below 2**53)
        and added to the state's as integers; the bins' rounding errors gain those of
        adding the blocks' confidence sums one after the other (each exact: TwoSum); the
        most surprising rows are those that merging them block by block (:func:`_top` of
        the state's and block 0's, then of those and block 1's, ...) keeps, in its order
        (:func:`_top` orders by surprisal, then row: the ``keep`` first of a union are
        those of the union of each part's ``keep`` first).  All but the last merge with
        the state's rows in one compiled call (:func:`._row_kernels.merge_blocks`),
        where some 40 NumPy calls made the same additions in the same order (the same
        bits): 0.08 ms less cold-cache Python after the blocks of a 10^6 x 10 batch
        (benchmarks/RESULTS.md, issue 13, branch upd15).
        """
        bins, classes, running = self._bins, self._class_count.shape[0], blocks.running
        error = np.zeros_like(bins.count) if bins.error is None else bins.error
        start = (self._class_surprisal, self._sums, *bins.arrays(), error)
        np.concatenate(start, out=running[0, classes:])  # (the counts start from 0)
        at = 2 * classes + 5
        total, counts, errors, values, rows = _row_kernels.merge_blocks(
            running,
            classes,
            at,
            bins.error is not None,
            self._class_count,
            blocks.found,
            blocks.found_p,
            bounds,
            self.keep,
            padded=blocks.padded,
        )
        self._class_count = counts
        self._class_surprisal = total[classes : 2 * classes]
        self._sums = total[2 * classes : at]
        count, confidence_sum, hits = total[at:].reshape(4, -1)[:3]
        self._bins = BinStatistics(
            count, confidence_sum, hits, errors if bins.error is not None else None
        )
        if self.keep:
            new = list(zip(values.tolist(), (rows + first_row).tolist(), strict=True))
            self._surprising = _top(self._surprising + new, self.keep) if self._surprising else new

    def _binned(self, confidence: FloatArray, hits: FloatArray) -> BinStatistics:
        if self._spec.binning == "uniform":
            index = assign_uniform_bins(confidence, self._spec.bins, self._spec.closed)
            return bin_statistics(index, confidence, hits, self._spec.bins)
        cell = fine_cell(confidence, self._spec.closed)
        return bin_statistics(cell, confidence, hits, FINE_CELLS + 2)

    def _binned_classes(self, probs: FloatArray, labels: IntArray) -> BinStatistics | ClassBinsPart:
        """The class-wise bins of a block, ``(classes, cells)``: :meth:`_binned` of each
        column ``k`` (``p_k`` against ``[label = k]``), for every class at once.

        Equal-width bins: :func:`class_bins_part` (:func:`class_bins_uniform` kept
        sparse, for :meth:`_add`).  Equal-mass bins (fine cells): cell
        ``(k, b)`` is ``k * cells + b`` of one ``numpy.bincount`` over the block in
        row-major order, as :func:`class_bins_uniform` does for the columns it bins.
        """
        if self._spec.binning == "uniform":
            return class_bins_part(probs, labels, self._spec.bins, self._spec.closed)
        cells = fine_cell(probs, self._spec.closed)
        return _bincount_classes(cells, probs, labels, FINE_CELLS + 2)

    def merge(self, other: EvaluationState) -> EvaluationState:
        """A new state holding both states' data (neither input is changed).

        The row numbers of the summary's ``most_surprising`` are each state's own: give each
        state's ``update`` its rows' place in the whole data set (``first_row``) so that
        the merged state's numbers name distinct rows.

        Raises
        ------
        InputTypeError
            ``other`` is not an :class:`EvaluationState`.
        InputError
            The states differ in classes, binning, ``keep`` or ``entropy``.
        """
        if not isinstance(other, EvaluationState):
            raise InputTypeError(
                "`other` must be an EvaluationState to merge; got "
                f"{type(other).__name__} {reprlib.repr(other)}"
            )
        mine = (self.classes, self._spec, self.keep, self.entropy)
        theirs = (other.classes, other._spec, other.keep, other.entropy)
        if mine != theirs:
            raise InputError(
                "cannot merge states with different classes, binning, `keep` or `entropy`: "
                f"{self.classes}, {self._spec}, keep={self.keep}, entropy={self.entropy} vs "
                f"{other.classes}, {other._spec}, keep={other.keep}, entropy={other.entropy}"
            )
        merged = EvaluationState.__new__(EvaluationState)
        merged.__dict__.update(self.__dict__)
        merged.n = self.n + other.n
        merged._next_row = merged.n
        with np.errstate(over="ignore"):  # a +inf total: the scaled sums keep the mean
            merged._sums = self._sums + other._sums
            merged._class_count = self._class_count + other._class_count
            merged._class_surprisal = self._class_surprisal + other._class_surprisal
        merged._bins = self._bins + other._bins
        merged._surprising = _top(self._surprising + other._surprising, self.keep)
        huge = self._huge is not None or other._huge is not None
        if huge or merged._sums[0] > _HUGE:
            merged._huge = self._scaled() + other._scaled()
        return merged

    def __add__(self, other: object) -> EvaluationState:
        """``self.merge(other)``; NotImplemented for anything but a state, so that Python
        raises its ``TypeError`` for ``state + 3`` (or asks ``other.__radd__``)."""
        if not isinstance(other, EvaluationState):
            return NotImplemented
        return self.merge(other)

    # ------------------------------------------------------------------ results

    def calibration(self, *, norm: str = "l1", debias: bool = False) -> CalibrationError:
        """The calibration error of the data seen, in the chosen norm.

        Its ``statistics`` are read-only views of the state's sums for equal-width bins:
        a snapshot, which later updates and merges leave as it is (copy them to write)."""
        self._require_examples()
        spec = check_spec(
            bins=self._spec.bins,
            binning=self._spec.binning,
            norm=norm,
            scope=self._spec.scope,
            debias=debias,
            closed=self._spec.closed,
        )
        if spec.binning == "quantile":  # (new arrays, grouped from the fine cells)
            stats, edges = _group(self._bins, spec.bins)
        else:  # the state's sums, read-only: writing them (a plot's counts normalised in
            # place) changed the state's, whose next ECE was 145; the state never
            # writes arrays it has handed out (it replaces them), so this is a snapshot
            bins = self._bins
            error = None if bins.error is None else read_only(bins.error)
            count, confidence_sum, hits = (read_only(a) for a in bins.arrays())
            stats = BinStatistics(count, confidence_sum, hits, error)
            edges = uniform_edges(spec.bins)
            if spec.scope == "class-wise":  # one row of edges a class, as calibration_error
                # gives and CalibrationError.edges declares (was (bins + 1,): edges[k] of
                # class k was one number, the k-th edge); a read-only view, no copy
                edges = np.broadcast_to(edges, (self.classes, spec.bins + 1))
        # a bin whose gap the rounding of its sum could decide (a perfectly calibrated
        # one): its mean from the sums' rounding errors, as calibration_error's
        mean = exact_means(stats, None, None)
        return CalibrationError(
            error_from_statistics(stats, spec, mean), spec, self.n, edges, stats
        )

    def _require_examples(self) -> None:
        if self.n == 0:
            raise InputError("the state has seen no examples; call update() first")

    def compute(self, *, norm: str = "l1", debias: bool = False) -> EvaluationSummary:
        """All metrics of the data seen so far (the state is unchanged)."""
        self._require_examples()
        surprisal, brier, spherical, entropy, correct = self._sums / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(
                self._class_count > 0, self._class_surprisal / self._class_count, np.nan
            )
        if self._huge is not None:  # the overflowed totals' means from the scaled sums
            surprisal, per_class = _unscaled_means(
                surprisal, per_class, self._huge, self.n, self._class_count
            )
        return EvaluationSummary(
            n=self.n,
            classes=self.classes,
            accuracy=float(correct),
            nll=float(surprisal),
            nll_bits=float(surprisal / math.log(2)),
            perplexity=perplexity_of(float(surprisal)),
            brier=float(brier),
            spherical=float(spherical),
            mean_entropy=float(entropy) if self.entropy else None,
            calibration=self.calibration(norm=norm, debias=debias),
            per_class_nll=per_class,
            per_class_count=self._class_count.copy(),
            most_surprising=[(row, value) for value, row in self._surprising],
        )


def class_bins_uniform(
    probs: FloatArray, labels: IntArray, bins: int, closed: Closed
) -> BinStatistics:
    r"""Class-wise equal-width bins of a block: for every class :math:`k` and bin
    :math:`b`, the count, the sum of :math:`p_{ik}` and the number of rows with label
    :math:`k` among the rows :math:`i` whose :math:`p_{ik}` falls in bin :math:`b`
    (:func:`assign_uniform_bins`), each sum added in row order, as ``numpy.bincount``
    of the block in row-major order adds it.

    With many classes nearly every probability is below the first edge
    :math:`e_1 = 1/\mathrm{bins}` (at most ``bins`` of a row's probabilities reach
    it, since they sum to 1).  A column all of whose rows are in the first bin has
    count ``rows`` and confidence sum :math:`\sum_i p_{ik}` there (``sum(axis=0)``
    of a C-contiguous block: row after row, the same additions), and nothing in the
    other bins; only the other columns are binned entry by entry
    (:func:`_bincount_classes`).  Every sum is thus the one the whole block's
    ``bincount`` gives, bit for bit, at a few passes over the block instead of some
    twenty (``crossent report`` on 50 000 classes).
    """
    part = class_bins_part(probs, labels, bins, closed)
    return part if isinstance(part, BinStatistics) else part.dense()


def class_bins_part(
    probs: FloatArray, labels: IntArray, bins: int, closed: Closed
) -> BinStatistics | ClassBinsPart:
    """:func:`class_bins_uniform` before its spreading into dense arrays (for more than
    one class): the columns with an entry past the first bin, their bins, every
    column's sum and each row's hit cell (:class:`._binning.ClassBinsPart`), which a
    state adds into its own bins without forming the block's."""
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    rows, classes = probs.shape
    if classes < 2:  # one column: sum(axis=0) would sum pairwise, not in row order
        return _bincount_classes(assign_uniform_bins(probs, bins, closed), probs, labels, bins)
    first_edge = uniform_edges(bins)[1]
    # bin 0 is [0, e_1) (closed left) or [0, e_1] (closed right); NaN is in neither
    in_first = probs < first_edge if closed == "left" else probs <= first_edge
    binned = np.flatnonzero(~in_first.all(axis=0))  # columns with an entry past bin 0
    stats = None
    if binned.size:
        part = probs[:, binned] if binned.size < classes else probs
        index = assign_uniform_bins(part, bins, closed)
        stats = _bincount_classes(index, part, None, bins)
    # a row's hit is in its label's column, in the bin of its label's probability
    label_probs = probs[np.arange(rows), labels]
    hit_cells = labels * bins + assign_uniform_bins(label_probs, bins, closed)
    return ClassBinsPart((classes, bins), rows, probs.sum(axis=0), binned, stats, hit_cells)


def _bincount_classes(
    index: IntArray, probs: FloatArray, labels: IntArray | None, cells: int
) -> BinStatistics:
    """Per-column bins ``(columns, cells)`` of a block whose entry ``(i, k)`` is in cell
    ``index[i, k]``: one ``numpy.bincount`` of cells ``k * cells + index`` over the block
    in row-major order, so each cell adds its rows in row order (as a column's own
    ``bincount`` does), in one call instead of one per class (50 000 classes made
    that loop minutes of Python per million rows).  A row's hit is only in its label's
    column (``labels`` None: no hits, zeros)."""
    rows, columns = probs.shape
    cell = index + np.arange(columns, dtype=np.intp) * cells
    size = columns * cells
    count = np.bincount(cell.reshape(-1), minlength=size).astype(np.float64)
    confidence_sum = np.bincount(cell.reshape(-1), weights=probs.reshape(-1), minlength=size)
    if labels is None:
        hits = np.zeros(size)
    else:
        hits = np.bincount(cell[np.arange(rows), labels], minlength=size).astype(np.float64)
    shape = (columns, cells)
    return BinStatistics(count.reshape(shape), confidence_sum.reshape(shape), hits.reshape(shape))


def add_summarized_block(
    state: EvaluationState,
    block: Block,
    summaries: ExampleSummaries,
    first_row: int,
    predictions: Predictions | None = None,
) -> None:
    """Add to ``state`` one block of a batch whose first row is ``first_row``, already
    summarised (:func:`._summaries.summarize_block`).

    Package-internal, shared with ``crossent.report``, which summarises each block once
    for several states; the state's own :meth:`EvaluationState.update` reads the rows
    itself.  ``summaries`` must be those of ``block`` (the class-wise and positive-class
    scopes bin ``block.probs``); ``predictions``, the batch ``block`` is of: its rows of
    logits whose surprisal passes float64 enter the scaled sums from their halves
    (:func:`_far_rows`), as :meth:`EvaluationState.update`'s do (without it they entered
    as +inf: a class holding ``[1e308, -1e308]`` of label 1 kept the per-class NLL +inf
    where it is 1e308).
    """
    part = state._totals(summaries, first_row + block.start, block.probs)
    scaled = None
    if state._huge is not None or state._sums[0] + part.sums[0] > _HUGE:
        far = (
            None
            if predictions is None
            else _far_rows(predictions, block.start, summaries.surprisal)
        )
        scaled = state._scaled() + _scaled_block(
            summaries.surprisal, summaries.labels, state.classes, far
        )
    state._add(part)
    if scaled is not None:
        state._huge = scaled


@contextlib.contextmanager
def adding_batch(states: tuple[EvaluationState, ...]) -> Iterator[None]:
    """The blocks of one batch added to each of ``states`` (:func:`add_summarized_block`
    within): each state's sums allocated once for the batch, its later blocks added in
    place (:meth:`EvaluationState._all_or_nothing`), and every state as it was if the
    body raises.  Package-internal, for ``crossent.report``'s first pass."""
    with contextlib.ExitStack() as stack:
        for state in states:
            stack.enter_context(state._all_or_nothing())
        yield


def _scaled_of(sums: FloatArray, class_surprisal: FloatArray) -> FloatArray:
    """``[total, per-class totals...]`` of float64 surprisal sums, times :math:`2^{-64}`."""
    return np.ldexp(np.concatenate([sums[:1], class_surprisal]), -_SCALE)


def _far_rows(
    predictions: Predictions, start: int, surprisal: FloatArray
) -> tuple[IntArray, FloatArray] | None:
    r"""The rows of a block of logits whose surprisal passed float64 though the rows are
    finite (logits more than 1.8e308 apart: ``[1e308, -1e308]``, label 1, 2e308), and
    their surprisals times :math:`2^{-64}`, formed from the halves
    (:func:`._temperature.half_nll_rows`, as the one-shot NLL's mean forms them: issue 13,
    calib2). Such rows left the scaled sums, and the state's NLL, +inf where their mean
    fits. None for other forms (a log-probability of -inf or a probability of 0 is a
    surprisal of +inf indeed) or where no row passed."""
    if predictions.form != "logits":
        return None
    far = np.flatnonzero(surprisal == np.inf)
    if far.size == 0:
        return None
    from ._temperature import half_nll_rows  # (it imports this package's modules)

    rows = predictions.subset(start + far)
    halves = rows.map_raw(lambda _, values, labels: half_nll_rows(values, labels, "logits"))
    return far, np.ldexp(np.concatenate(list(halves)), 1 - _SCALE)


def _unscaled_means(
    nll: float, per_class: FloatArray, huge: FloatArray, n: int, counts: IntArray
) -> tuple[float, FloatArray]:
    """The mean NLL and per-class NLL where the float64 totals overflowed: each scaled
    total divided by its rows, then times :math:`2^{64}` (exact, or +inf where the mean
    itself overflows).  The means from finite totals are left as they are (their bits:
    the scaled sums add in another order); a row of surprisal +inf keeps its mean +inf."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if nll == math.inf:
            nll = float(np.ldexp(huge[0] / n, _SCALE))
        overflowed = per_class == np.inf
        if overflowed.any():
            per_class = per_class.copy()
            per_class[overflowed] = np.ldexp(huge[1:][overflowed] / counts[overflowed], _SCALE)
    return nll, per_class


def _shifted(totals: BlockTotals, first_row: int) -> BlockTotals:
    """``totals`` with the rows of its most surprising examples counted from ``first_row``."""
    found = [(value, first_row + row) for value, row in totals.found]
    return BlockTotals(totals.sums, totals.class_count, totals.class_surprisal, totals.bins, found)


def _top(items: list[tuple[float, int]], keep: int) -> list[tuple[float, int]]:
    """The ``keep`` highest surprisals, ties broken by the lower row index; a NaN
    surprisal (unchecked NaN predictions) takes no place, as in the blocks' own."""
    kept = [item for item in items if not math.isnan(item[0])]
    return sorted(kept, key=lambda item: (-item[0], item[1]))[:keep]


def _group(stats: BinStatistics, bins: int) -> tuple[BinStatistics, FloatArray]:
    """Join fine cells into ``bins`` equal-mass groups (per class for the class-wise scope)."""
    if stats.count.ndim == 2:
        parts = [_group(stats.row(k), bins) for k in range(stats.count.shape[0])]
        return BinStatistics.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])
    group = group_fine_cells(stats.count, bins)
    grouped = BinStatistics(
        np.bincount(group, weights=stats.count, minlength=bins),
        np.bincount(group, weights=stats.confidence_sum, minlength=bins),
        np.bincount(group, weights=stats.hits, minlength=bins),
    )
    cell_edges = fine_edges()
    last_cell = np.searchsorted(group, np.arange(bins), side="right") - 1
    inner = cell_edges[np.clip(last_cell[:-1] + 1, 0, cell_edges.size - 1)]
    return grouped, np.concatenate([[0.0], inner, [1.0]])


@functools.lru_cache(maxsize=64)
def _state_request(
    entropy: bool, classes: int, bins: int, closed: Closed, keep: int
) -> TotalsRequest:
    """:meth:`EvaluationState._request`'s request, formed once per key (a frozen
    dataclass of nine fields: about 10 us of cold-cache Python an ``update``)."""
    return TotalsRequest(
        top=True,
        entropy=entropy,
        brier=True,
        spherical=True,
        classes=classes,
        bins=bins,
        closed=closed,
        keep=keep,
        errors=True,  # (the bins' exact means: no rows are kept)
    )
