"""Regression tests for issue 10's items on the evaluation functions and calibrators."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import crossent

# ------------------------------------------------- item 11: +inf NLL in bootstrap intervals

# Row 1's label has probability 0: its surprisal is +inf.
PROBS = np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
LABELS = np.array([0, 1, 1, 0, 1])
FINITE = np.full((5, 2), 0.5)


def test_issue10_item11_bootstrap_nll_with_infinite_surprisal_has_inf_bounds() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        ci = crossent.bootstrap_interval("nll", PROBS, LABELS, resamples=200, seed=0)
    assert ci.value == math.inf
    assert not math.isnan(ci.low)
    assert not math.isnan(ci.high)
    assert ci.high == math.inf
    # By hand: a replicate is +inf iff it draws row 1, which (1 - 0.8^5) = 67 % of them do,
    # so the 2.5 % quantile is finite and the 97.5 % one infinite.
    assert math.isfinite(ci.low)


def test_issue10_item11_compare_log_loss_with_infinite_surprisal_has_inf_bounds() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a_worse = crossent.compare_log_loss(PROBS, FINITE, LABELS, resamples=200)
        b_worse = crossent.compare_log_loss(FINITE, PROBS, LABELS, resamples=200)
    assert a_worse.difference == math.inf
    assert a_worse.nll_a == math.inf
    assert a_worse.high == math.inf
    assert math.isfinite(a_worse.low)
    assert b_worse.difference == -math.inf
    assert b_worse.nll_b == math.inf
    assert b_worse.low == -math.inf
    assert math.isfinite(b_worse.high)


def test_issue10_item11_compare_log_loss_of_two_infinite_losses_raises() -> None:
    other = FINITE.copy()
    other[0] = [0.0, 1.0]  # model B: +inf at row 0 (label 0)
    with pytest.raises(crossent.InputError, match=r"difference is undefined"):
        crossent.compare_log_loss(PROBS, other, LABELS)


# ----------------------------------------------------------- item 13: zero rows


@pytest.mark.parametrize(
    "function",
    [
        crossent.calibration_error,
        crossent.reliability_diagram,
        lambda p, y: crossent.calibration_error(p, y, scope="class-wise"),
        lambda p, y: crossent.calibration_error(p, y, binning="quantile"),
    ],
)
def test_issue10_item13_zero_rows_raise(function: object) -> None:
    with pytest.raises(crossent.InputError, match="0 rows"):
        function(np.zeros((0, 3)), np.zeros(0, dtype=int))  # type: ignore[operator]


def test_issue10_item13_empty_state_calibration_raises() -> None:
    state = crossent.EvaluationState(classes=3)
    with pytest.raises(crossent.InputError, match="seen no examples"):
        state.calibration()


# ------------------------------------------- item 10: a label whose logit is -inf

LOGITS = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -1.0], [1.0, 0.0, 0.0], [0.3, 0.2, 0.1]])
LOGIT_LABELS = np.array([1, 0, 2, 0])  # row 0's label has logit -inf: probability 0


@pytest.mark.parametrize(
    ("values", "form"),
    [
        (LOGITS, "logits"),
        (LOGITS - np.log(np.exp(LOGITS).sum(axis=1, keepdims=True)), "log_probs"),
        (np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True), "probs"),
    ],
)
def test_issue10_item10_label_with_minus_inf_logit_is_refused_like_probability_zero(
    values: np.ndarray, form: str
) -> None:
    # NLL is +inf at every temperature: no fit (not T = 20 "at bound"), no NaN gap; the
    # same statement whatever the form.
    with pytest.raises(crossent.InputError, match=r"row 0's label has .*every temperature"):
        crossent.TemperatureScaling(guard=False).fit(values, LOGIT_LABELS, form=form)
    with pytest.raises(crossent.InputError, match=r"row 0's label has .*every temperature"):
        crossent.TemperatureScaling(folds=2).fit(values, LOGIT_LABELS, form=form)
    with pytest.raises(crossent.InputError, match=r"row 0's label has .*every temperature"):
        crossent.recalibration_gap(values, LOGIT_LABELS, form=form, folds=2)


def test_issue10_item10_minus_inf_logit_off_the_label_still_fits() -> None:
    labels = np.array([0, 0, 2, 0])  # the -inf logit is not a label's
    scaler = crossent.TemperatureScaling(guard=False).fit(LOGITS, labels)
    assert math.isfinite(scaler.temperature_)
    assert math.isfinite(scaler.nll_after_)
    # Two rows a fold: a fold's temperature is at a bound, so recalibration_gap is NaN by
    # design (issue 13, gap folds); the cross-fitted NLL the guard uses is still finite.
    guarded = crossent.TemperatureScaling(folds=2).fit(LOGITS, labels)
    assert guarded.cross_fitted_nll_ is not None
    assert math.isfinite(guarded.cross_fitted_nll_)


# ------------------------------------------- items 17, 18, 19: tensors as evaluation input

_Z = np.array([[1.0, 2.0, -0.5], [0.0, 1.0, 3.0], [2.0, -1.0, 0.5], [0.25, 0.125, 0.0]])
_Y = np.array([0, 2, 1, 0])

_EVALUATIONS = {
    "nll": lambda z, y: crossent.negative_log_likelihood(z, y, form="logits"),
    "brier": lambda z, y: crossent.brier_score(z, y, form="logits"),
    "accuracy": lambda z, y: crossent.accuracy(z, y, form="logits"),
    "calibration_error": lambda z, y: crossent.calibration_error(z, y, form="logits").value,
    "bootstrap": lambda z, y: (
        crossent.bootstrap_interval("nll", z, y, form="logits", resamples=20).high
    ),
    "temperature": lambda z, y: crossent.TemperatureScaling(guard=False).fit(z, y).temperature_,
    "state": lambda z, y: _state_nll(z, y),
}


def _state_nll(z: object, y: object) -> float:
    state = crossent.EvaluationState(3)
    state.update(z, y, form="logits")
    return state.compute().nll


@pytest.mark.parametrize("evaluation", list(_EVALUATIONS))
def test_issue10_item18_cpu_tensor_that_requires_grad_is_evaluated(evaluation: str) -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(_Z, requires_grad=True)
    expected = _EVALUATIONS[evaluation](_Z, _Y)
    assert _EVALUATIONS[evaluation](logits, torch.tensor(_Y)) == expected


@pytest.mark.parametrize("evaluation", list(_EVALUATIONS))
def test_issue10_item18_bfloat16_cpu_tensor_is_evaluated(evaluation: str) -> None:
    # _Z holds values exact in bfloat16: the result is that of the same float64 values.
    torch = pytest.importorskip("torch")
    logits = torch.tensor(_Z, dtype=torch.bfloat16)
    assert _EVALUATIONS[evaluation](logits, torch.tensor(_Y)) == _EVALUATIONS[evaluation](_Z, _Y)


def test_issue10_item17_probabilities_are_validated_in_their_stored_dtype() -> None:
    # bfloat16 rounding leaves [0.1, 0.2, 0.7] summing to 0.99951: within bfloat16's
    # tolerance, so accepted as bfloat16; the same numbers in float32 are 5e-4 off, far
    # beyond float32's tolerance, and refused. An upcast before validation would refuse both.
    torch = pytest.importorskip("torch")
    probs = torch.tensor([[0.1, 0.2, 0.7]], dtype=torch.bfloat16)
    nll = crossent.negative_log_likelihood(probs, torch.tensor([2]))
    assert nll == pytest.approx(-math.log(float(probs[0, 2])), rel=1e-15)
    with pytest.raises(crossent.InputError, match="must sum to 1"):
        crossent.negative_log_likelihood(probs.to(torch.float32), torch.tensor([2]))


def test_issue10_item19_zero_classes_raise_naming_the_argument() -> None:
    with pytest.raises(crossent.InputError, match=r"`probs` has 0 classes"):
        crossent.calibration_error(np.zeros((2, 0)), [0, 0])
    with pytest.raises(crossent.InputError, match=r"`logits` has 0 classes"):
        crossent.TemperatureScaling().fit(np.zeros((2, 0)), [0, 0])


def test_issue10_item19_meta_tensor_is_refused_with_the_reason() -> None:
    torch = pytest.importorskip("torch")
    meta = torch.zeros((2, 3), device="meta")
    with pytest.raises(crossent.InputTypeError, match=r"`probs` is a meta tensor"):
        crossent.negative_log_likelihood(meta, [0, 1])
    with pytest.raises(crossent.InputTypeError, match=r"`probs` is a meta tensor"):
        crossent.negative_log_likelihood(meta, [0, 1], validate=False)
