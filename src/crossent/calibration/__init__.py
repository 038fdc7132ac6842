"""Evaluation of predicted distributions: scores, calibration error, recalibration, streaming."""

from ._bootstrap import Interval, LogLossComparison, bootstrap_interval, compare_log_loss
from ._error import CALIBRATION_PRESETS, CalibrationError, CalibrationSpec, calibration_error
from ._recalibrate import (
    HistogramBinning,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
    recalibration_gap,
)
from ._reliability import ReliabilityDiagram, plot_reliability_diagram, reliability_diagram
from ._scores import accuracy, brier_score, negative_log_likelihood, spherical_score
from ._smooth import SmoothCalibrationError, smooth_calibration_error
from ._state import EvaluationState, EvaluationSummary

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
