"""Issue 10: property tests on the edge-case strategies (ties, -inf logits, confidences on
bin edges and at 1.0, every option), with independent oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent
from crossent.losses import _cpu_kernels

from strategies import (
    calibration_options,
    labels_for,
    logit_rows,
    predictions_on_edges,
    softmax_options,
)
from tolerances import FLOAT32_KERNEL, SUM, assert_close, close, ulps


def _generic(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """``fn`` with the fused kernels unavailable: the pure Array-API path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_cpu_kernels, "available", lambda: False)
        return fn(*args, **kwargs)


@settings(max_examples=40)
@given(st.data())
def test_issue10_tests_fused_kernels_agree_with_the_generic_path(data: st.DataObject) -> None:
    pytest.importorskip("numba")
    z = data.draw(logit_rows(magnitude=60.0)).astype(np.float32)
    labels = data.draw(labels_for(z))
    options = data.draw(softmax_options(z.shape[1]))
    if "ignore_index" in options:
        ignored = np.array(
            data.draw(st.lists(st.booleans(), min_size=z.shape[0], max_size=z.shape[0]))
        )
        labels = np.where(ignored, options["ignore_index"], labels)
    if "weight" in options:
        options["weight"] = options["weight"].astype(np.float32)
    fast = np.asarray(crossent.softmax_cross_entropy(z, labels, **options))
    slow = np.asarray(_generic(crossent.softmax_cross_entropy, z, labels, **options))
    exact = np.asarray(crossent.softmax_cross_entropy(z.astype(np.float64), labels, **options))
    assert fast.dtype == np.float32
    assert not np.isnan(exact).any()
    # +inf (smoothing mass on a -inf class) on the same rows, finite values within float32
    np.testing.assert_array_equal(np.isinf(fast), np.isinf(exact))
    finite = np.isfinite(exact)
    assert_close(fast[finite], exact[finite], FLOAT32_KERNEL, np.float32)
    assert_close(slow[finite], exact[finite], FLOAT32_KERNEL, np.float32)
    if not np.all(finite):
        return
    grad_fast = np.asarray(crossent.softmax_cross_entropy_grad(z, labels, **options))
    grad_slow = np.asarray(_generic(crossent.softmax_cross_entropy_grad, z, labels, **options))
    grad_exact = crossent.softmax_cross_entropy_grad(z.astype(np.float64), labels, **options)
    assert grad_fast.dtype == np.float32
    # float32 gradients: p - target is rounded to float32 before the subtraction on both
    # paths, so each entry is exact only to a few float32 ulps of the row's coefficient
    # (weight / normaliser / temperature / log(base), times the z-loss factor)
    weight = options.get("weight")
    coefficient = (1.0 if weight is None else max(1.0, float(weight.max()))) / min(
        1.0, options["temperature"]
    )
    coefficient *= 1.0 + 2.0 * options["z_loss"] * 70.0
    for grad in (grad_fast, grad_slow):
        np.testing.assert_allclose(
            grad, grad_exact, rtol=FLOAT32_KERNEL.rtol32, atol=ulps(16, np.float32, coefficient)
        )


