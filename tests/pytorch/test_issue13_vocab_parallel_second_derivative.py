"""Issue 13 follow-up: the vocab-parallel losses have no second derivative; say so.

Their backward is written by hand (no collectives for the logits' loss; the linear
loss's one ``all_reduce`` of the input gradient), from blocks formed in place. A
second derivative through gradients taken with ``create_graph=True`` (a gradient
penalty) raised PyTorch's "one of the variables needed for gradient computation has
been modified by an inplace operation", which names no loss; now an error naming the
loss and the way out, as ``linear_cross_entropy``'s. The gradients themselves (their
values under ``create_graph``) are the plain backward's. One rank of gloo, in process.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from spawned import one_rank_group  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_vocab_parallel_second_derivative_raises_naming_the_loss(tmp_path, dtype) -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 7, generator=g, dtype=torch.float64).to(dtype)
    h = torch.randn(4, 3, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(7, 3, generator=g, dtype=torch.float64).to(dtype)
    y = torch.tensor([0, 6, 2, 3])
    with one_rank_group(str(tmp_path)):
        cases = [
            ("vocab_parallel_cross_entropy", (z,), lambda a: ct.vocab_parallel_cross_entropy(a, y)),
            (
                "vocab_parallel_linear_cross_entropy",
                (h, w),
                lambda a, b: ct.vocab_parallel_linear_cross_entropy(a, b, y, label_smoothing=0.1),
            ),
        ]
        for name, tensors, loss in cases:
            leaves = [x.clone().requires_grad_() for x in tensors]
            grads = torch.autograd.grad(loss(*leaves), leaves, create_graph=True)
            plain = [x.clone().requires_grad_() for x in tensors]
            loss(*plain).backward()
            for got, leaf in zip(grads, plain, strict=True):
                assert torch.equal(got.detach(), leaf.grad)
            penalty = sum((grad * grad).sum() for grad in grads)
            with pytest.raises(RuntimeError, match=rf"crossent.torch.{name} has no second"):
                penalty.backward()
