"""Issue 13 follow-up: float64 logits about 2e308 apart in ``crossent.torch``.

The gap :math:`c - m` of logits :math:`\\pm 10^{308}` overflows float64, and
:math:`(c - m)/T` overflows for :math:`T < 1` sooner; the loss weighs each gap by
:math:`v_c = w_c\\tilde t_c` (label smoothing's :math:`\\varepsilon/C`, a small
probability target, a class weight) and is finite where :math:`v_c` is small, or where
:math:`T > 1` brings the gap back in range. ``cross_entropy`` (labels and probability
targets), ``linear_cross_entropy`` and the vocab-parallel losses gave ``inf`` there (on
main: every loss value checked below); the reported case is the probability target
:math:`10^{-10}` at :math:`T = 0.5`, true loss :math:`4\\cdot 10^{298}`.

Oracle: mpmath at 200 bits, :math:`\\sum_c v_c (\\operatorname{LSE}(z/T) - z_c/T)` from
the float64 inputs as given (soft-capping: :math:`s\\tanh(z/s)` in mpmath too).
Gradients: :math:`(A p - v)/T`, with :math:`p` exactly one-hot here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")
dist = pytest.importorskip("torch.distributed")

import crossent.torch as ct  # noqa: E402
from spawned import run_spawned  # noqa: E402

BIG = 1e308
ROW = [-BIG, BIG]


def _truth(
    z: list[float], v: list[float], temperature: float, soft_cap: float | None = None
) -> float:
    """:math:`\\sum_c v_c(\\operatorname{LSE}(z') - z'_c)`, :math:`z' = \\operatorname{cap}(z)/T`,
    in mpmath (200 bits), rounded to float64 (inf where it overflows)."""
    with mpmath.workprec(200):
        capped = [
            mpmath.mpf(x) if soft_cap is None else soft_cap * mpmath.tanh(mpmath.mpf(x) / soft_cap)
            for x in z
        ]
        scaled = [x / mpmath.mpf(temperature) for x in capped]
        top = max(scaled)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in scaled))
        loss = mpmath.fsum(mpmath.mpf(w) * (lse - x) for w, x in zip(v, scaled, strict=True) if w)
        return float(loss) if abs(loss) < mpmath.mpf(np.finfo(np.float64).max) else np.inf


def _label_weights(label: int, eps: float, classes: int, weight: list[float] | None) -> list[float]:
    """:math:`v = w\\odot((1-\\varepsilon)e_y + \\varepsilon/C)`, float64 as the loss forms it."""
    w = [1.0] * classes if weight is None else weight
    return [w[c] * ((1 - eps) * (c == label) + eps / classes) for c in range(classes)]


def _close(got: float, want: float) -> None:
    assert np.isfinite(want), "each case has a finite true loss"
    assert got == pytest.approx(want, rel=1e-13), (got, want)


LABEL_CASES = [
    # (label, label_smoothing, temperature, class weights, soft_cap)
    (1, 1e-10, 0.5, None, None),  # eps/C x 4e308 = 2e298
    (1, 1e-10, 1.0, None, None),  # T = 1: the gap itself overflows
    (0, 0.0, 2.0, None, None),  # T > 1: (c - m)/T = -1e308 is finite
    (1, 1e-10, 2.0, None, None),
    (0, 0.0, 0.5, [1e-10, 1.0], None),  # a class weight below 1
    (1, 1e-10, 0.9, None, 1e308),  # capped: +-9.35e307, 1.87e308 apart
]


@pytest.mark.parametrize(("label", "eps", "temperature", "weight", "cap"), LABEL_CASES)
def test_label_loss_finite_past_the_gap(
    label: int, eps: float, temperature: float, weight: list[float] | None, cap: float | None
) -> None:
    """Class-index targets (the generic float64 path): inf on main."""
    z = [-1.7e308, 1.7e308] if cap else ROW
    want = _truth(z, _label_weights(label, eps, 2, weight), temperature, cap)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    got = ct.cross_entropy(
        torch.tensor([z], dtype=torch.float64),
        torch.tensor([label]),
        weight=w,
        reduction="sum",
        label_smoothing=eps,
        temperature=temperature,
        soft_cap=cap,
    )
    _close(float(got), want)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_probability_target_loss_and_gradient(temperature: float) -> None:
    """The reported case (T = 0.5: 4e298, inf on main), and the gradient
    :math:`(p - t)/T` with :math:`p = e_1` (right on main too)."""
    t = [1e-10, 1 - 1e-10]
    z = torch.tensor([ROW], dtype=torch.float64, requires_grad=True)
    loss = ct.cross_entropy(z, torch.tensor([t], dtype=torch.float64), temperature=temperature)
    _close(loss.item(), _truth(ROW, t, temperature))
    (grad,) = torch.autograd.grad(loss, z)
    want = [(0.0 - t[0]) / temperature, (1.0 - t[1]) / temperature]  # 1 - t[1] exact
    assert grad[0].tolist() == pytest.approx(want, rel=1e-15, abs=0)


def test_probability_targets_a_batch_and_grad_of_targets() -> None:
    """Only the far row is formed again; targets that need a gradient take the same
    path (inf on main), and their gradient LSE(z') - z' is finite
    (not NaN): 1e308 and 0 for the far row at T = 2."""
    t = torch.tensor([[1e-10, 1 - 1e-10], [0.25, 0.75]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([ROW, [0.5, -1.0]], dtype=torch.float64)
    loss = ct.cross_entropy(z, t, temperature=2.0, reduction="none")
    for i in range(2):
        _close(loss[i].item(), _truth(z[i].tolist(), t[i].tolist(), 2.0))
    (grad,) = torch.autograd.grad(loss.sum(), t)
    assert grad[0].tolist() == pytest.approx([1e308, 0.0], rel=1e-15, abs=0)
    near = torch.log_softmax(z[1] / 2.0, -1)
    assert torch.allclose(grad[1], -near, rtol=1e-15, atol=0)


def test_minus_inf_logit_of_target_zero_in_a_far_row() -> None:
    """A -inf logit whose target is 0 is absent from the far row's sum, and from its
    gradients (no 0 * inf = NaN, for the logits nor the targets)."""
    t = torch.tensor([[0.0, 1e-10, 1 - 1e-10]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([[-np.inf, *ROW]], dtype=torch.float64, requires_grad=True)
    loss = ct.cross_entropy(z, t, temperature=2.0)
    _close(loss.item(), _truth(ROW, t[0, 1:].tolist(), 2.0))
    grad_z, grad_t = torch.autograd.grad(loss, (z, t))
    assert grad_z[0].tolist() == pytest.approx([0.0, -0.5e-10, 0.5e-10], rel=1e-6, abs=0)
    assert not bool(torch.isnan(grad_t).any())


def test_float32_logits_tiny_temperature() -> None:
    """The custom ops of float32 logits (probability targets, class ids): their float64
    work overflows :math:`(c - m)/T = -10^{310}` at :math:`T = 10^{-300}`, weighed
    finitely by :math:`\\varepsilon/C` (:math:`5\\cdot 10^{19}`, inf on main)."""
    eps, temperature, row = 1e-290, 1e-300, [0.0, 1e10]
    loss = ct.cross_entropy(
        torch.tensor([row]),
        torch.tensor([[0.0, 1.0]]),
        label_smoothing=eps,
        temperature=temperature,
    )
    want = _truth(row, [eps / 2, 1 - eps / 2], temperature)
    assert loss.item() == float(np.float32(want))
    # Class ids: the fused kernels' rows (the same loss).
    loss = ct.cross_entropy(
        torch.tensor([row]), torch.tensor([1]), label_smoothing=eps, temperature=temperature
    )
    assert loss.item() == float(np.float32(want))


LINEAR_CASES = [(1, 1e-10, 0.5, None), (0, 0.0, 2.0, None), (0, 0.0, 0.5, [1e-10, 1.0])]


@pytest.mark.parametrize(("label", "eps", "temperature", "weight"), LINEAR_CASES)
def test_linear_loss_and_gradient(
    label: int, eps: float, temperature: float, weight: list[float] | None
) -> None:
    """``linear_cross_entropy`` with ``W = I`` (the logits exact): inf on main; its
    gradient :math:`(A p - v)/T`, :math:`p = e_1`, stays right."""
    h = torch.tensor([ROW], dtype=torch.float64, requires_grad=True)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    loss = ct.linear_cross_entropy(
        h,
        torch.eye(2, dtype=torch.float64),
        torch.tensor([label]),
        weight=w,
        reduction="sum",
        label_smoothing=eps,
        temperature=temperature,
    )
    v = _label_weights(label, eps, 2, weight)
    _close(loss.item(), _truth(ROW, v, temperature))
    (grad,) = torch.autograd.grad(loss, h)
    # Class 0: -v_0/T exactly. The label's A - v_1 cancels (the smoothed target rounded
    # to an ulp of 1, not of eps/C, on every path): an absolute bound of a few ulps of 1.
    assert grad[0, 0].item() == -v[0] / temperature
    assert grad[0, 1].item() == pytest.approx((sum(v) - v[1]) / temperature, rel=0, abs=1e-15)


def test_finite_rows_keep_their_values() -> None:
    """Rows that did not overflow are the common path's, bit for bit, beside a far row."""
    z = torch.tensor([ROW, [0.5, -1.0], [3.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    opts: dict[str, Any] = {"label_smoothing": 1e-10, "temperature": 0.5, "reduction": "none"}
    both = ct.cross_entropy(z, y, **opts)
    alone = ct.cross_entropy(z[1:], y[1:], **opts)
    assert torch.equal(both[1:], alone)
    _close(float(both[0]), _truth(ROW, _label_weights(1, 1e-10, 2, None), 0.5))


# ------------------------------------------------------------------- vocab-parallel


VP_CASES = [(1, 1e-10, 0.5), (0, 0.0, 2.0), (2, 1e-10, 1.0)]


def _vp_worker(rank: int, world: int) -> None:
    """Two ranks, classes [0, 2) and [2, 3) (logits -1e308, 1e308 | 3): each loss against
    the oracle of the whole row; ``vocab_parallel_linear_cross_entropy`` with ``W = I``."""
    row = [-BIG, BIG, 3.0]
    cut = slice(0, 2) if rank == 0 else slice(2, 3)
    for label, eps, temperature in VP_CASES:
        want = _truth(row, _label_weights(label, eps, 3, None), temperature)
        opts: dict[str, Any] = {"label_smoothing": eps, "temperature": temperature}
        z = torch.tensor([row], dtype=torch.float64)[:, cut]
        got = ct.vocab_parallel_cross_entropy(z, torch.tensor([label]), reduction="sum", **opts)
        _close(float(got), want)
        h = torch.tensor([row], dtype=torch.float64)
        w = torch.eye(3, dtype=torch.float64)[cut]
        got = ct.vocab_parallel_linear_cross_entropy(
            h, w, torch.tensor([label]), reduction="sum", **opts
        )
        _close(float(got), want)


@pytest.mark.distributed
@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is unavailable",
)
def test_vocab_parallel_far_rows() -> None:
    """Both vocab-parallel losses on two gloo ranks: inf on main."""
    run_spawned(_vp_worker, 2, timeout=120)
