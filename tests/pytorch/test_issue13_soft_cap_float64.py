"""Issue 13, exactness: ``crossent.torch.cross_entropy`` with ``soft_cap`` in float64.

Soft-capping keeps a call off the fused kernels; the generic path computed
:math:`s\\tanh(z/s)`, the softmax and the gradient in float32 for float32, float16 and
bfloat16 logits: the loss 1.2 to 2.5 float32 ulps off, the float32 gradient's small
entries (which cancel, :math:`p - t`) up to 1e5 ulps with probability targets. Now it
computes in float64 (``_launch.work_dtype``) and rounds once: the loss (float32 for
16-bit and float32 logits) and each gradient entry (in the logits' dtype) within one
ulp of torch's float64 autograd on the same stored values.

Every layout (contiguous, transposed storage, strided slices, classes on axis 1 of a
``(N, C, d)`` batch), integer labels and probability targets, the three reductions,
with temperature, label smoothing and class weights.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

CAP = 30.0
N, C = 24, 700
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
OPTIONS: dict[str, dict[str, Any]] = {
    "cap": {},
    "cap_temperature_smoothing_weight": {"temperature": 1.7, "label_smoothing": 0.1},
}


def _unit(truth: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One ulp of ``dtype`` at each entry of the float64 ``truth`` (subnormals' at 0)."""
    info = torch.finfo(dtype)
    magnitude = truth.abs().clamp_min(info.tiny)
    unit = torch.exp2(torch.floor(torch.log2(magnitude))) * info.eps
    return unit.clamp_min(info.tiny * info.eps)


def _ulps_off(got: torch.Tensor, truth: torch.Tensor) -> float:
    error = (got.double() - truth).abs()
    return float((error / _unit(truth, got.dtype)).max())


def _laid_out(z: torch.Tensor, layout: str) -> torch.Tensor:
    """``z`` (N, C) with the same values in ``layout`` (a leaf that requires grad)."""
    if layout == "contiguous":
        out = z.clone()
    elif layout == "transposed":
        out = z.t().contiguous().t()  # column-major storage
    elif layout == "strided":
        wide = torch.zeros((2 * N, 3 * C), dtype=z.dtype)
        wide[::2, ::3] = z
        out = wide[::2, ::3]
    else:  # "spatial": (N / 4, C, 4), classes on axis 1, not last
        out = z.reshape(N // 4, 4, C).transpose(1, 2)
    return out.detach().requires_grad_(True)


def _flat(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The per-row values (``(N, ...)``) of a result in ``layout`` in ``z``'s row order."""
    if layout == "spatial":
        return x.transpose(1, 2).reshape(N, *x.shape[1:2]) if x.ndim == 3 else x.reshape(N)
    return x


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("targets", ["labels", "probs"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided", "spatial"])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_issue13_soft_cap_loss_and_gradient_within_an_ulp(
    dtype: str, layout: str, targets: str, reduction: str, options: str
) -> None:
    torch_dtype = DTYPES[dtype]
    g = torch.Generator().manual_seed(13)
    z = (torch.randn(N, C, generator=g, dtype=torch.float64) * 12).to(torch_dtype)
    kw = dict(OPTIONS[options])
    weight = None
    if options != "cap":
        weight = torch.rand(C, generator=g, dtype=torch.float64).to(torch_dtype) + 0.5
    if targets == "labels":
        target = torch.randint(0, C, (N,), generator=g)
        target_64 = target
    else:
        target = torch.softmax(torch.randn(N, C, generator=g, dtype=torch.float64) * 3, -1)
        target = target.to(torch_dtype)
        target_64 = target.double()
    upstream = torch.rand(N, generator=g, dtype=torch.float64).float()  # as the loss's

    # The oracle: torch's float64 autograd on the stored values.
    z_64 = z.double().requires_grad_(True)
    capped = CAP * torch.tanh(z_64 / CAP) / kw.get("temperature", 1.0)
    truth = torch.nn.functional.cross_entropy(
        capped,
        target_64,
        weight=None if weight is None else weight.double(),
        reduction=reduction,
        label_smoothing=kw.get("label_smoothing", 0.0),
    )
    (truth * upstream.double() if reduction == "none" else truth).sum().backward()
    assert z_64.grad is not None

    zl = _laid_out(z, layout)
    if layout == "spatial":  # the same rows: (N / 4, C, 4) <-> (N, C)
        target = (
            target.reshape(N // 4, 4)
            if targets == "labels"
            else target.reshape(N // 4, 4, C).transpose(1, 2)
        )
    loss = ct.cross_entropy(zl, target, weight=weight, reduction=reduction, soft_cap=CAP, **kw)
    assert loss.dtype == torch.float32
    if reduction == "none":
        assert _ulps_off(_flat(loss.detach(), layout), truth.detach()) <= 1.0
        (loss * _flat_upstream(upstream, layout)).sum().backward()
    else:
        assert _ulps_off(loss.detach(), truth.detach()) <= 1.0
        loss.backward()
    assert zl.grad is not None
    assert zl.grad.dtype == torch_dtype
    assert _ulps_off(_flat(zl.grad, layout), z_64.grad) <= 1.0


def _flat_upstream(upstream: torch.Tensor, layout: str) -> torch.Tensor:
    return upstream.reshape(N // 4, 4) if layout == "spatial" else upstream


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_soft_cap_widens_on_the_cpu_only(dtype: str) -> None:
    """float64 work for a soft-capped call on the CPU; float32 on other devices (the
    meta device stands in for an accelerator, where float64 runs at a fraction of
    float32's rate); float64 input stays float64 everywhere."""
    from crossent.torch._launch import work_dtype

    kind = getattr(torch, dtype)
    cpu, meta = torch.empty(2, 3, dtype=kind), torch.empty(2, 3, dtype=kind, device="meta")
    assert work_dtype(cpu, 30.0) == torch.float64
    assert work_dtype(meta, 30.0) == torch.float32
    assert work_dtype(cpu, None) == torch.float32
    assert work_dtype(torch.empty(2, 3, dtype=torch.float64, device="meta"), None) == torch.float64
