"""The fused distillation kernels (``losses._distill_numba``), per entry, one thread.

    PYTHONPATH=src python benchmarks/bench_distill_kernels.py [--against OTHER/src]
        [--shape 512x32000] [--temperatures 1,2] [--repeats 5] [--end-to-end]
        [--masked 0.1] [--reverse] [--spread 3] [--float32] [--close 0.3]

Float64 logits (the kernels' input: the op widens float32 rows to them) of N(0, 9),
student and teacher independent, so no row is near or far (``--masked``: that share
of the classes, the same in every row, at ``-inf`` on both sides). For each temperature, the
forward kernel (:math:`(D, m_z, \\ell_s, m_v, \\ell_t)` per row) and the backward kernel
(the gradient and the small-spread flags) are timed on the calling thread by its CPU
time (``time.thread_time``), the minimum of ``--repeats`` calls after a warm-up call
(the compilation or the cache load), and printed in ns per entry. ``--against`` runs the
script under each tree in turn, rounds interleaved (``_against.compare``), and prints
each case's best and median in ms per call.

``--reverse`` also times the reverse direction's statistics (the forward kernel of the
roles swapped, ``_distill_rows.reverse_statistics``) and its backward kernel
(``distillation_reverse_backward_kernel``, on the statistics of the forward kernel of the
roles swapped, as ``_distill_rows`` calls it). ``--float32``: the kernels read float32
rows (the torch op's float32 calls) and write a float32 gradient. ``--spread`` sets the
logits' standard deviation (3: no row is wide; 60: rows of 32 classes as
``check_distill_reverse_compiled.py``'s). ``--close``: the teacher is the student plus
that times N(0, 1) noise (a student near its teacher: every float64 row's
:math:`\\max_c|s_c - t_c|` below :math:`\\max_c t_c/2`, formed again by
``_exact_forward_row``, issue 13, branch distfwd1).

``--end-to-end`` also times ``crossent.torch.distillation_loss`` forward + backward of
float32 logits of the shape (``'mean'``, torch's default threads, wall seconds).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _against import add_options, compare


def _kernel_times(
    shape: tuple[int, int],
    temperatures: list[float],
    repeats: int,
    masked: float = 0.0,
    reverse: bool = False,
    spread: float = 3.0,
    float32: bool = False,
    close: float = 0.0,
) -> dict:
    """{case: [seconds, ...]} of each kernel at each temperature (thread CPU time)."""
    from crossent.losses import _distill_numba as kernels

    rows, classes = shape
    rng = np.random.default_rng(0)
    z = spread * rng.standard_normal((rows, classes), dtype=np.float32).astype(np.float64)
    v = spread * rng.standard_normal((rows, classes), dtype=np.float32).astype(np.float64)
    if close:
        v = z + close * rng.standard_normal((rows, classes))
    hidden = rng.permutation(classes)[: int(masked * classes)]
    z[:, hidden] = v[:, hidden] = -np.inf
    if float32:
        z, v = z.astype(np.float32), v.astype(np.float32)
    stats = np.empty((rows, 5))
    grad = np.empty_like(z)
    small = np.empty(rows, dtype=np.bool_)
    scale = np.ones(rows)
    times: dict[str, list[float]] = {}
    for t in temperatures:
        forward = times.setdefault(f"forward T={t:g}", [])
        backward = times.setdefault(f"backward T={t:g}", [])
        for i in range(repeats + 1):
            start = time.thread_time()
            kernels.distillation_forward_kernel(z, v, t, stats)
            middle = time.thread_time()
            kernels.distillation_backward_kernel(z, v, stats, t, scale, grad, small)
            stop = time.thread_time()
            if i:  # the first: the compilation or the cache load
                forward.append(middle - start)
                backward.append(stop - middle)
        if not reverse:
            continue
        from crossent.losses import _distill_rows

        # the reverse statistics as _distill_rows forms them (the roles swapped; since
        # branch distrev1 D(s || t) by the student's exact log-ratios)
        swapped = getattr(_distill_rows, "reverse_statistics", None)
        swapped = swapped or _distill_rows._reverse_statistics  # (the name before distrev1)
        stats6 = np.empty((rows, 6))
        runs = times.setdefault(f"reverse forward T={t:g}", [])
        for i in range(repeats + 1):
            start = time.thread_time()
            swapped(kernels.distillation_forward_kernel, z, v, t, stats6, False)
            if i:
                runs.append(time.thread_time() - start)
        kernels.distillation_forward_kernel(v, z, t, stats)  # (the roles swapped)
        stats[:, [1, 2, 3, 4]] = stats[:, [3, 4, 1, 2]]
        kernel = kernels.distillation_reverse_backward_kernel
        runs = times.setdefault(f"reverse backward T={t:g}", [])
        for i in range(repeats + 1):
            start = time.thread_time()
            kernel(z, v, stats, t, scale, grad, small)
            if i:
                runs.append(time.thread_time() - start)
    return times


def _end_to_end(shape: tuple[int, int], repeats: int) -> dict:
    """{case: [seconds, ...]} of the op's forward + backward (float32, T = 2, wall)."""
    import torch

    import crossent.torch as ct

    torch.manual_seed(0)
    z = 3.0 * torch.randn(shape)
    v = 3.0 * torch.randn(shape)
    runs = []
    for i in range(repeats + 1):
        x = z.clone().requires_grad_()
        start = time.perf_counter()
        ct.distillation_loss(x, v, temperature=2.0, reduction="mean").backward()
        if i:
            runs.append(time.perf_counter() - start)
    return {"op fwd+bwd T=2 (wall)": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512x32000")
    parser.add_argument("--temperatures", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--masked", type=float, default=0.0, help="classes at -inf, both sides")
    parser.add_argument("--reverse", action="store_true", help="the reverse backward kernel too")
    parser.add_argument("--spread", type=float, default=3.0, help="the logits' deviation")
    parser.add_argument("--float32", action="store_true", help="float32 rows")
    parser.add_argument("--close", type=float, default=0.0, help="teacher = student + noise")
    add_options(parser)
    args = parser.parse_args()
    if args.against:
        argv = ["--shape", args.shape, "--temperatures", args.temperatures]
        argv += ["--repeats", str(args.repeats)] + (["--end-to-end"] if args.end_to_end else [])
        argv += ["--masked", str(args.masked), "--spread", str(args.spread)]
        argv += ["--reverse"] if args.reverse else []
        argv += ["--float32"] if args.float32 else []
        argv += ["--close", str(args.close)] if args.close else []
        compare(__file__, argv, args.against, args.rounds)
        return
    rows, classes = (int(n) for n in args.shape.split("x"))
    temperatures = [float(t) for t in args.temperatures.split(",")]
    times = _kernel_times(
        (rows, classes),
        temperatures,
        args.repeats,
        args.masked,
        args.reverse,
        args.spread,
        args.float32,
        args.close,
    )
    if args.end_to_end:
        times.update(_end_to_end((rows, classes), args.repeats))
    if args.json:
        print(json.dumps(times))
        return
    for case, runs in times.items():
        per = "" if "wall" in case else f"  {min(runs) / (rows * classes) * 1e9:6.2f} ns/entry"
        print(f"{case:24s} {min(runs) * 1e3:9.2f} ms{per}")


if __name__ == "__main__":
    main()
