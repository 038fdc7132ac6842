"""The softmax cross-entropy gradient with a z-loss, this tree against others (issue 13).

    git -C /work/main archive HEAD src | tar -x -C /tmp/base
    PYTHONPATH=src python benchmarks/bench_zloss_gradient.py --clock cpu --against /tmp/base

The label's entry with a z-loss takes :math:`c - t_y` from :math:`c`'s parts (a per-row
array more for the fused kernels, a few per-row operations on the other paths); this
times ``softmax_cross_entropy_grad`` with ``z_loss=1e-4`` (and 0, the control) on the
fused kernels (float32, 4096 x 32000 by default: ``--rows``, ``--classes``), the generic
path (float64, a quarter of the rows), and small calls (8 x 10, float32 and float64:
the compiled small calls; ``--calls`` calls a timing). Logits: standard normal x 3,
seed 0. Each case's seconds a call, ``--repeats`` timings a run; ``--against`` runs the
trees in turn (``_against.compare``), ``--clock cpu`` the process's CPU time (all
threads).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

import crossent
from _against import add_options, clock, compare


def _cases(args: argparse.Namespace) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    z32 = rng.standard_normal((args.rows, args.classes), dtype=np.float32) * 3
    y = rng.integers(0, args.classes, args.rows)
    rows64 = max(1, args.rows // 4)
    z64, y64 = z32[:rows64].astype(np.float64), y[:rows64]
    small32 = rng.standard_normal((8, 10), dtype=np.float32) * 3
    small64, small_y = small32.astype(np.float64), rng.integers(0, 10, 8)
    grad = crossent.softmax_cross_entropy_grad

    def repeated(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> None:
            for _ in range(args.calls):
                fn()

        return run

    return {
        f"float32 {args.rows}x{args.classes} z_loss=1e-4": lambda: grad(z32, y, z_loss=1e-4),
        f"float32 {args.rows}x{args.classes} z_loss=0": lambda: grad(z32, y),
        f"float64 {rows64}x{args.classes} z_loss=1e-4": lambda: grad(z64, y64, z_loss=1e-4),
        f"float32 8x10 z_loss=1e-4 (x{args.calls})": repeated(
            lambda: grad(small32, small_y, z_loss=1e-4)
        ),
        f"float64 8x10 z_loss=1e-4 (x{args.calls})": repeated(
            lambda: grad(small64, small_y, z_loss=1e-4)
        ),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--calls", str(args.calls), "--clock", args.clock]
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    times: dict[str, list[float]] = {}
    for name, fn in _cases(args).items():
        fn()  # warm-up: compilation, pages
        for _ in range(args.repeats):
            start = timer()
            fn()
            times.setdefault(name, []).append(timer() - start)
    if args.json:
        print(json.dumps(times))
    else:
        for name, runs in times.items():
            print(f"{name}: best {min(runs) * 1e3:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
