"""Issue 13, evaluation speed: float32 rows of at most 16 classes are read as one vector
tile of 16 entries each (``_row_kernels_numba.tile_row``, through ``tiled_rows``), the
lanes past the row's classes set aside, with no loop over the classes: the row's sum
and its sum of squares but the label's as a fixed halving tree (lane j with lane
j + 8, then + 4, + 2, + 1: the same bits at any vector width, in a fresh or a cached
kernel), the packed maximum of ``sums_and_top`` (the first maximum, in the order of
the float32 bits), and whether an entry is NaN or outside [0, 1].  The block's last
rows, whose tile would read past its end, are read from a padded copy.

Pinned here: every output bit for bit against a NumPy emulation of that order (and
the squares near ``math.fsum``), hard rows (NaN, negative, above 1, -0.0, inf, ties,
sums at the limit), negative labels, every k from 1 to 16 and row counts whose last
rows are padded in one chunk or across two; no read past the block (the block ends at
a page that faults when read); float64 rows and 17 classes keep the loops; on AVX-512
the tile is 512-bit vectors, and its rows and labels are prefetched."""

from __future__ import annotations

import ctypes
import functools
import math
import mmap

import numpy as np
import pytest

from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _TILE_CLASSES

from numba_target import numba_target_has

pytest.importorskip("numba")

from crossent.calibration import _row_kernels_numba as kernels

_LIMIT = 1e-4


def _halving(lanes: np.ndarray) -> np.ndarray:
    """Each row's lanes summed as the tile's tree: lane j plus lane j + half, halving."""
    while lanes.shape[1] > 1:
        half = lanes.shape[1] // 2
        lanes = lanes[:, :half] + lanes[:, half:]  # elementwise: one rounding each
    return lanes[:, 0]


