"""softmax_cross_entropy and its gradient against PyTorch on the CPU, side by side.

    python benchmarks/bench_softmax_ce.py [--rows 4096] [--classes 32000] [--repeats 5]
        [--turn 3] [--no-compile] [--no-numba] [--logits {random,peaked}]
        [--label-smoothing EPS] [--clock {wall,cpu}] [--no-torch]

NumPy float32 logits (standard normal x 3) and integer labels; the same data go to
torch as zero-copy tensors. ``--logits peaked`` models a trained, mostly right and
mostly confident model (a classifier or a language model's next-token logits): in 90 %
of the rows the label's logit is raised by 12 + 16 u (u uniform in [0, 1)) above the
same standard normal x 3 bulk, whose log-sum-exp is about 4.5 + log V (14.9 for 32000
classes), so the label's probability spans about 0.05 to 1 - 1e-6 and about 80 % of
the rows have an exp-sum s = sum_c e^(z_c - max z) below 4 (70 % below 1.5): the rows
the float32 kernels recompute (issue 13). The default, random logits, has s below 4 in
about 8 % of the rows. The fractions are printed. Implementations take turns,
``--repeats`` rounds of them, after a warm-up (which also compiles Numba and
torch.compile). A turn is ``--turn`` consecutive calls of one implementation, and all
but its first are timed: a training loop calls the same loss again and again, and the
first call after another library pays for memory that library has just freed. On the
KVM machine of RESULTS.md, fresh pages are expensive to touch (the host backs them
lazily), and with one call per turn whichever implementation allocated after the other
paid for it: shifting crossent's 500 MiB gradient result to a different allocator made
its own call 0.6 s faster and torch's forward+backward 1.0 s slower, so per-call
interleaving measured the order, not the implementations. The median of the timed
calls is reported. ``--no-numba`` times crossent as ``pip install crossent`` alone
gives it (the blocked NumPy kernels of issue 13), by making Numba unavailable to it.
Each timed call follows a 0.3 s pause: PyTorch's OpenMP workers spin for a while after
a call and, on 2 cores, steal time from whatever runs next (seen as a bimodal 0.4 s /
0.9 s gradient time without the pause).
Anchors: torch eager ``F.cross_entropy`` (forward) and forward + backward (gradient),
and the same under ``torch.compile``. The physical floor is one read of the logits
(``np.add.reduce``), on one thread and, as the issue's target counts it, on two
threads (each summing half of the rows; NumPy releases the GIL); ``np.max`` on two
threads is the faster read where the pairwise sum of ``np.add.reduce`` is itself
compute-bound (on the Xeon with AVX-512 of RESULTS.md it reads twice as fast). Peak
extra memory of every call is the larger of tracemalloc's peak and the rise of the peak
resident set size (which sees anonymous mappings and PyTorch's native allocations),
measured in a call of its own after the timings.

``--label-smoothing EPS`` gives every call (crossent's and torch's) that label smoothing
(issue 13: the smoothed gradient's own kernel); ``--clock cpu`` times each call by the
process's CPU time (all threads) instead of the wall clock; ``--no-torch`` leaves out
the torch contenders (an A/B of two crossent trees: run the script once per tree, with
``PYTHONPATH`` pointing at each, in turns).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import crossent
from crossent.losses import _cpu_kernels

from _machine import cpu_name, peak_mib, vector_width


def make_logits(rows: int, classes: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's float32 logits and labels (seed 0): ``kind`` "random" or "peaked"
    (see the module)."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((rows, classes), dtype=np.float32) * 3
    labels = rng.integers(0, classes, rows)
    if kind == "peaked":
        confident = np.flatnonzero(rng.random(rows) < 0.9)
        logits[confident, labels[confident]] += 12 + 16 * rng.random(confident.size, np.float32)
    return logits, labels


def main() -> None:
    import torch
    import torch.nn.functional as F  # noqa: N812 - the name everyone reads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--turn",
        type=int,
        default=3,
        help="consecutive calls per turn; all but the first are timed (1: time every call)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument(
        "--no-numba",
        action="store_true",
        help="crossent without Numba (the default install): its NumPy kernels",
    )
    parser.add_argument(
        "--logits",
        choices=("random", "peaked"),
        default="random",
        help="random: standard normal x 3; peaked: 90%% of the rows confident (see above)",
    )
    parser.add_argument(
        "--label-smoothing", type=float, default=0.0, help="label smoothing of every call"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time (the process's CPU time)",
    )
    parser.add_argument("--no-torch", action="store_true", help="crossent and the floor only")
    args = parser.parse_args()
    eps = args.label_smoothing
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.no_numba:
        _cpu_kernels.available = lambda: False  # type: ignore[method-assign]

    logits, labels = make_logits(args.rows, args.classes, args.logits)
    sums = np.concatenate(
        [
            np.exp(np.subtract(part, part.max(axis=1, keepdims=True), dtype=np.float64)).sum(1)
            for part in np.array_split(logits, max(1, args.rows // 64))
        ]
    )
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)
    buffer = np.empty_like(logits)  # the training-loop pattern: one gradient buffer, reused

    def smoothed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(a, b, label_smoothing=eps)

    def torch_forward_backward(fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        leaf = z.detach().requires_grad_(True)
        fn(leaf, y).backward()
        return leaf.grad

    cases: dict[str, dict[str, Callable[[], object]]] = {
        "forward (mean loss)": {
            "crossent": lambda: crossent.softmax_cross_entropy(logits, labels, label_smoothing=eps),
            "crossent validate=False": lambda: crossent.softmax_cross_entropy(
                logits, labels, validate=False, label_smoothing=eps
            ),
            "torch eager F.cross_entropy": lambda: F.cross_entropy(z, y, label_smoothing=eps),
        },
        "gradient (d mean loss / d logits)": {
            "crossent softmax_cross_entropy_grad": lambda: crossent.softmax_cross_entropy_grad(
                logits, labels, label_smoothing=eps
            ),
            "crossent grad into a reused out= buffer": lambda: crossent.softmax_cross_entropy_grad(
                logits, labels, out=buffer, label_smoothing=eps
            ),
            "torch eager forward+backward": lambda: torch_forward_backward(smoothed),
        },
    }
    if args.no_torch:
        for impls in cases.values():
            for name in [name for name in impls if "torch" in name]:
                del impls[name]
    elif not args.no_compile:
        compiled = torch.compile(smoothed)
        cases["forward (mean loss)"]["torch.compile"] = lambda: compiled(z, y)
        cases["gradient (d mean loss / d logits)"]["torch.compile forward+backward"] = lambda: (
            torch_forward_backward(compiled)
        )
    halves = (logits[: args.rows // 2], logits[args.rows // 2 :])
    pool = ThreadPoolExecutor(2)

    def on_two_threads(read: Callable[[np.ndarray], object]) -> list[object]:
        return list(pool.map(read, halves))

    floor = {
        "read the logits once (np.add.reduce)": lambda: np.add.reduce(logits, axis=None),
        "np.add.reduce, two threads": lambda: on_two_threads(
            lambda half: np.add.reduce(half, axis=None)
        ),
        "np.max, two threads": lambda: on_two_threads(np.max),
    }

    ours = crossent.softmax_cross_entropy(logits, labels, label_smoothing=eps)
    exact = crossent.softmax_cross_entropy(logits.astype(np.float64), labels, label_smoothing=eps)
    theirs = F.cross_entropy(z, y, label_smoothing=eps).item()
    grad = crossent.softmax_cross_entropy_grad(logits, labels, label_smoothing=eps)
    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), NumPy {np.__version__}, "
        f"fused kernels: {'Numba' if _cpu_kernels.available() else 'NumPy (no Numba)'}"
    )
    print(
        f"input: {args.rows} x {args.classes} float32 logits, {logits.nbytes / 2**20:.0f} MiB;"
        f" median of {args.repeats} turns x {max(args.turn - 1, 1)} timed calls"
        f" ({args.clock} time); label smoothing {eps}"
    )
    print(
        f"logits: {args.logits}; rows with exp-sum s < 4: {np.mean(sums < 4):.1%}, "
        f"s < 1.5: {np.mean(sums < 1.5):.1%}"
    )
    print(
        f"accuracy vs float64: crossent |err| {abs(float(ours) - exact):.2e}, "
        f"torch |err| {abs(theirs - exact):.2e}; gradient dtype {grad.dtype}\n"
    )
    results: dict[str, float] = {}
    print("| task | implementation | median s | crossent speed-up | peak extra MiB |")
    print("|---|---|---:|---:|---:|")
    for task, impls in [*cases.items(), ("floor", floor)]:
        for fn in impls.values():
            fn()  # warm-up and compilation
        times: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(args.repeats):
            for name, fn in impls.items():
                time.sleep(0.3)  # let the other library's worker threads stop spinning
                for call in range(args.turn):
                    start = clock()
                    fn()
                    if call or args.turn == 1:  # the first call of a turn is not timed
                        times[name].append(clock() - start)
        medians = {name: statistics.median(t) for name, t in times.items()}
        ours_name = next(iter(impls))
        for name, median in medians.items():
            ratio = median / medians[ours_name]
            peak = f"{peak_mib(impls[name]):.1f}"
            print(f"| {task} | {name} | {median:.4f} | {ratio:.2f}x | {peak} |")
        if task != "floor":
            results[task] = medians[ours_name]
    forward = results.get("forward (mean loss)")
    if forward is not None:
        for name, median in medians.items():  # the floor's
            print(f"crossent forward / {name}: {forward / median:.2f}x")
    pool.shutdown()


if __name__ == "__main__":
    main()
