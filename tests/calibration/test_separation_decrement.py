"""Step 2 of ``calibration/_separation.py``: the Newton-decrement certificate of overlap.

For :math:`\\lambda > 0` (one entry per wrong class of each row), :math:`r = M^T
\\lambda` and :math:`G = M^T \\Lambda^2 M`, the correction :math:`\\lambda - \\Lambda^2
M G^{+} r` is an exact null vector of :math:`M^T` whose entries differ from
:math:`\\lambda`'s by at most :math:`\\sqrt{q}` relatively, :math:`q = r^T G^{+} r`:
:math:`q < 1` certifies overlap (Stiemke), and on separated data :math:`q \\ge 1` for
every :math:`\\lambda > 0`. Up to stop 52 step 2 required the residual to be small
against the smallest entry of :math:`\\lambda` over the largest, which no rounding
passes once the entries spread over more than ~1e8: 20 000 rows of 100 classes whose
fitted probabilities spread over 1e-213 reached the linear program (41.9 s) though the
data overlap (``benchmarks/RESULTS.md``, branch ``vecscale2``).

Oracles: the dual linear program of ``test_vector_scaling_separation`` (Stiemke's
alternative) and, for the certificate itself, :math:`q` recomputed here in exact
rational arithmetic (:mod:`fractions`) from the dense margin matrix.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent
from crossent.calibration import _separation

from .test_vector_scaling_separation import overlap_by_dual


def _margin_rows(scores: np.ndarray, labels: np.ndarray) -> list[list[Fraction]]:
    """The rows of :math:`M` (margins ``(i, k)``, ``k != y_i``, row by row), exact."""
    n, classes = scores.shape
    rows = []
    for i in range(n):
        y = int(labels[i])
        for k in range(classes):
            if k == y:
                continue
            row = [Fraction(0)] * (2 * classes)
            row[y] += Fraction(float(scores[i, y]))
            row[classes + y] += 1
            row[k] -= Fraction(float(scores[i, k]))
            row[classes + k] -= 1
            rows.append(row)
    return rows


def _solve(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Gauss-Jordan elimination in exact arithmetic (``matrix`` non-singular)."""
    size = len(rhs)
    augmented = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    for column in range(size):
        pivot = next(r for r in range(column, size) if augmented[r][column] != 0)
        augmented[column], augmented[pivot] = augmented[pivot], augmented[column]
        for r in range(size):
            if r != column and augmented[r][column] != 0:
                factor = augmented[r][column] / augmented[column][column]
                augmented[r] = [
                    a - factor * b for a, b in zip(augmented[r], augmented[column], strict=True)
                ]
    return [augmented[i][size] / augmented[i][i] for i in range(size)]


