"""Losses from logits, each with its gradient twin."""

from ._distill import distillation_loss, distillation_loss_grad
from ._focal import softmax_focal_loss, softmax_focal_loss_grad
from ._hinge import multiclass_hinge_loss, multiclass_hinge_loss_grad
from ._reduction import LossParts
from ._sigmoid import (
    sigmoid_cross_entropy,
    sigmoid_cross_entropy_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_grad,
)
from ._softmax import (
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_with_targets,
    softmax_cross_entropy_with_targets_grad,
)

__all__ = [
    "LossParts",
    "distillation_loss",
    "distillation_loss_grad",
    "multiclass_hinge_loss",
    "multiclass_hinge_loss_grad",
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
]
