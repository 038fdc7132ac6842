"""Where the forward kernel's time goes out of cache: the fused loop, its parts, and prefetching.

    python benchmarks/bench_fused_stream.py [--rows 4096] [--classes 32000] [--rounds 9]
        [--candidates | --exp | --shapes | --registers]

Issue 13 asks why the softmax cross-entropy forward, whose loop exponentiates row i while
it takes the maximum of row i + 1 (``exp_sum_and_next_max``), costs about the sum of its
arithmetic and of a read of the logits once the rows come from DRAM, rather than the
larger of the two. This script times, on one thread (the kernel's threads each run this
loop over their own rows), the kernel's own loops over float32 rows (standard normal x
0.1):

* the fused loop with both rows in cache (the same two rows again and again), and over
  the rows in order, the next row streaming in from memory, as the kernel runs it;
* its halves: the exp-sum alone (in cache, and streaming) and the maximum alone
  (``row_max_bits``, the one-thread read of the rows);
* software prefetching that leaves the fused loop as it is (and so its sums' bits): the
  first eight cache lines of every 4 KiB page of row i + 1 before the loop (the hardware
  streamer stops at page boundaries);
* software prefetching inside the loop, which LLVM does not vectorise with a call in it
  (``llvm.prefetch`` has no vector form): the row in chunks of 1024 logits, a vectorised
  loop each, the chunk's lines of the next row prefetched some distance ahead before it
  (``prefetcht0`` or ``prefetcht1``). Chunking changes the order of the sum (not the
  kernel's bits: these loops are timed, never used), so its own control, the same
  chunks without prefetching, is timed too;
* two orders of work that keep the read of memory in a load-only loop of its own and
  the exponentials on rows in L1 (``--candidates`` times these, the kernel's loop and
  its halves only): A, each row alone in chunks of C logits, an online softmax (the
  chunk's maximum, the running exp-sum rescaled when the maximum moves, then the
  chunk's exp-sum from L1), C = 256 to the whole row (two passes over the row);
  B, the kernel's pairing in chunks (the maximum of chunk j of row i + 1, then the
  exp-sum of chunk j of row i). The chunks are slices, so that the loops index from 0
  (a loop over ``range(first, stop)`` compiles to gathers: Numba's wraparound of
  negative indices).

``--shapes`` times the explicit AVX2 loop (``POLY_LOOP``'s, built here whatever the
target) in the shapes of ``SHAPES`` (logits per step, prefetch distance) against the
loop over ``exp_nonpositive`` that LLVM vectorises; run it under
``benchmarks/emulate_avx2.sh`` to time 256-bit code on an AVX-512 machine.
``--registers`` times the same loop with other numbers of accumulators and of pairs of
bounds of the next row's bits (``REGISTERS``; the AVX2 target has 16 ``ymm`` registers)
and prints, per shape, the instructions of its loop and how many of them touch the
stack (spills and their reloads), also under the emulation.

Every case runs once per round, interleaved, ``--rounds`` rounds; the minimum and median
thread CPU time (``time.thread_time``, which other processes on a loaded machine inflate
less than wall time) and the minimum wall time are printed in ns per logit, with the
load average. The script checks that the prefetching loops hold prefetch instructions.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from crossent._intrinsics_numba import prefer_wide_vectors
from crossent.losses import _cpu_kernels_numba as kernels

from _machine import cpu_name, vector_width

_CHUNK = 1024  # logits per chunk of the prefetching loops (64 cache lines)
_I32 = ir.IntType(32)
_I8P = ir.IntType(8).as_pointer()


def _prefetcher(locality: int) -> Any:
    """An intrinsic prefetching the line at ``array``'s data + ``offset`` bytes.

    ``llvm.prefetch`` for reading, into the data cache, with ``locality`` 3
    (``prefetcht0``) or 2 (``prefetcht1``); a prefetch past the array never faults.
    """

    @intrinsic
    def prefetch(typingctx: Any, array: Any, offset: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32]),
                "llvm.prefetch.p0",
            )
            address = builder.gep(builder.bitcast(data, _I8P), [args[1]])
            constants = [ir.Constant(_I32, k) for k in (0, locality, 1)]
            builder.call(fn, [address, *constants])
            return context.get_dummy_value()

        return types.none(array, types.int64), codegen

    return prefetch


prefetch_t0 = _prefetcher(3)
prefetch_t1 = _prefetcher(2)


@intrinsic
def address(typingctx: Any, array: Any) -> Any:
    # the address of the array's data, as an integer
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return types.int64(array), codegen


@numba.njit(inline="never")
def page_heads(row_bits):
    # prefetch the first 8 lines of every 4 KiB page that starts inside the row
    start = address(row_bits)
    offset = ((start + 4095) & ~4095) - start
    while offset < row_bits.shape[0] * 4:
        for line in range(8):
            prefetch_t0(row_bits, offset + 64 * line)
        offset += 4096


@numba.njit(fastmath=kernels._FLAGS, inline="always")
def fused_chunks(row, following, top, distance, kind):
    # the fused loop in chunks of _CHUNK logits, each chunk's lines of ``following``
    # prefetched ``distance`` bytes ahead first (kind 1: prefetcht0, 2: prefetcht1, 0: none)
    high = kernels.float32_bits(following[0])
    low = kernels.as_unsigned(high)
    s = 0.0
    full = row.shape[0] // _CHUNK * _CHUNK
    for first in range(0, full, _CHUNK):
        for line in range(_CHUNK // 16):
            if kind == 1:
                prefetch_t0(following, (first + 16 * line) * 4 + distance)
            elif kind == 2:
                prefetch_t1(following, (first + 16 * line) * 4 + distance)
        part = 0.0
        for j in range(first, first + _CHUNK):
            part += kernels.exp_nonpositive(np.float64(row[j]) - top)
            bits = following[j]
            high = max(high, bits)
            low = min(low, kernels.as_unsigned(bits))
        s += part
    for j in range(full, row.shape[0]):
        s += kernels.exp_nonpositive(np.float64(row[j]) - top)
        high = max(high, following[j])
        low = min(low, kernels.as_unsigned(following[j]))
    return s, kernels.maximum_bits(high, low)


@numba.njit(fastmath=kernels._FLAGS, inline="always")
def online_chunks(row, row_bits, chunk):
    # candidate A: the row alone, chunk by chunk: the chunk's maximum in a load-only
    # loop (the only read from memory), the running exp-sum rescaled when the running
    # maximum moves, then the chunk's exp-sum from L1 against the running maximum
    high = kernels.float32_bits(row_bits[0])
    low = kernels.as_unsigned(high)
    top_bits = kernels.maximum_bits(high, low)
    top = np.float64(kernels.bits_to_float32(top_bits))
    s = 0.0
    v = row.shape[0]
    for first in range(0, v, chunk):
        # slices, so that the loops' indices are known non-negative (no gathers)
        part_bits = row_bits[first : first + chunk]
        for j in range(part_bits.shape[0]):
            bits = kernels.float32_bits(part_bits[j])
            high = max(high, bits)
            low = min(low, kernels.as_unsigned(bits))
        new_bits = kernels.maximum_bits(high, low)
        if new_bits != top_bits:
            new = np.float64(kernels.bits_to_float32(new_bits))
            s *= kernels.exp_nonpositive(top - new)
            top, top_bits = new, new_bits
        s += kernels.exp_sum(row[first : first + chunk], top, 1.0, False)
    return s, top_bits


@numba.njit(fastmath=kernels._FLAGS, inline="always")
def paired_chunks(row, following, top, chunk):
    # candidate B: the kernel's order of work, in chunk pairs: the maximum of chunk j of
    # the next row in a load-only loop, then the exp-sum of chunk j of this row
    high = kernels.float32_bits(following[0])
    low = kernels.as_unsigned(high)
    s = 0.0
    v = row.shape[0]
    for first in range(0, v, chunk):
        part_bits = following[first : first + chunk]
        for j in range(part_bits.shape[0]):
            bits = part_bits[j]
            high = max(high, bits)
            low = min(low, kernels.as_unsigned(bits))
        s += kernels.exp_sum(row[first : first + chunk], top, 1.0, False)
    return s, kernels.maximum_bits(high, low)


@numba.njit(fastmath=kernels._FLAGS, inline="always")
def polynomial_fused(row, following, top):
    # the fused loop over exp_nonpositive (main's, and any target without TABLE_EXP)
    high = kernels.float32_bits(following[0])
    low = kernels.as_unsigned(high)
    s = 0.0
    for j in range(row.shape[0]):
        s += kernels.exp_nonpositive(np.float64(row[j]) - top)
        bits = kernels.float32_bits(following[j])
        high = max(high, bits)
        low = min(low, kernels.as_unsigned(bits))
    return s, kernels.maximum_bits(high, low)


@numba.njit(fastmath=kernels._FLAGS)
def sweep(z, z_bits, case, distance, kind):
    # one pass of ``case`` over the rows (or over rows 0 and 1 again, in cache)
    prefer_wide_vectors()
    total = 0.0
    check = 0
    for i in range(z.shape[0] - 1):
        here = 0 if case in (0, 2, 7, 9, 11) else i
        s = 0.0
        top = np.int32(0)
        if case == 0 or case == 1:  # the kernel's fused loop
            s, top = kernels.exp_sum_and_next_max(z[here], z_bits[here + 1], 0.5, 1.0, False)
        elif case == 2 or case == 3:  # the exp-sum alone
            s = kernels.exp_sum(z[here], 0.5, 1.0, False)
        elif case == 4:  # the maximum alone
            top = kernels.row_max_bits(z_bits[i])
        elif case == 5:  # page heads of the next row, then the kernel's fused loop
            page_heads(z_bits[i + 1])
            s, top = kernels.exp_sum_and_next_max(z[i], z_bits[i + 1], 0.5, 1.0, False)
        elif case == 6:  # chunks, prefetching or not
            s, top = fused_chunks(z[i], z_bits[i + 1], 0.5, distance, kind)
        elif case == 7 or case == 8:  # candidate A, chunks of ``distance`` logits
            s, top = online_chunks(z[here], z_bits[here], distance)
        elif case == 11 or case == 12:  # the fused loop over exp_nonpositive
            s, top = polynomial_fused(z[here], z_bits[here + 1], 0.5)
        else:  # candidate B
            s, top = paired_chunks(z[here], z_bits[here + 1], 0.5, distance)
        total += s
        check ^= top
    return total, check


CASES = {
    "fused, both rows in cache": (0, 0, 0),
    "fused, next row from memory (the kernel)": (1, 0, 0),
    "exp-sum alone, in cache": (2, 0, 0),
    "exp-sum alone, row from memory": (3, 0, 0),
    "maximum alone, from memory (the read)": (4, 0, 0),
    "fused + page heads of next row (prefetcht0)": (5, 0, 0),
    "fused in chunks, no prefetch (control)": (6, 0, 0),
    "chunks + prefetcht0 4 KiB ahead": (6, 4096, 1),
    "chunks + prefetcht1 4 KiB ahead": (6, 4096, 2),
    "chunks + prefetcht0 16 KiB ahead": (6, 16384, 1),
    "chunks + prefetcht1 one row ahead": (6, -1, 2),
}
POLYNOMIAL = {
    "fused over exp_nonpositive, both rows in cache": (11, 0, 0),
    "fused over exp_nonpositive, next row from memory": (12, 0, 0),
}
CANDIDATES = {
    **{f"A online C={c}, in cache": (7, c, 0) for c in (256, 512, 1024, 2048, 8192, 32000)},
    **{f"A online C={c}, from memory": (8, c, 0) for c in (256, 512, 1024, 2048, 8192, 32000)},
    **{f"B paired C={c}, in cache": (9, c, 0) for c in (512, 1024, 2048)},
    **{f"B paired C={c}, from memory": (10, c, 0) for c in (512, 1024, 2048)},
}


def shape_sweep(fused: Any) -> Any:
    """A sweep like ``sweep``'s cases 0 and 1 over the explicit loop ``fused``."""

    @numba.njit(fastmath=kernels._FLAGS)
    def run(z, z_bits, in_cache):
        total = 0.0
        check = 0
        for i in range(z.shape[0] - 1):
            here = 0 if in_cache else i
            s, top = fused(z[here], z_bits[here + 1], 0.5, 1.0)
            total += s
            check ^= top
        return total, check

    return run


