r"""Distillation rows at the extremes, against mpmath (a hostile pass over gradients).

* Teacher logits :math:`[-10^{308}, 10^{308}]`: the softened teacher has :math:`t_0 = 0`
  (its gap past the float64 range). The near-row formulas (``_near_rows``) dropped that
  class and the student's mass :math:`s_0` with it: at :math:`T = 1`, student
  :math:`[0, 16]`, :math:`T^2 D = 1.125\cdot 10^{-7}` came out 0 and the gradient
  :math:`\pm 1.125\cdot 10^{-7}` 0 (NumPy, ``crossent.torch``); at :math:`T = 10^{-100}`,
  student :math:`[1, 2]`, the row's value was right (0) and ``crossent.torch``'s
  gradient NaN (autograd through the formula's masked ``inf - inf``).
* Teacher logits of a tiny scale at a tiny temperature (:math:`v = [10^{-100}, 0]`,
  :math:`T = 10^{-100}`): the teacher was softened from :math:`\log\operatorname{softmax}(v)`,
  which rounds :math:`v_0 - v_1` away, so :math:`t = [0.5, 0.5]` instead of
  :math:`[0.731, 0.269]`: loss and gradient wrong by a factor near 2 (every path).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from crossent.losses import distillation_loss, distillation_loss_grad

torch = pytest.importorskip("torch")
import crossent.torch as ct  # noqa: E402


def _oracle(z: list[float], v: list[float], temperature: float, direction: str):
    r"""``(T^2 D, dL/dz, dL/dv)`` of one row in mpmath (60 digits): forward
    :math:`T^2 D(t\|s)`, gradients :math:`T(s - t)` and :math:`T t(\log t - \log s - D)`;
    reverse :math:`T^2 D(s\|t)`, :math:`T s(\log s - \log t - D)` and :math:`T(t - s)`."""
    with mpmath.workdps(60):
        t_ = mpmath.mpf(temperature)

        def log_softmax(x):
            x = [mpmath.mpf(a) for a in x]
            m = max(x)
            ell = mpmath.log(mpmath.fsum(mpmath.exp((a - m) / t_) for a in x))
            return [(a - m) / t_ - ell for a in x]

        ls, lt = log_softmax(z), log_softmax(v)
        s, t = [mpmath.exp(a) for a in ls], [mpmath.exp(a) for a in lt]
        if direction == "forward":
            d = mpmath.fsum(p * (a - b) for p, a, b in zip(t, lt, ls, strict=True))
            gz = [t_ * (a - b) for a, b in zip(s, t, strict=True)]
            gv = [t_ * p * (a - b - d) for p, a, b in zip(t, lt, ls, strict=True)]
        else:
            d = mpmath.fsum(p * (a - b) for p, a, b in zip(s, ls, lt, strict=True))
            gz = [t_ * p * (a - b - d) for p, a, b in zip(s, ls, lt, strict=True)]
            gv = [t_ * (a - b) for a, b in zip(t, s, strict=True)]
        return float(t_ * t_ * d), [float(g) for g in gz], [float(g) for g in gv]


CASES = [
    # (student, teacher, T, direction): the loss is finite and the gradients too
    ([1.0, 2.0], [-1e308, 1e308], 1e-100, "forward"),
    ([0.0, 16.0], [-1e308, 1e308], 1.0, "forward"),
    ([0.0, 20.0], [-1e308, 1e308], 1.0, "forward"),
    ([0.0, 16.0, -3.0], [-1e308, 1e308, 1e308 - 2e292], 1.0, "forward"),
    ([-1e308, 1e308], [0.0, 20.0], 1.0, "reverse"),
    ([0.0, 1e-100], [1e-100, 0.0], 1e-100, "forward"),
    ([0.0, 1e-100], [1e-100, 0.0], 1e-100, "reverse"),
    ([0.0, 2e-17, 1e-17], [1e-17, 0.0, 3e-17], 1e-17, "forward"),
    ([0.0, 1e-300], [1e-300, 0.0], 1e-300, "forward"),
]
IDS = [f"case{i}" for i in range(len(CASES))]


def _close(got, want, rtol: float = 1e-9) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(float(np.abs(want).max()), np.finfo(np.float64).tiny)
    return bool(np.all(np.isfinite(got))) and float(np.abs(got - want).max()) <= rtol * scale


@pytest.mark.parametrize(("z", "v", "temperature", "direction"), CASES, ids=IDS)
@pytest.mark.parametrize("rows", [1, 3000], ids=["lean", "full"])
def test_numpy_loss_and_gradient(z, v, temperature, direction, rows):
    loss, gz, _ = _oracle(z, v, temperature, direction)
    zs, vs = np.array([z] * rows), np.array([v] * rows)
    options = {"temperature": temperature, "direction": direction, "reduction": "none"}
    got = distillation_loss(zs, vs, **options)
    grad = distillation_loss_grad(zs, vs, **options)
    assert _close(got, [loss] * rows), (got[0], loss)
    assert _close(grad, [gz] * rows), (grad[0], gz)


@pytest.mark.parametrize(("z", "v", "temperature", "direction"), CASES, ids=IDS)
@pytest.mark.parametrize(
    ("shape", "teacher_grad"),
    [((-1,), False), ((1, -1), False), ((1, -1), True), ((1, -1, 1), True)],
    ids=["vector", "fused", "teacher-grad", "spatial"],
)
def test_torch_loss_and_gradients(z, v, temperature, direction, shape, teacher_grad):
    loss, gz, gv = _oracle(z, v, temperature, direction)
    x = torch.tensor(z, dtype=torch.float64).reshape(shape).requires_grad_()
    t = torch.tensor(v, dtype=torch.float64).reshape(shape).requires_grad_(teacher_grad)
    out = ct.distillation_loss(x, t, temperature, "sum", direction=direction)
    out.backward()
    assert _close([out.item()], [loss]), (out.item(), loss)
    assert _close(x.grad.flatten(), gz), (x.grad, gz)
    if teacher_grad:
        assert _close(t.grad.flatten(), gv), (t.grad, gv)
