"""`crossent report` end to end on typical sizes, tree against tree (issue 13).

    python benchmarks/bench_report_cases.py [--folder DIR] [--rounds 2]
        [--cases NAME ...] [--against TREE ...]

Writes (or reuses, in ``--folder``) the inputs: 10^6 x 10 float32 logits and
probabilities as ``.npy`` with a ``.npy`` of labels and as ``.npz``; 10^5 x 1000 float32
logits in an ``.npz``; 2 x 10^5 x 10 probabilities in a CSV (``repr`` of float64, as
``to_csv`` writes them).  Labels are drawn from ``softmax(logits / 1.3)`` (an
over-confident model: an interior temperature fit, a gap).  Each case runs ``python -m
crossent report ... --json`` in a fresh process per tree (``PYTHONPATH`` = that tree's
``src``), the trees alternating case by case and round by round; the ``+html`` cases add
``--output FILE.html``.  Wall time, CPU time (user + system, all threads) and peak RSS
are those of the child alone (``os.wait4``; the table gives the best and the median CPU
time and the median peak RSS over the rounds; the inputs are written by another child,
as a child's peak RSS starts at its parent's).  The JSON outputs (and the HTML files) of
the trees are compared byte for byte.  On a shared machine compare CPU times.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _against import _src

from _machine import cpu_name


def _model(rng: np.random.Generator, rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    logits = np.empty((rows, classes), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, 100_000):
        z = (rng.normal(size=(min(100_000, rows - start), classes)) * 3).astype(np.float32)
        logits[start : start + z.shape[0]] = z
        labels[start : start + z.shape[0]] = np.argmax(z / 1.3 + rng.gumbel(size=z.shape), 1)
    return logits, labels


def _probs(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def write_inputs(folder: Path) -> None:
    """The cases' files in ``folder`` (kept if already there)."""
    if (folder / "done").exists():
        return
    rng = np.random.default_rng(0)
    z, y = _model(rng, 1_000_000, 10)
    p = _probs(z).astype(np.float32)
    np.save(folder / "logits10.npy", z)
    np.save(folder / "probs10.npy", p)
    np.save(folder / "labels10.npy", y)
    np.savez(folder / "logits10.npz", logits=z, labels=y)
    np.savez(folder / "probs10.npz", probs=p, labels=y)
    z, y = _model(rng, 100_000, 1000)
    np.savez(folder / "logits1000.npz", logits=z, labels=y)
    z, y = _model(rng, 200_000, 10)
    with open(folder / "probs10.csv", "w") as f:
        f.write(",".join([*(f"c{i}" for i in range(10)), "label"]) + "\n")
        for row, label in zip(_probs(z).tolist(), y.tolist(), strict=True):
            f.write(",".join(map(repr, row)) + f",{label}\n")
    (folder / "done").touch()


CASES = {
    "npy logits 1e6x10": ["logits10.npy", "--logits", "--labels", "labels10.npy"],
    "npy probs 1e6x10": ["probs10.npy", "--labels", "labels10.npy"],
    "npz logits 1e6x10": ["logits10.npz"],
    "npz probs 1e6x10": ["probs10.npz"],
    "npz logits 1e5x1000": ["logits1000.npz"],
    "csv probs 2e5x10": ["probs10.csv"],
    "npz logits 1e6x10 +html": ["logits10.npz", "--output", "{out}"],
    "csv probs 2e5x10 +html": ["probs10.csv", "--output", "{out}"],
}


def run_once(tree: str, folder: Path, arguments: list[str]) -> tuple[float, float, float, bytes]:
    """Wall seconds, CPU seconds, peak RSS (MiB) of one report, and its outputs."""
    env = dict(os.environ, PYTHONPATH=tree)
    with tempfile.TemporaryDirectory() as scratch:
        html = Path(scratch) / "report.html"
        command = [sys.executable, "-m", "crossent", "report"]
        command += [a.format(out=html) for a in arguments] + ["--json"]
        with tempfile.TemporaryFile() as out:
            start = time.perf_counter()
            child = subprocess.Popen(
                command, cwd=folder, env=env, stdout=out, stderr=subprocess.PIPE
            )
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
            error = child.stderr.read() if child.stderr else b""
            if os.waitstatus_to_exitcode(status) not in (0, 1):
                sys.exit(f"{tree} {arguments}: {error.decode()}")
            out.seek(0)
            payload = out.read() + (html.read_bytes() if html.exists() else b"")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, payload


def _masked(payload: bytes) -> bytes:
    """``payload`` with the calibration error's interval (its JSON fields, its text and
    HTML cells) replaced by ``*``."""
    text = re.sub(rb'("ci_(?:low|high)": )[^,}]+', rb"\1*", payload, count=2)
    return re.sub(
        rb"(calibration error \(95% bootstrap interval\)</td><td>[^<\[]*)\[[^]]*\]", rb"\1[*]", text
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="where the inputs are (or go)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--against", nargs="*", default=[], help="other trees to time")
    parser.add_argument(
        "--mask-ece-interval",
        action="store_true",
        help="compare the outputs with the calibration error's interval masked (trees whose "
        "bootstrap draws differ)",
    )
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        write_inputs(args.folder)
        return
    here = Path(__file__).resolve().parent
    trees = [str(here.parent / "src"), *(_src(t) for t in args.against)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        # in a child: a child's peak RSS counts its parent's at the fork
        subprocess.run(
            [sys.executable, __file__, "--write-only", "--folder", str(folder)], check=True
        )
        print(
            f"# crossent report, {cpu_name()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; load average before {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results = {(c, t): [] for c in args.cases for t in trees}
        outputs: dict[tuple[str, str], bytes] = {}
        for _ in range(args.rounds):
            for case in args.cases:
                for tree in trees:
                    wall, cpu, peak, payload = run_once(tree, folder, CASES[case])
                    results[case, tree].append((wall, cpu, peak))
                    outputs[case, tree] = _masked(payload) if args.mask_ece_interval else payload
                    print(
                        f"  {case}, tree {trees.index(tree)}: wall {wall:.1f} s, "
                        f"CPU {cpu:.2f} s, peak RSS {peak:.0f} MiB",
                        flush=True,
                    )
    print(f"load average after {os.getloadavg()[0]:.2f}")
    for i, tree in enumerate(trees):
        print(f"tree {i}: {tree}")
    header = "".join(
        f" | tree {i} CPU s best/median | wall s | RSS MiB median" for i in range(len(trees))
    )
    print(f"| case{header} | outputs |")
    for case in args.cases:
        cells = ""
        for tree in trees:
            runs = results[case, tree]
            cells += (
                f" | {min(r[1] for r in runs):.2f} / {statistics.median(r[1] for r in runs):.2f}"
                f" | {min(r[0] for r in runs):.1f}"
                f" | {statistics.median(r[2] for r in runs):.0f}"
            )
        same = len({outputs[case, t] for t in trees}) == 1
        print(f"| {case}{cells} | {'identical' if same else 'DIFFER'} |")


if __name__ == "__main__":
    main()
