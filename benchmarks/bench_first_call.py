"""The first call of a process: import, Numba's disk cache, compile (issue 13).

    python benchmarks/bench_first_call.py [--src PATH ...] [--against PATH] [--runs 2]
        [--clock {wall,cpu}] [--floor] [--torch] [--report] [--cases NAME,...]

Each case runs in a fresh Python process, once untimed and then ``--runs`` times per
source tree (``--src``: a ``src`` folder holding ``crossent``; default this checkout's;
``--against`` adds one measured first in each round), the trees taking turns run by run
so that they share the machine's load. The untimed run writes the bytecode and fills
the Numba cache; the timed runs show what every later process pays: ``import numba``,
Numba's own start (its registries: ``numba.np.arraymath`` imports ``scipy.linalg``) and
loading the compiled kernels from the cache (``--cold``: each timed run in an empty
Numba cache of its own, which compiles). The table gives the median (range) of the
seconds of ``import crossent`` and of the case's first call (which includes any lazy
import and compilation), in wall time or (``--clock cpu``) the process's CPU time,
less sensitive to other work on a shared machine.

``--floor``: before the clock starts, each process imports Numba and calls a trivial
cached ``@njit`` function, so that the first call's figure is what crossent itself adds
to Numba's fixed start (imports of its modules, tables, its kernels' cache loads).

``--report``: also ``python -m crossent report`` on a 1000-row, 10-class ``.npz`` of
float32 logits and on a 1000-row CSV of probabilities (written to a temporary folder):
the whole process, its CPU time (``RUSAGE_CHILDREN``) or wall time.

Bytecode is written (to a temporary ``PYTHONPYCACHEPREFIX``), as an installed package
has its ``.pyc`` files. The Numba cache is
``NUMBA_CACHE_DIR`` when set.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name

_SETUP = "rng = np.random.default_rng(0)\n"
_CASES = {
    "softmax_cross_entropy (4, 10) float32": (
        "z = np.zeros((4, 10), np.float32); y = np.zeros(4, np.int64)\n"
        "call = lambda: crossent.softmax_cross_entropy(z, y)"
    ),
    "softmax_cross_entropy (512, 100) float32": (
        "z = np.zeros((512, 100), np.float32); y = np.zeros(512, np.int64)\n"
        "call = lambda: crossent.softmax_cross_entropy(z, y)"
    ),
    "cross_entropy (64, 10) float64 probs": (
        "p = rng.dirichlet(np.ones(10), 64); q = rng.dirichlet(np.ones(10), 64)\n"
        "call = lambda: crossent.cross_entropy(p, q)"
    ),
    "entropy (10,) float64": "p = np.full(10, 0.1)\ncall = lambda: crossent.entropy(p)",
    "kl_divergence (64, 10) float64 probs": (
        "p = rng.dirichlet(np.ones(10), 64); q = rng.dirichlet(np.ones(10), 64)\n"
        "call = lambda: crossent.kl_divergence(p, q)"
    ),
    "negative_log_likelihood (100, 10) float32": (
        "p = rng.dirichlet(np.ones(10), 100).astype(np.float32)\n"
        "y = rng.integers(0, 10, 100)\n"
        "call = lambda: crossent.negative_log_likelihood(p, y)"
    ),
    "calibration_error (100, 10) float32": (
        "p = np.full((100, 10), 0.1, np.float32); y = np.zeros(100, np.int64)\n"
        "call = lambda: crossent.calibration_error(p, y)"
    ),
    "EvaluationState(10).update (100, 10) float32": (
        "p = rng.dirichlet(np.ones(10), 100).astype(np.float32)\n"
        "y = rng.integers(0, 10, 100); state = crossent.EvaluationState(10)\n"
        "call = lambda: state.update(p, y)"
    ),
    "sigmoid_cross_entropy (64,) float32": (
        "x = rng.standard_normal(64).astype(np.float32); t = (x > 0).astype(np.float32)\n"
        "call = lambda: crossent.sigmoid_cross_entropy(x, t)"
    ),
    "sigmoid_cross_entropy (64,) float64": (
        "x = rng.standard_normal(64); t = (x > 0).astype(np.float64)\n"
        "call = lambda: crossent.sigmoid_cross_entropy(x, t)"
    ),
    "smooth_calibration_error (1000, 10) float64": (
        "p = rng.dirichlet(np.ones(10), 1000); y = rng.integers(0, 10, 1000)\n"
        "call = lambda: crossent.calibration.smooth_calibration_error(p, y)"
    ),
}
_TORCH_CASE = (
    "crossent.torch CrossEntropyLoss (64, 10) forward+backward",
    "import torch, crossent.torch\n"
    "z = torch.randn(64, 10, requires_grad=True); y = torch.randint(0, 10, (64,))\n"
    "loss = crossent.torch.CrossEntropyLoss()\n"
    "call = lambda: loss(z, y).backward()",
)

_FLOOR = """
import numba
@numba.njit(cache=True)
def _floor(x):
    return x + 1
