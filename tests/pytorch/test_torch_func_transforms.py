r"""``crossent.torch``'s losses under ``torch.func``: ``grad``, ``vmap`` (per-example
gradients, ``vmap(grad(f))``), ``jacrev``, ``jacfwd`` and ``functional_call``.

On main every class-id ``cross_entropy`` and ``linear_cross_entropy`` call under a
reverse-mode transform raised PyTorch's "an autograd.Function with functorch transforms
... must override the setup_context staticmethod" (a custom op's autograd), and the
family losses (``binary_cross_entropy_with_logits``, the focal losses,
``distillation_loss``) raised vmap's "data-dependent control flow" error (their data
checks read values). Now the custom ops have ``autograd.Function`` twins and vmap
rules, and the family validates vmap's examples before its generic path.

Oracles: float64 autograd (``torch.autograd.grad``, ``torch.autograd.functional``) of
the plain PyTorch formula (``F.cross_entropy`` and friends), one example at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
func = pytest.importorskip("torch.func")

# torch.func's first transform calls a deprecated torch.jit API inside PyTorch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

B, N, C, D = 3, 4, 5, 6
_DTYPES = [torch.float64, torch.float32]


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return (
        {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-6}
    )


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, **_tol(dtype))


def _per_example_grads(
    oracle: Callable[..., torch.Tensor], args: tuple[torch.Tensor, ...], argnums: tuple[int, ...]
) -> list[torch.Tensor]:
    """Plain autograd's gradient of ``oracle`` in ``args[argnums]``, one example
    (leading index) at a time, stacked; ``args`` without a batch axis where ``None``."""
    out: list[list[torch.Tensor]] = [[] for _ in argnums]
    for b in range(B):
        call = [a[b].detach().clone() for a in args]
        for k in argnums:
            call[k].requires_grad_()
        grads = torch.autograd.grad(oracle(*call), [call[k] for k in argnums])
        for slot, g in zip(out, grads, strict=True):
            slot.append(g)
    return [torch.stack(slot) for slot in out]


def _check_all(
    ours: Callable[..., torch.Tensor],
    oracle: Callable[..., torch.Tensor],
    args: tuple[torch.Tensor, ...],
    dtype: torch.dtype,
    *,
    forward_mode: bool = True,
) -> None:
    """``vmap`` (values), ``grad``, ``vmap(grad)`` and ``jacrev`` (and ``jacfwd``) in
    ``args[0]`` of ``ours`` against float64 plain autograd of ``oracle``."""
    wide = tuple(a.double() if a.is_floating_point() else a for a in args)
    want_values = torch.stack([oracle(*(a[b] for a in wide)) for b in range(B)])
    _close(func.vmap(ours)(*args), want_values, dtype)
    (want,) = _per_example_grads(oracle, wide, (0,))
    _close(func.grad(ours)(*(a[0] for a in args)), want[0], dtype)
    _close(func.vmap(func.grad(ours))(*args), want, dtype)
    first = tuple(a[0] for a in args)

    def of_first(x: torch.Tensor) -> torch.Tensor:
        return ours(x, *first[1:])

    def oracle_first(x: torch.Tensor) -> torch.Tensor:
        return oracle(x, *(a[0] for a in wide[1:]))

    # ``jacrev`` of the scalar loss: vmap over its one-entry basis (a batched upstream)
    _close(func.jacrev(of_first)(first[0]), want[0], dtype)
    if forward_mode:
        _close(func.jacfwd(of_first)(first[0]), want[0], dtype)
    assert torch.autograd.functional.jacobian(oracle_first, wide[0][0]).shape == want[0].shape


# ---------------------------------------------------------------- class-id cross_entropy


def _reference_ce(
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``F.cross_entropy`` of the capped tempered logits plus the z-loss
    :math:`\\lambda w_y \\operatorname{LSE}^2` (classes on axis 1), PyTorch's weighted mean."""
    zc = z if soft_cap is None else soft_cap * torch.tanh(z / soft_cap)
    zc = zc / temperature
    rows = F.cross_entropy(
        zc, y, weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    kept = y != ignore_index
    w_y = torch.where(kept, 1.0 if weight is None else weight[y.clamp(min=0)], 0.0).to(z.dtype)
    rows = rows + z_loss * w_y * torch.logsumexp(zc, 1) ** 2
    if reduction == "none":
        return rows
    return rows.sum() if reduction == "sum" else rows.sum() / w_y.sum()


_CE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"label_smoothing": 0.1, "z_loss": 1e-3},
    {"soft_cap": 3.0, "temperature": 0.7},
    {"weight": True, "ignore_index": -100},
    {"reduction": "sum", "label_smoothing": 0.2},
    {"reduction": "none", "z_loss": 1e-2},
]


