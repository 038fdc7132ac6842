"""Issue 13, evaluation speed: on an AVX-512 target, float32 rows of at most 16 classes
are read 8 at a time (``_row_kernels_numba.tile_group``, through ``tile_rows``): the 8
row tiles transposed so that lane r of a vector is row r, and ``tile_row``'s three
halving trees (the row's sum, its squares but the label's, the packed top-label key)
taken elementwise over the 16 columns in the same pairing (column j with column j + 8,
then + 4, + 2, + 1; columns past k +0.0 or the least key), so that every output keeps
its bits; the entries' check (an "or") by the least and greatest entry and a NaN sum.
The rows left over at a chunk's end, and the block's padded last rows, keep the one-row
tile.

Pinned here: ``tile_group`` bit for bit against ``tile_row`` on hard rows (every k from
1 to 16, labels at every position, negative ones included, zeros, -0.0, subnormals,
1.0, NaN and out-of-range entries in each lane, rows all negative or all -0.0); the
whole pass (``row_summaries``) bit for bit against the one-row tile for row counts that
are not multiples of 8 and chunk and block ends; on AVX-512 the grouped path is the one
compiled (a gather and the transposition's unpacks in ``tiled_rows``)."""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _TILE_CLASSES

from numba_target import numba_target_has

pytest.importorskip("numba")

import numba

from crossent.calibration import _row_kernels_numba as kernels

_LIMIT = 1e-4
_GROUP = 8


@numba.njit
def _by_groups(flat, k, labels, limit, with_squares, with_top, out):
    # tile_group over each group of 8 rows (flat padded: every tile in bounds);
    # the suspect rows of each group
    groups = labels.shape[0] // _GROUP
    suspect = np.zeros(groups, dtype=np.intp)
    outputs = (out[0], out[1], out[2], out[3], with_squares, with_top)
    for g in range(groups):
        suspect[g] = kernels.tile_group(flat, g * _GROUP * k, k, labels, g * _GROUP, outputs, limit)
    return suspect


@numba.njit
def _by_rows(flat, k, labels, limit, out):
    # tile_row of each row and tile_out's numbers from it; whether each row is suspect
    n = labels.shape[0]
    suspect = np.zeros(n, dtype=np.intp)
    for i in range(n):
        y = labels[i]
        y = y + k if y < 0 else y
        total, squares, key, bad = kernels.tile_row(flat, i * k, k, y)
        out[0][i] = np.float64(flat[i * k + y])
        out[1][i] = squares
        out[2][i] = kernels.bits_to_float64(key & ~np.int64(65535))
        out[3][i] = 65535 - (key & 65535)
        suspect[i] = 1 if bad | (abs(total - 1.0) > limit) else 0
    return suspect


def _outputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # p_label, others, confidence (filled with a marker NaN) and predicted (-7)
    marker = np.array([0x7FF8DEAD00000000], dtype=np.int64).view(np.float64)[0]
    return (np.full(n, marker), np.full(n, marker), np.full(n, marker), np.full(n, -7, np.intp))


