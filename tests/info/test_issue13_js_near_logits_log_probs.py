"""Jensen-Shannon divergence of float64 logits against log-probabilities of nearly the
same distribution on the fused kernel (issue 13, branch jsmixed3).

Where every log-ratio is within :math:`2^{24}` times the log-partition's error bound, the
kernel now takes the logits' exact log-partition (an exact extraction sum of
double-double exponentials) and one pass of series terms, in place of a first pass, the
log-probabilities' triple-double excess and a second pass (2.3x stop 67's time). That
pass also takes the logits' probabilities from the exact log-partition: main's second
pass corrected only the log-ratios, its probabilities stayed off by the rounded
log-partition's factor :math:`e^{\\gamma}` (up to 3 ulps on rows N(0, 3); now within 0.7).

Found on the way: every pass formed the log-ratio from the rounded :math:`h_a - h_b`
(:math:`h = x - m`), whose rounding (up to :math:`2^{-52}` where :math:`|h_b| <
|h_a - h_b|/2`) is as large as a log-ratio of 1e-12: JS of logits N(0, 1) 1e-12 apart
and log-probabilities was 7e-5 relative off (3e11 ulps), 1e-3 apart 110 ulps.
Oracle: mpmath at 80 digits of the given values (the logits' exact softmax, the
log-probabilities' exact exponentials, not renormalised).
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

import crossent
import crossent.info._fused as fused

from oracles import row_probabilities

pytestmark = pytest.mark.skipif(not fused.available(), reason="needs Numba")

ULPS = 1.5


@functools.cache
def _rows(noise: float, scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Three rows of 1000 logits N(0, scale) (noise added, or none) and the rounded
    log-softmax of the logits without noise."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((3, 1000)) * scale
    shifted = z - z.max(axis=-1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return z + noise * rng.standard_normal(z.shape), log_q


@functools.cache
def _oracle(noise: float, scale: float = 3.0) -> tuple[mpmath.mpf, ...]:
    logits, log_q = _rows(noise, scale)
    out = []
    with mpmath.workdps(80):
        for r in range(logits.shape[0]):
            p = row_probabilities(logits[r], "logits")
            q = row_probabilities(log_q[r], "log_probs")
            total = mpmath.fsum(
                a * mpmath.log(2 * a / (a + b)) + b * mpmath.log(2 * b / (a + b))
                for a, b in zip(p, q, strict=True)
            )
            out.append(total / 2)
    return tuple(out)


def _ulps(got: np.ndarray, want: tuple[mpmath.mpf, ...]) -> list[float]:
    eps = np.finfo(np.float64).eps
    return [
        float(abs(mpmath.mpf(float(v)) - w) / (w * eps)) for v, w in zip(got, want, strict=True)
    ]


@pytest.mark.parametrize(
    ("noise", "scale"), [(0.0, 3.0), (1e-12, 3.0), (1e-12, 1.0), (1e-7, 1.0), (1e-3, 1.0)]
)
@pytest.mark.parametrize("logits_first", [True, False])
def test_nearly_equal_rows_within_an_ulp(noise: float, scale: float, logits_first: bool) -> None:
    """Both orders (the shift's sign), rows of one distribution (log-ratios of about
    u) to rows 1e-3 apart (past the near pass: the first pass and its correction, with
    the exact log-ratios); main: up to 2.98 ulps on rows N(0, 3) (the logits'
    probabilities off by the rounded log-partition's factor), on rows N(0, 1) 1e-12
    apart 7e-5 relative, 1e-3 apart 110 ulps (the rounded h_a - h_b)."""
    logits, log_q = _rows(noise, scale)
    if logits_first:
        got = crossent.js_divergence(logits, log_q, p_form="logits", q_form="log_probs")
    else:
        got = crossent.js_divergence(log_q, logits, p_form="log_probs", q_form="logits")
    # (rows 1e-3 apart: the first pass's sum stands, its shift not corrected, within
    # the bound's 2^-49 of it; its scale corrected for the log-partition's rounding
    # since jsexact4: 3.2 ulps there before)
    assert max(_ulps(np.asarray(got), _oracle(noise, scale))) <= ULPS


def test_a_positive_log_probability() -> None:
    """Guard (passes on main): a row with a positive log-probability (within
    validation's tolerance: the near pass leaves it to the first pass)."""
    row = np.array([0.0, -40.0, -41.0])
    y = row - np.log(np.exp(row).sum())
    y[0] = 1e-18  # a positive log-probability, 1e-18 from its true 0
    got_one = crossent.js_divergence(row, y, p_form="logits", q_form="log_probs", validate=False)
    with mpmath.workdps(80):
        p = row_probabilities(row, "logits")
        q = row_probabilities(y, "log_probs")
        want = mpmath.fsum(
            a * mpmath.log(2 * a / (a + b)) + b * mpmath.log(2 * b / (a + b))
            for a, b in zip(p, q, strict=True)
        )
    assert float(got_one) == pytest.approx(float(want / 2), rel=1e-6)
