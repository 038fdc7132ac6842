r"""Bins of confidence and the per-bin sufficient statistics of calibration error.

A calibration-error estimate needs, per bin :math:`b`, only the count :math:`n_b`, the sum
of confidences :math:`\sum c_i` and the number of hits :math:`\sum h_i` (a hit is a correct
top-label prediction, or the event "the label is this class").  Those three sums add
across batches, which is what makes the streaming state exact.

Bin membership
    ``closed="left"`` gives ``numpy.histogram``'s bins :math:`[e_b, e_{b+1})` with the last
    bin closed, so a confidence of exactly 1 lands in the last bin and 0 in the first
    (Guo et al. 2017, netcal, torchmetrics' documented definition).  ``closed="right"``
    gives scikit-learn's ``calibration_curve`` bins :math:`(e_b, e_{b+1}]` with the first
    bin closed.

Confidences on an edge
    Equal-width edges are the float64 numbers of ``numpy.linspace(0, 1, bins + 1)``
    (:math:`e_j = j \cdot \mathrm{fl}(1/\text{bins})`, rounded), and every path (the
    one-shot functions, the streaming state, the report, the diagram) compares the
    confidence, widened exactly to float64, with them: ``numpy.histogram``'s bins,
    number for number.  A float64 confidence within an ulp of an edge is placed by
    that rounded edge, not by :math:`j / \text{bins}`: with 10 bins the edge
    :math:`e_3` is 0.30000000000000004, so a float64 0.3 is in bin 2 (as in
    ``numpy.histogram``), and a float32 0.3 (0.30000001192...) in bin 3; float32 and
    float64 0.1 are both in bin 1 (:math:`e_1` is 0.1 itself), float32 and float64 0.7
    both in bin 6 (0.69999999 and 0.69999999999999996 are below :math:`e_7 =`
    0.70000000000000007).  No float32 number lies between :math:`j/\text{bins}` and
    its rounded edge unless it is that fraction exactly, so a float32 confidence lands
    as its exact value says wherever the edges that are binary fractions are formed
    exactly: every bin count up to 97.  From 98 bins some are an ulp off (with 98 bins
    :math:`e_{49}` is 0.49999999999999994, not 0.5), and a confidence exactly at such
    an edge is placed by the rounded edge, as ``numpy.histogram`` places it (0.5 with
    98 bins and ``closed="right"`` is in bin 49, where :math:`(e_{48}, 1/2]` would
    hold it).

Equal-mass bins
    One-shot: edges at the empirical quantiles of the confidences
    (``numpy.quantile``, linear interpolation), as scikit-learn's ``strategy="quantile"``.
    Streaming: the state keeps the three sums on a fine grid of
    :data:`FINE_CELLS` cells uniform in :math:`\operatorname{logit}(c)` over
    :math:`[-16, 16]` (plus one cell below and one above), and at ``compute`` joins
    consecutive cells into ``bins`` groups, each boundary at the cell edge nearest the
    exact quantile.  Masses are then equal to within one cell's count, and the cells are
    fine where modern networks put their mass: near :math:`c = 0.99`, one cell spans
    :math:`\Delta c \approx 7.7 \times 10^{-5}`.  The cells are :math:`[a, b)` or, with
    ``closed="right"``, :math:`(a, b]` of their float64 edges (:func:`fine_edges`), as
    :func:`assign_bins` places a confidence among them (:func:`fine_cell`: a confidence
    of 0.5, on the edge at logit 0, is in the cell above or below it; so is one on any
    other edge).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._checks import check_choice, check_integer
from .._numerics import _two_product
from ..errors import InputError
from ._inputs import FloatArray, IntArray

__all__ = [
    "FINE_CELLS",
    "MAX_BINS",
    "MAX_CLASS_BINS",
    "BinStatistics",
    "Binning",
    "ClassBinsPart",
    "Closed",
    "Norm",
    "assign_bins",
    "assign_uniform_bins",
    "bin_statistics",
    "calibration_value",
    "calibration_values",
    "check_bins",
    "check_class_bins",
    "compensated_means",
    "constant_values",
    "doubtful_bins",
    "fine_cell",
    "fine_edges",
    "group_fine_cells",
    "quantile_edges",
    "refined_means",
    "squared_or_value",
    "squared_or_values",
    "two_sum_error",
    "uniform_edges",
    "with_constant_errors",
]

Binning = Literal["uniform", "quantile"]
Closed = Literal["left", "right"]
Norm = Literal["l1", "l2", "max"]

FINE_CELLS = 4096
_LOGIT_LIMIT = 16.0


MAX_BINS = 2**20
r"""The most calibration bins any function or state takes (1,048,576).

