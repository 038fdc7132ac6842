"""The measures of float32 inputs: time and error against float64.

Compare trees, interleaved, on a noisy machine (issue 13)::

    python benchmarks/bench_info_float32.py 20000 1000 --against /tmp/main_tree --rounds 3

(``--against``: other trees, or their ``src``; each tree runs in its own subprocess,
alternating round by round, see ``_against.py``; the table then has the times only.)

Per call (C-contiguous and Fortran-ordered float32 inputs): the best and the median of
``--repeats`` timings and the largest error in float32 ulps of the float64 call on the same stored
values (``validate=False``, as a training loop's metrics would call them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from _against import add_options, clock, compare


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = [str(args.rows), str(args.classes), "--repeats", str(args.repeats)]
        own += ["--clock", args.clock]
        compare(__file__, own, args.against, args.rounds)
        return
    rng = np.random.default_rng(0)
    shape = (args.rows, args.classes)
    z = (rng.standard_normal(shape) * 3).astype(np.float32)
    p = rng.dirichlet(np.ones(args.classes), args.rows).astype(np.float32)
    log_p = np.log(p)
    calls: dict[str, Callable[..., Any]] = {
        "entropy(logits)": lambda a, b, c: crossent.entropy(a, p_form="logits", validate=False),
        "cross_entropy(p, logits)": lambda a, b, c: crossent.cross_entropy(
            b, a, q_form="logits", validate=False
        ),
        "kl_divergence(logits, logits)": lambda a, b, c: crossent.kl_divergence(
            a, a[::-1], p_form="logits", q_form="logits", validate=False
        ),
        "kl_divergence(log_probs, log_probs)": lambda a, b, c: crossent.kl_divergence(
            c, c[::-1], p_form="log_probs", q_form="log_probs", validate=False
        ),
        "decomposition(logits, logits)": lambda a, b, c: np.stack(
            crossent.cross_entropy_decomposition(
                a, a[::-1], p_form="logits", q_form="logits", validate=False
            )
        ),
        # branch jsexact4: JS of mixed forms (random rows: P's probabilities and the
        # logits or log-probabilities of other rows)
        "js_divergence(p, logits)": lambda a, b, c: crossent.js_divergence(
            b, a[::-1], q_form="logits", validate=False
        ),
        "js_divergence(p, log_probs)": lambda a, b, c: crossent.js_divergence(
            b, c[::-1], q_form="log_probs", validate=False
        ),
        "js_divergence(logits, log_probs)": lambda a, b, c: crossent.js_divergence(
            a, c[::-1], p_form="logits", q_form="log_probs", validate=False
        ),
    }
    if not args.json:
        print(crossent.__file__.split("/src/")[0])
    report: dict[str, list[float]] = {}
    timer = clock(args)
    for name, call in calls.items():
        wide = (z.astype(np.float64), p.astype(np.float64), log_p.astype(np.float64))
        truth = np.asarray(call(*wide))
        unit = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
        for layout, arrays in {
            "C": (z, p, log_p),
            "F": tuple(np.asfortranarray(x) for x in (z, p, log_p)),
        }.items():
            times, got = [], None
            for _ in range(args.repeats):
                start = timer()
                got = call(*arrays)
                times.append(timer() - start)
            report[f"{name} {layout}"] = times
            if args.json:
                continue
            best, median = min(times), float(np.median(times))
            ulps = np.max(np.abs(np.asarray(got, np.float64) - truth) / unit)
            print(
                f"  {name:36s} {layout}: best {best * 1e3:8.2f} ms, median {median * 1e3:8.2f} ms,"
                f" max error {ulps:6.2f} ulps"
            )

    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
