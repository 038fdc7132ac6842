r"""The NumPy twins of the fused kernels: blocks of rows, exact float32 passes, no Numba.

:func:`row_statistics` and :func:`write_gradient` take the arguments of their
namesakes in ``_cpu_kernels`` and return the same quantities, computed with the same
formulas (issue 13: the default install, without the ``fast`` extra):

.. math:: m_i = \max_c z_{ic}/T, \qquad \sigma_{ic} = (z_{ic} - \max_c z_{ic})/T,
          \qquad \ell_i = \log\textstyle\sum_c e^{\sigma_{ic}}

with :math:`\ell` as ``log1p`` of the non-maximal terms plus the ties when the sum
is below 1.5 (a near-deterministic row, whose :math:`\log(1 + \delta)` would lose
:math:`\delta`'s digits), and the gradient row
:math:`c_i e^{z_i/T - \mathrm{shift}_i} - r_i u - g_i e_{y_i}`.

The logits are read in blocks of consecutive rows of about :data:`BLOCK_ELEMENTS`
values, so the work buffers stay in cache and the peak extra memory is a few MiB
whatever the batch: the generic Array-API path instead materialises several N x V
temporaries (shifted logits, their exponentials, a one-hot mask).

Without a temperature (:data:`FLOAT32_PASSES`) every pass over a block is a float32
one: a NumPy ufunc of mixed float32/float64 operands runs a cast loop into a buffer
before its arithmetic loop, whatever the instruction set, and cost three to six times
a float32 pass (measured on an AVX-512 Xeon). :math:`x - t` (:math:`t` the float32
row maximum, or the float32 part of the gradient's shift) is split exactly as
:math:`h + \delta` with :math:`h = \mathrm{fl}_{32}(x - t)` by a branch-free TwoSum
(:func:`_split_difference`): in the forward, the very :math:`h` and :math:`\delta`
of the float64 path's ``float32(d)`` and ``d - float32(d)``; then
:math:`e^{x - t} = e^h (1 + \delta)` up to :math:`\delta^2/2 < 2^{-35}` for the
terms that are not 0 in float32. The forward sums :math:`e^h` in float64 and the
correction :math:`e^h\delta` in float32: its relative error, at most
:math:`V 2^{-24}` (naive summation; a BLAS dot, with 32 or more accumulators, far
less), of a correction of at most :math:`2^{-24} \sum_c e^{h_c}|h_c| \le 2^{-24}
(20 (s - 1) + 0.01)` for :math:`V \le 2^{18}`, moves :math:`\ell` by under
:math:`2^{-48} V \cdot 20 (s - 1)/s`, a tenth of the float32 ``exp``'s share at
most (see :data:`EXACT_BELOW`). The gradient (no label smoothing) folds the row's
factor :math:`a` into the exponent, :math:`a e^{x - s} = \pm e^{x - c}` with
:math:`c = s - \log|a|` split as float32 :math:`c_{32} + c_{lo}`, and rounds
:math:`e^h + e^h(\delta - c_{lo})` once, straight into the output: the float64 path's
one rounding of :math:`a e^h (1 + \delta)`, without its float64 copy; the label's
entry :math:`a p_y - t` is formed in float64. Per block of the forward: one float32
max, six float32 passes, one ``exp``, one float64 sum and one dot product; of the
gradient: eight float32 passes, one ``exp``, one product and one sum. A block whose
rows all have an exp-sum below :data:`EXACT_BELOW` (confident rows: a trained model's)
skips the five correction passes and the dot product. A confident row takes
:func:`_direct_rest`: the float32 ``exp`` of the logits themselves (no rounded
:math:`x - t`), summed in float64, and a float64 ``exp`` of :math:`x` (the sum then times
:math:`e^{-t}`) only for the entries that carry all but at most
:data:`INSIGNIFICANT_SHARE` of :math:`\rho = s - 1` (about 4 % of a peaked row's: the
float64 ``exp`` is NumPy's scalar one on AVX2, 4.8 ns an entry under
benchmarks/emulate_avx2.sh against 1.0 ns for the float32 one), so :math:`\ell` is
within 2.13e-7/8 relative (0.45 float32 ulps of :math:`2^{-24}`); a row of ``-inf``, or
whose terms are mostly below float32's normal range, takes
:func:`_exact_rest`'s float64 subtraction, ``exp`` and sum. Where most of a thread's
rows have been confident, each row of a block is first guessed confident or not from
every 64th entry (:func:`_likely_confident`) and takes that path first; elsewhere
(random logits, say) :func:`_exp_sum32` comes first and its few confident rows take
:func:`_exact_rest`, with no more NumPy calls per block than before (two threads share
the GIL between the calls). A row that is not confident always ends with
:func:`_exp_sum32`'s formula (the float64 path's,
``tests/losses/test_issue13_numpy_float32_passes.py``).

Measured (issue 13, 4096 x 32000, the Xeon at load average 2.2-5.5 from other
sessions, AVX2 emulated): process CPU time of ``row_statistics`` on 2 threads, min of
5-7 interleaved calls against the previous code, peaked logits (78 % confident rows)
0.80-0.82x, random ones 0.90-1.02x (medians 0.88x and 1.00x); wall clock,
benchmarks/bench_numpy_kernels_ab.py (5 turns), the final code in two runs: peaked
1.94x and 2.49x torch eager against 2.42x and 2.55x before (0.80x, 0.97x the previous
code's time), random 1.51x and 1.44x against 1.59x and 1.28x (0.95x, 1.13x: the load
swung; the code path is the previous one plus a few Python calls per block); the
issue's 2x eager on peaked logits is met in the quieter of the two runs only. Without
emulation (AVX-512: :data:`EXACT_ALL`, whose path is unchanged) 0.86x and 0.97x the
previous code's time, noise. What did not work: the first selection threshold at
:math:`2^{-16}` of the row's sum with a share of 1/16 (8-11 % of a peaked row's
entries; NumPy's flatnonzero costs 1.5 ns an entry of the mask at 8 % of them set,
0.36 ns at 4 %) took 0.78x the time where :math:`2^{-14}` and 1/8 take 0.73x
(block-level, one thread); :math:`2^{-13}` left 1/8 of a peaked row's :math:`\rho`
below it (a second pass for almost every row: 1.6x); the guess on every block made
random logits 1.13-1.19x slower (its calls cost 0.14 ns an entry, and a sample misses
a row's largest terms: a non-confident row taken for confident); :func:`_direct_rest`
for random logits' few confident rows (fewer float64 ``exp`` than :func:`_exact_rest`,
many more calls) cost 1.01-1.03x in CPU time and 1.08-1.12x in wall clock; choosing
the path of a whole block from the previous block's rows gave 0.81x on peaked logits
against the guess's 0.76x; and taking the direct ``exp`` of the logits for the
non-confident rows too (no TwoSum correction: 0.71-0.80x on random logits) changes
their rounding from the float64 path's formula, which the tests pin to 1e-10.

Later (issue 13, peaked logits still 2.9x torch eager on emulated AVX2): a block's time,
measured step by step (2 confident 32000-class rows, emulated AVX2, minimum of 5 x 1500
calls), went to the float32 ``exp`` (70 us), ``nonzero`` of the significant mask (40-47
us: about 13-16 ns per selected entry, branch mispredictions, whatever the word size:
``nonzero`` of a uint64 view of the mask took 0.44 ns an entry of the mask against 0.73
for the bool one, and the two-level selection built on it 0.93), the float64 sum of the
float32 terms (copy and einsum, 35 us), the significant entries' gather and float64
``exp`` (35 us), and some 70 us of Python and NumPy call overhead per block (about 100
calls). Now :func:`_significant_sums` takes the float64 :math:`e^{x_c}` and scales the
row's sum by :math:`e^{-t}` (no per-entry :math:`t`) and sums with one ``reduceat`` each
(``bincount`` took 12-18 us per sum against 1.6); a block guessed confident whole goes
to :func:`_direct_rest` without row copies, whose threshold passes take fewer calls when
every row is usable: the block's overhead (V = 2048, 2 confident rows a block) went from
158-187 us to 118-128 us, the step timing of :func:`_direct_rest` to 0.86x the previous
code's (252 against 292 us, interleaved, load 6.8). Larger blocks did not pay:
:func:`_direct_rest` took 3.4-3.9 ns an entry on 2 rows, 4.1-4.7 on 4, 4.1-5.0 on 8 and
16 (cache), and the whole forward 0.93x at 4x the block on peaked logits but 1.13x on
random ones (single thread, CPU time). Wall clock, benchmarks/bench_numpy_kernels_ab.py
(5 turns, emulated AVX2, load average 2.8-7), four runs, the second and fourth with the
trees' order swapped: peaked logits 0.83x, 0.69x, 0.93x and 0.88x the previous code's
time (1.72x-2.91x torch eager against 1.97x-3.32x: eager itself took 0.28-1.2 s with the
load), random ones 0.91x, 1.00x, 0.83x and 0.89x (their path is the previous one:
noise); without emulation (EXACT_ALL, an unchanged path) 0.99x and 0.80x. The issue's 2x
eager on peaked logits: met in two of the four runs.

Later still (issue 13, peaked logits 2.0-2.5x torch eager, emulated AVX2): a thread whose
rows have been mostly confident takes blocks :data:`LARGER_BLOCKS` times as large (fewer
NumPy and Python calls per row; two threads serialise on the GIL between the calls),
the float64 sums of float32 terms come from einsum's cast loop (0.38 ns an entry against
0.6 for a float64 copy and einsum, 0.47 for add.reduce's), and :func:`_significant_sums`
finds its entries with :func:`_set_places` (``nonzero``'s branch-free loop, two steps),
its mask in the float64 buffer's memory (no boolean buffer). The terms, thresholds and
bounds are those above; a row may take the other path than before at the guess (the
blocks differ), within both paths' bounds (the benchmark's :math:`\ell`: 8e-10 relative
apart at most). Measured (4096 x 32000): benchmarks/bench_numpy_kernels_ab.py (5
turns), peaked 0.82x the previous code's wall time at load average 7.2 (1.73x eager
against 2.12x) and 0.63x at 0.6 (1.64x against 2.60x), random 1.00x and 1.01x;
single-thread CPU time of ``row_statistics`` (peaked) 0.73-0.96x, interleaved, load
4.8-6.5. bench_softmax_ce.py in separate processes, alternated (load 1.5-6.4): peaked
2.35x, 1.63x and 2.35x eager against 2.01x, 2.51x and 1.45x: eager itself took 0.36 to
1.22 s there, and only the one-process turns compare. Without emulation (EXACT_ALL, an
unchanged path) 0.91x and 1.07x, noise.

Then (issue 13, peaked logits 2.03x torch eager, emulated AVX2): per pass, process time
on 2-8 rows of 32000 (emulated AVX2, load average 5-12, so slow throughout): float32
``exp`` 1.3 ns an entry, einsum's float64 sum 0.6, ``max`` 0.2, ``argmax`` 0.25, a
float32 subtraction 0.16, TwoSum's five passes 1.1, the dot product 0.12; on a block of
8 confident rows the significant entries (:func:`_significant_sums`, with the ``>=``
mask and :func:`_set_places`) cost about as much as the ``exp`` itself (3.1 against 2.4
ns an entry, wall, load 5.5). Peaked logits are not slowed by subnormals: NumPy's
float32 ``exp`` takes 7-14x its time where its results are subnormal
(:math:`-103.97 < x < -87.34`) and none extra where they are 0, but the benchmark's
:math:`x - t` stay above -48 and its logits in [-18, 35]; a clamp below -103.97 would
change no bit and save nothing. What costs them is the confident rows' second,
float64 look at their significant entries (and mixed blocks' row copies). Now
:func:`_exp_sum32`'s :math:`\delta` comes from :func:`_shifted_error`: Fast2Sum, a
``min`` and two passes where the block allows it (nearly every block of random or
peaked logits), TwoSum's five elsewhere, the same bits (``_exp_sum32``'s sums equal
TwoSum's bit for bit, ``tests/losses/test_issue13_numpy_forward_fast.py``; the whole
``row_statistics`` equal to the previous code's on 768 rows of each benchmark kind and
on edge rows, emulated AVX2). Measured (benchmarks/bench_numpy_passes.py, emulated
AVX2, load average 9.5-11.7): the error of :math:`h` 0.77 against 1.09 ns an entry on 2
rows, 1.16 against 1.88 on 8, of :func:`_exp_sum32`'s 3.65; the forward
(benchmarks/bench_numpy_kernels_ab.py, wall, 5-7 turns, load 9.4-12.7, where the
unchanged AVX-512 path read 0.97-1.17x, noise): random logits 1.02x, 0.83x and 0.83x
the previous code's time, peaked 1.03x, 1.04x and 0.87x (their confident rows take
:func:`_direct_rest`, which this leaves as it was).

Where NumPy runs AVX-512 loops (:data:`EXACT_ALL`) every row takes :func:`_exact_rest`
at any temperature (at T != 1 the float32 ``exp`` of :func:`_exp_sum` left
:math:`\ell` about 2e-8 relative off, which the gradient's cancelling entries
magnify): one float32 max, then a float64 copy, subtraction, ``exp`` and sum per
block, faster there than the float32 passes (their ten or so ufunc calls per block
against five) and within a float64 ulp or two per term; the gradient there takes its
float64 path with a float64 ``exp`` (each entry but the label's rounded once from
float64).

Validation costs no pass of its own, as in the Numba kernel: a row is *suspect* when
its maximum or its exp-sum is not finite (a NaN or ``+inf`` in it, or every entry
``-inf``); the caller then runs the full check to name the entry.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._parallel import run_in_parts
from ._kernel_inputs import HALF_LOG as _HALF_LOG
from ._kernel_inputs import GradientTerms, StatisticsOptions, gradient_out

_Buffers = tuple[np.ndarray, ...]  # a block's work buffers, one of each dtype

__all__ = [
    "BLOCK_ELEMENTS",
    "EXACT_ALL",
    "EXACT_BELOW",
    "FLOAT32_PASSES",
    "GUESS_BELOW",
    "GUESS_STRIDE",
    "INSIGNIFICANT_SHARE",
    "LARGER_BLOCKS",
    "LARGER_SHARE",
    "PARALLEL_ELEMENTS",
    "SIGNIFICANT",
    "as_float32",
    "encode_like",
    "row_statistics",
    "write_gradient",
]

#: Logits per block (float64 working copy of 512 KiB): large enough that NumPy's
#: per-call overhead is small, small enough to stay in L2 cache.
BLOCK_ELEMENTS = 1 << 16

#: Rows whose exp-sum s is below this are recomputed with float64 ``exp``
#: (:func:`_exact_rest`, about the cost of the float32 passes per entry). Elsewhere the
#: float32 ``exp`` (relative error under 2.03e-7, measured) of the non-maximal terms
#: (the maximal one is exactly 1) moves :math:`\ell = \log s` by under
#: 2.03e-7 (s - 1)/s, and the loss :math:`\ge \ell` by under 3.4 (s - 1)/(s log s)
#: float32 ulps: 1.8 at s = 4 in the worst case of aligned errors. (NumPy's float32 ``exp``
#: errs up to 2.13e-7 for arguments in [-87, -20] and [20, 40], 6e7 samples each on the
#: Xeon, AVX2 and AVX-512 loops alike: 1.9 ulps then.)
EXACT_BELOW = 4.0


def _avx512_exp() -> bool:
    """Whether NumPy runs its AVX-512 loops here (float64 ``exp`` eight lanes wide).

    NumPy 2.4 and later dispatch them as ``X86_V4``; before, as ``AVX512F``. The
    dispatch target's flag, not the CPU's ``AVX512F`` alone: ``NPY_DISABLE_CPU_FEATURES``
    turns the target off (``benchmarks/emulate_avx2.sh``) while NumPy 2.4 still reports
    the CPU's ``AVX512F``, and its float64 ``exp`` is then the scalar one.
    """
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = importlib.import_module(name).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return bool(features.get("X86_V4", features.get("AVX512F", False)))
    return False


#: Whether every row takes :func:`_exact_rest` at any T (float64 ``exp``), none the
#: float32 passes: on AVX-512 machines, where that is the faster of the two
#: (benchmarks/bench_numpy_kernels_ab.py on the Xeon, 4096 x 32000, two runs at load
#: average 1.6-2.6: 0.44-0.51x the time on peaked logits, 0.61-0.74x on random ones)
#: and the more exact. On AVX2 NumPy's float64 ``exp`` is the scalar one (4.7 ns an
#: entry against 1.0 ns for its AVX2 float32 one), and the float32 passes stay:
#: emulated on the Xeon (benchmarks/emulate_avx2.sh with bench_exact_all.py, three
#: runs at load average 3-3.5), EXACT_ALL on took 1.61-1.99x the time of off on random
#: logits' forward and 1.58-2.12x on their gradient, 1.08-1.19x on peaked logits'
#: gradient, and 0.76-0.81x on their forward only (78 % of the rows redone there).
EXACT_ALL = _avx512_exp()

#: Whether :func:`row_statistics` takes :func:`_exp_sum32`'s float32 passes at T = 1
#: (else :func:`_exp_sum` on a float64 copy, as with a temperature; the tests compare),
#: and, with :data:`EXACT_ALL`, :func:`_exact_rest` at every T (off: :func:`_exp_sum`).
FLOAT32_PASSES = True

#: Where most of a thread's rows have been confident (:func:`_direct_rest`'s), its blocks
#: are this many times :data:`BLOCK_ELEMENTS`: fewer NumPy calls per row.
LARGER_BLOCKS = 4

#: ... and only where a thread has at least this many larger blocks' rows, so that the
#: larger buffers (12 bytes per logit of a block) stay under 10 % of its logits.
LARGER_SHARE = 32

#: From this many logits on, the rows are split among one thread per available core
#: (NumPy's ufuncs release the GIL; each thread has its own block buffer).
PARALLEL_ELEMENTS = 1 << 22


def as_float32(z: np.ndarray) -> np.ndarray:
    """The float32 values of ``z``: float32 as is, float16 upcast, uint16 as bfloat16 bits."""
    if z.dtype == np.uint16:  # bfloat16: the high half of a float32
        return np.left_shift(z, 16, dtype=np.uint32).view(np.float32)
    return z if z.dtype == np.float32 else z.astype(np.float32)


def encode_like(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 ``x`` in ``dtype`` (float16; uint16: bfloat16 bits), rounded to nearest even.

    bfloat16 as the Numba kernel rounds it: add ``0x7FFF`` plus the lowest kept bit to
    the float32 bits and keep the high half (an overflow carries into the exponent and
    gives the infinity); a NaN is kept quiet by setting its top mantissa bit.
    """
    if dtype != np.uint16:
        return x.astype(dtype)
    bits = x.view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    rounded = np.where(np.isnan(x), bits | np.uint32(0x400000), rounded)
    return (rounded >> np.uint32(16)).astype(np.uint16)


