"""Findings of the hostile pass over the learners' and evaluators' surfaces (issue 13, stop
72, branch hostile4): ``crossent explain``/``demo``, the tutorials, ``TemperatureScaling``,
the paired comparisons and bootstrap intervals, the reports' notebook display.

Oracles: mpmath at 60 digits on the float64 values as given.  Each test names the
finding it pins; the changelog's entry (branch hostile4) lists them all.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent

MP = mpmath.mp.clone()
MP.dps = 60


def _nll_oracle(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean of ``logsumexp(z / T) - z_y / T`` over the rows, exactly (mpmath)."""
    total = MP.mpf(0)
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        scaled = [MP.mpf(v) / MP.mpf(temperature) for v in row]
        top = max(scaled)
        total += top + MP.log(MP.fsum(MP.exp(v - top) for v in scaled)) - scaled[label]
    return float(total / len(logits))


# Logits more than float64's largest number apart: z_y - max z = -2e308 overflows, while
# the NLL at T = 20 is 1e307 for that row (hostile2, stop 71, left it: nll_after_ was inf).
FAR = np.array([[1e308, -1e308, 0.0], [0.0, 0.0, 0.0]])
FAR_LABELS = np.array([1, 0])


@pytest.mark.parametrize(
    "layout",
    ["contiguous", "strided", "list"],  # the compiled pass, the NumPy twin, a list
)
def test_temperature_nll_after_of_logits_past_float64_apart_is_finite(layout: str) -> None:
    logits, labels = FAR, FAR_LABELS
    if layout == "strided":  # columns reversed: a view, read by the NumPy twin
        logits, labels = FAR[:, ::-1], 2 - FAR_LABELS
    given = logits.tolist() if layout == "list" else logits
    scaler = crossent.TemperatureScaling(guard=False).fit(given, labels)
    assert scaler.temperature_ == 20.0
    assert scaler.at_bound_
    truth = _nll_oracle(np.asarray(logits), labels, 20.0)  # 5e306
    assert scaler.nll_after_ == pytest.approx(truth, rel=1e-15)


def test_temperature_cross_fit_of_far_rows_is_finite() -> None:
    # the guard's cross-fitting scores held-out rows at the folds' temperatures, by the
    # same pass; 256 classes take the row memo (the folds' numbers at the bounds)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 256))
    labels = rng.integers(0, 256, 10)
    labels[3], logits[3, 0], logits[3, 1] = 1, 1e308, -1e308
    scaler = crossent.TemperatureScaling(folds=2).fit(logits, labels)
    assert math.isfinite(scaler.nll_after_)
    assert scaler.nll_after_ == pytest.approx(
        _nll_oracle(logits, labels, scaler.temperature_), rel=1e-12
    )
    assert math.isfinite(scaler.cross_fitted_nll_)


# A NaN row passed with validate=False: sorted last, the NaN replicates made the interval's
# upper end NaN and left the lower one a number (compare_log_loss: low=0.0, high=nan, beside
# a difference of NaN).  Both ends are NaN now, as compare_reports already gave.
_NAN_ROWS = np.array([[np.nan, 0.5], [0.5, 0.5]])


def test_comparison_with_an_unvalidated_nan_row_has_no_one_sided_interval() -> None:
    result = crossent.compare_log_loss(
        _NAN_ROWS, np.full((2, 2), 0.5), np.array([0, 1]), validate=False, resamples=50
    )
    assert math.isnan(result.difference)
    assert math.isnan(result.low)
    assert math.isnan(result.high)


@pytest.mark.parametrize("metric", ["nll", "brier", "spherical"])
def test_bootstrap_interval_with_an_unvalidated_nan_row_is_nan_at_both_ends(metric: str) -> None:
    result = crossent.bootstrap_interval(
        metric, _NAN_ROWS, np.array([0, 1]), validate=False, resamples=50
    )
    assert math.isnan(result.value)
    assert math.isnan(result.low)
    assert math.isnan(result.high)


# A fit at a bound reported 1 / (1 / bound): with bounds (0.9, 49), 0.8999999999999999 and
# 49.00000000000001, outside the bounds it was held to.  Now the bound itself.
_TWO = np.array([[2.0, 0.0], [0.0, 2.0]])


@pytest.mark.parametrize(("labels", "bound"), [([0, 1], 0), ([1, 0], 1)])
def test_temperature_at_a_bound_is_that_bound(labels: list[int], bound: int) -> None:
    bounds = (0.9, 49.0)
    scaler = crossent.TemperatureScaling(bounds=bounds, guard=False).fit(_TWO, labels)
    assert scaler.at_bound_
    assert scaler.temperature_ == scaler.fitted_temperature_ == bounds[bound]


