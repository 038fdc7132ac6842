r"""Issue 13 follow-up: ``crossent.torch.distillation_loss`` at far gaps and far temperatures.

The torch loss ran crossent's generic formula :math:`T^2\sum_c t_c(\log t_c - \log s_c)`
under autograd in its work dtype (float64, or float32 for float32/float16/bfloat16):

* a gap past the range (student logits :math:`\pm 10^{308}`, float32 ones
  :math:`\pm 3\cdot 10^{38}`) made the loss ``inf`` and the gradient wrong where both
  are finite (the NumPy path, its far-row guard, was right);
* a :math:`T` whose :math:`T^2` leaves the normal range of the work dtype (float64
  :math:`T = 10^{306}` or :math:`10^{-300}`; float32 :math:`T = 10^{-35}`) made the
  gradient NaN, or 0 where it is :math:`\pm T`, and float32 losses NaN.

Oracle: mpmath at 60 digits from the inputs as stored, :math:`L = T^2 D(t\,\|\,s)`,
:math:`\partial L/\partial z = T(s - t)`, :math:`\partial L/\partial v = T\,t\odot(\log t
- \log s - D)`, rounded to the dtype of the result. Every test fails on main (6ec1c5c)
but ``ordinary_calls_take_the_common_path``, which pins the common path's bits; the
mutants each test catches are named in it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

import crossent  # noqa: E402
from crossent import losses  # noqa: E402
from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402

BIG = 1e308
FAR = [0.0, BIG, -BIG]  # a gap of 2e308: past float64's range
TEACHER = [0.5, 0.2, -0.1]


def _truth(z: list[float], v: list[float], temperature: float) -> tuple[float, list, list]:
    r"""``(L, dL/dz, dL/dv)`` of one row in mpmath (60 digits), as float64 (``inf`` past
    the range)."""
    with mpmath.workdps(60):
        t_ = mpmath.mpf(temperature)

        def log_softmax(x: list[float]) -> list:
            scaled = [mpmath.mpf(a) / t_ for a in x]
            top = max(scaled)
            lse = top + mpmath.log(mpmath.fsum(mpmath.exp(a - top) for a in scaled))
            return [a - lse for a in scaled]

        log_s, log_t = log_softmax(z), log_softmax(v)
        kl = mpmath.fsum(mpmath.exp(b) * (b - a) for a, b in zip(log_s, log_t, strict=True))
        grad_z = [t_ * (mpmath.exp(a) - mpmath.exp(b)) for a, b in zip(log_s, log_t, strict=True)]
        grad_v = [t_ * mpmath.exp(b) * (b - a - kl) for a, b in zip(log_s, log_t, strict=True)]
        return _float(t_ * t_ * kl), [_float(g) for g in grad_z], [_float(g) for g in grad_v]


def _float(x: object) -> float:
    return float(x) if abs(x) < mpmath.mpf(np.finfo(np.float64).max) else math.copysign(np.inf, x)


def _call(
    z: list[list[float]],
    v: list[list[float]],
    temperature: float,
    reduction: str = "sum",
    dtype: torch.dtype = torch.float64,
    teacher_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Loss, student gradient and teacher gradient (or None) of one torch call."""
    zt = torch.tensor(z, dtype=torch.float64).to(dtype).requires_grad_()
    vt = torch.tensor(v, dtype=torch.float64).to(dtype).requires_grad_(teacher_grad)
    loss = distillation_loss(zt, vt, temperature=temperature, reduction=reduction)
    loss.sum().backward()
    return loss.detach(), zt.grad, vt.grad


def _close(got: torch.Tensor | float, want: float | list, rel: float = 1e-14) -> None:
    got_ = torch.as_tensor(got).double().reshape(-1).tolist()
    want_ = np.reshape(want, -1).tolist()
    assert got_ == pytest.approx(want_, rel=rel, abs=0.0), (got_, want_)


