"""Peak memory and time of large float16/float32 calls computed in float64 by blocks of
rows (issue 13, ``losses/_widen.py``): the softmax cross-entropy with ``soft_cap`` and
integer labels, soft targets of float16 logits, focal loss and distillation (float32
student, float16 teacher), losses and gradients.

    python benchmarks/bench_blocked_softmax.py [--repeats 3] [--rounds 1]
        [--against PATH/TO/OTHER/src] [--rows 4096] [--target-rows 1024]
        [--classes 32000] [--only SUBSTRING] [--block-kib 256,2048]

Each (tree, case) runs in a fresh subprocess (``PYTHONPATH`` = the tree's ``src``): one
call under ``tracemalloc`` (its peak: NumPy's arrays are traced), then ``repeats`` timed
calls (``time.perf_counter``). Trees alternate case by case, and the cases round by round,
so that slow spells of the shared machine hit both alike; each line gives the minimum
and the median over all rounds' calls, and the load average is printed.
``--block-kib``: this tree once per block size (``_widen.BLOCK_BYTES``, KiB), to choose
one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

CASES = {
    "cap_loss": "softmax_cross_entropy(z, y, soft_cap=30.0)",
    "cap_grad": "softmax_cross_entropy_grad(z, y, soft_cap=30.0)",
    "targets16_loss": "softmax_cross_entropy_with_targets(z16, t16)",
    "targets16_grad": "softmax_cross_entropy_with_targets_grad(z16, t16)",
    "focal_loss": "softmax_focal_loss(z, y)",
    "focal_grad": "softmax_focal_loss_grad(z, y)",
    "distill_loss": "distillation_loss(z, teacher16, temperature=2.0)",
    "distill_grad": "distillation_loss_grad(z, teacher16, temperature=2.0)",
}

_CHILD = """
import json, sys, time, tracemalloc
import numpy as np
import crossent
from crossent.losses import _widen
rows, trows, classes, repeats = {rows}, {trows}, {classes}, {repeats}
if {block}:
    _widen.BLOCK_BYTES = {block}
rng = np.random.default_rng(0)
case = {case!r}
if not case.startswith("targets"):
    z = (rng.standard_normal((rows, classes), np.float32) * 4)
    y = rng.integers(0, classes, rows)
    if case.startswith("distill"):
        teacher16 = (z * 0.7 + 0.3).astype(np.float16)
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
print(json.dumps({{"peak": peak, "times": times}}))
"""


def _run(src: str, case: str, args: argparse.Namespace, block: int) -> dict[str, Any]:
    code = _CHILD.format(
        block=block,
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
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", default=None)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--target-rows", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--only", default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--block-kib", default=None)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"this": (here, 0)}
    if args.block_kib:
        trees = {f"{k}K": (here, int(k) << 10) for k in args.block_kib.split(",")}
    if args.against:
        trees["other"] = (args.against, 0)
    cases = [c for c in CASES if not args.only or args.only in c]
    peaks: dict[tuple[str, str], float] = {}
    times: dict[tuple[str, str], list[float]] = {}
    print(f"load average before: {os.getloadavg()}")
    for _ in range(args.rounds):
        for case in cases:
            for name, (src, block) in trees.items():
                r = _run(src, case, args, block)
                peaks[case, name] = r["peak"]
                times.setdefault((case, name), []).extend(r["times"])
                print(f"  {case} {name}: {[round(t, 3) for t in r['times']]}", flush=True)
    print(f"{'case':16} {'tree':6} {'peak MiB':>10} {'min s':>8} {'median s':>9}")
    for case in cases:
        for name in trees:
            t = times[case, name]
            peak = peaks[case, name] / 2**20
            print(f"{case:16} {name:6} {peak:10.1f} {min(t):8.3f} {statistics.median(t):9.3f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
