"""The mergeable evaluation state: split-and-merge equals one shot, bounded size, streaming bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crossent

from tolerances import CLOSED_FORM, SUM


def _data(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, classes)) * 3, rng.integers(0, classes, size=n)


def _assert_same(a: crossent.EvaluationSummary, b: crossent.EvaluationSummary) -> None:
    assert a.n == b.n
    for name in ("accuracy", "nll", "brier", "spherical", "mean_entropy"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=SUM.rtol), name
    np.testing.assert_array_equal(a.calibration.statistics.count, b.calibration.statistics.count)
    assert a.calibration.value == pytest.approx(b.calibration.value, **CLOSED_FORM.rel_abs())
    np.testing.assert_array_equal(a.per_class_count, b.per_class_count)
    np.testing.assert_allclose(a.per_class_nll, b.per_class_nll, rtol=SUM.rtol)
    assert [r for r, _ in a.most_surprising] == [r for r, _ in b.most_surprising]


@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=5),
    st.sampled_from(["uniform", "quantile"]),
    st.sampled_from(["top-label", "class-wise"]),
    st.integers(0, 2**32 - 1),
)
def test_any_split_then_merge_equals_one_shot(
    sizes: list[int], binning: str, scope: str, seed: int
) -> None:
    logits, labels = _data(sum(sizes), 4, seed)
    options = {"bins": 7, "binning": binning, "scope": scope, "keep": 5}
    whole = crossent.EvaluationState(4, **options).update(logits, labels, form="logits")
    parts, start = [], 0
    for size in sizes:
        part = crossent.EvaluationState(4, **options)
        part.update(
            logits[start : start + size],
            labels[start : start + size],
            form="logits",
            first_row=start,
        )
        parts.append(part)
        start += size
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    _assert_same(whole.compute(), merged.compute())


def test_uniform_state_equals_the_one_shot_functions() -> None:
    logits, labels = _data(5000, 6, seed=1)
    state = crossent.EvaluationState(6)
    for start in range(0, 5000, 777):
        state.update(logits[start : start + 777], labels[start : start + 777], form="logits")
    summary = state.compute(norm="l2")
    assert summary.nll == pytest.approx(
        crossent.negative_log_likelihood(logits, labels, form="logits"), rel=SUM.rtol
    )
    assert summary.brier == pytest.approx(
        crossent.brier_score(logits, labels, form="logits"), rel=SUM.rtol
    )
    assert summary.accuracy == crossent.accuracy(logits, labels, form="logits")
    one_shot = crossent.calibration_error(logits, labels, form="logits", norm="l2")
    assert summary.calibration.value == pytest.approx(one_shot.value, rel=CLOSED_FORM.rtol)
    np.testing.assert_array_equal(summary.calibration.statistics.count, one_shot.statistics.count)
    assert summary.perplexity == pytest.approx(np.exp(summary.nll), **CLOSED_FORM.rel_abs())
    surprisal = crossent.negative_log_likelihood(logits, labels, form="logits", reduction="none")
    assert [r for r, _ in summary.most_surprising] == list(
        np.argsort(-surprisal, kind="stable")[:10]
    )
    for k in range(6):
        assert summary.per_class_nll[k] == pytest.approx(
            surprisal[labels == k].mean(), rel=SUM.rtol
        )


def test_streaming_equal_mass_bins_are_near_equal_and_close_to_one_shot() -> None:
    logits, labels = _data(20000, 10, seed=3)
    state = crossent.EvaluationState(10, binning="quantile", bins=10)
    for start in range(0, 20000, 3000):
        state.update(logits[start : start + 3000], labels[start : start + 3000], form="logits")
    streamed = state.calibration()
    counts = streamed.statistics.count
    assert counts.sum() == 20000
    assert np.all(np.abs(counts - 2000) <= 40), counts  # within a fine cell or two of n / bins
    one_shot = crossent.calibration_error(
        logits, labels, form="logits", binning="quantile", bins=10
    )
    assert streamed.value == pytest.approx(one_shot.value, abs=2e-3)


def test_state_size_does_not_grow_with_the_data() -> None:
    def footprint(state: crossent.EvaluationState) -> int:
        arrays = [v for v in vars(state).values() if isinstance(v, np.ndarray)]
        arrays += [v for v in vars(state._bins).values() if v is not None]  # (error: None)
        return sum(a.nbytes for a in arrays)

    small = crossent.EvaluationState(5, binning="quantile")
    big = crossent.EvaluationState(5, binning="quantile")
    logits, labels = _data(50000, 5, seed=0)
    small.update(logits[:10], labels[:10], form="logits")
    big.update(logits, labels, form="logits")
    assert footprint(small) == footprint(big)
    assert len(big._surprising) == 10


def test_errors_name_the_row_in_the_whole_data_set() -> None:
    logits, labels = _data(10, 3, seed=0)
    labels[4] = 7
    state = crossent.EvaluationState(3)
    with pytest.raises(crossent.InputError, match="row 104 has 7"):
        state.update(logits, labels, form="logits", first_row=100)
    labels[4] = 0
    logits[2, 1] = np.nan
    with pytest.raises(crossent.InputError, match=r"index \(52, 1\)"):
        state.update(logits, labels, form="logits", first_row=50)


def test_merge_refuses_different_binnings_and_empty_compute_is_an_error() -> None:
    with pytest.raises(crossent.InputError, match="cannot merge"):
        crossent.EvaluationState(3).merge(crossent.EvaluationState(3, bins=10))
    with pytest.raises(crossent.InputError, match="seen no examples"):
        crossent.EvaluationState(3).compute()
    with pytest.raises(crossent.InputError, match="3 classes"):
        crossent.EvaluationState(4).update(*_data(5, 3, 0), form="logits")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"classes": 0}, r"`classes` must be a positive integer; got 0"),
        ({"classes": True}, r"`classes` must be a positive integer; got True"),
        ({"classes": 3, "keep": -1}, r"`keep` must be a non-negative integer; got -1"),
        ({"classes": 3, "bins": 2.0}, r"`bins` must be a positive integer; got 2\.0"),
    ],
)
def test_integer_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(crossent.InputError, match=message):
        crossent.EvaluationState(**options)  # type: ignore[arg-type]


def test_numpy_integers_are_integer_options() -> None:
    state = crossent.EvaluationState(np.int64(3), bins=np.int32(5), keep=np.int64(2))
    assert (state.classes, state.spec.bins, state.keep) == (3, 5, 2)
