"""``crossent.torch.cross_entropy`` in a training step beside PyTorch, by OpenMP waiting policy.

PyTorch's CPU wheels carry their own GNU libgomp (``torch/lib/libgomp.so.1``) and Numba's
``omp`` threading layer loads the system's: two OpenMP pools, each as wide as the machine,
whose idle threads spin after every parallel region (libgomp's default). crossent's
kernels run in parallel above ``crossent.losses._cpu_kernels.SERIAL_ELEMENTS`` logits.

Each case is one fresh process per environment (OpenMP reads its policy when it loads),
the environments interleaved round by round: forward + backward of ``cross_entropy``
(``label_smoothing=0.1``) on float32 logits of an LM's shape (batch x tokens, vocabulary),
crossent and ``torch.nn.functional.cross_entropy`` alternating in the process. Process
CPU time and wall time per call, the median of ``--calls`` calls.

Run: ``python benchmarks/bench_torch_omp_spin.py --rounds 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_CHILD = "--child"

#: (rows, classes): a tiny LM step (8 x 32 tokens, 512 words), a larger batch, a 32000
#: vocabulary.
_SHAPES = ((256, 512), (4096, 512), (512, 32000))

#: The processes compared: (environment, whether crossent runs too): libgomp's
#: default and its threads sleeping when idle, both losses alternating; PyTorch alone
#: (crossent never called: the training script before the switch).
_ENVIRONMENTS = {
    "default": ({}, True),
    "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, True),
    "default, torch alone": ({}, False),
}


def _child(calls: int, both: bool) -> None:
    """Time both losses (or PyTorch's alone) on each shape; print one JSON line."""
    import torch
    import torch.nn.functional as tf

    import crossent.torch as ct

    torch.manual_seed(0)
    out = {}
    for rows, classes in _SHAPES:
        z = torch.randn(rows, classes)
        y = torch.randint(0, classes, (rows,))
        n = calls if rows * classes < 4_000_000 else max(3, calls // 10)
        losses = (("crossent", ct.cross_entropy),) if both else ()
        losses += (("torch", tf.cross_entropy),)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in losses}
        for i in range(n + 2):
            for name, loss in losses:
                leaf = z.detach().requires_grad_()
                wall, cpu = time.perf_counter(), time.process_time()
                loss(leaf, y, label_smoothing=0.1).backward()
                if i >= 2:  # the first two: warm-up
                    times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        out[f"{rows}x{classes}"] = {
            name: [statistics.median(t[k] for t in pairs) * 1e3 for k in (0, 1)]
            for name, pairs in times.items()
        }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in _ENVIRONMENTS}
    for _ in range(args.rounds):
        for name, (extra, both) in _ENVIRONMENTS.items():
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update(extra)
            run = subprocess.run(
                [sys.executable, __file__, _CHILD, str(args.calls), str(int(both))],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"load {os.getloadavg()}; medians per call (ms), min over {args.rounds} rounds")
    print("| shape | environment | crossent wall | crossent CPU | torch wall | torch CPU |")
    print("|---|---|---:|---:|---:|---:|")
    for rows, classes in _SHAPES:
        shape = f"{rows}x{classes}"
        for name, runs in results.items():
            cells = [
                f"{min(r[shape][loss][k] for r in runs):.2f}" if loss in runs[0][shape] else "-"
                for loss in ("crossent", "torch")
                for k in (0, 1)
            ]
            print(f"| {shape} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == [_CHILD]:
        _child(int(sys.argv[2]), sys.argv[3] == "1")
    else:
        main()
