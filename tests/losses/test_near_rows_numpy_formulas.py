"""Mutation pass (branch ``mutation4``) over ``losses/_near_rows.py``'s NumPy formulas.

``test_distillation_extreme_teachers`` checks NumPy rows (formed by the compiled twin,
``_near_rows_numba``) and ``crossent.torch``; in neither does ``NearRows.gradient``'s
array-API form run for the classes whose teacher weight is 0 (teacher logits
:math:`\\pm 10^{308}`): the mutants ``T(s' - t) - T Q_B s'`` -> ``+`` and ``T s`` where
:math:`t_c = 0` -> 0 passed.  Here ``NearRows`` is given the softened rows (as the
PyTorch and JAX callers give them), which selects those formulas for NumPy, and checked
against the same mpmath oracle (60 digits).
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.losses._far_gaps import tempered_log_softmax64
from crossent.losses._near_rows import NearRows

from .test_distillation_extreme_teachers import CASES, IDS, _close, _oracle


@pytest.mark.parametrize(("z", "v", "temperature", "direction"), CASES, ids=IDS)
def test_near_rows_array_api_formulas_match_mpmath(z, v, temperature, direction):
    loss, gz, _ = _oracle(z, v, temperature, direction)
    zs, vs = np.array([z]), np.array([v])
    log_s = tempered_log_softmax64(zs, temperature)[2]
    log_t = tempered_log_softmax64(vs, temperature)[2]
    rows = NearRows(zs, vs, temperature, np, log_s, log_t)
    forward = direction == "forward"
    assert _close(rows.loss(forward=forward), [loss]), (rows.loss(forward=forward), loss)
    got = rows.gradient(forward=forward)
    assert _close(got, [gz]), (got, gz)
