"""CPU time per call of ``crossent.torch``'s option checks: ``_backend.options`` and
``_arguments.call_options`` (what every eager ``crossent.torch`` loss call pays), for
the tree on ``PYTHONPATH``. Compare trees by alternating fresh processes.

Usage (from ``benchmarks/``): ``PYTHONPATH=../src python bench_torch_call_options.py LABEL``
"""

from __future__ import annotations

import sys
import time
import timeit

import torch  # noqa: F401  (imported, as in a torch user's process)

from crossent.torch import _backend
from crossent.torch._arguments import call_options


def main(label: str, number: int = 200_000, repeats: int = 7) -> None:
    calls = {
        "options": lambda: _backend.options(
            label_smoothing=0.1, z_loss=0.0, temperature=1.0, soft_cap=None
        ),
        "call_options": lambda: call_options(
            ignore_index=-100,
            reduction="mean",
            label_smoothing=0.1,
            z_loss=0.0,
            soft_cap=None,
            temperature=1.0,
        ),
    }
    for name, call in calls.items():
        runs = timeit.repeat(call, number=number, repeat=repeats, timer=time.process_time)
        print(f"{label:8s} {name:14s} {min(runs) / number * 1e9:7.0f} ns")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tree")