Each bin's hit rate is an average over the examples in it, so a calibration-error
estimate means something only while bins hold several examples each: :math:`2^{20}` bins
already need some :math:`10^7` examples for ten per bin, far past the 10 to 100 bins of
the literature.  A streaming :class:`~crossent.EvaluationState` cannot know how many
examples will come, so the bound cannot be the number of rows; it is instead set where
the arrays stay small: three float64 sums per bin, 24 MiB per curve (top-label) at
:math:`2^{20}` bins, where :math:`10^{12}` bins asked for terabytes and ended in a
``MemoryError`` (issue 13).
"""


MAX_CLASS_BINS = 2**24
"""The most bins of all classes together in the class-wise scope (16,777,216): three
float64 sums each, 384 MiB, where 1000 classes of :data:`MAX_BINS` bins asked for 24 GiB."""


def check_class_bins(cells: int, classes: int, *, binning: str) -> None:
    """Refuse class-wise bins (``cells`` for each of ``classes`` classes) past
    :data:`MAX_CLASS_BINS` in all, naming what to change."""
    if cells * classes <= MAX_CLASS_BINS:
        return
    fix = (
        "use binning='uniform' with fewer bins, or the top-label scope"
        if binning == "quantile"
        else "use fewer `bins`, or the top-label scope"
    )
    kept = "fine cells (equal-mass bins)" if binning == "quantile" else "bins"
    raise InputError(
        f"the class-wise scope keeps {cells} {kept} for each of {classes} classes, "
        f"{cells * classes} in all, more than {MAX_CLASS_BINS} (2**24); {fix}"
    )


def check_bins(bins: object, binning: str, closed: str, norm: str) -> int:
    """Validate the binning options; returns the number of bins (1 to :data:`MAX_BINS`)."""
    count = check_integer(bins, name="bins", low=1)
    if count > MAX_BINS:
        raise InputError(
            f"`bins` must be at most {MAX_BINS} (2**20): each bin needs several examples to "
            f"estimate its hit rate; got {bins!r}"
        )
    check_choice(binning, ("uniform", "quantile"), name="binning")
    check_choice(closed, ("left", "right"), name="closed")
    check_choice(norm, ("l1", "l2", "max"), name="norm")
    return count


def uniform_edges(bins: int) -> FloatArray:
    """``bins + 1`` equally spaced edges on [0, 1] (``numpy.linspace``)."""
    return np.linspace(0.0, 1.0, bins + 1)


def quantile_edges(confidence: FloatArray, bins: int) -> FloatArray:
    """Edges at the empirical quantiles of ``confidence``; the outer edges are 0 and 1."""
    if confidence.size == 0:
        return uniform_edges(bins)
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def assign_bins(confidence: FloatArray, edges: FloatArray, closed: Closed) -> IntArray:
    """The bin of each confidence; 0 and 1 always land in the first and last bins."""
    side: Literal["left", "right"] = "right" if closed == "left" else "left"
    return np.searchsorted(edges[1:-1], confidence, side=side).astype(np.intp)


def assign_uniform_bins(confidence: FloatArray, bins: int, closed: Closed) -> IntArray:
    """:func:`assign_bins` with :func:`uniform_edges`, by arithmetic instead of a search.

    ``floor(c * bins)`` is the bin up to the rounding of the product and of the edges
    (one ulp each), so it is off by at most one bin, right next to an edge; one
    comparison with the exact edges on each side corrects it.  NaN (unchecked input)
    lands in the last bin and values outside [0, 1] in the end bins, as with the search.
    """
    edges = uniform_edges(bins)
    scaled = np.multiply(confidence, bins)
    np.nan_to_num(scaled, copy=False, nan=bins)
    guess = np.clip(scaled, 0, bins - 1, out=scaled).astype(np.intp)
    return _corrected(guess, confidence, edges, closed)


def _corrected(
    guess: IntArray, confidence: FloatArray, edges: FloatArray, closed: Closed
) -> IntArray:
    """The bins of ``edges`` (``edges.size - 1`` of them) of each confidence from a
    ``guess`` (in range) at most one bin off: one comparison with the edges on each
    side, in place."""
    low, high = edges[guess], edges[guess + 1]
    if closed == "left":  # [e_b, e_b+1): below e_b is the bin before, from e_b+1 the next
        down, up = confidence < low, confidence >= high
    else:  # (e_b, e_b+1]
        down, up = confidence <= low, confidence > high
    guess -= down & (guess > 0)
    guess += up & (guess < edges.size - 2)
    return guess


@dataclass(frozen=True)
class BinStatistics:
    r"""Per-bin count, sum of confidences and number of hits (arrays of shape ``(..., bins)``).

    ``error``, where known (the ``totals`` kernel's equal-width top-label bins and the
    sums of such statistics: :class:`~crossent.EvaluationState`'s), is the sum of the
    rounding errors of the additions that formed ``confidence_sum``, each found exactly
    (:func:`two_sum_error`), so that ``confidence_sum + error`` is the bins' sum of
    confidences to double-double accuracy (exactly, whenever the errors' own sum does
    not round: :func:`compensated_means`); None where not kept.  ``confidence_sum`` is
    the same float either way.
    """

    count: FloatArray
    confidence_sum: FloatArray
    hits: FloatArray
    error: FloatArray | None = None

    def __add__(self, other: BinStatistics) -> BinStatistics:
        total = self.confidence_sum + other.confidence_sum
        error = None
        if self.error is not None and other.error is not None:
            error = (self.error + other.error) + two_sum_error(
                self.confidence_sum, other.confidence_sum, total
            )
        return BinStatistics(self.count + other.count, total, self.hits + other.hits, error)

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(count, confidence_sum, hits)``."""
        return self.count, self.confidence_sum, self.hits

    def add_into(self, other: BinStatistics) -> None:
        """``other`` added into these arrays in place: ``self + other``'s numbers, without
        new arrays (for arrays that nothing else holds).  ``self.error`` must be None
        unless ``other`` has one (:meth:`without_error` first)."""
        if self.error is not None:
            if other.error is None:
                raise ValueError("statistics with rounding errors need them from `other`")
            # the rounding error of the sum below, before it is formed in place
            total = self.confidence_sum + other.confidence_sum
            error = two_sum_error(self.confidence_sum, other.confidence_sum, total)
            np.add(self.error, other.error, out=self.error)
            np.add(self.error, error, out=self.error)
        np.add(self.count, other.count, out=self.count)
        np.add(self.confidence_sum, other.confidence_sum, out=self.confidence_sum)
        np.add(self.hits, other.hits, out=self.hits)

    def without_error(self) -> BinStatistics:
        """The same arrays, the rounding errors dropped (sums from where none is kept)."""
        return self if self.error is None else BinStatistics(*self.arrays())

    @classmethod
    def zeros(cls, shape: tuple[int, ...], *, error: bool = False) -> BinStatistics:
        """Empty bins; ``error``: with the rounding errors (zeros) kept."""
        return cls(
            np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape) if error else None
        )

    @classmethod
    def stack(cls, parts: list[BinStatistics]) -> BinStatistics:
        """One row per part (the class-wise scope keeps one row of bins per class)."""
        errors = [p.error for p in parts]
        return cls(
            np.stack([p.count for p in parts]),
            np.stack([p.confidence_sum for p in parts]),
            np.stack([p.hits for p in parts]),
            None if any(e is None for e in errors) else np.stack(errors),  # type: ignore[arg-type]
        )

    def row(self, k: int) -> BinStatistics:
        """Row ``k`` of stacked statistics."""
        error = None if self.error is None else self.error[k]
        return BinStatistics(self.count[k], self.confidence_sum[k], self.hits[k], error)

    def mean_confidence(self, mean: FloatArray | None = None) -> FloatArray:
        """Each bin's mean confidence (NaN where empty): ``confidence_sum / count``, or
        ``mean`` where given (``_error.exact_means``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self.confidence_sum / self.count if mean is None else mean
            return np.where(self.count > 0, means, np.nan)

    def accuracy(self) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.hits / self.count, np.nan)


def two_sum_error(a: FloatArray, b: FloatArray, total: FloatArray) -> FloatArray:
    r"""The rounding error :math:`a + b - \mathrm{fl}(a + b)` of ``total = a + b``,
    exactly (Knuth's TwoSum, any magnitudes; Higham 2002, *Accuracy and Stability of
    Numerical Algorithms*, 2nd ed., sec. 4.3): :math:`z = t - a`,
    :math:`e = (a - (t - z)) + (b - z)`.  NaN where ``total`` is not finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        z = total - a
        return (a - (total - z)) + (b - z)


