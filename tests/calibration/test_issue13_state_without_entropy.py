"""``EvaluationState(entropy=False)``: the same metrics without the entropy's logarithms.

Every other number of the state must be the same bits as the default state's (the
option only switches off one sum), on every path ``update`` takes: stored float32 and
float64 probabilities in several blocks (the stacked kernel), one block, logits and
log-probabilities, and the scopes and binnings that summarise blocks instead.  The
entropy sum must not be formed at all (else the option saves nothing).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

import crossent
from crossent.calibration._inputs import _BLOCK_ELEMENTS
from crossent.errors import InputError, InputTypeError

_ENTROPY = 3  # the entropy's slot in the state's sums


def _data(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.5
    labels = rng.integers(0, classes, size=n)
    return logits, labels


def _forms(n: int, classes: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    logits, labels = _data(n, classes, seed)
    probs = softmax(logits, axis=1)
    return [
        ("probs", probs.astype(np.float32), labels),
        ("probs", probs, labels),
        ("logits", logits, labels),
        ("log_probs", log_softmax(logits, axis=1), labels),
    ]


def _same_but_entropy(without: crossent.EvaluationState, full: crossent.EvaluationState) -> None:
    a, b = without.compute(norm="l2"), full.compute(norm="l2")
    assert a.mean_entropy is None
    assert b.mean_entropy is not None
    assert b.mean_entropy > 0.0
    for name in ("n", "accuracy", "nll", "brier", "spherical"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.per_class_nll, b.per_class_nll)
    np.testing.assert_array_equal(a.per_class_count, b.per_class_count)
    assert a.calibration.value == b.calibration.value
    np.testing.assert_array_equal(a.calibration.statistics.count, b.calibration.statistics.count)
    assert a.most_surprising == b.most_surprising
    # the entropy sum was never formed (not formed and dropped)
    assert without._sums[_ENTROPY] == 0.0


@pytest.mark.parametrize("rows", [40, 3 * _BLOCK_ELEMENTS // 10 + 7])  # one block, several
@pytest.mark.parametrize(
    ("scope", "binning", "classes"),
    [
        ("top-label", "uniform", 10),
        ("top-label", "quantile", 10),
        ("class-wise", "uniform", 10),
        ("positive-class", "uniform", 2),
    ],
)
def test_issue13_state_without_entropy_keeps_every_other_number(
    rows: int, scope: str, binning: str, classes: int
) -> None:
    if rows > 1000 and (scope, binning) != ("top-label", "uniform"):
        rows = 20_000  # the summarising paths: blocks of their own, a smaller case
    for form, values, labels in _forms(rows, classes, seed=rows + classes):
        options = {"scope": scope, "binning": binning, "keep": 7}
        without = crossent.EvaluationState(classes, entropy=False, **options)
        full = crossent.EvaluationState(classes, **options)
        half = rows // 2
        for state in (without, full):  # two updates: the sums carried over
            state.update(values[:half], labels[:half], form=form)
            state.update(values[half:], labels[half:], form=form)
        _same_but_entropy(without, full)


def test_issue13_state_without_entropy_merges_only_with_its_kind() -> None:
    logits, labels = _data(300, 5, seed=1)
    left = crossent.EvaluationState(5, entropy=False).update(
        logits[:100], labels[:100], form="logits"
    )
    right = crossent.EvaluationState(5, entropy=False).update(
        logits[100:], labels[100:], form="logits", first_row=100
    )
    merged = left.merge(right)
    assert merged.entropy is False
    whole = crossent.EvaluationState(5).update(logits, labels, form="logits")
    assert merged.compute().nll == pytest.approx(whole.compute().nll, rel=1e-14)
    assert merged.compute().mean_entropy is None
    with pytest.raises(InputError, match=r"entropy=False vs .*entropy=True"):
        left.merge(whole)


@pytest.mark.parametrize("value", ["no", 0, 1, None, 0.0])
def test_issue13_state_entropy_option_is_a_bool(value: object) -> None:
    with pytest.raises(InputTypeError, match="`entropy` must be True or False"):
        crossent.EvaluationState(3, entropy=value)  # type: ignore[arg-type]


def test_issue13_state_entropy_option_takes_numpy_bools() -> None:
    assert crossent.EvaluationState(3, entropy=np.bool_(False)).entropy is False


@pytest.mark.parametrize(
    ("scope", "binning", "classes"),
    [("top-label", "quantile", 4), ("class-wise", "uniform", 4), ("positive-class", "uniform", 2)],
)
@pytest.mark.parametrize("form", ["probs", "logits"])
def test_issue13_state_without_entropy_never_asks_for_it(
    monkeypatch: pytest.MonkeyPatch, scope: str, binning: str, classes: int, form: str
) -> None:
    """The summarising paths: the summaries are made without the entropy (an entropy
    formed and then dropped would give the same numbers, and cost what it saves)."""
    from crossent.calibration import _state

    asked: list[bool] = []

    def spy(function):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            asked.append(kwargs.get("entropy", True))
            return function(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(_state, "summarize_block", spy(_state.summarize_block))
    monkeypatch.setattr(_state, "map_summaries", spy(_state.map_summaries))
    logits, labels = _data(50, classes, seed=4)
    values = softmax(logits, axis=1) if form == "probs" else logits
    for entropy in (False, True):
        asked.clear()
        state = crossent.EvaluationState(classes, scope=scope, binning=binning, entropy=entropy)
        state.update(values, labels, form=form)
        assert asked
        assert set(asked) == {entropy}
