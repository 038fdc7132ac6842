"""Hostile API pass 2: a far gap weighed by a probability of P that underflows.

``cross_entropy(p, q, p_form='logits', q_form='logits')`` with ``p = [0, -800]`` and
``q = [1.7e308, -1.7e308]``: :math:`p_1 = e^{-800}` underflows in float64 and
:math:`-\\log q_1 = 3.4\\cdot 10^{308}` overflows, but their product, the whole value, is
:math:`1.247\\cdot 10^{-39}`. The float64 NumPy far-row pass (``_far_gap_rows``) formed
the row again from the underflowed probabilities and returned 0.0 on main (the KL too),
and ``perplexity`` of far-gap rows skipped that pass and returned ``inf`` where the value
is about 1 (``perplexity([1, 1e-320], [1.7e308, -1.7e308], q_form='logits')``: inf on
main, :math:`e^{3.4\\cdot 10^{-12}}`). Oracle: mpmath at 60 digits from the logits.
Every test here fails on main.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent


@mpmath.workdps(60)
def _log_softmax(row: list[float]) -> list[mpmath.mpf]:
    x = [mpmath.mpf(v) for v in row]
    top = max(x)
    ell = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
    return [v - ell for v in x]


@mpmath.workdps(60)
def _measures(p_logs: list[float], q_logits: list[float], p_form: str) -> tuple[float, float]:
    """(H(P, Q), D(P || Q)) in nats, ``p_logs`` logits or log-probabilities."""
    log_p = _log_softmax(p_logs) if p_form == "logits" else [mpmath.mpf(v) for v in p_logs]
    log_q = _log_softmax(q_logits)
    cross = -mpmath.fsum(mpmath.exp(a) * b for a, b in zip(log_p, log_q, strict=True))
    kl = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))
    return float(cross), float(kl)


_ROWS = [
    ([0.0, -800.0], [1.7e308, -1.7e308]),  # the whole value is e^-800 times 3.4e308
    ([0.0, -1400.0, -900.0], [1.7e308, -1.7e308, -1.5e308]),  # two underflowed classes
    ([0.0, -745.5], [1e308, -1e308]),  # e^-745.5: the smallest subnormal, rounded
]


@pytest.mark.parametrize("p_form", ["logits", "log_probs"])
@pytest.mark.parametrize(("p", "q"), _ROWS)
def test_underflowed_probability_weighs_its_far_gap(
    p: list[float], q: list[float], p_form: str
) -> None:
    if p_form == "log_probs":  # P's rows as normalised log-probabilities
        p = [float(v) for v in _log_softmax(p)]
    cross, kl = _measures(p, q, p_form)
    assert cross > 1e-100  # the true values are far from 0
    kwargs = {"p_form": p_form, "q_form": "logits"}
    assert crossent.cross_entropy(np.array(p), np.array(q), **kwargs) == pytest.approx(
        cross, rel=1e-13
    )
    assert crossent.kl_divergence(np.array(p), np.array(q), **kwargs) == pytest.approx(
        kl, rel=1e-13
    )
    parts = crossent.cross_entropy_decomposition(np.array(p), np.array(q), **kwargs)
    assert float(parts.cross_entropy) == pytest.approx(cross, rel=1e-13)
    # e^H with H at most about 1e-15: 1 or just above, not inf
    got = crossent.perplexity(np.array(p), np.array(q), **kwargs)
    assert got == pytest.approx(float(mpmath.exp(cross)), rel=1e-15)
    # a batch, the far row beside a uniform one, in bits
    uniform = [0.0 if p_form == "logits" else -float(np.log(len(p)))] * len(p)
    batch_p, batch_q = np.array([p, uniform]), np.array([q, [0.0] * len(q)])
    got = crossent.cross_entropy(batch_p, batch_q, base=2, **kwargs)
    assert got[0] == pytest.approx(cross / np.log(2), rel=1e-13)
    assert got[1] == pytest.approx(np.log2(len(p)), rel=1e-14)


def test_perplexity_of_a_far_gap_row_is_its_cross_entropys_exp() -> None:
    """``perplexity(p, q)`` is ``exp(cross_entropy(p, q))``, also where Q's gap passes the
    float64 range: a subnormal probability of P against it (value :math:`1 + 3.4\\cdot
    10^{-12}`), and an ordinary far row (value ``inf``)."""
    q = np.array([1.7e308, -1.7e308])
    p = np.array([[1.0, 1e-320], [0.6, 0.4]])
    cross = crossent.cross_entropy(p, q, q_form="logits")
    with mpmath.workdps(40):
        truth = float(mpmath.mpf(1e-320) * (2 * mpmath.mpf(1.7e308)))  # p_1 (x_0 - x_1)
    assert cross[0] == pytest.approx(truth, rel=1e-13)
    got = crossent.perplexity(p, q, q_form="logits")
    assert got[0] == pytest.approx(float(mpmath.exp(truth)), rel=1e-15)
    assert got[1] == np.inf
    assert crossent.perplexity(p[0], q, q_form="logits") == pytest.approx(got[0], rel=0)
