"""Issue 13 hostile review of the NumPy evaluation functions: each test pins a defect found
by attacking them, and fails on the code before its fix (main at 44a6699).

* ml_dtypes bfloat16 predictions raised NumPy's bare ``TypeError`` from ``isdtype``;
* uint64 labels of 2**63 and more were reported by a wrapped, negative value, and with
  ``validate=False`` read as negative class ids (a number from the wrong entry);
* ``recalibration_gap(base=...)`` was never checked (``ZeroDivisionError``, NaN);
* ``TemperatureScaling``'s ``bounds``, ``guard``, ``xtol`` and ``seed`` were never checked,
  and ``converged_`` was True when the solver ran out of iterations;
* ``EvaluationState.update(first_row=...)`` took -1, 2.5 and "3";
* the softmax losses' class ``weight`` was never dtype-checked: a complex weight lost
  its imaginary part (a ``ComplexWarning`` and a number), strings and ``None`` entries
  reached NumPy's comparisons (``UFuncTypeError``, ``TypeError``);
* ``crossent.report``: ``seed=-1`` raised NumPy's ``ValueError``, the gate thresholds were
  never checked (an infinite one made ``to_dict`` unserialisable as JSON), and a
  recalibration gap of ``inf - inf`` was NaN in ``to_dict``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

import crossent

import oracles

_PROBS = np.array([[0.25, 0.75], [0.5, 0.5], [0.875, 0.125]])
_LABELS = np.array([1, 0, 0])


def _scaling_data() -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from their softmax: calibrated at T = 1."""
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(60, 4)) * 2
    probs = np.exp(log_softmax(logits, axis=1))
    labels = (probs.cumsum(axis=1) < rng.random((60, 1))).sum(axis=1)
    return logits, np.minimum(labels, 3)


