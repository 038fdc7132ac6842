"""Issue 13: the label's entry of the softmax cross-entropy gradient at extreme confidence.

The label's entry is :math:`c\\,p_y - g`; where the label is the row's maximum and
:math:`p_y` is within about 1e-8 of 1, forming :math:`p_y` from :math:`z_y - \\mathrm{LSE}`
with the LSE rounded to an ulp of the maximum (7e-15 at logits near 50), or rounding
:math:`p_y` itself to float64, leaves few correct digits of :math:`p_y - 1` (13 float32
ulps at a gap of 20, millions beyond; float64 results millions of ulps off from a gap
of 10). Every path now forms it as :math:`c \\operatorname{expm1}(\\log p_y) + (c - g)`.

Checked against mpmath (40 digits) on the exact values of the inputs: gaps 0 to 40
between the label and the other logits, offsets 0 to 1e4, two classes and a thousand,
temperatures, label smoothing, class weights and ``ignore_index`` (the full path),
one row per call (the compiled small calls) and batches (the lean path and the fused
kernels), float32/float16/float64 logits through the public function (float64 also with
the classes on axis 1 and as torch tensors: the generic path's `where`), bfloat16 (and
float16, float32) through both twins of the kernels; Numba's kernels and the NumPy
twins under both settings of ``EXACT_ALL``. Float32 (and float16, bfloat16) results
within one ulp of their format, float64 within 4 ulps.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

from crossent import losses
from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions

import oracles
from kernel_paths import use_kernel_path
from tolerances import ulps_apart

#: The oracles' working precision, set where they run: 40 digits. No cancellation but
#: smoothing's :math:`(p_y - 1) + \varepsilon(1 - 1/C)` (to about 1e-3 of its terms).
DIGITS = 40

GAPS = list(range(41))
OFFSETS = [0.0, 30.0, 1e3, 1e4]


@pytest.fixture(params=["numba", "numpy_exact_all", "numpy_float32_passes"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Numba's kernels (where installed), or the NumPy twins with each ``EXACT_ALL``."""
    use_kernel_path(request.param, monkeypatch)
    return str(request.param)


