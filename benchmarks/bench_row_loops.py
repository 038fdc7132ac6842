"""The short-row loops of ``EvaluationState.update``'s kernel alone (issue 13), one
thread: in cache and from memory, against the read's floor, and rewrites of the row
loop that were slower (two bit-identical, one in plain order).

    python benchmarks/bench_row_loops.py [--rows 1000000] [--classes 10] [--repeats 9]

``totals`` (``calibration/_row_kernels_numba``) takes the rows in chunks of 256
(``_PART_ROWS``); for float32 rows of at most ``_SHORT_ROWS`` classes each chunk goes
through ``label_error``, ``sums_and_top`` (each row's sum, sum of squares but the
label's, first maximum) and ``entries_suspect`` (an entry NaN or outside [0, 1]).  Each
loop is timed here alone over every chunk of the input ("memory": chunk after chunk, as
the kernel reads them) and over the first chunk again and again ("cache": the same
number of calls, rows in L1), by thread CPU time, min and median of ``--repeats``
interleaved runs; the floors are a vectorised float32 sum of each chunk and NumPy's
``np.add.reduce`` of the whole input (``bench_evaluation``'s floor, pairwise: slower).

The rewrites, each checked here against ``sums_and_top`` bit for bit (every output,
4 to 15 classes, rows with NaN, negative, above-1 and -0.0 entries, negative labels):

* ``unrolled``: the row in four explicit running sums (the order LLVM gives
  ``sums_and_top``'s reassociated loop at 4 <= k < 16: a 4-lane epilogue, lanes
  ``j mod 4`` reduced as ``(l0 + l2) + (l1 + l3)``, FMAs in the lanes, then a scalar
  tail with separate products), the entries' check folded in (the sign bits or-ed, the
  largest key above 1.0's bits), no ``reassoc``: scalar code, slower than the
  vectorised epilogue it copies.
* ``across rows``: the chunk transposed into one float64 column per class (scalar
  loads and stores), then the same arithmetic as elementwise loops over the rows
  (vectorised, 512-bit): the transpose alone costs about 40% of the loop it replaces,
  and reading the chunk column by column from memory costs more.
* ``across rows, plain order`` (issue 13, allowed to change the bits): each row's sum
  and squares in plain order ``j = 0..k-1`` (no reassociation, no contraction: the
  same bits at any vector width, and those of a plain Python sum, which the script
  checks), the chunk transposed in its own dtype by strided loads and contiguous
  stores (``transpose_rows``, in cache about half the time of the other loop order),
  then one fused elementwise pass over the rows per class (``add_column``: the sum,
  the squares but the label's and the packed key in one vectorised loop).  No
  faster than ``sums_and_top`` in cache and 5 ms slower from memory: the transpose
  alone costs half of the loop it replaces in cache, and its strided loads are what
  first touch the chunk in memory.  In the kernel (``chunk_rows``, after
  ``entries_suspect`` has brought the chunk into L1 by its flat loop) the whole
  ``EvaluationState.update`` kernel took 3.5 to 5.5 ms more than main's
  (``bench_update_stages.py --against``, 10^6 x 10, min of 7, load 1.9 and 2.3), in
  every stage, with the transposed entries in float64 or in float32.
* (not kept here) the row loop over the first ``4 (k // 4)`` entries only (the same
  vectorised epilogue, so the same bits), the last ``k mod 4`` entries then added in
  elementwise passes over the rows (strided loads): also bit-identical, and slower
  (10^6 x 10, cache, min of 9: 7.5 against 7.0 ms without the squares, 11.2 against
  9.2 ms with them; load 1.6).
* ``bits``: ``entries_suspect`` as one unsigned compare of the float32 bits with
  1.0's (``-0.0`` counted suspect, which only sends its chunk to the exact recount):
  cheaper in cache, but 0.1 to 0.2 ms of a 29 ms kernel per 10^6 x 10.

Measured on the 2-core Emerald Rapids (AVX-512), 10^6 x 10 float32, one thread, ms,
min of 9 (second run: of 11), load average 2.7 and 2.2 (other engineers' runs: the
medians were far above the minima), 2026-12-01.  Every row includes this script's
dispatch of a chunk (about 0.3 ms: ``label_error`` alone over the rows in cache ran
0.10 ms in a loop of its own):

| loop | memory | cache |
|---|---:|---:|
| floor: np.add.reduce | 5.1, 5.6 | |
| floor: float32 sum | 2.8, 3.1 | 0.62, 0.63 |
| label_error | 0.87, 0.92 | 0.42, 0.45 |
| entries_suspect | 2.8, 3.2 | 0.79, 0.82 |
| entries, bits | 1.8, 2.1 | 0.63, 0.64 |
| sums_and_top, no squares | 7.6, 7.8 | 6.9, 7.4 |
| sums_and_top, squares | 9.6, 10.2 | 8.8, 9.6 |
| unrolled, no squares | 11.2, 11.6 | 10.3, 10.8 |
| unrolled, squares | 18.3, 18.9 | 13.5, 13.8 |
| across rows, no squares | 13.2, 12.4 | 9.4, 8.6 |
| across rows, squares | 15.4, 14.3 | 11.2, 9.7 |

(The transpose alone, in a loop of its own: 3.8 ms in cache, 5.8 ms from memory.)

Again, with the plain order's rewrite, 2026-12-01, min of 9 (median), load average
2.3 (other engineers' runs), ms:

| loop | memory | cache |
|---|---:|---:|
| floor: float32 sum | 3.7 (4.1) | 0.73 (0.79) |
| sums_and_top, squares | 13.7 (16.0) | 13.0 (15.6) |
| across rows, squares | 19.6 (21.5) | 14.3 (17.1) |
| across rows, plain order, squares | 18.7 (20.5) | 13.5 (15.8) |
| transpose alone (float32) | 7.5 (7.9) | 3.6 (4.3) |

``sums_and_top`` runs about 30 cycles a row in cache at 10 classes: two 4-lane
iterations, three horizontal reductions and a two-entry scalar tail (the key's maximum
in general registers); the loop, not the memory, is what is above the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import numba
import numpy as np

from bench_evaluation import data
from crossent._intrinsics_numba import bits_to_float64, float64_to_bits, prefer_wide_vectors
from crossent.calibration import _row_kernels
from crossent.calibration import _row_kernels_numba as kernels

from _machine import cpu_name, interleaved_thread_times, vector_width

CHUNK = 256  # totals' chunk of rows at 10 classes (_PART_ROWS)
ONE = np.int64(0x3FF0000000000000)  # 1.0's float64 bits


@numba.njit(fastmath={"contract", "nsz"}, inline="always")
def unrolled_rows(rows, with_squares, limit, p_label, others, confidence, predicted):
    # sums_and_top's numbers in four explicit lanes (4 <= k < 16), and whether an entry
    # is negative, NaN or above 1 (or -0.0)
    values, labels = rows
    n, k = values.shape
    groups = k // 4
    suspect = 0
    high = np.int64(-1) << 63
    signs = np.int64(0)
    for i in range(n):
        row = values[i]
        y = labels[i]
        y = y + k if y < 0 else y
        x0, x1 = np.float64(row[0]), np.float64(row[1])
        x2, x3 = np.float64(row[2]), np.float64(row[3])
        t0, t1, t2, t3 = x0, x1, x2, x3
        a0 = 0.0 if y == 0 else x0 * x0
        a1 = 0.0 if y == 1 else x1 * x1
        a2 = 0.0 if y == 2 else x2 * x2
        a3 = 0.0 if y == 3 else x3 * x3
        b0, b1 = float64_to_bits(x0) | 65535, float64_to_bits(x1) | 65534
        b2, b3 = float64_to_bits(x2) | 65533, float64_to_bits(x3) | 65532
        for g in range(1, groups):
            j = 4 * g
            x0, x1 = np.float64(row[j]), np.float64(row[j + 1])
            x2, x3 = np.float64(row[j + 2]), np.float64(row[j + 3])
            t0 += x0
            t1 += x1
            t2 += x2
            t3 += x3
            if with_squares:
                a0 = a0 if y == j else a0 + x0 * x0
                a1 = a1 if y == j + 1 else a1 + x1 * x1
                a2 = a2 if y == j + 2 else a2 + x2 * x2
                a3 = a3 if y == j + 3 else a3 + x3 * x3
            b0 = max(b0, float64_to_bits(x0) | (65535 - j))
            b1 = max(b1, float64_to_bits(x1) | (65534 - j))
            b2 = max(b2, float64_to_bits(x2) | (65533 - j))
            b3 = max(b3, float64_to_bits(x3) | (65532 - j))
        total = (t0 + t2) + (t1 + t3)
        squares = (a0 + a2) + (a1 + a3)
        key = max(max(b0, b2), max(b1, b3))
        sign = (b0 | b1) | (b2 | b3)
        for j in range(4 * groups, k):
            x = np.float64(row[j])
            total += x
            if with_squares:
                squares += 0.0 if j == y else x * x
            b = float64_to_bits(x) | (65535 - j)
            key = max(key, b)
            sign |= b
        suspect += 1 if abs(total - 1.0) > limit else 0
        p_label[i] = np.float64(row[y])
        others[i] = squares if with_squares else 0.0
        predicted[i] = 65535 - (key & 65535)
        confidence[i] = bits_to_float64(key & ~np.int64(65535))
        high = max(high, key)
        signs |= sign
    return suspect, (signs < 0) | ((high & ~np.int64(65535)) > ONE)


@numba.njit(fastmath={"contract", "nsz"}, inline="never")
def unrolled(rows, with_squares, limit, p_label, others, confidence, predicted):
    if with_squares:
        return unrolled_rows(rows, True, limit, p_label, others, confidence, predicted)
    return unrolled_rows(rows, False, limit, p_label, others, confidence, predicted)


@numba.njit(fastmath={"contract", "nsz"}, inline="never")
def across_rows(rows, with_squares, limit, p_label, others, confidence, predicted, buffers):
    # sums_and_top's numbers (4 <= k < 16) from the chunk transposed: cols[j] the
    # float64 entries j of the rows; every later loop elementwise over the rows, each
    # with one output and few inputs (more pointers than LLVM's runtime alias checks
    # allow leave a loop scalar)
    prefer_wide_vectors()
    values, labels = rows
    cols, scratch, ys, _ = buffers
    n, k = values.shape
    groups = k // 4
    for j in range(k):
        column = cols[j, :n]
        for i in range(n):
            column[i] = np.float64(values[i, j])
    for i in range(n):
        y = labels[i]
        ys[i] = y + k if y < 0 else y
    yo, tot, keys = ys[:n], scratch[4, :n], scratch[5, :n].view(np.int64)
    lane0, lane1, lane2, lane3 = scratch[0, :n], scratch[1, :n], scratch[2, :n], scratch[3, :n]
    for lane in range(4):
        out, first = scratch[lane, :n], cols[lane, :n]
        for i in range(n):
            out[i] = first[i]
        for g in range(1, groups):
            column = cols[4 * g + lane, :n]
            for i in range(n):
                out[i] += column[i]
    for i in range(n):
        tot[i] = (lane0[i] + lane2[i]) + (lane1[i] + lane3[i])
    for j in range(4 * groups, k):
        column = cols[j, :n]
        for i in range(n):
            tot[i] += column[i]
    suspect = 0
    for i in range(n):
        suspect += 1 if abs(tot[i] - 1.0) > limit else 0
    squares = others[:n]
    for i in range(n):
        squares[i] = 0.0
    if with_squares:
        for lane in range(4):
            out, first = scratch[lane, :n], cols[lane, :n]
            for i in range(n):
                x = first[i]
                out[i] = 0.0 if yo[i] == lane else x * x
            for g in range(1, groups):
                j = 4 * g + lane
                column = cols[j, :n]
                for i in range(n):
                    x = column[i]
                    out[i] = out[i] if yo[i] == j else out[i] + x * x
        for i in range(n):
            squares[i] = (lane0[i] + lane2[i]) + (lane1[i] + lane3[i])
        for j in range(4 * groups, k):
            column = cols[j, :n]
            for i in range(n):
                x = column[i]
                squares[i] += 0.0 if j == yo[i] else x * x
    first = cols[0, :n]
    for i in range(n):
        keys[i] = float64_to_bits(first[i]) | 65535
    for j in range(1, k):
        column = cols[j, :n]
        for i in range(n):
            keys[i] = max(keys[i], float64_to_bits(column[i]) | (65535 - j))
    for i in range(n):
        p_label[i] = np.float64(values[i, yo[i]])
    for i in range(n):
        predicted[i] = 65535 - (keys[i] & 65535)
        confidence[i] = bits_to_float64(keys[i] & ~np.int64(65535))
    return suspect


@numba.njit(fastmath={"nsz"}, inline="never")
def transpose_rows(values, columns):
    # columns[j, i] = values[i, j] in the values' dtype (strided loads, contiguous
    # stores: in cache about half the time of the other loop order)
    prefer_wide_vectors()
    n, k = values.shape
    for j in range(k):
        column = columns[j, :n]
        for i in range(n):
            column[i] = values[i, j]


@numba.njit(fastmath={"nsz"}, inline="never")
def add_column(column, j, ys, sums, squares, keys):
    # one class's entries of the rows into their running sums (plain order j = 0, 1,
    # ...: no reassociation, no contraction, the same bits at any vector width)
    prefer_wide_vectors()
    for i in range(column.shape[0]):
        x = np.float64(column[i])
        sums[i] = sums[i] + x
        squares[i] = squares[i] + (0.0 if ys[i] == j else x * x)
        keys[i] = max(keys[i], float64_to_bits(x) | (65535 - j))


@numba.njit(fastmath={"nsz"}, inline="never")
def plain_rows(rows, limit, p_label, others, confidence, predicted, buffers):
    # sums_and_top's numbers with the squares (any k), one row per vector lane: the
    # chunk transposed in its dtype (transpose_rows), then one fused elementwise pass
    # over the rows per class (add_column); each row's sum and squares in plain order
    # j = 0..k-1, so not sums_and_top's bits (its squares within a few ulps)
    values, labels = rows
    cols, scratch, ys = buffers
    n, k = values.shape
    transpose_rows(values, cols)
    yo, sums, keys = ys[:n], scratch[4, :n], scratch[5, :n].view(np.int64)
    squares = others[:n]
    for i in range(n):
        y = labels[i]
        yo[i] = y + k if y < 0 else y
        sums[i] = 0.0
        squares[i] = 0.0
        keys[i] = np.int64(-1) << 63
    for j in range(k):
        add_column(cols[j, :n], j, yo, sums, squares, keys)
    suspect = 0
    for i in range(n):
        suspect += 1 if abs(sums[i] - 1.0) > limit else 0
        p_label[i] = np.float64(values[i, yo[i]])
        predicted[i] = 65535 - (keys[i] & 65535)
        confidence[i] = bits_to_float64(keys[i] & ~np.int64(65535))
    return suspect


@numba.njit(fastmath={"contract", "reassoc", "nsz", "arcp"}, inline="never")
def bits_suspect(bits):
    # entries_suspect from float32 bits: one unsigned compare (x > 1, x < 0, NaN, -0.0)
    prefer_wide_vectors()
    bad = False
    for t in range(bits.shape[0]):
        bad |= np.uint32(bits[t]) > np.uint32(0x3F800000)
    return bad


@numba.njit(fastmath={"reassoc"}, inline="never")
def chunk_sum(entries):
    # the floor: a vectorised float32 sum of the chunk
    prefer_wide_vectors()
    total = np.float32(0.0)
    for t in range(entries.shape[0]):
        total += entries[t]
    return total


@numba.njit(nogil=True)
def over_chunks(loop, values, flat, bits, labels, same, buffers):
    # loop over every chunk (or the first one again, same): 0 floor, 1 label_error,
    # 2 entries_suspect, 3 bits, 4/5 sums_and_top, 6/7 unrolled, 8/9 across rows
    # (odd: with the squares), 10 plain_rows, 11 its transpose alone
    n, k = values.shape
    floats, predicted, cols = buffers
    found = 0.0
    for c0 in range(0, n, CHUNK):
        a = 0 if same else c0
        b = min(a + CHUNK, n)
        rows = (values[a:b], labels[a:b])
        outs = (floats[0], floats[1], floats[2], predicted)
        squares = loop % 2 == 1
        if loop == 0:
            found += chunk_sum(flat[a * k : b * k])
        elif loop == 1:
            found += kernels.label_error(labels[a:b], -k, k)
        elif loop == 2:
            found += kernels.entries_suspect(flat[a * k : b * k])
        elif loop == 3:
            found += bits_suspect(bits[a * k : b * k])
        elif loop < 6:
            found += kernels.sums_and_top(rows, squares, 1e-3, *outs)
        elif loop < 8:
            suspect, bad = unrolled(rows, squares, 1e-3, *outs)
            found += suspect + bad
        elif loop < 10:
            found += across_rows(rows, squares, 1e-3, *outs, cols)
        elif loop == 10:
            found += plain_rows(rows, 1e-3, *outs, (cols[3], cols[1], cols[2]))
        else:
            transpose_rows(values[a:b], cols[3])
    return found


LOOPS = {
    "floor: float32 sum": 0,
    "label_error": 1,
    "entries_suspect": 2,
    "entries, bits": 3,
    "sums_and_top, no squares": 4,
    "sums_and_top, squares": 5,
    "unrolled, no squares": 6,
    "unrolled, squares": 7,
    "across rows, no squares": 8,
    "across rows, squares": 9,
    "across rows, plain order, squares": 10,
    "transpose alone (float32)": 11,
}


def buffers(rows: int, classes: int) -> tuple:
    """Outputs of ``rows`` rows and the transpose's buffers."""
    cols = (
        np.empty((classes, rows)),
        np.empty((6, rows)),
        np.empty(rows, dtype=np.intp),
        np.empty((classes, rows), dtype=np.float32),
    )
    return np.empty((3, rows)), np.empty(rows, dtype=np.intp), cols


