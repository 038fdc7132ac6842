"""Issue 13, default install: confident rows (exp-sum s below 4) of the NumPy forward.

A trained model's rows are mostly confident: s = sum_c e^(z_c - max z) near 1. The
NumPy twins (no Numba) redo them with a float64 ``exp`` (``_exact_ell``): ell =
log1p of the non-maximal terms, the first maximum left out and the other ties counted,
and a block of such rows skips the float32 pass's TwoSum correction. Each per-row loss
is checked against an independent truth (``math.fsum`` of float64 terms and
``math.log1p``, labels-based: log1p(sum_{c != y} e^(z_c - z_y)); mpmath on two classes)
at 2 float32 ulps, on rows around s = 1.5 and s = 4, ties of the maximum, ``-inf``
entries, one dominant logit with the others 1e-30 of it, rows whose float32 ``exp``
errors add up, V = 2 and V = 256000, float16 and float32 logits; and with blocks that
mix confident rows and rows that need the correction.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels

F32 = np.float32


@pytest.fixture(autouse=True)
def no_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after ``pip install crossent`` without the ``fast`` extra."""

    def fail() -> None:
        raise AssertionError("the Numba kernels were called")

    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_cpu_kernels, "_kernels", fail)


def _truth(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log1p(sum_{c != y} e^(z_c - z_y)) per row, from float64 terms summed by fsum."""
    z64 = z.astype(np.float64)
    losses = []
    for row, y in zip(z64, labels, strict=True):
        with np.errstate(invalid="ignore"):
            terms = np.exp(np.delete(row, y) - row[y])
        losses.append(math.log1p(math.fsum(terms[terms > 0])))
    return np.asarray(losses)


def _ulps(got: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(got.astype(np.float64) - truth) / np.spacing(np.abs(truth).astype(F32))


def _losses(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    got = np.asarray(crossent.softmax_cross_entropy(z, labels, reduction="none"))
    assert got.dtype == F32
    return got


def _worst_exp_arguments(count: int, low: float = -20.0, high: float = -0.01) -> np.ndarray:
    """The float32 sigma in (low, high) whose float32 ``exp`` is furthest from e^sigma."""
    sigma = np.linspace(low, high, 2_000_000, dtype=F32)
    exact = np.exp(sigma.astype(np.float64))
    error = np.abs(np.exp(sigma).astype(np.float64) - exact) / exact
    return sigma[np.argsort(error)[-count:]]


def _row_with_sum(classes: int, rest: float, top: float, rng: np.random.Generator) -> np.ndarray:
    """A float32 row of maximum ``top`` (first entry) and non-maximal terms summing to
    about ``rest``: the others spread by a normal x 2 around their level."""
    spread = rng.normal(size=classes - 1) * 2
    weights = np.exp(spread)
    others = top + spread + math.log(rest / weights.sum())
    return np.r_[top, np.minimum(others, np.nextafter(F32(top), F32(-np.inf)))].astype(F32)


def _confident_rows(classes: int, rng: np.random.Generator) -> np.ndarray:
    rows = []
    # s just below and above 1.5 and 4, at maxima whose x - max is inexact in float32
    for rest in (0.5 - 1e-6, 0.5 + 1e-6, 3.0 - 1e-6, 3.0 + 1e-6, 1e-3, 1e-7):
        for top in (0.0, 37.3 + rng.random(), -61.7):
            rows.append(_row_with_sum(classes, rest, top, rng))
    # ties of the maximum: 2 and 3 of them, with small others (s in [2, 4))
    for ties in (2, 3):
        row = _row_with_sum(classes, 1e-5, 11.25, rng)
        row[1:ties] = row[0]
        rows.append(row)
    # -inf entries among confident ones (the float32 pass gives NaN: redone)
    row = _row_with_sum(classes, 0.25, 3.5, rng)
    row[1 + rng.choice(classes - 1, size=(classes - 1) // 2, replace=False)] = -np.inf
    rows.append(row)
    # one dominant logit, the others about 1e-30 of it in all
    rows.append(_row_with_sum(classes, 1e-30, 5.0, rng))
    rows.append(_row_with_sum(classes, 1e-30, -20.0, rng))
    return np.stack(rows)


@pytest.mark.parametrize("classes", [2, 3, 257, 5000])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_issue13_confident_rows_within_two_ulps(
    classes: int, dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 3 * classes)  # several blocks
    rng = np.random.default_rng(classes)
    z = _confident_rows(classes, rng).astype(dtype)
    if dtype == np.float16:  # the float16 values' own truth; rows still of one maximum
        z[:, 0] = z.max(axis=1)
    s = np.exp(np.subtract(z, z.max(axis=1, keepdims=True), dtype=np.float64)).sum(axis=1)
    assert (s < _numpy_kernels.EXACT_BELOW).mean() > 0.6  # mostly redone rows
    for labels in (np.zeros(len(z), dtype=np.intp), rng.integers(0, classes, size=len(z))):
        labels = np.where(np.isfinite(z[np.arange(len(z)), labels]), labels, 0)
        ulps = _ulps(_losses(z, labels), _truth(z, labels))
        assert ulps.max() <= 2.0, (ulps.max(), int(ulps.argmax()))


def test_issue13_tiny_losses_keep_their_digits() -> None:
    """Losses of 1e-30 and 1e-7 (label at the maximum): log(1 + rho) would give 0 and
    lose digits; the relative error stays within 2 ulps."""
    rng = np.random.default_rng(5)
    z = np.stack([_row_with_sum(300, rest, 2.5, rng) for rest in (1e-30, 1e-12, 1e-7, 0.5)])
    labels = np.zeros(len(z), dtype=np.intp)
    truth = _truth(z, labels)
    got = _losses(z, labels)
    assert (truth[:3] < 2e-7).all()
    assert (got > 0).all()
    assert _ulps(got, truth).max() <= 2.0


def test_issue13_two_classes_where_float32_exp_errs_most() -> None:
    """[0, sigma] rows at the float32 ``exp``'s worst arguments: loss log1p(e^sigma)
    (mpmath). A float32 ``exp`` of the non-maximal terms passes its error (up to 2.03e-7,
    about 2.8 float32 ulps of the loss here) into the loss nearly whole."""
    mpmath = pytest.importorskip("mpmath")
    sigma = _worst_exp_arguments(400)
    z = np.stack([np.zeros_like(sigma), sigma], axis=1)
    for label in (0, 1):
        labels = np.full(len(z), label, dtype=np.intp)
        with mpmath.workprec(120):
            truth = np.asarray(
                [
                    float(mpmath.log1p(mpmath.exp(mpmath.mpf(float(s)) * (1 - 2 * label))))
                    for s in sigma
                ]
            )
        ulps = _ulps(_losses(z, labels), truth)
        assert ulps.max() <= 2.0, (ulps.max(), sigma[int(ulps.argmax())])


@pytest.mark.parametrize("ell", [0.4999, 0.9999])
def test_issue13_aligned_exp_errors_below_four(ell: float) -> None:
    """Copies of one of the float32 ``exp``'s worst arguments, s = e^ell in [1.5, 4)
    (the loss just below a power of two: the most ulps per error): a float32 ``exp``
    there would be 2 to 2.5 ulps off; the float64 redo is exact."""
    sigma = _worst_exp_arguments(1, -6.0, -2.5)[0]
    copies = math.floor((math.exp(ell) - 1) / math.exp(float(sigma)))
    z = np.r_[F32(0), np.full(copies, sigma, dtype=F32)][None, :]
    labels = np.zeros(1, dtype=np.intp)
    assert 1.5 < 1 + copies * math.exp(float(sigma)) < _numpy_kernels.EXACT_BELOW
    assert _ulps(_losses(z, labels), _truth(z, labels)).max() <= 2.0


def test_issue13_blocks_mixing_confident_and_corrected_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocks of two rows: a confident one (redone in float64) with one whose x - max
    all round one way in float32 (s about 5: the TwoSum correction moves the loss by 3
    ulps), in either order, and blocks of two of each kind."""
    classes = 20000
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 2 * classes)
    rng = np.random.default_rng(2)
    aligned = np.full(classes, 7.5 + 2.0**-21, dtype=F32)  # x - 16 rounds by 2^-21
    aligned[0] = 16.0
    confident = _row_with_sum(classes, 0.3, 16.0, rng)
    z = np.stack([confident, aligned, aligned, confident, aligned, aligned, confident, confident])
    labels = np.zeros(len(z), dtype=np.intp)
    ulps = _ulps(_losses(z, labels), _truth(z, labels))
    assert ulps.max() <= 2.0, ulps


