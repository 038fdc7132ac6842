"""Issue 13: the cost of the agreement (one all-gather of 16 integers a rank), A/B on gloo ranks.

    PYTHONPATH=src python benchmarks/bench_distributed_agreement_ab.py --base OTHER/src
        [--ranks 2] [--rounds 7]

This tree against another (``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``),
each tree's ``_vocab_parallel`` and ``_distributed_state`` loaded side by side in the same
spawned gloo ranks (``_machine.modules_beside``; one torch thread a rank, CPU): the
forward of :func:`vocab_parallel_cross_entropy` (float32 logits, no gradient) at a small
size, where the collectives' latency is the whole cost, and a larger one, and
:func:`all_reduce_state` (100 classes, ``keep=10``). Medians over ``--rounds`` turns of a
batch of calls (the trees interleaved, after one warm-up batch each) of the wall clock
and of the calling thread's CPU time (the waiting in collectives is wall, not CPU); every
rank runs the same turns, rank 0 prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from _machine import cpu_name, modules_beside

#: (rows, classes per rank, calls per timed batch) of the vocab-parallel cases.
SIZES = ((16, 128, 200), (1024, 8000, 5))


def _rank(rank: int, world: int, port: int, base: str, rounds: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    import crossent
    from crossent.torch import _distributed_state, _vocab_parallel

    old_vp, old_state = modules_beside(base, "_vocab_parallel", "_distributed_state")
    trees = {"base": (old_vp, old_state), "this": (_vocab_parallel, _distributed_state)}
    g = torch.Generator().manual_seed(rank)
    calls = {}
    for rows, width, batch in SIZES:
        z = torch.randn(rows, width, generator=g) * 3
        y = torch.randint(0, width * world, (rows,), generator=torch.Generator().manual_seed(0))
        for name, (vp, _) in trees.items():

            def run(
                vp: object = vp, z: torch.Tensor = z, y: torch.Tensor = y, n: int = batch
            ) -> None:
                with torch.no_grad():
                    for _ in range(n):
                        vp.vocab_parallel_cross_entropy(z, y)  # type: ignore[attr-defined]

            calls[(f"vocab_parallel_cross_entropy N={rows} V_r={width} x{batch}", name)] = run
    rng = np.random.default_rng(rank)
    state = crossent.EvaluationState(100, keep=10)
    state.update(rng.normal(size=(1000, 100)), rng.integers(0, 100, 1000), form="logits")
    for name, (_, st) in trees.items():

        def merge(st: object = st) -> None:
            for _ in range(100):
                st.all_reduce_state(state)  # type: ignore[attr-defined]

        calls[("all_reduce_state 100 classes keep=10 x100", name)] = merge
    wall: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for key, fn in calls.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.thread_time() - start_cpu)
    if rank == 0:
        print(f"{world} gloo ranks on one machine ({cpu_name()}), 1 torch thread a rank")
        print(
            "| case | wall base / this (s) | per call (us) | CPU base / this (s) | per call (us) |"
        )
        print("|---|---|---|---|---|")
        for case in dict.fromkeys(c for c, _ in calls):
            n = int(case.rsplit("x", 1)[1])
            row = f"| {case} "
            for table in (wall, cpu):
                a = statistics.median(table[(case, "base")])
                b = statistics.median(table[(case, "this")])
                row += f"| {a:.4f} / {b:.4f} | {(b - a) / n * 1e6:+.0f} "
            print(row + "|")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="the other tree's src folder")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(args.ranks, port, args.base, args.rounds), nprocs=args.ranks)


if __name__ == "__main__":
    main()
