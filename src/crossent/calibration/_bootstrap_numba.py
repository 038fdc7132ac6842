# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The Numba kernel of the binned bootstrap's sums (imported on first use only).

:func:`binned_sums` gives, for each of a batch of replicates of
``_bootstrap.binned_replicates``, each bin's sum of the drawn rows' confidences and hits,

.. math:: \Big(\sum_i c_{r_i}, \ \sum_i h_{r_i}\Big),

with the bits of NumPy's ``conf[rows].sum()`` and ``hits[rows].sum()`` (the expressions
of ``_bootstrap._numpy_sums``, which this replaces), ``rows`` the bin's drawn rows in
their order: each block's rows (its first row plus its drawn offsets), block by block,
then the rows drawn from the bin's remainder.  The rows are swept once a batch: each
block (256 rows, 2 KiB of confidences) is read for every replicate of the batch in turn
while it is in the first-level cache, each drawn row's confidence copied into its
replicate's buffer of one leaf of NumPy's pairwise sum (below) and its hit counted (a
``uint8`` of 0 or 1: the count is the sum's exact value); a full leaf is summed at once,
and once the bin is read the leaves' sums are added as NumPy adds them.  (One replicate
at a time, copying a bin's drawn values and summing the copy, read the 16 MB of
confidences of 2 * 10^6 rows once a replicate and wrote and read 16 MB more: 3.7 ms of
sums a replicate there where a batch of 8 takes 2.6 ms each.)

NumPy sums a float64 array pairwise (``loops_utils.h.src``, ``pairwise_sum``): below 8
values one running sum from :math:`-0`; up to 128 values eight running sums (values
:math:`j, j + 8, \dots`, for :math:`j < 8`) combined as :math:`((r_0 + r_1) + (r_2 +
r_3)) + ((r_4 + r_5) + (r_6 + r_7))`, then the values past the last whole eight added
one by one; above, the halves split at ``m // 2 - (m // 2) % 8`` values summed alike
and added.  The reduction adds that to its initial 0.  The leaves of that recursion
(stretches of at most 128 values, the only places values are read) come in order, so a
leaf can be summed as soon as its values are in.  No ``fastmath``: every addition is
done as written.  ``tests/calibration/test_issue13_bootstrap_blocks.py`` checks
:func:`pairwise_sum` against NumPy's sum for every length up to 3000 and beyond, and
the kernel against the NumPy expressions.

The kernel releases the GIL: the bootstrap's chunks run on threads.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["binned_sums", "pairwise_sum"]


@numba.njit(nogil=True, inline="always")
def _leaf(values, start, m):
    # numpy's pairwise sum of at most 128 values, values[start:start + m]
    if m < 8:
        total = -0.0
        for i in range(start, start + m):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    body = m - m % 8
    for i in range(start + 8, start + body, 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(start + body, start + m):
        total += values[i]
    return total


@numba.njit(nogil=True, cache=True)
def pairwise_sum(values, m):
    # the bits of numpy's values[:m].sum(): its pairwise sum, added to the initial 0.  The
    # recursion (above 128 values: the halves split at m // 2 - (m // 2) % 8 values, each
    # summed so, then added) is walked with explicit stacks: a recursive function loaded
    # from Numba's cache crashes (Numba 0.68).  Tasks: (start, m, 0) sums the stretch,
    # (0, 0, 1) adds the two sums on top of the sums' stack, left + right.
    tasks = np.empty((3 * 64, 3), dtype=np.int64)
    sums = np.empty(64 + 1)
    tasks[0, 0], tasks[0, 1], tasks[0, 2] = 0, m, 0
    pending, done = 1, 0
    while pending > 0:
        pending -= 1
        start, size, kind = tasks[pending, 0], tasks[pending, 1], tasks[pending, 2]
        if kind == 1:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]
        elif size <= 128:
            sums[done] = _leaf(values, start, size)
            done += 1
        else:
            half = size // 2
            half -= half % 8
            tasks[pending, 0], tasks[pending, 1], tasks[pending, 2] = 0, 0, 1
            tasks[pending + 1, 0], tasks[pending + 1, 1] = start + half, size - half
            tasks[pending + 1, 2] = 0
            tasks[pending + 2, 0], tasks[pending + 2, 1], tasks[pending + 2, 2] = start, half, 0
            pending += 3
    return 0.0 + sums[0]


@numba.njit(nogil=True, inline="always")
def _gather(conf, hits, offsets, out):
    # out[j] = conf[offsets[j]] for each j, and the count of hits[offsets[j]] (0 or 1).
    # conf, hits and out are slices indexed from 0: Numba then knows no index is
    # negative, and the loop runs without a wraparound select (1.35 to 0.75 ms a
    # replicate of 10^6 rows); the count is a uint32 (a block draws fewer than 2^32)
    count = np.uint32(0)
    for j in range(offsets.shape[0]):
        row = offsets[j]
        out[j] = conf[row]
        count += np.uint32(hits[row])
    return count


@numba.njit(nogil=True, inline="always")
def _leaf_sizes(m, sizes, tasks):
    # the sizes, in order, of the leaves of pairwise_sum's walk of m values (one leaf
    # of 0 values for m = 0); returns their count
    tasks[0, 0] = m
    pending, leaves = 1, 0
    while pending > 0:
        pending -= 1
        size = tasks[pending, 0]
        if size <= 128:
            sizes[leaves] = size
            leaves += 1
        else:
            half = size // 2
            half -= half % 8
            tasks[pending, 0] = size - half  # the right half, walked after the left
            tasks[pending + 1, 0] = half
            pending += 2
    return leaves


