r"""Issue 13 follow-up (review): the options of a call whose :math:`T^2` leaves the work
dtype's range (``torch._far_distillation``, the whole call on the host path).

* A NumPy ``float32`` temperature is a real number like a Python float: at a228ef3..
  540dca7 only ``float``/``int`` were checked, so ``np.float32(1e20)`` on float32 logits
  stayed on the common path, whose :math:`T^2` is ``inf`` in float32: NaN gradients.
* An unknown ``reduction`` is an error there as on the common path: the host path
  called NumPy with ``'none'`` and summed the rows for any other word.

Oracle: NumPy's float64 ``distillation_loss_grad`` (the host path's formula, not
crossent.torch's routing) at the same temperature.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from crossent.torch import distillation_loss  # noqa: E402

STUDENT = [[1.0, 0.2, -0.5], [0.7, -0.3, 2.0]]
TEACHER = [[0.3, -0.4, 0.9], [0.1, 0.4, -1.0]]


@pytest.mark.parametrize("temperature", [np.float32(1e20), np.float32(1e-20)])
def test_numpy_float32_temperature_far(temperature) -> None:
    z = torch.tensor(STUDENT, dtype=torch.float32, requires_grad=True)
    v = torch.tensor(TEACHER, dtype=torch.float32)
    distillation_loss(z, v, temperature=temperature).backward()
    want = crossent.distillation_loss_grad(
        np.array(STUDENT, dtype=np.float32).astype(np.float64),
        np.array(TEACHER, dtype=np.float32).astype(np.float64),
        temperature=float(temperature),
    )
    assert torch.isfinite(z.grad).all(), z.grad
    np.testing.assert_allclose(z.grad.numpy(), want, rtol=2e-7, atol=1e-30)


@pytest.mark.parametrize("temperature", [2.0, 1e200])
def test_unknown_reduction_is_an_error(temperature) -> None:
    z = torch.tensor(STUDENT, dtype=torch.float64)
    with pytest.raises(InputError, match="reduction"):
        distillation_loss(z, z, temperature=temperature, reduction="batchmean")
