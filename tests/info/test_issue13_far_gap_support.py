"""Hostile API pass: a probability of P that underflows is still > 0 against Q's -inf logit.

``cross_entropy(p, q)`` with ``p`` given as logits or log-probabilities: a finite entry is a
probability above 0 even where its ``exp`` underflows to 0 in float64 (``[0, -800]`` puts
``e^-800`` on class 1), so against ``q``'s ``-inf`` logit the exact value is ``+inf``
("p > 0 with q = 0"). The float64 NumPy path's far-row pass (``_far_gap_rows``) formed
such a row again from the underflowed probabilities and returned the finite remainder:
``cross_entropy([0, -800], [0, -inf], p_form='logits', q_form='logits')`` was 0.0 on
main, where the same call in float32, with ``q_form='log_probs'``, on PyTorch, and
``perplexity`` of the same rows all gave ``inf``. The ``inf`` cases fail on main; the
finite ones (a probability given as exactly 0) pass there too and pin that the fix keeps
them finite.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

_P_LOGITS = [0.0, -800.0]  # P = [1 - e^-800, e^-800]: class 1 has probability > 0
_Q_LOGITS = [0.0, -np.inf]  # Q puts probability exactly 0 on class 1


@pytest.mark.parametrize("p_form", ["logits", "log_probs"])
@pytest.mark.parametrize("shape", [(2,), (1, 2), (3, 2)])
def test_underflowed_probability_against_a_zero_is_infinite(
    p_form: str, shape: tuple[int, ...]
) -> None:
    p = np.broadcast_to(np.array(_P_LOGITS), shape).copy()
    q = np.broadcast_to(np.array(_Q_LOGITS), shape).copy()
    kwargs = {"p_form": p_form, "q_form": "logits"}
    # the same rows by the paths that were right on main: the oracle of consistency
    assert np.all(np.isinf(crossent.perplexity(p, q, **kwargs)))
    assert np.all(np.isinf(crossent.cross_entropy(p, q, p_form=p_form, q_form="log_probs")))
    assert np.all(np.isinf(crossent.cross_entropy(p.astype(np.float32), q, **kwargs)))
    for measure in (crossent.cross_entropy, crossent.kl_divergence):
        got = np.asarray(measure(p, q, **kwargs))
        assert got.shape == shape[:-1]
        assert np.all(got == np.inf), (measure.__name__, got)
    parts = crossent.cross_entropy_decomposition(p, q, **kwargs)
    assert np.all(np.asarray(parts.cross_entropy) == np.inf)
    assert np.all(np.asarray(parts.kl_divergence) == np.inf)


def test_rows_beside_an_infinite_row_keep_their_values() -> None:
    """Only the row whose support meets Q's zero becomes inf; a far-gap row next to it
    keeps its finite value (the earlier far-gap fix)."""
    p = np.array([[0.0, -800.0], [np.log(0.6), np.log(0.4)]])
    q = np.array([[0.0, -np.inf], [1.7e308, -1.7e308]])
    got = crossent.cross_entropy(p, q, p_form="log_probs", q_form="logits")
    assert got[0] == np.inf
    assert got[1] == pytest.approx(1.36e308, rel=1e-14)  # 0.4 x the gap 3.4e308


@pytest.mark.parametrize(
    ("p", "p_form"),
    [([1.0, 0.0], "probs"), ([0.0, -np.inf], "logits"), ([0.0, -np.inf], "log_probs")],
)
def test_a_probability_of_exactly_zero_stays_finite(p: list[float], p_form: str) -> None:
    """0 log 0 = 0: where P's probability is exactly 0, Q's zero costs nothing."""
    got = crossent.cross_entropy(np.array(p), np.array(_Q_LOGITS), p_form=p_form, q_form="logits")
    assert got == 0.0
    far = crossent.cross_entropy(
        np.array(p), np.array([1.7e308, -np.inf]), p_form=p_form, q_form="logits"
    )
    assert far == 0.0
