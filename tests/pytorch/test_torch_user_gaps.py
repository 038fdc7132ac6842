"""crossent.torch where a PyTorch user finds it differs from torch.nn.functional.

Float64 ``torch.nn.functional`` is the oracle. Forward-mode AD (``torch.func.jvp``,
``jacfwd``, ``torch.autograd.forward_ad``): a custom op whose inputs require no grad
runs without autograd, so its output's tangent was silently dropped (a zero Jacobian);
the fused class-id loss has a forward-mode rule now (it raised before), so have the
linear loss's scalar reductions ('none' raises), and the probability-target and
distillation losses take their plain torch operations (the right tangent).
"""

from __future__ import annotations

import pytest

from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
func = pytest.importorskip("torch.func")
forward_ad = pytest.importorskip("torch.autograd.forward_ad")

# torch.func's first transform calls a deprecated torch.jit API inside PyTorch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _data(seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, 5, dtype=torch.float64, generator=gen).to(dtype)
    v = torch.randn(4, 5, dtype=torch.float64, generator=gen).to(dtype)
    y = torch.tensor([0, 4, -100, 2])
    return z, v, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_forward_mode_through_class_ids(dtype: torch.dtype) -> None:
    """``jacfwd``, ``jvp`` and ``forward_ad`` of the fused class-id loss: float64
    ``F.cross_entropy``'s tangents (on main before the fused op's error: a zero
    Jacobian; then an InputError; now its forward-mode rule, ``_ops.LabelsFunction``)."""
    z, _, y = _data(0, dtype)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    want = func.jacfwd(lambda x: F.cross_entropy(x, y))(z.double())
    got = func.jacfwd(lambda x: ct.cross_entropy(x, y))(z)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, **tol)
    _, got_t = func.jvp(lambda x: ct.cross_entropy(x, y, reduction="none"), (z,), (z,))
    _, want_t = func.jvp(
        lambda x: F.cross_entropy(x, y, reduction="none"), (z.double(),), (z.double(),)
    )
    torch.testing.assert_close(got_t.double(), want_t, **tol)
    with forward_ad.dual_level():
        out = ct.CrossEntropyLoss(label_smoothing=0.1)(forward_ad.make_dual(z, z), y)
        tangent = forward_ad.unpack_dual(out).tangent
    with forward_ad.dual_level():
        ref = F.cross_entropy(forward_ad.make_dual(z.double(), z.double()), y, label_smoothing=0.1)
        ref_tangent = forward_ad.unpack_dual(ref).tangent
    torch.testing.assert_close(tangent.double(), ref_tangent, **tol)


