"""Issue 13, "Small inputs": the small calls of ``softmax_focal_loss`` answer the hard
rows themselves, with the full path's bits.

``test_issue13_small_label_families.py`` compares every call with the full path; here
each branch of the focal arithmetic is shown to be taken by the small call (not handed
to the full path): :math:`\\log(1 - p_y)` far from and near 0 (``_focal._log1mexp``'s
two formulas), :math:`p_y = 1` exactly (the modulation 0, the ratio's limit -1),
:math:`p_y` underflowing to 0 (the ratio 0), ``gamma = 0``, an integer ``gamma`` and
``base``.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from losses.small_label_paths import assert_taken

_ROWS = {  # logits, labels, whether some log p_y is near 0 (> -ln 2)
    "far (p_y < 1/2)": ([[0.0, 1.0, 2.0, -1.0]], [0], False),
    "near (p_y > 1/2)": ([[3.0, 0.0, -1.0, 0.5]], [0], True),
    "p_y = 1/2": ([[0.0, 0.0]], [0], False),
    "p_y = 1 (saturated)": ([[800.0, 0.0, -3.0, 1.0]], [0], True),
    "log p_y a denormal": ([[40.0, 0.0, -3.0, 1.0]], [0], True),
    "p_y underflows to 0": ([[0.0, 800.0, 1.0]], [0], False),
    "-inf rival, far": ([[0.0, -np.inf, 2.0]], [0], False),
    "-inf rival, near": ([[0.0, -np.inf, 2.0]], [2], True),
    "rows far and near": ([[0.0, 1.0, 2.0], [5.0, 0.0, 0.0], [30.0, 0.0, 1.0]], [0, 0, 0], True),
}


@pytest.mark.parametrize("row", sorted(_ROWS))
@pytest.mark.parametrize(
    "options",
    [{}, {"gamma": 0.0}, {"gamma": 3}, {"gamma": 0.5, "reduction": "none", "base": 2}],
    ids=str,
)
def test_issue13_small_focal_hard_rows_are_answered_by_the_small_call(
    monkeypatch: pytest.MonkeyPatch, row: str, options: dict[str, object]
) -> None:
    rows, labels_list, near = _ROWS[row]
    logits, labels = np.array(rows), np.array(labels_list)
    loss_calls = assert_taken(
        monkeypatch, crossent.softmax_focal_loss, "focal_loss64", logits, labels, **options
    )
    assert_taken(
        monkeypatch, crossent.softmax_focal_loss_grad, "focal_gradient64", logits, labels, **options
    )
    # _log1mexp's near formula is the compiled one where some log p_y > -ln 2
    assert ("log1mexp_args64" in loss_calls) == (near and options.get("gamma", 2.0) != 0)
