"""``nn.Module`` forms of the losses: the options held, ``forward`` calls the function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from .._checks import check_integer
from ..errors import InputTypeError
from . import _family, _functional

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "DistillationLoss",
    "LinearCrossEntropyLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
]

#: Options that are tensors: held as buffers, so they follow ``.to()``, as in PyTorch.
_TENSORS = frozenset({"weight", "pos_weight"})


class _Loss(nn.Module):
    """A loss function and the options it is called with.

    ``_options`` names the keyword arguments of the function that the module holds,
    each as the attribute of that name (a buffer for a tensor), read at every call,
    so that ``loss.reduction = "sum"`` works as in PyTorch. ``forward(input, target)``
    calls ``_function`` (a subclass whose tensors have other names defines its own).
    """

    _options: ClassVar[tuple[str, ...]]
    _function: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, arguments: dict[str, Any]) -> None:
        """Hold the options, taken from the subclass ``__init__``'s ``locals()``.

        PyTorch's deprecated ``size_average`` and ``reduce``, where the signature keeps
        them, must be None.
        """
        _family._reject_legacy(arguments.get("size_average"), arguments.get("reduce"))
        super().__init__()
        for name in self._options:
            if name in _TENSORS:
                self.register_buffer(name, arguments[name])
            else:
                setattr(self, name, arguments[name])

    def _held(self) -> dict[str, Any]:
        """The options as keyword arguments of the function."""
        return {name: getattr(self, name) for name in self._options}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self)._function(input, target, **self._held())

    def __prepare_scriptable__(self) -> nn.Module:
        """Refuse ``torch.jit.script`` (which calls this first, on every submodule too):
        say why and what to use, rather than TorchScript's error about an annotation."""
        raise InputTypeError(
            f"`crossent.torch.{type(self).__name__}` cannot be compiled by "
            "`torch.jit.script` (its forward runs Python checks and custom operators "
            "that TorchScript cannot compile); use `torch.compile(model)` instead, or "
            "script the model without the loss"
        )


class CrossEntropyLoss(_Loss):
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
    _function = staticmethod(_functional.cross_entropy)
    _options = (
        "weight",
        "ignore_index",
        "reduction",
        "label_smoothing",
        "z_loss",
        "soft_cap",
        "temperature",
    )

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
        super().__init__(locals())


class LinearCrossEntropyLoss(_Loss):
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
    _options = (
        "weight",
        "reduction",
        "ignore_index",
        "label_smoothing",
        "z_loss",
        "soft_cap",
        "temperature",
        "chunk_size",
    )

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
        super().__init__(locals())
        in_features = check_integer(in_features, name="in_features", low=0)
        self.num_classes = check_integer(num_classes, name="num_classes", low=0)
        self.linear = nn.Linear(
            in_features, self.num_classes, bias=bias, device=device, dtype=dtype
        )

    def extra_repr(self) -> str:
        """The fields of ``torch.nn.LinearCrossEntropyLoss``'s repr (in its order, but
        ``out_features`` and ``options``), then crossent's options."""
        shape = f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
        held = ", ".join(f"{name}={getattr(self, name)}" for name in self._options[1:])
        return f"{shape}bias={self.linear.bias is not None}, {held}"

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        linear = self.linear
        return _functional.linear_cross_entropy(
            input, linear.weight, target, linear_bias=linear.bias, **self._held()
        )


class BCEWithLogitsLoss(_Loss):
    r""":class:`torch.nn.BCEWithLogitsLoss`'s arguments plus ``label_smoothing``.

    ``forward(input, target)`` is :func:`crossent.torch.binary_cross_entropy_with_logits`.

    Examples
    --------
    The mean of :math:`-(y \log \sigma(z) + (1 - y) \log(1 - \sigma(z)))`:

    >>> import torch
    >>> from crossent.torch import BCEWithLogitsLoss
    >>> z = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> p = torch.sigmoid(z)
    >>> loss = BCEWithLogitsLoss()(z, y)
    >>> bool(torch.isclose(loss, -(y * p.log() + (1 - y) * (1 - p).log()).mean()))
    True
    """

    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None
    _function = staticmethod(_family.binary_cross_entropy_with_logits)
    _options = ("weight", "pos_weight", "reduction", "label_smoothing")

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
        super().__init__(locals())


