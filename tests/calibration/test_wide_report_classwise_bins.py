"""Class-wise equal-width bins of wide blocks (``crossent report`` on 50 000 classes).

``class_bins_uniform`` bins only the columns with an entry past the first bin and takes
the others' first bin from a column sum.  The oracle bins each column on its own with
``numpy.searchsorted`` on the edges (the one-shot path's definition) and sums each bin
with ``numpy.cumsum`` (one addition after another, in row order): the sums must agree
bit for bit, as the whole block's ``numpy.bincount`` did before.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import crossent
from crossent.calibration._binning import uniform_edges
from crossent.calibration._state import class_bins_uniform


def _oracle(probs: np.ndarray, labels: np.ndarray, bins: int, closed: str) -> tuple:
    """Per column: searchsorted bins, counts, in-order sums, hits."""
    classes = probs.shape[1]
    side = "right" if closed == "left" else "left"
    inner = uniform_edges(bins)[1:-1]
    count = np.zeros((classes, bins))
    total = np.zeros((classes, bins))
    hits = np.zeros((classes, bins))
    for k in range(classes):
        index = np.searchsorted(inner, probs[:, k], side=side)
        for b in np.unique(index):
            chosen = probs[index == b, k]
            count[k, b] = chosen.size
            total[k, b] = np.cumsum(chosen)[-1]  # sequential, in row order
            hits[k, b] = np.count_nonzero(labels[index == b] == k)
    return count, total, hits


def _wide_block(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of N(0, 3) logits with a few sharp rows, entries planted on the edges
    (and one ulp either side) and labels that are often the top class."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 3
    logits[::3, rng.integers(0, classes, size=1)] += 40  # rows with one dominant class
    probs = softmax(logits, axis=1)
    edges = uniform_edges(15)
    planted = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1)])
    planted = planted[: probs.size // 2]
    cells = rng.choice(probs.size, size=planted.size, replace=False)
    probs.reshape(-1)[cells] = np.clip(planted, 0, 1)
    labels = np.where(rng.random(rows) < 0.5, probs.argmax(axis=1), rng.integers(0, classes, rows))
    return probs, labels


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize(
    ("rows", "classes"), [(20, 3000), (7, 50), (600, 2), (300, 5), (40, 1), (1, 400)]
)
def test_class_bins_match_each_column_binned_alone_bit_for_bit(
    rows: int, classes: int, closed: str
) -> None:
    probs, labels = _wide_block(rows, classes, seed=rows + classes)
    stats = class_bins_uniform(probs, labels, 15, closed)  # type: ignore[arg-type]
    count, total, hits = _oracle(probs, labels, 15, closed)
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.hits, hits)
    # bit for bit: the same additions in the same order
    np.testing.assert_array_equal(stats.confidence_sum.view(np.uint64), total.view(np.uint64))


def test_unchecked_nan_lands_in_the_last_bin_as_searchsorted_puts_it() -> None:
    probs, labels = _wide_block(10, 200, seed=3)
    probs[4, 17] = np.nan
    stats = class_bins_uniform(probs, labels, 15, "left")
    count, total, _ = _oracle(probs, labels, 15, "left")
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.confidence_sum, total)  # NaN where the oracle has it
    assert np.isnan(stats.confidence_sum[17, 14])


@pytest.mark.parametrize("form", ["logits", "probs"])
def test_report_per_class_calibration_matches_numpy(form: str) -> None:
    """300 x 5000: each class's L1 calibration error against an independent per-class
    NumPy computation (float64 softmax, searchsorted bins, ``sum n_b |h_b - c_b| / n``)."""
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(300, 5000)) * 3
    logits[:, :20] += 6  # classes with probabilities past the first bins
    labels = np.where(rng.random(300) < 0.6, logits.argmax(axis=1), rng.integers(0, 5000, 300))
    probs = softmax(logits, axis=1)
    values = logits.astype(np.float32) if form == "logits" else probs
    payload = crossent.report(values, labels, form=form, resamples=20).to_dict()
    p = softmax(values.astype(np.float64), axis=1) if form == "logits" else probs
    inner = uniform_edges(15)[1:-1]
    for k in list(range(25)) + list(range(4990, 5000)):
        index = np.searchsorted(inner, p[:, k], side="right")
        n_b = np.bincount(index, minlength=15)
        c_b = np.bincount(index, weights=p[:, k], minlength=15)
        h_b = np.bincount(index, weights=(labels == k).astype(float), minlength=15)
        used = n_b > 0
        expected = np.sum(np.abs(h_b[used] - c_b[used])) / 300
        got = payload["per_class"][k]["calibration_error"]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), k


@pytest.mark.parametrize("classes", [1, 2, 3])
def test_first_bin_sums_add_in_row_order_for_narrow_blocks(classes: int) -> None:
    """Columns entirely in the first bin, 0.05 then 999 times 1e-17: in row order each
    1e-17 is lost against 0.05 (the sum stays 0.05); a pairwise sum (what ``sum(axis=0)``
    does over one column) adds them up first and gives 0.05 + 1e-14."""
    rng = np.random.default_rng(classes)
    probs = np.full((1000, classes), 1e-17)
    probs[0] = 0.05
    labels = rng.integers(0, classes, 1000)
    stats = class_bins_uniform(probs, labels, 15, "left")
    count, total, hits = _oracle(probs, labels, 15, "left")
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.hits, hits)
    np.testing.assert_array_equal(stats.confidence_sum.view(np.uint64), total.view(np.uint64))


def _summarized_state(probs: np.ndarray, labels: np.ndarray, rows: slice) -> tuple:
    """A class-wise state fed as ``crossent.report`` feeds it (add_summarized_block)."""
    from crossent.calibration._inputs import as_predictions
    from crossent.calibration._state import add_summarized_block
    from crossent.calibration._summaries import summarize_block

    state = crossent.EvaluationState(probs.shape[1], scope="class-wise", keep=0)
    predictions = as_predictions(probs[rows], labels[rows], form="probs")
    for block, summaries in predictions.map_blocks(lambda b: (b, summarize_block(b))):
        add_summarized_block(state, block, summaries, 0)
    state.n += predictions.n
    return state, predictions


def test_summarized_blocks_added_in_place_give_the_bins_of_update() -> None:
    """Several blocks (20 000 classes: about 52 rows a block): the bins added into in
    place are those of ``EvaluationState.update``, bit for bit."""
    probs, labels = _wide_block(200, 20_000, seed=5)
    probs /= probs.sum(axis=1, keepdims=True)
    fed, _ = _summarized_state(probs, labels, slice(None))
    updated = crossent.EvaluationState(20_000, scope="class-wise", keep=0)
    updated.update(probs, labels)
    for name in ("count", "confidence_sum", "hits"):
        got = getattr(fed.calibration().statistics, name)
        expected = getattr(updated.calibration().statistics, name)
        np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_bins_handed_out_are_not_written_into_by_later_blocks() -> None:
    probs, labels = _wide_block(200, 20_000, seed=6)
    probs /= probs.sum(axis=1, keepdims=True)
    state, _ = _summarized_state(probs, labels, slice(0, 100))
    statistics = state.calibration().statistics  # handed out
    kept = statistics.confidence_sum.copy(), statistics.count.copy()
    from crossent.calibration._inputs import as_predictions
    from crossent.calibration._state import add_summarized_block
    from crossent.calibration._summaries import summarize_block

    more = as_predictions(probs[100:], labels[100:], form="probs")
    for block, summaries in more.map_blocks(lambda b: (b, summarize_block(b))):
        add_summarized_block(state, block, summaries, 100)
    np.testing.assert_array_equal(statistics.confidence_sum, kept[0])
    np.testing.assert_array_equal(statistics.count, kept[1])
    assert state.calibration().statistics.count[:, 0].sum() > kept[1][:, 0].sum()
