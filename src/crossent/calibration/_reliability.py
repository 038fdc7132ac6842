"""Reliability diagrams: the per-bin data, and a matplotlib figure (extra ``plot``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_flag, check_scalar
from .._fonts import font_families
from .._hints import install_command
from ..errors import InputError, InputTypeError, MissingDependencyError
from ._error import (
    CalibrationError,
    bin_indices,
    calibration_error_of,
    check_spec,
    exact_means,
    scope_arrays,
)
from ._inputs import FloatArray, as_predictions, require_examples

__all__ = ["ReliabilityDiagram", "diagram_of", "plot_reliability_diagram", "reliability_diagram"]


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin data of a reliability diagram (arrays of shape ``(bins,)``).

    Attributes
    ----------
    lower, upper : ndarray
        Bin edges.
    confidence : ndarray
        Mean confidence of the bin (NaN when empty).
    accuracy : ndarray
        Hit rate of the bin (NaN when empty).
    count : ndarray of int
        Examples in the bin.
    accuracy_low, accuracy_high : ndarray
        Jeffreys interval for the bin's hit rate at ``confidence_level`` (NaN when empty).
    calibration : CalibrationError
        The calibration error of these bins, with its definition.
    """

    lower: FloatArray
    upper: FloatArray
    confidence: FloatArray
    accuracy: FloatArray
    count: Any
    accuracy_low: FloatArray
    accuracy_high: FloatArray
    confidence_level: float
    calibration: CalibrationError


def reliability_diagram(
    probs: Any,
    labels: Any,
    /,
    *,
    bins: int = 15,
    binning: str = "uniform",
    scope: str = "top-label",
    closed: str = "left",
    form: str = "probs",
    confidence_level: float = 0.95,
    validate: bool = True,
) -> ReliabilityDiagram:
    r"""The data of a reliability diagram: per bin, confidence, accuracy, count, interval.

    .. math:: \bar c_b = \frac{1}{n_b}\sum_{i \in B_b} c_i, \qquad
              \bar h_b = \frac{1}{n_b}\sum_{i \in B_b} h_i

    The interval on each bin's accuracy is the Jeffreys interval,
    :math:`\mathrm{Beta}(h + \tfrac12, n - h + \tfrac12)` quantiles (Brown, Cai and
    DasGupta 2001, doi:10.1214/ss/1009213286), which behaves well for the small counts of
    sparsely populated bins.

    Parameters
    ----------
    probs, labels, bins, binning, closed, form, validate
        As in :func:`calibration_error`.
    scope : {"top-label", "positive-class"}, default "top-label"
        One curve; the class-wise scope has one diagram per class.
    confidence_level : float, default 0.95

    Returns
    -------
    ReliabilityDiagram
        Per-bin arrays and the :class:`CalibrationError` of the same bins.

    Examples
    --------
    scikit-learn's ``calibration_curve`` documented example: ``prob_true`` is
    [0, 0.5, 1] and ``prob_pred`` [0.2, 0.525, 0.85]:

    >>> import numpy as np, crossent
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    >>> p1 = np.array([0.1, 0.2, 0.3, 0.4, 0.65, 0.7, 0.8, 0.9, 1.0])
    >>> d = crossent.reliability_diagram(np.stack([1 - p1, p1], axis=1), y, bins=3,
    ...     scope="positive-class", closed="right")
    >>> d.accuracy.round(3).tolist(), d.confidence.round(3).tolist()
    ([0.0, 0.5, 1.0], [0.2, 0.525, 0.85])
    """
    level = check_scalar(
        confidence_level, name="confidence_level", low=0.0, high=1.0, low_open=True
    )
    if scope == "class-wise":
        raise InputError(
            "a reliability diagram shows one curve: use scope 'top-label' or 'positive-class'"
        )
    # calibration_error's steps, its predictions kept for the bins' exact means
    spec = check_spec(
        bins=bins, binning=binning, norm="l1", scope=scope, debias=False, closed=closed
    )
    predictions = as_predictions(probs, labels, form=form, validate=validate, defer=True)
    require_examples(predictions, purpose="a calibration error")
    result = calibration_error_of(predictions, spec)
    return diagram_of(result, level, lambda: scope_arrays(predictions, spec.scope)[0])


