"""CPU seconds to compile, in this process, the Numba signatures another cache holds.

    NUMBA_CACHE_DIR=/tmp/empty PYTHONPATH=$PWD/src \\
        python benchmarks/bench_numba_cold_signatures.py /path/of/a/filled/cache distillation_,near_

Reads every index (``.nbi``) under the filled cache whose ``module.function`` name holds
one of the comma-separated patterns, and compiles each signature it lists with
``Dispatcher.compile`` in the order of the indexes, printing each one's CPU time (the
process's, so a loaded machine's other work is not counted) and the total. Run it on an
empty ``NUMBA_CACHE_DIR`` for the cold cost a test worker pays, then again on the cache
the first run filled for the cost of loading the same signatures. Only
``crossent.losses`` modules (the folder Numba names ``losses_<hash>``).
"""

from __future__ import annotations

import importlib
import pickle
import sys
import time
from pathlib import Path


def signatures(cache: Path, patterns: list[str]) -> list[tuple[str, str, list[object]]]:
    """``(module, function, [signature, ...])`` of each matching index under ``cache``."""
    found = []
    for index in sorted(cache.rglob("*.nbi")):
        name = index.name.split("-")[0]  # "<module>.<function>"
        if not index.parent.name.startswith("losses_") or not any(p in name for p in patterns):
            continue
        with index.open("rb") as handle:  # as numba.core.caching.IndexDataCacheFile
            pickle.load(handle)
            _, overloads = pickle.loads(handle.read())
        module, function = name.rsplit(".", 1)
        found.append((module, function, [key[0] for key in overloads]))
    return found


def main(cache: Path, patterns: list[str]) -> None:
    total = 0.0
    for module, function, signatures_of in signatures(cache, patterns):
        dispatcher = getattr(importlib.import_module(f"crossent.losses.{module}"), function)
        for signature in signatures_of:
            start = time.process_time()
            dispatcher.compile(signature)
            seconds = time.process_time() - start
            total += seconds
            print(f"{module}.{function} {seconds:.2f} s  {signature}")
    print(f"total {total:.2f} s of CPU")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(","))
