"""Mutation pass (branch ``mutation4``) over step 2 of ``calibration/_separation.py``.

The rounding bound of :func:`_separation._decrement` divides by :math:`1 - \\rho`,
:math:`\\rho = \\|E\\| / \\mu` the Gram matrix's rounding against its smallest computed
eigenvalue.  The existing tests used well-conditioned Gram matrices (:math:`\\rho` near
1e-3), where multiplying by :math:`1 - \\rho` instead, or leaving a term out of
:math:`\\rho`, changes the bound by less than its slack: such mutants survived.  Here a
score column nearly constant (relative spread 1e-6) makes the scale and bias of that
class nearly collinear (:math:`\\rho \\approx 0.15`), and the bound must still hold the
exact :math:`q = r^T G^{+} r`, computed in fractions.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _separation

from .test_separation_decrement import _groups, exact_decrement
from .test_vector_scaling_separation import overlap_by_dual


def _nearly_collinear(spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping groups (``_groups``, seed 3) whose first column is ``1 + spread *
    noise``, a one-hot of the labels, and positive weights off the label."""
    scores, labels = _groups(3, groups=6, classes=3)
    rng = np.random.default_rng(7)
    scores = scores + 1e-3 * rng.normal(size=scores.shape)
    scores[:, 0] = 1.0 + spread * rng.normal(size=scores.shape[0])
    onehot = np.zeros_like(scores)
    onehot[np.arange(labels.size), labels] = 1.0
    weights = np.where(onehot == 0.0, np.exp(0.3 * rng.normal(size=scores.shape)), 0.0)
    return scores, labels, onehot, weights


@pytest.mark.parametrize("spread", [1e-5, 3e-6, 1e-6])
def test_decrement_bound_holds_exact_q_when_gram_is_nearly_singular(
    spread: float,
) -> None:
    """As the column's spread falls from 1e-5 to 1e-6, :math:`\\rho` rises from about
    0.0015 to 0.15: the bound (finite, so below the :math:`\\rho < 1/2` cut) stays at
    least the exact :math:`q` (about 0.1224 for these weights) and at most the
    acceptance.  Kills ``/ (1 - rho)`` -> ``* (1 - rho)`` (a bound 0.104 < 0.1224 at
    1e-6)."""
    scores, labels, onehot, weights = _nearly_collinear(spread)
    assert overlap_by_dual(scores, labels)
    free = np.ones(2 * scores.shape[1], dtype=bool)
    bound, _ = _separation._decrement(scores, onehot, free, weights)
    exact = float(exact_decrement(scores, labels, weights))
    assert 0.1 < exact < _separation._ACCEPT
    assert np.isfinite(bound)
    assert bound >= exact * (1.0 - 1e-9)
    assert bound <= _separation._ACCEPT


def test_decrement_refuses_a_bound_past_the_conditioning_cut() -> None:
    """Spread 3e-7: :math:`\\rho` about 1.7 (the Gram's smallest eigenvalue is below its
    rounding), so no bound is claimed (infinity), though the exact :math:`q` is still
    0.1224: the bound must not lean on an eigenvalue it cannot resolve."""
    scores, _, onehot, weights = _nearly_collinear(3e-7)
    free = np.ones(2 * scores.shape[1], dtype=bool)
    bound, _ = _separation._decrement(scores, onehot, free, weights)
    assert bound == np.inf


