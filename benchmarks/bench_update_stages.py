"""The stages of ``EvaluationState.update``'s kernel (issue 13), one thread, by CPU time.

    python benchmarks/bench_update_stages.py [--rows 1000000] [--classes 10]
        [--repeats 11] [--against PATH/TO/OTHER/src] [--only WORD ...] [--leave-out]
    python benchmarks/bench_update_stages.py --wall [--repeats 41]

``EvaluationState.update`` sums every metric of a block in one compiled pass
(``calibration/_row_kernels_numba.totals``, through ``_row_kernels.block_totals``).  This
script calls that kernel directly on the whole input (one block, one thread, no thread
pool) with its stages switched on one group at a time, so that the difference between two
rows is what a stage costs: the label and entry checks and each row's sum (always), the
top label and confidence, the sums of squares (Brier), the spherical score, the bins of
the confidence, the surprisal (a logarithm a row), the per-class sums, the most
surprising rows, the entropy (a logarithm an entry), and everything at once (what
``update`` asks for).  The data are ``bench_evaluation``'s (float32 softmax probabilities,
labels drawn from them).  The first row is one read of the probabilities
(``np.add.reduce``, ``bench_evaluation``'s floor) timed the same way, interleaved with the
stages, and the column "min x read" each row's minimum over the read's: the ratios that
issue 13's targets set, from one run (2026-12-06, branch ``evalspeed14``).

Each repeat calls every row in turn (and, with ``--against``, the same row of a second
copy of crossent right after, as ``bench_evaluation`` imports it): the thread's CPU time
(``time.thread_time``), min and median of ``--repeats``, which a shared machine's load
disturbs less than the wall clock; state the load average with the numbers.

Tried against main with this script (10^6 x 10 float32, 2-core Emerald Rapids,
2026-12-01, loaded machine) and not kept:

* the short rows one per vector lane (``bench_row_loops``' "across rows, plain
  order", in ``chunk_rows`` after ``entries_suspect``): every stage 3.5 to 5.5 ms
  slower (min of 7; load 1.9 and 2.3), the transposed entries in float64 or float32;
* a clean chunk's entropy terms added straight into ``folded_sum``'s 256 lanes in the
  entropy loop (no terms buffer, no second pass; the same order, bit for bit):
  "+ entropy" 21.3 against 20.9 ms, "everything" 30.5 against 30.8 ms (min of 11,
  load 2.7): no gain measurable.  The logarithm's loop is bound by the 512-bit
  division (``vdivpd zmm``, about 16 cycles per 8 entries) and, nearly as much, by
  its other 28 or so vector operations per 8 entries on two ports (the subnormal
  scaling is already folded away by LLVM for float32 entries): removing either
  alone leaves the other;
* a clean chunk's entropy loop storing log p instead of p log p, the products formed
  in the fold (vectorised) and each label's surprisal read from those logarithms
  instead of a logarithm more a row (all sums bit for bit main's): "everything" 31.6
  against 30.8 ms, "+ entropy" 21.6 against 21.2 ms (min of 15, load 2.0): the
  fold's second stream of float32 entries costs what the 10^6 logarithms saved;
* chunks of 512 rows (``_PART_ROWS``; ``_CHUNK_ENTRIES`` 5120, 512 fold lanes: other
  sums' bits): the stages without the entropy 0.4 to 1.0 ms faster (fewer chunks to
  dispatch), "+ entropy" the same (20.4 against 20.6 ms), "everything" 31.5 against
  30.2 ms (min of 21, load 2.4-2.6): the entropy's 40 KiB of terms no longer stay in
  L1 with the rows.

* (2026-12-07, branch upd11, 10^6 x 10 float32 on the 2-core AMD EPYC (Zen 4), min of
  9-15 interleaved, load 5-10) the surprisal's logarithms in two streams (two halves of
  the chunk side by side, as ``entropy_terms``' four; the sum then in row order, the same
  bits): everything but the surprisal, per-class and kept rows 2.20 ms cheaper than
  everything without the entropy, main's 2.24: no gain (the one logarithm a row is not
  latency-bound); the rows' pass (``chunk_rows``) over two chunks of 256 rows at a time
  without the entropy, each chunk then summed as before (the same bits): everything but
  the entropy 9.72 against 9.35 ms (its 512 rows and outputs no longer in L1 for the
  chunks' sums);
* (later, same day, load 0.7-1.0, min of 11 against main) the hits, the bins'
  scatters and the per-class scatters in one loop a row (``tally_rows``: one loop per
  value of the flags, the same sums in the same order, no ``hit`` buffer): "+ top,
  bins" 8.65 against 7.89 ms, everything 25.59 against 24.47 ms, slower (the hits loop
  is vectorised alone, scalar in the fused loop, and the fused loop's scatters did not
  overlap better);
* the per-class counts tallied as integers in 4 interleaved histograms (folded into
  the float64 counts at the end: the same numbers) instead of ``counts[y] += 1.0``:
  "+ surprisal, per-class sums" 6.94 against 7.01 ms, no gain (``perf``: the bins'
  and classes' scatter loops hold about 1.5 and 1.1 ms of the update kernel, and the
  same bin or label comes back within a row only 9-10% of the time on these data, so
  the float64 add chains are not what they wait on);
* the tile loop kept off 512-bit registers (``"min-legal-vector-width"="256"`` on
  ``tiled_rows``, so that a third vector port is free): LLVM drops that attribute
  when it inlines a callee without it, and the loop kept its zmm code.
* (2026-12-07, branch upd12, 10^6 x 10 float32 on the 2-core AMD EPYC (Zen 4), min of
  11 interleaved with main, load 8-9.5) a clean chunk's entropy terms taken 32 rows at
  a time between the bins' and the per-class scatters of those rows (``scatter_bins``
  and ``add_to_classes`` over a range of the chunk's rows: the same sums), so that the
  logarithms' vector arithmetic might overlap the scatters' loads and stores: everything
  19.94 against 18.13 ms, slower; the same flow with the terms after the scatters'
  index loop but not interleaved (parts of 256 rows), 18.95 against 18.05; and the
  split scatters alone (one range a chunk) cost "+ top, bins" 6.06 against 5.86 and
  everything but the entropy 9.65 against 9.37 (LLVM's code for the loops in their new
  home).  No overlap to win: the default ``update``'s kernel is its stages' sum.
  ``entropy_terms``' four quarters against one stream (10^7 float32 entries in L1, a
  scratch loop, min of 9): level in parts of 2560 entries (7.60 against 7.54 ms), worse
  in short parts (320: 8.57 against 7.65; each quarter a short vector loop and a scalar
  tail); on 10^5 x 1000 (parts of 4096 from L2) "+ entropy" 101.89 against 102.21:
  one stream kept nowhere.  The exact bins' sums as one masked vector sum a bin
  (exact in any order; counts and hits likewise, every bin after bin 0): 3.0 against
  ``add_to_bins``' 1.9-2.0 ms for 10^6 rows of 15 bins (a scratch loop; its index loop
  0.65 and scatter loop 1.4 ms, 8 interleaved histograms 1.42 against 4's 1.40).
* (2026-12-02, the entropy's logarithm again; ``bench_entropy_log.py`` has the
  gather-table and reciprocal experiments) the entropy terms' loop alone, 4096
  float32 softmax entries in L1, ns an entry, min of interleaved runs in one process
  (load 4-10): glibc's table scheme for float32 entries (128 cells, 1/c of at most 29
  significant bits so that r = z (1/c) - 1 is exact with or without an FMA, log c chosen
  within 0.023 ulp of a double, degree-7 log1p, k log 2 + log c + r by Fast2Sum; one
  product in 4096 off x math.log(x)'s bits, fdlibm's 134), 1.05 against 0.88: the two
  lookups are 512-bit gathers; the same scheme with 16 cells, the lookups that
  two-source permutes (``vpermi2pd``) would do replaced by arithmetic to find its
  floor, 1.50 against fdlibm's 1.57 (the permutes would then take the rest), fdlibm
  without its division (wrong on purpose) 1.38: the loop is bound by its 33 or so
  vector operations on two 512-bit ports, and every division-free logarithm tried
  has more of them; fdlibm's reduction on the float32 bits (int32 lanes, the same m
  and k, so the same bits) 1.01 against 0.89 (LLVM widened the lanes to int64 and
  scaled float32 subnormals with blends); one or two streams instead of four, within
  noise (1.33, 1.28, 1.27 median).  The entropy total is within 0.6 ulp of mpmath's
  on hard rows already (test_issue13_update_log), the same as ``math.fsum`` of
  ``math.log`` terms: a more accurate logarithm has little to gain there either.

Kept (issue 13, 2026-12-01, same machine; ``--against`` main, min of 9 interleaved,
one thread, CPU ms; load average 2.3, other engineers' runs):

* float32 rows of at most 16 classes read as one vector tile a row
  (``_row_kernels_numba.tile_row``: 16 entries from the row's start, the lanes past
  its classes set aside; sum and squares as a fixed halving tree, the packed maximum,
  the entries' check, no loop over the classes); the per-chunk functions compiled
  without reference counting (``_nrt=False``: ``perf record`` showed Numba's atomic
  ``NRT_incref``/``NRT_decref`` of slices and tuples of arrays at about a fifth of the
  checks' stage, some 40 pairs a chunk); the rows prefetched 2 KiB ahead (the tile
  loop waited on its first touch of each row: the ``vcvtps2pd`` load held a third of
  its samples).  Step by step, "checks and row sums" against main's in the same run:
  the tile, 12.89 against 13.02 ms (min of 7, load 2.1: no gain measurable, the loop
  waits on memory); with no reference counting, 8.11 against 9.80 ms (load 2.4);
  with the prefetch, 5.75 against 9.49 ms (below).  The prefetch distance, this stage
  alone in one process, min of 30, two runs: none 8.2, 9.1 ms; 512 B 8.0, 9.2; 1 KiB
  4.7, 5.6; 2 KiB 4.8, 5.2; 4 KiB 4.9, 4.9.  All three:

  ==============================  ======  ======
  stage                           main    tiles
  ==============================  ======  ======
  checks and row sums             9.49    5.75
  + top label                     11.11   7.57
  + top, squares (Brier)          13.41   9.80
  + top, squares, spherical       15.43   11.66
  + top, bins                     13.07   9.91
  + surprisal                     10.80   7.11
  + surprisal, per-class sums     12.02   8.16
  + surprisal, 10 most surprising 11.08   7.18
  + entropy                       19.98   15.72
  everything (update's)           30.62   26.43
  ==============================  ======  ======

  AVX2 emulated (``emulate_avx2.sh``, znver3 tuning, load 4.4): every stage 3.7 to
  4.7 ms faster than main, "everything" 45.6 to 41.6 ms.

  Then the labels prefetched too, 256 rows (2 KiB) ahead in the tile loop: the next
  chunk's, which ``label_error`` otherwise first touches (against the above, min of 9,
  load 4.7: a test run alongside): "checks and row sums" 5.71 to 4.83 ms, every other
  stage 0.2 to 1.1 ms less, "everything" 27.37 to 26.20 ms.  Against main, min of 11
  (load 4.5): checks and row sums 9.89 to 4.86, + top label 11.35 to 6.66, + squares
  13.30 to 9.09, + spherical 15.28 to 10.79, + bins 13.10 to 8.45, + surprisal 11.43
  to 6.23, + per-class sums 12.52 to 7.33, + 10 most surprising 11.47 to 6.39,
  + entropy 21.18 to 15.19, everything 30.90 to 25.94 ms; AVX2 emulated (min of 9,
  load 4.7): every stage 2.5 to 5.3 ms faster, everything 54.72 to 50.47 ms.

  Then (load 2.5, another engineer's runs; min of 15 against main) the tile's squares
  mask formed in a general register (``tile_row``: a mask register's load, not a
  broadcast and two 512-bit comparisons, on the two vector ports the tile is bound by)
  and ``folded_sum`` taking four stretches a pass over its 256 lanes (the same adds in
  the same order; ``perf`` had it at 1.5 ms of the kernel): + top, squares 9.73 to
  9.52, + spherical 11.78 to 11.41, + entropy 16.04 to 15.50, everything 27.59 to
  26.40 ms, the other stages within noise (same bits: tests/calibration and
  test_issue13_folded_quads).  AVX2 emulated (min of 9, load 2.4): everything 37.07
  against 37.08 ms, + squares 14.54 to 14.36, + entropy 20.04 to 19.90, no stage
  slower beyond noise.  ``bench_evaluation --repeats 9`` (load 2.6: one core free,
  so no two-thread split to speak of): update 31.9 to 30.0 ms median.

Then (issue 13, rows8) on AVX-512 the float32 rows read 8 at a time
(``_row_kernels_numba.tile_group``, ``GROUPED_TILES``): the 8 row tiles transposed
(unpacks, two-source permutes) so that lane r is row r, the tile's three halving trees
elementwise over the 16 columns in the same pairing (the same bits), the entries' check
by each row's least and greatest entry and a NaN sum, the label's entry gathered;
``tiled_rows`` compiled with ``fastmath=False`` (it inherited ``chunk_rows``' flags, and
with "reassoc" LLVM reordered the elementwise trees: squares an ulp off).  Against main,
min of 9 (load 4.4-6.8, other engineers' runs): checks and row sums 4.31 against 4.84,
+ top label 5.34 against 6.67, + top, squares 6.67 against 8.78, + spherical 8.60
against 10.60, + bins 7.32 against 8.41, + entropy 14.07 against 14.60, everything
23.13 against 24.90 ms; a second run (load 4.4) 4.73/4.94, 5.89/7.15, 7.47/9.72,
everything 24.05/26.43.  Steps: the first version (every column's bad-entry check two
comparisons and an "or" of masks, the label's entry loaded row by row, 16 columns split
before widening) was slower in the first stage (5.98 against 5.02) and faster from the
top label on; the least/greatest check, the gather and widening each pair of columns
whole (LLVM otherwise formed the columns again from the previous stage: 26 shuffles,
not 18, in the last stage) made every stage faster.  AVX2 emulated (the one-row tile
kept; min of 9, load 5.9): every stage level with main, everything 37.71 against 37.61.

Then (issue 13, 2026-12-02, the update's remaining time) each row's spherical score
:math:`p_y / \\sqrt{s + p_y^2}` formed in the row pass (``tile_group``: a square root
and a division a group of 8 rows, on the divider, which the tiles' loop leaves idle,
so they overlap its shuffles; ``spherical_scores`` for the rows no group took and the
looped rows), ``chunk_scores`` only summing them: the same expression and roundings,
the same bits (test_issue13_update_fast).  Against main, one thread, CPU ms (load
9-12, other engineers' runs): + top, squares, spherical 6.38 against 7.57 (min of
21), 6.23 against 7.11 (min of 31; medians 6.64, 7.52); + top, squares (Brier) 5.49
against 5.52, + top label 4.75 against 4.68 (min of 31: level); everything 21.47
against 22.07 (min of 21), 21.87 against 23.05 (min of 31; medians 22.56, 23.73; load
11).  Where the update kernel's time goes (one thread, 10^6 x
10 float32, min of 7, load 2.8): checks and row sums 3.6 ms, top label +0.8, squares
+0.9, spherical +1.9 (now +0.7), bins +1.5, surprisal +1.3, per-class sums +1.0, the
10 most surprising +0.1, entropy +9.1 (its loop without the logarithm 2.2 ms, with
the fold; bench_entropy_log: 0.22 against 0.89 ns an entry), everything 21.1; the
update call, one thread, 1.0-1.6 ms more than its kernel (10 blocks: the wrappers,
the per-block totals, the merge).  The divider (``vdivpd``/``vsqrtpd zmm``, about 16
and 20 cycles per 8 lanes) takes some 26 million cycles a call (the entropy's 10^7
divisions, the surprisal's and spherical scores' 10^6 each), about 12 of the 21 ms at
2.1 GHz (an estimate from those throughputs, not measured), and the other vector
operations about as much on two ports: only work moved where the divider is idle (the
spherical scores, above) overlaps.

Tried then and not kept: each entry's logarithm stored by the entropy loop beside its
term (``entropy_terms`` with a second output stream), each label's surprisal read from
it (a gather a row) instead of a logarithm more a row in ``chunk_parts``: everything
22.20 against 21.04 and 22.89 against 21.19 ms (min of 21 and 31 against the kept
version above, load 10-11): the second stream of stores costs more than the 10^6
logarithms.

Tried with the tile and not kept: the tile as Numba code (the 16 entries as a tuple,
the trees as tuples of sums, the lanes' selects written out): scalar code, 26.8 ms
against ``sums_and_top``'s 10.5 ms for its loop alone.  Numba runs LLVM without the SLP
vectoriser (``NUMBA_SLP_VECTORIZE`` is 0, a process-wide setting), and a loop of 16 is
fully unrolled before the loop vectoriser sees it; the tile is therefore written as
LLVM vector instructions (an intrinsic).

Then (issue 13, 2026-12-02, the 2-core AMD EPYC Zen 5, ``znver5``, 512-bit; other
engineers' runs) the entropy's fold and the chunks' trees without runtime overheads,
the same adds in the same order (bit for bit; test_issue13_update_stages_fast and the
folded-sum tests): ``folded_sum``'s first pass onto 0.0 instead of onto zeroed lanes,
its last 1 to 3 stretches in one pass (not one pass each: 10 classes leave two), and
its 256 lanes, as a whole chunk's Brier, spherical and per-row entropy scores in
``chunk_scores``, summed by ``tree_sum`` (``lanes_tree``: the 256 values as one
vector halved in registers, lane j with lane j + 128, then + 64, ...: ``pairwise_sum``'s
levels without their loads, stores, runtime trip counts and overlap checks; 15628 trees,
one thread, min of 21, load 4.2: 0.22 ms, 0.33 as loops of constant lengths, 0.72 by
``pairwise_sum``).  The fold alone, 10^7 float32 entries' terms in chunks of 2560, one
thread, min of 25 interleaved: 0.60 against main's 0.83 ms (load 3.6), 0.67 against
0.87 compiled without fast-math flags (load 5.2: "nsz" turned 0.0 + x into x, a zero
total of -0.0 terms -0.0); its tree and zeros 0.19 against 0.27.  ``--against`` main,
min of 21 (load 3-5), the loops of constant lengths: + entropy 7.93 against 8.04,
everything 11.89 against 12.15, the other stages within noise; with ``lanes_tree``
(load 2.8): + entropy 7.71 against 7.79, everything 11.67 against 12.04, the others
within 0.1 ms.  Three runs of 101 (load 2.4-2.6), everything min/median 12.10/15.70
against 12.09/16.14, 13.19/16.55 against 12.71/17.04, 11.94/14.73 against
12.74/15.58: the medians 0.4-0.9 ms lower, the minima within noise (a gain of about
0.3 ms, 2-3%).  ``bench_evaluation --repeats 9 --against`` main (load 2.9; the other
core busy, so CPU time = wall): update 17.1 against 17.8 ms median.  Where
everything's time goes now, each stage left out of it in turn (min of 15, load 3.1;
everything 12.36 ms): the entropy 5.67, surprisal with the per-class sums and the 10
most surprising 1.65 (the per-class sums 0.89), bins 1.17, squares 0.68, spherical
0.30.

Tried then and not kept (same machine):

* the entropy terms added onto the 256 lanes in the entropy loop (no terms buffer, four
  consecutive stretches a pass, the same order; tried on the Emerald Rapids, whose loop
  is bound by its division, again here, where it is not): 2560 float32 entries in L1,
  3907 times, min of 15 (load 1.9), terms alone 4.49, terms and main's fold 5.53, fused
  5.31 ms; with the fold above (min of 21, load 3.3) terms and fold 5.17, fused 5.43,
  fused two stretches a pass 5.28.  The fused loop joins its four logarithms in a chain
  of four adds and LLVM reloads 16 broadcast constants an iteration there;
* the terms formed and folded four stretches (1024 entries) at a time, so that 8 KiB of
  terms, not 20 KiB, stay in L1 with the chunk's rows (``entropy_sum``): + entropy 7.78
  against 7.93 (main), everything 12.16 against 12.18 (min of 15), no better than the
  fold alone; over a chunk just read by another loop, 7.43 against 7.32 ms (min of 21,
  load 4.0).  The entropy costs about 0.5 ms more in the kernel than its loop in L1,
  not for the terms' footprint;
* the next chunk's entries prefetched (one a 64-byte line, 2 KiB past the tile loop's
  own prefetches) before the entropy loop, whose vector work leaves the memory idle:
  + entropy 7.83 against 7.80, everything 12.07 against 12.13 ms (min of 25 against
  the fold above, load 4.5), no gain;
* the surprisal in four streams (quarters of the chunk, as the entropy terms), 0.75
  against 0.77 ms for 10^6 labels in L1 (one stream and no sum 0.72), and from the
  label's probability narrowed to float32 (so that LLVM drops the logarithm's subnormal
  scaling) 0.62 against 0.62 (load 3.6): its loop is vectorised already (two ``vdivpd
  zmm`` a pass of 16 rows);
* the per-class counts by a compare and count over the chunk per class instead of
  ``counts[y] += 1.0``: 1.71 against 0.83 ms (the sums alone 0.57); the bins' scatter
  with these data's bins 0.85 ms, with bins spread evenly 0.74 (the sums alone 0.54,
  0.45): neither scatter waits on its add chains.

Then (issue 13, 2026-12-03, the same 2-core AMD EPYC Zen 5; other engineers' runs, load
0.9-6) the wall side and the kernel again.  Where a call's time goes (10^6 x 10 float32,
``update`` on 2 threads, timed inside the process): each thread's 5 blocks 5.6-5.8 ms of
CPU (the kernel alone, one thread, 11.0-11.6 ms for all 10); the pool's thread starts
0.05 ms after the caller's; Python 0.1-0.2 ms before the parts and 0.2-0.25 ms after
(with the kernel stubbed out: 160 us warm, 410 us after a 48 MB pass evicted the
caches).  With one other process busy on one CPU, contiguous parts left the pool's
thread, kept off the caller's CPU, sharing the busy one: its 5 blocks took 7-17 ms of
wall for 5.8 ms of CPU while the caller waited.  ``perf`` (timer samples, a map of the
kernel's code written by the process) on ``totals`` alone: the entropy loop 37% (185
instructions a pass of 32 entries, 64 of them products or FMAs, for Zen 5's two
multiply pipes; constants and widened entries spilled: four streams), the tile loop 28%,
the per-class scatter 6.9%, the bins' scatter 6.1%, the surprisal's logarithms 5.4%,
the bins' index 2.8%, ``folded_sum`` 2.7%.  The spherical score's ``vdivpd`` and its
store hold 9% of the samples, yet leaving the score out saves 0.05 ms (11.51 against
11.56 ms, min of 15): skid onto a long operation, not its cost.

Kept: ``update``'s blocks taken as they come (``_state._NextBlocks``: the caller's from
the first block on, the pool's from the last back, each thread's blocks contiguous as
the parts were, until the two meet), each block's outputs on cache lines of their own
(``_row_kernels._apart``), and the most surprising rows' surprisals of all blocks in one
call.  The same kernel call on the same block whichever thread reads it: the same bits
(test_issue13_update_wall, test_issue13_next_blocks).  ``update`` against main, in one
process, alternating, wall ms (``/tmp`` script; min, median, mean of 61): one other
process busy (load 1.5-2; first with one shared count, blocks alternating between the
threads), 8.5/12.1/12.3 against 8.4/14.0/13.5 and 8.0/12.0/11.9 against 8.3/13.1/13.5;
both ends (load 5.8: several processes) 10.4/22.7/23.6 against 12.6/24.7/25.4; with
``chrt -f 10`` (these threads first: a quiet machine's case) 6.58/7.14/7.51 against
6.58/7.08/7.59 and 7.19/8.85/8.78 against 6.99/8.90/9.34: level when nothing else runs.
Blocks alternating between the threads wrote neighbouring blocks' per-class and
per-bin sums into shared cache lines: two threads' kernels on blocks 0 and 1 at once,
CPU ms for both, min of 101, 2.54 unpadded against 2.26 with each block's outputs two
lines apart (``chrt -f``, load 5.4).  ``_add_blocks``: 69 to 48 us (warm).

Tried then and not kept:

* chunks of 512 rows (``_PART_ROWS`` 512, ``_CHUNK_ENTRIES`` 5120, 512 fold lanes: other
  bits, timing only): every stage slower, everything 11.63 against 11.33 ms (min of 15,
  load 0.9); of 128 rows (2048 entries, 128 lanes): everything 13.08 against 12.46, the
  other stages within noise (load 1.2).  Nor do the rows wait on memory: 10 passes over
  10^5 rows (4 MB, in cache) against one over 10^6 from DRAM, checks and row sums 1.93
  against 1.99, + entropy 7.06 against 7.68, everything 11.74 against 11.84 ms;
* the bins' and per-class scatters in the entropy loop (three rows' scatters each pass
  of 32 entries, the terms written as LLVM vector operations, bench_entropy_log's
  ``_vector_terms``, bit for bit the kernel's), to overlap their loads and stores with
  the logarithm's arithmetic: 10^6 x 10 in chunks of 256 rows, one thread, min of 21:
  8.41 ms fused against 6.40 for the same two loops one after the other (the explicit
  terms alone 4.95, the kernel's 4.94; the scatters alone 1.32);
* the block-by-block selection of the most surprising rows done as one sort (the same
  rows when no surprisal is NaN): 13 against 16 us, not worth the second path;
* the per-class counts tallied with the bins' (one histogram of (bin, hit, label), the
  class loop left with the surprisals only: one load and store less a row there, a
  label's load and a multiply more in the bins' loop), in a copy of the two scatter
  loops over 10^6 rows in chunks of 256, one thread, min of 31 (load 5): 1.92 and 1.83
  against 1.87 and 1.70 ms; the class loop without the negative labels' fix (labels
  checked from 0): 1.64 against 1.70, 0.06 ms, not worth a second loop;
* the labels' surprisal computed in the tile loop (fdlibm's logarithm of the 8 rows'
  p_y as LLVM vector operations in ``tile_group``, beside the spherical score, so that
  it overlaps the tiles' shuffles), ``chunk_parts`` only summing them: a bound, in a
  scratch copy with wrong Brier sums (the logarithms stored over the squares),
  everything 11.34 against 11.54 ms (min of 21; medians 11.59, 11.82; load 4): the
  tile loop takes back about two thirds of the surprisal loop's 0.6 ms, and the chunk's
  plain, reassociated surprisal sum, then over stored values, would be vectorised
  another way (other bits of the NLL).  Not built.

Then (issue 13, 2026-12-03, the Python around the kernel; 10^6 x 10 float32, 10 blocks:
``_inputs._BLOCK_ELEMENTS``' spans, whose bounds set the sums' bits: 4, 6 or 20 blocks
give other bits of the NLL and Brier sums, so the count stays).  Timed in the call, each
step's wall time after the kernel's pass (``perf_counter`` marks in a copy of the
source, median of 41, ``chrt -f 10``, load 2-3.7): the caller's Python before its
first block about 200 us (the state 25, ``as_predictions`` 45, the blocks' outputs 22,
the pool's hand-off 60: ``workers``, ``_off_the_caller``'s system calls, ``submit``),
after the last block 270 us (``_add_blocks`` 134 of it, 80 of which the most
surprising rows; the suspect labels' ``np.flatnonzero`` 34; ``run_in_parts``'
``cancel`` and ``wait`` of parts already done 23), and the pool's first block 47-92 us
after the caller's (its ``_kernel_arguments`` and ``_TotalsSettings``).  Kept: the
kernel's arguments and settings formed once in the caller, before the pool's part
starts (``_row_kernels.blocks_reader``; the settings cached by request, dtype, classes
and pending check: ``_state._kernel_settings``); every float sum of a block in one row
of one array, after a row that the state's sums fill (``BlocksTotals.running``: one
``np.add.accumulate`` for the sums, the per-class sums and counts and the bins, the
same additions a column; in the call, alternating with the five running sums on the
same outputs, median of 101: 159 against 171 us for ``_add_blocks``); the blocks with a
suspect row noted as they are read (34 to 3 us); no ``cancel``/``wait`` after parts
that succeeded (23 to 3 us); ``numpy.full`` (15 us after a pass, ``ndarray.fill`` 8)
and ``_xp.detached``/``to_numpy``'s array-api-compat checks (``as_predictions`` 52 to
46 us) skipped for NumPy arrays.  Against main, in one process, alternating
(``chrt -f 10``, 61 calls each): Python before the caller's first block and after the
last, median 414 against 334 us (min 334 against 252; load 2.4), 475 against 405 (load
4.0), 580 against 498 (load 3.9); the pool's first block 40 against 24 us after the
caller's (46 against 23, 92 against 43).  The wall time, near the machine's noise:
6.82 against 6.70 ms median, paired difference -96 us (load 2.5), 6.68 against 6.68,
-24 us (load 3.8); ``bench_evaluation --repeats 15``: 6.8 against 6.5 ms (load 3.9).
The Python left is about 0.35 ms of 6.5, 0.1 ms of it ``submit`` and the
``_off_the_caller`` system calls, which the pool needs.

Tried then and not kept: the most surprising rows of all blocks merged by one sort when
no surprisal is NaN (the same rows: ``_top`` is a stable sort by a total order but for
NaN): in the call, alternating, 10 us slower than a ``_top`` a block (183.8 against
172.8 us median of 41: the flattening and negating of 100 pairs cost more after the
pass than the key function's calls); each thread's most surprising rows merged by that
thread once it had no more blocks (while the other still read; no two rows of a batch
tie), the caller left one sort of the state's and the threads' tops: 319 against 327 us
after the last block (median of 81, load 3.8), within noise, the caller mostly reading
last here; the state's zero sums as views of one array (one allocation instead of six):
``EvaluationState(10)`` after a pass 35-52 against 40-44 us, warm 5.1 against 4.5; the
kernel called through its compiled entry point (``overloads[sig].entry_point``, skipping
Numba's typing of 17 arguments): 0.5 us a call warm, 3-5 after a pass, for a private
interface.

Then (issue 13, 2026-12-03, a 2-core AMD EPYC Zen 4, ``znver4``: AVX-512 on 256-bit data
paths, each 512-bit operation two micro-operations; load average 3-6, other engineers'
runs, so CPU times only).  Before: checks and row sums 3.3, + entropy 12.6, everything
18.9 ms; ``bench_evaluation`` 5.6-6.1x the read.  Where everything's time goes, each
stage left out in turn (``--leave-out``, min of 21, main's kernels; everything 17.80):
the entropy 8.50, the surprisal with the per-class sums and the 10 most surprising 1.96
(the per-class sums 0.92, the 10 most 0.0), the bins 1.16, the squares and spherical
1.63 (the spherical 0.69: its square root and division on the divider), the top label
with the bins, squares and spherical 3.63; checks, row sums and the call about 3.7.

* 256-bit vectors (``"prefer-vector-width"="256"`` in place of ``prefer_wide_vectors``'
  512, every kernel), tried and not kept: + entropy 15.21 against 12.59 ms, everything
  21.70 against 18.89 (min of 11), the stages without the entropy level; the entropy
  loop alone, 4096 entries in L1 (``bench_entropy_log --in-cache``, min of 9): float32
  1.13 against 0.77 ns an entry, float64 1.08 against 0.90.  Zen 4 splits a 512-bit
  operation into two 256-bit halves on one pipe, so the pipes do the same work either
  way, but a 256-bit loop has twice the instructions to decode, rename and retire.
* Tried, measured and not merged (branch ``zen4update``, a logarithm gated on the
  target ``znver4`` with AVX-512DQ): the
  logarithm's exponent by ``vcvtqq2pd`` (the same m and k, the same bits) and R(z) by
  Horner's scheme (0.1% of the float32 mantissas' logarithms an ulp apart, max 0.732
  against 0.734 ulp).  The float32 entropy loop (a pass of 32 entries) had 16 products
  or FMAs of 29 vector operations per 8 entries and 22 spill loads and stores a pass;
  now 14 of 26, none: Zen 4's two multiply pipes take the products, its four pipes all
  operations, each zmm operation twice, and the loop ran near both bounds (16 and about
  15 cycles per 8 entries, 0.77 ns an entry at 2.6 GHz).  The entropy loop alone (a
  scratch copy of ``bench_entropy_log``'s in-cache loop, 2560 entries, min of 41
  interleaved in one process, load 5.5): float32 0.753 against 0.791 ns (0.95x; the
  conversion alone 0.96x, Horner's alone 0.97x; halving f from m's bits as well 0.95x:
  not taken), float64 0.895 against 1.023 (0.87x).  Against main, min and median of 31
  interleaved, two runs (load 4.3-4.9): + entropy 11.88/14.09 against 12.87/14.63 and
  11.78/14.20 against 12.38/14.95, everything 18.13/20.74 against 18.91/21.90 and
  17.87/21.49 against 18.48/22.12; the other stages within 0.15 ms (not using the
  logarithm but for the surprisal, 10^6 logarithms).  At load 8 (min/median of 41, 61,
  61): + entropy 12.25/14.84 against 13.53/15.44, 11.87/14.51 against 12.59/15.65,
  12.57/15.32 against 14.19/16.38; everything 20.50/22.51 against 19.60/23.56 (the
  one minimum not lower), 17.76/22.27 against 19.01/23.20, 20.93/23.41 against
  22.27/24.90.  ``bench_evaluation --repeats 15`` (load 6 and 8: wall times
  meaningless, the CPU column): update 21.0 against 22.5 and 24.1 against 25.2 ms.
  On Zen 5 the same two changes measured 1.04x and 1.00-1.05x (``bench_entropy_log``).
  Not merged: 3-5 % of update's CPU time does not pay for a code path chosen by CPU
  name and logarithms whose last bit then depends on the machine.

The issue's target, update within 3x of one read (2.2 ms here), is out of reach on this
Zen 4: the update kernel's 18 ms of CPU are at best 9 ms on two cores (4x), and its
entropy loop alone (10^7 logarithms, 0.75-0.8 ns each in L1) takes 7.5-8 ms of CPU, bound by
the multiply pipes' double-pumped FMAs; the logarithms tried in ``bench_entropy_log``
with fewer such operations (a table read by gathers, 16-cell tables, a reciprocal) are
all slower there, and the one faster form, fdlibm's short form (0.96x of the gated loop),
is less accurate (0.87 against 0.73 ulp).

Then (issue 13, 2026-12-03 afternoon, the same Zen 4, branch update4; other engineers'
runs, load 0.8-2.5, and the VM's slow spells: the one-thread kernel's minimum moved
from 18.3 to 24.6 ms between runs minutes apart) where ``update``'s wall time goes
beyond half its kernel's one-thread CPU time.  ``--wall`` (added then) reads update's
10 blocks with its own reader (``_row_kernels.blocks_reader``, the same calls) on one
thread, then on two at once (blocks 0-4 and 5-9, started by a barrier), then calls
``update`` with each kernel call's start and end noted; ms, min / median of 21, 31, 41:

=====================================  ============  ============  ============
                                       load 1.9      chrt, 2.3     chrt, 1.3
=====================================  ============  ============  ============
kernel, one thread: CPU                18.30 / 19.89 24.63 / 26.72 19.61 / 24.70
kernel, two threads: CPU, both         19.57 / 22.19 25.06 / 27.49 19.43 / 32.82
kernel, two threads: wall              9.86 / 11.93  12.97 / 14.49 9.96 / 16.44
update: wall                           11.62 / 13.02 13.47 / 16.35 10.44 / 17.67
update: CPU, both threads              21.07 / 23.55 25.33 / 28.02 20.12 / 33.57
call to the caller's first block       0.32 / 0.41   0.39 / 0.46   0.31 / 0.40
call to the pool's first block         0.35 / 0.46   0.45 / 0.53   0.35 / 0.47
the two threads' last blocks apart     0.11 / 1.03   0.15 / 0.46   0.06 / 0.20
last block end to return               0.26 / 0.34   0.36 / 0.44   0.27 / 0.37
=====================================  ============  ============  ============

("chrt": ``chrt -f 10``, these threads before other processes.)  The update's Python is
about 0.7 ms a call (0.3-0.4 before its first block, 0.3-0.4 after its last), and its
threads' last blocks end 0.1-0.5 ms apart when nothing else runs (10 blocks of about 2
ms of CPU, taken as they come; their bounds set the sums' bits); the rest of the gap
is the kernel itself: its CPU time on two threads at once is the one-thread time at
best (the minima) and up to a third more at the median, with the other engineers'
processes held off by ``chrt``: the VM's two CPUs slow each other down (the host's,
not this process's doing; the kernel's entropy loop alone on 4096 entries in L1, two
threads at once against one, 8 rounds under ``chrt``: one of the two threads 0.82-1.26x
its time alone, median 1.16x, the other 0.97-1.05x; a loop reading 40 MB level in both).  The
Python before the first block, timed step by step after a 96 MB pass (cold caches,
median of 41): ``EvaluationState(10)`` 59 us, ``as_predictions`` 56, the blocks'
bounds 20, their outputs 29, the request, settings and reader 24; warm, the whole call
with the kernel stubbed out takes 181 us (min of 301; median 354, the pool's hand-offs):
at most 0.1-0.2 ms of some 12 left to gain there, below this machine's noise between
runs; not pursued.

Bounds measured then (``--against`` a scratch copy, min / median of 15, load 1.8): the
kernels' logarithm with its division replaced by a product (s = 0.4 f, wrong on
purpose: what any division-free quotient could at best give, in the entropy and the
surprisal): everything 19.93 / 22.75 against 21.67 / 25.53 ms, + entropy 13.62 / 15.57
against 14.55 / 17.01; everything but the entropy 10.42 / 12.40 ms.  Tried and not
kept: the rows prefetched 4 KiB ahead instead of 2 (``_PREFETCH_ENTRIES`` 1024, min of
15 against main, load 1.5): checks and row sums 3.49 against 3.86, + entropy 15.19
against 13.66, everything 20.26 against 20.73 ms: noise, no gain to show.

How far this Zen 4 can get: with the kernel at its best one-thread minimum, 18.3-18.9
ms, on both CPUs at full speed, the Python's 0.7 ms and 0.2 ms of the threads' last
blocks apart, ``update`` would take about 10.3 ms, 4.7x the read (2.2 ms); its medians
are 12-13 ms (5.5-6x) on a quiet machine.  Everything but the entropy is 9.3-10.4 ms of
CPU (about 5.5 ms of wall, 2.5x the read): the entropy's 10^7 logarithms are what
stands between ``update`` and 3x, which would need them and their fold at about 3 ms
of CPU (0.3 ns an entry; in L1 the loop takes 0.76 now, 0.66 with no division at all,
0.10 with no logarithm at all), while every logarithm of the same accuracy tried
(``bench_entropy_log``) takes at least as many vector operations as fdlibm's.

Then (issue 13, 2026-12-05, branch ``evalspeed``, the same Zen 4; other engineers' runs,
load 10-14, so CPU times only) long float32 rows.  At 10^5 x 1000 the entropy costs
0.87-0.93 ns an entry beyond the checks, at 10, 100, 1000 and 5000 classes alike (no
per-chunk cost of the 4-row chunks), and a 4 MB input in cache is only 0.08 ns an
entry faster than 400 MB from memory.  Kept: the long rows' sums, entries' check,
squares and packed top label in one loop (``long_sums_and_top``; before, ``row_sums``
then ``top_labels``, two passes over each row): ``--rows 100000 --classes 1000
--against`` main, min / median of 9 (load 13.5-13.9): checks and row sums 16.35 /
16.52 against 16.36 / 16.66, + top label 24.19 / 24.34 against 27.17 / 27.40, + top,
squares 31.37 / 31.55 against 33.45 / 33.54, + top, bins 24.48 / 24.57 against 27.44 /
27.65, + entropy 116.52 / 117.04 against 116.33 / 117.25, everything 130.20 / 131.33
against 134.42 / 135.12 ms (3 % less).  The same bits (the loop's squares in
``row_sums``' order: tests/calibration/test_issue13_long_sums_and_top.py, also under
``emulate_avx2.sh`` with znver3 and haswell tuning).  Tried and not kept: the key as
the float64 bits of the entry with the index in their low bits (``sums_and_top``'s,
no sign extension and shift, no second load stream): LLVM then vectorised the loop
another way and the squares came out an ulp or so off ``row_sums``' (1.6e-16 to
3.9e-16 relative), so that ``EvaluationState``'s Brier would no longer equal
``brier_score``'s bit for bit; not timed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from bench_evaluation import against, data

from _machine import cpu_name, interleaved_thread_times, vector_width

STAGES: dict[str, dict[str, Any]] = {
    "checks and row sums": {},
    "+ top label": {"top": True},
    "+ top, squares (Brier)": {"top": True, "squares": True},
    "+ top, squares, spherical": {"top": True, "squares": True, "spherical": True},
    "+ top, bins": {"top": True, "bins": True},
    "+ surprisal": {"logs": True},
    "+ surprisal, per-class sums": {"logs": True, "classes": True},
    "+ surprisal, 10 most surprising": {"logs": True, "keep": 10},
    "+ entropy": {"entropy": True},
    "everything but the entropy (update's with entropy=False)": {
        "top": True,
        "logs": True,
        "squares": True,
        "spherical": True,
        "classes": True,
        "bins": True,
        "keep": 10,
    },
    "everything (update's)": {
        "top": True,
        "entropy": True,
        "logs": True,
        "squares": True,
        "spherical": True,
        "classes": True,
        "bins": True,
        "keep": 10,
    },
}


EVERYTHING = STAGES["everything (update's)"]
#: The first row: one read of the probabilities (``np.add.reduce``, no kernel), the
#: floor that issue 13's targets are ratios to, timed like the stages (one thread).
READ = "one read (np.add.reduce), no kernel"
#: ``--leave-out``'s rows: everything but one stage (the per-class sums and the most
#: surprising rows need the surprisal, so "surprisal" leaves out all three; the bins
#: and the squares need the top label, so "top label" leaves out those too).
LEFT_OUT: dict[str, tuple[str, ...]] = {
    "entropy": ("entropy",),
    "surprisal, per-class, 10 most": ("logs", "classes", "keep"),
    "per-class sums": ("classes",),
    "10 most surprising": ("keep",),
    "bins": ("bins",),
    "spherical": ("spherical",),
    "squares and spherical (Brier)": ("squares", "spherical"),
    "top label, bins, squares, spherical": ("top", "bins", "squares", "spherical"),
}


def left_out(what: tuple[str, ...]) -> dict[str, Any]:
    """Everything's options with the stages ``what`` off."""
    return {
        key: (0 if key == "keep" else False) if key in what else value
        for key, value in EVERYTHING.items()
    }


