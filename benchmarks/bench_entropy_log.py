"""The entropy terms' logarithm (issue 13, evaluation): the kernels' fdlibm logarithm
against a table-driven one (Tang's method), and against the loop's floor.

    python benchmarks/bench_entropy_log.py [--entries 10000000] [--repeats 7]
        [--no-accuracy] [--in-cache]

``EvaluationState.update`` spends most of its time on the entropy terms
:math:`p \\log p` (one logarithm per entry).  The kernels' logarithm
(``calibration/_row_kernels_numba.log_positive``) is fdlibm's: a division
:math:`s = f / (2 + f)` then a degree-7 polynomial in :math:`s^2`.  This script asks
whether a division-free, table-driven logarithm is faster, and keeps the experiment
so that it can be repeated on another CPU.

The table-driven logarithm (``table_log``, float64 results within 1 ulp: measured below
against ``np.longdouble``): :math:`x = 2^k z`, :math:`z \\in [z_0, 2 z_0)` with
:math:`z_0 \\approx 0.6895` placing 1 in the middle of an interval; the top 7 mantissa
bits of :math:`z` pick :math:`1/c` (26 significant bits, exactly 1 on the interval
around 1) and :math:`\\log c` in a high part (a multiple of :math:`2^{-41}`, like
:math:`\\log 2`'s, so that :math:`k \\log 2_{hi} + \\log c_{hi}` is exact) and a low
part, all made here with mpmath at 200 bits; :math:`r = \\mathrm{fma}(z, 1/c, -1)` (exact
for float32 inputs; for float64 inputs its rounding error is recovered with a second
FMA and added back), :math:`|r| \\le 2^{-8}`, and
:math:`\\log(1 + r) = r + r^2 Q(r)`, :math:`Q` the Taylor polynomial to :math:`r^5/7`
(truncation below :math:`2^{-59} |r|`) by Estrin's scheme.  No division, a short
dependency chain, three table loads per entry.  Reference: P. T. P. Tang, ACM TOMS
16(4), 1990, doi:10.1145/98267.98294.

Timed, each over ``--entries`` probabilities (a softmax of Gaussian logits) in chunks of
4096 entries (the kernels' ``_CHUNK_ENTRIES``: the buffers stay in L1 cache), on one
thread, by thread CPU time (a shared machine's load disturbs it less than the wall
clock), the minimum over ``--repeats`` interleaved repeats:

* floor: the same loop with the logarithm replaced by :math:`p (p - 1)`;
* kernels: ``entropy_terms`` of the kernels (four streams of fdlibm logarithms);
* table, 4 streams: the kernels' own ``entropy_terms`` compiled again with
  ``table_log`` in place of ``log_positive`` (``with_log``: the same code, flags and
  512-bit vectors, no copy of the loop), which calls it under the condition
  :math:`p > 0`;
* table, 1 stream: one stream, ``table_log`` called unconditionally, then selected.
* reciprocal, 4 streams: the kernels' loop and logarithm with :math:`s = f / (2 + f)`
  formed without a float64 division (``reciprocal_reduced``): a float32 reciprocal of
  :math:`d = 2 + f`, one Newton step, :math:`q = f y`, then Markstein's correction
  :math:`q + (f - q d) y` by FMAs: the correctly rounded quotient (for float32 entries
  always: the same bits as the kernels', as the accuracy lines show);
* no division (bound): the same with :math:`s = 0.4 f`, wrong on purpose: what the loop
  would take if the division cost nothing;
* table, 2, 1, 0 gathers (bound): ``table_log``'s arithmetic in the kernels' loop with
  only its first 2, 1 or none of its three table reads, the others replaced by numbers
  formed from the index (wrong on purpose, ``table_log_with_gathers``): what each
  gather costs, and (0 gathers) what a table read some other way (an in-register
  permute, say) could at best reach;
* short form, 4 streams: the kernels' loop with fdlibm's shorter
  :math:`\\log(1 + f) = f - s (f - R)` everywhere (two products fewer; fdlibm takes it
  except for m near sqrt(2)), less accurate (the accuracy lines).
* exponent converted: the kernels' loop and logarithm with :math:`k` converted from
  int64 (``converted_log``: AVX-512DQ's ``vcvtqq2pd``) instead of formed in the
  mantissa of :math:`2^{52}`: one vector operation fewer per 8 entries (the float32
  loop 135 instructions against 160, no spilled registers against 28 stack
  accesses), the same bits (the accuracy lines).
* explicit, ... (AVX-512 targets, float32 entries only): the kernels' terms written as
  LLVM vector instructions (``_vector_terms``: LLVM's contractions of the kernels' loop
  written out as FMAs, the same operations in the same order), four streams; "integer"
  with the kernels' integer range reduction (the control: what the explicit code
  itself costs), "getmant/getexp pd" with AVX-512's ``vgetmantpd``/``vgetexppd``
  (m1 in [1, 2) and the exponent; m1 >= T halved and the exponent raised, a compare
  and two selects: the same m and k), "getmant/getexp ps" the same on the 16 float32
  lanes before widening (m - 1 and k exact in float32, then widened); "rcp14, n
  Newton" the integer reduction with :math:`s = f / (2 + f)` formed without a division
  (``_estimated``): AVX-512's ``vrcp14pd`` estimate y of 1/d (relative error below
  2^-14), n Newton steps :math:`y + y (1 - d y)` by FMAs (2^-28, 2^-56), q = f y and
  Markstein's correction :math:`q + (f - q d) y` (2 steps: 8 vector operations for the
  division's one).  Each is checked bit for bit against the kernels' terms (every
  float32 mantissa of [0.5, 2), the subnormals, 0, -0, inf, NaN, negative and the
  largest entries) before the timings.

``--in-cache`` times each loop over one chunk again and again (as many entries in all):
the logarithm's own cost with its entries in L1, as in the kernels, where the row pass
has just read the chunk; without it, each loop makes one pass over all entries and
its time includes that memory traffic, the same for every loop.  Before the timings
the script prints the gathers and divisions in each loop's float32 machine code (so
that a reader sees which loops are vectorised with 512-bit gathers or divisions).

The table rows of the AMD measurements below were taken with a copy of the loop that
called ``table_log`` unconditionally (under a condition its loads are masked, and on
the AMD the loop ran scalar).  Calling the kernels' ``log_positive`` unconditionally
too, so that one loop served both, slowed the kernels' float32 loop on the Emerald
Rapids (10^7 entries, min of 11, one thread, load 3.6: 9.2-9.3 ms conditional, 10.5-10.6
ms unconditional; float64 the same), so the kernels keep the condition; on the Emerald
Rapids the conditional table loop runs vectorised (masked gathers, 512-bit), 12.7 ms
against the kernels' 9.5 ms.

Measured on the 2-core AMD EPYC (``znver3`` to LLVM, AVX2), 10^7 entries, 2026-12-01,
two runs (load average 4 and 6: five engineers on two cores; the second with the
kernels' 7-operation split of x, same bits), ns per entry, min of 7; "kernels" is
fdlibm's logarithm in the entropy loop of four streams:

=======  ==========  ==========  ================  ===============
input    floor       kernels     table, 4 streams  table, 1 stream
=======  ==========  ==========  ================  ===============
float32  0.49, 0.48  2.26, 1.83  4.25, 4.08        3.77, 4.38
float64  0.73, 0.65  2.68, 1.95  4.61, 3.56        3.37, 3.17
=======  ==========  ==========  ================  ===============

Accuracy, largest error against ``np.longdouble`` (1 million random values, and every
float32 mantissa of [0.5, 1) and [1, 2)): table 0.500-0.516 ulp, kernels 0.72-0.84 ulp
(0.51 next to 1).

The table loses: LLVM's cost model gives AMD's Zen no fast gathers, so the loop
vectoriser loads each table entry with scalar loads and inserts (3 tables x 4 lanes,
plus moving the 4 indices out of the vector registers: about 30 of the loop's 90
instructions per 4 entries, against fdlibm's 45 for everything, one of them a
``vdivpd`` whose throughput, 4 entries per ~5 cycles, is not the limit).  Forcing
gathers (``NUMBA_CPU_FEATURES=<host features>,+fast-gather``, every kernel of the
process) is no better: 4.3-4.9 ns for float32.

On the 2-core Intel Emerald Rapids (AVX-512, fast gathers; every loop 512-bit), 10^7
entries, 2026-12-01, load average 3.3, ns per entry, min of 5: float32 floor 0.50,
kernels 0.97, table 4 streams 1.31, table 1 stream 2.06; float64 0.64, 1.02, 1.34,
1.96.  Accuracy as above.  The table loses there too.

The same machine, 2026-12-01 (load average 3.5: other engineers' jobs; the ratios to the
kernels' loop in one process, min of 9), asking whether the kernels' float64 division
(``vdivpd zmm``, a throughput of about 16 cycles per 8 lanes) is the loop's limit:
float32 kernels 1.10 ns/entry, no division (bound) 0.81x, reciprocal 1.14x, table 4
streams 1.17x; float64 1.12 ns, 0.87x, 1.21x, 1.25x.  The division is at most a fifth of
the loop: the 512-bit loop is bound about as much by its other 30 or so vector
operations per 8 entries (two ports take 512-bit vectors), and the reciprocal's two
conversions and five FMAs cost more than the division's three micro-operations.  The
kernels keep the division (on the AMD EPYC, ``vdivpd ymm`` was not the limit either).

The 2-core AMD EPYC again (Zen 5, ``znver5``, AVX-512), 2026-12-02, load average 7.6-8.7
(a CI run and other engineers), asking whether fewer vector operations, the same bits,
make the float32 loop faster (float32 entries need no subnormal scaling: LLVM already
folds ``log_positive``'s away for them, its compare of a widened float32 against the
smallest normal float64 never true).  ``--in-cache``, 10^7 entries, min of 9:
exponent converted 1.04x the kernels' time for float32 and float64 (4.38 against 4.21
ms, 4.94 against 4.76); min of 21 against main's own kernel, in L1: 4.39 against 4.35
ms (float32), 4.84 against 4.68 ms (float64); ``bench_update_stages.py --only
everything entropy`` against main, two orders: "+ entropy" 8.22 against 8.54 and 7.70
against 7.67 ms, "everything" 12.60 against 13.11 and 11.71 against 11.59 ms, noise.
Not faster, not kept (most likely: LLVM schedules the spill-free loop one stream after another
(each stream's division then the polynomial waiting on it), where the spilling one
interleaved the four streams' divisions).

On the 2-core AMD EPYC Zen 5 (``znver5``, AVX-512 with 512-bit vectors), 2026-12-02,
load average 10 (other engineers' jobs), 10^7 entries, ns per entry, min of 11 in cache
(``--in-cache``) and of 9 in one pass, ratios to the kernels' loop in one process.  The
machine code: the kernels' loop 4 ``vdivpd zmm`` a pass of 32 entries; the table loop
12 ``vgatherqpd zmm`` (the three tables, four streams) and no division: the suggested
design vectorises as meant.

=====================  ===============  ===============  ===============  ===============
loop                   float32 in L1    float32 a pass   float64 in L1    float64 a pass
=====================  ===============  ===============  ===============  ===============
floor                  0.05 (0.13x)     0.24 (0.47x)     0.10 (0.21x)     0.33 (0.52x)
kernels                0.42             0.51             0.47             0.64
table, 4 streams       1.11 (2.64x)     1.21 (2.37x)     1.19 (2.56x)     1.32 (2.05x)
table, 1 stream        1.35 (3.22x)     1.42 (2.77x)     1.25 (2.68x)     1.60 (2.50x)
table, 2 gathers       0.82 (1.95x)     0.85 (1.67x)     0.78 (1.67x)     0.85 (1.32x)
table, 1 gather        0.63 (1.51x)     0.63 (1.23x)     0.58 (1.25x)     0.69 (1.07x)
table, 0 gathers       0.41 (0.98x)     0.45 (0.88x)     0.35 (0.75x)     0.58 (0.90x)
reciprocal             0.68 (1.61x)     0.69 (1.34x)     0.74 (1.58x)     0.81 (1.27x)
no division (bound)    0.36 (0.86x)     0.39 (0.76x)     0.41 (0.87x)     0.62 (0.96x)
short form             0.40 (0.94x)     0.58 (1.00x)     0.45 (0.96x)     0.55 (0.86x)
=====================  ===============  ===============  ===============  ===============

(The short form's row from a second run, with R by Horner's scheme; its first run, by
Estrin's: 0.92x, 0.81x, 0.94x, 0.96x.  At this load a pass's ratios move by up to 0.2
between runs; in L1, by 0.04.)  Accuracy, both runs: table 0.500-0.516 ulp, kernels
0.734 ulp (float32 mantissas; 0.836 float64 uniform, 0.509 near 1), reciprocal the
kernels' bits, short form 0.870 ulp on float32's [0.5, 1) (0.905 float64 uniform).

On Zen 5 the table loses more than on Zen 3: each 512-bit gather costs about 0.2 ns an
entry (the rows with 2, 1, 0 gathers), as much as half the kernels' whole loop, and the
table's arithmetic without any gather (a bound) is 0.75x to 0.98x of the kernels' loop
with its division, so no table read by gathers can win here; a gather-free read of 128
entries does not exist (an in-register permute, ``vpermi2pd``, reads 16, and LLVM's
loop vectoriser emits gathers, never permutes, for a table in scalar code: explicit
AVX-512 vector code, whose smaller table, |r| up to 1/32 instead of 1/256, needs a
polynomial 4-5 FMAs longer, about what the table saves).  Nor is the division the
limit: a loop of divisions alone (``a[i] / b[i]``, float64, in L1) runs at 0.14 ns an
entry, and removing it from the logarithm (no division, a bound) saves 13-14% in
cache.  The loop is bound by its some 30 vector operations per 8 entries (``vdivpd``
one of them) on Zen 5's four floating-point pipes, which the integer vector operations
share: at about 2.7 GHz, 0.42 ns an entry is 9 cycles per 8 entries, 3.3 operations a
cycle.  The only faster loop at hand, the short form, is less accurate (0.87 against
0.73 ulp) and is not taken.  Also tried on this machine, in a copy of the loop (min of
7, in L1, 4096 float32 entries; load 7-10) and not kept, none faster than 0.99x: the
polynomial by Horner's scheme (two FMAs fewer, a longer chain: 1.00-1.05x), half of f
from m's bits (0.5 m - 0.5: a product replaced by an integer and an addition,
1.00-1.04x), the divisor as m + 1 instead of 2 + f (the same bits, a shorter chain:
0.99-1.00x), two or one streams instead of four (1.01-1.07x, 1.08-1.13x).  The kernels
keep fdlibm's logarithm and its division.

Tried and not kept (issue 13, 2026-12-03, the same 2-core AMD EPYC Zen 5, load average
2.5: other engineers' runs): the range reduction by AVX-512's ``vgetmantpd`` and
``vgetexppd`` (the "explicit" rows), 2 operations and a compare with two selects
instead of the integer reduction's 5 integer operations and 2 additions.  The same bits
as the kernels' terms (every float32 mantissa and the special entries, above), but
slower: ``--in-cache --no-accuracy --repeats 9``, float32, ns an entry (ratio to the
kernels' loop): kernels 0.38, explicit integer (control) 0.42 (1.10x), getmant/getexp
pd 0.49 (1.29x), ps 0.46 (1.21x); a first run (scratch copy, min of 15, load 1.1):
control 1.08x, pd 1.28x, ps on 16 lanes 1.19-1.22x.  Against its own control, the pd
reduction costs 17% more and the ps one 10% more: on Zen 5 the two AVX-512 operations
cost more than the integer operations they replace (whose port pressure the loop's
FMAs share anyway), and the ps form adds four widenings and two lane extractions a 16
entries (``vcvtps2pd``, ``vextractf64x4``) for the two it saves.  The kernels keep the
integer reduction; the explicit code stays here so that a CPU with cheaper
``vgetmant``/``vgetexp`` (Intel's, for one) can be measured.

On the 2-core AMD EPYC Zen 4 (``znver4``: AVX-512 on 256-bit data paths, each 512-bit
operation two halves; ``vdivpd zmm`` slower than Zen 5's), 2026-12-03 (issue 13, branch
update4), ``--in-cache --no-accuracy --repeats 11``, two runs (load 0.8 and 2.3: other
engineers' runs), ns an entry for the kernels' loop, the others as ratios to it in the
same run (the table rows from the first run only):

==============================  ===============  ===============
loop                            float32          float64
==============================  ===============  ===============
kernels                         0.76, 0.81       0.87, 0.93
exponent converted              0.96x, 0.97x     0.97x, 0.99x
reciprocal (float32 seed)       1.35x, 1.37x     1.36x, 1.34x
no division (bound)             0.87x, 0.88x     0.88x, 0.86x
short form (less accurate)      0.85x, 0.87x     0.82x, 0.81x
explicit, integer (control)     0.98x, 1.01x
explicit, getmant/getexp pd     1.13x, 1.14x
explicit, getmant/getexp ps     1.12x, 1.13x
explicit, rcp14, 2 Newton       1.33x, 1.33x
explicit, rcp14, 1 Newton       1.17x, 1.17x
table, 4 streams; 1 stream      2.08x; 2.59x     1.94x; 2.20x
table, 2, 1, 0 gathers (bound)  1.55, 1.20,      1.30, 0.99,
                                0.87x            0.70x
==============================  ===============  ===============

The ``vrcp14pd`` quotient with two Newton steps gives the kernels' bits on every float32
entry checked (above), with one step it does not (its quotient is within about 2^-56
of f / d, not always the correctly rounded one); both are slower than the division,
by a third and by a sixth.  Zen 4 as the other machines: the loop is bound by its
number of vector operations (each 512-bit one two micro-operations on its pipes), not
by the divider; with the division replaced by one product (a bound, wrong on purpose)
the loop is 12-13% faster, so a division-free quotient must cost at most one or two
operations to gain anything, and every one tried costs five to eight.  Also measured
then, a scratch copy of the kernels' loop with one or two streams instead of four (the
same terms; 10^6 entries in 4096-entry chunks in L1, min of 21 and 31, load 1.1 and
2.0): one stream 0.95x and 0.96x, two 0.94x and 1.03x, the exponent converted 0.92x and
0.97x: within this machine's noise of about 5% between runs, and on Zen 5 fewer
streams were 1.01-1.13x slower.  Not kept: the kernels keep fdlibm's logarithm, its
division and four streams.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import time
import types as types_module
from collections.abc import Callable
from typing import Any

import mpmath
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from crossent._intrinsics_numba import (
    bits_to_float64,
    call_intrinsic,
    float64_to_bits,
    numba_target_has,
)
from crossent.calibration import _row_kernels_numba as kernels

from _machine import cpu_name

_OFF = 0x3FE6100000000000  # z0 = 0.689453125: 1 in the middle of interval 79
_ONE = 0x3FF0000000000000
_CHUNK = 4096
# fdlibm's Lg7, ..., Lg1 (the kernels' log_of_quotient's coefficients, highest first)
_LG_DESCENDING = (
    0.1479819860511658591,
    0.1531383769920937332,
    0.1818357216161805012,
    0.2222219843214978396,
    0.2857142874366239149,
    0.3999999999940941908,
    0.6666666666666735130,
)
_FLAGS = {"contract", "reassoc", "nsz", "arcp"}  # the kernels' loop flags


def _as_float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<q", bits))[0])


def make_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(1/c, log c high, log c low) for the 128 intervals, and log 2 high and low."""
    with mpmath.workprec(200):
        quantum = mpmath.mpf(2) ** -41
        invc, hi, lo = [], [], []
        for i in range(128):
            a = mpmath.mpf(_as_float(_OFF + i * (1 << 45)))
            b = mpmath.mpf(_as_float(_OFF + (i + 1) * (1 << 45)))
            if a < 1 < b:
                inverse = mpmath.mpf(1)
            else:  # 2 / (a + b) rounded to 26 significant bits
                target = 2 / (a + b)
                step = mpmath.mpf(2) ** (mpmath.floor(mpmath.log(target, 2)) - 25)
                inverse = mpmath.nint(target / step) * step
            log_c = -mpmath.log(inverse)
            high = mpmath.nint(log_c / quantum) * quantum
            invc.append(float(inverse))
            hi.append(float(high))
            lo.append(float(log_c - high))
        ln2 = mpmath.log(2)
        ln2_hi = mpmath.nint(ln2 / quantum) * quantum
        return np.array(invc), np.array(hi), np.array(lo), float(ln2_hi), float(ln2 - ln2_hi)


