"""A negative NaN in a large distillation call is never taken for a ``-inf`` logit.

The fused distillation kernels (``losses/_distill_numba``) read ``-inf`` logits as valid
(a masked class) and tell NaN and ``+inf`` from them by the bits' order-preserving keys;
a NaN with its sign bit set sits beside ``-inf`` in that order. Such a row must come
out NaN from the forward kernel (so that the caller validates it) and raise the
validation's ``InputError``, or give NaN with ``validate=False``: never a number.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent._read_only import read_only
from crossent.errors import InputError

pytest.importorskip("numba")

_ROWS, _CLASSES = 6, 4096  # past the fused path's threshold (16384 entries)


def _negative_nan(dtype: type) -> np.floating:
    bits = np.array([0xFFF8000000000001 if dtype is np.float64 else 0xFFC00001])
    value = bits.astype(np.uint64 if dtype is np.float64 else np.uint32).view(dtype)[0]
    assert np.isnan(value)
    assert np.signbit(value)
    return value


def _pair(dtype: type, side: str, column: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((_ROWS, _CLASSES)).astype(dtype)
    v = rng.standard_normal((_ROWS, _CLASSES)).astype(dtype)
    (z if side == "student" else v)[2, column] = _negative_nan(dtype)
    return z, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", ["student", "teacher"])
@pytest.mark.parametrize("column", [0, 517, _CLASSES - 1])
def test_the_kernel_leaves_the_row_to_the_caller(dtype: type, side: str, column: int) -> None:
    from crossent.losses import _distill_numba

    z, v = _pair(dtype, side, column)
    out = np.empty((_ROWS, 5))
    # given=False, lse=0 passed, as _distill_rows does: the op's own specialisation (the
    # defaults left out are another, compiled for this test alone)
    _distill_numba.distillation_forward_kernel(read_only(z), read_only(v), 2.0, out, False, 0)
    assert np.isnan(out[2, 0])
    assert np.isfinite(np.delete(out[:, 0], 2)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", ["student", "teacher"])
def test_validation_names_it(dtype: type, side: str) -> None:
    z, v = _pair(dtype, side, 517)
    argument = "student_logits" if side == "student" else "teacher"
    for function in (crossent.distillation_loss, crossent.distillation_loss_grad):
        with pytest.raises(InputError, match=rf"`{argument}` contains NaN at index \(2, 517\)"):
            function(z, v, temperature=2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", ["student", "teacher"])
def test_unvalidated_rows_are_nan_never_a_number(dtype: type, side: str) -> None:
    z, v = _pair(dtype, side, 517)
    loss = crossent.distillation_loss(z, v, temperature=2.0, reduction="none", validate=False)
    assert np.isnan(loss[2])
    assert np.isfinite(np.delete(loss, 2)).all()
    assert np.isnan(crossent.distillation_loss(z, v, temperature=2.0, validate=False))
