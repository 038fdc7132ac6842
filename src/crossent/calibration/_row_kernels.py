r"""Fused per-row summaries of stored probabilities (optional: needs Numba).

One pass over each row of probabilities ``(n, classes)`` in their stored dtype (float32
or float64, read as float64, never copied) gives every number the evaluation metrics
average (:mod:`._summaries`), and validates the row on the way:

* :math:`p_y`, the probability of the label;
* :math:`\sum_{k \ne y} p_k^2`, summed without :math:`p_y` (so that the Brier score of a
  near-certain correct prediction keeps its digits: no :math:`\sum_k p_k^2 - p_y^2`);
* when asked, the top-label confidence :math:`\max_k p_k` and its class (the first
  maximum), compared as bit patterns (for non-negative floats the integer order is the
  float order);
* optionally the entropy :math:`-\sum_k p_k \log p_k` (:math:`0 \log 0 = 0`), with a
  logarithm written as arithmetic (:func:`log_positive`, fdlibm's, within 1 ulp) so
  that the loop vectorises: Numba's ``math.log`` calls the C library for each entry.
  The terms of a chunk of rows (:data:`_CHUNK_ENTRIES` entries, still in cache) are
  taken in one flat loop, so short rows (10 classes) vectorise as well as long ones;
* whether the row is *suspect*: an entry that is NaN or outside [0, 1], or a float64
  row sum farther from 1 than ``limit``.  The caller passes a ``limit`` a little below
  the validation tolerance, so every row the full check would reject is suspect; on any
  suspect row the caller runs the full check, which names the entry (or passes).
  A label outside ``[-classes, classes)`` stops the kernel before it reads outside the
  row: an ``IndexError`` naming the row; negative labels count from the end, as in
  NumPy's indexing.  Labels whose range check was deferred to this pass (the public
  callers', ``validate`` or not: issue 13) are held to ``[0, classes)``
  (``labels_from_zero``), and the caller's full check names the first bad one.

A chunk of rows goes through a few short loops, each without a flag that changes it
(the caller picks the loops; LLVM does not always take an invariant test out of a
loop): the labels' range, one flat loop; the rows' sums, squares and labels'
probabilities, one loop over a row's classes of sums and selects (``fastmath`` without
``nnan``/``ninf``: a NaN must stay visible to the comparisons); the entries' check,
one flat loop over the chunk for rows of at most :data:`_SHORT_ROWS` classes
(vectorised across rows), in the row's loop for longer ones; the top label, an integer
maximum of each float32 entry's bits packed with its index (:data:`_PACKED_CLASSES`),
or the maximum of the bits and a search for its first index (float64); for rows of at
most :data:`_SHORT_ROWS` float32 classes whose top label is asked, the row's sum, its
sum of squares (when asked) and its packed maximum in one loop (short chains at 10
classes, overlapped: ECE kernel 22 to 16 ms, 10^6 x 10, one thread; with the squares,
``EvaluationState.update``'s, 2.5 ms less than the sums' loop then the top label's),
the float64 entry's bits packed with its index, so that the maximum's high bits are
the confidence (no second read of the row).  The squares are the same bits in either
loop (both vectorised alike; test_issue13_fused_squares pins it).  Flat loops run
over slices indexed from 0: Numba cannot prove ``flat[start + t]`` non-negative and
its wraparound select keeps such loads scalar.  Measured, one thread, 10^6 x 10
float32 on the 2-core AMD EPYC (min of interleaved runs, loaded machine), against one
loop doing all of it under flags: the kernel of ``negative_log_likelihood`` 18 to 12
ms, of ``calibration_error`` 40 to 28 ms, of ``EvaluationState.update`` 89 to 74 ms;
10^5 x 1000 unchanged.  The kernel releases the GIL: the caller runs blocks of rows on
threads.

float32 rows of at most :data:`_TILE_CLASSES` classes (10-class probabilities, the
common case) take none of these row loops: each row is one vector tile of
:data:`_TILE_CLASSES` consecutive entries read from the row's start (written as LLVM
vector instructions, ``_row_kernels_numba.tile_row``: Numba runs no SLP vectoriser,
and a loop of 16 is unrolled into scalar code before the loop vectoriser sees it), the
lanes past the row's classes set aside; from it the row's float64 sum, its sum of
squares but the label's (both as a fixed halving tree, lane :math:`j` plus lane
:math:`j + 8`, then 4, 2, 1, no fast-math flag: the same bits at any vector width and
in a fresh or a cached kernel), the packed maximum of the top label (the same keys as
above) and the entries' check, each a few vector instructions.  The rows and their
labels are prefetched 2 KiB ahead, and the block's last rows, whose tile would read
past its end, are read from a copy.  The squares' order is not the loops' (the Brier
score of such rows moved by an ulp or so; within a few ulps of ``math.fsum`` either
way); every other number is the same.  Measured, one thread, 10^6 x 10 float32 on the
2-core Emerald Rapids (min of 11 interleaved with main's, load 4.5), the checks and
row sums of ``EvaluationState.update``'s kernel 9.9 to 4.9 ms, the whole kernel 30.9
to 25.9 ms (``benchmarks/bench_update_stages.py``, with the per-chunk functions
compiled without reference counting, ``_row_kernels_numba.chunk_rows``).

:func:`block_totals` forms, in the same compiled pass over a block, everything the
metrics average: the rows are taken in chunks of at most :data:`_PART_ROWS` rows (fewer
for long rows: 32768 entries, :data:`_CHUNK_ENTRIES` with the entropy, whose terms are
buffered), whose per-row numbers stay in cached buffers and are summed at once: the
labels' logarithms (:func:`log_positive`, vectorised; only when a surprisal is asked),
the surprisal summed plainly over the chunk (vectorised, reassociated), the Brier and
spherical scores as a balanced pairwise tree (each row's spherical score formed in the
row pass: on AVX-512 in the grouped tiles, whose loop leaves the divider idle, so that
its square root and division overlap the tiles' shuffles; the same expression and
bits as a loop of its own), the entropy terms of a chunk without a
suspect row in 256 interleaved running sums then a pairwise tree over them (each row's
entropy, and its clip at 0, only for a chunk with a suspect row: for entries in [0, 1]
the clip changes nothing); orders that no compilation changes (the same bits whether
the kernel was compiled in this process or loaded from Numba's cache, which the
reassociated sums were not). Then the chunks added with Neumaier's compensation, the
hits, per-class counts and surprisals, the equal-width bins of the confidence (the
comparisons of :func:`._binning.assign_uniform_bins`, the edges formed as
:math:`j \cdot e_1`, which is what ``numpy.linspace`` computes; each bin's confidences
summed in row order, its count and hits tallied as integers in four interleaved
histograms, so that consecutive rows of one bin do not wait on each other's store) and
the rows of largest surprisal (the most surprising). No per-row array of the block
is written; NumPy would make about twenty passes over per-row arrays for these.

The logarithm costs about 1.8 ns an entry on the 2-core AMD EPYC (AVX2, four doubles
per instruction, 128-bit floating-point units), about as much as the rest of the row
pass at 10 classes: it bounds the entropy, hence ``EvaluationState.update``.  The loop
is bound by the latency of the logarithm's dependency chain, not by its division:
four logarithms in flight and fdlibm's :math:`R(z)` by Estrin's scheme (rather than
two Horner halves) took it from 2.1 to 1.8 ns an entry (the logarithm's last bit
changed on about 0.3% of the values, still within 1 ulp: max 0.86 measured).  Measured
no faster: the same loop with the division replaced by a float32 reciprocal or a
minimax reciprocal refined by a Neumann series (3.7 to 4.0 ns: a longer chain), and a
degree-17 polynomial in :math:`f = m - 1` (2.0 ns, relative error 2.2e-14); one
stream without the division at all (a wrong logarithm) takes 2.0 ns against 2.4 ns
with it.

On Intel's AVX-512 cores LLVM's tuning prefers 256-bit vectors; the loops whose
results do not depend on the vector width (the entropy terms, the labels' and entries'
checks, the scores and the bins of :func:`block_totals`, none reassociated) ask for
512-bit ones (``crossent._intrinsics_numba.prefer_wide_vectors``), the reassociated
row sums (squares, entropies) keep their 256-bit order and bits.  Measured, 10^6 x 10
float32 on the 2-core Emerald Rapids, one thread, against the 256-bit loops: the
``EvaluationState.update`` kernel 36.5 to 33.3 ms, its entropy terms 12.8 to 10.0 ms
(about 1 ns an entry; 0.5 ns the loop without the logarithm), bound by the 512-bit
floating-point ports rather than by the division (the loop without it: 13% faster).

The kernels are in :mod:`._row_kernels_numba`, which imports Numba at its top.
Importing this module does not import Numba; :func:`available` looks for it, and the
first call of a kernel imports that module (whose kernels compile on their first call,
or load from Numba's on-disk cache).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._read_only import read_only

__all__ = [
    "BlocksTotals",
    "available",
    "binary_bins",
    "block_totals",
    "blocks_reader",
    "log_positive",
    "merge_blocks",
    "rounding_bins",
    "row_summaries",
    "surprisal",
]

_PART_ROWS = 256
"""Rows whose terms are summed plainly (vectorised) before the compensated sum of the
parts (:func:`block_totals`)."""

_SHORT_ROWS = 64
"""Rows of at most this many classes have their entries checked in one flat loop over
a chunk of rows (vectorised across rows); longer rows one by one, after their sum."""

_PACKED_CLASSES = 1 << 16
"""Up to this many classes the top label of float32 rows is found by one integer
maximum of the bits and the index packed together (float64 rows, or more classes: a
maximum, then a search for its first index)."""

_TILE_CLASSES = 16
"""float32 rows of at most this many classes are read as one vector of this many
entries each (``_row_kernels_numba.tile_row``): no loop over a row's classes."""