@dataclass(frozen=True)
class ClassBinsPart:
    r"""One block's class-wise equal-width bins ``(classes, bins)``, kept sparse: what
    ``calibration._state.class_bins_uniform`` finds, before it is spread into three
    dense arrays (:meth:`dense`), so that a state can add it into its own (:meth:`add_into`)
    without forming them (6 MB each at 50 000 classes and 15 bins, a block).

    Every column not in ``binned`` has all ``rows`` of the block in bin 0, whose
    confidence sum is its entry of ``first_sum``; the columns ``binned`` have the
    statistics ``stats`` (count and confidence sum, no hits); the hits are one per
    row, in the flat cell ``hit_cells[i]`` (``label * bins + bin``).
    """

    shape: tuple[int, int]
    rows: int
    first_sum: FloatArray
    binned: IntArray
    stats: BinStatistics | None
    hit_cells: IntArray

    def dense(self) -> BinStatistics:
        """The three arrays ``(classes, bins)``."""
        classes, bins = self.shape
        count = np.zeros(self.shape)
        confidence_sum = np.zeros(self.shape)
        count[:, 0] = self.rows
        confidence_sum[:, 0] = self.first_sum
        if self.stats is not None:
            count[self.binned] = self.stats.count
            confidence_sum[self.binned] = self.stats.confidence_sum
        hits = np.bincount(self.hit_cells, minlength=classes * bins).astype(np.float64)
        return BinStatistics(count, confidence_sum, hits.reshape(self.shape))

    def add_into(self, target: BinStatistics) -> None:
        """``target + self.dense()`` written into ``target``, only where the dense
        arrays are not zero: the same numbers (``x + 0.0`` is ``x`` for every sum a
        state holds, which starts at +0.0 and never becomes -0.0, the sum of two
        numbers being -0.0 only if both are; the hits are integers, added one at a
        time or at once alike)."""
        count, confidence_sum, hits = target.count, target.confidence_sum, target.hits
        plain = np.ones(self.shape[0], dtype=bool)
        plain[self.binned] = False
        first_count, first_sum = count[:, 0], confidence_sum[:, 0]  # views (strided)
        np.add(first_count, self.rows, out=first_count, where=plain)
        np.add(first_sum, self.first_sum, out=first_sum, where=plain)
        if self.stats is not None:
            count[self.binned] += self.stats.count
            confidence_sum[self.binned] += self.stats.confidence_sum
        label, bin_of_label = np.divmod(self.hit_cells, self.shape[1])
        np.add.at(hits, (label, bin_of_label), 1.0)


