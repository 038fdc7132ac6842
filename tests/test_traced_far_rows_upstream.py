"""Mutation pass (branch ``mutation4``) over ``_traced_far_rows``.

The NaN that refuses a far row's gradient under ``torch.func.grad`` is meant only where
the row's upstream gradient is not 0 (module docstring): a far row that the caller masks
out of the objective contributes exactly 0, and the other rows keep their gradient.
``test_issue13_traced_far_rows`` summed every row, so the mutant ``hit = far & (upstream
!= 0)`` -> ``hit = far`` (NaN at a zero upstream too) passed.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

STUDENT = np.array([[1e210, 0.0], [0.1, 0.2]])  # row 0 far at T = 1e-100
TEACHER = np.array([[0.0, 1e210], [0.3, 0.1]])
TINY = 1e-100


def _masked_objective(z, teacher):
    rows = crossent.distillation_loss(
        z, teacher, temperature=TINY, direction="forward", reduction="none", validate=False
    )
    keep = torch.tensor([False, True])
    return torch.where(keep, rows, torch.zeros_like(rows)).sum()


def test_far_row_masked_out_has_zero_gradient_under_torch_func() -> None:
    """Row 0 (far) masked out: its gradient is exactly 0, not NaN; row 1's is the
    truth :math:`T(s - t)` with :math:`s = [0, 1]`, :math:`t = [1, 0]` at :math:`T =
    10^{-100}` (the other entries :math:`e^{-10^{99}}`): :math:`[-10^{-100},
    10^{-100}]`."""
    teacher = torch.tensor(TEACHER)
    g = func.grad(lambda z: _masked_objective(z, teacher))(torch.tensor(STUDENT))
    assert torch.equal(g[0], torch.zeros(2, dtype=torch.float64))
    np.testing.assert_allclose(g[1].numpy(), [-TINY, TINY], rtol=1e-14)
