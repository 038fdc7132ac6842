"""Per-call time of distillation on rows near their teacher (issue 13 follow-up).

    python benchmarks/bench_distill_near_rows.py [--calls 1000] [--repeats 5]
        [--direction forward|reverse] [--against PATH/TO/OTHER/src ...] [--rounds 3]
        [--clock wall|cpu]

``crossent.distillation_loss`` and ``distillation_loss_grad`` (float64, ``validate=False``,
T = 1) on a row of 10 and on 64 x 100 standard normal student logits, against four
teachers: the student itself (bit for bit), the student plus 1e-3 standard normal
noise (a KL near 5e-7, below ``_near_rows.KL_FLOOR``, but a spread above
``SPREAD_FLOOR``: the loss takes the near rows, the gradient the common path), plus
1e-7 noise (both take the near rows), and an independent draw (ordinary rows); the
row of 10 also with ``validate=True`` (the default, ``+v``). Each case is timed as
``--calls`` calls in a row, ``--repeats`` times; the table's numbers are milliseconds
per ``--calls`` calls, so at the default 1000 calls they read as microseconds per call.
``--direction reverse`` times
``direction='reverse'`` (D(s || t): there the close and very close rows take
the near rows for the loss and the gradient alike, both flagged by the KL).
With ``--against``, each tree runs in its own process, alternating round by round
(``_against.compare``).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable

import numpy as np

import crossent
from _against import add_options, clock, compare


def cases(direction: str = "forward") -> dict[str, Callable[[], object]]:
    """The calls timed, by name: each case with ``validate=False``; a row of 10 also with
    the default validation (``+v``); in ``direction``."""
    rng = np.random.default_rng(0)
    # (forward by the default: no keyword, the lean path's default settings, as before)
    options = {} if direction == "forward" else {"direction": direction}
    calls: dict[str, Callable[[], object]] = {}
    for shape in ((10,), (64, 100)):
        z = rng.standard_normal(shape)
        teachers = {
            "identical": z.copy(),
            "close": z + 1e-3 * rng.standard_normal(shape),
            "very close": z + 1e-7 * rng.standard_normal(shape),
            "ordinary": rng.standard_normal(shape),
        }
        checks = (False, True) if len(shape) == 1 else (False,)
        for name, v in teachers.items():
            for validate in checks:
                label = f"{'x'.join(map(str, shape))} {name}{' +v' if validate else ''}"
                for kind, function in (("loss", _LOSS), ("grad", _GRADIENT)):
                    calls[f"{label} {kind}"] = functools.partial(
                        function, z, v, validate=validate, **options
                    )
    return calls


_LOSS = crossent.distillation_loss
_GRADIENT = crossent.distillation_loss_grad


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--direction", choices=("forward", "reverse"), default="forward")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--calls", str(args.calls), "--repeats", str(args.repeats), "--clock", args.clock]
        own += ["--direction", args.direction]
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    calls = cases(args.direction)
    for call in calls.values():  # (compilation, first-call caches)
        for _ in range(20):
            call()
    report: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):  # the cases interleaved, repeat after repeat
        for name, call in calls.items():
            start = timer()
            for _ in range(args.calls):
                call()
            report[name].append(timer() - start)
    if args.json:
        print(json.dumps(report))
        return
    print(crossent.__file__.split("/src/")[0])
    for name, times in report.items():
        print(f"  {name:32s} best {min(times) / args.calls * 1e6:8.1f} us a call")


if __name__ == "__main__":
    main(sys.argv[1:])
