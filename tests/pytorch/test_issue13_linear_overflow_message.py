"""Issue 13: ``linear_cross_entropy`` of finite inputs whose products overflow says so.

The products :math:`hW^\\top + b` of float32 (and bf16/fp16) inputs are formed in
float32; finite inputs of magnitude 1e20 give logits of 3e40, past float32's range (inf,
or NaN where such products cancel). On main the error said "`input`, `linear_weight` or
`linear_bias` holds a NaN or an infinity there" of finite inputs. Now it says that they
are finite and their products overflow float32, naming the class, its float32 logit and
its value summed in float64 (oracle: the float64 product of the same row). The last test
guards the old message where an input does hold a NaN (passes on main; a mutant that
always blames the products fails it). 4 of 5 fail on main.

``vocab_parallel_linear_cross_entropy`` (one rank) of the same inputs said "`input` has 8
NaN or +inf logits (over all ranks)" of finite inputs; now as ``linear_cross_entropy``,
with the count over all ranks and this rank's row and class (3 of 4 fail on main; the
NaN input's guard passes there).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError  # noqa: E402
from spawned import one_rank_group  # noqa: E402

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
    """Class 1's products are +1e40 and -1e40: 0 in float64. In float32 the matrix
    product gives NaN where it rounds each product (inf + -inf) and inf where it fuses
    them into its accumulator (fma(1e20, -1e20, inf) = inf: seen on an Intel Xeon with
    AVX-512, where the AMD machine gave NaN); the message names whichever it formed."""
    h = torch.full((2, 3), 1e20)
    w = torch.tensor([[1.0, 1.0, 1.0], [1e20, -1e20, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    message = _message(h, w)
    assert re.search(r"class 1: (nan|inf) in float32, 0 summed in float64", message), message


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


def _vocab_parallel_message(tmp_path: Any, *args: torch.Tensor, **kwargs: Any) -> str:
    with one_rank_group(str(tmp_path)), pytest.raises(InputError) as raised:
        ct.vocab_parallel_linear_cross_entropy(*args, **kwargs)
    return str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_vocab_parallel_overflowing_products_named(tmp_path: Any, dtype: torch.dtype) -> None:
    h, w = torch.full((2, 3), 1e20, dtype=dtype), torch.full((4, 3), 1e20, dtype=dtype)
    exact = float((h[0].double() @ w.double().T)[0])
    message = _vocab_parallel_message(tmp_path, h, w, Y, bias=torch.zeros(4, dtype=dtype))
    assert "8 logits (over all ranks) are NaN or +inf; on this rank, row 0" in message
    assert "`input`, `weight` and `bias` are finite there" in message
    assert f"slice: inf in float32, {exact:.6g} summed in float64" in message


def test_vocab_parallel_cancelling_products_named(tmp_path: Any) -> None:
    h = torch.full((2, 3), 1e20)
    w = torch.tensor([[1.0, 1.0, 1.0], [1e20, -1e20, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    message = _vocab_parallel_message(tmp_path, h, w, Y)
    assert "class 1 of this rank's slice: nan in float32, 0 summed in float64" in message


def test_vocab_parallel_nan_input_still_named(tmp_path: Any) -> None:
    """Guard: a NaN in row 1's hidden state (passes on main, which says "`input` has 4 NaN
    or +inf logits"); a mutant that always blames the products fails it."""
    h = torch.ones(2, 3)
    h[1, 0] = float("nan")
    message = _vocab_parallel_message(tmp_path, h, torch.ones(4, 3), Y)
    assert "NaN" in message
    assert "overflow" not in message


@pytest.mark.parametrize("where", ["weight", "later-block"])
def test_vocab_parallel_nan_input_named_by_its_row(tmp_path: Any, where: str) -> None:
    """Guard (mutation pass 7): a NaN in ``weight`` (``h`` finite) is an input's, not an
    overflow (mutant: only ``h[row]`` checked); a NaN in row 3 of ``h``, in the fourth
    row block of ``chunk_size=1``, is named as row 3 (mutant: the row within its block,
    0, whose inputs are finite, blamed on the products)."""
    h, w = torch.ones(4, 3), torch.ones(4, 3)
    if where == "weight":
        w[2, 1] = float("nan")
    else:
        h[3, 0] = float("nan")
    y = torch.tensor([0, 1, 2, 3])
    message = _vocab_parallel_message(tmp_path, h, w, y, chunk_size=1)
    assert "holds a NaN or an infinity there" in message
    assert "overflow" not in message
    assert f"row {0 if where == 'weight' else 3}:" in message


def test_vocab_parallel_overflow_names_the_logit_with_its_bias(tmp_path: Any) -> None:
    """Guard (mutation pass 7): the float64 logit named is ``h @ w + b`` with the bias
    (3 * 1.1e19**2 + 3e38 = 6.63e38; mutant without the bias: 3.63e38)."""
    h, w = torch.full((2, 3), 1.1e19), torch.full((4, 3), 1.1e19)
    bias = torch.full((4,), 3e38)
    exact = float(h[0].double() @ w[0].double() + bias[0].double())
    message = _vocab_parallel_message(tmp_path, h, w, Y, bias=bias)
    assert f"slice: inf in float32, {exact:.6g} summed in float64" in message
    assert exact == pytest.approx(6.63e38, rel=1e-6)
