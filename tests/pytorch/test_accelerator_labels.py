"""``crossent.torch.cross_entropy`` of class ids off the CPU (``crossent.torch._accelerator``).

CUDA tensors went through the generic array-API path in 16 MiB blocks (4096 x 32000
float32 on an H200: 39.6 ms forward against 0.46 ms for ``F.cross_entropy``); they now
take torch operations on large blocks of whole rows, the fused linear loss's formulas.
Here that path runs on CPU tensors (``_accelerator.ON_CPU``, set by the ``accelerated``
fixture, which also fails a test in which the path did not run), and on CUDA where
there is one.

Oracles: mpmath at 50 digits on the values as stored (loss and gradient of every option:
label smoothing, z-loss, soft cap, temperature, class weights, ``ignore_index``) on hard
rows (near ties, :math:`p_y \\to 1` at logits [0, -80] and [40, -40], spreads of 1e4,
``-inf`` entries, two classes, rows ignored with NaN and inf in them); float64 NumPy in
the log1p form for 100000 classes; central finite differences; the CPU's fused kernels
(float32 rows within 2 ulps); and the same path under ``torch.compile(fullgraph=True)``.

Gradient tolerance: a few ulps of each entry in its dtype plus a few float32 ulps of the
magnitude of the terms the entry subtracts (:math:`c\\,p_c` and :math:`\\tfrac{\\varepsilon}{V}
w_c`; at the label :math:`g\\,|p_y - 1|` and :math:`(c - g)\\,p_y`, so an entry near
:math:`p_y \\to 1` is held to its own ulps), those float32 ulps times :math:`1 +
|\\log p_c|` on CUDA (its exponentials are float32: :math:`(c - m)/T - \\ell` is rounded
to float32 before its ``exp``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.torch import _accelerator, _backend, _labels, _launch  # noqa: E402

from tolerances import ulps_apart  # noqa: E402

# Inductor's and AOTAutograd's code call a deprecated torch.jit API.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")

DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def accelerated(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Route CPU tensors through the accelerator path and count its calls; the test
    fails if neither its forward nor its backward ran."""
    calls = {"forward": 0, "backward": 0}
    monkeypatch.setattr(_accelerator, "ON_CPU", True)
    for name in calls:
        original = getattr(_accelerator, name)

        def counted(*args: Any, __f: Any = original, __n: str = name, **kwargs: Any) -> Any:
            calls[__n] += 1
            return __f(*args, **kwargs)

        monkeypatch.setattr(_accelerator, name, counted)
    yield calls
    assert calls["forward"] > 0, "the accelerator path did not run"


# ------------------------------------------------------------------------- the oracle


