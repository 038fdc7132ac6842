"""CPU seconds Numba spends compiling each dispatcher and signature of a workload.

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=$PWD/src \\
        python benchmarks/numba_compile_times.py [--prefix crossent.losses] \\
        [--harness] [--script FILE ...] [--pytest "ARGS"]

Runs a workload in this process and records every compilation Numba's dispatchers do,
through ``numba.core.event`` (a listener on ``"numba:compile"``, triggered only when a
signature is compiled, not when it is loaded from the disk cache): start with an empty
``NUMBA_CACHE_DIR`` (caching on) for the cold cost a fresh clone's CI pays. Workloads
(any together, in this order; the harness alone if none is named):

* ``--harness``: the scripts that ``tests/numba_cache_harness.py`` runs in its cold
  process (every section of ``SECTIONS``, registered by importing their test modules),
  each in its own namespace, its output discarded; a failing script is reported, the
  next runs;
* ``--script FILE``: a Python file, run as ``__main__``;
* ``--pytest "ARGS"``: ``pytest.main`` in this process (add ``-n 0``).

For each compilation: the dispatcher (``module.function``), the signature, the CPU seconds
(``time.process_time``, the process's: a loaded machine's other work is not counted)
inclusive of the dispatchers it compiled inside it (a callee that is its own dispatcher,
compiled for the caller's type inference) and exclusive of them (self). Callees inlined
at Numba's IR (``inline="always"``), ``register_jitable`` functions and overloads are not
dispatchers: their cost is in their caller's self time. The table lists the
dispatchers whose module starts with ``--prefix`` (all with ``--prefix ""``), sorted by
self time, then per dispatcher summed, then the totals (self times add up to the whole
compile time; inclusive times do not).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import runpy
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from numba.core import event

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class _Frame:
    name: str
    signature: str
    start: float
    children: float = 0.0


@dataclass
class CompileTimes(event.Listener):  # type: ignore[misc]
    """Every ``numba:compile`` event: ``(name, signature, inclusive s, self s)``."""

    records: list[tuple[str, str, float, float]] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)

    def on_start(self, ev: event.Event) -> None:
        dispatcher = ev.data["dispatcher"]
        function = dispatcher.py_func
        name = f"{function.__module__}.{function.__qualname__}"
        signature = ", ".join(str(arg) for arg in ev.data["args"])
        self.stack.append(_Frame(name, f"({signature})", time.process_time()))

    def on_end(self, ev: event.Event) -> None:
        frame = self.stack.pop()
        inclusive = time.process_time() - frame.start
        if self.stack:
            self.stack[-1].children += inclusive
        self.records.append((frame.name, frame.signature, inclusive, inclusive - frame.children))


def _harness() -> None:
    """Run the cold process's scripts of ``tests/numba_cache_harness.py`` here."""
    tests = ROOT / "tests"
    sys.path.insert(0, str(tests))
    import numba_cache_harness as harness

    for name, module in harness.SECTIONS.items():
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", tests / module)
        assert spec is not None
        assert spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    for name in harness.SECTIONS:
        source = harness._REGISTERED.get(name)
        if source is None:
            continue
        start = time.process_time()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"<section {name}>", "exec"), {"__name__": "__main__"})
            status = "ok"
        except BaseException:
            status = "FAILED\n" + traceback.format_exc(limit=3)
        print(f"# section {name}: {time.process_time() - start:.1f} s CPU, {status}")


def _table(records: list[tuple[str, str, float, float]], prefix: str) -> None:
    mine = [record for record in records if record[0].startswith(prefix)]
    for name, signature, inclusive, own in sorted(mine, key=lambda r: -r[3]):
        print(f"{own:8.2f} {inclusive:8.2f}  {name}  {signature[:160]}")
    print("\nper dispatcher (self s, inclusive s of its outermost compiles, signatures):")
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for name, _, inclusive, own in mine:
        per[name][0] += own
        per[name][1] += inclusive
        per[name][2] += 1
    for name, (own, inclusive, count) in sorted(per.items(), key=lambda item: -item[1][0]):
        print(f"{own:8.2f} {inclusive:8.2f} {int(count):3d}  {name}")
    total = sum(record[3] for record in records)
    print(
        f"\ntotal self {sum(r[3] for r in mine):.2f} s of CPU in {len(mine)} compiles of "
        f"{len(per)} dispatchers under {prefix!r}; {total:.2f} s in all "
        f"{len(records)} compiles"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="crossent.losses")
    parser.add_argument("--harness", action="store_true")
    parser.add_argument("--script", action="append", default=[])
    parser.add_argument("--pytest", default=None)
    args = parser.parse_args()
    if os.environ.get("NUMBA_DISABLE_JIT") or not os.environ.get("NUMBA_CACHE_DIR"):
        print("# warning: set NUMBA_CACHE_DIR to an empty folder (and no NUMBA_DISABLE_JIT)")
    listener = CompileTimes()
    start = time.process_time()
    with event.install_listener("numba:compile", listener):
        if args.harness or not (args.script or args.pytest):
            _harness()
        for script in args.script:
            runpy.run_path(script, run_name="__main__")
        if args.pytest is not None:
            import pytest

            pytest.main(args.pytest.split())
    print(f"# workload {time.process_time() - start:.1f} s of CPU\n")
    _table(listener.records, args.prefix)


if __name__ == "__main__":
    main()
