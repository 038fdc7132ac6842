"""Issue 13, evaluation: the block sums of the Brier and spherical scores and of the
entropy (``_row_kernels_numba.chunk_scores``) are formed in an order no compilation can
change: each chunk's scores row by row, summed as a balanced pairwise tree (zeros up to
the next power of two), the chunks added with Neumaier's compensation.  Before, a
reassociated loop let LLVM choose the order, and it chose differently in the process
that compiled the kernel and in every process that loaded it from Numba's cache (the
sums an ulp apart).  (The entropy of a chunk without a suspect row is now its terms
in 256 interleaved running sums, then their tree: test_issue13_folded_entropy.py.)
Pinned here bit for bit against a Python emulation of that order,
against ``math.fsum`` for accuracy, and across a cold and a warm cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _PART_ROWS
from numba_cache_harness import CacheRuns, register, section_output

pytest.importorskip("numba")


def _pairwise(values: list[float]) -> float:
    """The kernel's tree: zeros up to a power of two, then upper half onto lower."""
    size = 1
    while size < len(values):
        size *= 2
    level = np.array(values + [0.0] * (size - len(values)), dtype=np.float64)
    while level.size > 1:
        half = level.size // 2
        level = level[:half] + level[half:]  # elementwise, one rounding each
    return float(level[0]) if values else 0.0


def _neumaier(parts: list[float]) -> float:
    total, carry = 0.0, 0.0
    for part in parts:
        t = total + part
        if abs(total) >= abs(part):
            carry += (total - t) + part
        else:
            carry += (part - t) + total
        total = t
    return total + carry if abs(total) < math.inf else total