def test_temperature_lower_bound_whose_reciprocal_overflows_is_refused() -> None:
    # 1 / 5e-324 is inf: the fit at that bound gave temperature_ 0.0, nll_after_ NaN and
    # NumPy's RuntimeWarning, and transform NaN rows
    scaler = crossent.TemperatureScaling(bounds=(5e-324, 2.0), guard=False)
    with pytest.raises(crossent.InputError, match=r"`bounds\[0\]`.*got 5e-324"):
        scaler.fit(_TWO, [0, 1])
    with pytest.raises(crossent.InputError, match=r"`bounds\[0\]`"):
        crossent.recalibration_gap(_TWO, [0, 1], bounds=(5e-324, 2.0))
    tiny = crossent.TemperatureScaling(bounds=(1e-300, 2.0), guard=False).fit(_TWO, [0, 1])
    assert tiny.temperature_ == 1e-300
    assert tiny.nll_after_ == 0.0


def _two_reports() -> tuple[crossent.Report, crossent.Report]:
    labels = np.array([0, 1, 1])
    first = crossent.report(np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]]), labels, resamples=5)
    second = crossent.report(np.array([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1]]), labels, resamples=5)
    return first, second


def test_compare_reports_default_names_of_equal_sources_are_told_apart() -> None:
    # two NumPy arrays of one shape share the source 'numpy.ndarray (3 x 2)': the
    # comparison named model 'numpy.ndarray (3 x 2)' against baseline 'numpy.ndarray (3 x
    # 2)' (and two HTML sections of that heading), where names=["x", "x"] is refused
    result = crossent.compare_reports(list(_two_reports()), resamples=5)
    assert result.names == [
        "numpy.ndarray (3 x 2) (reports[0])",
        "numpy.ndarray (3 x 2) (reports[1])",
    ]
    assert result.comparisons[0]["model"] != result.comparisons[0]["baseline"]
    models = [model["name"] for model in result.to_dict()["models"]]
    assert models == result.names


@pytest.mark.parametrize("blank", ["", "   "])
def test_compare_reports_refuses_an_empty_model_name(blank: str) -> None:
    # the heading read "Paired differences against  (95% bootstrap intervals ...)"
    with pytest.raises(crossent.InputError, match=r"`names\[1\]` is '\s*'"):
        crossent.compare_reports(list(_two_reports()), names=["a", blank], resamples=5)


def test_explain_help_says_the_shown_rows_keep_class_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --help said "the largest contributions first": the 20 rows are the largest
    # contributions, but listed in class order (a reader looked for the largest on top)
    from crossent.cli import main

    logits = ",".join(str(v) for v in [0.0] * 10 + [5.0] + [0.0] * 18 + [9.0])
    assert main(["explain", "--logits", logits, "--label", "3"]) == 0
    shown = [int(line.split()[1]) for line in capsys.readouterr().out.splitlines() if "│ " in line]
    assert 29 in shown
    assert shown == sorted(shown)  # class 29 holds the largest p, listed last
    assert main(["explain", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "shown in class order" in help_text
    assert "contributions first" not in help_text


def test_calibration_tutorial_does_not_promise_the_gap_to_the_bit() -> None:
    # The tutorial said the gap is nll_before_ - cross_fitted_nll_ "to the bit"; the gap
    # adds each fold's own difference (constant logits give exactly 0), 1 ulp off on the
    # tutorial's own data: 0.5518073138855297 against 0.5518073138855296.
    from pathlib import Path

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 4)) * 6
    labels = rng.integers(0, 4, 300)
    labels[:150] = logits[:150].argmax(axis=1)
    gap = crossent.recalibration_gap(logits, labels)
    scaler = crossent.TemperatureScaling().fit(logits, labels)
    assert scaler.cross_fitted_nll_ is not None
    assert gap == pytest.approx(scaler.nll_before_ - scaler.cross_fitted_nll_, abs=1e-15)
    text = " ".join(
        (Path(__file__).parents[1] / "docs/tutorials/calibration.md").read_text().split()
    )
    assert (
        "scaler.cross_fitted_nll_` of `TemperatureScaling().fit` on the same rows, to the bit"
        not in text
    )
    assert "up to the rounding of that difference" in text


