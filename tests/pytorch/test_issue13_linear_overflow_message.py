"""Issue 13: ``linear_cross_entropy`` of finite inputs whose products overflow says so.

The products :math:`hW^\\top + b` of float32 (and bf16/fp16) inputs are formed in
float32; finite inputs of magnitude 1e20 give logits of 3e40, past float32's range (inf,
or NaN where such products cancel). On main the error said "`input`, `linear_weight` or
`linear_bias` holds a NaN or an infinity there" of finite inputs. Now it says that they
are finite and their products overflow float32, naming the class, its float32 logit and
its value summed in float64 (oracle: the float64 product of the same row). The last test
guards the old message where an input does hold a NaN (passes on main; a mutant that
always blames the products fails it). 4 of 5 fail on main.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError  # noqa: E402

Y = torch.tensor([0, 1])


def _message(*args: torch.Tensor, **kwargs: torch.Tensor) -> str:
    with pytest.raises(InputError) as raised:
        ct.linear_cross_entropy(*args, Y, **kwargs)
    return str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_overflowing_products_named(dtype: torch.dtype) -> None:
    h, w = torch.full((2, 3), 1e20, dtype=dtype), torch.full((4, 3), 1e20, dtype=dtype)
    exact = float((h[0].double() @ w.double().T)[0])  # 3e40 (bf16's 1e20: 2.98e40)
    message = _message(h, w)
    assert "holds a NaN" not in message
    assert "row 0" in message
    assert "`input` and `linear_weight` are finite there" in message
    assert "overflow float32" in message
    assert f"class 0: inf in float32, {exact:.6g} summed in float64" in message


def test_cancelling_products_named() -> None:
    """Class 1's products are +1e40 and -1e40: NaN in float32, 0 in float64."""
    h = torch.full((2, 3), 1e20)
    w = torch.tensor([[1.0, 1.0, 1.0], [1e20, -1e20, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    message = _message(h, w)
    assert "class 1: nan in float32, 0 summed in float64" in message


def test_with_a_finite_bias() -> None:
    h, w = torch.full((2, 3), 1e20), torch.full((4, 3), 1e20)
    message = _message(h, w, linear_bias=torch.zeros(4))
    assert "`input`, `linear_weight` and `linear_bias` are finite there" in message


def test_a_nan_input_still_named() -> None:
    """Guard: a NaN in row 1's hidden state is the input's, not an overflow."""
    h = torch.ones(2, 3)
    h[1, 0] = float("nan")
    message = _message(h, torch.ones(4, 3))
    assert "row 1" in message
    assert "holds a NaN or an infinity there" in message
    assert "overflow" not in message
