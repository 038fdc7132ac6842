"""Seeded bootstrap confidence intervals and a paired comparison of two models' log loss.

The resampling is the nonparametric bootstrap (Efron 1979): each replicate draws ``n``
examples with replacement.  For the per-example scores that is a vector of multinomial
counts, and the metric a weighted mean of the per-example values computed once.  For
the calibration error of one curve (top-label, positive-class) each replicate is drawn
block by block (see :func:`binned_replicates`: the same distribution, as a multinomial
count of each block of 256 rows of a bin and uniform byte offsets inside it; it reads
only the drawn rows, each inside its block), on all cores.  Intervals are percentile
intervals.  The bin edges are those of the full sample (for equal-mass bins this
conditions on the edges).

The machinery is package-internal API, shared with ``crossent.report`` and
``crossent.compare_reports`` so that the report's intervals are these, draw for draw:
:func:`check_resampling`, :func:`mean_replicates` (paired means on one seeded stream),
:func:`binned_calibration_interval` (one curve's calibration error) and
:func:`percentile_interval`.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_base, check_choice, check_integer
from .._parallel import ordered_map, workers
from ..errors import InputError
from . import _row_kernels
from ._binning import BinStatistics, check_class_bins, constant_values, with_constant_errors
from ._error import (
    CalibrationError,
    CalibrationSpec,
    binned_error,
    block_bounds,
    check_spec,
    edges_for,
    error_from_statistics,
    error_of_rows,
    exact_means,
    scope_arrays,
)
from ._inputs import FloatArray, Predictions, as_predictions, check_same_rows, require_examples
from ._scores import score_means
from ._summaries import summarize
from ._temperature import half_nll_rows

__all__ = [
    "MAX_RESAMPLES",
    "Interval",
    "LogLossComparison",
    "binned_calibration_interval",
    "binned_replicates",
    "bootstrap_interval",
    "check_resamples",
    "check_resampling",
    "classwise_calibration_interval",
    "classwise_replicates",
    "compare_log_loss",
    "halved_surprisal",
    "infinite_rows",
    "mean_of",
    "mean_replicates",
    "percentile_interval",
    "resample_counts",
    "weighted_mean",
]

MAX_RESAMPLES = 1_000_000
"""The most bootstrap resamples a call takes.  Each replicate recomputes the metric, so
``10**20`` (a typo, or an overflow upstream) would run until interrupted; a million is
far past where a 95 % interval's ends stop moving (their Monte Carlo error falls as
``1/sqrt(resamples)``)."""

_CHUNK = 25
"""Bootstrap replicates per random stream (and per task on the thread pool)."""

_METRICS = ("nll", "brier", "spherical", "accuracy", "calibration_error")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap percentile interval.

    Attributes
    ----------
    value : float
        The metric on the data as given (``float(interval)`` is this value).
    low, high : float
        The ends of the percentile interval of the bootstrap replicates.
    confidence : float
        The interval's nominal coverage, such as 0.95.
    resamples, seed : int
        The number of bootstrap replicates and the seed that drew them.
    metric : str
        The metric's name: ``'nll'``, ``'brier'``, ``'spherical'``, ``'accuracy'`` or
        ``'calibration_error'``.
    """

    value: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int
    metric: str

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class LogLossComparison:
    """Mean log loss of model A minus that of model B on the same examples, with an interval.

    A negative ``difference`` means A predicts the labels better.  ``low`` and ``high``
    bound the difference; an interval that excludes 0 is evidence of a real gap.

    Attributes
    ----------
    difference : float
        Mean NLL of A minus mean NLL of B (in the unit of ``base``).
    low, high : float
        The ends of the paired bootstrap's percentile interval of ``difference``.
    nll_a, nll_b : float
        Each model's mean NLL.
    confidence : float
        The interval's nominal coverage, such as 0.95.
    resamples, seed : int
        The number of bootstrap replicates and the seed that drew them.
    """

    difference: float
    low: float
    high: float
    nll_a: float
    nll_b: float
    confidence: float
    resamples: int
    seed: int


def check_resamples(resamples: object) -> int:
    """The checked ``resamples``: an integer in ``[1, MAX_RESAMPLES]``."""
    count = check_integer(resamples, name="resamples", low=1)
    if count > MAX_RESAMPLES:
        raise InputError(
            f"`resamples` must be at most {MAX_RESAMPLES:_} (each replicate recomputes the "
            f"metric); got {resamples!r}"
        )
    return count


def check_resampling(confidence: float, resamples: int, seed: int) -> tuple[float, int, int]:
    """The checked ``confidence`` in (0, 1), ``resamples`` in ``[1, MAX_RESAMPLES]`` and
    ``seed >= 0``."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise InputError(f"`confidence` must be a real number; got {confidence!r}")
    level = float(confidence)
    if not 0.0 < level < 1.0:  # NaN too; one wording for either end (0 was "(0, 1]")
        raise InputError(f"`confidence` must be in (0, 1); got {confidence!r}")
    return (
        level,
        check_resamples(resamples),
        check_integer(seed, name="seed", low=0),  # numpy's SeedSequence needs seed >= 0
    )


def resample_counts(n: int, resamples: int, seed: int) -> Iterator[FloatArray]:
    """Multinomial counts (how often each example is drawn), one array per replicate."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)