def _emulated(probs: np.ndarray, labels: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(suspect rows, p_label, squares but the label's) in the tile's order."""
    n, k = probs.shape
    x = np.zeros((n, _TILE_CLASSES))
    x[:, :k] = probs.astype(np.float64)
    y = labels % k
    squares = x * x
    squares[np.arange(n), y] = 0.0
    total = _halving(x)
    with np.errstate(invalid="ignore"):
        bad = ((probs < 0) | (probs > 1) | np.isnan(probs)).any(axis=1)
        suspect = int(np.count_nonzero(bad | (np.abs(total - 1.0) > _LIMIT)))
    return suspect, x[np.arange(n), y], _halving(squares)


def _hard_rows(rows: int, classes: int, seed: int) -> np.ndarray:
    """float32 softmax rows of several temperatures, ties, and entries off the simplex."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * rng.choice([0.3, 2.5, 8.0], size=(rows, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    hard = [
        np.full(classes, np.float32(1.0 / classes)),  # all tied
        np.where(np.arange(classes) == classes // 2, 1.0, -0.0),  # one-hot among -0.0
        np.where(np.arange(classes) == classes - 1, np.nan, 0.5 / classes),  # NaN last
        np.where(np.arange(classes) == 0, -0.25, 1.25 / max(classes - 1, 1)),  # negative
        np.where(np.arange(classes) == classes - 1, 1.5, 0.0),  # above 1
        np.where(np.arange(classes) == 0, np.inf, 0.0),  # inf
        np.zeros(classes),  # sum 0
        probs[0] * np.float32(1.0 + 2e-4),  # sum off by about 2e-4
        probs[0] * np.float32(1.0 - 0.5e-4),  # within the limit
    ]
    for i, row in enumerate(hard[: rows // 2]):
        probs[(i * 7 + 1) % rows] = row  # spread, the last rows included for some rows
    if rows > 3:
        probs[-1] = hard[2]  # the block's last row (padded) has a NaN
        probs[-2] = hard[0]
    return probs


def _check(probs: np.ndarray, labels: np.ndarray) -> None:
    """Every output of the tiled pass, each combination of flags, against the oracles."""
    n = probs.shape[0]
    suspect, p_label, squares = _emulated(probs, labels)
    for top in (False, True):
        for with_squares in (False, True):
            found, p, others, confidence, predicted, _ = _row_kernels.row_summaries(
                probs, labels, top=top, entropy=False, limit=_LIMIT, squares=with_squares
            )
            assert found == suspect
            np.testing.assert_array_equal(p, p_label)
            np.testing.assert_array_equal(others, squares if with_squares else np.zeros(n))
            if top:
                # the first maximum in the order of the float32 bits as signed integers
                # (NaN above every number, -0.0 below 0.0 and negatives below both)
                first = np.argmax(probs.view(np.int32), axis=1)
                np.testing.assert_array_equal(predicted, first)
                np.testing.assert_array_equal(confidence, probs[np.arange(n), first].astype(float))


@pytest.mark.parametrize("classes", range(1, _TILE_CLASSES + 1))
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 17, 300])
def test_issue13_row_tiles_are_the_halving_tree(classes: int, rows: int) -> None:
    probs = _hard_rows(rows, classes, seed=classes * 1000 + rows)
    labels = np.random.default_rng(rows).integers(-classes, classes, size=rows)
    _check(probs, labels)


@pytest.mark.parametrize("classes", [1, 3, 7])
def test_issue13_row_tiles_padded_across_two_chunks(classes: int) -> None:
    """The padded last rows of the block start in one chunk and end in the next."""
    chunk = _CHUNK_ENTRIES // classes  # row_summaries' chunk of rows
    rows = chunk + 2
    probs = _hard_rows(rows, classes, seed=classes)
    labels = np.random.default_rng(classes).integers(-classes, classes, size=rows)
    assert (rows - 1) * classes + _TILE_CLASSES > chunk * classes  # padded rows in both
    _check(probs, labels)


def test_issue13_row_tiles_squares_near_fsum() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(400, 10)) * rng.choice([0.3, 2.5, 8.0], size=(400, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 10, size=400)
    _, _, others, *_ = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=_LIMIT, squares=True
    )
    for row, y, got in zip(probs.astype(np.float64), labels, others, strict=True):
        truth = math.fsum(float(v) ** 2 for j, v in enumerate(row) if j != y)
        assert abs(got - truth) <= 4 * np.finfo(float).eps * truth


@pytest.mark.parametrize("classes", [1, 10, 16])
def test_issue13_row_tiles_read_nothing_past_the_block(classes: int) -> None:
    """The block's last entry is the last of a readable page, the next page faults
    when read: a tile of the last rows read in place would crash the process."""
    page = mmap.PAGESIZE
    rows = 37
    size = rows * classes * 4
    buffer = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    anchor = ctypes.c_char.from_buffer(buffer)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    guard = ctypes.addressof(anchor) + page
    assert libc.mprotect(guard, page, 0) == 0  # PROT_NONE
    try:
        probs = np.frombuffer(buffer, dtype=np.float32, count=rows * classes, offset=page - size)
        probs = probs.reshape(rows, classes)
        probs[:] = _hard_rows(rows, classes, seed=classes)
        labels = np.arange(rows) % classes
        _check(probs, labels)
        sums = _row_kernels.block_totals(
            probs,
            labels,
            top=True,
            entropy=True,
            limit=_LIMIT,
            spherical=True,
            squares=True,
            classes=True,
            edges=np.linspace(0.0, 1.0, 16),
            left=False,
            keep=3,
        )
        assert sums[0] == _emulated(probs, labels)[0]
        del probs
    finally:
        assert libc.mprotect(guard, page, mmap.PROT_READ | mmap.PROT_WRITE) == 0
        del anchor
        buffer.close()


@pytest.mark.parametrize(("dtype", "classes"), [(np.float64, 10), (np.float32, 17)])
def test_issue13_float64_and_longer_rows_keep_the_loops(dtype: type, classes: int) -> None:
    """float64 rows and rows of more than 16 classes: the squares of ``row_sums`` and
    ``sums_and_top``, bit for bit (the loops, not the tile)."""
    probs = _hard_rows(300, classes, seed=classes).astype(dtype)
    labels = np.random.default_rng(classes).integers(-classes, classes, size=300)
    n = probs.shape[0]
    plain = np.empty((2, n))
    kernels.row_sums(probs, labels.astype(np.intp), True, False, _LIMIT, plain[0], plain[1])
    for top in (False, True):
        _, p_label, others, *_ = _row_kernels.row_summaries(
            probs, labels, top=top, entropy=False, limit=_LIMIT, squares=True
        )
        np.testing.assert_array_equal(others, plain[1])
        np.testing.assert_array_equal(p_label, plain[0])


@functools.cache  # (the two assembly tests read one compile: a new njit compiles again)
def _tiled_asm() -> str:
    import numba

    @numba.njit
    def tiled(flat: np.ndarray, labels: np.ndarray, floats: np.ndarray, pad: np.ndarray) -> int:
        return kernels.tiled_rows(
            flat,
            labels,
            (0, 10),
            (True, True, _LIMIT, True),
            (floats[0], floats[1], floats[2]),
            (np.empty(labels.shape[0], dtype=np.intp), pad),
        )

    probs = _hard_rows(64, 10, seed=1)[20:]
    labels = np.arange(probs.shape[0]) % 10
    floats = np.empty((3, probs.shape[0]))
    pad = np.zeros(2 * _TILE_CLASSES, dtype=np.float32)
    assert tiled(probs.reshape(-1), labels, floats, pad) == _emulated(probs, labels)[0]
    (asm,) = tiled.inspect_asm().values()
    return str(asm)


@pytest.mark.skipif(not numba_target_has("avx512f"), reason="needs Numba to target AVX-512")
def test_issue13_row_tiles_are_512_bit_vectors() -> None:
    asm = _tiled_asm()
    assert "vcvtps2pd" in asm  # 16 entries widened in two registers
    assert "zmm" in asm
    assert "vpmaxsq" in asm  # the packed keys' maximum, lanes at once


@pytest.mark.skipif(not numba_target_has("sse2"), reason="x86 only")
def test_issue13_row_tiles_prefetch_ahead() -> None:
    # the entries and the labels ahead: in the one-row loop, and on AVX-512 in the loop
    # over groups of rows too (each row's entries and the group's labels)
    grouped = kernels._GROUP_ROWS + 1 if kernels.GROUPED_TILES else 0
    assert _tiled_asm().count("prefetcht0") == 2 + grouped
