"""Per-call CPU time of small crossent.torch calls (forward + backward), for overheads.

    PYTHONPATH=<tree>/src python benchmarks/bench_torch_call_overhead.py [--calls 2000]

Small problems (64 x 100 logits; linear 64 x 32 hidden, 100 classes, float32), where a
Python-level change per call (a check, a dispatch decision) shows; CPU time
(``time.process_time``, all threads), the median of 5 rounds of ``--calls`` calls, in
microseconds per call. Run it once per tree to compare (e.g. main's tree from
``git archive``), on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import crossent.torch as ct


def _per_call(fn: object, calls: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        rounds.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 100, generator=g).requires_grad_()
    y = torch.randint(0, 100, (64,), generator=g)
    t = torch.softmax(torch.randn(64, 100, generator=g), 1)
    h = torch.randn(64, 32, generator=g).requires_grad_()
    w = torch.randn(100, 32, generator=g).requires_grad_()
    cases = {
        "cross_entropy class ids": lambda: ct.cross_entropy(z, y).backward(),
        "cross_entropy probs": lambda: ct.cross_entropy(z, t).backward(),
        "linear_cross_entropy": lambda: ct.linear_cross_entropy(h, w, y).backward(),
        "binary_cross_entropy_with_logits": lambda: ct.binary_cross_entropy_with_logits(
            z, t
        ).backward(),
    }
    print("| call (fwd+bwd, float32, 1 thread) | CPU us / call |")
    print("|---|---:|")
    for name, fn in cases.items():
        fn()
        print(f"| {name} | {_per_call(fn, args.calls):.0f} |")


if __name__ == "__main__":
    main()
