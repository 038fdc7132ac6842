"""Several models' reports on the same labelled examples, and their paired differences.

For each model against the first (the baseline), the mean per-example difference of the
log loss and of the Brier score, with a bootstrap percentile interval that resamples
examples and keeps each example's pair of scores together, exactly as
:func:`compare_log_loss` does (the same seed gives the same interval).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration._bootstrap import (
    check_resampling,
    infinite_rows,
    mean_of,
    mean_replicates,
    percentile_interval,
)
from ..errors import InputError, InputTypeError
from . import _compute
from ._compute import Report, _id_value, text_sequence
from ._text import to_json_number

__all__ = ["ReportComparison", "compare_reports"]

_METRICS = (("nll_nats", "surprisal"), ("brier", "brier_rows"))


@dataclass(frozen=True)
class ReportComparison:
    """Reports of several models on the same examples and their paired differences.

    Attributes
    ----------
    names : list of str
        The models' names (the first is the baseline).
    reports : list of Report
    comparisons : list of dict
        One entry per model after the first and metric (``"nll_nats"``, ``"brier"``):
        ``model``, ``baseline``, ``metric``, ``difference`` (model minus baseline; negative
        is better for both metrics), ``ci_low``, ``ci_high``, ``confidence``,
        ``resamples``, ``seed``.  An infinite value is the string ``"inf"`` or
        ``"-inf"`` (one model gives some true label probability 0); a value is None when
        it is undefined: when both models give some true label probability 0 (both mean
        log losses are ``+inf``, and ``inf - inf`` has no value; :func:`compare_log_loss`
        refuses that case), the difference and both ends of its interval are None.  An
        interval end is None too when the replicates hold both ``+inf`` and ``-inf``
        (or NaN): a percentile between them is ``inf - inf``, which has no value.
    """

    names: list[str]
    reports: list[Report] = field(repr=False)
    comparisons: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object that ``crossent report A B [C ...] --json`` prints.

        It holds ``models`` (each model's report with its ``name``) and ``comparisons``.
        """
        from .. import __version__

        models = []
        for name, report in zip(self.names, self.reports, strict=True):
            models.append({"name": name, **report.to_dict()})
        return {
            "format": _compute.FORMAT,
            "crossent_version": __version__,
            "models": models,
            "comparisons": copy.deepcopy(self.comparisons),
        }

    @property
    def passed(self) -> bool:
        """True when every model passed its gates."""
        return all(report.passed for report in self.reports)

    def to_html(self, path: str | Path | None = None) -> str:
        """One HTML page: the comparison table, overlaid reliability curves with a legend,
        then each model's report; written atomically to ``path`` when given."""
        from ._html import comparison_html, delivered

        return delivered(comparison_html(self), path)

    def _repr_html_(self) -> str:
        from ._html import comparison_html

        return comparison_html(self, standalone=False)


def _checked_reports(reports: object) -> list[Report]:
    """``reports`` as a list, each entry a :class:`Report` (else InputTypeError naming it)."""
    if isinstance(reports, Report | str | bytes) or not isinstance(reports, Iterable):
        raise InputTypeError(
            f"`reports` must be a sequence of crossent.Report; got {type(reports).__name__}"
        )
    checked = list(reports)
    for index, item in enumerate(checked):
        if not isinstance(item, Report):
            raise InputTypeError(
                f"`reports[{index}]` must be a crossent.Report (from crossent.report); got "
                f"{type(item).__name__}"
            )
    return checked


