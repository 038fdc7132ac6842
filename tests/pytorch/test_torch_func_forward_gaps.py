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
* ``jacfwd(jacfwd(...))`` (and ``jvp`` of ``jvp``) of ``cross_entropy`` with class ids
  raised an InputError: PyTorch runs an ``autograd.Function``'s ``jvp`` rule with
  forward AD off, so an outer forward level sees a constant (a silent 0). Now class ids
  take plain differentiable operations under nested forward mode
  (``_ops.plain_label_rows``), with the op's checks. The linear losses keep their error
  (they have no second derivative in any mode).
* ``jacfwd(jacfwd(...))`` of probability targets with ``soft_cap`` was silently wrong
  (the cap's ``autograd.Function``, as above): now torch's ``tanh`` there.
* forward mode of ``linear_cross_entropy(..., reduction='none')`` formed the whole N x C
  logits; now by blocks of rows (``chunk_size``, automatic by default).

Oracles: ``torch.nn.functional.cross_entropy`` in float64 (plus the textbook soft cap,
temperature and z-loss) under the same transforms.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError

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


@pytest.mark.parametrize("options", _OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("reduction", _REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_nested_forward_mode_class_ids(
    dtype: torch.dtype, reduction: str, options: dict[str, Any]
) -> None:
    """``jacfwd(jacfwd(f))`` (forward-over-forward), ``jvp`` of ``jvp`` and the third
    derivative ``jacfwd`` cubed of class ids (an ignored row), against float64
    ``F.cross_entropy`` under the same transforms (on main an InputError)."""
    g = torch.Generator().manual_seed(23)
    z = torch.randn(N, C, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 4, -100, 2])
    dz = torch.randn(z.shape, generator=g, dtype=torch.float64)
    kw = _options(options, g)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, y, reduction=reduction, **_as(kw, x.dtype))

    def theirs(x: torch.Tensor) -> torch.Tensor:
        return _reference(x, y, reduction=reduction, **kw)

    got = func.jacfwd(func.jacfwd(ours))(z.to(dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), func.jacfwd(func.jacfwd(theirs))(z), **_tol(dtype))

    def tangent_of(f: Any) -> Any:
        return lambda x: func.jvp(f, (x,), (dz.to(x.dtype),))[1]

    got_t = func.jvp(tangent_of(ours), (z.to(dtype),), (dz.to(dtype),))
    want_t = func.jvp(tangent_of(theirs), (z,), (dz,))
    for a, e in zip(got_t, want_t, strict=True):
        torch.testing.assert_close(a.double(), e, **_tol(dtype))
    if reduction == "mean" and dtype == torch.float64:
        third = func.jacfwd(func.jacfwd(func.jacfwd(ours)))(z)
        torch.testing.assert_close(third, func.jacfwd(func.jacfwd(func.jacfwd(theirs)))(z))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_nested_forward_mode_soft_cap_of_probabilities(temperature: float) -> None:
    """``jacfwd(jacfwd(f))`` of probability targets with a soft cap: the cap is an
    ``autograd.Function`` (``_launch._SoftCap``) whose ``jvp`` rule PyTorch does not
    differentiate again, so on main the cap's second derivative was a silent 0 (an
    error of 0.05 in this Hessian, no exception); now torch's ``tanh`` there."""
    g = torch.Generator().manual_seed(26)
    z = torch.randn(N, C, generator=g, dtype=torch.float64)
    t = torch.softmax(torch.randn(N, C, generator=g, dtype=torch.float64), 1)
    kw = {"soft_cap": 2.0, "temperature": temperature}
    got = func.jacfwd(func.jacfwd(lambda x: ct.cross_entropy(x, t, **kw)))(z)
    capped = lambda x: 2.0 * torch.tanh(x / 2.0) / temperature  # noqa: E731
    want = func.jacfwd(func.jacfwd(lambda x: F.cross_entropy(capped(x), t)))(z)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)