def same_bits(classes: int, seed: int) -> bool:
    """Whether both rewrites give every output of ``sums_and_top`` bit for bit."""
    rng = np.random.default_rng(seed)
    rows = 3000
    probs = rng.dirichlet(np.ones(classes) * rng.uniform(0.05, 3), rows).astype(np.float32)
    odd = [np.nan, -0.5, 1.5, -0.0, np.inf]
    probs[rng.integers(0, rows, 5), rng.integers(0, classes, 5)] = rng.choice(odd, 5)
    labels = rng.integers(-classes, classes, rows)
    values, _, _, ids = _row_kernels._kernel_arguments(probs, labels)
    same = True
    for squares in (False, True):
        results = []
        for name in ("sums_and_top", "unrolled", "across rows"):
            (floats, predicted, cols) = buffers(rows, classes)
            outs = (floats[0], floats[1], floats[2], predicted)
            if name == "sums_and_top":
                suspect = kernels.sums_and_top((values, ids), squares, 1e-3, *outs)
            elif name == "unrolled":
                suspect = unrolled((values, ids), squares, 1e-3, *outs)[0]
            else:
                suspect = across_rows((values, ids), squares, 1e-3, *outs, cols)
            results.append((suspect, floats.view(np.int64).copy(), predicted.copy()))
        for other in results[1:]:
            same &= other[0] == results[0][0]
            same &= bool((other[1] == results[0][1]).all() and (other[2] == results[0][2]).all())
    return same


