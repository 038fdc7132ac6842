"""Hostile pass: with ``validate=False`` a NaN in either side, or a row of logits that
is entirely ``-inf`` (no softmax), makes the measure NaN, on every backend and form.

On main (afc1e53): ``kl_divergence([nan, 0], [0, 0], p_form=q_form='logits',
validate=False)`` was 1.0 (the NaN read as a zero probability), ``js_divergence`` 0.0
for a NaN probability or an all ``-inf`` row of logits, the generic path's KL 0.0 or
``inf`` for a NaN probability (its log read as ``-inf``). Fails on main for each measure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent

_FORMS = ("logits", "log_probs", "probs")
_MEASURES = (crossent.kl_divergence, crossent.cross_entropy, crossent.js_divergence)


def _row(form: str, *, nan: bool) -> list[float]:
    value = {"logits": 0.0, "log_probs": math.log(0.5), "probs": 0.5}[form]
    return [math.nan if nan else value, value]


@pytest.mark.parametrize("measure", _MEASURES, ids=lambda f: f.__name__)
def test_a_nan_in_either_side_makes_the_measure_nan(backend: Any, measure: Any) -> None:
    for p_form in _FORMS:
        for q_form in _FORMS:
            for nan_in_p in (True, False):
                p = backend.asarray(np.array([_row(p_form, nan=nan_in_p)]))
                q = backend.asarray(np.array([_row(q_form, nan=not nan_in_p)]))
                got = measure(p, q, p_form=p_form, q_form=q_form, validate=False)
                assert np.isnan(backend.to_numpy(got)).all(), (p_form, q_form, nan_in_p)


@pytest.mark.parametrize("measure", _MEASURES, ids=lambda f: f.__name__)
def test_a_row_of_logits_all_minus_inf_makes_the_measure_nan(backend: Any, measure: Any) -> None:
    dead, live = np.array([[-np.inf, -np.inf]]), np.array([[0.0, 1.0]])
    for p, q in ((dead, live), (live, dead)):
        got = measure(
            backend.asarray(p), backend.asarray(q), p_form="logits", q_form="logits", validate=False
        )
        assert np.isnan(backend.to_numpy(got)).all()
