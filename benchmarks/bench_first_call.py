"""The first call of a process: import, Numba's disk cache, compile (issue 13).

    python benchmarks/bench_first_call.py [--src PATH ...] [--runs 2]

Each case runs in a fresh Python process, ``--runs`` times in a row per source tree
(``--src``: a ``src`` folder holding ``crossent``; default this checkout's), so that
the first run of a tree shows a cold Numba disk cache (when its sources changed since
its last run) and the later runs what every later process pays: ``import numba`` and
loading the compiled kernels from the cache (or compiling them again, when the cache
misses). The table gives, per run, the seconds of ``import crossent`` and of the
case's first call (which includes any lazy import and compilation).

Cases: ``softmax_cross_entropy`` on (4, 10) and (512, 100) float32 logits,
``calibration_error`` on (100, 10) float32 probabilities and ``entropy`` of a float64
row of 10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _machine import cpu_name

_CASES = {
    "softmax_cross_entropy (4, 10) float32": (
        "z = np.zeros((4, 10), np.float32); y = np.zeros(4, np.int64)\n"
        "call = lambda: crossent.softmax_cross_entropy(z, y)"
    ),
    "softmax_cross_entropy (512, 100) float32": (
        "z = np.zeros((512, 100), np.float32); y = np.zeros(512, np.int64)\n"
        "call = lambda: crossent.softmax_cross_entropy(z, y)"
    ),
    "calibration_error (100, 10) float32": (
        "p = np.full((100, 10), 0.1, np.float32); y = np.zeros(100, np.int64)\n"
        "call = lambda: crossent.calibration_error(p, y)"
    ),
    "entropy (10,) float64": "p = np.full(10, 0.1)\ncall = lambda: crossent.entropy(p)",
}

_PROGRAM = """
import time
start = time.perf_counter()
import numpy as np
import crossent
imported = time.perf_counter()
{setup}
begin = time.perf_counter()
call()
print(imported - start, time.perf_counter() - begin)
"""


def first_call(src: Path, setup: str) -> tuple[float, float]:
    """Seconds of ``import crossent`` and of the first call, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(setup=setup)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported, called = result.stdout.split()
    return float(imported), float(called)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent / "src"
    parser.add_argument("--src", type=Path, action="append", help="a src folder (repeatable)")
    parser.add_argument("--runs", type=int, default=2, help="fresh processes per tree and case")
    args = parser.parse_args()
    trees = args.src or [here]
    print(f"CPU: {cpu_name()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("seconds: import crossent + first call, per fresh process (run 1, run 2, ...)\n")
    print("| case | tree | " + " | ".join(f"run {k + 1}" for k in range(args.runs)) + " |")
    print("|---|---|" + "---|" * args.runs)
    for case, setup in _CASES.items():
        for src in trees:
            cells = []
            for _ in range(args.runs):
                imported, called = first_call(src, setup)
                cells.append(f"{imported:.2f} + {called:.3f}")
            print(f"| {case} | {src} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
