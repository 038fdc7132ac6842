"""``crossent.recalibration_gap`` and the report's temperature section: the cost of
summing the gap fold by fold (issue 13, branch calfix1).

    python benchmarks/bench_recalibration_gap.py [--rows 200000] [--repeats 3]
        [--clock cpu] [--against TREE ...] [--rounds 3]

Float32 logits, N(0, 1) times 3 (over-confident: every fold's temperature is interior,
so each held-out fold is read again at T = 1), labels drawn from the softmax of the
unscaled logits, made before any timer starts.  Cases, each the best of ``--repeats``
calls after one warm-up:

* ``gap, 10 classes``: ``recalibration_gap`` of ``--rows`` rows of 10 classes (the
  fused pass, no row memo: the extra pass at T = 1 is read from the logits);
* ``gap, 1000 classes``: of ``--rows // 100`` rows of 1000 classes (the row memo:
  a first pass over all rows at T = 1 keeps every row's numbers, which the training
  folds' first step and the held-out folds' NLL at T = 1 gather).

Since calfix1 the gap is the fold-by-fold sum of each held-out fold's NLL at T = 1
minus its NLL at the fitted T (one more pass over each held-out fold whose T is not 1),
where it was the NLL at T = 1 over all rows minus the cross-fitted NLL (one pass over
all rows).  With ``--against`` each tree runs in its own process, alternating.
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def data(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(rows, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1).clip(0, classes - 1)
    return (3 * logits).astype(np.float32), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return

    import crossent

    narrow = data(args.rows, 10)
    wide = data(args.rows // 100, 1000)
    cases = {
        "gap, 10 classes": lambda: crossent.recalibration_gap(*narrow),
        "gap, 1000 classes": lambda: crossent.recalibration_gap(*wide),
    }
    time_cases(cases, args)


if __name__ == "__main__":
    main()
