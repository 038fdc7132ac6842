"""``perplexity`` past float64's range is +inf, without NumPy's overflow warning.

A cross-entropy above ``log(DBL_MAX)`` = 709.78 nats has no finite perplexity; the
answer is +inf. Before, NumPy's "overflow encountered in exp" was emitted on the way,
and under ``-W error`` (as in this suite's strict runs, and many users' CI) it was
raised instead of the answer (found by the hostile pass over the API, issue 13).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("q_form", ["log_probs", "logits"])
def test_perplexity_past_the_range_is_inf_without_a_warning(dtype: type, q_form: str) -> None:
    p = np.array([[0.5, 0.5], [1.0, 0.0]], dtype=dtype)
    half = np.log(0.5)
    q = np.array([[0.0, -1600.0], [half, half]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.perplexity(p, q, q_form=q_form)
    assert got[0] == np.inf
    # the second row, Q uniform in either form: H(P, Q) = log 2, perplexity 2
    assert got[1] == pytest.approx(2.0, rel=1e-6)


def test_entropy_perplexity_in_range_is_unchanged() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(crossent.perplexity([1, 0, 0], [1 / 3, 1 / 3, 1 / 3])) == pytest.approx(3.0)
        assert float(crossent.perplexity([0.25] * 4)) == pytest.approx(4.0)
