"""Hostile API pass: a row of log-probabilities that is entirely ``-inf``, under ``-W error``.

Such a row is no distribution (its probabilities sum to 0) and validation says so by
name. On main the row check's log-sum-exp took ``log1p(-1)`` first, so NumPy's
"RuntimeWarning: divide by zero encountered in log1p" came before the message and, under
``-W error`` (CI), was raised instead of it. The 10 refusal cases fail on main; the
last test (``validate=False``'s quiet NaN) passes there too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_ROWS = {
    "one row": np.array([-np.inf, -np.inf]),
    "second row": np.array([[0.0, -np.inf], [-np.inf, -np.inf]]),
}
_HALF = np.log(np.array([0.5, 0.5]))

_CALLS: dict[str, Callable[[Any], object]] = {
    "entropy": lambda x: crossent.entropy(x, p_form="log_probs"),
    "cross_entropy p": lambda x: crossent.cross_entropy(
        x, _HALF, p_form="log_probs", q_form="log_probs"
    ),
    "kl q": lambda x: crossent.kl_divergence(_HALF, x, p_form="log_probs", q_form="log_probs"),
    "js": lambda x: crossent.js_divergence(x, _HALF, p_form="log_probs", q_form="log_probs"),
    "perplexity": lambda x: crossent.perplexity(x, p_form="log_probs"),
}


@pytest.mark.parametrize("rows", list(_ROWS))
@pytest.mark.parametrize("call", list(_CALLS))
def test_warns_not_an_all_neginf_row_but_names_it(call: str, rows: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(crossent.InputError, match=r"must sum to 1.*exp-sum 0\.0"):
            _CALLS[call](_ROWS[rows])


def test_warns_not_unvalidated_entropy_of_such_a_row() -> None:
    """``validate=False``: the row's entropy is NaN (no distribution), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.entropy(_ROWS["second row"], p_form="logits", validate=False)
    assert got[0] == 0.0
    assert np.isnan(got[1])