_CHUNK_ENTRIES = 4096
"""Entries of a chunk of rows whose entropy terms are taken in one flat loop (the
float64 terms, 32 KiB, stay in L1 cache)."""


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the kernel compiles on first use)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]]:
    """The compiled kernels by name (imports Numba, once)."""
    from . import _row_kernels_numba as kernels

    return {
        "summaries": kernels.summaries,
        "log": kernels.log_array,
        "surprisal": kernels.surprisal_array,
        "totals": kernels.totals,
        "merge": kernels.merge_blocks,
        "binary_bins": kernels.binary_bins,
    }


def log_positive(x: np.ndarray) -> np.ndarray:
    """The kernel's logarithm of positive finite float64 values (for tests)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _kernels()["log"](x, out)
    return out


def surprisal(p: np.ndarray) -> np.ndarray:
    """:math:`-\\log p` of float64 values by the kernels' logarithm, as :func:`block_totals`
    sums it (``inf`` at 0, ``-inf`` at ``inf``, NaN for NaN or a negative value)."""
    p = np.ascontiguousarray(p, dtype=np.float64)
    out = np.empty_like(p)
    _kernels()["surprisal"](p, out)
    return out


def row_summaries(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    top: bool,
    entropy: bool,
    limit: float,
    squares: bool = True,
    first_row: int = 0,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(suspect rows, p_label, sum_{k != y} p_k^2, confidence, predicted, entropy)`` of
    float32 or float64 rows (confidence and predicted None unless ``top``, entropy None
    unless ``entropy``; without ``entropy``, ``squares=False`` leaves the sums of
    squares out, as 0; ``first_row`` numbers the rows in the message of a label out
    of range)."""
    n = values.shape[0]
    values, flat, bits, ids = _kernel_arguments(values, labels)
    floats = np.empty((4, n))
    predicted = np.empty(n if top else 0, dtype=np.intp)
    suspect = _kernels()["summaries"](
        values, flat, bits, ids, top, squares or entropy, entropy, limit, floats, predicted
    )
    _raise_for_label(suspect, labels, values.shape[1], first_row)
    return (
        int(suspect),
        floats[0],
        floats[1],
        floats[2] if top else None,
        predicted if top else None,
        floats[3] if entropy else None,
    )


