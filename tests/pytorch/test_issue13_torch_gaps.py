r"""Issue 13 follow-up: three silent behaviours of ``crossent.torch`` the differential
review found, each now an error or the right answer.

1. Class weights with ``requires_grad=True`` in the class-id losses got no gradient
   (``linear_cross_entropy``, the vocab-parallel losses) or, through ``'mean'``'s
   denominator :math:`\sum_i w_{y_i}`, only part of it (``cross_entropy``): silently
   wrong. ``F.cross_entropy`` raises (its ``nll_loss`` is not differentiable in
   ``weight``); these raise an :class:`InputError` naming the weight. Probability
   targets, which PyTorch does differentiate in ``weight``, keep their gradient: checked
   by ``gradcheck`` (float64 finite differences) and against ``F.cross_entropy``.
2. ``linear_cross_entropy`` cast ``linear_bias`` to the input's dtype and the
   vocab-parallel linear loss promoted mixed dtypes; ``F.linear`` raises on a bias of
   another dtype. Now both raise an :class:`InputTypeError` naming the tensors.
3. NaN or infinite logits (or hidden states) in rows whose label is ``ignore_index``
   raised an error. PyTorch's ``F.cross_entropy`` raises none and its loss ignores them
   (its gradient there is NaN). Now no error either, the loss and the other rows'
   gradients are those of the same call with those rows zeroed (bit for bit), and the
   ignored rows' gradients exactly 0 (``dW`` of the linear loss too), in
   ``crossent.torch`` (eager, backward, the modules, vocab-parallel) and in
   ``crossent.softmax_cross_entropy`` / ``_grad``, which share the check; a NaN in a
   row that counts is still named.

Small shapes and the dtypes other tests compile for: a second or two in all.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional

import crossent  # noqa: E402
from crossent.errors import InputError, InputTypeError  # noqa: E402

# The one-rank gloo group of the vocab-parallel tests (a fixture), not copied.
from pytorch.test_issue13_torch_exact import one_rank  # noqa: E402, F401

LABELS = [0, -100, 2, 5, -100, 6]  # rows 1 and 4 ignored
IGNORED = [1, 4]
NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------ 1. class weights and grad


def _class_id_calls(w: torch.Tensor) -> dict[str, object]:
    g = _generator(1)
    z = torch.randn(6, 7, generator=g, requires_grad=True)
    h = torch.randn(6, 4, generator=g, requires_grad=True)
    lin = torch.nn.Linear(4, 7)
    y = torch.tensor(LABELS)
    return {
        "cross_entropy mean": lambda: ct.cross_entropy(z, y, weight=w),
        "cross_entropy sum": lambda: ct.cross_entropy(z, y, weight=w, reduction="sum"),
        "cross_entropy none 3-d": lambda: ct.cross_entropy(
            z.reshape(2, 3, 7).transpose(1, 2), y.reshape(2, 3), weight=w, reduction="none"
        ),
        "CrossEntropyLoss": lambda: ct.CrossEntropyLoss(weight=w)(z, y),
        "linear_cross_entropy": lambda: ct.linear_cross_entropy(
            h, lin.weight, y, weight=w, ignore_index=-100
        ),
        "LinearCrossEntropyLoss": lambda: ct.LinearCrossEntropyLoss(
            4, 7, weight=w, ignore_index=-100
        )(h, y),
    }


@pytest.mark.parametrize("name", list(_class_id_calls(torch.ones(7))))
def test_class_id_weight_that_requires_grad_raises(name: str) -> None:
    w = torch.rand(7, generator=_generator(2)) + 0.5
    # The oracle's behaviour: PyTorch refuses too.
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.cross_entropy(torch.randn(3, 7), torch.tensor([0, 1, 2]), weight=w.requires_grad_())
    call = _class_id_calls(w)[name]
    with pytest.raises(InputError, match=r"`weight` requires grad.*weight\.detach\(\)"):
        call()  # type: ignore[operator]
    # No gradient asked of it: no error.
    with torch.no_grad():
        call()  # type: ignore[operator]
    loss = _class_id_calls(w.detach())[name]()  # type: ignore[operator]
    assert bool(torch.isfinite(loss).all())


@pytest.mark.usefixtures("one_rank")
def test_vocab_parallel_weight_that_requires_grad_raises() -> None:
    g = _generator(3)
    w = (torch.rand(7, generator=g) + 0.5).requires_grad_()
    y = torch.tensor(LABELS)
    z = torch.randn(6, 7, generator=g, requires_grad=True)
    with pytest.raises(InputError, match="`weight` requires grad"):
        ct.vocab_parallel_cross_entropy(z, y, weight=w)
    h = torch.randn(6, 4, generator=g, requires_grad=True)
    lin = torch.randn(7, 4, generator=g, requires_grad=True)
    with pytest.raises(InputError, match="`class_weight` requires grad"):
        ct.vocab_parallel_linear_cross_entropy(h, lin, y, class_weight=w)
    want = ct.cross_entropy(z, y, weight=w.detach())
    got = ct.vocab_parallel_cross_entropy(z, y, weight=w.detach())
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_probability_targets_differentiate_the_weight(
    reduction: str, label_smoothing: float
) -> None:
    """The weight's gradient of probability targets: float64 central differences
    (``gradcheck``) of crossent's loss, and PyTorch's autograd of its own formula."""
    g = _generator(4)
    z = torch.randn(4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.softmax(torch.randn(4, 5, dtype=torch.float64, generator=g), 1)
    w = (torch.rand(5, dtype=torch.float64, generator=g) + 0.5).requires_grad_()
    kw = {"reduction": reduction, "label_smoothing": label_smoothing}

    def loss(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(z, t, weight=w, **kw)

    assert torch.autograd.gradcheck(loss, (z, w))
    seed = torch.rand(loss(z, w).shape, dtype=torch.float64, generator=g)
    got = torch.autograd.grad(loss(z, w), (z, w), seed)
    want = torch.autograd.grad(F.cross_entropy(z, t, weight=w, **kw), (z, w), seed)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_probability_targets_float32_weight_gradient() -> None:
    g = _generator(5)
    z = torch.randn(6, 9, generator=g)
    t = torch.softmax(torch.randn(6, 9, generator=g), 1)
    w = torch.rand(9, generator=g) + 0.5
    got = torch.autograd.grad(ct.cross_entropy(z, t, weight=w.requires_grad_()), w)[0]
    w64 = w.detach().double().requires_grad_()
    want = torch.autograd.grad(F.cross_entropy(z.double(), t.double(), weight=w64), w64)[0]
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------- 2. bias dtype


@pytest.mark.parametrize(
    ("dtype", "bias_dtype"),
    [
        (torch.float32, torch.float64),
        (torch.float64, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float16),
    ],
)
def test_bias_of_another_dtype_raises_as_in_f_linear(
    dtype: torch.dtype, bias_dtype: torch.dtype
) -> None:
    g = _generator(6)
    h = torch.randn(5, 4, generator=g).to(dtype)
    w = torch.randn(7, 4, generator=g).to(dtype)
    b = torch.randn(7, generator=g).to(bias_dtype)
    y = torch.tensor([0, 1, 6, 3, 3])
    with pytest.raises(RuntimeError):  # the rule it follows
        F.linear(h, w, b)
    with pytest.raises(InputTypeError, match=r"`linear_bias` must have one dtype"):
        ct.linear_cross_entropy(h, w, y, linear_bias=b)
    with pytest.raises(InputTypeError, match=r"`bias` must have one dtype"):
        # Raised before the process group is looked up: no group needed.
        ct.vocab_parallel_linear_cross_entropy(h, w, y, bias=b)
    with pytest.raises(InputTypeError, match=r"`input`, `weight` and `bias` must have one dtype"):
        ct.vocab_parallel_linear_cross_entropy(h.to(bias_dtype), w, y, bias=b)
    # One dtype: the naive pair's value.
    got = ct.linear_cross_entropy(h, w, y, linear_bias=b.to(dtype))
    want = F.cross_entropy(F.linear(h.double(), w.double(), b.to(dtype).double()), y)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0)


@pytest.mark.usefixtures("one_rank")
def test_vocab_parallel_linear_one_dtype() -> None:
    g = _generator(7)
    h = torch.randn(5, 4, dtype=torch.float64, generator=g)
    w = torch.randn(7, 4, dtype=torch.float64, generator=g)
    b = torch.randn(7, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 1, 6, 3, 3])
    got = ct.vocab_parallel_linear_cross_entropy(h, w, y, bias=b)
    torch.testing.assert_close(got, F.cross_entropy(F.linear(h, w, b), y), rtol=1e-13, atol=0)
    with pytest.raises(InputTypeError, match="`input` and `weight` must have one dtype"):
        ct.vocab_parallel_linear_cross_entropy(h.float(), w, y)


# --------------------------------------------------- 3. non-finite ignored rows


def _with_bad_ignored_rows(x: torch.Tensor, bad: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with ignored row 1 all ``bad`` and one ``bad`` entry in ignored row 4; and
    ``x`` with both rows zeroed (the reference call)."""
    x = x.clone()
    x[IGNORED[0]] = bad
    x[IGNORED[1], 2] = bad
    zeroed = x.clone()
    zeroed[IGNORED] = 0
    return x, zeroed