def test_issue13_largest_vocabulary_confident_rows() -> None:
    """V = 256000: one dominant logit (the others 1e-30 of it in all, and s just below
    1.5) and a row of s just above 4, labels at the maximum and elsewhere."""
    classes = 256000
    rng = np.random.default_rng(256)
    z = np.stack([_row_with_sum(classes, rest, 7.3, rng) for rest in (1e-30, 0.5 - 1e-6, 3.0)])
    for labels in (np.zeros(3, dtype=np.intp), np.array([5, 17, 99])):
        ulps = _ulps(_losses(z, labels), _truth(z, labels))
        assert ulps.max() <= 2.0, ulps


def test_issue13_confident_mean_loss_error_at_most_torch_eager() -> None:
    """The mean loss on the benchmark's peaked logits (90 % of the rows confident)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    z = (rng.normal(size=(256, 4000)) * 3).astype(F32)
    labels = rng.integers(0, 4000, 256)
    confident = np.flatnonzero(rng.random(256) < 0.9)
    z[confident, labels[confident]] += 12 + 16 * rng.random(confident.size, F32)
    exact = float(np.mean(_truth(z, labels)))
    ours = float(crossent.softmax_cross_entropy(z, labels))
    eager = float(torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(labels)))
    assert abs(ours - exact) <= abs(eager - exact)


def test_issue13_confident_rows_peak_memory_under_a_tenth_of_the_logits() -> None:
    """32 MB of logits, 90 % of the rows confident (redone): the redo works block by
    block in the block's buffers, not on a float64 copy of the redone rows."""
    rows, classes = 1000, 8000
    rng = np.random.default_rng(3)
    z = rng.standard_normal((rows, classes), dtype=F32) * 3
    labels = rng.integers(0, classes, rows)
    confident = np.flatnonzero(rng.random(rows) < 0.9)
    z[confident, labels[confident]] += 12 + 16 * rng.random(confident.size, F32)
    crossent.softmax_cross_entropy(z[:2], labels[:2])  # warm imports and caches
    tracemalloc.start()
    try:
        crossent.softmax_cross_entropy(z, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * z.nbytes, (peak, z.nbytes)
