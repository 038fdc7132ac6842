# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
"""The Numba kernels behind :mod:`._row_kernels` (imported by it on first use only).

Every kernel and helper is defined at module level (the bit-casting intrinsics in
:mod:`crossent._intrinsics_numba`, shared with the losses' kernels), so that Numba's on-disk
cache (``cache=True``) hits in every later process: a function defined inside another
is a closure, and Numba keys its cache entries by a hash of the pickled closure
variables (here other dispatchers and intrinsics), which differs from process to
process, so every process compiled every kernel again (issue 13). What the kernels
compute, and why so, is in :mod:`._row_kernels`' docstring.

A kernel loaded from the cache may differ in the last bit of a reassociated sum from
the same kernel in the process that compiled it: observed, the Brier, spherical and
entropy sums of :func:`totals` off by 1 ulp, when :func:`chunk_parts` summed them in
reassociated loops.  Most likely because :func:`chunk_parts` is not inlined: Numba
links a weak copy of it into each kernel, which LLVM optimises again with the kernel,
and the compiling process's calls bind to the helper's own compilation, a cached
kernel's to its copy (the vectoriser choosing another order).  Those sums are now
pairwise trees without reassociation (:func:`chunk_scores`), the same bits either way
(tests/calibration/test_issue13_deterministic_sums.py).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.cpu import CPUTargetOptions
from numba.extending import intrinsic, overload

from .._intrinsics_numba import (
    bits_to_float64,
    call_intrinsic,
    float64_to_bits,
    halving,
    numba_target_has,
    prefer_wide_vectors,
    splat,
)
from ._row_kernels import _CHUNK_ENTRIES, _PACKED_CLASSES, _PART_ROWS, _SHORT_ROWS, _TILE_CLASSES

__all__ = [
    "GROUPED_TILES",
    "add_compensated",
    "add_compensated_to",
    "add_stretches",
    "add_to_bins",
    "add_to_classes",
    "binary_bins",
    "chunk_parts",
    "chunk_rows",
    "chunk_scores",
    "entries_suspect",
    "entropy_terms",
    "fold_tallies",
    "folded_sum",
    "folded_terms",
    "group_ahead",
    "group_outputs",
    "guess_bin",
    "keep_smallest",
    "label_error",
    "lanes_tree",
    "log_array",
    "log_of_quotient",
    "log_positive",
    "log_reduced",
    "long_rows_top",
    "long_sums_and_top",
    "looped_rows",
    "merge_blocks",
    "merge_kept",
    "packed",
    "pairwise_sum",
    "prefetch",
    "ranked",
    "row_pass",
    "row_sums",
    "rows_entropy",
    "scores_from",
    "short_rows",
    "sort_kept",
    "spherical_scores",
    "spherical_wanted",
    "summaries",
    "sums_and_top",
    "surprisal_array",
    "surprisal_of",
    "suspect_rows",
    "tile_group",
    "tile_group_narrow",
    "tile_out",
    "tile_row",
    "tile_rows",
    "tiled_rows",
    "top_labels",
    "totals",
    "tree_sum",
]

_FLAGS = {"contract", "reassoc", "nsz", "arcp"}  # no nnan/ninf: NaN must stay visible
# Numba's private option that compiles a function without reference counting
# (chunk_rows' note): asked for where this Numba knows it (0.60 to 0.68 do), so that a
# later Numba without it still compiles the kernels, counting references as before.
_NO_REFCOUNTS: dict[str, bool] = {"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {}
_FOLD_LANES = 256  # folded_sum's running sums in totals (as many as a chunk's rows)
_PREFETCH_ENTRIES = 512  # tiled_rows' prefetch distance: 2 KiB of float32 ahead of a row
_PREFETCH_LABELS = 256  # and of the labels: 2 KiB of intp (the next chunk's, at 10 classes)
_TALLIED_BINS = 4096  # add_to_bins' counts in 4 interleaved histograms up to this many bins


# Other logarithms measured in this one's loop and not taken: Tang's table (read by
# gathers) and a division-free reciprocal (Newton's method), slower on Zen 3, Zen 5 and
# Emerald Rapids; fdlibm's shorter form, 8% faster on Zen 5 but less accurate (0.87
# against 0.73 ulp).  On Zen 5 the division is not the loop's limit (its ~30 vector
# operations per 8 entries are).  The numbers: benchmarks/bench_entropy_log.py.
#
# Compiled on its own without ``reassoc`` (LLVM still inlines it, each instruction
# keeping its flags): reassociation would distribute ``k * ln2`` over the 2^52 of
# the exponent trick below and cancel catastrophically.  NumPy's error model: with
# Python's, the division checks for zero, a branch that stops the vectorisation.
@numba.njit(fastmath={"contract", "nsz"}, inline="never", error_model="numpy")
def log_positive(x: float) -> float:
    # fdlibm's __ieee754_log for finite x > 0 (subnormals scaled by 2^54 first):
    # x = 2^k m, m in [sqrt(2)/2, sqrt(2)), then log_reduced(m - 1, k).
    # Error below 1 ulp, like the C library's.
    tiny = x < 2.2250738585072014e-308
    x = x * 18014398509481984.0 if tiny else x
    bits = float64_to_bits(x)
    # x = 2^k m with m in [T/2, T), T = 1 + 0x6A09C 2^-20 (fdlibm's cut below sqrt(2)):
    # adding 1 - T/2 to the bits carries the mantissa into the exponent field exactly
    # when m would reach T, so the field is k + 1023 and the mantissa bits plus those
    # of T/2 are m's (7 integer operations a vector, 11 with the halving written out;
    # the same m and k: measured 2.11 to 1.98 ns an entry, 4096 float32 entries in L1)
    t = bits + (0x3FF0000000000000 - 0x3FE6A09C00000000)
    biased = (t >> 52) & 0x7FF  # (masked: a logical shift, which AVX2 has for int64)
    m = bits_to_float64((t & 0x000FFFFFFFFFFFFF) + 0x3FE6A09C00000000)
    # the exponent as a float64 without an int-to-float conversion (which AVX2 lacks
    # for int64): the biased exponent in the low mantissa bits of 2^52, minus 2^52
    k = bits_to_float64(biased | 0x4330000000000000) - (4503599627370496.0 + 1023.0)
    k = k - 54.0 if tiny else k
    return log_reduced(m - 1.0, k)


# Inlined by Numba into its caller, whose flags it then has: call it only from a
# function compiled with log_positive's (fastmath {"contract", "nsz"}, NumPy's error
# model), as log_positive does (and the previous range reduction that
# tests/calibration/test_issue13_log_reduction.py keeps as an oracle).
@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def log_reduced(f: float, k: float) -> float:
    # log(2^k (1 + f)) for 1 + f = m in [T/2, T) (log_positive's reduction), k integral,
    # from s = f / (2 + f) (fdlibm's __ieee754_log)
    return log_of_quotient(f, f / (2.0 + f), k)


# log_reduced's polynomial, given s (inlined, with its caller's flags: see log_reduced);
# benchmarks/bench_entropy_log.py forms s in other ways and calls it.
@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def log_of_quotient(f: float, s: float, k: float) -> float:
    # log(2^k (1 + f)) with s = f / (2 + f): log(1 + f) = f - (f^2/2 - s (f^2/2 +
    # R(s^2))), R a degree-7 minimax polynomial, plus k log 2 split into a high part
    # exact in any product and a low part (fdlibm's __ieee754_log)
    z = s * s
    # R(z) = Lg1 z + ... + Lg7 z^7 by Estrin's scheme (pairs, then pairs of pairs):
    # a shorter dependency chain than fdlibm's two Horner halves (the loop is bound
    # by the latency of the chain: 2.0 to 1.8 ns an entry with four streams)
    w = z * z
    a = 0.6666666666666735130 + z * 0.3999999999940941908
    b = 0.2857142874366239149 + z * 0.2222219843214978396
    c = 0.1818357216161805012 + z * 0.1531383769920937332
    r = z * ((a + w * b) + (w * w) * (c + w * 0.1479819860511658591))
    hfsq = 0.5 * f * f
    return k * 6.93147180369123816490e-01 - (
        (hfsq - (s * (hfsq + r) + k * 1.90821492927058770002e-10)) - f
    )


# The flat loops below (entropy_terms, label_error, entries_suspect) are their own LLVM
# functions (inline="never"; LLVM inlines them after vectorising them), each asking for
# 512-bit vectors (prefer_wide_vectors: zmm on AVX-512 CPUs, where LLVM's tuning
# otherwise stays at 256 bits; no change on AVX2).  Their results do not depend on the
# vector width (elementwise terms, integer counts, an "or"), unlike the reassociated
# row sums of chunk_rows and row_sums, which keep their 256-bit order (their bits).
# Measured, 10^6 x 10 float32 on the 2-core Emerald Rapids, one thread, CPU time, min
# of 9 interleaved with main's (loaded machine): the EvaluationState.update kernel 36.5
# to 33.3 ms, its entropy terms 12.8 to 10.0 ms (float64 entries 14.0 to 10.9 ms).
@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def entropy_terms(flat, start, count, terms):
    prefer_wide_vectors()
    # p log p of consecutive entries (0 for p = 0): one flat loop over several rows,
    # vectorised across row boundaries, into a buffer that stays in L1; the four
    # quarters side by side, so that four independent logarithms are in flight
    # (the loop is bound by the logarithm's latency: two streams about 20% faster
    # than one, four about 10% faster than two on the 2-core AMD EPYC)
    # (slices indexed from 0: see entries_suspect)
    quarter = count // 4
    a = flat[start : start + quarter]
    b = flat[start + quarter : start + 2 * quarter]
    c = flat[start + 2 * quarter : start + 3 * quarter]
    d = flat[start + 3 * quarter : start + 4 * quarter]
    out_a, out_b = terms[:quarter], terms[quarter : 2 * quarter]
    out_c, out_d = terms[2 * quarter : 3 * quarter], terms[3 * quarter : 4 * quarter]
    for t in range(quarter):
        x, u, v, y = np.float64(a[t]), np.float64(b[t]), np.float64(c[t]), np.float64(d[t])
        out_a[t] = x * log_positive(x) if x > 0.0 else 0.0
        out_b[t] = u * log_positive(u) if u > 0.0 else 0.0
        out_c[t] = v * log_positive(v) if v > 0.0 else 0.0
        out_d[t] = y * log_positive(y) if y > 0.0 else 0.0
    for t in range(4 * quarter, count):
        x = np.float64(flat[start + t])
        terms[t] = x * log_positive(x) if x > 0.0 else 0.0


# Compiled with its own flags (reassociated sums, vectorised) and called from the
# kernels below, whose compensated sums must not be reassociated.
@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def chunk_rows(rows, c0, c1, base, options, buffers):
    # rows: (values, flat, bits, labels); options: (with_top, with_squares,
    # with_entropy, limit, packed, low, with_spherical); buffers: (floats,
    # predicted, terms, pad),
    # pad 2 _TILE_CLASSES float32 (tiled_rows' copy of the block's last rows).
    # with_entropy 2: no entropy when the chunk has no suspect row (every entry in
    # [0, 1]: each row's entropy then sums terms of one sign, its clip at 0 changes
    # nothing; the caller sums the chunk's terms, folded_terms); a suspect chunk's per
    # row.
    # Rows c0 <= i < c1: p_label, the sum of squares but the label's, (with_top) the
    # confidence and predicted class, (with_entropy) the entropy, into
    # floats[0..3][i - base] and predicted[i - base], (with_spherical, floats of 5
    # rows) the spherical score into floats[4][i - base]; returns the suspect rows, or
    # -1 - i for the first label out of range (checked before any read of the row).
    # The loops are label_error, then row_pass's (each over the chunk, in L1 after
    # the first); the entropy terms of the rows are then taken in one flat loop and
    # summed per row.  No reference counting (_nrt=False, as every function it calls:
    # none allocates): Numba otherwise counts each slice and tuple of arrays with an
    # atomic add and subtract, about 40 pairs a chunk here (measured with perf, 10^6 x
    # 10 float32: a fifth of the rows' pass, 2 ms).
    values, flat, _, labels = rows
    with_top, with_squares, with_entropy, limit, packed, low, with_spherical = options
    floats, predicted, terms, pad = buffers
    k = values.shape[1]
    wrong = label_error(labels[c0:c1], low, k)
    if wrong < 0:
        return wrong - c0
    rows_out = (
        floats[0, c0 - base :],
        floats[1, c0 - base :],
        floats[2, c0 - base :],
        floats[min(4, floats.shape[0] - 1), c0 - base :],  # (written only if asked)
    )
    suspect = row_pass(
        rows,
        c0,
        c1,
        (with_top, with_squares, limit, packed, with_spherical),
        rows_out,
        (predicted[c0 - base :], pad),
    )
    if with_entropy == 2 and suspect == 0:  # the caller sums the terms (totals)
        return suspect
    if with_entropy:  # the chunk's rows are still in cache
        entropy_terms(flat, c0 * k, (c1 - c0) * k, terms)
        ent = floats[3, c0 - base :]
        for r in range(c1 - c0):
            row_terms = terms[r * k : (r + 1) * k]  # indexed from 0: vectorised loads
            total = 0.0
            for j in range(k):
                total += row_terms[j]
            ent[r] = -total
    return suspect


def row_pass(rows, c0, c1, options, floats, extra):
    """Rows c0 <= i < c1 of chunk_rows (labels checked; options: with_top,
    with_squares, limit, packed and optionally with_spherical): p_label, the squares
    but the label's (0 without with_squares) and the confidence into
    floats[0..2][i - c0] (a tuple of three rows, or four: with_spherical, the
    spherical score into the fourth), the predicted class into extra[0][i - c0]
    (extra: predicted, pad); returns the suspect rows.  Compiled only (overloaded
    below, by the rows' dtype)."""
    raise NotImplementedError  # pragma: no cover - Numba compiles the overload


@overload(row_pass, jit_options={"fastmath": _FLAGS, **_NO_REFCOUNTS})
def _row_pass(rows, c0, c1, options, floats, extra):
    # float32 rows of at most _TILE_CLASSES classes: tiled_rows (one vector tile a
    # row); any other rows: looped_rows.  Chosen by the dtype when the kernel is
    # typed, so that no float64 kernel holds the float32 tile's code.
    if rows.types[1].dtype == types.float32:
        return _float32_pass
    return _looped_pass


def _float32_pass(rows, c0, c1, options, floats, extra):
    # row_pass of float32 rows (compiled as its overload)
    k = rows[0].shape[1]
    if k <= _TILE_CLASSES:
        return tiled_rows(rows[1], rows[3][c0:c1], (c0, k), options, floats, extra)
    return looped_rows(rows, c0, c1, options, floats, extra[0])


def _looped_pass(rows, c0, c1, options, floats, extra):
    # row_pass of float64 rows (compiled as its overload)
    return looped_rows(rows, c0, c1, options, floats, extra[0])


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def looped_rows(rows, c0, c1, options, floats, predicted):
    # row_pass by loops over each row's classes: sums_and_top (short float32 rows
    # whose top label is asked) or row_sums then top_labels, and for short rows
    # entries_suspect over the chunk (every entry NaN or outside [0, 1]: the rows
    # counted again by suspect_rows, rare)
    values, flat, bits, labels = rows
    with_top, with_squares, limit, packed = options[0], options[1], options[2], options[3]
    k = values.shape[1]
    long_rows = k > _SHORT_ROWS
    if with_top and packed and not long_rows:
        suspect = sums_and_top(
            (values[c0:c1], labels[c0:c1]),
            with_squares,
            limit,
            floats[0],
            floats[1],
            floats[2],
            predicted,
        )
    elif with_top and packed:
        suspect = long_sums_and_top(
            (values[c0:c1], bits[c0:c1], labels[c0:c1]),
            with_squares,
            limit,
            (floats[0], floats[1], floats[2]),
            predicted,
        )
    else:
        suspect = row_sums(
            values[c0:c1], labels[c0:c1], with_squares, long_rows, limit, floats[0], floats[1]
        )
        if with_top:
            top_labels(values[c0:c1], bits[c0:c1], packed, floats[2], predicted)
    if not long_rows and entries_suspect(flat[c0 * k : c1 * k]):  # rare: count again
        suspect = suspect_rows(values[c0:c1], limit)
    scores_from(floats, 0, c1 - c0, spherical_wanted(options, floats))
    return suspect


_VECTOR_INDEX = ir.IntType(32)


@intrinsic
def tile_row(typingctx, flat, start, k, y):
    """(total, squares, key, bad) of the float32 row of k <= _TILE_CLASSES entries at
    flat[start:], read as one vector of _TILE_CLASSES entries (in bounds: the caller's
    duty), lanes j >= k set aside: the float64 sum of the entries (fixed tree), the
    sum of their squares but lane y's (fixed tree), the maximum of the packed keys
    float64_to_bits(x_j) | (65535 - j) (sums_and_top's), and whether an entry is NaN
    or outside [0, 1]."""
    if not (isinstance(flat, types.Array) and flat.dtype == types.float32):
        return None
    signature = types.Tuple((types.float64, types.float64, types.int64, types.boolean))(
        flat, start, k, y
    )

    def codegen(context, builder, signature, args):
        flat_value, start_value, k_value, y_value = args
        data = context.make_array(signature.args[0])(context, builder, flat_value).data
        floats = ir.VectorType(ir.FloatType(), _TILE_CLASSES)
        doubles = ir.VectorType(ir.DoubleType(), _TILE_CLASSES)
        words = ir.VectorType(ir.IntType(64), _TILE_CLASSES)
        entries = builder.load(
            builder.bitcast(builder.gep(data, [start_value]), floats.as_pointer()), align=4
        )
        lane = ir.Constant(words, list(range(_TILE_CLASSES)))
        inside = builder.icmp_signed("<", lane, splat(builder, k_value, _TILE_CLASSES))
        wide = builder.fpext(entries, doubles)
        zero = ir.Constant(doubles, [0.0] * _TILE_CLASSES)
        x = builder.select(inside, wide, zero)
        total = halving(builder, x, builder.fadd)
        # every lane but y (those past k are zeros in x already), as a bit mask formed
        # in a general register: a mask register's load, not a broadcast and two
        # comparisons of 512-bit vectors, which compete with the tile's other vector
        # operations for two ports (10^6 x 10 float32, one thread, min of 11
        # interleaved with the previous tile: "+ top, squares" 8.70 against 8.99 ms)
        not_y = builder.not_(builder.shl(ir.Constant(y_value.type, 1), y_value))
        others = builder.bitcast(
            builder.trunc(not_y, ir.IntType(_TILE_CLASSES)),
            ir.VectorType(ir.IntType(1), _TILE_CLASSES),
        )
        # x * x is exact (a float32 squared), so a contraction into an FMA changes nothing
        squares = halving(builder, builder.select(others, builder.fmul(x, x), zero), builder.fadd)
        keys = builder.or_(
            builder.bitcast(wide, words),
            ir.Constant(words, [65535 - j for j in range(_TILE_CLASSES)]),
        )
        keys = builder.select(inside, keys, ir.Constant(words, [-(1 << 63)] * _TILE_CLASSES))
        key = halving(
            builder, keys, lambda a, b: builder.select(builder.icmp_signed(">", a, b), a, b)
        )
        low = builder.fcmp_ordered("<", entries, ir.Constant(floats, [0.0] * _TILE_CLASSES))
        high = builder.fcmp_ordered(">", entries, ir.Constant(floats, [1.0] * _TILE_CLASSES))
        bad = builder.and_(
            builder.or_(builder.or_(low, high), builder.fcmp_unordered("uno", entries, entries)),
            inside,
        )
        mask = ir.IntType(_TILE_CLASSES)
        any_bad = builder.icmp_unsigned("!=", builder.bitcast(bad, mask), ir.Constant(mask, 0))
        return context.make_tuple(builder, signature.return_type, [total, squares, key, any_bad])

    return signature, codegen


#: Rows a :func:`tile_group` reads at once (lane r of its vectors is row r).
_GROUP_ROWS = 8
#: Whether :func:`tile_rows` takes its rows _GROUP_ROWS at a time (:func:`tile_group`):
#: only on an AVX-512 target (Numba's target features, a constant to Numba, as the
#: losses' HORNER), whose 512-bit vectors hold a group's 8 float64 lanes; elsewhere one
#: tile a row (:func:`tile_row`), as before.  One tile a row spends most of its vector
#: operations on the three horizontal trees (a shuffle and an operation a level, four
#: levels, each tree); a group transposes its 8 tiles once (34 shuffles in all: 16
#: unpacks, 8 two-source permutes, 10 extractions) and its trees are then elementwise
#: operations over the columns, 8 rows each.  Measured (bench_update_stages, 10^6 x 10
#: float32, one thread, CPU ms, min of 9 interleaved with main, load 4.4-6.8, other
#: engineers' runs): checks and row sums 4.31 against 4.84, + top label 5.34 against
#: 6.67, + top, squares 6.67 against 8.78, everything 23.13 against 24.90 (again at
#: load 4.4: 4.73/4.94, 5.89/7.15, 7.47/9.72, 24.05/26.43).
GROUPED_TILES = numba_target_has("avx512f")


def _columns(builder, rows):
    # The _GROUP_ROWS tiles of rows (each <_TILE_CLASSES x float>) transposed, by three
    # stages of two-source shuffles (pairs of entries, then of pairs, then of 128-bit
    # quarters): (j, v) for j in 0-3 and 8-11, v the <2 _GROUP_ROWS x float> of entry
    # j of each row, then entry j + 4 of each row
    def mix(a, b, order):
        return builder.shuffle_vector(
            a, b, ir.Constant(ir.VectorType(_VECTOR_INDEX, len(order)), order)
        )

    quarter = [0, 4, 8, 12]
    # entries 2m, 2m + 1 of rows (a, b) interleaved: a0 b0 a1 b1 | a4 b4 a5 b5 | ...
    low = [q + e for q in quarter for e in (0, 16, 1, 17)]
    high = [q + e for q in quarter for e in (2, 18, 3, 19)]
    pairs = []
    for r in range(0, _GROUP_ROWS, 2):
        pairs.append((mix(rows[r], rows[r + 1], low), mix(rows[r], rows[r + 1], high)))
    # pairs of pairs (64-bit units): rows 4s..4s+3 of entries q + e in quarter q
    low2 = [q + e for q in quarter for e in (0, 1, 16, 17)]
    high2 = [q + e for q in quarter for e in (2, 3, 18, 19)]
    fours = []  # fours[s][e]: rows 4s..4s+3, entry e of each quarter (e = 0..3)
    for s in range(0, _GROUP_ROWS // 2, 2):
        (a_lo, a_hi), (b_lo, b_hi) = pairs[s], pairs[s + 1]
        fours.append(
            [
                mix(a_lo, b_lo, low2),
                mix(a_lo, b_lo, high2),
                mix(a_hi, b_hi, low2),
                mix(a_hi, b_hi, high2),
            ]
        )
    # two columns a vector: 4q + e and 4q + 4 + e (rows 0-7 each), q = 0, 2
    doubled = []
    for e in range(4):
        for q in (0, 2):
            order = [16 * h + 4 * (q + c) + t for c in (0, 1) for h in (0, 1) for t in range(4)]
            doubled.append((4 * q + e, mix(fours[0][e], fours[1][e], order)))
    return doubled


#: Rows of at most this many classes take :func:`tile_group_narrow`: their columns
#: 12-15 are the +0.0 set aside (or the least key), so that the first level of each
#: tree passes columns 4-7 through instead of adding them to those known zeros, and
#: those columns are neither widened, squared nor keyed (about 36 of a group's vector
#: operations).  Measured (bench_update_stages, 10^6 x 10 float32, one thread, CPU ms,
#: min of 21 interleaved with tile_group, load 4.4, other engineers' runs): + top label
#: 4.33 against 4.80, + top, squares 5.31 against 6.61, + spherical 7.26 against 8.60,
#: + bins 6.15 against 6.59, everything 22.68 against 23.12; checks and row sums level
#: (3.91, 3.96).  Again, min of 9 at load 6.2-6.7 (every time inflated): + top, squares
#: 10.62 against 12.29, everything 39.40 against 40.98.
_NARROW_CLASSES = 12


def _grouped_tiles(columns):
    """tile_group for rows of at most ``columns`` classes (16, or _NARROW_CLASSES):
    the trees' first level leaves the columns past ``columns`` out."""

    def typer(typingctx, flat, start, k, labels, i, outputs, limit):
        return _tile_group_typer(columns, typingctx, flat, start, k, labels, i, outputs, limit)

    typer.__name__ = typer.__qualname__ = (
        "tile_group" if columns == _TILE_CLASSES else f"tile_group_{columns}"
    )
    return intrinsic(typer)


def _tile_group_typer(columns, typingctx, flat, start, k, labels, i, outputs, limit):
    """tile_row of the _GROUP_ROWS float32 rows of k <= _TILE_CLASSES entries at
    flat[start + r k:] (in bounds: the caller's duty), r = 0 .. _GROUP_ROWS - 1, whose
    labels are labels[i + r] (checked; negative ones counting from the end),
    transposed so that lane r of a vector is row r and each of tile_row's halving
    trees is elementwise over the columns, in its order (column j with column j + 8,
    then + 4, + 2, + 1): the same bits.  outputs: (p_label, others, confidence,
    predicted, with_squares, with_top), each written at [i, i + _GROUP_ROWS): the
    label's entry, the squares but the label's (0 without with_squares), and (with_top)
    the packed maximum's confidence and class.  Returns how many of the rows are
    suspect (an entry NaN or outside [0, 1], or a sum farther from 1 than limit).

    With ``columns`` < _TILE_CLASSES (k <= columns: the caller's duty), the columns
    from ``columns`` on are left out of the trees' first level, whose pairs with them
    are the column itself: x + 0.0 = x for the squares (>= +0.0 or NaN) and the keys'
    maximum with the least key; the sum, used only for the check, may keep a -0.0
    that the addition would have made +0.0 (the same check).  The same outputs, bit
    for bit (test_issue13_narrow_tiles)."""
    if not (
        isinstance(flat, types.Array)
        and flat.dtype == types.float32
        and isinstance(labels, types.Array)
        and labels.dtype == types.intp
        and labels.ndim == 1
        and isinstance(outputs, types.BaseTuple)
        and len(outputs) in (6, 8)
    ):
        return None
    scored = len(outputs) == 8  # (..., spherical, with_squares, with_top, with_spherical)
    arrays = outputs.types[:5] if scored else outputs.types[:4]
    if not all(
        isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1 for a in arrays
    ) or tuple(a.dtype for a in arrays) != (types.float64,) * 3 + (types.intp,) + (
        (types.float64,) if scored else ()
    ):
        return None
    signature = types.intp(flat, start, k, labels, i, outputs, limit)

    def codegen(context, builder, signature, args):
        flat_value, start_value, k_value, labels_value, i_value, outputs_value, limit_value = args
        flat_type, _, _, labels_type, _, outputs_type, _ = signature.args
        group = _GROUP_ROWS
        int64 = ir.IntType(64)
        floats = ir.VectorType(ir.FloatType(), _TILE_CLASSES)
        doubles = ir.VectorType(ir.DoubleType(), group)
        words = ir.VectorType(int64, group)

        def at_i(array_type, value, vector):
            # the address of element i of the array, as a pointer to a vector
            data = context.make_array(array_type)(context, builder, value).data
            return builder.bitcast(builder.gep(data, [i_value]), vector.as_pointer())

        def every(value):
            return ir.Constant(doubles, [value] * group)

        entries = context.make_array(flat_type)(context, builder, flat_value).data
        inside = builder.icmp_signed(
            "<",
            ir.Constant(ir.VectorType(int64, _TILE_CLASSES), list(range(_TILE_CLASSES))),
            splat(builder, k_value, _TILE_CLASSES),
        )
        rows = []
        for r in range(group):
            offset = builder.add(start_value, builder.mul(k_value, ir.Constant(k_value.type, r)))
            row = builder.load(
                builder.bitcast(builder.gep(entries, [offset]), floats.as_pointer()), align=4
            )
            # lanes past k: +0.0 (tile_row's)
            rows.append(builder.select(inside, row, ir.Constant(floats, [0.0] * _TILE_CLASSES)))
        doubled = _columns(builder, rows)
        # each vector of two columns widened whole, then split: one extraction each
        # (the columns split first and widened one by one, LLVM formed them again
        # from the previous stage: 26 shuffles, not 18, for the last stage)
        x = [None] * _TILE_CLASSES
        wide_pair = ir.VectorType(ir.DoubleType(), 2 * group)
        half_order = [
            ir.Constant(ir.VectorType(_VECTOR_INDEX, group), list(range(h, h + group)))
            for h in (0, group)
        ]
        for j, both in doubled:
            if j + 4 >= columns:  # its second column left out: only the first widened
                x[j] = builder.fpext(builder.shuffle_vector(both, both, half_order[0]), doubles)
                continue
            wide = builder.fpext(both, wide_pair)
            x[j], x[j + 4] = (builder.shuffle_vector(wide, wide, order) for order in half_order)

        def columnwise(lanes, combine):
            # halving's tree, elementwise: column j with column j + half (None, a column
            # left out: column j alone)
            while len(lanes) > 1:
                half = len(lanes) // 2
                lanes = [
                    lanes[j] if lanes[j + half] is None else combine(lanes[j], lanes[j + half])
                    for j in range(half)
                ]
            return lanes[0]

        def select_by(compare):
            return lambda a, b: builder.select(compare(a, b), a, b)

        total = columnwise(x, builder.fadd)
        # an entry NaN or outside [0, 1]: the row's least entry below 0 or its greatest
        # above 1, or (a NaN entry, which the least and greatest may miss) a NaN total
        pairs = [both for _, both in doubled]
        least = columnwise(pairs, select_by(lambda a, b: builder.fcmp_ordered("<", a, b)))
        most = columnwise(pairs, select_by(lambda a, b: builder.fcmp_ordered(">", a, b)))
        least, most = (
            select_by(compare)(
                builder.shuffle_vector(
                    v, v, ir.Constant(ir.VectorType(_VECTOR_INDEX, group), list(range(group)))
                ),
                builder.shuffle_vector(
                    v,
                    v,
                    ir.Constant(ir.VectorType(_VECTOR_INDEX, group), list(range(group, 2 * group))),
                ),
            )
            for v, compare in (
                (least, lambda a, b: builder.fcmp_ordered("<", a, b)),
                (most, lambda a, b: builder.fcmp_ordered(">", a, b)),
            )
        )
        zero_floats = ir.Constant(least.type, [0.0] * group)
        bad = builder.or_(
            builder.or_(
                builder.fcmp_ordered("<", least, zero_floats),
                builder.fcmp_ordered(">", most, ir.Constant(most.type, [1.0] * group)),
            ),
            builder.fcmp_unordered("uno", total, total),
        )
        if labels_type.layout == "C":
            ys = builder.load(at_i(labels_type, labels_value, words), align=8)
        else:  # strided labels (the caller's, as given): one by one
            labels_array = context.make_array(labels_type)(context, builder, labels_value)
            ys = ir.Constant(words, ir.Undefined)
            for r in range(group):
                index = builder.add(i_value, ir.Constant(i_value.type, r))
                pointer = cgutils.get_item_pointer(
                    context, builder, labels_type, labels_array, [index]
                )
                ys = builder.insert_element(
                    ys, builder.load(pointer), ir.Constant(_VECTOR_INDEX, r)
                )
        ys = builder.select(
            builder.icmp_signed("<", ys, ir.Constant(words, [0] * group)),
            builder.add(ys, splat(builder, k_value, group)),
            ys,
        )
        labelled = [
            builder.icmp_signed("==", ys, ir.Constant(words, [j] * group)) for j in range(columns)
        ]
        # the label's entry of each row (the same float32 entry, widened exactly): with
        # the squares, blended from its column (exactly one column is the label's:
        # labels checked, k <= columns) with the masks the squares use; without, an
        # 8-lane gather of flat[start + r k + y_r] (chosen below by with_squares, a
        # constant where tile_rows inlines it: the other is dead code).  Measured
        # (bench_update_stages, 10^6 x 10 float32, one thread, CPU ms, min of 11
        # interleaved with main, load 9-10, Zen 4; branch upd11, with the exact bins
        # below), blended: "+ top, squares, spherical" 5.19 against 6.07, everything but
        # the entropy 9.20 against 10.26; "checks and row sums" 3.26 against 3.17 (the
        # masks formed for the blend alone there: gathered without the squares)
        blended = x[0]
        for j in range(1, columns):
            if x[j] is not None:
                blended = builder.select(labelled[j], x[j], blended)
        offsets = builder.add(
            builder.add(
                splat(builder, start_value, group),
                builder.mul(splat(builder, k_value, group), ir.Constant(words, list(range(group)))),
            ),
            ys,
        )
        addresses = builder.inttoptr(
            builder.add(
                splat(builder, builder.ptrtoint(entries, int64), group),
                builder.shl(offsets, ir.Constant(words, [2] * group)),
            ),
            ir.VectorType(entries.type, group),
        )
        single = ir.VectorType(ir.FloatType(), group)
        gathered = builder.fpext(
            call_intrinsic(
                builder,
                f"llvm.masked.gather.v{group}f32.v{group}p0",
                single,
                addresses,
                ir.Constant(ir.IntType(32), 4),
                ir.Constant(ir.VectorType(ir.IntType(1), group), [1] * group),
                ir.Constant(single, ir.Undefined),
            ),
            doubles,
        )
        squares = columnwise(
            [
                builder.select(labelled[j], every(0.0), builder.fmul(x[j], x[j]))
                if j < columns
                else None
                for j in range(_TILE_CLASSES)
            ],
            builder.fadd,
        )
        # the packed keys: lanes past k (+0.0, bits 0) or'ed with the least key, not
        # their index (loop invariants)
        keys = [
            builder.or_(
                builder.bitcast(x[j], words),
                splat(
                    builder,
                    builder.select(
                        builder.icmp_signed("<", ir.Constant(k_value.type, j), k_value),
                        ir.Constant(int64, 65535 - j),
                        ir.Constant(int64, -(1 << 63)),
                    ),
                    group,
                ),
            )
            if j < columns
            else None
            for j in range(_TILE_CLASSES)
        ]
        key = columnwise(keys, select_by(lambda a, b: builder.icmp_signed(">", a, b)))
        fields = [builder.extract_value(outputs_value, q) for q in range(len(outputs_type))]
        vectors = (doubles,) * 3 + (words,) + ((doubles,) if scored else ())
        pointers = [
            at_i(t, v, vector)
            for t, v, vector in zip(
                outputs_type.types[: len(vectors)], fields, vectors, strict=False
            )
        ]
        with_squares, with_top = fields[len(vectors)], fields[len(vectors) + 1]
        others = builder.select(with_squares, squares, every(0.0))
        p_label = builder.select(with_squares, blended, gathered)
        builder.store(p_label, pointers[0], align=8)
        builder.store(others, pointers[1], align=8)
        if scored:
            # the spherical score p_y / sqrt(squares + p_y^2), chunk_scores' expression
            # (no flags: each operation correctly rounded, none fused): the divider,
            # idle in the tiles' loop, overlaps their shuffles (a loop of its own
            # waits on it: a square root and a division a row)
            with builder.if_then(fields[-1]):
                norm = call_intrinsic(
                    builder,
                    f"llvm.sqrt.v{group}f64",
                    doubles,
                    builder.fadd(others, builder.fmul(p_label, p_label)),
                )
                builder.store(builder.fdiv(p_label, norm), pointers[4], align=8)
        with builder.if_then(with_top):
            low_bits = ir.Constant(words, [65535] * group)
            builder.store(
                builder.bitcast(builder.and_(key, ir.Constant(words, [~65535] * group)), doubles),
                pointers[2],
                align=8,
            )
            builder.store(builder.sub(low_bits, builder.and_(key, low_bits)), pointers[3], align=8)
        distance = call_intrinsic(
            builder, f"llvm.fabs.v{group}f64", doubles, builder.fsub(total, every(1.0))
        )
        far = builder.fcmp_ordered(">", distance, splat(builder, limit_value, group))
        mask = ir.IntType(group)
        suspect = call_intrinsic(
            builder, f"llvm.ctpop.i{group}", mask, builder.bitcast(builder.or_(bad, far), mask)
        )
        return builder.zext(suspect, context.get_value_type(types.intp))

    return signature, codegen


tile_group = _grouped_tiles(_TILE_CLASSES)
tile_group_narrow = _grouped_tiles(_NARROW_CLASSES)


@intrinsic
def prefetch(typingctx, array, index):
    """A hint to bring array[index] into the caches (LLVM's prefetch: a read, kept in
    every level); no load, no fault past the array's end."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = ir.IntType(8).as_pointer()
        word = ir.IntType(32)
        address = builder.bitcast(builder.gep(data, [args[1]]), byte)
        locality = [ir.Constant(word, 0), ir.Constant(word, 3), ir.Constant(word, 1)]
        call_intrinsic(builder, "llvm.prefetch", ir.VoidType(), address, *locality)
        return context.get_dummy_value()

    return types.void(array, index), codegen


# fastmath=False, set here: Numba otherwise gives a function its caller's fastmath
# (chunk_rows' _FLAGS, by way of row_pass), and puts those flags on every float
# instruction in it, the tiles' included; with "reassoc", LLVM reorders tile_group's
# elementwise trees (observed: squares off by an ulp).
@numba.njit(fastmath=False, inline="never", **_NO_REFCOUNTS)
def tiled_rows(flat, labels, rows, options, floats, extra):
    # row_pass of float32 rows of k <= _TILE_CLASSES classes (rows: (c0, k)), rows
    # c0 + i of the block whose entries are flat, labels[i] their (checked) labels:
    # one tile a row, no loop over the classes (tile_row).  One loop per value of the
    # flags (tile_rows, inlined with constants: no test inside it).
    # options: (with_top, with_squares, limit, packed), and with_spherical when floats
    # has a fourth row for the spherical scores (spherical_wanted).
    with_top, with_squares, limit = options[0], options[1], options[2]
    scored = spherical_wanted(options, floats)
    if with_top:
        if with_squares:
            return tile_rows(flat, labels, rows, (True, True, limit, scored), floats, extra)
        return tile_rows(flat, labels, rows, (True, False, limit, scored), floats, extra)
    if with_squares:
        return tile_rows(flat, labels, rows, (False, True, limit, scored), floats, extra)
    return tile_rows(flat, labels, rows, (False, False, limit, scored), floats, extra)


@numba.njit(inline="always")
def tile_rows(flat, labels, rows, options, floats, extra):
    # tiled_rows' loop (options' flags constants where it is inlined): the rows r with
    # r k + _TILE_CLASSES <= flat.shape[0] read in place, each prefetching the entries
    # 2 KiB ahead (the rows come from L3 or memory, and the loop is short enough that
    # the hardware's prefetchers alone leave it waiting: 10^6 x 10 float32, one
    # thread, the checks and row sums 8.2 to 4.6 ms) and the labels 256 rows ahead
    # (label_error's first touch of the next chunk: 5.7 to 4.8 ms); the block's last
    # rows (whose tile would read past its end) from their copy in pad, by the same
    # tile (what pad holds past the copy falls in lanes the tile sets aside).  On
    # AVX-512 (GROUPED_TILES) the rows in place are read _GROUP_ROWS at a time
    # (tile_group: the same numbers, bit for bit), the few left at the chunk's end one
    # at a time.
    c0, k = rows
    predicted, pad = extra
    count = labels.shape[0]
    size = flat.shape[0]
    in_place = min(count, max(0, (size - _TILE_CLASSES) // k + 1 - c0))
    suspect = 0
    grouped = in_place - in_place % _GROUP_ROWS if GROUPED_TILES else 0
    with_top, with_squares, limit, scored = options
    outputs = group_outputs(floats, predicted, (with_squares, with_top, scored))
    if k <= _NARROW_CLASSES:  # one loop each: no test inside them
        for i in range(0, grouped, _GROUP_ROWS):
            start = group_ahead(flat, labels, (c0 + i) * k, k, i)
            suspect += tile_group_narrow(flat, start, k, labels, i, outputs, limit)
    else:
        for i in range(0, grouped, _GROUP_ROWS):
            start = group_ahead(flat, labels, (c0 + i) * k, k, i)
            suspect += tile_group(flat, start, k, labels, i, outputs, limit)
    for i in range(grouped, in_place):
        start = (c0 + i) * k
        prefetch(flat, start + _PREFETCH_ENTRIES)
        prefetch(labels, i + _PREFETCH_LABELS)  # the next chunk's, for label_error
        suspect += tile_out(flat, start, (flat, labels, rows, i), options, floats, predicted)
    if in_place < count:
        first = (c0 + in_place) * k
        for t in range(size - first):
            pad[t] = flat[first + t]
        for i in range(in_place, count):
            start = (c0 + i) * k - first
            suspect += tile_out(pad, start, (flat, labels, rows, i), options, floats, predicted)
    scores_from(floats, grouped, count, scored)  # the rows no group took
    return suspect


@numba.njit(inline="always")
def group_ahead(flat, labels, start, k, i):
    # a group's prefetches (tile_rows'): each of its rows' entries and the labels,
    # ahead; returns start.  (Tried: one prefetch a 64-byte line of the group's
    # entries, 5 a group at 10 classes, not 8: no faster, checks and row sums 4.65
    # against 4.47 ms, + top, squares 6.99 against 6.75, min of 21, load 3.5.)
    for r in range(_GROUP_ROWS):
        prefetch(flat, start + r * k + _PREFETCH_ENTRIES)
    prefetch(labels, i + _PREFETCH_LABELS)
    return start


@numba.njit(inline="always")
def tile_out(source, start, row, options, floats, predicted):
    # row i's numbers from its tile at source[start:] into floats[..][i] and
    # predicted[i]; whether it is suspect (1 or 0)
    flat, labels, (c0, k), i = row
    with_top, with_squares, limit = options[0], options[1], options[2]
    y = labels[i]
    y = y + k if y < 0 else y
    total, squares, key, bad = tile_row(source, start, k, y)
    floats[0][i] = np.float64(flat[np.uint64((c0 + i) * k + y)])
    floats[1][i] = squares if with_squares else 0.0
    if with_top:
        predicted[i] = 65535 - (key & 65535)
        floats[2][i] = bits_to_float64(key & ~np.int64(65535))
    return 1 if bad | (abs(total - 1.0) > limit) else 0


def spherical_wanted(options, floats):
    """options[4] (with_spherical) when floats has a fourth row for the scores; False
    for the three rows and four options of the tests' direct calls.  Compiled only."""
    raise NotImplementedError  # pragma: no cover - Numba compiles the overload


@overload(spherical_wanted, jit_options={"fastmath": False, **_NO_REFCOUNTS})
def _spherical_wanted(options, floats):
    if len(options) == 5 and len(floats) == 4:
        return lambda options, floats: options[4]
    return lambda options, floats: False


def group_outputs(floats, predicted, flags):
    """tile_group's outputs: (floats[0..2], predicted, [floats[3],] with_squares,
    with_top[, with_spherical]) for flags (with_squares, with_top, with_spherical).
    Compiled only."""
    raise NotImplementedError  # pragma: no cover - Numba compiles the overload


@overload(group_outputs, jit_options={"fastmath": False, **_NO_REFCOUNTS})
def _group_outputs(floats, predicted, flags):
    if len(floats) == 4:
        return lambda floats, predicted, flags: (
            floats[0],
            floats[1],
            floats[2],
            predicted,
            floats[3],
            flags[0],
            flags[1],
            flags[2],
        )
    return lambda floats, predicted, flags: (
        floats[0],
        floats[1],
        floats[2],
        predicted,
        flags[0],
        flags[1],
    )


def scores_from(floats, first, count, scored):
    """(scored, floats of four rows) the spherical scores of rows first <= i < count
    from their p_label and squares (spherical_scores); nothing otherwise.  Compiled
    only."""
    raise NotImplementedError  # pragma: no cover - Numba compiles the overload


@overload(scores_from, jit_options={"fastmath": False, **_NO_REFCOUNTS})
def _scores_from(floats, first, count, scored):
    if len(floats) == 4:

        def rest(floats, first, count, scored):
            if scored and first < count:
                spherical_scores(
                    floats[0][first:count], floats[1][first:count], floats[3][first:count]
                )

        return rest
    return lambda floats, first, count, scored: None


# Without "arcp" (p / sqrt(.) stays one correctly rounded division) nor "contract"
# (the NumPy expression's roundings): the same score as tile_group's, bit for bit.
@numba.njit(fastmath={"nsz"}, inline="never", error_model="numpy", **_NO_REFCOUNTS)
def spherical_scores(p_label, others, scores):
    # p / sqrt(others + p^2) of each row (slices indexed from 0: see entries_suspect)
    prefer_wide_vectors()
    for i in range(scores.shape[0]):
        p = p_label[i]
        scores[i] = p / np.sqrt(others[i] + p * p)


@numba.njit(inline="never", **_NO_REFCOUNTS)
def label_error(labels, low, k):
    prefer_wide_vectors()
    # 0, or -1 - i for the first label outside [low, k): low = -k for unchecked labels
    # (validate=False: no stray read), 0 for labels whose check was deferred to this
    # pass; a flat check first (vectorised, 512-bit: see entropy_terms)
    wrong = 0
    for i in range(labels.shape[0]):
        y = labels[i]
        wrong += (y < low) | (y >= k)
    if wrong:
        for i in range(labels.shape[0]):
            if (labels[i] < low) | (labels[i] >= k):
                return -1 - i
    return 0


# Each loop below has no flag that changes it (the caller chooses the loops), so that
# none depends on LLVM taking an invariant test out of a loop.  (Measured, 10^6 x 10
# float32 on the 2-core AMD EPYC, min of interleaved runs: one row loop doing the
# entries' check, the sums and the top label under flags, 24 ms; these loops, 16 ms.)
@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def row_sums(values, labels, with_squares, entries, limit, p_label, others):
    # p_y, the sum of squares but the label's (0 without with_squares) and the count
    # of rows whose sum is farther from 1 than limit or, with ``entries`` (long rows),
    # that have an entry NaN or outside [0, 1] (entries_suspect over the row, in L1;
    # short rows: over the chunk, by the caller); labels already checked
    # (label_error), negative ones counting from the end as in NumPy's indexing (the
    # generic path)
    n, k = values.shape
    suspect = 0
    for i in range(n):
        row = values[i]
        y = labels[i]
        y = y + k if y < 0 else y
        total = 0.0
        squares = 0.0
        bad = 0
        for j in range(k):
            x = np.float64(row[j])
            total += x
            if with_squares:
                squares += 0.0 if j == y else x * x
            if entries:
                bad += (x < 0.0) | (x > 1.0) | (x != x)
        suspect += 1 if (bad > 0) | (abs(total - 1.0) > limit) else 0
        p_label[i] = np.float64(row[y])
        others[i] = squares
    return suspect


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def sums_and_top(rows, with_squares, limit, p_label, others, confidence, predicted):
    # row_sums and top_labels (packed) in one loop over each short float32 row, which
    # they leave in registers (the loops' sums are short chains at 10 classes, so the
    # one loop overlaps them; measured, 10^6 rows of 10 float32 in L1 on the 2-core
    # AMD EPYC, 7.7 ms against 4.2 + 5.3 ms without the squares); the same numbers as
    # the two loops: the row's sum only compared with limit, the squares (with_squares,
    # else others 0) vectorised as row_sums' (the same bits), the first maximum.  The
    # key packs the index into the low bits of the entry's float64 bits (zero for a
    # float32 value: 29 of them), the order of the float32 bits but between a
    # signalling and a quiet NaN (the conversion quiets it), and its high bits are the
    # maximum's value (the confidence, without a second read of the row).  One loop
    # per value of the flag (short_rows, inlined with a constant): no test inside it.
    if with_squares:
        return short_rows(rows, True, limit, p_label, others, confidence, predicted)
    return short_rows(rows, False, limit, p_label, others, confidence, predicted)


@numba.njit(fastmath=_FLAGS, inline="always")
def short_rows(rows, with_squares, limit, p_label, others, confidence, predicted):
    # sums_and_top's loop (with_squares a constant where it is inlined)
    values, labels = rows
    n, k = values.shape
    suspect = 0
    for i in range(n):
        row = values[i]
        y = labels[i]
        y = y + k if y < 0 else y
        total = 0.0
        squares = 0.0
        key = np.int64(-1) << 63
        for j in range(k):
            x = np.float64(row[j])
            total += x
            if with_squares:
                squares += 0.0 if j == y else x * x
            key = max(key, float64_to_bits(x) | (65535 - j))
        suspect += 1 if abs(total - 1.0) > limit else 0
        p_label[i] = np.float64(row[y])
        others[i] = squares
        predicted[i] = 65535 - (key & 65535)
        confidence[i] = bits_to_float64(key & ~np.int64(65535))
    return suspect


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def long_sums_and_top(rows, with_squares, limit, outputs, predicted):
    # row_sums (entries checked: long rows) and top_labels (packed) in one loop over
    # each long float32 row (more than _SHORT_ROWS classes), which the two loops read
    # twice (from L1, the second time): the same numbers, the squares in row_sums'
    # loop's order (the same body: test_issue13_long_sums_and_top), the first maximum
    # of top_labels' packed keys.  One loop per value of the flag (long_rows_top,
    # inlined with a constant): no test inside it.
    if with_squares:
        return long_rows_top(rows, True, limit, outputs, predicted)
    return long_rows_top(rows, False, limit, outputs, predicted)


@numba.njit(fastmath=_FLAGS, inline="always")
def long_rows_top(rows, with_squares, limit, outputs, predicted):
    # long_sums_and_top's loop (with_squares a constant where it is inlined)
    values, bits, labels = rows
    p_label, others, confidence = outputs
    n, k = values.shape
    suspect = 0
    for i in range(n):
        row = values[i]
        row_bits = bits[i]
        y = labels[i]
        y = y + k if y < 0 else y
        total = 0.0
        squares = 0.0
        bad = 0
        key = np.int64(-1) << 62
        for j in range(k):
            x = np.float64(row[j])
            total += x
            if with_squares:
                squares += 0.0 if j == y else x * x
            bad += (x < 0.0) | (x > 1.0) | (x != x)
            key = max(key, (np.int64(row_bits[j]) << 16) | (65535 - j))
        suspect += 1 if (bad > 0) | (abs(total - 1.0) > limit) else 0
        p_label[i] = np.float64(row[y])
        others[i] = squares
        first = 65535 - (key & 65535)
        confidence[i] = np.float64(row[first])
        predicted[i] = first
    return suspect


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def top_labels(values, bits, packed, confidence, predicted):
    # The first maximum of each row, compared as bit patterns (for non-negative floats
    # the integer order is the float order; a row with a negative entry or a NaN is
    # suspect and checked in full anyway).  ``packed`` (float32 bits, at most
    # _PACKED_CLASSES classes): one integer maximum of (bits << 16) | (65535 - j),
    # whose low bits give the first index of the maximum; else the maximum of the bits
    # and the first index by a min reduction over the row, in L1 cache (both
    # vectorised; tracking the index in the first loop is not: measured per 10^7
    # float32 entries, 10 classes 0.117 s vs 0.144 s, 1000 classes 0.56 s vs 0.28 s).
    n, k = values.shape
    if packed:
        for i in range(n):
            row_bits = bits[i]
            key = np.int64(-1) << 62
            for j in range(k):
                key = max(key, (np.int64(row_bits[j]) << 16) | (65535 - j))
            first = 65535 - (key & 65535)
            confidence[i] = np.float64(values[i, first])
            predicted[i] = first
        return
    for i in range(n):
        row_bits = bits[i]
        top = row_bits[0]
        for j in range(k):
            top = max(top, row_bits[j])
        first = k
        for j in range(k):
            first = min(first, j if row_bits[j] == top else k)
        confidence[i] = np.float64(values[i, first])
        predicted[i] = first


@numba.njit(inline="always")
def packed(bits):
    # whether top_labels packs the index with the bits: float32 rows of at most
    # _PACKED_CLASSES classes (measured, min of interleaved runs on the 2-core AMD EPYC:
    # 10^6 x 10, 9.5 ms against 28 ms for the maximum and the search; 10^5 x 1000,
    # 40 ms against 100 ms)
    return (bits.itemsize == 4) & (bits.shape[1] <= _PACKED_CLASSES)


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def entries_suspect(entries):
    prefer_wide_vectors()
    # whether an entry is NaN or outside [0, 1], in one flat loop (512-bit: see
    # entropy_terms; vectorised across rows; over a slice indexed from 0: an index
    # Numba cannot prove non-negative goes through its wraparound select, and the
    # loads are not vectorised); an "or"
    # of the comparisons' masks, not their count (which widened each mask to int64,
    # four lanes to a vector: 10^7 float32 entries in L1, 1.8 to 0.9 ms)
    bad = False
    for t in range(entries.shape[0]):
        x = entries[t]
        bad |= (x < 0.0) | (x > 1.0) | (x != x)
    return bad


@numba.njit(fastmath=_FLAGS, inline="never", **_NO_REFCOUNTS)
def suspect_rows(values, limit):
    # the rows with an entry NaN or outside [0, 1], or a sum farther from 1 than limit
    # (only for chunks with a bad entry: entries_suspect)
    n, k = values.shape
    count = 0
    for i in range(n):
        total = 0.0
        bad = 0
        for j in range(k):
            x = np.float64(values[i, j])
            total += x
            bad += (x < 0.0) | (x > 1.0) | (x != x)
        count += 1 if (bad > 0) | (abs(total - 1.0) > limit) else 0
    return count


@numba.njit(nogil=True, cache=True)
def summaries(
    values,
    flat,
    bits,
    labels,
    with_top,
    with_squares,
    with_entropy,
    limit,
    floats,
    predicted,
):
    # the per-row summaries of every row, chunk by chunk (floats: p_label, others,
    # confidence, entropy, one row each)
    n, k = values.shape
    chunk = max(1, _CHUNK_ENTRIES // max(k, 1))
    terms = np.empty(chunk * k if with_entropy else 0)
    suspect = 0
    rows = (values, flat, bits, labels)  # formed once (see totals)
    # The options typed as totals' (with_entropy an int64, with_spherical a plain bool)
    # and base an int64, not the literals 0 and False: Numba compiles chunk_rows once
    # more for each literal a compiled caller passes it (issue 13: 1.7 to 3.8 s of CPU
    # a dtype on a cold cache); these share totals' version.
    flags = (np.int64(with_entropy), np.bool_(False))
    options = (with_top, with_squares, flags[0], limit, packed(bits), -k, flags[1])
    buffers = (floats, predicted, terms, np.zeros(2 * _TILE_CLASSES, dtype=np.float32))
    for c0 in range(0, n, chunk):
        found = chunk_rows(rows, c0, min(c0 + chunk, n), np.int64(0), options, buffers)
        if found < 0:
            return found
        suspect += found
    return suspect


@numba.njit(fastmath=_FLAGS, nogil=True, cache=True)
def log_array(x, out):
    for i in range(x.shape[0]):
        out[i] = log_positive(x[i])


@numba.njit(inline="always")
def surprisal_of(x):
    # -log x by log_positive (inf at 0, -inf at inf, NaN for NaN or x < 0): the
    # surprisal of a label's probability, in the per-class sums and the most surprising
    # rows alike (selects only: the caller's flags change nothing)
    v = log_positive(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    return -(np.inf if x == np.inf else v)


@numba.njit(fastmath={"contract", "reassoc", "nsz"}, nogil=True, cache=True)
def surprisal_array(x, out):
    # surprisal_of of each value (with chunk_parts' flags)
    for i in range(x.shape[0]):
        out[i] = surprisal_of(x[i])


# Without "arcp": p / sqrt(.) stays one correctly rounded division (a reciprocal
# then a product would add a rounding to every spherical score).
@numba.njit(
    fastmath={"contract", "reassoc", "nsz"}, inline="never", error_model="numpy", **_NO_REFCOUNTS
)
def chunk_parts(floats, count, wanted, surprisal, scores, parts):
    # The plain (vectorised, reassociated) sum over a chunk's rows of the surprisal
    # -log p_y (log 0 = -inf; each row's also kept in surprisal, for the per-class
    # sums), and (chunk_scores) those of the Brier and spherical scores and the
    # entropy: parts[0..3], each only if ``wanted`` (0 otherwise; ``scores`` a buffer
    # of a power of two at least ``count``).  NumPy's error model: no ZeroDivisionError for an
    # (unchecked) row of zeros, whose spherical score is NaN.
    logs, brier, spherical, entropy = wanted
    p_label, others, ent = floats[0], floats[1], floats[3]
    formed = floats[min(4, floats.shape[0] - 1)]  # the spherical scores (chunk_rows')
    parts[0] = parts[1] = parts[2] = parts[3] = 0.0
    if logs:
        total = 0.0
        for i in range(count):
            s = surprisal_of(p_label[i])
            surprisal[i] = s
            total += s
        parts[0] = total
    if brier or spherical or entropy:
        chunk_scores(
            p_label, others, ent, formed, count, (brier, spherical, entropy), scores, parts
        )


# No "reassoc" (nor "contract", so that each score is the NumPy expression's): the
# chunk's scores are formed row by row into ``scores`` and summed by tree_sum, in
# an order no compilation can change (nor the vector width: 512-bit vectors asked
# for, see entropy_terms).  With "reassoc" the vectoriser chose the order,
# and chose differently in the process that compiled the kernel and in one that
# loaded it from Numba's cache: the Brier, spherical and entropy sums off by an ulp
# between the two (issue 13).  Without "arcp": p / sqrt(.) stays one correctly
# rounded division.
@numba.njit(fastmath={"nsz"}, inline="never", error_model="numpy", **_NO_REFCOUNTS)
def chunk_scores(p_label, others, ent, formed, count, wanted, scores, parts):
    # parts[1..3]: the sums of the Brier and spherical scores (formed: each row's,
    # by chunk_rows) and the entropy over the chunk's rows, each only if ``wanted``
    prefer_wide_vectors()
    brier, spherical, entropy = wanted
    if brier:
        for i in range(count):
            q = 1.0 - p_label[i]
            scores[i] = others[i] + q * q
        parts[1] = tree_sum(scores, count)
    if spherical:
        if count == _FOLD_LANES:  # a whole chunk: the tree from the scores in place
            parts[2] = lanes_tree(formed)  # (tree_sum's, which reads them only)
        else:  # (pairwise_sum writes its padding and levels into its values)
            for i in range(count):
                scores[i] = formed[i]
            parts[2] = tree_sum(scores, count)
    if entropy:
        parts[3] = rows_entropy(ent, count, scores)


# The sum of chunk_rows' per-row entropies in ``ent``, each clipped at 0 (a row not
# in [0, 1] summing to 1 may have a negative one), by tree_sum: chunk_scores' entropy
# and that of a part of totals with such a row (the same flags, the same tree)
@numba.njit(fastmath={"nsz"}, inline="never", error_model="numpy", **_NO_REFCOUNTS)
def rows_entropy(ent, count, scores):
    prefer_wide_vectors()
    for i in range(count):
        scores[i] = max(ent[i], 0.0)
    return tree_sum(scores, count)


# No fastmath at all (not even "nsz", which would fold add_stretches' 0.0 + x into x
# and turn a zero total of -0.0 terms from +0.0 into -0.0).  totals now folds its
# entropy terms by folded_terms (this order, as they are formed); this one stays the
# order's statement for the tests (test_issue13_folded_entropy and others).
@numba.njit(fastmath=False, inline="never", **_NO_REFCOUNTS)
def folded_sum(values, count, lanes):
    # values[0..count) summed in lanes.shape[0] (a power of two) interleaved running
    # sums, lane l of values l, l + lanes, l + 2 lanes, ... (zeros written past count
    # to a multiple of lanes: x + 0 = x), then the lanes by pairwise_sum: an elementwise
    # loop over each stretch of lanes, vectorised without reassociation (the order
    # fixed, whatever the vector width), about count / lanes + log2(lanes) roundings
    # for each value.  (totals' entropy of a chunk: 10^6 x 10 float32, one thread, the
    # rows' sums then a tree over rows 2.2 ms, this 1.05 ms.)
    prefer_wide_vectors()
    width = lanes.shape[0]
    size = count + (-count) % width
    for i in range(count, size):
        values[i] = 0.0
    # four stretches a pass, added one after another onto each lane (the same adds in
    # the same order as one stretch a pass): a quarter of the lanes' loads and stores
    # (perf: this function 1.5 ms of the update kernel's 27, 10^6 x 10 float32; min of
    # 11 interleaved with one stretch a pass, load 0.7: "+ entropy" 14.66 against
    # 15.12 ms, everything 25.02 against 25.70 ms); the first pass onto 0.0 rather
    # than onto zeroed lanes, the last 1 to 3 stretches in one pass, and 256 lanes by
    # fixed loops (tree_sum): the same adds again (10^7 float32 entries' terms in
    # chunks of 2560, one thread, min of 25 interleaved: 0.60 against 0.83 ms)
    stretches = size // width
    quads = stretches - stretches % 4
    for s in range(0, quads, 4):
        add_stretches(lanes, values[s * width : (s + 4) * width], 4, s == 0)
    add_stretches(lanes, values[quads * width : size], stretches - quads, quads == 0)
    return tree_sum(lanes, width)


# No fastmath (folded_sum's): with "contract" the lanes' additions would fuse with the
# products p log p (an FMA: other bits).
@numba.njit(fastmath=False, inline="never", **_NO_REFCOUNTS)
def folded_terms(flat, start, count, lanes):
    # folded_sum of entropy_terms(flat, start, count, ...) without the terms: each
    # stretch of lanes.shape[0] entries' p log p (entropy_terms' expression, the same
    # terms) added onto the lanes as it is formed, in folded_sum's order (onto 0.0 for
    # the first stretch, +0.0 added for the entries past count up to a whole
    # stretch), then the lanes' tree: the same sum, bit for bit, without the terms'
    # stores and loads nor folded_sum's loop of its own (10^7 float32 entries in
    # chunks of 2560, one thread, a scratch loop, min of 11: 8.10 against 8.47 ms)
    prefer_wide_vectors()
    width = lanes.shape[0]
    full = count // width
    for s in range(full):
        source = flat[start + s * width : start + (s + 1) * width]  # (indexed from 0)
        first = s == 0
        for i in range(width):
            x = np.float64(source[i])
            term = x * log_positive(x) if x > 0.0 else 0.0
            lane = 0.0 if first else lanes[i]
            lanes[i] = lane + term
    rest = count - full * width
    if rest > 0 or full == 0:
        source = flat[start + full * width : start + count]
        first = full == 0
        for i in range(rest):
            x = np.float64(source[i])
            term = x * log_positive(x) if x > 0.0 else 0.0
            lane = 0.0 if first else lanes[i]
            lanes[i] = lane + term
        for i in range(rest, width):
            lane = 0.0 if first else lanes[i]
            lanes[i] = lane + 0.0
    return tree_sum(lanes, width)


@numba.njit(fastmath=False, inline="always")
def add_stretches(lanes, values, stretches, first):
    # folded_sum's pass: the 0 to 4 stretches of lanes.shape[0] values in ``values``
    # added in order onto each lane (onto 0.0 where ``first``: a select, no store of
    # zeros; 0.0 + x is x, or +0.0 for x = -0.0, as onto zeroed lanes)
    width = lanes.shape[0]
    a = values[:width]  # (slices indexed from 0: see entries_suspect)
    b, c, d = values[width : 2 * width], values[2 * width : 3 * width], values[3 * width :]
    if stretches == 4:
        for i in range(width):
            lane = 0.0 if first else lanes[i]
            lanes[i] = (((lane + a[i]) + b[i]) + c[i]) + d[i]
    elif stretches == 3:
        for i in range(width):
            lane = 0.0 if first else lanes[i]
            lanes[i] = ((lane + a[i]) + b[i]) + c[i]
    elif stretches == 2:
        for i in range(width):
            lane = 0.0 if first else lanes[i]
            lanes[i] = (lane + a[i]) + b[i]
    elif stretches == 1:
        for i in range(width):
            lane = 0.0 if first else lanes[i]
            lanes[i] = lane + a[i]
    elif first:
        for i in range(width):
            lanes[i] = 0.0


@numba.njit(fastmath={"nsz"}, inline="always")
def tree_sum(values, count):
    # pairwise_sum(values, count); for count = _FOLD_LANES (folded_sum's lanes, and a
    # whole chunk's rows in chunk_scores) by lanes_tree, in registers: the same adds in
    # the same order, without pairwise_sum's loads and stores, runtime trip counts,
    # padding or overlap checks a level (15628 trees of 256, one thread, min of 21:
    # 0.22 ms, 0.33 as loops of constant lengths, 0.72 by pairwise_sum)
    if count != _FOLD_LANES:
        return pairwise_sum(values, count)
    return lanes_tree(values)


@intrinsic
def lanes_tree(typingctx, values):
    """pairwise_sum(values, _FOLD_LANES) of a C-contiguous float64 array of at least
    _FOLD_LANES values: one vector of them, halving's tree (lane j with lane j + h, h =
    128, ..., 1: pairwise_sum's order), in registers.  Its adds carry the caller's
    fast-math flags (halving's note): call it from functions without "reassoc"."""
    if not (
        isinstance(values, types.Array)
        and values.dtype == types.float64
        and values.ndim == 1
        and values.layout == "C"
    ):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        vector = ir.VectorType(ir.DoubleType(), _FOLD_LANES)
        lanes = builder.load(builder.bitcast(data, vector.as_pointer()), align=8)
        return halving(builder, lanes, builder.fadd)

    return types.float64(values), codegen


@numba.njit(fastmath={"nsz"}, inline="always")
def pairwise_sum(values, count):
    # values[0..count) summed as a balanced tree over the next power of two (zeros
    # past count: x + 0 = x): each level adds the upper half onto the lower, an
    # elementwise loop that vectorises without reassociation; the order is fixed (and
    # the error grows with log2(count), not count)
    size = 1
    while size < count:
        size *= 2
    for i in range(count, size):
        values[i] = 0.0
    while size > 1:
        size //= 2
        low, high = values[:size], values[size : 2 * size]
        for i in range(size):
            low[i] = low[i] + high[i]
    return values[0] if count else 0.0


# No fastmath from here: the compensation must not be reassociated away, and the
# bins must be the exact comparisons of assign_uniform_bins.
@numba.njit(inline="always")
def add_compensated(sums, carry, parts):
    # Neumaier's step for each of the running sums
    for q in range(parts.shape[0]):
        add_compensated_to(sums, carry, q, parts[q])


@numba.njit(inline="always")
def add_compensated_to(sums, carry, q, part):
    # Neumaier's step: part added to the running sum sums[q], its rounding error to carry[q]
    total = sums[q]
    t = total + part
    carry[q] += ((total - t) + part) if abs(total) >= abs(part) else ((part - t) + total)
    sums[q] = t


@numba.njit(inline="always")
def guess_bin(c, bins):
    # floor(c * bins) clipped to [0, bins - 1] (NaN: the last bin), as an int32
    scaled = bins if c != c else c * bins
    scaled = 0.0 if scaled < 0.0 else scaled
    return np.int32(scaled if scaled < bins - 1.0 else bins - 1.0)


@numba.njit(inline="always")
def add_to_bins(confidence, hit, count, edges, left, index, bin_stats, tallies, rounding, spread):
    # assign_uniform_bins, by arithmetic and two comparisons (vectorised: bins in
    # int32, which AVX2 converts from and to float64 four at a time, the upper edge
    # (b + 1) e_1 formed as (float(b) + 1) e_1, the same number: b + 1 is an int64 in
    # Numba, converted one lane at a time (index loop 1.8 to 1.2 ms, 10^6 rows);
    # one loop per side
    # of the edges; the edges of numpy.linspace(0, 1, bins + 1) are j * edges[1], the
    # last 1, as test_issue13_bin_tallies pins), then each bin's sum of confidences in
    # row order (as numpy.bincount); the counts and hits are integers, tallied in
    # ``tallies`` (4 histograms of (bin, hit) pairs, 1 for more than _TALLIED_BINS
    # bins: fewer to clear and fold for a block; row i into histogram i % 4:
    # consecutive rows of one bin do not wait on each other's store; measured 10^6
    # rows of softmax confidences, 3 scatters 6.9 ms, the sum and the tallies 4.5 ms;
    # both in one loop, 2.1 to 1.4 ms) and added to bin_stats by fold_tallies.
    # ``rounding``: the bins whose confidence sums keep their additions' rounding
    # errors in bin_stats[3] (bins 0 to rounding - 1; the others' additions are exact
    # or their errors not asked for: 0, the loop before the errors were kept).
    # With 0 < rounding < bins the others' additions are exact (rounding_bins: every
    # partial sum of a bin, in any order, from 0, is a float64), so they go into
    # ``spread``, 4 interleaved sums a bin (row i into sums i % 4, as the tallies; for
    # more than _TALLIED_BINS bins spread is empty and they go into their sums as before),
    # which the caller folds into bin_stats[1] (_fold_spread) at the block's end, or
    # before a chunk that makes every bin round: a top-label confidence in the same
    # bin row after row (the sharp rows' top bin) no longer waits on the previous
    # row's store (bench_update_stages, "+ top, bins" 5.62 against 5.87 ms, min of
    # 11 against main, load 3.9; branch upd11)
    bins = np.int32(edges.shape[0] - 1)
    step = edges[1]
    if left:
        for i in range(count):
            c = confidence[i]
            b = guess_bin(c, bins)
            down = c < np.float64(b) * step
            up = c >= ((np.float64(b) + 1.0) * step if b + 1 < bins else 1.0)
            index[i] = b - (1 if down & (b > 0) else 0) + (1 if up & (b < bins - 1) else 0)
    else:
        for i in range(count):
            c = confidence[i]
            b = guess_bin(c, bins)
            down = c <= np.float64(b) * step
            up = c > ((np.float64(b) + 1.0) * step if b + 1 < bins else 1.0)
            index[i] = b - (1 if down & (b > 0) else 0) + (1 if up & (b < bins - 1) else 0)
    sums, errors = bin_stats[1], bin_stats[3]
    width = 2 * bins
    ways = tallies.shape[0] // width
    if rounding == 0:  # no rounding errors asked for (calibration_error: the rows are there)
        for i in range(count):  # unsigned indices (b >= 0): no wraparound selects
            b = index[i]
            sums[np.uint64(b)] += confidence[i]
            tallies[np.uint64((i & (ways - 1)) * width + 2 * b + hit[i])] += 1
    elif rounding >= bins:  # every bin's additions may round (float64 rows)
        for i in range(count):
            b = np.uint64(index[i])
            # the sum as before, and the rounding error of each addition, exactly (TwoSum:
            # _binning.two_sum_error), summed in bin_stats[3] (BinStatistics.error)
            c, s = confidence[i], sums[b]
            t = s + c
            z = t - s
            errors[b] += (s - (t - z)) + (c - z)
            sums[b] = t
            tallies[np.uint64((i & (ways - 1)) * width + 2 * index[i] + hit[i])] += 1
    elif spread.shape[0]:  # only the bins below ``rounding`` may round (rounding_bins)
        for i in range(count):
            b = np.uint64(index[i])
            c = confidence[i]
            way = np.uint64(i & (ways - 1))
            if index[i] < rounding:  # (a branch: rarely taken, the low confidences' bins)
                s = sums[b]
                t = s + c
                z = t - s
                errors[b] += (s - (t - z)) + (c - z)
                sums[b] = t
            else:  # exact (the error would be +0.0, as errors[b] stays): in any order
                spread[way * np.uint64(bins) + b] += c
            tallies[way * np.uint64(width) + np.uint64(2 * index[i] + hit[i])] += 1
    else:  # the same, more than _TALLIED_BINS bins: no spread, the exact sums in row order
        for i in range(count):
            b = np.uint64(index[i])
            c = confidence[i]
            if index[i] < rounding:
                s = sums[b]
                t = s + c
                z = t - s
                errors[b] += (s - (t - z)) + (c - z)
                sums[b] = t
            else:
                sums[b] += c
            tallies[np.uint64((i & (ways - 1)) * width + 2 * index[i] + hit[i])] += 1


@numba.njit(inline="always")
def _fold_spread(spread, bin_stats):
    # add_to_bins' exact confidence sums, interleaved, onto bin_stats[1] (exact: every
    # partial sum of those bins is a float64, rounding_bins), and cleared
    sums = bin_stats[1]
    bins = sums.shape[0]
    for q in range(spread.shape[0] // max(bins, 1)):
        for b in range(bins):
            sums[b] += spread[q * bins + b]
            spread[q * bins + b] = 0.0


@numba.njit(inline="always")
def fold_tallies(tallies, bin_stats):
    # the counts and hits of add_to_bins' histograms, into bin_stats (exact integers)
    counts, hits = bin_stats[0], bin_stats[2]
    bins = counts.shape[0]
    for q in range(tallies.shape[0] // max(2 * bins, 1)):
        for b in range(bins):
            absent, present = tallies[q * 2 * bins + 2 * b], tallies[q * 2 * bins + 2 * b + 1]
            counts[b] += absent + present
            hits[b] += present


@numba.njit(inline="always")
def add_to_classes(labels, surprisal, count, class_stats):
    # each row's count and surprisal into its label's sums, in row order (labels
    # checked: in [-classes, classes), negative ones counting from the end); the
    # summed counts are exact (float64 integers)
    classes = class_stats.shape[1]
    counts, sums = class_stats[0], class_stats[1]
    for i in range(count):
        y = labels[i]
        y = y + classes if y < 0 else y
        counts[np.uint64(y)] += 1.0  # unsigned (y >= 0): no wraparound select
        sums[np.uint64(y)] += surprisal[i]


_INSERTION_KEEP = 32
"""Up to this many kept rows ``keep_smallest`` inserts each row (a few shifts: the
default ``keep`` is 10); above, the rows of a chunk are sorted and merged
(``merge_kept``): insertion shifted O(rows x keep) places, 1.7 s for 70000 rows all
kept, against a few ms."""


@numba.njit(inline="always")
def keep_smallest(p_label, surprisal, count, c0, found, found_p, found_s, kept, chosen):
    # rows c0 + i of the largest surprisal into found (sorted, earlier rows first on
    # ties; kept of keep filled), their p_label into found_p and surprisal into
    # found_s; returns the new kept.  Keyed on the surprisal as summed and reported
    # (chunk_parts'), not on p_label: two p_label whose logarithms round to one
    # surprisal (1e-300 and the float64 below it) are a tie, which the earlier row
    # wins, as in EvaluationState's merge of blocks and the generic path; keyed on
    # p_label the later row won, and a batch split between the two kept the other
    # (evalreview).  Once every place is filled a row enters only above the last kept
    # value: one vectorised pass over the chunk tells whether any does (NaN never
    # does), and most chunks stop there (measured, 10^6 x 10 update kernel: with the
    # class sums in one row loop, 3.8 ms for both; split, 0.7 ms).  Above
    # _INSERTION_KEEP places, merge_kept (found in row order until filled: the
    # caller sorts a block that never fills them, sort_kept); chosen: count slots.
    keep = found.shape[0]
    if kept == keep:
        higher = False
        threshold = found_s[keep - 1]
        for i in range(count):
            higher |= surprisal[i] > threshold
        if not higher:
            return kept
    if keep > _INSERTION_KEEP:
        return merge_kept(p_label, surprisal, count, c0, found, found_p, found_s, kept, chosen)
    for i in range(count):
        s = surprisal[i]
        if s != s:  # NaN (unchecked NaN predictions) takes no place (EvaluationState's _top)
            continue
        if kept < keep or s > found_s[kept - 1]:
            j = min(kept, keep - 1)  # insert row c0 + i, after rows of the same surprisal
            while j > 0 and s > found_s[j - 1]:
                found[j] = found[j - 1]
                found_p[j] = found_p[j - 1]
                found_s[j] = found_s[j - 1]
                j -= 1
            found[j] = c0 + i
            found_p[j] = p_label[i]
            found_s[j] = s
            kept = min(kept + 1, keep)
    return kept


_FEW_CHOSEN = 16
"""Up to this many rows of a chunk enter ``merge_kept``'s merge, they are sorted by
insertion (no buffers allocated: random rows once every place is filled); more,
by ``np.argsort`` (kind "mergesort", stable)."""


@numba.njit
def sort_kept(found, found_p, found_s, kept):
    # found[:kept] (in row order) sorted by surprisal, largest first: a stable sort
    # (mergesort) keeps the earlier row first on ties
    order = np.argsort(-found_s[:kept], kind="mergesort")
    rows, p, s = found[:kept].copy(), found_p[:kept].copy(), found_s[:kept].copy()
    for j in range(kept):
        found[j] = rows[order[j]]
        found_p[j] = p[order[j]]
        found_s[j] = s[order[j]]


@numba.njit
def merge_kept(p_label, surprisal, count, c0, found, found_p, found_s, kept, chosen):
    # keep_smallest for many places, O(keep + count log count) a chunk: while places
    # are free the chunk's rows (NaN none) are appended in row order, and sorted once
    # every place is filled (sort_kept); then the rows above the last kept value are
    # stably sorted and merged in from the end (in place, past keep dropped), a
    # chunk's row after every kept row of its surprisal (the kept rows are earlier).
    keep = found.shape[0]
    full = kept == keep
    threshold = found_s[keep - 1] if full else 0.0
    m = 0
    for i in range(count):
        s = surprisal[i]
        if (s > threshold) if full else (s == s):
            chosen[m] = i
            m += 1
    start = 0
    if not full:
        start = min(m, keep - kept)
        for j in range(start):
            i = chosen[j]
            found[kept] = c0 + i
            found_p[kept] = p_label[i]
            found_s[kept] = surprisal[i]
            kept += 1
        if kept < keep:
            return kept
        sort_kept(found, found_p, found_s, keep)
    rest = m - start
    if rest == 0:
        return kept
    rows = chosen[start:m]
    if rest <= _FEW_CHOSEN:  # sorted in place (stable: a row passes only larger ones)
        for j in range(1, rest):
            i = rows[j]
            h = j
            while h > 0 and surprisal[i] > surprisal[rows[h - 1]]:
                rows[h] = rows[h - 1]
                h -= 1
            rows[h] = i
    else:
        keys = np.empty(rest)
        for j in range(rest):
            keys[j] = -surprisal[rows[j]]
        rows[:] = rows[np.argsort(keys, kind="mergesort")]
    a = keep - 1  # the kept row, the chunk's row and the place compared
    b = rest - 1
    w = keep + rest - 1
    while b >= 0:
        i = rows[b]
        s = surprisal[i]
        if a >= 0 and s > found_s[a]:  # found[a] ranks after row c0 + i
            if w < keep:
                found[w] = found[a]
                found_p[w] = found_p[a]
                found_s[w] = found_s[a]
            a -= 1
        else:
            if w < keep:
                found[w] = c0 + i
                found_p[w] = p_label[i]
                found_s[w] = s
            b -= 1
        w -= 1
    return kept


@numba.njit(nogil=True, cache=True, error_model="numpy")
def totals(
    values,
    flat,
    bits,
    labels,
    with_top,
    with_entropy,
    logs,
    brier,
    spherical,
    squares,
    classes,
    edges,
    left,
    limit,
    low,
    rounding,
    out,
    found_p,
):
    # One pass over a block, chunk by chunk of at most _PART_ROWS rows (their
    # per-row numbers in buffers that stay in L1, never a per-row array of the
    # block): chunk_rows, then chunk_parts, whose sums are added with Neumaier's
    # compensation (about 2 ulps of each sum whatever the count, plus the parts' few
    # roundings each), the hits, the uniform bins of the confidence, the
    # per-class counts and surprisals and the most surprising rows.
    # out: sums (5), per-class count and surprisal (2 x classes, when classes > 0),
    # per-bin count, confidence sum, hits and the confidence sum's rounding errors
    # (4 x bins), the most surprising rows
    # (the largest surprisals -log p_label, earlier rows first on ties; -1 where
    # fewer; their p_label in found_p).  Returns the suspect rows, or -1 - i for a
    # label outside [low, k).  ``rounding``: the bins whose sums' rounding errors are
    # kept (_row_kernels.rounding_bins: 0 none, every bin, or the bins below those
    # whose float32 sums are exact while every confidence is at most 1; a chunk with
    # one above 1, or NaN, keeps every bin's from there on).
    # No fastmath here: the vector width changes no result (512-bit vectors asked for,
    # see entropy_terms; the bins' index loop, the hits).
    prefer_wide_vectors()
    sums, class_stats, bin_stats, found = out
    n, k = values.shape
    # chunks of _PART_ROWS rows, fewer for long rows (at most 32768 entries); the
    # entropy in parts of at most _CHUNK_ENTRIES entries (``part`` rows), its sum
    # compensated part by part.  Where the parts tile a chunk, every other stage takes
    # a chunk at a time, as without the entropy (the same bits as a state without it;
    # the stages' calls cost about 0.6 us a chunk: 10^5 x 1000 float32 in 4-row chunks,
    # 16 ms of the kernel's 131 on Zen 4); otherwise a part at a time (the chunks were
    # the parts for every stage before: the entropy's bits and, there, every other's)
    part = min(_PART_ROWS, max(1, _CHUNK_ENTRIES // max(k, 1)))
    chunk = min(_PART_ROWS, max(1, 32768 // max(k, 1)))
    if with_entropy and chunk % part:
        chunk = part
    floats = np.empty((5, chunk))  # p_label, others, confidence, entropy, spherical
    predicted = np.empty(chunk, dtype=np.intp)
    lanes = np.empty(_FOLD_LANES)
    # (the terms of a suspect part's rows, chunk_rows'; a clean part's are summed as
    # they are formed, folded_terms)
    terms = np.empty(part * k if with_entropy else 0)
    surprisal = np.empty(chunk)
    scores = np.empty(2 * chunk)  # at least the power of two above chunk
    index = np.empty(chunk, dtype=np.intp)
    hit = np.empty(chunk, dtype=np.intp)
    parts = np.empty(4)
    carry = np.zeros(4)
    sums[:] = 0.0
    bins = edges.shape[0] - 1 if with_top else 0
    tallies = np.zeros((4 if bins <= _TALLIED_BINS else 1) * 2 * bins, dtype=np.int64)
    spread = np.zeros(4 * bins if 0 < rounding < bins <= _TALLIED_BINS else 0)
    keep = found.shape[0]
    found_s = np.empty(keep)  # the kept rows' surprisals (keep_smallest's keys)
    chosen = np.empty(chunk if keep > _INSERTION_KEEP else 0, dtype=np.intp)
    # kept an int64, not the literal 0: merge_kept and sort_kept (no array of the
    # block's dtype) were compiled for Literal[int](0) besides int64 (issue 13)
    kept = np.int64(0)
    hits = 0
    suspect = 0
    # the tuples and rows of buffers formed once: each array in them is a reference
    # counted (an atomic add and subtract per chunk otherwise)
    rows = (values, flat, bits, labels)
    entropy_options = (with_top, squares, np.int64(2), limit, packed(bits), low, spherical)
    # the entropy's parts the chunks: chunk_rows takes a suspect chunk's rows'
    # entropies, folded_terms a clean chunk's sum (with_entropy 2)
    whole = with_entropy and chunk == part
    plain_options = (with_top, squares, np.int64(0), limit, packed(bits), low, spherical)
    options = entropy_options if whole else plain_options
    buffers = (floats, predicted, terms, np.zeros(2 * _TILE_CLASSES, dtype=np.float32))
    p_label, confidence = floats[0], floats[2]
    for c0 in range(0, n, chunk):
        c1 = min(c0 + chunk, n)
        count = c1 - c0
        flagged = chunk_rows(rows, c0, c1, c0, options, buffers)
        if flagged < 0:
            return flagged
        suspect += flagged
        per_row = whole and flagged > 0  # (chunk_rows' with_entropy 2)
        # (the surprisals also for the kept rows: sums[0] not asked for is cleared)
        wanted = (logs or keep > 0, brier, spherical, per_row)
        chunk_parts(floats, count, wanted, surprisal, scores, parts)
        if whole and not per_row:  # "0.0 -": no -0.0
            parts[3] = 0.0 - folded_terms(flat, c0 * k, count * k, lanes)
        add_compensated(sums, carry, parts)  # (parts[3] 0.0 if not whole: sums[3] kept)
        chunk_labels = labels[c0:c1]  # indexed from 0 (see entries_suspect)
        if with_top:
            for i in range(count):
                hit[i] = predicted[i] == chunk_labels[i]
                hits += hit[i]
        if bins:
            if 0 < rounding < bins:  # the bound of rounding_bins needs confidences <= 1
                bounded = True
                for i in range(count):
                    bounded &= confidence[i] <= 1.0
                if not bounded:  # every bin's additions may round from here on
                    _fold_spread(spread, bin_stats)
                    rounding = bins
            add_to_bins(
                confidence, hit, count, edges, left, index, bin_stats, tallies, rounding, spread
            )
        if classes:
            add_to_classes(chunk_labels, surprisal, count, class_stats)
        if keep:
            kept = keep_smallest(
                p_label, surprisal, count, c0, found, found_p, found_s, kept, chosen
            )
        for e0 in range(c0 if with_entropy and not whole else c1, c1, part):  # (the parts)
            e1 = min(e0 + part, c1)
            dirty = 0
            if flagged > 0:  # the part's rows again (rare): its own suspect rows
                dirty = chunk_rows(rows, e0, e1, e0, entropy_options, buffers)
            if dirty == 0:  # "0.0 -": no -0.0
                entropy = 0.0 - folded_terms(flat, e0 * k, (e1 - e0) * k, lanes)
            else:  # each row's entropy clipped at 0 (chunk_rows' with_entropy 2)
                entropy = rows_entropy(floats[3], e1 - e0, scores)
            add_compensated_to(sums, carry, 3, entropy)
    if keep > _INSERTION_KEEP and kept < keep:  # never filled: still in row order
        sort_kept(found, found_p, found_s, kept)
    fold_tallies(tallies, bin_stats)
    _fold_spread(spread, bin_stats)
    for q in range(4):  # inf and NaN as summed
        sums[q] = sums[q] + carry[q] if abs(sums[q]) < np.inf else sums[q]
    sums[4] = hits
    return suspect


_BINARY_CHUNK = 4096  # binary_bins' rows a chunk: its three buffers in L1 (96 KiB)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def binary_bins(p, labels, edges, left, rounding, bin_stats):
    # The top-label bins and hits of the rows [fl(1 - p), p] of a 1-D binary column,
    # read from p (no rows formed): each row's confidence and predicted class as
    # chunk_rows finds them on those rows (the first maximum, compared as bit patterns:
    # for [fl(1 - p), p] the same as x > fl(1 - x), NaN giving class 0 and NaN, as
    # there), then add_to_bins and fold_tallies as ``totals`` runs them, so every bin's
    # count, confidence sum, hits and rounding errors are its bits (each a row-order
    # sum, whatever the chunks).  Returns the hits.
    prefer_wide_vectors()
    n = p.shape[0]
    bins = edges.shape[0] - 1
    chunk = _BINARY_CHUNK
    confidence = np.empty(chunk)
    hit = np.empty(chunk, dtype=np.intp)
    index = np.empty(chunk, dtype=np.intp)
    tallies = np.zeros((4 if bins <= _TALLIED_BINS else 1) * 2 * bins, dtype=np.int64)
    # (the caller's rounding is every bin or none: no spread; formed as totals' all the same)
    spread = np.zeros(4 * bins if 0 < rounding < bins <= _TALLIED_BINS else 0)
    hits = 0
    for c0 in range(0, n, chunk):
        count = min(chunk, n - c0)
        for i in range(count):
            x = p[c0 + i]
            q = 1.0 - x
            up = x > q
            confidence[i] = x if up else q
            hit[i] = (1 if up else 0) == labels[c0 + i]
        for i in range(count):
            hits += hit[i]
        add_to_bins(
            confidence, hit, count, edges, left, index, bin_stats, tallies, rounding, spread
        )
    fold_tallies(tallies, bin_stats)
    _fold_spread(spread, bin_stats)
    return hits


# No fastmath (the sums' order and TwoSum's cancellations must stay as written): every
# addition here is one that EvaluationState._add_blocks made in NumPy before, in the
# same order, so the same bits (benchmarks/check_update_bits.py --stacked).
@numba.njit(nogil=True, cache=True, error_model="numpy")
def merge_blocks(
    padded, width, classes, at, with_errors, class_count, found, found_p, firsts, keep
):
    # The stacked blocks' sums of one update added up (_state's _add_blocks), in one
    # call.  running = padded[:, :width] (read as padded[r, c]: a C-contiguous array's
    # loops vectorise, a strided view's did not), (1 + B, width): row 0 the state's
    # sums, row 1 + b block b's (the class counts, class surprisals, the five sums,
    # then the bins' count, confidence sum, hits and rounding errors, ``bins`` each,
    # from column ``at``).  Returns:
    # * total: each column's rows added one after another from row 0 (numpy's
    #   add.accumulate down a column, or a row at a time: the same additions);
    # * counts: class_count plus the blocks' class counts (exact float64 integers);
    # * errors: the bins' rounding errors, total's plus those of adding the rows'
    #   confidence sums one after another (TwoSum, _binning.two_sum_error: z = t - a,
    #   e = (a - (t - z)) + (b - z)), those summed row after row (numpy's sum over
    #   axis 0 of a C-contiguous array) before the one addition to total's; empty
    #   without ``with_errors``;
    # * values, rows: the ``keep`` most surprising of the blocks' found rows (found >=
    #   0; row found + firsts[b]; surprisal_of their p, as _row_kernels.surprisal; NaN
    #   taking no place), by surprisal, largest first, then row (numpy.lexsort's order
    #   of (rows, -values)).
    blocks = padded.shape[0] - 1
    total = np.empty(width)
    for c in range(width):
        total[c] = padded[0, c]
    for r in range(1, blocks + 1):
        for c in range(width):
            total[c] = total[c] + padded[r, c]
    counts = np.empty(classes, dtype=np.intp)
    for c in range(classes):
        counts[c] = class_count[c] + np.intp(total[c])
    bins = (width - at) // 4
    errors = np.empty(bins if with_errors else 0)
    if with_errors:
        first = at + bins  # the confidence sums' columns
        for j in range(bins):
            a = padded[0, first + j]
            added = 0.0
            for r in range(1, blocks + 1):
                b = padded[r, first + j]
                t = a + b
                z = t - a
                e = (a - (t - z)) + (b - z)
                added = e if r == 1 else added + e
                a = t
            errors[j] = total[at + 3 * bins + j] + added
    slots = found.shape[1]
    p = np.empty(blocks * slots)
    rows = np.empty(blocks * slots, dtype=np.intp)
    n = 0
    for b in range(blocks):
        for j in range(slots):
            if found[b, j] >= 0:
                p[n] = found_p[b, j]
                rows[n] = found[b, j] + firsts[b]
                n += 1
    surprisals = np.empty(n)
    surprisal_array(p[:n], surprisals)  # (its own flags: the bits of its -0.0 too)
    named = 0
    for i in range(n):
        if surprisals[i] == surprisals[i]:
            surprisals[named] = surprisals[i]
            rows[named] = rows[i]
            named += 1
    order = ranked(surprisals, rows, named)[: min(keep, named)]
    return total, counts, errors, surprisals[order], rows[order]


@numba.njit(inline="always")
def _before(values, rows, a, b):
    # whether entry a comes before entry b: larger value, then lower row (values not
    # NaN, -0.0 equal to 0.0, as numpy.lexsort((rows, -values)) compares them)
    return values[a] > values[b] or (values[a] == values[b] and rows[a] < rows[b])


@numba.njit
def ranked(values, rows, n):
    # The indices of values[:n], rows[:n] in numpy.lexsort((rows, -values))'s order
    # (rows distinct: a total order, which any correct sort gives): a bottom-up merge
    # sort written out, insertion sort for runs of 16 first.  numpy.argsort in Numba
    # (the quicksort of the rows, then a stable mergesort) took 2.8 s of CPU to
    # compile, this about 0.3.
    order = np.empty(n, dtype=np.intp)
    for i in range(n):
        order[i] = i
    run = 16
    for start in range(0, n, run):
        stop = min(start + run, n)
        for i in range(start + 1, stop):
            item = order[i]
            j = i
            while j > start and _before(values, rows, item, order[j - 1]):
                order[j] = order[j - 1]
                j -= 1
            order[j] = item
    spare = np.empty(n, dtype=np.intp)
    while run < n:
        for start in range(0, n, 2 * run):
            middle, stop = min(start + run, n), min(start + 2 * run, n)
            i, j = start, middle
            for t in range(start, stop):
                if j >= stop or (i < middle and not _before(values, rows, order[j], order[i])):
                    spare[t] = order[i]
                    i += 1
                else:
                    spare[t] = order[j]
                    j += 1
        order, spare = spare, order
        run *= 2
    return order
