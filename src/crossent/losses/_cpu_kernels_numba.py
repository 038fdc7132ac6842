# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The Numba kernels behind :mod:`._cpu_kernels` (imported by it on first use only).

Every kernel, intrinsic and helper is defined at module level, so that Numba's on-disk
cache (``cache=True``) hits in every later process: a function defined inside another
is a closure, and Numba keys its cache entries by a hash of the pickled closure
variables (here other dispatchers and intrinsics), which differs from process to
process, so every process compiled every kernel again (issue 13). Each parallel kernel
has a serial twin, the same Python body compiled without threads under its own name
(its own cache entry). The intrinsics that reinterpret bits (``float64_to_bits``,
``bits_to_float64``, ``bits_to_float32``) come from :mod:`crossent._intrinsics_numba`,
shared by the kernel modules; Numba's cache does not notice an edit there (clear the
cache after one: see that module).

A kernel loaded from the cache gives the same bits as in the process that compiled it
(``tests/losses/test_issue13_cached_kernel_bits.py``, over every option and input
dtype): the helpers whose loops carry a reassociated sum (:func:`exp_sum`,
:func:`exp_sum_and_next_max`) are inlined by Numba into each kernel, and the two that
are not, :func:`exp_nonpositive` (no loop, no ``reassoc``) and :func:`row_max_bits`
(integer maxima and minima), have no order of additions for LLVM to choose.

Rows are processed in parallel (``prange``, blocks of consecutive rows), accumulating
in float64. The maximum of row i + 1 is taken in the same loop as the exp-sum of row
i, so that the maximum's arithmetic hides under the exp-sum's (the read of row i + 1
from memory does not, on the Xeon below: see "Out of cache"); the maximum is read
from the float32 bits by an integer signed maximum and unsigned minimum
(:func:`maximum_bits`), which vectorise without fast-math, keep a positive NaN
visible, and take two vector instructions per vector of logits (a maximum over
order-preserving keys took four: 12 % of the fused loop's time on AVX-512, 8 % with
AVX2 code on the same Xeon).

Every loop function calls :func:`~crossent._intrinsics_numba.prefer_wide_vectors`: on
Intel's AVX-512 cores LLVM otherwise vectorises with 256-bit ``ymm`` registers (its
tuning for those cores), half the lanes of the hardware. In a parallel kernel the call
sits inside the ``prange`` body, which Numba outlines into a function of its own (the
one that holds the loops; an attribute on the kernel itself would not reach it). On the
Xeon with AVX-512 (Emerald Rapids, 2 cores) it cut the forward's CPU time by about a
sixth and the serial kernel's on rows in cache from 1.0 to 0.55-0.65 ns per logit (one
thread; from memory the gain is smaller: the loop then waits on the reads as well); on
an AVX2 CPU it changes nothing. A float32 ``exp`` does not gain there
as written: LLVM picks the loop's vector width from its widest type, so with the
float64 accumulator the float32 arithmetic runs in 8 lanes too (measured no faster).

Out of cache (issue 13's forward within 2.5x of the two-thread read)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Measured on the Xeon with AVX-512 (Emerald Rapids KVM guest, 2 cores) by
``benchmarks/bench_fused_stream.py``: one thread, 4096 x 32000 float32, the minimum
thread CPU time of 9 interleaved rounds, with other engineers' runs loading the machine
(load average 3.5). The fused loop takes 0.46 ns per logit with both rows in cache and
0.73 with the next row streaming from memory; the exp-sum alone 0.45 and 0.71; the
maximum alone (a one-thread read of the rows) 0.31. The maximum's arithmetic hides under
the exp-sum's, but the read does not: out of cache the loop pays its arithmetic plus
about 0.26 ns per logit for the bytes it brings in, one stream (the exp-sum alone) as
two. Two threads each run at the one-thread rate (the kernel 0.36 ns per logit of wall
time at load average 1.0, 0.72 per thread; ``np.max`` on two threads 0.163), whether each
thread reads its own half of the rows (Numba's static schedule) or the threads take
blocks one at a time (``numba.set_parallel_chunksize(1)``, the same bits): the
forward's ratio to the two-thread read is (arithmetic + read) / read: 2.2x.

Software prefetching did not change that (same runs; from inside the loop, in explicit
vector code, it did: see "The table exp and prefetching in the loop" below): the first
eight lines of every 4 KiB page of the next row prefetched before the loop (where the
hardware streamer restarts): 0.71; the loop cut into chunks of 1024 logits (0.77 without
prefetching), each chunk's lines prefetched by ``prefetcht0`` or ``prefetcht1`` 4 KiB,
16 KiB or a whole row ahead: 0.71-0.76, the best (``prefetcht1`` 4 KiB ahead) 3 % below
the kernel's own loop, against the 0.26 of the read. Nor could the kernel hold it: LLVM
does not vectorise a loop with a call to ``llvm.prefetch`` in it (it has no vector form;
the fused loop compiled to scalar code), and a loop cut into chunks sums in another
order, which changes the kernel's bits. The block size changes them too, which is why
``_ROWS_PER_BLOCK`` stays: a block's last row is summed by :func:`exp_sum`, whose
vectorised order differs from the fused loop's (``ell`` moves by up to 3e-15 between
blocks of 32 and of 64 rows). What remains is less arithmetic per logit: the 16 float32
lanes of the unmerged branch ``ce16`` took 5 % less CPU time from memory in the same
conditions (0.71 against 0.75 ns per logit, one thread), not enough to give up the bits;
for fewer vector operations per term in float64, see "Fewer vector operations per
term" below.

Nor does keeping the read in a load-only loop of its own, with the arithmetic on rows in
L1 (``python benchmarks/bench_fused_stream.py --candidates``: one thread, minimum thread
CPU time of 9 interleaved rounds (7 in the first), four runs, load average 1.2-3.9). A,
each row alone as an online softmax in chunks of C logits (the chunk's maximum, a tight
integer loop and the only read from memory; the running exp-sum rescaled when the
maximum moves; the chunk's exp-sum from L1): 0.50-0.52 ns per logit in cache, and from
memory 0.83-0.85 at C = 256, 0.92-0.95 at 512, 0.81-0.85 at 1024, 0.77-0.80 at 2048,
0.76 at 8192 and 0.745 for the whole row (two passes), against the kernel's 0.71-0.73
(0.47 in cache) in the same rounds. B, the kernel's pairing in chunks (the maximum of
chunk j of row i + 1, then the exp-sum of chunk j of row i): 0.49-0.50 in cache, from
memory 0.88-1.05 at C = 512, 0.80-0.82 at 1024, 0.78-0.80 at 2048. Every order pays its
arithmetic plus the read (about 0.29), and the finer the interleave the more, as if
nothing fetched ahead while the exponentials run, however the loads are grouped (the
cause is not visible from this KVM guest). Both lose to the fused loop, so the float32
lanes on top of either (at best ce16's 5 %) cannot win either; the kernel stays as it
is. ``tests/losses/test_issue13_single_read.py`` holds the rows such a kernel would find
hard (rising rows, the maximum last, runs of ``-inf``, late NaNs) at 2 float32 ulps.

Fewer vector operations per term
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
In cache the fused loop is bound by its vector operations on the two 512-bit ports
(ports 0 and 5 of the Xeon; ``inspect_asm``, the loop at T = 1, per vector of 8 terms):
the float32-to-float64 conversion (2 uops), ``x - top``, the clamp at -708, the
reduction (3), the polynomial, the shift of :math:`k + 1023` into the exponent, the
accumulating FMA, and the signed maximum and unsigned minimum of the next row's bits (2:
LLVM takes the loop's vector width from float64, so those run in 8 int32 lanes). With
Estrin's scheme (six FMAs, :math:`r^2`, :math:`r^4` and :math:`1 + r`) that was 20;
Horner's scheme, one FMA per degree, makes it 18 (the same coefficients: the float64
results move in the last bits only). Measured as ``benchmarks/bench_fused_stream.py``
does (one thread, 4096 x 32000 float32, minimum thread CPU time of 21 interleaved
rounds, both kernel modules side by side in one process), in ns per logit, Estrin's to
Horner's: the fused loop in cache 0.465 to 0.415 and 0.468 to 0.413 (-11 %, two runs,
load average 2.1-2.3 and 2.7-3.1), from memory 0.753 to 0.728 and 0.710 to 0.693 (-2 to
-3 %; medians 0.826 to 0.787 and 0.767 to 0.745): the read, not the arithmetic, is
most of the time there. On the emulated AVX2 build (``benchmarks/emulate_avx2.sh``, 11
and 15 rounds) 0.758 to 0.674 and 0.756 to 0.671 in cache, 0.898 to 0.826 and 0.888 to
0.812 from memory (-8 %). The forward on two threads (``row_statistics_kernel``, the
same in ``benchmarks/bench_softmax_ce.py``) was within the noise of a machine loaded by
other runs (load average 2.5-4): minima 0.092 to 0.084 s in one run, 0.057 to 0.062 s
in another, medians 0.141 to 0.135 and 0.109 to 0.098 s. The lead's quieter two-thread
runs (``benchmarks/bench_forward_floor.py``, load average 0.4-1.5) agreed on AVX-512
but not on the emulated AVX2 build, where the whole forward took 11-12 % longer with
Horner's scheme in two runs with the trees' order swapped (the one-thread loop above
notwithstanding): so only an AVX-512 target takes Horner's (:data:`HORNER`), any other
keeps Estrin's (but for the explicit AVX2 loop of the forward's exp-sums, whose own
measurements, below, favour Horner's).

