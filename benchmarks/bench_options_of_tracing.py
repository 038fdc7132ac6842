"""Per-call cost of ``losses._batch.options_of`` (a table hit) and of its ``_tracing()``
test (``torch.compiler.is_compiling`` with torch imported), interleaved in one process.

Usage (from ``benchmarks/``): ``PYTHONPATH=../src python bench_options_of_tracing.py``
"""

from __future__ import annotations

import timeit

import torch  # noqa: F401  (imported, as in a torch user's process)

from crossent.losses._batch import _tracing, options_of


def main(number: int = 200_000, repeats: int = 7) -> None:
    calls = {
        "options_of (hit)": lambda: options_of(0.1, 1.0, 0.0, None, None, "mean"),
        "_tracing()": _tracing,
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            best[name] = min(best[name], timeit.timeit(call, number=number) / number)
    for name, seconds in best.items():
        print(f"{name:18s} {seconds * 1e9:7.0f} ns")


if __name__ == "__main__":
    main()
