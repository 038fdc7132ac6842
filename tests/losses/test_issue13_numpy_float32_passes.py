"""Issue 13, default install: the all-float32 forward of the NumPy kernels (T = 1).

``_numpy_kernels._exp_sum32`` computes :math:`\\sum_c e^{x_c - t}` from float32 passes:
:math:`h = \\mathrm{fl}(x - t)`, its exact error :math:`\\delta` by a branch-free
TwoSum, a float32 ``exp`` and the correction :math:`\\sum_c e^{h_c}\\delta_c`. It is the
formula of the float64 path (``_exp_sum``, which forms :math:`x - t` exactly in
float64), so both agree to float64 rounding, on rows built so that every
:math:`x - t` rounds the same way in float32 (a dropped or wrong correction moves the
sum by about 1e-7 of itself), and the losses stay within 2 float32 ulps of the
float64 truth.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient

F32 = np.float32
ULP_24 = 2.0**-24


@pytest.fixture(autouse=True)
def float32_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 passes at T = 1 (the AVX2 machines' forward; AVX-512 ones take
    ``_exact_rest`` for every row: ``EXACT_ALL``, tests/losses/test_issue13_exact_all.py)."""
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", False)


def _aligned_rows(classes: int) -> np.ndarray:
    """Rows whose ``x - max`` are inexact in float32, the errors of one sign per row."""
    rows = []
    # max 8 (ulp 2^-20) and x in [0.5, 1) (ulp 2^-24): x - 8 in (-7.5, -7], ulp 2^-21;
    # x = 0.75 + 3 ulps rounds to -7.25 with delta = +3 * 2^-24 (case |x| <= max)
    row = np.full(classes, 0.75 + 3 * ULP_24)
    row[0] = 8.0
    rows.append(row)
    row = np.full(classes, 0.75 - 3 * ULP_24)  # delta of the other sign
    row[-1] = 8.0
    rows.append(row)
    # |x| > max >= 0: x = -3.25 - 3 * 2^-22 (ulp 2^-22), max 1 + 2^-23 (ulp 2^-23)
    row = np.full(classes, -3.25 - 3 * 2.0**-22)
    row[1] = 1.0 + 2.0**-23
    rows.append(row)
    # a negative maximum: every |x| >= |max|
    row = np.full(classes, -100.0 - 2.0**-17)
    row[0] = -96.0 + 2.0**-18
    rows.append(row)
    # both kinds in one row, near-ties and huge spreads
    rng = np.random.default_rng(classes)
    row = rng.choice([0.75 + 3 * ULP_24, -9.25 - 5 * 2.0**-21, 2.5, -1e4, -3e38], size=classes)
    row[classes // 2] = 2.5 + 2.0**-22
    rows.append(row)
    rows.append(rng.normal(size=classes) * 30)
    rows.append((rng.normal(size=classes) * 3 + 50) * (1 + ULP_24))
    return np.stack(rows).astype(F32)


@pytest.mark.parametrize("classes", [2, 3, 257, 32000, 256000])
def test_issue13_exp_sum32_is_the_float64_formula(classes: int) -> None:
    x = _aligned_rows(classes)
    top = x.max(axis=1, keepdims=True)
    h, e, a = (np.empty_like(x) for _ in range(3))
    got = np.empty(len(x))
    with np.errstate(over="ignore", under="ignore"):
        _numpy_kernels._exp_sum32(x, top, h, e, a, out=got)
        d = np.subtract(x, top, dtype=np.float64)  # exact where it matters
        reference = _numpy_kernels._exp_sum(d, np.empty_like(x))
    # the same h, the same float32 exp, the same exact delta: float64 rounding apart
    # (and the float32 sum of the correction, about 1e-7 of the sum, to 1e-5 of itself)
    np.testing.assert_allclose(got, reference, rtol=1e-10, atol=0)
    # and the float64 truth within the float32 exp's error (2.03e-7 per term)
    truth = np.exp(np.subtract(x, top, dtype=np.float64)).sum(axis=1)
    assert (np.abs(got - truth) <= 2.1e-7 * (truth - 1) + 1e-15 * truth).all()


def test_issue13_exp_sum32_correction_matters_on_these_rows() -> None:
    """Without the correction, the first rows' sums move by 3 ulps of 2^-24 per term."""
    x = _aligned_rows(1000)[:4]
    top = x.max(axis=1, keepdims=True)
    h = x - top
    plain = np.exp(h).astype(np.float64).sum(axis=1)
    truth = np.exp(np.subtract(x, top, dtype=np.float64)).sum(axis=1)
    assert (np.abs(plain - truth) / truth > 5e-8).all()


@pytest.mark.parametrize("value", [-np.inf, np.nan, np.inf])
def test_issue13_exp_sum32_nonfinite_entries_give_nan(value: float) -> None:
    """A -inf, NaN or +inf in a row gives a NaN sum: the caller redoes the row."""
    x = _aligned_rows(40)
    x[2, 7] = value
    top = x.max(axis=1, keepdims=True)
    got = np.empty(len(x))
    with np.errstate(all="ignore"):
        _numpy_kernels._exp_sum32(x, top, *(np.empty_like(x) for _ in range(3)), out=got)
    assert np.isnan(got[2])
    assert np.isfinite(np.delete(got, 2)).all()


@pytest.mark.parametrize("classes", [2, 257, 32000])
@pytest.mark.parametrize("need_sum", [False, True])
def test_issue13_row_statistics_float32_passes_match_the_float64_path(
    classes: int, need_sum: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _aligned_rows(classes)
    x = np.concatenate([x, np.full((1, classes), -np.inf, F32)])  # a row of -inf
    x[3, classes // 3] = -np.inf  # a -inf among finite logits: the row is redone
    labels = np.arange(len(x)) % classes
    options = StatisticsOptions(1.0, need_sum)
    fast = _numpy_kernels.row_statistics(x, labels, options)
    monkeypatch.setattr(_numpy_kernels, "FLOAT32_PASSES", False)
    wide = _numpy_kernels.row_statistics(x, labels, options)
    for got, expected in zip(fast[:4], wide[:4], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
    np.testing.assert_array_equal(fast[4], wide[4])
    np.testing.assert_array_equal(fast[4], [False] * (len(x) - 1) + [True])


@pytest.mark.parametrize("classes", [2, 257, 32000])
def test_issue13_default_install_losses_within_2_ulps_on_aligned_rows(
    classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 3 * classes)  # several blocks
    x = np.repeat(_aligned_rows(classes), 3, axis=0)
    labels = np.random.default_rng(7).integers(0, classes, len(x))
    labels[::3] = x[::3].argmax(axis=1)  # small losses too
    got = np.asarray(crossent.softmax_cross_entropy(x, labels, reduction="none"))
    exact = np.asarray(
        crossent.softmax_cross_entropy(x.astype(np.float64), labels, reduction="none")
    )
    assert got.dtype == F32
    ulps = np.abs(got - exact) / np.spacing(np.abs(exact.astype(F32)))
    assert ulps.max() <= 2.0, (ulps.max(), int(ulps.argmax()))


def test_issue13_t1_takes_the_float32_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed of the default install: no float64 copy of the logits at T = 1."""

    def fail(*args: object) -> None:
        raise AssertionError("the float64 path was taken")

    monkeypatch.setattr(_numpy_kernels, "_exp_sum", fail)
    x = _aligned_rows(300)
    _numpy_kernels.row_statistics(x, np.zeros(len(x), dtype=np.intp), StatisticsOptions())
    with pytest.raises(AssertionError, match="float64 path"):
        _numpy_kernels.row_statistics(x, np.zeros(len(x), dtype=np.intp), StatisticsOptions(0.5))


def _gradient_rows(classes: int) -> np.ndarray:
    """Rows whose gradient entries e^(x - s) need delta: |x - s| in [64, 128), x fine."""
    rows = _aligned_rows(classes)
    far = np.full(classes, 0.75 + 2.0**-19 + 2.0**-24)  # x - 70 rounds by 2^-19 + 2^-24
    far[0] = 70.0
    near = far.copy()
    near[1:3] = 69.0  # a shift s not representable in float32
    masked = near.copy()
    masked[classes // 2 :] = -np.inf  # masked classes: a gradient of 0
    masked[0] = 70.0
    # float32 spacing 2^17: the float64 path (a float64 shift near 1e12 is itself only
    # good to 6e-5 absolute, hence the last row's looser check)
    huge = np.full(classes, 1e12)
    huge[1::2] -= 2.0**20
    huge[2::3] -= 2.0**17
    return np.concatenate([rows, np.stack([far, near, masked, huge]).astype(F32)])


@pytest.mark.parametrize("classes", [3, 257, 32000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_issue13_default_install_gradient_entries_within_the_exp_error(
    classes: int, reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry a e^(x - s) of the gradient but the label's within 5e-7 of itself: the
    float32 exp's 2.03e-7, the shift's (the forward's) error, one rounding; where it is
    below float32's normal range, absolutely. The label's p_y - 1 cancels: the other
    tests bound it."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 2 * classes)
    x = _gradient_rows(classes)
    labels = np.arange(len(x)) % classes
    got = crossent.softmax_cross_entropy_grad(x, labels, reduction=reduction)
    exact = crossent.softmax_cross_entropy_grad(x.astype(np.float64), labels, reduction=reduction)
    assert got.dtype == F32
    np.testing.assert_array_equal(got[exact == 0], 0)
    others = np.ones(x.shape, dtype=bool)
    others[np.arange(len(x)), labels] = False
    others[-1] = False
    np.testing.assert_allclose(got[others], exact[others], rtol=5e-7, atol=np.finfo(F32).tiny)
    np.testing.assert_allclose(got[-1], exact[-1], rtol=2e-4, atol=np.finfo(F32).tiny)


@pytest.mark.parametrize("classes", [3, 257, 32000])
def test_issue13_default_install_gradient_of_signed_and_zero_upstreams(
    classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-row upstream gradients of either sign, 0, tiny and huge (the factor folded
    into the float32 exponent), and ignored rows."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 2 * classes)
    x = _gradient_rows(classes)[:-1]
    labels = np.arange(len(x)) % classes
    labels[1] = -100
    levels = np.array([1.0, -2.5, 0.0, 1e-30, -1e30, 3e-3, 7.0, -1.0, 1e35, 0.5])
    upstream = levels[np.arange(len(x)) % len(levels)]
    problem = prepare_softmax_labels(x, labels, reduction="none", ignore_index=-100)
    got = softmax_gradient(problem, upstream=upstream.astype(F32))
    exact_problem = prepare_softmax_labels(
        x.astype(np.float64), labels, reduction="none", ignore_index=-100
    )
    exact = softmax_gradient(exact_problem, upstream=upstream)
    assert got.dtype == F32
    np.testing.assert_array_equal(got[exact == 0], 0)
    others = np.ones(x.shape, dtype=bool)
    others[np.arange(len(x)), np.maximum(labels, 0)] = False
    np.testing.assert_allclose(got[others], exact[others], rtol=5e-7, atol=np.finfo(F32).tiny)
    # the label's entries: to the forward's error, relative to the row's largest entry
    scale = np.abs(exact).max(axis=1, keepdims=True)
    assert (np.abs(got - exact) <= 1e-6 * scale).all()
