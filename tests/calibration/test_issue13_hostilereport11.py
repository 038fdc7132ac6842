"""A hostile pass over ``crossent report`` and the evaluation API on real model outputs
(issue 13, branch hostilereport11)."""

from __future__ import annotations

import numpy as np

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
    assert scaler.temperature_ == 0.05 and scaler.at_bound_
    assert scaler.nll_after_ == oracle  # 0.0: exp(-1000) underflows
    assert scaler.n_iter_ < 10
    # the report's temperature says so
    temperature = crossent.report(logits, labels, form="logits", resamples=10).payload[
        "temperature"
    ]
    assert (temperature["value"], temperature["at_bound"]) == (0.05, True)