_INVC, _LOGC_HI, _LOGC_LO, _LN2_HI, _LN2_LO = make_table()


@intrinsic
def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once (``llvm.fma.f64``)."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@numba.njit(fastmath={"nsz"}, inline="never", error_model="numpy")
def table_log(x: float) -> float:
    # subnormals scaled by 2^54 (as bit masks)
    tiny = -np.int64(x < 2.2250738585072014e-308)
    bits = (float64_to_bits(x * 18014398509481984.0) & tiny) | (float64_to_bits(x) & ~tiny)
    t = bits + (_ONE - _OFF)
    biased = (t >> 52) & 0x7FF
    i = (t >> 45) & 127
    z = bits_to_float64(bits - (biased << 52) + _ONE)
    k = bits_to_float64(biased | 0x4330000000000000) - (4503599627370496.0 + 1023.0)
    k = k - bits_to_float64(float64_to_bits(54.0) & tiny)
    invc = _INVC[i]
    r = fma(z, invc, -1.0)
    p = z * invc  # z/c = p + q exactly; p - 1 and (p - 1) - r exact
    delta = ((p - 1.0) - r) + fma(z, invc, -p)
    w = fma(k, _LN2_HI, _LOGC_HI[i])  # exact
    return table_sum(r, w, fma(k, _LN2_LO, _LOGC_LO[i]) + delta)