def test_bootstrap_interval_value_is_calibration_errors_number() -> None:
    # As for the other metrics (their functions' numbers), the interval's value is
    # calibration_error's: its rows' bins summed at once were 1.7e-15 off the function's
    # block-by-block bins at 300 000 rows (0.44364399136261606 for 0.44364399136261434),
    # and the report's --temperature-from ECE, this value, with them
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300_000, 5)) * 2
    labels = rng.integers(0, 5, 300_000)
    interval = crossent.bootstrap_interval(
        "calibration_error", logits, labels, form="logits", resamples=2
    )
    assert interval.value == crossent.calibration_error(logits, labels, form="logits").value


def test_demo_calibration_says_its_temperature_is_measured_in_sample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The demo fits the temperature on its 2000 predictions and shows the NLL and ECE
    # after it on the same ones, saying it "removes most of the over-confidence": an
    # in-sample number, where the tutorial fits on one half and measures on the other
    from crossent.cli import main

    assert main(["demo", "calibration"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "fitted and measured here on the same 2000 predictions" in text
    assert "--temperature-from VAL" in text


@pytest.mark.parametrize("output", ["probs", "log_probs"])
def test_platt_transform_of_logits_past_float64_apart_is_not_nan(output: str) -> None:
    # [-1e308, 1e308]: the log-odds 2e308 overflow to inf, and the softmax of [0, inf]
    # was [0, nan] (with NumPy's overflow warnings); every finite row so far apart
    # rounds to [0, 1] at a positive slope
    logits = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.5]])
    scaler = crossent.PlattScaling().fit(logits, [0, 0, 1, 1])
    assert scaler.slope_ > 0
    rows = np.array([[1e308, -1e308], [-1e308, 1e308], [1.5, 0.0]])
    with np.errstate(all="raise"):
        result = scaler.transform(rows, output=output)
    sure, never = (1.0, 0.0) if output == "probs" else (0.0, -np.inf)
    np.testing.assert_array_equal(result[:2], [[sure, never], [never, sure]])
    np.testing.assert_array_equal(result[2:], scaler.transform(rows[2:], output=output))


def test_vector_scaling_transform_of_overflowing_scaled_logits_is_not_nan() -> None:
    # scale * z past float64 (a fitted scale of 48 times 1.7e308) gave softmax(+-inf):
    # [nan, nan] and [0, nan] with NumPy's overflow warning; the scaled scores'
    # differences are beyond float64 too, so the answer is the certain class
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.5], [0.2, 0.1]])
    scaler = crossent.VectorScaling().fit(logits, [0, 1, 1, 0])
    rows = np.array([[1e308, -1e308], [-1e308, 1e308], [1.7e308, 1.6e308], [1.5, 0.3]])
    exact = [  # each class's scaled score in mpmath (past float64's range)
        [
            MP.mpf(w) * MP.mpf(v) + MP.mpf(b)
            for w, v, b in zip(scaler.scale_, row, scaler.bias_, strict=True)
        ]
        for row in rows[:3].tolist()
    ]
    truth = [max(range(2), key=scores.__getitem__) for scores in exact]
    with np.errstate(all="raise"):
        probs = scaler.transform(rows)
    np.testing.assert_array_equal(probs[:3], np.eye(2)[truth])
    np.testing.assert_array_equal(probs[3:], scaler.transform(rows[3:]))


@pytest.mark.parametrize(
    ("argv", "target", "eps", "temperature"),
    [
        (["--label", "0", "--smoothing", "0.1"], [1.0, 0.0], 0.1, 1.0),
        (["--label", "1", "--temperature", "1000"], [0.0, 1.0], 0.0, 1000.0),
        (["--p", "0.9,0.1"], [0.9, 0.1], 0.0, 1.0),
    ],
)
def test_explain_loss_of_logits_past_float64_apart_is_finite(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    target: list[float],
    eps: float,
    temperature: float,
) -> None:
    # explain took the loss of (z - max z) / T, whose -inf (1e308 - -1e308) times a
    # target weight above 0 made it inf: 1e307, 2e305 and 2e307 exactly (mpmath), as
    # softmax_cross_entropy_with_targets gives them from the logits themselves
    from crossent.cli import main

    assert main(["explain", "--logits", "1e308,-1e308", *argv]) == 0
    out = " ".join(capsys.readouterr().out.split())
    scores = [MP.mpf(v) / MP.mpf(temperature) for v in (1e308, -1e308)]
    top = max(scores)
    lse = top + MP.log(MP.fsum(MP.exp(v - top) for v in scores))
    smoothed = [(1 - eps) * y + eps / 2 for y in target]
    truth = float(MP.fsum(y * (lse - s) for y, s in zip(smoothed, scores, strict=True)))
    assert f"p = {truth:.6e} nats" in out
