"""softmax_cross_entropy: finite differences, equivalences, limits and error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crossent
from crossent import InputError, InputTypeError

import oracles
from conftest import Backend
from finite_differences import finite_difference
from tolerances import CLOSED_FORM, FINITE_DIFFERENCE, ROUNDING, SUM, ulps

RNG = np.random.default_rng(11)
LOGITS = RNG.normal(size=(6, 5)) * 2
LABELS = np.array([0, 4, 2, 2, 1, 3])
WEIGHT = np.array([0.5, 1.0, 2.0, 0.1, 1.5])
TARGETS = RNG.dirichlet(np.ones(5), size=6)

OPTION_SETS = [
    {},
    {"temperature": 2.5},
    {"z_loss": 1e-2},
    {"soft_cap": 3.0},
    {"base": 2},
    {"label_smoothing": 0.2, "weight": WEIGHT},
    {
        "temperature": 0.7,
        "z_loss": 0.05,
        "soft_cap": 2.0,
        "label_smoothing": 0.1,
        "weight": WEIGHT,
        "base": 10,
    },
]


@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_label_gradient_matches_finite_differences(options: dict, reduction: str) -> None:
    def loss(z: np.ndarray) -> float:
        return float(crossent.softmax_cross_entropy(z, LABELS, reduction=reduction, **options))

    grad = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, reduction=reduction, **options)
    np.testing.assert_allclose(grad, finite_difference(loss, LOGITS), **FINITE_DIFFERENCE.tol())


@pytest.mark.parametrize("options", OPTION_SETS)
def test_target_gradient_matches_finite_differences(options: dict) -> None:
    def loss(z: np.ndarray) -> float:
        return float(crossent.softmax_cross_entropy_with_targets(z, TARGETS, **options))

    grad = crossent.softmax_cross_entropy_with_targets_grad(LOGITS, TARGETS, **options)
    np.testing.assert_allclose(grad, finite_difference(loss, LOGITS), **FINITE_DIFFERENCE.tol())


@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_one_hot_targets_give_what_integer_labels_give(options: dict, reduction: str) -> None:
    one_hot = np.eye(5)[LABELS]
    by_label = crossent.softmax_cross_entropy(LOGITS, LABELS, reduction=reduction, **options)
    by_target = crossent.softmax_cross_entropy_with_targets(
        LOGITS, one_hot, reduction=reduction, **options
    )
    grad_label = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, reduction=reduction, **options)
    grad_target = crossent.softmax_cross_entropy_with_targets_grad(
        LOGITS, one_hot, reduction=reduction, **options
    )
    if not options.get("label_smoothing"):
        np.testing.assert_array_equal(by_target, by_label)  # bit for bit
    np.testing.assert_allclose(by_target, by_label, rtol=ROUNDING.rtol)
    np.testing.assert_allclose(grad_target, grad_label, **SUM.tol())


def test_loss_matches_the_measure_and_mpmath() -> None:
    per_row = crossent.softmax_cross_entropy(LOGITS, LABELS, reduction="none")
    for i, (z, y) in enumerate(zip(LOGITS, LABELS, strict=True)):
        expected = -math.log(oracles.softmax(z)[y])
        assert per_row[i] == pytest.approx(expected, **ROUNDING.rel_abs())
    np.testing.assert_allclose(
        crossent.softmax_cross_entropy_with_targets(LOGITS, TARGETS, reduction="none"),
        crossent.cross_entropy(TARGETS, LOGITS, q_form="logits"),
        rtol=ROUNDING.rtol,
    )


def test_options_are_what_they_say() -> None:
    t, s, lam = 2.5, 3.0, 0.01
    np.testing.assert_allclose(
        crossent.softmax_cross_entropy(LOGITS, LABELS, temperature=t),
        crossent.softmax_cross_entropy(LOGITS / t, LABELS),
        rtol=ulps(5),
    )
    np.testing.assert_allclose(
        crossent.softmax_cross_entropy(LOGITS, LABELS, soft_cap=s),
        crossent.softmax_cross_entropy(s * np.tanh(LOGITS / s), LABELS),
        rtol=ulps(5),
    )
    lse = np.log(np.exp(LOGITS).sum(axis=1))
    np.testing.assert_allclose(
        crossent.softmax_cross_entropy(LOGITS, LABELS, z_loss=lam, reduction="none"),
        crossent.softmax_cross_entropy(LOGITS, LABELS, reduction="none") + lam * lse**2,
        rtol=ROUNDING.rtol,
    )
    np.testing.assert_allclose(
        crossent.softmax_cross_entropy(LOGITS, LABELS, base=2),
        crossent.softmax_cross_entropy(LOGITS, LABELS) / math.log(2),
        rtol=ulps(5),
    )


@given(
    st.lists(st.floats(-30, 30), min_size=2, max_size=8), st.floats(-1e3, 1e3), st.integers(0, 7)
)
def test_shift_invariance_and_gradient_sums_to_zero(
    logits: list[float], shift: float, label: int
) -> None:
    z = np.array([logits])
    y = np.array([label % z.shape[1]])
    assert crossent.softmax_cross_entropy(z + shift, y) == pytest.approx(
        crossent.softmax_cross_entropy(z, y), rel=0, abs=ulps(16, scale=1 + abs(shift) + 30)
    )
    grad = crossent.softmax_cross_entropy_grad(z, y, label_smoothing=0.1)
    assert abs(grad.sum()) < 1e-14


def test_masked_equals_sliced() -> None:
    labels = LABELS.copy()
    labels[[1, 4]] = -1
    keep = labels != -1
    for reduction in ("mean", "sum"):
        masked = crossent.softmax_cross_entropy(
            LOGITS, labels, ignore_index=-1, weight=WEIGHT, label_smoothing=0.1, reduction=reduction
        )
        sliced = crossent.softmax_cross_entropy(
            LOGITS[keep], labels[keep], weight=WEIGHT, label_smoothing=0.1, reduction=reduction
        )
        assert masked == pytest.approx(sliced, rel=ulps(5), abs=0)
    grad = crossent.softmax_cross_entropy_grad(LOGITS, labels, ignore_index=-1)
    assert np.all(grad[~keep] == 0)
    np.testing.assert_allclose(
        grad[keep], crossent.softmax_cross_entropy_grad(LOGITS[keep], labels[keep]), rtol=ulps(5)
    )


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_axis_equals_moveaxis(axis: int) -> None:
    logits = RNG.normal(size=(4, 3, 5))  # classes last here
    labels = RNG.integers(0, 5, size=(4, 3))
    moved = np.moveaxis(logits, -1, axis)
    expected = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    got = crossent.softmax_cross_entropy(moved, labels, axis=axis, reduction="none")
    np.testing.assert_array_equal(got, expected)
    grad = crossent.softmax_cross_entropy_grad(moved, labels, axis=axis)
    np.testing.assert_array_equal(
        grad, np.moveaxis(crossent.softmax_cross_entropy_grad(logits, labels), -1, axis)
    )


def test_parts_add_across_batches() -> None:
    a = crossent.softmax_cross_entropy(LOGITS[:2], LABELS[:2], weight=WEIGHT, reduction="parts")
    b = crossent.softmax_cross_entropy(LOGITS[2:], LABELS[2:], weight=WEIGHT, reduction="parts")
    whole = crossent.softmax_cross_entropy(LOGITS, LABELS, weight=WEIGHT)
    assert (a.total + b.total) / (a.normalizer + b.normalizer) == pytest.approx(
        whole, rel=ulps(5), abs=0
    )
    assert b.normalizer == pytest.approx(WEIGHT[LABELS[2:]].sum(), **CLOSED_FORM.rel_abs())
    parts = crossent.softmax_cross_entropy(LOGITS, LABELS, weight=WEIGHT, reduction="parts")
    assert parts.mean() == pytest.approx(whole, rel=ulps(5), abs=0)


def test_every_row_ignored_gives_zero_loss_and_zero_gradient() -> None:
    labels = np.full(6, -100)
    assert crossent.softmax_cross_entropy(LOGITS, labels, ignore_index=-100) == 0.0
    grad = crossent.softmax_cross_entropy_grad(LOGITS, labels, ignore_index=-100)
    assert np.all(grad == 0)
    parts = crossent.softmax_cross_entropy(LOGITS, labels, ignore_index=-100, reduction="parts")
    assert parts == (0.0, 0.0)
    assert parts.mean() == 0.0


def test_infinite_and_huge_logits() -> None:
    z = np.array([[0.0, -np.inf, 1.0]])
    assert crossent.softmax_cross_entropy(z, [2]) == pytest.approx(
        math.log1p(math.exp(-1)), **CLOSED_FORM.rel_abs()
    )
    assert crossent.softmax_cross_entropy(z, [1]) == math.inf
    grad = crossent.softmax_cross_entropy_grad(z, [2])
    assert np.all(np.isfinite(grad))
    assert grad[0, 1] == 0
    big = np.array([[1e4, -1e4], [1e4, -1e4]])
    np.testing.assert_array_equal(
        crossent.softmax_cross_entropy(big, [0, 1], reduction="none"), [0.0, 2e4]
    )
    np.testing.assert_array_equal(
        crossent.softmax_cross_entropy_grad(big, [0, 1], reduction="none"), [[0, 0], [1, -1]]
    )


def test_every_backend(backend: Backend) -> None:
    options = {"weight": WEIGHT, "label_smoothing": 0.1, "z_loss": 1e-3, "temperature": 1.5}
    theirs = {**options, "weight": backend.asarray(WEIGHT)}
    got = crossent.softmax_cross_entropy(backend.asarray(LOGITS), backend.asarray(LABELS), **theirs)
    grad = crossent.softmax_cross_entropy_grad(
        backend.asarray(LOGITS), backend.asarray(LABELS), **theirs
    )
    assert isinstance(grad, backend.array_type)
    np.testing.assert_allclose(
        backend.to_numpy(got),
        crossent.softmax_cross_entropy(LOGITS, LABELS, **options),
        rtol=SUM.rtol,
    )
    np.testing.assert_allclose(
        backend.to_numpy(grad),
        crossent.softmax_cross_entropy_grad(LOGITS, LABELS, **options),
        **CLOSED_FORM.tol(),
    )
    soft = crossent.softmax_cross_entropy_with_targets(
        backend.asarray(LOGITS), backend.asarray(TARGETS), **theirs
    )
    np.testing.assert_allclose(
        backend.to_numpy(soft),
        crossent.softmax_cross_entropy_with_targets(LOGITS, TARGETS, **options),
        rtol=SUM.rtol,
    )


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "pattern"),
    [
        (
            [0, 5, 1, 1, 1, 1],
            {},
            InputError,
            r"`labels` must be integers in \[0, 5\); got values in \[0, 5\] \(row 1 has 5\)",
        ),
        (
            [0, -100, 1, -3, 1, 1],
            {"ignore_index": -100},
            InputError,
            r"in \[0, 5\) or ignore_index=-100; got values in \[-100, 1\] \(row 3 has -3\)",
        ),
        ([0, -1, 1, 1, 1, 1], {}, InputError, r"\(row 1 has -1\)"),
        (
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            {},
            InputTypeError,
            r"`labels` must be integer class ids; got dtype float64",
        ),
        (
            [0, 1, 1],
            {},
            InputError,
            r"`labels` must have the batch shape of `logits` \(6,\) .* got \(3,\)",
        ),
        (LABELS, {"weight": [1.0, 2.0]}, InputError, r"`weight` must have shape \(5,\)"),
        (
            LABELS,
            {"weight": [1.0, -2.0, 1, 1, 1]},
            InputError,
            r"`weight` must be finite and non-negative; got -2\.0 at index 1",
        ),
        (LABELS, {"label_smoothing": 1.5}, InputError, r"`label_smoothing` must be in \[0, 1\]"),
        (LABELS, {"temperature": 0.0}, InputError, r"`temperature` must be in \(0, inf\)"),
        (LABELS, {"soft_cap": -1.0}, InputError, r"`soft_cap` must be in \(0, inf\)"),
        (LABELS, {"z_loss": math.nan}, InputError, r"`z_loss` must be in \[0, inf\)"),
        (LABELS, {"reduction": "avg"}, InputError, r"`reduction` must be one of"),
        (LABELS, {"ignore_index": 1.5}, InputTypeError, r"`ignore_index` must be an integer"),
        (LABELS, {"axis": 2}, InputError, r"`axis` 2 is out of range"),
    ],
)
def test_errors(labels: object, kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        crossent.softmax_cross_entropy(LOGITS, np.asarray(labels), **kwargs)
    with pytest.raises(error, match=pattern):
        crossent.softmax_cross_entropy_grad(LOGITS, np.asarray(labels), **kwargs)


def test_logit_and_target_errors() -> None:
    bad = LOGITS.copy()
    bad[2, 3] = np.nan
    with pytest.raises(InputError, match=r"`logits` contains NaN at index \(2, 3\)"):
        crossent.softmax_cross_entropy(bad, LABELS)
    with pytest.raises(InputError, match=r"`targets` must sum to 1 along `axis`; row 0"):
        crossent.softmax_cross_entropy_with_targets(LOGITS, TARGETS * 1.1)
    with pytest.raises(InputError, match="must have the same shape"):
        crossent.softmax_cross_entropy_with_targets(LOGITS, TARGETS[:3])
    with pytest.raises(InputError, match="must have the same shape"):
        crossent.softmax_cross_entropy_with_targets(LOGITS, TARGETS[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "reduction": "sum"}])
def test_grad_into_out_equals_the_returned_gradient(dtype: type, options: dict) -> None:
    """The fused path (float32) and the generic path (float64) write the same numbers."""
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(37, 11)) * 3).astype(dtype)
    labels = rng.integers(0, 11, size=37)
    expected = crossent.softmax_cross_entropy_grad(logits, labels, **options)
    out = np.full_like(expected, np.nan)
    result = crossent.softmax_cross_entropy_grad(logits, labels, out=out, **options)
    assert result is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    ("make_out", "error", "message"),
    [
        (lambda z: np.empty((3, 4), np.float32), crossent.InputError, "shape of `logits`"),
        (lambda z: np.empty((4, 3), np.float64), crossent.InputTypeError, "dtype float32"),
        (lambda z: np.empty((3, 4), np.float32).T, crossent.InputError, "C-contiguous"),
        (lambda z: z, crossent.InputError, "must not overlap `logits`"),
        (lambda z: [[0.0] * 3] * 4, crossent.InputTypeError, "NumPy arrays"),
    ],
)
def test_bad_out_is_rejected(make_out: object, error: type, message: str) -> None:
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(error, match=message):
        crossent.softmax_cross_entropy_grad(logits, [0, 1, 2, 0], out=make_out(logits))  # type: ignore[operator]