@numba.njit(fastmath={"nsz"}, inline="always", error_model="numpy")
def table_sum(r: float, w: float, low: float) -> float:
    # table_log's log(1 + r) + w + low: w + r by Fast2Sum (|w| >= |r| or w = 0), the
    # polynomial r^2 Q(r) (Estrin's scheme) and the low parts added last
    hi = w + r
    lo = ((w - hi) + r) + low
    r2 = r * r
    q = fma(
        r2,
        fma(r2, fma(r, 1.0 / 7.0, -1.0 / 6.0), fma(r, 0.2, -0.25)),
        fma(r, 1.0 / 3.0, -0.5),
    )
    return hi + fma(r2, q, lo)


@numba.njit(fastmath=_FLAGS)
def table_log_array(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.shape[0]):
        out[i] = table_log(x[i])


def table_log_with_gathers(gathers: int) -> Any:
    """``table_log``'s arithmetic for float32 entries (``delta`` is 0 for them) with only
    its first ``gathers`` table reads (1/c, log c high, log c low) from the tables, the
    others replaced by numbers formed from the index: WRONG on purpose, a bound: what the
    table-driven loop would take if those reads cost nothing (0 gathers: what any
    lookup that is not a gather, say an in-register permute, could at best reach)."""

    @numba.njit(fastmath={"nsz"}, inline="never", error_model="numpy")
    def log(x: float) -> float:
        bits = float64_to_bits(x)
        t = bits + (_ONE - _OFF)
        biased = (t >> 52) & 0x7FF
        i = (t >> 45) & 127
        z = bits_to_float64(bits - (biased << 52) + _ONE)
        k = bits_to_float64(biased | 0x4330000000000000) - (4503599627370496.0 + 1023.0)
        fake = bits_to_float64(i | 0x4330000000000000) - 4503599627370496.0
        invc = _INVC[i] if gathers >= 1 else 1.0 + fake * 2.0**-10
        log_hi = _LOGC_HI[i] if gathers >= 2 else fake * 2.0**-9
        log_lo = _LOGC_LO[i] if gathers >= 3 else fake * 2.0**-60
        r = fma(z, invc, -1.0)
        return table_sum(r, fma(k, _LN2_HI, log_hi), fma(k, _LN2_LO, log_lo))

    return log