def _block_rows(classes: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(classes, 1))


def _run_in_blocks(
    block: Callable[..., None],
    rows: int,
    classes: int,
    dtypes: tuple[type, ...],
    *,
    larger: Callable[[], bool] | None = None,
) -> None:
    """``block(first, stop, *buffers)`` over blocks of rows (threads for a large input).

    ``buffers`` are work buffers of the block's shape, one of each dtype in
    ``dtypes``, one set per thread. NumPy's floating-point warnings are off: the
    kernels handle infinities and NaNs themselves. Where ``larger()`` (asked in the
    worker's thread before each block) is true, the block is :data:`LARGER_BLOCKS`
    times the usual one (the buffers are that large, their pages touched only where
    used).
    """
    step = _block_rows(classes)

    def work(begin: int, end: int) -> None:
        # larger blocks only where their buffers stay a small share of the thread's
        # rows (3 bytes of float32 and float64 buffer per byte of logits: under 10 %)
        wider = larger if (end - begin) >= LARGER_SHARE * LARGER_BLOCKS * step else None
        most = step * (LARGER_BLOCKS if wider is not None else 1)
        size = min(most, end - begin) * classes
        buffers: list[np.ndarray] = [np.empty(size, dtype=dtype) for dtype in dtypes]
        # errstate is per thread (a context variable): set it in each worker
        with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
            first = begin
            while first < end:
                stop = min(end, first + (most if wider is not None and wider() else step))
                shape = (stop - first, classes)
                size = shape[0] * classes
                block(first, stop, *(buffer[:size].reshape(shape) for buffer in buffers))
                first = stop

    run_in_parts(work, rows, None if rows * classes >= PARALLEL_ELEMENTS else 1)


