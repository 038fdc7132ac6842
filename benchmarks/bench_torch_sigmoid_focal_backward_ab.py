"""``crossent.sigmoid_focal_loss`` of PyTorch tensors, forward and backward, tree against
tree (issue 13, branch focal2: at ``gamma > 0`` the logits' gradient is the NumPy twin's,
refined where its two terms cancel, through ``crossent._torch_binary.BinaryFunction``,
instead of autograd's of the formula).

    cd benchmarks && PYTHONPATH=../src:. python bench_torch_sigmoid_focal_backward_ab.py \\
        [--entries 1000000] [--repeats 5] [--clock cpu] [--against PATH/TO/OTHER/src] [--rounds 3]

Cases (each warmed up once): ``entries`` float32 logits (standard normal x 3) with
uniform soft targets, ``gamma=2``, ``'mean'``, the logits requiring a gradient:
forward plus ``backward``; the same with ``alpha=0.25``; the same in float64.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

import crossent
from _against import add_options, compare_if_asked, time_cases


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args(argv)
    if compare_if_asked(args, __file__):
        return
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x64 = 3 * torch.randn(args.entries, generator=g, dtype=torch.float64)
    t64 = torch.rand(args.entries, generator=g, dtype=torch.float64)

    def case(dtype: torch.dtype, alpha: float | None) -> Callable[[], None]:
        x, t = x64.to(dtype), t64.to(dtype)

        def run() -> None:
            xr = x.clone().requires_grad_()
            crossent.sigmoid_focal_loss(xr, t, gamma=2.0, alpha=alpha).backward()

        return run

    n = args.entries
    cases = {
        f"float32 {n} fwd+bwd": case(torch.float32, None),
        f"float32 {n} alpha fwd+bwd": case(torch.float32, 0.25),
        f"float64 {n} fwd+bwd": case(torch.float64, None),
    }
    time_cases(cases, args)


if __name__ == "__main__":
    main(sys.argv[1:])
