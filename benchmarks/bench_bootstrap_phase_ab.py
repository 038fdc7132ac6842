"""The report's bootstrap phase in one process, tree against tree, interleaved (issue 13).

    python benchmarks/bench_bootstrap_phase_ab.py --against OTHER/src [--rounds 5]
        [--npz FILE]

What ``crossent report`` runs between its "bootstrap interval" and "temperature" marks
for top-label bins (``bench_report_phases``' phase "bootstrap interval, smECE"):
``binned_calibration_interval(conf, hits, spec, confidence=0.95, resamples=1000,
seed=0)`` (15 equal-width bins, L1) and ``smooth_calibration_of(conf, hits)``, on the
top-label confidences and hits of ``bench_report_phases``' logits (``--npz``, its
``logits_2000000x10.npz``; else ``bench_report_cases``' model, 2 x 10^6 x 10).  This
tree and the crossent under ``--against`` (imported as ``crossent_against``, as
``bench_evaluation`` does) are called in turn, the order reversed every other round;
CPU time of all threads (``time.process_time``), min and median.  The two intervals
are compared (their ``repr``).  Written for stop 64's question (branch evalspeed1,
2026-12-06): one ``bench_report_phases`` run had the phase 1.5 s of CPU above stop
63's; in one process, interleaved, it is not.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import crossent
from bench_evaluation import against
from bench_report_bootstrap import top_label
from bench_report_cases import _model


def rows(npz: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidences and hits (float64) of the report's logits."""
    if npz:
        with np.load(npz) as data:
            return top_label(data["logits"], data["labels"])
    return top_label(*_model(np.random.default_rng(0), 2_000_000, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, metavar="SRC")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--npz")
    args = parser.parse_args()
    other = against(args.against)
    conf, hits = rows(args.npz)
    calls: dict[str, Callable[[], object]] = {}
    for name, package in (("this tree", crossent), ("against", other)):
        boot = importlib.import_module(f"{package.__name__}.calibration._bootstrap")
        error = importlib.import_module(f"{package.__name__}.calibration._error")
        smooth = importlib.import_module(f"{package.__name__}.calibration._smooth")
        spec = error.check_spec(
            bins=15, binning="uniform", norm="l1", scope="top-label", debias=False, closed="left"
        )
        calls[f"{name}: interval"] = lambda boot=boot, spec=spec: boot.binned_calibration_interval(
            conf, hits, spec, confidence=0.95, resamples=1000, seed=0
        )
        calls[f"{name}: smooth ECE"] = lambda smooth=smooth: smooth.smooth_calibration_of(
            conf, hits, scope="top-label"
        )
    first = {key: call() for key, call in calls.items()}  # compiled or loaded
    same = repr(first["this tree: interval"]) == repr(first["against: interval"])
    print(f"intervals equal: {same}; load average {os.getloadavg()}")
    times: dict[str, list[float]] = {key: [] for key in calls}
    for r in range(args.rounds):
        for key in list(calls) if r % 2 == 0 else list(calls)[::-1]:
            start = time.process_time()
            calls[key]()
            times[key].append(time.process_time() - start)
    for key, seconds in times.items():
        print(f"{key}: min {min(seconds):.3f} median {statistics.median(seconds):.3f} s CPU")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
