"""Linear cross-entropy with bf16/fp16 products and float32 results (the CUDA path).

On an H200, ``linear_cross_entropy`` of bf16 h (8192 x 4096) and W (128256 x 4096)
took 734 ms forward + backward against 48.7 ms for the eager
``F.cross_entropy((h @ W.T).float(), y)``: ``W`` and each ``h`` block were upcast to
float32, so every product was a float32 one (no tensor cores without TF32), and the
float32 copy of ``W`` cost 2.1 GB. Now (``crossent/torch/_products.py``) the products
take the bf16/fp16 operands themselves with float32 results, and the backward's
float32 gradient block ``G`` is split into two bf16 halves (``G_hi + G_lo``), so its
rounding costs :math:`2^{-17}` of ``G``, not the :math:`2^{-9}` of one bf16 rounding.

No GPU here: ``_products._EMULATE`` runs the same logic on the CPU (each product from
float32 copies of its bf16/fp16 operands: the same exact products), and
``_products._FORCE_NATIVE`` the real ``out_dtype`` operators on the meta device
(shapes and dtypes of the CUDA branch). Truth: float64 autograd of the loss's formula
(written out here) at the same bf16/fp16 values. The gradients are checked before
their final rounding to the input's dtype (the forward op's float32 accumulators).
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import crossent.torch as ct  # noqa: E402
from crossent.torch import _linear, _ops, _products  # noqa: E402
from spawned import one_rank_group  # noqa: E402

F32_ULP = 2.0**-23
DTYPES = [torch.bfloat16, torch.float16]
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "bias": {"bias": True},
    "label_smoothing": {"label_smoothing": 0.1},
    "z_loss": {"z_loss": 1e-3},
    "soft_cap": {"soft_cap": 4.0},
    "temperature": {"temperature": 0.6},
    "weight": {"weight": True},
    "ignore_index": {"ignore_index": -100},
    "all": {
        "bias": True,
        "weight": True,
        "ignore_index": -100,
        "label_smoothing": 0.05,
        "z_loss": 1e-4,
        "soft_cap": 6.0,
        "temperature": 1.3,
    },
}


@pytest.fixture
def emulate():
    """The native (CUDA) logic on the CPU for the test."""
    saved = _products._EMULATE
    _products._EMULATE = True
    yield
    _products._EMULATE = saved


def _case(dtype: torch.dtype, opts: dict[str, Any], rows: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features, classes = 40, 700
    h = torch.randn(rows, features, generator=g).to(dtype)
    w = (torch.randn(classes, features, generator=g) * 0.6).to(dtype)
    b = torch.randn(classes, generator=g).to(dtype) if opts.get("bias") else None
    y = torch.randint(0, classes, (rows,), generator=g)
    if opts.get("ignore_index") is not None:
        y[::7] = opts["ignore_index"]
    weight = torch.rand(classes, generator=g) + 0.5 if opts.get("weight") else None
    return h, w, b, y, weight


def _truth(h, w, b, y, weight, opts: dict[str, Any], reduction: str, upstream=None):
    """Loss (per row or reduced) and float64 gradients of h, W, b, and of the logits ``G``
    (of the loss's sum, or of ``upstream`` times the rows), from the formula of
    ``crossent/torch/_linear.py`` (float64 autograd)."""
    h64 = h.double().requires_grad_()
    w64 = w.double().requires_grad_()
    b64 = None if b is None else b.double().requires_grad_()
    z = h64 @ w64.T
    if b64 is not None:
        z = z + b64
    z.retain_grad()
    cap, temperature = opts.get("soft_cap"), opts.get("temperature", 1.0)
    c = z if cap is None else cap * torch.tanh(z / cap)
    zt = c / temperature
    lse = torch.logsumexp(zt, 1)
    log_p = zt - lse[:, None]
    classes = w.shape[0]
    wc = torch.ones(classes, dtype=torch.float64) if weight is None else weight.double()
    ignore = opts.get("ignore_index")
    active = torch.ones_like(y, dtype=torch.bool) if ignore is None else y != ignore
    safe = torch.where(active, y, 0)
    w_y = wc[safe]
    omega = w_y * active
    eps, z_loss = opts.get("label_smoothing", 0.0), opts.get("z_loss", 0.0)
    rows = -(1 - eps) * w_y * log_p.gather(1, safe[:, None])[:, 0]
    rows = rows + (eps / classes) * (-(wc * log_p)).sum(1) + z_loss * omega * lse**2
    rows = torch.where(active, rows, 0.0)
    loss = {"none": rows, "sum": rows.sum(), "mean": rows.sum() / omega.sum()}[reduction]
    (loss.sum() if upstream is None else (rows * upstream).sum()).backward()
    return loss.detach(), h64.grad, w64.grad, None if b64 is None else b64.grad, z.grad


def _op(h, w, b, y, weight, opts: dict[str, Any], reduction: str, chunk: int = 16):
    """The forward op with its gradients formed (float32, before the final rounding)."""
    packed = [
        opts.get("label_smoothing", 0.0),
        opts.get("z_loss", 0.0),
        opts.get("temperature", 1.0),
        opts.get("soft_cap") or 0.0,
    ]
    out = _ops.linear_cross_entropy_op(
        h, w, b, y, weight, [y.shape[0]], opts.get("ignore_index"), packed, reduction,
        chunk, 0, reduction != "none",
    )  # fmt: skip
    return out[0], out[3], out[4], out[5]


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest error relative to the largest magnitude of ``want``."""
    return float((got.double() - want).abs().max() / want.abs().max())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(OPTIONS))
