"""Issue 13 (branch rowrule1), A/B by alternating processes: the cost to ordinary inputs
of the one row-overflow rule of the class-id ``'mean'`` (the op's float64 twin of the
rows; eagerly on the CPU a host read of the float64 sum, compiled a ``torch.where`` of
a second sum of the N rows).

    python benchmarks/bench_row_rule_ab.py --base OTHER/src [--rounds 3] [--reps 5]

``crossent.torch.cross_entropy`` forward + backward of ordinary float32 logits
4096 x 32000 (``randn * 3``), ``'mean'``, eager and ``torch.compile`` (default
Inductor), in one worker process per tree, mode and round (the two trees register the
same custom-op names, so they cannot share a process), A and B alternating; each worker
warms up (compiles) first, then times ``--reps`` calls: process CPU time (the fused
kernels run on Numba's threads) and wall time, one torch thread. Reported: the minimum
and median over all the rounds' calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

N, V = 4096, 32000


def worker(mode: str, reps: int) -> None:
    import torch

    from crossent.torch import cross_entropy

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(N, V, generator=g) * 3).requires_grad_()
    y = torch.randint(0, V, (N,), generator=g)
    fn = torch.compile(cross_entropy) if mode == "compiled" else cross_entropy

    def call() -> None:
        fn(z, y).backward()
        z.grad = None

    for _ in range(2):
        call()
    cpu, wall = [], []
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    print(json.dumps({"cpu": cpu, "wall": wall}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the other tree's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--worker", choices=["eager", "compiled"])
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.reps)
        return
    this = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")
    trees = {"base": os.path.abspath(args.base), "this": os.path.abspath(this)}
    seconds: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mode in ("eager", "compiled"):
            for name, src in trees.items():
                env = dict(os.environ, PYTHONPATH=src)
                command = [sys.executable, __file__, "--worker", mode, "--reps", str(args.reps)]
                out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                for kind in ("cpu", "wall"):
                    seconds.setdefault((mode, name, kind), []).extend(result[kind])
    print(f"{args.rounds} rounds x {args.reps} calls, 1 torch thread, load {os.getloadavg()}")
    for mode in ("eager", "compiled"):
        for kind in ("cpu", "wall"):
            row = [f"{mode} fwd+bwd {N} x {V} float32 'mean', {kind} s"]
            for name in trees:
                s = seconds[mode, name, kind]
                row.append(f"{name} min / med {min(s):.4f} / {statistics.median(s):.4f}")
            ratio = min(seconds[mode, "this", kind]) / min(seconds[mode, "base", kind])
            print("| " + " | ".join(row) + f" | {ratio:.3f} |")


if __name__ == "__main__":
    main()
