r"""Temperature scaling (robust) and the recalibration gap it measures.

Temperature scaling (Guo et al. 2017) divides the logits by :math:`T > 0`.  With the
inverse temperature :math:`\beta = 1/T` the mean negative log-likelihood

.. math::

    f(\beta) = \frac1n \sum_i \Big[\log \sum_k e^{\beta z_{ik}} - \beta z_{i y_i}\Big]

is convex (a log-sum-exp of linear functions), with
:math:`f'(\beta) = \frac1n\sum_i (\mathbb{E}_{\mathrm{softmax}(\beta z_i)}[z_i] - z_{iy_i})`
non-decreasing.  The fit finds the root of :math:`f'` inside the bracket
:math:`[1/T_{\max}, 1/T_{\min}]` by a safeguarded Newton method (Newton steps while they
stay inside the bracket that holds the sign change of :math:`f'` and do not creep,
bisection otherwise: Numerical Recipes' ``rtsafe``), so it cannot diverge or leave the
bounds; when
:math:`f'` does not change sign there, the optimum is at a bound and ``at_bound_`` says
so (for example separable data, where the NLL keeps falling as :math:`T \to 0`).

Each evaluation of :math:`f, f', f''` is one pass over the rows (:func:`_moments`): a
compiled pass over the stored logits where Numba is installed (``_temperature_numba``,
no float64 copy), NumPy's on float64 blocks otherwise; the cross-fitting's folds take
the rows' numbers at :math:`T = 1` and at the bounds from the fit on all rows
(:class:`RowMemo`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._checks import check_base, check_flag, check_integer, check_scalar
from .._read_only import read_only
from .._reprs import number, one_line, options
from .._xp import finite_row_max, minus_row_max
from ..errors import InputError
from . import _row_kernels
from ._calibrator import (
    all_log_scores,
    as_output,
    check_classes,
    check_fitted,
    log_scores,
    unlabelled,
)
from ._inputs import (
    LOGITS,
    FloatArray,
    IntArray,
    Predictions,
    as_predictions,
    require_examples,
)

__all__ = [
    "XTOL",
    "CrossFit",
    "RowMemo",
    "TemperatureScaling",
    "cross_fitted_nll",
    "fit_scaler",
    "half_nll_rows",
    "mean_nll",
    "recalibration_gap",
    "tempered_scores",
]

BoolArray = npt.NDArray[np.bool_]

XTOL = 1e-10
"""The relative tolerance on :math:`\beta = 1/T` of every temperature fit: the default of
:class:`TemperatureScaling`, and that of :func:`recalibration_gap` and the report's
cross-fitting, so that the gap is ``nll_before_ - cross_fitted_nll_`` of the default
scaler up to that difference's rounding (the gap fitted to 1e-8 was 0.37704809272 where
the scaler's numbers gave 0.37704809284; the gap adds each fold's own difference, an
ulp or so of the NLL from the scaler's: 0.5518073138855297 for 0.5518073138855296)."""


def _moments(
    predictions: Predictions, beta: float, memo: RowMemo | None = None
) -> tuple[float, float, float]:
    r"""Mean NLL at inverse temperature ``beta`` and its first two derivatives, in one pass.

    With :math:`s = z - \max_k z_k` (so that every exponent is at most 0),
    :math:`S = \sum_k e^{\beta s_k}` and :math:`E`, :math:`V` the mean and variance of
    :math:`s` under :math:`\mathrm{softmax}(\beta s)`:
    :math:`f = \log S - \beta s_y`, :math:`f' = E - s_y`, :math:`f'' = V \ge 0`.
    Each row gives :math:`S - 1 = (c - 1) + R`, :math:`c` the count of the maximum's
    entries and :math:`R` the other weights' sum, and :math:`\log S` is
    :math:`\operatorname{log1p}(S - 1)`, so that a row whose label is its maximum keeps
    its tiny NLL :math:`\log S \approx R` to full relative precision (``log`` of the
    rounded :math:`S` gave 0 for :math:`R < 10^{-16}`).

    Each block's rows give :math:`S - 1, E, V, s_y`: by the compiled pass over the stored
    logits (``_temperature_numba.row_moments``: no float64 copy) where Numba is
    installed and the values are a C-contiguous NumPy float32 or float64 array of
    logits or log-probabilities; otherwise by its NumPy twin :func:`_numpy_rows` on a
    float64 copy of the block.  Each block's rows are summed by :func:`_block_sums`,
    the blocks added in order: the twins differ only in each row's rounding (the
    fused pass's exponential and sums, within an ulp or so of NumPy's).  With a
    ``memo`` (:class:`RowMemo`, fused pass only) the rows' numbers at ``beta`` are
    taken from it, or kept in it, where it says so: the same bits.
    """
    nll, slope, curvature = _summed(predictions, beta, memo) / predictions.n
    if nll == math.inf or slope == math.inf:
        # A row's f or f' past float64 (logits more than 1.8e308 apart: [1e308, -1e308]
        # with label 1 has f = 2e308 at T = 1), or their sum: each row's share of the
        # mean, 1/n of it, summed again; finite wherever the mean is (every f >= 0, so
        # no share, nor any partial sum, exceeds the mean). NLL +inf at T = 1 where the
        # mean of [1e308, -1e308] (label 1) and three rows near 0 is 5e307 (issue 13)
        shares = _summed(predictions, beta, memo, share=1.0 / predictions.n)
        nll = shares[0] if nll == math.inf else nll
        slope = shares[1] if slope == math.inf else slope
    return float(nll), float(slope), float(max(curvature, 0.0))


