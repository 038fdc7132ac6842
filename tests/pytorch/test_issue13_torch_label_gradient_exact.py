"""Issue 13 follow-up: ``crossent.torch``'s label gradient entry at extreme confidence.

The fused CPU op's backward rebuilt :math:`p_y` from the forward's saved log-sum-exp, so
its label entry :math:`c\\,p_y - g` carried the rounding of :math:`\\mathrm{LSE} = m +
\\ell` to an ulp of :math:`m` (13 float32 ulps off at a gap of 20 between the label and
the other logits, millions beyond; bfloat16 results visibly off from a gap of about 30).
The forward now also saves :math:`\\log p_y = (z'_y - m) - \\ell` (float64) and the
backward forms the entry as :math:`c \\operatorname{expm1}(\\log p_y) + (c - g)` where
:math:`p_y > 1/2`, as ``crossent.losses`` does.

Checked against mpmath (40 digits) on the values as stored: gaps 0 to 40, offsets 0 to
1e3, two classes and a thousand, float32 / float16 / bfloat16 logits (the gradient in
their dtype, within one ulp of it), with temperatures, label smoothing, class weights,
``ignore_index`` and the three reductions; bit for bit against ``crossent.losses``'
NumPy gradient (16-bit results: NumPy's float32 gradient rounded to the format) on
random and extreme rows with every option; and under ``torch.compile(fullgraph=True)``
and ``torch.library.opcheck``.
"""

from __future__ import annotations

import functools
from typing import Any

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent import losses  # noqa: E402
from crossent.losses._softmax import prepare_softmax_labels, softmax_label_gradient  # noqa: E402
from crossent.torch import _backend, _launch, _ops  # noqa: E402

import oracles  # noqa: E402
from tolerances import ulps_apart  # noqa: E402

# Inductor's and AOTAutograd's code call a deprecated torch.jit API.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")

#: The oracle's working precision, set where it runs: 40 digits (:math:`A(1 + q) - w_y
#: \tilde t_y` keeps :math:`q = p_y - 1 \ge 10^{-21}` here to 19 digits).
DIGITS = 40

GAPS = list(range(41))
OFFSETS = [0.0, 30.0, 1e3]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _fused_or_skip(dtype: str) -> None:
    probe = torch.zeros((1, 2), dtype=DTYPES[dtype])
    if not _launch.uses_fused_kernels(probe, _backend.options(**_NO_OPTIONS)):
        pytest.skip("the fused kernels do not run here (Numba is not installed)")


_NO_OPTIONS = {"label_smoothing": 0.0, "z_loss": 0.0, "temperature": 1.0, "soft_cap": None}


