"""NumPy distillation of large inputs: time and peak memory (issue 13 follow-up).

    python benchmarks/bench_distill_numpy.py [--shapes 512x32000,4096x32000]
        [--dtype float32] [--temperature 2] [--repeats 3] [--no-torch]
        [--against PATH/TO/OTHER/src ...] [--rounds 3] [--clock wall|cpu] [--peaks]

``crossent.distillation_loss`` and ``crossent.distillation_loss_grad`` (``'mean'``,
teacher logits, standard normal logits times 3) of each shape, NumPy arrays of
``--dtype``; beside them, for reference, ``crossent.torch.distillation_loss`` of CPU
tensors, forward and backward (its fused op, ``torch._distill_cpu``; ``--no-torch``
leaves it out). Each case is called once first (compilation, caches), then timed
``--repeats`` times, the cases interleaved. With ``--against``, each tree runs in its
own process, alternating round by round (``_against.compare``): large calls of this
tree take the fused kernels (``losses._distill_fused``), a tree without them the full
path.

``--peaks``: the peak resident set (``VmHWM``, MiB) of a fresh process that makes the
inputs and makes one call of a case, for this tree and each of ``--against``; the
``inputs`` row is the process with the inputs alone, ``inputs+kernels`` with Numba and
the distillation kernels loaded too, and called on one row (what the fused path's
first call loads).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import crossent
from _against import add_options, compare, interleaved_times

KINDS = ("numpy loss", "numpy grad", "torch fwd+bwd")


def inputs(
    shape: tuple[int, int], dtype: str, masked: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits of ``shape``: standard normal times 3, in ``dtype``;
    the teacher ``-inf`` at a fraction ``masked`` of the classes, the same in every row
    (a masked vocabulary)."""
    rng = np.random.default_rng(0)
    z, v = (rng.standard_normal(shape, dtype=np.dtype(dtype).type) for _ in range(2))
    z *= 3.0  # (in place: no copy of the call's size beside the inputs)
    v *= 3.0
    v[:, rng.random(shape[1]) < masked] = -np.inf
    return z, v


def case(kind: str, z: np.ndarray, v: np.ndarray, temperature: float) -> Callable[[], object]:
    """One call of ``kind`` (:data:`KINDS`) on ``z`` and ``v``."""
    if kind == "numpy loss":
        return lambda: crossent.distillation_loss(z, v, temperature=temperature)
    if kind == "numpy grad":
        return lambda: crossent.distillation_loss_grad(z, v, temperature=temperature)
    import torch

    from crossent.torch import distillation_loss

    student, teacher = torch.from_numpy(z), torch.from_numpy(v)

    def torch_call() -> object:
        x = student.detach().requires_grad_()
        distillation_loss(x, teacher, temperature, "mean").backward()
        return x.grad

    return torch_call


def load_kernels() -> None:
    """Load (or compile) the forward and backward distillation kernels: one call each on
    a row of two classes."""
    kernels = importlib.import_module("crossent.losses._distill_numba")
    z, v, stats = np.zeros((1, 2)), np.zeros((1, 2)), np.empty((1, 5))
    kernels.distillation_forward_kernel(z, v, 1.0, stats)
    spread = np.zeros(1, dtype=np.bool_)
    kernels.distillation_backward_kernel(z, v, stats, 1.0, np.ones(1), np.empty((1, 2)), spread)


def vm_hwm_mib() -> float:
    """This process's peak resident set, MiB (``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"512x32000,4096x32000"`` as shapes."""
    return [(int(a), int(b)) for a, b in (s.split("x") for s in text.split(","))]


def peaks(args: argparse.Namespace, kinds: list[str]) -> None:
    """Print :func:`vm_hwm_mib` of a fresh process per tree, shape and case (``--peaks``)."""
    here = Path(__file__).resolve().parent
    trees = [str(here.parent / "src"), *args.against]
    print(f"peak resident set (VmHWM, MiB) of one call in a fresh process, {args.dtype}")
    for shape in parse_shapes(args.shapes):
        for kind in ["inputs", "inputs+kernels", *kinds]:
            cells = []
            for tree in trees:
                env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, str(here)]))
                command = [sys.executable, __file__, "--peak-of", kind, "--dtype", args.dtype]
                command += ["--shapes", "{}x{}".format(*shape)]
                command += ["--temperature", str(args.temperature)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                cells.append(f"{float(done.stdout.strip().splitlines()[-1]):8.0f}")
            print(f"  {shape[0]}x{shape[1]} {kind:14s}" + "".join(cells))
    for i, tree in enumerate(trees):
        print(f"  column {i}: {tree}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="512x32000,4096x32000")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--masked", type=float, default=0.0, help="teacher classes at -inf")
    parser.add_argument("--peaks", action="store_true", help="peak resident sets only")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)
    add_options(parser)
    args = parser.parse_args(argv)
    kinds = [k for k in KINDS if not (args.no_torch and k.startswith("torch"))]
    if args.peak_of:  # (a fresh process of ``peaks``)
        z, v = inputs(parse_shapes(args.shapes)[0], args.dtype)
        if args.peak_of == "inputs+kernels":  # (Numba and the distillation kernels loaded)
            load_kernels()
        elif args.peak_of != "inputs":
            case(args.peak_of, z, v, args.temperature)()
        print(vm_hwm_mib())
        return
    if args.peaks:
        peaks(args, kinds)
        return
    if args.against:
        own = ["--shapes", args.shapes, "--dtype", args.dtype, "--repeats", str(args.repeats)]
        own += ["--temperature", str(args.temperature), "--clock", args.clock]
        own += ["--no-torch"] if args.no_torch else []
        own += ["--masked", str(args.masked)]
        compare(__file__, own, args.against, args.rounds)
        return
    calls: dict[str, Callable[[], object]] = {}
    for shape in parse_shapes(args.shapes):
        z, v = inputs(shape, args.dtype, args.masked)
        for kind in kinds:
            calls[f"{shape[0]}x{shape[1]} {kind}"] = case(kind, z, v, args.temperature)
    report = interleaved_times(calls, args)
    if args.json:
        print(json.dumps(report))
        return
    print(crossent.__file__.split("/src/")[0], f"load {os.getloadavg()}")
    for name, times in report.items():
        print(
            f"  {name:28s} best {min(times):7.3f} s, median {sorted(times)[len(times) // 2]:7.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