def diagram_of(result: CalibrationError, level: float, confidence: Any) -> ReliabilityDiagram:
    """The diagram of a one-curve calibration error's bins, with Jeffreys intervals at
    ``level`` (shared by :func:`reliability_diagram` and the report, which has the
    per-row confidences already).

    ``confidence``: the rows' confidences (or a callable giving them, called only if
    needed), for the bins' mean confidences where the rounding of a bin's sum could
    decide its gap (``exact_means``, as the value's: a perfectly calibrated bin's
    confidence was 0.7000000000000064 where its accuracy is 0.7: 1000 rows of 0.7)."""
    from scipy import special  # here, not at import (issue 13: import time)

    stats = result.statistics
    mean = exact_means(stats, confidence, lambda rows: bin_indices(rows, result.edges, result.spec))
    count = stats.count
    empty = count == 0
    # the Beta quantiles of scipy.stats.beta.ppf / isf (the same Boost functions),
    # without importing scipy.stats (0.5 s); of the occupied bins only (an empty bin's
    # are NaN: 4 rows in 2**20 bins solved 2**21 quantiles of nothing)
    occupied = np.flatnonzero(~empty)
    hits, total = stats.hits[occupied], count[occupied]
    tail = (1.0 - level) / 2.0
    low, high = np.full(count.shape, np.nan), np.full(count.shape, np.nan)
    low[occupied] = special.betaincinv(hits + 0.5, total - hits + 0.5, tail)
    high[occupied] = special.betainccinv(hits + 0.5, total - hits + 0.5, tail)
    return ReliabilityDiagram(
        lower=result.edges[:-1],
        upper=result.edges[1:],
        confidence=stats.mean_confidence(mean),
        accuracy=stats.accuracy(),
        count=count.astype(np.int64),
        accuracy_low=np.where(empty, np.nan, np.where(stats.hits == 0, 0.0, low)),
        accuracy_high=np.where(empty, np.nan, np.where(stats.hits == count, 1.0, high)),
        confidence_level=level,
        calibration=result,
    )