def stage_call(
    row_kernels: ModuleType, probs: np.ndarray, labels: np.ndarray, options: dict[str, Any]
) -> Callable[[], object]:
    """One call of ``row_kernels``' ``totals`` kernel with the given stages on."""
    kernel = row_kernels._kernels()["totals"]
    values, flat, bits, ids = row_kernels._kernel_arguments(probs, labels)
    k = values.shape[1]
    top, keep = options.get("top", False), options.get("keep", 0)
    bins = 15 if top and options.get("bins", False) else 0
    classes = k if options.get("classes", False) else 0
    squares = options.get("squares", False)
    edges = np.linspace(0.0, 1.0, bins + 1) if bins else np.zeros(1)
    found = np.full(keep, -1, dtype=np.intp)
    out = (np.empty(5), np.zeros((2, classes)), np.zeros((3, bins)), found)
    found_p = np.empty(keep)
    arguments: tuple[Any, ...] = (
        values,
        flat,
        bits,
        ids,
        top,
        options.get("entropy", False),
        options.get("logs", False),
        squares,
        options.get("spherical", False),
        squares,
        classes,
        edges,
        False,
        1e-3,
        -k,
    )
    if "rounding" in kernel.py_func.__code__.co_varnames:  # (since evalstate1, stop 64)
        # update's: the bins whose sums keep their rounding errors (bin 0 of 15 here)
        rounding = row_kernels.rounding_bins(edges, values.shape[0], single=True) if bins else 0
        arguments += (rounding,)
        out = (*out[:2], np.zeros((4, bins)), out[3])
    return lambda: kernel(*arguments, out, found_p)


