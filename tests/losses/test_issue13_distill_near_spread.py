r"""Issue 13: the forward distillation gradient of rows near their teacher, past the spread floor.

The forward gradient :math:`T(s - t)` of a row near its teacher cancels in every class
(:math:`|s_c - t_c|` far below :math:`s_c`). ``crossent.torch``'s CPU op and the fused
kernels form a row whose KL is below ``_near_rows.KL_FLOOR`` by the near rows' formulas
(their kind 1); the generic paths did so only below ``_near_rows.SPREAD_FLOOR`` (a
:math:`\max_c|s_c - t_c|` of :math:`2^{-15}\max_c t_c`), and formed the others by the
common formula with the top entry as minus the others' sum (``_dominant_entry``), which
sums their errors: student logits ``[1.932786603588886, 1.0635557457740161,
1.2451703584515783]`` beside teacher logits ``[1.9327988036519401, 1.0635083775580856,
1.2452478489298584]`` at :math:`T = 1/2` were 29 902, 18 793 and 11 109 units of
:math:`2^{-53}` of the row's largest entry off (the CPU op 2.4, 1.6, 0.8). Now every
path flags such rows by ``_near_rows.forward_rows_flagged``.

Oracle: mpmath at 60 digits of :math:`T(s - t)`. Paths: the lean path (the public
call), the full NumPy path (``_distill._host_gradient``), PyTorch tensors through the
generic namespace path, and ``crossent.torch``'s CPU op (right on main too: checked
beside each). The reverse direction's near rows are its KL's already (unchanged). On
main: 8 of 8 fail (the first three paths; the CPU op passes there).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _distill, _distill_rows

UNITS = 16.0
"""Tolerance per entry, in units of :math:`2^{-53}` times the row's largest entry."""

ROWS = {
    "reproducer": (
        [1.932786603588886, 1.0635557457740161, 1.2451703584515783],
        [1.9327988036519401, 1.0635083775580856, 1.2452478489298584],
    ),
    "seven": (
        [
            4.394251941675561,
            1.8122301162723733,
            -0.602658614543728,
            -1.539659308496411,
            0.6188421885671495,
            -0.3548041301011767,
            0.32485848577290377,
        ],
        [
            4.3938528694327665,
            1.8121599156604562,
            -0.6023698080503551,
            -1.5405366967298286,
            0.6196397722204599,
            -0.35535630746050717,
            0.3238365205686989,
        ],
    ),
}
CASES = [("reproducer", 0.5), ("reproducer", 1.0), ("seven", 2.0), ("seven", 1.0)]


def _truth(z: list[float], v: list[float], temperature: float) -> list[mpmath.mpf]:
    """:math:`T(s - t)` at 60 digits."""
    with mpmath.workdps(60):
        t = mpmath.mpf(temperature)
        es = [mpmath.exp(mpmath.mpf(x) / t) for x in z]
        et = [mpmath.exp(mpmath.mpf(x) / t) for x in v]
        ss, st = mpmath.fsum(es), mpmath.fsum(et)
        return [t * (a / ss - b / st) for a, b in zip(es, et, strict=True)]


def _assert_close(got: object, z: list[float], v: list[float], temperature: float) -> None:
    """Every entry within :data:`UNITS` of the row's largest (the truth's)."""
    truth = _truth(z, v, temperature)
    row = np.asarray(got, dtype=np.float64).reshape(-1)
    with mpmath.workdps(60):
        unit = max(abs(x) for x in truth) * mpmath.mpf(2) ** -53
        off = [float(abs(mpmath.mpf(float(g)) - x) / unit) for g, x in zip(row, truth, strict=True)]
    assert max(off) <= UNITS, off


def _cpu_op(z: list[float], v: list[float], temperature: float) -> object:
    """``crossent.torch``'s CPU op's gradient of the summed loss (2-D float64 rows)."""
    torch = pytest.importorskip("torch")
    import crossent.torch as ct

    student = torch.tensor([z], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([v], dtype=torch.float64)
    ct.distillation_loss(student, teacher, temperature=temperature, reduction="sum").backward()
    assert student.grad is not None
    return student.grad.numpy()


@pytest.mark.parametrize(("name", "temperature"), CASES)
def test_numpy_paths(name: str, temperature: float) -> None:
    """The lean path (the public call) and the full path, beside the CPU op."""
    z, v = ROWS[name]
    lean = crossent.distillation_loss_grad([z], [v], temperature=temperature, reduction="sum")
    _assert_close(lean, z, v, temperature)
    full = _distill._host_gradient(
        np.array([z]), np.array([v]), temperature, _distill_rows.Options("logits", "forward")
    )
    _assert_close(full, z, v, temperature)
    _assert_close(_cpu_op(z, v, temperature), z, v, temperature)


@pytest.mark.parametrize(("name", "temperature"), CASES)
def test_torch_generic_path(name: str, temperature: float) -> None:
    """PyTorch tensors through ``distillation_loss_grad``'s namespace path."""
    torch = pytest.importorskip("torch")
    z, v = ROWS[name]
    student = torch.tensor([z], dtype=torch.float64)
    teacher = torch.tensor([v], dtype=torch.float64)
    got = crossent.distillation_loss_grad(
        student, teacher, temperature=temperature, reduction="sum"
    )
    _assert_close(got.numpy(), z, v, temperature)
