"""``crossent report``: every number of the report, computed through the public API.

The prediction matrix is read in batches of rows (:data:`BATCH_ROWS`), so a
memory-mapped file larger than memory is fine: the evaluation state has a fixed size,
and the bootstrap, the temperature fit and the recalibration gap read the rows block by
block.  Per-row values (one float per row) are the only things held for every row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import crossent

from ._dataset import Dataset

__all__ = ["BATCH_ROWS", "FORMAT", "Report", "build_report"]

FORMAT = 1
"""Schema version of the JSON report; bumped when a field changes meaning or is removed."""

BATCH_ROWS = 1 << 15

_BOUNDS = (0.05, 20.0)
"""The temperatures the fit may choose from (TemperatureScaling's default)."""

_FOLDS = 2
"""Folds of the cross-fitted recalibration gap; fewer rows than this give no gap (null)."""


@dataclass(frozen=True)
class Report:
    """The report's numbers (``payload``, JSON-ready) and the data behind its figures."""

    payload: dict[str, Any]
    summary: crossent.EvaluationSummary
    diagram: crossent.ReliabilityDiagram | None
    surprisal: Any | None
    class_names: list[str]


def _batches(dataset: Dataset) -> Iterator[tuple[int, Any, Any]]:
    for start in range(0, dataset.n, BATCH_ROWS):
        stop = start + BATCH_ROWS
        yield start, dataset.values[start:stop], dataset.labels[start:stop]


def _number(value: float) -> float | None:
    """A JSON number, or null for infinities and NaN."""
    return float(value) if math.isfinite(value) else None


def build_report(
    dataset: Dataset,
    *,
    bins: int,
    resamples: int,
    seed: int,
    top: int,
    figures: bool,
    progress: Callable[[str, int], Callable[[int], None]],
) -> Report:
    """Evaluate ``dataset``; ``progress(label, total)`` returns an ``advance(rows)`` callback."""
    form = dataset.form
    state = crossent.EvaluationState(dataset.classes, bins=bins, keep=top)
    surprisal_parts = []
    advance = progress("evaluating", dataset.n)
    for start, values, labels in _batches(dataset):
        state.update(values, labels, form=form, first_row=start)
        if figures:
            surprisal_parts.append(
                crossent.negative_log_likelihood(
                    values, labels, form=form, reduction="none", validate=False
                )
            )
        advance(labels.shape[0])
    summary = state.compute()
    advance = progress("bootstrap interval", 1)
    ece = crossent.bootstrap_interval(
        "calibration_error",
        dataset.values,
        dataset.labels,
        form=form,
        resamples=resamples,
        seed=seed,
        bins=bins,
        validate=False,
    )
    advance(1)
    temperature = _temperature(dataset, bins=bins, seed=seed, progress=progress)
    diagram = (
        crossent.reliability_diagram(
            dataset.values, dataset.labels, form=form, bins=bins, validate=False
        )
        if figures
        else None
    )
    payload = _payload(dataset, summary, ece, temperature, bins=bins)
    surprisal = np.concatenate(surprisal_parts) if surprisal_parts else None
    return Report(payload, summary, diagram, surprisal, dataset.class_names)


def _temperature(
    dataset: Dataset,
    *,
    bins: int,
    seed: int,
    progress: Callable[[str, int], Callable[[int], None]],
) -> dict[str, Any]:
    """The NLL-optimal temperature on the whole input, the metrics at it, and the gap."""
    advance = progress("temperature", 3)
    try:
        scaler = crossent.TemperatureScaling(bounds=_BOUNDS, guard=False).fit(
            dataset.values, dataset.labels, form=dataset.form, validate=False
        )
    except crossent.InputError:  # a label with probability 0: NLL is inf at every T
        return {"value": None, "nll_nats": None, "ece": None, "gap": None, "at_bound": None}
    advance(1)
    state = crossent.EvaluationState(dataset.classes, bins=bins, keep=0)
    for _, values, labels in _batches(dataset):
        state.update(
            scaler.transform(values, form=dataset.form), labels, form="probs", validate=False
        )
    after = state.compute()
    advance(1)
    gap = (
        crossent.recalibration_gap(
            dataset.values,
            dataset.labels,
            form=dataset.form,
            folds=_FOLDS,
            seed=seed,
            validate=False,
        )
        if dataset.n >= _FOLDS
        else None  # too few rows to cross-fit: reported as null, not an error
    )
    advance(1)
    return {
        "value": scaler.temperature_,
        "nll_nats": after.nll,
        "ece": after.calibration.value,
        "gap": gap,
        "at_bound": scaler.at_bound_,
    }


def _payload(
    dataset: Dataset,
    summary: crossent.EvaluationSummary,
    ece: crossent.Interval,
    temperature: dict[str, Any],
    *,
    bins: int,
) -> dict[str, Any]:
    most_surprising = []
    for row, value in summary.most_surprising:
        scores = np.asarray(dataset.values[row], dtype=np.float64)
        most_surprising.append(
            {
                "index": int(row),
                "surprisal_nats": _number(value),
                "label": int(dataset.labels[row]),
                "predicted": int(np.argmax(scores)),
            }
        )
    per_class = [
        {
            "class": k,
            "name": dataset.class_names[k],
            "count": int(summary.per_class_count[k]),
            "nll_nats": _number(summary.per_class_nll[k]) if summary.per_class_count[k] else None,
        }
        for k in range(dataset.classes)
    ]
    return {
        "format": FORMAT,
        "crossent_version": crossent.__version__,
        "source": dataset.source,
        "builtin_example": dataset.builtin,
        "form": dataset.form,
        "n": summary.n,
        "classes": summary.classes,
        "accuracy": summary.accuracy,
        "nll_nats": _number(summary.nll),
        "nll_bits": _number(summary.nll_bits),
        "perplexity": _number(summary.perplexity),
        "brier": summary.brier,
        "spherical": summary.spherical,
        "mean_entropy_nats": summary.mean_entropy,
        "ece": {
            "value": ece.value,
            "ci_low": ece.low,
            "ci_high": ece.high,
            "confidence": ece.confidence,
            "resamples": ece.resamples,
            "seed": ece.seed,
            "definition": summary.calibration.spec.definition,
        },
        "temperature": {
            "value": temperature["value"],
            "nll_nats": _number(temperature["nll_nats"])
            if temperature["nll_nats"] is not None
            else None,
            "ece": temperature["ece"],
            "at_bound": temperature.get("at_bound"),
            "bounds": list(_BOUNDS),
        },
        "recalibration_gap_nats": temperature["gap"],
        "most_surprising": most_surprising,
        "per_class": per_class,
        "bins": bins,
    }