@pytest.mark.parametrize("options", _CE_OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_cross_entropy_class_ids(dtype: torch.dtype, options: dict[str, Any]) -> None:
    """Class ids (rows of a 2-D batch and of a (N, C, d) one), every option: on main
    ``grad``/``vmap(grad)``/``jacrev`` raised the setup_context error and ``jacfwd``
    an InputError (no forward-mode rule)."""
    g = torch.Generator().manual_seed(1)
    kw = dict(options)
    if kw.pop("weight", False):
        kw["weight"] = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    z = (3 * torch.randn(B, N, C, 2, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, C, (B, N, 2), generator=g)
    if "ignore_index" in kw:
        y[:, 0, 1] = -100
    none = kw.get("reduction") == "none"

    def ours(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if "weight" not in kw else kw["weight"].to(x.dtype)
        out = ct.cross_entropy(x, labels, **{**kw, "weight": w})
        return out.sum() if none else out

    def oracle(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = _reference_ce(x, labels, **kw)
        return out.sum() if none else out

    _check_all(ours, oracle, (z, y), dtype)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_cross_entropy_jacobians_of_rows(dtype: torch.dtype) -> None:
    """``jacrev``/``jacfwd`` of ``reduction='none'`` (a (rows, rows, classes) Jacobian:
    vmap over a batched upstream of the backward op) against float64 autograd's."""
    g = torch.Generator().manual_seed(2)
    z = (2 * torch.randn(N, C, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.tensor([0, 4, -100, 2])

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, y, reduction="none", label_smoothing=0.1)

    def oracle(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x, y, reduction="none", label_smoothing=0.1)

    want = torch.autograd.functional.jacobian(oracle, z.double())
    _close(func.jacrev(ours)(z), want, dtype)
    _close(func.jacfwd(ours)(z), want, dtype)


def test_cross_entropy_bad_label_under_vmap_names_example_and_row() -> None:
    """A class id out of range under vmap: crossent's InputError naming (example, row)."""
    z = torch.randn(B, N, C, dtype=torch.float64)
    y = torch.randint(0, C, (B, N))
    y[2, 1] = C
    with pytest.raises(InputError, match=r"\(2, 1\)"):
        func.vmap(func.grad(lambda x, t: ct.cross_entropy(x, t)))(z, y)


# ------------------------------------------------------------------- linear losses


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_linear_cross_entropy_per_example_gradients(dtype: torch.dtype, reduction: str) -> None:
    """Per-example gradients of the hidden states, the classifier and its bias
    (``vmap(grad(f, argnums))``, the classifier shared: in_dims None) and ``jacrev``,
    against float64 ``F.cross_entropy(F.linear(...))``."""
    g = torch.Generator().manual_seed(3)
    h = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    bias = torch.randn(C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, N), generator=g)
    y[1, 2] = -100
    kw = {"ignore_index": -100, "reduction": reduction, "label_smoothing": 0.1}

    def ours(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ct.linear_cross_entropy(x, m, t, linear_bias=c, **kw).sum()

    def oracle(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(x, m, c), t, **kw).sum()

    args = (h.to(dtype), w.to(dtype), bias.to(dtype), y)
    got = func.vmap(func.grad(ours, argnums=(0, 1, 2)), in_dims=(0, None, None, 0))(*args)
    wide = (h, w.expand(B, C, D), bias.expand(B, C), y)
    want = _per_example_grads(oracle, wide, (0, 1, 2))
    for a, b in zip(got, want, strict=True):
        _close(a, b, dtype)
    _close(
        func.vmap(ours, in_dims=(0, None, None, 0))(*args),
        func.vmap(oracle, in_dims=(0, None, None, 0))(h, w, bias, y),
        dtype,
    )
    jac = func.jacrev(ours, argnums=1)(args[0][0], args[1], args[2], y[0])
    _close(jac, want[1][0], dtype)


def test_linear_head_cross_entropy_in_a_functional_training_step() -> None:
    """``torch.func.functional_call`` of a module whose loss is
    ``linear_head_cross_entropy``: per-example gradients of its parameters
    (``vmap(grad)`` over the batch, parameters shared), against float64 autograd of
    ``F.cross_entropy(head(h), y)``."""

    class Model(torch.nn.Module):
        def __init__(self, fused: bool) -> None:
            super().__init__()
            self.body = torch.nn.Linear(D, D)
            self.head = torch.nn.Linear(D, C)
            self.fused = fused

        def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            x = torch.tanh(self.body(h))
            if self.fused:
                return ct.linear_head_cross_entropy(x, self.head, y, ignore_index=-100)
            return F.cross_entropy(self.head(x), y, ignore_index=-100)

    torch.manual_seed(4)
    ours = Model(fused=True).double()
    theirs = Model(fused=False).double()
    theirs.load_state_dict(ours.state_dict())
    params = {k: v.detach() for k, v in ours.named_parameters()}
    h, y = torch.randn(B, N, D, dtype=torch.float64), torch.randint(0, C, (B, N))

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return func.functional_call(ours, p, (x, t))

    got = func.vmap(func.grad(loss), in_dims=(None, 0, 0))(params, h, y)
    for b in range(B):
        theirs.zero_grad()
        theirs(h[b], y[b]).backward()
        for name, p in theirs.named_parameters():
            torch.testing.assert_close(got[name][b], p.grad, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------- the family


def _sigmoid_focal(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """torchvision's sigmoid focal loss (alpha 0.25, gamma 2), summed."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    return ((0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2).sum()


def _softmax_focal(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """:math:`-w_y (1 - p_y)^2 \\log p_y`, classes on axis 1, label -100 ignored, the
    weighted mean."""
    kept = y != -100
    log_p = F.log_softmax(x, 1).gather(1, y.clamp(min=0)[:, None])[:, 0]
    w_y = torch.where(kept, w[y.clamp(min=0)], 0.0)
    return -(w_y * (1 - log_p.exp()) ** 2 * log_p).sum() / w_y.sum()


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_family_losses(dtype: torch.dtype) -> None:
    """``binary_cross_entropy_with_logits`` (with weight and pos_weight),
    ``sigmoid_focal_loss`` and ``softmax_focal_loss`` (class weights, an ignored row):
    on main ``vmap`` and ``vmap(grad)`` raised vmap's data-dependent control-flow error."""
    g = torch.Generator().manual_seed(5)
    z = (2 * torch.randn(B, N, C, generator=g, dtype=torch.float64)).to(dtype)
    t = torch.rand(B, N, C, generator=g, dtype=torch.float64).to(dtype)
    weight = (torch.rand(C, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    y = torch.randint(0, C, (B, N), generator=g)
    y[0, 3] = -100
    w64 = weight.double()
    cases = [
        (
            lambda x, s: ct.binary_cross_entropy_with_logits(x, s, weight, pos_weight=weight),
            lambda x, s: F.binary_cross_entropy_with_logits(x, s, w64, pos_weight=w64),
            (z, t),
        ),
        (lambda x, s: ct.sigmoid_focal_loss(x, s).sum(), _sigmoid_focal, (z, t)),
        (
            lambda x, labels: ct.softmax_focal_loss(x, labels, weight=weight),
            lambda x, labels: _softmax_focal(x, labels, w64),
            (z, y),
        ),
    ]
    for ours, oracle, args in cases:
        _check_all(ours, oracle, args, dtype)


def test_family_checks_under_vmap_name_the_value() -> None:
    """The family's data checks run on vmap's examples: crossent's InputError (on main
    PyTorch's data-dependent control-flow error)."""
    z = torch.randn(B, N, C, dtype=torch.float64)
    t = torch.rand(B, N, C, dtype=torch.float64)
    t[1, 2, 3] = 1.5
    with pytest.raises(InputError, match="`target` must be probabilities"):
        func.vmap(lambda x, s: ct.binary_cross_entropy_with_logits(x, s))(z, t)
    y = torch.randint(0, C, (B, N))
    y[2, 0] = C + 3
    with pytest.raises(InputError, match=str(C + 3)):
        func.vmap(func.grad(lambda x, labels: ct.softmax_focal_loss(x, labels)))(z, y)


def _kl_idiom(
    z: torch.Tensor, v: torch.Tensor, temperature: float, teacher_form: str, direction: str
) -> torch.Tensor:
    """:math:`T^2` KL of the softened sides, the mean over rows (classes on axis 1)."""
    log_s = F.log_softmax(z / temperature, 1)
    log_p = {"logits": v, "probs": v.log(), "log_probs": v}[teacher_form]
    log_t = F.log_softmax(log_p / temperature, 1)
    if direction == "reverse":
        log_s, log_t = log_t, log_s
    return temperature**2 * (log_t.exp() * (log_t - log_s)).sum(1).mean()


@pytest.mark.parametrize(
    ("teacher_form", "direction"),
    [("logits", "forward"), ("probs", "forward"), ("log_probs", "reverse"), ("logits", "reverse")],
)
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_distillation_loss(dtype: torch.dtype, teacher_form: str, direction: str) -> None:
    """Every teacher form and direction (on main ``vmap(grad)`` raised, and ``vmap`` of
    the reverse direction too)."""
    g = torch.Generator().manual_seed(6)
    z = (2 * torch.randn(B, N, C, generator=g, dtype=torch.float64)).to(dtype)
    v = 2 * torch.randn(B, N, C, generator=g, dtype=torch.float64)
    v = {"logits": v, "probs": v.softmax(2), "log_probs": v.log_softmax(2)}[teacher_form]
    options = {"temperature": 2.0, "teacher_form": teacher_form, "direction": direction}

    def ours(x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return ct.distillation_loss(x, teacher, **options)

    def oracle(x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return _kl_idiom(x, teacher, 2.0, teacher_form, direction)

    _check_all(ours, oracle, (z, v.to(dtype)), dtype)


# ------------------------------------------------------------------- vocab-parallel


def test_vocab_parallel_losses_name_torch_func() -> None:
    """The vocab-parallel losses (collectives once a call) under a transform: an
    InputError naming the loss and torch.func (on main: a process-group error, or
    PyTorch's setup_context error with a group)."""
    z, y = torch.randn(N, C, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    with pytest.raises(
        InputError, match=r"vocab_parallel_cross_entropy does not run under torch\.func"
    ):
        func.grad(lambda x: ct.vocab_parallel_cross_entropy(x, y))(z)
    h, w = torch.randn(N, D, dtype=torch.float64), torch.randn(C, D, dtype=torch.float64)
    with pytest.raises(InputError, match="vocab_parallel_linear_cross_entropy does not run"):
        func.vmap(lambda x: ct.vocab_parallel_linear_cross_entropy(x, w, y[:1]))(h[:, None])


# ------------------------------------------------------------------- vmap's corners


def test_class_weights_of_each_example_and_shared_logits() -> None:
    """Class ids with class weights batched by vmap (one op call an example) and with
    logits shared across the examples (in_dims None): float64 autograd's."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B, N), generator=g)
    w = torch.rand(B, C, generator=g, dtype=torch.float64) + 0.5

    def ours(x: torch.Tensor, t: torch.Tensor, cw: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, t, weight=cw, label_smoothing=0.1)

    def oracle(x: torch.Tensor, t: torch.Tensor, cw: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x, t, weight=cw, label_smoothing=0.1)

    (want,) = _per_example_grads(oracle, (z, y, w), (0,))
    _close(func.vmap(func.grad(ours))(z, y, w), want, torch.float64)
    shared = func.vmap(ours, in_dims=(None, 0, None))(z[0], y, w[0])
    _close(shared, torch.stack([oracle(z[0], y[b], w[0]) for b in range(B)]), torch.float64)


def test_distillation_near_and_far_rows_under_vmap() -> None:
    """A student next to its teacher (rows whose KL the common form cancels: formed
    again, on every row then picked, as eager per-example calls do) and a row whose
    gaps pass the float range (an InputError naming vmap: on main PyTorch's
    data-dependent control-flow error)."""
    g = torch.Generator().manual_seed(8)
    v = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    z = v + 1e-7 * torch.randn(B, N, C, generator=g, dtype=torch.float64)

    def loss(x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return ct.distillation_loss(x, teacher, reduction="sum")

    eager = torch.stack([loss(z[b], v[b]) for b in range(B)])
    torch.testing.assert_close(func.vmap(loss)(z, v), eager, rtol=1e-12, atol=0.0)
    far = z.clone()
    far[1, 2, :2] = torch.tensor([1e308, -1e308], dtype=torch.float64)
    with pytest.raises(InputError, match=r"under torch\.func\.vmap a row's distillation loss"):
        func.vmap(func.grad(loss))(far, v)


def test_core_validation_under_vmap_says_validate_false() -> None:
    """crossent's array-API losses on tensors batched by vmap: the InputTypeError of
    data that cannot be read (as for jax.jit's tracers), naming ``validate=False``;
    on main PyTorch's data-dependent control-flow RuntimeError."""
    from crossent import losses
    from crossent.errors import InputTypeError

    z, t = torch.randn(B, N, C, dtype=torch.float64), torch.rand(B, N, C, dtype=torch.float64)
    with pytest.raises(InputTypeError, match="validate=False"):
        func.vmap(lambda x, s: losses.sigmoid_cross_entropy(x, s))(z, t)
    rows = func.vmap(lambda x, s: losses.sigmoid_cross_entropy(x, s, validate=False))(z, t)
    torch.testing.assert_close(
        rows, torch.stack([losses.sigmoid_cross_entropy(z[b], t[b]) for b in range(B)])
    )
