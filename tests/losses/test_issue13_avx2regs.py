r"""Issue 13, branch ``avx2regs``: the AVX2 loop's shape (``_POLY_SHAPE``) for 16 registers.

The explicit AVX2 loop of the forward's exp-sums (``POLY_LOOP``, see
``test_issue13_avx2loop.py``) now evaluates :func:`exp_nonpositive`'s polynomial in
Horner's scheme (seven FMAs, against Estrin's nine operations and more registers live)
and adds each step's eight vectors of terms into four accumulators (``_Shape.sums``;
vector ``a`` into accumulator ``a % 4``), the next row's bits into one pair of bounds
(``_Shape.bound_pairs``). These tests pin:

* the sum's order as the loop builds it (compiled without fast-math flags, which let
  LLVM reorder it in the kernels), bit for bit, against a NumPy model of it (the terms,
  four accumulators, the tail's vectors into the first, then pairwise and by halves): a
  mutant with eight accumulators again, or vector ``a`` into accumulator ``a // 2``,
  gives other bits;
* Horner's terms no less accurate than Estrin's: the same worst relative error against
  mpmath (5.18e-11, the polynomial's) over the hard points of the reduction;
* the fused sums and next-row maxima of other shapes (accumulators and pairs of bounds
  from 1 to 8) on the hard rows, so that every count the fields allow is a correct loop.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

numba = pytest.importorskip("numba")

from crossent.losses import _cpu_kernels_numba as kernels  # noqa: E402
from losses.test_issue13_exp_scheme import _compiled  # noqa: E402
from losses.test_issue13_fwdvec_exp import sweep_hard_rows  # noqa: E402

_SHAPE = kernels._POLY_SHAPE
_fused = kernels._table_intrinsic(True, False, _SHAPE)
_alone = kernels._table_intrinsic(False, False, _SHAPE)


# without fast-math flags: the loop's instructions then carry none (Numba's flags would
# let LLVM reorder the sum), so that its bits are the order the loop builds
@numba.njit
def _poly_loop(row, following, top):
    # the AVX2 loop counts no ties (a count of 0: every term in its sum)
    s, ties, bits = _fused(row, following, top, 1.0)
    alone, alone_ties = _alone(row, top, 1.0)
    return s, bits, alone, ties + alone_ties


@pytest.fixture(scope="module")
def schemes():
    """:func:`exp_nonpositive` compiled with Horner's scheme and with Estrin's."""
    with pytest.MonkeyPatch.context() as patch:
        horner = _compiled(patch, True)
        horner(0.5)  # compiled while HORNER is True
        estrin = _compiled(patch, False)
        estrin(0.5)
    return horner, estrin


def _model(terms: np.ndarray) -> float:
    """The loop's sum of ``terms`` in its order: steps of ``step`` terms, vector ``a`` of
    a step into accumulator ``a % sums``; the tail a vector at a time into the first
    accumulator; then the accumulators pairwise and the lanes by halves."""
    lanes, step, count = 4, 32, 4  # (not read from _SHAPE: a changed shape must fail)
    sums = np.zeros((count, lanes))
    stop = len(terms) // step * step
    for j in range(0, stop, step):
        for a in range(step // lanes):
            sums[a % count] += terms[j + a * lanes : j + (a + 1) * lanes]
    for g in range(stop, len(terms), lanes):
        part = terms[g : g + lanes]
        sums[0, : len(part)] += part
    vectors = list(sums)
    while len(vectors) > 1:
        vectors = [vectors[i] + vectors[i + 1] for i in range(0, len(vectors), 2)]
    vector = vectors[0]
    while len(vector) > 1:
        half = len(vector) // 2
        vector = vector[:half] + vector[half:]
    return float(vector[0])


def test_issue13_avx2regs_shape_is_four_sums_one_pair_horner() -> None:
    assert (_SHAPE.sums, _SHAPE.bound_pairs, _SHAPE.step, _SHAPE.lanes) == (4, 1, 32, 4)
    assert _SHAPE.terms is kernels._poly_terms
    # the AVX-512 table loop keeps one accumulator and one pair per vector of a step
    table = kernels._TABLE_SHAPE
    assert table.sums == table.step // table.lanes
    assert table.bound_pairs == table.step // table.bit_lanes


def test_issue13_avx2regs_sum_is_the_documented_order(schemes) -> None:
    horner, _ = schemes
    rng = np.random.default_rng(17)
    for v in [*range(1, 70), 100, 257, 1000, 4099]:
        for _ in range(3):
            row = (rng.standard_normal(v) * 4).astype(np.float32)
            top = float(row.max())
            terms = np.array([horner(float(x) - top) for x in row])
            s, _, alone, ties = _poly_loop(row, row.view(np.int32), top)
            assert ties == 0.0
            want = _model(terms)
            assert s == want, (v, s, want)
            assert alone == want, (v, alone, want)


def _hard_points() -> np.ndarray:
    rng = np.random.default_rng(23)
    return np.concatenate(
        [
            -rng.uniform(0.0, 708.0, 3000),
            -rng.uniform(0.0, 1.0, 3000),
            # the ends of the reduction's intervals, where |r| is largest
            -(np.arange(1, 1021) + 0.5) * math.log(2.0),
            -(np.arange(1, 1021) + 0.5) * math.log(2.0) + 1e-9,
        ]
    )  # 8040 points, a multiple of 4


@numba.njit
def _exp4(d):
    return kernels.poly_exp4(d)


def test_issue13_avx2regs_horner_terms_as_accurate_as_estrin(schemes) -> None:
    # the loop's own terms (lane-wise) against exp_nonpositive in Estrin's scheme
    _, estrin = schemes
    points = _hard_points()
    loop = [t for k in range(0, len(points), 4) for t in _exp4(tuple(points[k : k + 4]))]
    worst = {"horner": 0.0, "estrin": 0.0}
    with mpmath.workprec(80):  # not mpmath.mp.prec = 80: that one is every test's
        for x, term in zip(points, loop, strict=True):
            exact = mpmath.exp(mpmath.mpf(float(x)))
            for name, got in (("horner", term), ("estrin", estrin(float(x)))):
                worst[name] = max(worst[name], abs(float(mpmath.mpf(got) / exact - 1)))
    assert worst["horner"] <= worst["estrin"] * (1 + 1e-6), worst
    assert 1e-11 < worst["horner"] <= 5.3e-11, worst  # the polynomial's own error, reached


def _shaped(sums: int, pairs: int):
    shape = _SHAPE._replace(sums=sums, bound_pairs=pairs)
    fused = kernels._table_intrinsic(True, True, shape)
    alone = kernels._table_intrinsic(False, True, shape)

    @numba.njit(fastmath=kernels._FLAGS)
    def loop(row, following, top, inv_t):
        s, ties, bits = fused(row, following, top, inv_t)
        alone_s, alone_ties = alone(row, top, inv_t)
        return s + ties, bits, alone_s + alone_ties

    return loop


@pytest.mark.parametrize(("sums", "pairs"), [(1, 1), (2, 4), (8, 2)])
def test_issue13_avx2regs_other_shapes_on_hard_rows(schemes, sums: int, pairs: int) -> None:
    horner, _ = schemes

    def truth(values: np.ndarray, top: float, inv_t: float) -> float:
        return math.fsum(horner((float(x) - top) * inv_t) for x in values)

    def limit(v: int, exact: float) -> float:
        # per lane v / (4 sums) additions in the main loop, 8 in the tail, the rest
        return (v // (4 * sums) + 8 + 3 + 3 + 8) * 2.0**-53 * exact

    sweep_hard_rows(_shaped(sums, pairs), truth, limit, "float32", 2.5, seed=29)
