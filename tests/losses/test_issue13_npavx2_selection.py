"""Issue 13, default install on AVX2 (``EXACT_ALL`` off): the peaked forward's lean steps.

``_numpy_kernels._set_places`` finds the significant entries of ``_direct_rest`` in
two ``nonzero`` steps over padded arrays (8-byte words, then their entries), the
float64 sums come from einsum's cast loop, and a thread whose rows have been mostly
confident takes blocks ``LARGER_BLOCKS`` times as large. Checked: the places against
``np.flatnonzero`` (sizes not a multiple of 8, stale True bytes past the mask, every
density), the blocks' sizes, and each row's ``ell`` against an independent float64
truth (``math.fsum`` of float64 terms, ``math.log1p``) on hard rows in the larger
blocks: confident rows of 32000 classes with their many small terms, near-ties, huge
spreads, V = 2, and the benchmark's peaked mixture.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions
from losses.test_issue13_avx2peak import _ell_truth  # the float64 truth of ell (fsum, log1p)

F32 = np.float32
#: the direct path's bound on ell's relative error (see _numpy_kernels._direct_rest)
RTOL = 2.13e-7 / 8


@pytest.fixture(autouse=True)
def avx2_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Numba, and the float32 passes of AVX2 machines (no ``EXACT_ALL``)."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", False)


@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 63, 64, 65, 1000, 64001])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.3, 1.0])
def test_issue13_set_places_match_flatnonzero(size: int, density: float) -> None:
    """Every True entry among the first ``size``, in order, none past them (the buffer
    holds stale True bytes there, as a float64 buffer's memory would)."""
    rng = np.random.default_rng(size)
    flags = np.ones(8 * size, dtype=np.bool_)  # stale: all True past the mask
    mask = rng.random(size) < density
    if density and not mask.any():
        mask[rng.integers(size)] = True
    flags[:size] = mask
    np.testing.assert_array_equal(_numpy_kernels._set_places(flags, size), np.flatnonzero(mask))


def _ell(z: np.ndarray, rows_per_block: int, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", rows_per_block * z.shape[1])
    monkeypatch.setattr(_numpy_kernels, "LARGER_SHARE", 1)  # larger blocks on few rows
    labels = np.zeros(len(z), dtype=np.intp)
    _, ell, _, _, suspect = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    assert not suspect.any()
    return ell


def _confident_rows(rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    """A trained model's rows: a standard normal x 3 bulk and one logit 22-34 above."""
    z = rng.standard_normal((rows, classes), dtype=F32) * 3
    z[np.arange(rows), rng.integers(0, classes, rows)] += F32(22) + 12 * rng.random(rows, F32)
    return z


def _block_sizes(monkeypatch: pytest.MonkeyPatch, elements: int) -> list[int]:
    """Blocks of ``elements`` logits (``BLOCK_ELEMENTS``); the list that each block's
    row count (``_float32_rows``' calls) is appended to."""
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", elements)
    sizes: list[int] = []
    float32_rows = _numpy_kernels._float32_rows

    def spy(rows: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        sizes.append(len(rows))
        return float32_rows(rows, *args, **kwargs)

    monkeypatch.setattr(_numpy_kernels, "_float32_rows", spy)
    return sizes


def test_issue13_confident_blocks_are_larger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confident rows go LARGER_BLOCKS times as many to a block; random ones do not."""
    rng = np.random.default_rng(1)
    classes, per_block = 512, 2
    monkeypatch.setattr(_numpy_kernels, "LARGER_SHARE", 1)  # larger blocks on few rows
    sizes = _block_sizes(monkeypatch, per_block * classes)
    labels = np.zeros(64, dtype=np.intp)
    _numpy_kernels.row_statistics(_confident_rows(rng, 64, classes), labels, StatisticsOptions())
    assert sizes == [per_block * _numpy_kernels.LARGER_BLOCKS] * (64 // 8)
    sizes.clear()
    random = rng.standard_normal((64, classes), dtype=F32)  # s about 50
    _numpy_kernels.row_statistics(random, labels, StatisticsOptions())
    assert max(sizes) == per_block * _numpy_kernels.LARGER_BLOCKS  # the first: share 1
    assert sizes[-8:] == [per_block] * 8  # then the usual blocks
    assert sum(sizes) == 64


def test_issue13_larger_blocks_need_many_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Larger blocks only where a thread has LARGER_SHARE of them: their buffers (12
    bytes per logit) then stay under 10 % of its logits; fewer rows keep the usual
    blocks and buffers."""
    rng = np.random.default_rng(2)
    classes, per_block = 512, 2
    sizes = _block_sizes(monkeypatch, per_block * classes)
    larger = per_block * _numpy_kernels.LARGER_BLOCKS
    share = _numpy_kernels.LARGER_SHARE
    assert 0.1 * 4 * share >= 12  # buffer bytes per logit of a block: the 10 % bound
    for rows, taken in ((share * larger - 1, per_block), (share * larger, larger)):
        sizes.clear()
        z = _confident_rows(rng, rows, classes)
        _numpy_kernels.row_statistics(z, np.zeros(rows, np.intp), StatisticsOptions())
        assert max(sizes) == taken, rows


def _hard_rows(rng: np.random.Generator, classes: int) -> np.ndarray:
    """Confident rows with hard features, in one block: ties, near-ties, spreads."""
    z = _confident_rows(rng, 12, classes)
    top = z.max(axis=1)
    z[1, 7] = top[1]  # a tie of the maximum (rho >= 1)
    z[2, 5] = np.nextafter(top[2], F32(-np.inf))  # a near-tie
    z[3] -= F32(60)  # maxima near -30 and below
    z[4] = F32(-80)
    z[4, 3] = F32(88.5)  # a huge spread: the others' terms vanish (rho ~ e^-168)
    z[5, :100] = top[5] - F32(9)  # the mass on a hundred entries at one argument
    z[6, ::2] = F32(-np.inf)  # -inf entries
    z[7] = np.where(z[7] == top[7], top[7], F32(-3) * F32(3.0) * np.abs(z[7]))  # a narrow tail
    z[8, 1 : classes // 2] = top[8] - F32(17.5)  # many equal tails carrying most of rho
    return z


@pytest.mark.parametrize("classes", [2, 3, 257, 32000])
def test_issue13_larger_blocks_keep_ell_exact(
    classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hard confident rows in the larger blocks: every ell within RTOL of the truth."""
    rng = np.random.default_rng(classes)
    if classes <= 3:
        d = np.linspace(0.0, 80.0, 400, dtype=F32)  # V = 2 and 3: e^-d beside 1
        z = np.zeros((d.size, classes), dtype=F32)
        z[:, 1] = -d
        z[:, 2:] = F32(-40)
    else:
        z = _hard_rows(rng, classes)
    truth = _ell_truth(z)
    ell = _ell(z, 1, monkeypatch)
    np.testing.assert_allclose(ell, truth, rtol=RTOL, atol=0)


def test_issue13_peaked_mixture_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's peaked logits (confident rows among others), larger blocks."""
    rng = np.random.default_rng(7)
    rows, classes = 48, 4096
    z = rng.standard_normal((rows, classes), dtype=F32) * 3
    labels = rng.integers(0, classes, rows)
    picked = np.flatnonzero(rng.random(rows) < 0.9)
    z[picked, labels[picked]] += F32(12) + 16 * rng.random(picked.size, F32)
    truth = _ell_truth(z)
    ell = _ell(z, 2, monkeypatch)
    # the confident rows: the direct path's bound; the others: _exp_sum32's log(s)
    confident = np.expm1(truth) < _numpy_kernels.EXACT_BELOW - 1.0
    assert 0.5 < confident.mean() < 1.0
    np.testing.assert_allclose(ell[confident], truth[confident], rtol=RTOL, atol=0)
    np.testing.assert_allclose(ell[~confident], truth[~confident], rtol=2e-7, atol=0)
