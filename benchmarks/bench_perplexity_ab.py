"""Issue 13 (branches ppl1, pplx2): the cost of ``perplexity``'s double-double entropy, A/B.

    git -C /work/main archive main src | tar -x -C /tmp/ppl1_main
    PYTHONPATH=$PWD/src python benchmarks/bench_perplexity_ab.py --before /tmp/ppl1_main

Both trees in one process (``_against.load_tree``), calls interleaved: ``perplexity``
of 10^5 x 1000 Dirichlet rows in float64 and float32 (one call a round), and of one
row of 10 classes with and without validation, and against ``q`` (the median of 2000
calls a round); since pplx2 also of logits (normal, scale 3), log-probabilities and
``q`` logits of the same size, of Student-t (3) logits, scale 3, of 32000 classes (a
language model's shape: most entries far below the maximum) and of a row of 10 logits.
Prints the process CPU time of each case per tree (minimum and median
over the rounds), their ratio (this tree over ``--before``) and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import load_tree

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--before", required=True, help="the tree (or src) to compare with")
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--rows", type=int, default=100_000)
args = parser.parse_args()

trees = {
    "now": load_tree(os.path.join(os.path.dirname(__file__), "..", "src"), "crossent_now"),
    "before": load_tree(args.before, "crossent_before"),
}
rng = np.random.default_rng(0)
big = rng.dirichlet(np.ones(1000), size=args.rows)
big32 = big.astype(np.float32)
row = rng.dirichlet(np.ones(10))
row_q = rng.dirichlet(np.ones(10))
logits = rng.normal(size=(args.rows, 1000)) * 3.0
log_probs = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
lm = rng.standard_t(3, size=(max(1, args.rows // 60), 32000)) * 3.0
row_logits = rng.normal(size=10)


def _cases(pkg: Any) -> dict[str, tuple[Callable[[], object], int]]:
    pp = pkg.perplexity
    return {
        f"{args.rows}x1000 float64": (lambda: pp(big), 1),
        f"{args.rows}x1000 float32": (lambda: pp(big32), 1),
        "row of 10": (lambda: pp(row), 2000),
        "row of 10, validate=False": (lambda: pp(row, validate=False), 2000),
        "row of 10 against q": (lambda: pp(row, row_q), 2000),
        f"{args.rows}x1000 logits": (lambda: pp(logits, p_form="logits"), 1),
        f"{args.rows}x1000 log_probs": (lambda: pp(log_probs, p_form="log_probs"), 1),
        f"{args.rows}x1000 q logits": (lambda: pp(big, logits, q_form="logits"), 1),
        f"{lm.shape[0]}x32000 t3 logits": (lambda: pp(lm, p_form="logits"), 1),
        "row of 10 logits": (lambda: pp(row_logits, p_form="logits"), 2000),
    }


cases = {name: _cases(pkg) for name, pkg in trees.items()}
for per_tree in cases.values():  # warm-up: compiling, caches
    for call, _ in per_tree.values():
        call()
times: dict[tuple[str, str], list[float]] = {}
print(f"load before: {os.getloadavg()}")
for _ in range(args.rounds):
    for case in cases["now"]:
        for tree, per_tree in cases.items():
            call, count = per_tree[case]
            start = time.process_time()
            for _ in range(count):
                call()
            times.setdefault((case, tree), []).append((time.process_time() - start) / count)
print(f"load after: {os.getloadavg()}")
print(f"{'case':28s} {'now min/median':>22s} {'before min/median':>22s}  ratio (min)")
for case in cases["now"]:
    now, before = times[(case, "now")], times[(case, "before")]
    unit, scale = ("ms", 1e3) if min(before) > 1e-3 else ("us", 1e6)
    print(
        f"{case:28s} {min(now) * scale:9.2f} / {statistics.median(now) * scale:7.2f} {unit}"
        f" {min(before) * scale:9.2f} / {statistics.median(before) * scale:7.2f} {unit}"
        f"  {min(now) / min(before):5.2f}"
    )