def bin_statistics(
    bin_index: IntArray,
    confidence: FloatArray,
    hits: FloatArray,
    bins: int,
    weights: FloatArray | None = None,
) -> BinStatistics:
    """Sum count, confidence and hits per bin (optionally with per-example weights)."""
    if weights is None:  # the same sums, without multiplying by ones
        return BinStatistics(
            np.bincount(bin_index, minlength=bins).astype(np.float64),
            np.bincount(bin_index, weights=confidence, minlength=bins),
            np.bincount(bin_index, weights=hits, minlength=bins),
        )
    w = weights
    return BinStatistics(
        np.bincount(bin_index, weights=w, minlength=bins).astype(np.float64),
        np.bincount(bin_index, weights=w * confidence, minlength=bins),
        np.bincount(bin_index, weights=w * hits, minlength=bins),
    )


def calibration_value(
    stats: BinStatistics, *, norm: Norm, debias: bool, mean: FloatArray | None = None
) -> float:
    r"""The calibration error of one set of bins.

    With :math:`w_b = n_b / n`, :math:`\bar c_b` the mean confidence and :math:`\bar h_b`
    the hit rate of bin :math:`b` (empty bins contribute nothing):

    .. math::

        \text{L1} = \sum_b w_b |\bar h_b - \bar c_b|, \quad
        \text{L2} = \Big(\sum_b w_b (\bar h_b - \bar c_b)^2\Big)^{1/2}, \quad
        \text{max} = \max_b |\bar h_b - \bar c_b|.

    ``debias`` (L2 only) subtracts from each squared gap the variance of its hit rate,
    :math:`\bar h_b (1 - \bar h_b)/(n_b - 1)`, bins with one example contributing 0, and
    returns :math:`\max(\cdot, 0)^{1/2}` (Kumar, Liang and Ma 2019, arXiv:1909.10155).
    """
    value = squared_or_value(stats, norm=norm, debias=debias, mean=mean)
    return float(np.sqrt(max(value, 0.0))) if norm == "l2" else value


