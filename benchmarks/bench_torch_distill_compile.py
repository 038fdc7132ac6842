"""``crossent.torch.distillation_loss`` under ``torch.compile``: ordinary rows, per call.

    PYTHONPATH=src python benchmarks/bench_torch_distill_compile.py [--against OTHER_TREE]

Ordinary float32 logits (standard normal x 3, nothing near or far), T = 2, ``'mean'``,
forward + backward of the student (the teacher requires no gradient), for
``torch.compile(fn)`` (Inductor, default mode) and the same function eagerly: 8 x 10
(200 calls per timing), 256 x 1000 (20 calls) and 4096 x 32000 (1 call). One torch
thread (Inductor's kernels too); thread CPU seconds of each timing, after a warm-up
call (the compilation). ``--against`` runs the script under each tree in turn
(``_against.compare``: this tree first), so that a tree whose compiled call breaks its
graph (main: 21 graphs) can be timed beside this one.

``--direction reverse`` times :math:`T^2 D(s\\,\\|\\,t)` instead (the default mode and
``--against``; issue 13, branch distrev1: compiled reverse calls take the fused CPU op).
``--shapes 512x32000,4096x32000`` times those shapes instead (one call per timing from
a million entries on). ``--versus-plain`` times eager calls only, beside PyTorch's own
idiom ``F.kl_div(F.log_softmax(z/T, 1), F.log_softmax(v/T, 1), log_target=True,
reduction='batchmean') * T*T`` (forward + backward), interleaved call by call, with
torch's default thread count and wall seconds; and the peak resident set (``VmHWM``)
of one call of each in a fresh process (``--peak-of``). An issue 13 follow-up: eager
distillation took 49 s at 4096 x 32000 on the 2-core machine where the idiom took 4.

With ``--versus-plain``, ``--dtypes float32,bfloat16`` times the logits in those dtypes
(cast from the same float32 values) and ``--compiled-plain`` adds the idiom under
``torch.compile`` (Inductor, one compilation per shape and dtype, before the timings).
``--breakdown`` times the parts of a call instead, one thread, thread CPU time
(:func:`parts`: the floor of one read and one write, each op alone, the compiled
idiom's forward alone; ``--shapes 1024x32000`` keeps it short). ``--peaks`` prints
only the peak resident sets (eager, idiom, compiled idiom) of each shape and dtype, a
fresh process each: run it under each tree (``PYTHONPATH``) to compare them. CPU calls
of crossent now take the fused op (``_distill_cpu``); time them against main's generic
path with ``--against``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 - the name everyone reads

import crossent.torch as ct
from _against import add_options, compare

PEAK_KINDS = ("eager", "plain", "compiled")
SHAPES = {"8 x 10": (8, 10, 200), "256 x 1000": (256, 1000, 20), "4096 x 32000": (4096, 32000, 1)}


DIRECTION = ["forward"]
"""``--direction``'s value (the default mode and ``--against`` only)."""