def test_nested_forward_mode_per_example() -> None:
    """``vmap(jacfwd(jacfwd(f)))`` with per-example labels, and ``jacfwd(jacfwd(...))``
    of a (N, C, d) batch, against float64 ``F.cross_entropy``."""
    g = torch.Generator().manual_seed(24)
    z = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, N), generator=g)
    got = func.vmap(func.jacfwd(func.jacfwd(ct.cross_entropy)))(z, y)
    want = func.vmap(func.jacfwd(func.jacfwd(F.cross_entropy)))(z, y)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)
    spatial = z.movedim(0, -1)  # (N, C, B)
    labels = y.T  # (N, B)
    got = func.jacfwd(func.jacfwd(lambda x: ct.cross_entropy(x, labels)))(spatial)
    want = func.jacfwd(func.jacfwd(lambda x: F.cross_entropy(x, labels)))(spatial)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)


def test_nested_forward_mode_checks_as_the_op() -> None:
    """Under nested forward mode the class ids and the logits are checked as the op
    checks them (the same InputError as an eager call); a NaN in an ignored row is no
    error (its row is 0, its derivatives 0)."""
    z = torch.randn(N, C, dtype=torch.float64)
    bad = torch.tensor([0, 5, 1, 2])
    twice = func.jacfwd(func.jacfwd(lambda x: ct.cross_entropy(x, bad)))
    with pytest.raises(InputError, match=r"class ids in \[0, 5\).*row 1 has 5"):
        twice(z)
    y = torch.tensor([0, 4, -100, 2])
    nan = z.clone()
    nan[1, 3] = float("nan")
    with pytest.raises(InputError, match=r"`input` contains NaN at index \(1, 3\)"):
        ct.cross_entropy(nan, y)
    with pytest.raises(InputError, match=r"`input` contains NaN at index \(1, 3\)"):
        func.jacfwd(func.jacfwd(lambda x: ct.cross_entropy(x, y)))(nan)
    ignored = z.clone()
    ignored[2, 0] = float("nan")
    got = func.jacfwd(func.jacfwd(lambda x: ct.cross_entropy(x, y, reduction="sum")))(ignored)
    assert bool(torch.isfinite(got).all())
    assert bool((got[2] == 0).all())
    kept = torch.tensor([True, True, False, True])
    want = func.jacfwd(func.jacfwd(lambda x: F.cross_entropy(x, y[kept], reduction="sum")))
    torch.testing.assert_close(got[kept][:, :, kept], want(z[kept]), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("chunk_size", [2, 3])
def test_linear_rows_tangent_by_blocks(monkeypatch: pytest.MonkeyPatch, chunk_size: int) -> None:
    """Forward mode of ``reduction='none'`` forms the logits by blocks of ``chunk_size``
    rows: the row gradients' kernel sees no more rows than a block (on main all 5 at
    once), and ``jvp`` and ``jacfwd`` match
    float64 ``F.cross_entropy(F.linear(...))``."""
    sizes: list[int] = []
    real = _ops._unit_row_gradients

    def spy(logits: torch.Tensor, *args: Any) -> torch.Tensor:
        sizes.append(int(logits.shape[0]))
        return real(logits, *args)

    monkeypatch.setattr(_ops, "_unit_row_gradients", spy)
    g = torch.Generator().manual_seed(25)
    n = 5
    h = torch.randn(n, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, -100, 4, 2])
    primals = (h, w, b)
    tangents = tuple(torch.randn(x.shape, generator=g, dtype=torch.float64) for x in primals)

    def ours(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return ct.linear_cross_entropy(
            x,
            m,
            y,
            linear_bias=c,
            reduction="none",
            chunk_size=chunk_size,
            label_smoothing=0.1,
            ignore_index=-100,
        )

    def theirs(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(x, m, c), y, reduction="none", label_smoothing=0.1)

    got = func.jvp(ours, primals, tangents)[1]
    torch.testing.assert_close(got, func.jvp(theirs, primals, tangents)[1], rtol=1e-12, atol=1e-14)
    assert max(sizes) == chunk_size
    assert sum(sizes) == n
    jac = func.jacfwd(ours, argnums=(0, 1, 2))(*primals)
    want = func.jacfwd(theirs, argnums=(0, 1, 2))(*primals)
    for a, e in zip(jac, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-14)
