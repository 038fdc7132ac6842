"""Issue 13, evaluation speed: ``EvaluationState.update``'s kernel forms each row's
spherical score :math:`p_y / \\sqrt{s + p_y^2}` (:math:`s` the squares but the label's)
in the row pass: on AVX-512 inside ``tile_group`` (whose loop leaves the divider idle, so
the square root and the division overlap the tiles' shuffles), for the rows no group
took and for the looped rows by ``spherical_scores``; ``chunk_scores`` then only sums
them.  The score is the same expression with the same roundings (no contraction into
an FMA, no reciprocal), so every sum keeps its bits.

Pinned here: the grouped tiles' scores bit for bit against NumPy's expression of the
same call's ``p_label`` and ``others`` on hard rows (every k from 1 to 16, both tile
widths, with and without the squares and the top label, NaN and out-of-range entries,
zeros, -0.0, subnormals); the block sums of the spherical score bit for bit against
the kernel's pairwise order of NumPy's scores (row counts that are not multiples of 8:
rows outside the groups; float32 and float64, short and long rows: the looped path),
whatever other sums are asked for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _PART_ROWS, _TILE_CLASSES

from numba_target import numba_target_has

pytest.importorskip("numba")

import numba

from crossent.calibration import _row_kernels_numba as kernels

_GROUP = 8


def _hard_rows(k: int, seed: int) -> np.ndarray:
    """float32 softmax rows of three temperatures, then rows with one odd entry in each
    lane in turn (NaN, out of range, -0.0, subnormals, 0, 1), 8 rows a kind."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(48, k)) * rng.choice([0.3, 2.5, 30.0], size=(48, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    rows = [probs / probs.sum(axis=1, keepdims=True)]
    for value in (np.nan, -0.25, 1.5, -0.0, 1e-45, 3e-39, 0.0, 1.0):
        block = np.full((_GROUP, k), 1.0 / k)
        block[np.arange(_GROUP), np.arange(_GROUP) % k] = value
        rows.append(block)
    return np.concatenate(rows).astype(np.float32)


