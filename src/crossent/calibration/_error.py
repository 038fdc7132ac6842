"""Calibration error with a declared definition: scope, norm, binning, bins, estimator.

Tools disagree silently on what "ECE" means.  Here every result carries its
:class:`CalibrationSpec`, whose :attr:`~CalibrationSpec.definition` says it in words, and
:data:`CALIBRATION_PRESETS` reproduces the conventions of other libraries by name.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from .._checks import check_flag
from ..errors import InputError
from ._binning import (
    Binning,
    BinStatistics,
    Closed,
    Norm,
    assign_bins,
    assign_uniform_bins,
    bin_statistics,
    calibration_value,
    check_bins,
    check_class_bins,
    compensated_means,
    doubtful_bins,
    quantile_edges,
    refined_means,
    squared_or_values,
    uniform_edges,
)
from ._inputs import FloatArray, IntArray, Predictions, as_predictions, require_examples
from ._summaries import TotalsRequest, map_totals, stacked_blocks, summarize
from ._summaries import _block_bounds as summed_block_bounds

__all__ = [
    "CALIBRATION_PRESETS",
    "PRESET_OPTIONS",
    "CalibrationError",
    "CalibrationSpec",
    "Scope",
    "bin_indices",
    "binned_error",
    "block_bounds",
    "calibration_error",
    "calibration_error_of",
    "check_spec",
    "edges_for",
    "error_from_statistics",
    "error_of_rows",
    "exact_means",
    "scope_arrays",
    "statistics_for",
    "uniform_top_label_statistics",
]

Scope = Literal["top-label", "class-wise", "positive-class"]
_SCOPES = ("top-label", "class-wise", "positive-class")

_SCOPE_WORDS = {
    "top-label": "top-label (confidence = max_k p_k, hit = argmax is the label)",
    "class-wise": "class-wise (each class's p_k against [label = k], averaged over classes)",
    "positive-class": "positive-class (confidence = p_1, hit = [label = 1])",
}


@dataclass(frozen=True)
class CalibrationSpec:
    """What a calibration-error number means.

    Attributes
    ----------
    scope : {"top-label", "class-wise", "positive-class"}
        Which probabilities are binned: the top label's (Guo et al. 2017), each class's
        one-vs-rest (Kumar et al. 2019's marginal error, averaged over classes as
        :math:`(\\frac1K\\sum_k \\mathrm{CE}_k^p)^{1/p}` of each class's own error
        :math:`\\mathrm{CE}_k`, debiased L2 included: a class's debiased square below 0 is
        an error of 0; the maximum over classes for ``norm="max"``), or the positive
        class's in a binary problem.
    norm : {"l1", "l2", "max"}
        How the per-bin gaps are combined (see :func:`calibration_error`).
    binning : {"uniform", "quantile"}
        Equal-width bins on [0, 1], or equal-mass bins at the empirical quantiles.
    bins : int
        Number of bins.
    closed : {"left", "right"}
        ``[a, b)`` bins with the last closed (``numpy.histogram``), or ``(a, b]`` bins
        with the first closed (scikit-learn's ``calibration_curve``).
    estimator : {"plug-in", "debiased"}
        The plug-in estimate, or Kumar, Liang and Ma's debiased L2 estimate.
    """

    scope: Scope = "top-label"
    norm: Norm = "l1"
    binning: Binning = "uniform"
    bins: int = 15
    closed: Closed = "left"
    estimator: Literal["plug-in", "debiased"] = "plug-in"

    def __post_init__(self) -> None:
        # a spec built by hand is held to calibration_error's rules (bins, norm, ...):
        # its definition and the numbers computed from it must not name the impossible
        count = check_bins(self.bins, self.binning, self.closed, self.norm)
        object.__setattr__(self, "bins", count)
        if self.scope not in _SCOPES:
            raise InputError(
                f"`scope` must be 'top-label', 'class-wise' or 'positive-class'; got {self.scope!r}"
            )
        if self.estimator not in ("plug-in", "debiased"):
            raise InputError(f"`estimator` must be 'plug-in' or 'debiased'; got {self.estimator!r}")
        if self.estimator == "debiased" and self.norm != "l2":
            raise InputError(
                "`debias=True` is defined for norm='l2' only (Kumar et al. 2019); "
                f"got norm={self.norm!r}"
            )

    @property
    def definition(self) -> str:
        """The definition in one line of words."""
        return (
            f"{self.norm.upper()} calibration error, {_SCOPE_WORDS[self.scope]}, "
            f"{self.bins_in_words}, {self.estimator} estimator"
        )

    @property
    def bins_in_words(self) -> str:
        """The bins of :attr:`definition`, e.g. "15 equal-width bins [a, b) with the last
        bin closed"."""
        width = "equal-width" if self.binning == "uniform" else "equal-mass"
        ends = (
            "[a, b) with the last bin closed"
            if self.closed == "left"
            else "(a, b] with the first bin closed"
        )
        return f"{self.bins} {width} bins {ends}"


@dataclass(frozen=True)
class CalibrationError:
    """A calibration-error estimate and its definition; ``float(result)`` is the value.

    Attributes
    ----------
    value : float
        The estimate.
    spec : CalibrationSpec
        Its definition.
    n : int
        Number of examples.
    edges : ndarray
        Bin edges (``(bins + 1,)``; ``(classes, bins + 1)`` for the class-wise scope).
    statistics : BinStatistics
        Per-bin count, sum of confidences and hits, from which the value was computed.
    renormalized : float or None
        With ``renormalize=True``, the largest ``|row sum - 1|`` that was corrected.
    """

    value: float
    spec: CalibrationSpec
    n: int
    edges: FloatArray = field(repr=False)
    statistics: BinStatistics = field(repr=False)
    renormalized: float | None = None

    def __float__(self) -> float:
        return self.value


def check_spec(
    *,
    bins: int,
    binning: str,
    norm: str,
    scope: str,
    debias: bool,
    closed: str,
) -> CalibrationSpec:
    """Validate the options of :func:`calibration_error` and build their spec (the
    spec checks the rest itself, :meth:`CalibrationSpec.__post_init__`)."""
    debias = check_flag(debias, name="debias")  # InputTypeError, as validate
    return CalibrationSpec(
        scope=scope,  # type: ignore[arg-type]
        norm=norm,  # type: ignore[arg-type]
        binning=binning,  # type: ignore[arg-type]
        bins=bins,
        closed=closed,  # type: ignore[arg-type]
        estimator="debiased" if debias else "plug-in",
    )


def scope_arrays(predictions: Predictions, scope: Scope) -> tuple[FloatArray, FloatArray]:
    """Confidences and hits for a scope: ``(n,)`` arrays, or ``(n, classes)`` class-wise."""
    if scope == "positive-class" and predictions.classes != 2:
        raise InputError(
            "`scope='positive-class'` needs a binary problem (2 classes); got "
            f"{predictions.classes} classes. Use 'top-label' or 'class-wise'."
        )
    if scope == "top-label":
        summaries = summarize(predictions)
        return summaries.confidence, summaries.correct
    if scope == "positive-class":
        probs = np.concatenate([b.probs[:, 1] for b in predictions.blocks()] or [np.zeros(0)])
        return probs, (predictions.labels == 1).astype(np.float64)
    probs = predictions.probs()
    hits = (predictions.labels[:, None] == np.arange(predictions.classes)).astype(np.float64)
    return probs, hits


def error_from_statistics(
    stats: BinStatistics, spec: CalibrationSpec, mean: FloatArray | None = None
) -> float:
    """The value of ``spec`` from its per-bin statistics (``(bins,)`` or ``(classes, bins)``),
    with the bins' mean confidences ``mean`` where given (:func:`refined_means`)."""
    debias = spec.estimator == "debiased"
    if stats.count.ndim == 1:
        return calibration_value(stats, norm=spec.norm, debias=debias, mean=mean)
    per_class = squared_or_values(stats, norm=spec.norm, debias=debias, mean=mean)
    if spec.norm == "max":
        return float(np.max(per_class))
    if spec.norm == "l1":
        return float(np.mean(per_class))
    # L2: the mean of the classes' squared errors, each the square of that class's own
    # error max(., 0)^(1/2) (Kumar et al.'s marginal error, and the report's per-class
    # column): a debiased square below 0 counts as 0, not against the other classes
    # (the mean of the signed squares, below 0, gave 0.0 where the classes' errors
    # 0.0610, 0.0329, 0, 0 have the root mean square 0.0347). NaN (unchecked) stays NaN.
    return float(np.sqrt(np.mean(np.maximum(per_class, 0.0))))


def exact_means(
    stats: BinStatistics, confidence: FloatArray | Any, index: IntArray | Any
) -> FloatArray | None:
    """The bins' mean confidences where the rounding of a bin's confidence sum could
    decide its gap (:func:`doubtful_bins`: a perfectly calibrated bin gave 1.1e-16, not
    0): from the sums' rounding errors where ``stats`` keeps them
    (:func:`compensated_means`: the correctly rounded mean of the bin's confidences,
    whatever the order they were added in; an :class:`~crossent.EvaluationState`'s
    bins keep them, so its ``compute`` and this function give the same bits), else
    computed again from the per-example ``confidence`` and bins ``index`` (arrays, or
    callables giving them, called only then; None: no rows, ``fl(S / n)`` kept):
    :func:`refined_means`, row by row of class-wise statistics.  None where no bin is
    doubtful (every value bit for bit)."""
    doubtful = doubtful_bins(stats)
    if not doubtful.any():
        return None
    if stats.error is not None:
        return compensated_means(stats, doubtful)
    if confidence is None or index is None:
        return None
    confidence = confidence() if callable(confidence) else confidence
    index = index(confidence) if callable(index) else index
    if stats.count.ndim == 1:
        return refined_means(stats, index, confidence, doubtful)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = stats.confidence_sum / stats.count
    for k in np.flatnonzero(doubtful.any(axis=1)):
        row = refined_means(stats.row(int(k)), index[:, k], confidence[:, k], doubtful[k])
        if row is not None:
            means[k] = row
    return means


def error_of_rows(
    confidence: FloatArray,
    hits: FloatArray,
    edges: FloatArray,
    spec: CalibrationSpec,
    bounds: Sequence[int] | None = None,
) -> tuple[float, BinStatistics, IntArray]:
    """The calibration error of ``spec`` of per-row ``confidence`` and ``hits`` binned by
    ``edges``, its bins' means from the rows where their rounding could decide a gap
    (:func:`exact_means`); with the statistics and each row's bins (``bin_indices``),
    which the bootstrap resamples.

    ``bounds`` (:func:`block_bounds`): the bins' sums are those of the rows between each
    two bounds, added block after block, as :func:`calibration_error_of` adds its blocks'
    bins; None: one sum over all rows, as it bins them otherwise (the two differed by
    up to 1e-13 relative past 200 000 rows)."""
    index = bin_indices(confidence, edges, spec)
    if bounds is None:
        stats = statistics_for(confidence, hits, index, spec)
    else:
        stats = BinStatistics.zeros((spec.bins,))  # (as uniform_top_label_statistics)
        for start, stop in itertools.pairwise(bounds):
            part = slice(start, stop)
            stats = stats + statistics_for(confidence[part], hits[part], index[part], spec)
    return error_from_statistics(stats, spec, exact_means(stats, confidence, index)), stats, index


def block_bounds(predictions: Predictions, spec: CalibrationSpec) -> list[int] | None:
    """Where :func:`calibration_error_of` sums the bins of ``spec`` block by block (the
    top label in equal-width bins: the fused pass's blocks, the state's), their first
    rows and then the rows, for :func:`error_of_rows` to sum the rows' bins the same
    way: the same bits (the one-curve bootstrap's value and the report's).  None where
    it sums all rows' bins at once (:func:`error_of_rows` without bounds)."""
    if not _summed_by_block(spec):
        return None
    return summed_block_bounds(predictions)


def _summed_by_block(spec: CalibrationSpec) -> bool:
    """Whether :func:`calibration_error_of` takes the fused pass's bins of each block
    (:func:`uniform_top_label_statistics`) rather than the rows' bins at once."""
    return spec.scope == "top-label" and spec.binning == "uniform"


def edges_for(confidence: FloatArray, spec: CalibrationSpec) -> FloatArray:
    """Bin edges for each column of ``confidence`` (one row of edges per class if 2-D)."""
    if confidence.ndim == 2:
        return np.stack([edges_for(confidence[:, k], spec) for k in range(confidence.shape[1])])
    if spec.binning == "uniform":
        return uniform_edges(spec.bins)
    return quantile_edges(confidence, spec.bins)


def bin_indices(confidence: FloatArray, edges: FloatArray, spec: CalibrationSpec) -> IntArray:
    """The bin of each confidence (per column, with that column's edges, if 2-D)."""
    if confidence.ndim == 1:
        return assign_bins(confidence, edges, spec.closed)
    return np.stack(
        [assign_bins(confidence[:, k], edges[k], spec.closed) for k in range(confidence.shape[1])],
        axis=1,
    )


def statistics_for(
    confidence: FloatArray,
    hits: FloatArray,
    index: IntArray,
    spec: CalibrationSpec,
    weights: FloatArray | None = None,
) -> BinStatistics:
    """Per-bin statistics of the scope's arrays, given each example's bin ``index``."""
    if confidence.ndim == 1:
        return bin_statistics(index, confidence, hits, spec.bins, weights)
    return BinStatistics.stack(
        [
            bin_statistics(index[:, k], confidence[:, k], hits[:, k], spec.bins, weights)
            for k in range(confidence.shape[1])
        ]
    )


def calibration_error(
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    bins: int = 15,
    binning: str = "uniform",
    norm: str = "l1",
    scope: str = "top-label",
    debias: bool = False,
    closed: str = "left",
    renormalize: bool = False,
    validate: bool = True,
) -> CalibrationError:
    r"""Calibration error of predicted distributions, with its definition attached.

    For bins :math:`B_b` of confidence, with :math:`n_b` examples, mean confidence
    :math:`\bar c_b` and hit rate :math:`\bar h_b`:

    .. math::

        \mathrm{ECE}_{L1} = \sum_b \frac{n_b}{n}\,|\bar h_b - \bar c_b|, \qquad
        \mathrm{ECE}_{L2} = \Big(\sum_b \frac{n_b}{n}(\bar h_b - \bar c_b)^2\Big)^{1/2},
        \qquad \mathrm{MCE} = \max_b |\bar h_b - \bar c_b|.

    The default is Guo et al. (2017)'s expected calibration error: top-label, L1,
    15 equal-width bins.

    Parameters
    ----------
    probs : array_like, shape (n, classes) or (n,)
        Predicted distributions, in the form named by ``form``.  A 1-D array is the
        probability (or, with ``form="logits"``, the log-odds, ``+-inf`` meaning
        probability 1 or 0) of class 1 in a binary problem, whose labels are 0 and 1:
        the same numbers as its two columns ``[1 - p, p]`` in every scope, so the
        default scope bins the top label :math:`\max(p, 1 - p)`;
        ``scope="positive-class"`` bins :math:`p` itself against ``[label = 1]``.
        :func:`crossent.report` (and ``crossent report``) chooses the positive-class
        scope for a 1-D input instead, as torchmetrics' ``binary_calibration_error``
        and scikit-learn's ``calibration_curve`` do: pass ``scope="positive-class"``
        here for the report's number.
    labels : array_like of int, shape (n,)
        True classes in ``[0, classes)``.
    form : {"probs", "log_probs", "logits"}, default "probs"
        What ``probs`` holds.  Never inferred from the values; error messages call the
        array by its form.  (Why a keyword and not one function per form: see the
        docstring of the ``crossent.calibration`` package.)
    bins : int, default 15
        Number of bins, 1 to 2**20 (``_binning.MAX_BINS``: a bin needs several
        examples to estimate its hit rate).
    binning : {"uniform", "quantile"}, default "uniform"
        Equal-width bins, or equal-mass bins at the empirical quantiles of the confidences.
    norm : {"l1", "l2", "max"}, default "l1"
        Combination of the per-bin gaps (above).
    scope : {"top-label", "class-wise", "positive-class"}, default "top-label"
        What is binned; see :class:`CalibrationSpec`.  "positive-class" needs 2 classes.
    debias : bool, default False
        Kumar, Liang and Ma (2019)'s debiased estimator (``norm="l2"`` only).  The
        plug-in estimate is biased upward (a perfectly calibrated model scores
        :math:`O(\sqrt{\text{bins}/n})`); the debiased one is near 0 for it.
    closed : {"left", "right"}, default "left"
        ``[a, b)`` bins with the last closed, or ``(a, b]`` bins with the first closed.
        Either way a confidence of exactly 0 lands in the first bin and 1 in the last.
    renormalize : bool, default False
        Divide each row of probabilities by its sum first (for outputs stored at a lower
        precision than they were computed in, e.g. bfloat16 probabilities saved as
        float32); the result's ``renormalized`` is the largest deviation corrected.
        Never the default: a row that does not sum to 1 is otherwise an error.
    validate : bool, default True
        Check the values (ranges, NaN, rows summing to 1 within a dtype-aware
        tolerance). The labels' range is checked in any case (a label outside ``[0,
        classes)`` is an index out of bounds), as are shapes and dtypes.

    Returns
    -------
    CalibrationError
        ``.value`` (also ``float(result)``), ``.spec`` with its ``.definition``, and the
        per-bin statistics.

    Raises
    ------
    InputError
        Invalid options, predictions or labels (naming the row and value), or 0 rows.

    See Also
    --------
    reliability_diagram : The per-bin data and its plot.
    bootstrap_interval : A confidence interval for this estimate.
    EvaluationState : The same bins accumulated over batches.
    CALIBRATION_PRESETS : torchmetrics', scikit-learn's and netcal's conventions.

    Notes
    -----
    Unlike torchmetrics, logits are never detected from values outside [0, 1]: pass
    ``form="logits"``.  Unlike torchmetrics 1.9 (torchmetrics#3510) a confidence of exactly
    1.0 is counted in the last bin.

    References
    ----------
    Guo, Pleiss, Sun and Weinberger (2017), On Calibration of Modern Neural Networks,
    arXiv:1706.04599.  Kumar, Liang and Ma (2019), Verified Uncertainty Calibration,
    arXiv:1909.10155.

    Examples
    --------
    torchmetrics' documented multiclass example (3 bins; 0.2000, 0.2082, 0.2333):

    >>> import crossent
    >>> probs = [[0.25, 0.20, 0.55], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]]
    >>> labels = [0, 1, 2, 0]
    >>> [round(crossent.calibration_error(probs, labels, bins=3, norm=n).value, 4)
    ...  for n in ("l1", "l2", "max")]
    [0.2, 0.2082, 0.2333]
    >>> crossent.calibration_error(probs, labels).spec.definition.split(",")[0]
    'L1 calibration error'
    """
    spec = check_spec(
        bins=bins, binning=binning, norm=norm, scope=scope, debias=debias, closed=closed
    )
    predictions = as_predictions(
        probs, labels, form=form, validate=validate, renormalize=renormalize, defer=True
    )
    require_examples(predictions, purpose="a calibration error")
    return calibration_error_of(predictions, spec)


def uniform_top_label_statistics(predictions: Predictions, spec: CalibrationSpec) -> BinStatistics:
    """Per-bin statistics of the top label in equal-width bins, block by block on the
    caller's thread and the pool's (from the one fused pass over probabilities:
    :func:`._summaries.stacked_blocks`, else :func:`._summaries.map_totals`), the blocks'
    bins added in block order: nothing per example is kept, and the bins are found by
    arithmetic (:func:`assign_uniform_bins`)."""
    total = BinStatistics.zeros((spec.bins,))  # (no rounding errors: the rows are at hand)
    request = TotalsRequest(top=True, surprisal=False, bins=spec.bins, closed=spec.closed)
    stacked = stacked_blocks(predictions, request)
    if stacked is not None:  # (the same blocks' bins, added in the same order)
        for stats in stacked.bin_stats:
            total = total + BinStatistics(*stats[:3])
        return total
    for _, part in map_totals(predictions, request):
        if isinstance(part.bins, BinStatistics):  # (top-label: never a ClassBinsPart)
            total = total + part.bins
    return total


def calibration_error_of(predictions: Predictions, spec: CalibrationSpec) -> CalibrationError:
    """:func:`calibration_error` on validated predictions."""
    if _summed_by_block(spec):
        stats = uniform_top_label_statistics(predictions, spec)
        mean = exact_means(
            stats,
            lambda: summarize(predictions).confidence,
            lambda confidence: assign_uniform_bins(confidence, spec.bins, spec.closed),
        )
        return CalibrationError(
            value=error_from_statistics(stats, spec, mean),
            spec=spec,
            n=predictions.n,
            edges=uniform_edges(spec.bins),
            statistics=stats,
            renormalized=predictions.renormalized,
        )
    if spec.scope == "class-wise":
        check_class_bins(spec.bins, predictions.classes, binning="uniform")
    return binned_error(predictions, spec)[0]


def binned_error(
    predictions: Predictions, spec: CalibrationSpec
) -> tuple[CalibrationError, FloatArray, FloatArray, IntArray]:
    """:func:`calibration_error`'s result from one read of the scope's confidences and
    hits (:func:`scope_arrays`) binned once (:func:`error_of_rows`), with those arrays
    and each entry's bin: the class-wise bootstrap resamples them, so that its
    interval's value is this result's, bit for bit (``classwise_calibration_interval``:
    its one home beside :func:`calibration_error_of`; issue 13)."""
    confidence, hits = scope_arrays(predictions, spec.scope)
    edges = edges_for(confidence, spec)
    value, stats, index = error_of_rows(confidence, hits, edges, spec)
    result = CalibrationError(
        value=value,
        spec=spec,
        n=predictions.n,
        edges=edges,
        statistics=stats,
        renormalized=predictions.renormalized,
    )
    return result, confidence, hits, index


CALIBRATION_PRESETS: dict[str, dict[str, Any]] = {
    "guo2017": {"bins": 15, "binning": "uniform", "norm": "l1", "scope": "top-label"},
    "torchmetrics-multiclass": {
        "bins": 15,
        "binning": "uniform",
        "scope": "top-label",
        "closed": "left",
    },
    "torchmetrics-binary": {
        "bins": 15,
        "binning": "uniform",
        "scope": "positive-class",
        "closed": "left",
    },
    "sklearn": {"bins": 5, "binning": "uniform", "scope": "positive-class", "closed": "right"},
    "netcal": {"bins": 10, "binning": "uniform", "norm": "l1", "scope": "top-label"},
}
"""Keyword sets for :func:`calibration_error` that reproduce other libraries' conventions.

``"guo2017"``
    The default: top-label, L1, 15 equal-width bins.
``"torchmetrics-multiclass"`` / ``"torchmetrics-binary"``
    ``multiclass_calibration_error`` (top-label) and ``binary_calibration_error``
    (positive class: torchmetrics compares ``p_1`` with the label itself), 15 bins
    ``[a, b)``; choose ``norm`` as there.  They differ from torchmetrics 1.9 for a
    confidence of exactly 1.0, which torchmetrics counts in a hidden extra bin
    (torchmetrics#3510), and for a confidence equal to an interior edge up to an ulp:
    torchmetrics' edges are ``torch.linspace`` in the confidences' dtype (float32 for
    ``multiclass_calibration_error``), these ``numpy.linspace`` in float64, which place
    a float32 confidence as its exact value says for up to 97 bins (the edges and
    their rounding: ``crossent.calibration._binning``).  For example float32(0.7) =
    0.69999999 with 10 bins is in bin 6 here and 7 there; float32(0.2) = 0.20000000298
    with 15 bins is in bin 3 here and 2 there (torch's float32 edge is 0.20000002).
``"sklearn"``
    The bins of ``sklearn.calibration.calibration_curve`` (5 bins ``(a, b]`` on the
    positive-class probability; ``binning="quantile"`` for ``strategy="quantile"``).
    Equal-mass edges are the exact quantiles (``numpy.quantile`` at
    ``numpy.linspace(0, 1, bins + 1)``); scikit-learn's (``numpy.percentile`` at those
    levels times 100) can fall an ulp below a quantile that is a data point, which then
    lands in the next bin: ``p = [0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9]`` with 3 bins
    has its edge :math:`e_1` at 0.3 itself here (counts 3, 2, 2) and at
    0.29999999999999993 there (2, 3, 2).
``"netcal"``
    ``netcal.metrics.ECE(bins=10)`` on multiclass confidences: top-label, 10 bins with
    ``numpy.histogram`` semantics.

Use as ``calibration_error(probs, labels, **CALIBRATION_PRESETS["sklearn"])``.
"""


PRESET_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {name: MappingProxyType(dict(options)) for name, options in CALIBRATION_PRESETS.items()}
)
""":data:`CALIBRATION_PRESETS` as defined, read-only: what ``crossent.report(preset=...)``
(and ``crossent report --preset``) applies.  The public dict is the caller's to use and
change (``kw = CALIBRATION_PRESETS["sklearn"]; kw.update(norm="max")``); the report read
it, so such a change made ``preset="sklearn"`` compute 20 bins of the maximum norm while
saying "preset sklearn"."""