def row_statistics(
    z: np.ndarray, labels: np.ndarray, options: StatisticsOptions
) -> tuple[np.ndarray, ...]:
    """Per row of ``z`` (N x V float32, float16 or bfloat16 bits as uint16): m, ell, z'_y - m,
    sum w (z' - m), suspect.

    The contract of ``_kernel_inputs``: ``labels`` are valid class ids; the weighted
    sum is computed only with ``options.need_sum``.
    """
    n, v = z.shape
    top = np.empty((n, 1), dtype=np.float32)  # the float32 row maxima
    total = np.empty(n)  # sum_c e^(z'_c - m) (float32 exp), or the float64 one when redone
    rest, sum_out = np.zeros(n), np.zeros(n)  # rest: _exact_rest's, for the redone rows
    redone = np.zeros(n, dtype=np.bool_)
    labels = np.asarray(labels, dtype=np.intp)
    inv_t, need_sum = options.inv_temperature, options.need_sum
    w = None
    if need_sum and options.weight is not None:
        keep = np.flatnonzero(options.weight != 0.0)  # weight 0: absent, even at -inf
        w = (keep, options.weight[keep])
    fast = FLOAT32_PASSES and inv_t == 1.0  # _exp_sum32; a temperature: _exp_sum
    # a float32 buffer and a float64 one: float64 z' - m (exact for float32 z and
    # T = 1), the weighted sum's and _exp_sum's input; then two of _exp_sum32's three
    # float32 buffers; then _exact_rest's work (a new 512 KiB array per block costs
    # fresh pages: twice its subtraction's time). Three float32 blocks in all (delta
    # written over h): a fourth (e^h apart from h) took as long (0.97-1.03x,
    # benchmarks/bench_numpy_kernels_ab.py, two runs on the Xeon) and more memory.
    # With EXACT_ALL, the float64 one alone (512 KiB a thread).
    wide = need_sum or not fast
    # every row by _exact_rest (no float32 buffer), at any temperature: _exp_sum's
    # float32 exp left ell about 1e-8 relative off at T != 1, which the gradient's
    # cancelling entries (label smoothing) magnify (issue 13)
    exact_all = EXACT_ALL and FLOAT32_PASSES
    # (_direct_rest's mask of the significant entries: in the float64 buffer's memory)
    dtypes: tuple[type, ...] = (np.float64,) if exact_all else (np.float32, np.float64)

    # per thread: the share of confident rows in its blocks so far (a moving average)
    state = threading.local()

    def block(first: int, stop: int, *buffers: np.ndarray) -> None:
        rows = as_float32(z[first:stop])
        t = top[first:stop]
        # where most rows have been confident (a trained model's logits), the first
        # maximum's place too (for _direct_rest), and a guess per row
        likely = fast and not exact_all and getattr(state, "share", 1.0) >= 0.5
        first_max = np.argmax(rows, axis=1) if likely else None
        if first_max is not None:
            t[:, 0] = rows[np.arange(len(rows)), first_max]  # a NaN's if any, as max's
        else:
            np.max(rows, axis=1, keepdims=True, out=t)
        s = total[first:stop]
        d = buffers[1] if len(buffers) > 1 else buffers[0]  # the float64 buffer
        if wide:
            np.subtract(rows, t, out=d, dtype=np.float64)
            if inv_t != 1.0:
                d *= inv_t
            if need_sum:
                sum_out[first:stop] = d.sum(axis=1) if w is None else d[:, w[0]] @ w[1]
            if not fast and not exact_all:
                s[...] = _exp_sum(d, buffers[0])
        if exact_all:
            rest[first:stop] = _exact_rest(rows, t, inv_t, out=d)
            redone[first:stop] = True
            return
        if fast:
            redo = _float32_rows(
                rows, t, first_max, buffers, _BlockOut(s, rest[first:stop], redone[first:stop])
            )
        else:  # small sums, and rows with a -inf, NaN or +inf: float64 exp
            redo = np.flatnonzero(~(s >= EXACT_BELOW))
        if redo.size:
            some = rows if redo.size == len(rows) else rows[redo]
            rest[first + redo] = _exact_rest(some, t[redo], inv_t, out=d[: redo.size])
            redone[first + redo] = True
        if fast:  # the rows taken for confident: those redone (without a guess, redo)
            confident = (redo.size if first_max is None else redone[first:stop].sum()) / len(rows)
            state.share = 0.75 * getattr(state, "share", 1.0) + 0.25 * confident

    larger = None
    if fast and not exact_all:

        def larger() -> bool:  # the rows of a thread that has seen mostly confident ones
            return bool(getattr(state, "share", 1.0) >= 0.5)

    _run_in_blocks(block, n, v, dtypes, larger=larger)
    top64 = top[:, 0].astype(np.float64)
    m = top64 * inv_t
    with np.errstate(invalid="ignore", divide="ignore"):  # -inf - -inf, log 0
        # (x - top) is exact in float64 for float32 x: the maximum gives exactly 0.
        zy = (as_float32(z[np.arange(n), labels]) - top64) * inv_t
        ell_exact, total_exact = _exact_ell(rest, top64)  # one call, not one per block
        total = np.where(redone, total_exact, total)
        ell_out = np.where(redone, ell_exact, np.log(total))
    if need_sum:
        sum_out[m == -np.inf] = 0.0
    return m, ell_out, zy, sum_out, ~(np.isfinite(m) & np.isfinite(total))


