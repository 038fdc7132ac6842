"""Bits of ``EvaluationState``'s sums after ``update``, over random and hard cases, for an
A/B check of a change to the ``totals`` kernel that must keep every bit (issue 13).

    cd benchmarks
    PYTHONPATH=/tmp/old/src python check_update_bits.py [--seed 0]
    PYTHONPATH=../src python check_update_bits.py [--seed 0]

Prints the number of cases and one SHA-256 over every case's state: the five sums
(surprisal, Brier, spherical, entropy, hits), the per-class counts and surprisals, the
bins' counts, confidence sums, hits and the confidence sums' rounding errors
(evalstate1/2), the most surprising rows and the calibration error.  Two trees that
print the same line gave the same bits.  Cases: float32 and float64 rows of 2, 3, 10,
16, 17, 20, 64, 100 and 1000 classes, Dirichlet rows (concentrations 0.05, 1 and 30:
the low confidences below 1/15 reach bin 0, whose float32 sums keep TwoSum errors) in
15 and 40 bins; one-hot rows beside uniform rows (ties); rows not validated
(``validate=False``) with entries above 1 and a NaN, and low unnormalised rows followed
by rows with an entry of 1.5 (the kernel then keeps every bin's errors), and tiny rows
(entries from e^-85 to e^-20, all in bin 0, whose sums round); each with and
without the entropy, updated twice (the whole, then a third of it again).  A mutant
that drops bin 0's TwoSum error in the float32 loop of ``add_to_bins`` changes the
digest (2026-12-06, branch evalspeed1).  ``--binary``: 1-D binary columns instead
(:func:`binary_cases`; branch binupd1), another digest.  ``--stacked``: batches of
stacked blocks (:func:`stacked_digest`; branch upd14), a third.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from crossent import EvaluationState


def state_arrays(state: EvaluationState) -> list[np.ndarray]:
    """The state's sums (private attributes: the bits a change must keep)."""
    bins = state._bins
    out = [state._sums, state._class_count, state._class_surprisal, *bins.arrays()]
    if bins.error is not None:
        out.append(bins.error)
    out.append(np.array([v for pair in state._surprising for v in pair], dtype=float))
    return out