#: ``--shapes``: the explicit AVX2 loop (``kernels._POLY_SHAPE``'s terms) in other shapes:
#: (logits per step, prefetch distance in bytes, 0 for none)
SHAPES = [(8, 16384), (16, 16384), (32, 16384), (8, 8192), (32, 8192), (32, 32768), (64, 16384)]


def shape_cases() -> dict[str, tuple[Any, bool]]:
    """The ``--shapes`` cases: name -> (sweep, in cache)."""
    cases = {}
    for step, ahead in SHAPES:
        shape = kernels._POLY_SHAPE._replace(step=step, ahead=ahead)
        run = shape_sweep(kernels._table_intrinsic(True, False, shape))
        where = f"AVX2 loop, step {step}, " + (f"{ahead // 1024} KiB ahead" if ahead else "none")
        cases[where + ", in cache"] = (run, True)
        cases[where + ", from memory"] = (run, False)
    return cases


#: ``--registers``: the explicit AVX2 loop (its Horner terms) with (accumulators, pairs
#: of bounds); (8, 4), one of each per vector of a step, was the shape before branch
#: ``avx2regs`` (with Estrin's terms then: main's tree, ``bench_forward_floor.py
#: --against``, times that one).
REGISTERS = [(8, 4), (8, 1), (4, 2), (4, 1), (2, 1)]