#: :func:`_direct_rest`'s significant entries of a confident row: those whose float32
#: ``e^x`` is at least this fraction of the row's sum of non-maximal ones.
SIGNIFICANT = 2.0**-14

#: ... and the largest share of the row's :math:`\rho` that the others may carry (their
#: float32 ``exp``'s error then moves :math:`\rho` by under 2.13e-7 / 8, 0.45 float32
#: ulps of :math:`2^{-24}`), else the row is redone whole (:func:`_exact_rest`).
INSIGNIFICANT_SHARE = 1.0 / 8.0

#: :func:`_likely_confident` reads every this-many-th entry of a row.
GUESS_STRIDE = 64

#: ... and guesses a row confident when its estimate of s is below this, under
#: :data:`EXACT_BELOW`: a sample misses a row's largest terms more often than not.
GUESS_BELOW = 2.0


def _direct_rest(
    rows: np.ndarray,
    first_max: np.ndarray,
    top: np.ndarray,
    buffers: _Buffers,
    *,
    out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\rho` per confident row (as :func:`_exact_rest`) from the float32 ``exp``
    of ``x`` itself; returns the confident rows (indices) that :func:`_exact_rest` must
    redo, and the rows that are not confident.

    :math:`\rho = e^{-t} \sum_{c \ne k} e^{x_c}`: the arguments are the float32 logits,
    so there is no rounded :math:`x - t` to correct; ``top`` (:math:`t`, float32) and
    ``first_max`` (:math:`k`) per row. The float32
    :math:`e^{x_c}` (each within :math:`\eta` = 2.13e-7 relative in float32's normal
    range, measured over both signs of x) are summed in float64, the first maximum's
    left out, into :math:`S`; :math:`S e^{-t}` (float64 ``exp``) tells the confident
    rows, :math:`1 + \rho <` :data:`EXACT_BELOW` (the others are returned: their
    :math:`\ell` comes from :func:`_exp_sum32`, the float64 path's formula; so do
    the rows where an :math:`e^{x_c}` overflows float32, their :math:`S` infinite;
    a +inf maximum gives :math:`\rho = 0` and :func:`_exact_ell` NaN). A
    confident row takes a float64 ``exp`` of :math:`x_c` for its significant entries
    only, :math:`e^{x_c} \ge` :data:`SIGNIFICANT` :math:`S`, their sum times
    :math:`e^{-t}` (:func:`_significant_sums`; ties of the maximum among them, each
    within three float64 roundings of 1); the others keep their float32 terms, whose
    error is under :math:`\eta` times their share of :math:`\rho`. Where that share
    exceeds :data:`INSIGNIFICANT_SHARE`, a second pass with a threshold of
    :data:`INSIGNIFICANT_SHARE` :math:`S/(2V)` (the others then weigh under half that
    share); a row with :math:`S < V 2^{-96}` (the terms below float32's normal range,
    each within :math:`2^{-126}` absolute, could weigh :math:`2^{-30}` of it, and a
    row of ``-inf`` or NaN) is redone. So :math:`\ell` is within :math:`\eta/8`
    (0.45 float32 ulps of :math:`2^{-24}`) plus float64 roundings of its value.
    ``buffers``: the block's float32 and float64 work buffers.
    """
    n, v = rows.shape
    e, work = buffers[:2]
    # the float64 buffer's memory, as booleans: the significant entries' mask and a
    # tail of True (_significant_sums)
    mask = work.reshape(-1).view(np.bool_)
    np.exp(rows, out=e)
    e[np.arange(n), first_max] = 0.0  # the first maximum: exactly 1, left out
    # float64 sums: einsum's cast loop, faster than a float64 copy and einsum, or
    # add.reduce's (0.38, 0.6 and 0.47 ns an entry, 4-8 rows, emulated AVX2)
    total: np.ndarray = np.einsum("ij->i", e, dtype=np.float64)
    scale = np.negative(top[:, 0], dtype=np.float64)
    np.exp(scale, out=scale)
    np.multiply(total, scale, out=out)
    confident = ~(out >= EXACT_BELOW - 1.0)  # NaN too
    usable = confident & (total >= v * 2.0**-96)
    every = bool(usable.all())  # the common case: nothing to redo, nothing loose
    if every:
        redo = loose = _NONE
    else:
        loose = (~confident).nonzero()[0]
        redo = (confident & ~usable).nonzero()[0]
        if not usable.any():
            return redo, loose
    # a threshold per row, +inf for the rows already done; where the insignificant
    # terms weigh too much, once more with one low enough that they cannot
    # (V of them under share/2 S/V: under share/2 of S), though more entries pass it
    rows_redone = ~usable  # the confident rows among them: redo (loose: not confident)
    for share in (SIGNIFICANT, INSIGNIFICANT_SHARE / (2.0 * v)):
        tau = (total * share).astype(np.float32)  # (total may exceed float32's range)
        if not every:  # (every row usable: fewer calls)
            tau[~usable] = np.inf
        rho, below = _significant_sums(rows, e, tau, mask)
        np.subtract(total, below, out=below)  # the insignificant terms (float32 exp)
        below *= scale
        rho *= scale
        rho += below
        if every:
            out[...] = rho
        else:
            out[usable] = rho[usable]
        usable &= ~(below <= rho * INSIGNIFICANT_SHARE)  # left to the next pass
        if not usable.any():
            return redo, loose
        every = False
    return (confident & (rows_redone | usable)).nonzero()[0], loose


#: No rows (indices; read-only, shared).
_NONE = np.zeros(0, dtype=np.intp)
_NONE.flags.writeable = False


def _significant_sums(
    rows: np.ndarray, e: np.ndarray, tau: np.ndarray, flags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per row, the float64 :math:`\sum e^{x_c}` and the float64 sum of the float32
    :math:`e^{x_c}` over its entries of float32 ``e`` (:math:`e^{x_c}`) at least ``tau``
    (``flags``: a flat boolean work buffer, longer than ``e``).

    The entries are found by one ``nonzero`` over the mask followed by a tail of True
    in ``flags`` (an eighth of the mask's length, or what ``flags`` has room for), whose
    places are dropped: NumPy's ``nonzero`` of a boolean array runs a branchy loop
    (a mispredicted branch per entry found, 12-16 ns each) where under 10 % of the
    entries are set, a branch-free one above; a peaked row's 4-5 % of significant
    entries fall below, and with the tail the loop took 0.57-0.74x the time
    (4-7 % set, 256000 entries, emulated AVX2).

    The float64 :math:`e^{x_c}` of a float32 :math:`x_c` whose float32 ``exp`` is finite
    (:math:`x_c < 88.8`) is finite too; the caller scales the sum by
    :math:`e^{-t}` (three float64 roundings per term in all, against one for
    :math:`e^{x_c - t}`: far below a float32 ulp, and no per-entry :math:`t`). Both
    sums by one ``reduceat`` each over the entries (a 0 after the last: a row without
    any entry starts there; reduceat gives the entry at the start of an empty
    segment, set to 0); ``bincount`` took five times as long.
    """
    n, v = rows.shape
    size = rows.size
    np.greater_equal(e, tau[:, None], out=flags[:size].reshape(n, v))
    where = _set_places(flags, size)
    bounds = np.searchsorted(where, np.arange(n + 1) * v)
    starts = bounds[:-1]
    empty = starts == bounds[1:]
    x = np.empty(where.size + 1)
    x[:-1] = rows.reshape(-1)[where]
    x[-1] = -np.inf  # e^-inf = 0
    np.exp(x, out=x)
    single = np.empty(where.size + 1, dtype=np.float32)
    np.take(e.reshape(-1), where, out=single[:-1])
    single[-1] = 0.0
    exact = np.add.reduceat(x, starts)
    approx = np.add.reduceat(single, starts, dtype=np.float64)
    exact[empty] = 0.0
    approx[empty] = 0.0
    return exact, approx


#: A 64-bit word of eight True bytes.
_EIGHT_TRUE = np.frombuffer(np.ones(8, dtype=np.bool_).tobytes(), dtype=np.uint64)[0]


def _nonzero_dense(flags: np.ndarray) -> np.ndarray:
    """The places of the True entries of the flat boolean ``flags``, at least 10 % of
    which are set (NumPy's branch-free loop; ``nonzero``'s branchy one below that)."""
    places: np.ndarray = flags.nonzero()[0]
    return places


def _set_places(flags: np.ndarray, size: int) -> np.ndarray:
    """The places of the True entries among the first ``size`` of the flat boolean
    ``flags`` (whose length is at least ``size`` rounded up to a multiple of 8), in
    increasing order.

    In two steps, each with a tail of True past its data (dropped) so that NumPy's
    ``nonzero`` runs its branch-free loop: the 8-byte words with a True entry, then
    the entries of those words. With 4-5 % of the entries set (a peaked row's
    significant ones) about a third of the words are kept, and ``nonzero`` reads some
    0.44 of an entry per entry rather than one; it took 0.7x the time of one
    ``nonzero`` with a tail and 0.55x without (256000 entries, emulated AVX2).
    """
    words = -(-size // 8)
    flags[size : words * 8] = False
    packed = flags[: words * 8].view(np.uint64)
    pad = words // 8 + 8
    kept = np.empty(words + pad, dtype=np.bool_)
    np.not_equal(packed, 0, out=kept[:words])
    kept[words:] = True
    chosen = _nonzero_dense(kept)[:-pad]
    pad = chosen.size // 8 + 8
    entries = np.empty(chosen.size + pad, dtype=np.uint64)
    np.take(packed, chosen, out=entries[: chosen.size])
    entries[chosen.size :] = _EIGHT_TRUE
    inner = _nonzero_dense(entries.view(np.bool_))[: -8 * pad]
    places: np.ndarray = chosen[inner >> 3] * 8 + (inner & 7)
    return places


class _BlockOut(NamedTuple):
    """A block's rows of :func:`row_statistics`' per-row outputs: ``s`` (the exp-sums
    of :func:`_exp_sum32`), ``rest`` (:math:`\rho`, where ``redone``)."""

    s: np.ndarray
    rest: np.ndarray
    redone: np.ndarray


def _float32_rows(
    rows: np.ndarray,
    top: np.ndarray,
    first_max: np.ndarray | None,
    buffers: _Buffers,
    out: _BlockOut,
) -> np.ndarray:
    r"""The float32 forward of a block at T = 1: :math:`s` or :math:`\rho` per row.

    A row that is not confident (:math:`s \ge` :data:`EXACT_BELOW`) takes
    :func:`_exp_sum32` (into ``out.s``), a confident one :func:`_direct_rest` (into
    ``out.rest``, ``out.redone`` set). Which first is guessed per row
    (:func:`_likely_confident`) when ``first_max`` is given (the rows' first maximal
    places: most of the caller's rows have been confident), else :func:`_exp_sum32`
    first and :func:`_exact_rest` for the few confident rows (random logits, say, pay
    for no guess, and for no more NumPy calls than before). A wrong guess costs time only: a
    row that :func:`_direct_rest` finds not confident takes :func:`_exp_sum32` (then
    :func:`_exact_rest` if that finds it confident after all: at the threshold), one
    that :func:`_exp_sum32` finds confident takes :func:`_direct_rest`
    (:func:`_exact_rest` if that finds it not: at the threshold). Returns the rows
    (indices) that :func:`_exact_rest` must redo.
    ``buffers``: the block's float32 and float64 work buffers.
    """
    guess = None if first_max is None else _likely_confident(rows, top)
    if guess is None or not guess.any():
        confident = _twosum_part(rows, None, top, buffers, out.s)
        if first_max is None or not confident.size:
            # few confident rows: _exact_rest's few calls (two threads share the GIL)
            return confident
        return np.concatenate(_direct_part(rows, confident, top, first_max, buffers, out))
    if guess.all():  # the common case: no row copied
        found, loose = _direct_part(rows, None, top, first_max, buffers, out)
        if not loose.size:
            return found
        return np.concatenate([found, _twosum_part(rows, loose, top, buffers, out.s)])
    every = np.arange(len(rows))
    found, loose = _direct_part(rows, every[guess], top, first_max, buffers, out)
    redo = [found, _twosum_part(rows, loose, top, buffers, out.s)]
    confident = _twosum_part(rows, every[~guess], top, buffers, out.s)
    if confident.size:
        redo += _direct_part(rows, confident, top, first_max, buffers, out)
    return np.concatenate(redo)


def _likely_confident(rows: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Whether each row's exp-sum is likely below :data:`EXACT_BELOW`: from every
    :data:`GUESS_STRIDE`-th entry (a guess only)."""
    sample = rows[:, ::GUESS_STRIDE] - top
    np.exp(sample, out=sample)
    sums = np.add.reduce(sample, axis=1)
    # a maximum among them, most likely: the 1 left out; a sample misses
    guess: np.ndarray = sums - (sums >= 1.0) < (GUESS_BELOW - 1.0) / GUESS_STRIDE
    return guess


def _direct_part(
    rows: np.ndarray,
    which: np.ndarray | None,
    top: np.ndarray,
    first_max: np.ndarray | None,
    buffers: _Buffers,
    out: _BlockOut,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_direct_rest` on the rows ``which`` of a block (None: all, no copies):
    ``out.rest`` and ``out.redone`` of its confident ones set; returns the rows to redo
    and those not confident."""
    if which is None:
        if first_max is None:
            first_max = np.argmax(rows, axis=1)
        redo, loose = _direct_rest(rows, first_max, top, buffers, out=out.rest)
        out.redone[...] = True
        out.redone[loose] = False
        return redo, loose
    part = rows if which.size == len(rows) else rows[which]
    m = len(part)
    rho = np.empty(m)
    places = np.argmax(part, axis=1) if first_max is None else first_max[which]
    redo, loose = _direct_rest(part, places, top[which], tuple(b[:m] for b in buffers), out=rho)
    out.rest[which] = rho
    out.redone[which] = True
    out.redone[which[loose]] = False
    return which[redo], which[loose]


def _twosum_part(
    rows: np.ndarray,
    which: np.ndarray | None,
    top: np.ndarray,
    buffers: _Buffers,
    s: np.ndarray,
) -> np.ndarray:
    """:func:`_exp_sum32` on the rows ``which`` of a block (None: all), into ``s``;
    returns those found confident (a sum below :data:`EXACT_BELOW`, or NaN: a -inf,
    NaN or +inf)."""
    if which is None:  # no copies
        h, a = _halves(buffers[1])
        _exp_sum32(rows, top, h, buffers[0], a, out=s, below=EXACT_BELOW)
        # each row is either corrected or confident: without the correction, every
        # sum was below EXACT_BELOW or NaN
        return np.flatnonzero(~(s >= EXACT_BELOW))
    if not which.size:
        return which
    m = which.size
    sums = np.empty(m)
    h, a = _halves(buffers[1][:m])
    _exp_sum32(rows[which], top[which], h, buffers[0][:m], a, out=sums, below=EXACT_BELOW)
    s[which] = sums
    confident: np.ndarray = which[~(sums >= EXACT_BELOW)]
    return confident


def _exp_sum(d: np.ndarray, hi: np.ndarray) -> np.ndarray:
    r""":math:`\sum_c e^{d_c}` per row of ``d`` (float64, overwritten), by a float32 ``exp``.

    With :math:`d = h + \delta`, :math:`h` = ``float32(d)`` and :math:`\delta` exact,
    :math:`e^d = e^h (1 + \delta) + O(\delta^2)`; :math:`e^h` is NumPy's SIMD float32
    ``exp`` (within 2.5 float32 ulps, measured) and both sums run in float64. A
    ``-inf`` in ``d`` gives ``(-inf) - (-inf)`` = NaN here: the caller redoes the row.
    """
    hi[...] = d
    np.subtract(d, hi, out=d)
    np.exp(hi, out=hi)
    d *= hi
    return hi.sum(axis=1, dtype=np.float64) + d.sum(axis=1)


def _exp_sum32(
    x: np.ndarray,
    top: np.ndarray,
    h: np.ndarray,
    e: np.ndarray,
    a: np.ndarray,
    *,
    out: np.ndarray,
    below: float = 0.0,
) -> None:
    r""":math:`\sum_c e^{x_c - t}` per row of float32 ``x`` and its float32 maximum ``t``.

    The formula of :func:`_exp_sum` in float32 passes: :math:`h = \mathrm{fl}(x - t)`,
    :math:`\sum_c e^{h_c}` in float64, then :math:`h`'s exact error :math:`\delta`
    (:func:`_difference_error`) and the correction :math:`\sum_c e^{h_c}\delta_c` in
    float32 (see the module). The correction (five passes and a dot product) is skipped
    when every row's uncorrected sum is below ``below`` or NaN: the caller redoes those
    rows (:func:`_exact_rest`), and a block of confident rows pays for no pass it throws
    away. ``h``, ``e`` and ``a`` are float32 work buffers of ``x``'s shape (``h`` ends
    holding :math:`\delta`). A ``-inf`` in ``x`` (or an ``x - t`` beyond float32's
    range) gives a NaN: the caller redoes the row. The sums go to ``out`` (float64, one
    per row).
    """
    np.subtract(x, top, out=h)
    np.exp(h, out=e)
    np.einsum("ij->i", e, dtype=np.float64, out=out)  # faster than add.reduce's cast loop
    if (out >= below).any():
        _shifted_error(x, top, h, a)  # delta over h (no longer needed)
        out += _row_dot(e, h)


def _shifted_error(x: np.ndarray, t: np.ndarray, h: np.ndarray, a: np.ndarray) -> None:
    r"""``h`` := :math:`(x - t) - h` exactly, for ``h`` = fl32(x - t) and ``t`` the rows'
    float32 maxima (a column): the :math:`\delta` of :func:`_exp_sum32`.

    By Fast2Sum (Dekker; Muller et al., *Handbook of Floating-Point Arithmetic*, Theorem
    4.3: :math:`s + \delta = a + b` exactly in binary round-to-nearest, subnormals
    included, when the exponent of :math:`a` is at least that of :math:`b` and nothing
    overflows), two float32 passes where TwoSum takes five, when every row of the block
    allows it: :math:`a = -t, b = x` where every row has :math:`|t| \in [2^{k-1}, 2^k)`
    (or :math:`t = 0`, :math:`k = 0`: :math:`h = x`, :math:`\delta = 0`) and every
    :math:`x > -2^k` (one ``min`` pass: as :math:`x \le t`, then :math:`|x| < 2^k` and no
    :math:`x` has a larger exponent than :math:`t`), :math:`\delta = x - (h + t)`; else
    :math:`a = x, b = -t` where every maximum is :math:`\le 0` (then
    :math:`|x| \ge |t|`), :math:`\delta = -t - (h - x)`. Elsewhere (an :math:`x \le -2^k` under a
    positive maximum, a ``-inf`` or NaN) :func:`_difference_error`'s TwoSum.
    :math:`\delta` is the exact error, one float32 number: TwoSum's bits but for the
    sign of a zero, which no sum it enters can tell (each has a term of at least 1);
    where :math:`x - t` overflows or :math:`x` is ``-inf``, :math:`e^h \delta` is NaN
    (:math:`0 \cdot \infty`, or a NaN :math:`\delta`) as with TwoSum, and the row is
    redone. ``a``: a float32 work buffer of ``x``'s shape.
    """
    # (few NumPy calls: a block may be 2 rows, and each call costs some microseconds)
    top = t[:, 0]
    # -2^k: |t| in [2^(k-1), 2^k), or t = 0 and k = 0
    if (np.ldexp(-1.0, np.frexp(top)[1]) < np.min(x, axis=1)).all():  # |x| < 2^k
        np.add(h, t, out=a)  # exact
        np.subtract(x, a, out=h)
        return
    if (top <= 0.0).all():  # x <= t <= 0: |x| >= |t|
        np.subtract(h, x, out=a)  # exact
        np.subtract(np.negative(t), a, out=h)
        return
    _difference_error(x, t, h, a, h)


def _split_difference(
    x: np.ndarray, t: np.ndarray, h: np.ndarray, a: np.ndarray, delta: np.ndarray
) -> None:
    r""":math:`x - t = h + \delta` exactly: ``h`` = fl32(x - t) and ``delta``, in float32.

    Knuth's branch-free TwoSum of :math:`x` and :math:`-t` (``t``: one float32 per row),
    five float32 passes after the subtraction (:func:`_difference_error`); exact unless a
    step overflows (a NaN then). ``a`` is a float32 work buffer of ``x``'s shape.
    """
    np.subtract(x, t, out=h)
    _difference_error(x, t, h, a, delta)


def _difference_error(
    x: np.ndarray, t: np.ndarray, h: np.ndarray, a: np.ndarray, delta: np.ndarray
) -> None:
    """``delta`` = (x - t) - h exactly, for ``h`` = fl32(x - t): TwoSum's five passes.

    ``delta`` may be ``h`` itself: ``h`` is read only by the first two passes, which
    read each entry before they write it.
    """
    np.subtract(h, x, out=a)  # v = h - x
    np.subtract(h, a, out=delta)
    np.subtract(x, delta, out=delta)  # x - (h - v)
    np.add(a, t, out=a)  # -((-t) - v)
    np.subtract(delta, a, out=delta)  # (x - (h - v)) + ((-t) - v)


def _halves(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of ``d``'s shape in the memory of ``d`` (float64, C-contiguous)."""
    flat = d.reshape(-1).view(np.float32)
    return flat[: d.size].reshape(d.shape), flat[d.size :].reshape(d.shape)


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The dot product of each row of ``a`` with the same row of ``b`` (float32)."""
    vecdot = getattr(np, "vecdot", None)  # NumPy >= 2.0
    return vecdot(a, b) if vecdot is not None else np.einsum("ij,ij->i", a, b)


def _exact_rest(
    rows: np.ndarray, top: np.ndarray, inv_t: float, *, out: np.ndarray | None = None
) -> np.ndarray:
    r""":math:`\rho = \sum_{c \ne k} e^{\sigma_c}` per row, with float64 ``exp``.

    :math:`k` is the row's first maximal entry (whose term is exactly 1): :math:`\rho`
    is the sum of the non-maximal terms plus one per other tie of the maximum, summed
    without the 1, so that :math:`\ell = \operatorname{log1p}(\rho)`
    (:func:`_exact_ell`) keeps :math:`\rho`'s digits however small (``log(1 + rho)``
    would lose them). :math:`x - t` is exact in float64 (then times ``inv_t``, one
    rounding), one float64 ``exp`` per entry (the maximal one of ``-inf``, 0), each term
    within about 1 float64 ulp, the sum within :math:`V 2^{-53}` of itself (a naive
    bound: einsum's running sums): at most :math:`2^{-35}` relative for
    :math:`V \le 2^{18}`, and as :math:`\rho/((1 + \rho)\operatorname{log1p}(\rho))
    \le 1`, :math:`\ell`'s relative error is no larger (plus ``log1p``'s own ulp): far
    below a float32 ulp (:math:`2^{-24}`). Not the float32 ``exp`` of the main pass:
    its relative error (2.03e-7, measured, about 3.4 ulps of :math:`2^{-24}`) passes
    into :math:`\ell` nearly whole when :math:`\rho` is small, as
    :math:`\operatorname{log1p}(\rho) \approx \rho`: on two classes,
    :math:`\ell = \operatorname{log1p}(e^{\sigma})` is then up to 2.8 float32 ulps
    off (:math:`\sigma = -7.2571826`; 0.1 % of the :math:`\sigma` in :math:`(-20, 0)`
    beyond 2 ulps). ``rows`` (float32) and ``top`` (their float32 maxima, one per row);
    ``out``: a float64 work buffer of ``rows``' shape (else a new one). A row of
    ``-inf``, or with a NaN or ``+inf``, gives NaN: :func:`_exact_ell` sorts them out.
    """
    # a float64 copy, then a float64 subtraction: faster than one mixed float32/float64
    # ufunc (its cast loop into buffers); einsum's sum: faster than add.reduce's
    d = np.empty(rows.shape) if out is None else out
    np.copyto(d, rows)
    np.subtract(d, top.astype(np.float64), out=d)
    if inv_t != 1.0:
        d *= inv_t
    d[np.arange(len(d)), np.argmax(rows, axis=1)] = -np.inf  # the first maximum: 1, left out
    np.exp(d, out=d)
    rho: np.ndarray = np.einsum("ij->i", d)
    return rho


def _exact_ell(rest: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""``(ell, total)`` from :func:`_exact_rest`'s sums and the float64 row maxima.

    :math:`\ell = \operatorname{log1p}(\rho)` and :math:`1 + \rho`; ``-inf`` and 0 for
    a row of ``-inf``, as the Numba kernel; NaN and NaN for a row with a NaN or ``+inf``.
    """
    finite = np.isfinite(top)
    nothing = np.where(top == -np.inf, 0.0, np.nan)
    ell = np.where(finite, np.log1p(np.where(finite, rest, 0.0)), np.log(nothing))
    return ell, np.where(finite, 1.0 + rest, nothing)