@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def short_form(f: float, s: float, k: float) -> float:
    # the kernels' log_of_quotient with fdlibm's shorter form log(1 + f) = f - s (f - R)
    # (fdlibm's __ieee754_log takes it except for m near sqrt(2), where it loses
    # accuracy; the kernels take the longer form f - (hfsq - s (hfsq + R)) everywhere):
    # two products fewer, less accurate (the accuracy lines); R by Horner's scheme
    z = s * s
    p = _LG_DESCENDING[0]
    for coefficient in _LG_DESCENDING[1:]:  # R(z) / z by Horner's scheme
        p = coefficient + z * p
    return k * 6.93147180369123816490e-01 - ((s * (f - z * p) - k * 1.90821492927058770002e-10) - f)


@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def short_reduced(f: float, k: float) -> float:
    return short_form(f, f / (2.0 + f), k)


@numba.njit(fastmath=_FLAGS, inline="always")
def floor_terms(flat: np.ndarray, start: int, count: int, terms: np.ndarray) -> None:
    a = flat[start : start + count]
    for t in range(count):
        x = np.float64(a[t])
        terms[t] = x * (x - 1.0) if x > 0.0 else 0.0


@numba.njit(fastmath=_FLAGS, inline="always")
def table_terms_1(flat: np.ndarray, start: int, count: int, terms: np.ndarray) -> None:
    a = flat[start : start + count]
    for t in range(count):
        x = np.float64(a[t])
        y = table_log(x)
        terms[t] = x * y if x > 0.0 else 0.0