def test_native_products_loss_rows_within_float32_ulps(emulate, dtype, name) -> None:
    opts = OPTIONS[name]
    h, w, b, y, weight = _case(dtype, opts)
    got = _op(h, w, b, y, weight, opts, "none")[0]
    want = _truth(h, w, b, y, weight, opts, "none")[0]
    assert got.dtype == torch.float32
    # Rows of ignored labels are 0 in both; the logits (40 exact products summed in
    # float32) and so the losses are within a few float32 ulps of the truth.
    bound = 8 * F32_ULP * (want.abs() + 1)
    assert bool(((got.double() - want).abs() <= bound).all()), float(
        ((got.double() - want).abs() / (want.abs() + 1)).max() / F32_ULP
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(OPTIONS))
def test_native_products_gradients_carry_the_split_of_g(emulate, dtype, name) -> None:
    """``dh``, ``dW``, ``db`` within :math:`2^{-15}` of their largest magnitude, and
    dh, dW at least 16x closer to the truth than with ``G`` rounded once to the dtype
    (fails if the hi/lo split is removed: that is rounding ``G`` once)."""
    opts = OPTIONS[name]
    h, w, b, y, weight = _case(dtype, opts)
    _, gh, gw, gb = _op(h, w, b, y, weight, opts, "mean")
    _, th, tw, tb, tg = _truth(h, w, b, y, weight, opts, "mean")
    assert gh.dtype == gw.dtype == torch.float32
    once = tg.to(dtype).double()  # G rounded once to the inputs' dtype
    once_h, once_w = _rel(once @ w.double(), th), _rel(once.T @ h.double(), tw)
    for got, want, rounded in ((gh, th, once_h), (gw, tw, once_w)):
        error = _rel(got, want)
        assert error <= 2.0**-15, (error, rounded)
        assert error * 16 <= rounded, (error, rounded)
    if tb is not None:
        assert _rel(gb, tb) <= 2.0**-20


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_native_dh_sums_products_of_vocabulary_chunks(emulate, monkeypatch, dtype) -> None:
    """``dh = G W`` as the float32 sum of products of ``DH_CHUNK`` classes at a time (on
    the H200 one product over K = 128256 classes left ``dh`` 6.5e-5 of its largest entry
    off, chunks of 4096 1.0e-5): with chunks of 64 of the 700 classes, 11 products per
    token block, every chunk counted once (an off-by-one drops or repeats 64 classes:
    far past the bound) and the same accuracy as one product."""
    opts = OPTIONS["all"]
    h, w, b, y, weight = _case(dtype, opts)
    _, th, tw, _, _ = _truth(h, w, b, y, weight, opts, "sum")
    calls: list[int] = []
    mm = _products.Products._mm

    def counted(self, a, b_):  # type: ignore[no-untyped-def]
        calls.append(a.shape[1])
        return mm(self, a, b_)

    monkeypatch.setattr(_products, "DH_CHUNK", 64)
    monkeypatch.setattr(_products.Products, "_mm", counted)
    _, gh, gw, _ = _op(h, w, b, y, weight, opts, "sum", chunk=96)
    assert calls.count(64) == 10  # ten full chunks and one of 700 - 640 = 60 classes
    assert calls.count(60) == 1
    assert _rel(gh, th) <= 2.0**-15
    assert _rel(gw, tw) <= 2.0**-15


