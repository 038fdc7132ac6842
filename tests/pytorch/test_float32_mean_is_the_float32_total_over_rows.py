"""A float32 PyTorch mean within range is the float32 total over the rows (mutation pass 7).

``losses._reduction._mean_past_range`` replaces the mean only where the float32 total
overflowed; elsewhere the mean keeps its bits, ``reduction='sum'`` divided by the row
count in float32. Guards the mutant that takes the float64 total's quotient everywhere
(one rounding, not two: 4.9613481 for 4.9613485 on one of these batches).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402


def test_hinge_mean_is_the_sum_over_the_rows() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        z = torch.randn(7, 5, generator=g) * 3
        y = torch.randint(0, 5, (7,), generator=g)
        mean = crossent.multiclass_hinge_loss(z, y)
        total = crossent.multiclass_hinge_loss(z, y, reduction="sum")
        assert mean.dtype == torch.float32
        assert mean.item() == (total / 7).item()
