r"""The report's metrics at a temperature fitted on held-out validation rows.

Guo et al. (2017)'s protocol: fit the NLL-optimal temperature :math:`T` on a validation
set, then report the test set's metrics of :math:`\mathrm{softmax}(z / T)`.  The report's
own ``temperature`` block fits :math:`T` on the very rows it reports on (optimistic by
the recalibration gap); this block is the honest number.  Every value is the public API's:

.. code-block:: python

    scaler = TemperatureScaling(guard=False).fit(val_predictions, val_labels, form=form)
    scaled = scaler.transform(predictions, form=form)           # probabilities, float64
    negative_log_likelihood(scaled, labels), brier_score(scaled, labels)
    bootstrap_interval("calibration_error", scaled, labels, resamples=..., seed=..., **spec)

``guard=False``: the NLL-optimal temperature of the validation rows (the guard would keep
:math:`T = 1` when a cross-fit on those rows did not improve; the validation set is the
held-out data already).  Accuracy is unchanged: :math:`T > 0` keeps every row's ranking.

References
----------
Guo, Pleiss, Sun and Weinberger (2017), "On calibration of modern neural networks", ICML.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import calibration as cal
from .._checks import Form
from ..calibration._error import CalibrationSpec
from ..calibration._inputs import binary_columns, renormalized
from ..errors import InputError, InputTypeError
from ._host import check_aligned, host_array, host_labels, labels_by_name

__all__ = ["calibration_keywords", "held_out_temperature"]

_NAME = "temperature_from"


def calibration_keywords(spec: CalibrationSpec) -> dict[str, Any]:
    """``spec`` as the keywords of :func:`calibration_error` and
    :func:`bootstrap_interval` (``bins``, ``binning``, ``norm``, ``scope``, ``debias``,
    ``closed``)."""
    return {
        "bins": spec.bins,
        "binning": spec.binning,
        "norm": spec.norm,
        "scope": spec.scope,
        "debias": spec.estimator == "debiased",
        "closed": spec.closed,
    }


def _validation_arrays(
    pair: Any,
    *,
    form: Form,
    binary: bool,
    renormalize: bool,
    classes: int,
    given_names: list[str] | None,
) -> tuple[Any, Any]:
    """The validation predictions and labels, read as the report reads its own: a 1-D (or
    one-column) binary array widened to two columns, rows renormalised when the report's
    are, string labels named against the report's class names."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise InputTypeError(
            f"`{_NAME}` must be a pair (predictions, labels) of validation rows; got "
            f"{type(pair).__name__}"
        )
    predictions, labels = pair
    check_aligned(predictions, labels)
    values, frame_names = host_array(predictions, name=f"{_NAME}[0]")
    label_array = host_labels(labels)
    ndim = getattr(values, "ndim", None)
    one_column = ndim == 1 or (ndim == 2 and values.shape[1] == 1)
    if one_column != binary or ndim not in (1, 2):
        given = "a 1-D binary array" if one_column else f"shape {tuple(np.shape(values))}"
        raise InputError(
            f"`{_NAME}` predictions ({given}) must have the report's {classes} classes"
        )
    if binary:
        values = binary_columns(
            np.asarray(values).reshape(-1), form, name=f"{_NAME}[0]", validate=True
        )
        frame_names = None
    if int(values.shape[1]) != classes:
        raise InputError(
            f"`{_NAME}` predictions have {int(values.shape[1])} classes; the report's "
            f"predictions have {classes}: a temperature fitted on other classes does not apply"
        )
    if renormalize:
        values, _ = renormalized(values, name=f"{_NAME}[0]")
    return values, labels_by_name(label_array, given_names, frame_names)


def held_out_temperature(
    pair: Any,
    *,
    values: Any,
    labels: Any,
    form: Form,
    binary: bool,
    renormalize: bool,
    given_names: list[str] | None,
    spec: CalibrationSpec,
    resamples: int,
    seed: int,
    confidence: float,
    source: str | None,
) -> dict[str, Any]:
    """The JSON block ``held_out_temperature``: the temperature fitted on ``pair`` (the
    validation rows) and the report's NLL, Brier score and calibration error (with its
    bootstrap interval, the report's definition, resamples and seed) at it."""
    from .._report._text import to_json_number

    classes = int(values.shape[1])
    val_values, val_labels = _validation_arrays(
        pair,
        form=form,
        binary=binary,
        renormalize=renormalize,
        classes=classes,
        given_names=given_names,
    )
    try:
        scaler = cal.TemperatureScaling(guard=False).fit(val_values, val_labels, form=form)
    except InputError as error:
        raise InputError(f"`{_NAME}`: {error}") from error
    log_scaled = scaler.transform(values, form=form, output="log_probs")
    scaled = np.exp(log_scaled)  # (transform's probabilities, bit for bit)
    nll = float(cal.negative_log_likelihood(scaled, labels))
    if nll == math.inf:
        # a label's probability past float64's smallest (a logit 1000 below the row's
        # top at T = 1.24: e^-809 is 0) made the NLL +inf where its log-probability,
        # -809, is finite: the NLL of the log-probabilities (4.56, not inf); a label of
        # probability 0 (a logit of -inf) keeps it +inf
        nll = float(cal.negative_log_likelihood(log_scaled, labels, form="log_probs"))
    interval = cal.bootstrap_interval(
        "calibration_error",
        scaled,
        labels,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        **calibration_keywords(spec),
    )
    return {
        "source": source or f"{type(pair[0]).__module__.split('.')[0]}.{type(pair[0]).__name__}",
        "n": int(val_labels.shape[0]),
        "value": scaler.temperature_,
        "converged": scaler.converged_,
        "at_bound": scaler.at_bound_,
        "bounds": [float(b) for b in scaler.bounds],
        "fit_nll_nats": to_json_number(scaler.nll_after_),
        "nll_nats": to_json_number(nll),
        "brier": float(cal.brier_score(scaled, labels)),
        "ece": {"value": interval.value, "ci_low": interval.low, "ci_high": interval.high},
    }
