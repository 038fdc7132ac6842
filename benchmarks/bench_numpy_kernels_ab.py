"""The NumPy forward (no Numba) of two crossent trees in one process, against torch eager.

    cd benchmarks && PYTHONPATH=../src:. python bench_numpy_kernels_ab.py \\
        --against /tmp/prev/src [--turns 6] [--rows 4096] [--classes 32000]

``softmax_cross_entropy`` on ``bench_softmax_ce.py``'s float32 logits, random and
peaked (a confident model's: see that script), as ``pip install crossent`` alone runs
it (Numba made unavailable). The other tree's ``crossent/losses/_numpy_kernels.py`` is
loaded beside this tree's and swapped in, so both run in the same process and take
turns with torch eager (``F.cross_entropy``): a shared machine's load, and the page and
thread state of one process, fall on all three alike, which fresh processes one after
the other do not give (up to 25 % apart on the same code on the Xeon of RESULTS.md).
Each turn is three calls after a 0.3 s pause (PyTorch's OpenMP workers spin after a
call), the last two timed; the medians are printed with their ratios, and the two
trees' losses, which should agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import crossent
from bench_softmax_ce import make_logits
from crossent.losses import _cpu_kernels, _softmax

from _machine import cpu_name, interleaved_wall_medians, vector_width


def load_kernels(src: Path) -> ModuleType:
    """The other tree's ``_numpy_kernels`` module, as a sibling of this tree's (its
    relative imports resolve to this tree's modules)."""
    path = src / "crossent" / "losses" / "_numpy_kernels.py"
    spec = importlib.util.spec_from_file_location("crossent.losses._numpy_kernels_against", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(kind: str, trees: dict[str, ModuleType], args: argparse.Namespace) -> None:
    """One kind of logits: both trees and torch eager in turns; prints the medians."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the name everyone reads

    logits, labels = make_logits(args.rows, args.classes, kind)
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)

    def ours(kernels: ModuleType) -> Callable[[], float]:
        def run() -> float:
            _softmax._numpy_kernels = kernels
            return float(crossent.softmax_cross_entropy(logits, labels))

        return run

    calls = {name: ours(kernels) for name, kernels in trees.items()}
    calls["torch eager"] = lambda: float(F.cross_entropy(z, y))
    losses = {name: fn() for name, fn in calls.items()}
    median = interleaved_wall_medians(calls, args.turns)
    eager = median["torch eager"]
    print(
        f"{kind}: "
        + ", ".join(f"{name} {t:.3f} s ({t / eager:.2f}x eager)" for name, t in median.items())
        + f"; this tree / against {median['this tree'] / median['against']:.2f}; losses "
        + f"{losses['this tree']:.9g} / {losses['against']:.9g}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, required=True, help="the other tree's src")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    args = parser.parse_args()
    _cpu_kernels.available = lambda: False  # type: ignore[method-assign]
    trees = {"this tree": _softmax._numpy_kernels, "against": load_kernels(args.against)}
    print(f"machine: {cpu_name()}, {vector_width()}, load average {os.getloadavg()[0]:.2f}")
    for kind in ("random", "peaked"):
        compare(kind, trees, args)


if __name__ == "__main__":
    main()
