"""``_xp.namespace``'s fast path for calls of tensors only (branch leftovers10), guarded
against its mutants (branch mutation9): it is taken only where every argument is a
tensor, and it widens narrow integer labels as the general path does."""

from __future__ import annotations

import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")

_P = torch.tensor([0.5, 0.5], dtype=torch.float64)
_Q = [0.25, 0.75]


def test_a_tensor_beside_a_list_or_an_array_is_not_the_fast_path() -> None:
    # the list is read as the tensor's library reads it; an ndarray is another library
    as_tensor = crossent.cross_entropy(_P, torch.tensor(_Q, dtype=torch.float64))
    assert crossent.cross_entropy(_P, _Q).item() == as_tensor.item()
    assert (
        crossent.cross_entropy(_Q, _P).item()
        == crossent.cross_entropy(torch.tensor(_Q, dtype=torch.float64), _P).item()
    )
    with pytest.raises(crossent.InputTypeError, match="one array library"):
        crossent.cross_entropy(_P, np.array(_Q))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32"])
def test_narrow_integer_label_tensors_index_as_int64(dtype: str) -> None:
    # torch's take_along_dim takes int64 indices only ("dtype of indices should be Long")
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([2, 0], dtype=getattr(torch, dtype))
    wide = crossent.softmax_cross_entropy(logits, labels.to(torch.int64), reduction="none")
    got = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    assert torch.equal(got, wide)
