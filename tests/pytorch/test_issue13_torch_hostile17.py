"""crossent.torch, seventeenth hostile pass (issue 13, branch hostile17).

A ``target``, ``linear_weight`` or ``linear_bias`` on another device than ``input``
(here ``meta`` beside CPU, the one other device a CPU machine has) was silently
accepted: ``cross_entropy`` of CPU logits and a meta target returned a meta loss (class
ids) or ``0.0`` (probabilities); ``linear_cross_entropy`` returned ``0.0`` for a meta
target, ``1.2e-17`` for a meta classifier and ``3.9e15`` for a meta bias (PyTorch's
``F.cross_entropy`` raises a ``RuntimeError``). Now an ``InputError`` naming the
argument and both devices, as the class weights' (whose wording it now shares).

Their shape, device and target-type errors under ``torch.compile(fullgraph=True)`` came
out as Dynamo's ``Unsupported: Observed exception``: they ran after
``_ops.refused_while_traced``. Now eager's type and message. Every test fails on main.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError, InputTypeError  # noqa: E402


def _meta(t: torch.Tensor) -> torch.Tensor:
    return t.to("meta")


_X = torch.zeros(4, 3)
_H, _W, _B = torch.zeros(4, 2), torch.zeros(5, 2), torch.zeros(5)
_Y = torch.tensor([0, 1, 2, 1])
_P = torch.full((4, 3), 1 / 3)


@pytest.mark.parametrize(
    ("name", "device", "call"),
    [
        ("target", "cpu", lambda: ct.cross_entropy(_X, _meta(_Y))),
        ("target", "cpu", lambda: ct.cross_entropy(_X, _meta(_P))),
        ("target", "meta", lambda: ct.cross_entropy(_meta(_X), _Y)),
        ("weight", "cpu", lambda: ct.cross_entropy(_X, _Y, weight=_meta(torch.ones(3)))),
        ("target", "cpu", lambda: ct.linear_cross_entropy(_H, _W, _meta(_Y))),
        ("linear_weight", "cpu", lambda: ct.linear_cross_entropy(_H, _meta(_W), _Y)),
        ("linear_bias", "cpu", lambda: ct.linear_cross_entropy(_H, _W, _Y, linear_bias=_meta(_B))),
        ("target", "cpu", lambda: ct.CrossEntropyLoss()(_X, _meta(_Y))),
    ],
    ids=[
        "ce-labels",
        "ce-probabilities",
        "ce-meta-input",
        "ce-weight",
        "linear-target",
        "linear-weight",
        "linear-bias",
        "module",
    ],
)
def test_a_tensor_on_another_device_is_named(
    name: str, device: str, call: Callable[[], torch.Tensor]
) -> None:
    """On main: a meta or wrong loss (``0.0``, ``1.2e-17``, ``3.9e15``), or the
    weight's own wording (``ce-weight``, a guard of the message's one home)."""
    other = "meta" if device == "cpu" else "cpu"
    with pytest.raises(
        InputError, match=rf"^`{name}` must be on the device of `input` \({device}\); got {other}$"
    ):
        call()


# (call, eager's error type, a piece of its message): shapes and devices, refused by
# eager calls after the options; under torch.compile(fullgraph=True) they came out as
# Dynamo's ``Unsupported: Observed exception`` (a RuntimeError) on main.
_SHAPES: list[tuple[Callable[..., torch.Tensor], type[Exception], str]] = [
    (lambda x, y, h, w: ct.cross_entropy(x, y[:2]), InputError, "`target` must have the shape"),
    (lambda x, y, h, w: ct.cross_entropy(x, x[:, :2]), InputError, "probability `target` must"),
    (lambda x, y, h, w: ct.cross_entropy(x[0, 0], y[0]), InputError, "must have a class axis"),
    (
        lambda x, y, h, w: ct.cross_entropy(x, y, weight=torch.ones(2)),
        InputError,
        "`weight` must have shape",
    ),
    (lambda x, y, h, w: ct.cross_entropy(x, _meta(y)), InputError, "`target` must be on"),
    (
        lambda x, y, h, w: ct.linear_cross_entropy(h, w[:, :1], y),
        InputError,
        "must share D",
    ),
    (
        lambda x, y, h, w: ct.linear_cross_entropy(h, w, y, linear_bias=torch.zeros(2)),
        InputError,
        "`linear_bias` must have shape",
    ),
    (
        lambda x, y, h, w: ct.linear_cross_entropy(h, w, y[:1]),
        InputError,
        "`target` must have the batch shape",
    ),
    (
        lambda x, y, h, w: ct.linear_cross_entropy(h, w, x[:, 0]),
        InputTypeError,
        "`target` must hold integer class ids",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), _SHAPES)
def test_compiled_shape_and_device_errors_are_eagers(
    call: Callable[..., torch.Tensor], error: type[Exception], message: str
) -> None:
    """The compiled call (``fullgraph=True``) raises eager's error, type and message."""
    args = (_X, _Y, _H, _W)
    with pytest.raises(error, match=message) as eager:
        call(*args)
    compiled = torch.compile(call, fullgraph=True, backend="eager")
    with pytest.raises(error) as traced:
        compiled(*args)
    assert type(traced.value) is type(eager.value)
    assert str(traced.value) == str(eager.value)
