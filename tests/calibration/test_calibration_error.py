"""Calibration error: documented examples, outside references, known answers, identities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit, logit

import crossent

from tolerances import CLOSED_FORM

TORCHMETRICS_MULTICLASS = (
    [[0.25, 0.20, 0.55], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]],
    [0, 1, 2, 0],
)
TORCHMETRICS_BINARY = ([0.25, 0.25, 0.55, 0.75, 0.75], [0, 0, 1, 1, 1])


def _binary(p1: object) -> np.ndarray:
    p1 = np.asarray(p1, dtype=float)
    return np.stack([1 - p1, p1], axis=1)


@pytest.mark.parametrize(("norm", "expected"), [("l1", 0.2), ("l2", 0.2082), ("max", 0.2333)])
def test_torchmetrics_documented_multiclass_example(norm: str, expected: float) -> None:
    probs, labels = TORCHMETRICS_MULTICLASS
    result = crossent.calibration_error(
        probs,
        labels,
        norm=norm,
        **{**crossent.CALIBRATION_PRESETS["torchmetrics-multiclass"], "bins": 3},
    )
    assert round(result.value, 4) == expected


@pytest.mark.parametrize(("norm", "expected"), [("l1", 0.29), ("l2", 0.2918), ("max", 0.3167)])
def test_torchmetrics_documented_binary_example(norm: str, expected: float) -> None:
    p1, labels = TORCHMETRICS_BINARY
    preset = {**crossent.CALIBRATION_PRESETS["torchmetrics-binary"], "bins": 2}
    result = crossent.calibration_error(_binary(p1), labels, norm=norm, **preset)
    assert round(result.value, 4) == expected


def _random_multiclass(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 3
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    return probs, labels


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_matches_torchmetrics_on_random_data(norm: str) -> None:
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("torchmetrics.functional.classification")
    probs, labels = _random_multiclass(2000, 5, seed=1)
    expected = functional.multiclass_calibration_error(
        torch.tensor(probs), torch.tensor(labels), num_classes=5, n_bins=15, norm=norm
    )
    ours = crossent.calibration_error(probs, labels, norm=norm)
    # torchmetrics returns (and accumulates in) float32
    assert ours.value == pytest.approx(float(expected), **CLOSED_FORM.rel_abs(np.float32))
    p1 = probs[:, 0] / (probs[:, 0] + probs[:, 1])
    y = (labels % 2).astype(np.int64)
    expected_binary = functional.binary_calibration_error(
        torch.tensor(p1), torch.tensor(y), n_bins=15, norm=norm
    )
    ours_binary = crossent.calibration_error(
        _binary(p1), y, norm=norm, **crossent.CALIBRATION_PRESETS["torchmetrics-binary"]
    )
    assert ours_binary.value == pytest.approx(
        float(expected_binary), **CLOSED_FORM.rel_abs(np.float32)
    )


def test_confidence_of_exactly_one_and_zero_land_in_the_last_and_first_bins() -> None:
    """torchmetrics#3510: 1.0 must count in the last bin [1 - 1/B, 1], not a hidden extra one."""
    result = crossent.calibration_error(
        _binary([0.95, 1.0]), [1, 0], scope="positive-class", bins=10
    )
    assert result.statistics.count.tolist() == [0] * 9 + [2]
    assert result.value == pytest.approx(abs(0.5 - 0.975), **CLOSED_FORM.rel_abs())
    zero = crossent.calibration_error(_binary([0.0, 0.05]), [1, 0], scope="positive-class", bins=10)
    assert zero.statistics.count[0] == 2
    right = crossent.calibration_error(
        _binary([0.0, 1.0]), [1, 0], scope="positive-class", bins=10, closed="right"
    )
    assert right.statistics.count[[0, -1]].tolist() == [1, 1]


def test_edge_values_follow_the_declared_closure() -> None:
    on_edge = _binary([0.5, 0.5])
    left = crossent.calibration_error(on_edge, [0, 1], scope="positive-class", bins=2)
    right = crossent.calibration_error(
        on_edge, [0, 1], scope="positive-class", bins=2, closed="right"
    )
    assert left.statistics.count.tolist() == [0, 2]
    assert right.statistics.count.tolist() == [2, 0]


def test_kumar_platt_example_known_true_errors() -> None:
    """z ~ U(0, 1), P(y = 1 | z) = sigmoid(logit(z) + 1): true L1 0.161303, L2 0.177308."""
    rng = np.random.default_rng(0)
    z = rng.random(2_000_000)
    y = (rng.random(z.size) < expit(logit(z) + 1)).astype(np.int64)
    probs = _binary(z)
    l1 = crossent.calibration_error(probs, y, scope="positive-class", bins=100)
    l2 = crossent.calibration_error(
        probs, y, scope="positive-class", bins=100, norm="l2", debias=True
    )
    # 100 bins of 20 000 examples: binning and sampling error are both below 1e-3 here.
    assert l1.value == pytest.approx(0.161303, abs=1.5e-3)
    assert l2.value == pytest.approx(0.177308, abs=1.5e-3)


