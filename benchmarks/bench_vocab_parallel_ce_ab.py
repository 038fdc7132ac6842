"""``vocab_parallel_cross_entropy`` on one gloo rank, this tree against another, interleaved.

    python benchmarks/bench_vocab_parallel_ce_ab.py --against PATH/TO/OTHER/src
        [--rows 4096] [--classes 32000] [--repeats 5]

Forward and forward+backward of float32 logits (standard normal x 3) and class ids on a
one-process gloo group, each tree imported in its own subprocess turn by turn (A B A B
...), the thread's CPU time of each call; min and median over ``--repeats``. Written for
the float64 exponentials that the CPU forward takes since 2026-12-04 (their cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _machine import cpu_name, vector_width

_CHILD = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import torch
import torch.distributed as dist
torch.set_num_threads(1)
import crossent.torch as ct
rows, classes = int(sys.argv[2]), int(sys.argv[3])
folder = tempfile.mkdtemp()
dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=0, world_size=1)
g = torch.Generator().manual_seed(0)
z = torch.randn(rows, classes, generator=g) * 3
y = torch.randint(0, classes, (rows,), generator=g)
ct.vocab_parallel_cross_entropy(z, y)  # warm-up
t0 = time.thread_time()
with torch.no_grad():
    ct.vocab_parallel_cross_entropy(z, y)
forward = time.thread_time() - t0
x = z.clone().requires_grad_(True)
t0 = time.thread_time()
ct.vocab_parallel_cross_entropy(x, y).backward()
both = time.thread_time() - t0
dist.destroy_process_group()
print(json.dumps({"forward": forward, "both": both}))
"""


def _turn(src: str, rows: int, classes: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, src, str(rows), str(classes)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    trees = {"this tree": here, "other": args.against}
    times: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, src in trees.items():
            times[name].append(_turn(src, args.rows, args.classes))
    print(f"machine: {cpu_name()}, {vector_width()}, load {os.getloadavg()[0]:.2f}")
    print(f"{args.rows} x {args.classes} float32, one gloo rank, one thread, CPU s")
    print("| tree | forward min | forward median | fwd+bwd min | fwd+bwd median |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in times.items():
        f = [r["forward"] for r in runs]
        b = [r["both"] for r in runs]
        print(
            f"| {name} | {min(f):.4f} | {statistics.median(f):.4f} | "
            f"{min(b):.4f} | {statistics.median(b):.4f} |"
        )


if __name__ == "__main__":
    main()
