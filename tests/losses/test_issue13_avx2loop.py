r"""Issue 13: the explicit AVX2 loop of the forward's exp-sums (``POLY_LOOP``).

On a target with AVX2 and FMA but without the AVX-512 table exp (``TABLE_EXP``),
``exp_sum_and_next_max`` and ``exp_sum`` of ``losses/_cpu_kernels_numba.py`` are the
explicit vector loop of ``_table_loop`` (4 float64 lanes, 8 int32 lanes of the next
row's bits, the next row prefetched inside the loop) over terms that are
:func:`exp_nonpositive`'s own arithmetic in Horner's scheme (as AVX-512 targets compile
:func:`exp_nonpositive`; its Estrin's on AVX2 took more registers and operations: branch
``avx2regs``, ``test_issue13_avx2regs.py``). These tests pin, here and
(the last one) in a subprocess under ``benchmarks/emulate_avx2.sh``, where the kernels
take that loop: every term bit for bit :func:`exp_nonpositive`'s (the lane-wise terms,
and a row whose only non-negligible entry sits in every position of the main loop and
of the tail), and the fused sums and next-row maxima on hard rows (every length 1-70,
1000, 32000; runs of ``-inf``, the maximum last, a late NaN or ``+inf``, ``T = 2.5``,
bfloat16 and float16 storage) against ``math.fsum`` of :func:`exp_nonpositive`'s terms
within the bound of a float64 sum of nonnegative terms (:func:`_depth` additions deep).
Under the emulation the kernels' own dispatch must give the same bits and no ``zmm``
register, with a ``prefetcht1`` in the loop.

Checked against hand mutants of ``_poly_terms`` and ``_table_loop``: the shift by a
multiply and an add (contracted, then folded with ``k``'s subtraction by ``reassoc``),
the clamp at -709, the clamp dropped, Estrin's halves swapped (when the loop had them), a
Horner step's coefficients swapped, the tail's lanes past the
row kept in the sum, the next row's first high bound left out of its maximum, and
``POLY_LOOP`` off (the emulated run). A Horner step by a plain multiply and add is no
mutant: the kernels' ``contract`` flag fuses it as :func:`exp_nonpositive`'s is.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from crossent.losses import _cpu_kernels_numba as kernels  # noqa: E402
from losses.test_issue13_avx2_emulation import _SCRIPT, _host_flags, emulation_env  # noqa: E402
from losses.test_issue13_exp_scheme import _compiled  # noqa: E402
from losses.test_issue13_fwdvec_exp import _stored, sweep_hard_rows  # noqa: E402

_EMULATED = bool(os.environ.get("CROSSENT_EMULATED_AVX2"))

_fused_scaled = kernels._table_intrinsic(True, True, kernels._POLY_SHAPE)
_fused_unscaled = kernels._table_intrinsic(True, False, kernels._POLY_SHAPE)
_sum_scaled = kernels._table_intrinsic(False, True, kernels._POLY_SHAPE)
_sum_unscaled = kernels._table_intrinsic(False, False, kernels._POLY_SHAPE)


# compiled with the kernels' fast-math flags, which Numba sets on every instruction of
# the function, the loop's included (the sum's order is then LLVM's to choose)
@numba.njit(fastmath=kernels._FLAGS)
def _poly_loop(row, following, top, inv_t):
    # the AVX2 loop itself, whatever this machine's target dispatches to
    # (the AVX2 loop counts no ties: its sum is the whole exp-sum, the count 0)
    if inv_t != 1.0:
        s, ties, bits = _fused_scaled(row, following, top, inv_t)
        alone, alone_ties = _sum_scaled(row, top, inv_t)
        return s + ties, bits, alone + alone_ties
    s, ties, bits = _fused_unscaled(row, following, top, inv_t)
    alone, alone_ties = _sum_unscaled(row, top, inv_t)
    return s + ties, bits, alone + alone_ties


@numba.njit(fastmath=kernels._FLAGS)
def _dispatched(row, following, top, inv_t):
    # the kernels' exp-sums as they dispatch (the AVX2 loop under the emulation)
    if inv_t != 1.0:
        s, bits = kernels.exp_sum_and_next_max(row, following, top, inv_t, True)
        return s, bits, kernels.exp_sum(row, top, inv_t, True)
    s, bits = kernels.exp_sum_and_next_max(row, following, top, inv_t, False)
    return s, bits, kernels.exp_sum(row, top, inv_t, False)


@numba.njit(fastmath=kernels._FLAGS)
def _exp4(d):
    return kernels.poly_exp4(d)


@pytest.fixture(scope="module")
def horner():
    """:func:`exp_nonpositive` compiled with Horner's scheme (the AVX2 loop's, and the
    AVX-512 targets')."""
    with pytest.MonkeyPatch.context() as patch:
        exp = _compiled(patch, True)
        exp(0.5)  # compiled while HORNER is True
    return exp


