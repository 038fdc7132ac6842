"""Issue 13 (linreview): ``linear_cross_entropy`` against one independent float64 oracle.

The oracle (:func:`oracle`) is the documented formula of ``crossent.torch.cross_entropy``
and ``linear_cross_entropy`` written out in float64 from the docstrings, shifted by the
row maximum (so that it keeps a confident row's :math:`e^{-d}`, which a float64
``logsumexp`` of unshifted logits near 1000 rounds away), with the gradient in closed form:
:math:`G = r\\,[(A + 2\\lambda w_y\\mathrm{LSE})p - (1-\\varepsilon)w_y e_y -
\\tfrac{\\varepsilon}{V}w]\\operatorname{sech}^2(z/s)/T`, the label's :math:`p_y - 1` as
:math:`-\\sum_{c\\ne y}p_c`. It is itself checked against float64 autograd of the naive
formula on benign inputs (:func:`test_oracle_is_float64_autograd`).

The hypothesis test draws every option and input form at once: float64/float32/bfloat16/
float16, bias or not, 0 rows, V = 1 and 2, token and vocabulary blocks of 1-3, float64
sub-blocks of one row (``_linear.SUB_BYTES``), N-D hidden states, a transposed
classifier and strided hidden states, label dtypes, every reduction, ``ignore_index``
(-100 or an in-range class, all rows ignored), class weights (zeros among them), label
smoothing up to 1, z-loss, soft-capping (saturating), the temperature, any upstream
gradient (scalars that are not 1, e.g. a loss scale of :math:`2^{16}`), gradients wanted
for any subset of ``h``, ``W``, ``b``, and the forward's gradients or the backward's
recompute (``_FORM_GRADIENTS_IN_FORWARD``); hard rows: exact ties, near-ties, logits up
to :math:`2^{12}` apart (every exponential but one underflows), one class taking all the
mass (the loss :math:`e^{-d}`). Inputs lie on a dyadic grid, so every logit is exact in
float32 (the oracle takes the inputs as rounded to bfloat16/float16): the only
differences are the softmax's and the sums'. The same oracle checks
:func:`vocab_parallel_cross_entropy` (``W = I``) and
:func:`vocab_parallel_linear_cross_entropy` on two gloo ranks, a few fixed cases (uneven
and empty slices; :data:`VP_CASES`).

Tolerances, from the documented accuracy: the loss within 4 ulps of its dtype (float32
for low-precision inputs), relative to the sum of its non-negative terms; each gradient
entry within its one final rounding to the input dtype (half an ulp) plus
:math:`(n + 8)\\,\\epsilon` of the accumulation dtype times the sum of the magnitudes
of its :math:`n` products (the products and sums in float32, or float64).

Found and fixed here: bfloat16/float16 gradients formed in the forward were rounded to
their dtype before the upstream scalar multiplied them (twice rounded; float16 entries
below :math:`6\\cdot 10^{-8}` at unit scale came back 0 under a :math:`2^{16}` loss
scale); ``D = 0`` raised a ``RuntimeError`` from ``reshape``, ``V = 0`` with no rows a
``ZeroDivisionError``; an integer bias was accepted (and cast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError, InputTypeError  # noqa: E402
from crossent.torch import _functional, _linear  # noqa: E402

FLOATS = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


# ----------------------------------------------------------------------------- oracle


@dataclass
class Truth:
    """The oracle's loss, gradients and the magnitudes their tolerances scale with."""

    loss: torch.Tensor  # reduced as asked (float64)
    loss_size: torch.Tensor  # the same reduction of each row's sum of |terms|
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # dh (N, D), dW, db
    sizes: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # sum of |products| of each
    reach: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # sum of |other factor| of each


