"""Proper scoring rules and accuracy of predicted distributions against integer labels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_base
from ..errors import InputError
from ._inputs import Predictions, as_predictions
from ._summaries import TotalsRequest, map_totals, stacked_blocks, summarize, summary_blocks
from ._temperature import mean_nll

__all__ = ["accuracy", "brier_score", "negative_log_likelihood", "score_means", "spherical_score"]


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise InputError(f"`reduction` must be 'mean' or 'none'; got {reduction!r}")


_SUMMED = {"surprisal": 0, "brier": 1, "spherical": 2, "correct": 4}
"""Where each score's sum is in :attr:`BlockTotals.sums`."""


def _score(
    probs: Any,
    labels: Any,
    field: str,
    options: tuple[str, str, bool, bool],
    *,
    top: bool = False,
) -> Any:
    """The per-example ``field`` of :class:`ExampleSummaries`, or its mean, from one
    fused pass over the predictions that validates them on the way (``top``: the
    confidence and predicted class are needed).  The mean adds each block's
    compensated sum (:func:`stacked_blocks`, the caller's thread and the pool's, as
    ``EvaluationState.update`` reads them; :func:`map_totals` where that does not
    apply), computed in the same pass: no per-example array is kept.  ``options``:
    ``(form, reduction, validate, renormalize)``."""
    form, reduction, validate, renormalize = options
    _check_reduction(reduction)
    predictions = as_predictions(
        probs, labels, form=form, validate=validate, renormalize=renormalize, defer=True
    )
    if reduction == "none":
        return getattr(summarize(predictions, top=top), field)
    return score_means(predictions, (field,), top=top)[field]


def score_means(
    predictions: Predictions, fields: tuple[str, ...], *, top: bool = False
) -> dict[str, float]:
    """The mean of each of ``fields`` (``"surprisal"``, ``"brier"``, ``"spherical"``,
    ``"correct"``, the last with ``top``) over the rows of ``predictions``, in one pass:
    the :func:`math.fsum` of each block's sum (:func:`map_totals`, the sums the
    kernel forms in its pass, each sum the same bits whatever else is asked), divided
    by the rows.  The one home of these means: the scoring functions and
    :func:`crossent.report` (whose streamed sums, added block after block in another
    order, were 1 ulp off :func:`brier_score` and :func:`spherical_score`)."""
    if predictions.n == 0:
        raise InputError("there are no examples to average (the input has 0 rows)")
    request = TotalsRequest(
        top=top,
        surprisal="surprisal" in fields,
        brier="brier" in fields,
        spherical="spherical" in fields,
    )
    stacked = stacked_blocks(predictions, request)  # (the same blocks' sums either way)
    sums = (
        [part.sums for _, part in map_totals(predictions, request)]
        if stacked is None
        else list(stacked.sums)
    )
    means = {}
    for field in fields:
        try:
            means[field] = math.fsum(float(part[_SUMMED[field]]) for part in sums) / predictions.n
        except OverflowError:  # fsum's "intermediate overflow": finite blocks, huge total
            means[field] = math.inf
        if field == "surprisal" and means[field] == math.inf:
            means[field] = _mean_of_huge(predictions)
    return means


def _mean_of_huge(predictions: Predictions) -> float:
    """The mean surprisal when the sum of the surprisals overflows (or one is +inf):
    each row's divided by the rows first, block by block (no per-row array of the
    whole input is kept).  Surprisals of about 1e308 each (logits of +-1e308) summed to
    +inf, and the NLL of rows 1e308, 1e308 and log 2 was reported as inf, not 6.67e307;
    a row of surprisal +inf (probability 0) keeps the mean +inf.

    Logits are averaged by the temperature fit's pass at :math:`T = 1`
    (:func:`._temperature.mean_nll`, the number of ``TemperatureScaling``'s
    ``nll_before_``): a row of logits more than 1.8e308 apart has a surprisal past
    float64 (``[1e308, -1e308]``, label 1: 2e308), +inf here, where the mean of it and
    three rows near 0 is 5e307; its share of the mean is formed there from the logits'
    halves."""
    if predictions.form == "logits":
        return mean_nll(predictions)
    n = predictions.n
    parts = [
        float(np.sum(block.surprisal / n))
        for _, block in summary_blocks(predictions, top=False, entropy=False)
    ]
    try:
        return math.fsum(parts)
    except OverflowError:  # a mean within rounding of float64's largest number
        return math.inf


