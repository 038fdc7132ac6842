"""The vocab-parallel custom ops' backward where the 'mean''s weight total is 0.

``_vocab_parallel_ops._grad_rows`` forms the 'mean''s gradient as
:math:`[W > 0]\\,g / W`: with every label ``ignore_index``, or every label of a class
of weight 0, the weights' total :math:`W` is 0 and the loss is 0 with gradient 0
(eager's, PyTorch's). The mutation pass of branch mutation5 found the mutant
``norm > 0`` -> ``norm >= 0`` (:math:`g / 0`) surviving
``tests/pytorch/test_issue13_vocab_parallel_fullgraph.py``, whose batches each had a
label that counts (with every label ignored the row coefficients mask the infinite
:math:`g / 0`; with labels of weight 0 they do not: the float32 gradient is NaN). The
ops are called directly (their autograd registration is the compiled call's backward)
on one gloo rank.

Oracle: 0 and a zero gradient (the definition), and the eager call's bits. Guards
behaviour (passes on main); kills that mutant.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from spawned import gloo_marks, one_rank_group  # noqa: E402

_GLOO = gloo_marks()
_OPTIONS = (-100, "mean", 0.1, 1e-3, 8.0, 1.0)  # ignore_index ... temperature


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    with one_rank_group(str(tmp_path)):
        yield


@_GLOO[0]
@_GLOO[1]
@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("labels", ["ignored", "zero_weight"])
def test_mean_of_zero_weight_total_has_zero_gradient(dtype: torch.dtype, labels: str) -> None:
    from crossent.torch import _vocab_parallel_ops as ops

    g = torch.Generator().manual_seed(2)
    z = (3 * torch.randn(4, 7, dtype=torch.float64, generator=g)).to(dtype)
    y = torch.full((4,), -100 if labels == "ignored" else 1)
    cw = (torch.rand(7, dtype=torch.float64, generator=g) + 0.5).to(dtype)
    cw[1] = 0.0  # (the labels' class: W = 0 without an ignored label)

    eager_in = z.clone().requires_grad_()
    eager = ct.vocab_parallel_cross_entropy(
        eager_in, y, weight=cw, label_smoothing=0.1, z_loss=1e-3, soft_cap=8.0
    )
    eager.backward()

    op_in = z.clone().requires_grad_()
    loss, _, _ = ops.vocab_parallel_ce_op(op_in, y, cw, False, *_OPTIONS)
    loss.backward()

    assert float(loss.detach()) == 0.0
    assert op_in.grad is not None
    assert torch.equal(op_in.grad, torch.zeros_like(z))
    assert torch.equal(loss, eager)
    assert torch.equal(op_in.grad, eager_in.grad)
