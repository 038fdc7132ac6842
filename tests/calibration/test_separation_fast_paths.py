"""VectorScaling's separation check decided without the slow linear program.

Near-separated data (most labels top-ranked, a few not) used to reach the primal linear
program of :math:`n (K - 1)` rows; the overlap certificate now also starts from the
fitted probabilities raised to a floor, and step 3 solves the dual program (:math:`2K`
equality rows) by HiGHS's dual simplex.  Oracle: the dual of the library's test on the
dense margin matrix (Stiemke: the data overlap iff some :math:`\\lambda \\ge 1` has
:math:`M^T \\lambda = 0`), by :func:`scipy.optimize.linprog` (dense, zero objective,
HiGHS's own choice of method; its interior point was tried and ends in a solve error on
some of these).

The fit along directions in which the NLL is flat (binary scores ``(s, a s + c)``,
proportional columns) is the optimum nearest the identity: oracle SciPy's minimiser of
the exact NLL restricted to the identity plus the row space of the dense Jacobian.

On main (19930ea) 11 of these 17 fail: ``test_near_separated_overlap_is_certified`` (3
cases) and ``test_program_is_the_dual_simplex`` (4), the linear program being reached
and the primal one (``milp``); ``test_flat_binary_scales_are_the_nearest_fit`` (3 of 4;
``-s`` passes: L-BFGS keeps equal scales there by symmetry) and
``test_flat_direction_of_three_proportional_columns``, main's fit some 1e-5 along the
flat direction.  The others (the fallback, separated data, the property test, equal
scales for ``[-s, s]``) pin answers that did not change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

import crossent
from crossent.calibration import _separation

from .test_vector_scaling_separation import overlap_by_dual


def near_separated(n: int, classes: int, flips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, classes))
    labels = scores.argmax(axis=1)
    flipped = rng.choice(n, flips, replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, classes, flips)) % classes
    return scores, labels


def _no_program(*args: Any) -> bool:
    raise AssertionError("the linear program was reached")


@pytest.mark.parametrize(("n", "classes", "flips"), [(400, 4, 1), (2000, 10, 1), (2000, 10, 5)])
def test_near_separated_overlap_is_certified(
    monkeypatch: pytest.MonkeyPatch, n: int, classes: int, flips: int
) -> None:
    """Every label but a few top-ranked: the data overlap (the oracle), and the
    certificate says so without the linear program."""
    scores, labels = near_separated(n, classes, flips, seed=n + flips)
    assert overlap_by_dual(scores, labels)
    monkeypatch.setattr(_separation, "_separated_by_program", _no_program)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert not fitted.separated_
    assert fitted.converged_


def test_separated_data_still_reach_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floored starting points never certify separated data: labels ranked first by
    a mixed-sign vector scaling reach step 3, which says separated."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(300, 3))
    scale, bias = np.array([2.0, -1.0, 0.5]), np.array([0.3, 0.0, -0.2])
    labels = (scores * scale + bias).argmax(axis=1)
    assert not overlap_by_dual(scores, labels)
    reached = []
    program = _separation._separated_by_program

    def spy(*args: Any) -> bool:
        reached.append(True)
        return program(*args)

    monkeypatch.setattr(_separation, "_separated_by_program", spy)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert reached
    assert fitted.separated_
    assert not fitted.converged_


def _no_milp(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the primal program (milp) was called")


@pytest.mark.parametrize("seed", range(4))
def test_program_is_the_dual_simplex(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Step 3 alone on overlapping and separated data: the dual simplex answers (no
    ``milp``), as the oracle does."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(60, 4))
    if seed % 2:
        labels = (scores * rng.normal(size=4) + rng.normal(size=4)).argmax(axis=1)
    else:
        labels = scores.argmax(axis=1)
        labels[:3] = (labels[:3] + 1) % 4
    monkeypatch.setattr(optimize, "milp", _no_milp)
    assert _separation._separated_by_program(scores, labels) == (
        not overlap_by_dual(scores, labels)
    )


@pytest.mark.parametrize("separable", [False, True])
def test_undecided_dual_falls_back_to_the_primal(
    monkeypatch: pytest.MonkeyPatch, separable: bool
) -> None:
    """A dual simplex that ends otherwise than optimal or infeasible (here: an iteration
    limit, status 1) leaves the answer to the primal program."""
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(80, 3))
    labels = (scores * [2.0, -1.0, 0.5]).argmax(axis=1)
    if not separable:
        labels[:5] = (labels[:5] + 1) % 3
    expected = not overlap_by_dual(scores, labels)
    assert expected == separable
    linprog = optimize.linprog

    def limited(*args: Any, **kwargs: Any) -> Any:
        return linprog(*args, **kwargs, options={"maxiter": 0})

    monkeypatch.setattr(optimize, "linprog", limited)
    calls = []
    milp = optimize.milp

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return milp(*args, **kwargs)

    monkeypatch.setattr(optimize, "milp", counted)
    assert _separation._separated_by_program(scores, labels) == expected
    assert calls


@settings(max_examples=60, deadline=None)
@given(data=st.data(), classes=st.integers(2, 4), rows=st.integers(3, 10))
def test_program_agrees_with_the_oracle(data: st.DataObject, classes: int, rows: int) -> None:
    """Small integer scores (ties, constant columns): step 3 alone is the oracle's answer."""
    scores = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(-2, 2), min_size=classes, max_size=classes),
                min_size=rows,
                max_size=rows,
            )
        ),
        dtype=np.float64,
    )
    labels = np.array(
        data.draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows))
    )
    assert _separation._separated_by_program(scores, labels) == (
        not overlap_by_dual(scores, labels)
    )


