"""Issue 13: large float16/float32 focal, poly-1 and distillation calls in blocks of rows.

Such NumPy calls compute in float64 (``losses/_widen.py``); a large one (float64 logits
over ``_widen.BLOCK_BYTES``) does so block by block (:func:`_widen.blocked`): each
block's rows by the float64 call, the whole batch's reduction, unit and gradient scale
after. Truth: the same call on the whole array converted to float64, rounded to float32
(what the call returned before, and independent of ``_widen``): the same bits, across
block boundaries (rows not a multiple of the block, a row larger than a block, one row,
batch axes before and after the class axis), for float16 and float32, every reduction,
class weights, ``ignore_index``, a unit, each temperature, direction and teacher form of
distillation, and a gradient written into ``out``. The path taken is checked too: no
blocked call copies the whole array (``_widen._widened``, the whole call's copy, is not
reached). The peak memory (tracemalloc, deterministic) of a call of 31 MiB of float32
logits stays below the gradient itself plus 8 blocks (16 MiB), where the whole float64
copy alone is 62 MiB.

Mutants caught (checked by hand): each block copying the whole array before slicing it
(the peak-memory test), the reduction's scale left off the gradient or a block's own
mean (the bit-equality tests), and the unit applied twice (``base``, bit equality).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _distill_fused, _widen
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


LABELLED = {
    "focal": (crossent.softmax_focal_loss, {"gamma": 2.0}),
    "focal_half": (crossent.softmax_focal_loss, {"gamma": 0.5}),
    "poly": (crossent.poly1_cross_entropy, {"epsilon": 1.0}),
    "focal_grad": (crossent.softmax_focal_loss_grad, {"gamma": 2.0}),
    "poly_grad": (crossent.poly1_cross_entropy_grad, {"epsilon": -0.5}),
}
LABEL_OPTIONS = {
    "plain": {},
    "weight": {"weight": np.linspace(0.1, 3.3, CLASSES)},
    "ignore": {"ignore_index": 3},
    "weight_ignore": {"weight": np.linspace(0.2, 2.0, CLASSES), "ignore_index": 5},
    "all_ignored": {"ignore_index": -7},
}
REDUCTIONS = ("mean", "sum", "none", "parts")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("option", LABEL_OPTIONS)
@pytest.mark.parametrize("name", LABELLED)
@pytest.mark.parametrize("rows", [1, 3, 4])
def test_labelled_blocks_are_the_whole_float64_call(
    widen_blocks: Callable[[int], list[Any]],
    name: str,
    option: str,
    dtype: Any,
    rows: int,
) -> None:
    """Every reduction in turn (in the loop, not a parameter: 600 tests were 1.5-3 ms
    each of pytest's own time, CI time; gradients take no 'parts')."""
    copies = widen_blocks(rows)
    f, own = LABELLED[name]
    z, y = _logits((ROWS, CLASSES), dtype), _labels((ROWS,))
    if option == "all_ignored":
        y = np.full(ROWS, -7)
    for reduction in REDUCTIONS:
        if name.endswith("_grad") and reduction == "parts":
            continue
        kwargs = {**own, **LABEL_OPTIONS[option], "reduction": reduction}
        if "base" not in kwargs and name.startswith("focal"):
            kwargs["base"] = 2.0 if option == "weight" else None
        got = f(z, y, **kwargs)
        assert not copies, reduction  # blocked: no whole copy
        assert _bits(got) == _bits(_whole(f, z, y, **kwargs)), reduction


@pytest.mark.parametrize("name", LABELLED)
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((4, CLASSES, 5), 1), ((3, 2, 4, CLASSES), -1), ((CLASSES, 13), 0), ((5, CLASSES, 1), 1)],
)
def test_batch_axes_around_the_classes(
    widen_blocks: Callable[[int], list[Any]], name: str, shape: tuple[int, ...], axis: int
) -> None:
    """Batch axes on both sides of the class axis: blocks of leading indices and of
    slices of the last batch axis (``_widen._row_blocks``), each reduction."""
    copies = widen_blocks(3)
    f, own = LABELLED[name]
    z = _logits(shape, np.float32)
    y = _labels(np.delete(np.array(shape), axis % len(shape)).tolist())
    for reduction in ("mean", "sum", "none"):
        kwargs = {**own, "axis": axis, "reduction": reduction, "ignore_index": 2}
        assert _bits(f(z, y, **kwargs)) == _bits(_whole(f, z, y, **kwargs))
    assert not copies


@pytest.mark.parametrize("name", ["focal_grad", "poly_grad"])
def test_gradient_into_out_and_strided_logits(
    widen_blocks: Callable[[int], list[Any]], name: str
) -> None:
    copies = widen_blocks(2)
    f, own = LABELLED[name]
    z = np.asfortranarray(_logits((ROWS, CLASSES), np.float32))
    y = _labels((ROWS,))
    out = np.full((ROWS, CLASSES), np.nan, np.float32)
    got = f(z, y, **own, out=out)
    assert got is out
    assert _bits(out) == _bits(_whole(f, z, y, **own))
    transposed = np.full((CLASSES, ROWS), np.nan, np.float32)
    f(np.ascontiguousarray(z.T), y, **own, axis=0, out=transposed)
    assert _bits(transposed) == _bits(_whole(f, z.T, y, **own, axis=0))
    assert not copies


