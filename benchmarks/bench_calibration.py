"""Streaming evaluation of 10^7 predictions x 10 classes: crossent against the anchors.

    python benchmarks/bench_calibration.py [--rows 10000000] [--classes 10] [--repeats 3]

Every contender runs in a fresh subprocess (so peak memory is its own: ``ru_maxrss``),
the contenders interleaved, ``--repeats`` times each; the report gives medians.

* ``crossent-stream``: data generated and fed in batches of 10^5 rows to
  ``EvaluationState`` (NLL, Brier, accuracy, calibration bins); the full data set never
  exists in memory.
* ``crossent-array``, ``sklearn``, ``torchmetrics``: the same float32 probabilities as
  one in-memory array (built before the timer starts); crossent and torchmetrics are fed
  batches of 10^5 rows, scikit-learn gets the whole array (``log_loss`` and
  ``brier_score_loss``: it has no calibration error).  torchmetrics computes
  ``MulticlassCalibrationError`` (15 bins, L1) only.

"extra MiB" is the peak resident memory minus the resident memory just before the timed
call, i.e. what the evaluation itself needs beyond its input.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from _machine import cpu_name

BATCH = 100_000


def _batches(rows: int, classes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Deterministic float32 probabilities and labels, drawn from the predictions."""
    for index, start in enumerate(range(0, rows, BATCH)):
        rng = np.random.default_rng(index)
        size = min(BATCH, rows - start)
        logits = (rng.normal(size=(size, classes)) * 2.5).astype(np.float32)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        labels = (probs.cumsum(axis=1) < rng.random((size, 1), dtype=np.float32)).sum(axis=1)
        yield probs, np.minimum(labels, classes - 1)


def _whole(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    probs = np.empty((rows, classes), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int64)
    for index, (p, y) in enumerate(_batches(rows, classes)):
        probs[index * BATCH : index * BATCH + p.shape[0]] = p
        labels[index * BATCH : index * BATCH + p.shape[0]] = y
    return probs, labels


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(name: str, rows: int, classes: int) -> dict[str, object]:
    import crossent

    data = None if name == "crossent-stream" else _whole(rows, classes)
    before = _rss_mib()
    if name == "torchmetrics":
        import torch  # imported before the timer: its import is not the metric's cost
        from torchmetrics.classification import MulticlassCalibrationError
    if name == "sklearn":
        from sklearn.metrics import brier_score_loss, log_loss
    before = _rss_mib()
    start = time.perf_counter()
    if name == "crossent-stream":
        state = crossent.EvaluationState(classes)
        for probs, labels in _batches(rows, classes):
            state.update(probs, labels)
        summary = state.compute()
        result = {"nll": summary.nll, "brier": summary.brier, "ece": summary.calibration.value}
    elif name == "crossent-array":
        probs, labels = data
        state = crossent.EvaluationState(classes)
        for s in range(0, rows, BATCH):
            state.update(probs[s : s + BATCH], labels[s : s + BATCH])
        summary = state.compute()
        result = {"nll": summary.nll, "brier": summary.brier, "ece": summary.calibration.value}
    elif name == "sklearn":
        probs, labels = data
        result = {
            "nll": log_loss(labels, probs, labels=range(classes)),
            "brier": brier_score_loss(labels, probs, labels=range(classes)),
        }
    else:
        probs, labels = data
        metric = MulticlassCalibrationError(num_classes=classes, n_bins=15, norm="l1")
        for s in range(0, rows, BATCH):
            metric.update(
                torch.from_numpy(probs[s : s + BATCH]), torch.from_numpy(labels[s : s + BATCH])
            )
        result = {"ece": float(metric.compute())}
    seconds = time.perf_counter() - start
    return {
        "name": name,
        "seconds": seconds,
        "extra_mib": _peak_mib() - before,
        "peak_mib": _peak_mib(),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.classes)))
        return
    names = ["crossent-stream", "crossent-array", "sklearn", "torchmetrics"]
    runs: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:
            command = [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--rows",
                str(args.rows),
                "--classes",
                str(args.classes),
            ]
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            runs[name].append(json.loads(out.stdout))
    print(
        f"# {args.rows} x {args.classes} float32, batches of {BATCH}; {cpu_name()}, "
        f"{platform.python_version()}, medians of {args.repeats}"
    )
    print("| contender | seconds | extra MiB | peak RSS MiB | NLL | Brier | ECE (L1, 15 bins) |")
    print("|---|---|---|---|---|---|---|")
    for name, results in runs.items():
        if not results:
            continue
        med = {
            k: statistics.median(float(r[k]) for r in results)
            for k in ("seconds", "extra_mib", "peak_mib")
        }
        last = results[-1]
        cells = [f"{last[k]:.6f}" if k in last else "-" for k in ("nll", "brier", "ece")]
        print(
            f"| {name} | {med['seconds']:.2f} | {med['extra_mib']:.0f} | {med['peak_mib']:.0f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