def flat_constrained_fit(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """SciPy's minimiser of the exact NLL over ``(1, 0) + P t``: ``P`` an orthonormal
    basis of the row space of the dense map theta -> each row's centred ``w z + b``
    (SVD), i.e. the fit whose component along the flat directions is that of the
    identity; BFGS, then Newton steps with the dense per-row Hessian."""
    n, classes = scores.shape
    centre = np.eye(classes) - 1.0 / classes
    jacobian = np.concatenate(
        [centre @ np.concatenate([np.diag(row), np.eye(classes)], axis=1) for row in scores]
    )
    _, singular, right = np.linalg.svd(jacobian, full_matrices=False)
    basis = right[singular > 1e-9 * singular[0]].T
    start = np.concatenate([np.ones(classes), np.zeros(classes)])
    rows = np.arange(n)

    def value_and_gradient(t: np.ndarray) -> tuple[float, np.ndarray]:
        theta = start + basis @ t
        u = scores * theta[:classes] + theta[classes:]
        log_norm = special.logsumexp(u, axis=1)
        residual = np.exp(u - log_norm[:, None])
        residual[rows, labels] -= 1.0
        grad = np.concatenate([(residual * scores).sum(axis=0), residual.sum(axis=0)]) / n
        return float(np.mean(log_norm - u[rows, labels])), basis.T @ grad

    result = optimize.minimize(
        value_and_gradient,
        np.zeros(basis.shape[1]),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-13, "maxiter": 10_000},
    )
    t = result.x
    for _ in range(3):  # Newton steps with the dense exact Hessian: BFGS stops ~1e-10 off
        theta = start + basis @ t
        probs = special.softmax(scores * theta[:classes] + theta[classes:], axis=1)
        maps = np.concatenate(
            [
                scores[:, :, None] * np.eye(classes),
                np.broadcast_to(np.eye(classes), (n, classes, classes)),
            ],
            axis=2,
        )
        curvature = np.einsum("ik,kl->ikl", probs, np.eye(classes)) - np.einsum(
            "ik,il->ikl", probs, probs
        )
        hessian = np.einsum("ika,ikl,ilb->ab", maps, curvature, maps) / n
        t = t - np.linalg.solve(basis.T @ hessian @ basis, value_and_gradient(t)[1])
    return start + basis @ t


@pytest.mark.parametrize(
    "columns",
    [(-1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (-0.5, 3.0)],
    ids=["-s", "2s", "2s+1", "-s/2+3"],
)
def test_flat_binary_scales_are_the_nearest_fit(columns: tuple[float, float]) -> None:
    """Binary scores (s, a s + c): only a w_1 - w_0 and c w_1 + b_1 - b_0 are
    determined; the fit is the optimum nearest the identity (SciPy's, constrained)."""
    rng = np.random.default_rng(11)
    s = rng.normal(size=2000) * 2
    a, c = columns
    scores = np.stack([s, a * s + c], axis=1)
    labels = (rng.random(2000) < special.expit(0.8 * s - 0.3)).astype(int)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.converged_
    reference = flat_constrained_fit(scores, labels)
    np.testing.assert_allclose(fitted.scale_, reference[:2], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fitted.bias_, reference[2:], rtol=1e-9, atol=1e-10)


def test_flat_direction_of_three_proportional_columns() -> None:
    """Scores (s, -2 s, s / 2): u_k = w_k a_k s + b_k, flat along w_k ∝ 1 / a_k."""
    rng = np.random.default_rng(12)
    s = rng.normal(size=3000) * 1.5
    scores = np.stack([s, -2.0 * s, 0.5 * s], axis=1)
    probs = special.softmax(np.stack([0.9 * s, -0.4 * s, 0.2 * s + 0.3], axis=1), axis=1)
    labels = np.array([rng.choice(3, p=row) for row in probs])
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.converged_
    reference = flat_constrained_fit(scores, labels)
    np.testing.assert_allclose(fitted.scale_, reference[:3], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fitted.bias_, reference[3:], rtol=1e-9, atol=1e-10)


def test_opposite_logits_scales_equal() -> None:
    """Logits [-s, s]: only w_0 + w_1 matters, and the two scales are equal."""
    rng = np.random.default_rng(13)
    s = rng.normal(size=1000)
    labels = (rng.random(1000) < special.expit(1.4 * s)).astype(int)
    fitted = crossent.VectorScaling().fit(np.stack([-s, s], axis=1), labels)
    assert fitted.scale_[0] == pytest.approx(fitted.scale_[1], rel=1e-13)
