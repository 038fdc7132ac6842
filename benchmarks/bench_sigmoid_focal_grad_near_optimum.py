"""Float64 ``sigmoid_focal_loss_grad`` at logits near its zero (a model near
convergence on soft targets), and at random logits, for an A/B of the refinement of
the cancelling entries (issue 13, branches focal2, focal3 and focal4: their cost).

    git -C /work/main archive main src | tar -x -C /tmp/main_tree
    PYTHONPATH=src python benchmarks/bench_sigmoid_focal_grad_near_optimum.py \\
        [--entries 20000] [--random-entries 200000] [--repeats 5] [--clock cpu] \\
        [--against /tmp/main_tree ...] [--rounds 3]

Soft targets uniform in [0.05, 0.95], ``gamma=2``, ``reduction='none'``; each entry's
root found by 80 bisection steps on the sign of the tree's own gradient, then logits at
the root plus normal noise of each scale (0.1, 0.01, 0.001, 1e-5). Prints the time per
call (``_against.time_cases``: the cases alternating); ``--against`` runs the same in a
fresh process per tree, the trees alternating. The random cases: ``--random-entries``
logits normal x 3 with soft targets uniform in [0, 1] (some entries cancel), and with
hard 0/1 targets (none does). ``--unrefined``: beside each case, the same call with
``_focal_root.refine`` replaced by the identity (in the same process, alternating): the
float64 formula alone, which is main's computation, so the ratio is the refinement's
cost free of the between-process noise of a loaded machine (in trees without
``_focal_root`` the twin is the same call).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from _against import add_options, compare_if_asked, time_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--random-entries", type=int, default=200000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--unrefined", action="store_true", help="twin cases without refine")
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return
    rng = np.random.default_rng(0)
    t = rng.uniform(0.05, 0.95, args.entries)

    def gradient(x: np.ndarray) -> Any:
        return crossent.sigmoid_focal_loss_grad(x, t, gamma=2.0, reduction="none")

    low, high = np.full(args.entries, -30.0), np.full(args.entries, 30.0)
    for _ in range(80):
        middle = (low + high) / 2
        below = gradient(middle) < 0
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    root = (low + high) / 2
    logits = {
        noise: root + rng.normal(0, noise, args.entries) for noise in (1e-1, 1e-2, 1e-3, 1e-5)
    }
    cases = {f"noise {noise:g}": lambda x=x: gradient(x) for noise, x in logits.items()}
    x = rng.standard_normal(args.random_entries) * 3
    soft = rng.random(args.random_entries)
    hard = (rng.random(args.random_entries) < 0.1).astype(np.float64)
    for name, targets in (("random soft", soft), ("random hard", hard)):
        cases[name] = lambda targets=targets: crossent.sigmoid_focal_loss_grad(
            x, targets, gamma=2.0, reduction="none"
        )
    if args.unrefined:
        cases = _with_unrefined(cases)
    time_cases(cases, args)


def _with_unrefined(cases: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """Each case and its twin with ``_focal_root.refine`` the identity (where the tree
    has no ``_focal_root``, as main, the twin is the same call: nothing to leave out)."""
    try:
        from crossent.losses import _focal_root
    except ImportError:
        return {
            k: v for name, fn in cases.items() for k, v in ((name, fn), (f"{name} (unrefined)", fn))
        }

    def unrefined(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            saved = _focal_root.refine
            _focal_root.refine = lambda grad, *_: grad  # type: ignore[assignment]
            try:
                return fn()
            finally:
                _focal_root.refine = saved

        return run

    out: dict[str, Callable[[], Any]] = {}
    for name, fn in cases.items():
        out[name], out[f"{name} (unrefined)"] = fn, unrefined(fn)
    return out


if __name__ == "__main__":
    main()
