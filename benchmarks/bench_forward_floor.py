"""The softmax CE forward against the two-thread read of its logits, paired round by round.

    python benchmarks/bench_forward_floor.py [--rows 4096] [--classes 32000]
        [--rounds 31] [--no-numba] [--against PATH/TO/OTHER/src] [--torch]
        [--logits {random,peaked}]

Issue 13 asks for the float32 forward within 2.5x of the two-thread read floor
(``np.max`` over each half of the rows on its own thread, as ``bench_softmax_ce.py``
times it). On the 2-core KVM guest of RESULTS.md both the forward and the floor drift by
10-20 % from minute to minute, and ``bench_softmax_ce`` times each contender in its own
turns, so its ratio of two medians moved between 2.3x and 3.4x from run to run of the
same code. Here every round times the floor and the forward back to back (a 0.3 s
pause before each, three calls each, the first untimed: the protocol of
``_machine.interleaved_wall_medians``), and the ratio is taken within the round, so
that a slow minute slows both; the median and quartiles of the ``--rounds`` ratios are
printed, with the medians of the times. ``--against`` times a second copy of crossent
in the same rounds (imported as ``bench_evaluation`` does), its own ratio beside.
``--torch`` adds ``F.cross_entropy`` eager and under ``torch.compile`` (float32 tensors
sharing the logits' memory) to the same rounds, so that the forward's time against
``torch.compile``'s is also a per-round ratio (the last column: each contender's time
over crossent's, median of the rounds), not a ratio of two drifting medians.
``--logits peaked`` times ``bench_softmax_ce``'s peaked logits (most rows confident:
exp-sums close to 1) instead of its random ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import crossent
from bench_evaluation import against
from bench_softmax_ce import make_logits
from crossent.losses import _cpu_kernels

from _machine import cpu_name, vector_width, wall_turn


def timed_median(fn: Callable[[], object]) -> float:
    """The median wall time of one turn of ``fn`` (:func:`_machine.wall_turn`)."""
    return statistics.median(wall_turn(fn))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--no-numba", action="store_true", help="the NumPy kernels")
    parser.add_argument("--against", help="another crossent's src folder, timed alongside")
    parser.add_argument("--torch", action="store_true", help="torch eager and torch.compile too")
    parser.add_argument("--logits", choices=("random", "peaked"), default="random")
    args = parser.parse_args()
    if args.no_numba:
        _cpu_kernels.available = lambda: False  # type: ignore[method-assign]
    logits, labels = make_logits(args.rows, args.classes, args.logits)
    halves = (logits[: args.rows // 2], logits[args.rows // 2 :])
    pool = ThreadPoolExecutor(2)
    contenders: dict[str, Callable[[], object]] = {
        "crossent": lambda: crossent.softmax_cross_entropy(logits, labels)
    }
    if args.against:
        other = against(args.against)
        if args.no_numba:
            other.losses._cpu_kernels.available = lambda: False
        contenders["against"] = lambda: other.softmax_cross_entropy(logits, labels)
    if args.torch:
        contenders.update(torch_contenders(logits, labels))

    def floor() -> object:
        return list(pool.map(np.max, halves))

    for fn in (floor, *contenders.values()):  # warm-up: compilation, first pages
        fn()
    floors: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        floors.append(timed_median(floor))
        for name, fn in contenders.items():
            times[name].append(timed_median(fn))
    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; NumPy {np.__version__}; fused kernels: "
        f"{'Numba' if _cpu_kernels.available() else 'NumPy (no Numba)'}"
    )
    print(
        f"input: {args.rows} x {args.classes} float32 logits ({args.logits}), "
        f"{logits.nbytes / 2**20:.0f} MiB; {args.rounds} paired rounds"
    )
    print(
        "| contender | median s | forward / floor: lower quartile | median | upper quartile "
        "| time / crossent's (median of rounds) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| floor: np.max, two threads | {statistics.median(floors):.4f} | | | | |")
    for name, seconds in times.items():
        ratios = [t / f for t, f in zip(seconds, floors, strict=True)]
        low, mid, high = statistics.quantiles(ratios, n=4)
        median = statistics.median(seconds)
        own = statistics.median(t / c for t, c in zip(seconds, times["crossent"], strict=True))
        print(f"| {name} | {median:.4f} | {low:.2f}x | {mid:.2f}x | {high:.2f}x | {own:.3f} |")


def torch_contenders(logits: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], object]]:
    """``F.cross_entropy`` eager and under ``torch.compile`` on the same data, as
    ``bench_softmax_ce.py`` times them (``torch.from_numpy``: no copy)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    z, y = torch.from_numpy(logits), torch.from_numpy(labels)
    compiled = torch.compile(F.cross_entropy)
    return {
        "torch eager": lambda: F.cross_entropy(z, y),
        "torch.compile": lambda: compiled(z, y),
    }


if __name__ == "__main__":
    main()