def doubtful_bins(stats: BinStatistics) -> FloatArray:
    r"""The bins whose gap :math:`\bar h_b - \bar c_b` the rounding of the confidence
    sum could decide: those where :math:`|\bar h_b - \bar c_b|` is within the error
    bound of :math:`\bar c_b = \mathrm{fl}(S_b / n_b)`.

    A sum of :math:`n` nonnegative terms, added in any order, is within
    :math:`\gamma_{n-1} S \le (n - 1) u S / (1 - (n - 1) u)` of the exact :math:`S`
    (Higham 2002, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., sec. 4.2),
    and the division adds :math:`u`; the test below allows twice that,
    :math:`(n_b + 2) 2^{-52} \bar c_b`.  A perfectly calibrated bin (constant confidence
    0.7, 70 % right) is one of them: its sum of 10 x 0.7 is 6.999999999999999, and
    the gap 1.1e-16 instead of 0.
    """
    count = stats.count
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = stats.confidence_sum / count
        gap = np.abs(stats.hits / count - mean)
        return (count > 0) & (gap <= (count + 2.0) * 2.0**-52 * np.abs(mean))


def refined_means(
    stats: BinStatistics, bin_index: IntArray, confidence: FloatArray, doubtful: FloatArray
) -> FloatArray | None:
    r"""The bins' mean confidences, those of the ``doubtful`` bins computed again from
    the confidences themselves (``bin_index``: each one's bin), or None if a doubtful
    bin's count differs from ``stats``' (other confidences: nothing is refined).

    For such a bin, with :math:`m = \mathrm{fl}(S_b / n_b)`, the mean is
    :math:`m + \mathrm{fl}(\sum_{i \in b} (c_i - m)) / n_b` (the corrected two-pass mean,
    Chan, Golub and LeVeque 1983, *Am. Stat.* 37(3)): each :math:`c_i - m` is exact
    where :math:`c_i` is within a factor 2 of :math:`m` (Sterbenz), so for constant
    confidences :math:`c` every deviation is the same :math:`c - m`, their sum exact
    and the mean exactly :math:`c`; otherwise it is within about one ulp of the exact
    mean.  The other bins keep :math:`\mathrm{fl}(S_b / n_b)`, bit for bit.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = stats.confidence_sum / stats.count
    chosen = doubtful[bin_index]
    index = bin_index[chosen]
    bins = stats.count.shape[0]
    count = np.bincount(index, minlength=bins)
    if not np.array_equal(count[doubtful], stats.count[doubtful]):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf: validate=False's inf
        deviation = np.bincount(index, weights=confidence[chosen] - mean[index], minlength=bins)
        return np.where(doubtful, mean + deviation / stats.count, mean)


def compensated_means(stats: BinStatistics, doubtful: FloatArray) -> FloatArray:
    r"""The bins' mean confidences, those of the ``doubtful`` bins from their sums'
    rounding errors (``stats.error``, which must be kept): the mean of the double-double
    sum :math:`S_b + E_b` over :math:`n_b`.

    With :math:`q = \mathrm{fl}(S_b / n_b)` and :math:`q n_b = p + p_e` exactly
    (Dekker's TwoProduct, Veltkamp's splitting; Higham 2002, sec. 4.3), the remainder
    :math:`r = (S_b - p) - p_e + E_b` is :math:`S_b + E_b - q n_b` up to two roundings
    of a number below a few ulps of :math:`S_b` (:math:`S_b - p` is exact, Sterbenz), and
    the mean is :math:`\mathrm{fl}(q + r / n_b)`: the correctly rounded
    :math:`(S_b + E_b) / n_b` unless that lies within about :math:`2^{-100}` of its
    value of a midpoint between two floats.  Where :math:`S_b + E_b` is the exact sum
    (the errors' sum did not round) and the exact mean a float :math:`c` (constant
    confidences :math:`c`: a perfectly calibrated bin), :math:`r / n_b` is :math:`c - q`
    within a few ulps of itself and the mean exactly :math:`c`, whatever order the
    confidences were added in.  The other bins keep :math:`\mathrm{fl}(S_b / n_b)`,
    bit for bit.
    """
    if stats.error is None:
        raise ValueError("compensated_means needs the sums' rounding errors")
    total, count = stats.confidence_sum, stats.count
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        quotient = total / count
        product, product_error = _two_product(quotient, count)
        remainder = ((total - product) - product_error) + stats.error
        return np.where(doubtful, quotient + remainder / count, quotient)


def constant_values(cell: IntArray, confidence: FloatArray, cells: int) -> FloatArray:
    """Per cell, the confidence all its entries share (``cell``: each entry's), NaN
    where they differ or where it has none (for :func:`with_constant_errors`)."""
    low, high = np.full(cells, np.inf), np.full(cells, -np.inf)
    np.minimum.at(low, cell, confidence)
    np.maximum.at(high, cell, confidence)
    return np.where(low == high, low, np.nan)


def with_constant_errors(stats: BinStatistics, constant: FloatArray) -> BinStatistics:
    r"""``stats`` of confidences drawn from bins whose confidences were each the bin's
    ``constant`` (NaN: not constant), with the error :math:`E_b = n_b c_b - S_b` where
    :math:`c_b` is known (0 elsewhere, the sum kept as rounded): :math:`n_b c_b` formed
    exactly as :math:`p + p_e` (:func:`.._numerics._two_product`), :math:`p - S_b` exact
    (Sterbenz).  A resample's bin of a perfectly calibrated bin (constant confidence)
    then has the mean :math:`c_b` exactly (:func:`compensated_means`), as its sample's."""
    known = ~np.isnan(constant)
    c = np.where(known, constant, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        product, product_error = _two_product(c, stats.count)
        error = (product - stats.confidence_sum) + product_error
    return BinStatistics(*stats.arrays(), np.where(known, error, 0.0))


def squared_or_value(
    stats: BinStatistics, *, norm: Norm, debias: bool, mean: FloatArray | None = None
) -> float:
    """L2: the squared error (possibly negative when debiased); L1 and max: the error.

    ``mean``: the bins' mean confidences, if known better than ``confidence_sum / count``
    (:func:`refined_means`)."""
    total = float(stats.count.sum())
    nonempty = stats.count > 0
    if total == 0:
        return 0.0
    count = stats.count[nonempty]
    confidence = stats.confidence_sum[nonempty] / count if mean is None else mean[nonempty]
    gap = stats.hits[nonempty] / count - confidence
    if norm == "max":
        return float(np.max(np.abs(gap)))
    if norm == "l1":
        return float(np.sum(count * np.abs(gap)) / total)
    squared = np.square(gap)
    if debias:
        rate = stats.hits[nonempty] / count
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = rate * (1.0 - rate) / (count - 1.0)
        squared = np.where(count >= 2, squared - variance, 0.0)
    return float(np.sum(count * squared) / total)


def squared_or_values(
    stats: BinStatistics, *, norm: Norm, debias: bool, mean: FloatArray | None = None
) -> FloatArray:
    """:func:`squared_or_value` of each row of ``(classes, bins)`` statistics: the same
    floats, without a Python call per class for most classes of a wide model.

    A row with one nonempty bin :math:`b` (every probability of the class in one bin:
    with many classes, nearly all below the first edge) has total :math:`n_b`, a sum of
    one term and a maximum of one, so its value is the scalar's arithmetic on that bin,
    done here for all such rows at once, elementwise (the same operations in the same
    order, hence the same bits).  The other rows go through :func:`squared_or_value`.
    """
    count, hits, confidence_sum = stats.count, stats.hits, stats.confidence_sum
    occupied = np.count_nonzero(count > 0, axis=1)
    values = np.zeros(count.shape[0])  # a row with no examples: 0, as the scalar
    single = np.flatnonzero(occupied == 1)
    if single.size:
        where = (single, np.argmax(count[single] > 0, axis=1))
        n = count[where]
        gap = hits[where] / n - (confidence_sum[where] / n if mean is None else mean[where])
        if norm == "max":
            values[single] = np.abs(gap)
        elif norm == "l1":
            values[single] = n * np.abs(gap) / n
        else:
            squared = np.square(gap)
            if debias:
                rate = hits[where] / n
                with np.errstate(divide="ignore", invalid="ignore"):
                    variance = rate * (1.0 - rate) / (n - 1.0)
                squared = np.where(n >= 2, squared - variance, 0.0)
            values[single] = n * squared / n
    for k in np.flatnonzero(occupied > 1):
        row = None if mean is None else mean[k]
        values[k] = squared_or_value(stats.row(int(k)), norm=norm, debias=debias, mean=row)
    return values


def calibration_values(stats: BinStatistics, *, norm: Norm, debias: bool) -> FloatArray:
    """:func:`calibration_value` of each row of ``(classes, bins)`` statistics (the
    same floats): :func:`squared_or_values`, and for L2 the root of its positive part."""
    values = squared_or_values(stats, norm=norm, debias=debias)
    if norm != "l2":
        return values
    # max(value, 0.0) of the scalar: the value itself unless 0.0 > value (NaN stays)
    return np.sqrt(np.where(values < 0.0, 0.0, values))


# ---------------------------------------------------------------- streaming quantile bins


def fine_edges() -> FloatArray:
    """Confidence edges of the fine cells (``FINE_CELLS + 3`` values from 0 to 1),
    read-only (computed once)."""
    return _fine_edges()


@functools.cache
def _fine_edges() -> FloatArray:
    logits = np.linspace(-_LOGIT_LIMIT, _LOGIT_LIMIT, FINE_CELLS + 1)
    edges = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-logits)), [1.0]])
    edges.flags.writeable = False
    return edges