class SigmoidFocalLoss(_Loss):
    r"""``forward(inputs, targets)`` is :func:`crossent.torch.sigmoid_focal_loss`.

    Examples
    --------
    :math:`-\alpha_t (1 - p_t)^\gamma \log p_t` per element (torchvision's defaults
    ``alpha=0.25``, ``gamma=2``, ``reduction="none"``); ``alpha=-1`` and ``gamma=0`` give
    the binary cross-entropy:

    >>> import torch
    >>> from crossent.torch import BCEWithLogitsLoss, SigmoidFocalLoss
    >>> z = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> p_t = torch.where(y == 1, torch.sigmoid(z), 1 - torch.sigmoid(z))
    >>> alpha_t = torch.where(y == 1, 0.25, 0.75)
    >>> focal = SigmoidFocalLoss()(z, y)
    >>> bool(torch.allclose(focal, -alpha_t * (1 - p_t) ** 2 * p_t.log()))
    True
    >>> plain = SigmoidFocalLoss(alpha=-1, gamma=0.0)(z, y)
    >>> bool(torch.allclose(plain, BCEWithLogitsLoss(reduction="none")(z, y)))
    True
    """

    _options = ("alpha", "gamma", "reduction")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> None:
        super().__init__(locals())

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _family.sigmoid_focal_loss(inputs, targets, **self._held())


class SoftmaxFocalLoss(_Loss):
    r"""``forward(input, target)`` is :func:`crossent.torch.softmax_focal_loss`.

    Examples
    --------
    The mean of :math:`-(1 - p_y)^\gamma \log p_y`; ``gamma=0`` is the cross-entropy:

    >>> import torch
    >>> from crossent.torch import CrossEntropyLoss, SoftmaxFocalLoss
    >>> z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=torch.float64)
    >>> labels = torch.tensor([0, 1])
    >>> p_y = z.softmax(-1)[torch.arange(2), labels]
    >>> loss = SoftmaxFocalLoss(gamma=2.0)(z, labels)
    >>> bool(torch.isclose(loss, (-((1 - p_y) ** 2) * p_y.log()).mean()))
    True
    >>> bool(torch.isclose(SoftmaxFocalLoss(gamma=0.0)(z, labels), CrossEntropyLoss()(z, labels)))
    True
    """

    weight: torch.Tensor | None
    _function = staticmethod(_family.softmax_focal_loss)
    _options = ("gamma", "weight", "ignore_index", "reduction")

    def __init__(
        self,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(locals())


class DistillationLoss(_Loss):
    r"""``forward(input, teacher_logits)`` is :func:`crossent.torch.distillation_loss`
    (``teacher_form`` and ``direction`` keyword-only, as there).

    Examples
    --------
    :math:`T^2 D(\operatorname{softmax}(v / T) \,\|\, \operatorname{softmax}(z / T))`,
    teacher logits :math:`v`, student logits :math:`z`, averaged over the rows:

    >>> import torch
    >>> from crossent.torch import DistillationLoss
    >>> student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    >>> teacher = torch.tensor([[3.0, 0.5, 0.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    >>> s, t = (student / 2).softmax(-1), (teacher / 2).softmax(-1)
    >>> loss = DistillationLoss(temperature=2.0)(student, teacher)
    >>> bool(torch.isclose(loss, 2.0**2 * (t * (t / s).log()).sum(-1).mean()))
    True
    """

    _options = ("temperature", "reduction", "teacher_form", "direction")

    def __init__(
        self,
        temperature: float = 1.0,
        reduction: str = "mean",
        *,
        teacher_form: str = "logits",
        direction: str = "forward",
    ) -> None:
        super().__init__(locals())

    def forward(self, input: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return _family.distillation_loss(input, teacher_logits, **self._held())
