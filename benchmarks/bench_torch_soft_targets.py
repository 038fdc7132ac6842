"""Time and peak memory of ``crossent.torch.cross_entropy`` with probability targets.

    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src [--repeats 5]
    python benchmarks/bench_torch_soft_targets.py --in-process [--repeats 5]
    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src --soft-cap 30

Issue 13 follow-up: one forward and backward (``reduction='mean'``) at N = 1024,
C = 32000, float32 logits and targets, on the CPU. Each measurement runs in a fresh
process (the peak resident set size is per process), alternating the trees given
(``--src`` and ``--other``, e.g. main's) so that both see the same machine load; the
medians are reported with the load average. Peak extra memory: ``_machine.peak_mib``
(the rise of the peak resident set size, which sees PyTorch's allocations);
time: the fastest of three steps in each process. ``--in-process``: this tree only,
the custom op against the generic float64 path (``_launch.uses_target_op`` switched
off: main's operations), alternating in one warm process, forward and backward timed
apart.

The rise of the peak resident set size follows glibc's retained heap, not the live
tensors: the float64 blocks of 16 MiB fall under its dynamic mmap threshold and stay
resident or not by layout. A quiet run read 159/236 MiB (no cap/cap 30) for the
refactored soft cap against 133/157 for 876c9d4 while PyTorch's allocator peaked at
157/173 against 189/204 MiB (profiler allocation events, every run alike). Run under
``MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=0`` for a rise that follows the
live bytes (cap 30: 158 against 190 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

N, C = 1024, 32000

_CHILD = r"""
import json, sys, time
sys.path[:0] = [{src!r}, {bench!r}]
import torch
from _machine import peak_mib
import crossent.torch as ct
torch.set_num_threads({threads})
g = torch.Generator().manual_seed(0)
z = (torch.randn({n}, {c}, generator=g) * 3).requires_grad_()
t = torch.softmax(torch.randn({n}, {c}, generator=g) * 3, -1)

def step():
    z.grad = None
    ct.cross_entropy(z, t, soft_cap={soft_cap}).backward()

step()  # warm-up (compiles nothing: the first call's imports and allocations)
times = []
for _ in range(3):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
seconds = min(times)
z.grad = None
print(json.dumps({{"seconds": seconds, "peak_mib": peak_mib(step)}}))
"""


def _measure(src: str, threads: int, soft_cap: float | None = None) -> dict[str, float]:
    bench = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.format(
        src=os.path.abspath(src), bench=bench, n=N, c=C, threads=threads, soft_cap=soft_cap
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _in_process(repeats: int) -> None:
    import time

    import torch

    import crossent.torch as ct
    from crossent.torch import _launch

    g = torch.Generator().manual_seed(0)
    z = (torch.randn(N, C, generator=g) * 3).requires_grad_()
    t = torch.softmax(torch.randn(N, C, generator=g) * 3, -1)
    paths = {"op": _launch.uses_target_op, "generic": lambda z, opts: False}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for rep in range(repeats + 1):
        for name, uses in paths.items():
            _launch.uses_target_op = uses  # type: ignore[assignment]
            z.grad = None
            start = time.perf_counter()
            loss = ct.cross_entropy(z, t)
            middle = time.perf_counter()
            loss.backward()
            if rep:  # the first round warms up
                times[name].append((middle - start, time.perf_counter() - middle))
    print(f"N={N} C={C} float32, mean, in one process; load average {os.getloadavg()}")
    print("| path | median fwd s | median bwd s | median total s |")
    for name, runs in times.items():
        fwd = statistics.median(f for f, _ in runs)
        bwd = statistics.median(b for _, b in runs)
        total = statistics.median(f + b for f, b in runs)
        print(f"| {name} | {fwd:.2f} | {bwd:.2f} | {total:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="src", help="the tree measured")
    parser.add_argument("--other", help="the tree beside it (main's src)")
    parser.add_argument("--in-process", action="store_true", help="op against generic path")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--soft-cap", type=float, default=None, help="soft_cap of the calls")
    args = parser.parse_args()
    if args.in_process:
        _in_process(args.repeats)
        return
    if args.other is None:
        parser.error("--other is required (or --in-process)")
    trees = {"this": args.src, "other": args.other}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, src in trees.items():
            results[name].append(_measure(src, args.threads, args.soft_cap))
    print(
        f"N={N} C={C} float32, mean, soft_cap={args.soft_cap}, fwd+bwd; "
        f"load average {os.getloadavg()}"
    )
    print("| tree | median s | all s | median peak MiB |")
    for name, runs in results.items():
        secs = [r["seconds"] for r in runs]
        peak = statistics.median(r["peak_mib"] for r in runs)
        listed = " ".join(f"{s:.2f}" for s in secs)
        print(f"| {name} ({trees[name]}) | {statistics.median(secs):.2f} | {listed} | {peak:.0f} |")


if __name__ == "__main__":
    main()
