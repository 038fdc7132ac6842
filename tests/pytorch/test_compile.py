"""torch.compile(fullgraph=True): no graph break, same values and gradients, checks still run.

Few and small: the first compilation in a process costs tens of seconds on 2 cores.
Graph breaks and the fake kernels are Dynamo's and AOTAutograd's business, which the
``aot_eager`` backend runs in full; one test also runs the default Inductor backend.
"""

from __future__ import annotations

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")

# Inductor's own code calls a deprecated torch.jit API on its first compilation.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_cross_entropy_compiles_fullgraph_with_ignored_targets(backend):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, 3, generator=gen)
    y = torch.randint(0, 5, (6, 3), generator=gen)
    y[1, 2] = y[4, 0] = -100
    w = torch.rand(5, generator=gen) + 0.5

    def loss_fn(z, y, w):
        return ct.cross_entropy(z, y, w, label_smoothing=0.1)

    compiled = torch.compile(loss_fn, fullgraph=True, backend=backend)
    leaf = z.clone().requires_grad_(True)
    loss = compiled(leaf, y, w)
    loss.backward()
    ref_leaf = z.clone().requires_grad_(True)
    ref = F.cross_entropy(ref_leaf, y, w, label_smoothing=0.1)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-5, atol=1e-7)
    # The class-id check runs inside the opaque op, in the compiled function too.
    bad = y.clone()
    bad[3, 1] = 9
    with pytest.raises(InputError, match=r"row \(3, 1\) has 9"):
        compiled(z, bad, w)
    # Every target ignored: 0, not NaN, under compile too.
    assert float(compiled(z, torch.full_like(y, -100), w)) == 0.0


def test_linear_cross_entropy_compiles_fullgraph():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(10, 4, generator=gen)
    w = torch.randn(30, 4, generator=gen)
    b = torch.randn(30, generator=gen)
    y = torch.randint(0, 30, (10,), generator=gen)
    y[[2, 7]] = -100

    def loss_fn(h, w, b, y):
        return ct.linear_cross_entropy(h, w, y, linear_bias=b, ignore_index=-100, chunk_size=3)

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    leaves = [t.clone().requires_grad_(True) for t in (h, w, b)]
    loss = compiled(*leaves, y)
    loss.backward()
    ref_leaves = [t.clone().requires_grad_(True) for t in (h, w, b)]
    ref = F.cross_entropy(F.linear(ref_leaves[0], ref_leaves[1], ref_leaves[2]), y)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    for a, r in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-5, atol=1e-6)


def test_module_compiles_fullgraph_with_dynamic_shapes():
    """``torch.compile(model, dynamic=True, fullgraph=True)`` with the loss a submodule:
    Dynamo makes the module's float options (and float or int arguments) symbolic, which
    the option checks read by value (on main: "torch.* op returned non-Tensor" at
    ``math.isfinite``). Two batch sizes and a changed ``ignore_index`` argument, values
    and gradients against float64 ``F.cross_entropy``."""

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(4, 6, dtype=torch.float64)
            weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
            self.loss = ct.CrossEntropyLoss(weight=weight, label_smoothing=0.1, z_loss=0.0)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.loss(self.head(x), y)

    model = Model()
    compiled = torch.compile(model, dynamic=True, fullgraph=True, backend="aot_eager")

    def by_argument(z: torch.Tensor, y: torch.Tensor, ignore: int, eps: float) -> torch.Tensor:
        return ct.cross_entropy(z, y, ignore_index=ignore, label_smoothing=eps)

    compiled_fn = torch.compile(by_argument, dynamic=True, fullgraph=True, backend="aot_eager")
    for n, ignore, eps in ((5, 1, 0.0), (9, 2, 0.2)):
        gen = torch.Generator().manual_seed(n)
        x = torch.randn(n, 4, dtype=torch.float64, generator=gen)
        y = torch.randint(0, 6, (n,), generator=gen)
        y[0] = -100
        y[1] = ignore
        model.zero_grad()
        compiled(x, y).backward()
        grads = [p.grad.clone() for p in model.head.parameters()]
        model.zero_grad()
        ref = F.cross_entropy(model.head(x), y, model.loss.weight, label_smoothing=0.1)
        ref.backward()
        for got, want in zip(grads, model.head.parameters(), strict=True):
            torch.testing.assert_close(got, want.grad, rtol=1e-10, atol=1e-12)
        z = torch.randn(n, 6, dtype=torch.float64, generator=gen)
        y[0] = 0  # (no -100 label where another one is ignored)
        torch.testing.assert_close(
            compiled_fn(z, y, ignore, eps),
            F.cross_entropy(z, y, ignore_index=ignore, label_smoothing=eps),
            rtol=1e-12,
            atol=1e-12,
        )
