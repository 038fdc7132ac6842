r"""Issue 13: ``crossent.torch``'s generic path, rows of a small spread and a large KL.

The forward distillation gradient :math:`T(s - t)` of a row whose every
:math:`|s_c - t_c|` is below ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c`
cancels in every class: :func:`crossent.distillation_loss_grad` and the CPU op form it
by ``_near_rows.NearRows``. ``crossent.torch``'s generic path (a 1-D call, a teacher
that requires a gradient, ...) did so only where the row's KL was below
``_near_rows.NEAR_CEILING`` (its loss's near rows); a row whose mass on one class moved
far down (a KL at or above :math:`2^{-10}`) kept autograd's gradient of
``log_softmax``: student logits ``[0, log1p(-2.9e-5) + 1e-7, log(2.9e-5) - 70]``
beside teacher logits ``[0, log1p(-2.9e-5), log(2.9e-5)]`` at :math:`T = 1` were 61 901
and 44 265 units of :math:`2^{-53}` of the row's largest entry off (NumPy 6.8 and 10),
the teacher's gradient 591 and 194. Now such rows take ``NearRows``' gradient
(``_distill.NearGradients``, flagged by ``_near_rows.spread_is_small``).

Oracle: mpmath at 60 digits. The row is put at each temperature (its teacher's small
mass :math:`m = (2.9\cdot 10^{-5})^T`, the student's gap :math:`70\,T` further down, so
the tempered row is the same kind). On main: 9 of 9 fail.
"""

from __future__ import annotations

import math

import mpmath
import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402

UNITS = 128.0
"""Tolerance per entry, in units of :math:`2^{-53}` times the row's largest entry.
``NearRows``' formulas in array operations (NumPy's without Numba, PyTorch's) are 61 and
64 units off at :math:`T = 1/2` (its Numba kernel 5.3 and 2.7; main's autograd 26 264),
7.1 and 10.1 at :math:`T = 1`, 25 and 7.9 at :math:`T = 2`, as
:func:`crossent.distillation_loss_grad`."""

TEMPERATURES = [0.5, 1.0, 2.0]


def _row(temperature: float) -> tuple[list[float], list[float]]:
    """Student and teacher logits of the hard row at ``temperature`` (module docstring)."""
    m = 2.9e-5**temperature
    student = [0.0, math.log1p(-m) + 1e-7 * temperature, math.log(m) - 70 * temperature]
    return student, [0.0, math.log1p(-m), math.log(m)]


def _softmax(x: list[float], temperature: float) -> list[mpmath.mpf]:
    scaled = [mpmath.mpf(a) / temperature for a in x]
    top = max(scaled)
    e = [mpmath.exp(a - top) for a in scaled]
    total = mpmath.fsum(e)
    return [a / total for a in e]


def _truth(z: list[float], v: list[float], temperature: float) -> tuple[list, list]:
    r"""The gradients of :math:`T^2 D(t\,\|\,s)` in the student, :math:`T(s - t)`, and in
    the teacher, :math:`T t \odot (\log t - \log s - D)`, at 60 digits."""
    with mpmath.workdps(60):
        s, t = _softmax(z, temperature), _softmax(v, temperature)
        kl = mpmath.fsum(b * mpmath.log(b / a) for a, b in zip(s, t, strict=True))
        student = [temperature * (a - b) for a, b in zip(s, t, strict=True)]
        teacher = [temperature * b * (mpmath.log(b / a) - kl) for a, b in zip(s, t, strict=True)]
        return student, teacher


def _assert_close(got: torch.Tensor, truth: list) -> None:
    """Every entry within :data:`UNITS` of the row's largest (the truth's)."""
    with mpmath.workdps(60):
        unit = max(abs(x) for x in truth) * mpmath.mpf(2) ** -53
        row = got.reshape(-1).tolist()
        off = [float(abs(mpmath.mpf(g) - x) / unit) for g, x in zip(row, truth, strict=True)]
    assert max(off) <= UNITS, off


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_one_dimensional_call(temperature: float) -> None:
    """A 1-D call (the generic path: the CPU op takes 2-D rows)."""
    z, v = _row(temperature)
    student = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor(v, dtype=torch.float64)
    ct.distillation_loss(student, teacher, temperature=temperature).backward()
    assert student.grad is not None
    _assert_close(student.grad, _truth(z, v, temperature)[0])


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_teacher_requiring_a_gradient(temperature: float) -> None:
    """2-D rows whose teacher requires a gradient (the generic path), ``'mean'`` over
    the hard row and itself: both sides' gradients (halves of the row's)."""
    z, v = _row(temperature)
    student = torch.tensor([z, z], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([v, v], dtype=torch.float64, requires_grad=True)
    ct.distillation_loss(student, teacher, temperature=temperature).backward()
    assert student.grad is not None
    assert teacher.grad is not None
    in_student, in_teacher = _truth(z, v, temperature)
    _assert_close(2 * student.grad[1], in_student)
    _assert_close(2 * teacher.grad[0], in_teacher)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_beside_an_ordinary_row(temperature: float) -> None:
    """A 1-D call's flag is per call: 2-D rows, the hard one beside an ordinary one,
    ``'sum'``, teacher requiring a gradient; the ordinary row keeps the gradient it has
    alone."""
    z, v = _row(temperature)
    student = torch.tensor([z, [0.5, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([v, [1.0, 0.0, -0.5]], dtype=torch.float64, requires_grad=True)
    ct.distillation_loss(student, teacher, temperature=temperature, reduction="sum").backward()
    assert student.grad is not None
    _assert_close(student.grad[0], _truth(z, v, temperature)[0])
    alone = student[1:].detach().clone().requires_grad_()
    other = teacher[1:].detach().clone().requires_grad_()
    ct.distillation_loss(alone, other, temperature=temperature, reduction="sum").backward()
    assert alone.grad is not None
    assert torch.equal(student.grad[1], alone.grad[0])