def cases(seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, int, dict[str, Any]]]:
    """``(probabilities, labels, bins, update's keywords)`` of every case."""
    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64):
        for k in (2, 3, 10, 16, 17, 20, 64, 100, 1000):
            for alpha in (0.05, 1.0, 30.0):
                n = max(50, 200_000 // k)
                p = rng.dirichlet(np.full(k, alpha), size=n)
                p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
                y = rng.integers(0, k, n)
                for bins in (15, 40):
                    yield p, y, bins, {}
            n = 3000
            p = np.zeros((n, k), dtype)
            p[np.arange(n), rng.integers(0, k, n)] = 1
            p[::3] = dtype(1.0 / k)
            y = rng.integers(0, k, n)
            yield p, y, 15, {}
            q = rng.uniform(0, 2, (n, k)).astype(dtype)
            q[17, 0] = np.nan
            yield q, y, 15, {"validate": False}
            low = (rng.uniform(0, 1, (n, k)) / k).astype(dtype)
            low[2500:, 0] = 1.5
            yield low, y, 15, {"validate": False}
            # tiny rows (e^-85 to e^-20): every confidence in bin 0, whose sums round
            tiny = np.exp(rng.uniform(-85.0, -20.0, (n, k))).astype(dtype)
            yield tiny, y, 15, {"validate": False}


_HARD = [0.0, 1e-300, 1e-20, 2.0**-54, 1e-3, 0.3, 0.5 - 2.0**-53, 0.5, 0.6, 14 / 15, 1.0]


def binary_cases(seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, int, dict[str, Any]]]:
    """``--binary``: 1-D binary columns ``p = P(y = 1)`` (branch binupd1), float32 and
    float64, several blocks of rows: uniform ``p``, ``p`` from 1e-30 to 1, the hard
    values above with both labels, and rows not validated (NaN, 1.5, -0.2, inf); bins
    15 and 40, closed left and right (``closed`` in the keywords: the state's)."""
    rng = np.random.default_rng(seed)
    n = 100_000
    for dtype in (np.float32, np.float64):
        uniform = rng.random(n)
        tiny = 10.0 ** rng.uniform(-30, 0, n)
        hard = np.repeat(np.array(_HARD * 300), 2)
        hard_labels = np.tile([0, 1], hard.size // 2)
        for p, y in (
            (uniform, (rng.random(n) < uniform).astype(np.intp)),
            (tiny, rng.integers(0, 2, n)),
            (hard, hard_labels),
        ):
            for bins, closed in ((15, "left"), (40, "right")):
                yield p.astype(dtype), y, bins, {"closed": closed}
        odd = rng.random(n)
        odd[[5, 700, 40_000]] = [np.nan, 1.5, -0.2]
        odd[41_000] = np.inf
        yield odd.astype(dtype), rng.integers(0, 2, n), 15, {"validate": False}


def stacked_digest(seed: int) -> tuple[int, str]:
    """``--stacked``: batches of more than ``_inputs._BLOCK_ELEMENTS`` entries, which
    ``update`` reads as stacked blocks on the caller's thread and the pool's
    (``_summaries._stacked_totals``, ``EvaluationState._add_blocks``; none of the cases
    above has that many): Dirichlet rows of 3, 10, 100 and 1000 classes, float32 and
    float64, a batch, then the batch not validated with NaN rows and a label of
    probability 0 (an infinite surprisal), then half of it again from row 5; ``keep`` 0,
    3, 10 and 50, with and without the entropy, 15 and 40 bins (branch upd14)."""
    rng = np.random.default_rng(seed + 5)
    total, count = hashlib.sha256(), 0
    for dtype in (np.float32, np.float64):
        for k, n in ((10, 300_000), (3, 800_000), (100, 30_000), (1000, 3000)):
            p = rng.dirichlet(np.full(k, 0.3), size=n).astype(dtype)
            y = rng.integers(0, k, n)
            q = p.copy()
            q[[7, 40_000 % n, n - 3]] = np.nan
            q[n // 2, 0] = 0.0
            y2 = y.copy()
            y2[n // 2] = 0
            for keep in (0, 3, 10, 50):
                for entropy in (True, False):
                    for bins in (15, 40):
                        state = EvaluationState(k, bins=bins, keep=keep, entropy=entropy)
                        state.update(p, y)
                        state.update(q, y2, validate=False)
                        state.update(p[: n // 2], y[: n // 2], first_row=5)
                        for array in state_arrays(state):
                            total.update(np.ascontiguousarray(array).tobytes())
                        total.update(repr(state._surprising).encode())
                        total.update(np.float64(state.calibration().value).tobytes())
                        count += 1
    return count, total.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--binary", action="store_true", help="the 1-D binary cases only")
    parser.add_argument("--stacked", action="store_true", help="batches of stacked blocks")
    args = parser.parse_args()
    if args.stacked:
        print(*stacked_digest(args.seed))
        return
    total, count = hashlib.sha256(), 0
    for p, y, bins, keywords in (binary_cases if args.binary else cases)(args.seed):
        closed = keywords.pop("closed", "left")
        for entropy in (True, False):
            classes = 2 if p.ndim == 1 else p.shape[1]
            state = EvaluationState(classes, bins=bins, entropy=entropy, closed=closed)
            state.update(p, y, **keywords)
            third = len(p) // 3
            state.update(p[:third], y[:third], **keywords)
            for array in state_arrays(state):
                total.update(np.ascontiguousarray(array).tobytes())
            total.update(np.float64(state.calibration().value).tobytes())
            count += 1
    print(count, total.hexdigest())


if __name__ == "__main__":
    main()