def _members(confidence: np.ndarray, bins: int, closed: str) -> list[np.ndarray]:
    """Indices of each equal-width bin by direct comparison with numpy.linspace edges:
    ``[a, b)`` with the last closed, or ``(a, b]`` with the first closed."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        if closed == "left":
            inside = (confidence >= lo) & (
                (confidence <= hi) if b == bins - 1 else (confidence < hi)
            )
        else:
            inside = ((confidence >= lo) if b == 0 else (confidence > lo)) & (confidence <= hi)
        out.append(np.flatnonzero(inside))
    return out


def _binned_error(confidence: np.ndarray, hits: np.ndarray, spec: dict) -> float:
    """Guo et al. (2017) L1/L2/max; Kumar et al. (2019) debiased squared L2 (not rooted)."""
    n = confidence.size
    gaps, weights, squares = [], [], []
    for m in _members(confidence, spec["bins"], spec["closed"]):
        if m.size == 0:
            continue
        h, c = float(np.mean(hits[m])), float(np.mean(confidence[m]))
        gaps.append(abs(h - c))
        weights.append(m.size / n)
        square = (h - c) ** 2
        if spec["debias"]:
            square = square - h * (1 - h) / (m.size - 1) if m.size >= 2 else 0.0
        squares.append(square)
    if spec["norm"] == "max":
        return max(gaps)
    if spec["norm"] == "l1":
        return float(np.dot(weights, gaps))
    return float(np.dot(weights, squares))  # squared: rooted by the caller


def _oracle(probs: np.ndarray, labels: np.ndarray, spec: dict) -> float:
    if spec["scope"] == "top-label":
        columns = [(probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float))]
    elif spec["scope"] == "positive-class":
        columns = [(probs[:, 1], (labels == 1).astype(float))]
    else:
        columns = [(probs[:, k], (labels == k).astype(float)) for k in range(probs.shape[1])]
    values = [_binned_error(c, h, spec) for c, h in columns]
    if spec["norm"] == "max":
        return max(values)
    if spec["norm"] == "l1":
        return float(np.mean(values))
    # Kumar et al.'s marginal error: each class's debiased square below 0 is an error of
    # 0 before the classes' mean (their reference code's max(square, 0) ** 0.5 per class)
    return float(np.sqrt(np.mean([max(value, 0.0) for value in values])))


@settings(max_examples=80)
@given(st.data())
def test_issue10_tests_calibration_on_bin_edges_matches_the_definition(
    data: st.DataObject,
) -> None:
    classes = data.draw(st.sampled_from([2, 3]))
    spec = data.draw(calibration_options(classes=classes))
    spec["binning"] = "uniform"
    probs, labels = data.draw(predictions_on_edges(bins=spec["bins"], classes=classes))
    got = crossent.calibration_error(probs, labels, **spec)
    assert close(got.value, _oracle(probs, labels, spec), SUM)
    state = crossent.EvaluationState(
        classes, bins=spec["bins"], closed=spec["closed"], scope=spec["scope"]
    ).update(probs, labels)
    streamed = state.calibration(norm=spec["norm"], debias=spec["debias"])
    assert close(streamed.value, got.value, SUM)


@pytest.mark.parametrize(
    ("probs", "labels", "bins", "want"),
    [
        # class 2's square 1/9 counts; classes 0 and 1 (1/36 - 1/4 each) count as 0
        (np.full((2, 3), 1 / 3), np.array([0, 1]), 1, (1 / 27) ** 0.5),
        # class 0's square (1.5/17)^2 - (13/17)(4/17)/16 < 0 counts as 0, not -0.0035
        (
            np.array([[0.5, 0.5]] * 4 + [[1.0, 0.0]] + [[0.5, 0.5]] * 7 + [[1.0, 0.0]] * 5),
            np.array([0] * 13 + [1] * 4),
            2,
            (5.15 / 17 / 2) ** 0.5,
        ),
    ],
    ids=["three-classes-one-bin", "two-classes-two-bins"],
)
def test_issue10_tests_class_wise_debiased_l2_clips_each_class_at_0(
    probs: np.ndarray, labels: np.ndarray, bins: int, want: float
) -> None:
    """Falsifying examples of the dev profile (seeds 3 and 1): the oracle above, the hand
    value and crossent agree where a class's debiased square is below 0."""
    spec = {"bins": bins, "binning": "uniform", "norm": "l2", "scope": "class-wise"}
    spec |= {"closed": "left", "debias": True}
    assert close(_oracle(probs, labels, spec), want, SUM)
    assert close(crossent.calibration_error(probs, labels, **spec).value, want, SUM)


@settings(max_examples=40)
@given(st.data())
def test_issue10_tests_every_calibration_option_gives_a_valid_number(data: st.DataObject) -> None:
    classes = data.draw(st.sampled_from([2, 3]))
    spec = data.draw(calibration_options(classes=classes))
    probs, labels = data.draw(predictions_on_edges(bins=10, classes=classes, rows=(2, 60)))
    value = crossent.calibration_error(probs, labels, **spec).value
    assert 0.0 <= value <= 1.0
    if spec["binning"] == "uniform" or spec["bins"] == 1:
        assert close(value, _oracle(probs, labels, spec), SUM)
