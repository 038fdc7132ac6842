"""CPU of pytest's collection of the whole suite, this tree against another, interleaved.

Each run is as in CI (``tasks.py test``): ``PYTHONDONTWRITEBYTECODE`` unset, the bytecode
under one ``PYTHONPYCACHEPREFIX`` and the test modules' rewritten code written ahead by
``tests/bytecode_ahead.py``, ``CI=true``. A small plugin (written to a temporary folder)
records, in each process that collects, the CPU seconds from ``pytest_collection`` to
``pytest_collection_finish``. With ``--workers 2`` it is a pytest-xdist run whose items
are all deselected once collected (``--collect-only`` does not start workers): the figure
is each worker's; with ``--workers 0``, one ``--collect-only`` process.

Usage (from ``benchmarks/``)::

    git -C .. archive main | tar -x -C /tmp/main_tree   # the tree to compare with
    python bench_collection_cpu.py --against /tmp/main_tree --rounds 3 --workers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PLUGIN = """
import os, time
import pytest

_start = {}


def pytest_collection(session):
    _start["cpu"] = time.process_time()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    _start["items"] = len(items)
    if os.environ.get("BENCH_DESELECT_ALL") and items:
        config.hook.pytest_deselected(items=items[:])
        items[:] = []


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    cpu = time.process_time() - _start["cpu"]
    with open(os.environ["BENCH_COLLECTION_OUT"], "a") as out:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        out.write(f"{worker} {cpu:.3f} {_start.get('items', 0)}\\n")
"""


def collect_once(tree: Path, workers: int, plugin_dir: Path, out: Path) -> None:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(plugin_dir)])
    env["BENCH_COLLECTION_OUT"] = str(out)
    if workers:
        env["BENCH_DESELECT_ALL"] = "1"
        mode = ["-q", "-n", str(workers)]
    else:
        mode = ["--collect-only", "-q", "-n", "0"]
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-p", "_bench_collection_plugin", *mode]
    subprocess.run(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="the other tree's root")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="0: one --collect-only process")
    parser.add_argument("--pycache", type=Path, default=None, help="PYTHONPYCACHEPREFIX")
    args = parser.parse_args()
    os.environ["CI"] = "true"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    pycache = args.pycache or Path(tempfile.gettempdir()) / "crossent-bench-collection-pyc"
    os.environ["PYTHONPYCACHEPREFIX"] = str(pycache)
    trees = {"this": ROOT, "against": args.against.resolve()}
    with tempfile.TemporaryDirectory() as folder:
        plugin_dir = Path(folder)
        (plugin_dir / "_bench_collection_plugin.py").write_text(PLUGIN)
        for tree in trees.values():  # as tasks.py test, and one warm-up collection each
            env = dict(os.environ, PYTHONPATH=str(tree / "src"))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            subprocess.run([sys.executable, "tests/bytecode_ahead.py"], cwd=tree, env=env)
            collect_once(tree, 0, plugin_dir, plugin_dir / "warmup.txt")
        results: dict[str, list[float]] = {name: [] for name in trees}
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                out = plugin_dir / f"{name}-{round_}.txt"
                collect_once(tree, args.workers, plugin_dir, out)
                rows = out.read_text().split() if out.exists() else []
                seconds = [float(rows[i + 1]) for i in range(0, len(rows), 3)]
                items = {rows[i + 2] for i in range(0, len(rows), 3)}
                results[name] += seconds
                print(
                    f"round {round_} {name:8s} collection CPU s per process: "
                    f"{' '.join(f'{s:.2f}' for s in seconds)} (items {' '.join(items)})"
                )
    for name, seconds in results.items():
        if seconds:
            print(
                f"{name:8s} median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s,"
                f" max {max(seconds):.2f} s over {len(seconds)} processes"
            )


if __name__ == "__main__":
    main()
