# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The Numba kernel of the binned bootstrap's sums (imported on first use only).

:func:`binned_sums` gives, for one replicate of ``_bootstrap.binned_replicates``, each
bin's sum of the drawn rows' confidences and hits,

.. math:: \Big(\sum_i c_{r_i}, \ \sum_i h_{r_i}\Big),

with the bits of NumPy's ``conf[rows].sum()`` and ``hits[rows].sum()`` (the expressions
of ``_bootstrap._numpy_sums``, which this replaces), ``rows`` the bin's drawn rows in
their order: each block's rows (its first row plus its drawn offsets), block by block,
then the rows drawn from the bin's remainder.  Each drawn row's confidence is copied
into a buffer as it is read from its block (a block is 256 rows, 2 KiB of confidences:
the reads stay in the first-level cache), its hit counted (a ``uint8`` of 0 or 1: the
count is the sum's exact value), and the buffer summed in NumPy's order.

NumPy sums a float64 array pairwise (``loops_utils.h.src``, ``pairwise_sum``): below 8
values one running sum from :math:`-0`; up to 128 values eight running sums (values
:math:`j, j + 8, \dots`, for :math:`j < 8`) combined as :math:`((r_0 + r_1) + (r_2 +
r_3)) + ((r_4 + r_5) + (r_6 + r_7))`, then the values past the last whole eight added
one by one; above, the halves split at ``m // 2 - (m // 2) % 8`` values summed alike
and added.  The reduction adds that to its initial 0.  No ``fastmath``: every addition
is done as written.  ``tests/calibration/test_issue13_bootstrap_blocks.py`` checks
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


@numba.njit(nogil=True, cache=True)
def binned_sums(
    conf,
    hits,
    block_starts,
    block_counts,
    offsets,
    first_block,
    rest_starts,
    rest_counts,
    rest_offsets,
    buffer,
    conf_sums,
    hit_sums,
):
    # bin b's drawn rows: for each of its blocks k (first_block[b] <= k < first_block[b +
    # 1]) block_starts[k] + the block's block_counts[k] next offsets, then rest_starts[b]
    # + its rest_counts[b] next rest_offsets; conf_sums[b] and hit_sums[b] are the bits
    # of numpy's conf[rows].sum() and hits[rows].sum() (hits 0 or 1: their count)
    taken, rest_taken = 0, 0
    for b in range(conf_sums.shape[0]):
        m, hit = 0, 0
        for k in range(first_block[b], first_block[b + 1]):
            start, count = block_starts[k], block_counts[k]
            hit += _gather(
                conf[start:], hits[start:], offsets[taken : taken + count], buffer[m : m + count]
            )
            taken += count
            m += count
        start, count = rest_starts[b], rest_counts[b]
        hit += _gather(
            conf[start:],
            hits[start:],
            rest_offsets[rest_taken : rest_taken + count],
            buffer[m : m + count],
        )
        rest_taken += count
        m += count
        conf_sums[b] = pairwise_sum(buffer, m)
        hit_sums[b] = np.float64(hit)
