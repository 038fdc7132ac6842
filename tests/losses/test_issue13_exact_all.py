"""Issue 13, default install on AVX-512: every row of the T = 1 forward in float64 ``exp``.

Where NumPy runs AVX-512 loops, ``_numpy_kernels.EXACT_ALL`` sends every row of the
NumPy forward (no Numba) to ``_exact_rest`` (float64 ``x - max``, ``exp`` and sum,
the first maximum left out, ``log1p``), not only the confident ones. Both settings are
checked on every machine against ``math.fsum`` of float64 terms, at 2 float32 ulps:
near-ties, two classes over 20000 exponents (a float32 ``exp`` there is up to 2.8 ulps
off), huge spreads, ``-inf`` entries, rows of every exp-sum from 1 + 1e-30 to
thousands, and blocks of one, two or three rows; bad rows are suspect either way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions

F32 = np.float32


@pytest.fixture(autouse=True, params=[True, False], ids=["exact_all", "float32_passes"])
def setting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """No Numba (``pip install crossent`` alone), and each setting of ``EXACT_ALL``."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", request.param)
    return bool(request.param)


def _fsum_loss(row: np.ndarray, label: int) -> float:
    """-log softmax(row)[label] = log1p(sum of e^(z_c - z_label), c != label), by fsum."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.exp(row.astype(np.float64) - float(row[label]))
    others = np.delete(terms, label)
    return math.log1p(math.fsum(others[others > 0].tolist()))


def _assert_within_two_ulps(z: np.ndarray, labels: np.ndarray) -> None:
    got = np.asarray(crossent.softmax_cross_entropy(z, labels, reduction="none"))
    assert got.dtype == F32
    truth = np.asarray([_fsum_loss(row, y) for row, y in zip(z, labels, strict=True)])
    ulps = np.abs(got.astype(np.float64) - truth) / np.spacing(np.abs(truth).astype(F32))
    assert ulps.max() <= 2.0, (ulps.max(), int(ulps.argmax()))


def _spread_row(classes: int, rho: float, top: float, seed: int) -> np.ndarray:
    """Maximum ``top`` first; the others, a normal x 2 apart, with terms summing to
    about ``rho`` (1e-30 to thousands: confident rows to flat ones)."""
    rng = np.random.default_rng(seed)
    spread = rng.normal(size=classes - 1) * 2
    others = top + spread + math.log(rho / np.exp(spread).sum())
    return np.r_[top, np.minimum(others, np.nextafter(F32(top), F32(-np.inf)))].astype(F32)


#: (sum of the non-maximal terms, maximum): confident rows to flat ones
SUMS = [(1e-30, 5.0), (1e-7, -61.7), (0.5, 37.3), (3.0 - 1e-6, 0.0), (3.0 + 1e-6, 11.25)]
SUMS += [(40.0, -3.5), (5000.0, 2.0)]


def _hard_rows(classes: int) -> np.ndarray:
    rows = [_spread_row(classes, rho, top, seed) for seed, (rho, top) in enumerate(SUMS)]
    near = _spread_row(classes, 1e-3, 7.0, 11)
    near[-1] = np.nextafter(near[0], F32(-np.inf))  # a near-tie: one ulp below
    rows.append(near)
    ties = _spread_row(classes, 1e-5, -2.0, 12)
    ties[classes // 2 :: max(1, classes // 3)] = ties[0]  # exact ties of the maximum
    rows.append(ties)
    huge = np.full(classes, -3e38, dtype=F32)  # x - max overflows float32 (not float64)
    huge[0], huge[-1] = F32(3e38), np.nextafter(F32(3e38), F32(0))
    rows.append(huge)
    holes = _spread_row(classes, 0.25, 3.5, 13)
    holes[1::2] = -np.inf  # -inf entries count 0
    rows.append(holes)
    rows.append((np.random.default_rng(14).standard_normal(classes) * 3).astype(F32))
    return np.stack(rows)


@pytest.mark.parametrize("classes", [3, 257, 5000])
@pytest.mark.parametrize("per_block", [1, 2, 3])
def test_issue13_hard_rows_within_two_ulps(
    classes: int, per_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", per_block * classes)
    z = _hard_rows(classes)
    z = np.concatenate([z, z[::-1]])  # each kind beside each other in some block
    rng = np.random.default_rng(classes + per_block)
    for labels in (z.argmax(axis=1), rng.integers(0, classes, size=len(z))):
        # a label's logit within 80 of the maximum: a loss float32 holds
        near = z.max(axis=1) - z[np.arange(len(z)), labels].astype(np.float64) < 80.0
        _assert_within_two_ulps(z, np.where(near, labels, z.argmax(axis=1)))


def test_issue13_two_classes_over_many_exponents() -> None:
    """[0, sigma] for 20000 sigma in (-20, 0): log1p(e^sigma) (label 0) and
    log1p(e^-sigma) (label 1), where a float32 ``exp`` of e^sigma errs up to 2.8 ulps."""
    sigma = np.random.default_rng(20).uniform(-20.0, -0.01, 20000).astype(F32)
    z = np.stack([np.zeros_like(sigma), sigma], axis=1)
    for label in (0, 1):
        _assert_within_two_ulps(z, np.full(len(z), label, dtype=np.intp))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_issue13_bad_rows_suspect_beside_good_ones(value: float, setting: bool) -> None:
    z = _hard_rows(300)
    z[2, 17] = value
    z[5] = -np.inf  # a row of -inf
    m, ell, _, _, suspect = _numpy_kernels.row_statistics(
        z, np.zeros(len(z), dtype=np.intp), StatisticsOptions()
    )
    assert np.flatnonzero(suspect).tolist() == [2, 5]
    assert m[5] == -np.inf
    good = np.flatnonzero(~suspect)
    truth = [_fsum_loss(z[i], int(z[i].argmax())) for i in good]
    # float64 exp everywhere, or the float32 one (2.03e-7 at most) on rows of s >= 4
    np.testing.assert_allclose(ell[good], truth, rtol=1e-12 if setting else 3e-7, atol=0)


def test_issue13_exact_all_takes_no_float32_pass(setting: bool) -> None:
    """With EXACT_ALL, the T = 1 forward never runs the float32 passes; without it,
    it does (and, either way, a temperature takes the float64 path)."""
    calls: list[int] = []
    real = _numpy_kernels._exp_sum32

    def spy(x: np.ndarray, *args: object, **kwargs: object) -> None:
        calls.append(len(x))
        real(x, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_numpy_kernels, "_exp_sum32", spy)
        z = _hard_rows(500)
        _numpy_kernels.row_statistics(z, np.zeros(len(z), dtype=np.intp), StatisticsOptions())
    assert (calls == []) == setting


def test_issue13_exact_all_follows_numpy_cpu_features() -> None:
    """EXACT_ALL is NumPy's own flag for its AVX-512 dispatch target (where NumPy reports
    its CPU features): X86_V4 from NumPy 2.4 on, which NPY_DISABLE_CPU_FEATURES turns
    off while AVX512F, the CPU's, stays on; AVX512F before."""
    features = getattr(np._core._multiarray_umath, "__cpu_features__", None)  # NumPy 2
    if features is None:
        pytest.skip("NumPy reports no CPU features here")
    expected = features.get("X86_V4", features.get("AVX512F", False))
    assert _numpy_kernels._avx512_exp() is bool(expected)