@numba.njit(nogil=True, inline="always")
def _combined(m, leaf_sums, tasks, sums):
    # pairwise_sum's result for m values whose leaves' sums (in order) are leaf_sums: the
    # same walk, each leaf's sum taken from leaf_sums, the halves added left + right
    tasks[0, 0], tasks[0, 1] = m, 0
    pending, done, leaf = 1, 0, 0
    while pending > 0:
        pending -= 1
        size, kind = tasks[pending, 0], tasks[pending, 1]
        if kind == 1:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]
        elif size <= 128:
            sums[done] = leaf_sums[leaf]
            leaf += 1
            done += 1
        else:
            half = size // 2
            half -= half % 8
            tasks[pending, 0], tasks[pending, 1] = 0, 1
            tasks[pending + 1, 0], tasks[pending + 1, 1] = size - half, 0
            tasks[pending + 2, 0], tasks[pending + 2, 1] = half, 0
            pending += 3
    return 0.0 + sums[0]


@numba.njit(nogil=True, inline="always")
def _take(conf, hits, start, offsets, at, count, r, buffer, fill, sizes, leaf, leaf_sums):
    # replicate r reads ``count`` drawn rows of one group (first row ``start``, offsets
    # offsets[at:at + count]) into its leaf buffer, summing each leaf as it fills;
    # returns the hits counted.  fill[r], leaf[r]: its current leaf and how full it is
    hit = np.uint32(0)
    while count > 0:
        size = sizes[r, leaf[r]]
        take = min(count, size - fill[r])
        hit += _gather(
            conf[start:],
            hits[start:],
            offsets[at : at + take],
            buffer[r, fill[r] : fill[r] + take],
        )
        fill[r] += take
        at += take
        count -= take
        if fill[r] == size:
            leaf_sums[r, leaf[r]] = _leaf(buffer[r], 0, size)
            leaf[r] += 1
            fill[r] = 0
    return hit


@numba.njit(nogil=True, inline="always")
def _take_each(conf, hits, start, counts, offsets, at, hit, buffer, fill, sizes, leaf, leaf_sums):
    # _take of one group (first row ``start``) for each replicate r: its counts[r] drawn
    # rows, offsets from at[r] on (advanced past them), hits added to hit[r]
    for r in range(counts.shape[0]):
        count = counts[r]
        if count > 0:
            hit[r] += _take(conf, hits, start, offsets, at[r], count, r, buffer, fill, sizes,
                            leaf, leaf_sums)  # fmt: skip
            at[r] += count


@numba.njit(nogil=True, cache=True)
def binned_sums(
    conf,
    hits,
    block_starts,
    block_counts,
    offsets,
    offset_starts,
    first_block,
    rest_starts,
    rest_counts,
    rest_offsets,
    rest_offset_starts,
    conf_sums,
    hit_sums,
):
    # binned_sums of R replicates at once (block_counts, rest_counts, conf_sums,
    # hit_sums: one row a replicate; replicate r's offsets start at offset_starts[r] of
    # ``offsets``, its remainders' at rest_offset_starts[r] of ``rest_offsets``), the
    # same bits: each block is read for every replicate in turn (while its 2 KiB are in
    # the first-level cache), each replicate's drawn values summed leaf by leaf of
    # pairwise_sum's walk as they come, and the leaves' sums added as that walk adds them
    replicates, bins = conf_sums.shape
    n = conf.shape[0]
    most = n // 64 + 8  # leaves of a bin of m <= n drawn values: at most m / 64 + 1
    sizes = np.empty((replicates, most), dtype=np.int64)
    leaf_sums = np.empty((replicates, most))
    buffer = np.empty((replicates, 128))
    fill = np.zeros(replicates, dtype=np.int64)
    leaf = np.zeros(replicates, dtype=np.int64)
    count_of = np.zeros(replicates, dtype=np.int64)
    hit = np.zeros(replicates, dtype=np.int64)
    at = offset_starts.copy()
    rest_at = rest_offset_starts.copy()
    tasks = np.empty((3 * 64, 2), dtype=np.int64)
    stack = np.empty(64 + 1)
    for b in range(bins):
        for r in range(replicates):
            m = rest_counts[r, b]
            for k in range(first_block[b], first_block[b + 1]):
                m += block_counts[r, k]
            count_of[r] = m
            _leaf_sizes(m, sizes[r], tasks)
            fill[r], leaf[r], hit[r] = 0, 0, 0
        for k in range(first_block[b], first_block[b + 1]):
            _take_each(conf, hits, block_starts[k], block_counts[:, k], offsets, at, hit,
                       buffer, fill, sizes, leaf, leaf_sums)  # fmt: skip
        _take_each(conf, hits, rest_starts[b], rest_counts[:, b], rest_offsets, rest_at, hit,
                   buffer, fill, sizes, leaf, leaf_sums)  # fmt: skip
        for r in range(replicates):
            if count_of[r] == 0:  # one leaf of no values: -0.0, as pairwise_sum's
                leaf_sums[r, 0] = _leaf(buffer[r], 0, 0)
            conf_sums[r, b] = _combined(count_of[r], leaf_sums[r], tasks, stack)
            hit_sums[r, b] = np.float64(hit[r])