def block_totals(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    top: bool,
    entropy: bool,
    limit: float,
    spherical: bool,
    squares: bool,
    classes: bool,
    edges: np.ndarray | None,
    left: bool,
    keep: int,
    surprisal: bool = True,
    labels_from_zero: bool = False,
    first_row: int = 0,
    errors: bool = False,
) -> tuple[int, np.ndarray, tuple[np.ndarray, ...]]:
    """The sums over a block of rows that the evaluation metrics need, in one pass over
    the rows: ``(suspect rows, found_p, (sums, class_stats, bin_stats, found))``.

    The rows are taken in chunks of at most :data:`_PART_ROWS` rows (and about
    :data:`_CHUNK_ENTRIES` entries), each summarised into buffers that stay in cache and
    summed at once: no per-row array of the block is written.
    ``sums``: the surprisals :math:`-\\log p_y` (the kernel's logarithm, within 1 ulp;
    0 unless ``surprisal`` or ``classes``),
    Brier scores :math:`\\sum_{k \\ne y} p_k^2 + (1 - p_y)^2` (:math:`1 - p_y` is exact
    for :math:`p_y \\ge 1/2`), spherical scores (0 unless ``spherical``), entropies (0
    unless ``entropy``) and hits (0 unless ``top``), each summed over a chunk (the
    surprisal plainly, the scores as a pairwise tree, the entropy terms in 256
    interleaved running sums then a tree, or per row for a chunk with a suspect row,
    each row's entropy clipped at 0), the chunks with
    Neumaier's compensation (the Brier and spherical
    scores need ``squares``, which are otherwise left out).
    ``class_stats``: per class (``classes``), the count and summed surprisal of the
    rows of that label.
    ``bin_stats``: per bin of ``edges`` (uniform edges, ``top`` only; ``left``: bins
    ``[a, b)``), the count, the summed confidence and the hits, in row order (as
    ``numpy.bincount``), and, with ``errors``, the sum of the summed confidence's
    rounding errors, each exact (``BinStatistics.error``; 0 without, or where the
    additions are exact: :func:`rounding_bins`).  ``found``: the rows of the ``keep``
    largest surprisals (the kernel's, as summed: not the smallest :math:`p_y`, two of
    which may round to one surprisal), earlier rows first on ties, -1 where the block
    has fewer;
    ``found_p`` their :math:`p_y`.  A label outside ``[-classes, classes)`` (outside
    ``[0, classes)`` with ``labels_from_zero``, for labels whose check was deferred to
    this pass) is an ``IndexError`` naming the row counted from ``first_row``.
    """
    values, flat, bits, ids = _kernel_arguments(values, labels)
    k = values.shape[1]
    settings = _TotalsSettings.of(
        k,
        top=top,
        entropy=entropy,
        limit=limit,
        spherical=spherical,
        squares=squares,
        classes=classes,
        edges=edges,
        left=left,
        surprisal=surprisal,
        labels_from_zero=labels_from_zero,
        errors=errors,
        rows=values.shape[0],
        single=values.dtype == np.float32,
    )
    out = (
        np.empty(5),
        np.zeros((2, settings.classes)),
        np.zeros((4, settings.bins)),
        np.full(keep, -1, dtype=np.intp),
    )
    found_p = np.empty(keep)
    suspect = _kernels()["totals"](values, flat, bits, ids, *settings, out, found_p)
    _raise_for_label(suspect, labels, k, first_row)
    return int(suspect), found_p[: int(np.count_nonzero(out[3] >= 0))], out


