"""crossent.torch.linear_cross_entropy against the naive pair and F.linear_cross_entropy."""

from __future__ import annotations

import itertools

import pytest

from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
from crossent.torch import _functional, _linear  # noqa: E402


def _data(n, d, v, *, seed, dtype=torch.float64, ignored=True):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, dtype=dtype, generator=gen)
    w = torch.randn(v, d, dtype=dtype, generator=gen) / d**0.5 * 3
    b = torch.randn(v, dtype=dtype, generator=gen)
    y = torch.randint(0, v, (n,), generator=gen)
    if ignored:
        y[:: max(3, n // 4)] = -100
    cw = torch.rand(v, dtype=dtype, generator=gen) + 0.1
    return h, w, b, y, cw


def _naive(h, w, y, *, linear_bias=None, chunk_size=None, **kw):
    return F.cross_entropy(F.linear(h, w, linear_bias), y, **kw)


def _value_and_grads(fn, h, w, b, y, upstream=None, **kw):
    leaves = [t.detach().clone().requires_grad_(True) for t in (h, w, b)]
    loss = fn(leaves[0], leaves[1], y, linear_bias=leaves[2], **kw)
    u = torch.ones_like(loss) if upstream is None else upstream
    grads = torch.autograd.grad((loss * u).sum(), leaves)
    return loss.detach(), grads


EVERY_COMBINATION = list(itertools.product([False, True], [0.0, 0.1], ["mean", "sum", "none"]))
SOME_COMBINATIONS = [(True, 0.1, "none"), (False, 0.0, "mean"), (True, 0.1, "sum")]


@pytest.mark.parametrize(
    ("vocab_chunk", "combinations"),
    [(0, EVERY_COMBINATION), (8000, SOME_COMBINATIONS)],
    ids=["whole-vocab", "vocab-blocks"],
)
def test_parity_with_naive_float64(vocab_chunk, combinations, monkeypatch):
    """V = 32003, small N: values and the three gradients to 1e-10."""
    monkeypatch.setattr(_functional, "_VOCAB_CHUNK", vocab_chunk)
    h, w, b, y, cw = _data(9, 16, 32003, seed=1)
    for use_w, eps, reduction in itertools.product(
        [False, True], [0.0, 0.1], ["mean", "sum", "none"]
    ):
        kw = {"weight": cw if use_w else None, "label_smoothing": eps, "reduction": reduction}
        up = torch.randn(9, dtype=torch.float64) if reduction == "none" else None
        ours, g = _value_and_grads(
            ct.linear_cross_entropy, h, w, b, y, up, ignore_index=-100, chunk_size=4, **kw
        )
        ref, g_ref = _value_and_grads(_naive, h, w, b, y, up, ignore_index=-100, **kw)
        case = (use_w, eps, reduction)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10, msg=str(case))
        for a, r in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12, msg=str(case))


@pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"), reason="torch < 2.13")
def test_parity_with_torch_linear_cross_entropy():
    h, w, b, y, cw = _data(33, 8, 509, seed=2)
    for reduction in ("mean", "sum", "none"):
        kw = {"weight": cw, "label_smoothing": 0.05, "reduction": reduction, "ignore_index": -100}
        up = torch.randn(33, dtype=torch.float64) if reduction == "none" else None
        ours, g = _value_and_grads(ct.linear_cross_entropy, h, w, b, y, up, **kw)
        ref, g_ref = _value_and_grads(F.linear_cross_entropy, h, w, b, y, up, **kw)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
        for a, r in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [{"z_loss": 0.01}, {"soft_cap": 3.0}, {"temperature": 0.6}])
