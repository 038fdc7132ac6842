"""Vocab-parallel linear cross-entropy against gathering the full logits, on 2 gloo ranks.

    python benchmarks/bench_vocab_parallel.py [--rows 4096] [--features 1024]
        [--classes 32000] [--ranks 2] [--steps 3] [--repeats 1]

Each rank holds half of the classifier's rows (``V / ranks`` of them) and the same hidden
states and labels (float32, CPU, one thread per rank). One step is a forward and a backward
that leaves ``dL/dh`` (the same on every rank), ``dL/dW_r`` and ``dL/db_r`` on each rank:

* ``crossent``: :func:`crossent.torch.vocab_parallel_linear_cross_entropy` (two all-reduces
  of ``N`` and ``3N + 1`` numbers in forward, one of ``N x D`` in backward);
* ``gather``: the local logits ``h W_r^T + b_r`` formed, ``all_gather``-ed into the full
  ``N x V`` logits on every rank, ``F.cross_entropy`` forward and backward on them, then
  the local slice of the logits' gradient gives ``dW_r``, ``db_r`` and this rank's part of
  ``dh``, which one ``all_reduce`` sums (what one writes without a vocab-parallel loss).

Each contender runs in its own pair of spawned processes, so the peak RSS is its own;
with ``--repeats R`` the contenders alternate (A B B A ...) ``R`` times each, so a change
in the machine's load falls on both, and the report gives each repeat.
"bytes" is the payload each rank hands to collectives per step (all-reduce: the
buffer; all-gather: the gathered output), counted by wrapping ``torch.distributed``;
a ring all-reduce moves about twice its buffer over the wire. Times are medians of
``--steps`` steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from _machine import cpu_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Bytes:
    """Wraps the collectives of torch.distributed and adds up their payloads."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.total = 0
        self.calls = 0
        self._dist = dist
        self._originals = {"all_reduce": dist.all_reduce, "all_gather": dist.all_gather}

        def all_reduce(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            self.total += tensor.nbytes
            self.calls += 1
            return self._originals["all_reduce"](tensor, *args, **kwargs)

        def all_gather(outputs: Any, tensor: Any, *args: Any, **kwargs: Any) -> Any:
            self.total += sum(t.nbytes for t in outputs)
            self.calls += 1
            return self._originals["all_gather"](outputs, tensor, *args, **kwargs)

        dist.all_reduce = all_reduce
        dist.all_gather = all_gather


def _step_crossent(h: Any, w: Any, b: Any, y: Any) -> Any:
    from crossent.torch import vocab_parallel_linear_cross_entropy

    for t in (h, w, b):
        t.grad = None
    loss = vocab_parallel_linear_cross_entropy(h, w, y, bias=b)
    loss.backward()
    return loss.detach()


def _step_gather(h: Any, w: Any, b: Any, y: Any) -> Any:
    import torch
    import torch.distributed as dist
    from torch.nn.functional import cross_entropy

    world, rank = dist.get_world_size(), dist.get_rank()
    local = torch.addmm(b.detach(), h.detach(), w.detach().T)
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    full = torch.cat(parts, dim=1).requires_grad_()
    del parts
    loss = cross_entropy(full, y)
    loss.backward()
    lo = rank * local.shape[1]
    g = full.grad[:, lo : lo + local.shape[1]]
    w.grad = g.T @ h.detach()
    b.grad = g.sum(dim=0)
    dh = g @ w.detach()
    dist.all_reduce(dh)
    h.grad = dh
    return loss.detach()


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=1800),
    )
    gen = torch.Generator().manual_seed(0)
    n, d, v = args.rows, args.features, args.classes
    h = torch.randn(n, d, generator=gen).requires_grad_()
    full_w = torch.randn(v, d, generator=gen) / d**0.5
    full_b = torch.randn(v, generator=gen) * 0.1
    y = torch.randint(0, v, (n,), generator=gen)
    lo, hi = rank * v // world, (rank + 1) * v // world
    w = full_w[lo:hi].clone().requires_grad_()
    b = full_b[lo:hi].clone().requires_grad_()
    del full_w, full_b
    step = {"crossent": _step_crossent, "gather": _step_gather}[args.contender]
    counter = _Bytes()
    loss = step(h, w, b, y)  # warm-up (and the cached size gather)
    counter.total = counter.calls = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.steps):
        dist.barrier()
        start = time.perf_counter()
        loss = step(h, w, b, y)
        times.append(time.perf_counter() - start)
    if rank == 0:
        out.put(
            {
                "contender": args.contender,
                "loss": float(loss),
                "seconds": statistics.median(times),
                "bytes_per_step": counter.total // args.steps,
                "collectives_per_step": counter.calls // args.steps,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_mib_before_timed_steps": rss_before / 1024,
            }
        )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import torch.multiprocessing as mp

    results = []
    order: list[str] = []
    for repeat in range(args.repeats):
        pair = ["crossent", "gather"]
        order += pair if repeat % 2 == 0 else pair[::-1]
    for contender in order:
        args.contender = contender
        queue = mp.get_context("spawn").SimpleQueue()
        mp.start_processes(
            _worker,
            args=(args.ranks, _free_port(), args, queue),
            nprocs=args.ranks,
            start_method="spawn",
        )
        results.append(queue.get())
    report = {
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "shape": {"N": args.rows, "D": args.features, "V": args.classes, "ranks": args.ranks},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n{'contender':<10} {'s/step':>8} {'MB sent/step':>13} {'collectives':>12} "
        f"{'peak RSS MiB':>13} {'loss':>10}"
    )
    for r in results:
        print(
            f"{r['contender']:<10} {r['seconds']:>8.2f} {r['bytes_per_step'] / 1e6:>13.2f} "
            f"{r['collectives_per_step']:>12} {r['peak_rss_mib']:>13.0f} {r['loss']:>10.6f}"
        )


if __name__ == "__main__":
    main()
