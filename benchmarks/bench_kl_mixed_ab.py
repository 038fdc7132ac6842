"""The KL (or ``--measure``) of probabilities against logits or log-probabilities
(either way round): A/B.

Times this tree's ``crossent`` and other copies of it in one process, interleaved call
by call (issue 13: the klexact change's per-row bound cost the common path)::

    python benchmarks/bench_kl_mixed_ab.py 1000 1000 --against /tmp/klbase/src

Each ``--against`` source folder's ``crossent`` is copied to a temporary folder and
imported as ``crossent_ab<i>`` (as ``bench_evaluation.py --against`` does; the files'
times are kept, so Numba's on-disk cache of the copy hits in the next run). Cases: every
pair of forms with one side probabilities, float64 and float32, random rows (Q from
other rows) and nearly equal rows (the same distribution in the other form, plus noise
of 1e-9 on the logits), with and without ``validate``. Reported: the best (minimum) of
``--repeats`` interleaved calls, by CPU time and by wall time, and the load average
before and after. By default every call runs the serial kernel (``_fused``'s parallel
threshold raised) timed by this thread's CPU time; ``--threads`` keeps the parallel
kernel, timed by the process's CPU time (all threads).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

import crossent


def _copy(source: str, index: int) -> ModuleType:
    """The ``crossent`` package under ``source`` imported as ``crossent_ab<index>``."""
    name = hashlib.sha1(os.path.abspath(source).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"crossent_ab_{name}")
    module = f"crossent_ab{index}"
    shutil.copytree(
        os.path.join(source, "crossent"),
        os.path.join(folder, module),
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    sys.path.insert(0, folder)
    return importlib.import_module(module)


def _cases(rows: int, classes: int) -> dict[str, tuple[str, str, Any, Any]]:
    """Each case's forms and inputs (P, Q)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    probs = np.exp(log_q)
    cases: dict[str, tuple[str, str, Any, Any]] = {}
    for dtype in (np.float64, np.float32):
        bits = "float64" if dtype is np.float64 else "float32"
        zz, nn, lq, pp = (x.astype(dtype) for x in (z, near, log_q, probs))
        for other, random_side, near_side in (("logits", zz, nn), ("log_probs", lq, lq)):
            cases[f"{bits} kl(probs, {other}) random"] = ("probs", other, pp, random_side[::-1])
            cases[f"{bits} kl(probs, {other}) nearly equal"] = ("probs", other, pp, near_side)
            cases[f"{bits} kl({other}, probs) random"] = (other, "probs", random_side, pp[::-1])
            cases[f"{bits} kl({other}, probs) nearly equal"] = (other, "probs", near_side, pp)
    return cases


def time_calls(
    label: str, calls: list[Callable[[], Any]], repeats: int, timer: Callable[[], float]
) -> None:
    """Each call once (a warm-up), then ``repeats`` rounds of all calls in turn; prints the
    label, each call's best CPU (``timer``) and wall time in ms, and its CPU against the
    first call's (this tree's)."""
    for call in calls:
        call()
    cpu = [np.inf] * len(calls)
    wall = [np.inf] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            c0, w0 = timer(), time.perf_counter()
            call()
            cpu[i] = min(cpu[i], timer() - c0)
            wall[i] = min(wall[i], time.perf_counter() - w0)
    cells = "  ".join(f"{c * 1e3:7.2f}/{w * 1e3:7.2f}" for c, w in zip(cpu, wall, strict=True))
    ratios = " ".join(f"{c / cpu[0]:.2f}x" for c in cpu[1:])
    print(f"  {label:48s} cpu/wall ms {cells}  cpu vs this {ratios}", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--against", nargs="*", default=[], help="other src folders")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--measure", default="kl_divergence", help="the measure timed (js_divergence: hostile22)"
    )
    parser.add_argument("--only", default="", help="the cases whose name has this")
    parser.add_argument("--validate", choices=("yes", "no", "both"), default="both")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="keep the parallel kernel above _fused.PARALLEL_ELEMENTS (default: serial "
        "kernels, timed by this thread's CPU time, steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    packages = [crossent, *(_copy(s, i) for i, s in enumerate(args.against))]
    timer = time.process_time if args.threads else time.thread_time
    if not args.threads:
        for package in packages:
            importlib.import_module(f"{package.__name__}.info._fused").PARALLEL_ELEMENTS = 1 << 62
    validates = {"yes": (True,), "no": (False,), "both": (False, True)}[args.validate]
    print(f"load average before: {os.getloadavg()}")
    print("trees: " + ", ".join(os.path.dirname(p.__file__ or "") for p in packages))
    for name, (p_form, q_form, a, b) in _cases(args.rows, args.classes).items():
        if args.only not in name:
            continue
        for validate in validates:
            options = {"p_form": p_form, "q_form": q_form, "validate": validate}
            calls: list[Callable[[], Any]] = [
                functools.partial(getattr(k, args.measure), a, b, **options) for k in packages
            ]
            label = f"{name}{' validate' if validate else ''}"
            time_calls(label, calls, args.repeats, timer)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1:])
