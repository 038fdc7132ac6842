"""Issue 13: large float16/float32 softmax cross-entropy calls computed in float64, in
blocks of rows.

The softmax cross-entropy of integer labels with ``soft_cap``, and of soft targets for
float16 logits (or float32 with ``soft_cap``), compute NumPy float16/float32 logits in
float64 (``losses/_widen.py``: ``relayout``'s ``wide``); a large call (float64 logits
over ``_widen.BLOCK_BYTES``) does so block by block (:func:`_widen.blocked`): each
block's rows by the float64 call, the whole batch's reduction, unit and gradient scale
after, with the example weights of the whole batch from the labels (class weights,
``ignore_index``) or from the soft targets and class weights (:math:`\\omega_i = \\sum_c
w_c t_{ic}`, formed a block at a time). Truth: the same call on the whole array
converted to float64, rounded to float32 (independent of ``_widen``): the same bits,
across block boundaries, for float16 and float32, every reduction, several ``soft_cap``
values with class weights, ``ignore_index``, label smoothing, z-loss, temperature and a
unit, gradients written into ``out``, batch axes on both sides of the class axis. No
blocked call copies the whole array (``_widen._widened`` is not reached). The peak
memory (tracemalloc) of calls of 31 MiB of float32 logits stays below the result plus 8
blocks (16 MiB), where the whole float64 copy alone is 62 MiB.

Mutants caught (checked by hand): the soft targets' example weights left out
(``weighs`` ignored: every row weighing 1, the weighted mean's bits), formed from the
smoothed targets, or of one block only; ``relayout`` calling ``upcast`` instead of
``wide`` (the whole copy: the spy and the peak-memory test); the gradient scale left off
(bit equality).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from losses.blocked_checks import (
    CLASSES,
    LARGE,
    assert_peak_within_blocks,
)
from losses.blocked_checks import bits as _bits
from losses.blocked_checks import labels as _labels
from losses.blocked_checks import logits as _logits
from losses.blocked_checks import whole as _whole

ROWS = 11  # not a multiple of any block below
REDUCTIONS = ("mean", "sum", "none", "parts")

LABELLED = (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad)
TARGETS = (
    crossent.softmax_cross_entropy_with_targets,
    crossent.softmax_cross_entropy_with_targets_grad,
)


def _targets(shape: tuple[int, ...], dtype: Any, seed: int = 2) -> np.ndarray:
    """Soft targets along the last axis: uneven rows (some near one-hot), summing to 1
    within ``dtype``'s tolerance."""
    rng = np.random.default_rng(seed)
    t = rng.random(shape) ** 4
    t[..., 0] += np.linspace(0.0, 40.0, t[..., 0].size).reshape(t[..., 0].shape)
    return (t / t.sum(axis=-1, keepdims=True)).astype(dtype)