def _summed(
    predictions: Predictions, beta: float, memo: RowMemo | None, share: float = 1.0
) -> FloatArray:
    """The sums of :math:`f, f', f''` over the rows at ``beta`` (:func:`_moments`),
    each row's numbers times ``share`` where that is not 1 (:func:`_block_sums`)."""
    fused = _fused_kernel(predictions)
    total = np.zeros(3)
    if fused is not None:
        for part in _fused_parts(predictions, beta, fused, memo, share):
            total += part
        return total
    form = predictions.form

    def numpy_block(_: int, values: FloatArray, labels: IntArray) -> FloatArray:
        parts = _numpy_row_parts(values, labels, form, beta)
        excess, mean, variance, shift, labelled, maxima = parts

        def far_scores(far: BoolArray) -> tuple[FloatArray, FloatArray]:
            return labelled[far], maxima[far]

        return _block_sums(excess, mean, variance, shift, beta, far_scores, share)

    for part in predictions.map_raw(numpy_block):
        total += part
    return total


def half_nll_rows(values: Any, labels: IntArray, form: str) -> FloatArray:
    r"""Half of each row's NLL at :math:`T = 1`, :math:`(\log S - s_y)/2`, finite where
    the NLL itself passes float64 (logits more than 1.8e308 apart: ``[1e308, -1e308]``,
    label 1, gives 1e308): :math:`\log S / 2` less :func:`_label_terms`' :math:`s_y / 2`
    (the halves :math:`z_y/2 - \max_k z_k/2` for a far label).  For the few rows whose
    surprisal is +inf (``_bootstrap``: the rows' shares of a resample's mean)."""
    rows = np.array(values, dtype=np.float64)  # (a copy: shifted in place)
    excess, _, _, shift, labelled, maxima = _numpy_row_parts(rows, labels, form, 1.0)

    def far_scores(far: BoolArray) -> tuple[FloatArray, FloatArray]:
        return labelled[far], maxima[far]

    return np.log1p(excess) * 0.5 - _label_terms(shift, 1.0, far_scores, 0.5)


def mean_nll(predictions: Predictions) -> float:
    r"""The mean NLL of logits or log-probabilities at :math:`T = 1`: each row's
    :math:`\log S - s_y` of :func:`_moments` (a row's NLL past float64, or their sum,
    by each row's share of the mean; the far label's :math:`s_y` by
    :func:`_label_terms`' halves).  The mean :func:`._scores.negative_log_likelihood`
    gives where its rows' surprisals, or their sum, pass float64."""
    return _moments(predictions, 1.0)[0]


def _fused_parts(
    predictions: Predictions,
    beta: float,
    kernel: Callable[..., Any],
    memo: RowMemo | None,
    share: float = 1.0,
) -> list[FloatArray]:
    """The blocks' sums (:func:`_block_sums`) by the fused pass, or from ``memo``."""
    if memo is not None and memo.values is not predictions.values:
        memo = None  # (another array's rows)
    if memo is not None and beta in memo.rows:
        known = memo.rows[beta]
        return list(
            predictions.map_rows(
                lambda _, rows, labels: _block_sums(
                    known[0, rows],
                    known[1, rows],
                    known[2, rows],
                    known[3, rows],
                    beta,
                    _stored_far_scores(predictions.values, rows, labels),
                    share,
                )
            )
        )
    keep = memo is not None and beta in memo.keep and predictions.selected is None
    every = np.empty((4, predictions.n)) if keep else None
    classes = predictions.classes
    width = _lane_count(classes)
    # the values and labels read-only (views, no copy), as the kernel reads them, and
    # the labels C-contiguous (a strided block's copy: a row's 8 bytes against its
    # classes' 4 or 8 each): Numba types each flag and layout apart, and the arrays come
    # either way (a memory-mapped file, a caller's array, a column of a table), so one
    # CI run compiled 8 specialisations of the kernel for its 2 dtypes
    values = read_only(np.asarray(predictions.values))

    def block(_: int, rows: IntArray, labels: IntArray) -> FloatArray:
        out = np.empty((4, rows.shape[0]))
        lanes, weights = np.empty((5, width)), np.empty(classes)
        kernel(values, rows, read_only(np.ascontiguousarray(labels)), beta, lanes, weights, out)
        if every is not None:
            every[:, rows] = out  # (rows: consecutive, disjoint between blocks)
        far_scores = _stored_far_scores(values, rows, labels)
        return _block_sums(out[0], out[1], out[2], out[3], beta, far_scores, share)

    parts = list(predictions.map_rows(block))
    if memo is not None and every is not None:
        memo.rows[beta] = every  # (only once every block is in)
    return parts


@dataclass(frozen=True)
class RowMemo:
    r"""The fused pass's :math:`S - 1, E, V, s_y` of every row of one array of predictions, at
    the inverse temperatures every fit on its rows evaluates: :math:`\beta = 1` (each
    fit's start) and the bounds (where a fit at a bound ends).

    The fit on all rows keeps them here (``(4, n)`` float64, 32 bytes a row for each
    of the three); the cross-fitting's training folds start at :math:`\beta = 1`, and
    a fold whose fit ends at a bound evaluates it on its training rows and then scores
    its held-out rows there: those passes gather the rows' numbers from here instead
    of reading the logits again (in the report of a model at a bound, 2 passes over
    the data instead of 5).  The kernel gives a row the same bits in whatever block it
    is, and a subset's blocks are summed as when computed, so every sum is the same
    bits.  Only for the fused pass (NumPy's row sums may depend on a row's place in
    memory) and rows of at least :data:`_MEMO_CLASSES` classes (the memo is then at
    most 3% of the float32 logits for each :math:`\beta`).
    """

    values: Any
    keep: frozenset[float]
    rows: dict[float, FloatArray] = field(default_factory=dict)

    @classmethod
    def for_fits(cls, predictions: Predictions, bounds: tuple[float, float]) -> RowMemo | None:
        """A memo for fits within ``bounds`` on ``predictions`` and its subsets, or None
        where it would not serve (the NumPy twin, or narrow rows)."""
        if _fused_kernel(predictions) is None or predictions.classes < _MEMO_CLASSES:
            return None
        return cls(predictions.values, frozenset({1.0, 1.0 / bounds[1], 1.0 / bounds[0]}))


