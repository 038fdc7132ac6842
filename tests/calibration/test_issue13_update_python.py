"""Issue 13, the Python around ``EvaluationState.update``'s kernel: the kernel's settings
formed once per (request, dtype, classes, pending check) (``_summaries._kernel_settings``, an
``lru_cache``), and the blocks' outputs in one array whose rows hold every float sum
(``_row_kernels.BlocksTotals.running``, one running sum).

Pinned here: states of both dtypes, both closures, with and without the most surprising
rows, checked and unchecked (labels in range: an unchecked negative label is refused
since labelsafe, as a checked one), updated
one after the other in one process, twice each (the running sums from non-zero sums),
each bit for bit the block-by-block path (``_summaries.map_totals``, which forms its
settings afresh); a float64 row whose sum is off by 1e-5 still refused after a float32
update (whose looser limit would pass it);
confidences on the bins' edges (the closure in the settings); each block's outputs a
C-contiguous view of the one array (the kernel's one compiled signature), a cache line
and more apart, its first row left for the state's sums.

Mutants these fail on: the settings cached without the dtype (the float64 row passes),
without the request (the second closure's bins); the running sum's counts started from the
state's (counted twice).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.calibration.test_issue13_update_wall import _bits, _by_blocks

import crossent
from crossent.calibration import _inputs, _row_kernels

pytest.importorskip("numba")


def _probabilities(rows: int, dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(6, 0.5), size=rows)
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(dtype), rng.integers(0, 6, size=rows)


def test_issue13_update_python_settings_by_dtype_and_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 600)  # 10 blocks of 100 rows
    for dtype, closed, keep, validate in [
        (np.float32, "left", 4, True),
        (np.float64, "left", 4, True),
        (np.float32, "right", 0, False),
        (np.float64, "right", 7, False),
        (np.float32, "left", 4, False),
    ]:
        probs, labels = _probabilities(1000, dtype, seed=keep)
        probs[::50] = [0.5, 0.25, 0.25, 0.0, 0.0, 0.0]  # confidence on an edge of 4 bins
        states = [crossent.EvaluationState(6, bins=4, closed=closed, keep=keep) for _ in range(2)]
        for part in (slice(0, 400), slice(400, None)):  # (the second from non-zero sums)
            states[0].update(probs[part], labels[part], validate=validate)
            _by_blocks(states[1], probs[part], labels[part], validate)
        assert _bits(states[0]) == _bits(states[1]), (dtype, closed, keep, validate)


def test_issue13_update_python_float64_limit_after_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 600)
    probs, labels = _probabilities(1000, np.float32, seed=1)
    crossent.EvaluationState(6).update(probs, labels)  # float32's limit, about 1e-4
    wide = probs.astype(np.float64)
    wide /= wide.sum(axis=1, keepdims=True)
    wide[555, 0] += 1e-5  # within float32's tolerance, beyond float64's
    with pytest.raises(crossent.InputError, match="555"):
        crossent.EvaluationState(6).update(wide, labels)


def test_issue13_update_python_blocks_in_one_array() -> None:
    totals = _row_kernels.BlocksTotals.empty(3, 4, 5, 2)
    running = totals.running
    assert running.shape == (4, 2 * 4 + 5 + 4 * 5)  # (count, sum, hits, sum errors)
    for part in (totals.sums, totals.class_stats, totals.bin_stats, totals.found_p):
        assert np.shares_memory(part, running.base)
        assert all(part[block].flags.c_contiguous for block in range(3))
    assert running.strides[0] >= running.shape[1] * 8 + _row_kernels._LINE_BYTES
    totals.class_stats[1, 1, 2] = 7.0  # block 1's surprisal of class 2
    totals.bin_stats[2, 0, 4] = 9.0  # block 2's count in bin 4
    assert running[2, 4 + 2] == 7.0
    assert running[3, 2 * 4 + 5 + 4] == 9.0
    assert not running[0].any()
