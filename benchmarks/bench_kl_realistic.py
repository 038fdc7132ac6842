"""The KL of every pair of input forms on realistic rows (issue 13), thread CPU time.

    python benchmarks/bench_kl_realistic.py [PATH/TO/src ...] [--rows 1000]
        [--classes 1000] [--repeats 5]

P is the softmax of standard normal logits z, Q the softmax of z + s * noise for s = 1,
0.3 and 0.01 (KL about 0.5, 0.045 and 5e-5: a student and its teacher, two checkpoints,
nearly equal rows), both given as probabilities, logits or log-probabilities (float64,
the same numbers in each form).  For each source folder (default: this checkout's
``src``), in its own process, the script prints the minimum over ``--repeats`` of the
thread CPU time of ``kl_divergence(P, Q, p_form=..., q_form=...)`` for the nine pairs
of forms, in ms.  Run two copies alternately (say main's and a ``git archive`` of an
older commit) and compare: separate processes, so one's compiled kernels do not
disturb the other's.  Every KL crossent returns is certified to 2^-47 of itself or
computed by the exact sums, so the pairs differ in time only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

FORMS = ("probs", "logits", "log_probs")
SCALES = (1.0, 0.3, 0.01)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def measure(rows: int, classes: int, repeats: int) -> None:
    """Print one line per scale for the ``crossent`` on ``sys.path``."""
    import crossent

    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes))
    for scale in SCALES:
        z2 = z + scale * rng.standard_normal((rows, classes))
        sides = {
            "p": {"probs": np.exp(_log_softmax(z)), "logits": z, "log_probs": _log_softmax(z)},
            "q": {"probs": np.exp(_log_softmax(z2)), "logits": z2, "log_probs": _log_softmax(z2)},
        }
        cells = []
        for p_form in FORMS:
            for q_form in FORMS:
                p, q = sides["p"][p_form], sides["q"][q_form]
                crossent.kl_divergence(p, q, p_form=p_form, q_form=q_form)  # compile
                best = float("inf")
                for _ in range(repeats):
                    start = time.thread_time()
                    crossent.kl_divergence(p, q, p_form=p_form, q_form=q_form)
                    best = min(best, time.thread_time() - start)
                cells.append(f"{p_form}/{q_form} {best * 1e3:.0f}")
        print(f"s={scale}: " + ", ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="src folders (default: this checkout's)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.rows, args.classes, args.repeats)
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")
    print(f"{args.rows} x {args.classes} float64, thread CPU ms, min of {args.repeats}")
    for source in args.sources or [os.path.normpath(here)]:
        print(f"crossent from {source}", flush=True)
        env = dict(os.environ, PYTHONPATH=source)
        options = ["--rows", str(args.rows), "--classes", str(args.classes)]
        options += ["--repeats", str(args.repeats), "--child"]
        subprocess.run([sys.executable, __file__, *options], env=env, check=True)


if __name__ == "__main__":
    main()