def _spherical(p_label: np.ndarray, others: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return p_label / np.sqrt(others + p_label * p_label)


@numba.njit
def _groups(flat, k, labels, with_squares, with_top, out, narrow):
    # tile_group (or tile_group_narrow) over each group of 8 rows, with the scores asked
    outputs = (out[0], out[1], out[2], out[3], out[4], with_squares, with_top, True)
    for g in range(labels.shape[0] // 8):
        if narrow:
            kernels.tile_group_narrow(flat, g * 8 * k, k, labels, g * 8, outputs, 1e-4)
        else:
            kernels.tile_group(flat, g * 8 * k, k, labels, g * 8, outputs, 1e-4)


@pytest.mark.skipif(not numba_target_has("avx512f"), reason="needs Numba to target AVX-512")
@pytest.mark.parametrize("k", range(1, _TILE_CLASSES + 1))
def test_issue13_group_scores_are_the_expression(k: int) -> None:
    probs = _hard_rows(k, seed=k)
    n = probs.shape[0]
    flat = np.concatenate([probs.reshape(-1), np.full(_TILE_CLASSES, 0.75, np.float32)])
    labels = np.resize(np.arange(-k, k), n).astype(np.intp)
    for narrow in (False, True) if k <= 12 else (False,):
        for with_squares in (False, True):
            for with_top in (False, True):
                out = tuple(np.full(n, -7.0) for _ in range(3))
                out += (np.zeros(n, dtype=np.intp), np.full(n, -7.0))
                _groups(flat, k, labels, with_squares, with_top, out, narrow)
                want = _spherical(out[0], out[1])
                np.testing.assert_array_equal(out[4].view(np.int64), want.view(np.int64))
                if not with_squares:
                    assert not out[1].any()  # others 0: the score p / |p|


def _pairwise(values: np.ndarray) -> float:
    size = 1
    while size < values.size:
        size *= 2
    level = np.concatenate([values, np.zeros(size - values.size)])
    while level.size > 1:
        level = level[: level.size // 2] + level[level.size // 2 :]
    return float(level[0]) if values.size else 0.0


def _neumaier(parts: list[float]) -> float:
    total, carry = 0.0, 0.0
    for part in parts:
        t = total + part
        carry += ((total - t) + part) if abs(total) >= abs(part) else ((part - t) + total)
        total = t
    return total + carry if abs(total) < math.inf else total


def _score_sums(
    probs: np.ndarray, labels: np.ndarray, *, top: bool, entropy: bool, surprisal: bool = True
) -> np.ndarray:
    """``block_totals``' float sums (index 2: the spherical scores') with the spherical
    scores and squares on, no per-class sums, bins or kept rows (``surprisal``: as
    ``block_totals``, on by default)."""
    *_, (sums, _, _, _) = _row_kernels.block_totals(
        probs,
        labels,
        top=top,
        entropy=entropy,
        limit=1.0,
        spherical=True,
        squares=True,
        classes=False,
        edges=None,
        left=True,
        keep=0,
        surprisal=surprisal,
    )
    return sums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("rows", "k"), [(203, 1), (333, 5), (1001, 10), (203, 13), (77, 16), (99, 17)]
)
def test_issue13_spherical_sums_keep_their_bits(dtype: type, rows: int, k: int) -> None:
    rng = np.random.default_rng(rows + k)
    probs = rng.dirichlet(np.full(k, 0.5), size=rows)
    probs[rng.random(probs.shape) < 0.1] = 0.0  # p_y = 0 on some rows: score 0
    probs[::7, 0] = 1e-42  # subnormal in float32
    probs = np.maximum(probs, 0.0).astype(dtype)
    probs[np.all(probs == 0, axis=1), 0] = 1  # no row of zeros (0 / 0)
    labels = rng.integers(-k, k, size=rows)
    _, p_label, others, *_ = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=False, limit=1.0
    )
    scores = _spherical(p_label, others)
    for entropy in (False, True):
        for top, brier in ((False, False), (True, False), (True, True)):
            sums = _score_sums(probs, labels, top=top, entropy=entropy, surprisal=brier)
            chunk = min(_PART_ROWS, max(1, (_CHUNK_ENTRIES if entropy else 32768) // k))
            want = _neumaier([_pairwise(scores[c : c + chunk]) for c in range(0, rows, chunk)])
            assert sums[2] == want, (entropy, top, brier)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 10, 17])
def test_issue13_one_row_block_sum_is_its_score(dtype: type, k: int) -> None:
    """A block of one row sums its score alone: each row's score, bit for bit (a sum of
    many would round a last-bit change away), through the tile or the looped rows."""
    rng = np.random.default_rng(k)
    probs = rng.dirichlet(np.full(k, 0.5), size=40).astype(dtype)
    labels = rng.integers(0, k, size=40)
    _, p_label, others, *_ = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=False, limit=1.0
    )
    want = _spherical(p_label, others)
    for i in range(40):
        sums = _score_sums(probs[i : i + 1], labels[i : i + 1], top=True, entropy=True)
        assert sums[2] == want[i], i


def test_issue13_spherical_scores_are_the_expression() -> None:
    """``spherical_scores`` (the looped rows' and the rows no group took): NumPy's
    expression bit for bit on float64 values (no FMA, no reciprocal)."""
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.random(997), [0.0, -0.0, 1e-300, 5e-324, np.nan, np.inf]])
    others = np.concatenate([rng.random(997), [0.0, 0.0, 1e-300, 0.0, 0.5, 0.5]])
    scores = np.empty_like(p)
    kernels.spherical_scores(p, others, scores)
    np.testing.assert_array_equal(scores.view(np.int64), _spherical(p, others).view(np.int64))


def test_issue13_spherical_scores_has_its_own_flags() -> None:
    """Called out of line from the looped rows (``_FLAGS``, with "contract" and "arcp"):
    with no ``fastmath`` of its own it would take theirs (an FMA, a reciprocal)."""
    assert kernels.spherical_scores.targetoptions["fastmath"] == {"nsz"}
