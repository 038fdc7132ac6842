r"""Issue 13, branch nearrows2: ``crossent.torch.distillation_loss``'s near rows whose
softened side has a class far below its top, float64: the 2-D CPU op (its near rows by
``_near_rows_numba``) and a 3-D call (the generic path, ``NearRows`` in torch's
operations) within 3 units of :math:`2^{-53}` of mpmath (500 digits), loss and
autograd's gradient. Student logits ``[0, -300]`` beside teacher logits ``[0, -290]``
(and the roles swapped) at :math:`T = 2.32` to 2.4 were 45 to 87 units off on both
(``tests/losses/test_issue13_near_rows_quotient_pairs.py``: the NumPy paths)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mpmath")

from crossent.torch import distillation_loss  # noqa: E402
from losses.test_issue13_near_rows_quotient_pairs import (  # noqa: E402
    GRADIENT_UNITS,
    LOSS_UNITS,
    far_rows,
    truth,
    units,
)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("shape", [(1, -1), (1, -1, 1)], ids=["2-D", "3-D"])
def test_far_class_rows_torch(direction: str, shape: tuple[int, ...]) -> None:
    for z, v, t in far_rows():
        student = torch.tensor(z, dtype=torch.float64).reshape(shape).requires_grad_()
        teacher = torch.tensor(v, dtype=torch.float64).reshape(shape)
        loss = distillation_loss(student, teacher, t, "sum", direction=direction)
        loss.backward()
        want = truth(z, v, t, forward=direction == "forward")
        loss_units, grad_units = units(loss.item(), student.grad.reshape(-1).numpy(), want)
        assert loss_units <= LOSS_UNITS, (z, t, loss_units)
        assert grad_units <= GRADIENT_UNITS, (z, t, grad_units)
