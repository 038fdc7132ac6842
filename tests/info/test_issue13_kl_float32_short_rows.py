r"""Issue 13, branch klf32c: the float32 KL of two log-probability sides (alone and in
the decomposition), unscreened, now computed a row by ``_fused_kernels._log_probs_row``
(the row kernel's passes for it without ``_row``'s entry), rows whose first and last
entries are within :math:`2^{-6}` skip the polynomial pass, and rows of 8 to 15
entries take the second pass as two blocks of 8 (``_log_probs_short``) instead of its
gathered loop over the rest.

Guards (they pass on main too: the change is one of cost, ``benchmarks/RESULTS.md``):
every value within half a float32 ulp of the exact measure of the float32 values
(mpmath, 40 digits, the oracle of ``test_issue13_kl_float32_close_pass``) on rows of
3, 8, 9, 15, 16 and 17 classes: random rows, nearly equal rows (1e-7 to 1e-2 apart),
rows whose first and last entries agree while the others do not (the pass skipped
although the first would stand), rows of a near tie (two entries swapped), ``-inf``
entries at the first and last places (on either side or both: the comparison of the
ends is false, or an infinite KL that ``_row`` takes over), a zero log-probability and
an entry below -708; unscreened and screened (``validate=True``, where ``_row`` runs
the blocks of 8), contiguous and strided.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
pytest.importorskip("mpmath")

from tests.info.test_issue13_kl_float32_close_pass import (  # (the oracle)
    HALF_ULP,
    _exact,
    _log_probs,
    _worst_ulps,
)


def _rows(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The hard rows of ``classes`` entries (see the module's docstring)."""
    rng = np.random.default_rng(7300 + classes)
    z = 3.0 * rng.standard_normal((24, classes))
    delta = np.repeat([1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2], 4)[:, None]
    near_p, near_q = _log_probs(z), _log_probs(z + delta * rng.standard_normal(z.shape))
    random_p = _log_probs(3.0 * rng.standard_normal((6, classes)))
    random_q = _log_probs(3.0 * rng.standard_normal((6, classes)))
    # the ends equal, the middle apart (the polynomial pass would stand on some)
    ends_p = _log_probs(3.0 * rng.standard_normal((4, classes)))
    ends = np.exp(ends_p[:, [0, -1]].astype(np.float64))
    middle = _log_probs(3.0 * rng.standard_normal((4, classes - 2))).astype(np.float64)
    middle += np.log1p(-ends.sum(axis=1, keepdims=True))  # the rest of the mass
    ends_q = np.concatenate([ends_p[:, :1], middle.astype(np.float32), ends_p[:, -1:]], axis=1)
    tie_p = _log_probs(1e-6 * rng.standard_normal((2, classes)))
    tie_q = tie_p.copy()
    tie_q[:, [0, 1]] = tie_q[:, [1, 0]]
    inf = np.inf
    edge_p = _log_probs(3.0 * rng.standard_normal((6, classes)))
    edge_q = _log_probs(edge_p + 1e-4 * rng.standard_normal((6, classes)))
    edge_p[0, 0] = edge_q[0, 0] = -inf  # both ends' comparisons NaN
    edge_p[1, -1] = edge_q[1, -1] = -inf
    edge_p[2, 0] = -inf  # p = 0 alone at the first entry
    edge_q[3, -1] = -inf  # q = 0 alone: an infinite KL and CE
    edge_p[4, :] = -inf  # a probability of 1
    edge_p[4, classes // 2] = 0.0
    edge_p[5, 0] = -800.0  # below -708
    p = np.concatenate([near_p, random_p, ends_p, tie_p, edge_p])
    q = np.concatenate([near_q, random_q, ends_q, tie_q, edge_q])
    return p, q


@pytest.mark.parametrize("classes", [3, 8, 9, 15, 16, 17])
def test_float32_log_probs_short_rows_rounded_once(classes: int) -> None:
    p, q = _rows(classes)
    truth = _exact(p, q)
    # screened: the rows that sum to 1 (all but the edges; _row, with the blocks of 8)
    for rows in (slice(None), slice(0, 36)):
        validate = rows.stop is not None
        options = {"p_form": "log_probs", "q_form": "log_probs", "validate": validate}
        kl = crossent.kl_divergence(p[rows], q[rows], **options)
        assert _worst_ulps(kl, truth["kl_divergence"][rows]) <= HALF_ULP, validate
        parts = crossent.cross_entropy_decomposition(p[rows], q[rows], **options)
        for name in ("entropy", "cross_entropy", "kl_divergence"):
            worst = _worst_ulps(getattr(parts, name), truth[name][rows])
            assert worst <= HALF_ULP, (name, validate)
    # strided rows (every other entry of wider ones): the kernel's loops over any layout
    wide_p, wide_q = np.repeat(p, 2, axis=1), np.repeat(q, 2, axis=1)
    options = {"p_form": "log_probs", "q_form": "log_probs", "validate": False}
    strided = crossent.kl_divergence(wide_p[:, ::2], wide_q[:, ::2], **options)
    assert _worst_ulps(strided, truth["kl_divergence"]) <= HALF_ULP
