"""Issue 13 (branch binupd1): a 1-D binary ``P(y = 1)`` of 10^6 rows, several trees in ONE
process, call by call.

    cd benchmarks && PYTHONPATH=. python bench_binary_update_ab.py \\
        --against /tmp/binupd1_main/src /tmp/binupd1_s64/src --rounds 9

``EvaluationState(2).update``, ``calibration_error``, ``negative_log_likelihood`` and
``brier_score`` of float64 and float32 ``p`` (labels drawn from ``p``), each tree's
``crossent`` imported from a renamed copy (``_against.load_tree``), the trees' calls
interleaved, each tree first in a third of the rounds; CPU time (all threads).  Prints the
best and median ms of each case and tree and the ratios of the bests to this tree's.
``bench_binary_scores_ab.py --against`` runs each tree in a fresh process per round,
which a machine at load 15 left at 29 s of CPU in its first 6 minutes: this one
imports and compiles once a tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from _against import load_tree

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--against", nargs="+", default=[], help="other trees (src folders)")
parser.add_argument("--rounds", type=int, default=9)
parser.add_argument("--rows", type=int, default=1_000_000)
args = parser.parse_args()

here = str(Path(__file__).resolve().parent.parent / "src")
trees = {"this": here, **{f"tree{i + 1}": t for i, t in enumerate(args.against)}}
modules = {name: load_tree(path, f"bench_binupd_{name}") for name, path in trees.items()}
rng = np.random.default_rng(0)
p64 = rng.random(args.rows)
labels = (rng.random(args.rows) < p64).astype(np.intp)
p32 = p64.astype(np.float32)
KINDS = ("state", "ece", "nll", "brier")
cases = {}
for name, m in modules.items():
    for dtype, p in (("f64", p64), ("f32", p32)):
        cases[name, f"state {dtype}"] = lambda m=m, p=p: m.EvaluationState(2).update(p, labels)
        cases[name, f"ece {dtype}"] = lambda m=m, p=p: m.calibration_error(p, labels)
        cases[name, f"nll {dtype}"] = lambda m=m, p=p: m.negative_log_likelihood(p, labels)
        cases[name, f"brier {dtype}"] = lambda m=m, p=p: m.brier_score(p, labels)
for fn in cases.values():  # warm-up: compiling, caches
    fn()
times: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
names = list(trees)
print(f"load average before: {os.getloadavg()}", flush=True)
for r in range(args.rounds):
    order = names[r % len(names) :] + names[: r % len(names)]
    for case, fn in sorted(cases.items(), key=lambda item: order.index(item[0][0])):
        start = time.process_time()
        fn()
        times[case].append(time.process_time() - start)
print(f"load average after: {os.getloadavg()}")
for name, path in trees.items():
    print(f"{name}: {path}")
print(f"{'case':10s}" + "".join(f"  {n + ' best/median':>19s}" for n in names) + "  best vs this")
for case in sorted({c for _, c in cases}, key=lambda c: (c[-3:], KINDS.index(c.split()[0]))):
    best = {n: min(times[n, case]) * 1e3 for n in names}
    cells = "".join(
        f"  {best[n]:8.2f} /{statistics.median(times[n, case]) * 1e3:8.2f}" for n in names
    )
    print(f"{case:10s}{cells}  " + " ".join(f"{best[n] / best['this']:.2f}x" for n in names[1:]))
