# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The Numba kernel of temperature scaling's NLL moments (imported on first use only).

:func:`row_moments` gives, for each selected row :math:`z` of the stored logits
(float32 or float64, read in place: no float64 copy) at inverse temperature
:math:`\beta`, with :math:`s = z - \max_k z_k` in float64,

.. math::

    S = \sum_k e^{\beta s_k}, \qquad E = \frac1S \sum_k e^{\beta s_k} s_k, \qquad
    V = \frac1S \sum_k e^{\beta s_k} (s_k - E)^2, \qquad s_y,

and gives :math:`S - 1`, :math:`E`, :math:`V`, :math:`s_y`: the same four numbers, by
the same formulas, as the NumPy twin (``_temperature._numpy_rows``).  A weight of 0
contributes 0 to both sums even where :math:`s_k = -\infty` (no :math:`0 \cdot
\infty`).  :math:`S = c + R`, :math:`c` the count of the maximum's entries (weight 1,
exact) and :math:`R` the sum of the others' weights; the kernel gives
:math:`S - 1 = (c - 1) + R` (one rounding) and the caller
:math:`\log S = \operatorname{log1p}(S - 1)` (NumPy's, over a block): a row whose
label is its maximum has NLL :math:`\log S`, which ``log`` of the rounded
:math:`S = 1 + R` lost below
:math:`R \approx 10^{-16}` (0 for logits ``[5, 0]`` at :math:`T = 0.05`, whose NLL is
:math:`e^{-100} = 3.7 \cdot 10^{-44}`), and rounded to 1 ulp of 1 above it (3.4e-8
relative at an NLL of 4.1e-10).  A row is read from memory once:
its maximum (one sweep, which brings the row into the cache), the weights (kept in a
float64 buffer of one row) with :math:`S` and the sum for :math:`E`, then the sum for
:math:`V` from the buffer and the row, both still in the L2 cache (200 KB of float32
and 400 KB of weights at 50 000 classes).

The exponential (:func:`exp_nonpositive_fdlibm`) is fdlibm's ``__ieee754_exp`` (error
below 1 ulp) for :math:`x \le 0`, written as arithmetic so that the loop vectorises
(Numba's ``math.exp`` calls the C library for each entry), with :math:`2^k` formed as
:math:`2^{\lfloor k/2 \rfloor} 2^{k - \lfloor k/2 \rfloor}` so that results between
:math:`e^{-745.1}` and :math:`e^{-708.4}` are the subnormals NumPy's ``exp`` gives
(one rounding, in the last product), and 0 below.  Not the losses'
``exp_nonpositive``: its relative error of 5.2e-11 would move the fitted temperature
by about as much, where this twin must agree with NumPy's to rounding.

The sums are taken in a fixed order: :math:`L` running sums (lanes; ``lanes.shape[1]``,
a run-time length so that LLVM vectorises the loop rather than unrolling it), lane
:math:`j` adding entries :math:`j, j + L, j + 2L, \dots` in order, the last partial
stretch onto the first lanes, then a balanced tree over the lanes.  The loops are
elementwise (no reduction for LLVM to reassociate), compiled without ``reassoc``, and
the whole kernel is one function (its helpers inlined by Numba, not by LLVM), so the
bits are the same at any vector width and whether the kernel was compiled in this
process or loaded from Numba's cache (``_row_kernels_numba``'s note on issue 13).
Each sum has about :math:`K / L + \log_2 L` roundings per term (:math:`K` classes):
the relative error of :math:`S`, :math:`E`, :math:`V` is of the order of
:math:`10^{-14}` at worst and about :math:`10^{-16}` typically, as NumPy's.

Rows of at most :data:`NARROW_LANES` classes (:math:`K \le L \le 32`, each lane one
entry) take :func:`narrow_rows`: 64 rows at a time, read once into float64 columns
(entry :math:`j` of row :math:`c` at ``[j, c]``), then :func:`narrow_chunk`, whose
every loop runs across the rows, so that the exponentials of 8 or 16 rows share a
vector (a row of 10 classes filled one vector and part of another, and its lanes'
bookkeeping cost more than its entries).  Each row's operations and their order are
those above, so the bits are the same (``tests/calibration/test_issue13_report_lanes.py``);
a pass of the fit over 2 x 10^6 x 10 float32 logits took 0.23 s of CPU, now 0.08 s.
:func:`narrow_chunk` is a kernel of its own on float64 arrays (one signature for both
dtypes of the logits) and always takes the exponential's masked subnormal form (the
same bits as the other where the weights are normal numbers): a cold compilation of
both signatures of :func:`row_moments` took 7.2 s of CPU on main, 17.1 s with the
narrow rows inlined in each, two forms each, and 9.2 s so.

