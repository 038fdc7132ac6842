"""Per-call overhead of every measure and loss on small inputs (issue 13, "Small inputs").

    python benchmarks/bench_small_inputs.py [--number 2000] [--repeats 7] [--only NAME]
        [--clock wall|cpu] [--stat min|median] [--against PATH/TO/OTHER/src]

Target: under 10 us per call on a row of 10 classes with ``validate=False`` and under
20 us with validation. Each public measure and loss is called on a float64 row of 10
(losses also on (1, 10) and (8, 10) logits with integer labels or soft targets; the
softmax cross-entropy, focal, poly-1, soft-target and distillation losses and their
gradients on float32 logits, and float32 targets, too), with and without validation, next to
anchors: ``scipy.stats.entropy``, ``scipy.special.rel_entr`` summed, the bare NumPy
expression, and ``torch.nn.functional.cross_entropy`` on a (1, 10)
tensor where torch is installed.

Timing: ``timeit`` with ``number`` calls per repeat; the table gives the minimum over
the repeats (the least disturbed by other work on the machine; ``--stat median``: the
median) in microseconds per call. The repeats are interleaved across all cases (case
A, case B, ..., then again) so that slow spells of a loaded machine hit every case
alike. Numbers from one run compare with each other; between runs, compare only
back-to-back runs and state the load (the script prints the load average). Two trees
run one after the other in separate processes disagreed by up to 2 us on unchanged
calls (2-core Xeon, 2026-12-01); to compare two versions, ``--against`` imports a
second copy of crossent into the same process and interleaves its calls with this
tree's (extra columns), as ``bench_evaluation`` does.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import timeit
from collections.abc import Callable
from types import ModuleType

import numpy as np
import scipy
import scipy.special
import scipy.stats

import crossent

from _machine import cpu_name

TARGET_UNVALIDATED_US = 10.0
TARGET_VALIDATED_US = 20.0

Call = Callable[[], object]


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10))
    q = rng.dirichlet(np.ones(10))
    logits1 = rng.standard_normal((1, 10))
    logits8 = rng.standard_normal((8, 10))
    return {
        "p": p,
        "q": q,
        "z": rng.standard_normal(10),
        "logits1": logits1,
        "labels1": np.array([3]),
        "targets1": rng.dirichlet(np.ones(10), size=1),
        "logits8": logits8,
        "labels8": rng.integers(0, 10, size=8),
        "targets8": rng.dirichlet(np.ones(10), size=8),
        "binary": rng.uniform(0.05, 0.95, size=10),
        "binary_targets": (rng.uniform(size=10) < 0.5).astype(np.float64),
    }


def _crossent_cases(
    x: dict[str, np.ndarray], c: ModuleType = crossent
) -> list[tuple[str, str, Callable[[bool], object]]]:
    """(function, input, call(validate)) for every public measure and loss of the
    package ``c``."""
    p, q, z = x["p"], x["q"], x["z"]
    b, bt = x["binary"], x["binary_targets"]
    cases: list[tuple[str, str, Callable[[bool], object]]] = [
        ("entropy", "(10,) probs", lambda v: c.entropy(p, validate=v)),
        ("entropy", "(10,) logits", lambda v: c.entropy(z, p_form="logits", validate=v)),
        ("cross_entropy", "(10,) probs", lambda v: c.cross_entropy(p, q, validate=v)),
        (
            "cross_entropy",
            "(10,) q logits",
            lambda v: c.cross_entropy(p, z, q_form="logits", validate=v),
        ),
        ("kl_divergence", "(10,) probs", lambda v: c.kl_divergence(p, q, validate=v)),
        ("js_divergence", "(10,) probs", lambda v: c.js_divergence(p, q, validate=v)),
        ("perplexity", "(10,) probs", lambda v: c.perplexity(p, validate=v)),
        (
            "cross_entropy_decomposition",
            "(10,) probs",
            lambda v: c.cross_entropy_decomposition(p, q, validate=v),
        ),
        ("surprisal", "(10,)", lambda v: c.surprisal(b, validate=v)),
        ("binary_entropy", "(10,)", lambda v: c.binary_entropy(b, validate=v)),
        ("binary_cross_entropy", "(10,)", lambda v: c.binary_cross_entropy(bt, b, validate=v)),
        (
            "binary_cross_entropy_grad",
            "(10,)",
            lambda v: c.binary_cross_entropy_grad(bt, b, validate=v),
        ),
    ]
    labelled = (
        c.softmax_cross_entropy,
        c.softmax_cross_entropy_grad,
        c.softmax_focal_loss,
        c.softmax_focal_loss_grad,
        c.poly1_cross_entropy,
        c.poly1_cross_entropy_grad,
    )
    soft = (
        c.softmax_cross_entropy_with_targets,
        c.softmax_cross_entropy_with_targets_grad,
        c.distillation_loss,
        c.distillation_loss_grad,
    )
    hinge = (c.multiclass_hinge_loss, c.multiclass_hinge_loss_grad)
    # float64 logits, then float32 logits (and float32 soft targets; no hinge rows)
    for dtype, suffix, with_labels in (
        (np.float64, "", labelled + hinge),
        (np.float32, " float32", labelled),
    ):
        for rows in (1, 8):
            logits = x[f"logits{rows}"].astype(dtype, copy=False)
            labels = x[f"labels{rows}"]
            targets = x[f"targets{rows}"].astype(dtype, copy=False)
            shape = f"({rows}, 10){suffix}"
            for fn in with_labels:
                cases.append(
                    (fn.__name__, shape, lambda v, fn=fn, a=logits, y=labels: fn(a, y, validate=v))
                )
            for fn in soft:
                cases.append(
                    (fn.__name__, shape, lambda v, fn=fn, a=logits, t=targets: fn(a, t, validate=v))
                )
    for fn in (
        c.sigmoid_cross_entropy,
        c.sigmoid_cross_entropy_grad,
        c.sigmoid_focal_loss,
        c.sigmoid_focal_loss_grad,
    ):
        cases.append((fn.__name__, "(10,)", lambda v, fn=fn: fn(z, bt, validate=v)))
    return cases


def _anchors(x: dict[str, np.ndarray]) -> list[tuple[str, str, Call]]:
    p, q, z = x["p"], x["q"], x["z"]
    anchors: list[tuple[str, str, Call]] = [
        ("scipy.stats.entropy(p)", "(10,)", lambda: scipy.stats.entropy(p)),
        ("scipy.stats.entropy(p, q)", "(10,)", lambda: scipy.stats.entropy(p, q)),
        ("scipy.special.rel_entr(p, q).sum()", "(10,)", lambda: scipy.special.rel_entr(p, q).sum()),
        ("scipy.special.entr(p).sum()", "(10,)", lambda: scipy.special.entr(p).sum()),
        ("np.add.reduce(p) (bare ufunc)", "(10,)", lambda: np.add.reduce(p)),
        ("-(p * np.log(p)).sum()", "(10,)", lambda: -(p * np.log(p)).sum()),
        ("scipy.special.logsumexp(z)", "(10,)", lambda: scipy.special.logsumexp(z)),
    ]
    try:
        import torch
    except ImportError:
        return anchors
    torch.set_num_threads(1)
    t_logits = torch.from_numpy(x["logits1"])
    t_labels = torch.from_numpy(x["labels1"])
    anchors.append(
        (
            "torch F.cross_entropy",
            "(1, 10)",
            lambda: torch.nn.functional.cross_entropy(t_logits, t_labels),
        )
    )
    t_logits8 = torch.from_numpy(x["logits8"])
    t_labels8 = torch.from_numpy(x["labels8"])
    anchors.append(
        (
            "torch F.cross_entropy",
            "(8, 10)",
            lambda: torch.nn.functional.cross_entropy(t_logits8, t_labels8),
        )
    )
    return anchors


def _min_per_call_us(
    timers: list[timeit.Timer], *, number: int, repeats: int, stat: str = "min"
) -> list[float]:
    """The minimum (or ``stat='median'``) over ``repeats`` interleaved rounds of each
    timer's time per call, in us."""
    rounds: list[list[float]] = [[] for _ in timers]
    for _ in range(repeats):
        for k, timer in enumerate(timers):
            rounds[k].append(timer.timeit(number) / number * 1e6)
    pick = min if stat == "min" else statistics.median
    return [pick(values) for values in rounds]