def plain_order_right(classes: int, seed: int) -> bool:
    """Whether ``plain_rows`` gives ``sums_and_top``'s suspect count, labels'
    probabilities, confidences and classes, and each row's squares bit for bit as a
    plain Python sum over j = 0..k-1 (the label's entry skipped)."""
    rng = np.random.default_rng(seed)
    rows = 600
    probs = rng.dirichlet(np.ones(classes) * rng.uniform(0.05, 3), rows).astype(np.float32)
    labels = rng.integers(-classes, classes, rows)
    values, _, _, ids = _row_kernels._kernel_arguments(probs, labels)
    (floats, predicted, cols), (plain, plain_predicted, _) = (
        buffers(rows, classes),
        buffers(rows, classes),
    )
    suspect = kernels.sums_and_top((values, ids), True, 1e-3, *floats, predicted)
    found = plain_rows((values, ids), 1e-3, *plain, plain_predicted, (cols[3], cols[1], cols[2]))
    squares = np.empty(rows)
    for i, (row, y) in enumerate(zip(probs.tolist(), labels % classes, strict=True)):
        total = 0.0  # a plain loop (Python 3.12's sum() of floats is compensated)
        for j, x in enumerate(row):
            total += 0.0 if j == y else x * x
        squares[i] = total
    return (
        suspect == found
        and bool((predicted == plain_predicted).all())
        and bool((floats[[0, 2]] == plain[[0, 2]]).all())
        and bool((plain[1] == squares).all())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not 4 <= args.classes < 16:
        parser.error("the rewrites take 4 to 15 classes")

    same = all(same_bits(k, seed) for k in range(4, 16) for seed in range(3))
    plain = all(plain_order_right(k, seed) for k in range(4, 16) for seed in range(3))
    probs, labels = data(args.rows, args.classes)
    values, flat, bits, ids = _row_kernels._kernel_arguments(probs, labels)
    flat_bits = bits.reshape(-1)
    work = buffers(CHUNK, args.classes)
    cases: dict[tuple[str, str], Callable[[], object]] = {
        ("floor: np.add.reduce", "memory"): lambda: np.add.reduce(flat),
    }
    for name, loop in LOOPS.items():
        for place, again in (("memory", False), ("cache", True)):
            cases[(name, place)] = lambda loop=loop, again=again: over_chunks(
                loop, values, flat, flat_bits, ids, again, work
            )
    seconds = interleaved_thread_times(cases, args.repeats)

    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"input: {args.rows} x {args.classes} float32, chunks of {CHUNK} rows; one thread, "
        f"CPU time (ms), min and median of {args.repeats} interleaved runs; rewrites "
        f"bit-identical to sums_and_top (4 to 15 classes): {same}; plain order's squares "
        f"those of a plain Python sum, its other numbers sums_and_top's: {plain}\n"
    )
    print("| loop | memory min | memory median | cache min | cache median |")
    print("|---|---:|---:|---:|---:|")
    names = ["floor: np.add.reduce", *LOOPS]
    for name in names:
        cells = []
        for place in ("memory", "cache"):
            times = seconds.get((name, place))
            cells += (
                [f"{min(times) * 1e3:.2f}", f"{statistics.median(times) * 1e3:.2f}"]
                if times
                else ["", ""]
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
