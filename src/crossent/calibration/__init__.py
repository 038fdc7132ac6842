"""Evaluation of predicted distributions: scores, calibration error, recalibration, streaming.

Layout: ``_inputs`` (predictions of a named form and their labels, validated once, read
in blocks of rows), ``_summaries`` (the per-example numbers every metric averages),
``_scores``, ``_binning``, ``_error``, ``_reliability``, ``_bootstrap``, ``_state``
(the metrics), ``_calibrator`` (what calibrators share), ``_temperature`` (temperature
scaling and the recalibration gap), ``_recalibrators`` (vector and Platt scaling,
histogram binning) and ``_separation`` (whether vector scaling's fit exists).

Why a ``form=`` keyword, not one entry per form
-----------------------------------------------
The style guide prefers names that say what goes in (Optax's
``..._with_integer_labels``) to flags that change an argument's meaning.  The
evaluation functions keep ``form="probs" | "log_probs" | "logits"`` on purpose:

* the first argument is positional-only, so ``probs`` is a name in the documentation,
  never in a call, and messages call the array by its form (`logits`, ...);
* the form is always named by the caller and never inferred from the values (unlike
  torchmetrics), which is the guarantee the naming rule exists for;
* one entry per form would triple eleven functions and the methods of
  ``EvaluationState`` and every calibrator, for the same computation (each converts its
  input to float64 log-probabilities block by block); the measures in ``info/`` use the
  same ``p_form=``/``q_form=`` keywords, and the CLI passes the form it read.

The losses take logits only, so they need no such keyword.
"""

from ._bootstrap import Interval, LogLossComparison, bootstrap_interval, compare_log_loss
from ._error import CALIBRATION_PRESETS, CalibrationError, CalibrationSpec, calibration_error
from ._recalibrators import HistogramBinning, PlattScaling, VectorScaling
from ._reliability import ReliabilityDiagram, plot_reliability_diagram, reliability_diagram
from ._scores import accuracy, brier_score, negative_log_likelihood, spherical_score
from ._smooth import SmoothCalibrationError, smooth_calibration_error
from ._state import EvaluationState, EvaluationSummary
from ._temperature import TemperatureScaling, recalibration_gap

__all__ = [
    "CALIBRATION_PRESETS",
    "CalibrationError",
    "CalibrationSpec",
    "EvaluationState",
    "EvaluationSummary",
    "HistogramBinning",
    "Interval",
    "LogLossComparison",
    "PlattScaling",
    "ReliabilityDiagram",
    "SmoothCalibrationError",
    "TemperatureScaling",
    "VectorScaling",
    "accuracy",
    "bootstrap_interval",
    "brier_score",
    "calibration_error",
    "compare_log_loss",
    "negative_log_likelihood",
    "plot_reliability_diagram",
    "recalibration_gap",
    "reliability_diagram",
    "smooth_calibration_error",
    "spherical_score",
]
