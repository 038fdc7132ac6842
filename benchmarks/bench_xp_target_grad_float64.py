"""The soft targets' (or integer labels') gradient of float32 torch tensors, tree
against tree.

    PYTHONPATH=src python benchmarks/bench_xp_target_grad_float64.py \\
        [--rows 4096] [--classes 32000] [--repeats 3] [--clock cpu] [--labels] \\
        [--against PATH/TO/OTHER/src ...] [--rounds 3]

``crossent.softmax_cross_entropy_with_targets_grad`` of float32 torch logits and targets
through the top-level API (the generic path), with label smoothing, temperature and
z-loss, and with soft-capping too: the float64 call (``_widen.wide_float32``) against a
tree that computes it in float32. ``--labels``: ``crossent.softmax_cross_entropy_grad``
of integer labels instead, with the same options. With ``--against`` the script runs
under each tree, the trees alternating round by round (``_against.compare``).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

import crossent
from _against import add_options, clock, compare

OPTIONS = {
    "smooth+T+z": {"label_smoothing": 0.1, "temperature": 1.7, "z_loss": 1e-4},
    "smooth+T+z+cap": {
        "label_smoothing": 0.1,
        "temperature": 1.7,
        "z_loss": 1e-4,
        "soft_cap": 30.0,
    },
}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--labels", action="store_true")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--clock", args.clock]
        own += ["--labels"] if args.labels else []
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.standard_normal((args.rows, args.classes), dtype=np.float32) * 3)
    t = torch.softmax(z.double() / 1.7, dim=-1).float()
    t = t / t.sum(-1, keepdim=True)
    grad = crossent.softmax_cross_entropy_with_targets_grad
    if args.labels:
        t = torch.from_numpy(rng.integers(0, args.classes, size=args.rows))
        grad = crossent.softmax_cross_entropy_grad
    times: dict[str, list[float]] = {}
    for name, options in OPTIONS.items():
        runs = []
        for _ in range(args.repeats + 1):  # the first call warms up
            start = timer()
            grad(z, t, **options)
            runs.append(timer() - start)
        kind = "labels" if args.labels else "targets"
        times[f"torch {args.rows} x {args.classes} {kind} {name}"] = runs[1:]
    if args.json:
        print(json.dumps(times))
        return
    for name, runs in times.items():
        print(f"{name:55s} {min(runs) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