def with_log(loop: Any, log: Any, name: str = "log_positive") -> Any:
    """The kernels' compiled ``loop`` (a dispatcher of ``kernels``) compiled again with
    ``log`` in place of ``name`` (``log_positive``): its own code, not a copy (its flags
    and options as the kernel's, its other globals the kernels module's)."""
    function = loop.py_func
    namespace = {**function.__globals__, name: log}
    rebound = types_module.FunctionType(function.__code__, namespace, function.__name__)
    options = {key: value for key, value in loop.targetoptions.items() if key != "nopython"}
    return numba.njit(**options)(rebound)


# the kernels' entropy loop (four streams) with the table-driven logarithm
table_terms_4 = with_log(kernels.entropy_terms, table_log)


@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def reciprocal_reduced(f: float, k: float) -> float:
    # the kernels' log_reduced with s = f / (2 + f) formed without a float64 division:
    # a float32 reciprocal of d = 2 + f, one Newton step (relative error about 2^-46),
    # q = f y, then Markstein's correction q + (f - q d) y: the correctly rounded
    # quotient but within about 2^-90 of a rounding boundary (never, for float32 x:
    # f / d of 24- and 26-bit numbers is at least about 2^-80 from one), so the same
    # bits as the kernels' for float32 entries.  The rest is log_reduced's polynomial.
    d = 2.0 + f
    y0 = np.float64(np.float32(1.0) / np.float32(d))
    y = fma(y0, fma(-d, y0, 1.0), y0)
    q = f * y
    s = fma(fma(-q, d, f), y, q)
    return kernels.log_of_quotient(f, s, k)


@numba.njit(fastmath={"contract", "nsz"}, inline="always", error_model="numpy")
def undivided_reduced(f: float, k: float) -> float:
    # WRONG on purpose, a bound only: log_reduced with s = 0.4 f (no division at all):
    # what the loop would take if the division cost nothing
    s = 0.4 * f
    return kernels.log_of_quotient(f, s, k)


# the kernels' log_positive and entropy loop with those reductions
reciprocal_log = with_log(kernels.log_positive, reciprocal_reduced, "log_reduced")
reciprocal_log_array = with_log(kernels.log_array, reciprocal_log)
reciprocal_terms_4 = with_log(kernels.entropy_terms, reciprocal_log)
undivided_terms_4 = with_log(
    kernels.entropy_terms, with_log(kernels.log_positive, undivided_reduced, "log_reduced")
)


short_log = with_log(kernels.log_positive, short_reduced, "log_reduced")
short_log_array = with_log(kernels.log_array, short_log)
short_terms_4 = with_log(kernels.entropy_terms, short_log)
gathered_terms_4 = {
    n: with_log(kernels.entropy_terms, table_log_with_gathers(n)) for n in (0, 1, 2)
}


