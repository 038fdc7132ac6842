"""A hostile pass over ``crossent report`` and the evaluation API on real model outputs
(issue 13, branch hostilereport11)."""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _confident(margin: float) -> tuple[np.ndarray, np.ndarray]:
    # 20 rows, every label top-ranked by ``margin`` nats: separable, so the NLL keeps
    # falling as T -> 0 and its minimum over [0.05, 20] is at T = 0.05
    logits = np.zeros((20, 3))
    logits[:, 0] = margin
    return logits, np.zeros(20, dtype=np.int64)


def test_temperature_of_separable_large_margin_rows_is_at_the_bound() -> None:
    # f'(beta) ~ -100 exp(-50 beta): Newton steps of a constant 1/50 crept 200 steps to
    # T = 0.2 (converged_ False, at_bound_ False), short of the bound 0.05
    logits, labels = _confident(50.0)
    scaler = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    oracle = crossent.negative_log_likelihood(logits / 0.05, labels, form="logits")
    assert scaler.temperature_ == 0.05
    assert scaler.at_bound_
    assert scaler.nll_after_ == oracle  # 0.0: exp(-1000) underflows
    assert scaler.n_iter_ < 20
    # the report's temperature says so
    temperature = crossent.report(logits, labels, form="logits", resamples=10).payload[
        "temperature"
    ]
    assert (temperature["value"], temperature["at_bound"]) == (0.05, True)


def test_temperature_creeping_inside_its_bracket_converges() -> None:
    # 20 rows [50, 0, 0] labelled 0 and one row whose label trails its maximum by 1e-300:
    # f'(beta) = (-20 * 100 w / (1 + 2 w) + 1e-300 / 2) / 21, w = exp(-50 beta), has its
    # root at 50 beta = log(4000e300), T = 0.0715...; Newton crept at 1/50 a step and
    # stopped after 200 (T = 0.2, then 0.118 once the bound was evaluated), not converged
    logits = np.zeros((21, 3))
    logits[:20, 0] = 50.0
    logits[20] = [0.0, -1e-300, -100.0]
    labels = np.zeros(21, dtype=np.int64)
    labels[20] = 1
    scaler = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    oracle = 50.0 / (np.log(4000.0) + 300.0 * np.log(10.0))
    assert scaler.converged_
    assert not scaler.at_bound_
    assert abs(scaler.temperature_ - oracle) <= 1e-12 * oracle


def _frame_and_shuffled_labels() -> tuple[object, object, object]:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=12)
    labels = rng.integers(0, 3, size=12)
    index = np.arange(100, 112)
    frame = pd.DataFrame(probs, columns=["a", "b", "c"], index=index)
    series = pd.Series(labels, index=index)
    return frame, series, series.sample(frac=1.0, random_state=0)


_PAIRED_BY_POSITION = {
    "negative_log_likelihood": lambda p, y: crossent.negative_log_likelihood(p, y),
    "brier_score": lambda p, y: crossent.brier_score(p, y),
    "accuracy": lambda p, y: crossent.accuracy(p, y),
    "calibration_error": lambda p, y: crossent.calibration_error(p, y),
    "bootstrap_interval": lambda p, y: crossent.bootstrap_interval("nll", p, y, resamples=5),
    "EvaluationState.update": lambda p, y: crossent.EvaluationState(3).update(p, y),
    "TemperatureScaling.fit": lambda p, y: crossent.TemperatureScaling().fit(np.log(p), y),
    "compare_log_loss labels": lambda p, y: crossent.compare_log_loss(p, p, y, resamples=5),
    "compare_log_loss models": lambda p, y: crossent.compare_log_loss(
        p, p.loc[y.index], y.to_numpy(), resamples=5
    ),
}


@pytest.mark.parametrize("call", sorted(_PAIRED_BY_POSITION))
def test_pandas_rows_of_another_index_are_refused(call: str) -> None:
    # a shuffled Series of labels beside a DataFrame was paired by position: the NLL of
    # 75 iris rows came out 4.69 where the aligned rows give 0.164, without a word (the
    # report refused it; the functions did not)
    frame, _, shuffled = _frame_and_shuffled_labels()
    with pytest.raises(crossent.InputError, match="different row indexes"):
        _PAIRED_BY_POSITION[call](frame, shuffled)


def test_pandas_rows_of_one_index_are_the_arrays_rows() -> None:
    # guards the check against refusing aligned rows (passes on main); the oracle is
    # the hand computation, -mean log p[i, y_i]
    frame, series, _ = _frame_and_shuffled_labels()
    probs, labels = frame.to_numpy(), series.to_numpy()
    oracle = -np.mean(np.log(probs[np.arange(labels.size), labels]))
    assert crossent.negative_log_likelihood(frame, series) == pytest.approx(oracle, rel=1e-14)