def test_native_products_float16_gradient_below_its_normal_range(emulate) -> None:
    r"""A ``'mean'`` over 2000 rows of 700 classes: :math:`G \approx p/N` near
    :math:`10^{-6}`, below float16's smallest normal :math:`2^{-14}` (all but the
    labels' entries). Unscaled, both
    halves are multiples of :math:`2^{-24}` (some 5 % of an entry); scaled by a power
    of two first, within :math:`2^{-15}` (fails without the scaling)."""
    opts: dict[str, Any] = {}
    h, w, b, y, weight = _case(torch.float16, opts, rows=2000, seed=3)
    _, gh, gw, _ = _op(h, w, b, y, weight, opts, "mean", chunk=512)
    _, th, tw, _, tg = _truth(h, w, b, y, weight, opts, "mean")
    assert float((tg.abs() < 2.0**-14).double().mean()) > 0.99  # all but the labels' entries
    assert _rel(gh, th) <= 2.0**-15
    assert _rel(gw, tw) <= 2.0**-15


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_native_products_without_in_place_accumulation(emulate, monkeypatch, dtype) -> None:
    """Where ``addmm(out_dtype=float32, out=dW)`` refuses a float32 ``dW`` (PyTorch 2.8's
    first version): float32 products of a few rows added to ``dW``, the same values."""
    opts = OPTIONS["all"]
    h, w, b, y, weight = _case(dtype, opts)
    _, th, tw, tb, _ = _truth(h, w, b, y, weight, opts, "sum")
    of = _products.Products.of
    monkeypatch.setattr(
        _products.Products, "of", lambda *a: dataclasses.replace(of(*a), in_place=False)
    )
    monkeypatch.setattr(_products, "SCRATCH_BYTES", 4 * 40 * 64)  # 64 rows of dW at a time
    _, gh, gw, gb = _op(h, w, b, y, weight, opts, "sum")
    assert _rel(gh, th) <= 2.0**-15
    assert _rel(gw, tw) <= 2.0**-15
    assert _rel(gb, tb) <= 2.0**-20


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_native_products_per_row_upstream(emulate, dtype) -> None:
    """``reduction='none'`` (the backward op, which recomputes the blocks): ``dW`` and
    ``db`` accumulated in float32 from the split, for a per-row upstream."""
    opts = OPTIONS["all"]
    h, w, b, y, weight = _case(dtype, opts)
    upstream = torch.linspace(-2, 3, y.shape[0], dtype=torch.float64)
    problem = _ops._problem((h, w, b, y, weight), -100, [0.05, 1e-4, 1.3, 6.0], 16, 0)
    assert problem.w.dtype == dtype  # no float32 copy of W
    _, stats, log_p, _ = _linear.forward_pass(problem, row_scale=None)
    grads = _linear.backward_pass(problem, stats, log_p, upstream.float(), bias=True)
    _, _, tw, tb, _ = _truth(h, w, b, y, weight, opts, "none", upstream=upstream)
    assert grads.w is not None
    assert grads.b is not None
    assert grads.w.dtype == grads.b.dtype == torch.float32
    assert _rel(grads.w, tw) <= 2.0**-15
    assert _rel(grads.b, tb) <= 2.0**-20


def test_cpu_stays_widened_without_the_flags() -> None:
    """On the CPU (no ``aten::mm.dtype`` kernel) bf16 products stay float32 ones: the
    probe finds no native support, and ``Products.of`` widens."""
    assert _products._native_support(torch.device("cpu"), torch.bfloat16) == (False, False)
    h = torch.zeros(2, 3, dtype=torch.bfloat16)
    assert _products.Products.of(h, h) == _products.Products(torch.float32, torch.float32)