def _emulated(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Brier, spherical and entropy sums in the kernel's order, from its per-row numbers
    (``row_summaries``) and NumPy's elementwise float64 arithmetic."""
    _, p_label, others, _, _, entropy = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=True, limit=1.0
    )
    assert entropy is not None
    n, k = probs.shape
    # the entropy's parts of rows, and the other sums' chunks: a state's without the
    # entropy where the parts tile them, else the parts (issue 13, branch evalamd1)
    part = min(_PART_ROWS, max(1, _CHUNK_ENTRIES // k))
    chunk = min(_PART_ROWS, max(1, 32768 // k))
    chunk = chunk if chunk % part == 0 else part
    brier = others + np.square(1.0 - p_label)
    spherical = p_label / np.sqrt(others + p_label * p_label)
    out = []
    for scores in (brier, spherical):
        parts = [_pairwise(scores[c : c + chunk].tolist()) for c in range(0, n, chunk)]
        out.append(_neumaier(parts))
    # the entropy of a chunk without a suspect row (these rows: limit 1): its terms
    # (the kernel's entropy_terms) in 256 interleaved running sums, then their tree
    from crossent.calibration._row_kernels_numba import entropy_terms

    flat = probs.reshape(-1)
    parts = []
    for c in range(0, n, part):
        count = (min(c + part, n) - c) * k
        terms = np.zeros(-(-count // 256) * 256)
        entropy_terms(flat, c * k, count, terms)
        lanes = np.zeros(256)
        for stretch in terms.reshape(-1, 256):
            lanes = lanes + stretch  # elementwise, in order
        parts.append(0.0 - _pairwise(lanes.tolist()))
    out.append(_neumaier(parts))
    return out[0], out[1], out[2]


def _kernel(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    *_, (sums, _, _, _) = _row_kernels.block_totals(
        probs,
        labels,
        top=True,
        entropy=True,
        limit=1.0,
        spherical=True,
        squares=True,
        classes=True,
        edges=None,
        left=True,
        keep=0,
    )
    return sums


def _probs(rows: int, classes: int, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.4), size=rows)
    probs[rng.random(probs.shape) < 0.2] = 0.0  # zeros: 0 log 0 and p_y = 0
    probs[:, 0] += 1.0 - probs.sum(axis=1)
    return np.abs(probs).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("rows", "classes"),
    [(1, 1), (3, 2), (255, 3), (256, 10), (1000, 10), (777, 17), (300, 64), (200, 65), (9, 1000)],
)
def test_issue13_score_sums_are_the_pairwise_order(dtype: type, rows: int, classes: int) -> None:
    probs = _probs(rows, classes, dtype, seed=rows * classes)
    labels = np.random.default_rng(rows).integers(0, classes, size=rows)
    sums = _kernel(probs, labels)
    brier, spherical, entropy = _emulated(probs, labels)
    assert sums[1] == brier
    assert sums[2] == spherical
    assert sums[3] == entropy


@pytest.mark.parametrize("classes", [3, 10, 100])
def test_issue13_score_sums_within_an_ulp_or_two_of_fsum(classes: int) -> None:
    """The sums of many rows against ``math.fsum`` of the same per-row scores."""
    probs = _probs(20_000, classes, np.float32, seed=classes)
    labels = np.random.default_rng(classes).integers(0, classes, size=20_000)
    sums = _kernel(probs, labels)
    _, p_label, others, _, _, entropy = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=True, limit=1.0
    )
    assert entropy is not None
    exact = [
        math.fsum((others + np.square(1.0 - p_label)).tolist()),
        math.fsum((p_label / np.sqrt(others + p_label * p_label)).tolist()),
        math.fsum(np.maximum(entropy, 0.0).tolist()),
    ]
    for got, truth in zip(sums[1:4], exact, strict=True):
        assert abs(got - truth) <= 2 * math.ulp(truth)


_SCRIPT = """
import hashlib
import json

import numpy as np

import crossent
from crossent.calibration import _row_kernels
from crossent.calibration._binning import uniform_edges

out = {}
rng = np.random.default_rng(0)
for rows, classes in [(1000, 10), (500, 17), (300, 64), (200, 65), (2000, 33), (100, 1000)]:
    probs = rng.dirichlet(np.full(classes, 0.4), size=rows)
    probs[rng.random(probs.shape) < 0.3] = 0.0
    probs[:, 0] += 1.0 - probs.sum(axis=1)
    labels = rng.integers(0, classes, size=rows)
    for dtype in ("float32", "float64"):
        p = np.abs(probs).astype(dtype)
        _, found_p, stats = _row_kernels.block_totals(
            p, labels, top=True, entropy=True, limit=1.0, spherical=True, squares=True,
            classes=True, edges=uniform_edges(15), left=True, keep=10,
        )
        bits = hashlib.sha1(found_p.tobytes())
        for array in stats:
            bits.update(np.ascontiguousarray(array).tobytes())
        s = crossent.EvaluationState(classes).update(p, labels).compute()
        public = [s.nll, s.brier, s.spherical, s.mean_entropy, s.calibration.value]
        out[f"{rows}x{classes}{dtype}"] = [bits.hexdigest(), [x.hex() for x in public]]
# a 1-D binary column: its bins from p (_row_kernels.binary_bins, branch binupd1)
column = rng.random(3000)
column[:3] = [0.0, 0.5, 1.0]
s = crossent.EvaluationState(2).update(column, rng.integers(0, 2, size=3000)).compute()
out["binary"] = [x.hex() for x in (s.accuracy, s.calibration.value)]
print(json.dumps(out))
"""
register("totals_bits", _SCRIPT)


@pytest.mark.slow
def test_issue13_totals_bits_equal_with_a_cold_and_a_warm_cache(
    numba_cache_runs: CacheRuns,
) -> None:
    """The first process compiles ``totals`` (and saves it), the second loads it: the
    same bits (on main before this change, the Brier, spherical and entropy sums of 4
    of these 12 cases differed by an ulp). The processes are ``numba_cache_harness``'s."""
    cold, warm = (
        json.loads(out.strip().splitlines()[-1])
        for out in section_output(numba_cache_runs, "totals_bits")
    )
    assert cold == warm