def negative_log_likelihood(
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    base: float | None = None,
    reduction: str = "mean",
    renormalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""The log score: the mean surprisal of the true labels.

    .. math:: \mathrm{NLL} = -\frac1n \sum_i \log p_{i, y_i}

    Parameters
    ----------
    probs : array_like, shape (n, classes)
        Predicted distributions in the form named by ``form``.
    labels : array_like of int, shape (n,)
        True classes.
    form : {"probs", "log_probs", "logits"}, default "probs"
        What ``probs`` holds; never inferred.
    base : float, optional
        Logarithm base: None for nats, 2 for bits.
    reduction : {"mean", "none"}, default "mean"
        The mean (a float), or the per-example surprisals (an array).
    renormalize : bool, default False
        Divide each row of probabilities by its sum first (``form="probs"`` only), for
        outputs stored at a lower precision than they were computed in (e.g. bfloat16
        probabilities saved as float32, off by about 1e-3).  Never the default: a row
        that does not sum to 1 within the dtype's tolerance is otherwise an error.  The
        same option as :func:`calibration_error`'s, which also reports the largest
        deviation corrected.
    validate : bool, default True
        Check the values (ranges, NaN, rows summing to 1 within a dtype-aware
        tolerance). The labels' range is checked in any case (a label outside ``[0,
        classes)`` is an index out of bounds), as are shapes and dtypes.

    Returns
    -------
    float or ndarray
        ``+inf`` when a true label has probability 0: no clipping; 0 (``+0.0``) when it
        has probability 1. A Python float or a float64 array whatever the input's dtype,
        as every evaluation function (:func:`brier_score`, :func:`calibration_error`,
        :func:`report`, ...): they compute in float64 on the host. Long double
        (``np.longdouble``) predictions are rounded to float64 first, so a label
        probability within :math:`2^{-54}` of 1 scores 0 (:math:`1 - 2^{-60}`: 0, where
        :func:`surprisal` of the long double gives 8.67e-19); the measures
        (:func:`surprisal`, :func:`cross_entropy`) compute in long double.

    See Also
    --------
    softmax_cross_entropy : The same quantity as a training loss from logits.
    perplexity : ``exp`` of this value, for distributions.

    Examples
    --------
    The exponential of the log score is the perplexity:

    >>> import math, crossent
    >>> probs, labels = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], [0, 1]
    >>> nll = crossent.negative_log_likelihood(probs, labels)
    >>> round(nll, 6), round(math.exp(nll), 6) == round(1 / math.sqrt(0.7 * 0.8), 6)
    (0.289909, True)
    """
    log_base = check_base(base)
    values = _score(probs, labels, "surprisal", (form, reduction, validate, renormalize))
    return values if log_base is None else values / log_base


def brier_score(
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    scale: str = "sum",
    reduction: str = "mean",
    renormalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""The Brier score: squared distance between the prediction and the one-hot label.

    .. math:: \mathrm{BS} = \frac1n \sum_i \sum_k (p_{ik} - [y_i = k])^2 \in [0, 2]

    Brier (1950)'s multi-category score, as scikit-learn's multiclass
    ``brier_score_loss``.  ``scale="half"`` halves it into [0, 1]; for two classes that
    is :math:`(p_1 - y)^2`, scikit-learn's binary ``brier_score_loss``.

    Parameters
    ----------
    probs, labels, form, reduction, renormalize, validate
        As in :func:`negative_log_likelihood`.
    scale : {"sum", "half"}, default "sum"
        The sum over classes (in [0, 2]) or half of it (in [0, 1]).

    Returns
    -------
    float or ndarray

    Notes
    -----
    Each term is formed as :math:`\sum_{k \ne y} p_k^2 + (1 - p_y)^2` with
    :math:`1 - p_y` from ``expm1`` of the log-probability, so near-certain correct
    predictions keep their small score to full relative precision.

    Examples
    --------
    >>> import crossent
    >>> crossent.brier_score([[0.7, 0.2, 0.1]], [0])
    0.14
    >>> round(crossent.brier_score([[0.25, 0.75]], [1], scale="half"), 6)  # (1 - 0.75)^2
    0.0625
    """
    if scale not in ("sum", "half"):
        raise InputError(f"`scale` must be 'sum' or 'half'; got {scale!r}")
    values = _score(probs, labels, "brier", (form, reduction, validate, renormalize))
    return values / 2 if scale == "half" else values


def spherical_score(
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    reduction: str = "mean",
    renormalize: bool = False,
    validate: bool = True,
) -> Any:
    r"""The spherical score, a proper scoring rule in [0, 1] where higher is better.

    .. math:: S = \frac1n \sum_i \frac{p_{i, y_i}}{\lVert p_i \rVert_2}

    Strictly proper (Gneiting and Raftery 2007, doi:10.1198/016214506000001437) and,
    unlike the log score, finite when the true label has probability 0.

    Parameters
    ----------
    probs, labels, form, reduction, renormalize, validate
        As in :func:`negative_log_likelihood`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import crossent
    >>> round(crossent.spherical_score([[0.5, 0.5]], [0]) ** 2, 12)  # (0.5 / sqrt(0.5))^2
    0.5
    """
    return _score(probs, labels, "spherical", (form, reduction, validate, renormalize))


def accuracy(
    probs: Any,
    labels: Any,
    /,
    *,
    form: str = "probs",
    renormalize: bool = False,
    reduction: str = "mean",
    validate: bool = True,
) -> Any:
    r"""Fraction of examples whose most probable class (the first, on ties) is the label.

    .. math:: \mathrm{acc} = \frac1n \sum_i [\arg\max_k p_{ik} = y_i]

    Parameters
    ----------
    probs, labels, form, renormalize, validate
        As in :func:`negative_log_likelihood`.
    reduction : {"mean", "none"}, default "mean"
        The fraction (a float), or per-example 0/1 values (an array).

    Returns
    -------
    float or ndarray
        The fraction, or per-example 0/1 values with ``reduction="none"``.

    Examples
    --------
    >>> import crossent
    >>> crossent.accuracy([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]], [0, 0, 1])
    0.3333333333333333
    """
    return _score(probs, labels, "correct", (form, reduction, validate, renormalize), top=True)