def oracle(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    upstream: torch.Tensor,
    **options: Any,
) -> Truth:
    r"""The documented loss in float64 (``cross_entropy``'s docstring at
    :math:`z = hW^\top + b`): :math:`L_i = (1-\varepsilon)w_{y}(\mathrm{LSE} - z'_y) +
    \tfrac{\varepsilon}{V}\sum_c w_c(\mathrm{LSE} - z'_c) + \lambda w_y\mathrm{LSE}^2`,
    :math:`z' = s\tanh(z/s)/T`, 0 on ignored rows; ``'mean'`` divides by the rows'
    :math:`\sum w_y` (0 when that is 0). ``h`` is ``(N, D)``; ``options`` those of
    ``linear_cross_entropy`` (its defaults where absent)."""
    eps, lam = options.get("label_smoothing", 0.0), options.get("z_loss", 0.0)
    temp, soft_cap = options.get("temperature", 1.0), options.get("soft_cap")
    weight, ignore_index = options.get("weight"), options.get("ignore_index")
    reduction = options.get("reduction", "mean")
    h64, w64 = h.double(), w.double()
    z = h64 @ w64.T + (0.0 if b is None else b.double())
    classes = w.shape[0]
    labels = y.long()
    active = labels != ignore_index if ignore_index is not None else torch.ones_like(labels) > 0
    safe = torch.where(active, labels, torch.zeros_like(labels))
    cw = torch.ones(classes, dtype=torch.float64) if weight is None else weight.double()
    c = z if soft_cap is None else soft_cap * torch.tanh(z / soft_cap)
    m = c.amax(1, keepdim=True) if classes else c.sum(1, keepdim=True)
    shifted = (c - m) / temp  # <= 0: z' - max z'
    # ell = log sum_c e^{shifted_c} = log1p(the sum without one maximal term): log of a
    # sum near 1 keeps only an absolute eps of a small ell (24 ulps at ell = 0.0036).
    top = torch.nn.functional.one_hot(c.argmax(1), classes).bool() if classes else c > 0
    ell = torch.log1p(torch.where(top, 0.0, torch.exp(shifted)).sum(1, keepdim=True))
    # e^x with x rounded is |x| eps off, relatively: ell's and p's error scales with it
    # (a confident row's loss e^{-d}: d ulps, the same in any float64 implementation).
    ell_size = torch.where(top, 0.0, torch.exp(shifted) * (1 - shifted)).sum(1, keepdim=True)
    lse = m / temp + ell
    nll = ell - shifted  # LSE - z'_c >= 0, no cancellation
    w_y = cw[safe][:, None]
    nll_y = nll.gather(1, safe[:, None])
    smooth = (cw * nll).sum(1, keepdim=True) * (eps / classes)
    rows = (1 - eps) * w_y * nll_y + smooth + lam * w_y * lse**2
    size = (1 - eps) * w_y * (nll_y + ell_size) + (eps / classes) * cw.sum() * ell_size
    size = size + smooth + lam * w_y * (m.abs() / temp + ell) ** 2
    rows, size = (torch.where(active[:, None], t, 0.0)[:, 0] for t in (rows, size))
    scale = torch.ones_like(rows)
    if reduction == "mean":
        total = torch.where(active, cw[safe], 0.0).sum()
        scale = scale * (1 / total if total > 0 else 0.0)
    if reduction == "none":
        loss, loss_size = rows, size
    else:
        loss, loss_size = (rows * scale).sum(), (size * scale).sum()
    r = torch.where(active, upstream.double().expand(rows.shape) * scale, 0.0)[:, None]
    # dL_i/dz'_i = (A + 2 lam w_y LSE) p - (1-eps) w_y e_y - eps/V w, and at the label
    # (1-eps) w_y (p_y - 1) with p_y - 1 = -sum_{c != y} p_c (no cancellation).
    p = torch.exp(shifted - ell)
    a = (1 - eps) * w_y + (eps / classes) * cw.sum()
    coef = a + 2 * lam * w_y * lse
    onehot = torch.nn.functional.one_hot(safe, classes).bool() if classes else p > 0
    rest = torch.where(onehot, 0.0, p).sum(1, keepdim=True)
    grad = coef * p - (eps / classes) * cw
    at_label = -(1 - eps) * w_y * rest + (coef - (1 - eps) * w_y) * p - (eps / classes) * cw
    grad = torch.where(onehot, at_label, grad)
    # The magnitudes of each entry's terms, each p_c with its relative error (1 + |log p_c|)
    # eps. The label's entry, (1-eps) w_y (p_y - 1) + (coef - (1-eps) w_y) p_y - eps/V w_y,
    # is documented to keep p_y - 1's digits: its first term's size is that of p_y - 1
    # (1 - p_y or rest, with their errors), the second's that of coef - (1-eps) w_y (with
    # coef's rounding, an ulp of coef, where smoothing or the z-loss makes it inexact).
    sizes_p = p * (1 + ell - shifted)
    rest_size = torch.where(onehot, 0.0, sizes_p).sum(1, keepdim=True)
    rest_size = torch.minimum(rest_size, 1 + (ell - shifted).gather(1, safe[:, None]))
    spread = (eps / classes) * cw.sum() + 2 * lam * w_y * lse.abs()
    inexact = (coef.abs() if eps or lam else 0.0) + spread
    label_size = (1 - eps) * w_y * rest_size + inexact * sizes_p
    magnitude = torch.where(onehot, label_size, coef.abs() * sizes_p) + (eps / classes) * cw
    slope = torch.ones_like(z)
    if soft_cap is not None:  # sech^2(z/s) = 4v/(1+v)^2, v = e^{-2|z|/s}: no cancellation
        v = torch.exp(-2 * z.abs() / soft_cap)
        slope = 4 * v / (1 + v) ** 2
    g = r * grad * slope / temp
    g_size = r.abs() * magnitude * slope / temp
    grads = (g @ w64, g.T @ h64, g.sum(0))
    sizes = (g_size @ w64.abs(), g_size.T @ h64.abs(), g_size.sum(0))
    d = h64.shape[1]
    # The gradient block rounded where subnormal: p by up to a spacing before the row's
    # factor r coef / T multiplies it (a loss scale of 2^16 lifts that to 9e-41 in
    # float32), then the block itself; each times the other factor of the product.
    f = 1 + (r * coef).abs() / temp  # (n, 1)
    reach = (
        f * w64.abs().sum(0),
        (f * h64.abs()).sum(0).expand(classes, d),
        f.sum().expand(classes),
    )
    return Truth(loss, loss_size, grads, sizes, reach)


