"""``import crossent``, ``crossent --help`` and the first call, per source tree (issue 13).

    python benchmarks/bench_import_time.py [--src PATH ...] [--against PATH] [--runs 10]
        [--no-torch]

Every ``crossent`` command and every subprocess pays for what ``import crossent``
imports. Each run is a fresh Python process per tree (``--src``: a ``src`` folder
holding ``crossent``; default this checkout's), the trees taken in turn so that they
share the machine's load. Per process it measures:

* ``import crossent``: seconds inside the process (``time.perf_counter`` around the
  import; NumPy's own import included);
* the first ``softmax_cross_entropy`` call on (4, 10) float32 logits after it (what a
  module deferred to its first use adds to that call);
* ``python -m crossent --help``: wall seconds of the whole process, interpreter start
  included, against ``python -c pass``;
* with PyTorch installed (``--no-torch`` leaves it out), in another fresh process:
  ``import torch``, then ``import crossent.torch`` after it, each in CPU seconds of the
  process (``time.process_time``: less sensitive to other work on a shared machine than
  wall time) and wall seconds, and whether ``torch._dynamo`` was imported by then (1 or
  0; issue 13: ``@torch.compiler.disable`` at import time imported Dynamo, Inductor's
  configuration and SymPy with ``crossent.torch``).

``--against SRC`` adds a tree to compare with, measured first in each round (the same
as a first ``--src``).

Bytecode is written (to a temporary ``PYTHONPYCACHEPREFIX``, warmed by one run per
tree): an installed package has its ``.pyc`` files, and with ``PYTHONDONTWRITEBYTECODE``
set every import compiles crossent's sources again (about 0.3 s more). The Numba cache
is ``NUMBA_CACHE_DIR`` when set. The table gives the median and the range of the runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name

_IMPORT_AND_CALL = """
import time
start = time.perf_counter()
import crossent
imported = time.perf_counter()
import numpy as np
z = np.zeros((4, 10), np.float32); y = np.zeros(4, np.int64)
begin = time.perf_counter()
crossent.softmax_cross_entropy(z, y)
print(imported - start, time.perf_counter() - begin)
"""


_IMPORT_TORCH = """
import sys, time
w0, c0 = time.perf_counter(), time.process_time()
import torch
w1, c1 = time.perf_counter(), time.process_time()
import crossent.torch
w2, c2 = time.perf_counter(), time.process_time()
print(c1 - c0, w1 - w0, c2 - c1, w2 - w1, int("torch._dynamo" in sys.modules))
"""


def _environment(src: Path, pycache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(src), "PYTHONPYCACHEPREFIX": pycache}


def _wall(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``command``, a fresh process."""
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def one_run(src: Path, pycache: str, with_torch: bool) -> dict[str, float]:
    """The measures of one run on the tree ``src``."""
    env = _environment(src, pycache)
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_AND_CALL], env=env, capture_output=True, check=True
    )
    imported, called = (float(x) for x in result.stdout.split())
    measures = {
        "import crossent": imported,
        "first softmax_cross_entropy call": called,
        "python -m crossent --help (wall)": _wall(
            [sys.executable, "-m", "crossent", "--help"], env
        ),
        "python -c pass (wall)": _wall([sys.executable, "-c", "pass"], env),
    }
    if with_torch:
        result = subprocess.run(
            [sys.executable, "-c", _IMPORT_TORCH], env=env, capture_output=True, check=True
        )
        values = [float(x) for x in result.stdout.split()]
        names = [
            "import torch (CPU)",
            "import torch (wall)",
            "import crossent.torch after torch (CPU)",
            "import crossent.torch after torch (wall)",
            "torch._dynamo imported (1/0)",
        ]
        measures.update(zip(names, values, strict=True))
    return measures


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent / "src"
    parser.add_argument("--src", type=Path, action="append", help="a src folder (repeatable)")
    parser.add_argument("--against", type=Path, help="a src folder to compare with (first)")
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per tree")
    parser.add_argument("--no-torch", action="store_true", help="leave out crossent.torch")
    args = parser.parse_args()
    trees = [p.resolve() for p in (args.src or [here])]
    if args.against is not None:
        trees.insert(0, args.against.resolve())
    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"CPU: {cpu_name()}; Python {sys.version.split()[0]}; load average {load}")
    with tempfile.TemporaryDirectory() as pycache:
        for src in trees:
            one_run(src, pycache, with_torch)  # writes the bytecode, loads the Numba cache
        runs: dict[Path, list[dict[str, float]]] = {src: [] for src in trees}
        for _ in range(args.runs):
            for src in trees:
                runs[src].append(one_run(src, pycache, with_torch))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"after: load average {load}; seconds, median (range) of {args.runs} runs\n")
    print("| measure | " + " | ".join(str(src) for src in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for measure in runs[trees[0]][0]:
        cells = [_cell([run[measure] for run in runs[src]]) for src in trees]
        print(f"| {measure} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