def test_floors_certify_probabilities_with_zeros_without_the_program(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fit's probabilities where some wrong-class entries are 0 (underflowed, as on
    rows far from their boundary): no :math:`\\lambda > 0` starts from them, so step 2's
    first try fails and the answer must come from the floored starting points
    (:data:`_separation._FLOORS`), not from the linear program, which is stubbed to fail
    here.  The data overlap by the dual program (Stiemke's oracle).  Kills ``for floor
    in _FLOORS`` -> ``for floor in ()`` (every such fit sent to the program: a minute on
    20 000 rows of 100 classes)."""
    from scipy import special

    import crossent

    from .test_vector_scaling_separation import noisy_labels

    rng = np.random.default_rng(41)
    scores = rng.normal(size=(300, 3)) * 2
    labels = noisy_labels(scores, rng)
    assert overlap_by_dual(scores, labels)
    fitted = crossent.VectorScaling().fit(scores, labels)
    probs = special.softmax(scores * fitted.scale_ + fitted.bias_, axis=1)
    wrong = labels[:, None] != np.arange(3)
    zeroed = np.where(wrong & (probs < np.quantile(probs[wrong], 0.05)), 0.0, probs)
    assert np.count_nonzero(zeroed[wrong] == 0.0) >= 10
    assert not _separation._overlap_certified(scores, labels, zeroed)

    def refuse(scores: np.ndarray, labels: np.ndarray) -> bool:
        raise AssertionError("step 3 reached: the floors of step 2 should have answered")

    monkeypatch.setattr(_separation, "_separated_by_program", refuse)
    assert not _separation.separated(scores, labels, zeroed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_column_is_left_out_of_the_certificate(seed: int) -> None:
    """Overlapping groups (``_groups``) whose third score column is constant (0.5), and
    weights spread over 300 orders of magnitude: that column's scale moves every margin
    as its bias does, so :math:`G` is singular unless the scale is left out, and the
    residual test cannot pass entries that spread.  Step 2 certifies the overlap (the
    dual program's oracle agrees).  Kills ``free`` = every column (no bound, then no
    certificate: these fits went to the linear program)."""
    scores, labels = _groups(seed, groups=14, classes=3)
    scores[:, 2] = 0.5
    assert overlap_by_dual(scores, labels)
    rng = np.random.default_rng(100 + seed)
    exponents = np.concatenate([np.zeros(4), -30.0 * np.arange(1, 11)])
    per_group = np.repeat(10.0**exponents, 3)[:, None]
    probs = per_group * (1.0 + 1e-3 * rng.uniform(-1.0, 1.0, size=scores.shape))
    assert _separation._overlap_certified(scores, labels, probs)


def _quasi_separated_by_one_margin() -> tuple[np.ndarray, np.ndarray]:
    """Two classes: tied rows ``[0, 0]`` and ``[1, 1]`` with both labels (every
    direction has :math:`\\delta w_0 = \\delta w_1`, :math:`\\delta b_0 = \\delta b_1`),
    and one row ``[1, 0]`` labelled 1, whose margin is :math:`-\\delta w_0`: the direction
    :math:`\\delta w = (-1, -1)` has every margin :math:`\\ge 0` and exactly one of 1
    (quasi-complete separation), and no direction more: the primal program's optimum
    :math:`\\max \\sum M d` subject to :math:`0 \\le M d \\le 1` is exactly 1."""
    scores = np.array([[0.0, 0.0]] * 2 + [[1.0, 1.0]] * 2 + [[1.0, 0.0]])
    labels = np.array([0, 1, 0, 1, 1])
    return scores, labels


def test_primal_program_answers_an_optimum_of_one_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dual simplex stopped undecided (stubbed: status 1, an iteration limit; HiGHS's
    presolve decides this small program even at ``maxiter=0``), so the primal program
    answers; its optimum is exactly 1 here (HiGHS: -1.0 for the minimised form), which
    the module's rule (separated above 1/2; separated data give at least 1) must answer
    separated.  Oracle: the direction :math:`\\delta w = (-1, -1)` checked by hand in
    exact arithmetic (margins 0, 0, 0, 0 and 1).  Kills the threshold 1/2 -> 3/2."""
    from types import SimpleNamespace
    from typing import Any

    from scipy import optimize

    scores, labels = _quasi_separated_by_one_margin()
    direction = np.array([-1.0, -1.0, 0.0, 0.0])
    margins = _separation._margins(scores, labels, direction)
    wrong = labels[:, None] != np.arange(2)
    assert sorted(margins[wrong].tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert not overlap_by_dual(scores, labels)

    def undecided(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(status=1)

    calls = []
    milp = optimize.milp

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return milp(*args, **kwargs)

    monkeypatch.setattr(optimize, "linprog", undecided)
    monkeypatch.setattr(optimize, "milp", counted)
    assert _separation._separated_by_program(scores, labels)
    assert calls
