"""Issue 14, the renormalize contract on the scoring rules: ``renormalize=True`` (keyword
only, never the default, probabilities only) on ``negative_log_likelihood``,
``brier_score``, ``spherical_score`` and ``accuracy``, as ``calibration_error`` has it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import crossent

SCORES = (
    crossent.negative_log_likelihood,
    crossent.brier_score,
    crossent.spherical_score,
    crossent.accuracy,
    crossent.calibration_error,
)


def _off_by(rows: int, classes: int, deviation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows whose sums are 1 + deviation or 1 - deviation, alternately."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(classes), size=rows)
    sign = np.where(np.arange(rows) % 2 == 0, 1.0, -1.0)[:, None]
    off = (probs * (1 + sign * deviation)).astype(np.float32)
    return off, rng.integers(0, classes, size=rows)


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
def test_issue14_renormalize_is_keyword_only_and_off_by_default(score) -> None:
    parameter = inspect.signature(score).parameters["renormalize"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default is False
    assert "renormalize" in (score.__doc__ or "")


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
def test_issue14_renormalize_equals_explicit_renormalisation(score) -> None:
    probs, labels = _off_by(400, 9, 1e-3, seed=3)
    explicit = probs.astype(np.float64)
    explicit /= explicit.sum(axis=1, keepdims=True)
    got, want = score(probs, labels, renormalize=True), score(explicit, labels)
    assert float(got) == pytest.approx(float(want), rel=1e-6, abs=1e-7)
    if score is not crossent.calibration_error:
        rows = score(probs, labels, renormalize=True, reduction="none")
        np.testing.assert_allclose(
            rows, score(explicit, labels, reduction="none"), rtol=1e-6, atol=1e-7
        )


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
def test_issue14_rows_off_by_1e3_are_rejected_without_renormalize(score) -> None:
    probs, labels = _off_by(50, 9, 1e-3, seed=4)
    with pytest.raises(crossent.InputError, match="renormalize=True"):
        score(probs, labels)
    with pytest.raises(crossent.InputError, match="renormalize=True"):
        score(probs, labels, renormalize=False)
    score(probs, labels, renormalize=True)  # accepted once asked for


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("form", ["log_probs", "logits"])
def test_issue14_renormalize_is_refused_for_other_forms(score, form: str) -> None:
    probs, labels = _off_by(20, 4, 0.0, seed=5)
    with pytest.raises(crossent.InputError, match=f"renormalize=True.*form='{form}'"):
        score(np.log(probs), labels, form=form, renormalize=True)


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
def test_issue14_renormalize_must_be_a_bool(score) -> None:
    with pytest.raises(crossent.InputTypeError, match="`renormalize` must be True or False"):
        score([[0.5, 0.5]], [0], renormalize=1)


@pytest.mark.parametrize("score", SCORES, ids=lambda f: f.__name__)
def test_issue14_renormalize_still_refuses_rows_summing_to_zero(score) -> None:
    with pytest.raises(crossent.InputError, match="row 1 sums to 0"):
        score([[0.5, 0.5], [0.0, 0.0]], [0, 1], renormalize=True)