def _plain_label_entries(
    z_y: np.ndarray, terms: GradientTerms, picked: np.ndarray, first: int, stop: int
) -> np.ndarray:
    r""":math:`a\,e^{z_y/T - s} - t - b\,u_y` of rows ``first:stop`` in float64 (``z_y``:
    their labels' logits, float32): the label's entry where :math:`p_y \le 1/2`, free of
    the float32 exponential's rounding (:math:`10^{-7}` of :math:`a p_y`, many ulps of
    the entry when it cancels, as it does under label smoothing)."""
    x = z_y.astype(np.float64)
    if terms.inv_temperature != 1.0:
        x *= terms.inv_temperature
    x -= terms.shift[first:stop]
    entry = terms.p_coef[first:stop] * np.exp(x) - terms.target_coef[first:stop]
    if terms.uniform is not None and terms.row_uniform is not None:
        entry -= terms.row_uniform[first:stop] * terms.uniform[picked]
    return entry


def _label_entries(
    plain: np.ndarray, picked: np.ndarray, terms: GradientTerms, first: int, stop: int
) -> np.ndarray:
    r"""The label's entries of rows ``first:stop`` (``picked``: their labels) in float64:
    :math:`a\,p_y - t - b\,u_y`.

    ``plain``: those entries as the other entries are formed (from :math:`e^{z_y/T -
    s}`). Where :math:`\log p_y` is given (``terms.label_log_p``) and above
    :data:`._kernel_inputs.HALF_LOG`, :math:`a \operatorname{expm1}(\log p_y) + (a - t) - b\,u_y`
    instead, exact however close :math:`p_y` is to 1 (:math:`a - t`: ``terms.label_offset``
    where given).
    """
    if terms.label_log_p is None:
        return plain
    a, t = terms.p_coef[first:stop], terms.target_coef[first:stop]
    log_p = terms.label_log_p[first:stop]
    gap = a - t if terms.label_offset is None else terms.label_offset[first:stop]
    entry = a * np.expm1(log_p) + gap
    if terms.uniform is not None and terms.row_uniform is not None:
        entry -= terms.row_uniform[first:stop] * terms.uniform[picked]
    chosen: np.ndarray = np.where(log_p > _HALF_LOG, entry, plain)
    return chosen


