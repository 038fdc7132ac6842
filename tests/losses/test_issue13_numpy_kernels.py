"""Issue 13, default install: the blocked NumPy twins of the fused kernels (no Numba).

Numba is made unavailable by patching ``_cpu_kernels.available`` (the one place the
code asks), and its kernels are made to fail if called. The twins are compared with
the float64 truth (the same call on float64 logits, which takes the generic path),
with the Numba kernels when Numba is installed, and their peak memory is measured
with tracemalloc.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.special import logsumexp

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions
from crossent.losses._softmax import prepare_softmax_labels

RNG = np.random.default_rng(1313)
LOGITS = (RNG.normal(size=(70, 300)) * 4).astype(np.float32)
LABELS = RNG.integers(0, 300, size=70)
LABELS[[3, 17]] = -100
WEIGHT = RNG.uniform(0.1, 2.0, size=300).astype(np.float32)
WEIGHT[[5, 9]] = 0.0

OPTIONS = [
    {},
    {"ignore_index": -100},
    {"ignore_index": -100, "weight": WEIGHT, "label_smoothing": 0.15},
    {"ignore_index": -100, "temperature": 1.7, "z_loss": 1e-3, "base": 2},
    {"ignore_index": -100, "temperature": 0.3, "label_smoothing": 0.1, "reduction": "none"},
    {"ignore_index": -100, "weight": WEIGHT, "reduction": "sum"},
    {"label_smoothing": 1.0, "reduction": "none"},
]


@pytest.fixture
def no_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after ``pip install crossent`` without the ``fast`` extra."""

    def fail() -> None:
        raise AssertionError("the Numba kernels were called")

    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_cpu_kernels, "_kernels", fail)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so that every test crosses block boundaries."""
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 1000)


def _labels_for(options: dict) -> np.ndarray:
    return LABELS if "ignore_index" in options else np.where(LABELS < 0, 0, LABELS)


@pytest.mark.usefixtures("no_numba", "small_blocks")
@pytest.mark.parametrize("options", OPTIONS)
def test_issue13_numpy_twins_match_the_float64_truth(options: dict) -> None:
    labels = _labels_for(options)
    problem = prepare_softmax_labels(LOGITS, labels, **options)
    assert problem.fast_logits is not None  # the blocked path, not the generic one
    got = crossent.softmax_cross_entropy(LOGITS, labels, **options)
    exact = crossent.softmax_cross_entropy(LOGITS.astype(np.float64), labels, **options)
    assert np.asarray(got).dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=4e-7, atol=1e-7)
    grad = crossent.softmax_cross_entropy_grad(LOGITS, labels, **options)
    grad_exact = crossent.softmax_cross_entropy_grad(LOGITS.astype(np.float64), labels, **options)
    assert grad.dtype == np.float32
    scale = np.abs(grad_exact).max()
    np.testing.assert_allclose(grad, grad_exact, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("options", OPTIONS)
def test_issue13_numpy_twins_agree_with_the_numba_kernels(
    options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numba")
    labels = _labels_for(options)
    fused = crossent.softmax_cross_entropy(LOGITS, labels, **options)
    grad_fused = crossent.softmax_cross_entropy_grad(LOGITS, labels, **options)
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 1000)
    twin = crossent.softmax_cross_entropy(LOGITS, labels, **options)
    grad_twin = crossent.softmax_cross_entropy_grad(LOGITS, labels, **options)
    # float64 (or compensated) inside, rounded once: equal up to the last float32 ulp
    np.testing.assert_allclose(twin, fused, rtol=2 * np.finfo(np.float32).eps, atol=1e-12)
    # the gradient's float32 exp is compensated to about an ulp; cancellation against
    # the smoothing term can leave a small entry with a larger relative error
    scale = np.abs(grad_fused).max()
    np.testing.assert_allclose(grad_twin, grad_fused, rtol=1e-6, atol=1e-7 * scale)


def test_issue13_row_statistics_match_scipy_in_float64() -> None:
    z = (RNG.normal(size=(50, 77)) * 30).astype(np.float32)
    z[4] = 0.0  # all ties
    z[7, :] = -np.inf
    z[7, 3] = 2.0  # one finite logit among -inf
    z[9, 11] = 200.0  # near-deterministic: the log1p branch
    labels = RNG.integers(0, 77, size=50)
    for inv_t in (1.0, 1 / 0.7):
        m, ell, zy, total, suspect = _numpy_kernels.row_statistics(
            z, labels, StatisticsOptions(inv_temperature=inv_t, need_sum=True)
        )
        z64 = z.astype(np.float64) * inv_t
        np.testing.assert_allclose(m + ell, logsumexp(z64, axis=1), rtol=1e-13, atol=0)
        assert not suspect.any()
        np.testing.assert_allclose(zy, z64[np.arange(50), labels] - m, rtol=1e-13)
        finite = np.isfinite(z64).all(axis=1)
        expected = (z64 - m[:, None]).sum(axis=1)
        np.testing.assert_allclose(total[finite], expected[finite], rtol=1e-12)
    assert ell[9] > 0
    assert ell[9] < 1e-80


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_issue13_bad_entries_make_the_row_suspect(value: float) -> None:
    z = np.zeros((9, 20), dtype=np.float32)
    z[6, 13] = value
    z[2, :] = -np.inf  # a row of -inf is suspect too
    *_, suspect = _numpy_kernels.row_statistics(z, np.zeros(9, dtype=np.int64), StatisticsOptions())
    np.testing.assert_array_equal(np.flatnonzero(suspect), [2, 6])


@pytest.mark.usefixtures("no_numba", "small_blocks")
@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (np.nan, r"`logits` contains NaN at index \(5, 7\)"),
        (np.inf, r"`logits` \(logits\) must not be \+inf; got \+inf at index \(5, 7\)"),
    ],
)
def test_issue13_numpy_path_validation_names_the_entry(value: float, pattern: str) -> None:
    bad = LOGITS.copy()
    bad[5, 7] = value
    labels = np.where(LABELS < 0, 0, LABELS)
    with pytest.raises(crossent.InputError, match=pattern):
        crossent.softmax_cross_entropy(bad, labels)
    with pytest.raises(crossent.InputError, match=pattern):
        crossent.softmax_cross_entropy_grad(bad, labels)


@pytest.mark.usefixtures("no_numba")
def test_issue13_numpy_path_limits() -> None:
    z = np.array([[1e4, -1e4, 0.0], [0.0, -np.inf, 1.0], [-50.0, 50.0, 0.0]], dtype=np.float32)
    y = np.array([0, 2, 0])
    got = crossent.softmax_cross_entropy(z, y, reduction="none")
    exact = crossent.softmax_cross_entropy(z.astype(np.float64), y, reduction="none")
    np.testing.assert_array_equal(got, exact.astype(np.float32))
    assert crossent.softmax_cross_entropy(z, np.array([0, 1, 0]), reduction="none")[1] == np.inf
    grad = crossent.softmax_cross_entropy_grad(z, y)
    assert np.all(np.isfinite(grad))
    assert grad[1, 1] == 0


@pytest.mark.usefixtures("no_numba")
def test_issue13_numpy_path_takes_batched_and_float16_logits() -> None:
    logits = LOGITS[:40].reshape(4, 10, 300)
    labels = np.where(LABELS[:40] < 0, 0, LABELS[:40]).reshape(4, 10)
    got = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    assert got.shape == (4, 10)
    exact = crossent.softmax_cross_entropy(logits.astype(np.float64), labels, reduction="none")
    np.testing.assert_allclose(got, exact, rtol=4e-7)
    half = logits.astype(np.float16)
    got = crossent.softmax_cross_entropy(half, labels)
    assert got.dtype == np.float32
    assert got == pytest.approx(
        crossent.softmax_cross_entropy(half.astype(np.float64), labels), rel=4e-7
    )


@pytest.mark.usefixtures("no_numba")
@pytest.mark.parametrize("classes", [2000, 50000])
def test_issue13_numpy_path_peak_memory_is_under_a_tenth_of_the_logits(classes: int) -> None:
    rows = 8_000_000 // (4 * classes) * 4  # 32 MB of float32 logits
    logits = np.random.default_rng(0).standard_normal((rows, classes), dtype=np.float32)
    labels = np.random.default_rng(1).integers(0, classes, size=rows)
    buffer = np.empty_like(logits)
    crossent.softmax_cross_entropy(logits[:2], labels[:2])  # warm imports and caches
    for call in (
        lambda: crossent.softmax_cross_entropy(logits, labels),
        lambda: crossent.softmax_cross_entropy(logits, labels, label_smoothing=0.1),
        lambda: crossent.softmax_cross_entropy_grad(logits, labels, out=buffer),
    ):
        tracemalloc.start()
        try:
            call()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 0.1 * logits.nbytes, (peak, logits.nbytes)


def _hard_rows(classes: int, rng: np.random.Generator) -> np.ndarray:
    rows = [
        rng.normal(size=classes) * 3,  # typical
        np.zeros(classes),  # all ties
        np.r_[0.0, np.full(classes - 1, -1e-6)],  # near-ties
        rng.normal(size=classes) * 1e3,  # huge spread
        np.r_[1e30, rng.normal(size=classes - 1)],  # one dominant logit
        np.where(rng.random(classes) < 0.3, -np.inf, rng.normal(size=classes)),  # masked
        rng.normal(size=classes) * 0.01,  # nearly uniform
    ]
    rows[5][0] = 0.0  # at least one finite entry
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.usefixtures("no_numba", "small_blocks")
@pytest.mark.parametrize("classes", [2, 3, 256, 5000])
def test_issue13_numpy_path_hard_rows_within_two_ulps(classes: int) -> None:
    rng = np.random.default_rng(classes)
    z = _hard_rows(classes, rng)
    for labels in (np.zeros(len(z), dtype=np.int64), rng.integers(0, classes, size=len(z))):
        labels = np.where(np.isfinite(z[np.arange(len(z)), labels]), labels, 0)
        got = crossent.softmax_cross_entropy(z, labels, reduction="none")
        z64 = z.astype(np.float64)
        truth = logsumexp(z64, axis=1) - z64[np.arange(len(z)), labels]
        ulps = np.abs(got.astype(np.float64) - truth) / np.spacing(truth.astype(np.float32))
        assert ulps.max() <= 2.0, (ulps, truth)
