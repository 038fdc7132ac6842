"""Issue 13: invalid inputs of large float16/float32 calls computed in float64 by blocks.

A blocked call (``losses/_widen.blocked``: focal, poly-1, distillation, the softmax
cross-entropy with ``soft_cap`` or with soft targets of float16 logits, and their
gradients) checks the labels and class weights once, whole, and each block's logits and
targets or teacher as the whole call checks them, then calls the block with
``validate=False``; any failure falls back to the whole call, which names the error in
its own order. Truth: the error (type and message) of the same call unblocked (blocks
larger than the logits: the whole float64 call, ``_widen.upcast``, which main's blocked
calls fall back to), for invalid values in the first block, a middle one and the last
(a partial block): NaN, +inf and rows of -inf in the logits, labels out of range (with
and without ``ignore_index``), negative, NaN or misshapen class weights, soft targets
that are NaN, negative, over 1 or not normalised, teachers of each form that are not
what their form says, bad options, a misfit ``out``, and two errors at once in
different blocks (the whole call's order decides which is named). With
``validate=False`` nothing is checked, as in the whole call, and no block falls back.
This module passes on main's tree too (main's blocks validate themselves, and fall back
to the whole call on any error), so the errors are main's.

Mutants caught (checked by hand): a block's logits not checked (``_widen._checked``
returning its labels unchecked: NaN logits give a result), the targets or teacher not
checked (``prepare`` with ``validate=False``: unnormalised targets give a result), the
labels' and weights' whole check skipped (``_Blocks._batch`` with ``validate=False``:
an out-of-range label gives a result or another error), and the blocks' checks run
when the caller turned validation off (``validate`` ignored: NaN logits fall back to
the whole call, which the ``_widen._widened`` spy sees).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from losses.blocked_checks import CLASSES
from losses.blocked_checks import labels as _labels
from losses.blocked_checks import logits as _logits

ROWS = 11  # blocks of 3 rows: 0-2, 3-5, 6-8 and 9-10
BLOCK_ROWS = 3
POSITIONS = {"first": 0, "middle": 4, "last": 10}

LABELLED = {
    "focal": (crossent.softmax_focal_loss, {"gamma": 2.0}),
    "focal_grad": (crossent.softmax_focal_loss_grad, {"gamma": 0.5}),
    "poly": (crossent.poly1_cross_entropy, {"epsilon": 1.0}),
    "poly_grad": (crossent.poly1_cross_entropy_grad, {"epsilon": -0.5}),
    "cap": (crossent.softmax_cross_entropy, {"soft_cap": 5.0}),
    "cap_grad": (crossent.softmax_cross_entropy_grad, {"soft_cap": 5.0}),
}


def _error(call: Callable[[], Any]) -> tuple[type, str]:
    """The exception ``call()`` raises (crossent's errors are ``ValueError`` or
    ``TypeError``): its type and message."""
    try:
        call()
    except (ValueError, TypeError) as error:
        return type(error), str(error)
    raise AssertionError("no error raised")


@pytest.fixture
def same_error(widen_blocks: Callable[[int], list[Any]]) -> Callable[..., None]:
    """``same_error(f, z, other, **kwargs)``: the call in blocks of :data:`BLOCK_ROWS`
    rows raises what the whole call raises (blocks larger than the logits: the whole
    float64 call of ``_widen.upcast``, the type and the message)."""

    def check(f: Callable[..., Any], z: np.ndarray, other: np.ndarray, **kwargs: Any) -> None:
        widen_blocks(10**9)
        expected = _error(lambda: f(z, other, **kwargs))
        widen_blocks(BLOCK_ROWS)
        assert _error(lambda: f(z, other, **kwargs)) == expected

    return check


def _bad_logits(z: np.ndarray, row: int, kind: str) -> np.ndarray:
    z = z.copy()
    if kind == "nan":
        z[row, 7] = np.nan
    elif kind == "posinf":
        z[row, 3] = np.inf
    else:  # a row of -inf
        z[row] = -np.inf
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("kind", ["nan", "posinf", "dead"])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", LABELLED)
def test_labelled_logits(
    same_error: Callable[..., None], name: str, position: str, kind: str, dtype: Any
) -> None:
    f, own = LABELLED[name]
    z = _bad_logits(_logits((ROWS, CLASSES), dtype), POSITIONS[position], kind)
    same_error(f, z, _labels((ROWS,)), **own)


LABEL_PROBLEMS = {
    "too_large": ({}, CLASSES),
    "negative": ({}, -1),
    "ignore_and_out": ({"ignore_index": -100}, CLASSES + 4),
    "weight_and_out": ({"weight": np.linspace(0.5, 1.5, CLASSES)}, -3),
}


@pytest.mark.parametrize("problem", LABEL_PROBLEMS)
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", LABELLED)
def test_labels_out_of_range(
    same_error: Callable[..., None], name: str, position: str, problem: str
) -> None:
    f, own = LABELLED[name]
    options, value = LABEL_PROBLEMS[problem]
    y = _labels((ROWS,))
    y[POSITIONS[position]] = value
    if "ignore_index" in options:
        y[1] = options["ignore_index"]
    same_error(f, _logits((ROWS, CLASSES), np.float32), y, **own, **options)


WEIGHTS = {
    "negative": np.r_[np.ones(CLASSES - 1), -0.5],
    "nan": np.r_[np.nan, np.ones(CLASSES - 1)],
    "inf": np.r_[np.ones(5), np.inf, np.ones(CLASSES - 6)],
    "shape": np.ones(CLASSES + 1),
}


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("name", LABELLED)
def test_bad_class_weights(same_error: Callable[..., None], name: str, weight: str) -> None:
    f, own = LABELLED[name]
    z, y = _logits((ROWS, CLASSES), np.float16), _labels((ROWS,))
    same_error(f, z, y, **own, weight=WEIGHTS[weight])


@pytest.mark.parametrize("name", LABELLED)
def test_two_errors_the_whole_calls_order(same_error: Callable[..., None], name: str) -> None:
    """A label out of range in the first block and NaN logits in the last; a bad option
    with NaN logits; bad weights with a bad label: the whole call names one of each."""
    f, own = LABELLED[name]
    z = _bad_logits(_logits((ROWS, CLASSES), np.float32), ROWS - 1, "nan")
    y = _labels((ROWS,))
    y[0] = CLASSES
    same_error(f, z, y, **own)
    same_error(f, z, _labels((ROWS,)), **own, reduction="median")
    same_error(f, z, _labels((ROWS,)), **{**own, "soft_cap": -1.0} if "soft_cap" in own else own)
    same_error(f, _logits((ROWS, CLASSES), np.float32), y, **own, weight=WEIGHTS["negative"])


@pytest.mark.parametrize("name", ["focal_grad", "poly_grad", "cap_grad"])
def test_gradient_out_and_bad_logits(same_error: Callable[..., None], name: str) -> None:
    """A misfit ``out`` and NaN logits in the last block: the whole call's order."""
    f, own = LABELLED[name]
    z = _bad_logits(_logits((ROWS, CLASSES), np.float32), ROWS - 1, "nan")
    y = _labels((ROWS,))
    for out in (np.empty((ROWS, CLASSES), np.float64), np.empty((ROWS, CLASSES), np.float32)):
        same_error(f, z, y, **own, out=out)


