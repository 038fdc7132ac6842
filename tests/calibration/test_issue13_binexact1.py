"""A 1-D binary probability ``p = P(y = 1)`` scored from ``p`` itself (issue 13, branch
binexact1): the rows ``[1 - p, p]`` round ``1 - p`` in float64 (to 1 for ``p <
2**-54``), so the label 0's surprisal and Brier score lost ``p`` (``p = 1e-20``: NLL 0
and Brier 1e-40, not 1e-20 and 2e-40).  Oracles: mpmath at 50 digits of the float
values as given (float32 values exactly as float64)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent

_HARD = [1e-300, 1e-20, 1e-17, 0.5 - 2.0**-53, 1 - 2.0**-53, 1.0]


def _rows(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Every hard ``p`` with both labels (float32: each rounded to float32 once)."""
    p = np.repeat(np.array(_HARD, dtype=dtype), 2)
    return p, np.tile([0, 1], len(_HARD))


def _truth(p: float, label: int) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """``(-log p_y, Brier (sum), entropy)`` of ``p`` (a float64) and its label, in mpmath."""
    x = mpmath.mpf(p)
    log_p = mpmath.log(x) if x > 0 else -mpmath.inf
    log_q = mpmath.log1p(-x) if x < 1 else -mpmath.inf  # (1 - 1e-300 is 1 at 50 digits)
    surprisal = -(log_p if label == 1 else log_q)
    brier = 2 * (x - label) ** 2
    entropy = -(x * log_p if x > 0 else 0) - ((1 - x) * log_q if x < 1 else 0)
    return surprisal, brier, entropy


def _close(got: float, truth: mpmath.mpf, ulps: float) -> bool:
    if mpmath.isinf(truth):
        return got == math.inf
    want = float(truth)
    return abs(got - want) <= ulps * math.ulp(want) if want else got == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_row_scores_against_mpmath(dtype):
    p, labels = _rows(dtype)
    nll = crossent.negative_log_likelihood(p, labels, reduction="none")
    brier = crossent.brier_score(p, labels, reduction="none")
    with mpmath.workdps(50):
        for i, (x, y) in enumerate(
            zip(p.astype(np.float64).tolist(), labels.tolist(), strict=True)
        ):
            surprisal, squares, _ = _truth(x, y)
            assert _close(float(nll[i]), surprisal, 1), (dtype, x, y, nll[i])
            assert _close(float(brier[i]), squares, 1), (dtype, x, y, brier[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_means_and_state_against_mpmath(dtype):
    """The means (``score_means``), and ``EvaluationState``'s NLL, Brier and mean entropy:
    of the label 0 of the small ``p`` (main: NLL 0, Brier half, the entropy without its
    ``(1 - p) log(1 - p)``), and of every hard row whose label has probability > 0."""
    p, labels = _rows(dtype)
    keep = ~((p == 1) & (labels == 0)) & ~((p == 0) & (labels == 1))
    small = (labels == 0) & (p > 0) & (p < 1e-10)
    for rows in (small, keep):
        q, y = p[rows], labels[rows]
        state = crossent.EvaluationState(2).update(q, y).compute()
        with mpmath.workdps(50):
            truths = [
                _truth(x, t) for x, t in zip(q.astype(np.float64).tolist(), y.tolist(), strict=True)
            ]
            nll, brier, entropy = (sum(t[k] for t in truths) / len(truths) for k in range(3))
        assert _close(crossent.negative_log_likelihood(q, y), nll, 1)
        assert _close(crossent.brier_score(q, y), brier, 1)
        assert _close(state.nll, nll, 1)
        assert _close(state.brier, brier, 1)
        assert _close(state.mean_entropy, entropy, 4)


def test_small_p_scores_with_the_label_zero():
    """The rows' own numbers: ``-log(1 - p) = p + p**2/2 + ...`` and ``2 p**2``; the
    state's and the report's per-row surprisals, in blocks of the binary path."""
    p = np.array([1e-20, 3e-17, 2.0**-60])
    labels = np.zeros(3, int)
    np.testing.assert_array_equal(crossent.negative_log_likelihood(p, labels, reduction="none"), p)
    np.testing.assert_array_equal(crossent.brier_score(p, labels, reduction="none"), 2 * p * p)
    np.testing.assert_array_equal(
        crossent.spherical_score(p, labels, reduction="none"), [1.0, 1.0, 1.0]
    )
    state = crossent.EvaluationState(2, keep=3).update(p, labels).compute()
    assert [s for _, s in state.most_surprising] == [3e-17, 2.0**-60, 1e-20]
    assert state.nll == math.fsum(p.tolist()) / 3


def test_many_blocks_agree_with_the_rows():
    """A binary column of several blocks: the means are those of the per-row scores
    (exact sums of them, within an ulp), and ordinary ``p`` score as the rows
    ``[1 - p, p]`` do, within a few ulps."""
    rng = np.random.default_rng(5)
    p = rng.random(70_000)
    labels = (rng.random(70_000) < p).astype(np.intp)
    rows = np.stack([1 - p, p], axis=1)
    each = crossent.negative_log_likelihood(p, labels, reduction="none")
    mean = crossent.negative_log_likelihood(p, labels)
    assert abs(mean - math.fsum(each.tolist()) / p.size) <= math.ulp(mean)
    one = labels == 1
    np.testing.assert_array_equal(each[one], -np.log(p[one]))
    np.testing.assert_allclose(
        each, crossent.negative_log_likelihood(rows, labels, reduction="none"), rtol=0, atol=2e-16
    )
    state = crossent.EvaluationState(2).update(p, labels).compute()
    assert abs(state.nll - mean) <= 2 * math.ulp(mean)
    binned = crossent.calibration_error(p, labels).value
    assert state.calibration.value == binned
    # (the rows' bins, summed in blocks of other sizes: 6.2e-16 from the exact
    # 0.0031301585361253282 of the rounded confidences, the column's 2.4e-16)
    assert binned == pytest.approx(crossent.calibration_error(rows, labels).value, rel=1e-12)
