"""Issue 13 (stop 74, branch platt2; stop 75, branch platt3: 10^6 rows): CPU time of
``PlattScaling.fit`` on rows of which one is far on the wrong side of its label, and on
ordinary rows (the path unchanged).

Usage: ``python bench_platt_wrong_side.py [--against PATH_TO_OTHER_SRC]``: runs this
tree, and the other tree's ``src`` in a subprocess, and prints CPU seconds (min of 3),
slope, intercept and ``converged_``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings


def measure() -> list[list[object]]:
    import numpy as np

    import crossent

    out: list[list[object]] = []
    for n in (10**4, 10**5, 10**6):
        for far in (None, 1e10, 1.7e308):
            rng = np.random.default_rng(0)
            logits, labels = rng.normal(size=(n, 2)), rng.integers(0, 2, n)
            if far is not None:
                logits[0], labels[0] = (far, -far), 1
            best = float("inf")
            for _ in range(3):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.process_time()
                    fit = crossent.PlattScaling().fit(logits, labels)
                    best = min(best, time.process_time() - start)
            out.append([n, far, best, fit.slope_, fit.intercept_, fit.converged_])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    runs = {"this tree": measure()}
    if args.against:
        env = dict(os.environ, PYTHONPATH=args.against)
        text = subprocess.run(
            [sys.executable, __file__, "--child"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs[args.against] = json.loads(text)
    for name, rows in runs.items():
        print(name)
        for n, far, cpu, slope, intercept, converged in rows:
            print(
                f"  n={n:>6} far={far!s:>8}: {cpu:.4f} s CPU  slope {slope:.6g} "
                f"intercept {intercept:.6g} converged {converged}"
            )


if __name__ == "__main__":
    main()
