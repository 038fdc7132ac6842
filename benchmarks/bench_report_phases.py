"""`crossent report` of 2 x 10^6 x 10 float32 logits: end to end and by phase, tree against tree.

    python benchmarks/bench_report_phases.py [--rows 2000000] [--classes 10] [--rounds 3]
        [--folder DIR] [--against TREE ...]

Writes (or reuses, in ``--folder``) ``logits.npz``: the logits model of
``bench_report_cases.py`` (labels drawn from ``softmax(logits / 1.3)``), uncompressed.
Each round runs, for each tree in turn (``PYTHONPATH`` = that tree's ``src``; this one
first):

* ``python -m crossent report logits.npz --json`` in a fresh process: wall time, CPU
  time (user + system, all threads) and peak RSS of the child alone (``os.wait4``); the
  JSON of every tree is compared byte for byte with this tree's;
* a fresh process that loads the arrays and calls ``crossent.report(logits, labels,
  form="logits")`` with a ``progress`` callback, which marks the phases: before the first
  pass (checks), the first pass and the scores ("evaluating"), the calibration error's
  bootstrap interval with the smooth calibration error, the temperature fit with its
  calibration error and the 2-fold cross-fitted gap, and the rest (diagram, payload); each
  phase's CPU time (``time.process_time``: all threads).

The table gives the median over the rounds of each figure.  On a shared machine compare
CPU times, and only within one run (the trees interleaved).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _against import _src
from bench_report_cases import _model

from _machine import cpu_name

_PHASES = r"""
import json, sys, time
import numpy as np
import crossent
marks = [("start", time.process_time())]
with np.load(sys.argv[1]) as data:
    logits, labels = data["logits"], data["labels"]
marks.append(("load", time.process_time()))

def progress(label, total):
    marks.append((label, time.process_time()))
    done = [0]

    def advance(steps):
        done[0] += steps
        if label == "temperature" and done[0] == total:
            marks.append(("after temperature", time.process_time()))

    return advance

crossent.report(logits, labels, form="logits", progress=progress)
marks.append(("end", time.process_time()))
print(json.dumps(marks))
"""

_NAMES = {
    "load": "load the .npz",
    "evaluating": "checks",
    "bootstrap interval": "first pass and scores",
    "temperature": "bootstrap interval, smECE",
    "after temperature": "temperature, its ECE, gap",
    "end": "the rest (diagram, payload)",
}


def _end_to_end(tree: str, path: Path) -> tuple[float, float, float, bytes]:
    """Wall s, CPU s and peak RSS MiB of ``python -m crossent report PATH --json``."""
    env = dict(os.environ, PYTHONPATH=tree)
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "crossent", "report", str(path), "--json"],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        error = child.stderr.read() if child.stderr else b""
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{tree}: {error.decode()}")
        out.seek(0)
        return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def _phases(tree: str, path: Path) -> dict[str, float]:
    """Each phase's CPU seconds in a fresh process (:data:`_PHASES`)."""
    env = dict(os.environ, PYTHONPATH=tree)
    done = subprocess.run(
        [sys.executable, "-c", _PHASES, str(path)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{tree}: {done.stderr}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    return {_NAMES[label]: now - before for (_, before), (label, now) in itertools.pairwise(marks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", help="keep the input here (written once)")
    parser.add_argument("--against", nargs="*", default=[], help="other trees to time")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    trees = [str(here.parent / "src"), *(_src(t) for t in args.against)]
    folder = Path(args.folder or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"logits_{args.rows}x{args.classes}.npz"
    if not path.exists():
        logits, labels = _model(np.random.default_rng(0), args.rows, args.classes)
        np.savez(path, logits=logits, labels=labels)
    print(
        f"# {args.rows} x {args.classes} float32 logits (.npz); {cpu_name()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"load average before: {os.getloadavg()}", flush=True)
    runs: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    outputs: dict[str, bytes] = {}
    for _ in range(args.rounds):
        for tree in trees:
            wall, cpu, rss, payload = _end_to_end(tree, path)
            outputs.setdefault(tree, payload)
            if payload != outputs[tree]:
                sys.exit(f"{tree}: the JSON changed between rounds")
            figures = {"end to end: wall s": wall, "end to end: CPU s": cpu}
            figures["end to end: peak RSS MiB"] = rss
            figures.update({f"phase CPU s: {k}": v for k, v in _phases(tree, path).items()})
            for name, value in figures.items():
                runs[tree].setdefault(name, []).append(value)
    print(f"load average after: {os.getloadavg()}")
    for i, tree in enumerate(trees):
        same = (
            ""
            if i == 0
            else f" (JSON {'identical' if outputs[tree] == outputs[trees[0]] else 'DIFFERENT'})"
        )
        print(f"tree {i}: {tree}{same}")
    width = max(len(name) for name in runs[trees[0]])
    print(
        f"{'median of ' + str(args.rounds) + ' rounds':{width}s}"
        + "".join(f"  tree {i:d}" for i in range(len(trees)))
    )
    for name in runs[trees[0]]:
        cells = "".join(f"  {statistics.median(runs[t][name]):6.2f}" for t in trees)
        print(f"{name:{width}s}{cells}")


if __name__ == "__main__":
    main()
