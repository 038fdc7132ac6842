"""Time and peak memory of ``crossent.torch.cross_entropy`` with probability targets.

    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src [--repeats 5]
    python benchmarks/bench_torch_soft_targets.py --in-process [--repeats 5]
    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src --soft-cap 30
    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src --rows 64 \
        --classes 4000 --repeats 1   # a small run, to see that it works
    python benchmarks/bench_torch_soft_targets.py --src src --other /tmp/main/src \
        --dtype float64 --peaked --threads 1   # float64 (the op since issue 13's follow-up)

Issue 13 follow-up: one forward and backward (``reduction='mean'``) at N = 1024,
C = 32000 (``--rows``, ``--classes``), float32 logits and targets, on the CPU. Each
measurement runs in a fresh process (the peak resident set size is per process),
alternating the trees given (``--src`` and ``--other``, e.g. main's) so that both see
the same machine load; the medians are reported with the load average, the time as
wall and as process CPU time (all threads; steadier on a loaded machine). ``--dtype
float64``: float64 logits and targets (on main the generic path, plain autograd);
``--peaked``: every row's first logit at 30 above the others and one-hot targets
there (every row with :math:`p > 1/2`: the backward's exact top entries). Peak extra
memory, two columns, each of a step of its own: "RSS rise", ``_machine.peak_mib`` (the
rise of the peak resident set size, which sees every allocation, PyTorch's and NumPy's,
and glibc's retained heap: see below), and "torch alloc", the peak of PyTorch's CPU
allocator above its level before the step, from the profiler's allocation events
(``_machine.torch_allocator_peak_bytes``, the reading of
``tests/pytorch/test_issue13_torch_target_peak.py``: the live tensors only, whatever
glibc keeps; "n/a" where the profiler's private event tree is missing); time: the
fastest of three steps in each process, without the profiler. ``--in-process``: this tree only,
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
from typing import Any

N, C = 1024, 32000

_CHILD = r"""
import json, sys, time
sys.path[:0] = [{src!r}, {bench!r}]
import torch
from _machine import peak_mib, torch_allocator_peak_bytes
import crossent.torch as ct
torch.set_num_threads({threads})
g = torch.Generator().manual_seed(0)
z = torch.randn({n}, {c}, generator=g, dtype=torch.float64) * 3
t = torch.softmax(torch.randn({n}, {c}, generator=g, dtype=torch.float64) * 3, -1)
if {peaked}:
    z[:, 0] = z.amax(1) + 30.0
    t = torch.zeros_like(t)
    t[:, 0] = 1.0
z = z.to(torch.{dtype}).requires_grad_()
t = t.to(torch.{dtype})

def step():
    z.grad = None
    ct.cross_entropy(z, t, soft_cap={soft_cap}).backward()

step()  # warm-up (compiles nothing: the first call's imports and allocations)
times, cpu_times = [], []
for _ in range(3):
    start, cpu = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - start)
    cpu_times.append(time.process_time() - cpu)
seconds, cpu_seconds = min(times), min(cpu_times)
z.grad = None
rss = peak_mib(step)
z.grad = None
allocator = torch_allocator_peak_bytes(step)
allocator_mib = None if allocator is None else allocator / 2**20
print(json.dumps({{"seconds": seconds, "cpu": cpu_seconds, "peak_mib": rss,
                  "allocator_mib": allocator_mib}}))
"""


def _measure(src: str, args: argparse.Namespace) -> dict[str, Any]:
    bench = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.format(
        src=os.path.abspath(src),
        bench=bench,
        n=args.rows,
        c=args.classes,
        threads=args.threads,
        soft_cap=args.soft_cap,
        dtype=args.dtype,
        peaked=args.peaked,
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
    parser.add_argument("--rows", type=int, default=N, help="N (not with --in-process)")
    parser.add_argument("--classes", type=int, default=C, help="C (not with --in-process)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--peaked", action="store_true", help="one-hot targets at p -> 1")
    args = parser.parse_args()
    if args.in_process:
        _in_process(args.repeats)
        return
    if args.other is None:
        parser.error("--other is required (or --in-process)")
    trees = {"this": args.src, "other": args.other}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, src in trees.items():
            results[name].append(_measure(src, args))
    print(
        f"N={args.rows} C={args.classes} {args.dtype}, mean, soft_cap={args.soft_cap}, "
        f"peaked={args.peaked}, threads={args.threads}, fwd+bwd; "
        f"load average {os.getloadavg()}"
    )
    print(
        "| tree | median s | all s | median CPU s | median peak MiB, RSS rise "
        "| median peak MiB, torch alloc |"
    )
    for name, runs in results.items():
        secs = [r["seconds"] for r in runs]
        cpu = statistics.median(r["cpu"] for r in runs)
        listed = " ".join(f"{s:.2f}" for s in secs)
        rss = _median_mib([r["peak_mib"] for r in runs])
        allocator = _median_mib([r["allocator_mib"] for r in runs])
        print(
            f"| {name} ({trees[name]}) | {statistics.median(secs):.2f} | {listed} "
            f"| {cpu:.2f} | {rss} | {allocator} |"
        )


def _median_mib(values: list[float | None]) -> str:
    """The median of the runs' MiB, or "n/a" where a run had no reading."""
    if any(v is None for v in values):
        return "n/a"
    return f"{statistics.median(v for v in values if v is not None):.0f}"


if __name__ == "__main__":
    main()
