"""Leftovers of a hostile pass over the evaluation API (issue 13, branch evalleft)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent
from crossent.calibration import _binning


def _rounded_probs() -> np.ndarray:
    # softmax of N(0, 4) logits rounded to 1 decimal and renormalised: row sums that
    # round, so that the order of the sums shows in the last bit
    z = np.random.default_rng(4).normal(size=(44, 3)) * 2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = np.round(p / p.sum(axis=1, keepdims=True), 1)
    return p / p.sum(axis=1, keepdims=True)


def test_report_scores_are_the_functions_to_the_bit() -> None:
    # The report summed its scores block after block (the state's sums of the first
    # pass): Brier 1.019786014414114 where brier_score gives 1.0197860144141135, the
    # spherical score and the NLL 1 ulp off too.  One home: the same sums.
    p = _rounded_probs()
    u = np.random.default_rng(0).random(44)  # labels drawn from the rows (p_y > 0)
    y = np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), 2)
    report = crossent.report(p, y, resamples=10)
    nll = crossent.negative_log_likelihood(p, y)
    wanted = {
        "nll_nats": nll,
        "nll_bits": crossent.negative_log_likelihood(p, y, base=2),
        "perplexity": np.exp(nll),
        "brier": crossent.brier_score(p, y),
        "spherical": crossent.spherical_score(p, y),
    }
    assert {key: report.payload[key] for key in wanted} == wanted
    assert (report.summary.nll, report.summary.brier) == (nll, wanted["brier"])


@mpmath.workdps(80)
def _true_nll(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    total = mpmath.mpf(0)
    for row, label in zip(z.tolist(), y.tolist(), strict=True):
        scaled = [mpmath.mpf(v) * mpmath.mpf(beta) for v in row]
        total += mpmath.log(mpmath.fsum(mpmath.exp(v) for v in scaled)) - scaled[label]
    return float(total / len(z))


@pytest.mark.parametrize("layout", ["fused", "numpy twin"])
@pytest.mark.parametrize("extra", [False, True])
def test_tiny_nll_after_keeps_its_relative_precision(layout: str, extra: bool) -> None:
    # Separable rows: the fit is at T = 0.05 and every label is its row's maximum, so
    # the NLL is log S with S = 1 + R: log of the rounded S gave 0.0 for 4.5e-36, and
    # 4.1223073800871e-10 for 4.1223072406288e-10 with a fifth row (3.4e-8 relative).
    z = np.array([[5.0, 0.0], [0.0, 5.0], [3.0, -3.0], [-2.0, 2.0]] + [[1.0, 0.0]] * extra)
    y = np.array([0, 1, 0, 1] + [0] * extra)
    values = z if layout == "fused" else np.asfortranarray(z)  # (the twin: not C-contiguous)
    scaler = crossent.TemperatureScaling(guard=extra).fit(values, y)
    assert scaler.at_bound_
    assert scaler.fitted_temperature_ == 0.05
    truth = _true_nll(z, y, 1.0 / scaler.fitted_temperature_)
    assert scaler.nll_after_ == pytest.approx(truth, rel=1e-14, abs=0.0)


def test_transform_refuses_another_class_count() -> None:
    # A temperature fitted on 3 classes turned one row, shape (3,), into three binary
    # rows, shape (3, 2); VectorScaling refuses a class mismatch, and so does this now.
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(40, 3)), np.arange(40) % 3
    scaler = crossent.TemperatureScaling().fit(z, y)
    assert scaler.n_classes_ == 3
    with pytest.raises(crossent.InputError, match=r"`logits` has 2 classes \(a 1-D.*on 3$"):
        scaler.transform(z[0])
    with pytest.raises(crossent.InputError, match=r"`logits` has 4 classes; .* fitted on 3"):
        scaler.transform(rng.normal(size=(2, 4)))
    assert scaler.transform(z[:1]).shape == (1, 3)
    binary = crossent.TemperatureScaling().fit(z[:, 0], y % 2)  # 1-D: binary, as in fit
    assert binary.transform(z[:5, 0]).shape == (5, 2)


def test_recalibration_gap_is_the_scalers_numbers() -> None:
    # The gap was fitted to xtol 1e-8, the scaler to 1e-10: 0.37704809272 against
    # nll_before_ - cross_fitted_nll_ = 0.37704809284.  One tolerance now.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 4)) * 2
    y = np.array([rng.choice(4, p=np.exp(r) / np.exp(r).sum()) for r in z])
    scaler = crossent.TemperatureScaling().fit(3 * z, y)
    assert scaler.cross_fitted_nll_ is not None
    gap = crossent.recalibration_gap(3 * z, y)
    # (to rounding, 1.1e-16 here: the gap is summed fold by fold since calfix1, so that
    # constant logits give exactly 0, where the difference of the two means was -8.9e-16)
    assert gap == pytest.approx(scaler.nll_before_ - scaler.cross_fitted_nll_, rel=0, abs=1e-15)


@pytest.mark.parametrize("closed", ["left", "right"])
def test_streaming_equal_mass_rows_are_in_their_declared_bins(closed: str) -> None:
    # Confidences of 1 filling the top quantiles: the state counted them in a bin
    # declared [0.99999989, 1) and left the last bins [1, 1] empty (closed="left").
    # Each bin must count the rows its edges and closedness hold (the last bin closed
    # at 1 on both sides), as calibration_error's equal-mass bins do.
    c = np.array([0.6, 0.7, 0.8] + [1.0] * 7)
    probs, labels = np.stack([c, 1.0 - c], axis=1), np.array([0, 1, 0] + [0] * 7)
    state = crossent.EvaluationState(2, bins=5, binning="quantile", closed=closed)
    result = state.update(probs, labels).calibration()
    declared = _binning.assign_bins(c, result.edges, closed)  # type: ignore[arg-type]
    counted = np.bincount(declared, minlength=5)
    np.testing.assert_array_equal(result.statistics.count, counted)
    one_shot = crossent.calibration_error(probs, labels, bins=5, binning="quantile")
    assert result.statistics.count[-1] == 7.0 == one_shot.statistics.count[-1]
    assert result.value == pytest.approx(one_shot.value, abs=1e-6)


def test_an_empty_update_adds_nothing() -> None:
    # [] is float64 to NumPy: update([], []) was refused as "labels ... dtype float64",
    # as negative_log_likelihood([], []) was; an empty list of labels has no dtype.
    state = crossent.EvaluationState(3)
    assert state.update([], []).n == 0
    assert state.update(np.zeros((0, 3)), []).n == 0
    state.update([[0.2, 0.3, 0.5]], [2])
    assert state.n == 1
    assert state.compute().nll == -np.log(0.5)
    with pytest.raises(crossent.InputError, match="no examples to average"):
        crossent.negative_log_likelihood([], [])
    assert crossent.brier_score(np.zeros((0, 3)), [], reduction="none").shape == (0,)
    with pytest.raises(crossent.InputError, match="has 4 classes; this state counts 3"):
        state.update(np.zeros((0, 4)), [])
    with pytest.raises(crossent.InputTypeError, match="dtype float64"):
        state.update(np.zeros((0, 3)), np.zeros(0))  # a float array's dtype is its own