def _hard_rows(k: int, seed: int) -> np.ndarray:
    """float32 rows of k entries: softmax rows of several temperatures, then rows with
    one odd entry in each lane (NaN, out of range, -0.0, a subnormal, 1.0), and rows all
    zero, all -0.0, all negative, all tied."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(40, k)) * rng.choice([0.3, 2.5, 30.0], size=(40, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    rows = [(probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)]
    base = np.full(k, np.float32(1.0 / k), dtype=np.float32)
    odd = [np.nan, -0.25, 1.5, np.inf, -np.inf, -0.0, 1e-45, 3e-39, 1.0, 0.0]
    for value in odd:
        for j in range(k):
            row = rng.permutation(base) if value == value else base.copy()
            row[j] = value
            rows.append(row[None, :].astype(np.float32))
    specials = [
        np.zeros(k),
        np.full(k, -0.0),
        -rng.uniform(0.1, 1.0, size=k),  # all negative: the top key among negatives
        np.full(k, -1e-45),
        np.where(np.arange(k) == k - 1, 1.0, -0.0),
        np.where(np.arange(k) == 0, np.nan, -0.5),
        np.full(k, np.float32(0.5)),  # ties, sum k / 2
    ]
    rows.append(np.array(specials, dtype=np.float32))
    return np.concatenate(rows)


def _labels(n: int, k: int, seed: int) -> np.ndarray:
    """Every label position in turn, negative ones (counting from the end) included."""
    rng = np.random.default_rng(seed)
    order = np.arange(-k, k)
    return np.resize(rng.permutation(order), n).astype(np.intp)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.int64) if a.dtype == np.float64 else a


def _same(actual: tuple, expected: tuple, rows: slice) -> None:
    for q, (a, e) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_array_equal(_bits(a[rows]), _bits(e[rows]), err_msg=f"output {q}")


@pytest.mark.parametrize("k", range(1, _TILE_CLASSES + 1))
def test_issue13_rows8_group_is_the_one_row_tile(k: int) -> None:
    probs = _hard_rows(k, seed=k)
    n = probs.shape[0]
    flat = np.concatenate([probs.reshape(-1), np.full(_TILE_CLASSES, 0.75, np.float32)])
    labels = _labels(n, k, seed=100 + k)
    expected = _outputs(n)
    per_row = _by_rows(flat, k, labels, _LIMIT, expected)
    grouped = n // _GROUP * _GROUP
    for with_squares in (False, True):
        for with_top in (False, True):
            actual = _outputs(n)
            suspect = _by_groups(flat, k, labels, _LIMIT, with_squares, with_top, actual)
            np.testing.assert_array_equal(
                suspect, per_row[:grouped].reshape(-1, _GROUP).sum(axis=1)
            )
            _same(actual[:1], expected[:1], slice(0, grouped))
            if with_squares:
                _same(actual[1:2], expected[1:2], slice(0, grouped))
            else:
                np.testing.assert_array_equal(actual[1][:grouped], 0.0)
            if with_top:
                _same(actual[2:], expected[2:], slice(0, grouped))
            else:  # not written
                assert (actual[3][:grouped] == -7).all()
            assert (actual[3][grouped:] == -7).all()  # nothing past the groups


@pytest.mark.parametrize("k", [2, 3, 7, 10, 16])
@pytest.mark.parametrize("extra", [0, 1, 5, 7, 8, 9, 15])
def test_issue13_rows8_whole_pass_is_the_one_row_tile(k: int, extra: int) -> None:
    """row_summaries (groups, left-over rows, the padded end) against tile_row."""
    hard = _hard_rows(k, seed=7 * k + extra)
    chunk = _CHUNK_ENTRIES // k  # row_summaries' chunk of rows
    n = chunk + extra + 3 if extra % 2 else hard.shape[0] + extra
    probs = np.resize(hard, (n, k))
    labels = _labels(n, k, seed=k * 31 + extra)
    flat = np.concatenate([probs.reshape(-1), np.zeros(_TILE_CLASSES, np.float32)])
    expected = _outputs(n)
    suspect = int(_by_rows(flat, k, labels, _LIMIT, expected).sum())
    for top in (False, True):
        for with_squares in (False, True):
            found, p, others, confidence, predicted, _ = _row_kernels.row_summaries(
                probs, labels, top=top, entropy=False, limit=_LIMIT, squares=with_squares
            )
            assert found == suspect
            _same((p,), expected[:1], slice(None))
            if with_squares:
                _same((others,), expected[1:2], slice(None))
            if top:
                _same((confidence, predicted), expected[2:], slice(None))


@pytest.mark.skipif(not numba_target_has("avx512f"), reason="needs Numba to target AVX-512")
def test_issue13_rows8_grouped_on_avx512() -> None:
    assert kernels.GROUPED_TILES

    @numba.njit
    def tiled(flat, labels, floats, pad, k):  # k not a constant: as in the kernels
        return kernels.tiled_rows(
            flat,
            labels,
            (0, k),
            (True, True, _LIMIT, True),
            (floats[0], floats[1], floats[2]),
            (np.empty(labels.shape[0], dtype=np.intp), pad),
        )

    probs = _hard_rows(10, seed=3)
    labels = _labels(probs.shape[0], 10, seed=3)
    floats = np.empty((3, probs.shape[0]))
    pad = np.zeros(2 * _TILE_CLASSES, dtype=np.float32)
    tiled(probs.reshape(-1), labels, floats, pad, 10)
    (asm,) = tiled.inspect_asm().values()
    assert "vgatherqps" in asm  # the labels' entries of a group
    assert "vunpcklps" in asm  # the transposition
    assert "vunpckhps" in asm


@pytest.mark.parametrize("k", [3, 10])
def test_issue13_rows8_strided_labels(k: int) -> None:
    """Labels as given (a strided view, not copied): each group's read one by one."""
    probs = np.resize(_hard_rows(k, seed=k), (203, k))
    labels = _labels(2 * probs.shape[0], k, seed=k)[::2]
    assert not labels.flags.c_contiguous
    strided = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=_LIMIT, squares=True
    )
    packed = _row_kernels.row_summaries(
        probs, np.ascontiguousarray(labels), top=True, entropy=False, limit=_LIMIT, squares=True
    )
    assert strided[0] == packed[0]
    for a, e in zip(strided[1:5], packed[1:5], strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(e))
