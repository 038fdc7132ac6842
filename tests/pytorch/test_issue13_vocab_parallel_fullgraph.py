"""Issue 13: valid calls of ``vocab_parallel_cross_entropy`` and
``vocab_parallel_linear_cross_entropy`` compile with ``torch.compile(fullgraph=True)``
on the default group.

On main the rank agreement (``_agreement.exchange``, ``torch.compiler.disable``d, its
BLAKE2b fingerprints) and the value checks were graph breaks: ``fullgraph=True`` raised
Dynamo's ``Unsupported`` (``_blake2.blake2b __new__``). Now the call on the default group
is the custom op ``crossent::vocab_parallel_ce_v1`` (``..._linear_ce_v1``), the eager
call run at run time (its checks, its agreement, its collectives), whose backward op
gives the eager backward's gradients. Checked here, on one rank and on two spawned gloo
ranks: the compiled loss and gradients equal eager's bit for bit (Inductor too), and
equal the unsharded loss (the oracle, ``crossent.torch.cross_entropy`` of the gathered
logits); the value checks raise eager's errors at run time; compiled ranks that
disagree on the labels, the options or the class weights all raise the agreement's
error; a compiled rank and an eager rank meet in the same agreement; the ops pass
``torch.library.opcheck``. Every test fails on main (the compile raises; the ops are
absent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError  # noqa: E402
from spawned import gloo_marks, one_rank_group, run_spawned  # noqa: E402

_GLOO = gloo_marks()

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]

#: Options that reach every term of the loss.
_OPTIONS: dict[str, Any] = {"label_smoothing": 0.1, "z_loss": 1e-3, "soft_cap": 8.0}


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    with one_rank_group(str(tmp_path)):
        yield


def _data(dtype: torch.dtype, seed: int = 0) -> dict[str, Any]:
    """Logits (N, V, d) with class axis 1, hidden states and a classifier, labels with an
    ignored row, class weights: V = 7 classes."""
    g = torch.Generator().manual_seed(seed)
    return {
        "z": (3 * torch.randn(3, 7, 2, dtype=torch.float64, generator=g)).to(dtype),
        "y3": torch.tensor([[0, 6], [-100, 3], [5, 2]]),
        "h": torch.randn(6, 4, dtype=torch.float64, generator=g).to(dtype),
        "w": torch.randn(7, 4, dtype=torch.float64, generator=g).to(dtype),
        "b": torch.randn(7, dtype=torch.float64, generator=g).to(dtype),
        "y": torch.tensor([0, 1, -100, 3, 6, 2]),
        "cw": (torch.rand(7, dtype=torch.float64, generator=g) + 0.5).to(dtype),
    }


def _logits_loss(d: dict[str, Any], reduction: str, **extra: Any) -> Callable[..., Any]:
    def loss(z: Any) -> Any:
        return ct.vocab_parallel_cross_entropy(
            z, d["y3"], weight=d["cw"], reduction=reduction, **_OPTIONS, **extra
        )

    return loss


def _linear_loss(d: dict[str, Any], reduction: str, **extra: Any) -> Callable[..., Any]:
    def loss(h: Any, w: Any, b: Any) -> Any:
        return ct.vocab_parallel_linear_cross_entropy(
            h, w, d["y"], bias=b, class_weight=d["cw"], reduction=reduction, **_OPTIONS, **extra
        )

    return loss


def _compiled_equals_eager(
    loss: Callable[..., Any], inputs: tuple[Any, ...], backend: str = "aot_eager"
) -> tuple[Any, tuple[Any, ...]]:
    """The loss and gradients of ``loss`` compiled (``fullgraph=True``) and eagerly: the
    same bits. Returns the eager ones."""
    eager_in = [x.clone().requires_grad_() for x in inputs]
    eager = loss(*eager_in)
    eager.sum().backward()
    torch._dynamo.reset()
    compiled_in = [x.clone().requires_grad_() for x in inputs]
    compiled = torch.compile(loss, fullgraph=True, backend=backend)(*compiled_in)
    compiled.sum().backward()
    assert compiled.dtype == eager.dtype
    assert compiled.shape == eager.shape
    assert torch.equal(compiled, eager), (compiled, eager)
    for e, c in zip(eager_in, compiled_in, strict=True):
        assert c.grad is not None
        assert torch.equal(c.grad, e.grad)
    return eager.detach(), tuple(x.grad for x in eager_in)


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_one_rank_compiles_as_eager_and_the_oracle(reduction: str, dtype: torch.dtype) -> None:
    d = _data(dtype)
    value, (grad,) = _compiled_equals_eager(_logits_loss(d, reduction), (d["z"],))
    # The oracle: the unsharded loss of the same logits (one rank holds them all).
    z = d["z"].double().requires_grad_()
    expected = ct.cross_entropy(
        z, d["y3"], weight=d["cw"].double(), reduction=reduction, **_OPTIONS
    )
    expected.sum().backward()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0}
    torch.testing.assert_close(value.double(), expected.detach(), **tol)
    torch.testing.assert_close(grad.double(), z.grad, **tol)
    _compiled_equals_eager(_linear_loss(d, reduction), (d["h"], d["w"], d["b"]))


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
def test_one_rank_compiles_with_inductor_as_eager() -> None:
    d = _data(torch.float32, seed=1)
    _compiled_equals_eager(_logits_loss(d, "mean"), (d["z"],), backend="inductor")
    _compiled_equals_eager(_linear_loss(d, "mean"), (d["h"], d["w"], d["b"]), "inductor")


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
def test_one_rank_value_checks_raise_eagers_errors_at_run_time() -> None:
    """A label outside [0, V), a NaN logit, a negative class weight and class weights
    that require grad: eager's error from the compiled call (the checks run in the op)."""
    d = _data(torch.float64)
    y_bad = d["y3"].clone()
    y_bad[0, 0] = 7
    nan = d["z"].clone()
    nan[2, 1, 0] = float("nan")
    wanted = d["cw"].clone().requires_grad_()
    cases = [
        (lambda: ct.vocab_parallel_cross_entropy(d["z"], y_bad), r"\[0, 7\)"),
        (lambda: ct.vocab_parallel_cross_entropy(nan, d["y3"]), "NaN or \\+inf"),
        (lambda: ct.vocab_parallel_cross_entropy(d["z"], d["y3"], weight=-d["cw"]), "non-neg"),
        (
            lambda: ct.vocab_parallel_cross_entropy(d["z"], d["y3"], weight=wanted),
            "requires grad",
        ),
        (
            lambda: ct.vocab_parallel_linear_cross_entropy(
                d["h"], d["w"], d["y"], class_weight=wanted
            ),
            "requires grad",
        ),
    ]
    for call, match in cases:
        with pytest.raises(InputError, match=match) as eager:
            call()
        torch._dynamo.reset()
        with pytest.raises(InputError, match=match) as compiled:
            torch.compile(call, fullgraph=True, backend="aot_eager")()
        assert str(compiled.value) == str(eager.value)


