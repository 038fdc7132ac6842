"""Losses from logits, each with its gradient twin."""

from ._reduction import LossParts
from ._softmax import (
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_with_targets,
    softmax_cross_entropy_with_targets_grad,
)

__all__ = [
    "LossParts",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
]
