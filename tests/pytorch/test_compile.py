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
