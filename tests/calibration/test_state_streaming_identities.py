"""Third hostile pass: EvaluationState's streaming identities, by hypothesis.

One batch, many small batches (empty and one-row ones included, each of its own float
dtype), and shards merged in two orders give the same numbers for every metric and
every bin (counts exactly; sums to float64 reassociation), in every scope and
binning.  The oracle for the means is math.fsum over the rows in float64.

These pass on main (4d024a0): they pin the identities.  Mutant checks: with
``merged._bins = self._bins + other._bins`` changed to ``self._bins`` in
``EvaluationState.merge`` the first fails; with ``update``'s class-count check
deleted the second does.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent

DTYPES = (np.float16, np.float32, np.float64)


def _numbers(state: crossent.EvaluationState) -> dict[str, object]:
    summary = state.compute()
    stats = summary.calibration.statistics
    return {
        "n": summary.n,
        "accuracy": summary.accuracy,
        "nll": summary.nll,
        "brier": summary.brier,
        "spherical": summary.spherical,
        "mean_entropy": summary.mean_entropy,
        "ece": summary.calibration.value,
        "per_class_nll": summary.per_class_nll,
        "per_class_count": summary.per_class_count,
        "count": np.asarray(stats.count),
        "confidence_sum": np.asarray(stats.confidence_sum),
        "hits": np.asarray(stats.hits),
    }


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    for key, value in a.items():
        if key in ("n", "count", "per_class_count"):
            np.testing.assert_array_equal(value, b[key], err_msg=key)
        else:
            np.testing.assert_allclose(
                np.asarray(value, dtype=np.float64),
                np.asarray(b[key], dtype=np.float64),
                rtol=1e-12,
                atol=1e-14,
                equal_nan=True,
                err_msg=key,
            )


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    classes=st.integers(2, 4),
    rows=st.integers(1, 40),
    layout=st.sampled_from(
        [
            ("uniform", "top-label", "left"),
            ("uniform", "top-label", "right"),
            ("uniform", "class-wise", "left"),
            ("quantile", "top-label", "left"),
            ("quantile", "class-wise", "left"),
        ]
    ),
    bins=st.sampled_from([1, 3, 10]),
)
def test_batches_merges_and_one_batch_agree(
    data: st.DataObject, classes: int, rows: int, layout: tuple[str, str, str], bins: int
) -> None:
    binning, scope, closed = layout
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # probabilities exactly representable in float16 (multiples of 1/8), so every
    # batch's dtype holds the same numbers; ties and exact bin edges come with them
    counts = rng.multinomial(8, np.full(classes, 1.0 / classes), size=rows)
    probs = counts / 8.0
    labels = rng.integers(0, classes, size=rows)
    cuts = sorted(data.draw(st.lists(st.integers(0, rows), max_size=6)))
    bounds = [0, *cuts, rows]
    options = {"bins": bins, "binning": binning, "scope": scope, "closed": closed}

    whole = crossent.EvaluationState(classes, **options).update(probs, labels)
    batched = crossent.EvaluationState(classes, **options)
    shards = []
    for a, b in itertools.pairwise(bounds):
        dtype = DTYPES[data.draw(st.integers(0, 2))]
        batched.update(probs[a:b].astype(dtype), labels[a:b], first_row=a)
        shards.append(
            crossent.EvaluationState(classes, **options).update(
                probs[a:b].astype(dtype), labels[a:b], first_row=a
            )
        )
    forward, backward = shards[0], shards[-1]
    for shard in shards[1:]:
        forward = forward.merge(shard)
    for shard in shards[-2::-1]:
        backward = backward.merge(shard)
    one_by_one = crossent.EvaluationState(classes, **options)
    for row in range(rows):
        one_by_one.update(probs[row : row + 1], labels[row : row + 1])

    expected = _numbers(whole)
    for state in (batched, forward, backward, one_by_one):
        _same(expected, _numbers(state))

    # the means against math.fsum over the rows (float64 oracle)
    with np.errstate(divide="ignore"):
        surprisal = [-math.log(p) if p > 0 else math.inf for p in probs[np.arange(rows), labels]]
    assert expected["nll"] == pytest.approx(math.fsum(surprisal) / rows, rel=1e-13)
    squares = ((probs - np.eye(classes)[labels]) ** 2).sum(axis=1)
    assert expected["brier"] == pytest.approx(math.fsum(squares) / rows, rel=1e-13, abs=1e-15)
    hits = probs.argmax(axis=1) == labels  # ties: the first index, as numpy.argmax
    assert expected["accuracy"] == math.fsum(hits) / rows


def test_batch_of_another_class_count_raises_naming_it() -> None:
    state = crossent.EvaluationState(4).update(np.full((2, 4), 0.25), [0, 1])
    with pytest.raises(crossent.InputError, match=r"has 3 classes; this state counts 4"):
        state.update(np.full((2, 3), 1 / 3), [0, 1])
    assert state.n == 2