@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize(
    "evaluate",
    [
        lambda x, y, form: crossent.negative_log_likelihood(x, y, form=form),
        lambda x, y, form: crossent.brier_score(x, y, form=form),
        lambda x, y, form: crossent.calibration_error(x, y, form=form),
        lambda x, y, form: crossent.EvaluationState(2).update(x, y, form=form),
        lambda x, y, form: crossent.TemperatureScaling(guard=False).fit(x, y, form=form),
    ],
    ids=["nll", "brier", "ece", "state", "temperature"],
)
def test_bfloat16_predictions_are_refused_by_name(evaluate: object, form: str) -> None:
    """Main: ``TypeError: dtype argument must be a NumPy dtype`` from ``np.isdtype``."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = _PROBS if form == "probs" else np.log(_PROBS)
    message = rf"`{form}` must be a real floating.*bfloat16"
    with pytest.raises(crossent.InputTypeError, match=message):
        evaluate(values.astype(ml_dtypes.bfloat16), _LABELS, form)  # type: ignore[operator]


def test_bfloat16_binary_column_is_refused_by_name() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(crossent.InputTypeError, match=r"`probs` must be a real floating.*bfloat16"):
        crossent.calibration_error(_PROBS[:, 1].astype(ml_dtypes.bfloat16), _LABELS)


@pytest.mark.parametrize("validate", [True, False])
def test_uint64_labels_beyond_int64_are_named_by_their_value(validate: bool) -> None:
    """Main: the message said -9223372036854775803 (the wrapped value), and with
    ``validate=False`` 2**64 - 1 was read as class -1 (the last class): a number."""
    labels = np.array([0, 2**63 + 5, 1], dtype=np.uint64)
    with pytest.raises(crossent.InputError, match=r"row 1 has 9223372036854775813\)"):
        crossent.negative_log_likelihood(_PROBS, labels, validate=validate)
    wrapped = np.array([0, 2**64 - 1, 1], dtype=np.uint64)
    with pytest.raises(crossent.InputError, match=r"row 1 has 18446744073709551615\)"):
        crossent.brier_score(_PROBS, wrapped, validate=validate)


def test_uint64_labels_in_range_give_the_int64_labels_values() -> None:
    as_uint = crossent.negative_log_likelihood(_PROBS, _LABELS.astype(np.uint64))
    truth = -np.mean(np.log(_PROBS[np.arange(3), _LABELS]))  # float64 oracle
    assert as_uint == pytest.approx(truth, rel=1e-15)


@pytest.mark.parametrize(
    "weight",
    [
        np.array([1.0, 1.0, 1.0, 1.0 + 5.0j]),
        np.array(["1", "1", "1", "1"]),
        np.array([1, 1, 1, None]),
    ],
    ids=["complex", "str", "object"],
)
@pytest.mark.parametrize(
    "loss",
    [
        crossent.softmax_cross_entropy,
        crossent.softmax_cross_entropy_grad,
        crossent.softmax_focal_loss,
        crossent.poly1_cross_entropy,
        lambda z, y, weight: crossent.softmax_cross_entropy_with_targets(
            z, np.eye(4)[y], weight=weight
        ),
    ],
    ids=["ce", "ce_grad", "focal", "poly1", "targets"],
)
def test_softmax_class_weights_must_be_real_numbers(loss: object, weight: np.ndarray) -> None:
    logits = np.random.default_rng(3).normal(size=(5, 4))
    labels = np.array([0, 1, 2, 3, 0])
    with pytest.raises(crossent.InputTypeError, match="`weight` must be real numbers"):
        loss(logits, labels, weight=weight)  # type: ignore[operator]


def test_integer_and_boolean_class_weights_are_their_float_values() -> None:
    """Guard for the dtype check (passes on main): int and bool weights are numbers."""
    logits = np.random.default_rng(3).normal(size=(5, 4))
    labels = np.array([0, 1, 2, 3, 0])
    per_row = -log_softmax(logits, axis=1)[np.arange(5), labels]  # float64 oracle
    for weight in (np.array([1, 2, 3, 4]), np.array([True, False, True, True])):
        w = weight.astype(np.float64)[labels]
        expected = np.sum(w * per_row) / np.sum(w)
        got = crossent.softmax_cross_entropy(logits, labels, weight=weight)
        assert got == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("base", [1, 0, -2, math.nan, math.inf, "2"])
def test_recalibration_gap_checks_base(base: object) -> None:
    """Main: 1 raised ZeroDivisionError, 0 and -2 ``math domain error``, NaN returned NaN."""
    logits, labels = _scaling_data()
    # (a string: InputTypeError, a TypeError, since the hostile API pass; else InputError)
    error = crossent.InputTypeError if isinstance(base, str) else crossent.InputError
    with pytest.raises(error, match="`base`"):
        crossent.recalibration_gap(logits, labels, base=base)  # type: ignore[arg-type]


def test_recalibration_gap_in_bits_is_the_gap_in_nats_over_log_2() -> None:
    logits, labels = _scaling_data()
    nats = crossent.recalibration_gap(2 * logits, labels)
    assert crossent.recalibration_gap(2 * logits, labels, base=2) == pytest.approx(
        nats / math.log(2), rel=1e-14
    )


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"bounds": (0.5,)}, "bounds"),
        ({"bounds": None}, "bounds"),
        ({"guard": "no"}, "guard"),
        ({"xtol": math.nan}, "xtol"),
        ({"xtol": -1.0}, "xtol"),
        ({"xtol": 1.0}, "xtol"),  # stopped at T = 1, "converged" (stop 60)
        ({"xtol": 1e10}, "xtol"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_temperature_scaling_options_are_checked(options: dict[str, object], name: str) -> None:
    """Main: ValueError/TypeError from unpacking or NumPy's SeedSequence, or no error at
    all (a string guard, a NaN or negative tolerance)."""
    logits, labels = _scaling_data()
    errors = (crossent.InputError, crossent.InputTypeError)  # guard="no": a type error
    with pytest.raises(errors, match=f"`{name}"):
        crossent.TemperatureScaling(**options).fit(logits, labels)  # type: ignore[arg-type]


def test_recalibration_gap_checks_seed() -> None:
    logits, labels = _scaling_data()
    with pytest.raises(crossent.InputError, match="`seed` must be a non-negative integer"):
        crossent.recalibration_gap(logits, labels, seed=-1)


@pytest.mark.parametrize("xtol", [0.0, 1e-10])
def test_temperature_with_xtol_zero_is_the_optimum(xtol: float) -> None:
    """``xtol=0`` (iterate to the end) stays allowed; the optimum against SciPy's.  (It
    passes on main too: it guards the new check of ``xtol`` against refusing 0.)"""
    logits, labels = _scaling_data()
    fitted = crossent.TemperatureScaling(guard=False, xtol=xtol).fit(2 * logits, labels)

    def nll(temperature: float) -> float:
        return float(-np.mean(log_softmax(2 * logits / temperature, axis=1)[np.arange(60), labels]))

    best = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-10})
    assert fitted.temperature_ == pytest.approx(best.x, rel=1e-6)
    assert fitted.converged_ or xtol == 0  # 0: only if a Newton step is exactly 0


def test_temperature_at_a_far_bound_when_newton_creeps() -> None:
    """Separable data with a lower bound of 1e-300: Newton creeps towards T = 0 by about
    0.2 in 1/T a step; it stopped after 200 of them at T = 0.024, neither at the bound nor
    converged (main before hostilenumpy said ``converged_ = True``).  Since branch
    hostilereport11 a creeping step evaluates the bound: the NLL is least there (0)."""
    scaler = crossent.TemperatureScaling(bounds=(1e-300, 1e300), guard=False)
    scaler.fit(np.eye(3) * 5.0, np.arange(3))
    assert scaler.at_bound_
    assert scaler.temperature_ == 1e-300
    assert not scaler.converged_
    assert scaler.nll_after_ == 0.0
    assert scaler.n_iter_ < 20


@pytest.mark.parametrize("first_row", [-1, 2.5, "3", True])
def test_state_update_checks_first_row(first_row: object) -> None:
    """Main: -1 was taken, 2.5 truncated to 2 and "3" read as 3."""
    state = crossent.EvaluationState(2)
    with pytest.raises(crossent.InputError, match="`first_row`"):
        state.update(_PROBS, _LABELS, first_row=first_row)  # type: ignore[arg-type]
    assert state.n == 0


def test_state_update_takes_a_numpy_first_row() -> None:
    state = crossent.EvaluationState(2).update(_PROBS, _LABELS, first_row=np.int64(7))
    rows = [row for row, _ in state.compute().most_surprising]
    assert sorted(rows) == [7, 8, 9]


def test_report_checks_seed() -> None:
    """Main: ``ValueError: expected non-negative integer`` from NumPy (the CLI's exit 3)."""
    with pytest.raises(crossent.InputError, match="`seed` must be a non-negative integer"):
        crossent.report(_PROBS, _LABELS, resamples=5, seed=-1)


@pytest.mark.parametrize("threshold", [math.inf, -math.inf, math.nan, "0.1", True])
@pytest.mark.parametrize("gate", ["max_ece", "max_nll"])
def test_report_checks_gate_thresholds(gate: str, threshold: object) -> None:
    """Main: infinities were kept (``to_dict`` then failed ``json.dumps(allow_nan=False)``),
    NaN failed the gate silently and a string raised ``TypeError``."""
    with pytest.raises(crossent.InputError, match=f"`{gate}` must be a finite number"):
        crossent.report(_PROBS, _LABELS, resamples=5, **{gate: threshold})  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_report_of_overflowing_logits_is_json() -> None:
    """Logits of +-1e308: the first row's surprisal at T = 1 (2e308) is beyond float64,
    the mean over three rows is not (issue 13, calib2: it was "inf" until then).  With
    three rows there is no cross-fitted NLL, so the gap is undefined: null in JSON, not
    NaN (main put NaN in ``to_dict``)."""
    logits, labels = np.array([[1e308, -1e308], [0.0, 1.0], [1.0, 0.0]]), np.array([1, 1, 0])
    payload = crossent.report(logits, labels, form="logits", resamples=5)
    as_json = json.loads(json.dumps(payload.to_dict(), allow_nan=False))
    assert as_json["recalibration_gap_nats"] is None
    assert as_json["nll_nats"] == pytest.approx(
        oracles.mean_surprisal_of_logits(logits, labels), rel=1e-15
    )
