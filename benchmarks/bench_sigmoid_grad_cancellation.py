"""``sigmoid_cross_entropy_grad`` of float32 soft targets, tree against tree: time and accuracy.

    PYTHONPATH=src python benchmarks/bench_sigmoid_grad_cancellation.py \\
        [--rows 4096] [--classes 32000] [--repeats 3] [--clock cpu] [--no-torch] \\
        [--float64] [--accuracy] [--against PATH/TO/OTHER/src ...] [--rounds 3]

Times (the first call of each case warms up, not counted): NumPy float32 logits
``rows x classes`` with uniform soft targets (``'mean'``), with ``pos_weight`` and class
weights, ``rows / 8`` rows with targets at :math:`\\sigma(x)` (every entry cancels: the
double-double path on each), a small call of 10 entries (1000 calls per run), and
(unless ``--no-torch``) ``crossent.torch.binary_cross_entropy_with_logits`` forward +
backward of ``rows / 4`` rows of torch float32 tensors; with ``--float64``, the soft and
the at-:math:`\\sigma(x)` calls again in float64. The worst case (every entry re-done)
against the common one: compare the at-:math:`\\sigma(x)` time with an eighth of the
soft time (the same entries per row). With ``--against`` the script
runs under each tree, alternating round by round (``_against.compare``).

``--accuracy`` instead prints, for 2000 hard entries (targets within 4 float32 ulps of the
gradient's zero, ``pos_weight`` and weights, ``'sum'``), the largest error in float32
ulps of mpmath's exact gradient of the float32 inputs: this tree's NumPy (Numba and
no-Numba) and torch paths and PyTorch's own float32 ``binary_cross_entropy_with_logits``
(the anchor).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import crossent
from _against import add_options, clock, compare


def _cases(rows: int, classes: int, float64: bool) -> dict[str, tuple[tuple, dict]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, classes), dtype=np.float32) * 3
    t = rng.random((rows, classes), dtype=np.float32)
    hard = x[: max(rows // 8, 1)]  # (every entry through the double-double: 1/8 of the rows)
    at_sigma = (1 / (1 + np.exp(-hard.astype(np.float64)))).astype(np.float32)
    pw = rng.uniform(0.5, 2.0, classes).astype(np.float32)
    w = rng.uniform(0.5, 2.0, classes).astype(np.float32)
    small_x, small_t = x[0, :10].copy(), t[0, :10].copy()
    cases = {
        "soft": ((x, t), {}),
        "soft pos_weight+weight": ((x, t), {"pos_weight": pw, "weight": w}),
        "t = sigmoid(x), rows / 8": ((hard, at_sigma), {}),
        "small 10 (x1000)": ((small_x, small_t), {}),
    }
    if float64:  # the same values in float64 (targets at the float64 sigma(x))
        x64, t64, hard64 = x.astype(np.float64), t.astype(np.float64), hard.astype(np.float64)
        cases["float64 soft"] = ((x64, t64), {})
        cases["float64 t = sigmoid(x), rows / 8"] = ((hard64, 1 / (1 + np.exp(-hard64))), {})
    return cases


def _time(args: argparse.Namespace) -> dict[str, list[float]]:
    timer = clock(args)
    times: dict[str, list[float]] = {}
    size = f"{args.rows} x {args.classes}"
    for name, (arrays, options) in _cases(args.rows, args.classes, args.float64).items():
        calls = 1000 if name.startswith("small") else 1
        runs = []
        for _ in range(args.repeats + 1):
            start = timer()
            for _ in range(calls):
                crossent.sigmoid_cross_entropy_grad(*arrays, **options)
            runs.append(timer() - start)
        label = name if name.startswith("small") else f"{size} {name}"
        times[f"numpy {label}"] = runs[1:]
    if not args.no_torch:
        import torch

        import crossent.torch as ct

        rows = max(args.rows // 4, 1)
        rng = np.random.default_rng(1)
        x = torch.from_numpy(rng.standard_normal((rows, args.classes), dtype=np.float32) * 3)
        t = torch.from_numpy(rng.random((rows, args.classes), dtype=np.float32))
        runs = []
        for _ in range(args.repeats + 1):
            z = x.clone().requires_grad_()
            start = timer()
            ct.binary_cross_entropy_with_logits(z, t).backward()
            runs.append(timer() - start)
        times[f"torch {rows} x {args.classes} fwd+bwd"] = runs[1:]
    return times


def _accuracy() -> None:
    import mpmath
    import torch

    import crossent.torch as ct
    from crossent.losses import _cpu_kernels

    n = 2000
    rng = np.random.default_rng(2)
    scales = np.array([1e-3, 0.5, 2.0, 8.0, 20.0, 60.0])
    x = (rng.standard_normal(n) * scales[rng.integers(0, scales.size, n)]).astype(np.float32)
    pw = rng.uniform(0.1, 6.0, n).astype(np.float32)
    w = rng.uniform(0.05, 5.0, n).astype(np.float32)
    zero = (1 / (1 + pw.astype(np.float64) * np.exp(-x.astype(np.float64)))).astype(np.float32)
    bits = np.clip(zero.view(np.int32) + rng.integers(-4, 5, n), 0, 0x3F800000)  # [0, 1]
    t = bits.astype(np.int32).view(np.float32)
    with mpmath.workprec(200):
        truth = []
        for xi, ti, pi, wi in zip(x.tolist(), t.tolist(), pw.tolist(), w.tolist(), strict=True):
            s = 1 / (1 + mpmath.exp(-mpmath.mpf(xi)))
            truth.append(wi * ((1 - mpmath.mpf(ti)) * s - pi * mpmath.mpf(ti) * (1 - s)))

    def errors(got: np.ndarray) -> np.ndarray:
        out = []
        with mpmath.workprec(200):
            for g, v in zip(np.asarray(got, np.float64).tolist(), truth, strict=True):
                spacing = max(float(np.spacing(np.abs(np.float32(float(v))))), 2.0**-149)
                out.append(float(abs(mpmath.mpf(g) - v)) / spacing)
        return np.array(out)

    kw = {"weight": w, "pos_weight": pw, "reduction": "sum"}
    rows = {"numpy (numba)": crossent.sigmoid_cross_entropy_grad(x, t, **kw)}
    available = _cpu_kernels.available
    _cpu_kernels.available = lambda: False
    rows["numpy (no numba)"] = crossent.sigmoid_cross_entropy_grad(x, t, **kw)
    _cpu_kernels.available = available
    tx, tt, tw, tp = (torch.from_numpy(a) for a in (x, t, w, pw))
    pairs = [("crossent.torch", ct.binary_cross_entropy_with_logits)]
    pairs += [("torch F (anchor)", torch.nn.functional.binary_cross_entropy_with_logits)]
    for name, fn in pairs:
        z = tx.clone().requires_grad_()
        fn(z, tt, tw, pos_weight=tp, reduction="sum").backward()
        rows[name] = z.grad.numpy()
    for name, got in rows.items():
        ulps = errors(got)
        print(
            f"{name:20s} float32 ulps: max {ulps.max():.4g}, median {np.median(ulps):.4g}, "
            f"{np.count_nonzero(ulps > 1)} of {n} entries over 1"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--float64", action="store_true", help="float64 cases too")
    parser.add_argument("--accuracy", action="store_true")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.accuracy:
        _accuracy()
        return
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--clock", args.clock]
        own += ["--no-torch"] if args.no_torch else []
        own += ["--float64"] if args.float64 else []
        compare(__file__, own, args.against, args.rounds)
        return
    times = _time(args)
    if args.json:
        print(json.dumps(times))
        return
    for name, runs in times.items():
        print(f"{name:55s} {min(runs) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
