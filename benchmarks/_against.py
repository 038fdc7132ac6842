"""Run a benchmark script under several trees, interleaved (``--against``).

A script that prints, with ``--json``, one JSON object ``{case: [seconds, ...]}`` on its
last line can compare trees in one invocation: :func:`compare` runs it in a fresh
subprocess per tree (``PYTHONPATH`` = that tree's ``src``), the trees alternating round
by round so that slow spells of the shared machine hit them alike, and prints each
case's best and median over all rounds, tree beside tree, with the ratio of the bests
to the first tree (this one).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

__all__ = [
    "add_options",
    "clock",
    "compare",
    "compare_if_asked",
    "interleaved_times",
    "load_tree",
    "time_cases",
]


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of a script that :func:`compare` runs: ``--against``, ``--rounds``,
    ``--json`` and ``--clock``."""
    parser.add_argument("--against", nargs="+", default=[], help="other trees to time")
    parser.add_argument("--rounds", type=int, default=3, help="with --against")
    parser.add_argument("--json", action="store_true", help="print the times as JSON")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help=_CLOCK_HELP)


_CLOCK_HELP = "cpu: the process's CPU time (all threads), steadier on a loaded machine"


def clock(args: argparse.Namespace) -> Callable[[], float]:
    """The timer ``args.clock`` names."""
    return time.perf_counter if args.clock == "wall" else time.process_time


def compare(script: str, argv: list[str], others: list[str], rounds: int) -> None:
    """Run ``script`` with ``argv`` (its own arguments, less ``--against``) and
    ``--json`` under this tree and each of ``others`` (paths of ``src`` directories or
    of trees that hold one), ``rounds`` times, and print the table."""
    here = Path(script).resolve().parent
    trees = [str(here.parent / "src"), *(_src(t) for t in others)]
    times: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    print(f"load average before: {os.getloadavg()}", flush=True)
    for _ in range(rounds):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, str(here)]))
            command = [sys.executable, script, *argv, "--json"]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            for case, runs in json.loads(done.stdout.strip().splitlines()[-1]).items():
                times[tree].setdefault(case, []).extend(runs)
    print(f"load average after: {os.getloadavg()}")
    for i, tree in enumerate(trees):
        print(f"tree {i}: {tree}")
    cases = list(times[trees[0]])
    width = max(len(c) for c in cases)
    header = "".join(f"  tree {i} best/median ms" for i in range(len(trees)))
    print(f"{'case':{width}s}{header}  best vs tree 0")
    for case in cases:
        bests = [min(times[t][case]) for t in trees]
        cells = "".join(
            f"  {min(times[t][case]) * 1e3:9.2f} /{statistics.median(times[t][case]) * 1e3:9.2f}"
            for t in trees
        )
        ratios = " ".join(f"{b / bests[0]:.2f}x" for b in bests[1:])
        print(f"{case:{width}s}{cells}  {ratios}")


def _src(tree: str) -> str:
    """``tree``'s ``src`` directory (``tree`` itself if it has none)."""
    path = Path(tree).resolve()
    return str(path / "src") if (path / "src" / "crossent").is_dir() else str(path)


def compare_if_asked(args: argparse.Namespace, script: str) -> bool:
    """:func:`compare` ``script`` with its own arguments less ``--against`` and the trees,
    if ``args.against`` names trees (then True: the caller has nothing more to do)."""
    if not args.against:
        return False
    argv = [a for a in sys.argv[1:] if a not in args.against and a != "--against"]
    compare(script, argv, args.against, args.rounds)
    return True


def interleaved_times(
    cases: Mapping[str, Callable[[], object]], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each case once (a warm-up: compiling, caches), then ``args.repeats`` timed runs
    each, the cases alternating (``args``' clock): the seconds of each run, by case."""
    now = clock(args)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(args.repeats):
        for name, fn in cases.items():
            start = now()
            fn()
            times[name].append(now() - start)
    return times


def time_cases(cases: Mapping[str, Callable[[], object]], args: argparse.Namespace) -> None:
    """Each case once (a warm-up: compiling, caches), then ``args.repeats`` timed runs
    each, the cases alternating; prints the times as JSON (``--json``) or each case's best."""
    times = interleaved_times(cases, args)
    if args.json:
        print(json.dumps(times))
        return
    width = max(len(name) for name in cases)
    for name, runs in times.items():
        print(f"{name:{width}s}  best {min(runs) * 1e3:9.2f} ms")


def load_tree(source: str, name: str) -> ModuleType:
    """The ``crossent`` package of the tree ``source`` (a ``src`` folder or a tree that
    holds one), imported as ``name`` from a renamed copy in a temporary folder (its
    imports are relative): several trees in one process, interleaved call by call."""
    folder = os.path.join(tempfile.gettempdir(), f"bench_tree_{name}")
    shutil.copytree(
        os.path.join(_src(source), "crossent"),
        os.path.join(folder, name),
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    sys.path.insert(0, folder)
    return importlib.import_module(name)


def compare_trees(
    trees: Mapping[str, ModuleType],
    cases: Mapping[str, Callable[[ModuleType], object]],
    rounds: int,
    repeats: int,
) -> None:
    """Several crossent trees in one process (:func:`load_tree`): each case once per tree
    (a warm-up: compiling, caches), then ``rounds`` rounds in which every case runs
    ``repeats`` times per tree, the trees' order rotated each round; prints the load
    before and after and, per case and tree, the best and median process CPU time (ms)
    and the best against the first tree's."""
    for module in trees.values():  # (compiles, caches)
        for case in cases.values():
            case(module)
    names = list(trees)
    times: dict[tuple[str, str], list[float]] = {(c, t): [] for c in cases for t in names}
    print("load average before", os.getloadavg(), flush=True)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for case_name, case in cases.items():
            for tree in order:
                for _ in range(repeats):
                    start = time.process_time()
                    case(trees[tree])
                    times[(case_name, tree)].append(time.process_time() - start)
    print("load average after", os.getloadavg())
    print("trees:", " | ".join(names), "(best / median ms of CPU; best vs this tree)")
    for case_name in cases:
        base = min(times[(case_name, names[0])])
        cells = []
        for tree in names:
            values = times[(case_name, tree)]
            cells.append(
                f"{min(values) * 1e3:8.2f} /{statistics.median(values) * 1e3:8.2f}"
                f" ({min(values) / base:.2f}x)"
            )
        print(f"{case_name:42s}", " | ".join(cells))