@numba.njit(fastmath={"contract", "nsz"}, inline="never", error_model="numpy")
def converted_log(x: float) -> float:
    # the kernels' log_positive with the exponent k converted from int64 (AVX-512DQ's
    # vcvtqq2pd; scalar code on AVX2) instead of formed in the mantissa of 2^52: with
    # d = bits - bits(T/2), k = d >> 52 (arithmetic) and m's bits (d & 2^52 - 1) +
    # bits(T/2): 5 vector operations for m and k instead of 6, the same m and k
    tiny = x < 2.2250738585072014e-308
    bits = float64_to_bits(x * 18014398509481984.0 if tiny else x)
    d = bits - 0x3FE6A09C00000000
    m = bits_to_float64((d & 0x000FFFFFFFFFFFFF) + 0x3FE6A09C00000000)
    k = np.float64(d >> 52)
    return kernels.log_reduced(m - 1.0, k - 54.0 if tiny else k)


converted_log_array = with_log(kernels.log_array, converted_log)
converted_terms_4 = with_log(kernels.entropy_terms, converted_log)


# Explicit 512-bit vector code (AVX-512 only): the kernels' terms written as LLVM vector
# instructions, with LLVM's contractions of the kernels' loop written out as FMAs (the
# same operations in the same order: the same bits, checked in main), so that the range
# reduction can be AVX-512's vgetmantpd/vgetexppd (or vgetmantps/vgetexpps on 16
# float32 lanes) instead of the integer operations; "integer" is the same explicit code
# with the kernels' integer reduction, the control.
_F64X8 = ir.VectorType(ir.DoubleType(), 8)
_I64X8 = ir.VectorType(ir.IntType(64), 8)
_F32X16 = ir.VectorType(ir.FloatType(), 16)
_I32 = ir.IntType(32)
_CUT = 1.0 + 0x6A09C * 2.0**-20  # fdlibm's T: m in [T/2, T)
_ROUND_CURRENT = ir.Constant(_I32, 4)


def _doubles(value: float) -> ir.Constant:
    return ir.Constant(_F64X8, [value] * 8)


def _fma(builder: ir.IRBuilder, a: Any, b: Any, c: Any) -> Any:
    return call_intrinsic(builder, "llvm.fma.v8f64", _F64X8, a, b, c)


def _divided(builder: ir.IRBuilder, f: Any, d: Any) -> Any:
    return builder.fdiv(f, d)


def _estimated(steps: int) -> Any:
    """``f / d`` without a division: AVX-512's ``vrcp14pd`` estimate y of 1/d (relative
    error below 2^-14), ``steps`` Newton steps y + y (1 - d y) by FMAs (2^-28, 2^-56),
    q = f y, then Markstein's correction q + (f - q d) y."""

    def quotient(builder: ir.IRBuilder, f: Any, d: Any) -> Any:
        every = ir.Constant(ir.IntType(8), -1)
        y = call_intrinsic(builder, "llvm.x86.avx512.rcp14.pd.512", _F64X8, d, d, every)
        minus_d = builder.fneg(d)
        for _ in range(steps):
            y = _fma(builder, y, _fma(builder, minus_d, y, _doubles(1.0)), y)
        q = builder.fmul(f, y)
        return _fma(builder, _fma(builder, builder.fneg(q), d, f), y, q)

    return quotient


def _log_reduced_vector(builder: ir.IRBuilder, f: Any, k: Any, quotient: Any = _divided) -> Any:
    """``kernels.log_reduced(f, k)`` on 8 lanes, each contraction as LLVM made it, with
    s = f / (2 + f) formed by ``quotient(builder, f, 2 + f)``."""
    lg = _LG_DESCENDING[::-1]
    s = quotient(builder, f, builder.fadd(f, _doubles(2.0)))
    z = builder.fmul(s, s)
    a, b, c = (_fma(builder, z, _doubles(lg[j + 1]), _doubles(lg[j])) for j in (0, 2, 4))
    w = builder.fmul(z, z)
    r = _fma(
        builder, builder.fmul(w, w), _fma(builder, w, _doubles(lg[6]), c), _fma(builder, w, b, a)
    )
    hfsq = builder.fmul(builder.fmul(f, _doubles(0.5)), f)
    sr = builder.fmul(s, _fma(builder, z, r, hfsq))
    low = builder.fsub(_fma(builder, k, _doubles(1.90821492927058770002e-10), sr), hfsq)
    return _fma(builder, k, _doubles(6.93147180369123816490e-01), builder.fadd(f, low))


def _reduce_by_integers(builder: ir.IRBuilder, x: Any) -> tuple[Any, Any]:
    def word(value: int) -> ir.Constant:
        return ir.Constant(_I64X8, [value] * 8)

    t = builder.add(builder.bitcast(x, _I64X8), word(0x3FF0000000000000 - 0x3FE6A09C00000000))
    biased = builder.and_(builder.lshr(t, word(52)), word(0x7FF))
    m = builder.add(builder.and_(t, word(0x000FFFFFFFFFFFFF)), word(0x3FE6A09C00000000))
    k = builder.bitcast(builder.or_(biased, word(0x4330000000000000)), _F64X8)
    f = builder.fsub(builder.bitcast(m, _F64X8), _doubles(1.0))
    return f, builder.fsub(k, _doubles(4503599627370496.0 + 1023.0))


def _reduce_by_getmant(builder: ir.IRBuilder, x: Any) -> tuple[Any, Any]:
    # m1 in [1, 2) and the exponent e; m1 >= T: m = m1 / 2, k = e + 1 (exact)
    every = ir.Constant(ir.IntType(8), -1)
    m1 = call_intrinsic(
        builder,
        "llvm.x86.avx512.mask.getmant.pd.512",
        _F64X8,
        x,
        ir.Constant(_I32, 0),
        x,
        every,
        _ROUND_CURRENT,
    )
    e = call_intrinsic(
        builder, "llvm.x86.avx512.mask.getexp.pd.512", _F64X8, x, x, every, _ROUND_CURRENT
    )
    big = builder.fcmp_ordered(">=", m1, _doubles(_CUT))
    m = builder.select(big, builder.fmul(m1, _doubles(0.5)), m1)
    return builder.fsub(m, _doubles(1.0)), builder.fadd(
        e, builder.select(big, _doubles(1.0), _doubles(0.0))
    )


