"""Evaluation speed (issue 13): the one-shot metrics and ``EvaluationState.update`` against
one read of the data, plain NumPy and torchmetrics, side by side in one process.

    python benchmarks/bench_evaluation.py [--rows 1000000] [--classes 10] [--repeats 5]
        [--against PATH/TO/OTHER/src]

The data are float32 probabilities (a softmax of Gaussian logits, normalised in
float64 and stored as float32) with labels drawn from them, built before any timer
starts.  The contenders run interleaved (each repeat calls every contender once, in
turn) so that drift in the machine's speed hits them all; the report gives the median
of ``--repeats`` runs, its ratio to the one-read floor, and the peak memory each call
allocates beyond its inputs (``_machine.peak_mib``: tracemalloc or the rise of the
resident set, whichever is larger).

* floor: one read of the probabilities, ``np.add.reduce(probs, axis=None)``.
* plain NumPy: ``-np.log(probs[np.arange(n), labels]).mean()``, the NLL with no
  validation (float32 log, no upcast).
* crossent: ``negative_log_likelihood``, ``brier_score``, ``calibration_error``
  (top-label, L1, 15 bins) and ``EvaluationState(classes).update`` (every metric of the
  state: NLL, Brier, spherical, entropy, accuracy, per-class NLL, bins, most
  surprising), all with their default arguments, validation included; and
  ``EvaluationState(classes, entropy=False).update`` (the same without the entropy, the
  one logarithm of every entry), where the package has that option.
* torchmetrics: ``multiclass_calibration_error(..., n_bins=15, norm="l1")`` on the same
  memory (``torch.from_numpy``), with its default ``validate_args=True``.

``--against`` times a second copy of crossent in the same run, interleaved with the
first: the ``crossent`` package under the given source folder (for instance main's,
``git archive main src | tar -x -C /tmp/main``), imported as ``crossent_against`` (a
copy of the package under a temporary folder; the package imports itself relatively),
its rows marked "(against)".  Both copies get the same data and the same floor, so
their ratios compare directly whatever the machine's load.

The issue 13 target: every crossent row within 3x of the floor and faster than
torchmetrics.  Timings on a shared machine are noisy: state the load with them.  The
"CPU s" column is the process's CPU time per call (all threads, ``time.process_time``):
the work done, which other processes on the machine disturb much less than the wall
clock; on an idle machine a call on 2 threads takes about half of it.  After
torchmetrics (the last contender of a round) the script sleeps 50 ms untimed: torch's
OpenMP worker spins some 3.5 ms of CPU after each call, which the floor's CPU time
(the next round's first) took before (2026-12-05, branch ``evalspeed``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

import crossent

from _machine import cpu_name, peak_mib, timed_seconds, vector_width


def data(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities ``(rows, classes)`` and labels drawn from them."""
    rng = np.random.default_rng(seed)
    probs = np.empty((rows, classes), dtype=np.float32)
    labels = np.empty(rows, dtype=np.int64)
    step = max(1, (1 << 20) // classes)
    for start in range(0, rows, step):
        logits = rng.normal(size=(min(step, rows - start), classes)) * 2.5
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        draw = rng.random((p.shape[0], 1))
        y = np.minimum((p.cumsum(axis=1) < draw).sum(axis=1), classes - 1)
        probs[start : start + p.shape[0]] = p
        labels[start : start + p.shape[0]] = y
    return probs, labels


def against(source: str) -> ModuleType:
    """The ``crossent`` package under the folder ``source``, imported as
    ``crossent_against`` (from a copy in a temporary folder named after ``source``, the
    files' times kept: Numba's on-disk cache of the copy hits in the next run)."""
    name = hashlib.sha1(os.path.abspath(source).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"crossent_against_{name}")
    shutil.copytree(
        os.path.join(source, "crossent"),
        os.path.join(folder, "crossent_against"),
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    sys.path.insert(0, folder)
    return importlib.import_module("crossent_against")


def metrics(
    package: Any, probs: np.ndarray, labels: np.ndarray, mark: str = ""
) -> dict[str, Callable[[], object]]:
    """The crossent contenders of ``package`` (names followed by ``mark``): the four
    above, and ``update`` of a state made with ``entropy=False`` where ``package`` has
    that option."""
    classes = probs.shape[1]
    out: dict[str, Callable[[], object]] = {
        f"negative_log_likelihood{mark}": lambda: package.negative_log_likelihood(probs, labels),
        f"brier_score{mark}": lambda: package.brier_score(probs, labels),
        f"calibration_error{mark}": lambda: package.calibration_error(probs, labels).value,
        f"EvaluationState.update{mark}": lambda: package.EvaluationState(classes).update(
            probs, labels
        ),
    }
    if "entropy" in inspect.signature(package.EvaluationState).parameters:
        out[f"EvaluationState(entropy=False).update{mark}"] = lambda: package.EvaluationState(
            classes, entropy=False
        ).update(probs, labels)
    return out


def contenders(
    probs: np.ndarray, labels: np.ndarray, other: ModuleType | None = None
) -> dict[str, Callable[[], object]]:
    classes = probs.shape[1]
    rows = np.arange(probs.shape[0])
    out: dict[str, Callable[[], object]] = {
        "floor: one read (np.add.reduce)": lambda: np.add.reduce(probs, axis=None),
        "plain NumPy NLL (no checks)": lambda: float(-np.log(probs[rows, labels]).mean()),
        **metrics(crossent, probs, labels),
    }
    if other is not None:
        out.update(metrics(other, probs, labels, " (against)"))
    try:
        import torch
        from torchmetrics.functional.classification import multiclass_calibration_error
    except ImportError:
        return out
    tprobs, tlabels = torch.from_numpy(probs), torch.from_numpy(labels)
    out["torchmetrics multiclass_calibration_error"] = lambda: float(
        multiclass_calibration_error(tprobs, tlabels, num_classes=classes, n_bins=15, norm="l1")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    parser.add_argument(
        "--against", metavar="SRC", help="also time the crossent package under SRC, interleaved"
    )
    args = parser.parse_args()

    probs, labels = data(args.rows, args.classes)
    other = against(args.against) if args.against else None
    cases = contenders(probs, labels, other)
    for fn in cases.values():
        fn()  # warm-up: imports, Numba compilation, page faults
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            start = time.process_time()
            times[name].append(timed_seconds(fn))
            cpu[name].append(time.process_time() - start)
            if name.startswith("torchmetrics"):
                # torch's OpenMP worker spins a few ms after its call (libgomp's wait):
                # let it stop before the next contender, the floor, whose CPU column
                # took that spinning (quiet machine: 0.0064 s of CPU for a 0.0024 s read)
                time.sleep(0.05)
    memory = {name: (0.0 if args.no_memory else peak_mib(fn)) for name, fn in cases.items()}

    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; Python {platform.python_version()}, "
        f"NumPy {np.__version__}; crossent from {os.path.dirname(crossent.__file__)}"
        + (f", against {os.path.dirname(other.__file__ or '')}" if other else "")
    )
    print(
        f"input: {args.rows} x {args.classes} float32 probabilities, "
        f"{probs.nbytes / 2**20:.0f} MiB; median of {args.repeats} interleaved runs\n"
    )
    print("| contender | median s | x floor | CPU s | CPU x floor | peak extra MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    floor = statistics.median(next(iter(times.values())))
    cpu_floor = statistics.median(next(iter(cpu.values())))
    for name, seconds in times.items():
        median, work = statistics.median(seconds), statistics.median(cpu[name])
        extra = "-" if args.no_memory else f"{memory[name]:.1f}"
        print(
            f"| {name} | {median:.4f} | {median / floor:.1f} | {work:.4f} | "
            f"{work / cpu_floor:.1f} | {extra} |"
        )


if __name__ == "__main__":
    main()
