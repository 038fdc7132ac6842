r"""Issue 13, stop 75, branch review75: what the float32 log-probability screen of
branch klf32d (``_fused_kernels._log_probs_suspects``, the KL of two float32
log-probability sides in ``_log_probs_row``) must refuse that its test
(``test_issue13_kl_float32_screened_rows``) did not isolate.

1. A positive entry (a probability above 1) whose row's exp-sum is within the row-sum
   tolerance: :math:`(2\cdot 10^{-6}, -40, \dots, -40)` sums to :math:`1 + 2\cdot
   10^{-6}` (the float32 tolerance is 6e-5 and more). That test's positive entry, 1e-3
   in place of one of the row's, also moved the exp-sum far past the tolerance. Such a
   row never reaches ``_log_probs_suspects`` (the passes count the entry as odd and
   leave the row to ``_row``, whose screen refuses it by the largest entry); klf32d's
   count of positive entries there never decided (deleted, this file and that test
   pass), and branch review75 removed it: this pins the refusal, whichever screen sees
   the row.
2. A NaN in Q where :math:`p_i = 0` (:math:`\log p_i = -\infty`): its term is 0, the
   passes stand, the row is written by ``_log_probs_row``, and only the screen's NaN
   exp-sum refuses it: the NaN takes the place of an entry of -40, so the rest of the
   row sums to 1 within 1e-16 (a NaN counted as 0, as an entry below -708 is, the
   screen let the row through: that test passed, this one fails). That test's NaN was
   at an entry where :math:`p_i > 0` (the KL NaN: the row went to ``_row``).

Guards: they pass on main; the validation names the argument, the value and the index.
Mutations (the line each guards, changed on a copy of the tree): ``_suspect``'s
``m <= 0.0`` deleted fails 1; ``_log_probs_masses`` adding 0 for a NaN fails 2.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError

pytest.importorskip("numba")

SCREENED = {"p_form": "log_probs", "q_form": "log_probs", "validate": True}
MEASURES = (crossent.kl_divergence, crossent.cross_entropy_decomposition)


def _rows(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Four valid float32 log-probability rows, nearly one-hot, and four uniform ones."""
    peaked = np.full((4, classes), -40.0, dtype=np.float32)
    peaked[:, 0] = 0.0
    return peaked, np.full((4, classes), -np.log(classes), dtype=np.float32)


@pytest.mark.parametrize("classes", [2, 5, 9, 16])
def test_float32_log_probs_screen_refuses_a_positive_entry_alone(classes: int) -> None:
    peaked, uniform = _rows(classes)
    bad = peaked.copy()
    bad[2, 0] = np.float32(2e-6)  # e^x sums to 1 + 2e-6: only the sign is wrong
    for measure in MEASURES:
        measure(peaked, uniform, **SCREENED)  # the rows around it pass
        for name, pair in (("p", (bad, uniform)), ("q", (uniform, bad))):
            with pytest.raises(InputError, match=rf"`{name}` .*at most 0.*\(2, 0\)"):
                measure(*pair, **SCREENED)


@pytest.mark.parametrize("classes", [2, 5, 9, 16])
def test_float32_log_probs_screen_refuses_nan_in_q_where_p_is_zero(classes: int) -> None:
    peaked, _ = _rows(classes)
    p = peaked.copy()
    p[:, 1] = -np.inf  # p_1 = 0 in every row
    q = peaked.copy()
    q[3, 1] = np.nan  # in place of -40: the rest of the row sums to 1 within 1e-16
    for measure in MEASURES:
        measure(p, peaked, **SCREENED)
        with pytest.raises(InputError, match=r"`q` .*(?i:nan).*\(3, 1\)"):
            measure(p, q, **SCREENED)