def _points() -> np.ndarray:
    rng = np.random.default_rng(31)
    return np.concatenate(
        [
            -rng.uniform(0, 708, 4000),
            -rng.uniform(0, 1, 4000),
            -np.exp(rng.uniform(math.log(1e-300), math.log(750.0), 2000)),
            -np.arange(0, 1030) * math.log(2) / 2,  # the ends of the reduction's intervals
            (-np.abs(rng.standard_normal(2000)) * 30).astype(np.float32),
            [0.0, -0.0, -708.0, -709.0, -745.5, -1e300, -np.inf, np.nan, -5e-324],
        ]
    )


def _same_bits(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.asarray(got, np.float64).view(np.int64) == np.asarray(want, np.float64).view(np.int64)


def test_issue13_avx2_loop_terms_are_exp_nonpositive_bit_for_bit(horner) -> None:
    d = _points()
    d = np.concatenate([d, np.zeros(-len(d) % 4)])
    got = np.array([_exp4(tuple(float(x) for x in d[k : k + 4])) for k in range(0, len(d), 4)])
    want = np.array([horner(x) for x in d])
    same = _same_bits(got.ravel(), want)
    assert same.all(), (d[~same][:4], got.ravel()[~same][:4], want[~same][:4])


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_issue13_avx2_loop_one_entry_gives_its_term_in_every_position(
    horner, temperature: float
) -> None:
    # every other entry -inf (e^-708, 3e-308, vanishes against the entry's term): the sum
    # is the entry's term, bit for bit, in each lane of the main loop and of the tail
    inv_t = 1.0 / temperature
    rng = np.random.default_rng(5)
    for v in (1, 3, 4, 7, 16, 17, 31, 45):
        for position in range(v):
            row = np.full(v, -np.inf, np.float32)
            row[position] = np.float32(-rng.uniform(0, 40))
            top = float(rng.uniform(0, 2))
            term = horner((np.float64(row[position]) - top) * inv_t)
            s, _, alone = _poly_loop(row, row.view(np.int32), top, inv_t)
            assert _same_bits(s, term), (v, position, s, term)
            assert _same_bits(alone, term), (v, position, alone, term)


def _depth(v: int) -> int:
    """At most how many additions deep a sum of ``v`` terms is in the AVX2 loop (or the
    table loop): per lane at most ``v / 16`` in the main loop (steps of 32 logits or
    more), 8 in the tail, 3 to add the accumulators, 3 across the lanes; 8 more for
    the float64 rounding of each term."""
    return v // 16 + 8 + 3 + 3 + 8


def _fsum_of_terms(horner, values: np.ndarray, top: float, inv_t: float) -> float:
    return math.fsum(horner((float(x) - top) * inv_t) for x in values)


def _check_hard_rows(function, horner, storage: str, temperature: float) -> None:
    # a float64 sum of nonnegative terms, _depth(v) roundings deep
    def truth(values: np.ndarray, top: float, inv_t: float) -> float:
        return _fsum_of_terms(horner, values, top, inv_t)

    def limit(v: int, exact: float) -> float:
        return _depth(v) * 2.0**-53 * exact

    sweep_hard_rows(function, truth, limit, storage, temperature, seed=11)


@pytest.mark.parametrize("storage", ["float32", "bf16", "fp16"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_issue13_avx2_loop_sums_and_maxima_on_hard_rows(
    horner, storage: str, temperature: float
) -> None:
    _check_hard_rows(_poly_loop, horner, storage, temperature)


@pytest.mark.skipif(not _EMULATED, reason="runs under benchmarks/emulate_avx2.sh (below)")
@pytest.mark.parametrize("storage", ["float32", "bf16"])
def test_issue13_avx2_loop_is_what_the_kernels_dispatch_to(horner, storage: str) -> None:
    assert kernels.POLY_LOOP
    assert not kernels.TABLE_EXP
    _check_hard_rows(_dispatched, horner, storage, 2.5)
    rng = np.random.default_rng(2)
    row, _ = _stored((rng.standard_normal(4099) * 4).astype(np.float32), storage)
    following = row.view(np.int32) if storage == "float32" else row
    got = _dispatched(row, following, 3.0, 0.4)
    assert got == _poly_loop(row, following, 3.0, 0.4)
    asm = _dispatched.inspect_asm(_dispatched.signatures[-1])
    assert "zmm" not in asm
    assert "ymm" in asm
    assert "prefetcht1" in asm


@pytest.mark.skipif(
    _EMULATED or sys.platform != "linux" or not {"avx2", "fma"} <= _host_flags(),
    reason="needs x86-64 Linux with AVX2 and FMA (and not already emulated)",
)
def test_issue13_avx2_loop_tests_pass_under_the_avx2_emulation(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = emulation_env(tmp_path)
    env.pop("NUMBA_DISABLE_JIT", None)
    command = [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        ["bash", str(_SCRIPT), *command, "-rs", str(Path(__file__).resolve())],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    # every test ran there but this one (the dispatch's two included)
    assert "11 passed, 1 skipped" in tail, tail