def plot_reliability_diagram(
    diagram: ReliabilityDiagram, /, *, logit_axis: bool = False, title: str | None = None
) -> Any:
    r"""Draw a reliability diagram and the confidence histogram; returns the matplotlib Figure.

    Top panel: accuracy :math:`\bar h_b` against mean confidence :math:`\bar c_b` per
    non-empty bin with its interval band, the diagonal of perfect calibration

    .. math:: \bar h_b = \bar c_b,

    and the count written above each point (for the positive-class scope, the fraction
    of label 1 against the mean :math:`P(\text{label} = 1)`, and the axes say so).
    Bottom panel: how many examples fall in each bin.  Needs matplotlib (``pip install
    '.[plot]'`` from a clone); the figure is created without pyplot, so no display is
    needed.

    Parameters
    ----------
    diagram : ReliabilityDiagram
        From :func:`reliability_diagram`.
    logit_axis : bool, default False
        A logit-scaled confidence axis, which spreads out the 0.99+ region where modern
        networks put much of their mass.  The axis runs from 1e-4 to 1 - 1e-4: a
        confidence, accuracy or interval end beyond it (0 and 1, at infinity on that
        axis, included) is drawn on its edge, so no bin is dropped.
    title : str, optional
        Defaults to the calibration error and its norm. Drawn in matplotlib's
        ``font.family``, then in installed fonts with other scripts' characters (Noto
        Sans CJK, WenQuanYi, Microsoft YaHei, ...), as the report's figures are.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputTypeError
        ``diagram`` is not a :class:`ReliabilityDiagram` (predictions, a
        :class:`CalibrationError`): make one with :func:`reliability_diagram`.
    MissingDependencyError
        matplotlib is not installed (also a ``ModuleNotFoundError``).

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> logits, labels = rng.normal(size=(200, 3)) * 3, rng.integers(0, 3, size=200)
    >>> diagram = crossent.reliability_diagram(logits, labels, form="logits", bins=10)
    >>> figure = crossent.plot_reliability_diagram(diagram, logit_axis=True)  # doctest: +SKIP
    """
    if not isinstance(diagram, ReliabilityDiagram):
        raise InputTypeError(
            "`diagram` must be a ReliabilityDiagram; got "
            f"{type(diagram).__name__}: make one with "
            "crossent.reliability_diagram(probs, labels, ...)"
        )
    # not by truth value: logit_axis="no" drew a logit axis (a hostile pass)
    logit_axis = check_flag(logit_axis, name="logit_axis")
    if title is not None and not isinstance(title, str):
        raise InputTypeError(f"`title` must be a str or None; got {title!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "plot_reliability_diagram needs matplotlib, which is not installed: "
            f"{install_command('plot')}"
        ) from exc

    figure = Figure(figsize=(5.5, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    shown = diagram.count > 0
    conf, acc = diagram.confidence[shown], diagram.accuracy[shown]
    lo, hi = diagram.accuracy_low[shown], diagram.accuracy_high[shown]
    limits = (1e-4, 1 - 1e-4) if logit_axis else (0.0, 1.0)
    if logit_axis:
        # 0 and 1 are at infinity on a logit axis, where matplotlib masks them: a bin
        # whose accuracy is 1 (every prediction right: common in a few-example bin) or 0
        # vanished with its count, and the band with it. Drawn on the axis' edge instead.
        conf, acc, lo, hi = (np.clip(values, *limits) for values in (conf, acc, lo, hi))
    # the positive-class curve is P(label = 1) against the fraction of label 1
    positive = diagram.calibration.spec.scope == "positive-class"
    rate = "fraction of label 1" if positive else "accuracy"
    top.plot(limits, limits, color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    top.fill_between(
        conf,
        lo,
        hi,
        color="C0",
        alpha=0.2,
        label=f"{diagram.confidence_level:.0%} Jeffreys interval",
    )
    top.plot(conf, acc, marker="o", color="C0", label=f"{rate} per bin")
    for x, y, n in zip(conf, acc, diagram.count[shown], strict=True):
        top.annotate(
            str(n), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7
        )
    top.set_ylabel(rate)
    # The title may be in any script: the report's fonts, with their fallbacks (a title
    # in Chinese drew empty boxes, "Glyph 29483 missing from font(s) DejaVu Sans", where
    # the report's figures found an installed CJK font).
    top.set_title(
        title
        or diagram.calibration.spec.definition.split(",")[0]
        + f" = {diagram.calibration.value:.4f}",
        fontsize=9,
        fontfamily=font_families(),
    )
    top.legend(loc="upper left", fontsize=8)
    # On a logit axis the edges 0 and 1 are at infinity: clip them to the plotted range,
    # or the first and last bins' bars vanish (issue 14).
    # The occupied bins' bars only: an empty bin's has no height (2**20 bins, almost all
    # empty, took minutes to draw).
    lower = np.clip(diagram.lower[shown], *limits)
    upper = np.clip(diagram.upper[shown], *limits)
    bottom.bar(
        lower,
        diagram.count[shown],
        width=upper - lower,
        align="edge",
        color="C1",
        edgecolor="white",
    )
    bottom.set_xlabel("P(label = 1)" if positive else "confidence")
    bottom.set_ylabel("count")
    for axis in (top, bottom):
        if logit_axis:
            axis.set_xscale("logit")
        axis.set_xlim(*limits)
    if logit_axis:
        top.set_yscale("logit")
        top.set_ylim(*limits)
        ticks = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999]
        labels = ["0.001", "0.01", "0.1", "0.5", "0.9", "0.99", "0.999"]
        for axis in (top.xaxis, top.yaxis, bottom.xaxis):
            axis.set_ticks(ticks, labels)  # the default 1-10^{-k} labels overlap
            axis.set_minor_locator(_null_locator())
    else:
        top.set_ylim(0.0, 1.0)
    return figure


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()