@pytest.mark.parametrize("reduction", ["sum", "none", "mean"])
def test_issue13_far_student_row_float64(reduction: str) -> None:
    """Student gap 2e308: loss 9.2e307 and its gradient (main: ``inf`` and a gradient of 0
    on the far class; mutant: no far-row pass, ``_finite`` always True)."""
    loss, grad, _ = _call([FAR], [TEACHER], 1.0, reduction)
    want, want_z, _ = _truth(FAR, TEACHER, 1.0)
    _close(loss, want)
    _close(grad, want_z)
    numpy = crossent.distillation_loss(np.array([FAR]), np.array([TEACHER]), reduction=reduction)
    _close(loss, np.asarray(numpy).tolist(), rel=0.0)


def test_issue13_teacher_gradient_of_a_far_row() -> None:
    r"""The teacher's gradient :math:`T t\odot(\log t - \log s - D)` of a far row, and a
    far teacher row beside it (mutant: the forward gradient for the teacher)."""
    z, v = [FAR, [0.3, 0.1, 0.2]], [TEACHER, [-BIG, BIG, 0.0]]
    loss, grad_z, grad_v = _call(z, v, 2.0, "none", teacher_grad=True)
    for row in range(2):
        want, want_z, want_v = _truth(z[row], v[row], 2.0)
        _close(loss[row], want)
        _close(grad_z[row], want_z)
        _close(grad_v[row], want_v, rel=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_issue13_mean_of_rows_near_the_largest_float(reduction: str) -> None:
    """Two far rows of 1.4e308: their sum overflows (truly, for ``'sum'``), their mean does
    not, nor their rows (mutants: the float64 mean without its power-of-two scaling, host
    gradients not times the upstream)."""
    teacher = [0.0, 0.0, 1.0]
    loss, grad, _ = _call([FAR, FAR], [teacher, teacher], 1.0, reduction)
    want, want_z, _ = _truth(FAR, teacher, 1.0)
    assert want > 1e308
    scale = 0.5 if reduction == "mean" else 1.0
    if reduction == "sum":
        assert loss.item() == math.inf
    else:
        _close(loss, [want] * (2 if reduction == "none" else 1))
    _close(grad, [g * scale for g in want_z] * 2)


def test_issue13_finite_rows_whose_sum_overflows() -> None:
    """Rows of 1.1e308 with no far gap: their ``'mean'`` overflowed its sum (main:
    ``inf``); the ``'none'`` rows are the common path's, ``'parts'`` keeps the overflowed
    total and the common path's normalizer (mutants: the float64 mean unscaled, finite
    rows not reduced again)."""
    z, teacher = [0.0, 8e307, -8e307], [0.0, 0.0, 1.0]
    want, want_z, _ = _truth(z, teacher, 1.0)
    for reduction in ("mean", "none", "parts"):
        zt = torch.tensor([z, z], dtype=torch.float64, requires_grad=True)
        vt = torch.tensor([teacher, teacher], dtype=torch.float64)
        loss = distillation_loss(zt, vt, reduction=reduction)
        if reduction == "parts":
            assert loss.total.item() == math.inf
            assert loss.normalizer.item() == 2
            continue
        (grad,) = torch.autograd.grad(loss.sum(), zt)
        _close(loss, [want] * (2 if reduction == "none" else 1), rel=1e-15)
        _close(grad, [g * (0.5 if reduction == "mean" else 1.0) for g in want_z] * 2)


def test_issue13_teacher_gradient_beside_a_far_teacher_gap() -> None:
    """A teacher gap past the range alone leaves the loss finite (the common path's
    value), but its gradient in the teacher was NaN at T = 2 for ``'none'`` (the
    teacher's second softening, of ``log t`` with its ``-inf``; mutant: no check of the
    gaps where the teacher requires a gradient)."""
    z, v = [[0.3, 0.1, 0.2], [0.5, -0.5, 1.0]], [[-BIG, BIG, 0.0], TEACHER]
    rows = [_truth(z[row], v[row], 2.0) for row in range(2)]
    for reduction in ("none", "mean"):
        loss, grad_z, grad_v = _call(z, v, 2.0, reduction, teacher_grad=True)
        scale = 0.5 if reduction == "mean" else 1.0
        _close(
            loss, sum(r[0] for r in rows) * scale if reduction == "mean" else [r[0] for r in rows]
        )
        _close(grad_z, [[g * scale for g in r[1]] for r in rows])
        _close(grad_v, [[g * scale for g in r[2]] for r in rows], rel=1e-13)


@pytest.mark.parametrize("temperature", [1e306, 1e-300, 1e-160])
def test_issue13_far_temperature_float64(temperature: float) -> None:
    r""":math:`T^2` past float64's normal range: the far row against mpmath (at
    :math:`10^{306}` the loss truly overflows, the gradient :math:`\approx 10^{305}` does
    not), an ordinary row against NumPy's bits (main: NaN or 0 gradients; mutant: no
    check of :math:`T^2`)."""
    z, v = [FAR, [0.3, 0.1, 0.2]], [TEACHER, [0.5, -0.5, 1.0]]
    loss, grad, _ = _call(z, v, temperature, "none")
    want, want_z, _ = _truth(FAR, TEACHER, temperature)
    _close(loss[0], want)
    _close(grad[0], want_z)
    numpy_loss = crossent.distillation_loss(
        np.array(z), np.array(v), temperature=temperature, reduction="none"
    )
    numpy_grad = crossent.distillation_loss_grad(
        np.array(z), np.array(v), temperature=temperature, reduction="none"
    )
    assert loss[1].item() == numpy_loss[1]
    assert grad[1].tolist() == numpy_grad[1].tolist()
    assert torch.isfinite(grad).all()


def test_issue13_tiny_temperature_gradient_is_plus_minus_t() -> None:
    """T = 1e-300: one-hot student and teacher, the gradient +-T (main: 0)."""
    z, v = [0.5, 0.2, -0.1], [0.3, 1.0, -2.0]
    loss, grad, _ = _call([z], [v], 1e-300)
    want, want_z, _ = _truth(z, v, 1e-300)
    _close(loss, want)
    _close(grad, want_z)
    assert grad.tolist() == [[1e-300, -1e-300, 0.0]]


def test_issue13_far_float32_row() -> None:
    """float32 logits 3e38 apart (float32's work overflows, the true loss 2.7e38 does not):
    loss and gradient rounded once from the truth (main: ``inf``)."""
    z = [0.0, 3e38, -3e38]
    z32 = torch.tensor(z, dtype=torch.float32).double().tolist()
    loss, grad, _ = _call([z], [TEACHER], 1.0, dtype=torch.float32)
    want, want_z, _ = _truth(z32, torch.tensor(TEACHER).double().tolist(), 1.0)
    assert loss.dtype == torch.float32
    assert grad.dtype == torch.float32
    assert loss.item() == np.float32(want)
    assert grad.tolist() == [np.float32(want_z).tolist()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_issue13_far_temperature_narrow_dtypes(dtype: torch.dtype) -> None:
    r""":math:`T = 10^{-35}`, normal in float32 but :math:`T^2` not: loss (float32) and
    gradient rounded once from the truth (main: NaN loss, 0 gradient; mutant: the
    float64 range for the :math:`T^2` check of narrow inputs)."""
    z, v = [[0.5, 0.25, -0.125]], [[0.375, 1.0, -2.0]]  # exact in every dtype
    loss, grad, _ = _call(z, v, 1e-35, dtype=dtype)
    want, want_z, _ = _truth(z[0], v[0], 1e-35)
    assert loss.dtype == torch.float32
    assert loss.item() == np.float32(want)
    assert grad.dtype == dtype
    assert grad.tolist() == [torch.tensor(want_z, dtype=torch.float64).to(dtype).tolist()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_issue13_ordinary_rows_keep_their_bits(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside a far row, the ordinary rows' losses and gradients are the common path's bit
    for bit (mutant: the far rows' inputs not zeroed before the rows are formed again
    leaves them so too, so this pins the index bookkeeping: rows swapped or shifted).
    The generic path's (GPU tensors, a teacher that requires a gradient): CPU calls
    now take the fused op, whose rows are not the common path's bits
    (``test_issue13_distill_cpu_fused.py``), so it is turned off here. The gradient of
    float64 rows of a spread below ``_near_rows.FUSED_SPREAD`` times the largest t is
    the fused kernels' on the generic path (branches distfwd2, distfwd3), not the
    common path's: the gradients are the generic path's of the ordinary rows alone."""
    monkeypatch.setattr(_distill_cpu, "applies", lambda *_: False)
    big = 2e38 if dtype == torch.float32 else BIG
    rng = np.random.default_rng(13)
    z = rng.standard_normal((4, 7))
    v = rng.standard_normal((4, 7))
    z[2, :3] = [0.0, big, -big]
    v[2, 2] = -4.0  # a small teacher weight on the far class: a finite loss
    zt = torch.tensor(z).to(dtype).requires_grad_()
    vt = torch.tensor(v).to(dtype)
    rows = distillation_loss(zt, vt, temperature=1.5, reduction="none")
    (grad,) = torch.autograd.grad(rows.sum(), zt)
    common = losses.distillation_loss(zt, vt, axis=1, temperature=1.5, reduction="none")
    (common_grad,) = torch.autograd.grad(common[[0, 1, 3]].sum(), zt)
    # (the NumPy-style loss on torch tensors forms its far rows again on the host too,
    # since apileft3: both finite; only the ordinary rows' bits are compared here)
    assert math.isfinite(rows[2].item())
    assert rows[[0, 1, 3]].tolist() == common[[0, 1, 3]].tolist()
    alone = zt.detach()[[0, 1, 3]].requires_grad_()
    (own,) = torch.autograd.grad(
        distillation_loss(alone, vt[[0, 1, 3]], temperature=1.5, reduction="sum"), alone
    )
    assert grad[[0, 1, 3]].tolist() == own.tolist()
    assert torch.equal(common_grad[[0, 1, 3]], own) or dtype == torch.float64


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_issue13_ordinary_calls_take_the_common_path(
    reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ordinary call never reaches the host rows, and its value and gradient are the
    generic path's bit for bit (3-D input, classes on axis 1)."""

    def refuse(*args: object) -> None:
        raise AssertionError("the host rows ran on an ordinary call")

    if importlib.util.find_spec("crossent.torch._far_distillation") is not None:  # (not on main)
        far_distillation = importlib.import_module("crossent.torch._far_distillation")
        monkeypatch.setattr(far_distillation._HostRows, "apply", refuse)
    rng = np.random.default_rng(7)
    z = torch.tensor(rng.standard_normal((3, 5, 2)), dtype=torch.float32, requires_grad=True)
    v = torch.tensor(rng.standard_normal((3, 5, 2)), dtype=torch.float32)
    ours = distillation_loss(z, v, temperature=2.0, reduction=reduction)
    (grad,) = torch.autograd.grad(ours.sum(), z)
    common = losses.distillation_loss(z, v, axis=1, temperature=2.0, reduction=reduction)
    (common_grad,) = torch.autograd.grad(common.sum(), z)
    assert ours.tolist() == common.tolist()
    assert grad.tolist() == common_grad.tolist()


def test_issue13_far_row_of_3d_input_and_finite_differences() -> None:
    """Classes on axis 1 of 3-D input, one far row: its loss and gradient against mpmath,
    the ordinary rows' gradients against central differences of their losses."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 3, 2))
    v = rng.standard_normal((2, 3, 2))
    z[1, :, 0] = FAR
    zt = torch.tensor(z, requires_grad=True)
    rows = distillation_loss(zt, torch.tensor(v), reduction="none")
    (grad,) = torch.autograd.grad(rows.sum(), zt)
    want, want_z, _ = _truth(FAR, v[1, :, 0].tolist(), 1.0)
    _close(rows[1, 0], want)
    _close(grad[1, :, 0], want_z)
    step = 1e-6
    for index in [(0, 0, 0), (0, 2, 1), (1, 1, 1), (0, 1, 1)]:
        plus, minus = z.copy(), z.copy()
        plus[index] += step
        minus[index] -= step
        row = index[0], index[2]
        f = [
            distillation_loss(torch.tensor(x), torch.tensor(v), reduction="none")[row]
            for x in (plus, minus)
        ]
        assert grad[index].item() == pytest.approx(((f[0] - f[1]) / (2 * step)).item(), rel=1e-6)
