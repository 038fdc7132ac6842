"""``EvaluationState(keep=...)``: a NaN surprisal takes no kept place, however the rows
come (one update, split updates, merged states; logits or probabilities).

``validate=True`` refuses NaN predictions; with ``validate=False`` their surprisal is
NaN, which is no amount of surprise and which merge's ordering cannot place. On main
one update of 30 logits rows with NaN in rows 3, 17 and 25 (the label's entry) kept 2
rows with ``keep=5`` (the NaN rows took three places and were then dropped), three
updates of 10 rows or a merge kept 5.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent


def _data(form: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = rng.integers(0, 4, 30)
    if form == "probs":
        x = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    rows = [3, 17, 25]
    x[rows, y[rows]] = np.nan  # the label's entry: a NaN surprisal in either form
    return x, y


def _oracle(x: np.ndarray, y: np.ndarray, form: str, keep: int) -> list[tuple[int, float]]:
    """The ``keep`` rows of largest -log p_y that is not NaN, ties to the lower row
    (float64; a NaN logit makes the row's NaN, a NaN probability only as p_y)."""
    if form == "logits":
        with np.errstate(invalid="ignore"):
            log_p = x - x.max(axis=1, keepdims=True)
            log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    else:
        log_p = np.log(x)
    s = -log_p[np.arange(y.size), y]
    rows = np.flatnonzero(~np.isnan(s))
    order = np.lexsort((rows, -s[rows]))[:keep]
    return [(int(rows[i]), float(s[rows[i]])) for i in order]


def _kept(state: crossent.EvaluationState) -> list[tuple[int, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN rows make the NLL NaN
        return state.compute().most_surprising


def _one(x: np.ndarray, y: np.ndarray, form: str, keep: int) -> crossent.EvaluationState:
    return crossent.EvaluationState(4, keep=keep).update(x, y, form=form, validate=False)


@pytest.mark.parametrize("keep", [1, 5, 27, 30])
@pytest.mark.parametrize("form", ["logits", "probs"])
def test_one_update_split_updates_and_merge_keep_the_same_rows(form: str, keep: int) -> None:
    x, y = _data(form)
    expected = _oracle(x, y, form, keep)
    assert len(expected) == min(keep, 27)
    one = _kept(_one(x, y, form, keep))
    split = crossent.EvaluationState(4, keep=keep)
    for start in (0, 10, 20):
        split.update(x[start : start + 10], y[start : start + 10], form=form, validate=False)
    parts = [
        crossent.EvaluationState(4, keep=keep).update(
            x[s : s + 10], y[s : s + 10], form=form, validate=False, first_row=s
        )
        for s in (0, 10, 20)
    ]
    merged = _kept(parts[0].merge(parts[1]).merge(parts[2]))
    for kept in (one, _kept(split), merged):
        assert [row for row, _ in kept] == [row for row, _ in expected]
        np.testing.assert_allclose([v for _, v in kept], [v for _, v in expected], rtol=1e-12)


def test_validate_refuses_the_nan_rows() -> None:
    x, y = _data("logits")
    with pytest.raises(crossent.InputError):
        crossent.EvaluationState(4, keep=5).update(x, y, form="logits")
