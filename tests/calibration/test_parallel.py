"""Threads change the speed, never the numbers: one thread and many give identical results."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent import _parallel


def _everything(logits: np.ndarray, labels: np.ndarray) -> tuple[object, ...]:
    state = crossent.EvaluationState(logits.shape[1]).update(logits, labels, form="logits")
    summary = state.compute()
    scaler = crossent.TemperatureScaling().fit(logits, labels)
    interval = crossent.bootstrap_interval(
        "calibration_error", logits, labels, form="logits", resamples=60, seed=4
    )
    return (
        summary.nll,
        summary.brier,
        summary.calibration.value,
        summary.most_surprising,
        scaler.temperature_,
        scaler.cross_fitted_nll_,
        interval,
    )


def test_one_thread_and_four_threads_agree_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40_000, 30)) * 2  # several blocks of 2^20 entries
    labels = rng.integers(0, 30, size=40_000)
    monkeypatch.setattr(_parallel, "workers", lambda: 1)
    single = _everything(logits, labels)
    monkeypatch.setattr(_parallel, "workers", lambda: 4)
    multi = _everything(logits, labels)
    assert single == multi