def _oracle(
    z: np.ndarray,
    labels: np.ndarray,
    upstream: np.ndarray,
    options: dict[str, Any],
    weight: np.ndarray | None,
    ignore_index: int | None,
) -> dict[str, np.ndarray]:
    r"""In mpmath (50 digits) from the float64 values ``z`` (rows x classes): per-row
    ``loss``, the ``grad`` of ``sum(upstream * loss)``, the magnitude ``mag`` of the terms
    of each entry, ``spread`` :math:`|z'_c - \max z'| + |\log p_c|` (0 where
    :math:`p_c = 0`) and ``sens`` :math:`\sum_c |\partial L/\partial z'_c|\,|z'_c -
    \max z'|` of each row (how far a relative rounding of the shifted logits moves the
    loss); ignored rows 0 (never read)."""
    n, classes = z.shape
    eps = mpmath.mpf(options.get("label_smoothing", 0.0))
    lam = mpmath.mpf(options.get("z_loss", 0.0))
    temp = mpmath.mpf(options.get("temperature", 1.0))
    cap = options.get("soft_cap")
    out = {k: np.zeros((n, classes)) for k in ("grad", "mag", "spread")}
    out["loss"], out["sens"] = np.zeros(n), np.zeros(n)
    with mpmath.workdps(50):
        w = [mpmath.mpf(1)] * classes if weight is None else [mpmath.mpf(float(x)) for x in weight]
        total = mpmath.fsum(w)
        for i in range(n):
            y = int(labels[i])
            if ignore_index is not None and y == ignore_index:
                continue
            x = [mpmath.mpf(float(v)) for v in z[i]]
            if cap is None:
                c, slope = x, [mpmath.mpf(1)] * classes
            else:
                s = mpmath.mpf(cap)
                c = [
                    s * mpmath.tanh(v / s) if mpmath.isfinite(v) else s * mpmath.sign(v) for v in x
                ]
                slope = [mpmath.sech(v / s) ** 2 if mpmath.isfinite(v) else 0 for v in x]
            zp = [v / temp for v in c]
            j = max(range(classes), key=lambda k: zp[k])
            top = zp[j]
            # log1p form: 1 - p_j = r/(1 + r) keeps its digits where p_j -> 1
            r = mpmath.fsum(mpmath.exp(zp[k] - top) for k in range(classes) if k != j)
            ell = mpmath.log1p(r)
            lse = top + ell
            p = [mpmath.exp(v - lse) for v in zp]
            p_minus_one = [p[k] - 1 if k != j else -r / (1 + r) for k in range(classes)]
            g = (1 - eps) * w[y]
            # LSE - z'_k as (top - z'_k) + ell: no cancellation where ell is tiny
            value = g * ((top - zp[y]) + ell) + lam * w[y] * lse**2
            if eps:
                value += (
                    eps
                    / classes
                    * mpmath.fsum(w[k] * ((top - zp[k]) + ell) for k in range(classes))
                )
            out["loss"][i] = float(value)
            coef = (1 - eps) * w[y] + eps * total / classes + 2 * lam * w[y] * lse
            u = mpmath.mpf(float(upstream[i]))
            sens = mpmath.mpf(0)
            for k in range(classes):
                uniform = eps / classes * w[k]
                entry = coef * p[k] - uniform
                size = abs(coef * p[k]) + uniform
                if k == y:  # c p_y - g = g (p_y - 1) + (c - g) p_y
                    entry = g * p_minus_one[k] + (coef - g) * p[k] - uniform
                    size = abs(g * p_minus_one[k]) + abs(coef - g) * p[k] + uniform
                    if eps or lam or weight is not None:  # c's own rounding
                        size += abs(coef) * p[k]
                out["grad"][i, k] = float(u * entry * slope[k] / temp)
                out["mag"][i, k] = float(size * abs(u) * slope[k] / temp)
                # the slope's 4v/(1 + v)^2, v = e^(-2|x|), moves by 2|x| times x's rounding
                bent = 2 * abs(x[k] / cap) if cap is not None and mpmath.isfinite(x[k]) else 0
                if p[k] > 0:
                    out["spread"][i, k] = float(top - zp[k] - mpmath.log(p[k]) + bent)
                    sens += abs(entry) * (top - zp[k] + (abs(zp[k]) if cap is not None else 0))
            out["sens"][i] = float(sens)
    return out