_floor(1)
"""

_PROGRAM = """
import time
clock = time.{clock}
{floor}
start = clock()
import numpy as np
import crossent
imported = clock()
{setup}
begin = clock()
call()
print(imported - start, clock() - begin)
"""


def _environment(src: Path, pycache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(src), "PYTHONPYCACHEPREFIX": pycache}


def first_call(
    src: Path, setup: str, pycache: str, clock: str, floor: str, folder: str, cold: bool = False
) -> tuple[float, float]:
    """Seconds of ``import crossent`` and of the first call, in a fresh process (``cold``:
    with an empty Numba cache)."""
    program = _PROGRAM.format(
        clock="process_time" if clock == "cpu" else "perf_counter",
        floor=floor,
        setup=_SETUP + setup,
    )
    path = Path(folder) / f"first_call_{abs(hash((str(src), setup)))}.py"
    path.write_text(program)  # (a file: ``cache=True`` needs the function's source file)
    env = _environment(src, pycache)
    with tempfile.TemporaryDirectory() as empty:
        if cold:
            env["NUMBA_CACHE_DIR"] = empty
        result = subprocess.run(
            [sys.executable, str(path)], env=env, capture_output=True, text=True, check=True
        )
    imported, called = result.stdout.split()[-2:]
    return float(imported), float(called)


def report_run(src: Path, path: Path, pycache: str, clock: str) -> float:
    """Seconds of a whole ``python -m crossent report PATH`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "crossent", "report", str(path)],
        env=_environment(src, pycache),
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu if clock == "cpu" else wall


def _report_inputs(folder: Path) -> list[Path]:
    """A 1000-row, 10-class ``.npz`` of float32 logits and a CSV of probabilities."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    logits = rng.standard_normal((1000, 10)) * 2 + 3 * np.eye(10)[labels]
    npz = folder / "predictions.npz"
    np.savez(npz, logits=logits.astype(np.float32), labels=labels)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    csv = folder / "predictions.csv"
    lines = ["label," + ",".join(f"c{k}" for k in range(10))]
    rows = zip(labels, probs, strict=True)
    lines += [f"{y}," + ",".join(repr(float(v)) for v in row) for y, row in rows]
    csv.write_text("\n".join(lines) + "\n")
    return [npz, csv]


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent / "src"
    parser.add_argument("--src", type=Path, action="append", help="a src folder (repeatable)")
    parser.add_argument("--against", type=Path, help="a src folder to compare with (first)")
    parser.add_argument("--runs", type=int, default=2, help="fresh processes per tree and case")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--floor", action="store_true", help="Numba started before the clock")
    parser.add_argument("--torch", action="store_true", help="add crossent.torch's loss")
    parser.add_argument("--report", action="store_true", help="add `crossent report` runs")
    parser.add_argument("--cases", help="comma-separated substrings of the cases to run")
    parser.add_argument("--cold", action="store_true", help="time runs on empty Numba caches")
    args = parser.parse_args()
    trees = [p.resolve() for p in (args.src or [here])]
    if args.against is not None:
        trees.insert(0, args.against.resolve())
    cases = dict(_CASES)
    if args.torch:
        cases[_TORCH_CASE[0]] = _TORCH_CASE[1]
    if args.cases:
        wanted = args.cases.split(",")
        cases = {k: v for k, v in cases.items() if any(w in k for w in wanted)}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"CPU: {cpu_name()}; Python {sys.version.split()[0]}; load average {load}")
    print(
        f"seconds ({args.clock}): import crossent + first call, per fresh process"
        + ("; Numba started before the clock (--floor)" if args.floor else "")
        + ("; each run on an empty Numba cache (--cold)" if args.cold else "")
        + f"; median (range) of {args.runs} runs\n"
    )
    floor = _FLOOR if args.floor else ""
    with tempfile.TemporaryDirectory() as pycache, tempfile.TemporaryDirectory() as folder:
        print("| case | tree | import crossent | first call |")
        print("|---|---|---|---|")
        for case, setup in cases.items():
            for src in trees:  # (untimed: bytecode written, the Numba cache filled)
                first_call(src, setup, pycache, args.clock, floor, folder)
            runs: dict[Path, list[tuple[float, float]]] = {src: [] for src in trees}
            for _ in range(args.runs):
                for src in trees:
                    runs[src].append(
                        first_call(src, setup, pycache, args.clock, floor, folder, args.cold)
                    )
            for src in trees:
                imported = _cell([r[0] for r in runs[src]])
                called = _cell([r[1] for r in runs[src]])
                print(f"| {case} | {src} | {imported} | {called} |", flush=True)
        if args.report:
            for path in _report_inputs(Path(folder)):
                for src in trees:
                    report_run(src, path, pycache, args.clock)  # (warm)
                seconds: dict[Path, list[float]] = {src: [] for src in trees}
                for _ in range(args.runs):
                    for src in trees:
                        seconds[src].append(report_run(src, path, pycache, args.clock))
                for src in trees:
                    name = f"`crossent report` {path.suffix} (1000, 10), whole process"
                    print(f"| {name} | {src} | | {_cell(seconds[src])} |", flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nafter: load average {load}")


if __name__ == "__main__":
    main()
