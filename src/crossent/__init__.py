"""crossent: exact cross-entropy and its information-theory family.

Measures (``surprisal``, ``entropy``, ``cross_entropy``, ``kl_divergence``,
``js_divergence``, ``perplexity``, ...) work on NumPy and on any Array-API array
(PyTorch, JAX, CuPy) and return the same kind of array on the same device.  They are
exact at the limits (``0 log 0 = 0``; ``p > 0`` with ``q = 0`` is ``+inf``), never clip
or renormalise silently, and raise :class:`InputError` naming the argument, the row and
the value when given something that is not a distribution.

``import crossent`` imports neither torch nor jax.
"""

from importlib.metadata import PackageNotFoundError, version

from .calibration import (
    CALIBRATION_PRESETS,
    CalibrationError,
    CalibrationSpec,
    EvaluationState,
    EvaluationSummary,
    HistogramBinning,
    Interval,
    LogLossComparison,
    PlattScaling,
    ReliabilityDiagram,
    TemperatureScaling,
    VectorScaling,
    accuracy,
    bootstrap_interval,
    brier_score,
    calibration_error,
    compare_log_loss,
    negative_log_likelihood,
    plot_reliability_diagram,
    recalibration_gap,
    reliability_diagram,
    spherical_score,
)
from .errors import CrossentError, InputError, InputTypeError
from .info import (
    CrossEntropyDecomposition,
    binary_cross_entropy,
    binary_cross_entropy_grad,
    binary_entropy,
    cross_entropy,
    cross_entropy_decomposition,
    entropy,
    js_divergence,
    kl_divergence,
    perplexity,
    surprisal,
)
from .losses import (
    LossParts,
    distillation_loss,
    distillation_loss_grad,
    multiclass_hinge_loss,
    multiclass_hinge_loss_grad,
    poly1_cross_entropy,
    poly1_cross_entropy_grad,
    sigmoid_cross_entropy,
    sigmoid_cross_entropy_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_grad,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_with_targets,
    softmax_cross_entropy_with_targets_grad,
    softmax_focal_loss,
    softmax_focal_loss_grad,
)

try:
    __version__ = version("crossent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CALIBRATION_PRESETS",
    "CalibrationError",
    "CalibrationSpec",
    "CrossEntropyDecomposition",
    "CrossentError",
    "EvaluationState",
    "EvaluationSummary",
    "HistogramBinning",
    "InputError",
    "InputTypeError",
    "Interval",
    "LogLossComparison",
    "LossParts",
    "PlattScaling",
    "ReliabilityDiagram",
    "TemperatureScaling",
    "VectorScaling",
    "__version__",
    "accuracy",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_entropy",
    "bootstrap_interval",
    "brier_score",
    "calibration_error",
    "compare_log_loss",
    "cross_entropy",
    "cross_entropy_decomposition",
    "distillation_loss",
    "distillation_loss_grad",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "multiclass_hinge_loss",
    "multiclass_hinge_loss_grad",
    "negative_log_likelihood",
    "perplexity",
    "plot_reliability_diagram",
    "poly1_cross_entropy",
    "poly1_cross_entropy_grad",
    "recalibration_gap",
    "reliability_diagram",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
    "spherical_score",
    "surprisal",
]
