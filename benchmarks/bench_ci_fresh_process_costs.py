"""CPU of the fresh processes CI's tests start (issue 13, branch citime16b): the CLI's demo
in a new process, whole or one topic, and a first and a second Inductor compile.

    python benchmarks/bench_ci_fresh_process_costs.py [--rounds 2] [--inductor]

Each case is a new Python process; its CPU is this process's waited-for children's
(user + system, ``RUSAGE_CHILDREN``), the cases alternating. ``demo`` and ``demo entropy``
run ``python -m crossent`` on the current ``NUMBA_CACHE_DIR`` (warm it first: the first
run compiles the demo's kernels). ``--inductor`` also compiles a small function with
Inductor twice in one new process, with and without ``TORCHINDUCTOR_COMPILE_THREADS=1``,
each on a new ``TORCHINDUCTOR_CACHE_DIR``, and prints that process's own and its
children's (the C++ compiler's) CPU for each compile.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

_INDUCTOR = """
import resource, time
def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime
import torch
def f(x, y):
    return (x.sin() * y).logsumexp(-1).sum()
def g(x, y):
    return (x.cos() * y).logsumexp(-1).sum()
x, y = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5)
for name, fn in (("first", f), ("second", g)):
    before = cpu()
    torch.compile(fn, fullgraph=True)(x, y).backward()
    after = cpu()
    own, kids = (round(b - a, 1) for a, b in zip(before, after))
    print(name, "compile: own", own, "children", kids)
"""


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return _children_cpu() - cpu, time.perf_counter() - wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--inductor", action="store_true")
    args = parser.parse_args()
    demo: dict[str, list[float]] = {"demo": [], "demo entropy": []}
    for _ in range(args.rounds):
        for name, cpus in demo.items():
            cpu, _, out = _timed([sys.executable, "-m", "crossent", *name.split()])
            assert "3.2744" in out  # the entropy of two dice, in both
            cpus.append(round(cpu, 2))
    for name, cpus in demo.items():
        print(f"python -m crossent {name}: CPU s {cpus}")
    if args.inductor:
        for threads in (None, "1"):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
                if threads is not None:
                    env["TORCHINDUCTOR_COMPILE_THREADS"] = threads
                _, _, out = _timed([sys.executable, "-c", _INDUCTOR], env)
            print(f"TORCHINDUCTOR_COMPILE_THREADS={threads or '(default)'}:\n{out.strip()}")


if __name__ == "__main__":
    main()