def test_a_row_larger_than_a_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Huge V: one row per block, a row of 2**17 classes (1 MiB of float64) over a
    block of 64 KiB; and one such row alone (the whole call)."""
    monkeypatch.setattr(_widen, "BLOCK_BYTES", 1 << 16)
    for rows in (5, 1):
        z, y = _logits((rows, 1 << 17), np.float32), _labels((rows,), 1 << 17)
        for f, own in LABELLED.values():
            assert _bits(f(z, y, **own)) == _bits(_whole(f, z, y, **own))


def test_one_row_and_errors_are_the_whole_calls(widen_blocks: Callable[[int], list[Any]]) -> None:
    """One row takes the whole call (one block, or the small path); an error is the
    whole call's, named in its order (a label out of range in the last block); a loss
    given ``out`` is a ``TypeError`` (it was filled with the loss, blocked or not)."""
    widen_blocks(1)
    f, own = LABELLED["focal"]
    z, y = _logits((1, CLASSES), np.float32), _labels((1,))
    assert _bits(f(z, y, **own)) == _bits(_whole(f, z, y, **own))
    z, y = _logits((ROWS, CLASSES), np.float32), _labels((ROWS,))
    y[-1] = CLASSES
    with pytest.raises(crossent.InputError) as blocked:
        f(z, y, **own)
    with pytest.raises(crossent.InputError) as whole:
        f(z.astype(np.float64), y, **own)
    assert str(blocked.value) == str(whole.value)
    for rows in (ROWS, 1):  # blocked, whole
        with pytest.raises(TypeError, match=r"softmax_focal_loss.*'out'"):
            f(z[:rows], _labels((rows,)), **own, reduction="none", out=np.empty_like(z[:rows]))


DISTILL = {
    "plain": {},
    "hot": {"temperature": 2.5},
    "cold_reverse": {"temperature": 0.5, "direction": "reverse"},
    "probs": {"teacher_form": "probs", "temperature": 3.0},
    "log_probs_reverse": {"teacher_form": "log_probs", "direction": "reverse"},
    "bits": {"base": 2.0, "temperature": 2.0},
}


def _teacher(z: np.ndarray, form: str) -> np.ndarray:
    v = z.astype(np.float64) * 0.7 + 0.3
    log_t = v - v.max(axis=-1, keepdims=True)
    log_t = log_t - np.log(np.exp(log_t).sum(axis=-1, keepdims=True))
    if form == "probs":
        return np.exp(log_t).astype(z.dtype)
    if form == "log_probs":
        return log_t.astype(z.dtype)
    return v.astype(z.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", DISTILL)
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("rows", [1, 4])
def test_distillation_blocks_are_the_whole_float64_call(
    widen_blocks: Callable[[int], list[Any]],
    option: str,
    reduction: str,
    dtype: Any,
    grad: bool,
    rows: int,
) -> None:
    if grad and reduction == "parts":
        pytest.skip("gradients take no 'parts'")
    copies = widen_blocks(rows)
    f = crossent.distillation_loss_grad if grad else crossent.distillation_loss
    kwargs = {**DISTILL[option], "reduction": reduction}
    z = _logits((ROWS, CLASSES), dtype)
    t = _teacher(z, kwargs.get("teacher_form", "logits"))
    if kwargs.get("teacher_form") == "probs" and dtype == np.float16:
        kwargs["validate"] = False  # (float16 rows do not sum to 1 within its tolerance)
    got = f(z, t, **kwargs)
    assert not copies
    assert _bits(got) == _bits(_whole(f, z, t, **kwargs))


def test_distillation_classes_first(widen_blocks: Callable[[int], list[Any]]) -> None:
    copies = widen_blocks(2)
    z = _logits((3, CLASSES, 4), np.float32)
    t = np.moveaxis(_teacher(np.moveaxis(z, 1, -1), "logits"), -1, 1)
    for f in (crossent.distillation_loss, crossent.distillation_loss_grad):
        for reduction in ("mean", "none"):
            kwargs = {"axis": 1, "temperature": 2.0, "reduction": reduction}
            assert _bits(f(z, t, **kwargs)) == _bits(_whole(f, z, t, **kwargs))
    assert not copies


@pytest.mark.parametrize(
    "name", ["focal", "poly", "focal_grad", "poly_grad", "distill", "distill_grad"]
)
def test_peak_memory_is_bounded_by_the_block(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """tracemalloc's peak of one call: at most its result plus 8 blocks (16 MiB). (Large
    distillation calls take the fused kernels, ``_distill_fused``, whose blocks are
    ``_distill_rows``': turned off here, where ``_widen``'s blocks are measured.)"""
    z = _logits(LARGE, np.float32)
    if name.startswith("distill"):
        monkeypatch.setattr(_distill_fused, "FUSED_ELEMENTS", 1 << 62)
        t = (z * np.float32(0.7)).astype(np.float32)
        f = crossent.distillation_loss_grad if name.endswith("grad") else crossent.distillation_loss
        call: Callable[[], Any] = lambda: f(z, t, temperature=2.0)  # noqa: E731
    else:
        f, own = LABELLED[name]
        y = _labels(LARGE[:1], LARGE[1])
        call = lambda: f(z, y, **own, weight=np.ones(LARGE[1]), ignore_index=0)  # noqa: E731
    assert_peak_within_blocks(call)