def test_options_match_cross_entropy_of_the_logits(kw, monkeypatch):
    monkeypatch.setattr(_functional, "_VOCAB_CHUNK", 64)
    h, w, b, y, cw = _data(21, 8, 300, seed=3)
    for reduction in ("mean", "none"):
        up = torch.randn(21, dtype=torch.float64) if reduction == "none" else None

        def reference(h, w, y, *, linear_bias=None, **options):
            return ct.cross_entropy(F.linear(h, w, linear_bias), y, **options)

        opts = {"weight": cw, "reduction": reduction, "ignore_index": -100, **kw}
        ours, g = _value_and_grads(ct.linear_cross_entropy, h, w, b, y, up, chunk_size=5, **opts)
        ref, g_ref = _value_and_grads(reference, h, w, b, y, up, **opts)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
        for a, r in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64(monkeypatch):
    """gradcheck differentiates twice through one graph, which the gradients formed in
    the forward (scaled in place) refuse: scalar reductions are checked on the
    recomputing backward, whose formula is the same."""
    monkeypatch.setattr(_functional, "_FORM_GRADIENTS_IN_FORWARD", False)
    h, w, b, y, cw = _data(6, 3, 7, seed=4)
    leaves = tuple(t.detach().clone().requires_grad_(True) for t in (h, w, b))
    for kw in ({"reduction": "none"}, {"weight": cw, "label_smoothing": 0.2}, {"z_loss": 0.1}):

        def fn(h, w, b, kw=kw):
            return ct.linear_cross_entropy(
                h, w, y, linear_bias=b, ignore_index=-100, chunk_size=4, **kw
            )

        assert torch.autograd.gradcheck(fn, leaves)


def test_formed_and_recomputed_gradients_agree(monkeypatch):
    h, w, b, y, cw = _data(11, 5, 301, seed=13)
    kw = {"weight": cw, "label_smoothing": 0.1, "z_loss": 1e-3, "ignore_index": -100}
    formed = _value_and_grads(ct.linear_cross_entropy, h, w, b, y, chunk_size=4, **kw)
    monkeypatch.setattr(_functional, "_FORM_GRADIENTS_IN_FORWARD", False)
    recomputed = _value_and_grads(ct.linear_cross_entropy, h, w, b, y, chunk_size=4, **kw)
    torch.testing.assert_close(formed[0], recomputed[0], rtol=0, atol=0)
    for a, r in zip(formed[1], recomputed[1], strict=True):
        torch.testing.assert_close(a, r, rtol=1e-14, atol=1e-16)


def test_chunk_size_invariance():
    """Per-row values bitwise equal across token blocks; accumulated ones to 1e-14."""
    h, w, b, y, cw = _data(40, 12, 1001, seed=5)
    runs = []
    for chunk in (1, 7, 40):
        for reduction in ("none", "mean"):
            runs.append(
                (
                    chunk,
                    reduction,
                    _value_and_grads(
                        ct.linear_cross_entropy, h, w, b, y, None, weight=cw,
                        ignore_index=-100, label_smoothing=0.1, reduction=reduction,
                        chunk_size=chunk,
                    ),
                )
            )  # fmt: skip
    base = {reduction: result for chunk, reduction, result in runs if chunk == 40}
    for _, reduction, (loss, grads) in runs:
        ref_loss, ref_grads = base[reduction]
        torch.testing.assert_close(loss, ref_loss, rtol=1e-14, atol=1e-14)
        for a, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_loss_and_gradients_against_float64_truth(dtype):
    """bf16/fp16: float32 loss within 1e-5 of the float64 truth of the same values;
    gradients no further from it than the naive same-dtype pair's."""
    h, w, _, y, _ = _data(64, 32, 3001, seed=6, dtype=torch.float64, ignored=False)
    h, w = h.to(dtype), w.to(dtype)
    zero = torch.zeros(3001, dtype=dtype)
    truth, g_truth = _value_and_grads(_naive, h.double(), w.double(), zero.double(), y)
    ours, g = _value_and_grads(ct.linear_cross_entropy, h, w, zero, y)
    naive, g_naive = _value_and_grads(_naive, h, w, zero, y)
    assert ours.dtype == torch.float32
    assert all(t.dtype == dtype for t in g)
    assert abs(float(ours) - float(truth)) <= 1e-5 * float(truth)
    assert abs(float(ours) - float(truth)) <= abs(float(naive) - float(truth)) + 1e-7
    for a, n, t in zip(g[:2], g_naive[:2], g_truth[:2], strict=True):
        assert float((a.double() - t).norm()) <= float((n.double() - t).norm())