class _Products(TorchDispatchMode):
    """Every matrix product (its operands' and result's dtypes) and every new float32
    tensor of the classifier's shape."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.products: list[tuple[str, tuple[torch.dtype, ...], torch.dtype]] = []
        self.classifier_sized: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        name = str(func)
        if name.startswith(("aten.mm", "aten.addmm")):
            mats = args[1:3] if name.startswith("aten.addmm") else args[:2]
            self.products.append((name, tuple(m.dtype for m in mats), out.dtype))
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if (
                isinstance(o, torch.Tensor)
                and o.dtype == torch.float32
                and tuple(o.shape) == self.shape
                and not func.is_view
                and not any(o is a for a in args)
                and not name.endswith("_")  # in place: the same tensor
                and "out" not in (kwargs or {})
            ):
                self.classifier_sized.append(name)
        return out


@pytest.mark.skipif(
    tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) < (2, 13),
    reason="torch 2.11's meta addmm(out_dtype=, out=) under a dispatch mode raised "
    "'got multiple values for argument beta' (an H200 run; the CUDA operator itself ran)",
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_cuda_branch_on_meta_keeps_w_in_its_dtype(monkeypatch, dtype, bias) -> None:
    """The CUDA branch (the real ``out_dtype`` operators) on the meta device at the
    H200 benchmark's vocabulary: every product takes bf16/fp16 operands and returns
    float32, the only float32 tensor of ``W``'s shape is ``dW`` (main made a float32
    copy of ``W`` too, and multiplied float32 operands), and token blocks are 256 MiB
    of float32 logits (512 rows of 128256 classes)."""
    monkeypatch.setattr(_products, "_FORCE_NATIVE", True)
    n, d, v = 1024, 4096, 128256
    h = torch.empty(n, d, dtype=dtype, device="meta")
    w = torch.empty(v, d, dtype=dtype, device="meta")
    b = torch.empty(v, dtype=dtype, device="meta") if bias else None
    y = torch.zeros(n, dtype=torch.int64, device="meta")
    mode = _Products((v, d))
    with mode:
        problem = _ops._problem((h, w, b, y, None), -100, [0.1, 1e-4, 1.0, 30.0], 0, 0)
        _, stats, log_p, grads = _linear.forward_pass(
            problem, row_scale=torch.ones(n, device="meta")
        )
    assert (problem.token_chunk, problem.vocab_chunk) == (512, v)
    assert problem.w.dtype == dtype
    assert grads is not None
    assert grads.w is not None
    assert grads.w.dtype == torch.float32
    assert mode.classifier_sized == ["aten.empty.memory_format"]  # dW only
    assert mode.products, "no matrix product seen"
    for name, mats, result in mode.products:
        assert mats == (dtype, dtype), (name, mats, result)
        assert result == torch.float32, (name, mats, result)
    assert any(name == "aten.mm.dtype" for name, *_ in mode.products)
    del stats, log_p


def test_native_block_sizes() -> None:
    rows, vocab = _linear.auto_chunks(8192, 128256, 4, None, None, _linear.NATIVE_BLOCK_BYTES)
    assert (rows, vocab) == (512, 128256)  # 16 blocks of 256 MiB of float32 logits
    assert _linear.auto_chunks(8192, 128256, 4, None, None)[0] == 196  # the CPU's 96 MiB


def test_vocab_parallel_linear_takes_the_native_products(emulate, monkeypatch) -> None:
    """``vocab_parallel_linear_cross_entropy`` (one gloo rank) had the same float32
    upcast of its classifier slice: it now goes through ``Products`` too, with the
    classifier in bf16, and its gradients are the truth's to bf16's rounding."""
    seen: list[tuple[bool, torch.dtype, torch.dtype]] = []
    original = _products.Products.gradient_products

    def spy(self, grad, h, w, dh, dw, **kw):  # type: ignore[no-untyped-def]
        seen.append((self.native, w.dtype, dw.dtype))
        return original(self, grad, h, w, dh, dw, **kw)

    monkeypatch.setattr(_products.Products, "gradient_products", spy)
    opts = {"bias": True, "ignore_index": -100, "label_smoothing": 0.1}
    h, w, b, y, _ = _case(torch.bfloat16, opts)
    _, th, tw, tb, _ = _truth(h, w, b, y, None, opts, "mean")
    h1, w1, b1 = (t.clone().requires_grad_() for t in (h, w, b))
    with tempfile.TemporaryDirectory() as folder, one_rank_group(folder):
        loss = ct.vocab_parallel_linear_cross_entropy(
            h1, w1, y, bias=b1, label_smoothing=0.1, chunk_size=16
        )
        loss.backward()
    assert seen
    assert all(s == (True, torch.bfloat16, torch.float32) for s in seen)
    for got, want in ((h1.grad, th), (w1.grad, tw), (b1.grad, tb)):
        assert got is not None
        # half a bf16 ulp of the entry, plus the split's 2^-15 of the largest
        bound = 2.0**-8 * want.abs() + 2.0**-15 * want.abs().max()
        assert bool(((got.double() - want).abs() <= bound).all())
