"""Hostile API pass: a row of log-probabilities that is entirely ``-inf``, under ``-W error``.

Such a row is no distribution (its probabilities sum to 0) and validation says so by
name. On main the row check's log-sum-exp took ``log1p(-1)`` first, so NumPy's
"RuntimeWarning: divide by zero encountered in log1p" came before the message and, under
``-W error`` (CI), was raised instead of it, on NumPy and on array-api-strict (which
computes with NumPy). The 15 refusal cases fail on main; ``validate=False``'s quiet NaN
passes there too.
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

_LP = {"p_form": "log_probs", "q_form": "log_probs"}
_CALLS: dict[str, Callable[[Any, Any], object]] = {
    "entropy": lambda x, half: crossent.entropy(x, p_form="log_probs"),
    "cross_entropy p": lambda x, half: crossent.cross_entropy(x, half, **_LP),
    "kl q": lambda x, half: crossent.kl_divergence(half, x, **_LP),
    "js": lambda x, half: crossent.js_divergence(x, half, **_LP),
    "perplexity": lambda x, half: crossent.perplexity(x, p_form="log_probs"),
}


@pytest.mark.parametrize("rows", list(_ROWS))
@pytest.mark.parametrize("call", list(_CALLS))
def test_warns_not_an_all_neginf_row_but_names_it(call: str, rows: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(crossent.InputError, match=r"must sum to 1.*exp-sum 0\.0"):
            _CALLS[call](_ROWS[rows], _HALF)


def test_warns_not_unvalidated_entropy_of_such_a_row() -> None:
    """``validate=False``: the row's entropy is NaN (no distribution), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.entropy(_ROWS["second row"], p_form="logits", validate=False)
    assert got[0] == 0.0
    assert np.isnan(got[1])


@pytest.mark.parametrize("call", list(_CALLS))
def test_warns_not_on_array_api_strict(call: str) -> None:
    """array-api-strict computes with NumPy: the same warning on the generic path (fails
    on main)."""
    xp = pytest.importorskip("array_api_strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(crossent.InputError, match=r"must sum to 1"):
            _CALLS[call](xp.asarray(_ROWS["second row"]), xp.asarray(_HALF))
