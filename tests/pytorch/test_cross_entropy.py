"""crossent.torch.cross_entropy against F.cross_entropy (float64 oracle), issue 12."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent
from crossent.errors import InputError, InputTypeError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")

WEIGHTS = [False, True]
IGNORES = [False, True]
SMOOTHING = [0.0, 0.1]
REDUCTIONS = ["mean", "sum", "none"]


def _data(shape, classes_axis_size, *, seed, dtype=torch.float64, ignored=True):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, dtype=dtype, generator=gen) * 3
    batch = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    y = torch.randint(0, classes_axis_size, batch, generator=gen)
    if ignored and y.numel() > 2:
        flat = y.reshape(-1)
        flat[:: max(3, flat.numel() // 5)] = -100
    w = torch.rand(classes_axis_size, dtype=dtype, generator=gen) + 0.1
    return z, y, w


def _value_and_grad(fn, z, y, upstream=None, **kw):
    leaf = z.detach().clone().requires_grad_(True)
    loss = fn(leaf, y, **kw)
    u = torch.ones_like(loss) if upstream is None else upstream
    (grad,) = torch.autograd.grad((loss * u).sum(), leaf)
    return loss.detach(), grad


EVERY_COMBINATION = list(itertools.product(WEIGHTS, IGNORES, SMOOTHING, REDUCTIONS))
#: Each value of each option at least once, for the large shape (the sweep is costly there).
SOME_COMBINATIONS = [
    (True, True, 0.1, "none"),
    (False, True, 0.0, "mean"),
    (True, False, 0.1, "sum"),
    (True, True, 0.1, "mean"),
]


@pytest.mark.parametrize(
    ("shape", "combinations"),
    [
        ((37, 11), EVERY_COMBINATION),
        ((7, 5, 3), EVERY_COMBINATION),
        ((67, 33, 509), SOME_COMBINATIONS),
    ],
    ids=["37x11", "7x5x3", "67x33x509"],
)
def test_parity_with_torch_float64(shape, combinations):
    """Values and gradients to 1e-10 for weight x ignore_index x smoothing x reduction."""
    z, y, w = _data(shape, shape[1], seed=1)
    for use_w, ignore, eps, reduction in combinations:
        labels = y if ignore else torch.where(y < 0, torch.zeros_like(y), y)
        kw = {"weight": w if use_w else None, "label_smoothing": eps, "reduction": reduction}
        if not ignore:
            kw["ignore_index"] = -1  # present in the call, absent from the data
        upstream = None
        if reduction == "none":
            upstream = torch.randn(labels.shape, dtype=torch.float64)
        ours, g_ours = _value_and_grad(ct.cross_entropy, z, labels, upstream, **kw)
        ref, g_ref = _value_and_grad(F.cross_entropy, z, labels, upstream, **kw)
        case = (use_w, ignore, eps, reduction)
        assert ours.dtype == torch.float64, case
        assert ours.shape == ref.shape, case
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10, msg=str(case))
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12, msg=str(case))


def test_unbatched_input_and_scalar_target():
    z, _, w = _data((7,), 7, seed=2)
    y = torch.tensor(3)
    for reduction in REDUCTIONS:
        ours, g = _value_and_grad(ct.cross_entropy, z, y, reduction=reduction, weight=w)
        ref, g_ref = _value_and_grad(F.cross_entropy, z, y, reduction=reduction, weight=w)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def test_probability_targets_match_torch_including_weighted_mean():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(13, 6, 4, dtype=torch.float64, generator=gen)
    t = torch.softmax(torch.randn(13, 6, 4, dtype=torch.float64, generator=gen), dim=1)
    w = torch.rand(6, dtype=torch.float64, generator=gen)
    for use_w, eps, reduction in itertools.product(WEIGHTS, SMOOTHING, REDUCTIONS):
        kw = {"weight": w if use_w else None, "label_smoothing": eps, "reduction": reduction}
        up = torch.randn(13, 4, dtype=torch.float64) if reduction == "none" else None
        ours, g = _value_and_grad(ct.cross_entropy, z, t, up, **kw)
        ref, g_ref = _value_and_grad(F.cross_entropy, z, t, up, **kw)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64_with_options():
    z, y, w = _data((5, 4), 4, seed=4)
    y = torch.tensor([0, 3, -100, 1, 2])
    leaf = z.detach().clone().requires_grad_(True)
    for kw in (
        {"reduction": "none"},
        {"weight": w, "label_smoothing": 0.2},
        {"z_loss": 0.01, "temperature": 1.7, "reduction": "sum"},
        {"soft_cap": 2.5, "label_smoothing": 0.1},
    ):
        assert torch.autograd.gradcheck(lambda x, kw=kw: ct.cross_entropy(x, y, **kw), (leaf,))


@pytest.mark.parametrize(
    "options",
    [{"z_loss": 1e-3}, {"temperature": 0.7}, {"soft_cap": 4.0}, {"z_loss": 0.01, "weight": True}],
)
def test_options_match_an_explicit_float64_formula(options):
    """z-loss, temperature and soft-capping against the formula written out in torch."""
    z, y, w = _data((29, 9), 9, seed=5)
    options = dict(options)
    weight = w if options.pop("weight", False) else None
    cap, temp = options.get("soft_cap"), options.get("temperature", 1.0)
    lam = options.get("z_loss", 0.0)

    def reference(x, labels):
        zt = x if cap is None else cap * torch.tanh(x / cap)
        zt = zt / temp
        lse = torch.logsumexp(zt, 1)
        active = labels != -100
        safe = torch.where(active, labels, 0)
        w_y = torch.ones_like(lse) if weight is None else weight[safe]
        rows = w_y * (lse - zt.gather(1, safe[:, None])[:, 0]) + lam * w_y * lse**2
        rows = torch.where(active, rows, torch.zeros_like(rows))
        return rows.sum() / torch.where(active, w_y, 0).sum()

    ours, g = _value_and_grad(ct.cross_entropy, z, y, weight=weight, **options)
    ref, g_ref = _value_and_grad(reference, z, y)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "dtype", [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8], ids=str
)
def test_issue12_every_integer_label_dtype(dtype):
    z, _, _ = _data((9, 7), 7, seed=6)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0, 1])
    ours, g = _value_and_grad(ct.cross_entropy, z, y.to(dtype))
    ref, g_ref = _value_and_grad(F.cross_entropy, z, y)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-15)


def test_issue12_all_ignored_batch_has_mean_zero_and_zero_gradients():
    z, _, w = _data((6, 5), 5, seed=7, dtype=torch.float32)
    y = torch.full((6,), -100)
    for weight in (None, w):
        loss, g = _value_and_grad(ct.cross_entropy, z, y, weight=weight, label_smoothing=0.1)
        assert float(loss) == 0.0
        assert not torch.isnan(loss)
        assert torch.count_nonzero(g) == 0


def test_fused_float32_path_against_float64_truth():
    """Float32 CPU tensors go to the fused kernels: values and gradients vs float64."""
    z64, y, w = _data((300, 257), 257, seed=8)
    for kw in ({}, {"weight": w.float(), "label_smoothing": 0.1, "z_loss": 1e-4}):
        kw64 = {k: v.double() if torch.is_tensor(v) else v for k, v in kw.items()}
        for reduction in REDUCTIONS:
            up = torch.randn(y.shape, dtype=torch.float64) if reduction == "none" else None
            ours, g = _value_and_grad(
                ct.cross_entropy, z64.float(), y, None if up is None else up.float(),
                reduction=reduction, **kw,
            )  # fmt: skip
            ref, g_ref = _value_and_grad(ct.cross_entropy, z64, y, up, reduction=reduction, **kw64)
            assert ours.dtype == torch.float32
            assert g.dtype == torch.float32
            torch.testing.assert_close(ours.double(), ref, rtol=2e-6, atol=1e-6)
            torch.testing.assert_close(g.double(), g_ref, rtol=1e-5, atol=2e-7)


def test_fused_path_reads_float32_logits_without_a_copy(monkeypatch):
    from crossent.torch import _backend

    seen = []
    original = _backend.label_rows

    def spy(z, *args, **kwargs):
        seen.append(z)
        return original(z, *args, **kwargs)

    monkeypatch.setattr(_backend, "label_rows", spy)
    z = torch.randn(8, 16)
    ct.cross_entropy(z, torch.arange(8))
    assert isinstance(seen[0], np.ndarray)
    assert seen[0].ctypes.data == z.data_ptr()


def _peaked(rows, classes, p_y, *, seed):
    """Logits whose softmax gives the label probability p_y (other classes equal)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, classes, dtype=torch.float64, generator=gen) * 0.1
    y = torch.randint(0, classes, (rows,), generator=gen)
    # p_y / (1 - p_y) = e^{d} / sum_{c != y} e^{z_c}
    rest = torch.logsumexp(z.scatter(1, y[:, None], -torch.inf), 1)
    z.scatter_(1, y[:, None], (rest + np.log(p_y / (1 - p_y)))[:, None])
    return z, y


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("p_y", [None, 0.9, 0.99, 0.999])
def test_low_precision_no_worse_than_naive_same_dtype_torch(dtype, p_y):
    """bf16/fp16 input: float32 loss, gradients in the input dtype, each no further from
    the float64 truth (of the same low-precision values) than naive PyTorch in that dtype."""
    if p_y is None:
        z, y, _ = _data((64, 1000), 1000, seed=9, ignored=False)
    else:
        z, y = _peaked(64, 1000, p_y, seed=10)
    low = z.to(dtype)
    truth, g_truth = _value_and_grad(F.cross_entropy, low.double(), y, reduction="sum")
    ours, g = _value_and_grad(ct.cross_entropy, low, y, reduction="sum")
    naive, g_naive = _value_and_grad(F.cross_entropy, low, y, reduction="sum")
    assert ours.dtype == torch.float32
    assert g.dtype == dtype
    assert abs(float(ours) - float(truth)) <= 1e-5 * abs(float(truth)) + 1e-6
    assert abs(float(ours) - float(truth)) <= abs(float(naive) - float(truth)) + 1e-6
    err = (g.double() - g_truth).abs()
    err_naive = (g_naive.double() - g_truth).abs()
    assert float(err.max()) <= float(err_naive.max()) + 1e-12
    # p_y - 1 keeps its digits: the label's entry within a half-ulp of the dtype
    g_y, t_y = g.double().gather(1, y[:, None]), g_truth.gather(1, y[:, None])
    assert float(((g_y - t_y).abs() / t_y.abs()).max()) <= torch.finfo(dtype).eps


