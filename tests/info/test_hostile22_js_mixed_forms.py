"""Jensen-Shannon divergence of a side of probabilities against one of logits or
log-probabilities keeps its relative accuracy where P and Q nearly agree, as two sides
of logits already did (hostile22: the fused kernel took the logits side's rounded
probabilities, so JS of ``[0.5, 0.5]`` against the logits ``[9.7e-18, -6.5e-18]`` was 0
for 8.15e-36, and rows a relative 1e-5 apart were 2.8e-12 relative off in float64,
4.6e-6 in float32). Oracle: mpmath at 50 digits of the given values (the probabilities
as they are, the logits' exact softmax)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent
from crossent.errors import InputError

from oracles import row_probabilities

LOGITS = np.array([9.69947612414247e-18, -6.454208613874632e-18])
HALVES = np.array([0.5, 0.5])


def _js(p: list[mpmath.mpf], q: list[mpmath.mpf]) -> mpmath.mpf:
    total = mpmath.mpf(0)
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        total += (a * mpmath.log(a / m) if a else 0) + (b * mpmath.log(b / m) if b else 0)
    return total / 2


def _ulps(got: object, want: mpmath.mpf, dtype: type) -> float:
    return float(abs(mpmath.mpf(float(got)) - want) / (abs(want) * np.finfo(dtype).eps))


@pytest.mark.parametrize("base", [None, 2.0])
def test_the_found_row_against_logits_is_not_zero(base: float | None) -> None:
    with mpmath.workdps(50):
        want = _js(row_probabilities(HALVES, "probs"), row_probabilities(LOGITS, "logits"))
        if base is not None:
            want /= mpmath.log(base)
        got = crossent.js_divergence(HALVES, LOGITS, q_form="logits", base=base)
        swapped = crossent.js_divergence(LOGITS, HALVES, p_form="logits", base=base)
        assert _ulps(got, want, np.float64) <= 4
        assert _ulps(swapped, want, np.float64) <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("q_form", ["logits", "log_probs"])
def test_nearly_equal_rows_keep_their_digits(dtype: type, q_form: str) -> None:
    """Three rows (the classes along axis 0) a relative 1e-5 apart; P sums to 1 only
    within its tolerance (float32: 4.7e-8 off), which the logits' correction weighs."""
    rng = np.random.default_rng(5)
    p = rng.random((3, 6))
    p /= p.sum(axis=1, keepdims=True)
    p = p.astype(dtype)
    q = np.log(p.astype(np.float64)) + 1e-5 * rng.normal(size=p.shape)
    if q_form == "log_probs":  # normalised in float64
        q -= np.log(np.exp(q).sum(axis=1, keepdims=True))
    q = q.astype(dtype)
    got = crossent.js_divergence(p.T, q.T, q_form=q_form, axis=0)
    swapped = crossent.js_divergence(q, p, p_form=q_form)
    assert got.dtype == dtype
    with mpmath.workdps(50):
        for r in range(3):
            want = _js(row_probabilities(p[r], "probs"), row_probabilities(q[r], q_form))
            assert _ulps(got[r], want, dtype) <= 8, r
            assert _ulps(swapped[r], want, dtype) <= 8, r


@pytest.mark.parametrize(
    "p", [[0.5, 0.6], [1.5, -0.5], [0.5, np.nan]], ids=["sum", "negative", "nan"]
)
def test_probabilities_still_screened(p: list[float]) -> None:
    """Guard: the log-ratio path leaves the probability side's screen in place (a
    kernel that skipped it returned a number for these)."""
    with pytest.raises(InputError, match="p"):
        crossent.js_divergence(np.array(p), LOGITS, q_form="logits")
    with pytest.raises(InputError, match="q"):
        crossent.js_divergence(LOGITS, np.array(p), p_form="logits")
