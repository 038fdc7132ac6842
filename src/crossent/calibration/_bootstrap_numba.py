# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The Numba kernel of the binned bootstrap's gather (imported on first use only).

:func:`gathered_sums` gives, for the drawn rows ``rows`` of one bin,

.. math:: \Big(\sum_i c_{r_i}, \ \sum_i h_{r_i}\Big),

the bits that ``(conf + 1j * hits)[rows].sum()`` gives in NumPy (the expression it
replaces in ``_bootstrap.binned_replicates``), without the gathered copy: 16 bytes a
drawn row written and read again, and a random read of 16 bytes a row where this reads
8 (the confidence) and 1 (the hit, a ``uint8``).  NumPy sums a complex array pairwise
(``loops_utils.h.src``, ``pairwise_sum`` of complex: the real and imaginary parts as
interleaved scalars, ``n`` = twice the count): below 8 scalars one running sum from
:math:`-0`; up to 128 scalars (64 values) four running sums of the real parts (values
:math:`j, j + 4, \dots`, for :math:`j < 4`) combined as :math:`(r_0 + r_1) + (r_2 +
r_3)`, then the values past the last whole four added one by one; above, the halves
split at ``m - m % 8`` scalars (a multiple of 4 values) summed alike and added.  The
reduction adds that to its initial 0.  No ``fastmath``: every addition is done as
written.  ``tests/calibration/test_issue13_bootstrap_gather.py`` checks the bits
against NumPy's expression for every count up to 3000 and beyond.

The kernel releases the GIL: the bootstrap's chunks run on threads.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gathered_sums"]


@numba.njit(nogil=True, inline="always")
def _leaf(conf, hits, rows, start, m):
    # numpy's pairwise sum of at most 64 complex values conf[r] + 1j hits[r], r in
    # rows[start:start + m] (the module docstring)
    if m < 4:
        real, imag = -0.0, -0.0
        for i in range(start, start + m):
            r = rows[i]
            real += conf[r]
            imag += np.float64(hits[r])
        return real, imag
    a, b, c, d = rows[start], rows[start + 1], rows[start + 2], rows[start + 3]
    r0, r1, r2, r3 = conf[a], conf[b], conf[c], conf[d]
    i0, i1 = np.float64(hits[a]), np.float64(hits[b])
    i2, i3 = np.float64(hits[c]), np.float64(hits[d])
    body = m - m % 4
    for i in range(start + 4, start + body, 4):
        a, b, c, d = rows[i], rows[i + 1], rows[i + 2], rows[i + 3]
        r0 += conf[a]
        i0 += np.float64(hits[a])
        r1 += conf[b]
        i1 += np.float64(hits[b])
        r2 += conf[c]
        i2 += np.float64(hits[c])
        r3 += conf[d]
        i3 += np.float64(hits[d])
    real = (r0 + r1) + (r2 + r3)
    imag = (i0 + i1) + (i2 + i3)
    for i in range(start + body, start + m):
        r = rows[i]
        real += conf[r]
        imag += np.float64(hits[r])
    return real, imag


@numba.njit(nogil=True, cache=True)
def gathered_sums(conf, hits, rows):
    # (sum of conf[rows], sum of hits[rows]) with the bits of NumPy's
    # (conf + 1j * hits)[rows].sum(): its pairwise sum, added to the initial 0.  The
    # recursion (above 64 values: the halves split at (m - m % 8) / 2 values, each
    # summed so, then added) is walked with explicit stacks: a recursive function
    # loaded from Numba's cache crashes (Numba 0.68).  Tasks: (start, m, 0) sums the
    # stretch, (0, 0, 1) adds the two sums on top of the values' stack, left + right.
    tasks = np.empty((3 * 64, 3), dtype=np.int64)
    real = np.empty(64 + 1)
    imag = np.empty(64 + 1)
    tasks[0, 0], tasks[0, 1], tasks[0, 2] = 0, rows.shape[0], 0
    pending, done = 1, 0
    while pending > 0:
        pending -= 1
        start, m, kind = tasks[pending, 0], tasks[pending, 1], tasks[pending, 2]
        if kind == 1:
            done -= 1
            real[done - 1] = real[done - 1] + real[done]
            imag[done - 1] = imag[done - 1] + imag[done]
        elif m <= 64:
            real[done], imag[done] = _leaf(conf, hits, rows, start, m)
            done += 1
        else:
            half = (m - m % 8) // 2
            tasks[pending, 0], tasks[pending, 1], tasks[pending, 2] = 0, 0, 1
            tasks[pending + 1, 0], tasks[pending + 1, 1] = start + half, m - half
            tasks[pending + 1, 2] = 0
            tasks[pending + 2, 0], tasks[pending + 2, 1], tasks[pending + 2, 2] = start, half, 0
            pending += 3
    return 0.0 + real[0], 0.0 + imag[0]
