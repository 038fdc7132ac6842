"""Mutation pass 3 over ``calibration/_separation.py`` (``tests/MUTATION.md``).

The module decides separation in three steps; steps 1 (the argmax and argmin
directions) and 2 (a positive null vector from the fit's probabilities) are the cheap
answers that keep most fits off step 3's linear program (a minute on 20 000 rows of 100
classes). The hostile tests checked only the answer, which step 3 gives too: a mutant
that disables step 1 or 2 passed them. Here the program is replaced by a stub that fails,
so each step must answer its own cases; the answers are checked against the dual linear
program of ``test_vector_scaling_separation`` (Stiemke's alternative). And rows whose
scores are all tied, where the argmax direction's margins are all 0, are not separated.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import crossent
from crossent.calibration import _separation

from .test_vector_scaling_separation import noisy_labels, overlap_by_dual


@pytest.fixture
def no_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 3 (the linear program) fails the test if it is reached."""

    def refuse(scores: np.ndarray, labels: np.ndarray) -> bool:
        raise AssertionError("step 3 reached: steps 1-2 should have answered")

    monkeypatch.setattr(_separation, "_separated_by_program", refuse)


def _uniform(scores: np.ndarray) -> np.ndarray:
    return np.full(scores.shape, 1.0 / scores.shape[1])


@pytest.mark.parametrize("scale", [1.0, 0.1])
@pytest.mark.parametrize("direction", ["top", "last"])
def test_mutation3_step_one_answers_rankings_without_the_program(
    no_program: None, scale: float, direction: str
) -> None:
    """Every label ranked first (or last), margins of any size (below 1 too): step 1
    answers "separated" (mutants: ``-top`` -> ``+top``, ``margins >= 0`` -> ``> 0`` /
    ``>= 1``, ``margins > 0`` -> ``> 1``, ``rows = None``)."""
    rng = np.random.default_rng(30)
    scores = rng.uniform(0.0, 1.0, size=(60, 3)) * scale
    labels = scores.argmax(axis=1) if direction == "top" else scores.argmin(axis=1)
    assert set(labels.tolist()) == {0, 1, 2}
    assert not overlap_by_dual(scores, labels)
    assert _separation.separated(scores, labels, _uniform(scores))
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_


def test_mutation3_a_class_never_the_label_is_separated_without_the_program(
    no_program: None,
) -> None:
    """``separated`` itself answers for a class that is never the label (the direction
    ``db_k = -1``), before any ranking (mutant: ``return False`` there)."""
    rng = np.random.default_rng(31)
    scores = rng.normal(size=(40, 3))
    labels = rng.integers(0, 2, size=40)  # class 2 never
    assert not overlap_by_dual(scores, labels)
    assert _separation.separated(scores, labels, _uniform(scores))


def test_mutation3_step_two_certifies_overlap_without_the_program(no_program: None) -> None:
    """Overlapping data: the fit's probabilities give step 2 its positive null vector,
    so the answer "not separated" comes without the program (mutants of the null
    vector's algebra, ``_transposed`` / ``_gram`` / ``_corrected``, that make the
    certificate fail). Also from a point off the optimum (scales times 0.8, biases plus
    0.1), where the least-squares correction has work to do: at the optimum the
    probabilities are a null vector already, and a wrong Gram matrix went unseen
    (mutants of ``_gram``'s diagonal)."""
    rng = np.random.default_rng(32)
    for classes in (2, 3, 5):
        scores = rng.normal(size=(300, classes)) * 2
        labels = noisy_labels(scores, rng)
        assert overlap_by_dual(scores, labels)
        fitted = crossent.VectorScaling().fit(scores, labels)
        assert not fitted.separated_
        assert fitted.converged_
        probs = special.softmax(scores * fitted.scale_ + fitted.bias_, axis=1)
        assert not _separation.separated(scores, labels, probs)
        off = special.softmax(scores * fitted.scale_ * 0.8 + fitted.bias_ + 0.1, axis=1)
        assert not _separation.separated(scores, labels, off)


@pytest.mark.parametrize("classes", [2, 3])
def test_mutation3_rows_of_ties_are_not_separated(classes: int) -> None:
    """Rows whose scores are all equal, every class a label: every margin of the
    argmax direction is 0, none positive, and the data overlap (the dual has its
    positive null vector). Mutant: ``np.any(margins >= 0.0)`` called them separated."""
    values = np.repeat([0.0, 1.5, -2.0, 0.25], classes)  # each value with every label
    scores = np.repeat(values[:, None], classes, axis=1)
    labels = np.arange(values.size) % classes
    assert overlap_by_dual(scores, labels)
    assert not _separation.separated(scores, labels, _uniform(scores))
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert not fitted.separated_


def test_mutation3_program_with_a_column_of_zeros() -> None:
    """Step 3 scales each class's scores by its largest magnitude; a class whose scores
    are all 0 keeps them (mutant 149: ``largest >= 0`` divided 0 by 0, NaN into HiGHS).
    Separated data (labels a mixed-sign vector scaling ranks first) and overlapping
    data, against the dual linear program."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(200, 3))
    scores[:, 2] = 0.0
    scale, bias = np.array([2.0, -1.0, 0.5]), np.array([0.3, 0.0, -0.2])
    labels = (scores * scale + bias).argmax(axis=1)
    assert set(labels.tolist()) == {0, 1, 2}
    assert not overlap_by_dual(scores, labels)
    assert _separation._separated_by_program(scores, labels)
    noisy = noisy_labels(scores * 2, rng)
    assert overlap_by_dual(scores, noisy)
    assert not _separation._separated_by_program(scores, noisy)