def _smoothed_block(
    rows: np.ndarray,
    index: np.ndarray,
    picked: np.ndarray,
    terms: GradientTerms,
    first: int,
    stop: int,
    d: np.ndarray,
) -> None:
    r"""The gradient of rows ``first:stop`` with a smoothing term, into float64 ``d``:
    :math:`a\,p - b\,u - t\,e_y` with :math:`p` the exact softmax (issue 13).

    :math:`e = e^{z/T - s}` by the float64 ``exp`` (within an ulp; the float32 one and
    the statistics' :math:`\ell` of the float32 passes err by :math:`10^{-7}` and
    :math:`10^{-8}`, millions of ulps of an entry where :math:`a\,p_c` meets
    :math:`b\,u_c`, label smoothing's stationary point), and :math:`p = e/S` with
    :math:`S = q + e_y` summed here, :math:`q` the others' sum: :math:`s` need only be
    near the log-sum-exp. The label's entry where :math:`p_y > 1/2` is :math:`a (p_y -
    1) + (a - t) - b\,u_y` with :math:`p_y - 1 = -q/S` (no cancellation of :math:`p_y`
    against 1), else :math:`a\,p_y - t - b\,u_y`.
    """
    shift, u, r = terms.shift[first:stop], terms.uniform, terms.row_uniform
    assert u is not None  # (the caller's test; GradientTerms gives r with u)
    assert r is not None
    if terms.inv_temperature != 1.0:
        np.multiply(rows, terms.inv_temperature, out=d, dtype=np.float64)
        d -= shift[:, None]
    else:
        np.subtract(rows, shift[:, None], out=d, dtype=np.float64)
    np.exp(d, out=d)
    e_y = d[index, picked]
    d[index, picked] = 0.0
    q = np.add.reduce(d, axis=1)
    total = q + e_y
    a, t, r = terms.p_coef[first:stop], terms.target_coef[first:stop], r[first:stop]
    scale = a / total
    d *= scale[:, None]
    d -= np.multiply.outer(r, u)
    gap = a - t if terms.label_offset is None else terms.label_offset[first:stop]
    label = np.where(e_y > 0.5 * total, a * (-q / total) + gap, scale * e_y - t)
    d[index, picked] = label - r * u[picked]