def _sharded(d: dict[str, Any], rank: int) -> dict[str, Any]:
    """Rank 0 holds classes [0, 3), rank 1 classes [3, 7)."""
    part = slice(0, 3) if rank == 0 else slice(3, 7)
    return {**d, "z": d["z"][:, part].contiguous(), "w": d["w"][part], "b": d["b"][part]}


def _two_ranks(rank: int, world: int) -> None:
    d = _data(torch.float32, seed=2)
    mine = _sharded(d, rank)
    for reduction in ("mean", "none"):
        # Compiled on both ranks: eager's bits; and the unsharded loss, within rounding.
        value, (grad,) = _compiled_equals_eager(_logits_loss(mine, reduction), (mine["z"],))
        z = d["z"].double().requires_grad_()
        whole = ct.cross_entropy(
            z, d["y3"], weight=d["cw"].double(), reduction=reduction, **_OPTIONS
        )
        whole.sum().backward()
        torch.testing.assert_close(value.double(), whole.detach(), rtol=1e-5, atol=1e-6)
        part = slice(0, 3) if rank == 0 else slice(3, 7)
        torch.testing.assert_close(grad.double(), z.grad[:, part], rtol=1e-5, atol=1e-6)
        _compiled_equals_eager(_linear_loss(mine, reduction), (mine["h"], mine["w"], mine["b"]))
    # A compiled rank (1) and an eager rank (0) meet in the same agreement.
    loss = _logits_loss(mine, "sum")
    torch._dynamo.reset()
    call = torch.compile(loss, fullgraph=True, backend="aot_eager") if rank else loss
    got = call(mine["z"])
    gathered = [torch.empty_like(got) for _ in range(world)]
    torch.distributed.all_gather(gathered, got)
    assert torch.equal(gathered[0], gathered[1])
    # Disagreements, every rank compiled: every rank raises the agreement's error.
    other_labels = d["y3"].clone()
    other_labels[2, 1] = 4
    disagreements = [
        ({"target": other_labels}, "disagree on `target`"),
        ({"label_smoothing": 0.2}, "disagree on the options"),
        ({"weight": d["cw"] * 2}, "disagree on `weight`"),
    ]
    for change, match in disagreements:
        options = {"target": d["y3"], "weight": d["cw"], **_OPTIONS}
        if rank == 1:
            options.update(change)

        def bad(z: Any, options: dict[str, Any] = options) -> Any:
            return ct.vocab_parallel_cross_entropy(z, **options)

        torch._dynamo.reset()
        with pytest.raises(InputError, match=match):
            torch.compile(bad, fullgraph=True, backend="aot_eager")(mine["z"])


@_GLOO[0]
@_GLOO[1]
def test_two_ranks_compile_as_eager_and_agree() -> None:
    run_spawned(_two_ranks, 2, timeout=400)


@pytest.mark.distributed
@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_one_rank_ops_pass_opcheck(reduction: str) -> None:
    """The ops' fake kernels, schemas and autograd registrations (``torch.library.opcheck``)."""
    from crossent.torch import _vocab_parallel_ops as ops  # (absent on main)

    d = _data(torch.float32, seed=3)
    z, h, w, b = (d[k].clone().requires_grad_() for k in ("z", "h", "w", "b"))
    options = (-100, reduction, 0.1, 1e-3, 8.0, 1.0)
    torch.library.opcheck(ops.vocab_parallel_ce_op, (z, d["y3"], d["cw"], False, *options))
    linear = (h, w, d["y"], b, d["cw"], False, True, *options, 2)
    torch.library.opcheck(ops.vocab_parallel_linear_ce_op, linear)
