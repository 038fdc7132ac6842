"""Issue 13, "Small inputs": the small calls of ``multiclass_hinge_loss`` answer float32
and float64 calls themselves, with the full path's bits: margins at the kink (0, where
the subgradient is 0), tied rivals (Crammer-Singer pulls the first), every rival
``-inf`` (the target's ``-0.0``), a float32 margin that rounds, and Weston-Watkins sums
in NumPy's pairwise order (8 to 128 classes); more than 128 classes of Weston-Watkins
go to the full path.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from losses.small_label_paths import (
    assert_taken,
    full_path_outcome,
    outcome,
    random_cases,
    spy_compiled,
)

_ROWS = {
    "at the kink": ([[1.0, 0.0, 0.0, 1.0]], [0], {}),
    "tied rivals": ([[0.0, 2.0, 2.0, 2.0]], [0], {}),
    "every rival -inf": ([[0.0, -np.inf, -np.inf]], [0], {}),
    "satisfied": ([[5.0, 0.0, 1.0]], [0], {}),
    "a margin that rounds in float32": ([[0.1, 0.3, 0.7]], [1], {"margin": 0.1}),
    "wide rows": (np.random.default_rng(1).standard_normal((3, 100)), [0, 50, 99], {}),
}


@pytest.mark.parametrize("row", sorted(_ROWS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "parts"])
def test_issue13_small_hinge_rows_are_answered_by_the_small_call(
    monkeypatch: pytest.MonkeyPatch, row: str, dtype: type, variant: str, reduction: str
) -> None:
    logits, labels, options = _ROWS[row]
    z, y = np.asarray(logits, dtype=dtype), np.asarray(labels)
    kw = {"variant": variant, "reduction": reduction, **options}
    assert_taken(monkeypatch, crossent.multiclass_hinge_loss, "hinge_loss", z, y, **kw)
    assert_taken(monkeypatch, crossent.multiclass_hinge_loss_grad, "hinge_gradient", z, y, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue13_small_hinge_weston_watkins_beyond_128_classes_is_the_full_paths(
    monkeypatch: pytest.MonkeyPatch, dtype: type
) -> None:
    """One block of NumPy's pairwise sum is what the compiled row sum repeats."""
    (_, logits, labels), *_ = (c for c in random_cases(dtype, 8) if c[1].shape[-1] == 130)
    calls = spy_compiled(monkeypatch)
    call = lambda: crossent.multiclass_hinge_loss(logits, labels, variant="weston_watkins")  # noqa: E731
    assert outcome(call) == full_path_outcome(monkeypatch, call)
    assert "hinge_loss" not in calls
    assert_taken(monkeypatch, crossent.multiclass_hinge_loss, "hinge_loss", logits, labels)
