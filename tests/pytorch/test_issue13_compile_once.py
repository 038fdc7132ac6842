"""Issue 13: a compiled ``crossent.torch`` loss is built once, on its first call.

The losses package keeps the options it has checked in a table (``options_of``). A
lookup or a store traced by Dynamo guarded on that table's length, so on main a
compiled ``sigmoid_focal_loss`` (``fullgraph=True``, ``dynamic=True``) was built again
on its second call (``len(...CHECKED_OPTIONS) != 1``), and again after each call
anywhere in the process that added options, until Dynamo's recompile limit (8) sent
it back to eager. Now the table is not read while Dynamo traces.

Checked for every loss of ``crossent.torch`` (functional and modules), under
``fullgraph=True``, with dynamic shapes (five calls, five batch sizes) and static shapes
(five calls, one batch size), a fresh table and an eager NumPy call between the
compiled ones that adds options to it: exactly one frame compiled, and the compiled
values equal eager's. On main 8 of 32 fail: the sigmoid focal loss, the distillation
loss and their modules (dynamic and static: the eager call in between adds options; 2
frames); the others guard the property (they check their options outside the table
while traced).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

import crossent  # noqa: E402
from crossent.losses import _batch  # noqa: E402
from spawned import one_rank_group  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]

C, D = 7, 4  # classes, features (batch sizes below avoid both: Dynamo's duck sizing)
DYNAMIC_SIZES = (3, 5, 8, 11, 6)
STATIC_SIZES = (5,) * 5

Case = tuple[Callable[..., Any], Callable[[int, torch.Generator], tuple[Any, ...]]]


def _ids(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, C, (n,), generator=g)


def _case(name: str) -> Case:
    """``(loss, data)``: the loss of the inputs ``data(n, generator)`` (the first one
    differentiated)."""
    g0 = torch.Generator().manual_seed(1)
    w = torch.randn(C, D, generator=g0, dtype=torch.float64)
    cw = torch.rand(C, generator=g0, dtype=torch.float64) + 0.5
    logits_ids = lambda n, g: (torch.randn(n, C, generator=g, dtype=torch.float64), _ids(n, g))  # noqa: E731
    logits_probs = lambda n, g: (  # noqa: E731
        torch.randn(n, C, generator=g, dtype=torch.float64),
        torch.rand(n, C, generator=g, dtype=torch.float64),
    )
    hidden_ids = lambda n, g: (torch.randn(n, D, generator=g, dtype=torch.float64), _ids(n, g))  # noqa: E731
    head = torch.nn.Linear(D, C, dtype=torch.float64)
    cases: dict[str, Case] = {
        "cross_entropy": (
            lambda z, y: ct.cross_entropy(z, y, weight=cw, label_smoothing=0.1),
            logits_ids,
        ),
        "cross_entropy_probs": (lambda z, t: ct.cross_entropy(z, t.softmax(-1)), logits_probs),
        "binary_cross_entropy_with_logits": (ct.binary_cross_entropy_with_logits, logits_probs),
        "sigmoid_focal_loss": (
            lambda z, t: ct.sigmoid_focal_loss(z, t, reduction="mean"),
            logits_probs,
        ),
        "softmax_focal_loss": (lambda z, y: ct.softmax_focal_loss(z, y, gamma=2.0), logits_ids),
        "distillation_loss": (
            lambda z, v: ct.distillation_loss(z, v, temperature=2.0),
            logits_probs,
        ),
        "linear_cross_entropy": (lambda h, y: ct.linear_cross_entropy(h, w, y), hidden_ids),
        "linear_head_cross_entropy": (
            lambda h, y: ct.linear_head_cross_entropy(h, head, y),
            hidden_ids,
        ),
        "vocab_parallel_cross_entropy": (ct.vocab_parallel_cross_entropy, logits_ids),
        "vocab_parallel_linear_cross_entropy": (
            lambda h, y: ct.vocab_parallel_linear_cross_entropy(h, w, y),
            hidden_ids,
        ),
        "CrossEntropyLoss": (ct.CrossEntropyLoss(label_smoothing=0.05), logits_ids),
        "BCEWithLogitsLoss": (ct.BCEWithLogitsLoss(), logits_probs),
        "SigmoidFocalLoss": (ct.SigmoidFocalLoss(), logits_probs),
        "SoftmaxFocalLoss": (ct.SoftmaxFocalLoss(), logits_ids),
        "DistillationLoss": (ct.DistillationLoss(), logits_probs),
        "LinearCrossEntropyLoss": (
            ct.LinearCrossEntropyLoss(D, C, dtype=torch.float64),
            hidden_ids,
        ),
    }
    return cases[name]


NAMES = [
    "cross_entropy",
    "cross_entropy_probs",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "distillation_loss",
    "linear_cross_entropy",
    "linear_head_cross_entropy",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
    "DistillationLoss",
    "LinearCrossEntropyLoss",
]


@pytest.fixture
def group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """A one-rank process group for the vocab-parallel losses."""
    if "vocab_parallel" not in request.node.callspec.params["name"]:
        yield
        return
    with one_rank_group(str(tmp_path)):
        yield


def _eager_call_with_new_options(k: int) -> None:
    """A NumPy loss whose options are new to the table (as a user's other losses)."""
    z = np.array([[0.5, -1.0, 2.0]])
    crossent.softmax_cross_entropy(z, np.array([2]), label_smoothing=0.01 + 0.001 * k)


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "static"])
@pytest.mark.parametrize("name", NAMES)
def test_one_frame_over_five_calls(name: str, dynamic: bool, group: None) -> None:
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    _batch._CHECKED_OPTIONS.clear()  # a fresh process's table (a cache: clearing is safe)
    loss, data = _case(name)
    counter = CompileCounter()
    compiled = torch.compile(loss, backend=counter, fullgraph=True, dynamic=dynamic)
    for k, n in enumerate(DYNAMIC_SIZES if dynamic else STATIC_SIZES):
        g = torch.Generator().manual_seed(k)
        first, *rest = data(n, g)
        results = []
        for fn in (compiled, loss):
            leaf = first.clone().requires_grad_()
            value = fn(leaf, *rest)
            value.sum().backward()
            results.append((value.detach(), leaf.grad))
        for got, want in zip(*results, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0.0)
        _eager_call_with_new_options(k)
    assert counter.frame_count == 1