_MEMO_CLASSES = 256
"""Rows narrower than this keep no :class:`RowMemo`: a pass over them costs little."""


_LANES = 256
"""Running sums of a row in the fused pass (``_temperature_numba.row_moments``); a power
of two, and a run-time length there, so that LLVM vectorises the lanes' loop."""


def _lane_count(classes: int) -> int:
    r"""The fused pass's lanes for rows of ``classes`` entries: :data:`_LANES`, or the
    least power of two :math:`L' \ge K` where that is fewer.

    The same bits as :data:`_LANES` lanes: with :math:`K \le L'` lanes, lane :math:`j`
    holds entry :math:`j` alone, as with 256, and the lanes past :math:`K` hold 0; the
    first levels of the 256 lanes' tree (halves :math:`h \ge L'`) add only those zeros
    (:math:`x + 0 = x`; a sum of zero is :math:`+0` either way, as the row's maximum
    gives the term :math:`+0`), and the rest is the tree of :math:`L'` lanes.  At 10
    classes a row's pass did some 2000 operations on its 256 lanes (zeroing them,
    their maxima, three trees) for its 10 entries: the temperature fit of 10^6 x 10
    logits took 6.6 s of CPU, 1.6 s with 16 lanes (both under cProfile).
    """
    return min(_LANES, 1 << (max(classes, 1) - 1).bit_length())


def _fused_kernel(predictions: Predictions) -> Callable[..., Any] | None:
    """The compiled pass (``_temperature_numba.row_moments``) if it can read these
    predictions' stored values in place, else None (the NumPy twin)."""
    values = predictions.values
    if not (
        predictions.form in ("logits", "log_probs")
        and isinstance(values, np.ndarray)
        and values.dtype in (np.float32, np.float64)
        and values.flags.c_contiguous
        and _row_kernels.available()
    ):
        return None
    return _kernels().row_moments


@functools.cache
def _kernels() -> Any:
    """The kernel module (imports Numba, once; its kernels compile on first call or load
    from Numba's on-disk cache)."""
    from . import _temperature_numba

    return _temperature_numba