def binary_bins(
    p: np.ndarray, labels: np.ndarray, edges: np.ndarray, *, left: bool, errors: bool
) -> tuple[np.ndarray, int]:
    r"""The top-label bins ``(4, bins)`` (count, confidence sum, hits, and with
    ``errors`` the confidence sums' rounding errors; zeros without) and the hits of the
    rows :math:`[\mathrm{fl}(1 - p), p]` of a 1-D binary column ``p`` (float64) with
    labels 0 or 1, read from ``p`` itself: :func:`block_totals`' numbers of those rows
    (``top``, uniform ``edges``, the float64 rows' ``rounding``: every bin), the same
    bits, without the rows formed or their entropy, limit and label checks run
    (measured on 10^6 rows, the loaded Emerald Rapids, CPU time: about 4 against 19 ms,
    in blocks of 2^15 rows)."""
    p = read_only(np.ascontiguousarray(p, dtype=np.float64))
    labels = read_only(np.ascontiguousarray(labels, dtype=np.intp))
    edges = read_only(np.asarray(edges, dtype=np.float64))
    bins = edges.shape[0] - 1
    bin_stats = np.zeros((4, bins))
    hits = _kernels()["binary_bins"](p, labels, edges, left, bins if errors else 0, bin_stats)
    return bin_stats, int(hits)


