"""The smooth calibration error's bandwidth search, tree against tree: CPU and bits.

    python benchmarks/bench_smooth_search.py [--sets 40] [--rounds 2] [--against TREE ...]

For each tree (``PYTHONPATH`` = that tree's ``src``; this one first), each round, a fresh
process computes ``crossent.smooth_calibration_error`` of ``--sets`` seeded data sets
(5-3000 rows of 2-5 classes, Dirichlet probabilities; every fifth with a fixed bandwidth),
each twice in a row, as the report tests do (a report, then one of the same predictions
written another way). It prints the CPU time (``time.process_time``) of the first calls
and of the second calls and a SHA-256 of every
value, bandwidth, accuracy and density curve, which must be the same for every tree.
On a shared machine compare CPU times only, and only within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _child(sets: int) -> None:
    import crossent

    digest = hashlib.sha256()
    crossent.smooth_calibration_error(np.array([[0.6, 0.4]]), np.array([0]))  # imports
    times = [0.0, 0.0]
    rng = np.random.default_rng(5)
    for i in range(sets):
        n = int(rng.integers(5, 3000))
        classes = int(rng.integers(2, 6))
        probs = rng.dirichlet(np.full(classes, 0.3 + i % 4), size=n)
        labels = rng.integers(0, classes, n)
        options = {} if i % 5 else {"bandwidth": float(rng.uniform(0.001, 1))}
        for repeat in range(2):
            start = time.process_time()
            result = crossent.smooth_calibration_error(probs, labels, **options)
            times[repeat] += time.process_time() - start
            for number in (result.value, result.bandwidth):
                digest.update(np.float64(number).tobytes())
            digest.update(result.accuracy.tobytes())
            digest.update(result.density.tobytes())
    print(json.dumps({"first": times[0], "again": times[1], "sha256": digest.hexdigest()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--against", nargs="*", default=[], help="other trees to time")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.sets)
        return
    here = Path(__file__).resolve().parents[1]
    trees = [here, *(Path(tree).resolve() for tree in args.against)]
    rows: dict[Path, list[dict[str, float | str]]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=str(tree / "src"))
            command = [sys.executable, __file__, "--child", "--sets", str(args.sets)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows[tree].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.sets} data sets, each twice in a row; CPU seconds, {args.rounds} rounds")
    for tree, got in rows.items():
        first = ", ".join(f"{float(r['first']):.3f}" for r in got)
        again = ", ".join(f"{float(r['again']):.3f}" for r in got)
        digest = str(got[0]["sha256"])[:16]
        print(f"{tree}: first calls {first}; second calls {again}; sha256 {digest}")
    digests = {str(r["sha256"]) for got in rows.values() for r in got}
    print("bits: the same in every tree" if len(digests) == 1 else "bits: DIFFER")


if __name__ == "__main__":
    main()
