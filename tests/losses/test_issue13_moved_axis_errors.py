"""Issue 13: an error of a float16/float32 call computed on a classes-last copy names
the caller's index.

``_widen`` computes focal, poly-1, distillation and the soft-capped (or float16 soft
target) softmax cross-entropy of float16/float32 logits on a float64, C-contiguous,
classes-last copy. With the class axis elsewhere, an invalid entry at ``(4, 6)`` of
``(37, 7)`` logits with ``axis=0`` was reported at ``(6, 4)``, the copy's index. The
error must be the float64 call's: the same exception and message, in the caller's
coordinates, for the whole call and for one computed in blocks of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _widen

_RNG = np.random.default_rng(1313)


def _labels(shape: tuple[int, ...], axis: int) -> np.ndarray:
    batch = tuple(n for k, n in enumerate(shape) if k != axis % len(shape))
    return _RNG.integers(0, shape[axis], size=batch)


def _targets(shape: tuple[int, ...], axis: int) -> np.ndarray:
    t = _RNG.random(shape)
    return t / t.sum(axis=axis, keepdims=True)


def _call(name: str) -> Callable[[np.ndarray, np.ndarray, int], Any]:
    """The call ``name`` on logits, the second argument and the class axis."""
    calls: dict[str, Callable[[np.ndarray, np.ndarray, int], Any]] = {
        "focal": lambda z, o, a: crossent.softmax_focal_loss(z, o, axis=a),
        "focal_grad": lambda z, o, a: crossent.softmax_focal_loss_grad(z, o, axis=a),
        "poly1": lambda z, o, a: crossent.poly1_cross_entropy(z, o, axis=a),
        "poly1_grad": lambda z, o, a: crossent.poly1_cross_entropy_grad(z, o, axis=a),
        "cap": lambda z, o, a: crossent.softmax_cross_entropy(z, o, axis=a, soft_cap=30.0),
        "cap_grad": lambda z, o, a: crossent.softmax_cross_entropy_grad(
            z, o, axis=a, soft_cap=30.0
        ),
        "distill": lambda z, o, a: crossent.distillation_loss(z, o, axis=a),
        "distill_grad": lambda z, o, a: crossent.distillation_loss_grad(z, o, axis=a),
        "targets_cap": lambda z, o, a: crossent.softmax_cross_entropy_with_targets(
            z, o, axis=a, soft_cap=30.0
        ),
        "targets_grad_cap": lambda z, o, a: crossent.softmax_cross_entropy_with_targets_grad(
            z, o, axis=a, soft_cap=30.0
        ),
    }
    return calls[name]


_LABELLED = ("focal", "focal_grad", "poly1", "poly1_grad", "cap", "cap_grad")
_PAIRED = ("distill", "distill_grad", "targets_cap", "targets_grad_cap")


def _message(call: Callable[[], Any]) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return str(caught.value)


def _check(name: str, logits: np.ndarray, other: np.ndarray, axis: int, dtype: Any) -> str:
    """The float64 call's message, checked to be the ``dtype`` call's too."""
    call = _call(name)
    other_low = other.astype(dtype) if other.dtype.kind == "f" else other
    expected = _message(lambda: call(logits.astype(np.float64), other, axis))
    assert _message(lambda: call(logits.astype(dtype), other_low, axis)) == expected
    return expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("name", _LABELLED + _PAIRED)
@pytest.mark.parametrize(
    ("shape", "axis", "bad"), [((37, 7), 0, (4, 6)), ((3, 5, 6), 1, (2, 3, 1))]
)
def test_a_bad_logit_is_named_at_the_callers_index(
    dtype: Any, name: str, shape: tuple[int, ...], axis: int, bad: tuple[int, ...]
) -> None:
    logits = _RNG.normal(size=shape)
    logits[bad] = np.nan
    other = _labels(shape, axis) if name in _LABELLED else _targets(shape, axis)
    message = _check(name, logits, other, axis, dtype)
    assert str(bad) in message


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("name", ["distill", "targets_cap", "targets_grad_cap"])
def test_a_bad_target_is_named_at_the_callers_index(dtype: Any, name: str) -> None:
    shape, axis, bad = (37, 7), 0, (4, 6)
    other = _targets(shape, axis)
    other[bad] = np.nan if name == "distill" else -0.5  # (a teacher's logits may be < 0)
    message = _check(name, _RNG.normal(size=shape), other, axis, dtype)
    assert str(bad) in message


@pytest.mark.parametrize("name", ["focal_grad", "cap", "targets_cap"])
def test_a_blocked_call_names_the_callers_index(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several blocks of rows (the block shrunk to a few rows), the bad entry in the
    last: the fallback whole call names the caller's index too."""
    monkeypatch.setattr(_widen, "BLOCK_BYTES", 8 * 9 * 64)
    shape, axis, bad = (64, 40), 0, (50, 39)
    logits = _RNG.normal(size=shape)
    logits[bad] = np.inf
    other = _labels(shape, axis) if name in _LABELLED else _targets(shape, axis)
    message = _check(name, logits, other, axis, np.float32)
    assert str(bad) in message