def _accumulation(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def assert_gradient(
    name: str,
    got: torch.Tensor,
    want: torch.Tensor,
    size: torch.Tensor,
    terms: int,
    reach: torch.Tensor,
) -> None:
    """Within the final rounding to ``got``'s dtype and ``(terms + 8)`` accumulation
    epsilons of the sum of the products' magnitudes (see the module's notes), and the
    gradient block's own rounding where it is subnormal in the accumulation dtype (its
    spacing times ``reach``, the sum of the other factors' magnitudes)."""
    info, acc = torch.finfo(got.dtype), torch.finfo(_accumulation(got.dtype))
    tol = (terms + 8) * acc.eps * size + info.eps / 2 * want.abs()
    tol = tol + info.smallest_normal * info.eps + acc.smallest_normal * acc.eps * reach
    err = (got.double() - want).abs()
    overflow = want.to(got.dtype).isinf()  # rounded to +-inf: got must be that inf
    err = torch.where(overflow & (got.double() == want.to(got.dtype).double()), 0.0, err)
    if not bool((err <= tol).all()):
        i = int(torch.argmax(err - tol))
        raise AssertionError(
            f"{name}: {float(got.reshape(-1)[i])!r} against {float(want.reshape(-1)[i])!r} "
            f"(error {float(err.reshape(-1)[i]):.3g}, tolerance {float(tol.reshape(-1)[i]):.3g})"
        )


def assert_loss(got: torch.Tensor, truth: Truth) -> None:
    """Within 4 ulps of the loss's dtype, relative to the sum of the terms (all >= 0)."""
    eps = torch.finfo(got.dtype).eps
    err = (got.double() - truth.loss).abs()
    tol = 4 * eps * truth.loss_size + torch.finfo(got.dtype).tiny
    assert bool((err <= tol).all()), (got, truth.loss, err, tol)


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One call: inputs (on a dyadic grid), options and the upstream gradient."""

    dtype: torch.dtype
    h: torch.Tensor  # (N, D) float64 values
    w: torch.Tensor  # (V, D)
    b: torch.Tensor | None
    y: torch.Tensor  # (N,) int64
    options: dict[str, Any]
    upstream: torch.Tensor  # scalar, or (N,) for 'none'
    wants: tuple[bool, bool, bool] = (True, True, True)  # requires_grad of h, W, b
    batch: tuple[int, ...] = ()  # the hidden states' batch shape (N-D); () is (N,)
    label_dtype: torch.dtype = torch.int64
    transposed: bool = False  # W a transposed view of a (D, V) tensor
    strided: bool = False  # h a strided view
    form: bool = True  # _FORM_GRADIENTS_IN_FORWARD
    chunk_size: int | None = None
    vocab_chunk: int = 0  # _functional._VOCAB_CHUNK
    sub_bytes: int | None = None  # _linear.SUB_BYTES (8: one row per float64 sub-block)
    notes: list[str] = field(default_factory=list)


def _grid(gen: torch.Generator, shape: tuple[int, ...], scale: float) -> torch.Tensor:
    """Multiples of 1/4 in [-1, 1] times ``scale`` (a power of two): exact products."""
    return torch.randint(-4, 5, shape, generator=gen).double() / 4 * scale


@st.composite
def cases(draw: st.DrawFn) -> Case:
    dtype = draw(st.sampled_from(FLOATS))
    n, d, v = draw(st.integers(0, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 7))
    # Logit spreads up to 2^12 (exponentials underflow); float16 holds 2^15 at most.
    k = draw(st.sampled_from((0, 0, 3, 10) if dtype != torch.float16 else (0, 3)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    h, w = _grid(gen, (n, d), 1.0), _grid(gen, (v, d), 2.0**k)
    shape = draw(st.sampled_from(("random", "ties", "near-ties", "peaked")))
    if shape == "ties" and v > 1:  # classes 0 and V-1 exactly tied on every row
        w[-1] = w[0]
    elif shape == "near-ties":  # every class a quarter apart at most
        w = _grid(gen, (1, d), 2.0**k) + _grid(gen, (v, d), 0.25)
    elif shape == "peaked":  # class 0 takes all the mass: h > 0, W[0] large and positive
        h = h.abs() + 0.25
        w[0] = 2.0 ** (k + 2)
    b = _grid(gen, (v,), 2.0**k) if draw(st.booleans()) else None
    y = torch.randint(0, v, (n,), generator=gen)
    if shape == "peaked" and n:
        y[: n // 2] = 0  # confident rows: the loss e^{-d}
    opts: dict[str, Any] = {"reduction": draw(st.sampled_from(("mean", "sum", "none")))}
    ignore = draw(st.sampled_from((None, None, -100, 0)))
    if ignore is not None:
        opts["ignore_index"] = ignore
        y[torch.rand(n, generator=gen) < draw(st.sampled_from((0.3, 1.0)))] = ignore
    if draw(st.booleans()):
        weights = torch.randint(0, 9, (v,), generator=gen).double() / 4
        opts["weight"] = weights.to(_accumulation(dtype))
    opts["label_smoothing"] = draw(st.sampled_from((0.0, 0.0, 0.1, 1.0)))
    opts["z_loss"] = draw(st.sampled_from((0.0, 0.0, 1e-4, 0.5)))
    opts["soft_cap"] = draw(st.sampled_from((None, None, 0.5, 30.0)))
    opts["temperature"] = draw(st.sampled_from((1.0, 1.0, 0.25, 3.0)))
    if opts["reduction"] == "none":
        upstream = _grid(gen, (n,), draw(st.sampled_from((1.0, 2.0**16))))
    else:
        upstream = torch.tensor(draw(st.sampled_from((1.0, 0.75, -1.5, 2.0**16, 2.0**-10))))
    wants = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    batch = draw(st.sampled_from([(n,)] + ([(2, n // 2)] if n % 2 == 0 else [])))
    labels = [torch.int64, torch.int32, torch.int16]
    if ignore is None or ignore >= 0:
        labels.append(torch.uint8)
    return Case(
        dtype=dtype,
        h=h,
        w=w,
        b=b,
        y=y,
        options=opts,
        upstream=upstream,
        wants=wants,
        batch=batch,
        label_dtype=draw(st.sampled_from(labels)),
        transposed=draw(st.booleans()),
        strided=draw(st.booleans()),
        form=draw(st.booleans()),
        chunk_size=draw(st.sampled_from((None, 1, 2, 3))),
        vocab_chunk=draw(st.sampled_from((0, 0, 1, 2, 3))),
        sub_bytes=draw(st.sampled_from((None, None, 8))),
        notes=[shape, f"k={k}"],
    )


def _leaves(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The tensors handed to the loss, in ``case``'s dtype and layout."""
    dtype = case.dtype
    h = case.h.to(dtype)
    if case.strided:  # every other column of a wider tensor
        wide = torch.zeros((h.shape[0], 2 * h.shape[1]), dtype=dtype)
        wide[:, ::2] = h
        h = wide[:, ::2]
    w = case.w.to(dtype)
    if case.transposed:
        w = w.T.contiguous().T
    b = None if case.b is None else case.b.to(dtype)
    h.requires_grad_(case.wants[0])
    w.requires_grad_(case.wants[1])
    if b is not None:
        b.requires_grad_(case.wants[2])
    return h, w, b


def run(case: Case) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """The loss and the gradients of ``linear_cross_entropy`` for ``case``."""
    h, w, b = _leaves(case)
    y = case.y.to(case.label_dtype)
    batch = case.batch or (h.shape[0],)
    saved = _functional._VOCAB_CHUNK, _functional._FORM_GRADIENTS_IN_FORWARD, _linear.SUB_BYTES
    _functional._VOCAB_CHUNK, _functional._FORM_GRADIENTS_IN_FORWARD = case.vocab_chunk, case.form
    _linear.SUB_BYTES = case.sub_bytes or saved[2]
    try:
        loss = ct.linear_cross_entropy(
            h.reshape(*batch, h.shape[-1]),
            w,
            y.reshape(batch),
            linear_bias=b,
            chunk_size=case.chunk_size,
            **case.options,
        )
        if loss.requires_grad:
            loss.backward(case.upstream.to(loss.dtype).reshape(loss.shape))
    finally:
        _functional._VOCAB_CHUNK, _functional._FORM_GRADIENTS_IN_FORWARD, _linear.SUB_BYTES = saved
    grads = tuple(None if t is None else t.grad for t in (h, w, b))
    return loss.detach().reshape(-1) if case.options["reduction"] == "none" else loss, grads


def check(case: Case) -> None:
    loss, grads = run(case)
    h, w, b = (None if t is None else t.detach().double() for t in _leaves(case))
    assert h is not None
    assert w is not None
    truth = oracle(h, w, b, case.y, case.upstream, **case.options)  # the rounded inputs
    assert loss.dtype == _accumulation(case.dtype)
    assert_loss(loss, truth)
    n, v = case.h.shape[0], case.w.shape[0]
    names, terms = ("dh", "dW", "db"), (v, n, n)
    for name, got, want, size, count, reach, wanted in zip(
        names, grads, truth.grads, truth.sizes, terms, truth.reach, case.wants, strict=True
    ):
        if name == "db" and case.b is None:
            continue
        if not wanted:
            assert got is None, name
            continue
        assert got is not None, name
        assert got.dtype == case.dtype, (name, got)
        assert tuple(got.shape) == tuple(want.shape), name
        assert_gradient(name, got, want, size, count, reach)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_linear_cross_entropy_matches_the_oracle(case: Case) -> None:
    check(case)


def _fixed(dtype: torch.dtype, seed: int, **changes: Any) -> Case:
    """A grid case with every option on, 5 rows in blocks of 2, 7 classes in blocks of 3."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 7, (5,), generator=gen)
    y[1] = -100
    case = Case(
        dtype=dtype,
        h=_grid(gen, (5, 3), 1.0),
        w=_grid(gen, (7, 3), 4.0),
        b=_grid(gen, (7,), 2.0),
        y=y,
        options={
            "reduction": "mean",
            "ignore_index": -100,
            "weight": (_grid(gen, (7,), 2.0).abs() + 0.25).to(_accumulation(dtype)),
            "label_smoothing": 0.1,
            "z_loss": 1e-4,
        },
        upstream=torch.tensor(0.75),
        chunk_size=2,
        vocab_chunk=3,
    )
    for name, value in changes.items():
        setattr(case, name, value)
    return case


@pytest.mark.parametrize(
    "case",
    [
        _fixed(torch.float32, 0),
        _fixed(torch.float64, 1, form=False),
        _fixed(torch.bfloat16, 2, vocab_chunk=0, sub_bytes=8),
        _fixed(
            torch.float32,
            3,
            sub_bytes=8,
            upstream=torch.tensor([1.0, 0.5, -2.0, 0.25, 3.0]),
            options={
                "reduction": "none",
                "ignore_index": -100,
                "soft_cap": 3.0,
                "temperature": 0.7,
            },
        ),
    ],
    ids=["float32", "float64-backward", "bfloat16-rows", "float32-none-cap"],
)
def test_fixed_cases(case: Case) -> None:
    """Every option at once on blocks of tokens and classes (the hypothesis test draws
    them one by one): weighted mean with smoothing and z-loss over blocks."""
    check(case)


def test_oracle_is_float64_autograd() -> None:
    """The closed-form oracle against float64 autograd of the naive formula, where that
    is accurate (logits of order 1): the oracle is the documented formula."""
    gen = torch.Generator().manual_seed(5)
    h, w, b = (torch.randn(s, generator=gen, dtype=torch.float64) for s in ((6, 3), (5, 3), (5,)))
    y = torch.tensor([0, 4, 2, -100, 1, 3])
    weight = torch.rand(5, generator=gen, dtype=torch.float64)
    options: dict[str, Any] = {
        "weight": weight,
        "ignore_index": -100,
        "label_smoothing": 0.2,
        "z_loss": 0.3,
        "soft_cap": 1.5,
        "temperature": 0.7,
    }
    for reduction in ("mean", "sum", "none"):
        up = torch.randn(6 if reduction == "none" else (), generator=gen, dtype=torch.float64)
        truth = oracle(h, w, b, y, up, reduction=reduction, **options)
        leaves = [t.clone().requires_grad_() for t in (h, w, b)]
        z = leaves[0] @ leaves[1].T + leaves[2]
        zp = 1.5 * torch.tanh(z / 1.5) / 0.7
        lse = torch.logsumexp(zp, 1)
        active = y != -100
        safe = torch.where(active, y, 0)
        nll = lse[:, None] - zp
        rows = (
            0.8 * weight[safe] * nll.gather(1, safe[:, None])[:, 0]
            + 0.2 / 5 * (weight * nll).sum(1)
            + 0.3 * weight[safe] * lse**2
        ) * active
        loss = {"none": rows, "sum": rows.sum(), "mean": rows.sum() / weight[safe][active].sum()}
        grads = torch.autograd.grad(loss[reduction], leaves, up)
        torch.testing.assert_close(truth.loss, loss[reduction].detach(), rtol=1e-13, atol=0)
        for got, want in zip(truth.grads, grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ found here (fixed)


def _case(dtype: torch.dtype, **changes: Any) -> Case:
    base = Case(
        dtype=dtype,
        h=torch.tensor([[1.0], [0.5], [0.25], [1.0]]),
        w=torch.tensor([[0.0], [-20.0], [-24.0]]),
        b=None,
        y=torch.tensor([0, 0, 0, 0]),
        options={"reduction": "mean"},
        upstream=torch.tensor(2.0**16),
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_gradients_are_rounded_after_the_loss_scale(dtype: torch.dtype) -> None:
    """Regression: the gradients formed in the forward were rounded to float16 before
    the upstream scalar (GradScaler's 2^16) multiplied them: ``dW`` of the classes
    20 and 24 below the label, :math:`e^{-20}/4` and less, is below float16's
    smallest subnormal at unit scale and came back 0; rounded once it is exact."""
    case = _case(dtype)
    _, (dh, dw, _) = run(case)
    truth = oracle(case.h, case.w, None, case.y, case.upstream)
    assert dw is not None
    assert dh is not None
    assert torch.equal(dw, truth.grads[1].to(dtype))  # one rounding of the exact value
    assert bool((dw[1:] != 0).all())
    check(case)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("form", "vocab_chunk"), [(True, 0), (False, 0), (True, 2)])
def test_confident_rows_keep_the_label_gradient(
    dtype: torch.dtype, form: bool, vocab_chunk: int
) -> None:
    """The label's entry :math:`p_y - 1 \\approx -e^{-20}` where :math:`p_y` rounds to 1
    (documented: it keeps its digits), in the forward's gradients, the backward's and
    over vocabulary blocks. The hypothesis test draws such rows too seldom to pin it."""
    check(_case(dtype, upstream=torch.tensor(1.0), form=form, vocab_chunk=vocab_chunk))


def test_bfloat16_gradient_is_rounded_once_for_any_upstream() -> None:
    """Regression: rounded to bfloat16, then multiplied by 0.75 in bfloat16, a gradient
    was up to an ulp off (two roundings)."""
    gen = torch.Generator().manual_seed(3)
    case = _case(
        torch.bfloat16,
        h=_grid(gen, (16, 4), 1.0),
        w=_grid(gen, (9, 4), 8.0),
        y=torch.randint(0, 9, (16,), generator=gen),
        upstream=torch.tensor(0.75),
    )
    check(case)


def test_zero_features_and_zero_classes() -> None:
    """Regression: ``D = 0`` (the logits are the bias) raised a RuntimeError from a
    ``reshape(-1, 0)``; ``V = 0`` with no rows a ZeroDivisionError."""
    b = torch.arange(5.0, dtype=torch.float64, requires_grad=True)
    ref = b.detach().clone().requires_grad_()
    y = torch.tensor([4, 1])
    h = torch.zeros(2, 0, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(5, 0, dtype=torch.float64, requires_grad=True)
    got = ct.linear_cross_entropy(h, w, y, linear_bias=b, reduction="sum")
    want = torch.nn.functional.cross_entropy(ref.expand(2, 5), y, reduction="sum")
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)
    got.backward()
    want.backward()
    torch.testing.assert_close(b.grad, ref.grad, rtol=1e-15, atol=1e-17)
    assert h.grad is not None
    assert h.grad.shape == (2, 0)
    for reduction in ("mean", "sum", "none"):
        empty = ct.linear_cross_entropy(
            torch.zeros(0, 3),
            torch.zeros(0, 3),
            torch.zeros(0, dtype=torch.long),
            reduction=reduction,
        )
        assert empty.shape == ((0,) if reduction == "none" else ())
        assert float(empty.sum()) == 0.0


def test_integer_bias_is_a_type_error() -> None:
    """Regression: an integer ``linear_bias`` was silently cast (``input`` and
    ``linear_weight`` must be floating)."""
    with pytest.raises(InputTypeError, match="`linear_bias` must be a floating-point tensor"):
        ct.linear_cross_entropy(
            torch.zeros(2, 3),
            torch.zeros(5, 3),
            torch.tensor([4, 1]),
            linear_bias=torch.zeros(5, dtype=torch.long),
        )


# ------------------------------------------------------------------ errors and forms


def test_errors_name_argument_index_and_value() -> None:
    h, w = torch.zeros(2, 3, 4), torch.zeros(5, 4)
    with pytest.raises(
        InputError, match=r"`target` must be class ids in \[0, 5\).*row \(1, 2\) has 5"
    ):
        ct.linear_cross_entropy(h, w, torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int16))
    with pytest.raises(InputError, match=r"row \(0, 1\) has -100.*ignore_index=-100"):
        ct.linear_cross_entropy(h, w, torch.tensor([[0, -100, 2], [3, 4, 0]]))
    with pytest.raises(
        InputError, match=r"or ignore_index=-1; got values in \[-2, 4\] \(row \(1, 0\) has -2\)"
    ):
        ct.linear_cross_entropy(h, w, torch.tensor([[0, -1, 2], [-2, 4, 0]]), ignore_index=-1)
    with pytest.raises(
        InputError, match=r"`weight` must be finite and non-negative; got -1\.0 at index 3"
    ):
        ct.linear_cross_entropy(
            h, w, torch.zeros(2, 3, dtype=torch.long), weight=torch.tensor([1.0, 1, 1, -1, 1])
        )
    bad = h.clone()
    bad[1, 0, 2] = math.nan
    with pytest.raises(InputError, match=r"the logits of row \(1, 0\) are not finite"):
        ct.linear_cross_entropy(bad, w, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InputTypeError, match="`linear_weight` must be a floating-point tensor"):
        ct.linear_cross_entropy(h, w.long(), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InputTypeError, match="`input` and `linear_weight` must have one dtype"):
        ct.linear_cross_entropy(h, w.double(), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InputTypeError, match="`target` must hold integer class ids"):
        ct.linear_cross_entropy(h, w, torch.zeros(2, 3, dtype=torch.bool))


def test_second_backward() -> None:
    """The scalar reductions' formed gradients: a second backward through the graph is an
    error (not a doubled gradient); ``'none'`` recomputes and may run again."""
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(5, 3, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, generator=gen, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0])
    loss = ct.linear_cross_entropy(h, w, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    h.grad = w.grad = None
    rows = ct.linear_cross_entropy(h, w, y, reduction="none")
    rows.sum().backward(retain_graph=True)
    once = h.grad.clone(), w.grad.clone()
    rows.sum().backward()
    torch.testing.assert_close(h.grad, 2 * once[0], rtol=0, atol=0)
    torch.testing.assert_close(w.grad, 2 * once[1], rtol=0, atol=0)


def test_module_forms_are_the_function() -> None:
    gen = torch.Generator().manual_seed(2)
    module = ct.LinearCrossEntropyLoss(
        3, 6, bias=True, ignore_index=-100, label_smoothing=0.1, z_loss=1e-3
    )
    h = torch.randn(2, 4, 3, generator=gen)
    y = torch.randint(0, 6, (2, 4), generator=gen)
    y[0, 1] = -100
    options = {"ignore_index": -100, "label_smoothing": 0.1, "z_loss": 1e-3}
    head = module.linear
    want = ct.linear_cross_entropy(h, head.weight, y, linear_bias=head.bias, **options)
    assert torch.equal(module(h, y), want)
    assert torch.equal(ct.linear_head_cross_entropy(h, head, y, **options), want)


# ------------------------------------------------------------------ vocab-parallel


def _vp(
    kind: str, dtype: torch.dtype, n: int, sizes: tuple[int, int], shape: str, k: int, **rest: Any
) -> dict[str, Any]:
    """A vocab-parallel case: the kind (``logits`` or ``linear``), input dtype, rows, the
    two ranks' slice sizes, the hard rows' ``shape`` and logit scale ``2^k`` (as in
    :func:`cases`), the upstream gradient and the options."""
    upstream = rest.pop("upstream", 1.0)
    return {"kind": kind, "dtype": dtype, "n": n, "sizes": sizes, "shape": shape, "k": k} | {
        "upstream": upstream,
        "options": rest,  # and "weighted" (class weights), "ignored" (a share of -100 rows)
    }


#: A few cases only: spawning the ranks costs seconds, a case milliseconds.
VP_CASES = [
    _vp("logits", torch.float64, 5, (2, 3), "peaked", 10, upstream=0.75, label_smoothing=0.1,
        z_loss=1e-4, reduction="mean"),
    _vp("logits", torch.float32, 6, (0, 5), "ties", 3, soft_cap=0.5, temperature=0.25,
        reduction="none", weighted=True),
    _vp("logits", torch.bfloat16, 4, (4, 1), "near-ties", 0, upstream=-1.5, label_smoothing=1.0,
        reduction="sum", ignored=0.5),
    _vp("linear", torch.float64, 6, (3, 2), "peaked", 10, upstream=2.0**16, temperature=3.0,
        label_smoothing=0.1, reduction="mean", weighted=True, ignored=0.3),
    _vp("linear", torch.float32, 4, (5, 0), "random", 3, z_loss=0.5, soft_cap=30.0,
        reduction="none", chunk_size=3),
    _vp("linear", torch.bfloat16, 5, (2, 2), "near-ties", 10, upstream=0.75, reduction="mean",
        label_smoothing=0.1, chunk_size=2),
    _vp("linear", torch.float32, 4, (1, 3), "random", 0, reduction="mean", ignored=1.0,
        weighted=True),
    _vp("logits", torch.float32, 4, (2, 3), "peaked", 3, reduction="sum"),
]  # fmt: skip


def _vp_inputs(spec: dict[str, Any], seed: int) -> tuple[torch.Tensor, ...]:
    """Hidden states, classifier, bias and labels on the grid (``h`` is the logits and
    ``W = I`` for the ``logits`` kind)."""
    gen = torch.Generator().manual_seed(seed)
    v, d, n, k = sum(spec["sizes"]), 3, spec["n"], spec["k"]
    h, w, b = _grid(gen, (n, d), 1.0), _grid(gen, (v, d), 2.0**k), _grid(gen, (v,), 2.0**k)
    if spec["shape"] == "ties":
        w[-1] = w[0]
    elif spec["shape"] == "near-ties":
        w = _grid(gen, (1, d), 2.0**k) + _grid(gen, (v, d), 0.25)
    elif spec["shape"] == "peaked":
        h, w[0] = h.abs() + 0.25, 2.0 ** (k + 2)
    y = torch.randint(0, v, (n,), generator=gen)
    if spec["shape"] == "peaked":
        y[: n // 2] = 0
    y[torch.rand(n, generator=gen) < spec["options"].get("ignored", 0.0)] = -100
    if spec["kind"] == "logits":  # the logits themselves, rounded to the dtype
        h, w, b = (h @ w.T + b).to(spec["dtype"]).double(), torch.eye(v, dtype=torch.float64), None
    else:  # the oracle's inputs are the rounded ones (near-ties at 2^10 need 13 bits)
        h, w, b = (t.to(spec["dtype"]).double() for t in (h, w, b))
    weights = torch.randint(0, 9, (v,), generator=gen).double() / 4 + 0.25
    upstream = torch.tensor(spec.get("upstream", 1.0))
    if spec["options"]["reduction"] == "none":
        upstream = _grid(gen, (n,), 1.0)
    return h, w, b, y, weights, upstream


def _vp_check(rank: int, spec: dict[str, Any], seed: int) -> None:
    dtype, sizes = spec["dtype"], spec["sizes"]
    h, w, b, y, weights, upstream = _vp_inputs(spec, seed)
    opts = {k: v for k, v in spec["options"].items() if k not in ("weighted", "ignored")}
    cw = weights.to(_accumulation(dtype)) if spec["options"].get("weighted") else None
    lo, hi = sum(sizes[:rank]), sum(sizes[: rank + 1])
    truth = oracle(h, w, b, y, upstream, weight=cw, ignore_index=-100, **opts)
    if spec["kind"] == "logits":
        z = h[:, lo:hi].to(dtype).requires_grad_()
        loss = ct.vocab_parallel_cross_entropy(z, y, weight=cw, **opts)
        grads = [
            (z, truth.grads[0][:, lo:hi], truth.sizes[0][:, lo:hi], 1, truth.reach[0][:, lo:hi])
        ]
    else:
        hd = h.to(dtype).requires_grad_()
        wd, bd = w[lo:hi].to(dtype).requires_grad_(), b[lo:hi].to(dtype).requires_grad_()
        loss = ct.vocab_parallel_linear_cross_entropy(hd, wd, y, bias=bd, class_weight=cw, **opts)
        n, v = h.shape[0], w.shape[0]
        grads = [
            (hd, truth.grads[0], truth.sizes[0], v, truth.reach[0]),
            (wd, truth.grads[1][lo:hi], truth.sizes[1][lo:hi], n, truth.reach[1][lo:hi]),
            (bd, truth.grads[2][lo:hi], truth.sizes[2][lo:hi], n, truth.reach[2][lo:hi]),
        ]
    assert loss.dtype == _accumulation(dtype)
    # The vocab-parallel work is in float32 for float32 input (the exponentials too):
    # 4 ulps of the terms and (|log p| + 8) epsilons per gradient entry are in `truth`.
    assert_loss(loss.detach(), truth)
    loss.backward(upstream.to(loss.dtype))
    for leaf, want, size, terms, reach in grads:
        assert leaf.grad is not None
        assert leaf.grad.dtype == dtype
        assert_gradient(f"{spec['kind']} grad", leaf.grad, want, size, terms, reach)


def _vp_worker(rank: int, world: int) -> None:
    for seed, spec in enumerate(VP_CASES):
        try:
            _vp_check(rank, spec, seed)
        except AssertionError as error:
            raise AssertionError(f"case {spec}: {error}") from error


@pytest.mark.distributed
def test_vocab_parallel_losses_match_the_oracle() -> None:
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is unavailable")
    from spawned import run_spawned

    run_spawned(_vp_worker, 2, timeout=120)
