"""Mutation pass 3 over ``torch/_labels.py`` (``tests/MUTATION.md``): hand-made mutants
that the label tests let through, each killed here (seen failing on a copy).

* unsigned label dtypes wider than uint8 (``torch.uint16`` .. ``uint64``, read as class
  ids by the module) were never tested: dropping them from the accepted dtypes passed;
* the checks' messages were matched only by a word (``ignore_index``, "integer class
  ids"): a message wrapped in other text passed;
* a one-label batch (``numel() == 0`` -> ``== 1`` skipped the check) and the first id out
  of range, ``classes`` itself (``labels >= classes`` -> ``> classes``);
* ``check_ignore_index`` returns a Python ``int`` for a NumPy integer, as documented.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402, N812

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError, InputTypeError  # noqa: E402
from crossent.torch._labels import check_class_ids, check_ignore_index  # noqa: E402


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_mutation3_wide_unsigned_labels_are_class_ids(dtype: str) -> None:
    """uint16/32/64 labels give the int64 labels' loss and gradient (float64; against
    ``F.cross_entropy`` of the int64 labels)."""
    if not hasattr(torch, dtype):
        pytest.skip(f"torch.{dtype} is not in this PyTorch")
    z = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    z1 = z.clone().requires_grad_(True)
    ours = ct.cross_entropy(z1, y.to(getattr(torch, dtype)))
    (grad,) = torch.autograd.grad(ours, z1)
    z2 = z.clone().requires_grad_(True)
    ref = F.cross_entropy(z2, y)
    (grad_ref,) = torch.autograd.grad(ref, z2)
    torch.testing.assert_close(ours, ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize(
    ("value", "shown"), [(1.5, "1.5"), (True, "True"), ("-100", "'-100'"), (np.True_, "np.True_")]
)
def test_mutation3_ignore_index_type_message_is_exact(value: object, shown: str) -> None:
    z, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    message = f"`ignore_index` must be an integer or None; got {shown}"
    with pytest.raises(InputTypeError) as caught:
        check_ignore_index(value)
    assert str(caught.value) == message
    with pytest.raises(InputTypeError) as caught:
        ct.cross_entropy(z, y, ignore_index=value)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_mutation3_ignore_index_numpy_integer_is_a_python_int() -> None:
    for value in (np.int64(-100), np.int8(3), np.uint64(7)):
        got = check_ignore_index(value)
        assert type(got) is int
        assert got == int(value)
    assert check_ignore_index(None) is None


def test_mutation3_label_dtype_message_is_exact() -> None:
    z, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(InputTypeError) as caught:
        ct.cross_entropy(z, y.bool())
    assert str(caught.value) == (
        "`target` must hold integer class ids (int8 .. int64, uint8) or, for "
        "`cross_entropy`, floating class probabilities; got dtype torch.bool"
    )


@pytest.mark.parametrize("rows", [1, 5])
def test_mutation3_the_label_equal_to_the_class_count_is_out_of_range(rows: int) -> None:
    """``classes`` itself, the first id out of range, in a batch of one label and of
    five (the last row): the exact message, from the eager check and from the loss."""
    classes = 4
    labels = torch.tensor([0, 1, 2, 3, classes][-rows:])
    message = (
        f"`target` must be class ids in [0, {classes}) or ignore_index=-100; got values in "
        f"[{int(labels.min())}, {classes}] (row {rows - 1} has {classes})"
    )
    with pytest.raises(InputError) as caught:
        check_class_ids(labels, classes=classes, ignore_index=-100)
    assert str(caught.value) == message
    with pytest.raises(InputError) as caught:
        ct.cross_entropy(torch.randn(rows, classes), labels)
    assert str(caught.value) == message
    check_class_ids(labels[:-1], classes=classes, ignore_index=-100)  # the others pass


def test_mutation3_ignore_index_rows_pass_and_padding_hint() -> None:
    """Labels equal to ``ignore_index`` pass (``-100`` and a class id alike), but only
    those; with ``ignore_index=None`` a ``-100`` gets PyTorch's padding hint, another
    negative id does not (exact messages, the row in the caller's 2-D layout)."""
    labels = torch.tensor([[0, -100], [3, 1]])
    check_class_ids(labels, classes=4, ignore_index=-100)
    check_class_ids(torch.tensor([0, 7, 1]), classes=4, ignore_index=7)
    with pytest.raises(InputError) as caught:
        check_class_ids(torch.tensor([0, 7, -100]), classes=4, ignore_index=-100)
    assert str(caught.value) == (
        "`target` must be class ids in [0, 4) or ignore_index=-100; got values in "
        "[-100, 7] (row 1 has 7)"
    )
    with pytest.raises(InputError) as caught:
        check_class_ids(labels.reshape(-1), classes=4, ignore_index=None, shape=(2, 2))
    assert str(caught.value) == (
        "`target` must be class ids in [0, 4); got values in [-100, 3] (row (0, 1) has "
        "-100); -100 is PyTorch's padding label: pass ignore_index=-100 to leave those "
        "rows out"
    )
    with pytest.raises(InputError) as caught:
        check_class_ids(torch.tensor([0, -101]), classes=4, ignore_index=None)
    assert str(caught.value) == (
        "`target` must be class ids in [0, 4); got values in [-101, 0] (row 1 has -101)"
    )
