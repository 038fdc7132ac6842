"""CPU time of the probability-target check inside ``crossent::softmax_ce_probs_v3``.

    python benchmarks/bench_torch_target_checks.py [--rows 1024] [--classes 32000]

The forward of the op (``_launch.target_forward``) with and without the per-row flags
(``bad=``: the targets' amin, amax and float64 sum a block at a time,
``crossent.torch._targets``), alternating in one process on one thread, float32 logits
and softmax targets; the best of each's process CPU times and their ratio. The whole
step against main's tree: ``bench_torch_soft_targets.py --src src --other <main>/src``.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from crossent.torch import _backend, _launch
    from crossent.torch._arguments import call_options

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.rows, args.classes, generator=g) * 3
    t = torch.softmax(torch.randn(args.rows, args.classes, generator=g) * 3, -1)
    packed = call_options(
        ignore_index=-100,
        reduction="mean",
        label_smoothing=0.0,
        z_loss=0.0,
        soft_cap=None,
        temperature=1.0,
    ).packed()
    opts = _backend.unpack(packed)
    bad = torch.empty(args.rows, dtype=torch.bool)
    best = {"unchecked": float("inf"), "checked": float("inf")}
    for _ in range(args.repeats):
        for name, flags in (("unchecked", None), ("checked", bad)):
            start = time.process_time()
            _launch.target_forward(z, t, None, opts, bad=flags)
            best[name] = min(best[name], time.process_time() - start)
    ratio = best["checked"] / best["unchecked"]
    print(
        f"N={args.rows} C={args.classes} float32, forward of the op, 1 thread: "
        f"unchecked {best['unchecked']:.3f} s, checked {best['checked']:.3f} s CPU, "
        f"ratio {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
