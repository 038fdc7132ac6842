"""The compiled vocab-parallel ops' ``'none'`` gradient under an upstream that differs
by row (branch mutation6).

Every compiled test backpropagated ``loss.sum()``: an upstream of ones, the same in
every row, so the mutant that reversed the rows of the upstream in the backward op's
``_grad_rows`` (``grad_loss.reshape(rows).flip(0)``) survived (tests/MUTATION.md,
mutation6). Here the upstream is ``1, 2, 3, ...`` by row. Oracle: the unsharded loss
(``crossent.torch.cross_entropy`` of the same logits in float64, eager autograd) with
the same upstream. Passes on main; guards that mutant. Also the backward op's dtype
codes (float32 gradients without options, against eager's bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from spawned import one_rank_group  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]

_OPTIONS = {"label_smoothing": 0.1, "z_loss": 1e-3}


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    with one_rank_group(str(tmp_path)):
        yield


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
def test_compiled_none_gradient_follows_each_rows_upstream() -> None:
    g = torch.Generator().manual_seed(6)
    z = 3 * torch.randn(5, 7, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 6, -100, 3, 2])
    cw = torch.rand(7, dtype=torch.float64, generator=g) + 0.5
    upstream = torch.arange(1.0, 6.0, dtype=torch.float64)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return ct.vocab_parallel_cross_entropy(x, y, weight=cw, reduction="none", **_OPTIONS)

    torch._dynamo.reset()
    compiled_in = z.clone().requires_grad_()
    out = torch.compile(loss, fullgraph=True, backend="aot_eager")(compiled_in)
    (out * upstream).sum().backward()

    oracle_in = z.clone().requires_grad_()
    expected = ct.cross_entropy(oracle_in, y, weight=cw, reduction="none", **_OPTIONS)
    (expected * upstream).sum().backward()
    torch.testing.assert_close(out.detach(), expected.detach(), rtol=1e-12, atol=0)
    assert compiled_in.grad is not None
    torch.testing.assert_close(compiled_in.grad, oracle_in.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_compiled_float32_gradient_is_eagers_bits_without_options(reduction: str) -> None:
    """The backward op re-forms its state in each coefficient's own dtype (the dtype
    codes of ``_packed``): float32 here. The mutant that read every code as float64
    kept the compiled loss but moved its float32 gradient off eager's (up to 1.2e-7
    apart for (64, 301) logits), which every earlier test, with label smoothing, a
    z-loss and a soft cap (whose float32 terms round alike), let through. Oracles:
    eager's gradient bit for bit (the op's contract), and float64 autograd within
    float32's rounding."""
    g = torch.Generator().manual_seed(1)
    z = (4 * torch.randn(64, 301, dtype=torch.float64, generator=g)).float()
    y = torch.randint(0, 301, (64,), generator=g)
    cw = (torch.rand(301, generator=g) + 0.5).float()

    def loss(x: torch.Tensor) -> torch.Tensor:
        return ct.vocab_parallel_cross_entropy(x, y, weight=cw, reduction=reduction)

    eager_in = z.clone().requires_grad_()
    loss(eager_in).sum().backward()
    torch._dynamo.reset()
    compiled_in = z.clone().requires_grad_()
    torch.compile(loss, fullgraph=True, backend="aot_eager")(compiled_in).sum().backward()
    assert compiled_in.grad is not None
    assert eager_in.grad is not None
    assert compiled_in.grad.dtype == torch.float32
    assert torch.equal(compiled_in.grad, eager_in.grad)

    wide = z.double().requires_grad_()
    ct.cross_entropy(wide, y, weight=cw.double(), reduction=reduction).sum().backward()
    torch.testing.assert_close(compiled_in.grad.double(), wide.grad, rtol=1e-5, atol=1e-7)
