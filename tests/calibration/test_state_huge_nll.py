"""EvaluationState's NLL where the float64 surprisal sums overflow (issue 13, evalstate15).

Surprisals of about 1e308 each summed to +inf: the state's NLL of rows 1e308, 1e308 and
log 2 was inf (true mean 6.67e307), its per-class NLL of a class of one row of 1e308 inf.
Oracle: the exact mean (Fractions) of the float64 surprisals, rounded once. No test
here filters warnings: the overflowing float64 sums are expected, and NumPy's "overflow
encountered in add" leaked to the caller from ``update`` and ``merge`` until the lead's
review (pytest's ``filterwarnings = error`` fails such a test).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import crossent

LOGITS = np.array([[1e308, 0.0], [0.0, 1e308], [0.0, 0.0]])
LABELS = np.array([1, 0, 0])


def _exact_mean(values: list[float]) -> float:
    return float(sum(map(Fraction, values)) / len(values))


def _oracle(logits: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    rows = crossent.negative_log_likelihood(logits, labels, form="logits", reduction="none")
    rows = [float(r) for r in rows]
    per_class = [
        _exact_mean([r for r, y in zip(rows, labels, strict=True) if y == k])
        for k in range(logits.shape[1])
    ]
    return _exact_mean(rows), per_class


def _states(logits: np.ndarray, labels: np.ndarray, **options: object):
    """One update, one update a row, and a merge of two halves."""
    k = logits.shape[1]
    whole = crossent.EvaluationState(k, **options).update(logits, labels, form="logits")
    rows = crossent.EvaluationState(k, **options)
    for i in range(len(labels)):
        rows.update(logits[i : i + 1], labels[i : i + 1], form="logits")
    left = crossent.EvaluationState(k, **options).update(logits[:1], labels[:1], form="logits")
    right = crossent.EvaluationState(k, **options).update(
        logits[1:], labels[1:], form="logits", first_row=1
    )
    return {"whole": whole, "rows": rows, "merged": left.merge(right), "added": left + right}


@pytest.mark.parametrize(
    "options",
    [{}, {"binning": "quantile"}, {"scope": "class-wise"}, {"scope": "positive-class"}],
)
def test_overflowing_sums_give_the_finite_mean(options: dict[str, object]) -> None:
    nll, per_class = _oracle(LOGITS, LABELS)
    assert nll == pytest.approx(6.666666666666667e307, rel=1e-15)
    for name, state in _states(LOGITS, LABELS, **options).items():
        summary = state.compute()
        assert summary.nll == pytest.approx(nll, rel=1e-15), name
        np.testing.assert_allclose(summary.per_class_nll, per_class, rtol=1e-15, err_msg=name)
        assert summary.nll_bits == pytest.approx(nll / math.log(2), rel=1e-15)


def test_many_huge_rows_and_later_batches() -> None:
    # 40 rows of surprisal 1e308 in one class, 60 ordinary rows after the overflow
    rng = np.random.default_rng(5)
    huge = np.zeros((40, 3))
    huge[:, 0] = 1e308
    ordinary = rng.normal(size=(60, 3))
    logits = np.concatenate([huge, ordinary])
    labels = np.concatenate([np.full(40, 2), rng.integers(0, 3, size=60)])
    nll, per_class = _oracle(logits, labels)
    state = crossent.EvaluationState(3)
    for start in range(0, 100, 7):
        state.update(logits[start : start + 7], labels[start : start + 7], form="logits")
    summary = state.compute()
    assert summary.nll == pytest.approx(nll, rel=1e-14)
    np.testing.assert_allclose(summary.per_class_nll, per_class, rtol=1e-14)


def test_a_row_of_probability_zero_keeps_the_mean_inf() -> None:
    logits = np.array([[1e308, 0.0], [0.0, 1e308], [0.0, -np.inf]])
    labels = np.array([1, 0, 1])
    for state in _states(logits, labels).values():
        summary = state.compute()
        assert summary.nll == math.inf
        assert summary.per_class_nll[0] == pytest.approx(1e308, rel=1e-15)
        assert summary.per_class_nll[1] == math.inf


def test_ordinary_data_keeps_no_scaled_sums() -> None:
    # guard (kills a mutant that always keeps the scaled sums, or reads them for
    # finite totals): ordinary rows never enter the scaled path
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 3
    labels = rng.integers(0, 4, size=500)
    state = crossent.EvaluationState(4).update(logits, labels, form="logits")
    assert state._huge is None
    assert state.compute().nll == crossent.negative_log_likelihood(logits, labels, form="logits")


def test_blocks_fed_as_the_report_feeds_them() -> None:
    # crossent.report adds summarised blocks (add_summarized_block), one row a batch here
    from crossent.calibration._inputs import as_predictions
    from crossent.calibration._state import add_summarized_block, adding_batch
    from crossent.calibration._summaries import summarize_block

    nll, per_class = _oracle(LOGITS, LABELS)
    state = crossent.EvaluationState(2)
    for i in range(3):
        predictions = as_predictions(LOGITS[i : i + 1], LABELS[i : i + 1], form="logits")
        with adding_batch((state,)):
            for block in predictions.map_blocks(lambda b: b):
                add_summarized_block(state, block, summarize_block(block), i)
        state.n += 1
    summary = state.compute()
    assert summary.nll == pytest.approx(nll, rel=1e-15)
    np.testing.assert_allclose(summary.per_class_nll, per_class, rtol=1e-15)


def test_an_interrupted_batch_leaves_the_scaled_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch that raises after the scaled sums were formed puts them back with the rest
    # (``_all_or_nothing``); a mutant that restores every field but ``_huge`` fails here.
    from crossent.calibration import _state

    state = crossent.EvaluationState(2).update(LOGITS, LABELS, form="logits")
    assert state._huge is not None
    before = (state.n, state._sums.tobytes(), state._huge.tobytes())
    follow = _state.EvaluationState._follow_huge

    def interrupted(self, *args: object) -> None:
        follow(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(_state.EvaluationState, "_follow_huge", interrupted)
    with pytest.raises(KeyboardInterrupt):
        state.update(LOGITS, LABELS, form="logits", first_row=3)
    assert (state.n, state._sums.tobytes(), state._huge.tobytes()) == before
