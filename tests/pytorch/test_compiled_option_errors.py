"""A refused option of a public crossent.torch loss under ``torch.compile(fullgraph=True)``
raises crossent's error (type and message) as the eager call does, not Dynamo's
``Unsupported: Observed exception``; the same call with a good option still compiles."""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

# The good calls of the family losses trace the generic formulas (as
# test_compiled_family.py): Dynamo's warnings there are not this test's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]


def _tensors() -> dict[str, Any]:
    g = torch.Generator().manual_seed(11)
    return {
        "z": torch.randn(3, 5, generator=g, requires_grad=True),
        "y": torch.tensor([0, 4, 2]),
        "h": torch.randn(3, 4, generator=g, requires_grad=True),
        "w": torch.randn(5, 4, generator=g, requires_grad=True),
        "x": torch.randn(3, 5, generator=g, requires_grad=True),
        "t": torch.rand(3, 5, generator=g),
    }


def _call(loss: str, kwargs: dict[str, Any], a: dict[str, Any]) -> Any:
    if loss == "cross_entropy":
        return ct.cross_entropy(a["z"], a["y"], **kwargs)
    if loss == "linear_cross_entropy":
        return ct.linear_cross_entropy(a["h"], a["w"], a["y"], **kwargs)
    if loss == "binary_cross_entropy_with_logits":
        return ct.binary_cross_entropy_with_logits(a["x"], a["t"], **kwargs)
    if loss == "sigmoid_focal_loss":
        return ct.sigmoid_focal_loss(a["x"], a["t"], **kwargs)
    assert loss == "softmax_focal_loss"
    return ct.softmax_focal_loss(a["z"], a["y"], **kwargs)


# (loss, option, refused value, good value, eager's error type, eager's message)
_REFUSED = [
    ("cross_entropy", "reduction", "bogus", "sum", InputError, r"`reduction` must be one of"),
    ("cross_entropy", "label_smoothing", 1.5, 0.1, InputError, r"`label_smoothing` must be"),
    ("cross_entropy", "temperature", 0.0, 2.0, InputError, r"`temperature` must be"),
    ("cross_entropy", "z_loss", -1.0, 1e-4, InputError, r"`z_loss` must be"),
    ("cross_entropy", "soft_cap", -3.0, 30.0, InputError, r"`soft_cap` must be"),
    ("cross_entropy", "ignore_index", 1.5, 1, InputTypeError, r"`ignore_index` must be"),
    ("cross_entropy", "size_average", True, None, InputError, r"size_average"),
    ("linear_cross_entropy", "reduction", "bogus", "sum", InputError, r"`reduction` must be"),
    ("linear_cross_entropy", "temperature", 0.0, 2.0, InputError, r"`temperature` must be"),
    ("linear_cross_entropy", "chunk_size", 0, 2, InputError, r"`chunk_size` must be"),
    ("linear_cross_entropy", "ignore_index", "a", 1, InputTypeError, r"`ignore_index` must"),
    (
        "binary_cross_entropy_with_logits",
        "reduction",
        "bogus",
        "sum",
        InputError,
        r"`reduction` must be one of",
    ),
    (
        "binary_cross_entropy_with_logits",
        "label_smoothing",
        1.5,
        0.1,
        InputError,
        r"`label_smoothing` must be",
    ),
    ("sigmoid_focal_loss", "reduction", "bogus", "sum", InputError, r"`reduction` must be"),
    ("sigmoid_focal_loss", "gamma", -1.0, 1.0, InputError, r"`gamma` must be"),
    ("softmax_focal_loss", "reduction", "bogus", "sum", InputError, r"`reduction` must be"),
    ("softmax_focal_loss", "gamma", -1.0, 1.0, InputError, r"`gamma` must be"),
    ("softmax_focal_loss", "ignore_index", 1.5, 1, InputTypeError, r"`ignore_index` must be"),
]


@pytest.mark.parametrize(
    ("loss", "option", "value", "good", "error", "match"),
    _REFUSED,
    ids=[f"{c[0]}-{c[1]}-{c[2]!s}" for c in _REFUSED],
)
def test_compiled_loss_refuses_an_option_with_eagers_error(
    loss: str, option: str, value: object, good: object, error: type[Exception], match: str
) -> None:
    """Eager's error type and message from the compiled call (``fullgraph=True``), whose
    graph holds ``crossent::input_refused_v1`` (main: Dynamo's ``Unsupported: Observed
    exception``); the good value compiles: :func:`test_compiled_loss_takes_the_good_values`."""
    a = _tensors()

    def f(kwargs: dict[str, Any]) -> Any:
        return _call(loss, kwargs, a)

    with pytest.raises(error, match=match) as eager:
        f({option: value})
    assert type(eager.value) is error
    torch._dynamo.reset()
    compiled = torch.compile(lambda: f({option: value}), fullgraph=True, backend="aot_eager")
    with pytest.raises(error) as ours:
        compiled()
    assert type(ours.value) is error
    assert str(ours.value) == str(eager.value)


_LOSSES = sorted({case[0] for case in _REFUSED})


@pytest.mark.parametrize("loss", _LOSSES)
def test_compiled_loss_takes_the_good_values(loss: str) -> None:
    """The good values of the options refused above, all in one call of each loss (one
    compilation a loss: 0.28 s of CPU each, one per option before), compile
    (``fullgraph=True``) and give eager's loss."""
    a = _tensors()
    good = {option: value for name, option, _, value, _, _ in _REFUSED if name == loss}
    torch._dynamo.reset()
    compiled = torch.compile(lambda: _call(loss, good, a), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(), _call(loss, good, a))
