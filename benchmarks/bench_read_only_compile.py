"""Compilation for a writable, then a read-only input, on a fresh Numba cache (issue 13).

    python benchmarks/bench_read_only_compile.py [--src PATH ...] [--family NAME ...]

Numba types an array that NumPy may not write (a memory map opened with ``mode="r"``,
as ``crossent report`` reads its files; a broadcast) apart from a writable one: a
kernel called with both compiled twice, unless the dispatch layer hands it read-only
views of every input (``crossent._read_only.read_only``). For each kernel family and
each source tree (``--src``: a ``src`` folder holding ``crossent``; default this
checkout's), one fresh process on an empty ``NUMBA_CACHE_DIR`` calls the family with
a writable float32 input, then with a read-only copy: the CPU seconds of each call
(``time.process_time``: mostly Numba's compilation) and how many signatures each kernel
then holds.

Measured (2-core AMD EPYC znver4, load 1.1 to 2, 2026-12-03), main then this change,
writable + read-only call, CPU seconds: calibration (``EvaluationState.update``, the
``totals`` kernel) 21.2 + 15.3 against 20.1 + 0.0; softmax loss and gradient 4.7 + 4.3
against 4.8 + 0.0; distillation loss and gradient 4.6 + 2.5 (main widened read-only
rows to float64 blocks, read by float64 kernels) against 4.6 + 0.0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import cpu_name

_FAMILIES = {
    "calibration": (
        "from crossent.calibration import _row_kernels as m\n"
        "a = rng.dirichlet(np.ones(10), size=2000).astype(np.float32)\n"
        "b = rng.integers(0, 10, 2000)\n"
        "call = lambda a, b: crossent.EvaluationState(10).update(a, b)\n"
        "kernels = {k: m._kernels()[k] for k in ('totals', 'summaries')}"
    ),
    "softmax": (
        "from crossent.losses import _cpu_kernels as m\n"
        "a = rng.standard_normal((400, 64)).astype(np.float32)\n"
        "b = rng.integers(0, 64, 400)\n"
        "call = lambda a, b: (crossent.softmax_cross_entropy(a, b),\n"
        "    crossent.softmax_cross_entropy_grad(a, b))\n"
        "kernels = m._kernels()"
    ),
    "distillation": (
        "from crossent.losses import _distill_rows as m\n"
        "a = rng.standard_normal((400, 64)).astype(np.float32)\n"
        "b = rng.standard_normal((400, 64)).astype(np.float32)\n"
        "call = lambda a, b: (crossent.distillation_loss(a, b),\n"
        "    crossent.distillation_loss_grad(a, b))\n"
        "kernels = dict(zip(('forward', 'backward'), m.kernels()))"
    ),
}

_PROGRAM = """
import time
import numpy as np
import crossent
rng = np.random.default_rng(0)
{setup}
times = []
for frozen in (False, True):
    x, y = (v.copy() for v in (a, b))
    x.flags.writeable = y.flags.writeable = not frozen
    start = time.process_time()
    call(x, y)
    times.append(time.process_time() - start)
counts = {{k: len(d.signatures) for k, d in kernels.items() if d.signatures}}
print(times[0], times[1], counts)
"""


def run(src: Path, setup: str) -> str:
    """One fresh process on an empty cache: the cells of its row."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_CACHE_DIR": cache}
        out = subprocess.check_output([sys.executable, "-c", _PROGRAM.format(setup=setup)], env=env)
    writable, frozen, counts = out.decode().strip().split(maxsplit=2)
    return f"{float(writable):.2f} | {float(frozen):.2f} | {counts}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent / "src"
    parser.add_argument("--src", type=Path, action="append", help="a src folder (repeatable)")
    parser.add_argument("--family", nargs="+", choices=sorted(_FAMILIES), help="default: all")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| family | tree | writable call (CPU s) | read-only call (CPU s) | signatures |")
    print("|---|---|---:|---:|---|")
    for family in args.family or list(_FAMILIES):
        for src in args.src or [here]:
            print(f"| {family} | {src} | {run(src, _FAMILIES[family])} |", flush=True)


if __name__ == "__main__":
    main()