@functools.cache
def _case(classes: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`oracles.label_gap_rows` over ``GAPS`` and ``OFFSETS``, in ``dtype``."""
    rows, labels = oracles.label_gap_rows(classes, GAPS, OFFSETS)
    return rows.astype(dtype), labels


@functools.cache
def _p_minus_one(classes: int, dtype: str, temperature: float) -> tuple[mpmath.mpf, ...]:
    """:func:`oracles.label_p_minus_one` of ``_case(classes, dtype)``."""
    return oracles.label_p_minus_one(*_case(classes, dtype), temperature, digits=DIGITS)


@mpmath.workdps(DIGITS)
def _exact(
    classes: int,
    dtype: str,
    temperature: float,
    eps: float = 0.0,
    weight: np.ndarray | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact label entries (as floats) and the size of their terms (for smoothing's
    conditioning in float64)."""
    _, labels = _case(classes, dtype)
    t = mpmath.mpf(temperature)
    values, sizes = [], []
    for q, label in zip(_p_minus_one(classes, dtype, temperature), labels, strict=True):
        w = 1 if weight is None else mpmath.mpf(float(weight[label]))
        e = mpmath.mpf(eps)
        entry = w * (q + e - e / classes) * mpmath.mpf(scale) / t
        values.append(float(entry))
        sizes.append(float((abs(q) + e) * w * mpmath.mpf(scale) / t))
    return np.asarray(values), np.asarray(sizes)


def _label_entries(grad: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(grad)[np.arange(len(labels)), labels]


def _check(got: np.ndarray, exact: np.ndarray, sizes: np.ndarray, fmt: str) -> None:
    ulps = ulps_apart(got, exact, fmt)
    if fmt == "float64":
        # smoothing's value can be small against its terms: float64 rounding of those
        slack = 4.0 * 2.0**-52 * sizes / np.spacing(np.abs(exact))
        assert (ulps <= 4.0 + slack).all(), (ulps.max(), int(ulps.argmax()))
    else:
        assert ulps.max() <= 1.0, (ulps.max(), int(ulps.argmax()))


FLOAT_CASES = [
    # (classes, logits dtype, temperature, label smoothing)
    (2, "float32", 1.0, 0.0),
    (2, "float32", 0.7, 0.0),
    (2, "float32", 2.5, 0.1),
    (1000, "float32", 1.0, 0.0),
    (1000, "float32", 0.7, 0.1),
    (2, "float16", 1.0, 0.0),
    (1000, "float16", 1.0, 0.0),
    (2, "float64", 1.0, 0.0),
    (2, "float64", 0.5, 0.1),
    (1000, "float64", 2.0, 0.0),
    (1000, "float64", 1.0, 0.1),
]


@pytest.mark.parametrize(("classes", "dtype", "temperature", "eps"), FLOAT_CASES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_batch(
    path: str, classes: int, dtype: str, temperature: float, eps: float, reduction: str
) -> None:
    """A batch of rows per call: the lean path, the fused kernels, the compiled small calls."""
    z, labels = _case(classes, dtype)
    grad = losses.softmax_cross_entropy_grad(
        z, labels, reduction=reduction, temperature=temperature, label_smoothing=eps
    )
    fmt = np.asarray(grad).dtype.type
    # the mean's 1/N as the library forms it: in the result's dtype (float32: rounded)
    scale = 1.0 if reduction == "sum" else float(fmt(1.0) / fmt(len(labels)))
    exact, sizes = _exact(classes, dtype, temperature, eps, scale=scale)
    _check(_label_entries(grad, labels), exact, sizes, np.asarray(grad).dtype.name)


@pytest.mark.parametrize(("classes", "dtype", "temperature", "eps"), FLOAT_CASES[::2])
def test_one_row_per_call(
    path: str, classes: int, dtype: str, temperature: float, eps: float
) -> None:
    """One row per call (the compiled small calls where Numba is installed)."""
    z, labels = _case(classes, dtype)
    exact, sizes = _exact(classes, dtype, temperature, eps)
    rows = range(0, len(labels), 3)
    got = np.asarray(
        [
            losses.softmax_cross_entropy_grad(
                z[i : i + 1],
                labels[i : i + 1],
                reduction="sum",
                temperature=temperature,
                label_smoothing=eps,
            )[0, labels[i]]
            for i in rows
        ]
    )
    _check(got, exact[::3], sizes[::3], z.dtype.name if dtype != "float16" else "float32")


@pytest.mark.parametrize(("classes", "dtype"), [(2, "float32"), (1000, "float32"), (2, "float64")])
def test_full_path_weights_and_ignored_rows(path: str, classes: int, dtype: str) -> None:
    """Class weights and ``ignore_index``: the full path (an ignored row's gradient is 0)."""
    z, labels = _case(classes, dtype)
    weight = np.random.default_rng(5).uniform(0.5, 2.0, classes).astype(dtype)
    ignored = labels.copy()
    ignored[::7] = -100
    grad = losses.softmax_cross_entropy_grad(
        z, ignored, weight=weight, ignore_index=-100, reduction="sum", temperature=0.5
    )
    exact, sizes = _exact(classes, dtype, 0.5, weight=weight)
    keep = ignored != -100
    got = _label_entries(grad, labels)
    _check(got[keep], exact[keep], sizes[keep], np.asarray(grad).dtype.name)
    assert not np.asarray(grad)[~keep].any()


def _bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 to the bits of bfloat16, rounded to nearest even."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _decode(stored: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return stored.astype(np.float64)


@pytest.mark.parametrize("fmt", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize(("classes", "temperature", "eps"), [(2, 1.0, 0.0), (1000, 0.7, 0.1)])
def test_kernels_storage_formats(
    path: str, fmt: str, classes: int, temperature: float, eps: float
) -> None:
    """Both twins' ``write_gradient`` on each storage format, given ``label_log_p`` from
    their ``row_statistics``; the result in the logits' format, within one of its ulps."""
    kernels = _cpu_kernels if _cpu_kernels.available() else _numpy_kernels
    z32, labels = _case(classes, "float32")
    stored = _bfloat16_bits(z32) if fmt == "bfloat16" else z32.astype(fmt)
    m, ell, zy, _, suspect = kernels.row_statistics(
        stored, labels, StatisticsOptions(1.0 / temperature)
    )
    assert not suspect.any()
    keep, spread = 1.0 - eps, eps / classes
    n = len(labels)
    terms = GradientTerms(
        shift=m + ell,
        inv_temperature=1.0 / temperature,
        p_coef=np.full(n, 1.0 / temperature),
        target_coef=np.full(n, keep / temperature),
        uniform=np.full(classes, spread) if eps else None,
        row_uniform=np.full(n, 1.0 / temperature) if eps else None,
        label_log_p=zy - ell,
    )
    grad = kernels.write_gradient(stored, labels, terms)
    # the oracle on the values as the kernels read them (the same for every path)
    exact = _exact_stored(fmt, classes, temperature, eps)
    _check(_decode(_label_entries(grad, labels), fmt), exact, np.abs(exact), fmt)


@functools.cache
def _exact_stored(fmt: str, classes: int, temperature: float, eps: float) -> np.ndarray:
    """:func:`_exact_of` the values of ``_case(classes, 'float32')`` stored in ``fmt``, as
    ``test_kernels_storage_formats`` hands them to the kernels, once for all paths."""
    z32, labels = _case(classes, "float32")
    stored = _bfloat16_bits(z32) if fmt == "bfloat16" else z32.astype(fmt)
    values = _decode(stored, fmt).astype(np.float32)
    exact = _exact_of(values, labels, temperature, eps)
    exact.flags.writeable = False
    return exact


@mpmath.workdps(DIGITS)
def _exact_of(z: np.ndarray, labels: np.ndarray, temperature: float, eps: float) -> np.ndarray:
    """The exact label entries of ``z``: c = 1/T, g = (1 - eps)/T, b u_y = eps/(C T)."""
    e, t, classes = mpmath.mpf(eps), mpmath.mpf(temperature), z.shape[1]
    return np.asarray(
        [
            float((q + e - e / classes) / t)
            for q in oracles.label_p_minus_one(z, labels, temperature, digits=DIGITS)
        ]
    )


@pytest.mark.parametrize("kind", ["numpy_class_axis_1", "torch_tensors"])
def test_generic_path_other_layouts(kind: str) -> None:
    """The generic path's ``where`` form (classes not last, or another namespace)."""
    z, labels = _case(2, "float64")
    exact, sizes = _exact(2, "float64", 0.5)
    if kind == "torch_tensors":
        torch = pytest.importorskip("torch")
        grad = losses.softmax_cross_entropy_grad(
            torch.from_numpy(z), torch.from_numpy(labels), reduction="sum", temperature=0.5
        ).numpy()
    else:  # (41, 2, 4): the classes on axis 1
        moved = np.ascontiguousarray(np.moveaxis(z.reshape(41, 4, 2), -1, 1))
        grad = losses.softmax_cross_entropy_grad(
            moved, labels.reshape(41, 4), axis=1, reduction="sum", temperature=0.5
        )
        grad = np.moveaxis(np.asarray(grad), 1, -1).reshape(-1, 2)
    _check(_label_entries(grad, labels), exact, sizes, "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["one_row", "batch", "class_axis_0"])
def test_issue13_unlikely_label_with_a_large_coefficient_keeps_its_target(
    path: str, dtype: str, layout: str
) -> None:
    r"""A label far below the row's maximum (:math:`p_y = e^{-5334}`, 0 in any format) with
    a z-loss on large logits (:math:`c = 1 + 2 \lambda \mathrm{LSE} \approx 11.7`) and
    label smoothing (:math:`t_y = 0.91`): the entry is :math:`c\,p_y - t_y = -0.91`,
    which :math:`c \operatorname{expm1}(\log p_y) + (c - t_y)` would form by cancelling
    c (off by up to an ulp of c: in float32, on the generic path, the hypothesis
    counterexample of test_fused_property); the expm1 form is for :math:`p_y > 1/2` only.
    One row (the compiled small calls), a batch (the lean path and the kernels), the
    classes on axis 0 (the generic path, in the input's dtype). The truth by mpmath;
    float32 results within one ulp, float64 within 4."""
    rows = 1 if layout == "one_row" else 64
    z = np.zeros((rows, 10))
    z[:, 9] = 5334.0  # the maximum
    labels = np.full(rows, 6)
    options = {"z_loss": 0.001, "label_smoothing": 0.1, "reduction": "sum"}
    if layout == "class_axis_0":
        got = np.asarray(
            losses.softmax_cross_entropy_grad(z.T.astype(dtype), labels, axis=0, **options)
        ).T
    else:
        got = np.asarray(losses.softmax_cross_entropy_grad(z.astype(dtype), labels, **options))
    with mpmath.workdps(DIGITS):
        lse = mpmath.mpf(5334) + mpmath.log1p(9 * mpmath.exp(-5334))
        c = 1 + 2 * mpmath.mpf(0.001) * lse
        target = (1 - mpmath.mpf(0.1)) + mpmath.mpf(0.1) / 10
        truth = float(c * mpmath.exp(-lse) - target)
    entries = got[:, 6].astype(np.float64)
    ulp = float(np.spacing(np.abs(np.asarray(truth, dtype=dtype))))
    assert np.max(np.abs(entries - truth)) <= (1 if dtype == "float32" else 4) * ulp
