"""CPU seconds of Numba's IR inlining (``inline="always"``) per callee, while compiling.

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=$PWD/src \\
        python benchmarks/numba_inline_times.py rows64 | rows32 | FILE

Compiles the measures' serial row kernel (``rows64``: float64, ``rows32``: float32) or
runs ``FILE`` as ``__main__``, timing (``time.process_time``) every call of Numba's
``InlineWorker.inline_function``: each inline of a helper at a call site, which
translates the helper's bytecode again and copies its IR in (issue 13). Prints the
workload's CPU, then per callee and per caller the CPU and the number of inlines.
Inclusive: a helper's own inlines happen inside its inline, so a nested inline is
counted in the callee and in its caller; the callers that are kernels (dispatchers, not
inlined helpers) sum to the inlining's whole cost. Start with an empty cache: a kernel
loaded from it compiles nothing.
"""

from __future__ import annotations

import runpy
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
from numba.core import inline_closurecall

_STATS: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
_ORIGINAL = inline_closurecall.InlineWorker.inline_function


def _timed(
    self: Any, caller_ir: Any, block: Any, i: int, function: Any, arg_typs: Any = None
) -> Any:
    start = time.process_time()
    try:
        return _ORIGINAL(self, caller_ir, block, i, function, arg_typs)
    finally:
        entry = _STATS[(function.__qualname__, caller_ir.func_id.func_qualname)]
        entry[0] += 1
        entry[1] += time.process_time() - start


def _table(title: str, index: int) -> None:
    per: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for key, (count, seconds) in _STATS.items():
        per[key[index]][0] += count
        per[key[index]][1] += seconds
    print(f"\n{title} (CPU s, inlines):")
    for name, (count, seconds) in sorted(per.items(), key=lambda item: -item[1][1])[:40]:
        print(f"{seconds:7.2f} {int(count):4d}  {name}")


def main(argv: list[str]) -> None:
    inline_closurecall.InlineWorker.inline_function = _timed
    start = time.process_time()
    if argv[0] in ("rows64", "rows32"):
        from crossent.info import _fused_kernels

        dtype = np.dtype(np.float64 if argv[0] == "rows64" else np.float32)
        _fused_kernels.rows(dtype, parallel=False)
    else:
        runpy.run_path(argv[0], run_name="__main__")
    total = sum(seconds for _, seconds in _STATS.values())
    count = sum(int(n) for n, _ in _STATS.values())
    print(f"workload {time.process_time() - start:.1f} s of CPU; {count} inlines")
    print(f"(inclusive sum {total:.1f} s: nested inlines counted in callee and caller)")
    _table("per callee", 0)
    _table("per caller", 1)


if __name__ == "__main__":
    main(sys.argv[1:])