def _vector_terms(reduce: Any, lanes: int, quotient: Any = _divided) -> Any:
    """An intrinsic ``(flat, i, terms, j)``: ``terms[j:j + lanes]`` = the kernels' terms
    of the float32 entries ``flat[i:i + lanes]``, reduced by ``reduce`` (8 lanes), or
    (``reduce`` None, 16 lanes) by vgetmantps/vgetexpps on the float32 entries, m - 1
    and k then widened (exact)."""

    @intrinsic
    def terms(typingctx: Any, flat: Any, i: Any, out: Any, j: Any) -> Any:
        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            stored = context.make_array(signature.args[2])(context, builder, args[2]).data
            floats = ir.VectorType(ir.FloatType(), lanes)
            pointer = builder.bitcast(builder.gep(data, [args[1]]), floats.as_pointer())
            entries = builder.load(pointer, align=4)
            target = builder.bitcast(builder.gep(stored, [args[3]]), _F64X8.as_pointer())
            if reduce is None:
                f32, k32 = _float32_reduction(builder, entries)
            for h in range(lanes // 8):
                half = ir.Constant(ir.VectorType(_I32, 8), list(range(8 * h, 8 * h + 8)))
                x = builder.fpext(builder.shuffle_vector(entries, entries, half), _F64X8)
                if reduce is None:
                    f, k = (
                        builder.fpext(builder.shuffle_vector(v, v, half), _F64X8)
                        for v in (f32, k32)
                    )
                else:
                    f, k = reduce(builder, x)
                term = builder.fmul(x, _log_reduced_vector(builder, f, k, quotient))
                positive = builder.fcmp_ordered(">", x, _doubles(0.0))
                term = builder.select(positive, term, _doubles(0.0))
                builder.store(term, builder.gep(target, [ir.Constant(_I32, h)]), align=8)
            return context.get_dummy_value()

        return types.void(flat, i, out, j), codegen

    return terms


def _float32_reduction(builder: ir.IRBuilder, entries: Any) -> tuple[Any, Any]:
    def floats(value: float) -> ir.Constant:
        return ir.Constant(_F32X16, [value] * 16)

    every = ir.Constant(ir.IntType(16), -1)
    m1 = call_intrinsic(
        builder,
        "llvm.x86.avx512.mask.getmant.ps.512",
        _F32X16,
        entries,
        ir.Constant(_I32, 0),
        entries,
        every,
        _ROUND_CURRENT,
    )
    e = call_intrinsic(
        builder,
        "llvm.x86.avx512.mask.getexp.ps.512",
        _F32X16,
        entries,
        entries,
        every,
        _ROUND_CURRENT,
    )
    big = builder.fcmp_ordered(">=", m1, floats(_CUT))
    m = builder.select(big, builder.fmul(m1, floats(0.5)), m1)
    k = builder.fadd(e, builder.select(big, floats(1.0), floats(0.0)))
    return builder.fsub(m, floats(1.0)), k


def _four_streams(terms: Any, lanes: int) -> Any:
    """The kernels' loop shape: four quarters of the chunk side by side, ``lanes``
    entries of each an iteration (the chunk a multiple of 4 lanes, as 4096)."""

    @numba.njit(fastmath=False, inline="never")
    def loop(flat: np.ndarray, start: int, count: int, out: np.ndarray) -> None:
        quarter = count // (4 * lanes) * lanes
        for t in range(0, quarter, lanes):
            for q in range(4):
                terms(flat, start + q * quarter + t, out, q * quarter + t)

    return loop


EXPLICIT_VECTORS = numba_target_has("avx512f")
explicit_terms = (
    {
        "explicit, integer (control)": _four_streams(_vector_terms(_reduce_by_integers, 8), 8),
        "explicit, getmant/getexp pd": _four_streams(_vector_terms(_reduce_by_getmant, 8), 8),
        "explicit, getmant/getexp ps": _four_streams(_vector_terms(None, 16), 16),
        **{
            f"explicit, rcp14, {n} Newton": _four_streams(
                _vector_terms(_reduce_by_integers, 8, _estimated(n)), 8
            )
            for n in (2, 1)
        },
    }
    if EXPLICIT_VECTORS
    else {}
)


def same_terms(loop: Callable[..., None]) -> bool:
    """Whether ``loop`` (float32 entries) gives the kernels' entropy terms bit for bit
    on every float32 mantissa of [0.5, 1), [1, 2) and the subnormals, and on 0, -0,
    inf, NaN, negative entries and the largest float32."""
    mantissas = np.arange(1 << 23, dtype=np.uint32)
    cases = [(mantissas | np.uint32(e)).view(np.float32) for e in (0x3F000000, 0x3F800000, 0)]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0, 3.4e38]
    cases.append(np.resize(np.array(special, dtype=np.float32), 64))
    for x in cases:
        ours, theirs = np.empty(x.size), np.empty(x.size)
        loop(x, 0, x.size, ours)
        kernels.entropy_terms(x, 0, x.size, theirs)
        if not np.array_equal(ours.view(np.int64), theirs.view(np.int64)):
            return False
    return True


def chunked(terms_loop: Callable[..., None]) -> Callable[[np.ndarray, np.ndarray], float]:
    """The loop over all entries, chunk by chunk, as the kernels take them."""

    @numba.njit(fastmath=_FLAGS)
    def run(flat: np.ndarray, terms: np.ndarray) -> float:
        total = 0.0
        for c0 in range(0, flat.shape[0], _CHUNK):
            count = min(_CHUNK, flat.shape[0] - c0)
            terms_loop(flat, c0, count, terms)
            total += terms[0]
        return total

    return run


