r"""Issue 13, branch distrev1: ``crossent.torch.distillation_loss(..., direction='reverse')``
in float32 off the CPU op (a 3-D or 1-D call, a teacher that requires a gradient; any
accelerator's tensors) gives a near row's student gradient by ``NearRows``' formula, as
float64 calls do.

Before, float32 work took autograd's derivative of the reverse loss's near-row formula,
which lost whole entries of a row whose sides are both all but one-hot at one class:
student logits ``ROW[0]`` beside teacher logits ``ROW[1]`` at :math:`T = 2`
(:math:`D(s\,\|\,t) = 4.6\cdot 10^{-9}`, a near row) gave 0 for :math:`-4.84\cdot
10^{-19}` at two classes and :math:`7.8\cdot 10^{-25}` for :math:`4.84\cdot 10^{-19}` at
the top one: 8.4e6 units of :math:`2^{-23}` of the row's largest entry off (the 2-D CPU
op and the compiled custom op, which form it in float64: 0.3). Now 8.4 units.

Oracle: mpmath's :math:`T s \odot (\log s - \log t - D)` of the float32 values (100
digits). Eager calls only (no compile).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

from crossent.torch import distillation_loss  # noqa: E402

ROW = (
    [-91.81, -28.67, -58.71, -48.53, 63.65, -48.45],
    [-51.26, 53.08, -46.24, 34.62, 91.47, -18.82],
)
TEMPERATURE = 2.0
BOUND = 16.0
"""Units of :math:`2^{-23}` of the row's largest gradient entry (the generic float32
path's own bound in ``test_issue13_distill_compile.py``'s ``ULPS``)."""


def _truth(z: list[float], v: list[float]) -> list[Any]:
    with mpmath.workdps(100):  # (the top entry s_r ~ 1 cancels by some 40 digits)

        def log_softmax(row: list[float]) -> list[Any]:
            x = [mpmath.mpf(a) / TEMPERATURE for a in row]
            top = max(x)
            ell = mpmath.log(mpmath.fsum(mpmath.exp(a - top) for a in x))
            return [a - top - ell for a in x]

        ls, lt = log_softmax(z), log_softmax(v)
        s = [mpmath.exp(a) for a in ls]
        d = mpmath.fsum(p * (a - b) for p, a, b in zip(s, ls, lt, strict=True))
        return [TEMPERATURE * p * (a - b - d) for p, a, b in zip(s, ls, lt, strict=True)]


@pytest.mark.parametrize(("layout", "teacher_grad"), [("3d", False), ("1d", False), ("2d", True)])
def test_float32_reverse_near_row_gradient(layout: str, teacher_grad: bool) -> None:
    """Each of the generic path's float32 calls (main: 8.4e6 units in all three)."""
    z = torch.tensor([ROW[0]], dtype=torch.float32, requires_grad=True)
    v = torch.tensor([ROW[1]], dtype=torch.float32, requires_grad=teacher_grad)
    zi, vi = {"3d": (z[:, :, None], v[:, :, None]), "1d": (z[0], v[0]), "2d": (z, v)}[layout]
    distillation_loss(zi, vi, TEMPERATURE, "sum", direction="reverse").backward()
    assert z.grad is not None
    want = _truth(*(torch.tensor(r, dtype=torch.float32).double().tolist() for r in ROW))
    unit = max(abs(w) for w in want) * 2.0**-23
    off = [float(abs(g - w) / unit) for g, w in zip(z.grad[0].tolist(), want, strict=True)]
    assert max(off) <= BOUND, off
