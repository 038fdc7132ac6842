r"""The rows that count and the weighted mean of per-row losses, shared by the torch losses.

With class weights :math:`w` (all 1 without them) and the rows that count
:math:`\mathcal A` (label not ``ignore_index``), ``'mean'`` is PyTorch's weighted mean

.. math:: \bar L = \frac{\sum_{i\in\mathcal A} L_i}{\sum_{i\in\mathcal A} w_{y_i}},

and 0 (with a zero gradient), not NaN, when the denominator is 0 (every row ignored).
Plain torch operations, differentiable and free of host syncs (``torch.compile``
traces them without a graph break).
"""

from __future__ import annotations

import torch

__all__ = ["label_rows", "label_weight_sum", "weighted_mean"]


def label_rows(labels: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(active, safe)``: the rows that count (bool) and the labels as int64, 0 where ignored."""
    if ignore_index is None:
        active = torch.ones_like(labels, dtype=torch.bool)
    else:
        active = labels != ignore_index
    safe = torch.where(active, labels, torch.zeros_like(labels)).to(torch.int64)
    return active, safe


def label_weight_sum(
    labels: torch.Tensor, weight: torch.Tensor | None, ignore_index: int | None, dtype: torch.dtype
) -> torch.Tensor:
    """The mean's denominator :math:`\\sum_{i\\in\\mathcal A} w_{y_i}`, summed in float64."""
    active, safe = label_rows(labels, ignore_index)
    if weight is None:
        return active.sum().to(dtype)
    w_y = weight.to(torch.float64)[safe]
    return torch.where(active, w_y, torch.zeros_like(w_y)).sum().to(dtype)


def weighted_mean(total: torch.Tensor, normalizer: torch.Tensor) -> torch.Tensor:
    """``total / normalizer``, and 0 (with a zero gradient) when the normaliser is 0."""
    positive = normalizer > 0
    safe = torch.where(positive, normalizer, torch.ones_like(normalizer))
    return torch.where(positive, total / safe, torch.zeros_like(total))