def _numpy_rows(
    values: FloatArray, labels: IntArray, form: str, beta: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    r""":math:`S - 1, E, V, s_y` of each row of a float64 block (the fused pass's NumPy
    twin; :func:`_moments`)."""
    excess, mean, variance, label_shift, _, _ = _numpy_row_parts(values, labels, form, beta)
    return excess, mean, variance, label_shift


def _numpy_row_parts(
    values: FloatArray, labels: IntArray, form: str, beta: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    r""":func:`_numpy_rows`'s four numbers of each row, then its label's score
    :math:`z_y` and its maximum :math:`\max_k z_k` (for :func:`_label_terms`)."""
    z = log_scores(values, form)
    # in place where the block is this pass's own float64 copy (never the caller's)
    mine = z.flags.owndata and z.flags.writeable
    picked = np.arange(z.shape[0])
    maxima = z.max(axis=1, keepdims=True)
    labelled = z[picked, labels]  # (a copy, taken before z is shifted in place)
    # a score 1e308 below its row's maximum shifts to -inf: weight exp(beta s) = 0
    with np.errstate(over="ignore"):
        shifted = np.subtract(z, maxima, out=z if mine else None)
    label_shift = shifted[picked, labels]
    weights = np.multiply(shifted, beta)
    np.exp(weights, out=weights)
    top = shifted == 0  # the maximum's entries (weight 1; NaN is not one)
    ties = top.sum(axis=1).astype(np.float64)
    rest = np.where(top, 0.0, weights).sum(axis=1)
    partition = ties + rest
    excess = (ties - 1.0) + rest
    mean = _weighted_row_sum(weights, shifted) / partition
    shifted -= mean[:, None]
    # A score more than ~1e154 below the mean overflows to inf here; its weight
    # exp(beta * s) is exactly 0, and _weighted_row_sum masks such entries.
    with np.errstate(over="ignore"):
        np.square(shifted, out=shifted)
    variance = _weighted_row_sum(weights, shifted) / partition
    return excess, mean, variance, label_shift, labelled, maxima[:, 0]


_FarScores = Callable[[BoolArray], tuple[FloatArray, FloatArray]]
r"""``far_scores(far)``: the label's score :math:`z_y` and the maximum :math:`\max_k z_k`
of a block's rows where ``far`` (:func:`_label_terms`)."""


def _label_terms(
    label_shift: FloatArray, beta: float, far_scores: _FarScores, share: float = 1.0
) -> FloatArray:
    r""":math:`\beta s_y` of each row of a block, :math:`s_y = z_y - \max_k z_k` (times
    ``share`` where that is not 1: :math:`\beta (s_y \cdot \mathrm{share})`, each row's
    share of a mean, finite where the term itself passes float64: :func:`_block_sums`).

    A logit :math:`z_y` more than float64's largest number (1.8e308) below its row's
    maximum gives :math:`s_y = -\infty` (logits ``[1e308, -1e308, 0]``, label 1:
    :math:`s_y = -2 \cdot 10^{308}`), and the row's NLL :math:`\log S - \beta s_y` was
    ``+inf`` at every temperature, where at :math:`T = 20` it is :math:`10^{307}`.  Those
    rows (``far_scores(far)`` gives their :math:`z_y` and maxima) take
    :math:`2\,(\beta\,(z_y/2 - \max_k z_k/2))`: the halves are exact and their
    difference finite, and the product is :math:`-\infty` only where
    :math:`\beta s_y` is itself past float64.  Every other row's term is
    ``beta * label_shift`` as before (the same bits); only logits can be so far apart
    (log-probabilities are at most 0, and a probability's log at least -745).  With a
    ``share`` (:math:`1/n`) the far rows take
    :math:`2\,(\beta\,((z_y/2 - \max_k z_k/2) \cdot \mathrm{share}))`, finite at
    :math:`T = 1` too, where :math:`\beta s_y` is :math:`-2 \cdot 10^{308}`.
    """
    terms = beta * label_shift if share == 1.0 else beta * (label_shift * share)
    far = np.isneginf(label_shift)
    if far.any():
        labelled, top = far_scores(far)
        with np.errstate(over="ignore"):
            terms[far] = beta * ((0.5 * labelled - 0.5 * top) * share) * 2.0
    return terms


def _stored_far_scores(values: Any, rows: IntArray, labels: IntArray) -> _FarScores:
    """The ``far_scores`` of :func:`_label_terms` of the fused pass's rows ``rows`` of the
    stored ``values``."""

    def far_scores(far: BoolArray) -> tuple[FloatArray, FloatArray]:
        scores = np.asarray(values[rows[far]], dtype=np.float64)
        return scores[np.arange(scores.shape[0]), labels[far]], scores.max(axis=1)

    return far_scores


def _block_sums(
    excess: FloatArray,
    mean: FloatArray,
    variance: FloatArray,
    label_shift: FloatArray,
    beta: float,
    far_scores: _FarScores,
    share: float = 1.0,
) -> FloatArray:
    r"""A block's sums of :math:`f = \log S - \beta s_y`, :math:`f' = E - s_y` and
    :math:`f'' = V` over its rows, :math:`\log S` as ``log1p`` of ``excess``
    :math:`= S - 1` and :math:`\beta s_y` by :func:`_label_terms` (``far_scores``: of
    the rows whose :math:`s_y` is ``-inf``).

    With a ``share`` other than 1 (:math:`1/n`: :func:`_moments`, where a row's number
    or the sum passes float64) each row's numbers times ``share``: of :math:`f`,
    :math:`\log S \cdot \mathrm{share} - \beta (s_y \cdot \mathrm{share})`, of
    :math:`f'`, :math:`E \cdot \mathrm{share} - s_y \cdot \mathrm{share}`, the far
    label's :math:`s_y` by :func:`_label_terms`' halves in both."""
    terms = _label_terms(label_shift, beta, far_scores, share)
    # a block's NLLs summing past 1.8e308 give +inf, unwarned, as the summaries do
    with np.errstate(over="ignore"):
        if share == 1.0:
            return np.array(
                [
                    np.sum(np.log1p(excess) - terms),
                    np.sum(mean - label_shift),
                    np.sum(variance),
                ]
            )
        label_shares = _label_terms(label_shift, 1.0, far_scores, share)
        return np.array(
            [
                np.sum(np.log1p(excess) * share - terms),
                np.sum(mean * share - label_shares),
                np.sum(variance * share),
            ]
        )


def _weighted_row_sum(weights: FloatArray, values: FloatArray) -> FloatArray:
    """Row sums of ``weights * values``, a zero weight contributing 0 even where ``values``
    is infinite (a score of -inf, probability 0): such rows are summed again, masked."""
    with np.errstate(invalid="ignore"):
        sums = np.einsum("ij,ij->i", weights, values)
    redo = ~np.isfinite(sums)
    if redo.any():
        w, v = weights[redo], values[redo]
        sums[redo] = np.multiply(w, v, out=np.zeros_like(v), where=w > 0).sum(axis=1)
    return sums


def _check_finite_label_scores(predictions: Predictions) -> None:
    """Refuse a label of probability 0 (a probability of 0, a log-probability or logit of
    ``-inf``): its NLL is ``+inf`` at every temperature, so no temperature is better than
    another, and the NLL's slope would be ``inf - inf``."""
    values = np.asarray(predictions.values)
    zero = 0.0 if predictions.form == "probs" else -math.inf

    def zero_label(start: int, rows: IntArray, labels: IntArray) -> int | None:
        # Only the labels' entries, as stored: no block read, no log or exp.
        hit = values[rows, labels] == zero
        return start + int(np.argmax(hit)) if hit.any() else None

    form = predictions.form
    entry = "" if form == "probs" else f" ({_FORM_WORDS[form]} -inf)"
    for row in predictions.map_rows(zero_label):
        if row is not None:
            raise InputError(
                f"row {row}'s label has probability 0{entry}, so the NLL is +inf at every "
                "temperature and no temperature can be fitted"
            )


_FORM_WORDS = {"log_probs": "log-probability", "logits": "logit"}


_CREEP = 10
"""Newton steps in a row, each in the last one's direction and at least 0.9 times as
long, after which :func:`_fit_beta` takes the next as a step past its bracket."""


@dataclass(frozen=True)
class _FitResult:
    beta: float
    nll: float
    slope: float
    iterations: int
    bound: bool
    nll_at_one: float  # the NLL at T = 1, the fit's first evaluation
    converged: bool = True  # False when the iterations ran out before the step fell below xtol


def _fit_beta(
    predictions: Predictions,
    bounds: tuple[float, float],
    xtol: float,
    memo: RowMemo | None = None,
) -> _FitResult:
    """Minimise the convex NLL over ``beta`` in ``[1/T_max, 1/T_min]``.

    Safeguarded Newton on :math:`f'(\beta)` (Press et al., Numerical Recipes, ``rtsafe``):
    a Newton step from the current point when it stays inside the bracket that holds the
    sign change of :math:`f'`, a geometric bisection of the bracket otherwise.  ``f'`` is
    non-decreasing, so the bracket always holds the minimiser.  A bound is evaluated only
    when a Newton step would cross it, or creeps towards it for the tenth time in a row
    (a step in the last one's direction and at least 0.9 times as long: rows of large
    margins, whose ``f' ~ -a exp(-m beta)`` gives steps of a constant ``1/m``); if
    ``f'`` has not changed sign there, the minimiser is at that bound, else the bracket
    is bisected.  The fit stops when the
    next Newton step is below ``xtol`` relative, typically after 4 to 6 passes over the
    data.  With a ``memo`` (:class:`RowMemo`) the rows' numbers at :math:`\beta = 1`
    and at the bounds are gathered from it, or kept in it.
    """
    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]
    known = {"lo": False, "hi": False}  # is the sign of f' known at that end?
    beta = 1.0
    nll, slope, curvature = _moments(predictions, beta, memo)
    nll_at_one, iterations = nll, 1
    step, creeping = 0.0, 0  # the last move of beta; slow Newton steps in a row
    for _ in range(200):
        if slope > 0:
            hi, known["hi"] = beta, True
        elif slope < 0:
            lo, known["lo"] = beta, True
        newton = beta - slope / curvature if curvature > 0 else math.nan
        if slope == 0 or abs(newton - beta) <= xtol * beta:
            break  # the next step would not move beta: the current point is the optimum
        side = "lo" if slope > 0 else "hi"
        # Newton creeping: a step in the last one's direction and nearly as long (rows of
        # large margins, f' ~ -a e^(-m beta), give steps of a constant 1/m: 0.02 for
        # m = 50 crept 200 steps to T = 0.2, short of the optimum at the bound 0.05).
        # The tenth such step in a row is taken as one past the bracket: the bound it
        # creeps towards is evaluated if its side is not known, and the bracket bisected
        # (a fit from far away takes a few such steps before Newton's pace: those stay)
        slow = (newton - beta) * step > 0 and abs(newton - beta) >= 0.9 * abs(step)
        creeping = creeping + 1 if slow else 0
        if creeping >= _CREEP or not lo < newton < hi:
            if not known[side]:
                edge = lo if side == "lo" else hi
                known[side] = True
                edge_values = _moments(predictions, edge, memo)
                iterations += 1
                if (edge_values[1] >= 0) if side == "lo" else (edge_values[1] <= 0):
                    return _FitResult(edge, *edge_values[:2], iterations, True, nll_at_one)
            newton = math.sqrt(lo * hi)
        beta, step = newton, newton - beta
        nll, slope, curvature = _moments(predictions, beta, memo)
        iterations += 1
    else:  # the iterations ran out (a safeguard: creeping steps evaluate the bound or bisect)
        return _FitResult(beta, nll, slope, iterations, False, nll_at_one, converged=False)
    return _FitResult(beta, nll, slope, iterations, False, nll_at_one)


def _misses(predictions: Predictions) -> BoolArray:
    """Rows whose label scores below the row's maximum (top-1 wrong; a label tied for the
    maximum counts as right).  Every form is monotone in the log-scores, so the raw values
    are compared as stored: one pass, no logarithms, no float64 copy."""

    values = np.asarray(predictions.values)

    def block_misses(_: int, rows: IntArray, labels: IntArray) -> BoolArray:
        # as stored (float32 compares as its float64 conversion does): no float64 copy
        block = _stored_rows(values, rows)
        return np.asarray(block[np.arange(labels.shape[0]), labels] < block.max(axis=1))

    return np.concatenate([np.zeros(0, bool), *predictions.map_rows(block_misses)])


def _stored_rows(values: Any, rows: IntArray) -> Any:
    """Rows ``rows`` (sorted, distinct) of ``values`` as stored: a view where they are
    consecutive (all rows' blocks), else gathered."""
    if rows.size and rows[-1] - rows[0] == rows.size - 1:
        return values[rows[0] : rows[-1] + 1]
    return values[rows]


def _folds(misses: BoolArray, folds: int, seed: int) -> list[IntArray]:
    r"""Cross-fitting folds stratified by top-1 misses: sorted row indices of each fold.

    The rows are shuffled with ``numpy.random.default_rng(seed)``, the misses (a label
    below its row's maximum, :func:`_misses`) put first, each group in its shuffled order,
    and the rows dealt to the folds in turn, the folds' order itself shuffled.  So each
    fold holds :math:`\lfloor m/F \rfloor` or :math:`\lceil m/F \rceil` of the
    :math:`m` misses, likewise of the hits and of the :math:`n` rows, and which rows is
    random (deterministic given the seed).

    Why the misses: they alone pull the temperature up.  :math:`f'(\beta) =
    \frac1n\sum_i(\mathbb{E}_{\mathrm{softmax}(\beta z_i)}[z_i] - z_{iy_i})` has a hit's
    term :math:`\le 0` at every :math:`\beta`, so a training fold without a miss has no
    finite maximum-likelihood temperature (separated data: the NLL keeps falling as
    :math:`T \to 0`), and a fit at the lower bound then scores the held-out misses at
    :math:`T_{\min}`.  Unstratified, with few misses this happens by chance (75 rows and
    5 misses in 2 folds: about one split in 18 puts every miss in one fold), and the gap
    depends on which split the seed drew rather than on the model.
    """
    n = misses.shape[0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    order = order[np.argsort(~misses[order], kind="stable")]  # misses first, still shuffled
    fold_of = np.empty(n, np.intp)
    fold_of[order] = rng.permutation(folds)[np.arange(n) % folds]
    return [np.flatnonzero(fold_of == fold) for fold in range(folds)]


@dataclass(frozen=True)
class CrossFit:
    """The cross-fitted NLL and whether it is defined by the data rather than the bounds."""

    nll: float
    """Mean NLL of each fold at the temperature fitted on the other folds."""
    at_bound: bool
    """Some training folds' fit is at a bound (no finite maximum-likelihood temperature)."""
    separated: bool
    """Some training folds have no misses (every label top-ranked): too few errors."""
    flattened: bool = False
    """Some training folds' fit is at the largest temperature: their NLL keeps falling as
    :math:`T` grows (predictions that tell next to nothing about the labels, or less
    than nothing), however many misses there are."""
    gap: float = math.nan
    r"""With ``gap=True``: the mean NLL at :math:`T = 1` minus :attr:`nll`, summed fold by
    fold, :math:`\frac1n \sum_f n_f (\bar\ell_f(1) - \bar\ell_f(\hat T_{-f}))`, so that
    a fold whose rows score the same at both temperatures adds exactly 0 (NaN without
    ``gap=True``)."""


def cross_fitted_nll(
    predictions: Predictions,
    *,
    folds: int,
    seed: int,
    bounds: tuple[float, float],
    xtol: float,
    memo: RowMemo | None = None,
    gap: bool = False,
) -> CrossFit:
    """Mean NLL of each fold at the temperature fitted on the other folds (:func:`_folds`:
    stratified by top-1 misses), and whether a training fold's fit was at a bound.
    ``memo``: the rows' numbers the fit on all of ``predictions`` kept (:class:`RowMemo`).
    ``gap``: also :attr:`CrossFit.gap`, from each held-out fold's NLL at :math:`T = 1`
    (one more pass over the held-out rows of a fold whose temperature is not 1): the
    difference of the NLL at :math:`T = 1` over all rows, summed in another order, and
    the cross-fitted NLL was -8.9e-16 for constant logits, whose gap is exactly 0."""
    misses = _misses(predictions)
    at_bound, separated, flattened = False, False, False
    nlls, differences, sizes = [], [], []
    for held_out in _folds(misses, folds, seed):
        train = np.setdiff1d(np.arange(predictions.n), held_out, assume_unique=True)
        fit = _fit_beta(predictions.subset(train), bounds, xtol, memo)
        at_bound |= fit.bound
        separated |= not misses[train].any()
        flattened |= fit.bound and fit.beta < 1.0  # (beta = 1 / T: below 1 is T_max)
        nll = _moments(predictions.subset(held_out), fit.beta, memo)[0]
        nlls.append(nll)
        sizes.append(held_out.size)
        if gap and fit.beta != 1.0:
            before = _moments(predictions.subset(held_out), 1.0, memo)[0]
            differences.append(before - nll)
        else:
            differences.append(0.0)
    return CrossFit(
        _fold_mean(nlls, sizes, predictions.n),
        at_bound,
        separated,
        flattened,
        _fold_mean(differences, sizes, predictions.n) if gap else math.nan,
    )


def _fold_mean(values: list[float], sizes: list[int], n: int) -> float:
    r"""The mean over the rows of each fold's mean ``values`` (folds of ``sizes`` rows):
    their sum weighted by the sizes, over ``n``; where that sum passes float64 (folds'
    NLLs of 1e307, logits more than 1.8e308 apart: ``cross_fitted_nll_`` +inf, so
    ``kept_identity_`` where the fitted temperature halved the NLL), each fold's share
    :math:`v \cdot (\mathrm{size}/n)` instead."""
    total = 0.0
    for value, size in zip(values, sizes, strict=True):
        total += value * size  # (Python floats: past float64 is inf, unwarned)
    mean = total / n
    if math.isinf(mean) and all(math.isfinite(value) for value in values):
        mean = sum(value * (size / n) for value, size in zip(values, sizes, strict=True))
    return mean


def _check_folds(folds: int, seed: int, n: int) -> None:
    """The cross-fitting options: ``folds >= 2`` with a row for each, and a seed that
    :func:`numpy.random.default_rng` takes (a non-negative integer)."""
    check_integer(folds, name="folds", low=2)
    check_integer(seed, name="seed", low=0)
    if n < folds:
        raise InputError(f"cross-fitting with {folds} folds needs at least {folds} rows; got {n}")


class TemperatureScaling:
    """Temperature scaling with a bounded convex solve and a held-out guard.

    Parameters
    ----------
    bounds : (float, float), default (0.05, 20.0)
        Smallest and largest temperature allowed, ``low < 1 < high``; ``1 / low`` finite
        (``low`` above about 5.6e-309: the fit works in :math:`1/T`).  A fit at a bound
        reports that bound as its temperature.
    guard : bool, default True
        Keep :math:`T = 1` unless the cross-fitted NLL (each fold at the temperature fitted
        on the other folds) beats the NLL at :math:`T = 1`.
    folds : int, default 5
        Folds of the guard's cross-fitting, stratified by top-1 misses: each fold holds
        its share (floor or ceil) of the rows whose label is below the row's maximum, so
        that every training fold has an error to fit a temperature to whenever there
        are at least two.
    seed : int, default 0
        Seed of the fold assignment (which rows of each stratum go to which fold).
    xtol : float, default 1e-10
        Tolerance on :math:`\\log(1/T)`: the fit stops once the next Newton step of
        :math:`1/T` is at most ``xtol`` times :math:`1/T`.  In ``[0, 1)``: a tolerance of
        1 or more would stop at the first step, at :math:`T = 1`.

    Attributes
    ----------
    temperature_ : float
        The temperature applied by ``transform``.
    fitted_temperature_ : float
        The NLL-optimal temperature on the fitting data (before the guard).
    converged_ : bool
        The optimum is interior and the root finder converged.
    at_bound_ : bool
        The optimum lies at (or beyond) one of ``bounds``.
    n_iter_ : int
        NLL/derivative evaluations (passes over the data) of the main fit.
    gradient_ : float
        :math:`f'(\\beta)` at the solution (0 at an interior optimum).
    nll_before_, nll_after_ : float
        Mean NLL at :math:`T = 1` and at ``fitted_temperature_`` (nats).
    cross_fitted_nll_ : float or None
        The guard's cross-fitted NLL (None without the guard).  A training fold's fit at
        a bound (a fold without misses) is used as it is: the held-out NLL is still an
        honest estimate of what the bounded fit does to new rows, which is what the
        guard weighs.
    kept_identity_ : bool
        The guard kept :math:`T = 1`.
    n_classes_ : int
        The classes of the fitting data: ``transform`` refuses another count (a
        1-D array is read as binary predictions, 2 classes, as ``fit`` reads it).

    Examples
    --------
    Logits drawn at temperature 1 and then sharpened by a factor 2.5 are recovered:

    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(size=(4000, 10)) * 2
    >>> labels = np.array([rng.choice(10, p=np.exp(r) / np.exp(r).sum()) for r in true_logits])
    >>> scaler = crossent.TemperatureScaling().fit(true_logits * 2.5, labels)
    >>> bool(abs(scaler.temperature_ - 2.5) < 0.15), scaler.converged_
    (True, True)
    """

    # the learned attributes, set by fit (fit_scaler)
    fitted_temperature_: float
    at_bound_: bool
    converged_: bool
    n_iter_: int
    gradient_: float
    nll_after_: float
    nll_before_: float
    cross_fitted_nll_: float | None
    kept_identity_: bool
    temperature_: float
    n_classes_: int

    def __init__(
        self,
        *,
        bounds: tuple[float, float] = (0.05, 20.0),
        guard: bool = True,
        folds: int = 5,
        seed: int = 0,
        xtol: float = XTOL,
    ) -> None:
        self.bounds = bounds
        self.guard = guard
        self.folds = folds
        self.seed = seed
        self.xtol = xtol

    def __repr__(self) -> str:
        """One line: the temperature and whether the fit converged (and whether it is at
        a bound, or the guard kept :math:`T = 1`), or ``unfitted``; then the options that
        are not the defaults."""
        if hasattr(self, "temperature_"):
            state = [f"temperature={number(self.temperature_)}", f"converged={self.converged_}"]
            if self.at_bound_:
                state.append("at_bound=True")
            if self.kept_identity_:
                state.append("kept_identity=True")
        else:
            state = ["unfitted"]
        defaults = {"bounds": (0.05, 20.0), "guard": True, "folds": 5, "seed": 0, "xtol": XTOL}
        return one_line("TemperatureScaling", state + options(self, defaults))

    def _checked_bounds(self) -> tuple[float, float]:
        if not isinstance(self.bounds, tuple | list) or len(self.bounds) != 2:
            raise InputError(
                f"`bounds` must be a pair (low, high) of temperatures; got {self.bounds!r}"
            )
        low, high = self.bounds
        check_scalar(low, name="bounds[0]", low=0.0, low_open=True)
        check_scalar(high, name="bounds[1]", low=0.0, low_open=True)
        if not low < 1.0 < high:
            raise InputError(f"`bounds` must satisfy low < 1 < high; got {self.bounds!r}")
        if not math.isfinite(1.0 / float(low)):
            # the fit works in beta = 1/T: 1/5e-324 is inf, and inf * 0 made the NLL NaN
            # and temperature_ 0.0 (transform then gave NaN rows)
            raise InputError(
                "`bounds[0]` must be a temperature whose reciprocal 1/T is finite in "
                f"float64 (above about 5.6e-309); got {low!r}"
            )
        return float(low), float(high)

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = LOGITS, validate: bool = True
    ) -> TemperatureScaling:
        """Fit the temperature on ``logits`` ``(n, classes)`` (or log-probs, probs) and labels.

        Raises ``InputError`` for a label of probability 0 (a probability of 0, or a
        log-probability or logit of ``-inf``): the NLL is ``+inf`` at every temperature.
        ``validate=False`` skips the values' check, never the labels' range.
        """
        bounds = self._checked_bounds()
        check_flag(self.guard, name="guard")  # InputTypeError, as validate
        check_scalar(self.xtol, name="xtol", low=0.0, high=1.0, high_open=True)
        predictions = as_predictions(logits, labels, form=form, validate=validate)
        require_examples(predictions, purpose="fitting a temperature")
        if self.guard:
            _check_folds(self.folds, self.seed, predictions.n)
        return fit_scaler(self, predictions, bounds)

    def transform(self, logits: Any, /, *, form: str = LOGITS, output: str = "probs") -> Any:
        """The recalibrated distributions ``softmax(z / T)`` as probabilities or log-probs.

        Runs on the host in float64, like the evaluation functions: ``logits`` of any
        library (a CPU tensor, a JAX or array-api-strict array) is read through NumPy,
        and the result is a NumPy float64 array of shape ``(n, classes)`` whatever the
        input's library (``torch.from_numpy(result)`` brings it back to PyTorch).
        Raises ``InputError`` for a class count other than the fitting data's
        (``n_classes_``): a 1-D array is ``n`` binary predictions, as in ``fit``, so
        one row of a 3-class fit's logits, shape ``(3,)``, was turned into three
        binary rows, shape ``(3, 2)``.
        """
        check_fitted(self, "temperature_")
        predictions = unlabelled(logits, form)
        # (a scaler unpickled from before n_classes_ has none: unchecked, as then)
        fitted = getattr(self, "n_classes_", None)
        if fitted is not None:
            check_classes(predictions, fitted, logits)
        return as_output(tempered_scores(all_log_scores(predictions), self.temperature_), output)

    def fit_transform(self, logits: Any, labels: Any, /, *, form: str = LOGITS) -> Any:
        """``fit(logits, labels, form=form)``, then the recalibrated probabilities of ``logits``."""
        return self.fit(logits, labels, form=form).transform(logits, form=form)


def tempered_scores(scores: FloatArray, temperature: float) -> FloatArray:
    r"""The scores ``(n, classes)`` at ``temperature`` :math:`T`: :math:`z / T` up to each
    row's constant, which the log-softmax takes away.

    At :math:`T \ge 1`, :math:`z / T` itself (no larger than :math:`z`).  At :math:`T < 1`,
    :math:`(z - \max_k z_k) / T`: each entry at most 0, so a finite logit past
    :math:`T \cdot 1.8 \times 10^{308}` no longer overflows to ``inf`` and its row to NaN
    (``inf - inf``; issue 13, logits :math:`[10^{307}, 0, -10^{307}]` at :math:`T = 0.05`
    gave the probabilities ``[nan, 0, 0]`` for ``[1, 0, 0]``).  An entry whose
    :math:`(z - \max) / T` passes :math:`-1.8 \times 10^{308}` is ``-inf``: its
    log-probability rounds to that in float64, its probability to 0.  A row whose maximum
    is not finite (``validate=False``) is divided as it is.
    """
    if temperature >= 1.0:
        return scores / temperature
    shifted = minus_row_max(scores, finite_row_max(scores, xp=np))
    with np.errstate(over="ignore"):
        return np.divide(shifted, temperature, out=shifted)


def fit_scaler(
    scaler: TemperatureScaling,
    predictions: Predictions,
    bounds: tuple[float, float],
    memo: RowMemo | None = None,
) -> TemperatureScaling:
    """:meth:`TemperatureScaling.fit` on checked ``predictions`` (its options checked, and
    ``bounds`` those of ``_checked_bounds``): the report fits through this to share a
    :class:`RowMemo` with its own cross-fitting.  Raises ``InputError`` for a label of
    probability 0, and for 0 rows."""
    require_examples(predictions, purpose="fitting a temperature")
    _check_finite_label_scores(predictions)
    if memo is None:
        memo = RowMemo.for_fits(predictions, bounds)
    result = _fit_beta(predictions, bounds, scaler.xtol, memo)
    # at a bound, the bound itself: 1 / (1 / 0.9) is 0.8999999999999999, outside the bounds
    scaler.fitted_temperature_ = (
        (bounds[0] if result.beta > 1.0 else bounds[1]) if result.bound else 1.0 / result.beta
    )
    scaler.at_bound_ = result.bound
    scaler.converged_ = result.converged and not result.bound
    scaler.n_iter_ = result.iterations
    scaler.gradient_ = result.slope
    scaler.nll_after_ = result.nll
    scaler.nll_before_ = result.nll_at_one
    scaler.cross_fitted_nll_ = None
    scaler.kept_identity_ = False
    scaler.temperature_ = scaler.fitted_temperature_
    scaler.n_classes_ = predictions.classes
    if scaler.guard:
        scaler.cross_fitted_nll_ = cross_fitted_nll(
            predictions,
            folds=scaler.folds,
            seed=scaler.seed,
            bounds=bounds,
            xtol=scaler.xtol,
            memo=memo,
        ).nll
        if not scaler.cross_fitted_nll_ < scaler.nll_before_:
            scaler.temperature_ = 1.0
            scaler.kept_identity_ = True
    return scaler


def recalibration_gap(
    logits: Any,
    labels: Any,
    /,
    *,
    form: str = LOGITS,
    folds: int = 5,
    seed: int = 0,
    base: float | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
    validate: bool = True,
) -> float:
    r"""NLL minus the cross-fitted NLL after temperature scaling: miscalibration in nats.

    .. math:: \Delta = \mathrm{NLL}(T = 1) - \frac1n \sum_f \sum_{i \in f}
              -\log \mathrm{softmax}(z_i / \hat T_{-f})_{y_i}

    where :math:`\hat T_{-f}` is fitted on all folds but :math:`f`.  Unlike binned
    calibration errors it is a difference of proper scores, needs no bins, and is in the
    units of the loss.  Cross-fitting keeps the fit from scoring itself: for a calibrated
    model the gap is near 0 (it may be slightly negative).

    The folds are stratified by top-1 misses (rows whose label scores below the row's
    maximum): each fold holds the floor or ceil of its share of them, the rows of each
    stratum assigned at random with ``seed``.  The misses are what the temperature is
    fitted to (a correctly ranked row's NLL only falls as :math:`T \to 0`), so with few
    errors an unstratified split can leave a training fold with none, fit
    :math:`T_{\min}` and charge the held-out errors at it.  When a training fold's fit
    is still at one of ``bounds`` (a single miss, or none, in all the data; or
    predictions nearly independent of the labels) no maximum-likelihood temperature
    exists there, the gap would measure the bound rather than the model, and the result
    is NaN.

    Parameters
    ----------
    logits : array_like, shape (n, classes)
        Predictions in the form named by ``form`` (default logits).
    labels : array_like of int, shape (n,)
        True classes.
    folds : int, default 5
        Number of cross-fitting folds (stratified by top-1 misses, rows assigned at
        random with ``seed``).
    base : float, optional
        None for nats, 2 for bits.
    bounds : (float, float), default (0.05, 20.0)
        Temperature bounds of each fit.
    validate : bool, default True
        Check the values (as :func:`calibration_error`). The labels' range is checked
        in any case (a label outside ``[0, classes)`` is an index out of bounds).

    Returns
    -------
    float
        The gap, in nats (or in ``base``); NaN when a training fold's temperature is at a
        bound: too few errors to cross-fit a temperature, predictions far less confident
        than the labels warrant (the smallest temperature), or predictions that tell next
        to nothing about the labels (the largest).

    Raises
    ------
    InputError
        A label of probability 0 (a probability of 0, or a log-probability or logit of
        ``-inf``): the NLL is ``+inf`` before and after any temperature, so the gap is
        undefined.  Fewer rows than ``folds``; invalid predictions, labels or options.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(3000, 5)) * 2
    >>> y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in z])
    >>> abs(crossent.recalibration_gap(z, y)) < 2e-3        # calibrated: near 0
    True
    >>> crossent.recalibration_gap(3 * z, y) > 0.1          # over-confident: clearly positive
    True
    """
    bounds_checked = TemperatureScaling(bounds=bounds)._checked_bounds()
    log_base = check_base(base)
    predictions = as_predictions(logits, labels, form=form, validate=validate)
    _check_folds(folds, seed, predictions.n)
    _check_finite_label_scores(predictions)
    memo = RowMemo.for_fits(predictions, bounds_checked)
    if memo is not None:  # every row's numbers at T = 1 kept, for the folds to gather
        _moments(predictions, 1.0, memo)
    after = cross_fitted_nll(
        predictions, folds=folds, seed=seed, bounds=bounds_checked, xtol=XTOL, memo=memo, gap=True
    )
    gap = math.nan if after.at_bound else after.gap
    return gap / log_base if log_base is not None else gap