def _loop_listing(run: Any) -> tuple[int, int]:
    """The instructions of the prefetching loop in ``run``'s code (the block from the
    label before its first prefetch to the jump back to it), and how many touch the
    stack."""
    lines = run.inspect_asm(run.signatures[0]).splitlines()
    marks = [i for i, line in enumerate(lines) if "prefetcht" in line]
    if not marks:
        return 0, 0
    first = marks[0]
    while first > 0 and not re.match(r"^\.LBB\w*:", lines[first]):
        first -= 1
    label = lines[first].split(":")[0]
    last = marks[-1]
    while last + 1 < len(lines) and not (
        lines[last].strip().startswith("j") and lines[last].split()[-1] == label
    ):
        last += 1
    body = [
        line
        for line in lines[first + 1 : last + 1]
        if line.strip() and not line.strip().startswith((".", "#"))
    ]
    return len(body), sum("(%rsp)" in line or "(%rbp)" in line for line in body)


def register_cases() -> dict[str, tuple[Any, bool]]:
    """The ``--registers`` cases: name -> (sweep, in cache); prints each loop's size."""
    cases = {}
    for sums, pairs in REGISTERS:
        shape = kernels._POLY_SHAPE._replace(sums=sums, bound_pairs=pairs)
        run = shape_sweep(kernels._table_intrinsic(True, False, shape))
        run(np.zeros((2, 64), np.float32), np.zeros((2, 64), np.int32), True)
        size, stack = _loop_listing(run)
        where = f"AVX2 loop, {sums} sums, {pairs} bound pairs ({size} instrs, {stack} on the stack)"
        cases[where + ", in cache"] = (run, True)
        cases[where + ", from memory"] = (run, False)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="the kernel's loop, its halves and the single-read candidates A and B only",
    )
    parser.add_argument(
        "--exp",
        action="store_true",
        help="the kernel's fused loop (TABLE_EXP's where the target has it) against the same "
        "loop over exp_nonpositive, in cache and from memory, and the read, only",
    )
    parser.add_argument(
        "--shapes",
        action="store_true",
        help="the loop over exp_nonpositive against the explicit AVX2 loop in several shapes "
        "(steps, prefetch distances: SHAPES), in cache and from memory, and the read",
    )
    parser.add_argument(
        "--registers",
        action="store_true",
        help="the explicit AVX2 loop with other numbers of accumulators and pairs of bounds "
        "(REGISTERS), each loop's size and stack accesses, and the read",
    )
    args = parser.parse_args()
    args.shapes = args.shapes or args.registers
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes), dtype=np.float32) * 0.1
    z_bits = z.view(np.int32)
    row_bytes = args.classes * 4
    cases = {
        name: (case, row_bytes if distance < 0 else distance, kind)
        for name, (case, distance, kind) in CASES.items()
        if not (args.candidates or args.exp or args.shapes)
        or case < (0 if args.shapes else 2 if args.exp else 5)
    }
    if args.exp or args.shapes:
        cases["maximum alone, from memory (the read)"] = (4, 0, 0)
        cases.update(POLYNOMIAL)
    else:
        cases.update(CANDIDATES)
    runs: dict[str, Any] = {
        name: lambda case=case: sweep(z, z_bits, *case) for name, case in cases.items()
    }
    if args.shapes:
        runs.update(
            {
                name: lambda run=run, in_cache=in_cache: run(z, z_bits, in_cache)
                for name, (run, in_cache) in (
                    register_cases() if args.registers else shape_cases()
                ).items()
            }
        )
    for run in runs.values():
        run()  # compile, and warm the caches as the rounds will
    asm = sweep.inspect_asm(sweep.signatures[0])
    found = len(re.findall(r"prefetcht[01]\s", asm))
    for mnemonic in () if args.shapes else ("prefetcht0", "prefetcht1"):
        if not re.search(mnemonic + r"\s", asm):
            raise RuntimeError(f"no {mnemonic} in the prefetching loops")
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start, clock = time.perf_counter(), time.thread_time()
            run()
            cpu[name].append(time.thread_time() - clock)
            wall[name].append(time.perf_counter() - start)
    logits = (args.rows - 1) * args.classes
    print(f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, one thread")
    print(
        f"input: {args.rows} x {args.classes} float32 ({z.nbytes / 2**20:.0f} MiB), "
        f"{args.rounds} interleaved rounds, {found} prefetch instructions in the loops; "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| case | CPU min ns/logit | CPU median | wall min |")
    print("|---|---:|---:|---:|")
    for name in runs:
        ns = [t / logits * 1e9 for t in cpu[name]]
        print(
            f"| {name} | {min(ns):.3f} | {statistics.median(ns):.3f} | "
            f"{min(wall[name]) / logits * 1e9:.3f} |"
        )


if __name__ == "__main__":
    main()