WEIGHT = np.linspace(0.1, 3.3, CLASSES)
LABEL_OPTIONS = {
    "cap": {"soft_cap": 5.0},
    "cap_small": {"soft_cap": 0.5},
    "cap_weight_ignore": {"soft_cap": 20.0, "weight": WEIGHT, "ignore_index": 3},
    "cap_everything": {
        "soft_cap": 2.0,
        "weight": WEIGHT,
        "ignore_index": 5,
        "label_smoothing": 0.1,
        "z_loss": 1e-3,
        "temperature": 1.5,
        "base": 2.0,
    },
    "cap_all_ignored": {"soft_cap": 3.0, "ignore_index": -7},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", LABEL_OPTIONS)
@pytest.mark.parametrize("f", LABELLED, ids=lambda f: f.__name__)
@pytest.mark.parametrize("rows", [1, 3, 4])
def test_soft_cap_blocks_are_the_whole_float64_call(
    widen_blocks: Callable[[int], list[Any]],
    f: Callable[..., Any],
    option: str,
    reduction: str,
    dtype: Any,
    rows: int,
) -> None:
    if f is crossent.softmax_cross_entropy_grad and reduction == "parts":
        pytest.skip("gradients take no 'parts'")
    copies = widen_blocks(rows)
    kwargs = {**LABEL_OPTIONS[option], "reduction": reduction}
    z, y = _logits((ROWS, CLASSES), dtype), _labels((ROWS,))
    if option == "cap_all_ignored":
        y = np.full(ROWS, -7)
    got = f(z, y, **kwargs)
    assert not copies  # blocked: no whole copy
    assert _bits(got) == _bits(_whole(f, z, y, **kwargs))


TARGET_OPTIONS = {
    "plain": {},
    "weight": {"weight": WEIGHT},
    "smooth_weight": {"weight": WEIGHT, "label_smoothing": 0.2, "z_loss": 1e-3},
    "cap": {"soft_cap": 4.0},
    "cap_weight_bits": {"soft_cap": 1.0, "weight": WEIGHT, "temperature": 0.7, "base": 2.0},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("target_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", TARGET_OPTIONS)
@pytest.mark.parametrize("f", TARGETS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("rows", [1, 4])
def test_soft_target_blocks_are_the_whole_float64_call(
    widen_blocks: Callable[[int], list[Any]],
    f: Callable[..., Any],
    option: str,
    reduction: str,
    target_dtype: Any,
    dtype: Any,
    rows: int,
) -> None:
    """float16 logits with any option, float32 ones with ``soft_cap`` (without it they
    take the fused path: no float64, nothing to block)."""
    if f is crossent.softmax_cross_entropy_with_targets_grad and reduction == "parts":
        pytest.skip("gradients take no 'parts'")
    kwargs = {**TARGET_OPTIONS[option], "reduction": reduction}
    if dtype == np.float32 and "soft_cap" not in kwargs:
        pytest.skip("float32 logits without soft_cap: the fused path")
    copies = widen_blocks(rows)
    z, t = _logits((ROWS, CLASSES), dtype), _targets((ROWS, CLASSES), target_dtype)
    got = f(z, t, **kwargs)
    assert not copies
    assert _bits(got) == _bits(_whole(f, z, t, **kwargs))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((4, CLASSES, 5), 1), ((3, 2, 4, CLASSES), -1), ((CLASSES, 13), 0), ((5, CLASSES, 1), 1)],
)
def test_batch_axes_around_the_classes(
    widen_blocks: Callable[[int], list[Any]], shape: tuple[int, ...], axis: int
) -> None:
    """Batch axes on both sides of the class axis (labels and weighted soft targets:
    the targets' example weights are blocked over the same rows), each reduction."""
    copies = widen_blocks(3)
    z = _logits(shape, np.float16)
    y = _labels(np.delete(np.array(shape), axis % len(shape)).tolist())
    t = np.moveaxis(_targets(np.moveaxis(z, axis, -1).shape, np.float16), -1, axis)
    for reduction in ("mean", "sum", "none"):
        common = {"axis": axis, "reduction": reduction, "weight": WEIGHT}
        for f in LABELLED:
            kwargs = {**common, "soft_cap": 3.0, "ignore_index": 2}
            assert _bits(f(z, y, **kwargs)) == _bits(_whole(f, z, y, **kwargs))
        for f in TARGETS:
            assert _bits(f(z, t, **common)) == _bits(_whole(f, z, t, **common))
    assert not copies


def test_gradient_into_out_and_strided_logits(widen_blocks: Callable[[int], list[Any]]) -> None:
    copies = widen_blocks(2)
    f = crossent.softmax_cross_entropy_grad
    own = {"soft_cap": 4.0, "weight": WEIGHT, "reduction": "mean"}
    z = np.asfortranarray(_logits((ROWS, CLASSES), np.float32))
    y = _labels((ROWS,))
    out = np.full((ROWS, CLASSES), np.nan, np.float32)
    assert f(z, y, **own, out=out) is out
    assert _bits(out) == _bits(_whole(f, z, y, **own))
    transposed = np.full((CLASSES, ROWS), np.nan, np.float32)
    assert f(np.ascontiguousarray(z.T), y, **own, axis=0, out=transposed) is transposed
    assert _bits(transposed) == _bits(_whole(f, z.T, y, **own, axis=0))
    assert not copies


def test_errors_are_the_whole_calls(widen_blocks: Callable[[int], list[Any]]) -> None:
    """An error is the whole call's, named in its order: a label out of range in the
    last block, a target row that does not sum to 1 there, a bad class weight. A soft
    target gradient takes no ``out`` (its signature has none): float16 logits get the
    float64 call's ``TypeError``, before any check, as every dtype does."""
    widen_blocks(2)
    z = _logits((ROWS, CLASSES), np.float16)
    y = _labels((ROWS,))
    y[-1] = CLASSES
    t = _targets((ROWS, CLASSES), np.float16)
    t[-1] *= 2
    bad_weight = -WEIGHT
    cases: list[tuple[Callable[..., Any], Any, dict[str, Any]]] = [
        (crossent.softmax_cross_entropy, y, {"soft_cap": 2.0}),
        (crossent.softmax_cross_entropy_with_targets, t, {}),
        (crossent.softmax_cross_entropy_with_targets, t * 0.5, {"weight": bad_weight}),
    ]
    for f, other, kwargs in cases:
        with pytest.raises(crossent.InputError) as blocked:
            f(z, other, **kwargs)
        with pytest.raises(crossent.InputError) as whole:
            f(z.astype(np.float64), other, **kwargs)
        assert str(blocked.value) == str(whole.value)
    g = crossent.softmax_cross_entropy_with_targets_grad
    t = _targets((ROWS, CLASSES), np.float16)
    out = np.full(z.shape, np.nan, np.float32)
    with pytest.raises(TypeError) as blocked_type:
        g(z, t, out=out)
    with pytest.raises(TypeError) as whole_type:
        g(z.astype(np.float64), t.astype(np.float64), out=out.astype(np.float64))
    assert str(blocked_type.value) == str(whole_type.value)
    assert np.isnan(out).all()  # nothing written


@pytest.mark.parametrize("name", ["cap", "cap_grad", "targets", "targets_grad"])
def test_peak_memory_is_bounded_by_the_block(name: str) -> None:
    """tracemalloc's peak of one call: at most its result plus 8 blocks (16 MiB)."""
    if name.startswith("cap"):
        z = _logits(LARGE, np.float32)
        y = _labels(LARGE[:1], LARGE[1])
        f = LABELLED[name.endswith("grad")]
        call: Callable[[], Any] = lambda: f(z, y, soft_cap=30.0, weight=np.ones(LARGE[1]))  # noqa: E731
    else:
        z = _logits(LARGE, np.float16)
        t = _targets(LARGE, np.float16)
        g = TARGETS[name.endswith("grad")]
        call = lambda: g(z, t, weight=np.ones(LARGE[1]))  # noqa: E731
    assert_peak_within_blocks(call)
