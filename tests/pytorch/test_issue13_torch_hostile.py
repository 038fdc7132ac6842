"""Issue 13, a hostile tester's pass over ``crossent.torch``: the bugs it found.

Oracles: ``torch.nn.functional`` in float64 autograd (the z-loss as
:math:`\\lambda\\operatorname{LSE}^2` added to it), from the inputs as given.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

torch = pytest.importorskip("torch")

F = torch.nn.functional

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputTypeError  # noqa: E402
from spawned import gloo_marks, run_spawned  # noqa: E402


def _oracle_gradient(
    z: Any, labels: Any, *, temperature: float = 1.0, z_loss: float = 0.0, **options: Any
) -> Any:
    """The float64 gradient of the summed loss (class weights given as float64)."""
    x = z.detach().double().requires_grad_()
    scaled = x / temperature
    loss = F.cross_entropy(scaled, labels, reduction="sum", **options)
    if z_loss:
        active = labels != -100
        loss = loss + z_loss * (torch.logsumexp(scaled, 1)[active] ** 2).sum()
    return torch.autograd.grad(loss, x)[0]


# Bug 1 (main 6a130e6): the class-id backward of float32/float16/bfloat16 logits (the
# fused kernels) formed p_c = exp(z_c - LSE) with the float64 LSE = m + ell rounded to
# an ulp of m: logits tied at 1e30 both got p = 1 (the gradient of [1e30, 1e30, 0],
# label 0, was [0, 1, 0]; [1, 1, -1] is right). The loss was right (from log p_y).
TIED = [
    [1e30, 1e30, 0.0],
    [3e38, 3e38, -3e38],
    [-3e38, -3e38, -3.1e38],
    [2e7, 2e7, 2e7 - 1.0],
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.2}, {"weight": [1.0, 2.0, 3.0]}, {"temperature": 4.0}],
    ids=["plain", "smoothing", "weight", "temperature"],
)
def test_tied_huge_logits_gradient(dtype: str, options: dict[str, Any]) -> None:
    dt = getattr(torch, dtype)
    rows = TIED if dt == torch.float32 else [[6e4, 6e4, 0.0], [-6e4, -6e4, 0.0]]
    if dt == torch.bfloat16:
        # 2e6: |LSE| in [2**20, 2**24), where the losses package's pass (not torch's,
        # from 2**24) formed the row again but read and wrote bfloat16's uint16 bits as
        # integers: the gradient was all 0 (main 52f9661)
        rows = [[1e30, 1e30, 0.0], [-3e38, -3e38, 0.0], [2e6, 2e6, 0.0]]
    z = torch.tensor(rows, dtype=dt, requires_grad=True)
    labels = torch.zeros(len(rows), dtype=torch.long)
    kw = dict(options)
    oracle_kw = dict(options)
    if "weight" in kw:
        kw["weight"] = torch.tensor(kw["weight"])
        oracle_kw["weight"] = torch.tensor(oracle_kw["weight"], dtype=torch.float64)
    loss = ct.cross_entropy(z, labels, reduction="sum", **kw)
    (got,) = torch.autograd.grad(loss, z)
    want = _oracle_gradient(z, labels, **oracle_kw).to(dt)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_tied_huge_logits_gradient_z_loss() -> None:
    z = torch.tensor([[1e3, 1e3, 0.0], [3e7, 3e7, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    (got,) = torch.autograd.grad(ct.cross_entropy(z, labels, reduction="sum", z_loss=1e-4), z)
    want = _oracle_gradient(z, labels, z_loss=1e-4)
    torch.testing.assert_close(got.double(), want, rtol=2e-7, atol=0)


def test_tied_huge_logits_gradient_k_dim_ignored_rows() -> None:
    # Channels-first K-dim layout, 'none' with a per-row upstream, an ignored row.
    z = torch.tensor([[[1e30, 5.0], [1e30, 5.0], [0.0, 5.0]]], requires_grad=True)  # (1, 3, 2)
    labels = torch.tensor([[0, -100]])
    upstream = torch.tensor([[3.0, 7.0]])
    rows = ct.cross_entropy(z, labels, reduction="none")
    (got,) = torch.autograd.grad(rows, z, upstream)
    x = z.detach().double().requires_grad_()
    (want,) = torch.autograd.grad(
        F.cross_entropy(x, labels, reduction="none"), x, upstream.double()
    )
    torch.testing.assert_close(got, want.float(), rtol=0, atol=0)


# Bug 2 (main 6a130e6): Dynamo traced the lookup in the losses package's table of
# checked options (``_batch._CHECKED_OPTIONS``) and guarded on its length, so each call
# anywhere in the process that added options to it (an eager call with another
# label_smoothing) recompiled every compiled loss: one graph per call here, until the
# recompile limit (8) sent the function back to eager.
_FRESH = itertools.count()


@pytest.mark.parametrize("kind", ["labels", "probs", "module"])
def test_compiled_loss_not_recompiled_by_new_options_elsewhere(kind: str) -> None:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    y = torch.tensor([0, 1, 2])
    if kind == "module":
        compiled = torch.compile(
            ct.CrossEntropyLoss(label_smoothing=0.2), fullgraph=True, backend="aot_eager"
        )
    elif kind == "labels":
        compiled = torch.compile(
            lambda x, y: ct.cross_entropy(x, y, label_smoothing=0.1),
            fullgraph=True,
            backend="aot_eager",
        )
    else:
        compiled = torch.compile(
            lambda x, y: ct.cross_entropy(x, torch.softmax(x.detach(), 1)),
            fullgraph=True,
            backend="aot_eager",
        )
    x = torch.randn(3, 7, requires_grad=True)
    compiled(x, y).backward()
    for _ in range(4):
        # Eager calls with options not seen before (fresh keys of the table).
        fresh = 0.3 + next(_FRESH) / 1024
        ct.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), label_smoothing=fresh)
        compiled(x, y).backward()
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


# Bug 3 (main 6a130e6): inside a CPU bfloat16 autocast region the hidden states come out
# of autocast layers in bfloat16 while the head's weight stays float32;
# ``cross_entropy(head(h), y)`` runs there (autocast casts F.linear's arguments), but
# ``linear_cross_entropy(h, head.weight, y)``, ``linear_head_cross_entropy`` and
# ``LinearCrossEntropyLoss`` raised InputTypeError ("must have one dtype").
@pytest.mark.parametrize("form", ["functional", "head", "module"])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_cross_entropy_mixed_dtypes_under_autocast(form: str, bias: bool) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 8)
    loss_module = ct.LinearCrossEntropyLoss(8, 13, bias=bias, ignore_index=-100)
    head = loss_module.linear
    x = torch.randn(5, 6)
    y = torch.tensor([0, 12, -100, 3, 7])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = layer(x)
        assert h.dtype == torch.bfloat16
        assert head.weight.dtype == torch.float32
        if form == "functional":
            loss = ct.linear_cross_entropy(
                h, head.weight, y, linear_bias=head.bias, ignore_index=-100
            )
        elif form == "head":
            loss = ct.linear_head_cross_entropy(h, head, y, ignore_index=-100)
        else:
            loss = loss_module(h, y)
    assert loss.dtype == torch.float32
    got = torch.autograd.grad(loss, (layer.weight, head.weight))
    # The operands as autocast casts F.linear's (bfloat16), the rest exact: float64.
    hd = h.detach().double()
    z = hd @ head.weight.detach().bfloat16().double().T
    if bias:
        z = z + head.bias.detach().bfloat16().double()
    z.requires_grad_()
    want_loss = F.cross_entropy(z, y)
    (dz,) = torch.autograd.grad(want_loss, z)
    torch.testing.assert_close(loss.double(), want_loss, rtol=1e-6, atol=0)
    # The head's gradient dz^T h, rounded to bfloat16 (the cast weight's dtype).
    torch.testing.assert_close(got[1].double(), dz.T @ hd, rtol=8e-3, atol=1e-6)
    assert got[0].dtype == torch.float32
    assert bool(torch.isfinite(got[0]).all())


# Bug 4 (main 6a130e6): the linear losses' custom op ran its float32 matrix products
# inside the caller's autocast region, which took them to bfloat16 in eager calls (each
# block's logits, and the gradient before dW = G^T h, rounded to bfloat16), while the
# compiled graph ran the op without it (float32): one call, two losses 1e-4 apart.
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_cross_entropy_products_not_autocast(reduction: str) -> None:
    torch.manual_seed(1)
    h = torch.randn(6, 8)
    weight = torch.randn(11, 8)
    bias = torch.randn(11)
    y = torch.tensor([0, 10, 3, 3, 7, 1])

    def loss_and_grads(autocast: bool, compiled: bool) -> list[Any]:
        hh, ww, bb = (t.clone().requires_grad_() for t in (h, weight, bias))

        def f(hh: Any, ww: Any, bb: Any) -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return ct.linear_cross_entropy(hh, ww, y, linear_bias=bb, reduction=reduction)

        run = torch.compile(f, fullgraph=True, backend="aot_eager") if compiled else f
        loss = run(hh, ww, bb)
        return [loss.detach(), *torch.autograd.grad(loss.sum(), (hh, ww, bb))]

    torch._dynamo.reset()
    plain = loss_and_grads(autocast=False, compiled=False)
    # float64 oracle: float32 products, not bfloat16 ones
    x = h.double() @ weight.double().T + bias.double()
    want = F.cross_entropy(x, y, reduction=reduction)
    torch.testing.assert_close(plain[0].double(), want, rtol=1e-6, atol=0)
    for compiled in (False, True):
        got = loss_and_grads(autocast=True, compiled=compiled)
        for a, b in zip(got, plain, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch._dynamo.reset()


def test_linear_cross_entropy_mixed_dtypes_outside_autocast_still_refused() -> None:
    h = torch.randn(3, 4, dtype=torch.bfloat16)
    w = torch.randn(5, 4)
    with pytest.raises(InputTypeError):
        ct.linear_cross_entropy(h, w, torch.tensor([0, 1, 2]))
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(InputTypeError):
        # float64 is not autocast's to cast (F.linear raises there too)
        ct.linear_cross_entropy(h.double(), w, torch.tensor([0, 1, 2]))


def _vocab_parallel_autocast_worker(rank: int, world: int) -> None:
    torch.manual_seed(0)  # the same tensors on every rank; each takes its slice
    layer = torch.nn.Linear(3, 4)
    head = torch.randn(10, 4, requires_grad=True)
    x = torch.randn(5, 3)
    y = torch.tensor([0, 9, 4, -100, 6])
    step = head.shape[0] // world
    mine = head[rank * step : (rank + 1) * step]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = layer(x)  # bfloat16; the head float32
        loss = ct.vocab_parallel_linear_cross_entropy(h, mine, y)
    # The operands as autocast casts F.linear's (bfloat16), the rest exact: float64.
    logits = h.detach().double() @ head.detach().bfloat16().double().T
    want = F.cross_entropy(logits, y)
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=0)


_DISTRIBUTED, _GLOO = gloo_marks()


@_DISTRIBUTED
@_GLOO
def test_vocab_parallel_linear_mixed_dtypes_under_autocast() -> None:
    run_spawned(_vocab_parallel_autocast_worker, 2, timeout=240)


# Bug 5 (main 6a130e6): the mean of probability targets formed its row count with
# ``new_tensor(rows.numel())``, which made torch.export specialise a dynamic batch to
# the example's ("You marked b as dynamic but your code specialized it to be a
# constant (5)"); class ids and reduction='none' exported.
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_export_probability_targets_dynamic_batch(reduction: str) -> None:
    class Loss(torch.nn.Module):
        def forward(self, x: Any, t: Any) -> Any:
            return ct.cross_entropy(x, t, label_smoothing=0.1, reduction=reduction)

    def example(n: int) -> tuple[Any, Any]:
        g = torch.Generator().manual_seed(n)
        x = torch.randn(n, 6, generator=g)
        return x, torch.softmax(torch.randn(n, 6, generator=g), 1)

    batch = torch.export.Dim("batch")
    exported = torch.export.export(
        Loss(), example(5), dynamic_shapes=({0: batch}, {0: batch})
    ).module()
    for n in (9, 2):
        x, t = example(n)
        want = F.cross_entropy(x.double(), t.double(), label_smoothing=0.1, reduction=reduction)
        torch.testing.assert_close(exported(x, t).double(), want, rtol=1e-6, atol=0)
