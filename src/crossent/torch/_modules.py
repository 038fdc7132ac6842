"""``nn.Module`` forms of the losses: the options held, ``forward`` calls the function."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from . import _family, _functional

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "DistillationLoss",
    "LinearCrossEntropyLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
]


def _no_legacy(size_average: object, reduce: object) -> None:
    if size_average is not None or reduce is not None:
        raise InputError(
            "`size_average` and `reduce` are deprecated in PyTorch and not supported; "
            "use `reduction='mean'`, `'sum'` or `'none'`"
        )


class CrossEntropyLoss(nn.Module):
    """``nn.CrossEntropyLoss``'s arguments, plus ``z_loss``, ``soft_cap`` and ``temperature``.

    ``forward(input, target)`` is :func:`crossent.torch.cross_entropy`. The class
    weights are a buffer (they follow ``.to()``), as in PyTorch.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import CrossEntropyLoss
    >>> loss = CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4)
    >>> z = torch.randn(4, 5, requires_grad=True)
    >>> loss(z, torch.tensor([0, 4, -100, 2])).backward()
    >>> z.grad.shape
    torch.Size([4, 5])
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: None = None,
        ignore_index: int = -100,
        reduce: None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        z_loss: float = 0.0,
        soft_cap: float | None = None,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        _no_legacy(size_average, reduce)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.soft_cap = soft_cap
        self.temperature = temperature

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _functional.cross_entropy(
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            z_loss=self.z_loss,
            soft_cap=self.soft_cap,
            temperature=self.temperature,
        )


class LinearCrossEntropyLoss(nn.Module):
    """A classifier and its cross-entropy, like :class:`torch.nn.LinearCrossEntropyLoss`.

    Holds ``self.linear = nn.Linear(in_features, num_classes, bias=bias)``;
    ``forward(input, target)`` is :func:`crossent.torch.linear_cross_entropy` with it,
    so the ``(N, num_classes)`` logits are never held. For a head that already
    exists, use :func:`crossent.torch.linear_head_cross_entropy`.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import LinearCrossEntropyLoss
    >>> loss = LinearCrossEntropyLoss(8, 100, ignore_index=-100)
    >>> h = torch.randn(6, 8)
    >>> loss(h, torch.tensor([1, 99, -100, 5, 5, 0])).backward()
    >>> loss.linear.weight.grad.shape
    torch.Size([100, 8])
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        reduction: str = "mean",
        weight: torch.Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        soft_cap: float | None = None,
        temperature: float = 1.0,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.register_buffer("weight", weight)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.soft_cap = soft_cap
        self.temperature = temperature
        self.chunk_size = chunk_size

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _functional.linear_cross_entropy(
            input,
            self.linear.weight,
            target,
            linear_bias=self.linear.bias,
            weight=self.weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            z_loss=self.z_loss,
            soft_cap=self.soft_cap,
            temperature=self.temperature,
            chunk_size=self.chunk_size,
        )


class BCEWithLogitsLoss(nn.Module):
    """:class:`torch.nn.BCEWithLogitsLoss`'s arguments plus ``label_smoothing``.

    ``forward(input, target)`` is :func:`crossent.torch.binary_cross_entropy_with_logits`.
    """

    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        size_average: None = None,
        reduce: None = None,
        reduction: str = "mean",
        pos_weight: torch.Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        _no_legacy(size_average, reduce)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _family.binary_cross_entropy_with_logits(
            input,
            target,
            self.weight,
            reduction=self.reduction,
            pos_weight=self.pos_weight,
            label_smoothing=self.label_smoothing,
        )


class SigmoidFocalLoss(nn.Module):
    """``forward(inputs, targets)`` is :func:`crossent.torch.sigmoid_focal_loss`."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _family.sigmoid_focal_loss(
            inputs, targets, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction
        )


class SoftmaxFocalLoss(nn.Module):
    """``forward(input, target)`` is :func:`crossent.torch.softmax_focal_loss`."""

    weight: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _family.softmax_focal_loss(
            input,
            target,
            gamma=self.gamma,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class DistillationLoss(nn.Module):
    """``forward(input, teacher_logits)`` is :func:`crossent.torch.distillation_loss`."""

    def __init__(self, temperature: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.temperature = temperature
        self.reduction = reduction

    def forward(self, input: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return _family.distillation_loss(
            input, teacher_logits, temperature=self.temperature, reduction=self.reduction
        )