def in_cache(terms_loop: Callable[..., None]) -> Callable[[np.ndarray, np.ndarray], float]:
    """The loop over one chunk (the first ``_CHUNK`` entries), again and again, as many
    entries in all as ``flat`` holds: the logarithm's cost with its entries in L1
    cache, as in the kernels (where the chunk's rows were just read by the row pass),
    without the memory traffic that a pass over ``flat`` adds to every loop alike."""

    @numba.njit(fastmath=_FLAGS)
    def run(flat: np.ndarray, terms: np.ndarray) -> float:
        total = 0.0
        for _ in range(0, flat.shape[0], _CHUNK):
            terms_loop(flat, 0, _CHUNK, terms)
            total += terms[0]
        return total

    return run


def max_ulps(log: Callable[[np.ndarray, np.ndarray], None], x: np.ndarray) -> float:
    """The largest error of ``log`` on ``x`` in ulps of the exact value (long double)."""
    out = np.empty_like(x)
    log(x, out)
    reference = np.log(x.astype(np.longdouble))
    ulp = np.spacing(np.abs(reference.astype(np.float64))).astype(np.longdouble)
    return float(np.max(np.abs(out.astype(np.longdouble) - reference) / ulp))


def same_bits(log: Callable[[np.ndarray, np.ndarray], None], x: np.ndarray) -> bool:
    """Whether ``log`` gives the kernels' ``log_array`` bit for bit on ``x``."""
    ours, theirs = np.empty_like(x), np.empty_like(x)
    log(x, ours)
    kernels.log_array(x, theirs)
    return bool(np.array_equal(ours.view(np.int64), theirs.view(np.int64)))


def accuracy() -> None:
    if np.finfo(np.longdouble).nmant < 63:
        print("accuracy: skipped (np.longdouble is not the 80-bit format here)")
        return
    rng = np.random.default_rng(13)
    n = 1_000_000
    mantissas = np.arange(1 << 23, dtype=np.uint32)
    cases = {
        "float32 uniform": rng.random(n).astype(np.float32),
        "float32 every mantissa of [0.5, 1)": (mantissas | np.uint32(0x3F000000)).view(np.float32),
        "float32 every mantissa of [1, 2)": (mantissas | np.uint32(0x3F800000)).view(np.float32),
        "float64 uniform": rng.random(n),
        "float64 near 1": 1 + (rng.random(n) - 0.5) * 2.0**-5,
        "float64 any exponent": np.ldexp(1 + rng.random(n), rng.integers(-1074, 1024, n)),
    }
    for name, values in cases.items():
        x = values.astype(np.float64)
        table = max_ulps(table_log_array, x)
        fdlibm = max_ulps(kernels.log_array, x)
        reciprocal = max_ulps(reciprocal_log_array, x)
        short = max_ulps(short_log_array, x)
        print(
            f"accuracy, {name}: table {table:.3f} ulp, kernels {fdlibm:.3f} ulp, "
            f"reciprocal {reciprocal:.3f} ulp, short form {short:.3f} ulp, "
            f"exponent converted: the kernels' bits {same_bits(converted_log_array, x)}"
        )


def vector_facts(loop: Any) -> str:
    """Gathers and divisions in ``loop``'s float32 machine code, by register width."""
    loop(np.ones(64, np.float32), 0, 64, np.empty(64))
    asm = loop.inspect_asm(loop.signatures[0])
    counts = []
    for what in ("vgather", "vdivpd", "vdivps"):
        for width in ("zmm", "ymm", "xmm"):
            found = len(re.findall(rf"\b{what}\w*\s[^\n]*%{width}", asm))
            if found:
                counts.append(f"{found} {what} {width}")
    return ", ".join(counts) or "no gathers, no divisions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument(
        "--in-cache", action="store_true", help="time one chunk again and again (in L1)"
    )
    args = parser.parse_args()
    print(f"{cpu_name()}, load average {os.getloadavg()[0]:.1f}")
    if not args.no_accuracy:
        accuracy()
    rng = np.random.default_rng(0)
    rows = args.entries // 10
    logits = rng.normal(size=(rows, 10)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    terms_loops = {
        "floor": floor_terms,
        "kernels": kernels.entropy_terms,
        "exponent converted": converted_terms_4,
        "table, 4 streams": table_terms_4,
        "table, 1 stream": table_terms_1,
        **{f"table, {n} gathers (bound)": gathered_terms_4[n] for n in (2, 1, 0)},
        "reciprocal, 4 streams": reciprocal_terms_4,
        "no division (bound)": undivided_terms_4,
        "short form, 4 streams": short_terms_4,
        **explicit_terms,  # float32 entries only
    }
    for name, loop in explicit_terms.items():
        print(f"{name:26s} the kernels' terms bit for bit: {same_terms(loop)}")
    for name, terms_loop in terms_loops.items():
        if name != "floor" and name not in explicit_terms:
            print(f"{name:26s} {vector_facts(terms_loop)}")
    driver = in_cache if args.in_cache else chunked
    loops = {name: driver(terms_loop) for name, terms_loop in terms_loops.items()}
    print("one chunk again and again (in L1)" if args.in_cache else "chunks of one pass")
    terms = np.empty(_CHUNK)
    for dtype in (np.float32, np.float64):
        flat = probs.astype(dtype).ravel()
        if dtype == np.float64:
            loops = {name: run for name, run in loops.items() if name not in explicit_terms}
        for run in loops.values():
            run(flat[: 2 * _CHUNK], terms)  # compile
        best = dict.fromkeys(loops, np.inf)
        for _ in range(args.repeats):
            for name, run in loops.items():
                start = time.thread_time()
                run(flat, terms)
                best[name] = min(best[name], time.thread_time() - start)
        for name in loops:
            per_entry = best[name] / flat.size * 1e9
            ratio = best[name] / best["kernels"]
            print(
                f"{np.dtype(dtype).name:8s} {name:26s} {best[name] * 1e3:8.2f} ms "
                f"{per_entry:5.2f} ns/entry  {ratio:5.2f}x kernels"
            )


if __name__ == "__main__":
    main()