A degree-6 polynomial in the exp-sums (:math:`c_1` free, 2.0e-9), the gradient keeping
degree 7, took one FMA more off (17): a further 6 % in cache and 3 % from memory (0.412
to 0.387 and 0.687 to 0.664 ns per logit, same conditions; the two-thread forward 0.084
to 0.081 s), and every per-row loss still rounded correctly in measurement (the float64
loss within 1.6e-9 of ``math.fsum``'s). Not kept: the gradient's shift :math:`m + \ell`
comes from these statistics, and where the label's entry :math:`c\,p_y - g` cancels
(label smoothing, V = 2, T = 2.5) the 2e-9 in :math:`\ell` reached 1.8 float32 ulps of
the entry (``tests/pytorch/test_issue13_torch_label_gradient_exact.py`` holds it to 1).
A degree-6 forward for calls without a gradient only would need every statistics loop
compiled twice.

Tried and not kept: ``llvm.ldexp`` for :math:`p\,2^k` (LLVM 22 vectorises it and
lowers it to ``vscalefpd``, which also gives 0 for any exponent below the range),
but LLVM hands ``vscalefpd`` the exponent as a float64 converted from the intrinsic's
int32 (``vpmovqd`` or ``vcvttpd2dq``, then ``vcvtdq2pd``), and the sum then needs its
own add: four operations where the shift and the accumulating FMA are two; nor can
the clamp go with it, as :math:`x = -\infty` makes the reduction :math:`-\infty +
\infty`, NaN. ``vreducepd`` and ``vscalefpd`` on the float64 exponent directly (no
clamp, no reduction FMAs) would need the loop written with x86 vector intrinsics, which
the loop vectorizer does not widen.

Nor the next row's maximum in 16 int32 lanes (issue 13, branch ``fwd16``, commit
2836723, reverted): :func:`exp_sum_and_next_max` as explicit LLVM vector code in an
intrinsic, 32 logits a step, the exp-sum in four vectors of 8 float64 terms in LLVM's
own order (vector width 8, four accumulators, reduced as LLVM does: the same bits
where V is a multiple of 32; the last V mod 32 terms summed in order, which moved
``ell`` in the last float64 place for other V) and the maximum in two vectors of 16
lanes: the hot loop went from 83 to 77 instructions per 32 logits (8 to 4 signed
maxima and unsigned minima, two 64-byte loads of the next row for four of 32 bytes;
``inspect_asm``, T = 1). It did not pay: one thread (the serial kernel on 4096 x 32000
float32, thread CPU time, 9 interleaved rounds, load average 1.1), in cache 0.429
against main's 0.410 ns per logit (minima; rows 64-byte aligned) and 0.446 against
0.434 (NumPy's 16-byte offset), from memory 0.659 against 0.656 and 0.667 against
0.666; ``benchmarks/bench_forward_floor.py --rounds 21`` (two threads, load average
1.0-1.1), median ratio 2.76x against main's 2.51x in one run and 2.66x against 2.66x
with the order of the two trees swapped; with 31 rounds (load average 0.9-1.1) 2.76x
against 2.49x, and one thread over 15 rounds 0.738 against 0.708 ns per logit from
memory (minima). The maximum's operations were already hidden
(the fused loop costs about the exp-sum alone, in cache and from memory: see "Out of
cache"), so halving them frees issue slots the loop was not short of.

A degree-6 polynomial for calls without a gradient only (above: 3 % from memory) was
not tried: the loss would then depend on whether the call also asked for the gradient
(or ``crossent.torch`` kept the statistics for one), the float64 ``ell`` moving by up
to 2e-9, i.e. a float32 loss one ulp apart in up to a few rows in a hundred, for less
than the 5-8 % the 2.5x target still needs.

The table exp and prefetching in the loop (AVX-512: :data:`TABLE_EXP`)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Kept (issue 13, branch ``fwdvec``). On a target with AVX512F and AVX512DQ the forward's
exp-sums (:func:`exp_sum_and_next_max`, :func:`exp_sum`) are explicit LLVM vector code
(:func:`_table_loop`; on AVX2 with FMA the same loop over the polynomial's terms, see
below; elsewhere the loops above, unchanged), for two
things the loop vectoriser cannot produce. (1) An exp of fewer operations: with :math:`y
= d\log_2 e`, :math:`n = \lfloor 16y \rfloor`, :math:`j = n \bmod 16`, :math:`e^d =
2^{\lfloor y \rfloor}\, 2^{j/16}\, 2^f` with :math:`f = y - n/16 \in [0, 1/16)`, exact,
from ``vreducepd``; :math:`n` in the low bits of an FMA rounded down, :math:`16y + 1.5
\cdot 2^{52}`, whose low four bits index a table of :math:`2^{j/16}` held in two
registers (``vpermi2pd``, :data:`EXP2_TABLE`); :math:`2^f` by a degree-4 minimax
polynomial in Horner's scheme (:data:`EXP2_COEFFICIENTS`, 2.81e-12 relative, :math:`c_0
= 1` so that :math:`e^0 = 1` exactly); ``vscalefpd`` for :math:`2^{\lfloor y \rfloor}`,
which needs no clamp (0 below the subnormals and for :math:`d = -\infty`, NaN kept;
between -745 and -708 the subnormal results, within two of their units, where the loops
above give :math:`e^{-708}`), and the accumulating FMA by the table's entry. Per 8
terms: conversion (2), ``x - top``, the multiply by :math:`\log_2 e`, ``vreducepd``, the
rounded FMA, ``vpermi2pd``, 4 FMAs, ``vscalefpd``, the accumulating FMA, and the next
row's maximum in 16 int32 lanes (1): 14 vector operations against 18, plus two register
copies the three-operand FMAs need (``inspect_asm``, T = 1: 77 instructions per 32
logits, two of them the prefetches). Every term is within a relative 2.9e-12 of
:math:`e^d` (against 5.3e-11), so the accuracy argument below holds with room to spare.
(2) Software prefetching inside the vectorised loop: ``prefetcht1`` of every line of the
next row 16 KiB ahead of the loop's reads (at the end of a row, the start of the row
after: the rows are contiguous in memory), which was measured without effect from
outside the loop (see "Out of cache") but takes the loop from memory close to its cost
in cache.

Measured (one thread, ``python benchmarks/bench_fused_stream.py --exp --rounds 9``, ns
per logit, minimum thread CPU time, load average 4-6, other engineers' runs): the fused
loop in cache 0.305-0.311 against the loop over :func:`exp_nonpositive`'s 0.424-0.432
(-28 %), from memory 0.38-0.40 against 0.70-0.72 (-45 %); without the prefetching the
table exp was no faster from memory (0.722 against 0.708: the read, as before), and the
old polynomial in the same explicit loop with the prefetching took 0.43-0.44 in cache and
0.47-0.49 from memory: the prefetching makes most of the gain, the table exp the rest.
The prefetch distance (same script, 9 rounds each): 1 KiB ahead 0.60, 4 KiB 0.40-0.58,
8 KiB 0.47, 16 KiB 0.38-0.40, 32 KiB 0.44, 64 KiB 0.41; one prefetch per 128 bytes (every
other line) 0.53; ``prefetcht0``, ``t1`` and ``t2`` alike at 16 KiB. The forward on two
threads (``benchmarks/bench_forward_floor.py --rounds 21 --against`` main's tree, the
order of the trees swapped in the second run, load average 4.5-6.5): median ratio to
the two-thread read 1.82x against main's 2.62x, and 1.88x against 2.75x (again, final
code, load average 6.8-7.6: 1.71x against 2.34x, swapped 1.76x against 2.60x); the old
polynomial with the prefetching 2.25x against the table exp's 1.87x (same conditions).

The sums' bits are the kernel's own (four accumulators of 8 lanes, the rest in groups
of 8 through a buffer, lanes past the row left out; reduced pairwise, then by halves):
another order than the loop vectoriser's, and other terms, so ``ell`` moves in its last
float64 places against the AVX2 path and main's (within the bounds below), while a
cached kernel still gives the bits of a fresh one. The gradient keeps
:func:`exp_nonpositive` (the degree-7 polynomial): its :math:`p = e^{d - (m + \ell)}`
errs by the polynomial's 5.2e-11 plus :math:`\ell`'s error, which the table exp makes
smaller (the two exps' errors were never correlated: the gradient's argument is shifted
by :math:`\ell`, so its reduction differs from the forward's anyway). The
near-deterministic rows' rest comes from the same loop and terms (below, "Ties counted in
the loop"). Tests: ``tests/losses/test_issue13_fwdvec_exp.py``.

AVX2 with FMA (:data:`POLY_LOOP`; issue 13, branches ``avx2loop`` and ``avx2regs``):
the same explicit loop (:func:`_table_loop`, shaped by :class:`_Shape`), 4 float64 lanes
a vector, steps of 32 logits into four accumulators (vector ``a`` of a step into
accumulator ``a % 4``), the next row's bits in 8 int32 lanes into one pair of bounds, its
lines prefetched 16 KiB ahead, over terms that are :func:`exp_nonpositive`'s own
arithmetic in Horner's scheme (:func:`_poly_terms`: the clamp, the rounding by
:data:`_MAGIC`, the one-constant reduction, seven FMAs, the exponent shift; the products
LLVM contracts in :func:`exp_nonpositive` are FMAs there, so every term has the bits of
:func:`exp_nonpositive` as an AVX-512 target compiles it). On AVX2 :func:`exp_nonpositive`
itself keeps Estrin's scheme (the gradient's loops, which LLVM vectorises: see
:data:`HORNER`); the two schemes evaluate the same polynomial and differ
by at most 4.4e-16 relative, with the same worst error, 5.18e-11 against mpmath (4e5
points, and ``tests/losses/test_issue13_avx2regs.py``). The sum's order differs from
main's (the accumulators', and LLVM's: Numba's fast-math flags reach every instruction of
the kernel, the loop's included), so ``ell`` moves in its last float64 places against
main's AVX2 build. Measured only emulated (``benchmarks/emulate_avx2.sh`` on the Xeon).

Ties counted in the loop (issue 13, branch ``peaked``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Where :math:`s < 1.5`, :math:`\log s` has lost the digits of :math:`s - 1`, so
:math:`\ell = \operatorname{log1p}(\mathrm{rest} + (\mathrm{ties} - 1))`, with the
ties (the entries equal to the maximum, each term exactly 1) counted and the rest summed
apart. That took a second pass over the row, from cache: on a trained model's rows
(``bench_softmax_ce.py --logits peaked``, 68 % of them with :math:`s < 1.5`) the forward
cost 1.8x its time on random rows. On AVX-512 (:data:`TIES_COUNTED`) the explicit loop
(:func:`_table_loop`, ``counts_ties``) now returns the two itself: a compare of 8
float32 (a ``ymm``, ``vcmpneqps`` into a k-mask) gives the lanes kept, :math:`x \ne` top
or NaN; ``vscalefpd``'s zero-masking makes the other lanes' terms 0 (no instruction
more: a select of the accumulating FMA compiled to an extra masked move per vector); a
popcount of the mask counts the kept lanes (``kmovb``, ``popcnt``, an add: scalar work),
and ties = V - kept. Then :math:`s = \mathrm{ties} + \mathrm{rest}` (the ties are no
longer added one by one into the accumulators, so ``ell`` moves in its last float64
places against main where the maximum is tied or :math:`s \ge 1.5`) and
:math:`\mathrm{ties} - 1 + \mathrm{rest}` is formed by :func:`pair_minus_one` (without
``reassoc``, under which LLVM formed it as :math:`s - 1`). A top of :math:`\pm\infty`
equals no lane (NaN in the compare), so :math:`x - \mathrm{top}` = NaN reaches the sum
as before. Per 32 logits (``inspect_asm``, T = 1) the loop holds 4 ``vcmpneqps``
(``ymm``), 4 ``kmovb``, 4 ``popcnt`` and 4 adds more (92 instructions against 68).

Not on AVX2 (:data:`POLY_LOOP`) nor the loops LLVM vectorises: they count no ties and
return the whole sum (a count of 0), and the kernel keeps the second pass there (main's
bits). In the AVX2 loop (emulated, ``benchmarks/emulate_avx2.sh`` on this Zen 4, the
same A/B protocol as below, 15 rounds, load average 5.5) counting cost random logits
1.37x main's CPU time for 0.82x on peaked ones: a float64 compare and a blend of each
sum (255 instructions per 32 logits, 74 on the stack, against 201 and 41), or a float32
compare with the ties' logits blended to :math:`-\infty` before the terms (263, 60),
and either way a ``vmovmskps``, a ``popcnt`` and an add per 4 terms, with 16 ``ymm``
registers already short.

Measured on AVX-512 (Zen 4, 2 cores, load average 5-8 from other engineers' runs; the
forward on 4096 x 32000 float32, main's tree imported beside, 21 interleaved rounds,
process CPU time of two calls after one, two runs): peaked logits 0.552x and 0.562x
main's CPU time (median of the rounds' ratios; quartiles 0.52-0.58), random logits
0.984x and 0.973x (quartiles 0.94-1.03); peaked now costs what random does (medians
0.0622 and 0.0620 s). Wall time (``bench_forward_floor.py --rounds 15 --against``
main's tree, ``--torch``): peaked 2.51x and 3.08x the two-thread read against main's
4.57x and 5.85x, torch.compile 1.61x and 1.72x our time; random 2.59x and 3.13x against
2.69x and 2.92x, main's time over ours 0.935 and 0.957, and 1.066 ours over main's with
the trees swapped: the loop's compares and counts may cost random rows some 5 % of wall
time at that load, which the CPU times do not show. The rest's terms are now the table
exp's (2.9e-12 relative) on AVX-512, not :func:`exp_nonpositive`'s (5.3e-11): the
``log1p`` branch's bound below with the smaller :math:`\varepsilon`. Tests:
``tests/losses/test_issue13_peaked_fused.py``.

Branch ``avx2loop`` (eight accumulators, one pair of bounds per vector of bits, Estrin's
terms): one thread (``bench_fused_stream.py --shapes``, ns per logit, minimum CPU time),
from memory 0.711-0.75 against the vectorised loop's 0.84-0.93, in cache 0.71-0.76
against 0.72-0.78; two threads (``bench_forward_floor.py --rounds 15 --against`` main's
tree, then swapped) 5-12 % less time than main; ``bench_softmax_ce.py --repeats 3``: the
forward 0.142-0.183 s against torch.compile's 0.126 s, short of issue 13's target. Its
loop (``inspect_asm`` of the fused exp-sum, T = 1) held 248 instructions per 32 logits,
72 of them on the stack (19 spill stores): with 16 ``ymm`` registers, the eleven
constants, eight accumulators and eight bounds did not fit. Branch ``avx2regs``:
Horner's scheme (two vector operations fewer a term, seven FMAs against Estrin's two
multiplies, an add and six FMAs, and fewer values live), four accumulators (the
accumulating FMAs' chains, two a step each, stay far shorter than a step's work) and one
pair of bounds (a maximum and a minimum are exact in any order: the same bits): 201
instructions, 42 on the stack (13 stores); T != 1, 277 and 118 (28) before, 203 and 49
(14) after. One thread (the loops of ``bench_fused_stream.py --registers``, and Estrin's
terms besides, 21 rounds, load average 4.4, minimum CPU ns per logit in cache / from
memory): Estrin's with 8 sums and 4 pairs 0.723 / 0.725, 8 and 1 0.708 / 0.715, Horner's
with 4 and 1 0.667 / 0.662; Horner's with 8 sums 0.680, with steps of 16 logits
0.647-0.684, 64 logits 0.618-0.649 (the tail of up to 63 logits then adds 16 vectors
into one accumulator: not taken). Constants loaded from memory in every step (an opaque
pointer per term, so that the FMAs take them as operands: 12 stack accesses instead of
42) were no faster (0.68), the loop being bound by its FMAs, not its spills. Two threads
(load average 4.4-6.5, other engineers' runs): the forward over the read
(``bench_forward_floor.py --rounds 15 --against`` main's tree, then the trees swapped,
twice) 1.78x against main's 2.22x, 1.85x against 1.95x, 1.95x against 2.16x, 1.85x
against 1.95x (5-20 % less time), and with LLVM's Haswell tuning
(``EMULATE_AVX2_NUMBA_CPU=haswell``, 11 rounds) 1.95x against 2.20x; paired with
``torch.compile(F.cross_entropy)`` in the same rounds (21, each contender's median of
two calls after one, the order of the contenders reversed in the second run), the median
ratio of the forward's time to torch.compile's 0.885 and 0.890 (main's 1.021 and 1.089).
Tests: ``tests/losses/test_issue13_avx2loop.py`` (also run under the emulation) and
``tests/losses/test_issue13_avx2regs.py``.

``exp`` is inlined as arithmetic so that LLVM vectorises it (Numba's ``math.exp`` only
vectorises with Intel's SVML, which current llvmlite wheels do not have): the reduction
:math:`x = k\ln 2 + r`, :math:`|r| \le \ln 2 / 2` (one FMA; ``k`` rounded by the
1.5 * 2^52 trick, with 1023 added so that the sum's low bits are already the biased
exponent of :math:`2^k`), a degree-7 minimax polynomial for :math:`e^r` evaluated by
Horner's scheme, and :math:`2^k` assembled from bits. The
rounding ``(t + M) - M`` lives in a function compiled without the fast-math ``reassoc``
flag (which the loops need to vectorise their sums, and which would fold that
expression into ``t``); LLVM inlines it and each instruction keeps its own flags.

Accuracy of the polynomial, and why it is enough
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The polynomial :math:`p(r) = 1 + r + \sum_{n=2}^{7} c_n r^n` (:data:`EXP_COEFFICIENTS`) minimises
:math:`\max |p(r) e^{-r} - 1|` on :math:`|r| \le \ln 2/2` (a Lawson fit, i.e.
iteratively reweighted least squares to the equioscillating minimax, with
:math:`c_0 = 1` fixed so that :math:`e^0 = 1` exactly, and :math:`c_1 = 1`, from when
Estrin's scheme made :math:`1 + r` an add; with :math:`c_1` free it is 4.7e-11): its
relative error is :math:`\varepsilon_p = 5.2 \times 10^{-11}` (by mpmath on the float64
coefficients); the reduction and the
float64 evaluation add below :math:`10^{-13}`, so every term :math:`e^{d_c}` carries a
relative error :math:`|\varepsilon_c| \le \varepsilon = 5.3 \times 10^{-11}` (both
pinned, over :math:`[-708, 0]` for the kernel's, by
``tests/losses/test_issue13_kernel_exp.py``). A float32 result
needs much less. The exp-sum :math:`s = \sum_c e^{d_c}(1 + \varepsilon_c)` is then
off by a relative :math:`\eta \le \varepsilon + \gamma`, with :math:`\gamma` the
float64 summation error (:math:`\le (V/4)\,2^{-53} < 10^{-11}` for :math:`V \le 2.5
\times 10^5`). The loss :math:`L = \ell - (z'_y - m) + \dots` has :math:`-(z'_y - m)
\ge 0` and the smoothing term :math:`\ge 0`, so :math:`L \ge \ell`, and:

* for :math:`s \ge 1.5`, :math:`\ell = \log s` is off by at most :math:`\eta` (absolute)
  and :math:`L \ge \ell \ge \log 1.5`, so :math:`L` is off by a relative
  :math:`\eta / \log 1.5 \le 2.5\,\eta`;
* for :math:`s < 1.5`, :math:`\ell = \operatorname{log1p}(x)` of the non-maximal terms
  (the ties exact: counted, not summed), off by at most :math:`\eta\,x/(1+x) \le \eta
  \operatorname{log1p}(x)` (as :math:`x/(1+x) \le \log(1+x)`): a relative :math:`\eta`
  of :math:`\ell`, hence of :math:`L`. The rest's terms are the forward loop's own: on
  AVX-512 the table exp's (:math:`\varepsilon = 2.9 \times 10^{-12}`, "The table exp"
  above), else :func:`exp_nonpositive`'s (the bound here), both far inside it.

Either way the float64 loss is within a relative :math:`2.5\,(\varepsilon + \gamma)
\le 1.6 \times 10^{-10}` of the float64 truth, i.e. within :math:`0.003` float32 ulp
(:math:`2^{-24} \approx 6 \times 10^{-8}`): after the one rounding to float32 each
per-row loss is within 0.51 ulp, against the bar of 2 ulps, and the mean loss moves
by at most a relative :math:`1.6 \times 10^{-10}`, so it rounds as with an exact
``exp`` but for values within that distance of a rounding boundary. A degree-6
polynomial (:math:`2.0 \times 10^{-9}` with :math:`c_1` free) would still meet the
loss's bar with 3.4x to spare (0.59 ulp), but not the gradient's (see "Fewer vector
operations per term"). The gradient's :math:`p = e^{d}` is written in float32: off by at
most one ulp, correctly rounded but where :math:`e^d` lies within :math:`5.2 \times
10^{-11}` of a rounding boundary. The label's entry :math:`c\,p_y - g`, given
:math:`\log p_y` per row, is :func:`label_entry`'s :math:`c \operatorname{expm1}(\log
p_y) + (c - g)` (libm's expm1): :math:`e^{d}` less 1 would keep none of :math:`1 -
p_y`'s digits below the rounding of the shift (an ulp of the row maximum) at extreme
confidence.

Against the previous kernel (a degree-10 Taylor polynomial, :math:`3 \times 10^{-13}`,
Cody-Waite's two-constant reduction, 64-bit order keys, the multiply by 1/T at T = 1),
this polynomial, the one-constant reduction with the bias folded into the rounding
constant, the 32-bit keys and the loops without 1/T at T = 1 cut the 4096 x 32000
float32 forward pass from 0.192 s to 0.128 s of CPU time on one thread, against
torch.compile's 0.205 s (medians, interleaved in one process on a loaded 2-core AMD
EPYC with AVX2; with 2 threads 0.294 s of wall time against 0.470 s). The fused loop
is 28 instructions per four terms, 11 of them on the FMA pipes (36 and 16 before;
``inspect_asm``).
"""

from __future__ import annotations

import math
import types as pytypes
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._intrinsics_numba import (
    _MAGIC,
    EXP_COEFFICIENTS,
    HORNER,
    bits_to_float32,
    bits_to_float64,
    call_intrinsic,
    exp_nonpositive,
    float64_to_bits,
    halving,
    numba_target_has,
    prefer_wide_vectors,
    splat,
)
from ._kernel_inputs import HALF_LOG as _HALF_LOG

__all__ = [
    "EXP2_COEFFICIENTS",
    "EXP2_TABLE",
    "EXP_COEFFICIENTS",
    "EXP_POLY",
    "FIX_BLOCK",
    "HORNER",
    "POLY_LOOP",
    "SUM_BLOCK",
    "SUM_LANES",
    "TABLE_EXP",
    "TARGET_ROWS_PER_BLOCK",
    "TIES_COUNTED",
    "as_unsigned",
    "block_sum",
    "block_sum_weighted",
    "confident_entry",
    "encode",
    "exp_nonpositive",
    "exp_of_pair",
    "exp_parts_of_pair",
    "exp_rest",
    "exp_rest_and_next_max",
    "exp_sum",
    "exp_sum_and_next_max",
    "expm1_of_pair",
    "float32_bits",
    "float32_bounds",
    "fused_entry",
    "gradient_kernel",
    "gradient_kernel_serial",
    "label_entry",
    "maximum_bits",
    "pair_minus_one",
    "plain_smoothed_row",
    "poly_exp4",
    "quotient_pair",
    "row_max_bits",
    "row_statistics_kernel",
    "row_statistics_kernel_serial",
    "smoothed_first_pass",
    "smoothed_fix_pass",
    "smoothed_gradient_kernel",
    "smoothed_gradient_kernel_serial",
    "smoothed_gradient_row",
    "smoothed_second_pass",
    "smoothed_sum_pass",
    "smoothed_term",
    "table_exp8",
    "target_exp",
    "target_exp_unit",
    "target_gradient_kernel",
    "target_gradient_kernel_serial",
    "target_gradient_row",
    "target_row_sums",
    "target_row_sums_specialised",
    "to_float32",
    "two_sum",
]


_FLAGS = {"contract", "reassoc", "nsz", "arcp"}  # no nnan/ninf: NaN must propagate


_I32 = ir.IntType(32)


def _widen(builder: Any, value: Any, kind: Any) -> Any:
    """The float32 (LLVM float) of one stored value, or of a vector of them: float32,
    bf16 bits or fp16 bits."""
    of = value.type
    if kind == types.uint16:  # bfloat16: the high half of a float32
        wide = builder.zext(value, _like(of, _I32))
        return builder.bitcast(
            builder.shl(wide, _constant(wide.type, 16)), _like(of, ir.FloatType())
        )
    if kind == types.int16:  # float16 (F16C's vcvtph2ps on x86)
        return builder.fpext(
            builder.bitcast(value, _like(of, ir.HalfType())), _like(of, ir.FloatType())
        )
    if kind == types.int32:  # the bits of a float32
        return builder.bitcast(value, _like(of, ir.FloatType()))
    return value


def _bits(builder: Any, value: Any, kind: Any) -> Any:
    """The int32 bits of the float32 (or vector of them) that stored values decode to."""
    if kind == types.int32:
        return value
    wide = _widen(builder, value, kind)
    return builder.bitcast(wide, _like(wide.type, _I32))


def _like(of: Any, scalar: Any) -> Any:
    """``scalar``'s type in as many lanes as the type ``of`` (itself if not a vector)."""
    return ir.VectorType(scalar, of.count) if isinstance(of, ir.VectorType) else scalar


def _constant(of: Any, value: Any) -> Any:
    """``value`` as a constant of type ``of``, in every lane of a vector type."""
    if isinstance(of, ir.VectorType):
        return ir.Constant(of, [value] * of.count)
    return ir.Constant(of, value)


@intrinsic
def to_float32(typingctx: Any, value: Any) -> Any:
    # float32 as is; uint16: bfloat16 bits; int16: float16 bits
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _widen(builder, args[0], signature.args[0])

    return types.float32(value), codegen


@intrinsic
def float32_bits(typingctx: Any, value: Any) -> Any:
    # The int32 bits of the float32 a stored value decodes to (int32: already bits).
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _bits(builder, args[0], signature.args[0])

    return types.int32(value), codegen


@intrinsic
def encode(typingctx: Any, like: Any, value: Any) -> Any:
    # float32 ``value`` in the element type of the array ``like``: float32 as is,
    # bfloat16 (uint16) rounded to nearest even from the bits with NaN kept quiet,
    # float16 (int16) by LLVM's fptrunc (round to nearest even, subnormals, inf).
    kind = like.dtype

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        x = args[1]
        if kind == types.uint16:
            bits = builder.bitcast(x, _I32)
            odd = builder.and_(builder.lshr(bits, ir.Constant(_I32, 16)), ir.Constant(_I32, 1))
            rounded = builder.add(builder.add(bits, ir.Constant(_I32, 0x7FFF)), odd)
            nan = builder.fcmp_unordered("uno", x, x)
            kept = builder.select(nan, builder.or_(bits, ir.Constant(_I32, 0x400000)), rounded)
            return builder.trunc(builder.lshr(kept, ir.Constant(_I32, 16)), ir.IntType(16))
        if kind == types.int16:
            return builder.bitcast(builder.fptrunc(x, ir.HalfType()), ir.IntType(16))
        return x

    return kind(like, types.float32), codegen


# The exp-sums with a table (AVX-512 targets only, TABLE_EXP; see the module docstring's
# "Fewer vector operations per term"): explicit LLVM vector code, as the loop vectorizer
# cannot produce vreducepd, vscalefpd, vpermi2pd or an FMA rounded down.
#: Whether the forward's exp-sums (:func:`exp_sum_and_next_max`, :func:`exp_sum`) use
#: the table-driven exp of :func:`_table_terms` (Numba's target has AVX512F and DQ) or
#: the loop over :func:`exp_nonpositive` (any other target).
TABLE_EXP = numba_target_has("avx512f") and numba_target_has("avx512dq")

#: 2^(j/16), j = 0..15, correctly rounded (mpmath).
EXP2_TABLE = tuple(
    float.fromhex(h)
    for h in (
        "0x1.0000000000000p+0",
        "0x1.0b5586cf9890fp+0",
        "0x1.172b83c7d517bp+0",
        "0x1.2387a6e756238p+0",
        "0x1.306fe0a31b715p+0",
        "0x1.3dea64c123422p+0",
        "0x1.4bfdad5362a27p+0",
        "0x1.5ab07dd485429p+0",
        "0x1.6a09e667f3bcdp+0",
        "0x1.7a11473eb0187p+0",
        "0x1.8ace5422aa0dbp+0",
        "0x1.9c49182a3f090p+0",
        "0x1.ae89f995ad3adp+0",
        "0x1.c199bdd85529cp+0",
        "0x1.d5818dcfba487p+0",
        "0x1.ea4afa2a490dap+0",
    )
)

#: c0, ..., c4 of the degree-4 minimax polynomial for 2^f on [0, 1/16] (relative error
#: 2.8e-12 by mpmath on these float64 values; c0 = 1 fixed, so that e^0 = 1 exactly).
EXP2_COEFFICIENTS = (
    1.0,
    0.6931471791309923,
    0.24022672987200935,
    0.05549332268438535,
    0.009823240165396804,
)

_LOG2E = 1.4426950408889634
_PLAIN_MAGIC = 6755399441056768.0  # 1.5 * 2^52: t = 16 y + M leaves floor(16 y) in the low bits
_ROUND_DOWN = 9  # _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC
_CURRENT = 4  # _MM_FROUND_CUR_DIRECTION
_REDUCE_SIXTEENTHS = 0x49  # vreducepd: y - floor(16 y) / 16 (M = 4, round down, no #P)
_I64 = ir.IntType(64)
_I8P = ir.IntType(8).as_pointer()
_PREFETCH_LOCALITY = 2  # prefetcht1


def _bytes(data: Any) -> int:
    """The size in bytes of the elements ``data`` (an LLVM pointer) points to."""
    return int(data.type.pointee.width) // 8


_LANES = 8  # float64 terms per vector of the table exp
_DOUBLES = ir.VectorType(ir.DoubleType(), _LANES)


def _fma(builder: Any, a: Any, b: Any, c: Any) -> Any:
    return call_intrinsic(builder, f"llvm.fma.v{a.type.count}f64", a.type, a, b, c)


def _table_terms(builder: Any, y: Any, total: Any, kept: Any = None) -> Any:
    """``total + 2^y`` in each of 8 float64 lanes (``y = d log2(e)``: ``total + e^d``);
    with a mask ``kept`` (8 x i1), ``total + 0`` in its false lanes (whatever y there).

    With :math:`n = \\lfloor 16 y \\rfloor`, :math:`j = n \\bmod 16` and :math:`f = y -
    n/16 \\in [0, 1/16)` (exact), :math:`2^y = 2^{\\lfloor y \\rfloor} \\cdot 2^{j/16}
    \\cdot 2^f`: ``vreducepd`` gives f, an FMA rounded down gives n in the low bits of
    :math:`16 y + 1.5 \\cdot 2^{52}`, whose low 4 bits index the table in two registers
    (``vpermi2pd``), Horner's scheme gives :math:`2^f` (four FMAs), ``vscalefpd``
    multiplies it by :math:`2^{\\lfloor y \\rfloor}` (0 below the subnormals, also for
    :math:`y = -\\infty`; NaN stays NaN; and 0 in the lanes ``kept`` leaves out, by the
    instruction's zero-masking: no instruction more) and the accumulating FMA by
    :math:`2^{j/16}` (a finite table entry, so such a lane adds 0).
    """
    mask = ir.Constant(ir.IntType(8), -1)
    f = call_intrinsic(
        builder,
        "llvm.x86.avx512.mask.reduce.pd.512",
        _DOUBLES,
        y,
        ir.Constant(_I32, _REDUCE_SIXTEENTHS),
        y,
        mask,
        ir.Constant(_I32, _CURRENT),
    )
    t = call_intrinsic(
        builder,
        "llvm.x86.avx512.vfmadd.pd.512",
        _DOUBLES,
        y,
        _constant(_DOUBLES, 16.0),
        _constant(_DOUBLES, _PLAIN_MAGIC),
        ir.Constant(_I32, _ROUND_DOWN),
    )
    entry = call_intrinsic(
        builder,
        "llvm.x86.avx512.vpermi2var.pd.512",
        _DOUBLES,
        ir.Constant(_DOUBLES, list(EXP2_TABLE[:_LANES])),
        builder.bitcast(t, ir.VectorType(_I64, _LANES)),
        ir.Constant(_DOUBLES, list(EXP2_TABLE[_LANES:])),
    )
    c = EXP2_COEFFICIENTS
    p = _fma(builder, f, _constant(_DOUBLES, c[4]), _constant(_DOUBLES, c[3]))
    for coefficient in c[2::-1]:
        p = _fma(builder, f, p, _constant(_DOUBLES, coefficient))
    scaled = call_intrinsic(
        builder,
        "llvm.x86.avx512.mask.scalef.pd.512",
        _DOUBLES,
        p,
        y,
        p if kept is None else _constant(_DOUBLES, 0.0),
        mask if kept is None else builder.bitcast(kept, ir.IntType(8)),
        ir.Constant(_I32, _CURRENT),
    )
    return _fma(builder, entry, scaled, total)


def _halves(builder: Any, vector: Any, combine: Any) -> Any:
    """:func:`~crossent._intrinsics_numba.halving` with ``combine(high, low)``, this
    loop's operand order (which a sum of two NaNs' payload follows)."""
    return halving(builder, vector, lambda low, high: combine(high, low))


def _table_exp_terms(builder: Any, d: Any, total: Any, kept: Any = None) -> Any:
    """``total + e^d`` in each of 8 float64 lanes by :func:`_table_terms`. The kernels'
    ``reassoc`` reaches these instructions too (Numba's fast-math pass flags every
    floating-point instruction emitted without flags): at T != 1, LLVM reassociates
    ``(d * inv_t) * log2e`` (seen in the fast-math audit of issue 13), a rounding of the
    exponent's argument, far inside the error budget of the module docstring."""
    return _table_terms(builder, builder.fmul(d, _constant(d.type, _LOG2E)), total, kept)


def _poly_terms(builder: Any, x: Any, total: Any) -> Any:
    """``total + exp_nonpositive(x)`` in each lane, by :func:`exp_nonpositive`'s own
    operations and roundings in Horner's scheme (as an AVX-512 target compiles it: the
    products that LLVM contracts there are FMAs here), the term rounded once into the
    sum's FMA. Horner's scheme, not the Estrin's of :func:`exp_nonpositive` on AVX2: two
    vector operations fewer per term (seven FMAs against Estrin's nine operations) and
    fewer registers live (see the module docstring, "AVX2 with FMA")."""
    of = x.type
    c = [_constant(of, coefficient) for coefficient in EXP_COEFFICIENTS]
    clamp = _constant(of, -708.0)
    x = builder.select(builder.fcmp_ordered("<", x, clamp), clamp, x)  # NaN kept
    shifted = _fma(builder, x, _constant(of, 1.4426950408889634), _constant(of, _MAGIC))
    k = builder.fsub(shifted, _constant(of, _MAGIC))
    r = _fma(builder, k, _constant(of, -0.6931471805599453), x)
    q = _fma(builder, r, c[7], c[6])
    for i in (5, 4, 3, 2):
        q = _fma(builder, r, q, c[i])  # c2 + c3 r + ... + c7 r^5
    p = _fma(builder, r, _fma(builder, r, q, c[1]), c[0])
    integers = ir.VectorType(_I64, of.count)
    power = builder.shl(builder.bitcast(shifted, integers), _constant(integers, 52))
    return _fma(builder, p, builder.bitcast(power, of), total)


class _Shape(NamedTuple):
    """An explicit exp-sum loop: its terms (``terms(builder, d, total)``, ``total +
    e^d`` lane by lane), float64 lanes per vector, logits per step, int32 lanes of the
    next row's bits, the prefetch distance, the number of accumulators (vector ``a`` of
    a step adds into accumulator ``a % sums``; a power of two, added pairwise at the end)
    and of pairs of bounds (signed maximum, unsigned minimum) of the next row's bits
    (vector ``a`` of bits into pair ``a % bound_pairs``); whether the ties (x = top)
    are counted and left out of the sum (``counts_ties``: the terms take the mask of
    the lanes kept and make the others 0, AVX-512's ``vscalefpd``), else summed with the
    others (a count of 0)."""

    terms: Callable[..., Any]
    lanes: int
    step: int
    bit_lanes: int
    ahead: int
    sums: int
    bound_pairs: int
    counts_ties: bool = False


#: AVX-512 (:data:`TABLE_EXP`): four accumulators of 8 lanes, 16 KiB ahead.
_TABLE_SHAPE = _Shape(_table_exp_terms, 8, 32, 16, 16384, 4, 2, counts_ties=True)
#: AVX2 with FMA (:data:`POLY_LOOP`): steps of 32 logits into four accumulators of 4
#: float64 lanes (two vectors each a step), the next row's bits in 8 int32 lanes into
#: one pair of bounds, 16 KiB ahead (steps of 8-64 and 4-32 KiB: ``bench_fused_stream.py
#: --shapes``; accumulators and bounds: ``--registers``; emulated).
_POLY_SHAPE = _Shape(_poly_terms, 4, 32, 8, 16384, 4, 1)


def _table_loop(
    context: Any, builder: Any, signature: Any, args: Any, scaled: bool, shape: _Shape
) -> Any:
    """``(rest, ties)``: the exp-sum of ``row``'s entries other than ``top`` and the
    number of entries equal to ``top`` (float64), and with a ``following`` row, its
    maximum's bits as a third element. The ties' terms, e^0 = 1 exactly, are counted,
    not added: the caller's s = ties + rest, and log1p(rest + (ties - 1)) keeps every
    digit of the rest where s is close to 1."""
    fused = len(args) == 4
    lanes, step, bit_lanes = shape.lanes, shape.step, shape.bit_lanes
    doubles = ir.VectorType(ir.DoubleType(), lanes)
    row_type = signature.args[0]
    row = context.make_array(row_type)(context, builder, args[0])
    top, inv_t = args[-2], args[-1]
    n = cgutils.unpack_tuple(builder, row.shape, 1)[0]
    zero = ir.Constant(doubles, [0.0] * lanes)

    def vector_at(data: Any, j: Any, count: int) -> Any:
        vector = ir.VectorType(data.type.pointee, count)
        return builder.load(builder.bitcast(builder.gep(data, [j]), vector.as_pointer()), align=1)

    # top in float32 (exact), or NaN, which equals nothing, for top = +-inf: there (x -
    # top) is NaN for x = top, which the float64 lanes' test and the old sum kept
    double = ir.DoubleType()
    finite = builder.and_(
        builder.fcmp_ordered("<", top, ir.Constant(double, math.inf)),
        builder.fcmp_ordered(">", top, ir.Constant(double, -math.inf)),
    )
    top32 = builder.select(
        finite, builder.fptrunc(top, ir.FloatType()), ir.Constant(ir.FloatType(), math.nan)
    )
    top32 = splat(builder, top32, lanes)

    def accumulate(total: Any, stored: Any, inside: Any = None) -> None:
        # total += e^((x - top) / T) in the lanes inside the row; with counts_ties, in
        # the lanes kept, x != top or NaN, counted: one compare of the float32 values
        # (a k-mask on AVX-512)
        x32 = _widen(builder, stored, row_type.dtype)
        d = builder.fsub(builder.fpext(x32, doubles), splat(builder, top, lanes))
        d = builder.fmul(d, splat(builder, inv_t, lanes)) if scaled else d
        loaded = builder.load(total)
        if not shape.counts_ties:
            added = shape.terms(builder, d, loaded)
            builder.store(added if inside is None else builder.select(inside, added, loaded), total)
            return
        kept = builder.fcmp_unordered("!=", x32, top32)
        if inside is not None:
            kept = builder.and_(kept, inside)
        builder.store(shape.terms(builder, d, loaded, kept), total)
        count = builder.zext(builder.bitcast(kept, ir.IntType(lanes)), _I32)
        count = call_intrinsic(builder, "llvm.ctpop.i32", _I32, count)
        builder.store(builder.add(builder.load(counted), builder.zext(count, _I64)), counted)

    def larger(a: Any, b: Any) -> Any:  # the signed maximum
        return builder.select(builder.icmp_signed(">", a, b), a, b)

    def smaller(a: Any, b: Any) -> Any:  # the unsigned minimum
        return builder.select(builder.icmp_unsigned("<", a, b), a, b)

    sums = [cgutils.alloca_once_value(builder, zero) for _ in range(shape.sums)]
    counted = cgutils.alloca_once_value(builder, ir.Constant(_I64, 0))  # terms kept
    stop = builder.and_(n, ir.Constant(n.type, -step))
    if fused:
        next_type = signature.args[1]
        following = context.make_array(next_type)(context, builder, args[1])
        first = _bits(builder, builder.load(following.data), next_type.dtype)
        start = splat(builder, first, bit_lanes)
        pairs = shape.bound_pairs
        bounds = [cgutils.alloca_once_value(builder, start) for _ in range(2 * pairs)]
    with cgutils.for_range_slice(
        builder, ir.Constant(n.type, 0), stop, ir.Constant(n.type, step)
    ) as (j, _):
        for a in range(step // lanes):
            at = builder.add(j, ir.Constant(n.type, a * lanes))
            accumulate(sums[a % len(sums)], vector_at(row.data, at, lanes))
        if fused:  # prefetch the next row some KiB ahead (into L2): every line once
            ahead = builder.bitcast(builder.gep(following.data, [j]), _I8P)
            for line in range(0, step * _bytes(following.data), 64):
                call_intrinsic(  # (unmangled, as LLVM 14 to 22 all read it: auto-upgraded)
                    builder,
                    "llvm.prefetch",
                    ir.VoidType(),
                    builder.gep(ahead, [ir.Constant(n.type, shape.ahead + line)]),
                    ir.Constant(_I32, 0),  # a read
                    ir.Constant(_I32, _PREFETCH_LOCALITY),
                    ir.Constant(_I32, 1),  # the data cache
                )
        if fused:
            for a in range(step // bit_lanes):
                at = builder.add(j, ir.Constant(n.type, a * bit_lanes))
                bits = _bits(builder, vector_at(following.data, at, bit_lanes), next_type.dtype)
                high, low = bounds[2 * (a % pairs)], bounds[2 * (a % pairs) + 1]
                builder.store(larger(bits, builder.load(high)), high)
                builder.store(smaller(bits, builder.load(low)), low)
    # The rest (under a step), a vector at a time through a buffer, the lanes past the
    # row left out of the sum (and of the maximum: the first bits again).
    buffer = cgutils.alloca_once(builder, ir.ArrayType(row.data.type.pointee, lanes))
    if fused:
        bit_buffer = cgutils.alloca_once(builder, ir.ArrayType(following.data.type.pointee, lanes))
        tail_bounds = [cgutils.alloca_once_value(builder, splat(builder, first, lanes))] * 1
        tail_bounds.append(cgutils.alloca_once_value(builder, splat(builder, first, lanes)))
    lane_numbers = ir.Constant(ir.VectorType(n.type, lanes), list(range(lanes)))
    with cgutils.for_range_slice(builder, stop, n, ir.Constant(n.type, lanes)) as (g, _):
        end = builder.add(g, ir.Constant(n.type, lanes))
        end = builder.select(builder.icmp_signed("<", end, n), end, n)
        with cgutils.for_range_slice(builder, g, end, ir.Constant(n.type, 1)) as (j, _):
            lane = builder.sub(j, g)
            zero_index = ir.Constant(_I32, 0)
            builder.store(
                builder.load(builder.gep(row.data, [j])), builder.gep(buffer, [zero_index, lane])
            )
            if fused:
                builder.store(
                    builder.load(builder.gep(following.data, [j])),
                    builder.gep(bit_buffer, [zero_index, lane]),
                )
        inside = builder.icmp_signed(
            "<", builder.add(splat(builder, g, lanes), lane_numbers), splat(builder, n, lanes)
        )
        stored = builder.load(
            builder.bitcast(buffer, ir.VectorType(row.data.type.pointee, lanes).as_pointer())
        )
        accumulate(sums[0], stored, inside)
        if fused:
            raw = builder.load(
                builder.bitcast(
                    bit_buffer, ir.VectorType(following.data.type.pointee, lanes).as_pointer()
                )
            )
            bits = builder.select(
                inside, _bits(builder, raw, next_type.dtype), splat(builder, first, lanes)
            )
            builder.store(larger(bits, builder.load(tail_bounds[0])), tail_bounds[0])
            builder.store(smaller(bits, builder.load(tail_bounds[1])), tail_bounds[1])
    vectors = [builder.load(total) for total in sums]
    while len(vectors) > 1:  # pairwise: ((0 + 1) + (2 + 3)) + ...
        vectors = [builder.fadd(*vectors[i : i + 2]) for i in range(0, len(vectors), 2)]
    rest = _halves(builder, vectors[0], builder.fadd)
    tied = ir.Constant(double, 0.0)  # none counted
    if shape.counts_ties:
        tied = builder.sitofp(builder.sub(n, builder.load(counted)), double)  # the ties
    if not fused:
        return context.make_tuple(builder, signature.return_type, [rest, tied])
    highs = [builder.load(bound) for bound in bounds[::2]]
    lows = [builder.load(bound) for bound in bounds[1::2]]
    high, low = highs[-1], lows[-1]
    for other_high, other_low in zip(highs[-2::-1], lows[-2::-1], strict=True):
        high, low = larger(high, other_high), smaller(low, other_low)
    high = larger(
        _halves(builder, high, larger), _halves(builder, builder.load(tail_bounds[0]), larger)
    )
    low = smaller(
        _halves(builder, low, smaller), _halves(builder, builder.load(tail_bounds[1]), smaller)
    )
    top_bits = builder.select(builder.icmp_signed(">=", high, ir.Constant(_I32, 0)), high, low)
    return context.make_tuple(builder, signature.return_type, [rest, tied, top_bits])


def _table_intrinsic(fused: bool, scaled: bool, shape: _Shape) -> Any:
    """The intrinsic ``(rest, ties, top_bits) = f(row, following, top, inv_t)``
    (``fused``) or ``(rest, ties) = f(row, top, inv_t)``, with the multiply by ``inv_t``
    (``scaled``) or without, by the loop of ``shape`` (:func:`_table_loop`)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _table_loop(context, builder, signature, args, scaled, shape)

    if fused:

        @intrinsic
        def table_fused(typingctx: Any, row: Any, following: Any, top: Any, inv_t: Any) -> Any:
            if row.layout != "C" or following.layout != "C":  # the loop reads rows as vectors
                return None
            returned = types.Tuple((types.float64, types.float64, types.int32))
            return returned(row, following, types.float64, types.float64), codegen

        return table_fused

    @intrinsic
    def table_sum(typingctx: Any, row: Any, top: Any, inv_t: Any) -> Any:
        if row.layout != "C":
            return None
        returned = types.UniTuple(types.float64, 2)
        return returned(row, types.float64, types.float64), codegen

    return table_sum


#: Whether the forward's exp-sums are instead the explicit loop of :func:`_table_loop`
#: over :func:`exp_nonpositive`'s own terms, 4 float64 lanes at a time (a target with
#: AVX2 and FMA, without :data:`TABLE_EXP` or :data:`HORNER`); any other target keeps
#: the loops over :func:`exp_nonpositive` that LLVM vectorises.
POLY_LOOP = not TABLE_EXP and not HORNER and numba_target_has("avx2") and numba_target_has("fma")
#: Whether the forward's exp-sum loop counts the ties of the maximum and leaves them out
#: of its sum (:data:`TABLE_EXP`), so that a near-deterministic row needs no second pass.
TIES_COUNTED = _TABLE_SHAPE.counts_ties and TABLE_EXP
_SHAPE = _POLY_SHAPE if POLY_LOOP else _TABLE_SHAPE
_table_fused_scaled = _table_intrinsic(True, True, _SHAPE)
_table_fused_unscaled = _table_intrinsic(True, False, _SHAPE)
_table_sum_scaled = _table_intrinsic(False, True, _SHAPE)
_table_sum_unscaled = _table_intrinsic(False, False, _SHAPE)


def _lanewise(terms: Callable[[Any, Any, Any], Any], lanes: int) -> Any:
    """An intrinsic: ``terms(d)`` with ``total = 0`` in each lane of a tuple of
    ``lanes`` float64 (the tests pin the terms' values)."""
    tuple_type = types.UniTuple(types.float64, lanes)

    @intrinsic
    def lanewise(typingctx: Any, d: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            vector = ir.Constant(ir.VectorType(ir.DoubleType(), lanes), ir.Undefined)
            for lane in range(lanes):
                value = builder.extract_value(args[0], lane)
                vector = builder.insert_element(vector, value, ir.Constant(_I32, lane))
            got = terms(builder, vector, _constant(vector.type, 0.0))
            out = [builder.extract_element(got, ir.Constant(_I32, lane)) for lane in range(lanes)]
            return context.make_tuple(builder, tuple_type, out)

        return tuple_type(tuple_type), codegen

    return lanewise


#: e^d in each lane of a tuple of 8 float64 by :func:`_table_terms`.
table_exp8 = _lanewise(_table_exp_terms, 8)
#: :func:`exp_nonpositive` (Horner's scheme) in each lane of a tuple of 4 float64, by
#: the terms of the AVX2 loop (:data:`POLY_LOOP`).
poly_exp4 = _lanewise(_poly_terms, 4)


@intrinsic
def as_unsigned(typingctx: Any, bits: Any) -> Any:
    # The same 32 bits read as unsigned (LLVM's i32 either way: no instruction).
    return types.uint32(types.int32), lambda context, builder, signature, args: args[0]


@intrinsic
def maximum_bits(typingctx: Any, high: Any, low: Any) -> Any:
    # The bits of the largest float32 of a set (in IEEE 754's total order), from the
    # signed maximum ``high`` and the unsigned minimum ``low`` of its bits. A float32
    # >= +0 (or a positive NaN) has the sign bit clear, and among those the signed order
    # of the bits is the order of the values: if any is present, ``high`` >= 0 is the
    # largest (a positive NaN above +inf). Otherwise every value has the sign bit set,
    # and the largest, the closest to 0, has the smallest bits: ``low``. (-0 counts as
    # below +0, and a negative NaN below -inf, as with order-preserving keys.) Two
    # vector instructions per vector of bits, against four for a maximum over such keys.
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        nonnegative = builder.icmp_signed(">=", args[0], ir.Constant(_I32, 0))
        return builder.select(nonnegative, args[0], args[1])

    return types.int32(types.int32, types.uint32), codegen


@numba.njit(inline="never")
def row_max_bits(row_bits):
    # the bits of the row's largest float32 (see maximum_bits)
    prefer_wide_vectors()
    high = float32_bits(row_bits[0])
    low = as_unsigned(high)
    for j in range(row_bits.shape[0]):
        bits = float32_bits(row_bits[j])
        high = max(high, bits)
        low = min(low, as_unsigned(bits))
    return maximum_bits(high, low)


# The exp-sums, inlined with a literal ``scale``: at temperature 1 the loop has no
# multiply by 1/T (one FMA-pipe instruction of about twelve per four terms; the
# results are the same, x * 1.0 being exact). (x - top) is exact in float64 for
# float32 x, so the maximum gives exactly 0 whatever fast-math contracts.
@numba.njit(fastmath=_FLAGS, inline="always")
def exp_rest_and_next_max(row, following, top, inv_t, scale):
    # (rest, ties, bits): the sum of e^((x - top) / T) over the row's entries not
    # counted as ties, the number of ties x = top (float64; on AVX-512, TIES_COUNTED,
    # else none: all summed), and the bits of the following row's maximum
    if (TABLE_EXP or POLY_LOOP) and scale:
        return _table_fused_scaled(row, following, top, inv_t)
    if TABLE_EXP or POLY_LOOP:
        return _table_fused_unscaled(row, following, top, inv_t)
    high = float32_bits(following[0])
    low = as_unsigned(high)
    s = 0.0
    for j in range(row.shape[0]):
        d = np.float64(to_float32(row[j])) - top
        s += exp_nonpositive(d * inv_t if scale else d)
        bits = float32_bits(following[j])
        high = max(high, bits)
        low = min(low, as_unsigned(bits))
    return s, 0.0, maximum_bits(high, low)


@numba.njit(fastmath=_FLAGS, inline="always")
def exp_rest(row, top, inv_t, scale):
    # (rest, ties) of exp_rest_and_next_max, without a following row
    if (TABLE_EXP or POLY_LOOP) and scale:
        return _table_sum_scaled(row, top, inv_t)
    if TABLE_EXP or POLY_LOOP:
        return _table_sum_unscaled(row, top, inv_t)
    s = 0.0
    for j in range(row.shape[0]):
        d = np.float64(to_float32(row[j])) - top
        s += exp_nonpositive(d * inv_t if scale else d)
    return s, 0.0


@numba.njit(fastmath=_FLAGS, inline="always")
def exp_sum_and_next_max(row, following, top, inv_t, scale):
    # sum of e^((x - top) / T) over the row (ties + rest), and the bits of the following
    # row's maximum (the kernel takes exp_rest_and_next_max's parts)
    rest, ties, bits = exp_rest_and_next_max(row, following, top, inv_t, scale)
    return ties + rest, bits


@numba.njit(fastmath=_FLAGS, inline="always")
def exp_sum(row, top, inv_t, scale):
    # sum of e^((x - top) / T) over the row (ties + rest)
    rest, ties = exp_rest(row, top, inv_t, scale)
    return ties + rest


# The two kernels below are plain functions here, compiled twice each at the end of the
# module (:func:`_twins`): in parallel, and on the calling thread.
def row_statistics_kernel(
    z,
    z_bits,
    labels,
    weight,
    inv_t,
    need_sum,
    block,
    out_m,
    out_ell,
    out_zy,
    out_sum,
    out_suspect,
):
    n, v = z.shape
    has_weight = weight.shape[0] == v
    scale = inv_t != 1.0
    # Each thread takes blocks of consecutive rows. The exp-sum of row i runs in the
    # same loop as the maximum of row i + 1, so that row i + 1 streams in from
    # memory while row i (already in cache) is exponentiated.
    for b in numba.prange((n + block - 1) // block):
        prefer_wide_vectors()  # in the loop body: Numba outlines it into a function of its own
        first = b * block
        stop = min(n, first + block)
        top_bits = row_max_bits(z_bits[first])
        for i in range(first, stop):
            row = z[i]
            top = np.float64(bits_to_float32(top_bits))
            m = top * inv_t
            rest = ties = 0.0
            total = 0.0
            if m != -np.inf:
                if i + 1 < stop and scale:
                    rest, ties, top_bits = exp_rest_and_next_max(
                        row, z_bits[i + 1], top, inv_t, True
                    )
                elif i + 1 < stop:
                    rest, ties, top_bits = exp_rest_and_next_max(
                        row, z_bits[i + 1], top, inv_t, False
                    )
                # the block's last row (running the fused loop on its own maximum
                # again, from cache, measured 3-10 % slower overall)
                elif scale:
                    rest, ties = exp_rest(row, top, inv_t, True)
                else:
                    rest, ties = exp_rest(row, top, inv_t, False)
            elif i + 1 < stop:  # a row of -inf: nothing to exponentiate
                top_bits = row_max_bits(z_bits[i + 1])
            if m != -np.inf and need_sum:
                if has_weight:
                    for j in range(v):
                        if weight[j] != 0.0:
                            total += weight[j] * ((np.float64(to_float32(row[j])) - top) * inv_t)
                else:
                    for j in range(v):
                        total += (np.float64(to_float32(row[j])) - top) * inv_t
            s = ties + rest
            if s < 1.5 and not TIES_COUNTED:
                # Near-deterministic row (log(1 + delta) has lost delta's digits) on a
                # target whose loop does not count the ties: count them and sum the
                # others in a second pass (from cache)
                rest = 0.0
                ties = 0.0
                for j in range(v):
                    d = (np.float64(to_float32(row[j])) - top) * inv_t
                    if d < 0.0:
                        rest += exp_nonpositive(d)
                    elif d == 0.0:
                        ties += 1.0
            if s < 1.5:
                # the ties (terms of exactly 1) apart: log1p keeps the rest's digits
                # (ties - 1) + rest without reassoc: LLVM would otherwise form it as
                # s - 1 from the sum above, which has lost the rest's digits.
                ell = math.log1p(pair_minus_one(ties, rest)) if ties > 0.0 else -np.inf
            else:
                ell = math.log(s)
            out_m[i] = m
            out_ell[i] = ell
            y = labels[i]
            bad_label = y < 0 or y >= v  # never read outside the row
            out_zy[i] = (np.float64(to_float32(row[0 if bad_label else y])) - top) * inv_t
            out_sum[i] = total
            # Not finite exactly when the row holds a NaN (a positive NaN is the
            # maximum; any NaN makes the exp-sum's rest NaN) or +inf, or is all -inf.
            # The rest, not s: isfinite(ties + rest) missed a negative NaN below the
            # maximum (as LLVM compiled it under the kernel's flags; a second pass only
            # replaces a finite rest).
            out_suspect[i] = bad_label or not (math.isfinite(m) and math.isfinite(rest))


# Without ``reassoc`` (it could fold ``c e + (c - g)`` into ``(c e + c) - g`` and cancel
# again); LLVM inlines it with its instructions' own flags, as exp_nonpositive. Its own
# ``fastmath``, not the default: a function without one is compiled, when a caller with
# ``fastmath`` compiles it first (gradient_kernel, _FLAGS), with the caller's flags,
# ``reassoc`` included, and Numba puts them on its every float instruction; compiled
# first on its own it had none, not even ``contract``, so the kernel's bits depended on
# which came first (issue 13). ``contract``: the FMA the kernels always had.
@numba.njit(fastmath={"contract"}, inline="never")
def label_entry(c: float, gap: float, log_p: float) -> float:
    # c p - g = c (p - 1) + (c - g) with p - 1 = expm1(log p): no cancellation as p -> 1
    # (for p > 1/2 only, HALF_LOG: the caller's c p - g otherwise); gap: c - g, formed
    # by the caller (from c's parts where given: GradientTerms.label_offset)
    return c * math.expm1(log_p) + gap


def gradient_kernel(
    z,
    labels,
    shift,
    inv_t,
    p_coef,
    target_coef,
    uniform,
    row_uniform,
    label_log_p,
    label_offset,
    out,
):
    n, v = z.shape
    has_uniform = uniform.shape[0] == v
    has_log_p = label_log_p.shape[0] == n
    has_offset = label_offset.shape[0] == n
    for i in numba.prange(n):
        prefer_wide_vectors()
        row = z[i]
        c = p_coef[i]
        base = shift[i]
        r = row_uniform[i] if has_uniform else 0.0
        if has_uniform:
            for j in range(v):
                d = np.float64(to_float32(row[j])) * inv_t - base
                out[i, j] = encode(out, np.float32(c * exp_nonpositive(d) - r * uniform[j]))
        else:
            for j in range(v):
                d = np.float64(to_float32(row[j])) * inv_t - base
                out[i, j] = encode(out, np.float32(c * exp_nonpositive(d)))
        # The label's entry again, its target term subtracted before the one rounding
        # (p_y - 1 formed in float64: no cancellation of an already rounded p_y).
        y = labels[i]
        if y < 0 or y >= v:  # not a class (unchecked input): never write outside
            continue
        if has_log_p and label_log_p[i] > _HALF_LOG:  # log p_y given (issue 13): p_y -> 1
            gap = label_offset[i] if has_offset else c - target_coef[i]
            value = label_entry(c, gap, label_log_p[i])
        else:
            d = np.float64(to_float32(row[y])) * inv_t - base
            value = c * exp_nonpositive(d) - target_coef[i]
        if has_uniform:
            value -= r * uniform[y]
        out[i, y] = encode(out, np.float32(value))


def _twins(body: Any) -> tuple[Any, Any]:
    """The parallel kernel of ``body`` and its serial twin, ``<name>_serial``.

    The twin runs on the calling thread: a parallel launch costs about 9 us, most of a
    call on a few rows (issue 13, small inputs). It compiles a copy of the function
    under its own name, so that its on-disk cache entry is its own (Numba names the
    cache files by the function's qualified name, not by its compile options). Neither
    is a closure, so both cache entries are found again by later processes.
    """
    name = body.__name__
    copy = pytypes.FunctionType(body.__code__, body.__globals__, f"{name}_serial")
    copy.__qualname__ = f"{name}_serial"
    return (
        numba.njit(parallel=True, fastmath=_FLAGS, cache=True)(body),
        numba.njit(fastmath=_FLAGS, cache=True)(copy),
    )


row_statistics_kernel, row_statistics_kernel_serial = _twins(row_statistics_kernel)
gradient_kernel, gradient_kernel_serial = _twins(gradient_kernel)


# The probability targets' gradient (issue 13, exactness). Where the target is near the
# softmax, the entry c p - r t cancels to a float32 ulp of p or less (t = fl32(p)), so p
# must carry every float64 digit: exp_nonpositive's polynomial (5.2e-11) and the fused
# statistics' log-sum-exp (its table exp, 2.9e-12) left 22-30 float32 ulps at V = 2**15.
# Here e^r is EXP_POLY's degree-11 polynomial (5.8e-18 on |r| <= ln 2 / 2; until branch
# smoothperf the degree-13 Taylor series, 4.2e-18: both about 0.05 float64 ulp), the
# reduction exact (k ln2_hi and the shift on a 2**-32 grid), and the row's log-sum-exp is
# corrected by a first pass over the row: S = sum_c e^(d_c - L) with L the statistics'
# ell rounded to a multiple of 2**-24, so ell = L + log1p(S - 1) as an unevaluated pair.
# The first pass keeps its terms in a float64 buffer (one exp per entry, not two).
# Measured (benchmarks/bench_soft_target_lazy.py --only grad, 4096 x 32000, two threads,
# medians of 3-5 rounds against main's kernel, load average 4-7): validate=False 0.824
# against 0.750 s (CPU 0.513 against 0.418 s), T = 1.3 0.876 against 0.842 s (CPU 0.776
# against 0.637), weights + smoothing + z-loss 1.556 against 2.143 s (no float64 copy
# of the targets: peak 501 against 1000 MiB). Two exps per entry (no buffer) cost
# CPU 0.62-0.81 against 0.48-0.50 s.
_LN2_HI = 0.6931471803691238  # 32 significant bits: k * _LN2_HI is exact for |k| < 2**21
_LN2_LO = 1.9082149292705877e-10  # ln 2 - _LN2_HI
_LOG2E = 1.4426950408889634
#: c0, ..., c9 of e^r = 1 + r + r^2 u(r), u(r) = c0 + c1 r + ... + c9 r^9 (degree 11 in
#: all), c0 = 1/2 exactly: the one polynomial of exp_of_pair (every exact exponential of
#: this module and of _distill_numba). Where it came from (issue 13, branch perfgrad,
#: commit f6538c59): a weighted minimax fit (Lawson's iteration, mpmath at 40 digits) of
#: the relative error of e^r on |r| <= 0.34658 (ln 2 / 2 and a margin), c0 held at 1/2,
#: the fitted values rounded to float64. With these values 5.8e-18 relative (mpmath,
#: 20001 points), against 4.2e-18 for the degree-13 Taylor series 1/n! (n = 2, ..., 13)
#: that exp_of_pair had before (branch smoothperf): both about 0.05 float64 ulp.
#: Evaluated in float64 as exp_of_pair does (the reduction's r exact), 1 + (r + r^2 u)
#: errs by at most 1.08 float64 ulps (mean 0.378) on 20000 points against 1.05 (0.377)
#: for the Taylor series': the rounding of the sum, not the polynomial; two FMAs fewer.
#: Checked against mpmath by tests/losses/test_issue13_smoothed_exp_bounds.py and
#: test_issue13_target_gradient_exact.py (target_exp within a float64 ulp).
EXP_POLY = (
    0.5,
    0.16666666666666433,
    0.041666666666603985,
    0.008333333333499945,
    0.001388888892678334,
    0.00019841269466380697,
    2.4801508700407673e-05,
    2.7557640766361917e-06,
    2.762517915142445e-07,
    2.4978395382511308e-08,
)
#: Logits per block of the target gradient's row sums: each block's float64 sum (in the
#: loop vectoriser's lanes) is added to the row's by an error-free TwoSum, so that the sum
#: of V terms errs by a fraction of a float64 ulp (0.3 ulp x 1024 / (32 sqrt V)).
SUM_BLOCK = 1024


# Without ``reassoc`` (which could fold ``(k + M) - M``, or distribute the division's
# remainder): its own flags, and LLVM inlines it with them (as exp_nonpositive).
@numba.njit(fastmath={"contract"}, inline="never")
def target_exp(x, top, inv_t, temperature, floor, shift):
    # e^((x - top)/T - shift) within about 0.7 float64 ulp, for float32 x <= top; shift >=
    # 0 a multiple of 2**-24 below 2**8, floor = shift - 708. (x - top)/T is q + lo (lo:
    # the division's remainder, an FMA; 0 at T = 1).
    d = np.float64(x) - top  # exact
    q = d * inv_t
    lo = (d - q * temperature) * inv_t
    if not q > floor:  # e^-708 and below (-inf logits, whose lo is NaN): nothing in float32
        q = floor
        lo = 0.0
    return exp_of_pair(q, lo, shift)


@numba.njit(fastmath={"contract"}, inline="never")
def target_exp_unit(x, top, floor, shift):
    # target_exp at T = 1, bit for bit: there q = x - top exactly and the division's
    # remainder lo is +0, so neither is computed (one multiplication and one FMA less)
    q = np.float64(x) - top  # exact
    if not q > floor:  # as target_exp (a -inf logit's q is -inf here, not NaN)
        q = floor
    return exp_of_pair(q, 0.0, shift)


@numba.njit(fastmath={"contract"}, inline="always")
def exp_parts_of_pair(q, lo, shift):
    # (p, 2^k) with e^(q + lo - shift) = 2^k (1 + p): the reduction q + lo - shift = k ln 2
    # + r and p = r + r^2 u(r), EXP_POLY's degree-11 polynomial; the one home of
    # exp_of_pair's and expm1_of_pair's (issue 13, branch dedup2: the same operations in
    # the same order, so both keep their bits). lo = +0 rounds (lo - k ln2_lo) as
    # -(k ln2_lo)
    shifted = (q - shift) * _LOG2E + _MAGIC  # k + 1023 in the low bits
    k = shifted - _MAGIC
    # q - (k ln2_hi + shift): the bracket on a 2**-32 grid below 2**10, so exact; the
    # difference is |r| <= 0.35, exact or off by 2**-55
    r = (q - (k * _LN2_HI + shift)) + (lo - k * _LN2_LO)
    c = EXP_POLY
    u = c[8] + r * c[9]
    u = c[7] + r * u
    u = c[6] + r * u
    u = c[5] + r * u
    u = c[4] + r * u
    u = c[3] + r * u
    u = c[2] + r * u
    u = c[1] + r * u
    u = c[0] + r * u
    return r + (r * r) * u, bits_to_float64(float64_to_bits(shifted) << 52)


@numba.njit(fastmath={"contract"}, inline="never")
def exp_of_pair(q, lo, shift):
    # e^(q + lo - shift) for floor <= q <= 0, |lo| tiny (target_exp's reduction and
    # EXP_POLY's degree-11 polynomial: exp_parts_of_pair's 2^k (1 + p))
    p, scale = exp_parts_of_pair(q, lo, shift)
    return (1.0 + p) * scale


@numba.njit(fastmath={"contract"}, inline="always")
def expm1_of_pair(h, lo):
    # e^(h + lo) - 1 for -708 <= h < 709, |lo| a few ulps of h (_distill_numba's
    # _exact_terms_block): exp_parts_of_pair's 2^k (1 + p) as 2^k p + (2^k - 1), one
    # rounding (an FMA; 2^k - 1 exact for k <= 53, past it the 1 below the result's ulp;
    # -1 at h = -708): p itself where k = 0 (|h| < 0.34), so no 1 is added and taken
    # away. (The shift 0: q - 0 is q, and k ln2_hi + 0 is k ln2_hi, k never -0.)
    p, scale = exp_parts_of_pair(h, lo, 0.0)
    return p * scale + (scale - 1.0)


@numba.njit(fastmath=False, inline="never")
def two_sum(hi, lo, x):
    # (hi, lo) + x, hi + x exactly as s + err (Knuth's TwoSum; no reassoc, which folds it)
    s = hi + x
    b = s - hi
    return s, lo + ((hi - (s - b)) + (x - b))


@numba.njit(fastmath=_FLAGS, inline="always")
def target_row_sums(row, t_row, top, inv_t, temperature, shift, weight, terms):
    # terms[c] = e^((z_c - top)/T - shift); returns their sum as an unevaluated pair, and
    # sum_c w_c t_c (w = 1 for none). One loop body, compiled four times: the choice of
    # target_row_sums_specialised's literal flags is made once per row, not per entry
    args = (top, inv_t, temperature, shift)
    if weight.shape[0] == row.shape[0]:
        if temperature == 1.0:
            return target_row_sums_specialised(row, t_row, weight, terms, args, True, True)
        return target_row_sums_specialised(row, t_row, weight, terms, args, False, True)
    if temperature == 1.0:
        return target_row_sums_specialised(row, t_row, weight, terms, args, True, False)
    return target_row_sums_specialised(row, t_row, weight, terms, args, False, False)


@numba.njit(fastmath=_FLAGS, inline="always")
def target_row_sums_specialised(row, t_row, weight, terms, args, unit, weighted):
    # target_row_sums for one choice of the literals ``unit`` (T = 1: target_exp_unit,
    # target_exp's bits there, one multiplication and one FMA less) and ``weighted``:
    # each call's loop has neither test in it (LLVM folds the untaken arm). args: top,
    # 1/T, T and the shift. By blocks of SUM_BLOCK: the block's terms (a vectorised loop
    # with no sum in it), then its two sums by block_sum, in an order no compilation
    # can change, added to the row's by two_sum. Before, both sums were in the loop,
    # under the kernel's ``reassoc``, in the order LLVM chose: it varied between
    # compilations of one script (2 cold processes in about 250), between the parallel
    # and serial twins, with the layout, and the gradient's cancelling entries with it
    # (tests/losses/test_issue13_target_sums_fixed_order.py). Against that (main's module
    # imported beside this one, the serial twins in one process, thread CPU time, min of
    # 21 interleaved, load 3.3; indicative): 64 x 32000 0.96x (T = 1) and 0.73x (T = 1.3,
    # weights), 512 x 2085 0.86x and 0.74x, 1024 x 100 0.92x and 0.85x: the exp loop,
    # with no reduction in it, vectorises better.
    top, inv_t, temperature, shift = args
    floor = shift - 708.0
    v = row.shape[0]
    s_hi = s_lo = t_hi = t_lo = 0.0
    for start in range(0, v, SUM_BLOCK):
        stop = min(v, start + SUM_BLOCK)
        for j in range(start, stop):
            if unit:
                terms[j] = target_exp_unit(row[j], top, floor, shift)
            else:
                terms[j] = target_exp(row[j], top, inv_t, temperature, floor, shift)
        s = block_sum(terms, start, stop)
        tw = (
            block_sum_weighted(t_row, weight, start, stop)
            if weighted
            else block_sum(t_row, start, stop)
        )
        s_hi, s_lo = two_sum(s_hi, s_lo, s)
        t_hi, t_lo = two_sum(t_hi, t_lo, tw)
    return s_hi, s_lo, t_hi + t_lo


#: float64 lanes of :func:`block_sum`'s running sums: four vectors of eight (one
#: 512-bit register each on AVX-512, two 256-bit ones on AVX2: the same sums).
SUM_LANES = 32
_SUM_VECTOR = 8


def _block_sum_codegen(weighted: bool) -> Any:
    """The code of ``sum_j w_j values_j`` over ``[start, stop)`` (w = 1 unless
    ``weighted``) in a fixed order: :data:`SUM_LANES` running sums from 0, lane l of the
    entries start + l, start + l + SUM_LANES, ... while whole vectors last, then the rest
    one by one into a sum of its own, in order; the lanes' vectors pairwise, then their
    lanes by halves (:func:`_halves`), then the rest. Each product (w_j values_j in
    float64) is rounded, each addition too: every instruction is emitted without
    fast-math flags, so that the order holds in a function compiled without them
    (:func:`block_sum`'s), inlined where LLVM will."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arrays = [
            (context.make_array(kind)(context, builder, value), kind)
            for kind, value in zip(signature.args[:-2], args[:-2], strict=True)
        ]
        start, stop = args[-2], args[-1]
        doubles = ir.VectorType(ir.DoubleType(), _SUM_VECTOR)
        index = start.type

        def load_scalar(array: Any, j: Any) -> Any:
            data, kind = array
            loaded = builder.load(cgutils.get_item_pointer(context, builder, kind, data, [j]))
            return builder.fpext(loaded, ir.DoubleType()) if kind.dtype == types.float32 else loaded

        def load_vector(array: Any, j: Any) -> Any:
            data, kind = array
            if kind.layout != "C":  # lane by lane: the same values
                vector = ir.Constant(doubles, ir.Undefined)
                for lane in range(_SUM_VECTOR):
                    at = builder.add(j, ir.Constant(index, lane))
                    vector = builder.insert_element(
                        vector, load_scalar(array, at), ir.Constant(_I32, lane)
                    )
                return vector
            stored = ir.VectorType(data.data.type.pointee, _SUM_VECTOR)
            pointer = builder.bitcast(builder.gep(data.data, [j]), stored.as_pointer())
            loaded = builder.load(pointer, align=1)
            return builder.fpext(loaded, doubles) if kind.dtype == types.float32 else loaded

        def term(load: Any, j: Any) -> Any:
            x = load(arrays[0], j)
            return builder.fmul(load(arrays[1], j), x) if weighted else x

        zero = ir.Constant(doubles, [0.0] * _SUM_VECTOR)
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(SUM_LANES // _SUM_VECTOR)]
        whole = builder.sub(
            stop, builder.srem(builder.sub(stop, start), ir.Constant(index, SUM_LANES))
        )
        step = ir.Constant(index, SUM_LANES)
        with cgutils.for_range_slice(builder, start, whole, step) as (j, _):
            for a, total in enumerate(sums):
                at = builder.add(j, ir.Constant(index, a * _SUM_VECTOR))
                builder.store(builder.fadd(builder.load(total), term(load_vector, at)), total)
        rest = cgutils.alloca_once_value(builder, ir.Constant(ir.DoubleType(), 0.0))
        with cgutils.for_range_slice(builder, whole, stop, ir.Constant(index, 1)) as (j, _):
            builder.store(builder.fadd(builder.load(rest), term(load_scalar, j)), rest)
        vectors = [builder.load(total) for total in sums]
        while len(vectors) > 1:  # pairwise: (0 + 1) + (2 + 3)
            vectors = [builder.fadd(*vectors[i : i + 2]) for i in range(0, len(vectors), 2)]
        return builder.fadd(_halves(builder, vectors[0], builder.fadd), builder.load(rest))

    return codegen


def _vector_of_floats(array: Any) -> bool:
    """Whether ``array`` is a one-dimensional array of float32 or float64."""
    return (
        isinstance(array, types.Array)
        and array.ndim == 1
        and array.dtype in (types.float32, types.float64)
    )


@intrinsic
def _block_sum(typingctx: Any, values: Any, start: Any, stop: Any) -> Any:
    if not _vector_of_floats(values):
        return None
    return types.float64(values, types.intp, types.intp), _block_sum_codegen(False)


@intrinsic
def _block_sum_weighted(typingctx: Any, values: Any, weight: Any, start: Any, stop: Any) -> Any:
    if not (_vector_of_floats(values) and _vector_of_floats(weight)):
        return None
    return types.float64(values, weight, types.intp, types.intp), _block_sum_codegen(True)


# Without fast-math: no flags on _block_sum's instructions (Numba's fast-math pass would
# give them the caller's, ``reassoc`` among them, and LLVM could then reorder the sum as
# it chose), which LLVM keeps when it inlines this.
@numba.njit(fastmath=False, inline="never")
def block_sum(values, start, stop):
    # sum of values[start:stop] (float32 or float64, C-contiguous) in float64, in the
    # fixed order of _block_sum_codegen
    return _block_sum(values, start, stop)


@numba.njit(fastmath=False, inline="never")
def block_sum_weighted(values, weight, start, stop):
    # sum of weight[j] * values[j] over [start, stop), as block_sum
    return _block_sum_weighted(values, weight, start, stop)


# Without ``reassoc``: under it LLVM may add lo to -1 first, which drops lo (it did once
# the row sums' four forms met in one phi: S - 1 lost its low half, the cancelling
# entries of the gradient moved by float32 ulps).
@numba.njit(fastmath=False, inline="never")
def pair_minus_one(hi, lo):
    # (hi + lo) - 1 for the pair hi + lo within 2**-24 of 1: hi - 1 is exact (Sterbenz)
    return (hi - 1.0) + lo


@numba.njit(fastmath=_FLAGS, inline="always")
def target_gradient_row(row, t_row, top, shift, inv_t, temperature, r, options, terms, out_row):
    # One row of target_gradient_kernel (``terms``: a float64 buffer of the row's length).
    # options: keep, spread, the weights' sum, 2 lambda and the class weights (empty for
    # none).
    keep, spread, w_sum, z_coef, weight = options
    s_hi, s_lo, total = target_row_sums(row, t_row, top, inv_t, temperature, shift, weight, terms)
    # S = e^(ell - shift) = 1 +- 2**-24, S - 1 exact (Sterbenz): ell = shift + log1p(S - 1)
    # and p = e^(... - shift) e^-log1p(S - 1) = terms (1 + g)
    s_1 = pair_minus_one(s_hi, s_lo)
    g = -s_1 / (1.0 + s_1)  # 1/S - 1: relative 2**-53 of g, a 2**-77 of p
    weighted = weight.shape[0] == row.shape[0]
    # the factor of p (``_terms.p_coefficient``): A + 2 lambda omega LSE, times r
    ell = shift + math.log1p(s_1)
    lse = top * inv_t + ell
    c = (keep * total + spread * w_sum + z_coef * (total if weighted else 1.0) * lse) * r
    cg = c * g
    if weighted:
        for j in range(row.shape[0]):
            t = weight[j] * (keep * np.float64(t_row[j]) + spread)
            out_row[j] = np.float32(fused_entry(c, cg, terms[j], r * t))
    else:
        for j in range(row.shape[0]):
            t = keep * np.float64(t_row[j]) + spread
            out_row[j] = np.float32(fused_entry(c, cg, terms[j], r * t))
    if -ell > _HALF_LOG:
        # p > 1/2 at the row's maximum: c p - t as c (p - 1) + (c - t), c - t from c's
        # parts (_terms.label_offset), p - 1 = -q/(1 + q) with q the others' sum of
        # e^((z - top)/T), not 1 - p to an ulp of 1 (issue 13: a one-hot row at [0, -80]:
        # -1.8e-35, not 0; S - 1 above has a block's float64 sum's rounding, an ulp of 1).
        # One pass over the row's terms (in cache), on rows where p > 1/2 only.
        j = 0
        while j + 1 < row.shape[0] and np.float64(row[j]) != top:
            j += 1
        q = 0.0
        for k in range(row.shape[0]):
            if k != j:
                q += terms[k]
        q = q * math.exp(shift)  # terms: e^((z - top)/T - shift)
        w_j = weight[j] if weighted else 1.0
        t = w_j * (keep * np.float64(t_row[j]) + spread)
        a = keep * total + spread * w_sum
        z_part = z_coef * (total if weighted else 1.0) * (top * inv_t + math.log1p(q))
        out_row[j] = np.float32(confident_entry(c, q, r, a - t, z_part))


# Without ``reassoc``, which may form (a - t) + z as a + (z - t): 0 for a one-hot row's
# z-loss part (a = t = 1, z = 3.6e-39 at [0, -80]).
@numba.njit(fastmath=False, inline="never")
def confident_entry(c, q, r, gap, z_part):
    # c (p - 1) + r ((A - t) + z_part), p - 1 = -q/(1 + q): target_gradient_row's entry
    # where p > 1/2
    return c * (-q / (1.0 + q)) + r * (gap + z_part)


# Without ``reassoc``, which may fold c e + (c g) e into (c + c g) e (a rounding of
# c (1 + g) more); ``contract`` makes each product an FMA.
@numba.njit(fastmath={"contract"}, inline="never")
def fused_entry(c, cg, e, rt):
    # c e (1 + g) - r t, g = 1/S - 1 tiny: the last rounding is the subtraction's
    return c * e + (cg * e - rt)


#: Rows per parallel work item of the target gradient: each item allocates one float64
#: buffer of a row's terms (in cache between the row's two passes).
TARGET_ROWS_PER_BLOCK = 16


def target_gradient_kernel(
    z,
    z_bits,
    targets,
    m,
    shift,
    inv_t,
    temperature,
    row_scale,
    keep,
    spread,
    w_sum,
    z_coef,
    weight,
    out,
):
    # Probability targets (issue 13): g_ic = c_i p_ic - r_i w_c (keep t_ic + spread), with
    # c_i = r_i (A_i + 2 lambda omega_i LSE_i), each entry formed in float64 from an exact
    # p (see target_exp) and rounded once, so an entry where p and the target cancel keeps
    # its digits. float32 z and targets, C-contiguous; m: the statistics' maxima of z/T
    # (at T = 1 the row's maximum, else found again); shift: their ell rounded to a
    # multiple of 2**-24 (the row's first pass corrects it).
    n, v = z.shape
    options = (keep, spread, w_sum, z_coef, weight)
    block = TARGET_ROWS_PER_BLOCK
    for b in numba.prange((n + block - 1) // block):
        prefer_wide_vectors()
        terms = np.empty(v)
        for i in range(b * block, min(n, (b + 1) * block)):
            top = m[i] if inv_t == 1.0 else np.float64(bits_to_float32(row_max_bits(z_bits[i])))
            target_gradient_row(
                z[i],
                targets[i],
                top,
                shift[i],
                inv_t,
                temperature,
                row_scale[i],
                options,
                terms,
                out[i],
            )


target_gradient_kernel, target_gradient_kernel_serial = _twins(target_gradient_kernel)


# Integer labels with label smoothing (issue 13, exactness): the entry c p_j - r u_j
# cancels where p_j meets r u_j / c (the smoothed loss's stationary point, p_j near
# eps/V): to 1e-8 of its terms on a trained model's rows, so p must carry every float64
# digit there. gradient_kernel's p = e^(z/T - (m + ell)) errs by exp_nonpositive's 5.2e-11
# and by the statistics' ell (their table exp's 2.9e-12 a term, about 5e-13 on random
# rows; 5.3e-11 off AVX-512): 1.6e4-8.7e5 float32 ulps at such entries. Here each term
# e_j = e^((z_j - top)/T - L) is exp_of_pair's (within about an ulp of float64: the pair
# (z - top)/T, an exact reduction, EXP_POLY's polynomial), top the row's log-sum-exp
# ``base`` in logits' units rounded to float32 and L = base - top/T (a multiple of
# 2**-24 and the rest), so that S = sum_j e_j = e^(LSE - base) is 1 but for the
# statistics' error and p_j = e_j / S exactly. One vectorised pass writes c e_j - r u_j
# (rounded once), sums S and keeps the least |c e_j - r u_j| / u_j (an integer minimum
# of the bits). The correction g = 1/S - 1 moves an entry by more than 2**-27 of itself
# only if it lies within |g| / (2**-27 - |g|) r u_j of cancelling; a row with such an
# entry (the least tells) is written again whole, c e_j (1 + g) - r u_j, in a second
# vectorised pass (about a row in four at V = 32000 on random logits, |g| about 5e-13;
# every row at the hard rows of the tests). Every entry is then within 2**-27 (relative)
# of c p_j - r u_j, exp_of_pair's error aside, before its one rounding. S is summed in
# the order LLVM's loop vectoriser chooses, so a corrected entry may differ in its last
# bit between compilations (the parallel and serial twins) where it lies within about
# 1e-16 of its terms of a rounding boundary. Cost: benchmarks/RESULTS.md (issue 13,
# branch lsgrad): the first pass's accurate exp about a sixth of the call's CPU time,
# the minimum as much, the second passes a tenth. Where u is one value (plain label
# smoothing; branch lsgradspeed) the first pass keeps no minimum: e_j increases with
# z_j, so the entries to correct are the logits in one interval around e* = r u / c,
# found after the pass by a vectorised count per block of FIX_BLOCK logits, and only
# the blocks holding one are written again (about a block in ten rows at V = 32000);
# an entry outside the interval moves by under 2**-27 of itself, as before. Branch
# perfgrad: the terms by a degree-11 polynomial of the Taylor series' accuracy, two FMAs
# fewer (EXP_POLY, since branch smoothperf exp_of_pair's own), and the count in float32
# lanes against float32_bounds of the interval (16 logits a vector, not 8): 1.10-1.11x
# the pre-lsgrad kernel's CPU time on one thread, was 1.22x (benchmarks/RESULTS.md).
_GRID = float(1 << 24)
_CORRECTED = 2.0**-27  # the share of an entry a correction may leave out


# Without ``reassoc``, which could distribute the remainder's product (as target_exp).
@numba.njit(fastmath={"contract"}, inline="never")
def quotient_pair(d, inv_t, temperature):
    # d/T as q + lo: q = d (1/T) rounded, lo the remainder (d - q T)/T (an FMA)
    q = d * inv_t
    return q, (d - q * temperature) * inv_t


@numba.njit(fastmath=_FLAGS, inline="always")
def smoothed_term(x, top, inv_t, temperature, shift, unit):
    # e^((x - top)/T - L) for float32 x, clamped at e^(-708) (-inf included) as
    # target_exp, with L = shift[0] + shift[1] (the grid's multiple and the rest, below
    # 2**-25): exp_of_pair of the pair (x - top)/T less the rest (``unit``, a literal: T
    # = 1, where the pair is x - top and 0). In the loop itself, not through target_exp,
    # which LLVM does not inline (and then does not vectorise the loop: 2.9 against 0.63
    # ns a logit, one thread)
    grid, rest = shift
    floor = grid - 708.0
    d = np.float64(x) - top  # exact
    if unit:
        d = d if d > floor else floor
        return exp_of_pair(d, -rest, grid)
    d = d if d > floor * temperature else floor * temperature
    q, lo = quotient_pair(d, inv_t, temperature)
    return exp_of_pair(q, lo - rest, grid)


@numba.njit(fastmath=_FLAGS, inline="always")
def smoothed_first_pass(row, top, inv_t, temperature, shift, coefs, uniform, out_row, unit):
    # out_row[j] = c e_j - r u_j (rounded once); returns S = sum_j e_j and the least
    # |c e_j - r u_j| / u_j (an integer minimum of the bits, which LLVM vectorises, where
    # a float minimum without ``nnan`` is not). ``unit``: a literal, T = 1
    c, r, inv_u = coefs
    s = 0.0
    least = _ABS_MASK
    for j in range(row.shape[0]):
        e = smoothed_term(to_float32(row[j]), top, inv_t, temperature, shift, unit)
        s += e
        value = c * e - r * uniform[j]
        least = min(least, float64_to_bits(value * inv_u[j]) & _ABS_MASK)
        out_row[j] = encode(out_row, np.float32(value))
    return s, bits_to_float64(least)


_ABS_MASK = np.int64(0x7FFFFFFFFFFFFFFF)


@numba.njit(fastmath=_FLAGS, inline="always")
def smoothed_second_pass(row, top, inv_t, temperature, shift, coefs, uniform, out_row, unit):
    # out_row[j] = c e_j (1 + g) - r u_j, rounded once (coefs: c, c g, r). ``unit``: a
    # literal, T = 1
    c, cg, r = coefs
    for j in range(row.shape[0]):
        e = smoothed_term(to_float32(row[j]), top, inv_t, temperature, shift, unit)
        out_row[j] = encode(out_row, np.float32(fused_entry(c, cg, e, r * uniform[j])))


@numba.njit(fastmath=_FLAGS, inline="always")
def smoothed_sum_pass(row, top, inv_t, temperature, shift, coefs, u, out_row, unit):
    # smoothed_first_pass for a constant smoothing term u (plain label smoothing): writes
    # c e_j - r u and returns S alone (no minimum: smoothed_fix_pass finds the entries
    # to correct from the logits). ``unit``: a literal, T = 1
    c, ru = coefs[0], coefs[1] * u
    s = 0.0
    for j in range(row.shape[0]):
        e = smoothed_term(to_float32(row[j]), top, inv_t, temperature, shift, unit)
        s += e
        out_row[j] = encode(out_row, np.float32(c * e - ru))
    return s


@numba.njit(fastmath=_FLAGS, inline="always")
def float32_bounds(low, high):
    # float32 l <= low and h >= high: a float32 x in [low, high] is in [l, h]. Each
    # bound moved out by 2**-22 of itself and 2**-148 before its rounding (half a
    # float32 ulp at most), so that it lies outside whatever its rounding does
    low = low - (abs(low) * 2.0**-22 + 2.0**-148)
    high = high + (abs(high) * 2.0**-22 + 2.0**-148)
    return np.float32(low), np.float32(high)


@numba.njit(fastmath=_FLAGS, inline="always")
def smoothed_fix_pass(row, low, high, top, inv_t, temperature, shift, coefs, uniform, out_row):
    # The blocks of FIX_BLOCK logits with one in [low, high] written again by
    # smoothed_second_pass (coefs: c, c g, r); the test is a vectorised "any" over the
    # float32 logits against float32_bounds (a float32 x is in [low, high] only if it is
    # in them; a block found by the wider bounds alone is written again, as exactly), no
    # exponential. Each block a slice indexed from 0: with absolute indices
    # (range(start, stop)) the count is not vectorised (0.5 against 0.1 ns a logit)
    low32, high32 = float32_bounds(low, high)
    for start in range(0, row.shape[0], FIX_BLOCK):
        block = row[start : start + FIX_BLOCK]
        inside = False
        for j in range(block.shape[0]):
            x = to_float32(block[j])
            inside |= (x >= low32) & (x <= high32)
        if not inside:
            continue
        stop = start + block.shape[0]
        terms, written = uniform[start:stop], out_row[start:stop]
        if temperature == 1.0:
            smoothed_second_pass(block, top, inv_t, temperature, shift, coefs, terms, written, True)
        else:
            smoothed_second_pass(
                block, top, inv_t, temperature, shift, coefs, terms, written, False
            )


#: Logits per block of smoothed_fix_pass: a block with a logit to correct is written again
#: whole (a vectorised pass), the others are only read.
FIX_BLOCK = 256


# A function of its own, called (not inlined by Numba: issue 13, compile time), under the
# kernels' flags: inlined at Numba's IR (inline="always") its body, with its ten inlined
# passes, was translated, copied and typed again in each twin, and the parallel one's
# parfor passes went over all of it: 14.6 + 7.2 s of CPU to compile the float32 twins,
# 3.5 + 1.1 s now, and 8.5 s for this one's two signatures (cold, load 15; the same
# bits, the same speed: benchmarks/RESULTS.md, branch numbacomp1a). Its loops are here,
# so it asks for wide vectors itself.
@numba.njit(fastmath=_FLAGS, cache=True)
def smoothed_gradient_row(
    row, y, base, inv_t, temperature, coefs, uniform, uniform_value, inv_u, out_row
):
    # One row of smoothed_gradient_kernel: c p_j - r u_j, less the target t at the label
    # y, each within 2**-27 of itself before its one rounding. coefs: c, t, r and the
    # label's c - t (from c's parts where the caller has them); inv_u: 1/u. Returns
    # False, having written nothing, where the row's log-sum-exp ``base`` is not finite (a NaN, an
    # infinity, a row of -inf: unchecked input) or its top would overflow float32.
    prefer_wide_vectors()  # (its loops are here: a function of its own, not inlined)
    c, target, r, gap = coefs
    top = np.float64(np.float32(base * temperature))
    if not (math.isfinite(base) and math.isfinite(top)):
        return False
    # L = base - top/T as a multiple of 2**-24 (for exp_of_pair's exact reduction) and
    # the rest: S = e^(LSE - base) is then 1 but for the statistics' error (about 5e-13)
    offset = base - top * inv_t
    grid = np.rint(offset * _GRID) / _GRID
    shift = (grid, offset - grid)
    parts = (c, r, inv_u)
    constant = not math.isnan(uniform_value)  # NaN: the smoothing term varies by class
    least = 0.0
    if constant and temperature == 1.0:
        s = smoothed_sum_pass(
            row, top, inv_t, temperature, shift, parts, uniform_value, out_row, True
        )
    elif constant:
        s = smoothed_sum_pass(
            row, top, inv_t, temperature, shift, parts, uniform_value, out_row, False
        )
    elif temperature == 1.0:
        s, least = smoothed_first_pass(
            row, top, inv_t, temperature, shift, parts, uniform, out_row, True
        )
    else:
        s, least = smoothed_first_pass(
            row, top, inv_t, temperature, shift, parts, uniform, out_row, False
        )
    s_1 = s - 1.0  # exact: S near 1 (Sterbenz)
    g = -s_1 / (1.0 + s_1)  # 1/S - 1
    cg = c * g
    v = row.shape[0]
    # |c e g| <= |g| (|c e - r u| + r u) exceeds 2**-27 |c e - r u| only where
    # |c e - r u| < |g| r u / (2**-27 - |g|) = reach r u; where the least |c e - r u|/u
    # is below reach r (a few rows in ten at V = 32000, random logits: |g| about 5e-13),
    # those entries are found and written again (every entry where |g| is that large,
    # which the statistics' accuracy rules out but for unchecked input)
    ag = abs(g)
    reach = ag / (_CORRECTED - ag) * 1.0000001 if ag < 0.5 * _CORRECTED else np.inf
    parts = (c, cg, r)
    whole = not constant and least < reach * abs(r)  # (r < 0: a negative upstream gradient)
    if constant and r != 0.0 and c != 0.0 and r / c > 0.0:
        # u constant: the entries to correct, e_j within reach of e* = r u / c, are the
        # logits x with (x - top)/T - L within log1p(+-reach) of log e* (e increases with
        # x); the interval widened by far more than its float64 arithmetic errs
        low = high = star = 0.0
        if reach < 0.5:
            star = math.log(r * uniform_value / c) + (grid + shift[1])
            slack = 1e-12 * (abs(top) + temperature * (abs(star) + 1.0))
            low = top + temperature * (star + math.log1p(-reach)) - slack
            high = top + temperature * (star + math.log1p(reach)) + slack
        if reach < 0.5 and math.isfinite(low) and math.isfinite(high) and star > grid - 700.0:
            smoothed_fix_pass(
                row, low, high, top, inv_t, temperature, shift, parts, uniform, out_row
            )
        else:  # the clamp at e^-708 near e*, or |g| too large to bound: every entry
            whole = True
    if whole:
        # the whole row again, every entry c e (1 + g) - r u: a vectorised pass (a loop
        # that picks the few entries out is not: 1.3 ns a logit, to 0.6)
        if temperature == 1.0:
            smoothed_second_pass(row, top, inv_t, temperature, shift, parts, uniform, out_row, True)
        else:
            smoothed_second_pass(
                row, top, inv_t, temperature, shift, parts, uniform, out_row, False
            )
    if y < 0 or y >= v:  # not a class (unchecked input): never write outside
        return True
    x = to_float32(row[y])
    if temperature == 1.0:
        e = smoothed_term(x, top, inv_t, temperature, shift, True)
    else:
        e = smoothed_term(x, top, inv_t, temperature, shift, False)
    if e * (1.0 + g) > 0.5:
        # p_y > 1/2: y is the row's unique maximum, and p_y - 1 = -q/(1 + q) with q =
        # (S - e_y)/e_y, the others' terms over the label's (S - e_y, not p_y - 1: an ulp
        # of S, not of 1); then c (p_y - 1) + (c - t), as label_entry
        value = confident_entry(c, (s - e) / e, 1.0, gap, 0.0)
        out_row[y] = encode(out_row, np.float32(value - r * uniform[y]))
    else:
        rt = target + r * uniform[y]
        out_row[y] = encode(out_row, np.float32(fused_entry(c, cg, e, rt)))
    return True


@numba.njit(fastmath=_FLAGS, inline="always")
def plain_smoothed_row(row, y, base, inv_t, c, target, r, uniform, out_row):
    # gradient_kernel's row with a smoothing term (its arithmetic, for the rows that
    # smoothed_gradient_row does not take: NaN in, NaN out, as before; and the rows of
    # zero coefficients, ignored ones, whose entries are 0 either way)
    v = row.shape[0]
    for j in range(v):
        d = np.float64(to_float32(row[j])) * inv_t - base
        out_row[j] = encode(out_row, np.float32(c * exp_nonpositive(d) - r * uniform[j]))
    if 0 <= y < v:
        d = np.float64(to_float32(row[y])) * inv_t - base
        value = c * exp_nonpositive(d) - target - r * uniform[y]
        out_row[y] = encode(out_row, np.float32(value))


def smoothed_gradient_kernel(
    z,
    labels,
    shift,
    inv_t,
    temperature,
    p_coef,
    target_coef,
    uniform,
    row_uniform,
    label_offset,
    out,
):
    # gradient_kernel's contract with a smoothing term u (label smoothing): the entries
    # of c_i p_i - r_i u - t_i e_(y_i), each within 2**-27 of itself before its one
    # rounding, where p_i is the exact softmax of z_i/T (the row's log-sum-exp ``shift``
    # corrected by the row's own sum: see smoothed_gradient_row). label_offset: the
    # label's c - t per row (empty: c - t as given). float32, float16 or bfloat16 z,
    # C-contiguous.
    n = z.shape[0]
    has_offset = label_offset.shape[0] == n
    inv_u = 1.0 / uniform
    # u's one value where every class has it (plain label smoothing), else NaN
    uniform_value = uniform[0] if uniform.shape[0] > 0 else np.nan
    for j in range(uniform.shape[0]):
        if uniform[j] != uniform_value:
            uniform_value = np.nan
    for i in numba.prange(n):
        prefer_wide_vectors()
        c, target, r = p_coef[i], target_coef[i], row_uniform[i]
        gap = label_offset[i] if has_offset else c - target
        # an ignored row (0, or NaN on non-finite logits) takes the plain arithmetic, as
        # does a row smoothed_gradient_row refuses (non-finite)
        ignored = c == 0.0 and r == 0.0
        if ignored or not smoothed_gradient_row(
            z[i],
            labels[i],
            shift[i],
            inv_t,
            temperature,
            (c, target, r, gap),
            uniform,
            uniform_value,
            inv_u,
            out[i],
        ):
            plain_smoothed_row(z[i], labels[i], shift[i], inv_t, c, target, r, uniform, out[i])


smoothed_gradient_kernel, smoothed_gradient_kernel_serial = _twins(smoothed_gradient_kernel)