def _targets(dtype: Any) -> np.ndarray:
    rng = np.random.default_rng(2)
    t = rng.random((ROWS, CLASSES)) ** 4
    return (t / t.sum(axis=-1, keepdims=True)).astype(dtype)


def _bad_targets(t: np.ndarray, row: int, kind: str) -> np.ndarray:
    t = t.copy()
    if kind == "nan":
        t[row, 2] = np.nan
    elif kind == "posinf":
        t[row, 2] = np.inf
    elif kind == "negative":  # the row still sums to 1
        t[row] = 0.0
        t[row, 1], t[row, 2] = 1.25, -0.25
    elif kind == "over_one":
        t[row] = 0.0
        t[row, 4], t[row, 5] = 1.5, -0.5
    else:  # a row summing to 1.1
        t[row] *= 1.1
    return t


TARGET_FUNCTIONS = (
    crossent.softmax_cross_entropy_with_targets,
    crossent.softmax_cross_entropy_with_targets_grad,
)
TARGET_CALLS = {"float16": (np.float16, {}), "cap": (np.float32, {"soft_cap": 3.0})}


@pytest.mark.parametrize("call", TARGET_CALLS)
@pytest.mark.parametrize("target_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("kind", ["nan", "posinf", "negative", "over_one", "unnormalised"])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("f", TARGET_FUNCTIONS, ids=lambda f: f.__name__)
def test_bad_soft_targets(
    same_error: Callable[..., None],
    f: Callable[..., Any],
    position: str,
    kind: str,
    target_dtype: Any,
    call: str,
) -> None:
    dtype, options = TARGET_CALLS[call]
    t = _bad_targets(_targets(target_dtype), POSITIONS[position], kind)
    same_error(f, _logits((ROWS, CLASSES), dtype), t, **options)


@pytest.mark.parametrize("kind", ["nan", "posinf", "dead"])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("f", TARGET_FUNCTIONS, ids=lambda f: f.__name__)
def test_soft_target_logits_and_order(
    same_error: Callable[..., None], f: Callable[..., Any], position: str, kind: str
) -> None:
    """Bad logits alone, then with bad targets in another block and bad weights (the
    whole call names the logits first)."""
    row = POSITIONS[position]
    z = _bad_logits(_logits((ROWS, CLASSES), np.float16), row, kind)
    t = _targets(np.float16)
    same_error(f, z, t)
    bad = _bad_targets(t, (row + 5) % ROWS, "unnormalised")
    same_error(f, z, bad)
    same_error(f, _logits((ROWS, CLASSES), np.float16), bad, weight=WEIGHTS["negative"])
    same_error(f, _logits((ROWS, CLASSES), np.float16), t, weight=WEIGHTS["nan"])
    same_error(f, z, t, label_smoothing=2.0)


def _teacher(z: np.ndarray, form: str) -> np.ndarray:
    v = z.astype(np.float64) * 0.7 + 0.3
    log_t = v - v.max(axis=-1, keepdims=True)
    log_t = log_t - np.log(np.exp(log_t).sum(axis=-1, keepdims=True))
    if form == "probs":
        return np.exp(log_t).astype(np.float32)
    if form == "log_probs":
        return log_t.astype(np.float32)
    return v.astype(z.dtype)


TEACHER_PROBLEMS = {
    "logits": ("nan", "posinf", "dead"),
    "probs": ("nan", "negative", "over_one", "unnormalised"),
    "log_probs": ("nan", "posinf", "unnormalised"),
}


def _bad_teacher(t: np.ndarray, row: int, form: str, kind: str) -> np.ndarray:
    t = t.copy()
    if form == "probs":
        return _bad_targets(t, row, kind)
    if kind == "nan":
        t[row, 1] = np.nan
    elif kind == "posinf":
        t[row, 6] = np.inf
    elif kind == "dead":
        t[row] = -np.inf
    else:  # log-probabilities whose exp-sum is e
        t[row] += 1.0
    return t


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(
    ("form", "kind"), [(form, kind) for form, kinds in TEACHER_PROBLEMS.items() for kind in kinds]
)
def test_bad_teacher(
    same_error: Callable[..., None], form: str, kind: str, position: str, grad: bool
) -> None:
    f = crossent.distillation_loss_grad if grad else crossent.distillation_loss
    z = _logits((ROWS, CLASSES), np.float32)
    t = _bad_teacher(_teacher(z, form), POSITIONS[position], form, kind)
    same_error(f, z, t, teacher_form=form, temperature=2.0)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
def test_distillation_student_and_order(
    same_error: Callable[..., None], position: str, grad: bool
) -> None:
    """A bad student alone, with a bad teacher in another block, and bad options."""
    f = crossent.distillation_loss_grad if grad else crossent.distillation_loss
    row = POSITIONS[position]
    z = _logits((ROWS, CLASSES), np.float16)
    t = _teacher(z, "probs")
    bad = _bad_logits(z, row, "nan")
    same_error(f, bad, t, teacher_form="probs")
    same_error(f, bad, _bad_teacher(t, (row + 4) % ROWS, "probs", "nan"), teacher_form="probs")
    same_error(f, z, _bad_teacher(t, row, "probs", "negative"), teacher_form="probs")
    for options in (
        {"teacher_form": "prob"},
        {"temperature": 0.0},
        {"direction": "sideways"},
        {"reduction": "all"},
        {"base": 1.0},
    ):
        same_error(f, bad, t, **options)


def test_classes_first_indices(same_error: Callable[..., None]) -> None:
    """The class axis first: the whole call's index (that of its classes-last copy)."""
    z = _logits((CLASSES, 7), np.float32)
    z[4, 6] = np.nan
    for f, own in LABELLED.values():
        same_error(f, z, _labels((7,)), **own, axis=0)
    t = np.moveaxis(_targets(np.float16)[:7], 0, 1).copy()
    t[5, 6] = -0.5
    for f in TARGET_FUNCTIONS:
        same_error(f, z.astype(np.float16), t, axis=0)


@pytest.mark.parametrize("name", LABELLED)
def test_validate_false_checks_nothing(widen_blocks: Callable[[int], list[Any]], name: str) -> None:
    """``validate=False``: NaN logits in the last block give the whole call's (NaN)
    values, not an error, without falling back to the whole call."""
    copies = widen_blocks(BLOCK_ROWS)
    f, own = LABELLED[name]
    z = _bad_logits(_logits((ROWS, CLASSES), np.float32), ROWS - 1, "nan")
    y = _labels((ROWS,))
    for reduction in ("none", "sum"):
        kwargs = {**own, "reduction": reduction, "validate": False}
        got = np.asarray(f(z, y, **kwargs))
        want = np.asarray(f(z.astype(np.float64), y, **kwargs)).astype(np.float32)
        np.testing.assert_array_equal(got, want)
    assert not copies


@pytest.mark.parametrize("grad", [False, True])
def test_validate_false_targets_and_teacher(
    widen_blocks: Callable[[int], list[Any]], grad: bool
) -> None:
    """``validate=False``: unnormalised targets and teachers go through, as in the
    whole call, without falling back to it."""
    copies = widen_blocks(BLOCK_ROWS)
    z = _logits((ROWS, CLASSES), np.float16)
    t = _bad_targets(_targets(np.float16), ROWS - 1, "unnormalised")
    cases = [
        (TARGET_FUNCTIONS[grad], t, {}),
        (
            crossent.distillation_loss_grad if grad else crossent.distillation_loss,
            t,
            {"teacher_form": "probs"},
        ),
    ]
    for f, other, options in cases:
        got = np.asarray(f(z, other, **options, validate=False))
        want = np.asarray(f(z.astype(np.float64), other, **options, validate=False))
        np.testing.assert_array_equal(got, want.astype(np.float32))
    assert not copies
    for f, other, options in cases:
        with pytest.raises(crossent.errors.InputError):
            f(z, other, **options)
