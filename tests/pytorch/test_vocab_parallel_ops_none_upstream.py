"""The compiled vocab-parallel ops' ``'none'`` gradient under an upstream that differs
by row (branch mutation6).

Every compiled test backpropagated ``loss.sum()``: an upstream of ones, the same in
every row, so the mutant that reversed the rows of the upstream in the backward op's
``_grad_rows`` (``grad_loss.reshape(rows).flip(0)``) survived (tests/MUTATION.md,
mutation6). Here the upstream is ``1, 2, 3, ...`` by row. Oracle: the unsharded loss
(``crossent.torch.cross_entropy`` of the same logits in float64, eager autograd) with
the same upstream. Passes on main; guards that mutant.
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
