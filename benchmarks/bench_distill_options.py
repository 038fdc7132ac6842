"""Distillation of every ``teacher_form`` and ``direction``: torch, NumPy and PyTorch's idiom.

    python benchmarks/bench_distill_options.py [--shapes 256x1000] [--repeats 5]
        [--forms logits,probs,log_probs] [--directions forward,reverse]
        [--kinds torch-fwd,torch-fwdbwd,numpy-loss,numpy-lossgrad,plain-fwd,plain-fwdbwd]
        [--dtype float32] [--temperature 2] [--threads 2] [--saturated]
        [--against PATH/TO/OTHER/src ...] [--rounds 3]

Each case of each shape, form and direction (student logits and teacher logits standard
normal times 3; with ``--saturated`` the student's times 30 and the teacher's those plus
the first ones, both confident in one class on most rows; the teacher given as those
logits, ``softmax`` of them or ``log_softmax`` of them, in ``--dtype``),
``reduction='mean'``:

* ``torch-fwd``: ``crossent.torch.distillation_loss`` of a student that requires no
  gradient; ``torch-fwdbwd``: of one that does, and ``loss.backward()``;
* ``numpy-loss``: ``crossent.distillation_loss``; ``numpy-lossgrad``: it and
  ``crossent.distillation_loss_grad`` (what a training step needs);
* ``plain-fwd`` / ``plain-fwdbwd``: PyTorch's formula, eager, in the input dtype:
  forward ``T**2 * F.kl_div(F.log_softmax(z / T, 1), log_t, log_target=True,
  reduction="batchmean")``, reverse ``T**2 * (s * (log_s - log_t)).sum() / N`` with
  ``log_t = F.log_softmax(log(teacher) / T, 1)`` (``teacher.log()`` for
  probabilities, as it is for logits and log-probabilities).

Every call is timed twice at once: wall seconds and the process's CPU seconds (all
threads); the cases are named ``... [wall]`` and ``... [cpu]``. One warm-up call of
each case first (compilation, caches), then ``--repeats`` rounds, cases interleaved.
With ``--against``, each tree runs in its own process, alternating round by round
(``_against.compare``); the ``plain`` cases are the same code in every tree (a check
of the machine's drift between the trees' processes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

import crossent
from _against import add_options, compare
from crossent.torch import distillation_loss

from _machine import cpu_name, vector_width

FORMS = ("logits", "probs", "log_probs")
DIRECTIONS = ("forward", "reverse")
KINDS = ("torch-fwd", "torch-fwdbwd", "numpy-loss", "numpy-lossgrad", "plain-fwd", "plain-fwdbwd")


def inputs(
    shape: tuple[int, int], dtype: str, form: str, saturated: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Student logits and the teacher in ``form`` (standard normal logits times 3; with
    ``saturated``, the student's times 30 and the teacher's those plus standard normal
    ones times 3: most rows' top probabilities above 1/2 on both sides, in one class)."""
    rng = np.random.default_rng(0)
    z = 3.0 * rng.standard_normal(shape)
    v = 3.0 * rng.standard_normal(shape)
    if saturated:
        z = 10.0 * z
        v = z + v
    if form != "logits":
        v = torch.log_softmax(torch.from_numpy(v), 1).numpy()
        v = np.exp(v) if form == "probs" else v
    return z.astype(dtype), v.astype(dtype)


def plain(
    z: torch.Tensor, teacher: torch.Tensor, form: str, direction: str, temperature: float
) -> torch.Tensor:
    """PyTorch's formula (module docstring), eager, in the input dtype."""
    log_s = F.log_softmax(z / temperature, 1)
    scores = teacher.log() if form == "probs" else teacher
    log_t = F.log_softmax(scores / temperature, 1)
    if direction == "forward":
        kl = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    else:
        kl = (log_s.exp() * (log_s - log_t)).sum() / z.shape[0]
    return temperature**2 * kl


def case(
    kind: str, z: np.ndarray, v: np.ndarray, form: str, direction: str, temperature: float
) -> Callable[[], object]:
    """One call of ``kind`` (:data:`KINDS`)."""
    options = {"teacher_form": form, "direction": direction}
    if kind == "numpy-loss":
        return lambda: crossent.distillation_loss(z, v, temperature=temperature, **options)
    if kind == "numpy-lossgrad":

        def numpy_step() -> object:
            crossent.distillation_loss(z, v, temperature=temperature, **options)
            return crossent.distillation_loss_grad(z, v, temperature=temperature, **options)

        return numpy_step
    student, teacher = torch.from_numpy(z), torch.from_numpy(v)
    backward = kind.endswith("fwdbwd")

    def torch_step() -> object:
        x = student.detach().requires_grad_(backward)
        if kind.startswith("plain"):
            loss = plain(x, teacher, form, direction, temperature)
        else:
            loss = distillation_loss(x, teacher, temperature, "mean", **options)
        if backward:
            loss.backward()
        return loss

    return torch_step


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"256x1000,4096x32000"`` as shapes."""
    return [(int(a), int(b)) for a, b in (s.split("x") for s in text.split(","))]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="256x1000")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--saturated", action="store_true", help="confident rows (inputs)")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--shapes", args.shapes, "--dtype", args.dtype, "--repeats", str(args.repeats)]
        own += ["--temperature", str(args.temperature), "--forms", args.forms]
        own += ["--directions", args.directions, "--kinds", args.kinds]
        own += ["--threads", str(args.threads)] + (["--saturated"] if args.saturated else [])
        print(f"{cpu_name()}, {vector_width()}, {os.cpu_count()} CPUs; torch {torch.__version__}")
        compare(__file__, own, args.against, args.rounds)
        return
    torch.set_num_threads(args.threads)
    calls: dict[str, Callable[[], object]] = {}
    for shape in parse_shapes(args.shapes):
        for form in args.forms.split(","):
            z, v = inputs(shape, args.dtype, form, args.saturated)
            for direction in args.directions.split(","):
                for kind in args.kinds.split(","):
                    name = f"{shape[0]}x{shape[1]} {form:9s} {direction:7s} {kind}"
                    calls[name] = case(kind, z, v, form, direction, args.temperature)
    for call in calls.values():  # (compilation, first-call caches)
        call()
    report: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            report.setdefault(f"{name} [wall]", []).append(time.perf_counter() - wall)
            report.setdefault(f"{name} [cpu]", []).append(time.process_time() - cpu)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{crossent.__file__.split('/src/')[0]}: {cpu_name()}, load {os.getloadavg()}")
    for name, times in report.items():
        print(f"  {name:60s} best {min(times) * 1e3:9.2f} ms, median {np.median(times) * 1e3:9.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
