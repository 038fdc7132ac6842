r"""Issue 13, branch ``peaked``: near-deterministic rows without a second pass.

``row_statistics_kernel`` (``losses/_cpu_kernels_numba.py``) takes from one loop per
row the exp-sum of the entries below the maximum (``rest``) and the number of entries
equal to it (``ties``): the ties' terms are left out of the sums (``vscalefpd``'s
zero-masking on AVX-512, a select elsewhere) and counted. Then :math:`s = \mathrm{ties}
+ \mathrm{rest}` and, for :math:`s < 1.5`, :math:`\ell = \operatorname{log1p}(\mathrm{
rest} + (\mathrm{ties} - 1))`, else :math:`\log s`. Before, a row with :math:`s < 1.5`
was read a second time and its rest summed by ``exp_nonpositive`` (5.3e-11 a term).

Checked against an independent float64 truth (``math.fsum`` of NumPy's float64 ``exp``
of the exact differences, ``math.log1p``; 1e-16 relative, far inside the bounds) on
rows the counting must get right: one dominant logit 20 to 100 above the others, the
maximum tied 2 to 5 times, rows with :math:`s` just below and just above 1.5, every
position of the maximum relative to the loop's steps of 32 and its tail, the block's
last row (summed by ``exp_rest``, not the fused loop), V = 2 and V = 256000, T = 1, 2.5
and 0.7, float16 storage; and NaN, ``+inf`` and all ``-inf`` rows keep their meaning.
Bounds (the module docstring's): :math:`|\Delta\ell| \le \eta\,\ell + 2^{-52}\ell` for
:math:`s < 1.5` and :math:`\eta + 2^{-52}\ell` above, :math:`\eta = 2.9 \times
10^{-12} + V\,2^{-53}` with the table exp (AVX-512), :math:`5.3 \times 10^{-11} + V\,
2^{-53}` with ``exp_nonpositive``'s terms (other targets); every per-row float32 loss
within 2 float32 ulps of the truth.

On main's code the relative bound of the ``log1p`` branch fails on AVX-512 (its second
pass summed ``exp_nonpositive``'s terms: relative errors of :math:`\ell` up to 3e-11
on these rows, above 2.9e-12 + V 2^-53). Mutants caught: the ties off by one (``V -
kept + 1``), the mask inverted (the ties summed, the others counted), an ordered
compare (a NaN left out of the sum: a NaN row no longer suspect), ``s = rest``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

import crossent
from crossent.losses import _cpu_kernels
from crossent.losses import _cpu_kernels_numba as kernels
from crossent.losses._kernel_inputs import StatisticsOptions

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="Numba kernels")

#: a term's relative error: the table exp's (AVX-512), or exp_nonpositive's
TERM_ERROR = 2.9e-12 if kernels.TABLE_EXP else 5.3e-11
F32_ULPS = 2.0


def _truth(row: np.ndarray, inv_t: float) -> tuple[float, float, int]:
    """(ell, s, ties) of the float32 ``row`` at 1/T = ``inv_t``: fsum of float64 terms."""
    x = row.astype(np.float32).astype(np.float64)
    top = x.max()
    d = (x - top) * inv_t  # exact at inv_t = 1; one rounding (relative 2**-53) else
    ties = int(np.count_nonzero(x == top))
    rest = math.fsum(np.exp(d[x != top]))
    s = ties + rest
    if s < 1.5:
        return math.log1p(math.fsum([ties - 1.0, rest])), s, ties
    return math.log(math.fsum([float(ties), rest])), s, ties


def _bound(eta: float, exact: float, s: float) -> float:
    """The docstring's bound on ell: relative below s = 1.5 (log1p keeps the rest's
    digits), absolute above; and log1p's or log's own rounding."""
    return (eta + 2.0**-52) * exact + 1e-300 if s < 1.5 else eta + 2.0**-52 * exact


def _check_ell(z: np.ndarray, inv_t: float = 1.0) -> None:
    """The kernel's ell of every row of ``z`` within the docstring's bound of the truth."""
    labels = np.zeros(len(z), dtype=np.int64)
    m, ell, _, _, suspect = _cpu_kernels.row_statistics(
        np.ascontiguousarray(z), labels, StatisticsOptions(inv_temperature=inv_t)
    )
    v = z.shape[1]
    eta = TERM_ERROR + v * 2.0**-53
    for i, row in enumerate(z):
        exact, s, ties = _truth(row, inv_t)
        assert not suspect[i], i
        assert m[i] == float(row.astype(np.float64).max()) * inv_t, i
        assert abs(ell[i] - exact) <= _bound(eta, exact, s), (i, v, ties, s, ell[i], exact)


def _peaked_rows(rng: np.random.Generator, n: int, v: int, ties_max: int = 5) -> np.ndarray:
    """Rows of N(0, 1) logits with one maximum (or 2 to ``ties_max`` tied ones) 20 to
    100 above the rest, at random positions (the tail of the loop's steps included)."""
    z = rng.standard_normal((n, v)).astype(np.float32)
    for i in range(n):
        top = np.float32(rng.uniform(20, 100) + z[i].max())
        k = 1 if i % 3 else int(rng.integers(2, ties_max + 1))
        z[i, rng.choice(v, size=min(k, v), replace=False)] = top
    return z


@pytest.mark.parametrize("v", [2, 7, 33, 1000, 32001])
def test_issue13_peaked_rows_log1p_branch_within_bound(v: int) -> None:
    # 40 rows: the fused loop (rows 0-30 and 32-38), and each block's last row alone
    rng = np.random.default_rng(v)
    z = _peaked_rows(rng, 40 if v < 32001 else 4, v)
    _check_ell(z)


@pytest.mark.parametrize("inv_t", [1 / 2.5, 1 / 0.7])
def test_issue13_peaked_rows_with_a_temperature(inv_t: float) -> None:
    rng = np.random.default_rng(25)
    _check_ell(_peaked_rows(rng, 34, 517), inv_t)


def test_issue13_maximum_at_every_position_of_a_step_and_the_tail() -> None:
    # V = 75: two steps of 32, a tail of 11 (one vector of 8 and 3 lanes); the maximum
    # (once, or tied with a second copy 37 further on) at every position
    v = 75
    rows = []
    for j in range(v):
        row = np.full(v, -30.0, np.float32) + np.arange(v, dtype=np.float32) / 64
        row[j] = 5.0
        rows.append(row)
        tied = row.copy()
        tied[(j + 37) % v] = 5.0
        rows.append(tied)
    _check_ell(np.array(rows))


def test_issue13_rows_around_the_branch_at_s_one_and_a_half() -> None:
    # one maximum and one entry at log(1/2) +- a few float32 ulps: s just below and
    # just above 1.5 (the two branches), and the same with the rest spread over 100 terms
    half = np.float32(math.log(0.5))
    rows = []
    for k in range(-4, 5):
        second = np.nextafter(half, np.float32(np.inf * np.sign(k))) if k else half
        for _ in range(abs(k) - 1):
            second = np.nextafter(second, np.float32(np.inf * np.sign(k)))
        row = np.full(130, -200.0, np.float32)
        row[5], row[77] = 0.0, second
        rows.append(row)
        spread = np.full(130, -200.0, np.float32)
        spread[0] = 0.0
        spread[1:101] = np.float32(math.log(0.5 / 100)) + np.float32(k) * 2e-7
        rows.append(spread)
    z = np.array(rows)
    sums = [_truth(row, 1.0)[1] for row in z]
    assert min(sums) < 1.5 <= max(sums)  # both branches taken
    _check_ell(z)


def test_issue13_one_row_of_256000_classes() -> None:
    rng = np.random.default_rng(256)
    z = _peaked_rows(rng, 2, 256_000)
    z[1, 1000:] -= 60  # most terms underflow to e^-70 and below
    _check_ell(z)


def test_issue13_float16_storage_counts_the_ties() -> None:
    # float16 logits, decoded to float32 as they are read: the ties are compared there
    rng = np.random.default_rng(16)
    z = _peaked_rows(rng, 34, 200).astype(np.float16)
    labels = np.zeros(len(z), dtype=np.int64)
    _, ell, _, _, suspect = _cpu_kernels.row_statistics(z, labels, StatisticsOptions())
    assert not suspect.any()
    eta = TERM_ERROR + 200 * 2.0**-53
    for i, row in enumerate(z.astype(np.float32)):
        exact, s, _ = _truth(row, 1.0)
        assert abs(ell[i] - exact) <= _bound(eta, exact, s), (i, ell[i], exact)


def test_issue13_peaked_per_row_losses_within_two_float32_ulps() -> None:
    rng = np.random.default_rng(4)
    z = _peaked_rows(rng, 64, 3001)
    labels = rng.integers(0, 3001, 64)
    labels[::2] = np.argmax(z[::2], axis=1)  # right and confident: the loss is ell
    got = crossent.softmax_cross_entropy(z, labels, reduction="none")
    assert got.dtype == np.float32
    for i, row in enumerate(z):
        ell, _, _ = _truth(row, 1.0)
        exact = ell - (float(row[labels[i]]) - float(row.max()))
        unit = float(np.spacing(np.float32(exact)))
        assert abs(float(got[i]) - exact) <= F32_ULPS * unit, (i, got[i], exact)


def test_issue13_nan_inf_and_empty_rows_keep_their_meaning() -> None:
    v = 70
    z = np.full((6, v), -50.0, np.float32)
    z[:, 3] = 10.0  # peaked
    z[0, 68] = np.nan  # a late NaN (in the tail) in a peaked row
    z[1, 9] = -np.nan  # a negative NaN below the maximum
    z[2, 40] = np.inf  # +inf: the maximum, inf - inf = NaN
    z[3, :] = -np.inf  # all -inf
    z[4, [3, 5, 64]] = np.inf  # +inf tied three times
    labels = np.zeros(6, dtype=np.int64)
    m, ell, _, _, suspect = _cpu_kernels.row_statistics(z, labels, StatisticsOptions())
    assert suspect[:5].all()
    assert np.isnan(ell[[0, 1, 2, 4]]).all()  # rows 2 and 4: not log(ties) of +inf
    assert m[3] == -np.inf
    assert ell[3] == -np.inf  # nothing exponentiated, no tie
    assert not suspect[5]
    assert ell[5] == pytest.approx(_truth(z[5], 1.0)[0], rel=1e-10, abs=0)