def test_all_ignored_batch_is_zero_with_zero_gradients():
    h, w, b, _, _ = _data(5, 4, 9, seed=7, dtype=torch.float32)
    y = torch.full((5,), -100, dtype=torch.int16)
    loss, grads = _value_and_grads(ct.linear_cross_entropy, h, w, b, y, ignore_index=-100)
    assert float(loss) == 0.0
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_batched_input_and_every_integer_label_dtype():
    h, w, _, y, _ = _data(12, 4, 9, seed=8, ignored=False)
    h3 = h.reshape(3, 4, 4)
    ref = ct.linear_cross_entropy(h, w, y, reduction="none").reshape(3, 4)
    for dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        out = ct.linear_cross_entropy(h3, w, y.reshape(3, 4).to(dtype), reduction="none")
        torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_no_gradient_work_under_no_grad(monkeypatch):
    calls = []
    original = _linear.forward_pass

    def spy(problem, *, row_scale):
        calls.append(row_scale is not None)
        return original(problem, row_scale=row_scale)

    monkeypatch.setattr("crossent.torch._ops.forward_pass", spy)
    h, w, _, y, _ = _data(6, 4, 9, seed=9)
    h.requires_grad_(True)
    with torch.no_grad():
        ct.linear_cross_entropy(h, w, y, ignore_index=-100)
    ct.linear_cross_entropy(h, w, y, ignore_index=-100)
    ct.linear_cross_entropy(h.detach(), w, y, ignore_index=-100)
    assert calls == [False, True, False]


def test_module_and_linear_head_form():
    torch.manual_seed(0)
    module = ct.LinearCrossEntropyLoss(6, 40, bias=True, ignore_index=-100, label_smoothing=0.1)
    h = torch.randn(10, 6)
    y = torch.randint(0, 40, (10,))
    y[2] = -100
    loss = module(h, y)
    ref = F.cross_entropy(module.linear(h), y, label_smoothing=0.1)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    loss.backward()
    assert module.linear.weight.grad is not None
    assert module.linear.bias.grad is not None
    head = torch.nn.Linear(6, 40)
    torch.testing.assert_close(
        ct.linear_head_cross_entropy(h, head, y, ignore_index=-100),
        F.cross_entropy(head(h), y),
        rtol=1e-6,
        atol=1e-6,
    )


def test_issue12_label_minus_100_without_ignore_index_suggests_it():
    h, w, _, y, _ = _data(8, 4, 9, seed=10)
    with pytest.raises(InputError, match=r"row 0 has -100.*ignore_index=-100"):
        ct.linear_cross_entropy(h, w, y)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda h, w, y: ct.linear_cross_entropy(h, w, y + 9), InputError, r"row \d+ has \d+"),
        (lambda h, w, y: ct.linear_cross_entropy(h, w.T, y), InputError, "share D"),
        (lambda h, w, y: ct.linear_cross_entropy(h, w, y[:3]), InputError, "batch shape"),
        (lambda h, w, y: ct.linear_cross_entropy(h, w.float(), y), InputTypeError, "one dtype"),
        (lambda h, w, y: ct.linear_cross_entropy(h, w, y.double()), InputTypeError, "probab"),
        (lambda h, w, y: ct.linear_cross_entropy(h, w, y, chunk_size=0), InputError, "chunk"),
        (
            lambda h, w, y: ct.linear_cross_entropy(h, w, y, linear_bias=torch.ones(3)),
            InputError,
            "linear_bias",
        ),
        (lambda h, w, y: ct.linear_cross_entropy(h, w, y, reduction="x"), InputError, "reduct"),
        (
            lambda h, w, y: ct.linear_cross_entropy(h * torch.inf, w, y),
            InputError,
            "not finite",
        ),
        (lambda h, w, y: ct.linear_head_cross_entropy(h, w, y), InputTypeError, "nn.Linear"),
    ],
)
def test_issue12_error_paths(call, error, pattern):
    h, w, _, y, _ = _data(8, 4, 9, seed=11, ignored=False)
    with pytest.raises(error, match=pattern):
        call(h, w, y)


def test_second_backward_through_formed_gradients_fails_loudly():
    """The formed gradients are scaled in place: a second backward must not double them."""
    h, w, _, y, _ = _data(5, 3, 7, seed=12, ignored=False)
    h.requires_grad_(True)
    loss = ct.linear_cross_entropy(h, w, y)
    (2 * loss).backward(retain_graph=True)
    expected = torch.autograd.grad(2 * F.cross_entropy(h @ w.T, y), h)[0]
    torch.testing.assert_close(h.grad, expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()
    # reduction='none' recomputes and supports a second backward
    rows = ct.linear_cross_entropy(h, w, y, reduction="none")
    rows.sum().backward(retain_graph=True)
    rows.sum().backward()
