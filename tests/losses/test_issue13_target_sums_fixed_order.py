r"""Issue 13, a flaky CI failure: the soft-target gradient's row sums in a fixed order.

``test_issue13_target_row_sums_one_loop.py``'s gradient digests (then
``test_gradient_keeps_the_written_out_loops_bits``) failed once on a fresh clone
([1.0-False] and [1.3-False]: 3f3a607e and 84455e6c instead of ff11ff92 and 78b9d014).
Not the test order, nor another overload of the kernel (Numba 0.68 compiles an exact
one for every new argument type while it may compile): the same cold-cache script,
compile then call, gave those two digests in 2 processes of about 250 (and 84455e6c
alone in one more), the recorded ones in the others. :math:`S = \sum_c e_c` was a
reassociated sum inside the exp loop (the kernel's ``reassoc``), in the order that LLVM
chose for it, and that choice differed between compilations; the cancelling entries of
the unweighted gradient follow :math:`S` below a float64 ulp. A strided ``targets`` (an
'A'-layout specialisation, whose loop LLVM does not vectorise) moved them on every run.

Now ``_cpu_kernels_numba.block_sum`` (and ``block_sum_weighted``, for
:math:`\sum_c w_c t_c`) add each block's terms after its exp loop, in explicit vectors
without fast-math flags: 32 running sums (lane l of the entries start + l,
start + l + 32, ...), the four vectors of eight pairwise, their lanes by halves, then
the ragged rest added in order. Pinned here bit for bit against a NumPy emulation of
that order (float64 terms, float32 targets, weights; lengths under, at and past the
lanes; a block that starts inside the row), and the row sums of rows compiled for
C-contiguous inputs (the loops LLVM vectorises) held to the blocks' emulated sums
joined by TwoSum. The latter fails on the code before (:math:`S` off on 6 rows of 8);
mutants caught: 16 lanes (5 tests fail), the vectors added in a running sum (3),
``s_lo`` dropped (3), the block sums given the kernel's flags (the flags test below;
the bits did not move in that compilation).
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")
kernels = pytest.importorskip("crossent.losses._cpu_kernels_numba")

from crossent.losses._cpu_kernels_numba import _FLAGS, SUM_BLOCK  # noqa: E402

_LANES = 32  # block_sum's running sums (its SUM_LANES written out: a change must show)
_VECTOR = 8  # the lanes of one vector in block_sum's code


def emulated(values: np.ndarray, weight: np.ndarray | None, start: int, stop: int) -> float:
    """``block_sum``'s order in NumPy (each elementwise float64 operation rounded once)."""
    x = values[start:stop].astype(np.float64)
    if weight is not None:
        x = weight[start:stop] * x
    whole = len(x) - len(x) % _LANES
    lanes = np.zeros(_LANES)
    for base in range(0, whole, _LANES):
        lanes = lanes + x[base : base + _LANES]
    rest = 0.0
    for value in x[whole:]:
        rest = float(np.float64(rest) + value)
    vectors = [lanes[a : a + _VECTOR] for a in range(0, _LANES, _VECTOR)]
    while len(vectors) > 1:  # pairwise
        vectors = [vectors[i] + vectors[i + 1] for i in range(0, len(vectors), 2)]
    vector = vectors[0]
    while len(vector) > 1:  # by halves
        half = len(vector) // 2
        vector = vector[half:] + vector[:half]
    return float(vector[0] + np.float64(rest))


_SPANS = [(0, 5), (0, _LANES), (3, 3 + 4 * _LANES), (0, 1024), (1024, 2085), (7, 7)]


@pytest.mark.parametrize(("start", "stop"), _SPANS)
def test_block_sums_follow_the_fixed_order(start: int, stop: int) -> None:
    rng = np.random.default_rng(stop)
    terms = np.exp(-rng.uniform(0.0, 30.0, 2085))  # float64, as the exp loop's buffer
    targets = rng.random(2085, dtype=np.float32)
    weight = rng.uniform(0.5, 2.0, 2085)
    weight[::3] = 0.0
    for values, w in ((terms, None), (targets, None), (targets, weight)):
        if w is None:
            got = kernels.block_sum(values, start, stop)
        else:
            got = kernels.block_sum_weighted(values, w, start, stop)
        want = emulated(values, w, start, stop)
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), (values.dtype, w)


@numba.njit(fastmath=_FLAGS)
def _unit_row_sums(row, t_row, top, shift, terms):  # type: ignore[no-untyped-def]
    # target_row_sums of one row at T = 1, no weights (with the kernel's flags; that case
    # alone, one loop to compile, not four)
    args = (top, 1.0, 1.0, shift)
    return kernels.target_row_sums_specialised(row, t_row, t_row[:0], terms, args, True, False)


def two_sum(hi: float, lo: float, x: float) -> tuple[float, float]:
    """``_cpu_kernels_numba.two_sum`` in Python floats (IEEE float64, round to nearest)."""
    s = hi + x
    b = s - hi
    return s, lo + ((hi - (s - b)) + (x - b))


def test_row_sums_follow_the_fixed_order() -> None:
    """The row sums (the pair of :math:`S` and the targets' total) of rows whose loops
    LLVM vectorises (a C-contiguous float32 row of 2 blocks and a ragged one): bit for
    bit the blocks' fixed-order sums of the kernel's own terms, joined by TwoSum.
    Before, LLVM's order: 6 rows of 8 off (:math:`S`)."""
    rng = np.random.default_rng(13)
    z = (rng.standard_normal((8, 2 * SUM_BLOCK + 37)) * 3).astype(np.float32)
    z[1] = 2.5  # ties: equal terms
    t = rng.random(z.shape, dtype=np.float32)
    t /= t.sum(-1, keepdims=True, dtype=np.float64).astype(np.float32)
    top = z.max(-1).astype(np.float64)
    shift = np.rint(np.log(np.exp(z - top[:, None]).sum(-1)) * 2.0**24) / 2.0**24
    terms = np.empty(z.shape)
    for i in range(z.shape[0]):
        got = np.array(_unit_row_sums(z[i], t[i], top[i], shift[i], terms[i]))
        s_hi = s_lo = t_hi = t_lo = 0.0
        for start in range(0, z.shape[1], SUM_BLOCK):
            stop = min(z.shape[1], start + SUM_BLOCK)
            s_hi, s_lo = two_sum(s_hi, s_lo, emulated(terms[i], None, start, stop))
            t_hi, t_lo = two_sum(t_hi, t_lo, emulated(t[i], None, start, stop))
        want = np.array([s_hi, s_lo, t_hi + t_lo])
        assert got.tobytes() == want.tobytes(), (i, got - want)


@pytest.mark.parametrize("name", ["block_sum", "block_sum_weighted"])
def test_block_sums_have_no_fast_math(name: str) -> None:
    """Their instructions carry no fast-math flag (``fastmath=False`` of their own: the
    kernel's ``reassoc`` would let LLVM reorder them, as it chose)."""
    options = getattr(kernels, name).targetoptions
    assert "fastmath" in options, "no fastmath of its own: it would inherit the kernel's"
    assert options["fastmath"] is False