def fine_cell(confidence: FloatArray, closed: Closed = "left") -> IntArray:
    r"""The fine cell of each confidence: :func:`assign_bins` with :func:`fine_edges`.

    Cell :math:`j` is :math:`[E_j, E_{j+1})` of the edges :math:`E` (``closed="left"``)
    or :math:`(E_j, E_{j+1}]` (``closed="right"``): 0 below logit -16, ``FINE_CELLS + 1``
    from +16, 0 and 1 in the end cells, a confidence on an edge (0.5, at logit 0) in the
    cell above it or below it as the bins the cells are joined into declare.  The
    state ignored ``closed`` here: with ``closed="right"`` a confidence of 0.5 on a
    grouped edge of 0.5 was counted in the bin above, whose interval excludes it
    (positive-class probabilities 0.499, 0.5, 0.501 twice each, labels 1, 1, 1, 1, 0,
    0, 2 bins: counts 2 and 4 under edges [0, 0.5, 1] declared ``(a, b]``, and an ECE
    of 0.1673 where those bins hold 4 and 2 rows and give 0.5007).

    The cell of the rounded logit :math:`\log c - \log(1 - c)` is off by at most one
    cell, right next to an edge; one comparison with the edges on each side corrects
    it, as :func:`assign_uniform_bins` does.  The logit's cell alone put 761 of the
    4097 inner edges (``closed="left"``; 818 with ``"right"``) in the cell on their
    other side, so a streaming equal-mass bin held rows outside the edges it declared
    (issue 13, hostileeval8).  Unchecked input (``validate=False``) lands as in
    :func:`assign_bins`: NaN and values above 1 in the last cell, negative values in
    the first; their NaN logit raised NumPy's ``ValueError`` from ``bincount``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(confidence) - np.log1p(-confidence)
    step = 2 * _LOGIT_LIMIT / FINE_CELLS
    scaled = (logit + _LOGIT_LIMIT) / step
    guess = np.floor(scaled) if closed == "left" else np.ceil(scaled) - 1.0
    undefined = np.isnan(guess)  # NaN, or outside [0, 1]: the end cells, as the search
    if undefined.any():
        guess[undefined] = np.where(confidence[undefined] < 0.0, -1.0, FINE_CELLS)
    cell = (np.clip(guess, -1, FINE_CELLS, out=guess) + 1).astype(np.intp)
    return _corrected(cell, confidence, _fine_edges(), closed)


def group_fine_cells(count: FloatArray, bins: int) -> IntArray:
    """Group index of each fine cell so that the ``bins`` groups have near-equal mass.

    Groups left empty (several quantiles in one cell) are put after the group that
    holds the cell, except at the top: the last fine cell, ``[E, 1]``, is always in the
    last group, the one bin whose interval holds 1 whatever ``closed`` says (as in
    :func:`assign_bins`), the empty groups below it.  Confidences of 1 filling the top
    quantiles were counted in a group declared ``[0.99999989, 1)``, the last bins
    ``[1, 1]`` empty (``closed="left"``), where :func:`calibration_error`'s equal-mass
    bins count them in the last bin.
    """
    cumulative = np.cumsum(count)
    total = cumulative[-1] if cumulative.size else 0.0
    targets = total * np.arange(1, bins) / bins
    upper = np.searchsorted(cumulative, targets, side="left")
    lower = np.maximum(upper - 1, 0)
    pick_lower = np.abs(cumulative[lower] - targets) <= np.abs(cumulative[upper] - targets)
    last_cell_of_group = np.where(pick_lower & (upper > 0), lower, upper)
    top = np.flatnonzero(last_cell_of_group >= count.size - 1)
    if top.size:  # the groups ending at the last cell: empty, below the last group
        first = top[0]
        last_cell_of_group[first:] = last_cell_of_group[first - 1] if first else -1
    return np.searchsorted(last_cell_of_group, np.arange(count.size), side="left").astype(np.intp)
