"""`crossent report` at scale: 10^6 rows x 100 classes of float32 logits in one .npz.

    python benchmarks/bench_report.py [--rows 1000000] [--classes 100] [--models 2]

Writes the file (uncompressed ``np.savez``; about 400 MB) into a temporary folder, then
runs the installed ``crossent report FILE --json`` as a subprocess and reports its wall
time, CPU time (user + system, all threads) and peak resident memory (``ru_maxrss`` of
the child), with the targets of the issue: under 60 s and under 2 GB on the 2-core
machine.  On a shared machine the wall time follows the load; the CPU time does much
less.  ``--models 2`` (issue 14) also
writes a second model (the same logits at temperature 1.5) and times the comparison
``crossent report A B --json`` (each model's report plus the paired bootstrap).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import cpu_name


def write_file(path: Path, rows: int, classes: int, scale: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    logits = np.empty((rows, classes), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, 100_000):
        z = rng.normal(size=(min(100_000, rows - start), classes)).astype(np.float32) * 3
        p = np.exp(0.7 * (z - z.max(axis=1, keepdims=True)))
        p /= p.sum(axis=1, keepdims=True)
        logits[start : start + z.shape[0]] = z / scale
        labels[start : start + z.shape[0]] = np.minimum(
            (p.cumsum(axis=1) < rng.random((z.shape[0], 1))).sum(axis=1), classes - 1
        )
    np.savez(path, logits=logits, labels=labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--models", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    script = Path(sys.executable).with_name("crossent")
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"predictions{m}.npz" for m in range(args.models)]
        for m, path in enumerate(paths):
            write_file(path, args.rows, args.classes, scale=1.0 + 0.5 * m)
        size = paths[0].stat().st_size / 2**20
        load = os.getloadavg()[0]  # CPU time is the comparable number on a busy machine
        start = time.perf_counter()
        out = subprocess.run(
            [str(script), "report", *map(str, paths), "--json"], capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(out.stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    payload = json.loads(out.stdout)
    print(
        f"# {args.models} x {args.rows} x {args.classes} float32 logits, {size:.0f} MiB .npz "
        f"each; {cpu_name()}, Python {platform.python_version()}"
    )
    print(
        f"wall time {seconds:.1f} s (target < 60 s per model); CPU time (user + sys) "
        f"{cpu:.1f} s; peak RSS {peak:.0f} MiB; load average before {load:.2f}"
    )
    for report in payload.get("models", [payload]):
        print(
            f"accuracy {report['accuracy']:.4f}, NLL {report['nll_nats']:.4f} nats, "
            f"ECE {report['ece']['value']:.4f} [{report['ece']['ci_low']:.4f}, "
            f"{report['ece']['ci_high']:.4f}], smECE {report['smooth_ece']['value']:.4f}, "
            f"T {report['temperature']['value']:.4f}"
        )
    for entry in payload.get("comparisons", []):
        print(
            f"{entry['metric']}: difference {entry['difference']:.5f} "
            f"[{entry['ci_low']:.5f}, {entry['ci_high']:.5f}]"
        )


if __name__ == "__main__":
    main()