def _mark(value: float, target: float) -> str:
    return f"{value:.1f}" if value <= target else f"**{value:.1f}**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats")
    parser.add_argument("--only", default="", help="only functions whose name contains this")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter (the default); cpu: time.process_time, this process's "
        "CPU time, which other work on a loaded machine disturbs less",
    )
    parser.add_argument(
        "--stat",
        choices=("min", "median"),
        default="min",
        help="min: the least disturbed repeat (the default); median: the middle one",
    )
    parser.add_argument(
        "--against", metavar="SRC", help="also time the crossent package under SRC, interleaved"
    )
    args = parser.parse_args()

    x = _inputs()
    packages = [crossent]
    if args.against:
        from bench_evaluation import against

        packages.append(against(args.against))
    cases = [
        [case for case in _crossent_cases(x, package) if args.only in case[0]]
        for package in packages
    ]
    anchors = _anchors(x)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    timers: list[timeit.Timer] = []
    for row in zip(*cases, strict=True):  # each case of every package, side by side
        for _, _, call in row:
            for validate in (True, False):
                bound = lambda call=call, validate=validate: call(validate)  # noqa: E731
                bound()  # warm up (imports, caches); errors surface here, not in the timing
                timers.append(timeit.Timer(bound, timer=clock))
    for _, _, anchor in anchors:
        anchor()
        timers.append(timeit.Timer(anchor, timer=clock))
    times = _min_per_call_us(timers, number=args.number, repeats=args.repeats, stat=args.stat)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"crossent {crossent.__version__}; {args.stat} of {args.repeats} interleaved repeats of "
        f"{args.number} calls, us per call ({args.clock} clock)"
    )
    print()
    if args.against:
        print(f"against: the crossent package under {args.against} (columns marked 'against')")
    marks = ["", " (against)"][: len(packages)]
    print(
        "| function | input | "
        + " | ".join(
            f"validate=True{m} (target {TARGET_VALIDATED_US:g}) "
            f"| validate=False{m} (target {TARGET_UNVALIDATED_US:g})"
            for m in marks
        )
        + " |"
    )
    print("|---|---|" + "---:|---:|" * len(packages))
    width = 2 * len(packages)
    for k, (name, shape, _) in enumerate(cases[0]):
        cells = [
            _mark(value, TARGET_VALIDATED_US if j % 2 == 0 else TARGET_UNVALIDATED_US)
            for j, value in enumerate(times[width * k : width * (k + 1)])
        ]
        print(f"| {name} | {shape} | " + " | ".join(cells) + " |")
    print()
    print("| anchor | input | us per call |")
    print("|---|---|---:|")
    for k, (name, shape, _) in enumerate(anchors):
        print(f"| {name} | {shape} | {times[width * len(cases[0]) + k]:.1f} |")
    print()
    print("Bold: above the issue 13 target.")


if __name__ == "__main__":
    main()
