r"""Issue 13 follow-up: probability targets on the CPU through ``crossent::softmax_ce_probs``.

The float64 generic path (commit 70f961e) made the gradient exact but autograd saved
several float64 copies of the logits (1284 MiB peak at N = 1024, C = 32000). The
custom op computes the same float64 operations a block of rows at a time and saves
only the logits and the targets; its backward forms
:math:`u_i[(A_i + 2\lambda\omega_i\mathrm{LSE}_i)p_i - w\odot\tilde t_i]/T` in float64
by blocks, rounded once. Within an ulp of the float64 oracle on the hard cases, per
row and reduced: ``test_issue13_torch_exact`` (its public calls run this op). Checked
here: the same values as the generic path's float64 operations; ``gradcheck`` of the op
itself on float64; no float64 tensor of the logits' size saved or allocated whole;
``torch.compile``.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from crossent.errors import InputError  # noqa: E402
from crossent.torch import _backend, _launch  # noqa: E402

# The hard cases and the ulp measure of the exactness tests, not copied.
from pytorch.test_issue13_soft_cap_float64 import _ulps_off  # noqa: E402
from pytorch.test_issue13_torch_exact import _generator, _soft_case  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.1},
    "z_loss": {"z_loss": 1e-3},
    "temperature": {"temperature": 1.7},
    "weight": {"weight": "random"},
    "all": {"label_smoothing": 0.2, "z_loss": 1e-2, "temperature": 0.6, "weight": "random"},
}


def _options(name: str, classes: int) -> dict[str, Any]:
    given = dict(OPTIONS[name])
    if given.get("weight") == "random":
        given["weight"] = torch.rand(classes, generator=_generator(5)) + 0.25
    return given


def _generic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send probability targets down the generic path (the previous float64 operations)."""
    monkeypatch.setattr(_launch, "uses_target_op", lambda z, opts: False)


def _loss_and_grad(
    z: torch.Tensor, t: torch.Tensor, upstream: torch.Tensor | None, **kw: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = z.clone().requires_grad_(True)
    loss = ct.cross_entropy(leaf, t, **kw)
    (loss if upstream is None else loss * upstream).sum().backward()
    assert leaf.grad is not None
    return loss.detach(), leaf.grad


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_equal_to_the_generic_float64_path(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, option: str, reduction: str
) -> None:
    """The loss bit for bit, each gradient entry within an ulp (mostly the same bits):
    the op's forward is the generic path's float64 operations by blocks, its backward
    the formula of their gradient."""
    z64, t64 = _soft_case("random")
    z, t = z64.to(dtype), t64.to(dtype)
    kw = {"reduction": reduction, **_options(option, z.shape[1])}
    u = torch.rand(z.shape[0], generator=_generator(3)) if reduction == "none" else None
    loss, grad = _loss_and_grad(z, t, u, **kw)
    _generic(monkeypatch)
    ref_loss, ref_grad = _loss_and_grad(z, t, u, **kw)
    assert torch.equal(loss, ref_loss)
    assert _ulps_off(grad, ref_grad.double()) <= 1.0
    assert float((grad == ref_grad).double().mean()) > 0.99


@pytest.mark.parametrize("option", list(OPTIONS))
def test_gradcheck_of_the_op(option: str) -> None:
    """The op's backward against finite differences of its forward (float64 logits)."""
    g = _generator(7)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    kw = _options(option, 5)
    weight = kw.pop("weight", None)
    weight = None if weight is None else weight.double()
    packed = _backend.pack(
        _backend.options(
            label_smoothing=kw.get("label_smoothing", 0.0),
            z_loss=kw.get("z_loss", 0.0),
            temperature=kw.get("temperature", 1.0),
            soft_cap=None,
        )
    )
    op = torch.ops.crossent.softmax_ce_probs_v3
    assert torch.autograd.gradcheck(lambda x: op(x, t, weight, packed)[0], (z,))


@pytest.mark.parametrize("shape", [(7,), (4, 7, 3), (2, 7, 2, 2)])
def test_layouts_match_the_generic_path(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]
) -> None:
    """Unbatched (C,) and (N, C, d1, ...) inputs: classes on axis 1 (0 unbatched)."""
    g = _generator(11)
    axis = 0 if len(shape) == 1 else 1
    z = torch.randn(shape, generator=g) * 4
    t = torch.softmax(torch.randn(shape, generator=g) * 2, axis)
    for reduction in ("none", "mean"):
        loss, grad = _loss_and_grad(z, t, None, reduction=reduction, label_smoothing=0.1)
        with monkeypatch.context() as m:
            _generic(m)
            ref_loss, ref_grad = _loss_and_grad(
                z, t, None, reduction=reduction, label_smoothing=0.1
            )
        assert loss.shape == ref_loss.shape
        assert torch.equal(loss, ref_loss)
        assert _ulps_off(grad, ref_grad.double()) <= 1.0


def test_weighted_mean_is_pytorchs() -> None:
    """Class weights: ``'mean'`` still divides by the number of rows, as PyTorch."""
    z64, t64 = _soft_case("random")
    w = torch.rand(z64.shape[1], generator=_generator(5)) + 0.25
    got = ct.cross_entropy(z64.float(), t64.float(), weight=w)
    ref = F.cross_entropy(z64, t64.float().double(), weight=w.double())
    assert _ulps_off(got, ref) <= 1.0


