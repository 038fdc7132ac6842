"""`crossent report` on language-model-sized outputs: many rows of 50 000 classes.

    python benchmarks/bench_report_wide.py [--rows 1000] [--classes 50000]
        [--planted T] [--file PATH] [--rounds 1] [--against TREE ...]

Writes (or reuses, with ``--file``) an uncompressed ``.npz`` of float32 logits
N(0, 3) and uniform labels (a model no temperature helps: the fits end at the bound
T = 20, and the gap is null), or with ``--planted T`` labels drawn from
``softmax(logits / T)`` (an over-confident model whose NLL-optimal temperature is
about ``T``: interior fits, Newton steps, a gap).  Then runs ``python -m crossent
report FILE --json`` in a fresh process per tree (``PYTHONPATH`` = this tree's
``src``, then each ``--against`` tree's), the trees alternating round by round.  Each
run's wall time, CPU time (user + system, all threads) and peak resident memory come
from ``os.wait4`` of that child alone.  The JSON outputs of the trees are compared
byte for byte (they must agree: the optimisations keep every number).  On a shared
machine the wall time follows the load; the CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _against import _src

from _machine import cpu_name


def write_file(path: Path, rows: int, classes: int, planted: float | None = None) -> None:
    """``logits`` float32 ``(rows, classes)`` N(0, 3) and ``labels``: uniform, or drawn
    from ``softmax(logits / planted)`` (the Gumbel-max trick)."""
    rng = np.random.default_rng(0)
    logits = np.empty((rows, classes), dtype=np.float32)
    for start in range(0, rows, 1000):
        stop = min(start + 1000, rows)
        logits[start:stop] = rng.normal(size=(stop - start, classes)) * 3
    if planted is None:
        labels = rng.integers(0, classes, size=rows)
    else:
        labels = np.empty(rows, dtype=np.int64)
        for start in range(0, rows, 1000):
            block = logits[start : start + 1000] / planted
            labels[start : start + 1000] = np.argmax(block + rng.gumbel(size=block.shape), 1)
    np.savez(path, logits=logits, labels=labels)


def run_once(tree: str, path: Path) -> tuple[float, float, float, bytes]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one report, and its JSON."""
    env = dict(os.environ, PYTHONPATH=tree)
    command = [sys.executable, "-m", "crossent", "report", str(path), "--json"]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read() if child.stderr else b""
        if child.returncode != 0:
            sys.exit(f"{tree}: exit {child.returncode}\n{error.decode()}")
        out.seek(0)
        payload = out.read()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=50_000)
    parser.add_argument("--planted", type=float, help="labels from softmax(logits / T)")
    parser.add_argument("--file", type=Path, help="an existing .npz (logits, labels) to use")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--against", nargs="*", default=[], help="other trees to time")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    trees = [str(here.parent / "src"), *(_src(t) for t in args.against)]
    with tempfile.TemporaryDirectory() as folder:
        path = args.file or Path(folder) / "wide.npz"
        if args.file is None:
            write_file(path, args.rows, args.classes, args.planted)
        with np.load(path) as data:
            shape = data["logits"].shape
        print(
            f"# crossent report {shape[0]} x {shape[1]} float32 logits "
            f"({path.stat().st_size / 2**20:.0f} MiB .npz); {cpu_name()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"load average before {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results: dict[str, list[tuple[float, float, float]]] = {t: [] for t in trees}
        outputs: dict[str, bytes] = {}
        for _ in range(args.rounds):
            for tree in trees:
                wall, cpu, peak, payload = run_once(tree, path)
                results[tree].append((wall, cpu, peak))
                outputs[tree] = payload
                print(f"{tree}: wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {peak:.0f} MiB")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    for i, tree in enumerate(trees):
        wall = min(r[0] for r in results[tree])
        cpu = min(r[1] for r in results[tree])
        peak = max(r[2] for r in results[tree])
        print(
            f"tree {i} ({tree}): best wall {wall:.1f} s, best CPU {cpu:.1f} s, "
            f"peak RSS {peak:.0f} MiB"
        )
    if len(set(outputs.values())) > 1:
        print("JSON outputs DIFFER between trees")
    elif len(trees) > 1:
        print("JSON outputs identical (byte for byte)")


if __name__ == "__main__":
    main()
