r"""Issue 13 follow-up (review): a near row must not poison the gradient of its batch.

The generic path forms the rows whose teacher and student nearly agree by
``losses._near_rows`` in the tensors' own operations, on every row, then picks the
flagged ones with ``where``. Autograd sends the other rows a zero through ``where``,
times the derivative of ``_near_rows``' forms on them: where that is not finite (an
``exp`` of an ordinary row's large gap, 100 at :math:`T = 1` in float32) the product
is NaN. At a228ef3..540dca7 the student's and teacher's gradients of such a row were
NaN whenever one other row of the batch was flagged, though the row alone was exact.

Oracle: masked equals sliced, each row's gradient of the batch's sum is that row's
gradient alone (where no row is flagged, the common path's autograd), and the flagged
row's gradient is NumPy's float64 ``distillation_loss_grad``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
import crossent.torch  # noqa: E402

NEAR = ([0.3, 0.301, 0.3], [0.3, 0.3, 0.3])  # flagged: KL near 1e-7, s - t near 1e-4
FAR = [
    ([0.0, 50.0, -50.0], [0.0, -50.0, 50.0]),  # float32's exp overflows
    ([0.0, 800.0, 0.0], [0.0, -800.0, 5.0]),  # float64's
    ([0.0, -3e38, 0.0], [0.0, 3e38, 3.0]),  # a gap past float32's range
]


def _gradients(rows, dtype, direction, public):
    z = torch.tensor([r[0] for r in rows], dtype=dtype, requires_grad=True)
    v = torch.tensor([r[1] for r in rows], dtype=dtype, requires_grad=True)
    if public:
        loss = crossent.torch.distillation_loss(z, v, temperature=1.0, reduction="sum")
    else:
        loss = crossent.distillation_loss(
            z, v, axis=1, temperature=1.0, direction=direction, reduction="sum"
        )
    loss.backward()
    return z.grad, v.grad


@pytest.mark.parametrize("far", FAR)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("direction", "public"), [("forward", False), ("reverse", False), ("forward", True)]
)
def test_a_near_row_leaves_the_other_rows_gradients(far, dtype, direction, public) -> None:
    batch = _gradients([NEAR, far], dtype, direction, public)
    alone = _gradients([far], dtype, direction, public)
    for got, want in zip(batch, alone, strict=True):
        assert torch.isfinite(got).all(), (got, want)
        torch.testing.assert_close(got[1:], want, rtol=0, atol=0)
    z64, v64 = np.array([NEAR[0]], dtype=np.float64), np.array([NEAR[1]], dtype=np.float64)
    if dtype == torch.float64:
        want = crossent.distillation_loss_grad(z64, v64, direction=direction, reduction="sum")
        np.testing.assert_allclose(batch[0][0].numpy(), want[0], rtol=1e-9, atol=0)