def _hard_rows(classes: int, ignored: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``classes`` (2 or 7) logits and their labels: ties and near ties,
    :math:`p_y \\to 1` ([0, -80], [40, -40]), the label far below, spreads of 1e4,
    ``-inf`` entries; with ``ignored``, a row of label -100 holding NaN and inf."""
    if classes == 2:
        rows = [
            ([0.0, -80.0], 0),
            ([40.0, -40.0], 0),
            ([0.0, -80.0], 1),
            ([0.0, 0.0], 1),
            ([1.0, 1.0 + 2.0**-20], 0),
            ([1e4, -1e4], 1),
            ([-3.0, -math.inf], 0),
        ]
    else:
        rows = [
            ([0.0, -80.0, -80.0, -90.0, -100.0, -80.0, -85.0], 0),
            ([40.0, -40.0, -40.0, -40.0, -41.0, -45.0, -60.0], 0),
            ([1.0, 1.0 + 2.0**-20, 1.0 - 2.0**-21, 0.5, 1.0, -2.0, 1.0], 2),
            ([1e4, 0.0, -1e4, 5e3, -5e3, 9999.0, 1.0], 5),
            ([1e4, 0.0, -1e4, 5e3, -5e3, 9999.0, 1.0], 2),
            ([0.0, -math.inf, 3.0, -math.inf, 2.5, -1.0, 0.25], 4),
            ([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], 6),
        ]
    if ignored:
        rows.insert(2, ([math.nan, math.inf] + [1.0] * (classes - 2), -100))
        rows.append(([-math.inf, math.nan] + [math.inf] * (classes - 2), -100))
    z = np.array([r for r, _ in rows], dtype=np.float64)
    return z, np.array([y for _, y in rows], dtype=np.int64)


OPTIONS: list[tuple[dict[str, Any], bool, bool]] = [
    # (options, class weights, ignore_index)
    ({}, False, False),
    ({}, False, True),
    ({"label_smoothing": 0.1}, False, True),
    ({"label_smoothing": 0.25}, True, False),
    ({"z_loss": 1e-4}, False, False),
    ({"z_loss": 0.01}, True, True),
    ({"soft_cap": 30.0}, False, True),
    ({"soft_cap": 5.0, "label_smoothing": 0.1}, True, False),
    ({"temperature": 0.5}, False, False),
    ({"temperature": 3.0, "z_loss": 1e-3, "label_smoothing": 0.05}, True, True),
]


def _run(
    z: torch.Tensor,
    labels: torch.Tensor,
    upstream: torch.Tensor,
    options: dict[str, Any],
    weight: torch.Tensor | None,
    ignore_index: int | None,
    fn: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses and the gradient of ``sum(upstream * loss)`` through ``fn``
    (``crossent.torch.cross_entropy`` with ``reduction="none"`` by default)."""
    z = z.detach().clone().requires_grad_()
    keywords = dict(options, ignore_index=ignore_index)  # None: no id is ignored
    if fn is None:
        rows = ct.cross_entropy(z, labels, weight, reduction="none", **keywords)
    else:
        rows = fn(z, labels, weight, keywords)
    (rows.double() * upstream).sum().backward()
    assert z.grad is not None
    return rows.detach().double().cpu().numpy(), z.grad.double().cpu().numpy()


def _unit(dtype: str, device: str) -> float:
    """The unit roundoff of the shifted logits and exponentials: float32's on CUDA for
    32- and 16-bit logits, else float64's (the CPU forms them in float64)."""
    return 2.0**-24 if device != "cpu" and dtype != "float64" else 2.0**-53


def _gradient_tolerance(
    oracle: dict[str, np.ndarray], fmt: str, device: str, soft_cap: float | None = None
) -> np.ndarray:
    """Allowed ``|got - exact|``: k ulps of the entry in ``fmt`` plus, of the magnitude of
    the terms it subtracts, k float32 ulps (float64 ones for float64) and twice the unit
    roundoff of the exponentials times ``1 + spread`` (k = 2; 8 for float64: the label
    entry's ``expm1(-log1p(r))`` chain of roundings). With a soft cap :math:`s` off the
    CPU, where the capped logits :math:`s\tanh(z/s)` are rounded to float32 (the CPU
    forms them in float64), twice the unit roundoff times :math:`s` more (an H200 run:
    the label entry of a confident capped row, -1.1e-13, was 1e-6 relative off)."""
    k, wide, tiny = (8.0, 2.0**-53, 2.0**-1074) if fmt == "float64" else (2.0, 2.0**-24, 2.0**-149)
    relative = k * wide + 2.0 * _unit(fmt, device) * (1.0 + oracle["spread"] + (soft_cap or 0.0))
    # + a few subnormal ulps of the work format (its roundings of p, c p, ... there)
    return k * _spacing(oracle["grad"], fmt) + relative * oracle["mag"] + 4 * tiny


def _loss_tolerance(oracle: dict[str, np.ndarray], dtype: str, device: str) -> np.ndarray:
    """Allowed ``|got - exact|`` of the losses (float32 for 16-bit logits): 2 ulps (8 for
    float64) plus twice the unit roundoff of the shifted logits times ``sens``."""
    fmt = "float64" if dtype == "float64" else "float32"
    k = 8.0 if dtype == "float64" else 2.0
    return k * _spacing(oracle["loss"], fmt) + 2.0 * _unit(dtype, device) * oracle["sens"]


def _spacing(x: np.ndarray, fmt: str) -> np.ndarray:
    """The ulp of each ``x`` in ``fmt`` (bfloat16: float32's times 2^16, at least 2^-133)."""
    if fmt == "bfloat16":
        out = np.spacing(np.abs(x).astype(np.float32)).astype(np.float64) * 2.0**16
        return np.maximum(out, 2.0**-133)
    return np.spacing(np.abs(x).astype(fmt)).astype(np.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("options", "weighted", "ignored"), OPTIONS)
@pytest.mark.parametrize("classes", [2, 7])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_hard_rows_against_mpmath(
    accelerated: dict[str, int],
    dtype: str,
    classes: int,
    options: dict[str, Any],
    weighted: bool,
    ignored: bool,
    device: str,
) -> None:
    """Losses and gradients of hard rows within a few ulps of mpmath, every option."""
    values, labels = _hard_rows(classes, ignored)
    z = torch.from_numpy(values).to(DTYPES[dtype])
    stored = z.double().numpy()  # the values as stored; the ignored rows never read
    stored = np.where(labels[:, None] == -100, 0.0, stored)
    rng = np.random.default_rng(classes)
    upstream = rng.uniform(0.5, 2.0, len(labels))
    wt = None
    if weighted:
        wt = torch.from_numpy(rng.uniform(0.25, 3.0, classes)).to(
            torch.float64 if dtype == "float64" else torch.float32
        )
    ignore_index = -100 if ignored else None
    weight = None if wt is None else wt.double().numpy()  # the weights as passed
    oracle = _oracle(stored, labels, upstream, options, weight, ignore_index)
    loss, grad = _run(
        z.to(device),
        torch.from_numpy(labels).to(device),
        torch.from_numpy(upstream).to(device),
        options,
        None if wt is None else wt.to(device),
        ignore_index,
    )
    assert accelerated["backward"] > 0
    exact = oracle["loss"]
    finite = np.isfinite(exact)
    np.testing.assert_array_equal(loss[~finite], exact[~finite])
    off = np.abs(loss[finite] - exact[finite])
    allowed = _loss_tolerance(oracle, dtype, device)[finite]
    assert np.all(off <= allowed), (loss, exact, off / allowed)
    off = np.abs(grad - oracle["grad"])
    allowed = _gradient_tolerance(oracle, dtype, device, options.get("soft_cap"))
    assert np.all(off <= allowed), (np.argwhere(off > allowed), grad, oracle["grad"])
    if ignored:  # exactly 0, whatever the ignored rows hold
        assert np.all(loss[labels == -100] == 0.0)
        assert np.all(grad[labels == -100] == 0.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_many_classes_against_float64(accelerated: dict[str, int], dtype: str, device: str) -> None:
    """100000 classes, a few rows (one with :math:`p_y \\to 1`, one spread by 1e4): the
    losses within 2 float32 ulps (16 on CUDA) of a float64 log1p-form oracle, the
    gradient's entries within the test's tolerance of its float64 twin."""
    rng = np.random.default_rng(7)
    classes = 100_000
    values = rng.normal(0.0, 3.0, (4, classes))
    values[1] = rng.uniform(-1e4, 1e4, classes)
    values[2] -= 100.0
    values[2, 17] = 30.0
    values[3, :50] = -np.inf
    labels = np.array([5, 99_999, 17, 60])
    z = torch.from_numpy(values).to(DTYPES[dtype])
    x = z.double().numpy()
    m = x.max(1, keepdims=True)
    top = x.argmax(1)
    e = np.exp(x - m)
    e[np.arange(4), top] = 0.0
    ell = np.log1p(e.sum(1))
    exact = (m[:, 0] - x[np.arange(4), labels]) + ell
    p = np.exp(x - m - ell[:, None])
    grad_exact = p.copy()
    rest = e.sum(1)
    grad_exact[np.arange(4), labels] = np.where(
        labels == top, -rest / (1 + rest), p[np.arange(4), labels] - 1.0
    )
    mag = np.abs(grad_exact)
    upstream = np.ones(4)
    loss, grad = _run(
        z.to(device),
        torch.from_numpy(labels).to(device),
        torch.from_numpy(upstream).to(device),
        {},
        None,
        None,
    )
    spread = np.where(p > 0, -np.log(np.maximum(p, 1e-300)) + (m - x), 0.0)
    sens = (np.abs(grad_exact) * np.where(p > 0, m - x, 0.0)).sum(1)
    oracle = {"loss": exact, "grad": grad_exact, "mag": mag, "spread": spread, "sens": sens}
    assert np.all(np.abs(loss - exact) <= _loss_tolerance(oracle, dtype, device))
    assert np.all(np.abs(grad - grad_exact) <= _gradient_tolerance(oracle, dtype, device))


@pytest.mark.parametrize("device", DEVICES)
def test_all_rows_ignored(accelerated: dict[str, int], device: str) -> None:
    """Every row ignored (NaN logits): zero losses and gradients, a NaN mean as torch's."""
    z = torch.full((3, 5), math.nan, device=device, requires_grad=True)
    labels = torch.full((3,), -100, device=device)
    rows = ct.cross_entropy(z, labels, reduction="none", label_smoothing=0.1, z_loss=1e-3)
    rows.sum().backward()
    assert z.grad is not None
    assert torch.equal(rows, torch.zeros(3, device=device))
    assert torch.equal(z.grad, torch.zeros(3, 5, device=device))


def _fused_or_skip() -> None:
    probe = torch.zeros((1, 2))
    options = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)
    if not _launch.uses_fused_kernels(probe, options):
        pytest.skip("the fused kernels do not run here (Numba is not installed)")


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"z_loss": 1e-3}, {"temperature": 0.7}],
)
def test_float32_rows_within_two_ulps_of_the_fused_kernels(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    """The same float32 rows on the CPU's fused kernels and on the accelerator path:
    losses within 2 ulps of each other, gradients within the test's tolerance (the
    fused gradient as the exact one, the magnitude of its entries as the terms')."""
    _fused_or_skip()
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 4.0, (64, 1000)).astype(np.float32)
    values[:8] *= 20.0  # confident rows
    z = torch.from_numpy(values)
    labels = torch.from_numpy(rng.integers(0, 1000, 64))
    labels[5] = -100
    upstream = torch.from_numpy(rng.uniform(0.5, 2.0, 64))
    weight = torch.from_numpy(rng.uniform(0.5, 2.0, 1000).astype(np.float32))
    fused = _run(z, labels, upstream, options, weight, -100)
    calls = {"forward": 0}
    original = _accelerator.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["forward"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(_accelerator, "ON_CPU", True)
    monkeypatch.setattr(_accelerator, "forward", counted)
    ours = _run(z, labels, upstream, options, weight, -100)
    assert calls["forward"] == 1
    assert ulps_apart(ours[0], fused[0], "float32").max() <= 2.0
    allowed = (
        4.0 * _spacing(fused[1], "float32")
        + 2.0
        * np.spacing(np.abs(fused[1]).astype(np.float32)).astype(np.float64).max(1, keepdims=True)
        * 2.0**-10
    )
    assert np.all(np.abs(ours[1] - fused[1]) <= allowed)


def test_gradient_matches_finite_differences(accelerated: dict[str, int]) -> None:
    """float64, every option at once: the gradient within 1e-8 of central differences
    of the path's own losses."""
    rng = np.random.default_rng(11)
    values = rng.normal(0.0, 2.0, (3, 6))
    labels = np.array([1, 4, 0])
    weight = torch.from_numpy(rng.uniform(0.5, 2.0, 6))
    options = {"label_smoothing": 0.1, "z_loss": 1e-2, "soft_cap": 3.0, "temperature": 0.8}

    def total(x: np.ndarray) -> float:
        rows = ct.cross_entropy(
            torch.from_numpy(x), torch.from_numpy(labels), weight, reduction="none", **options
        )
        return float((rows * torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)).sum())

    _, grad = _run(
        torch.from_numpy(values),
        torch.from_numpy(labels),
        torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64),
        options,
        weight,
        -100,
    )
    h = 1e-6
    numeric = np.zeros_like(values)
    for index in np.ndindex(values.shape):
        step = np.zeros_like(values)
        step[index] = h
        numeric[index] = (total(values + step) - total(values - step)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=0, atol=1e-8)


