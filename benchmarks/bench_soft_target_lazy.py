"""Peak memory and time of large float32 soft-target softmax cross-entropy calls (issue 13:
the gradient's fused kernel without the generic float32 softmax pass before it; the loss
by the fused statistics and one row pass, ``_softmax._fused_target_loss``).

    python benchmarks/bench_soft_target_lazy.py --against /tmp/main_tree/src
        [--rows 4096] [--classes 32000] [--rounds 3] [--repeats 2] [--only grad] [--only loss]

Each (round, case, tree) runs in a fresh subprocess (``PYTHONPATH`` = the tree's ``src``)
on the same seeded C-contiguous float32 logits and targets: one warm-up call, one call
under ``tracemalloc`` (its peak above the inputs: NumPy's arrays are traced, the result
among them), then ``repeats`` timed calls (``time.perf_counter``, the minimum; and the minimum CPU
time of the process, ``time.process_time``, all threads: on a machine loaded past its
cores the wall time mostly measures the wait). Trees
alternate within each case and rounds repeat the whole sweep, so that slow spells of the
shared machine hit both alike; the medians over rounds are printed with the load average,
and whether both trees gave the same bits (a digest of the result).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CASES = {
    "grad": "softmax_cross_entropy_with_targets_grad(z, t)",
    "grad_novalidate": "softmax_cross_entropy_with_targets_grad(z, t, validate=False)",
    "grad_temperature": "softmax_cross_entropy_with_targets_grad(z, t, temperature=1.3)",
    "grad_options": (
        "softmax_cross_entropy_with_targets_grad(z, t, weight=w, label_smoothing=0.1, z_loss=1e-4)"
    ),
    "loss": "softmax_cross_entropy_with_targets(z, t)",
    "loss_novalidate": "softmax_cross_entropy_with_targets(z, t, validate=False)",
    "loss_none": "softmax_cross_entropy_with_targets(z, t, reduction='none')",
    "loss_options": (
        "softmax_cross_entropy_with_targets(z, t, weight=w, label_smoothing=0.1, z_loss=1e-4)"
    ),
}

_CHILD = """
import hashlib, json, time, tracemalloc
import numpy as np
import crossent
rows, classes, repeats = {rows}, {classes}, {repeats}
rng = np.random.default_rng(0)
z = rng.standard_normal((rows, classes), np.float32) * 2
t = rng.random((rows, classes), np.float32)
t /= t.sum(-1, keepdims=True, dtype=np.float64).astype(np.float32)
w = rng.uniform(0.5, 2.0, classes)
call = lambda: crossent.{expr}
call()  # compile, first touch
tracemalloc.start()
tracemalloc.reset_peak()
result = call()
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
digest = hashlib.sha256(np.ascontiguousarray(result).tobytes()).hexdigest()[:16]
del result
times, cpus = [], []
for _ in range(repeats):
    start, cpu = time.perf_counter(), time.process_time()
    call()
    times.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
print(json.dumps({{"peak": peak, "time": min(times), "cpu": min(cpus), "digest": digest}}))
"""


def _run(src: str, case: str, args: argparse.Namespace) -> dict[str, object]:
    code = _CHILD.format(
        rows=args.rows, classes=args.classes, repeats=args.repeats, expr=CASES[case]
    )
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", default=None, help="the other tree's src folder")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default=None, help="the cases whose name contains this")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"this": here} | ({"other": args.against} if args.against else {})
    cases = [case for case in CASES if not args.only or args.only in case]
    runs: dict[tuple[str, str], list[dict[str, object]]] = {}
    print(f"{args.rows} x {args.classes} float32; load average before: {os.getloadavg()}")
    for turn in range(args.rounds):
        for case in cases:
            names = list(trees) if turn % 2 == 0 else list(trees)[::-1]
            for name in names:
                runs.setdefault((case, name), []).append(_run(trees[name], case, args))
    print(f"{'case':16} {'tree':6} {'peak MiB':>10} {'median s':>9} {'cpu s':>7}  digest")
    for case in cases:
        for name in trees:
            got = runs[case, name]
            peak = statistics.median(float(r["peak"]) for r in got) / 2**20  # type: ignore[arg-type]
            time = statistics.median(float(r["time"]) for r in got)  # type: ignore[arg-type]
            cpu = statistics.median(float(r["cpu"]) for r in got)  # type: ignore[arg-type]
            print(f"{case:16} {name:6} {peak:10.1f} {time:9.3f} {cpu:7.3f}  {got[0]['digest']}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