def compare_reports(
    reports: Sequence[Report],
    /,
    *,
    names: Sequence[str] | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> ReportComparison:
    r"""Paired comparison of models' reports on the same labelled examples.

    For model :math:`m` against the baseline (the first report) and a per-example score
    :math:`s` (log loss :math:`-\log p_{y}` or Brier score):

    .. math:: \Delta_m = \frac1n\sum_i s_i^{(m)} - s_i^{(0)},

    with a bootstrap percentile interval over examples, each example's pair of scores
    resampled together (as :func:`compare_log_loss`; the same seed gives the same draws).
    The draws are multinomial counts of the examples (:func:`bootstrap_interval`'s for
    the means and the class-wise calibration error); the report's calibration-error
    interval of one curve draws block by block instead: the same distribution (Efron's
    bootstrap), other draws of the same seed.

    Parameters
    ----------
    reports : sequence of Report
        From :func:`report`, on the same labels in the same order (checked; and the
        same ids, when every report has them).
    names : sequence of str, optional
        The models' names, no name twice and none empty (default: each report's
        ``source``, followed by ``" (reports[i])"`` where reports share one, as two
        NumPy arrays of one shape do); a bare str is refused, not split into one-letter
        names.
    confidence, resamples, seed
        As in :func:`bootstrap_interval`.

    Returns
    -------
    ReportComparison
        ``to_dict()`` (``models`` and ``comparisons``), ``to_html(path)``.

    Raises
    ------
    InputError
        Fewer than two reports, different class counts, labels or ids, the same class
        names in another order, other class names (when both reports name their
        classes: not the default ``"0", ..., "K-1"``), calibration errors of different
        definitions (``to_dict()["ece"]["definition"]``: other bins, binning, scope,
        norm, estimator or closed side), a name given twice in ``names`` or an empty
        one, or bad options.
    InputTypeError
        ``reports`` is not a sequence of :class:`Report`, or ``names`` not one of str.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(300, 3)) * 3
    >>> labels = logits.argmax(axis=1)
    >>> sharp = crossent.report(logits, labels, form="logits", resamples=20)
    >>> soft = crossent.report(logits / 3, labels, form="logits", resamples=20)
    >>> result = crossent.compare_reports([sharp, soft], names=["sharp", "soft"], resamples=200)
    >>> nll = result.comparisons[0]
    >>> nll["metric"], bool(nll["ci_low"] > 0)   # the softer model loses on these labels
    ('nll_nats', True)
    """
    reports = _checked_reports(reports)
    if len(reports) < 2:
        raise InputError(f"`reports` must hold at least 2 reports; got {len(reports)}")
    confidence, resamples, seed = check_resampling(confidence, resamples, seed)
    given = text_sequence(names, name="names")
    chosen = given if given is not None else _distinct_sources(reports)
    if len(chosen) != len(reports):
        raise InputError(f"`names` has {len(chosen)} names for {len(reports)} reports")
    if given is not None:
        _check_given_names(given)
    baseline = reports[0]
    for name, report in zip(chosen[1:], reports[1:], strict=True):
        if report.labels.shape != baseline.labels.shape:
            raise InputError(
                f"model {name!r} has {report.labels.shape[0]} rows but {chosen[0]!r} has "
                f"{baseline.labels.shape[0]}: a paired comparison needs the same examples"
            )
        classes, baseline_classes = report.payload["classes"], baseline.payload["classes"]
        if classes != baseline_classes:
            raise InputError(
                f"model {name!r} predicts {classes} classes but {chosen[0]!r} predicts "
                f"{baseline_classes}: a paired comparison needs models of the same classes"
            )
        order, baseline_order = list(report.class_names), list(baseline.class_names)
        if order != baseline_order and sorted(order) == sorted(baseline_order):
            # the same classes in another order: class k of one is another class of the
            # other, and integer labels (positions) agree: the scores were paired wrongly
            raise InputError(
                f"model {name!r} names the same classes as {chosen[0]!r} in another order "
                f"({_shown_names(order)} against {_shown_names(baseline_order)}): a paired "
                "comparison needs the k-th class to be the same class in both; write the "
                "class columns in one order"
            )
        if _named(order) and _named(baseline_order) and set(order) != set(baseline_order):
            # both name their classes, and not the same ones: the labels are positions,
            # and column k of one may be another class than column k of the other
            raise InputError(
                f"model {name!r} names other classes than {chosen[0]!r} "
                f"({_shown_names(order)} against {_shown_names(baseline_order)}): a paired "
                "comparison needs the same classes in both; name the class columns alike"
            )
        definition, baseline_definition = (
            r.payload["ece"]["definition"] for r in (report, baseline)
        )
        if definition != baseline_definition:
            # the comparison's ECE and smECE columns and its overlaid reliability curves
            # put the models side by side under one heading and one axis label
            raise InputError(
                f"model {name!r} and {chosen[0]!r} define their calibration error "
                f"differently ({definition!r} against {baseline_definition!r}): their ECE "
                "columns and reliability curves would be compared as one measure; make "
                "both reports with the same bins, binning, scope, norm, debias and closed "
                "(a 1-D binary input takes the positive-class scope)"
            )
        differ = np.flatnonzero(report.labels != baseline.labels)
        if differ.size:
            row = int(differ[0])
            raise InputError(
                f"model {name!r} and {chosen[0]!r} have different labels (first at row {row}: "
                f"{int(report.labels[row])} and {int(baseline.labels[row])}); a paired "
                "comparison needs the same examples in the same order"
            )
        if report.ids is not None and baseline.ids is not None:
            # the labels can agree row by row on rows in another order (files sorted by
            # label); the ids, when both have them, say whether the rows are the same
            at = _first_different_id(report.ids, baseline.ids)
            if at is not None:
                raise InputError(
                    f"model {name!r} and {chosen[0]!r} have different ids (first at row "
                    f"{at}: {_id_value(report.ids[at])!r} and "
                    f"{_id_value(baseline.ids[at])!r}); a paired comparison needs the same "
                    "examples in the same order"
                )
    pairs = [(m, metric, rows) for m in range(1, len(reports)) for metric, rows in _METRICS]
    # Both models with an infinite loss somewhere: the mean difference is inf - inf,
    # undefined (compare_log_loss refuses it); None, not a NaN-tainted interval.
    # A surprisal of logits past float64 (+inf for 2e308) is paired by the rows' halves
    # (Report.half_surprisal): the differences are then halved, their means doubled.
    halved = {
        (m, metric)
        for m, metric, rows in pairs
        if rows == "surprisal"
        and (reports[m].half_surprisal is not None or baseline.half_surprisal is not None)
    }

    def scores(report: Report, rows: str, half: bool) -> Any:
        if not half:
            return getattr(report, rows)
        return report.surprisal / 2.0 if report.half_surprisal is None else report.half_surprisal

    undefined = {
        (m, metric)
        for m, metric, rows in pairs
        if infinite_rows(
            scores(reports[m], rows, (m, metric) in halved),
            scores(baseline, rows, (m, metric) in halved),
        )
        is not None
    }
    differences = {
        (m, metric): scores(reports[m], rows, (m, metric) in halved)
        - scores(baseline, rows, (m, metric) in halved)
        for m, metric, rows in pairs
        if (m, metric) not in undefined
    }
    # one stream of draws for every pair: each example's scores are resampled together
    # (the draws do not depend on how many pairs there are)
    drawn_of = dict(
        zip(
            differences,
            mean_replicates(list(differences.values()), resamples=resamples, seed=seed),
            strict=True,
        )
    )
    comparisons = []
    for m, metric, _ in pairs:
        if (m, metric) in undefined:
            value = low = high = np.nan
        else:
            low, high = _interval(drawn_of[(m, metric)], confidence)
            value = mean_of(differences[(m, metric)])
            if (m, metric) in halved:  # (+inf only where the mean passes float64)
                value, low, high = (2.0 * float(v) for v in (value, low, high))
        comparisons.append(
            {
                "model": chosen[m],
                "baseline": chosen[0],
                "metric": metric,
                "difference": to_json_number(value),
                "ci_low": to_json_number(low),
                "ci_high": to_json_number(high),
                "confidence": confidence,
                "resamples": resamples,
                "seed": seed,
            }
        )
    return ReportComparison(chosen, reports, comparisons)


def _distinct_sources(reports: list[Report]) -> list[str]:
    """The models' default names: each report's ``source``, and a source that several
    reports share followed by the report's place, ``" (reports[1])"``.  Two NumPy arrays
    of one shape are both ``'numpy.ndarray (300 x 3)'``: the comparison named model
    'numpy.ndarray (300 x 3)' against baseline 'numpy.ndarray (300 x 3)', which
    ``names`` refuses (:func:`_check_given_names`)."""
    sources = [str(r.payload["source"]) for r in reports]
    shared = {source for source in sources if sources.count(source) > 1}
    return [
        f"{source} (reports[{index}])" if source in shared else source
        for index, source in enumerate(sources)
    ]


def _check_given_names(names: list[str]) -> None:
    """Refuse an empty name (or one of spaces only: the table's row and the heading
    "Paired differences against  (95% ...)" showed nothing) and a name given twice."""
    for index, name in enumerate(names):
        if not name.strip():
            raise InputError(
                f"`names[{index}]` is {name!r}: each model needs a name that shows in the "
                "tables and headings"
            )
    _check_distinct_names(names)


def _check_distinct_names(names: list[str]) -> None:
    """Refuse a model name given twice: the table, the differences (``model`` against
    ``baseline``) and the HTML sections could not tell the two models apart (``names=["x",
    "x"]`` gave a difference of model 'x' against baseline 'x'); ``crossent report A B``
    refuses a path given twice the same way."""
    repeat = _compute.first_repeat(names)
    if repeat is not None:
        first, index = repeat
        raise InputError(
            f"`names` has {names[index]!r} at index {first} and at index {index}: each "
            "model needs its own name, or the comparison could not tell them apart"
        )


def _named(class_names: list[str]) -> bool:
    """Whether the names were given: not the default ``0, 1, ..., K-1`` of unnamed classes
    (two files of unnamed classes have nothing to compare but their count)."""
    return class_names != [str(k) for k in range(len(class_names))]


def _shown_names(class_names: list[str]) -> str:
    """At most six names, joined: "x, y, z" or "c0, c1, c2, c3, c4, c5, ..."."""
    return ", ".join(class_names[:6]) + (", ..." if len(class_names) > 6 else "")


def _first_different_id(ids: Any, baseline: Any) -> int | None:
    """The first row whose ids differ, or None; two missing ids (NaN, None, NaT) are the
    same id, as in the report's JSON (both null)."""
    for row in np.flatnonzero(np.asarray(ids) != np.asarray(baseline)).tolist():
        if _id_value(ids[row]) != _id_value(baseline[row]):
            return int(row)
    return None


def _interval(replicates: Any, confidence: float) -> tuple[float, float]:
    """The percentile interval of the replicates; both ends NaN (undefined) when they
    hold NaN or both infinities, whose percentiles mix ``inf - inf``.

    From real predictions every replicate of a difference is finite or of one sign: a
    surprisal is never ``-inf``, and two models with infinite losses make the whole
    difference undefined before any draw; the rule keeps any other caller's replicates
    from giving one end that is NaN and one that is not.
    """
    positive, negative = replicates == np.inf, replicates == -np.inf
    if np.isnan(replicates).any() or (positive.any() and negative.any()):
        return np.nan, np.nan
    return percentile_interval(replicates, confidence)
