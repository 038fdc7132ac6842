r"""Issue 13 follow-up: ``torch.func`` transforms through ``crossent.torch``'s losses.

* ``vmap`` with probability targets raised (class ids worked): float64 read a tensor's
  value in the generic path's far-row check (data-dependent control flow), float32's
  custom op ran once an example (PyTorch's fallback, with a performance warning), and
  ``vmap(grad(...))`` (per-example gradients) raised for every dtype (the op's autograd
  cannot run under ``torch.func.grad``; nor the soft cap's ``autograd.Function``). Now:
  the op has a vmap rule (the examples' rows as one call's rows), reverse-mode
  transforms take the generic path, whose checks read the examples under vmap, and a
  row that would need the far form under vmap is an :class:`InputError` naming why.
* ``jacfwd`` of the generic distillation path (and of the sigmoid and focal losses)
  with float32 inputs gave float64 Jacobians: ``torch.func.jvp`` of ``x + 0.0`` for a
  0-d float32 tensor has a float64 tangent (``_xp.finalize``). And ``jacrev`` of the
  fused CPU distillation op raised.

Oracles: per-example calls (the same bits), float64 ``torch.nn.functional``.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
func = pytest.importorskip("torch.func")

# torch.func's first transform calls a deprecated torch.jit API inside PyTorch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

_DTYPES = [torch.float64, torch.float32]
_OPTIONS: tuple[dict[str, Any], ...] = (
    {},
    {"label_smoothing": 0.1, "z_loss": 1e-3},
    {"temperature": 0.7, "soft_cap": 5.0},
    {"weight": "shared"},
    {"weight": "per example"},
)


def _examples(dtype: torch.dtype, options: dict[str, Any], shape: tuple[int, ...]) -> tuple:
    """Logits and targets of 3 examples of ``shape`` (classes on axis 1 of each), and
    the call's keywords; class weights shared or one set per example (batched)."""
    g = torch.Generator().manual_seed(5)
    z = (torch.randn(3, *shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    t = torch.softmax(torch.randn(3, *shape, generator=g, dtype=torch.float64), 2).to(dtype)
    kw = {k: v for k, v in options.items() if k != "weight"}
    weights = None
    if options.get("weight") == "shared":
        kw["weight"] = (torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.5).to(dtype)
    elif options.get("weight"):
        weights = (torch.rand(3, shape[1], generator=g, dtype=torch.float64) + 0.5).to(dtype)
    return z, t, weights, kw


def _loss(reduction: str, kw: dict[str, Any]) -> Any:
    def loss(z: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if w is None else {"weight": w}
        out = ct.cross_entropy(z, t, reduction=reduction, **kw, **extra)
        return out.sum() if reduction == "none" else out

    return loss


def _each(fn: Any, args: tuple) -> torch.Tensor:
    """``fn`` of each example, stacked (vmap's meaning)."""
    return torch.stack([fn(*(a[i] for a in args)) for i in range(args[0].shape[0])])


@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 2)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(
    "options",
    _OPTIONS,
    ids=["plain", "smoothing,z_loss", "temperature,soft_cap", "weight", "weight per example"],
)
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_vmap_of_probability_targets(
    dtype: torch.dtype, options: dict[str, Any], reduction: str, shape: tuple[int, ...]
) -> None:
    """``vmap`` of the loss, ``vmap(grad(...))`` (per-example gradients) and a backward
    through ``vmap``'s result: each example's loss and gradient bit for bit those of a
    call of its own (on main: float64 and every ``vmap(grad)`` raised)."""
    z, t, weights, kw = _examples(dtype, options, shape)
    loss = _loss(reduction, kw)
    args = (z, t) if weights is None else (z, t, weights)
    assert torch.equal(func.vmap(loss)(*args), _each(loss, args))
    assert torch.equal(func.vmap(func.grad(loss))(*args), _each(func.grad(loss), args))
    leaf, alone = z.clone().requires_grad_(), z.clone().requires_grad_()
    func.vmap(loss)(leaf, *args[1:]).sum().backward()
    _each(loss, (alone, *args[1:])).sum().backward()
    assert leaf.grad is not None
    assert alone.grad is not None
    assert torch.equal(leaf.grad, alone.grad)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_per_example_gradients_against_float64_pytorch(dtype: torch.dtype) -> None:
    """``vmap(grad(...))`` with label smoothing, against float64 ``F.cross_entropy``'s
    per-example gradients (its own ``vmap(grad)``)."""
    z, t, _, _ = _examples(dtype, {}, (4, 6))

    def ours(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, s, label_smoothing=0.1)

    def theirs(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x, s, label_smoothing=0.1)

    got = func.vmap(func.grad(ours))(z, t)
    want = func.vmap(func.grad(theirs))(z.double(), t.double())
    assert got.dtype == dtype
    tol = {"rtol": 1e-12, "atol": 1e-15} if dtype == torch.float64 else {"rtol": 1e-6, "atol": 1e-8}
    torch.testing.assert_close(got.double(), want, **tol)


def test_vmap_with_a_row_past_the_float_range_raises() -> None:
    """A row whose loss the common form overflows (gaps of 2e308 weighed by 2^-10) is
    formed again by selecting it, which vmap cannot batch: an :class:`InputError` naming
    vmap and the reason (on main: PyTorch's data-dependent control-flow error); the same
    call without vmap gives the finite loss."""
    z = torch.tensor([[[1e308, -1e308], [0.0, 1.0]]], dtype=torch.float64)
    t = torch.tensor([[[1 - 2.0**-10, 2.0**-10], [0.5, 0.5]]], dtype=torch.float64)
    z = z.requires_grad_()

    def loss(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, s, reduction="sum")

    assert torch.isfinite(loss(z[0], t[0]))
    with pytest.raises(InputError, match=r"under torch\.func\.vmap a row's loss overflowed"):
        func.vmap(func.grad(loss))(z.detach(), t)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_soft_cap_under_torch_func(dtype: torch.dtype) -> None:
    """The soft cap's ``autograd.Function`` under ``grad``, ``jacrev`` and ``jacfwd``
    (on main, float64 raised: no ``setup_context``, no ``jvp``), against float64
    ``F.cross_entropy`` of the capped logits."""
    z, t, _, _ = _examples(dtype, {}, (4, 6))
    z, t = z[0] * 4, t[0]

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, t, soft_cap=5.0, reduction="none")

    def theirs(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(5.0 * torch.tanh(x / 5.0), t.double(), reduction="none")

    want = func.jacrev(theirs)(z.double())
    tol = {"rtol": 1e-12, "atol": 1e-15} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-7}
    for transform in (func.jacrev, func.jacfwd):
        got = transform(ours)(z)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tol)


