"""Issue 14: real model outputs accepted, real mistakes rejected, explicit renormalisation,
and 1-D binary predictions as P(label = 1)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent
from crossent._checks import row_sum_tolerance


def _sklearn_outputs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """predict_proba of three scikit-learn models on digits, fitted in float32 and float64."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    outputs = []
    for model in (
        GaussianNB(),
        LogisticRegression(max_iter=200),
        MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0),
    ):
        for dtype in (np.float64, np.float32):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fitted = model.fit(X.astype(dtype), y)
            probs = fitted.predict_proba(X.astype(dtype))
            outputs.append((f"{type(model).__name__}-{dtype.__name__}", probs, y))
    return outputs


@pytest.fixture(scope="module")
def sklearn_outputs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    return _sklearn_outputs()


def test_issue14_sklearn_predict_proba_accepted_in_float32_and_float64(
    sklearn_outputs: list[tuple[str, np.ndarray, np.ndarray]],
) -> None:
    deviations = {}
    for name, probs, labels in sklearn_outputs:
        deviations[name] = float(np.max(np.abs(probs.astype(np.float64).sum(axis=1) - 1)))
        for stored in (probs, probs.astype(np.float32)):
            nll = crossent.negative_log_likelihood(stored, labels)  # inf for GaussianNB
            assert not np.isnan(nll), name
            assert 0 <= crossent.calibration_error(stored, labels).value <= 1, name
            assert crossent.entropy(stored).shape == (labels.shape[0],)
    # the reported case: GaussianNB's float64 rows exceed the old 2 eps + 4 eps sqrt(K)
    old = 2 * np.finfo(np.float64).eps * (1 + 2 * np.sqrt(10))
    assert deviations["GaussianNB-float64"] > old


def test_issue14_gaussian_nb_row_rejected_by_the_old_tolerance_is_accepted() -> None:
    """The row from the issue: 10 classes summing to 1 + 3.6e-15 (tolerance was 3.25e-15)."""
    row = np.full(10, 0.1)
    row[0] += 3.6e-15
    assert abs(row.sum() - 1 - 3.6e-15) < 1e-15
    assert row_sum_tolerance(np.float64, 10, xp=np) > 3.6e-15
    assert np.isfinite(crossent.negative_log_likelihood(row[None, :], [0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_issue14_rows_summing_to_1_01_rejected(dtype: type, classes: int) -> None:
    rng = np.random.default_rng(classes)
    probs = rng.dirichlet(np.ones(classes), size=20)
    probs[3] *= 1.01
    with pytest.raises(crossent.InputError, match=r"row 3 sums to 1\.0"):
        crossent.calibration_error(probs.astype(dtype), np.zeros(20, dtype=int))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue14_logits_passed_as_probabilities_rejected(dtype: type) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 10)).astype(dtype)
    with pytest.raises(crossent.InputError, match="`probs`"):
        crossent.calibration_error(logits, np.zeros(50, dtype=int))
    # positive scores below 1 that are not normalised (sigmoid outputs) are caught too
    scores = (1 / (1 + np.exp(-logits))).astype(dtype)
    with pytest.raises(crossent.InputError, match="must sum to 1"):
        crossent.negative_log_likelihood(scores, np.zeros(50, dtype=int))


def test_issue14_bfloat16_probabilities_stored_as_float32_need_renormalize() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.randn(200, 100, generator=torch.Generator().manual_seed(0)) * 3
    probs = torch.softmax(logits, -1).to(torch.bfloat16).to(torch.float32).numpy()
    labels = np.arange(200) % 100
    assert np.max(np.abs(probs.astype(np.float64).sum(1) - 1)) > 1e-3
    with pytest.raises(crossent.InputError, match="renormalize=True"):
        crossent.calibration_error(probs, labels)
    fixed = crossent.calibration_error(probs, labels, renormalize=True)
    assert fixed.renormalized == pytest.approx(
        np.max(np.abs(probs.astype(np.float64).sum(1) - 1)), rel=1e-12
    )


def test_issue14_renormalize_equals_explicit_renormalisation() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(7), size=300) * rng.uniform(0.99, 1.01, size=(300, 1))
    labels = rng.integers(0, 7, size=300)
    explicit = probs / probs.sum(axis=1, keepdims=True)
    for scope in ("top-label", "class-wise"):
        got = crossent.calibration_error(probs, labels, scope=scope, renormalize=True)
        want = crossent.calibration_error(explicit, labels, scope=scope)
        assert got.value == pytest.approx(want.value, abs=1e-15)
        assert got.renormalized == pytest.approx(np.max(np.abs(probs.sum(1) - 1)), rel=1e-12)
        assert want.renormalized is None
    smooth = crossent.smooth_calibration_error(probs, labels, renormalize=True)
    assert smooth.value == pytest.approx(
        crossent.smooth_calibration_error(explicit, labels).value, abs=1e-12
    )


def test_issue14_renormalize_is_never_the_default_and_needs_probs() -> None:
    probs = np.array([[0.5, 0.6]])
    with pytest.raises(crossent.InputError, match=r"sums to 1\.1"):
        crossent.calibration_error(probs, [0])
    with pytest.raises(crossent.InputError, match="renormalize"):
        crossent.calibration_error(np.log(probs), [0], form="log_probs", renormalize=True)
    with pytest.raises(crossent.InputError, match="row 1 sums to 0"):
        crossent.calibration_error([[0.5, 0.5], [0.0, 0.0]], [0, 1], renormalize=True)
    with pytest.raises(crossent.InputError, match="non-negative"):
        crossent.calibration_error([[0.5, 0.5], [-0.1, 1.0]], [0, 1], renormalize=True)


def test_issue14_one_dimensional_binary_probs_are_p_of_class_1() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(size=400)
    labels = (rng.uniform(size=400) < p**1.3).astype(np.int64)
    two = np.stack([1 - p, p], axis=1)
    for scope in ("positive-class", "top-label", "class-wise"):
        one_col = crossent.calibration_error(p, labels, scope=scope)
        two_col = crossent.calibration_error(two, labels, scope=scope)
        assert one_col.value == pytest.approx(two_col.value, abs=1e-15)
    for score in (crossent.negative_log_likelihood, crossent.brier_score, crossent.accuracy):
        assert score(p, labels) == pytest.approx(score(two, labels), rel=1e-15)
    assert crossent.calibration_error(p.astype(np.float32), labels).value == pytest.approx(
        crossent.calibration_error(two.astype(np.float32), labels).value, abs=1e-7
    )
    logits = np.log(p) - np.log1p(-p)
    assert crossent.negative_log_likelihood(logits, labels, form="logits") == pytest.approx(
        crossent.negative_log_likelihood(p, labels), rel=1e-12
    )


def test_issue14_one_dimensional_binary_probs_rejected_clearly() -> None:
    with pytest.raises(crossent.InputError, match=r"`probs` must be probabilities.*index 1"):
        crossent.calibration_error([0.2, 1.5], [0, 1])
    with pytest.raises(crossent.InputError, match=r"`labels` must be integers in \[0, 2\)"):
        crossent.calibration_error([0.2, 0.5], [0, 2], scope="positive-class")
    with pytest.raises(crossent.InputError, match="log-odds"):
        crossent.calibration_error([-0.2, -0.5], [0, 1], form="log_probs")
