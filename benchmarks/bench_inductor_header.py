"""CPU of the suite's Inductor tests with and without Inductor's precompiled header.

Runs the tests that compile with Inductor (``torch.compile``'s default backend) in one
pytest process (``-n 0``), once with ``TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS=1`` and
once with ``0``, interleaved, each round on cold caches: a new ``TORCHINDUCTOR_CACHE_DIR``
and a new ``TMPDIR`` (Inductor keeps its precompiled headers under
``$TMPDIR/torchinductor_<user>``, whatever the cache folder). Prints each run's user +
system CPU, the C++ compiler's child processes included (``RUSAGE_CHILDREN``: pytest
waits for every g++ it starts).

From the repository root::

    PYTHONPATH=src NUMBA_CACHE_DIR=/tmp/nc python benchmarks/bench_inductor_header.py --rounds 2

The compiler must be named ``g++``/``gcc`` (``CXX``): PyTorch names the header ``.pch``
for any other name (a timing wrapper, say), which g++ never reads.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The tests of the suite that compile with Inductor (found by their ``backend`` argument).
TESTS = [
    "tests/pytorch/test_compile.py::test_cross_entropy_compiles_fullgraph_with_ignored_targets[inductor]",
    "tests/pytorch/test_accelerator_labels.py::test_compiled_fullgraph_module[cpu]",
    "tests/pytorch/test_issue13_distill_compile.py::test_inductor_near_and_far_rows",
    "tests/pytorch/test_torch_prob_target_checks_compiled_grad.py::"
    "test_k_dim_targets_name_the_row_under_inductor[sum-inductor]",
    "tests/pytorch/test_compiled_family.py::test_softmax_focal_compiles_fullgraph_as_eager[mean-inductor]",
    "tests/pytorch/test_torch_explicit_backward.py::"
    "test_compiled_focal_gradients_are_the_mpmath_derivatives[mean-0.5-inductor]",
    "tests/pytorch/test_torch_explicit_backward.py::"
    "test_binary_input_gradients_are_the_plain_formulas[mean-0.1-inductor]",
    "tests/pytorch/test_issue13_vocab_parallel_fullgraph.py::test_one_rank_compiles_with_inductor_as_eager",
]


def run(header: str, extra: dict[str, str]) -> tuple[float, float, int]:
    """One pytest run of :data:`TESTS` on cold caches; (CPU s, wall s, exit status)."""
    with tempfile.TemporaryDirectory(prefix="bench-inductor-header-") as folder:
        tmp = Path(folder) / "tmp"
        tmp.mkdir()
        env = dict(os.environ, **extra)
        env.update(
            TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS=header,
            TORCHINDUCTOR_CACHE_DIR=str(Path(folder) / "inductor"),
            TMPDIR=str(tmp),
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return cpu, wall, done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--threads", help="TORCHINDUCTOR_COMPILE_THREADS for both settings (default: unset)"
    )
    args = parser.parse_args(argv)
    extra = {"TORCHINDUCTOR_COMPILE_THREADS": args.threads} if args.threads else {}
    with open("/proc/loadavg") as f:
        print(f"load before: {f.read().strip()}", flush=True)
    failed = 0
    for r in range(args.rounds):
        for header in ("1", "0") if r % 2 == 0 else ("0", "1"):
            cpu, wall, status = run(header, extra)
            failed |= status
            state = "on " if header == "1" else "off"
            print(
                f"round {r + 1} header {state}: {cpu:7.1f} s CPU, {wall:7.1f} s wall, exit {status}"
            )
    with open("/proc/loadavg") as f:
        print(f"load after: {f.read().strip()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
