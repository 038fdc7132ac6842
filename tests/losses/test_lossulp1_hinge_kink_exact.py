"""Hinge margins near the kink, exact (issue 13, branch lossulp1): an exact rational
oracle (``fractions.Fraction``) of every margin.

Main formed :math:`\\Delta + (z_c - z_y)`; the difference's rounding, up to
``0.75 ulp(delta)``, was lost near the kink: float64 ``[1, 1e-20]`` (label 0, margin 1)
gave a loss of 0 and a zero gradient where the loss is ``1e-20`` and the subgradient
``[-1, 1]``. Now :math:`(z_c + t) + \\tau` with :math:`t + \\tau = \\Delta - z_y`
exactly, per row: the loss within an ulp of the exact one, the gradient's support
exact. The small compiled calls (int64 labels), the full NumPy path (int32 labels) and
PyTorch (the generic path's other namespace) are checked.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import crossent

_LABELS = [np.int64, np.int32]  # the small compiled calls, the full path


def _near_kink(dtype: type, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[z_y, z_c]`` (label 0) whose margins lie within a few ulps of 0 or far below
    an ulp of ``delta``, of both signs, with inexact differences ``z_c - z_y``."""
    rng = np.random.default_rng(13)
    z_y = (rng.normal(size=n) * 10.0 ** rng.integers(-2, 3, size=n)).astype(dtype)
    tiny = rng.normal(size=n) * 10.0 ** rng.integers(-30, -3, size=n)
    z_c = (z_y.astype(np.float64) - 1.0 + tiny * (1.0 + np.abs(z_y))).astype(dtype)
    z = np.stack([z_y, z_c], axis=1)
    z[:4] = [[1.0, 1e-20], [1.0, -1e-20], [0.5, -0.5 + 2e-17], [1.0, 1e-10]]
    return z.astype(dtype), np.zeros(n, dtype=np.int64)


def _exact(z: np.ndarray) -> list[Fraction]:
    return [Fraction(1) + Fraction(float(c)) - Fraction(float(y)) for y, c in z]


@pytest.mark.parametrize("label_type", _LABELS)
@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hinge_near_the_kink_is_within_an_ulp_and_its_support_exact(dtype, variant, label_type):
    z, labels = _near_kink(dtype)
    labels = labels.astype(label_type)
    loss = crossent.multiclass_hinge_loss(z, labels, variant=variant, reduction="none")
    grad = crossent.multiclass_hinge_loss_grad(z, labels, variant=variant, reduction="sum")
    for i, m in enumerate(_exact(z)):
        want = max(m, Fraction(0))
        close = dtype(float(want))
        assert abs(Fraction(float(loss[i])) - want) <= Fraction(float(np.spacing(close))), (
            i,
            z[i],
            float(loss[i]),
            float(want),
        )
        pull = 1.0 if m > 0 else 0.0
        assert grad[i].tolist() == [-pull, pull], (i, z[i], grad[i], float(m))


def test_hinge_near_the_kink_on_pytorch_and_under_autograd():
    torch = pytest.importorskip("torch")
    z, labels = _near_kink(np.float64, 16)
    t = torch.tensor(z, requires_grad=True)
    loss = crossent.multiclass_hinge_loss(t, torch.tensor(labels), reduction="sum")
    loss.backward()
    exact = _exact(z)
    want = sum((m for m in exact if m > 0), Fraction(0))
    assert abs(Fraction(loss.item()) - want) <= Fraction(float(np.spacing(float(want))))
    pulls = [[-1.0, 1.0] if m > 0 else [0.0, 0.0] for m in exact]
    assert t.grad.tolist() == pulls
    grad = crossent.multiclass_hinge_loss_grad(t.detach(), torch.tensor(labels), reduction="sum")
    assert grad.tolist() == pulls