# ------------------------------------------------------------------ forward-mode dtypes


def _student_teacher(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(9)
    z = torch.randn(*shape, generator=g, dtype=torch.float64)
    v = torch.randn(*shape, generator=g, dtype=torch.float64)
    return z.float(), v.float()


def _idiom(z: torch.Tensor, v: torch.Tensor, temperature: float, reduction: str) -> torch.Tensor:
    """``T^2 KL(softmax(v/T) || softmax(z/T))`` per row (classes on axis 1), reduced."""
    log_s, log_t = F.log_softmax(z / temperature, 1), F.log_softmax(v / temperature, 1)
    rows = temperature**2 * (log_t.exp() * (log_t - log_s)).sum(1)
    return rows.mean() if reduction == "mean" else rows.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(
    ("shape", "temperature"), [((2, 5, 3), 1.0), ((2, 5, 3), 2.0), ((4, 5), 2.0)], ids=str
)
def test_distillation_jacobians_keep_float32(
    shape: tuple[int, ...], temperature: float, reduction: str
) -> None:
    """``jacfwd`` of float32 ``distillation_loss`` (the generic path: (N, C, d) logits)
    is float32 (on main float64), and so is ``jacrev``'s (of the fused op's 2-D call: on
    main it raised); both against float64 PyTorch's idiom's."""
    z, v = _student_teacher(shape)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.distillation_loss(x, v, temperature=temperature, reduction=reduction)

    want = func.jacrev(lambda x: _idiom(x, v.double(), temperature, reduction))(z.double())
    for transform in (func.jacfwd, func.jacrev):
        got = transform(ours)(z)
        assert got.dtype == torch.float32, transform
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-7)
    _, tangent = func.jvp(ours, (z,), (torch.ones_like(z),))
    assert tangent.dtype == torch.float32


@pytest.mark.parametrize(
    "options",
    [{"teacher_form": "probs"}, {"direction": "reverse"}],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_distillation_options_jacobian_dtype(options: dict[str, Any]) -> None:
    """The generic path of the other options: float32 tangents of the student and of
    the teacher (on main float64 for ``'mean'``)."""
    z, v = _student_teacher((3, 5))
    if options.get("teacher_form") == "probs":
        v = torch.softmax(v, 1)
    student = func.jacfwd(lambda x: ct.distillation_loss(x, v, **options))(z)
    teacher = func.jacfwd(lambda s: ct.distillation_loss(z, s, **options))(v)
    assert student.dtype == teacher.dtype == torch.float32
    probs = "teacher_form" in options
    log_t = v.double().log() if probs else F.log_softmax(v.double(), 1)

    def idiom(x: torch.Tensor) -> torch.Tensor:
        log_s = F.log_softmax(x, 1)
        if probs:  # forward: KL(t || s)
            return (log_t.exp() * (log_t - log_s)).sum(1).mean()
        return (log_s.exp() * (log_s - log_t)).sum(1).mean()  # reverse: KL(s || t)

    want = func.jacrev(idiom)(z.double())
    torch.testing.assert_close(student.double(), want, rtol=1e-5, atol=1e-7)


def test_sigmoid_and_focal_jacobian_dtype() -> None:
    """The same 0-d tangent in the other generic losses' means: float32 Jacobians (on
    main float64), against float64 PyTorch's."""
    z, v = _student_teacher((3, 5))
    target = torch.sigmoid(v)
    labels = torch.tensor([0, 4, 2])
    cases = [
        (
            lambda x: ct.binary_cross_entropy_with_logits(x, target),
            lambda x: F.binary_cross_entropy_with_logits(x, target.double()),
        ),
        (
            lambda x: ct.softmax_focal_loss(x, labels, gamma=0.0),
            lambda x: F.cross_entropy(x, labels),
        ),
    ]
    for ours, theirs in cases:
        got = func.jacfwd(ours)(z)
        assert got.dtype == torch.float32
        want = func.jacfwd(theirs)(z.double())
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_jacobian_vectorized(reduction: str) -> None:
    """leftovers9: ``torch.autograd.functional.jacobian(..., vectorize=True)`` raised
    "Batching rule not implemented for aten::detach" (the backward detached the batched
    upstream gradient); against float64 PyTorch's Jacobian."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64) * 3
    target = torch.rand(3, 4, generator=g, dtype=torch.float64)
    got = torch.autograd.functional.jacobian(
        lambda z: ct.binary_cross_entropy_with_logits(z, target, reduction=reduction),
        x,
        vectorize=True,
    )
    want = torch.autograd.functional.jacobian(
        lambda z: F.binary_cross_entropy_with_logits(z, target, reduction=reduction), x
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
