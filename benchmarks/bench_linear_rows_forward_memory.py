"""Forward mode of ``linear_cross_entropy(..., reduction='none')``: peak memory and CPU time.

    PYTHONPATH=src python benchmarks/bench_linear_rows_forward_memory.py --base OTHER/src

This tree against another (``--base``, e.g. ``git -C /work/main archive HEAD src | tar -x
-C /tmp/base``): ``torch.func.jvp`` of the per-row losses in the hidden states, N = 4096
rows, D = 64, V = 32000 classes, float32. Each tree runs in a fresh process (its own
``crossent.torch``: the custom ops register once per process), one torch thread; the
figures are the process's peak resident memory above its level before the call
(``ru_maxrss``) and the call's process CPU time, the best of ``--rounds`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

N, D, V = 4096, 64, 32000


def _child(rounds: int) -> None:
    import torch

    import crossent.torch as ct

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, D, generator=g)
    w = torch.randn(V, D, generator=g) * 0.1
    y = torch.randint(0, V, (N,), generator=g)
    dh = torch.randn(N, D, generator=g)

    def rows(x: torch.Tensor) -> torch.Tensor:
        return ct.linear_cross_entropy(x, w, y[: x.shape[0]], reduction="none")

    torch.func.jvp(rows, (h[:64],), (dh[:64],))  # imports, first calls
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(rounds):
        start = time.process_time()
        torch.func.jvp(rows, (h,), (dh,))
        times.append(time.process_time() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rise_mib": (peak - before) / 1024, "cpu_s": min(times)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the other tree's src")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rounds)
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    print(f"jvp of linear_cross_entropy 'none', N={N} D={D} V={V} float32, 1 thread")
    for name, tree in (("this tree", here), ("base", args.base)):
        env = dict(os.environ, PYTHONPATH=tree)
        command = [sys.executable, __file__, "--base", args.base, "--child"]
        command += ["--rounds", str(args.rounds)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        found = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:>9}: peak rise {found['peak_rise_mib']:7.0f} MiB, CPU {found['cpu_s']:.2f} s")


if __name__ == "__main__":
    main()