def test_perfectly_calibrated_data_plugin_biased_debiased_near_zero() -> None:
    plug_in, debiased = [], []
    for n in (1_000, 100_000):
        rng = np.random.default_rng(n)
        z = rng.random(n)
        y = (rng.random(n) < z).astype(np.int64)
        probs = _binary(z)
        plug_in.append(
            crossent.calibration_error(probs, y, scope="positive-class", norm="l2").value
        )
        debiased.append(
            crossent.calibration_error(
                probs, y, scope="positive-class", norm="l2", debias=True
            ).value
        )
    assert plug_in[0] > plug_in[1] > 0  # biased upward, shrinking with n
    assert plug_in[0] > 0.03  # about sqrt(bins / (6 n)) at n = 1000
    assert debiased[1] < 0.005
    assert debiased[1] < plug_in[1]


def test_class_wise_is_the_average_of_one_vs_rest_errors() -> None:
    probs, labels = _random_multiclass(500, 4, seed=5)
    per_class = [
        crossent.calibration_error(
            np.stack([1 - probs[:, k], probs[:, k]], axis=1),
            (labels == k).astype(int),
            scope="positive-class",
        ).value
        for k in range(4)
    ]
    result = crossent.calibration_error(probs, labels, scope="class-wise")
    assert result.value == pytest.approx(np.mean(per_class), **CLOSED_FORM.rel_abs())
    worst = crossent.calibration_error(probs, labels, scope="class-wise", norm="max")
    assert worst.value >= max(per_class) - 1e-15


def test_quantile_bins_hold_equal_mass() -> None:
    probs, labels = _random_multiclass(3000, 3, seed=2)
    result = crossent.calibration_error(probs, labels, binning="quantile", bins=10)
    assert result.statistics.count.tolist() == [300] * 10


def test_the_spec_declares_the_definition() -> None:
    probs, labels = TORCHMETRICS_MULTICLASS
    result = crossent.calibration_error(probs, labels)
    assert result.spec == crossent.CalibrationSpec()
    assert result.spec.definition.startswith("L1 calibration error, top-label")
    assert "15 equal-width bins [a, b) with the last bin closed, plug-in estimator" in (
        result.spec.definition
    )
    assert float(result) == result.value


@given(st.integers(1, 200), st.integers(2, 5), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_norms_are_ordered_and_bounded(n: int, classes: int, bins: int, seed: int) -> None:
    """Power means: L1 <= L2 <= max, all in [0, 1]; the value ignores row order."""
    probs, labels = _random_multiclass(n, classes, seed)
    l1, l2, mx = (
        crossent.calibration_error(probs, labels, bins=bins, norm=norm).value
        for norm in ("l1", "l2", "max")
    )
    assert 0 <= l1 <= l2 + 1e-15 <= mx + 2e-15 <= 1 + 2e-15
    order = np.random.default_rng(seed).permutation(n)
    shuffled = crossent.calibration_error(probs[order], labels[order], bins=bins).value
    assert shuffled == pytest.approx(l1, **CLOSED_FORM.rel_abs())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bins": 0}, "`bins` must be a positive integer"),
        ({"binning": "width"}, "`binning`"),
        ({"norm": "l3"}, "`norm`"),
        ({"scope": "top"}, "`scope`"),
        ({"debias": True}, "norm='l2' only"),
        ({"closed": "both"}, "`closed`"),
        ({"scope": "positive-class"}, "needs a binary problem"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], message: str) -> None:
    probs, labels = TORCHMETRICS_MULTICLASS
    with pytest.raises(crossent.InputError, match=message):
        crossent.calibration_error(probs, labels, **options)  # type: ignore[arg-type]


def test_netcal_preset_matches_netcal_ece_including_confidences_of_one() -> None:
    """Runs where netcal is importable (its metrics need only NumPy: `pip install --no-deps
    netcal`); CI does not install it, because its other extras pull in pyro and gpytorch."""
    netcal_metrics = pytest.importorskip("netcal.metrics")
    probs, labels = _random_multiclass(3000, 3, seed=1)
    probs[:50] = np.eye(3)[labels[:50]]  # confidences of exactly 1.0
    expected = netcal_metrics.ECE(bins=10).measure(probs, labels)
    ours = crossent.calibration_error(probs, labels, **crossent.CALIBRATION_PRESETS["netcal"])
    assert ours.value == pytest.approx(expected, **CLOSED_FORM.rel_abs())