def weighted_mean(weights: FloatArray, values: FloatArray) -> float:
    """``sum(w * v) / sum(w)``, where an example drawn 0 times contributes 0 even if ``v = inf``.

    Where a product ``w * v`` or the sum passes the float range while every drawn ``v``
    is finite, the mean itself is finite (at most the largest ``|v|``): it is then taken
    as ``sum((w / sum(w)) * v)``, whose terms and partial sums stay within that bound (a
    loss of 1e308 drawn three times gave a replicate of -inf, so an interval end of -inf).
    """
    drawn = weights > 0
    with np.errstate(over="ignore", invalid="ignore"):  # past 1.8e308: handled below
        products = np.multiply(weights, values, out=np.zeros_like(values), where=drawn)
        total = np.sum(products)
    if not np.isfinite(total) and np.isfinite(values[drawn]).all():
        shares = weights / np.sum(weights)
        products = np.multiply(shares, values, out=np.zeros_like(values), where=drawn)
        return float(np.sum(products))
    return float(total / np.sum(weights))


def mean_of(values: FloatArray) -> float:
    """The mean of ``values``, the bits of ``np.mean``, but finite when every value is:
    :func:`weighted_mean` with every weight 1.  ``np.mean`` of the differences 1e308,
    1e308 and log 2 overflowed to +inf (a paired comparison's difference of +inf beside
    its interval [3.67e307, 1e308]), with NumPy's overflow warning on standard error."""
    return weighted_mean(np.ones(values.shape[0]), values)


def mean_replicates(values: Sequence[FloatArray], *, resamples: int, seed: int) -> list[FloatArray]:
    r"""Bootstrap replicates of the mean of each array in ``values`` (all of length ``n``).

    Replicate :math:`r` of every array is the weighted mean :math:`\sum_i w_{ri} v_i / n`
    with the same multinomial counts :math:`w_r` (:func:`resample_counts` of ``seed``), so
    paired per-example scores stay paired, and one array gives the replicates
    :func:`compare_log_loss` and :func:`bootstrap_interval` draw with the same seed.
    Each replicate is then held within ``[min(v), max(v)]``, where every weighted mean
    lies: the rounded :math:`\sum_i w_{ri} v_i / \sum_i w_{ri}` of 10 equal values
    :math:`\log 2` was 1 ulp below :math:`\log 2`, so the interval of rows whose
    values are all equal was not zero-width (issue 13).
    """
    n = int(values[0].shape[0])
    replicates = [np.empty(resamples) for _ in values]
    for r, weights in enumerate(resample_counts(n, resamples, seed)):
        for out, value in zip(replicates, values, strict=True):
            out[r] = weighted_mean(weights, value)
    for out, value in zip(replicates, values, strict=True):
        low, high = np.min(value), np.max(value)
        if low <= high:  # (not where a value is NaN)
            np.minimum(np.maximum(out, low, out=out), high, out=out)
    return replicates


def percentile_interval(values: FloatArray, confidence: float) -> tuple[float, float]:
    r"""The ``tail`` and ``1 - tail`` empirical quantiles (NumPy's default, linear method).

    Replicates may be ``+inf`` (a drawn example whose label has probability 0) or, in a
    comparison, ``-inf``.  Interpolating as :math:`(1 - t)a + tb` gives the infinite
    end whenever it takes part, where NumPy's :math:`a + t(b - a)` turns
    :math:`\infty - \infty` into NaN.

    Both ends are NaN where a replicate is NaN (a NaN row passed with ``validate=False``
    reaches every replicate that draws it): sorted last, the NaN replicates made the
    upper end NaN and left the lower one a number, ``low=0.0, high=nan`` beside a
    difference of NaN, an interval that bounds nothing.
    """
    if np.isnan(values).any():
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    ordered = np.sort(values)
    return _quantile(ordered, tail), _quantile(ordered, 1.0 - tail)


def _quantile(ordered: FloatArray, level: float) -> float:
    position = level * (ordered.size - 1)
    below = min(int(np.floor(position)), ordered.size - 1)
    above = min(below + 1, ordered.size - 1)
    a, b = float(ordered[below]), float(ordered[above])
    weight = position - below
    if weight == 0 or a == b:
        return a
    return (1.0 - weight) * a + weight * b


