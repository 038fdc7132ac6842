r"""Issue 13 follow-up: ``crossent.torch.distillation_loss`` at large temperatures on
ordinary rows.

At a large :math:`T` the softened student and teacher nearly agree, and the generic
formula :math:`T^2\sum_c t_c(\log t_c - \log s_c)` cancelled: on the row below, float64
gave -1.06 at :math:`T = 10^8`, 1.23 at :math:`10^{16}` (gradient
:math:`[-0.5, 0.45, 0]`) and 0 at :math:`10^{100}` (gradients near :math:`10^{83}`);
float32 gave 8.37 at :math:`10^4`. The truth is about 0.4678. The generic path now forms
such rows by ``losses._near_rows`` in the tensors' own operations, so autograd
differentiates the stable form.

Oracle: mpmath (a working precision of :math:`2\log_2 T + 160` bits) from the inputs as
stored, :math:`L = T^2 D(t\,\|\,s)`, :math:`\partial L/\partial z = T(s - t)`. Fails
on main before the near rows (a228ef3) for every case.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

from crossent.torch import distillation_loss  # noqa: E402

STUDENT = [1.0, 0.2, -0.5]
TEACHER = [0.3, -0.4, 0.9]


def truth(student: list[float], teacher: list[float], temperature: float) -> tuple[float, list]:
    """mpmath's :math:`T^2 D(t\\,\\|\\,s)` and :math:`T(s - t)`, rounded to float64."""
    bits = int(2 * math.log2(max(temperature, 2.0))) + 160
    with mpmath.workprec(bits):
        big_t = mpmath.mpf(temperature)

        def softmax(row: list[float]) -> list:
            e = [mpmath.exp(mpmath.mpf(x) / big_t) for x in row]
            total = mpmath.fsum(e)
            return [x / total for x in e]

        s, t = softmax(student), softmax(teacher)
        kl = mpmath.fsum(tc * mpmath.log(tc / sc) for sc, tc in zip(s, t, strict=True))
        loss = float(big_t**2 * kl)
        grad = [float(big_t * (sc - tc)) for sc, tc in zip(s, t, strict=True)]
    return loss, grad


@pytest.mark.parametrize("temperature", [1e4, 1e8, 1e16, 1e100])
def test_float64_large_temperature_loss_and_gradient(temperature: float) -> None:
    z = torch.tensor([STUDENT], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([TEACHER], dtype=torch.float64)
    loss = distillation_loss(z, v, temperature=temperature)
    loss.backward()
    want_loss, want_grad = truth(STUDENT, TEACHER, temperature)
    assert abs(loss.item() - want_loss) <= 16 * 2.0**-52 * want_loss
    assert z.grad is not None
    scale = max(abs(g) for g in want_grad)
    for got, want in zip(z.grad[0].tolist(), want_grad, strict=True):
        assert abs(got - want) <= 16 * 2.0**-52 * scale


@pytest.mark.parametrize("temperature", [1e4, 1e8, 1e16])
def test_float32_large_temperature_loss_and_gradient(temperature: float) -> None:
    z = torch.tensor([STUDENT], dtype=torch.float32, requires_grad=True)
    v = torch.tensor([TEACHER], dtype=torch.float32)
    loss = distillation_loss(z, v, temperature=temperature)
    loss.backward()
    stored_z, stored_v = z.detach().double()[0].tolist(), v.double()[0].tolist()
    want_loss, want_grad = truth(stored_z, stored_v, temperature)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - want_loss) <= 8 * 2.0**-23 * want_loss
    assert z.grad is not None
    scale = max(abs(g) for g in want_grad)
    for got, want in zip(z.grad[0].tolist(), want_grad, strict=True):
        assert abs(got - want) <= 8 * 2.0**-23 * scale
