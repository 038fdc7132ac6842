"""VectorScaling fit time on data that reach the separation check's later steps: CPU s.

    PYTHONPATH=../src:. python bench_vector_scaling_separation.py \\
        --against /tmp/vectorlp_base/src [--repeats 1] [--cases 0,1,...]

Each case runs in a fresh process per tree (this checkout's ``src``, then the tree of
``--against``, e.g. main's from ``git -C /work/main archive HEAD src | tar -x -C
/tmp/vectorlp_base``), one warm-up fit on a tiny problem (imports) then ``--repeats``
fits; prints the median process CPU time (``time.process_time()``: every thread, BLAS's
and HiGHS's too), ``separated_`` and which step decided (the certificate from the fit,
or the linear program, and its CPU seconds), so that a faster answer is seen to be the
same answer.

The cases (labels from the scores' argmax with a few flipped to another class, or drawn
from ``softmax(3 z)``): a well-trained model on its own training set with most but not
all rows confidently right (near-separated), scores multiplied by 1e3 (a temperature-like
extreme), few rows for many classes (scores of 100 classes, 300 rows), an ordinary
overlapping control, labels that a mixed-sign vector scaling ranks first (separated;
neither certificate applies and the linear program decides), those labels with 5 of
20 000 flipped over 100 classes (overlapping; up to stop 52 they reached the linear
program), and an ordinary 10 000 x 10 fit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CASES = [
    ("near-separated, 1 label flipped", 20_000, 10, "flip", 1),
    ("near-separated, 1% flipped", 20_000, 10, "flip", 200),
    ("near-separated, 1 label flipped", 2_000, 100, "flip", 1),
    ("near-separated, 1% flipped", 2_000, 100, "flip", 20),
    ("near-separated, 5 flipped", 5_000, 100, "flip", 5),
    ("scores x 1e3, labels ~ softmax(3 z)", 2_000, 100, "scaled", 1e3),
    ("few rows, labels ~ softmax(3 z)", 300, 100, "scaled", 1.0),
    ("overlapping control, labels ~ softmax(3 z)", 20_000, 10, "scaled", 1.0),
    ("separated by a mixed-sign scaling (no ranking shows it)", 20_000, 10, "mixed", 0.0),
    ("mixed-sign scaling's labels, 5 flipped (overlapping)", 20_000, 100, "mixed flip", 5),
    ("ordinary fit, labels ~ softmax(3 z)", 10_000, 10, "scaled", 1.0),
]


def data(index: int) -> tuple[np.ndarray, np.ndarray]:
    _, n, classes, kind, value = CASES[index]
    # (the flipped mixed-sign case: seed 0, whose data reached main's linear program at
    # stop 52; its own index's data were certified there)
    rng = np.random.default_rng(0 if kind == "mixed flip" else index)
    z = rng.normal(size=(n, classes))
    if kind == "flip":
        labels = z.argmax(axis=1)
        flipped = rng.choice(n, int(value), replace=False)
        labels[flipped] = (labels[flipped] + rng.integers(1, classes, flipped.size)) % classes
        return z, labels
    if kind == "mixed":  # labels = argmax of w z + b, w of both signs: the LP decides
        signs = np.where(np.arange(classes) % 2 == 0, 1.0, -1.0)
        labels = (z * signs * (1.0 + 0.1 * np.arange(classes))).argmax(axis=1)
        return z, labels
    if kind == "mixed flip":  # as "mixed" (every class a label), a few labels flipped
        signs = np.where(np.arange(classes) % 2 == 0, 1.0, -1.0)
        labels = (z * signs * (1.0 + 0.01 * np.arange(classes))).argmax(axis=1)
        flipped = rng.choice(n, int(value), replace=False)
        labels[flipped] = (labels[flipped] + rng.integers(1, classes, flipped.size)) % classes
        return z, labels
    p = np.exp(3 * z - (3 * z).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), classes - 1)
    labels[:classes] = np.arange(classes)  # every class the label somewhere
    return z * value, labels


def child(index: int, repeats: int) -> None:
    import crossent
    from crossent.calibration import _separation

    program = _separation._separated_by_program
    spent = [0.0]

    def timed_program(*args: object) -> bool:
        start = time.process_time()
        try:
            return program(*args)  # type: ignore[arg-type]
        finally:
            spent[0] += time.process_time() - start

    _separation._separated_by_program = timed_program  # type: ignore[assignment]
    z, labels = data(index)
    warm = np.random.default_rng(99).normal(size=(4 * z.shape[1], z.shape[1]))
    crossent.VectorScaling().fit(warm, np.arange(warm.shape[0]) % z.shape[1])
    seconds = []
    for _ in range(repeats):
        spent[0] = 0.0
        start = time.process_time()
        fit = crossent.VectorScaling().fit(z, labels)
        seconds.append(time.process_time() - start)
    print(
        json.dumps(
            {
                "cpu": statistics.median(seconds),
                "separated": fit.separated_,
                "program": spent[0],
                "scale0": float(fit.scale_[0]),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the other tree's src folder")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", default=",".join(str(i) for i in range(len(CASES))))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.repeats)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    ours = os.path.join(os.path.dirname(here), "src")
    from _machine import cpu_name

    print(f"CPU {cpu_name()}; ours {ours}, against {args.against}")
    print(
        "| case | rows x classes | against: CPU s (LP s) | ours: CPU s (LP s) | "
        "separated_ (against, ours) |"
    )
    print("|---|---|---:|---:|---|")
    for index in (int(i) for i in args.cases.split(",")):
        results = {}
        for name, tree in (("against", args.against), ("ours", ours)):
            env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{here}")
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--against",
                    args.against,
                    "--child",
                    str(index),
                    "--repeats",
                    str(args.repeats),
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
        case, n, classes = CASES[index][:3]
        a, o = results["against"], results["ours"]
        print(
            f"| {case} | {n} x {classes} | {a['cpu']:.2f} ({a['program']:.2f}) | "
            f"{o['cpu']:.2f} ({o['program']:.2f}) | {a['separated']}, {o['separated']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
