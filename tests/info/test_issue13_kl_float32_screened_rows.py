r"""Issue 13, branch klf32d: the float32 KL of two log-probability sides (alone and in
the decomposition) screened (``validate=True``, the API's default) is computed a row by
``_fused_kernels._log_probs_row``, whose screen of each side is one pass
(``_log_probs_masses``: :math:`\sum_i e^{x_i}` and the positive entries) where ``_row``
took the row with two passes a side for its log-partition; rows of 3 to 7 entries take
the second pass as one block of 8, the index clamped (``_log_probs_padded``), where
``_log_probs_sums`` read them in its gathered loop over the rest.

Guards (they pass on main too: the changes are of cost, ``benchmarks/RESULTS.md``):
screened and unscreened rows of 3 to 9 and 16 classes (random, nearly equal 1e-7 to 1e-2
apart, ends equal, near ties, huge spreads, zeros) within half a float32 ulp of the
exact measures of the float32 values (mpmath, 40 digits); the screen refuses what the
validation refuses (an exp-sum off by twice the tolerance either way, a positive entry,
NaN, ``+inf``, a row of ``-inf``) on a row among valid ones, on either side, and lets
rows at half the tolerance pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent._checks import _numpy_row_sum_tolerance
from crossent.errors import InputError

pytest.importorskip("numba")
pytest.importorskip("mpmath")

from tests.info.test_issue13_kl_float32_close_pass import (  # (the oracle)
    HALF_ULP,
    _exact,
    _log_probs,
    _worst_ulps,
)
from tests.info.test_issue13_kl_float32_short_rows import _rows

SCREENED = {"p_form": "log_probs", "q_form": "log_probs", "validate": True}


def _valid_rows(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The short rows' test's rows that pass validation (its first 36: nearly equal,
    random, ends equal, near ties) and rows of a huge spread, nearly equal and not."""
    p, q = _rows(classes)
    rng = np.random.default_rng(7400 + classes)
    z = 30.0 * rng.standard_normal((6, classes))
    spread_p = _log_probs(z)
    spread_q = _log_probs(
        np.concatenate([z[:3] + 1e-5 * rng.standard_normal((3, classes)), z[3:] + 1.0])
    )
    return np.concatenate([p[:36], spread_p]), np.concatenate([q[:36], spread_q])


@pytest.mark.parametrize("classes", [3, 4, 5, 6, 7, 9, 16])
def test_float32_log_probs_rows_rounded_once_screened_or_not(classes: int) -> None:
    p, q = _valid_rows(classes)
    truth = _exact(p, q)
    for validate in (True, False):
        options = {**SCREENED, "validate": validate}
        kl = crossent.kl_divergence(p, q, **options)
        assert _worst_ulps(kl, truth["kl_divergence"]) <= HALF_ULP, validate
        parts = crossent.cross_entropy_decomposition(p, q, **options)
        for name in ("entropy", "cross_entropy", "kl_divergence"):
            worst = _worst_ulps(getattr(parts, name), truth[name])
            assert worst <= HALF_ULP, (name, validate)
    # rows of 3 to 7 entries with zeros (the padded block's clamped entries are the last
    # one read again, counted as 0): unscreened, as these rows are not all valid
    if classes < 8:
        edge_p, edge_q = _rows(classes)
        truth = _exact(edge_p, edge_q)
        options = {**SCREENED, "validate": False}
        parts = crossent.cross_entropy_decomposition(edge_p, edge_q, **options)
        for name in ("entropy", "cross_entropy", "kl_divergence"):
            assert _worst_ulps(getattr(parts, name), truth[name]) <= HALF_ULP, name


@pytest.mark.parametrize("classes", [2, 5, 9, 16])
def test_float32_log_probs_screen_refuses_what_validation_refuses(classes: int) -> None:
    rng = np.random.default_rng(7410 + classes)
    p = _log_probs(3.0 * rng.standard_normal((8, classes)))
    q = _log_probs(p + 1e-4 * rng.standard_normal((8, classes)))
    tolerance = _numpy_row_sum_tolerance(np.dtype(np.float32), classes)
    # rows off by half the tolerance pass (shifted in float64, then rounded)
    inside = p.copy()
    inside[2] = (p[2].astype(np.float64) + np.log1p(0.5 * tolerance)).astype(np.float32)
    inside[5] = (p[5].astype(np.float64) + np.log1p(-0.5 * tolerance)).astype(np.float32)
    for measure in (crossent.kl_divergence, crossent.cross_entropy_decomposition):
        measure(inside, q, **SCREENED)
        measure(q, inside, **SCREENED)
    bad_rows = []
    for factor in (2.0, -2.0):
        off = p.copy()
        off[3] = (p[3].astype(np.float64) + np.log1p(factor * tolerance)).astype(np.float32)
        bad_rows.append(off)
    for value in (np.float32(1e-3), np.nan, np.inf):
        bad = p.copy()
        bad[4, classes - 1] = value
        bad_rows.append(bad)
    dead = p.copy()
    dead[6] = -np.inf
    bad_rows.append(dead)
    for bad in bad_rows:
        for measure in (crossent.kl_divergence, crossent.cross_entropy_decomposition):
            with pytest.raises(InputError):
                measure(bad, q, **SCREENED)
            with pytest.raises(InputError):
                measure(q, bad, **SCREENED)
