"""Peak memory and time of large float16/float32 softmax cross-entropy calls computed in
float64 (issue 13, ``losses/_widen.py``): ``soft_cap`` with integer labels, soft targets
of float16 logits.

    python benchmarks/bench_blocked_softmax.py [--repeats 3] [--against PATH/TO/OTHER/src]
        [--rows 4096] [--target-rows 1024] [--classes 32000]

Each (tree, case) runs in a fresh subprocess (``PYTHONPATH`` = the tree's ``src``): one
call under ``tracemalloc`` (its peak: NumPy's arrays are traced), then ``repeats`` timed
calls (``time.perf_counter``; the minimum). Trees alternate case by case, so that slow
spells of the shared machine hit both alike; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CASES = {
    "cap_loss": "softmax_cross_entropy(z, y, soft_cap=30.0)",
    "cap_grad": "softmax_cross_entropy_grad(z, y, soft_cap=30.0)",
    "targets16_loss": "softmax_cross_entropy_with_targets(z16, t16)",
    "targets16_grad": "softmax_cross_entropy_with_targets_grad(z16, t16)",
}

_CHILD = """
import json, sys, time, tracemalloc
import numpy as np
import crossent
rows, trows, classes, repeats = {rows}, {trows}, {classes}, {repeats}
rng = np.random.default_rng(0)
case = {case!r}
if case.startswith("cap"):
    z = (rng.standard_normal((rows, classes), np.float32) * 4)
    y = rng.integers(0, classes, rows)
else:
    z16 = (rng.standard_normal((trows, classes), np.float32) * 4).astype(np.float16)
    t = rng.random((trows, classes), np.float32)
    t16 = (t / t.sum(-1, keepdims=True)).astype(np.float16)
    del t
call = lambda: crossent.{expr}
call()  # compile, first touch
tracemalloc.start()
tracemalloc.reset_peak()
result = call()
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
del result
times = []
for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(json.dumps({{"peak": peak, "time": min(times)}}))
"""


def _run(src: str, case: str, args: argparse.Namespace) -> dict[str, float]:
    code = _CHILD.format(
        rows=args.rows,
        trows=args.target_rows,
        classes=args.classes,
        repeats=args.repeats,
        case=case,
        expr=CASES[case],
    )
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", default=None)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--target-rows", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"this": here} | ({"other": args.against} if args.against else {})
    print(f"load average before: {os.getloadavg()}")
    print(f"{'case':16} {'tree':6} {'peak MiB':>10} {'min s':>8}")
    for case in CASES:
        if args.only and args.only not in case:
            continue
        for name, src in trees.items():
            r = _run(src, case, args)
            print(f"{case:16} {name:6} {r['peak'] / 2**20:10.1f} {r['time']:8.3f}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
