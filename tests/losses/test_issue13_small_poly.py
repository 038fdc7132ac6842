"""Issue 13, "Small inputs": the small calls of ``poly1_cross_entropy`` answer the hard
rows themselves, with the full path's bits: :math:`p_y` near 1 (where
:math:`1 - p_y` is ``-expm1(log p_y)``), :math:`p_y = 1` and :math:`p_y = 0`, ties and
``-inf`` rivals, every ``epsilon`` the option allows.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from losses.small_label_paths import assert_taken

_ROWS = {
    "p_y near 1": ([[40.0, 0.0, -3.0, 1.0]], [0]),
    "p_y = 1": ([[800.0, 0.0, -3.0, 1.0]], [0]),
    "p_y underflows to 0": ([[0.0, 800.0, 1.0]], [0]),
    "ties": ([[1.0, 1.0, 1.0], [2.0, 2.0, -1.0]], [2, 0]),
    "-inf rival": ([[0.0, -np.inf, 2.0]], [0]),
}


@pytest.mark.parametrize("row", sorted(_ROWS))
@pytest.mark.parametrize(
    "options",
    [{}, {"epsilon": -1.0}, {"epsilon": 0}, {"epsilon": 2.5, "reduction": "none"}],
    ids=str,
)
def test_issue13_small_poly_hard_rows_are_answered_by_the_small_call(
    monkeypatch: pytest.MonkeyPatch, row: str, options: dict[str, object]
) -> None:
    logits, labels = np.array(_ROWS[row][0]), np.array(_ROWS[row][1])
    assert_taken(
        monkeypatch, crossent.poly1_cross_entropy, "poly_loss64", logits, labels, **options
    )
    assert_taken(
        monkeypatch, crossent.poly1_cross_entropy_grad, "poly_gradient64", logits, labels, **options
    )
