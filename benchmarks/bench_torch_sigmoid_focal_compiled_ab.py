"""``crossent.sigmoid_focal_loss`` of PyTorch tensors under ``torch.compile``, forward and
backward, tree against tree (issue 13, branch focal3: at ``gamma > 0`` a traced call is
the custom op ``crossent::sigmoid_focal_terms_v1``, whose backward is the focal twin's
gradient on the host, where main's compiled graph differentiated the formula).

    cd benchmarks && PYTHONPATH=../src:. python bench_torch_sigmoid_focal_compiled_ab.py \\
        [--entries 1000000] [--repeats 5] [--clock cpu] [--against PATH/TO/OTHER/src] [--rounds 3]

Cases (each warmed up once: the compile): ``entries`` float32 logits (standard normal x 3)
with uniform soft targets, ``gamma=2``, ``reduction='sum'``, ``validate=False`` (a full
graph), the logits requiring a gradient, forward plus ``backward``, compiled with
``fullgraph=True`` by the backends ``aot_eager`` and ``inductor``; one thread.
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
    x = 3 * torch.randn(args.entries, generator=g, dtype=torch.float32)
    t = torch.rand(args.entries, generator=g, dtype=torch.float32)

    def loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return crossent.sigmoid_focal_loss(x, t, gamma=2.0, reduction="sum", validate=False)

    def case(backend: str) -> Callable[[], None]:
        compiled = torch.compile(loss, fullgraph=True, backend=backend)

        def run() -> None:
            xr = x.clone().requires_grad_()
            compiled(xr, t).backward()

        return run

    n = args.entries
    cases = {
        f"float32 {n} eager fwd+bwd": lambda: loss(x.clone().requires_grad_(), t).backward(),
        f"float32 {n} aot_eager fwd+bwd": case("aot_eager"),
        f"float32 {n} inductor fwd+bwd": case("inductor"),
    }
    time_cases(cases, args)


if __name__ == "__main__":
    main(sys.argv[1:])
