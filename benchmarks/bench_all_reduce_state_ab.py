"""Issue 13 review of ``all_reduce_state``, A/B in one process: the cost of the checks.

    PYTHONPATH=src python benchmarks/bench_all_reduce_state_ab.py --base OTHER/src [--rounds 15]

This tree against another (``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``)
in a one-rank gloo group (``_machine.gloo_world_of_one``): this tree checks ``state`` and
``row_offset`` before the first collective and sends one more integer in its header. The
other tree's ``_distributed_state`` is loaded beside this one (``_machine.modules_beside``).
Thread CPU time, one torch thread, rounds interleaved: the minimum and median of the rounds
for 100 calls, with ``keep`` 10 (three collectives), 0 (two) and 10**6 (far above the
1000 rows: main sent ``keep`` slots a rank, 16 MB; now the rows kept).
"""

from __future__ import annotations

import numpy as np
import torch

import crossent
from crossent.torch import _distributed_state as new

from _machine import (
    ab_arguments,
    ab_row,
    gloo_world_of_one,
    interleaved_thread_times,
    modules_beside,
)

CALLS = 100
KEEPS = (10, 0, 10**6)


def main() -> None:
    args = ab_arguments(__doc__ or "")
    torch.set_num_threads(1)
    gloo_world_of_one()
    (old,) = modules_beside(args.base, "_distributed_state")
    rng = np.random.default_rng(0)
    cases = {}
    for keep in KEEPS:
        state = crossent.EvaluationState(100, keep=keep)
        state.update(rng.normal(size=(1000, 100)), rng.integers(0, 100, 1000), form="logits")
        for name, module in (("base", old), ("this", new)):
            cases[(keep, name)] = lambda m=module, s=state: [
                m.all_reduce_state(s, row_offset=5) for _ in range(CALLS)
            ]
    times = interleaved_thread_times(cases, args.rounds)
    print(f"| {CALLS} calls, 100 classes | base | this | this / base |")
    for keep in KEEPS:
        print(
            ab_row(f"keep={keep}", times[(keep, "base")], times[(keep, "this")], ("base", "this"))
        )


if __name__ == "__main__":
    main()