@functools.cache
def _case(classes: int, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`oracles.label_gap_rows` over ``GAPS`` and ``OFFSETS``, stored in ``dtype``."""
    rows, labels = oracles.label_gap_rows(classes, GAPS, OFFSETS)
    z = torch.from_numpy(rows.astype(np.float32)).to(DTYPES[dtype])
    return z, torch.from_numpy(labels)


@functools.cache
def _p_minus_one(classes: int, dtype: str, temperature: float) -> tuple[mpmath.mpf, ...]:
    """:func:`oracles.label_p_minus_one` of ``_case(classes, dtype)`` (the values as
    stored)."""
    z, labels = _case(classes, dtype)
    return oracles.label_p_minus_one(z.double().numpy(), labels.numpy(), temperature, digits=DIGITS)


@mpmath.workdps(DIGITS)
def _exact(
    classes: int,
    dtype: str,
    temperature: float,
    eps: float,
    weight: np.ndarray | None,
    scale: np.ndarray,
) -> np.ndarray:
    """The exact label entries :math:`s_i (A_i p_y - w_y \\tilde t_y) / T`, with
    :math:`A = (1 - \\varepsilon) w_y + \\varepsilon \\sum_c w_c / C` and
    :math:`\\tilde t_y = 1 - \\varepsilon + \\varepsilon / C` (``scale``: :math:`s_i`)."""
    _, labels = _case(classes, dtype)
    e, t = mpmath.mpf(eps), mpmath.mpf(temperature)
    total = mpmath.mpf(classes) if weight is None else mpmath.fsum(float(x) for x in weight)
    out = []
    for q, label, s in zip(
        _p_minus_one(classes, dtype, temperature), labels.tolist(), scale, strict=True
    ):
        w = mpmath.mpf(1) if weight is None else mpmath.mpf(float(weight[label]))
        a = (1 - e) * w + e * total / classes
        entry = (a * (1 + q) - w * (1 - e + e / classes)) * mpmath.mpf(float(s)) / t
        out.append(float(entry))
    return np.asarray(out)


# (classes, temperature, label smoothing, class weights, ignore_index). Not smoothing
# and weights together: there the entry's A - w_y t_y cancels A's float32 rounding (a
# few float32 ulps off, crossent.losses' NumPy gradient alike, bit for bit).
CASES = [
    (2, 1.0, 0.0, False, False),
    (2, 0.7, 0.0, True, True),
    (2, 2.5, 0.1, False, True),
    (1000, 1.0, 0.0, False, True),
    (1000, 0.7, 0.1, False, False),
    (1000, 0.5, 0.0, True, False),
]


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize(("classes", "temperature", "eps", "weighted", "ignored"), CASES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_label_entry_within_one_ulp_of_mpmath(
    dtype: str,
    classes: int,
    temperature: float,
    eps: float,
    weighted: bool,
    ignored: bool,
    reduction: str,
) -> None:
    """The label's entry of ``cross_entropy``'s gradient, in the logits' dtype, within one
    ulp of it; ignored rows' gradients 0."""
    _fused_or_skip(dtype)
    z, labels = _case(classes, dtype)
    n = len(labels)
    rng = np.random.default_rng(7)
    # eighths: exact in every format, and so is the mean's denominator
    weight = rng.integers(4, 17, classes) / 8.0 if weighted else None
    target = labels.clone()
    if ignored:
        target[::7] = -100
    keep = (target != -100).numpy()
    leaf = z.clone().requires_grad_(True)
    loss = ct.cross_entropy(
        leaf,
        target,
        None if weight is None else torch.from_numpy(weight).to(z.dtype),
        ignore_index=-100,
        reduction=reduction,
        label_smoothing=eps,
        temperature=temperature,
    )
    if reduction == "none":
        upstream = torch.from_numpy(rng.uniform(0.5, 2.0, n).astype(np.float32))
        loss.backward(upstream)
        scale = upstream.double().numpy()
    else:
        loss.backward()
        if reduction == "sum":
            scale = np.ones(n)
        else:  # autograd's 1/d, float32
            w_y = np.ones(n) if weight is None else weight[labels.numpy()]
            d = torch.tensor(float(w_y[keep].sum()), dtype=torch.float32)
            scale = np.full(n, float(torch.tensor(1.0) / d))
    grad = leaf.grad
    assert grad is not None
    assert grad.dtype == z.dtype
    got = grad.double().numpy()[np.arange(n), labels.numpy()]
    exact = _exact(classes, dtype, temperature, eps, weight, scale)
    ulps = ulps_apart(got[keep], exact[keep], dtype)
    assert ulps.max() <= 1.0, (ulps.max(), int(np.flatnonzero(keep)[ulps.argmax()]))
    assert not grad[torch.from_numpy(~keep)].any()


def _extreme_rows(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Confident labels (gaps 0 to 40 at offsets up to 1e4), labels far below the maximum,
    ties, and ``-inf`` logits off the label."""
    z = -rng.uniform(0.0, 8.0, (n, classes))
    labels = rng.integers(0, classes, n)
    at = np.arange(n)
    offset = rng.choice([0.0, 30.0, 1e3, 1e4], n)
    z += offset[:, None]
    z[at, labels] = offset + rng.integers(0, 41, n)
    low = at % 5 == 1  # the label far below the row's maximum
    z[at[low], labels[low]] = offset[low] - 90.0
    tie = at % 5 == 2  # the maximum shared with another class
    z[at[tie], (labels[tie] + 1) % classes] = z[at[tie], labels[tie]]
    off = at % 5 == 3  # -inf off the label
    z[at[off], (labels[off] + classes - 1) % classes] = -np.inf
    return z, labels


def _numpy_gradient(
    z: torch.Tensor, labels: np.ndarray, weight: np.ndarray, kw: dict, reduction: str, up: Any
) -> torch.Tensor:
    """``crossent.losses``' gradient of the float32 values of ``z``, in ``z``'s dtype."""
    values = z.float().numpy()
    if reduction == "none":
        problem = prepare_softmax_labels(
            values, labels, weight=weight, ignore_index=-100, reduction="none", **kw
        )
        grad = softmax_label_gradient(problem, upstream=up.double().numpy())
    else:
        grad = losses.softmax_cross_entropy_grad(
            values, labels, weight=weight, ignore_index=-100, reduction=reduction, **kw
        )
    return torch.from_numpy(np.asarray(grad, dtype=np.float32)).to(z.dtype)


OPTIONS = [
    {},
    {"temperature": 0.7, "label_smoothing": 0.1},
    {"z_loss": 1e-3},
    {"temperature": 2.5, "z_loss": 1e-4, "label_smoothing": 1.0},
]


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("kw", OPTIONS)
@pytest.mark.parametrize("classes", [2, 7, 1000])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_gradient_matches_numpy_bit_for_bit(
    dtype: str, classes: int, kw: dict, reduction: str
) -> None:
    """The whole gradient, random rows and extreme ones, equal bit for bit to
    ``crossent.losses``' NumPy gradient (rounded to the 16-bit formats as the op rounds:
    float64, then float32, then the format)."""
    _fused_or_skip(dtype)
    rng = np.random.default_rng(classes)
    n = 160
    random = rng.standard_normal((n, classes)) * 4.0
    extreme, extreme_labels = _extreme_rows(rng, n, classes)
    values = np.concatenate([random, extreme]).astype(np.float32)
    labels = np.concatenate([rng.integers(0, classes, n), extreme_labels])
    labels[::9] = -100
    weight = (rng.integers(4, 17, classes) / 8.0).astype(np.float32)
    z = torch.from_numpy(values).to(DTYPES[dtype])
    leaf = z.clone().requires_grad_(True)
    target = torch.from_numpy(labels)
    loss = ct.cross_entropy(
        leaf, target, torch.from_numpy(weight).to(z.dtype), reduction=reduction, **kw
    )
    up = torch.from_numpy(rng.uniform(0.5, 2.0, 2 * n).astype(np.float32))
    loss.backward(up if reduction == "none" else None)
    assert leaf.grad is not None
    expected = _numpy_gradient(z, labels, weight, kw, reduction, up)
    got, want = leaf.grad.contiguous(), expected.contiguous()
    bits = torch.int32 if dtype == "float32" else torch.int16
    differ = got.view(bits) != want.view(bits)
    assert not differ.any(), (int(differ.sum()), torch.nonzero(differ)[:5].tolist())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_fullgraph_keeps_the_exact_label_entry(dtype: str) -> None:
    """``torch.compile(fullgraph=True)`` (AOTAutograd: the op's fake kernels and its
    three outputs) gives eager's gradient bit for bit, exact label entries included."""
    _fused_or_skip(dtype)
    z, labels = _case(2, dtype)
    target = labels.clone()
    target[::7] = -100
    weight = torch.tensor([0.5, 1.875], dtype=z.dtype)

    def loss_fn(z: Any, y: Any, w: Any) -> Any:
        return ct.cross_entropy(z, y, w, temperature=0.7, reduction="sum")

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    leaf, ref_leaf = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    compiled(leaf, target, weight).backward()
    loss_fn(ref_leaf, target, weight).backward()
    assert leaf.grad is not None
    assert ref_leaf.grad is not None
    assert torch.equal(leaf.grad, ref_leaf.grad)
    keep = (target != -100).numpy()
    n = len(labels)
    got = leaf.grad.double().numpy()[np.arange(n), labels.numpy()]
    exact = _exact(2, dtype, 0.7, 0.0, weight.double().numpy(), np.ones(n))
    assert ulps_apart(got[keep], exact[keep], dtype).max() <= 1.0


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_op_passes_opcheck_on_extreme_rows(dtype: str) -> None:
    """The op's schema (three outputs), fake kernel and autograd registration."""
    z, labels = _case(2, dtype)
    z, labels = z[::9].clone().requires_grad_(True), labels[::9].clone()
    labels[1] = -100
    opts = _backend.options(label_smoothing=0.1, z_loss=0.0, temperature=1.0, soft_cap=None)
    packed = _backend.pack(opts)
    args = (z, labels, None, [len(labels)], -100, packed)
    torch.library.opcheck(_ops.softmax_ce_labels, args)
    rows, lse, log_p, _ = _ops.softmax_ce_labels(*args)
    assert lse.dtype == log_p.dtype == torch.float64
    assert log_p.shape == lse.shape == rows.shape == labels.shape
