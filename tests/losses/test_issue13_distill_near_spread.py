r"""Issue 13: the distillation gradient of rows near their teacher, past the spread floor.

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
path flags such rows by ``_near_rows.forward_rows_flagged`` (branch distillrule13).

The reverse gradient :math:`T s \odot (\log s - \log t - D)` of such a row cancels too
(:math:`T(s - t)` to first order); its near rows were those of a KL below the floor
only: student logits ``[0, log1p(-m) + 1e-7 T, log(m) - 70 T]`` beside teacher logits
``[0, log1p(-m), log(m)]``, :math:`m = (2.9\cdot 10^{-5})^T` (:math:`D(s\,\|\,t)`
about :math:`1.5\cdot 10^{-5}`), were 4.7e6 to 5.3e6 units off on the NumPy paths and
7.4e5 to 3.6e6 on the fused kernels (large NumPy calls and the CPU op). Now the same
rule flags them (branch distillrev1): a spread :math:`\max_c |s_c(\log s_c - \log t_c -
D)|` below ``SPREAD_FLOOR`` times :math:`\max_c s_c`, or a KL below the floor. The
fused NumPy gradient now adds the KL's rows (kind 1) in the forward direction too (the
first row at :math:`T = 1/2`: 36 700 units there).

Oracle: mpmath at 60 digits. Paths: the lean path (the public call), the full NumPy
path (``_distill._host_gradient``), the NumPy path without Numba, PyTorch tensors
through the generic namespace path, the fused kernels (a large call) and
``crossent.torch``'s CPU op. On main: 8 of 8 of the forward cases fail (distillrule13);
of the cases added by distillrev1, 8 of 8 fail.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _distill, _distill_rows
from losses.small_target_checks import fused_rows

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
CASES = [
    ("reproducer", 0.5, "forward"),
    ("reproducer", 1.0, "forward"),
    ("seven", 2.0, "forward"),
    ("seven", 1.0, "forward"),
    ("moved", 0.5, "reverse"),
    ("moved", 1.0, "reverse"),
    ("moved", 2.0, "reverse"),
]


def _row(name: str, temperature: float) -> tuple[list[float], list[float]]:
    """The student's and the teacher's logits of row ``name``; ``'moved'``: a little
    mass moved far down (module docstring), put at ``temperature``."""
    if name != "moved":
        return ROWS[name]
    m = 2.9e-5**temperature
    student = [0.0, math.log1p(-m) + 1e-7 * temperature, math.log(m) - 70 * temperature]
    return student, [0.0, math.log1p(-m), math.log(m)]


def _truth(z: list[float], v: list[float], temperature: float, direction: str) -> list[mpmath.mpf]:
    r""":math:`T(s - t)`, or (``'reverse'``) :math:`T s \odot (\log s - \log t -
    D(s\|t))`, at 60 digits."""
    with mpmath.workdps(60):
        t = mpmath.mpf(temperature)
        es = [mpmath.exp(mpmath.mpf(x) / t) for x in z]
        et = [mpmath.exp(mpmath.mpf(x) / t) for x in v]
        ss, st = mpmath.fsum(es), mpmath.fsum(et)
        s, q = [a / ss for a in es], [b / st for b in et]
        if direction == "forward":
            return [t * (a - b) for a, b in zip(s, q, strict=True)]
        d = [mpmath.log(a / b) for a, b in zip(s, q, strict=True)]
        kl = mpmath.fsum(a * x for a, x in zip(s, d, strict=True))
        return [t * a * (x - kl) for a, x in zip(s, d, strict=True)]


def _assert_close(
    got: object, z: list[float], v: list[float], temperature: float, direction: str
) -> None:
    """Every entry within :data:`UNITS` of the row's largest (the truth's)."""
    truth = _truth(z, v, temperature, direction)
    row = np.asarray(got, dtype=np.float64).reshape(-1)
    with mpmath.workdps(60):
        unit = max(abs(x) for x in truth) * mpmath.mpf(2) ** -53
        off = [float(abs(mpmath.mpf(float(g)) - x) / unit) for g, x in zip(row, truth, strict=True)]
    assert max(off) <= UNITS, off


def _cpu_op(z: list[float], v: list[float], temperature: float, direction: str) -> object:
    """``crossent.torch``'s CPU op's gradient of the summed loss (2-D float64 rows)."""
    torch = pytest.importorskip("torch")
    import crossent.torch as ct

    student = torch.tensor([z], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([v], dtype=torch.float64)
    options = {"temperature": temperature, "reduction": "sum", "direction": direction}
    ct.distillation_loss(student, teacher, **options).backward()
    assert student.grad is not None
    return student.grad.numpy()


IDS = [f"{name}-{temperature}-{direction}" for name, temperature, direction in CASES]


@pytest.mark.parametrize(("name", "temperature", "direction"), CASES, ids=IDS)
def test_numpy_paths(monkeypatch, name: str, temperature: float, direction: str) -> None:
    """The lean path (the public call), the full path and the path without Numba,
    beside the CPU op."""
    z, v = _row(name, temperature)
    options = {"temperature": temperature, "reduction": "sum", "direction": direction}
    lean = crossent.distillation_loss_grad([z], [v], **options)
    _assert_close(lean, z, v, temperature, direction)
    full = _distill._host_gradient(
        np.array([z]), np.array([v]), temperature, _distill_rows.Options("logits", direction)
    )
    _assert_close(full, z, v, temperature, direction)
    _assert_close(_cpu_op(z, v, temperature, direction), z, v, temperature, direction)
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    _assert_close(
        crossent.distillation_loss_grad([z], [v], **options), z, v, temperature, direction
    )


@pytest.mark.parametrize(("name", "temperature", "direction"), CASES, ids=IDS)
def test_torch_generic_path(name: str, temperature: float, direction: str) -> None:
    """PyTorch tensors through ``distillation_loss_grad``'s namespace path."""
    torch = pytest.importorskip("torch")
    z, v = _row(name, temperature)
    student = torch.tensor([z], dtype=torch.float64)
    teacher = torch.tensor([v], dtype=torch.float64)
    got = crossent.distillation_loss_grad(
        student, teacher, temperature=temperature, reduction="sum", direction=direction
    )
    _assert_close(got.numpy(), z, v, temperature, direction)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize(
    ("name", "temperature", "direction"),
    [("reproducer", 0.5, "forward"), ("moved", 1.0, "reverse")],
    ids=["reproducer-0.5-forward", "moved-1.0-reverse"],
)
def test_fused_kernels(monkeypatch, name: str, temperature: float, direction: str) -> None:
    """A call large enough for the fused kernels: the row beside 13 ordinary ones.
    Forward: its KL is below the floor (kind 1, which the fused gradient did not form
    again); reverse: its spread is small (the reverse kernel's flags)."""
    z, v = _row(name, temperature)
    rng = np.random.default_rng(13)
    others = rng.normal(size=(13, 3))
    zs = np.vstack([[z], others])
    vs = np.vstack([[v], others + rng.normal(size=(13, 3))])
    kernel = "kernels" if direction == "forward" else "reverse_kernel"
    options = {"temperature": temperature, "direction": direction}
    got = fused_rows(monkeypatch, kernel, zs, vs, **options)
    _assert_close(got[:1], z, v, temperature, direction)


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_gradient_rows_flagged(namespace: str, direction: str) -> None:
    """``_distill.gradient_rows_flagged`` (for callers that pick the rows themselves)
    flags the moved row (reverse: its spread; forward: the same rule) and the first row
    (its KL), not an ordinary row, in NumPy and PyTorch alike."""
    moved, first = _row("moved", 1.0), ROWS["reproducer"]
    z = np.array([moved[0], first[0], [0.3, -0.2, 0.1]])
    v = np.array([moved[1], first[1], [0.0, 0.5, -0.4]])
    if namespace == "torch":
        torch = pytest.importorskip("torch")
        z, v = torch.tensor(z, dtype=torch.float64), torch.tensor(v, dtype=torch.float64)
    d = _distill.prepare_distillation(z, v, temperature=1.0, direction=direction)
    flags = np.asarray(_distill.gradient_rows_flagged(d)).tolist()
    assert flags == [True, True, False]