def test_autocast_bf16_logits_give_float32_loss():
    lin = torch.nn.Linear(8, 12)
    x = torch.randn(5, 8)
    y = torch.tensor([0, 11, -100, 3, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(x)
        loss = ct.cross_entropy(logits, y)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    loss.backward()
    ref = F.cross_entropy(logits.detach().float(), y)
    assert abs(float(loss.detach()) - float(ref)) < 1e-6
    assert lin.weight.grad is not None


def test_module_matches_function_and_holds_weight_as_buffer():
    z, y, w = _data((11, 4, 3), 4, seed=11)
    module = ct.CrossEntropyLoss(weight=w, label_smoothing=0.05, z_loss=1e-3)
    assert "weight" in dict(module.named_buffers())
    expected = ct.cross_entropy(z, y, w, label_smoothing=0.05, z_loss=1e-3)
    torch.testing.assert_close(module(z, y), expected, rtol=0, atol=0)
    plain = ct.CrossEntropyLoss(reduction="none")
    torch.testing.assert_close(plain(z, y), F.cross_entropy(z, y, reduction="none"))
    with pytest.raises(InputError, match="size_average"):
        ct.CrossEntropyLoss(size_average=True)


def test_issue12_label_errors_name_argument_row_and_value():
    z = torch.randn(4, 3, 2)
    y = torch.zeros(4, 2, dtype=torch.int32)
    y[2, 1] = 7
    with pytest.raises(InputError, match=r"`target`.*\[0, 3\).*row \(2, 1\) has 7"):
        ct.cross_entropy(z, y)
    y[2, 1] = -100
    ct.cross_entropy(z, y)  # ignored by default
    with pytest.raises(InputError, match=r"ignore_index=-100"):
        ct.cross_entropy(z, y, ignore_index=None)
    with pytest.raises(InputTypeError, match="integer class ids"):
        ct.cross_entropy(z, y.bool())


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda z, y: ct.cross_entropy(z, y[:2]), InputError, "shape of `input`"),
        (lambda z, y: ct.cross_entropy(z, y, reduction="avg"), InputError, "`reduction`"),
        (lambda z, y: ct.cross_entropy(z, y, label_smoothing=1.5), InputError, "label_smoothing"),
        (lambda z, y: ct.cross_entropy(z, y, temperature=0.0), InputError, "temperature"),
        (lambda z, y: ct.cross_entropy(z, y, z_loss=-1.0), InputError, "z_loss"),
        (lambda z, y: ct.cross_entropy(z, y, soft_cap=-2.0), InputError, "soft_cap"),
        (lambda z, y: ct.cross_entropy(z, y, torch.ones(4)), InputError, r"`weight`.*\(3,\)"),
        (lambda z, y: ct.cross_entropy(z, y, -torch.ones(3)), InputError, "non-negative"),
        (lambda z, y: ct.cross_entropy(z, y, ignore_index=1.5), InputTypeError, "ignore_index"),
        (lambda z, y: ct.cross_entropy(z.long(), y), InputTypeError, "floating"),
        (lambda z, y: ct.cross_entropy(z.numpy(), y), InputTypeError, "torch.Tensor"),
        (lambda z, y: ct.cross_entropy(z[0, 0], y), InputError, "class axis"),
        (lambda z, y: ct.cross_entropy(z, torch.rand(5, 2)), InputError, "probability"),
    ],
)
def test_issue12_error_paths(call, error, pattern):
    z = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    with pytest.raises(error, match=pattern):
        call(z, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_issue12_non_finite_logits_are_an_error_naming_the_row(dtype):
    z = torch.randn(6, 4, dtype=dtype)
    z[4, 2] = torch.nan
    with pytest.raises(InputError, match=r"(row|index) \(?4"):
        ct.cross_entropy(z, torch.zeros(6, dtype=torch.long))


def test_same_values_as_crossent_numpy():
    """One formula: the torch front end equals crossent.softmax_cross_entropy."""
    z, y, w = _data((50, 8), 8, seed=12, dtype=torch.float32)
    kw = {"label_smoothing": 0.1, "z_loss": 1e-3, "temperature": 1.3}
    ours = ct.cross_entropy(z, y, w, **kw)
    ref = crossent.softmax_cross_entropy(
        z.numpy(), y.numpy(), weight=w.numpy(), ignore_index=-100, **kw
    )
    assert abs(float(ours) - float(ref)) <= 1e-6 * abs(float(ref))