def bootstrap_interval(
    metric: str,
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    base: float | None = None,
    validate: bool = True,
    bins: int | None = None,
    binning: str | None = None,
    norm: str | None = None,
    scope: str | None = None,
    debias: bool | None = None,
    closed: str | None = None,
) -> Interval:
    r"""A seeded bootstrap percentile interval for an evaluation metric.

    With :math:`\hat\theta^{*}_1, \dots, \hat\theta^{*}_R` the metric on ``resamples``
    samples of ``n`` rows drawn with replacement, the interval at level :math:`1 - \alpha`
    is

    .. math:: \big[\hat\theta^{*}_{(\alpha/2)},\ \hat\theta^{*}_{(1 - \alpha/2)}\big]

    (empirical quantiles of the replicates).  For ``"calibration_error"`` every replicate
    keeps the full sample's bins: with ``binning="quantile"`` the edges are not
    re-estimated on each resample, so the interval conditions on them and is not that of
    ``calibration_error(..., binning="quantile")`` recomputed on each resample (60 rows,
    3 classes, 10 bins: 0.090 to 0.243 here, 0.108 to 0.282 with the edges re-estimated).

    Coverage (``benchmarks/bench_interval_coverage.py``: 300 or 200 seeded data sets
    whose population values are known, 95 % intervals of 400 resamples).  For the means
    (``"nll"``, ``"brier"``, ``"spherical"``, ``"accuracy"``) the interval covers at
    about the nominal rate unless the rows are few: 95.0 to 95.7 % at 200 rows, 88 to
    92 % at 20 (the percentile method runs short in small samples); rows whose values
    are all equal (one row, or every prediction correct) give a zero-width interval
    whatever ``n``.  The plug-in calibration error's interval falls far short: the
    estimate is biased upward by about :math:`\sqrt{\text{bins}/n}` and bounded below
    by 0, so its interval describes the spread of the estimate, not where the
    population error lies.  For a perfectly calibrated model (population error 0) the
    plug-in L1 and L2 intervals never held 0 (the debiased L2 one 85 % of the time,
    with 10 bins and 500 rows or 100); for
    :math:`P(y = 1 \mid p) = p^{1.5}`, with 500 rows L1 covered 92 %, L2 78 %,
    debiased L2 94 %, and with 100 rows 58 %, 27 % and 90 %.  Use ``norm="l2",
    debias=True`` when the interval should bracket the population error.

    Parameters
    ----------
    metric : {"nll", "brier", "spherical", "accuracy", "calibration_error"}
        The metric: :func:`negative_log_likelihood` (``base`` applies), :func:`brier_score`
        (sum form), :func:`spherical_score`, :func:`accuracy`, or
        :func:`calibration_error` (its options pass through ``calibration_options``).
    probs : array_like, shape (n, classes)
        Predictions in the form named by ``form``.
    labels : array_like of int, shape (n,)
        True classes.
    confidence : float, default 0.95
        Nominal coverage of the interval (see above for the calibration error).
    resamples : int, default 1000
        Number of bootstrap replicates.
    seed : int, default 0
        Seed of the resampling; the same seed gives the same interval, on any number of
        threads.
    form : {"probs", "log_probs", "logits"}, default "probs"
        What ``probs`` holds.
    base : float, optional
        Logarithm base of the NLL (None: nats); for ``metric="nll"`` only.
    validate : bool, default True
        Check the values (ranges, NaN, rows summing to 1 within a dtype-aware
        tolerance). The labels' range is checked in any case (a label outside ``[0,
        classes)`` is an index out of bounds), as are shapes and dtypes.
    bins, binning, norm, scope, debias, closed : optional
        Options of :func:`calibration_error` (its defaults when None), for
        ``metric="calibration_error"`` only.

    Returns
    -------
    Interval
        ``value`` (the metric on the full sample), ``low``, ``high``.  For ``"nll"``,
        a true label of probability 0 makes the value ``+inf``, and the bounds too where
        the replicates that draw that example reach them; never NaN.

    References
    ----------
    Efron and Tibshirani (1993), An Introduction to the Bootstrap, ch. 13.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(1)
    >>> probs = rng.dirichlet(np.ones(4), size=500)
    >>> labels = np.array([rng.choice(4, p=row) for row in probs])
    >>> ci = crossent.bootstrap_interval("nll", probs, labels, resamples=200)
    >>> bool(ci.low < ci.value < ci.high)
    True
    """
    check_choice(metric, _METRICS, name="metric")
    calibration_options: dict[str, Any] = {
        name: value
        for name, value in {
            "bins": bins,
            "binning": binning,
            "norm": norm,
            "scope": scope,
            "debias": debias,
            "closed": closed,
        }.items()
        if value is not None
    }
    if metric != "calibration_error" and calibration_options:
        raise InputError(
            f"options {sorted(calibration_options)} apply to metric='calibration_error' only"
        )
    if metric != "nll" and base is not None:
        raise InputError(
            f"`base` applies to metric='nll' only (the other metrics have no logarithm); "
            f"got base={base!r} with metric={metric!r}"
        )
    # the checked values: a NumPy seed is recorded as an int (JSON-serialisable)
    confidence, resamples, seed = check_resampling(confidence, resamples, seed)
    log_base = check_base(base)
    predictions = as_predictions(probs, labels, form=form, validate=validate)
    require_examples(predictions, purpose="a bootstrap interval")
    if metric == "calibration_error":
        spec = check_spec(
            bins=calibration_options.pop("bins", 15),
            binning=calibration_options.pop("binning", "uniform"),
            norm=calibration_options.pop("norm", "l1"),
            scope=calibration_options.pop("scope", "top-label"),
            debias=calibration_options.pop("debias", False),
            closed=calibration_options.pop("closed", "left"),
        )
        if spec.scope == "class-wise":  # as calibration_error: bins of all classes bounded
            check_class_bins(spec.bins, predictions.classes, binning="uniform")
            # (its (n, classes) entries read once, there: they were read here as well)
            return classwise_calibration_interval(
                predictions, spec, confidence=confidence, resamples=resamples, seed=seed
            )[0]
        conf, hits = scope_arrays(predictions, spec.scope)
        # the value is calibration_error's number, as the other metrics' are their
        # functions': its bins summed as it sums them (block_bounds)
        return binned_calibration_interval(
            conf,
            hits,
            spec,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
            bounds=block_bounds(predictions, spec),
        )
    else:
        summaries = summarize(predictions)
        values = {
            "nll": summaries.surprisal,
            "brier": summaries.brier,
            "spherical": summaries.spherical,
            "accuracy": summaries.correct,
        }[metric]
        # the value is the scoring function's number (score_means, their one home):
        # NumPy's pairwise sum of the rows was 1 ulp off it in 15 of 60 samples
        field = {"nll": "surprisal", "accuracy": "correct"}.get(metric, metric)
        value = score_means(predictions, (field,), top=metric == "accuracy")[field]
        halves = halved_surprisal(predictions, values) if metric == "nll" else None
        if halves is None:
            (replicates,) = mean_replicates([values], resamples=resamples, seed=seed)
        else:  # the means of the halves, doubled (exact): finite wherever the mean is
            (replicates,) = mean_replicates([halves], resamples=resamples, seed=seed)
            with np.errstate(over="ignore"):  # a resample's mean past float64: +inf
                replicates *= 2.0
        if log_base is not None:  # the means in nats, then in the base's unit, as
            # negative_log_likelihood gives them (each row divided first: 1 ulp off)
            value, replicates = value / log_base, replicates / log_base
    low, high = percentile_interval(replicates, confidence)
    return Interval(value, low, high, confidence, resamples, seed, metric)


