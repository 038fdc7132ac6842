"""Issue 13, "Small inputs": the per-call shortcuts keep every check and every value.

The option checks are cached by value and type, the public softmax losses are bodies
over their prepare step (issue 11), and the NumPy primitives take shortcuts; these
tests pin that nothing a caller can see changed.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent import _xp
from crossent._xp import compat_numpy
from crossent.errors import InputError
from crossent.losses._batch import batch_for, loss_options

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
LABELS = np.array([0, 2])


def test_issue13_small_inputs_cached_options_still_reject_a_bool() -> None:
    assert loss_options(temperature=1.0).temperature == 1.0  # cached for 1.0
    with pytest.raises(InputError, match="`temperature` must be a real number; got True"):
        loss_options(temperature=True)
    with pytest.raises(InputError, match="`label_smoothing` must be a real number"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=True)


def test_issue13_small_inputs_unhashable_option_gets_the_usual_error() -> None:
    with pytest.raises(InputError, match="`z_loss` must be a real number"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, z_loss=np.array([0.1]))


def test_issue13_small_inputs_cached_options_are_the_checked_ones() -> None:
    first = loss_options(label_smoothing=0.1, base=2)
    again = loss_options(label_smoothing=0.1, base=2)
    assert first == again
    assert first.log_base == pytest.approx(np.log(2.0))
    with pytest.raises(InputError, match="`base`"):
        loss_options(base=1)


def test_issue13_small_inputs_public_loss_takes_no_fused_keyword() -> None:
    with pytest.raises(TypeError, match="'fused'"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, fused=False)
    with pytest.raises(TypeError, match="'fused'"):
        crossent.softmax_cross_entropy_grad(LOGITS, LABELS, fused=False)


def test_issue13_small_inputs_gradient_writes_into_out() -> None:
    out = np.empty_like(LOGITS)
    result = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, out=out)
    assert result is out
    np.testing.assert_array_equal(out, crossent.softmax_cross_entropy_grad(LOGITS, LABELS))


class _Plain(np.ndarray):
    """A NumPy subclass: ``type(x) is np.ndarray`` is False, so the generic branch runs."""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 10), (8, 10), (2, 3, 5), (4, 1)])
def test_issue13_loss_overhead_numpy_primitives_match_the_namespace(
    dtype: type, shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 0] = np.max(x, axis=-1)  # a tie at the maximum in every row
    if shape[-1] > 1:
        x.reshape(-1)[1] = -np.inf  # a zero probability
    index = rng.integers(0, shape[-1], size=(*shape[:-1], 1))
    mask = x > 0
    xs, idx, ms = x.view(_Plain), index.view(_Plain), mask.view(_Plain)
    pairs = [
        (_xp.where_zero(mask, x, xp=compat_numpy), _xp.where_zero(ms, xs, xp=compat_numpy)),
        (_xp.row_max(x, xp=compat_numpy), _xp.row_max(xs, xp=compat_numpy)),
        (_xp.row_sum(x, xp=compat_numpy), _xp.row_sum(xs, xp=compat_numpy)),
        (
            _xp.take_along_last(x, index, xp=compat_numpy),
            _xp.take_along_last(xs, idx, xp=compat_numpy),
        ),
        (_xp.reshape(x, (-1,), xp=compat_numpy), _xp.reshape(xs, (-1,), xp=compat_numpy)),
    ]
    shifted = x - np.max(x, axis=-1, keepdims=True)
    pairs.append(
        (
            _xp.log_sum_exp_shifted(shifted, xp=compat_numpy),
            _xp.log_sum_exp_shifted(shifted.view(_Plain), xp=compat_numpy),
        )
    )
    for fast, generic in pairs:
        assert type(fast) is np.ndarray
        assert fast.dtype == generic.dtype, (fast.dtype, generic.dtype)
        assert fast.shape == generic.shape
        np.testing.assert_array_equal(fast, np.asarray(generic))


def test_issue13_loss_overhead_take_along_last_broadcasts_like_the_namespace() -> None:
    x = np.arange(12.0).reshape(3, 4)
    index = np.array([[1]])  # broadcasts over the rows: the namespace's own function
    np.testing.assert_array_equal(
        _xp.take_along_last(x, index, xp=compat_numpy), np.take_along_axis(x, index, axis=-1)
    )


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        ([[0.0, np.nan, 1.0]], "contains NaN at index"),
        ([[0.0, np.inf, 1.0]], "must not be \\+inf"),
        ([[0.0, 1.0], [-np.inf, -np.inf]], "row 1 entirely -inf"),
    ],
)
def test_issue13_loss_overhead_one_pass_logit_check_still_names_the_entry(
    logits: list[list[float]], message: str
) -> None:
    labels = np.zeros(len(logits), dtype=np.int64)
    with pytest.raises(InputError, match=message):
        crossent.softmax_cross_entropy(np.array(logits), labels)


def test_issue13_loss_overhead_mean_of_all_ignored_rows_is_zero_with_zero_gradient() -> None:
    labels = np.array([-100, -100])
    loss = crossent.softmax_cross_entropy(LOGITS, labels, ignore_index=-100)
    grad = crossent.softmax_cross_entropy_grad(LOGITS, labels, ignore_index=-100)
    assert loss == 0.0
    assert not np.signbit(loss)
    np.testing.assert_array_equal(grad, np.zeros_like(LOGITS))


def test_issue13_loss_overhead_one_reduction_nan_check_still_names_the_entry() -> None:
    logits = np.array([0.5, -np.inf, np.inf, np.nan, 1.0])
    targets = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    with pytest.raises(InputError, match="`logits` contains NaN at index 3"):
        crossent.sigmoid_cross_entropy(logits, targets)
    assert np.isfinite(crossent.sigmoid_cross_entropy(logits[:3], targets[:3]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [(1,), (7,), (2, 3), (0,)])
def test_issue13_loss_overhead_unit_weight_normalizer_is_the_summed_one(
    dtype: type, rows: tuple[int, ...]
) -> None:
    values = np.zeros((*rows, 4), dtype=dtype)
    opts = loss_options()
    ones = np.ones((*rows, 1), dtype=dtype)
    counted = batch_for(values, 1, np.dtype(dtype), opts, xp=compat_numpy)
    counted.unweighted = False  # the sum of its ones, not the count
    summed = batch_for(values, 1, np.dtype(dtype), opts, xp=compat_numpy, example_weight=ones)
    unit = batch_for(values, 1, np.dtype(dtype), opts, xp=compat_numpy)
    assert unit.unweighted
    assert not summed.unweighted
    assert type(unit.normalizer()) is type(summed.normalizer()) is type(counted.normalizer())
    assert unit.normalizer() == summed.normalizer() == counted.normalizer() == np.prod(rows)


def test_issue13_loss_overhead_unit_shortcut_matches_weighted_and_ignored_calls() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 5))
    logits[2, 0] = -np.inf  # a zero-probability class that is nobody's label
    labels = np.array([1, 4, 3, 0, 2, 1])
    ones = np.ones(5)
    for reduction in ("mean", "sum", "none"):
        plain = crossent.softmax_cross_entropy(logits, labels, reduction=reduction)
        weighted = crossent.softmax_cross_entropy(logits, labels, weight=ones, reduction=reduction)
        ignoring = crossent.softmax_cross_entropy(
            logits, labels, ignore_index=-100, reduction=reduction
        )
        np.testing.assert_array_equal(plain, weighted)
        np.testing.assert_array_equal(plain, ignoring)
        grad = crossent.softmax_cross_entropy_grad(logits, labels, reduction=reduction)
        np.testing.assert_array_equal(
            grad,
            crossent.softmax_cross_entropy_grad(logits, labels, weight=ones, reduction=reduction),
        )