def exact_decrement(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> Fraction:
    """:math:`q = r^T (G + g g^T)^{-1} r` exactly (``g``: every bias alike, :math:`M g =
    0` and :math:`g^T r = 0`, so this is :math:`r^T G^{+} r` where :math:`G`'s null
    space is that direction alone); ``weights`` ``(n, K)``, the label's entry ignored."""
    classes = scores.shape[1]
    rows = _margin_rows(scores, labels)
    wrong = labels[:, None] != np.arange(classes)
    lam = [Fraction(float(w)) for w in weights[wrong]]
    size = 2 * classes
    r = [sum((lam[j] * rows[j][c] for j in range(len(rows))), Fraction(0)) for c in range(size)]
    gram = [
        [
            sum((lam[j] ** 2 * rows[j][a] * rows[j][b] for j in range(len(rows))), Fraction(0))
            + (1 if a >= classes and b >= classes else 0)
            for b in range(size)
        ]
        for a in range(size)
    ]
    x = _solve(gram, r)
    return sum((a * b for a, b in zip(r, x, strict=True)), Fraction(0))


def _groups(seed: int, groups: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``groups`` points, each ``classes`` rows of the same scores, one per label: every
    null vector uniform within each group (and any positive weight per group) is a
    positive null vector of :math:`M^T` (the rows' margins cancel in each group)."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(groups, classes))
    return np.repeat(points, classes, axis=0), np.tile(np.arange(classes), groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vecscale2_step_two_certifies_probabilities_spread_over_300_orders(seed: int) -> None:
    """Overlapping data (groups of tied rows with every label), weights 1 on four groups
    (as a fit's on the rows that overlap) and from 1e-30 down to 1e-300 on ten more (the
    confidently right rows), each entry off by up to 1e-3 relatively (so :math:`M^T
    \\lambda \\ne 0`): step 2 certifies from these weights themselves. Up to stop 52
    it could not (the residual had to be below 1e-6 times the spread, 1e-300, of the
    sums)."""
    scores, labels = _groups(seed, groups=14, classes=3)
    assert overlap_by_dual(scores, labels)
    rng = np.random.default_rng(100 + seed)
    exponents = np.concatenate([np.zeros(4), -30.0 * np.arange(1, 11)])
    per_group = np.repeat(10.0**exponents, 3)[:, None]
    probs = per_group * (1.0 + 1e-3 * rng.uniform(-1.0, 1.0, size=scores.shape))
    wrong = labels[:, None] != np.arange(3)
    assert probs[wrong].min() < 1e-299 * probs[wrong].max()
    assert _separation._overlap_certified(scores, labels, probs)
    assert not _separation.separated(scores, labels, probs)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    spread=st.floats(0.0, 40.0),
    classes=st.integers(2, 4),
)
def test_vecscale2_decrement_bound_never_certifies_separated_data(
    seed: int, spread: float, classes: int
) -> None:
    """Separated data (labels a mixed-sign vector scaling ranks first, so no ranking of
    the scores shows it) and any positive weights (spread over ``spread`` orders of
    magnitude): the bound on :math:`q` exceeds the acceptance (in exact arithmetic
    :math:`q \\ge 1`, checked here with fractions on the same weights)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(12 * classes, classes))
    scale = np.where(np.arange(classes) % 2 == 0, 1.0, -1.5)
    labels = (scores * scale).argmax(axis=1)
    if np.unique(labels).size < classes:
        labels[:classes] = np.arange(classes)  # still separated? the oracle decides
    if overlap_by_dual(scores, labels):
        return
    weights = 10.0 ** (-spread * rng.random(scores.shape))
    onehot = np.zeros_like(scores)
    onehot[np.arange(labels.size), labels] = 1.0
    weights = np.where(onehot == 0.0, weights, 0.0)
    free = np.ones(2 * classes, dtype=bool)
    bound, _ = _separation._decrement(scores, onehot, free, weights)
    assert bound > _separation._ACCEPT
    if spread < 8.0:  # (exact sums of squares of 1e-40 take long in fractions)
        assert exact_decrement(scores, labels, weights) >= 1


@pytest.mark.parametrize("seed", [3, 4])
def test_vecscale2_decrement_bound_holds_the_exact_value(seed: int) -> None:
    """Overlapping data and weights near a null vector: the computed bound is at least
    the exact :math:`q` (fractions) and below the acceptance, and the data are
    certified; with the weights moved 20 % off, the exact :math:`q` and the bound agree
    within rounding."""
    scores, labels = _groups(seed, groups=6, classes=3)
    rng = np.random.default_rng(seed)
    scores = scores + 1e-3 * rng.normal(size=scores.shape)  # no longer tied: a fit's job
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert not fitted.separated_
    assert overlap_by_dual(scores, labels)
    probs = np.exp(scores * fitted.scale_ + fitted.bias_)
    probs /= probs.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(scores)
    onehot[np.arange(labels.size), labels] = 1.0
    free = np.ones(6, dtype=bool)
    for moved in (probs, probs * (1.0 + 0.2 * rng.uniform(-1.0, 1.0, size=probs.shape))):
        weights = np.where(onehot == 0.0, moved, 0.0)
        bound, _ = _separation._decrement(scores, onehot, free, weights)
        exact = float(exact_decrement(scores, labels, weights))
        assert bound >= exact * (1.0 - 1e-9)
        assert bound <= exact * (1.0 + 1e-6) + 1e-20


def _thin(gap: float) -> tuple[np.ndarray, np.ndarray]:
    """``test_separation_near_ties``'s data (seed 0): rows that :math:`w = (2, -1, 0.5)`,
    :math:`b = (0.25, 0, -0.25)` ranks first, and 4 x 3 rows tied under it, each label's
    score moved so that it wins (``gap > 0``) or loses (``gap < 0``) by ``|gap|``."""
    from .test_separation_near_ties import _nearly_overlapping

    return _nearly_overlapping(0, gap)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(1e-10, True), (1e-6, True), (-1e-6, False), (-1e-8, False), (-1e-10, True)],
)
def test_vecscale2_thin_gaps_against_exact_oracles(
    monkeypatch: pytest.MonkeyPatch, gap: float, expected: bool
) -> None:
    """Near the linear program's tolerance (1e-7 on margins of scores scaled to 1).

    ``gap > 0``: separated, exactly (the margins of :math:`(w, b)` in fractions are all
    :math:`\\ge 0`, one :math:`> 0`): answered separated, down to 1e-10.  ``gap = -1e-6,
    -1e-8``: overlapping, exactly (the dual program's :math:`\\lambda` has exact
    :math:`q < 1`): answered not separated (by the program: the fit, whose optimum has
    parameters some :math:`1/|gap|` large, stops too far from it for step 2).
    ``gap = -1e-10``: the data overlap (no direction separates them: the tied rows force
    every scale ratio :math:`\\delta w_k / w_k` to within :math:`10^{-10}` of one
    another and of a common :math:`\\sigma \\le 0`, and the other rows, ranked first by
    :math:`(w, b)` with margins of order 1, then force :math:`\\sigma = 0`), but by less
    than HiGHS's tolerance: the dual program ends in numerical difficulties, the primal
    one finds a "separating" direction within its tolerance, and the answer is
    separated. The documented decision (``_separation``'s docstring): an overlap that
    thin has a finite optimum some 1e10 times the scores' inverse scale, and is reported
    as separated. Mutants guarded (same answers on main): the dual's bounds
    ``(1.0, None)`` -> ``(0.0, None)`` (every data set "overlaps"), and
    ``dual.status == 2`` -> ``== 0``."""
    scores, labels = _thin(gap)
    if gap > 0:
        direction = np.array([2.0, -1.0, 0.5, 0.25, 0.0, -0.25])
        margins = [
            sum((a * Fraction(float(d)) for a, d in zip(row, direction, strict=True)), Fraction(0))
            for row in _margin_rows(scores, labels)
        ]
        assert min(margins) >= 0
        assert max(margins) > 0
    elif not expected:
        from scipy import optimize

        rows = np.array([[float(v) for v in row] for row in _margin_rows(scores, labels)])
        dual = optimize.linprog(
            np.ones(rows.shape[0]),
            A_eq=rows.T,
            b_eq=np.zeros(rows.shape[1]),
            bounds=(1.0, None),
            method="highs-ds",
        )
        assert dual.status == 0
        weights = np.zeros(scores.shape)
        weights[labels[:, None] != np.arange(3)] = dual.x
        assert exact_decrement(scores, labels, weights) < 1
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_ is expected


@pytest.mark.parametrize("form", ["[-s, s]", "[s, 2 s + 1]"])
def test_vecscale2_affinely_dependent_scores_settle_in_step_two(
    monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """Binary scores with an affine dependence (a direction in which :math:`M` is 0, so
    :math:`G` is singular and the decrement has no bound): overlapping data (oracle: the
    dual program) still settle in step 2, by the residual test of stop 52, without the
    linear program. Mutant guarded (passes on main): dropping that test
    (``_residual_small``) sent these fits to the program."""

    def refuse(scores: np.ndarray, labels: np.ndarray) -> bool:
        raise AssertionError("step 3 reached")

    rng = np.random.default_rng(7)
    s = 2.0 * rng.normal(size=400)
    labels = (rng.random(400) < 1.0 / (1.0 + np.exp(-s))).astype(int)
    scores = np.stack([-s, s] if form == "[-s, s]" else [s, 2.0 * s + 1.0], axis=1)
    assert overlap_by_dual(scores, labels)
    monkeypatch.setattr(_separation, "_separated_by_program", refuse)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert not fitted.separated_