def classwise_calibration_interval(
    predictions: Predictions,
    spec: CalibrationSpec,
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[Interval, CalibrationError]:
    """``bootstrap_interval("calibration_error", ...)`` of the class-wise scope and
    :func:`calibration_error`'s result, from one binning of the ``(n, classes)``
    entries: the interval's value is the result's, bit for bit (the report's
    ``summary.calibration`` and ``to_dict()["ece"]``, one number; issue 13)."""
    error, conf, hits, index = binned_error(predictions, spec)
    replicates = classwise_replicates(
        conf, hits, index, spec, resample_counts(predictions.n, resamples, seed)
    )
    low, high = percentile_interval(replicates, confidence)
    value = error.value
    return Interval(value, low, high, confidence, resamples, seed, "calibration_error"), error


def classwise_replicates(
    conf: FloatArray,
    hits: FloatArray,
    index: Any,
    spec: CalibrationSpec,
    draws: Iterator[FloatArray],
) -> FloatArray:
    r"""The class-wise calibration error of each resample (``draws``: each row's count),
    from the occupied cells only: the bits of
    ``error_from_statistics(statistics_for(conf, hits, index, spec, w), spec)``.

    That walked all ``classes x bins`` cells on every replicate (three ``bincount`` of
    ``bins`` cells a class, then the values over every cell), most of them empty when
    the bins are many: a cell empty in the sample is empty in every resample.  Here
    class :math:`k`'s occupied cells are packed, in bin order, into row :math:`k` of a
    ``(classes, width)`` array (``width``: the most cells a class occupies; the rest of
    the row holds zero counts, empty bins as before), and each resample's sums are three
    ``bincount`` over the ``(n, classes)`` entries in row-major order.  The same floats:

    * every cell's sums add the same products :math:`w_i c_{ik}` (and :math:`w_i`,
      :math:`w_i h_{ik}`) in the same order (row :math:`i` ascending);
    * each class's nonempty cells are the same array in the same order, so
      :func:`squared_or_values` adds, maximises and averages the same numbers (a row's
      total count is a sum of integers, exact in any order below :math:`2^{53}`).
    """
    classes = conf.shape[1]
    bins = spec.bins
    cell = (index + np.arange(classes) * bins).reshape(-1)  # (n, classes) row-major
    occupied = np.zeros(classes * bins, dtype=bool)
    occupied[cell] = True
    grid = occupied.reshape(classes, bins)
    width = int(grid.sum(axis=1).max())
    slots = np.cumsum(grid, axis=1) - 1 + np.arange(classes)[:, None] * width
    position = slots.reshape(-1)[cell]
    size, shape = classes * width, (classes, width)
    # each cell's constant confidence (a perfectly calibrated cell's: its resamples'
    # mean exactly that, as the sample's; _replicate_error)
    constant = constant_values(position, conf.reshape(-1), size).reshape(shape)
    values = []
    for w in draws:
        drawn = w[:, None]
        count = np.bincount(position, weights=np.repeat(w, classes), minlength=size)
        sums = np.bincount(position, weights=(drawn * conf).reshape(-1), minlength=size)
        hit = np.bincount(position, weights=(drawn * hits).reshape(-1), minlength=size)
        stats = BinStatistics(count.reshape(shape), sums.reshape(shape), hit.reshape(shape))
        values.append(_replicate_error(stats, spec, constant))
    return np.array(values)


def _replicate_error(stats: BinStatistics, spec: CalibrationSpec, constant: FloatArray) -> float:
    """The error of a resample's bins (``constant``: each bin's constant confidence in
    the sample, NaN where not constant), a bin whose gap the rounding of its sum could
    decide with its exact mean where the sample's confidences there were one number
    (``exact_means`` of :func:`._binning.with_constant_errors`: a perfectly calibrated
    bin's resample gave a gap of 1e-16, not 0).  Elsewhere the sums' bits, as before."""
    if np.isnan(constant).all():
        return error_from_statistics(stats, spec)
    return error_from_statistics(
        stats, spec, exact_means(with_constant_errors(stats, constant), None, None)
    )


def binned_calibration_interval(
    conf: FloatArray,
    hits: FloatArray,
    spec: CalibrationSpec,
    *,
    confidence: float,
    resamples: int,
    seed: int,
    bounds: Sequence[int] | None = None,
) -> Interval:
    """``bootstrap_interval("calibration_error", ...)`` of one curve (top-label or
    positive-class): its per-row confidences ``conf`` and hits, binned by ``spec`` with
    the full sample's edges, and :func:`binned_replicates` from ``seed``.

    The value is :func:`calibration_error`'s number, bit for bit, where ``bounds`` are
    its predictions' :func:`block_bounds` (``conf`` and ``hits`` those of its scope): the
    bins' sums are added block by block as it adds them (:func:`error_of_rows`; None:
    the rows' bins summed at once, as it sums those of the positive class and of
    equal-mass bins).  The rows' bins summed at once were up to 1e-13 relative off its
    number past 200 000 rows (300 000 x 5 logits: 0.44364399136261606 against
    0.44364399136261434), and a second pass over the data made them agree.

    ``crossent.report`` calls it with the values its first pass kept, so its interval is
    this one, draw for draw, and its value the function's, without a second pass over
    the rows.
    """
    # the checked values: a NumPy seed is recorded as an int (JSON-serialisable)
    confidence, resamples, seed = check_resampling(confidence, resamples, seed)
    value, _, index = error_of_rows(conf, hits, edges_for(conf, spec), spec, bounds)
    replicates = binned_replicates(conf, hits, index, spec, resamples, seed)
    low, high = percentile_interval(replicates, confidence)
    return Interval(value, low, high, confidence, resamples, seed, "calibration_error")


def binned_replicates(
    conf: FloatArray,
    hits: FloatArray,
    index: Any,
    spec: CalibrationSpec,
    resamples: int,
    seed: int,
) -> FloatArray:
    r"""Calibration-error replicates, drawing each resample block by block.

    Drawing ``n`` rows uniformly with replacement is the same, in distribution, as
    cutting the rows into groups, drawing how many of the ``n`` land in each group
    (multinomial with the groups' shares of the rows) and then that many rows
    uniformly, with replacement, from each group.  The groups here are the rows of each
    bin (sorted by bin, stably) cut into blocks of :data:`_BLOCK` = 256 rows, and what
    is left of the bin (its remainder, fewer than 256 rows; a remainder without rows is
    no group): :class:`_BlockPlan`.  Replicate :math:`r` draws from its chunk's stream
    (:func:`_draw`):

    1. every group's count, ``rng.multinomial(n, group_sizes / n)``, the blocks first
       (bin by bin), then the remainders;
    2. the offsets of the rows drawn from the blocks, block after block, as bytes: the
       bytes, least significant first, of ``rng.bit_generator.random_raw(ceil(drawn /
       8))`` (every byte value is an offset, so they are exactly uniform);
    3. the offsets of the rows drawn from the remainders, remainder after remainder:
       ``rng.integers(0, np.repeat(remainder_sizes, remainder_counts))``;

    and each bin's statistics are the count, ``conf[rows].sum()`` and
    ``hits[rows].sum()`` of its drawn rows ``rows``: its blocks' (the block's first row
    plus each offset), then its remainder's (:func:`_drawn_rows`).  A replicate takes
    a byte of random bits a row where ``rng.integers`` took 8, and its reads stay
    inside blocks of 2 KiB (:func:`_summer`) where they spanned each bin's rows.
    """
    n = conf.shape[0]
    order = np.argsort(index, kind="stable")
    # Only the occupied bins are drawn from (a bin empty in the sample is empty in every
    # replicate): the plan's groups and so the random streams are those of every bin,
    # and each replicate's sums are scattered back to all spec.bins bins for
    # error_from_statistics (the same bits). The plan of every bin looped over each bin
    # in Python a replicate: 4 rows in 2**20 bins took about 3 s a replicate.
    sizes = np.bincount(index, minlength=spec.bins)
    occupied = np.flatnonzero(sizes)
    constant = constant_values(index, conf, spec.bins)  # (_replicate_error)
    plan = _BlockPlan.of(sizes[occupied])
    sums = _summer(conf[order], hits[order], plan, draws=n * resamples)
    # Replicates in chunks of _CHUNK, each chunk with its own stream spawned from the
    # seed: the same seed gives the same replicates on any number of threads.
    counts = [min(_CHUNK, resamples - start) for start in range(0, resamples, _CHUNK)]
    # A buffer of a batch's offsets for each chunk running at once, allocated here, in
    # the caller's thread, and reused: a batch's 8 draws, joined into a ninth array, held
    # twice 16 MB a thread at 2 * 10^6 rows, allocated anew each batch in the threads'
    # own heaps (kept there, where the caller's later arrays cannot reuse them: the
    # report's peak memory 25 MiB higher)
    size = min(_BATCH, resamples) * n  # (a draw's block offsets: at most n)
    spare = [np.empty(size, dtype=np.uint8) for _ in range(min(workers(), len(counts)))]

    def chunk(task: tuple[np.random.SeedSequence, int]) -> list[float]:
        rng, values = np.random.default_rng(task[0]), []
        buffer = spare.pop() if spare else np.empty(size, dtype=np.uint8)  # (pop: atomic)
        for start in range(0, task[1], _BATCH):
            # the sums draw nothing: a batch's draws are those of one replicate after
            # another, their offsets end to end in the buffer
            draws, at = [], 0
            for _ in range(min(_BATCH, task[1] - start)):
                draws.append(_draw(rng, plan, buffer[at:]))
                at += draws[-1].offsets.shape[0]
            for drawn, compact in zip(draws, sums(draws, buffer[:at]), strict=True):
                counts, conf_sums, hit_sums = np.zeros((3, spec.bins))
                counts[occupied] = drawn.bin_counts()
                conf_sums[occupied], hit_sums[occupied] = compact
                stats = BinStatistics(counts, conf_sums, hit_sums)
                values.append(_replicate_error(stats, spec, constant))
        spare.append(buffer)
        return values

    streams = np.random.SeedSequence(seed).spawn(len(counts))
    parts = ordered_map(chunk, list(zip(streams, counts, strict=True)))
    return np.array([value for part in parts for value in part])


_BLOCK = 256
"""Rows in a block of :func:`binned_replicates` (the offsets are bytes; a block's
confidences are 2 KiB, in the first-level cache)."""


@dataclass(frozen=True)
class _BlockPlan:
    """The groups of :func:`binned_replicates`: each bin's rows (the rows sorted by bin)
    cut into whole blocks of :data:`_BLOCK` rows, then its remainder.

    Attributes
    ----------
    n : int
        The number of rows.
    block_starts : ndarray of int64, shape (blocks,)
        The first (sorted) row of each block, bin by bin.
    first_block : ndarray of int64, shape (bins + 1,)
        Bin ``b``'s blocks are ``first_block[b]`` to ``first_block[b + 1]``.
    rest_starts, rest_sizes : ndarray of int64, shape (bins,)
        The first row and the number of rows of each bin's remainder.
    rest_bins : ndarray of int64
        The bins whose remainder has rows (the other remainders are no group).
    shares : ndarray of float64
        Each group's share of the rows: the blocks', then the remainders' of
        ``rest_bins``.
    """

    n: int
    block_starts: Any
    first_block: Any
    rest_starts: Any
    rest_sizes: Any
    rest_bins: Any
    shares: FloatArray

    @property
    def blocks(self) -> int:
        """The number of whole blocks (of every bin)."""
        return int(self.block_starts.shape[0])

    @property
    def bins(self) -> int:
        """The number of bins."""
        return int(self.rest_sizes.shape[0])

    @classmethod
    def of(cls, sizes: Any) -> _BlockPlan:
        """The plan of bins of ``sizes`` rows each (the rows sorted by bin)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        whole = sizes // _BLOCK
        first_block = np.concatenate([[0], np.cumsum(whole)]).astype(np.int64)
        within = np.arange(int(first_block[-1]), dtype=np.int64) - np.repeat(
            first_block[:-1], whole
        )
        block_starts = np.repeat(starts, whole) + _BLOCK * within
        rest_sizes = sizes - _BLOCK * whole
        rest_bins = np.flatnonzero(rest_sizes)
        group_sizes = np.concatenate(
            [np.full(block_starts.shape[0], _BLOCK), rest_sizes[rest_bins]]
        )
        n = int(sizes.sum())
        return cls(n, block_starts, first_block, starts + _BLOCK * whole, rest_sizes, rest_bins,
                   group_sizes / n)  # fmt: skip


@dataclass(frozen=True)
class _Draw:
    """One replicate's draws (:func:`_draw`) of a :class:`_BlockPlan`.

    Attributes
    ----------
    block_counts : ndarray of int64, shape (blocks,)
        The rows drawn from each block.
    offsets : ndarray of uint8, shape (block_counts.sum(),)
        Their offsets in their blocks, block after block.
    rest_counts : ndarray of int64, shape (bins,)
        The rows drawn from each bin's remainder.
    rest_offsets : ndarray of int64, shape (rest_counts.sum(),)
        Their offsets in their remainders, bin after bin.
    """

    plan: _BlockPlan
    block_counts: Any
    offsets: Any
    rest_counts: Any
    rest_offsets: Any

    def bin_counts(self) -> Any:
        """The rows drawn from each bin."""
        through = np.concatenate([[0], np.cumsum(self.block_counts)])[self.plan.first_block]
        return np.diff(through) + self.rest_counts


def _draw(rng: np.random.Generator, plan: _BlockPlan, into: Any = None) -> _Draw:
    """A replicate's draws, in the order of :func:`binned_replicates`' steps 1 to 3; the
    block offsets written to the start of ``into`` (a ``uint8`` buffer of at least
    ``plan.n``, reused: ``offsets`` is then a view of it) where given."""
    counts = rng.multinomial(plan.n, plan.shares)
    block_counts = counts[: plan.blocks]
    rest_counts = np.zeros(plan.bins, dtype=np.int64)
    rest_counts[plan.rest_bins] = counts[plan.blocks :]
    offsets = _random_bytes(rng, int(block_counts.sum()))
    if into is not None:
        into[: offsets.shape[0]] = offsets
        offsets = into[: offsets.shape[0]]
    rest_offsets = rng.integers(0, np.repeat(plan.rest_sizes, rest_counts))
    return _Draw(plan, block_counts, offsets, rest_counts, rest_offsets)


def _random_bytes(rng: np.random.Generator, count: int) -> Any:
    """``count`` uniform bytes: those of ``ceil(count / 8)`` 64-bit outputs of ``rng``'s
    bit generator (``random_raw``; PCG64's every bit is uniform), least significant
    first on any machine.  0.28 ms for 10^6 where ``rng.integers(0, 256, size=10**6,
    dtype=np.uint8)`` takes 0.74 ms."""
    words = rng.bit_generator.random_raw(-(-count // 8)).astype("<u8", copy=False)
    return words.view(np.uint8)[:count]


def _drawn_rows(drawn: _Draw) -> tuple[Any, Any]:
    """The drawn rows (sorted rows' indices) and where each bin's begin: bin ``b``'s are
    ``rows[bounds[b]:bounds[b + 1]]``, its blocks' (block after block) then its
    remainder's."""
    plan = drawn.plan
    block_rows = np.repeat(plan.block_starts, drawn.block_counts)
    block_rows += drawn.offsets
    rest_rows = np.repeat(plan.rest_starts, drawn.rest_counts)
    rest_rows += drawn.rest_offsets
    through = np.concatenate([[0], np.cumsum(drawn.block_counts)])[plan.first_block]
    rest_through = np.concatenate([[0], np.cumsum(drawn.rest_counts)])
    parts = []
    for b in range(plan.bins):
        parts += [
            block_rows[through[b] : through[b + 1]],
            rest_rows[rest_through[b] : rest_through[b + 1]],
        ]
    bounds = np.concatenate([[0], np.cumsum(drawn.bin_counts())])
    return np.concatenate(parts), bounds


_Sums = Callable[[list[_Draw], Any], list[tuple[FloatArray, FloatArray]]]
"""``(draws, joined) -> [(conf_sums, hit_sums), ...]``, each of shape ``(bins,)``, a pair
a draw; ``joined``: the draws' block offsets end to end (one array, as
:func:`binned_replicates` draws them), or None."""

_BATCH = 8
"""Replicates whose sums the compiled kernel takes in one sweep over the rows
(``_bootstrap_numba.binned_sums``: each block read once for all of them)."""


def _summer(conf: FloatArray, hits: FloatArray, plan: _BlockPlan, *, draws: int) -> _Sums:
    """Each bin's sums of each replicate's drawn rows (``conf`` and ``hits`` sorted by
    bin), with the bits of :func:`_numpy_sums`: by the compiled kernel
    (``_bootstrap_numba.binned_sums``: the rows swept once for a batch of replicates,
    each drawn confidence copied from its block, the hits counted, the copies summed in
    NumPy's order; 10^6 rows: about 1.2 ms a replicate where :func:`_numpy_sums` takes
    5; 2 * 10^6 rows, batches of :data:`_BATCH`: 2.6 ms where one replicate at a time
    took 3.7) where Numba is installed, every hit is 0 or 1, there
    are fewer than 2^32 rows (the kernel counts a group's hits in 32 bits), and Numba is
    imported already or the bootstrap ``draws`` (rows times resamples) at least
    :data:`_KERNEL_DRAWS`; by :func:`_numpy_sums` otherwise."""
    values = np.ascontiguousarray(conf, dtype=np.float64)  # float32 confidences summed in float64
    small = hits.astype(np.uint8)
    binary = bool(np.array_equal(small, hits))
    worth = "numba" in sys.modules or draws >= _KERNEL_DRAWS
    if not (worth and binary and plan.n < 2**32 and _row_kernels.available()):
        return functools.partial(
            _numpy_sums_each, values, small if binary else hits.astype(np.float64)
        )
    kernel = _sums_kernel()
    empty, none = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.int64)
    # compiled (or loaded from Numba's cache) here, before the threads: two threads
    # compiling at once crash Numba 0.68
    kernel(values, small, empty, none, empty.astype(np.uint8), empty, np.zeros(1, np.int64),
           empty, none, empty, empty, none.astype(np.float64), none.astype(np.float64))  # fmt: skip

    def compiled(draws: list[_Draw], joined: Any = None) -> list[tuple[FloatArray, FloatArray]]:
        conf_sums, hit_sums = np.empty((len(draws), plan.bins)), np.empty((len(draws), plan.bins))
        offsets, starts = _joined([drawn.offsets for drawn in draws], joined)
        kernel(
            values,
            small,
            plan.block_starts,
            np.stack([drawn.block_counts for drawn in draws]),
            offsets,
            starts,
            plan.first_block,
            plan.rest_starts,
            np.stack([drawn.rest_counts for drawn in draws]),
            *_joined([drawn.rest_offsets for drawn in draws]),
            conf_sums,
            hit_sums,
        )
        return list(zip(conf_sums, hit_sums, strict=True))

    return compiled


def _joined(parts: list[Any], joined: Any = None) -> tuple[Any, Any]:
    """``parts`` end to end (``joined`` where given: they are already) and where each
    begins."""
    starts = np.cumsum([0] + [part.shape[0] for part in parts[:-1]]).astype(np.int64)
    return np.concatenate(parts) if joined is None else joined, starts


def _numpy_sums_each(
    conf: FloatArray, hits: Any, draws: list[_Draw], joined: Any = None
) -> list[tuple[FloatArray, FloatArray]]:
    """:func:`_numpy_sums` of each draw (``joined``: not needed)."""
    return [_numpy_sums(conf, hits, drawn) for drawn in draws]


def _numpy_sums(conf: FloatArray, hits: Any, drawn: _Draw) -> tuple[FloatArray, FloatArray]:
    """Each bin's ``conf[rows].sum()`` and ``hits[rows].sum()``, ``rows`` its drawn rows
    (:func:`_drawn_rows`).  ``hits`` of 0 and 1 come as ``uint8``: their sum is their
    count."""
    rows, bounds = _drawn_rows(drawn)
    drawn_conf, drawn_hits = conf[rows], hits[rows]
    conf_sums, hit_sums = np.zeros(drawn.plan.bins), np.zeros(drawn.plan.bins)
    for b, (start, stop) in enumerate(itertools.pairwise(bounds.tolist())):
        conf_sums[b] = drawn_conf[start:stop].sum()
        if hits.dtype == np.uint8:
            hit_sums[b] = np.count_nonzero(drawn_hits[start:stop])
        else:
            hit_sums[b] = drawn_hits[start:stop].sum()
    return conf_sums, hit_sums


_KERNEL_DRAWS = 500_000_000
"""Bootstrap draws from which the compiled sums pay for importing Numba (about 0.6 s
of CPU and 100 MB; it saves some 2.5 ns a draw)."""


@functools.cache
def _sums_kernel() -> Callable[..., None]:
    """The compiled sums (imports Numba, once)."""
    from ._bootstrap_numba import binned_sums

    return binned_sums


def compare_log_loss(
    probs_a: Any,
    probs_b: Any,
    labels: Any,
    /,
    *,
    form_a: str = "probs",
    form_b: str = "probs",
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    base: float | None = None,
    validate: bool = True,
) -> LogLossComparison:
    r"""Paired comparison of two models' mean log loss on the same labelled examples.

    .. math:: \Delta = \frac1n \sum_i \big(-\log a_{i,y_i}\big) - \big(-\log b_{i,y_i}\big)

    with a bootstrap percentile interval that resamples examples, keeping each example's
    pair of losses together (so the shared difficulty of an example cancels).  Its 95 %
    interval covered the true difference 95 % of the time at 200 rows and 89 % at 20
    (``benchmarks/bench_interval_coverage.py``; resampling each model's rows on its own
    stream instead would have been 2.5 times as wide there).

    Parameters
    ----------
    probs_a, probs_b : array_like, shape (n, classes) or (n,)
        The two models' predictions, in the forms ``form_a`` and ``form_b``.  A 1-D
        array is class 1's probability (or log-odds) in a binary problem, the same
        model as its two columns ``[1 - p, p]`` (or ``[0, z]``): the same numbers, and
        either shape may face the other.
    labels : array_like of int, shape (n,)
        True classes.
    confidence, resamples, seed, base, validate
        As in :func:`bootstrap_interval`.

    Returns
    -------
    LogLossComparison
        ``difference`` (A minus B), ``low``, ``high``, and each model's NLL.  When one
        model gives some true label probability 0 its NLL is ``+inf``, and so are the
        difference and the bounds of the replicates that draw that example (``-inf`` for
        model B).

    Raises
    ------
    InputError
        Both models have an infinite NLL: their difference is undefined; or the models
        predict different numbers of classes.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(400, 3)) * 3
    >>> labels = logits.argmax(axis=1)
    >>> result = crossent.compare_log_loss(logits, logits / 3, labels,
    ...                                    form_a="logits", form_b="logits", resamples=200)
    >>> bool(result.high < 0)   # the sharper model is better on these labels
    True
    """
    # the checked values: a NumPy seed is recorded as an int (JSON-serialisable)
    confidence, resamples, seed = check_resampling(confidence, resamples, seed)
    log_base = check_base(base) or 1.0
    shapes = np.shape(probs_a), np.shape(probs_b)
    # a 1-D P(y = 1) is the 2 classes of its (n, 2) twin (other shapes: as_predictions)
    classes = [{1: 2, 2: shape[-1]}.get(len(shape)) for shape in shapes]
    # rows too: with labels of probs_a's length, as_predictions blamed `labels` for
    # probs_b's missing rows ("`labels` must have the batch shape of `probs_b` (10,)")
    if None not in classes and (classes[0] != classes[1] or shapes[0][0] != shapes[1][0]):
        raise InputError(
            f"`probs_a` and `probs_b` must have the same shape (n, classes), a 1-D array "
            f"being (n, 2); got {shapes[0]} and {shapes[1]}"
        )
    check_same_rows(probs_a, probs_b, names=("probs_a", "probs_b"))
    a = as_predictions(probs_a, labels, form=form_a, name="probs_a", validate=validate)
    b = as_predictions(probs_b, labels, form=form_b, name="probs_b", validate=validate)
    require_examples(a, purpose="a comparison")
    loss_a, loss_b = summarize(a).surprisal, summarize(b).surprisal
    # a loss past float64 (logits more than 1.8e308 apart), as its half: the halves'
    # differences, their means doubled (exact), finite wherever the mean is
    halves = [halved_surprisal(x, loss) for x, loss in ((a, loss_a), (b, loss_b))]
    scale = 1.0
    if halves[0] is not None or halves[1] is not None:
        loss_a, loss_b = (
            loss * 0.5 if half is None else half
            for half, loss in zip(halves, (loss_a, loss_b), strict=True)
        )
        scale = 2.0
    _check_difference_defined(loss_a, loss_b)
    difference = loss_a - loss_b
    (replicates,) = mean_replicates([difference], resamples=resamples, seed=seed)
    with np.errstate(over="ignore"):  # a resample's mean past float64: +-inf
        replicates *= scale
    # in nats, then in the base's unit: nll_a and nll_b are negative_log_likelihood's
    # numbers (each row divided by log(base) first put them 1 ulp off)
    low, high = percentile_interval(replicates / log_base, confidence)
    # nll_a and nll_b: negative_log_likelihood's numbers (score_means, their one home;
    # NumPy's pairwise sum was 1 ulp off them in 15 of 60 samples)
    nll_a, nll_b = (score_means(x, ("surprisal",))["surprisal"] / log_base for x in (a, b))
    difference_mean = mean_of(difference) * scale / log_base
    return LogLossComparison(difference_mean, low, high, nll_a, nll_b, confidence, resamples, seed)


def halved_surprisal(predictions: Predictions, surprisal: FloatArray) -> FloatArray | None:
    """Each row's surprisal halved where a row's passes float64 from finite logits
    (``[1e308, -1e308]``, label 1: 2e308, +inf in ``surprisal``), its half by
    :func:`._temperature.half_nll_rows`; None where no row's does (every number as
    before).  The resamples' means were +inf there (``bootstrap_interval("nll")``'s
    ends, ``compare_log_loss``'s difference) where the mean is 1e308."""
    if predictions.form != "logits" or predictions.binary is not None:
        return None  # (a log-probability's surprisal, and a 1-D logit's, fit float64)
    far = np.flatnonzero(surprisal == math.inf)
    if far.size == 0:
        return None
    rows = predictions.subset(far)
    halves = surprisal * 0.5
    halves[far] = half_nll_rows(rows.values[rows.selected], rows.labels, "logits")
    return halves


def infinite_rows(loss_a: FloatArray, loss_b: FloatArray) -> tuple[int, int] | None:
    """The first row of infinite loss of each model when both have one (their mean
    losses are then both ``+inf`` and the mean difference undefined), else None."""
    infinite_a, infinite_b = np.isinf(loss_a), np.isinf(loss_b)
    if infinite_a.any() and infinite_b.any():
        return int(np.argmax(infinite_a)), int(np.argmax(infinite_b))
    return None


def _check_difference_defined(loss_a: FloatArray, loss_b: FloatArray) -> None:
    """Refuse two infinite mean log losses, whose difference is undefined."""
    rows = infinite_rows(loss_a, loss_b)
    if rows is not None:
        row_a, row_b = rows
        raise InputError(
            f"both models give a true label probability 0 (`probs_a` at row {row_a}, "
            f"`probs_b` at row {row_b}), so both mean log losses are +inf and their "
            "difference is undefined"
        )
