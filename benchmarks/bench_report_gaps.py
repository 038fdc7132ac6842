"""The report's gaps of issue 13, stop 63 (branch report3): ``calibration_error`` on
10^6 x 10 float32 (the exact bin means must not slow it), the class-wise bootstrap
interval and the HTML report with tens of thousands of occupied bins.

    python benchmarks/bench_report_gaps.py [--rows 1000000] [--classes 10]
        [--repeats 3] [--clock cpu] [--only NAME ...] [--against TREE ...] [--rounds 3]

Float32 probabilities (a softmax of N(0, 2) logits, labels drawn from them), made
before any timer starts.  Cases, each the best of ``--repeats`` calls after one warm-up:

* ``calibration_error``: ``crossent.calibration_error(probs, labels)`` (top-label,
  15 equal-width bins: the streamed path); ``... quantile`` and ``... class-wise``:
  the paths that keep the per-row confidences;
* ``class-wise interval``: ``bootstrap_interval("calibration_error", ...,
  scope="class-wise", bins=100, resamples=200)`` on 20 000 rows of 50 classes, and
  ``... 5000 bins`` (``bins=5000, resamples=50``: 250 000 cells, most of them empty);
* ``html 65536 bins``: ``report(...).to_html()`` of 10^5 rows of 10 classes with
  ``bins=65536`` (about 20 000 occupied bins), the report computed before the timer.

With ``--against`` each tree runs in its own process (``_against.compare``), the trees
alternating round by round.
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def data(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random((rows, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return p.astype(np.float32), np.minimum(labels, classes - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=[], help="cases whose name starts so")
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return

    import crossent

    probs, labels = data(args.rows, args.classes)
    wide, wide_labels = data(20_000, 50, seed=1)
    small, small_labels = data(100_000, 10, seed=2)
    cases = {
        "calibration_error": lambda: crossent.calibration_error(probs, labels),
        "calibration_error quantile": lambda: crossent.calibration_error(
            probs, labels, binning="quantile"
        ),
        "calibration_error class-wise": lambda: crossent.calibration_error(
            probs, labels, scope="class-wise"
        ),
        "class-wise interval": lambda: crossent.bootstrap_interval(
            "calibration_error",
            wide,
            wide_labels,
            scope="class-wise",
            bins=100,
            resamples=200,
        ),
        "class-wise interval 5000 bins": lambda: crossent.bootstrap_interval(
            "calibration_error",
            wide,
            wide_labels,
            scope="class-wise",
            bins=5000,
            resamples=50,
        ),
    }
    if not args.only or any("html".startswith(o) or o.startswith("html") for o in args.only):
        result = crossent.report(small, small_labels, bins=65536, resamples=10)
        cases["html 65536 bins"] = result.to_html
    if args.only:
        cases = {k: v for k, v in cases.items() if any(k.startswith(o) for o in args.only)}
    time_cases(cases, args)


if __name__ == "__main__":
    main()