The kernel releases the GIL: the caller runs blocks of rows on threads.
"""

from __future__ import annotations

import numba
import numpy as np

from .._intrinsics_numba import bits_to_float64, float64_to_bits, prefer_wide_vectors

__all__ = [
    "NARROW_LANES",
    "exp_array",
    "exp_nonpositive_fdlibm",
    "lanes_total",
    "lanes_total_across",
    "narrow_chunk",
    "narrow_rows",
    "power_of_two",
    "row_moments",
    "spread",
    "spread_across",
    "weigh",
    "weigh_across",
]

# contract: FMAs (only fewer roundings); nsz.  No reassoc: it would fold the rounding
# trick (t + R) - R to t and reorder the lanes' sums.  No nnan/ninf: a NaN must stay
# visible (a NaN logit gives a NaN row, as in NumPy).
_FLAGS = {"contract", "nsz"}

_ROUND = 6755399441055744.0  # 1.5 * 2**52: (t + _ROUND) - _ROUND rounds t to an integer
_BIASED = _ROUND + 1023.0  # its bits' low part is k + 1023, the biased exponent of 2^k
_LOG2E = 1.4426950408889634
# fdlibm's ln2HI (its low bits zero: k * _LN2_HI is exact for |k| < 2^11) and ln2LO
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# fdlibm's P1 to P5: R(r^2) with r - r^2 R(r^2) ~ r (e^r + 1) / (e^r - 1) - 2
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def power_of_two(k):
    # 2^k for an integral float k in [-1022, 1023]: k + 1023 put in the exponent field
    return bits_to_float64(float64_to_bits(k + _BIASED) << 52)


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def exp_nonpositive_fdlibm(x, subnormal):
    # e^x for x <= 0 (or NaN, which passes through), fdlibm's __ieee754_exp: x = k ln2
    # + r, |r| <= ln2 / 2, e^r = 1 + 2r / (R - r) by a rational form of degree 10
    # in r with one division, error below 1 ulp.  Below -746 the result is 0, as
    # e^-746 < 2^-1075 (half the least subnormal); -inf gives 0.  Without
    # ``subnormal`` only for x >= -708 or NaN (results that are normal numbers): the
    # same bits there, with seven operations fewer.
    if subnormal:
        x = -746.0 if x < -746.0 else x  # (a NaN fails the comparison and stays)
    k = (x * _LOG2E + _ROUND) - _ROUND  # nearest integer to x / ln2, in [-1076, 0]
    hi = x - k * _LN2_HI  # exact: k * _LN2_HI is exact and close to x
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)  # e^r, in [0.7, 1.42]
    if not subnormal:  # (a constant to LLVM where the caller passes one)
        return y * power_of_two(k)  # exact for k >= -1022 (x >= -708.39)
    # 2^k as 2^half 2^(k - half), both normal for k >= -1076: y 2^half is exact, the
    # last product rounds once (into the subnormals below 2^-1022)
    half = np.floor(0.5 * k)
    return (y * power_of_two(half)) * power_of_two(k - half)


@numba.njit(fastmath=_FLAGS, nogil=True, cache=True, error_model="numpy")
def exp_array(x, out):
    # exp_nonpositive_fdlibm of each float64 value (for tests)
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive_fdlibm(x[i], True)


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def lanes_total(lanes):
    # a balanced tree over the lanes (a power of two), in place: lane j plus lane
    # j + h, h = L/2, ..., 1
    size = lanes.shape[0]
    while size > 1:
        size //= 2
        low, high = lanes[:size], lanes[size : 2 * size]
        for j in range(size):
            low[j] = low[j] + high[j]
    return lanes[0]


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def weigh(row, weights, m, beta, total, first, subnormal):
    # the weights e^(beta s) kept; onto the lanes (lane j takes entries j, j + L, ...
    # in order) the sum of the weights below the maximum's (s != 0: a NaN s too) and
    # the sum of e^(beta s) s (0 where the weight is 0); returns the count of the
    # maximum's entries (s = 0, weight exactly 1: an integer sum, which vectorises).
    # Without ``subnormal`` (every beta s >= -708 or NaN) no weight is 0: no mask
    k, width = row.shape[0], total.shape[0]
    body = k - k % width
    for j in range(width):
        total[j] = 0.0
        first[j] = 0.0
    ties = 0
    for base in range(0, body, width):
        stretch = row[base : base + width]  # (slices indexed from 0: see entries_suspect)
        kept = weights[base : base + width]
        for j in range(width):
            s = np.float64(stretch[j]) - m
            w = exp_nonpositive_fdlibm(beta * s, subnormal)
            kept[j] = w
            top = s == 0.0
            total[j] += 0.0 if top else w
            ties += 1 if top else 0
            first[j] += w * s if not subnormal or w > 0.0 else 0.0
    tail, kept = row[body:k], weights[body:k]
    for j in range(k - body):
        s = np.float64(tail[j]) - m
        w = exp_nonpositive_fdlibm(beta * s, subnormal)
        kept[j] = w
        top = s == 0.0
        total[j] += 0.0 if top else w
        ties += 1 if top else 0
        first[j] += w * s if not subnormal or w > 0.0 else 0.0
    return ties


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def spread(row, weights, m, mean, second, masked):
    # the sum of e^(beta s) (s - E)^2 (0 where the weight is 0, if ``masked``) added
    # onto the lanes from the kept weights, in weigh's order
    k, width = row.shape[0], second.shape[0]
    body = k - k % width
    for j in range(width):
        second[j] = 0.0
    for base in range(0, body, width):
        stretch = row[base : base + width]
        kept = weights[base : base + width]
        for j in range(width):
            w = kept[j]
            d = (np.float64(stretch[j]) - m) - mean
            second[j] += w * (d * d) if not masked or w > 0.0 else 0.0
    tail, kept = row[body:k], weights[body:k]
    for j in range(k - body):
        w = kept[j]
        d = (np.float64(tail[j]) - m) - mean
        second[j] += w * (d * d) if not masked or w > 0.0 else 0.0


_CHUNK = 64
"""Rows a step of :func:`narrow_rows` (its loops run over them, vectorised)."""

NARROW_LANES = 32
"""Lanes up to which :func:`row_moments` takes :func:`narrow_rows`: rows of at most 32
classes (4 scratch arrays of 32 x 64 float64, 64 KB)."""


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def lanes_total_across(lanes, count):
    # lanes_total of each of the first ``count`` columns of (L, _CHUNK) lanes, in
    # place: lane j plus lane j + h, h = L/2, ..., 1, as lanes_total adds a row's
    size = lanes.shape[0]
    while size > 1:
        size //= 2
        for j in range(size):
            low, high = lanes[j], lanes[j + size]
            for c in range(count):
                low[c] = low[c] + high[c]


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def weigh_across(shifted, weights, totals, firsts, top, ties, beta, k, count, subnormal):
    # weigh for ``count`` rows at once (the rows' entries in the columns of
    # ``shifted``, replaced by s): each row's lane j takes entry j alone (k <= L),
    # the lanes past k hold 0, as weigh leaves them
    for c in range(count):
        ties[c] = 0.0
    for j in range(k):
        line, kept, total, first = shifted[j], weights[j], totals[j], firsts[j]
        for c in range(count):
            s = line[c] - top[c]
            w = exp_nonpositive_fdlibm(beta * s, subnormal)
            line[c] = s
            kept[c] = w
            is_top = s == 0.0
            total[c] = 0.0 + (0.0 if is_top else w)
            ties[c] += 1.0 if is_top else 0.0
            first[c] = 0.0 + (w * s if not subnormal or w > 0.0 else 0.0)
    for j in range(k, totals.shape[0]):
        total, first = totals[j], firsts[j]
        for c in range(count):
            total[c] = 0.0
            first[c] = 0.0


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def spread_across(shifted, weights, seconds, mean, k, count, masked):
    # spread for ``count`` rows at once, from weigh_across's s and weights
    for j in range(k):
        line, kept, second = shifted[j], weights[j], seconds[j]
        for c in range(count):
            w = kept[c]
            d = line[c] - mean[c]
            second[c] = 0.0 + (w * (d * d) if not masked or w > 0.0 else 0.0)
    for j in range(k, seconds.shape[0]):
        second = seconds[j]
        for c in range(count):
            second[c] = 0.0


@numba.njit(fastmath=_FLAGS, nogil=True, cache=True, error_model="numpy")
def narrow_chunk(scratch, state, beta, k, count, out, start):
    # row_moments's numbers of ``count`` rows of k <= L classes whose entries
    # narrow_rows put in the columns of scratch[0] (entry j of row c at [0, j, c]) and
    # their labels' entries in state[4], into out[:, start:start + count].  Every loop
    # runs across the rows (vectorised); each row's operations and their order are
    # row_moments's (its lane j holds entry j alone), so the bits are the same.  Always
    # the masked, subnormal form of the exponential: the same bits as the unmasked one
    # where the weights are normal numbers (none is then 0).  Float64 arguments only:
    # one signature whatever the logits' dtype
    prefer_wide_vectors()
    shifted, weights, totals, firsts, seconds = (
        scratch[0],
        scratch[1],
        scratch[2],
        scratch[3],
        scratch[4],
    )
    top, ties, mean, labelled = state[0], state[1], state[2], state[3]
    # the maximum, entry by entry in order (row_moments's lanes)
    for c in range(count):
        top[c] = -np.inf
    for j in range(k):
        line = shifted[j]
        for c in range(count):
            v = line[c]
            top[c] = v if v > top[c] else top[c]
    weigh_across(shifted, weights, totals, firsts, top, ties, beta, k, count, True)
    lanes_total_across(totals, count)
    lanes_total_across(firsts, count)
    rest, first = totals[0], firsts[0]
    for c in range(count):
        mean[c] = first[c] / (ties[c] + rest[c])
    spread_across(shifted, weights, seconds, mean, k, count, True)
    lanes_total_across(seconds, count)
    second = seconds[0]
    for c in range(count):
        i = start + c
        out[0, i] = (ties[c] - 1.0) + rest[c]
        out[1, i] = mean[c]
        out[2, i] = second[c] / (ties[c] + rest[c])
        out[3, i] = labelled[c] - top[c]


@numba.njit(fastmath=_FLAGS, inline="always", error_model="numpy")
def narrow_rows(values, rows, labels, beta, width, out):
    # row_moments for rows of k <= width <= NARROW_LANES classes, _CHUNK rows at a
    # time: each chunk's rows read once into float64 columns, then narrow_chunk
    k = values.shape[1]
    scratch = np.empty((5, width, _CHUNK))
    state = np.empty((4, _CHUNK))
    shifted, labelled = scratch[0], state[3]
    for start in range(0, rows.shape[0], _CHUNK):
        count = min(_CHUNK, rows.shape[0] - start)
        for c in range(count):
            row = values[rows[start + c]]
            for j in range(k):
                shifted[j, c] = np.float64(row[j])
            labelled[c] = np.float64(row[labels[start + c]])
        narrow_chunk(scratch, state, beta, k, count, out, start)


@numba.njit(fastmath=_FLAGS, nogil=True, cache=True, error_model="numpy")
def row_moments(values, rows, labels, beta, lanes, weights, out):
    # For each i: the row values[rows[i]] with label labels[i] at inverse temperature
    # beta: out[0, i] = S - 1, out[1, i] = E, out[2, i] = V, out[3, i] = s_y (the module
    # docstring).  lanes: (5, L) float64 scratch, L a power of two; weights: float64
    # scratch of values.shape[1] entries.
    prefer_wide_vectors()
    k = values.shape[1]
    width = lanes.shape[1]
    if k <= width <= NARROW_LANES:  # each lane one entry: the rows side by side
        narrow_rows(values, rows, labels, beta, width, out)
        return
    body = k - k % width
    top, bottom, total, first, second = lanes[0], lanes[1], lanes[2], lanes[3], lanes[4]
    for i in range(rows.shape[0]):
        row = values[rows[i]]
        # the row's maximum and minimum (exact in any order), in lanes; a NaN is
        # skipped here, and makes the row's S, E, V NaN below
        for j in range(width):
            top[j] = -np.inf
            bottom[j] = np.inf
        for base in range(0, body, width):
            stretch = row[base : base + width]
            for j in range(width):
                v = np.float64(stretch[j])
                top[j] = v if v > top[j] else top[j]
                bottom[j] = v if v < bottom[j] else bottom[j]
        tail = row[body:k]
        for j in range(k - body):
            v = np.float64(tail[j])
            top[j] = v if v > top[j] else top[j]
            bottom[j] = v if v < bottom[j] else bottom[j]
        m, low = top[0], bottom[0]
        for j in range(1, width):
            m = top[j] if top[j] > m else m
            low = bottom[j] if bottom[j] < low else low
        # every weight a normal number or 1: the exponential without the subnormal
        # scaling (the same bits)
        normal = beta * (low - m) >= -708.0
        if normal:
            ties = weigh(row, weights, m, beta, total, first, False)
        else:
            ties = weigh(row, weights, m, beta, total, first, True)
        rest = lanes_total(total)
        partition = np.float64(ties) + rest
        mean = lanes_total(first) / partition
        # the sum of e^(beta s) (s - E)^2 from the kept weights
        if normal:
            spread(row, weights, m, mean, second, False)
        else:
            spread(row, weights, m, mean, second, True)
        out[0, i] = np.float64(ties - 1) + rest  # S - 1: exact ties - 1, one rounding
        out[1, i] = mean
        out[2, i] = lanes_total(second) / partition
        out[3, i] = np.float64(row[labels[i]]) - m