def _gradient_truth(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(softmax(z) - onehot) / N in float64; the label's entry as minus the other
    probabilities' fsum (p_y - 1 would cancel)."""
    z64 = z.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(z64 - z64.max(axis=1, keepdims=True))
    p = np.where(np.isnan(p), 0.0, p)
    p /= p.sum(axis=1, keepdims=True)
    for i, y in enumerate(labels):
        p[i, y] = -math.fsum(np.delete(p[i], y).tolist())
    return p / len(z)


@pytest.mark.parametrize("classes", [2, 300])
def test_issue13_gradient_entries_rounded_once(classes: int, setting: bool) -> None:
    """Each non-label gradient entry against the float64 truth: one float32 rounding (2^-24
    relative, 2^-23 allowed) with EXACT_ALL's float64 exp; the float32 exp's error
    (2.03e-7) on top without it. Two classes over 3000 exponents, and the hard rows."""
    if classes == 2:
        sigma = np.random.default_rng(31).uniform(-20.0, 20.0, 3000).astype(F32)
        z = np.stack([np.zeros_like(sigma), sigma], axis=1)
    else:
        z = _hard_rows(classes)
        z = z[(np.abs(z) < 1e30).all(axis=1)]  # (no -inf, no overflow: those are 0)
    labels = np.random.default_rng(30).integers(0, classes, len(z))
    got = np.asarray(crossent.softmax_cross_entropy_grad(z, labels), dtype=np.float64)
    truth = _gradient_truth(z, labels)
    tolerance = 2.0**-23 if setting else 4e-7
    excess = np.abs(got - truth) - tolerance * np.abs(truth)
    # (the label's entry p_y - 1 / N cancels: formed in float64 from the forward's
    # shift, the same in both settings; the other entries only)
    excess[np.arange(len(z)), labels] = 0.0
    assert excess.max() <= 1e-45, (excess.max(), np.unravel_index(excess.argmax(), z.shape))