@pytest.mark.parametrize("device", DEVICES)
def test_blocks_do_not_change_the_result(
    accelerated: dict[str, int], monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    """Blocks of a few rows (``BLOCK_BYTES`` made small: 7 blocks of 10 rows and one of
    9... of equal size) give the rows of one block, bit for bit; bfloat16 logits, whose
    blocks go through the float32 buffer."""
    rng = np.random.default_rng(5)
    z = torch.from_numpy(rng.normal(0.0, 3.0, (37, 300))).to(torch.bfloat16).to(device)
    labels = torch.from_numpy(rng.integers(0, 300, 37)).to(device)
    labels[3] = -100
    upstream = torch.from_numpy(rng.uniform(0.5, 2.0, 37)).to(device)
    options = {"label_smoothing": 0.1, "soft_cap": 20.0}
    whole = _run(z, labels, upstream, options, None, -100)
    monkeypatch.setattr(_accelerator, "BLOCK_BYTES", 4 * 300 * 5)
    assert _accelerator.block_rows(37, 300, 2, 4) == 5
    blocked = _run(z, labels, upstream, options, None, -100)
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])


def test_block_rows() -> None:
    """At most ``BLOCK_BYTES`` of the work dtype and the input's size, in equal blocks."""
    assert _accelerator.block_rows(4096, 32000, 4, 4) == 2048
    assert _accelerator.block_rows(4096, 32000, 2, 4) == 2048  # bf16: the input's 250 MiB
    assert _accelerator.block_rows(100, 1000, 2, 4) == 50  # float32 work of a bf16 input
    assert _accelerator.block_rows(4096, 32000, 8, 8) == 1024
    assert _accelerator.block_rows(10, 32000, 4, 4) == 10
    assert _accelerator.block_rows(3, 10**9, 4, 4) == 1
    assert _accelerator.block_rows(0, 5, 4, 4) == 1


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_fullgraph_module(accelerated: dict[str, int], device: str) -> None:
    """A module calling ``crossent.torch.cross_entropy`` under ``torch.compile(fullgraph=
    True)`` (the custom op is opaque): the eager losses and gradients, bit for bit on the
    CPU, to a float32 ulp or two on CUDA."""

    class Head(torch.nn.Module):
        def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return ct.cross_entropy(z * 1.0, y, label_smoothing=0.1, z_loss=1e-4)

    rng = np.random.default_rng(9)
    z = torch.from_numpy(rng.normal(0.0, 3.0, (16, 50)).astype(np.float32)).to(device)
    labels = torch.from_numpy(rng.integers(0, 50, 16)).to(device)
    labels[2] = -100
    head = Head()
    compiled = torch.compile(head, fullgraph=True)
    results = []
    for f in (head, compiled):
        x = z.clone().requires_grad_()
        loss = f(x, labels)
        loss.backward()
        assert x.grad is not None
        results.append((loss.detach(), x.grad))
    if device == "cpu":
        assert torch.equal(results[0][0], results[1][0])
        assert torch.equal(results[0][1], results[1][1])
    else:  # Inductor's CUDA kernels for the mean around the op sum in another order (H200:
        # 7.1121 both, not the same bits): a float32 ulp or two
        torch.testing.assert_close(results[1][0], results[0][0], rtol=2.5e-7, atol=0.0)
        torch.testing.assert_close(results[1][1], results[0][1], rtol=2.5e-7, atol=1e-12)
    assert accelerated["backward"] >= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_synchronisation_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward and backward on CUDA under ``set_sync_debug_mode("error")``, the eager
    class-id check (one documented sync: ``_labels.check_class_ids_off_cpu``) left out.
    (On an H200 this test first failed on ``set_sync_debug_mode``'s own UserWarning,
    which the suite's ``-W error`` turned into an error, and then on that check.)"""
    monkeypatch.setattr(_labels, "check_class_ids", lambda *_, **__: None)
    z = torch.randn(64, 1000, device="cuda", requires_grad=True)
    labels = torch.randint(0, 1000, (64,), device="cuda")
    labels[3] = -100
    weight = torch.rand(1000, device="cuda")
    torch.cuda.synchronize()
    with warnings.catch_warnings():  # "a prototype feature": a UserWarning each call
        warnings.simplefilter("ignore", UserWarning)
        torch.cuda.set_sync_debug_mode("error")
    try:
        rows = ct.cross_entropy(
            z, labels, weight, reduction="none", label_smoothing=0.1, z_loss=1e-4
        )
        rows.sum().backward()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            torch.cuda.set_sync_debug_mode("default")
    assert z.grad is not None
    assert bool(torch.isfinite(z.grad).all())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_no_value_read_on_the_host(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """The path's forward and backward read no tensor's value into Python (on CUDA each
    ``bool()``, ``.item()``, ``.tolist()``, ``.cpu()`` would be a host synchronisation):
    run on CPU tensors with those methods raising, every option on."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a tensor's value was read on the host")

    rng = np.random.default_rng(13)
    z = torch.from_numpy(rng.normal(0.0, 3.0, (40, 300))).to(DTYPES[dtype])
    labels = torch.from_numpy(rng.integers(0, 300, 40))
    labels[[2, 7]] = -100
    weight = torch.from_numpy(rng.uniform(0.5, 2.0, 300).astype(np.float32))
    upstream = torch.from_numpy(rng.uniform(0.5, 2.0, 40).astype(np.float32))
    opts = _backend.options(label_smoothing=0.1, z_loss=1e-3, temperature=0.7, soft_cap=20.0)
    monkeypatch.setattr(_accelerator, "BLOCK_BYTES", 4 * 300 * 16)  # 3 blocks
    for name in ("__bool__", "item", "tolist", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    rows, ell, log_p, _ = _accelerator.forward(z, labels, weight, opts, ignore_index=-100)
    grad = _accelerator.backward(upstream, z, labels, weight, ell, log_p, opts, ignore_index=-100)
    monkeypatch.undo()
    assert rows.shape == (40,)
    assert grad.shape == (40, 300)
    assert grad.dtype == z.dtype
    assert bool(torch.isfinite(grad).all())