def blocks_reading(
    probs: np.ndarray, labels: np.ndarray
) -> tuple[Callable[[Iterator[int]], object], int]:
    """What reads the given blocks of ``EvaluationState.update``'s kernel calls (the
    same blocks, settings and outputs as ``update``'s, ``_row_kernels.blocks_reader``),
    and the number of blocks."""
    from crossent import EvaluationState
    from crossent.calibration import _row_kernels, _state, _summaries

    # (moved from _state to _summaries by branch short10: either tree)
    home = _summaries if hasattr(_summaries, "_block_bounds") else _state
    state = EvaluationState(probs.shape[1])
    predictions = _state.as_predictions(
        probs, labels, form="probs", validate=True, first_row=0, defer=True
    )
    request = state._request(state.spec.bins)
    bounds = home._block_bounds(predictions)
    k = probs.shape[1]
    out = _row_kernels.BlocksTotals.empty(len(bounds) - 1, k, request.bins, request.keep)
    widest = int(np.diff(bounds).max())
    rows = 1 << (widest - 1).bit_length()
    settings = home._kernel_settings(request, probs.dtype, k, predictions.pending, rows)
    return _row_kernels.blocks_reader(probs, labels, bounds, out, settings), len(bounds) - 1


def wall_round(
    probs: np.ndarray, labels: np.ndarray, read: Callable[[Iterator[int]], object], blocks: int
) -> dict[str, float]:
    """One round of ``--wall``: update's blocks read by one thread, then by two threads
    at once (the first half and the rest, started together), then ``update`` itself
    with each kernel call's start and end noted (seconds)."""
    from crossent import EvaluationState
    from crossent.calibration import _row_kernels

    out: dict[str, float] = {}
    start = time.thread_time()
    read(iter(range(blocks)))
    out["kernel, one thread: CPU"] = time.thread_time() - start
    times: dict[int, tuple[float, float]] = {}
    together = threading.Barrier(2)

    def half(which: int) -> None:
        together.wait()
        cpu, wall = time.thread_time(), time.perf_counter()
        read(iter(range(blocks // 2) if which == 0 else range(blocks // 2, blocks)))
        times[which] = (time.thread_time() - cpu, time.perf_counter() - wall)

    other = threading.Thread(target=half, args=(1,))
    other.start()
    half(0)
    other.join()
    out["kernel, two threads: CPU, both"] = times[0][0] + times[1][0]
    out["kernel, two threads: wall"] = max(times[0][1], times[1][1])
    kernels, calls = _row_kernels._kernels(), []
    kernel = kernels["totals"]

    def noted(*arguments: Any) -> Any:
        began = time.perf_counter()
        flagged = kernel(*arguments)
        calls.append((threading.get_native_id(), began, time.perf_counter()))
        return flagged

    kernels["totals"] = noted
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        EvaluationState(probs.shape[1]).update(probs, labels)
        ended, cpu = time.perf_counter(), time.process_time() - cpu
    finally:
        kernels["totals"] = kernel
    caller = threading.get_native_id()
    mine = [c for c in calls if c[0] == caller]
    theirs = [c for c in calls if c[0] != caller] or mine
    last = max(mine[-1][2], theirs[-1][2])
    out["update: wall"] = ended - wall
    out["update: CPU, both threads"] = cpu
    out["update: call to the caller's first block"] = mine[0][1] - wall
    out["update: call to the pool's first block"] = theirs[0][1] - wall
    out["update: caller's and pool's last block ends apart"] = abs(mine[-1][2] - theirs[-1][2])
    out["update: last block end to return"] = ended - last
    return out


def wall_breakdown(probs: np.ndarray, labels: np.ndarray, repeats: int) -> None:
    """``--wall``: where ``update``'s wall time goes (:func:`wall_round`), min and median."""
    from crossent import EvaluationState

    EvaluationState(probs.shape[1]).update(probs, labels)  # compile
    read, blocks = blocks_reading(probs, labels)
    if blocks < 2:
        raise SystemExit("--wall: the input is one block; update reads it in the caller only")
    rounds = [wall_round(probs, labels, read, blocks) for _ in range(repeats)]
    print(f"machine: {cpu_name()}, {vector_width()}, load average {os.getloadavg()[0]:.2f}")
    print(
        f"{probs.shape[0]} x {probs.shape[1]} float32, {blocks} blocks, ms, "
        f"min and median of {repeats}\n"
    )
    print("| what | min | median |\n|---|---:|---:|")
    for key in rounds[0]:
        values = [r[key] * 1e3 for r in rounds]
        print(f"| {key} | {min(values):.2f} | {statistics.median(values):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--against", metavar="SRC", help="also time the crossent package under SRC, interleaved"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="only the stages whose name has one of these"
    )
    parser.add_argument(
        "--leave-out",
        action="store_true",
        help="also time everything with each stage left out in turn (what each costs there)",
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="instead: where update's wall time goes (its kernel on one and two threads, "
        "the Python before and after its blocks)",
    )
    args = parser.parse_args()
    if args.wall:
        wall_breakdown(*data(args.rows, args.classes), args.repeats)
        return
    every = dict(STAGES)
    if args.leave_out:
        every |= {f"everything but {name}": left_out(what) for name, what in LEFT_OUT.items()}
    stages = {
        name: options
        for name, options in every.items()
        if not args.only or any(word in name for word in args.only)
    }

    from crossent.calibration import _row_kernels

    copies = {"": _row_kernels}
    if args.against:
        other = against(args.against)
        copies[" (against)"] = importlib.import_module(f"{other.__name__}.calibration._row_kernels")
    probs, labels = data(args.rows, args.classes)
    # the floor, interleaved with the stages: one read of the probabilities on this
    # thread (bench_evaluation's floor), so that each stage's ratio to it is of one run
    cases: dict[tuple[str, str], Callable[[], object]] = {
        (READ, mark): lambda: np.add.reduce(probs, axis=None) for mark in copies
    }
    cases |= {
        (name, mark): stage_call(module, probs, labels, options)
        for name, options in stages.items()
        for mark, module in copies.items()
    }
    seconds = interleaved_thread_times(cases, args.repeats)

    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"input: {args.rows} x {args.classes} float32 probabilities; one thread, CPU time "
        f"(ms), min and median of {args.repeats} interleaved runs\n"
    )
    print("| stages | " + " | ".join(f"min{m} | median{m} | min x read{m}" for m in copies) + " |")
    print("|---|" + "---:|---:|---:|" * len(copies))
    for name in [READ, *stages]:
        cells = []
        for mark in copies:
            times, read = seconds[(name, mark)], min(seconds[(READ, mark)])
            cells += [
                f"{min(times) * 1e3:.2f}",
                f"{statistics.median(times) * 1e3:.2f}",
                f"{min(times) / read:.1f}",
            ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
