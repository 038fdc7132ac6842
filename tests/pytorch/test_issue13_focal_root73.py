r"""The sigmoid focal loss's logits' gradient of PyTorch tensors near its root (issue 13,
stop 73, branch focal2).

At :math:`\gamma > 0` autograd's gradient of the formula summed
:math:`\gamma(1-2t)\frac{\sigma(x)\sigma(-x)}{1-p_t}\ell_{\mathrm{BCE}}` and
:math:`\sigma(x) - t` (times :math:`(1-p_t)^\gamma`), which cancel near the gradient's
root: on main float32 was up to 2.7e7 ulps off with the wrong sign, float64's relative
error 4.9-77 at a root (``benchmarks/check_focal_autograd_root.py``). Now the logits'
gradient is ``crossent.sigmoid_focal_loss_grad``'s (refined where the terms cancel),
through ``crossent._torch_binary.BinaryFunction``; the oracle is mpmath at 200 bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

import oracles  # noqa: E402

ROOTS = [  # (gamma, t, alpha, a float64 root of the logits' gradient)
    (0.5, 0.9, None, 2.9012182062934073),
    (1.0, 0.3, 0.75, -1.4268908310435033),
    (2.0, 0.80292, None, 3.0421665295844433),
    (2.0, 0.05, None, -5.275197892857137),
]
OFFSETS = (0.0, 1e-12, -1e-9, 1e-6, -1e-4)


def _ulps(got: float, true: mpmath.mpf, bits: int) -> float:
    """``|got - true|`` in units of ``true``'s ulp (``bits``: the significand's)."""
    unit = 2.0 ** (math.floor(math.log2(abs(float(true)))) - bits)
    return float(abs(mpmath.mpf(got) - true)) / unit


@pytest.mark.parametrize(
    ("dtype", "bits", "limit"),
    [(torch.float32, 23, 1.0), (torch.float64, 52, 64.0)],
    ids=["float32", "float64"],
)
@pytest.mark.parametrize(("gamma", "t", "alpha", "root"), ROOTS)
@pytest.mark.parametrize("drop_in", [False, True], ids=["losses", "drop_in"])
def test_gradient_near_the_root(
    dtype: torch.dtype,
    bits: int,
    limit: float,
    gamma: float,
    t: float,
    alpha: float | None,
    root: float,
    drop_in: bool,
) -> None:
    """Within an ulp (float32) and 64 ulps (float64, the twin's refinement: 54 at most
    in ``check_focal_autograd_root.py``) of mpmath's, of its sign; on main float32 gave
    the wrong sign at the roots and float64 a relative error up to 77."""
    x = torch.tensor([root + off for off in OFFSETS], dtype=torch.float64).to(dtype)
    tt = torch.full_like(x, t)
    xr = x.clone().requires_grad_()
    if drop_in:
        loss = ct.sigmoid_focal_loss(
            xr, tt, alpha=-1.0 if alpha is None else alpha, gamma=gamma, reduction="sum"
        )
    else:
        loss = crossent.sigmoid_focal_loss(xr, tt, gamma=gamma, alpha=alpha, reduction="sum")
    loss.backward()
    assert xr.grad is not None
    assert xr.grad.dtype == dtype
    for i, (xi, ti) in enumerate(zip(x.tolist(), tt.tolist(), strict=True)):
        true = oracles.sigmoid_focal_gradient(xi, ti, gamma, alpha)
        got = float(xr.grad[i])
        assert math.copysign(1.0, got) == math.copysign(1.0, float(true)) or got == 0.0, (i, got)
        assert _ulps(got, true, bits) <= limit, (i, got, float(true))


def test_weighted_mean_matches_the_twin() -> None:
    """Weights, label smoothing and ``'mean'``: the gradient is the NumPy twin's (float64,
    refined) times the upstream ``w / n``, rounded once: within an ulp of float32."""
    gamma, t, root = 2.0, 0.80292, 3.0421665295844433
    x = torch.tensor([root, root + 1e-6, -0.5, 4.0], dtype=torch.float32)
    tt = torch.tensor([t, t, 0.2, 1.0], dtype=torch.float32)
    w = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float32)
    xr = x.clone().requires_grad_()
    crossent.sigmoid_focal_loss(
        xr, tt, weight=w, gamma=gamma, alpha=0.25, label_smoothing=0.01, reduction="sum"
    ).backward()
    twin = crossent.sigmoid_focal_loss_grad(
        x.double().numpy(),
        tt.double().numpy(),
        weight=w.double().numpy(),
        gamma=gamma,
        alpha=0.25,
        label_smoothing=0.01,
        reduction="sum",
    )
    assert xr.grad is not None
    got = xr.grad.double().numpy()
    unit = np.spacing(np.abs(twin).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - twin) <= unit), (got, twin)


def test_half_logits_take_the_float32_gradient() -> None:
    """float16 and bfloat16 logits compute in float32: the gradient is the float32
    call's, rounded to the logits' dtype (on main the float32 formula's, whose sign
    at the root was wrong)."""
    gamma, t, root = 2.0, 0.80292, 3.0421665295844433
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.tensor([root, -0.5], dtype=dtype, requires_grad=True)
        tt = torch.tensor([t, 0.2], dtype=dtype)
        crossent.sigmoid_focal_loss(x, tt, gamma=gamma, reduction="sum").backward()
        x32 = x.detach().float().requires_grad_()
        crossent.sigmoid_focal_loss(x32, tt.float(), gamma=gamma, reduction="sum").backward()
        assert x.grad is not None
        assert x32.grad is not None
        assert x.grad.dtype == dtype
        assert torch.equal(x.grad, x32.grad.to(dtype))
        true = oracles.sigmoid_focal_gradient(float(x.detach()[0]), float(tt[0]), gamma, None)
        assert math.copysign(1.0, float(x.grad[0])) == math.copysign(1.0, float(true))


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_second_derivatives_by_finite_differences(gamma: float) -> None:
    """Away from the root, ``create_graph``'s second derivatives (the formula's graph) in
    the logits and targets, mixed too, against central differences of the exact first
    derivatives (float64, ``gamma`` 0.5 and 2, ``alpha``, a weight)."""
    x0 = torch.tensor([-0.4, 1e-3, 1.3], dtype=torch.float64)
    t0 = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64)
    w = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)

    def grads(x: torch.Tensor, t: torch.Tensor, graph: bool) -> tuple[torch.Tensor, ...]:
        loss = crossent.sigmoid_focal_loss(x, t, weight=w, gamma=gamma, alpha=0.25, reduction="sum")
        return torch.autograd.grad(loss, (x, t), create_graph=graph)

    x = x0.clone().requires_grad_()
    t = t0.clone().requires_grad_()
    gx, gt = grads(x, t, True)
    hxx, hxt = torch.autograd.grad(gx.sum(), (x, t), retain_graph=True)
    htx, htt = torch.autograd.grad(gt.sum(), (x, t))
    h = 1e-6
    dx = [g.detach() for g in grads((x0 + h).requires_grad_(), t0.clone().requires_grad_(), False)]
    mx = [g.detach() for g in grads((x0 - h).requires_grad_(), t0.clone().requires_grad_(), False)]
    dt = [g.detach() for g in grads(x0.clone().requires_grad_(), (t0 + h).requires_grad_(), False)]
    mt = [g.detach() for g in grads(x0.clone().requires_grad_(), (t0 - h).requires_grad_(), False)]
    fd = {
        "xx": (dx[0] - mx[0]) / (2 * h),
        "tx": (dx[1] - mx[1]) / (2 * h),
        "xt": (dt[0] - mt[0]) / (2 * h),
        "tt": (dt[1] - mt[1]) / (2 * h),
    }
    got = {"xx": hxx, "tx": htx, "xt": hxt, "tt": htt}
    for key, value in fd.items():
        torch.testing.assert_close(got[key], value, rtol=1e-6, atol=1e-8, msg=key)
