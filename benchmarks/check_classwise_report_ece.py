"""Issue 13 (stop 74, branch platt2): the report's class-wise ``summary.calibration``
against ``to_dict()["ece"]["value"]`` and ``calibration_error(..., scope="class-wise")``.

Prints, for each case, the three numbers' largest relative difference and whether they
are the same bits.  Usage: ``python check_classwise_report_ece.py [--rows N ...]``.
"""

from __future__ import annotations

import argparse

import numpy as np

import crossent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 40_000, 210_001])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    worst = 0.0
    differ = cases = 0
    for n in args.rows:
        for classes in (3, 10):
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                probs = rng.dirichlet(np.full(classes, 0.3), size=n)
                labels = np.array([rng.choice(classes, p=p) for p in probs[: min(n, 2000)]])
                labels = np.concatenate([labels, rng.integers(0, classes, n - labels.size)])
                for norm, bins in (("l1", 15), ("l2", 7), ("max", 100)):
                    kw = {"scope": "class-wise", "norm": norm, "bins": bins}
                    rep = crossent.report(probs, labels, resamples=1, **kw)
                    summary = rep.summary.calibration.value
                    ece = rep.to_dict()["ece"]["value"]
                    direct = crossent.calibration_error(probs, labels, **kw).value
                    gap = max(abs(summary - direct), abs(ece - direct)) / abs(direct)
                    worst = max(worst, gap)
                    cases += 1
                    same = summary == ece == direct
                    differ += not same
                    print(
                        f"n={n} K={classes} seed={seed} {norm} bins={bins}: summary {summary!r} "
                        f"json {ece!r} function {direct!r} rel {gap:.2e} same={same}"
                    )
    print(f"{differ} of {cases} cases differ; worst relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