def loss_fn(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ct.distillation_loss(z, v, temperature=2.0, reduction="mean", direction=DIRECTION[0])


def plain_fn(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch's own idiom for the same loss (T = 2, ``'mean'``)."""
    t = 2.0
    student, teacher = F.log_softmax(z / t, 1), F.log_softmax(v / t, 1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * (t * t)


def shapes_of(text: str | None) -> dict[str, tuple[int, int, int]]:
    """``--shapes`` (``"512x32000,4096x32000"``) as :data:`SHAPES` is, or SHAPES."""
    if not text:
        return SHAPES
    shapes = {}
    for item in text.split(","):
        n, c = (int(x) for x in item.lower().split("x"))
        shapes[f"{n} x {c}"] = (n, c, max(1, min(200, 2_000_000 // (n * c))))
    return shapes


def peak_mib(kind: str, shape: tuple[int, int, int], dtype: str = "float32") -> float:
    """The peak resident set (``VmHWM``, MiB) of a fresh process that makes the inputs and
    one forward + backward call of ``kind`` (``eager``, ``plain`` or ``compiled``; the
    last after a call that compiles it)."""
    command = [sys.executable, __file__, "--peak-of", kind, "--shapes", f"{shape[0]}x{shape[1]}"]
    command += ["--dtypes", dtype]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def vm_hwm_mib() -> float:
    """This process's peak resident set, MiB (``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def versus_plain(
    shapes: dict[str, tuple[int, int, int]],
    repeats: int,
    dtypes: list[str],
    compiled_plain: bool,
) -> dict[str, list[float]]:
    """Wall seconds of eager ``crossent``, of :func:`plain_fn` and (``compiled_plain``)
    of ``torch.compile(plain_fn)``, interleaved, for each shape and dtype."""
    times: dict[str, list[float]] = {}
    kinds = [("eager", loss_fn), ("plain torch", plain_fn)]
    if compiled_plain:
        warnings.simplefilter("ignore")  # (Inductor's deprecation warnings)
        kinds.append(("compiled plain", torch.compile(plain_fn, dynamic=False)))
    for name, shape in shapes.items():
        for dtype in dtypes:
            z, v = logits(shape[0], shape[1], dtype)
            for _, fn in kinds:
                calls_of(fn, z, v, shape[2])  # (a warm-up; the compilation)
            for _ in range(repeats):
                for kind, fn in kinds:
                    start = time.perf_counter()
                    calls_of(fn, z, v, shape[2])
                    case = f"{name} {dtype} {kind}"
                    times.setdefault(case, []).append(time.perf_counter() - start)
    return times


def breakdown(shapes: dict[str, tuple[int, int, int]], repeats: int) -> dict[str, list[float]]:
    """Thread CPU seconds, one torch thread, of the parts of a forward + backward call
    (:func:`parts`) at each shape, each part after a warm-up call."""
    warnings.simplefilter("ignore")  # (Inductor's deprecation warnings)
    torch.set_num_threads(1)
    compiled = torch.compile(plain_fn, dynamic=False)
    times: dict[str, list[float]] = {}
    for name, (n, c, _) in shapes.items():
        for part, fn in parts(*logits(n, c), compiled).items():
            fn()  # (the compilation)
            for _ in range(repeats):
                start = time.thread_time()
                fn()
                times.setdefault(f"{name} {part}", []).append(time.thread_time() - start)
    return times


def parts(
    z: torch.Tensor, v: torch.Tensor, compiled: Callable[..., torch.Tensor]
) -> dict[str, Callable[[], object]]:
    """The parts of a call: the benchmark's fresh leaf (``clone``), the floor (one read
    of both inputs, one write of an N x V result: into fresh ``torch.empty`` memory, into
    fresh NumPy memory, into a reused buffer), crossent's forward op alone, its backward
    op alone, its forward + backward (no clone), and the idiom under ``torch.compile``
    (``compiled``): its forward alone (no gradient), its forward + backward (no clone)."""
    import numpy as np

    from crossent.torch import _distill_cpu

    n, c = z.shape
    reused = torch.empty(n, c)
    stats, kind = _distill_cpu.distillation_cpu_rows(z, v, 2.0)[1:3]  # (main's: 3 outputs)
    upstream = torch.full((n,), 1.0 / n, dtype=torch.float64)

    def compiled_forward() -> None:
        with torch.no_grad():
            compiled(z, v)

    def both(fn: Callable[..., torch.Tensor]) -> Callable[[], None]:
        return lambda: fn(z.detach().requires_grad_(), v).backward()

    return {
        "clone": z.clone,
        "floor, torch.empty": lambda: torch.sub(z, v, out=torch.empty(n, c)),
        "floor, NumPy memory": lambda: torch.sub(
            z, v, out=torch.from_numpy(np.empty((n, c), np.float32))
        ),
        "floor, reused buffer": lambda: torch.sub(z, v, out=reused),
        "crossent forward op": lambda: _distill_cpu.distillation_cpu_rows(z, v, 2.0),
        "crossent backward op": lambda: _distill_cpu.distillation_cpu_rows_backward(
            upstream, z, v, stats, kind, 2.0
        ),
        "crossent forward + backward": both(loss_fn),
        "compiled idiom forward": compiled_forward,
        "compiled idiom forward + backward": both(compiled),
    }


def logits(n: int, c: int, dtype: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """A pair of ordinary ``n x c`` logits (student, teacher), float32 values cast to
    ``dtype``."""
    g = torch.Generator().manual_seed(0)
    z, v = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    return z.to(getattr(torch, dtype)), v.to(getattr(torch, dtype))


def calls_of(
    loss: Callable[..., torch.Tensor], z: torch.Tensor, v: torch.Tensor, calls: int
) -> None:
    """``calls`` forward + backward calls of ``loss`` (a fresh student leaf each)."""
    for _ in range(calls):
        leaf = z.clone().requires_grad_()
        loss(leaf, v).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timings per case")
    parser.add_argument("--shapes", help="rows x classes, comma-separated: 512x32000,...")
    parser.add_argument("--versus-plain", action="store_true", help="eager vs F.kl_div")
    parser.add_argument("--dtypes", default="float32", help="with --versus-plain: a,b")
    parser.add_argument("--compiled-plain", action="store_true", help="time compiled F.kl_div")
    parser.add_argument("--breakdown", action="store_true", help="parts, thread CPU time")
    parser.add_argument("--peaks", action="store_true", help="peak resident sets only")
    parser.add_argument("--peak-kinds", default=",".join(PEAK_KINDS), help="with --peaks")
    parser.add_argument("--peak-of", choices=PEAK_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--direction", default="forward", choices=("forward", "reverse"))
    args = parser.parse_args()
    DIRECTION[0] = args.direction
    shapes = shapes_of(args.shapes)
    dtypes = args.dtypes.split(",")
    if args.peak_of:  # (a fresh process of peak_mib)
        z, v = logits(*next(iter(shapes.values()))[:2], dtypes[0])
        fn = {"eager": loss_fn, "plain": plain_fn}.get(args.peak_of)
        if fn is None:
            warnings.simplefilter("ignore")
            fn = torch.compile(plain_fn, dynamic=False)
            calls_of(fn, z[:8].clone(), v[:8].clone(), 1)  # (compiled on a small batch)
            torch._dynamo.reset()
            fn = torch.compile(plain_fn, dynamic=False)
        calls_of(fn, z, v, 1)
        print(vm_hwm_mib())
        return
    if args.peaks:
        print(f"peak resident set (VmHWM, MiB), one call in a fresh process; {ct.__file__}")
        for name, shape in shapes.items():
            for dtype in dtypes:
                kinds = args.peak_kinds.split(",")
                peaks = {kind: peak_mib(kind, shape, dtype) for kind in kinds}
                cells = ", ".join(f"{kind} {mib:.0f}" for kind, mib in peaks.items())
                print(f"{name} {dtype}: {cells}")
        return
    if args.against:
        argv = ["--repeats", str(args.repeats), "--dtypes", args.dtypes]
        argv += ["--direction", args.direction]
        argv += ["--shapes", args.shapes] if args.shapes else []
        argv += ["--versus-plain"] if args.versus_plain else []
        argv += ["--compiled-plain"] if args.compiled_plain else []
        argv += ["--breakdown"] if args.breakdown else []
        compare(__file__, argv, args.against, args.rounds)
        return
    if args.breakdown:
        report(breakdown(shapes, args.repeats), args.json, "1 thread, thread CPU time", 52)
        return
    if args.versus_plain:
        times = versus_plain(shapes, args.repeats, dtypes, args.compiled_plain)
        if args.json:
            print(json.dumps(times))
            return
        print(f"T=2, 'mean', forward + backward, {torch.get_num_threads()} threads")
        print(f"load {os.getloadavg()}")
        for case, seconds in times.items():
            median = sorted(seconds)[len(seconds) // 2]
            print(f"{case:40s} best {min(seconds):8.3f} s  median {median:8.3f} s")
        return
    warnings.simplefilter("ignore")  # (Inductor's deprecation warnings)
    torch.set_num_threads(1)
    compiled = torch.compile(loss_fn)
    times: dict[str, list[float]] = {}
    for name, shape in shapes.items():
        z, v = logits(shape[0], shape[1])
        for kind, fn in (("compiled", compiled), ("eager", loss_fn)):
            calls_of(fn, z, v, shape[2])  # (the compilation)
            case = f"{name} {kind}"
            times[case] = []
            for _ in range(args.repeats if shape[0] < 4096 else 2):
                start = time.thread_time()
                calls_of(fn, z, v, shape[2])
                times[case].append(time.thread_time() - start)
    report(times, args.json, "forward + backward, 1 thread", 28)


def report(times: dict[str, list[float]], as_json: bool, what: str, width: int) -> None:
    """Print ``times`` (seconds) as JSON or as each case's best in ms."""
    if as_json:
        print(json.dumps(times))
        return
    print(f"float32, T=2, 'mean', {DIRECTION[0]}, {what}; load {os.getloadavg()}")
    for case, seconds in times.items():
        print(f"{case:{width}s} best {min(seconds) * 1e3:10.2f} ms")


if __name__ == "__main__":
    main()