def test_ignore_index_does_not_apply_to_probabilities() -> None:
    """A negative ``ignore_index`` is no class: the op leaves every row in. A class (>= 0)
    is an error, as in ``F.cross_entropy`` (it was silently not applied)."""
    z64, t64 = _soft_case("random")
    z, t = z64.float(), t64.float()
    assert torch.equal(ct.cross_entropy(z, t, ignore_index=-1), ct.cross_entropy(z, t))
    with pytest.raises(InputError, match="`ignore_index` applies to class-id targets only"):
        ct.cross_entropy(z, t, ignore_index=0)


class _Allocations(TorchDispatchMode):
    """The float64 tensors the ops run create (numbers of elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.float64: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for o in torch.utils._pytree.tree_leaves(out):
            if isinstance(o, torch.Tensor) and o.dtype == torch.float64:
                self.float64.append(o.numel())
        return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_autograd_saves_no_float64_copy(dtype: torch.dtype) -> None:
    """Saved for the backward: the logits and the targets as given (the generic path
    saved several float64 copies of the logits)."""
    g = _generator(9)
    z = (torch.randn(64, 301, generator=g) * 3).to(dtype).requires_grad_()
    t = torch.softmax(torch.randn(64, 301, generator=g), -1)
    saved: list[torch.Tensor] = []

    def pack(x: torch.Tensor) -> torch.Tensor:
        saved.append(x)
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        loss = ct.cross_entropy(z, t, label_smoothing=0.1, z_loss=1e-3)
    loss.backward()
    big = [(x.dtype, tuple(x.shape)) for x in saved if x.numel() >= z.numel()]
    assert sorted(big, key=str) == sorted([(dtype, (64, 301)), (torch.float32, (64, 301))], key=str)


def test_float64_work_in_blocks_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The op's forward and backward kernels allocate float64 tensors of a block of rows,
    never N x C (called directly: a dispatch mode sees a custom op as one call)."""
    monkeypatch.setattr(_launch, "_BLOCK_BYTES", 64 * 1024)  # 16 rows of 1000 in float64
    g = _generator(10)
    z = torch.randn(200, 1000, generator=g) * 3
    t = torch.softmax(torch.randn(200, 1000, generator=g), -1)
    w = torch.rand(1000, generator=g)
    opts = _backend.options(label_smoothing=0.1, z_loss=1e-3, temperature=1.5, soft_cap=None)
    record = _Allocations()
    with record:
        rows, lse = _launch.target_forward(z, t, w, opts)
        grad = _launch.target_backward(torch.ones(200), z, t, w, lse, opts)
    assert rows.shape == (200,)
    assert grad.shape == z.shape
    assert grad.dtype == z.dtype
    assert record.float64
    assert max(record.float64) <= 16 * 1000


def test_nonfinite_logits_as_the_generic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN logit is the same error on both paths (issue 13, branch hostile24: it was
    a silent NaN row on both, where class ids and the NumPy API raise)."""
    z64, t64 = _soft_case("random")
    z, t = z64.float(), t64.float()
    z[3, 7] = float("nan")
    with pytest.raises(InputError, match=r"`input` contains NaN at index \(3, 7\)"):
        _loss_and_grad(z, t, None, reduction="none")
    _generic(monkeypatch)
    with pytest.raises(InputError, match=r"`input` contains NaN at index \(3, 7\)"):
        _loss_and_grad(z, t, None, reduction="none")


def test_errors_unchanged() -> None:
    z = torch.randn(4, 5)
    with pytest.raises(InputError, match="probability `target` must have the shape"):
        ct.cross_entropy(z, torch.rand(4, 6))
    with pytest.raises(InputError, match="`weight` must have shape"):
        ct.cross_entropy(z, torch.rand(4, 5), weight=torch.ones(3))
    with pytest.raises(InputError, match="finite and non-negative"):
        ct.cross_entropy(z, torch.rand(4, 5), weight=-torch.ones(5))


def test_target_and_weight_gradients_keep_the_generic_path() -> None:
    """Targets or weights that want a gradient get it (the op differentiates the logits only)."""
    z64, t64 = _soft_case("random")
    z = z64.float().requires_grad_()
    t = t64.float().requires_grad_()
    w = (torch.rand(z.shape[1], generator=_generator(5)) + 0.25).requires_grad_()
    ct.cross_entropy(z, t, weight=w).backward()
    zr, tr, wr = (x.detach().double().requires_grad_() for x in (z, t, w))
    F.cross_entropy(zr, tr, weight=wr).backward()
    for got, ref in ((z.grad, zr.grad), (t.grad, tr.grad), (w.grad, wr.grad)):
        assert got is not None
        assert ref is not None
        assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-9)


def test_soft_cap_takes_the_op_too() -> None:
    z = torch.randn(4, 5)
    assert _launch.uses_target_op(z, _backend.unpack([0.0, 0.0, 1.0, 30.0]))
    assert _launch.uses_target_op(z, _backend.unpack([0.0, 0.0, 1.0, 0.0]))
    # float64 too since the issue 13 follow-up (its p - t at p -> 1 exact, as float32's)
    assert _launch.uses_target_op(z.double(), _backend.unpack([0.0, 0.0, 1.0, 0.0]))


def test_compiles_fullgraph() -> None:
    z64, t64 = _soft_case("random")
    z, t = z64.float(), t64.float()
    w = torch.rand(z.shape[1], generator=_generator(5)) + 0.25

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, t, weight=w, label_smoothing=0.1, z_loss=1e-3)

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
    got, ref = compiled(a), loss_fn(b)
    got.backward()
    ref.backward()
    assert torch.equal(got, ref)
    assert a.grad is not None
    assert b.grad is not None
    assert torch.equal(a.grad, b.grad)