def test_forward_mode_through_linear_cross_entropy() -> None:
    """Scalar reductions: float64 ``F.cross_entropy(F.linear(...))``'s tangents (on main
    an InputError: now ``_ops.LinearFunction.jvp``); ``'none'`` too (each row's own
    tangent)."""
    z, v, y = _data(1)
    h, w = z[:, :3], torch.cat([v, v[:1]])[:, :3]
    for reduction in ("mean", "sum"):
        got = func.jacfwd(
            lambda m, r=reduction: ct.linear_cross_entropy(h, m, y, ignore_index=-100, reduction=r)
        )(w)
        want = func.jacfwd(
            lambda m, r=reduction: F.cross_entropy(
                F.linear(h, m), y, ignore_index=-100, reduction=r
            )
        )(w)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    _, got_t = func.jvp(lambda x: ct.linear_cross_entropy(x, w, y, ignore_index=-100), (h,), (h,))
    _, want_t = func.jvp(
        lambda x: F.cross_entropy(F.linear(x, w), y, ignore_index=-100), (h,), (h,)
    )
    torch.testing.assert_close(got_t, want_t, rtol=1e-12, atol=1e-14)
    # 'none' (issue 13 funcgaps: an InputError until then): each row's tangent
    # (tests/pytorch/test_torch_func_linear_rows_forward.py sweeps the options).
    got = func.jacfwd(
        lambda m: ct.linear_cross_entropy(h, m, y, ignore_index=-100, reduction="none")
    )(w)
    want = func.jacfwd(
        lambda m: F.cross_entropy(F.linear(h, m), y, ignore_index=-100, reduction="none")
    )(w)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_forward_mode_through_probability_targets(dtype: torch.dtype) -> None:
    """The Jacobian of the logits and of the targets against float64 F.cross_entropy's
    (on main: zero, the custom op of float32/bfloat16 logits dropped the tangent)."""
    z, v, _ = _data(2, dtype)
    t = torch.softmax(v.double(), 1).to(dtype)
    w = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    kw = {"weight": w, "label_smoothing": 0.1}
    ours = func.jacfwd(lambda x: ct.cross_entropy(x, t, **kw))(z)
    ref = func.jacfwd(lambda x: F.cross_entropy(x, t.double(), **kw))(z.double())
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 0.0, "atol": 0.01}
    torch.testing.assert_close(ours.double(), ref, **tol)
    ours_t = func.jacfwd(lambda s: ct.cross_entropy(z, s, **kw))(t)
    ref_t = func.jacfwd(lambda s: F.cross_entropy(z.double(), s, **kw))(t.double())
    torch.testing.assert_close(ours_t.double(), ref_t, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_forward_mode_through_distillation(dtype: torch.dtype, temperature: float) -> None:
    """The fused CPU distillation op is left for the plain path under forward mode: the
    student's and the teacher's Jacobians against float64 PyTorch's idiom (on main:
    zero)."""
    z, v, _ = _data(3, dtype)

    def idiom(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = F.softmax(t / temperature, 1)
        kl = F.kl_div(F.log_softmax(s / temperature, 1), p, reduction="batchmean")
        return temperature**2 * kl

    def ours(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ct.distillation_loss(s, t, temperature=temperature)

    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 0.0}
    for argnums in (0, 1):
        got = func.jacfwd(ours, argnums=argnums)(z, v)
        want = func.jacfwd(idiom, argnums=argnums)(z.double(), v.double())
        assert float(want.abs().max()) > 0.01
        torch.testing.assert_close(got.double(), want, **tol)


@pytest.mark.parametrize("ignore_index", [0, 3])
def test_ignore_index_of_a_class_with_probability_targets_raises(ignore_index: int) -> None:
    """F.cross_entropy raises for an ``ignore_index`` >= 0 with probability targets (on
    main it was silently not applied); a negative one (the default -100) is no class."""
    z, v, _ = _data(4)
    t = torch.softmax(v, 1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(z, t, ignore_index=ignore_index)
    with pytest.raises(InputError, match=rf"`ignore_index`.*got {ignore_index} with probability"):
        ct.cross_entropy(z, t, ignore_index=ignore_index)
    with pytest.raises(InputError, match="`ignore_index` applies to class-id targets only"):
        ct.CrossEntropyLoss(ignore_index=ignore_index)(z[0], t[0])
    for negative in (-1, -100):
        torch.testing.assert_close(
            ct.cross_entropy(z, t, ignore_index=negative),
            F.cross_entropy(z, t, ignore_index=negative),
            rtol=1e-12,
            atol=0.0,
        )


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
def test_ignore_index_a_numpy_integer(dtype: str) -> None:
    """F.cross_entropy takes a NumPy integer ``ignore_index`` (one read from a config or
    an array); it was an InputError here. A bool stays one."""
    np = pytest.importorskip("numpy")
    z, _, _ = _data(5)
    y = torch.tensor([0, 2, 2, 4])
    ignore = np.dtype(dtype).type(2)
    torch.testing.assert_close(
        ct.cross_entropy(z, y, ignore_index=ignore, label_smoothing=0.1),
        F.cross_entropy(z, y, ignore_index=ignore, label_smoothing=0.1),
        rtol=1e-12,
        atol=0.0,
    )
    torch.testing.assert_close(
        ct.CrossEntropyLoss(ignore_index=ignore)(z, y), F.cross_entropy(z, y, ignore_index=2)
    )
    with pytest.raises(InputTypeError, match="`ignore_index` must be an integer"):
        ct.cross_entropy(z, y, ignore_index=np.bool_(True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_mean_of_nothing_is_zero_not_nan(dtype: torch.dtype) -> None:
    """A documented difference, pinned: where PyTorch's ``'mean'`` is 0/0 (NaN), crossent's
    is 0 with a zero gradient: an empty batch (N = 0, or d1 = 0) for class ids and, on
    main NaN there, probability targets; labels whose class weights are all 0. ``'sum'``
    is 0 and ``'none'`` empty, as PyTorch's."""
    w = torch.tensor([0.0, 1.0, 2.0], dtype=dtype)
    cases = [
        (torch.randn(0, 3, dtype=dtype), torch.zeros(0, dtype=torch.int64), None),
        (torch.randn(2, 3, 0, dtype=dtype), torch.zeros(2, 0, dtype=torch.int64), w),
        (torch.randn(0, 3, dtype=dtype), torch.zeros(0, 3, dtype=dtype), None),
        (torch.randn(0, 3, 2, dtype=dtype), torch.zeros(0, 3, 2, dtype=dtype), w),
        (torch.randn(4, 3, dtype=dtype), torch.zeros(4, dtype=torch.int64), w),
    ]
    for z, target, weight in cases:
        case = (tuple(z.shape), target.dtype, weight is not None)
        assert bool(torch.isnan(F.cross_entropy(z, target, weight))), case
        leaf = z.clone().requires_grad_(True)
        loss = ct.cross_entropy(leaf, target, weight)
        assert loss.dtype == dtype, case
        assert float(loss.detach()) == 0.0, case
        loss.backward()
        assert leaf.grad is not None, case
        assert not bool(leaf.grad.any()), case
        for reduction in ("sum", "none"):
            ours = ct.cross_entropy(z, target, weight, reduction=reduction)
            ref = F.cross_entropy(z, target, weight, reduction=reduction)
            assert ours.shape == ref.shape, case
            if z.numel():
                torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
            else:
                assert not bool(ours.any()), case


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_gradient_penalty_raises_not_zero(reduction: str) -> None:
    """``create_graph=True`` through the gradients ``linear_cross_entropy`` forms in its
    forward: first order equal to float64 PyTorch's; a penalty on them, added to another
    loss, raises on its backward (on main the gradients held no graph, and the penalty's
    contribution was a silent 0)."""
    gen = torch.Generator().manual_seed(6)
    h = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(7, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.tensor([0, 1, 6, 3, -100])
    loss = ct.linear_cross_entropy(h, w, y, ignore_index=-100, reduction=reduction)
    grads = torch.autograd.grad(loss, (h, w), create_graph=True)
    ref = F.cross_entropy(h @ w.T, y, reduction=reduction)
    for got, want in zip(grads, torch.autograd.grad(ref, (h, w)), strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=1e-14)
    penalty = sum((g**2).sum() for g in grads)
    assert penalty.requires_grad
    other = (w**2).sum()  # a loss beside the penalty, not through the linear loss
    with pytest.raises(RuntimeError, match="linear_cross_entropy has no second derivative"):
        (other + penalty).backward()


def test_distillation_mean_of_k_dimensional_input_is_per_row() -> None:
    """A documented difference, pinned: for (N, C, d) logits ``'mean'`` averages over the
    N*d rows, where the idiom's ``"batchmean"`` divides by N (checked: a mutant that
    divides by N fails it)."""
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(4, 5, 3, dtype=torch.float64, generator=gen)
    v = torch.randn(4, 5, 3, dtype=torch.float64, generator=gen)
    pointwise = F.kl_div(
        F.log_softmax(z / 2, 1), F.log_softmax(v / 2, 1), log_target=True, reduction="none"
    )
    rows = 4 * pointwise.sum(1)
    for reduction, want in (("mean", rows.mean()), ("sum", rows.sum()), ("none", rows)):
        got = ct.distillation_loss(z, v, temperature=2.0, reduction=reduction)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
