r"""Forward mode of ``crossent.torch``'s cross-entropy under composed ``torch.func`` transforms.

On main:

* ``torch.func.jvp`` of ``torch.func.vmap`` of ``cross_entropy`` (class ids) and of
  ``linear_cross_entropy`` raised PyTorch's internal assert "Expected both tensor and
  its forward grad to be floating point or complex" (the linear loss first a
  ``treespec.unflatten`` ValueError). vmap's generated rule runs ``setup_context`` on its
  wrappers of the outputs, so ``ctx.mark_non_differentiable`` of the statistics outputs
  does not take (torch 2.13's ``CtxCustomSave`` unwraps only the saved tensors), and the
  ``jvp`` rules' None tangent of those, still differentiable, outputs is that assert
  (pytorch/pytorch#90067). Now the rules give zeros there (``_ops._stat_tangents``) and
  the linear function's non-tensor arguments travel as one ``_Settings``.

Oracles: ``torch.nn.functional.cross_entropy`` in float64 (plus the textbook soft cap,
temperature and z-loss) under the same transforms.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
func = pytest.importorskip("torch.func")
_ops = pytest.importorskip("crossent.torch._ops")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

B, N, C, D = 3, 4, 5, 3
_REDUCTIONS = ["mean", "sum", "none"]


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return (
        {"rtol": 1e-11, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 3e-5, "atol": 3e-6}
    )


def _reference(
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``F.cross_entropy`` of the capped tempered logits (classes on axis 1) plus
    :math:`\\lambda w_y \\operatorname{LSE}^2`, reduced as PyTorch reduces (``'mean'``
    over :math:`\\sum w_y`)."""
    z = z if soft_cap is None else soft_cap * torch.tanh(z / soft_cap)
    z = z / temperature
    rows = F.cross_entropy(
        z, y, weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    kept = y != ignore_index
    w_y = torch.where(kept, 1.0 if weight is None else weight[y.clamp(min=0)], 0.0).to(z.dtype)
    rows = rows + z_loss * w_y * torch.logsumexp(z, 1) ** 2
    if reduction == "none":
        return rows
    return rows.sum() if reduction == "sum" else rows.sum() / w_y.sum()


_OPTIONS: list[dict[str, Any]] = [
    {},
    {"label_smoothing": 0.1, "weight": True},
    {"z_loss": 1e-2, "soft_cap": 2.0},
    {"temperature": 0.6, "label_smoothing": 0.2},
]


def _options(options: dict[str, Any], g: torch.Generator) -> dict[str, Any]:
    kw = dict(options)
    if kw.pop("weight", False):
        kw["weight"] = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    return kw


def _as(kw: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    w = kw.get("weight")
    return kw if w is None else {**kw, "weight": w.to(dtype)}


@pytest.mark.parametrize("options", _OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("reduction", _REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_jvp_of_vmap_class_ids(dtype: torch.dtype, reduction: str, options: dict[str, Any]) -> None:
    """``jvp(vmap(f))`` and ``jacfwd(vmap(f))`` of class ids (an ignored row, batched
    labels), against float64 ``F.cross_entropy`` under the same transforms (on main the
    internal assert)."""
    g = torch.Generator().manual_seed(21)
    z = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, N), generator=g)
    y[1, 2] = -100
    dz = torch.randn(z.shape, generator=g, dtype=torch.float64)
    kw = _options(options, g)

    def ours(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, t, reduction=reduction, **_as(kw, x.dtype))

    def theirs(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _reference(x, t, reduction=reduction, **kw)

    value, tangent = func.jvp(lambda x: func.vmap(ours)(x, y), (z.to(dtype),), (dz.to(dtype),))
    want_value, want_tangent = func.jvp(lambda x: func.vmap(theirs)(x, y), (z,), (dz,))
    assert value.dtype == tangent.dtype == dtype
    torch.testing.assert_close(value.double(), want_value, **_tol(dtype))
    torch.testing.assert_close(tangent.double(), want_tangent, **_tol(dtype))
    got = func.jacfwd(lambda x: func.vmap(ours)(x, y))(z.to(dtype))
    want = func.jacfwd(lambda x: func.vmap(theirs)(x, y))(z)
    torch.testing.assert_close(got.double(), want, **_tol(dtype))


@pytest.mark.parametrize("reduction", _REDUCTIONS)
def test_jvp_of_vmap_linear(reduction: str) -> None:
    """``jvp(vmap(f))`` of ``linear_cross_entropy`` in the hidden states, the classifier
    and its bias, per example, against ``F.cross_entropy(F.linear(...))`` (on main the
    ``treespec`` ValueError)."""
    g = torch.Generator().manual_seed(22)
    h = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, N), generator=g)
    y[0, 1] = -100
    primals = (h, w, b)
    tangents = tuple(torch.randn(x.shape, generator=g, dtype=torch.float64) for x in primals)

    def ours(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        def one(xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            return ct.linear_cross_entropy(
                xi, m, yi, linear_bias=c, reduction=reduction, ignore_index=-100
            )

        return func.vmap(one)(x, y)

    def theirs(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        def one(xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(F.linear(xi, m, c), yi, reduction=reduction)

        return func.vmap(one)(x, y)

    got = func.jvp(ours, primals, tangents)
    want = func.jvp(theirs, primals, tangents)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-11, atol=1e-13)