def merge_blocks(
    running: np.ndarray,
    classes: int,
    at: int,
    with_errors: bool,
    class_count: np.ndarray,
    found: np.ndarray,
    found_p: np.ndarray,
    bounds: list[int],
    keep: int,
    *,
    padded: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(total, counts, errors, values, rows)``: the stacked blocks' sums of
    :class:`BlocksTotals` (``running``, its first row the caller's sums; ``found`` and
    ``found_p``; block ``b``'s rows from ``bounds[b]``) added up in one compiled call
    (``_row_kernels_numba.merge_blocks``, which states the order of every addition):
    each column's total, the class counts ``class_count`` plus the blocks' (the first
    ``classes`` columns), the bins' rounding errors (from column ``at``: count,
    confidence sum, hits, errors; empty without ``with_errors``) and the ``keep`` most
    surprising rows, largest surprisal first, then lowest row.  The kernel reads
    ``running`` as the first columns of its C-contiguous padded rows (its base, where it
    is one): loops over a strided view did not vectorise (96 blocks of 2065 columns,
    hot: 88 against 50 us).  ``padded``: those rows where the caller holds them
    (:attr:`BlocksTotals.padded`, whose ``running`` they hold by construction), not
    checked again (the checks' cold-cache attribute calls, ``ctypes`` among them, took
    about 20 us of a 10^6 x 10 ``update``; issue 13, branch upd16)."""
    rows, width = running.shape
    if padded is not None:
        pass
    elif not (  # (BlocksTotals.running: the first columns of C-contiguous rows)
        isinstance(padded := running.base, np.ndarray)
        and padded.ndim == 2
        and padded.flags.c_contiguous
        and padded.shape[0] == rows
        and padded.shape[1] >= width
        and padded.dtype == np.float64
        and padded.strides == running.strides
        and padded.ctypes.data == running.ctypes.data
    ):
        padded = np.ascontiguousarray(running, dtype=np.float64)
    if found.shape[1] == 0:  # (keep=0: one slot of -1, a strided view as BlocksTotals'
        # found of any other keep; a view with no columns would be typed contiguous, a
        # second compiled signature)
        found = np.full((found.shape[0], 2), -1, dtype=np.intp)[:, :1]
        found_p = np.zeros((found.shape[0], 2))[:, :1]
    return _kernels()["merge"](
        padded,
        width,
        classes,
        at,
        with_errors,
        class_count,
        found,
        found_p,
        np.array(bounds, dtype=np.intp),
        min(keep, found.size),  # (a state's keep may pass int64: keep=10**30)
    )


@dataclass(frozen=True)
class BlocksTotals:
    """:func:`block_totals`' outputs of ``B`` blocks, stacked (row ``b``: block ``b``).

    ``sums`` ``(B, 5)``, ``class_stats`` ``(B, 2, classes or 0)``, ``bin_stats``
    ``(B, 4, bins)`` (count, confidence sum, hits, the sum's rounding errors),
    ``found`` ``(B, keep)`` (-1 past the block's rows), ``found_p`` ``(B, keep)`` and
    ``suspect`` ``(B,)``: each block's suspect rows, or ``-1 - row``
    for a label out of range (rows of the block), as :func:`block_totals` reads them.

    The float outputs of a block are one row of one array, in the order class counts,
    class surprisals, ``sums``, bins, ``found_p``, after a first row of zeros (no
    block's): ``running`` ``(1 + B, 2 classes + 5 + 4 bins)``, the rows from the class
    counts to the bins, holds every float sum that the caller adds up block after block
    (one running sum over the blocks, its first row the caller's starting sums, instead
    of one a kind of sum; a column's additions are the same).
    """

    sums: np.ndarray
    class_stats: np.ndarray
    bin_stats: np.ndarray
    found: np.ndarray
    found_p: np.ndarray
    suspect: np.ndarray
    running: np.ndarray
    padded: np.ndarray | None = None
    """The C-contiguous rows whose first columns ``running`` is (:func:`_apart`'s),
    for :func:`merge_blocks` (None: found there)."""

    @classmethod
    def empty(cls, blocks: int, classes: int, bins: int, keep: int) -> BlocksTotals:
        """Outputs for ``blocks`` blocks (zeroed where the kernel adds into them), each
        block's floats, and its ``found``, on cache lines of their own (:func:`_apart`):
        two arrays, each block's part of every output a C-contiguous view."""
        surprisals, sums_end = 2 * classes, 2 * classes + 5
        bins_end = sums_end + 4 * bins
        rows = _apart((1 + blocks, bins_end + keep), 0.0)
        floats = rows[1:]
        return cls(
            floats[:, surprisals:sums_end],
            floats[:, :surprisals].reshape(blocks, 2, classes),
            floats[:, sums_end:bins_end].reshape(blocks, 4, bins),
            _apart((blocks, keep), -1),
            floats[:, bins_end:],
            np.zeros(blocks, dtype=np.int64),
            rows[:, :bins_end],
            rows.base,
        )


_LINE_BYTES = 64
"""A cache line (x86, most Arm cores): blocks' outputs are kept this far apart."""


def _apart(shape: tuple[int, int], fill: float) -> np.ndarray:
    """An array of ``shape`` filled with ``fill`` (float64, or intp for an integral
    ``fill``) whose rows are each C-contiguous and at least a cache line apart, rounded
    to two lines: threads that write different rows at once (the kernel's per-class
    and per-bin sums, row after row of its block) never write the same line (nor its
    neighbour, which some CPUs fetch in pairs).  A slice of wider rows (no copy)."""
    dtype = np.dtype(np.intp if isinstance(fill, int) else np.float64)
    line = 2 * _LINE_BYTES // dtype.itemsize
    width = -(-(shape[1] + _LINE_BYTES // dtype.itemsize) // line) * line
    rows = np.zeros((shape[0], width), dtype)
    if fill:
        rows.fill(fill)  # (numpy.full, Python around copyto, took 15 us after a pass, this 8)
    return rows[:, : shape[1]]


def blocks_reader(
    values: np.ndarray,
    labels: np.ndarray,
    bounds: list[int],
    out: BlocksTotals,
    settings: _TotalsSettings,
) -> Callable[[Iterator[int]], int | None]:
    """What reads, into ``out``, :func:`block_totals` of each block that it is given, of
    C-contiguous ``values`` (block ``b``: rows ``bounds[b]`` to ``bounds[b + 1] - 1``):
    each one kernel call on the block's rows as :func:`block_totals` makes it (the same
    arguments, hence the same numbers), written into row ``b`` of ``out``
    (:meth:`BlocksTotals.empty`; ``keep`` is its width); ``settings`` are
    :func:`block_totals`' options but ``keep`` (:meth:`_TotalsSettings.of`).  The
    reader may be called by several threads at once with one shared iterator of blocks
    (``EvaluationState.update``'s: each takes the next block not yet taken), since a
    block's numbers do not depend on the thread that reads it.

    The reader returns the first block read with a suspect row or a label out of range
    (its ``out.suspect`` says which), so that the caller checks it before going on (with
    the same blocks), or None once they are exhausted.  Between two kernel calls only
    the rows' slices are formed; the kernel's arguments and settings are formed here,
    once, in the caller's thread, before any thread reads (the pool's thread starts its
    first block sooner).  The Python around each block's call (a thread-pool task,
    :func:`block_totals`' arrays and arguments, the results' objects, the state's adds)
    runs in caches that the block's pass has just filled with rows: measured (10^6 x 10
    float32, 10 blocks, 2-core AMD EPYC, loaded), ``EvaluationState.update`` took 1.2
    to 1.5 ms of CPU time more than its kernel calls alone, about 0.2 ms of which that
    Python takes in a warm loop; reading each thread's blocks in one call, at most 0.3
    ms more.
    """
    values, flat, bits, ids = _kernel_arguments(values, labels)
    k = values.shape[1]
    kernel = _kernels()["totals"]
    sums, class_stats, bin_stats, found = out.sums, out.class_stats, out.bin_stats, out.found
    found_p, suspect = out.found_p, out.suspect

    def read(blocks: Iterator[int]) -> int | None:
        for block in blocks:
            start, end = bounds[block], bounds[block + 1]
            flagged = kernel(
                values[start:end],
                flat[start * k : end * k],
                bits[start:end],
                ids[start:end],
                *settings,
                (sums[block], class_stats[block], bin_stats[block], found[block]),
                found_p[block],
            )
            if flagged:
                suspect[block] = flagged
                return block
        return None

    return read


class _TotalsSettings(NamedTuple):
    """The ``totals`` kernel's arguments between the rows and the outputs, in its order
    (one home for :func:`block_totals` and :func:`blocks_reader`)."""

    top: bool
    entropy: bool
    logs: bool  # the surprisals, also for the per-class sums
    squares: bool
    spherical: bool
    squares_again: bool  # the kernel's with_squares and with_brier: both ``squares``
    classes: int  # classes summed per class (0: none)
    edges: np.ndarray  # the bins' float64 edges (one 0: no bins)
    left: bool
    limit: float
    low: int  # the smallest label allowed: 0 where the labels' check is pending, else -k
    rounding: int  # the bins whose sums' rounding errors are kept (rounding_bins)

    @classmethod
    def of(
        cls,
        k: int,
        *,
        top: bool,
        entropy: bool,
        limit: float,
        spherical: bool,
        squares: bool,
        classes: bool,
        edges: np.ndarray | None,
        left: bool,
        surprisal: bool = True,
        labels_from_zero: bool = False,
        errors: bool = False,
        rows: int = 0,
        single: bool = False,
    ) -> _TotalsSettings:
        """The settings of :func:`block_totals`' keyword arguments (but ``keep``) for
        rows of ``k`` classes, blocks of at most ``rows`` rows, float32 rows if
        ``single`` (the bins' rounding errors kept if ``errors``: :func:`rounding_bins`)."""
        bins = 0 if edges is None or not top else edges.shape[0] - 1
        return cls(
            top,
            entropy,
            surprisal or classes,
            squares,
            spherical,
            squares,
            k if classes else 0,
            _NO_EDGES if bins == 0 else read_only(np.asarray(edges, dtype=np.float64)),
            left,
            limit,
            0 if labels_from_zero else -k,
            rounding_bins(edges, rows, single=single)
            if errors and bins and edges is not None
            else 0,
        )

    @property
    def bins(self) -> int:
        """The number of bins (0: none)."""
        return self.edges.shape[0] - 1


def rounding_bins(edges: np.ndarray, rows: int, *, single: bool) -> int:
    r"""How many of the equal-width bins of ``edges`` (:math:`e_b = b \cdot e_1`, as
    :func:`._binning.uniform_edges`; the kernel compares with those products) need the
    rounding errors of their confidence sums found (TwoSum, the ``totals`` kernel's
    ``rounding``) in a block of at most ``rows`` rows: bins ``0`` to
    ``rounding_bins - 1``.  Every bin for float64 rows (``single=False``).

    For float32 rows the others' sums are exact.  Let :math:`t = 2^j`,
    :math:`j = \lceil \log_2 \mathit{rows} \rceil - 30`, and :math:`b \ge 1` a bin
    with :math:`e_b \ge t`.  Its confidences :math:`c` are at least :math:`e_b` (the
    bins' comparisons: :math:`c \ge e_b`, or :math:`c > e_b` closed on the right) and,
    the kernel checks, at most 1 (a chunk with a larger or NaN confidence makes it keep
    every bin's errors from there on).  A float32 :math:`c \ge 2^j` (a normal number:
    :math:`j \ge -30`) has a 24-bit significand and an exponent of at least :math:`j`,
    so it is an integer multiple of :math:`u = 2^{j - 23}`.  Every partial sum of the
    bin (from 0, in the kernel's float64) is then a multiple of :math:`u` of at most
    :math:`\mathit{rows} \le 2^{j + 30} = 2^{53} u`: an integer of at most
    :math:`2^{53}` times a power of two, a float64, so every addition is exact (its
    error :math:`+0`, as the kernel's TwoSum would find).  ``rounding_bins`` is the
    first such bin (``bins`` if none); bin 0 (:math:`e_0 = 0`) always rounds.  For
    10 bins, the lowest edge 0.1 reaches :math:`t` while ``rows`` is at most
    :math:`2^{26}`, so only bin 0 (top-label confidences below 0.1, rare) needs
    TwoSum; test_evalstate2_rounding_bins checks the bound at its edge.
    """
    bins = edges.shape[0] - 1
    if not single or bins <= 1:
        return bins
    threshold = 2.0 ** ((max(rows, 1) - 1).bit_length() - 30)
    step = float(edges[1])
    first = min(max(1, int(threshold / step) - 1), bins)
    while first < bins and float(first) * step < threshold:  # the kernel's b * e_1
        first += 1
    return first


_NO_EDGES = read_only(np.zeros(1))
"""The ``totals`` kernel's edges where no bins are asked (read-only, as every array the
kernels read: :func:`_kernel_arguments`)."""


def _kernel_arguments(
    values: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows (C-contiguous), their flat view, their bits and the labels as intp,
    C-contiguous too: strided labels (``labels[::-1]``, a column of a table) otherwise
    compiled the kernels again for labels of layout "A" (seconds, on first use; issue
    13), where a copy of the labels costs microseconds.  All of them read-only views
    (:func:`crossent._read_only.read_only`): a read-only array (``crossent report``'s
    memory maps) otherwise compiled the kernels again (22 s of CPU time, float32)."""
    values = read_only(np.ascontiguousarray(values))
    bits = values.view(np.int32 if values.dtype == np.float32 else np.int64)
    labels = read_only(np.ascontiguousarray(labels, dtype=np.intp))
    return values, values.reshape(-1), bits, labels


def _raise_for_label(suspect: int, labels: np.ndarray, classes: int, first_row: int = 0) -> None:
    """The kernels' report of a label out of range (-1 - row) as NumPy's IndexError,
    naming the row counted from ``first_row``, the number of the block's first row in
    the whole data (the row in the block alone named the wrong row of a batch of
    several blocks; issue 13)."""
    if suspect < 0:
        row = -1 - int(suspect)
        raise IndexError(
            f"label {labels[row]} of row {first_row + row} is out of range for {classes} classes"
        )