def write_gradient(
    z: np.ndarray, labels: np.ndarray, terms: GradientTerms, *, out: np.ndarray | None = None
) -> np.ndarray:
    """The gradient of ``_kernel_inputs``'s contract for ``z`` and ``labels``, in blocks.

    Into ``out`` when given (C-contiguous, of ``z``'s shape and dtype), else a new array.
    With a smoothing term (``terms.uniform``) every block is :func:`_smoothed_block`'s:
    the float64 ``exp`` and the row's own normalisation, whatever :data:`EXACT_ALL`.
    """
    n, v = z.shape
    out = gradient_out(z, out)
    labels = np.asarray(labels, dtype=np.intp)
    shift, p_coef, target_coef = terms.shift, terms.p_coef, terms.target_coef
    u, row_uniform = terms.uniform, terms.row_uniform
    inv_t = terms.inv_temperature
    fast = FLOAT32_PASSES and inv_t == 1.0 and u is None and not EXACT_ALL
    if fast:
        # a e^(x - s) = sign(a) e^(x - c), c = s - log|a| (a row of a = 0: c = s, then
        # times 0), split as c32 + c_lo (float32): e^(x - c) = e^h (1 + delta - c_lo)
        # with h + delta = x - c32 exactly. Blocks with a row of |c| >= 128 (c_lo up to
        # 2^-18 and delta - c_lo under 2^-17 for the terms not 0 in float32, as in the
        # forward), |a| > e^80 (e^h could overflow) or a non-finite c: the float64 path.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            magnitude = np.abs(p_coef)
            c = shift - np.where(magnitude > 0.0, np.log(magnitude), 0.0)
            c32 = c.astype(np.float32)
            c_lo = (c - c32).astype(np.float32)
            sign = np.sign(p_coef).astype(np.float32)
            usable = (np.abs(c) < 128.0) & (magnitude <= np.exp(80.0))
            floor = c32 - np.float32(200.0)  # e^-200 is 0 in float32
    dtypes = (np.float64, np.float32) + ((np.float32,) if fast else ())

    def block(first: int, stop: int, d: np.ndarray, hi: np.ndarray, *more: np.ndarray) -> None:
        rows = as_float32(z[first:stop])
        index, picked = np.arange(stop - first), labels[first:stop]
        if u is not None:  # label smoothing: from the exact softmax (issue 13)
            _smoothed_block(rows, index, picked, terms, first, stop, d)
            hi[...] = d  # one rounding to float32, then (bf16, fp16) to nearest even
            out[first:stop] = hi if out.dtype == np.float32 else encode_like(hi, out.dtype)
            return
        if fast and usable[first:stop].all():
            (b,), h = more, hi
            x, a = _halves(d)  # float32 scratch
            np.maximum(rows, floor[first:stop, None], out=x)  # -inf gives 0
            _split_difference(x, c32[first:stop, None], h, a, b)
            np.subtract(b, c_lo[first:stop, None], out=b)
            np.exp(h, out=h)
            np.multiply(h, b, out=b)
            # e^h + e^h (delta - c_lo): one rounding, as the float64 path's
            g = out[first:stop] if out.dtype == np.float32 else a
            np.add(h, b, out=g)
            if (sign[first:stop] != 1.0).any():
                g *= sign[first:stop, None]
            # the label's a p_y - t in float64, rounded once: p_y - 1 cancels
            plain = _plain_label_entries(rows[index, picked], terms, picked, first, stop)
            g[index, picked] = _label_entries(plain, picked, terms, first, stop)
            if out.dtype != np.float32:
                out[first:stop] = encode_like(g, out.dtype)
            return
        if inv_t != 1.0:
            np.multiply(rows, inv_t, out=d, dtype=np.float64)
            d -= shift[first:stop, None]
        else:
            np.subtract(rows, shift[first:stop, None], out=d, dtype=np.float64)
        if EXACT_ALL:  # float64 exp (AVX-512: faster than the float32 one and its pair)
            np.exp(d, out=d)
        else:
            np.maximum(d, -200.0, out=d)  # e^-200 is 0 in float32; -inf gives 0
            hi[...] = d  # e^d = e^hi (1 + (d - hi)), as in _exp_sum
            np.subtract(d, hi, out=d)
            d += 1.0
            np.exp(hi, out=hi)
            d *= hi
        d *= p_coef[first:stop, None]
        if u is not None and row_uniform is not None:
            d -= np.multiply.outer(row_uniform[first:stop], u)
        if EXACT_ALL:  # d holds the float64 exp's a p_y - b u_y already
            plain = d[index, picked] - target_coef[first:stop]
        else:  # p_y from the float64 exp: a p_y - t - b u_y cancels (issue 13)
            plain = _plain_label_entries(rows[index, picked], terms, picked, first, stop)
        d[index, picked] = _label_entries(plain, picked, terms, first, stop)
        hi[...] = d  # one rounding to float32, then (bf16, fp16) to nearest even
        out[first:stop] = hi if out.dtype == np.float32 else encode_like(hi, out.dtype)

    _run_in_blocks(block, n, v, dtypes)
    return out