def _loss_and_grads(call: object, *tensors: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    loss = call(*leaves)  # type: ignore[operator]
    loss.sum().backward()
    return [loss.detach(), *(t.grad for t in leaves)]  # type: ignore[misc]


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b), (a, b)


CE_CASES = [
    # (dtype, options): the fused kernels (float32, bfloat16), the generic path
    # (float64; soft-capping in float64), label smoothing and z-loss, class weights
    (torch.float32, {}),
    (torch.float32, {"label_smoothing": 0.1, "z_loss": 1e-3, "weight": True}),
    (torch.bfloat16, {"reduction": "sum"}),
    (torch.float64, {"label_smoothing": 0.1, "reduction": "none", "weight": True}),
    (torch.float32, {"soft_cap": 3.0, "reduction": "none"}),
]


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize(("dtype", "options"), CE_CASES)
def test_cross_entropy_ignores_non_finite_ignored_rows(
    bad: float, dtype: torch.dtype, options: dict[str, object]
) -> None:
    g = _generator(8)
    z, zeroed = _with_bad_ignored_rows(torch.randn(6, 7, generator=g).to(dtype), bad)
    y = torch.tensor(LABELS, dtype=torch.int32)
    opts = dict(options)
    if opts.pop("weight", False):
        opts["weight"] = (torch.rand(7, generator=g) + 0.5).to(
            torch.float64 if dtype == torch.float64 else torch.float32
        )
    got = _loss_and_grads(lambda x: ct.cross_entropy(x, y, **opts), z)
    _assert_same(got, _loss_and_grads(lambda x: ct.cross_entropy(x, y, **opts), zeroed))
    assert bool((got[1][IGNORED] == 0).all())
    # The module, and PyTorch's forward value (unaffected by those rows too).
    module = ct.CrossEntropyLoss(**opts)
    _assert_same(_loss_and_grads(lambda x: module(x, y), z), got)
    if "soft_cap" not in opts and "z_loss" not in opts:
        torch_opts = {k: v for k, v in opts.items()}
        if "weight" in torch_opts:
            torch_opts["weight"] = torch_opts["weight"].to(got[0].dtype)  # type: ignore[union-attr]
        want = F.cross_entropy(z.to(got[0].dtype), y.long(), **torch_opts)  # type: ignore[arg-type]
        torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_a_nan_in_a_row_that_counts_is_still_named(dtype: torch.dtype) -> None:
    z, _ = _with_bad_ignored_rows(torch.randn(6, 7, generator=_generator(9)).to(dtype), 0.0)
    z[IGNORED[0]] = float("nan")  # before it, ignored
    z[3, 4] = float("nan")  # row 3 counts
    with pytest.raises(InputError, match=r"`input` contains NaN at index \(3, 4\)"):
        ct.cross_entropy(z, torch.tensor(LABELS))
    # Row 1 with a label counts.
    with pytest.raises(InputError, match=r"index \(1, 0\)"):
        ct.cross_entropy(z, torch.tensor([0, 1, 2, 5, -100, 6]))
    h = torch.randn(6, 4, generator=_generator(9))
    h[IGNORED[0]] = float("nan")
    h[3, 1] = float("nan")
    with pytest.raises(InputError, match="the logits of row 3 are not finite"):
        ct.linear_cross_entropy(h, torch.randn(7, 4), torch.tensor(LABELS), ignore_index=-100)


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_softmax_cross_entropy_ignores_non_finite_ignored_rows(
    bad: float, dtype: type
) -> None:
    z, zeroed = (
        x.numpy().astype(dtype)
        for x in _with_bad_ignored_rows(torch.randn(6, 7, generator=_generator(10)), bad)
    )
    y = np.array(LABELS)
    for options in ({}, {"label_smoothing": 0.1, "reduction": "none", "z_loss": 1e-3}):
        kw = {"ignore_index": -100, **options}
        for f in (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad):
            got, want = f(z, y, **kw), f(zeroed, y, **kw)
            assert got.dtype == want.dtype
            assert np.array_equal(got, want)
    z[3, 1] = np.nan
    with pytest.raises(InputError, match=r"contains NaN at index \(3, 1\)"):
        crossent.softmax_cross_entropy(z, y, ignore_index=-100)


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.float32, {}),
        (torch.float32, {"reduction": "none", "chunk_size": 4}),
        (torch.bfloat16, {"label_smoothing": 0.1}),
        (torch.float64, {"soft_cap": 3.0, "reduction": "sum"}),
    ],
)
def test_linear_cross_entropy_ignores_non_finite_ignored_rows(
    bad: float, dtype: torch.dtype, options: dict[str, object]
) -> None:
    g = _generator(11)
    h, zeroed = _with_bad_ignored_rows(torch.randn(6, 4, generator=g).to(dtype), bad)
    w = torch.randn(7, 4, generator=g).to(dtype)
    b = torch.randn(7, generator=g).to(dtype)
    y = torch.tensor(LABELS)

    def loss(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ct.linear_cross_entropy(h, w, y, linear_bias=b, ignore_index=-100, **options)

    got = _loss_and_grads(loss, h, w, b)
    _assert_same(got, _loss_and_grads(loss, zeroed, w, b))
    assert bool((got[1][IGNORED] == 0).all())
    assert all(bool(torch.isfinite(x).all()) for x in got)
    # The module: the same loss and gradients, its head's too.
    module = ct.LinearCrossEntropyLoss(4, 7, bias=True, ignore_index=-100, dtype=dtype, **options)
    with torch.no_grad():
        module.linear.weight.copy_(w)
        module.linear.bias.copy_(b)
    _assert_same(_loss_and_grads(lambda x: module(x, y), h), got[:2])
    assert torch.equal(module.linear.weight.grad, got[2])
    assert torch.equal(module.linear.bias.grad, got[3])


@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("bad", NON_FINITE)
def test_vocab_parallel_ignores_non_finite_ignored_rows(bad: float) -> None:
    g = _generator(12)
    y = torch.tensor(LABELS)
    z, zeroed = _with_bad_ignored_rows(torch.randn(6, 7, dtype=torch.float64, generator=g), bad)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return ct.vocab_parallel_cross_entropy(x, y, label_smoothing=0.1, reduction="none")

    got = _loss_and_grads(loss, z)
    _assert_same(got, _loss_and_grads(loss, zeroed))
    assert bool((got[1][IGNORED] == 0).all())
    h, h0 = _with_bad_ignored_rows(torch.randn(6, 4, generator=g), bad)
    w, b = torch.randn(7, 4, generator=g), torch.randn(7, generator=g)

    def linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ct.vocab_parallel_linear_cross_entropy(h, w, y, bias=b, soft_cap=3.0, chunk_size=4)

    got = _loss_and_grads(linear, h, w, b)
    _assert_same(got, _loss_and_grads(linear, h0, w, b))
    assert bool((got[1][IGNORED] == 0).all())
    z[3, 2] = float("nan")
    with pytest.raises(InputError, match="1 NaN or"):
        ct.vocab_parallel_cross_entropy(z, y)
