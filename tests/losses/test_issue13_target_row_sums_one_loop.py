r"""Issue 13 follow-up: the soft-target gradient's row sums, one loop body for four cases.

``_cpu_kernels_numba.target_row_sums`` (the first pass of ``target_gradient_kernel``
over a row) fills the row's terms :math:`e_c = e^{(z_c - \text{top})/T - \text{shift}}`
and returns :math:`S = \sum_c e_c` as an unevaluated pair and :math:`\sum_c w_c t_c`
(:math:`w = 1` without class weights). It had four loops written out (weights or not,
times :math:`T = 1`, whose exp skips the division, or not); now one body,
``target_row_sums_specialised``, is compiled four times from literal flags. Each of the
four (weights x T in {1, 1.3}) is pinned here on hard rows (three blocks of
``SUM_BLOCK`` and a ragged tail; ties with the top, runs of ``-inf``, logits below the
clamp at :math:`e^{-708}`, one dominant logit, targets that are the float32 softmax
itself, zero class weights):

* the buffer's terms are, bit for bit, the scalar exp of each logit (``target_exp``,
  ``target_exp_unit`` at T = 1): a case that takes the other exp (the T = 1 form at
  T = 1.3 drops the division) fails;
* :math:`S` within ``SUM_ULPS`` (32) float64 ulps of ``math.fsum`` of the kernel's own
  terms and, with the exp's error added, of mpmath's sum (40 digits): 3.6 at most on Zen
  5, on the row of ties, whose equal terms' roundings add up in each vector lane; 12
  under ``benchmarks/emulate_avx2.sh`` (another order), on main before this change too;
  :math:`\sum_c w_c t_c` within :math:`2\varepsilon_{64}` of the exact sum (mpmath, exact
  products; 0.5 at most): a case that drops the weights, or weighs the unweighted sum,
  fails;
* the float32 gradient of ``target_gradient_kernel_serial`` on those rows (the sums'
  consumer; without smoothing or z-loss the cancelling rows make its bits follow
  :math:`S` below a float64 ulp) has its recorded bits, digests for the CPUs and Numba
  named in :data:`RECORDED` (elsewhere that check skips). The weighted ones are the
  four loops written out's (main at bd63441); the unweighted ones those of the blocks'
  sums in the fixed order of ``block_sum``, since a CI run failed here on the order
  that LLVM had chosen for a reassociated sum in the loop, which differed from one
  compilation to the next (``test_issue13_target_sums_fixed_order.py``). Now the same
  on Zen 4, Zen 5 and under ``benchmarks/emulate_avx2.sh``.

Mutants caught (each run): the T = 1.3 weighted case given the T = 1 exp (3 tests
fail); the weighted T = 1 case given the unweighted sum (2); the ragged last block
skipped (12); ``s_lo`` dropped (the unweighted gradients' bits, 2); the pair's
:math:`S - 1` formed under the kernel's ``reassoc``, as before ``pair_minus_one``
(the same 2: LLVM added ``lo`` to -1 first once the four loops met in one phi);
``pair_minus_one`` given the kernel's flags (its own test). Not caught, and no loss: the
weighted T = 1 case given ``target_exp`` (the same terms, and in the kernel the same
vector loop), the blocks' TwoSums in reverse order (the same pair).

Small (8 rows of 2085 logits); the wrapper below is the only compile of its own.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
kernels = pytest.importorskip("crossent.losses._cpu_kernels_numba")

from crossent._read_only import read_only  # noqa: E402
from crossent.losses._cpu_kernels_numba import _FLAGS, SUM_BLOCK  # noqa: E402

EPS64 = float(np.finfo(np.float64).eps)
#: exp_nonpositive's relative error (crossent._intrinsics_numba's docstring: 5.2e-11)
EXP_ERROR = 5.3e-11
#: The row sums' error in float64 ulps of the sum: each SUM_BLOCK is summed in 32
#: running sums of 32 terms, then a tree of 5 levels (block_sum; before, in an order
#: LLVM picked, measured 3.6 on Zen 5 and 12 under benchmarks/emulate_avx2.sh), the
#: blocks joined by two_sum: about 40 ulps in the worst case, 2.0 measured on these rows
#: (4.0 before, here). A skipped or doubled block is off by far more.
SUM_ULPS = 32
CLASSES = 2 * SUM_BLOCK + 37  # two whole blocks and a ragged one
VARIANTS = [(t, w) for t in (1.0, 1.3) for w in (False, True)]

#: sha256 (first 16 hex digits) of target_gradient_kernel_serial's float32 gradient on
#: :func:`hard_rows`, per (T, weighted), by :func:`compiled_for`: weighted, as the four
#: written-out loops gave it (main at bd63441); unweighted, with the blocks' sums in
#: block_sum's order (the written-out loops': ff11ff927eab6a3b and 78b9d014c73afa78,
#: or 3f3a607ec37467a5 and 84455e6c1ee19a32 in some compilations). Unweighted, since
#: branch smoothperf with exp_of_pair's EXP_POLY polynomial (the degree-13 Taylor
#: series': 3bc4771d4bb8f6ea and 98c272108d5a907a, on znver4, znver5 and emulated; the
#: new ones recorded on znver4 and under emulate_avx2.sh, not re-run on Zen 5).
_BITS = {
    (1.0, False): "7f37fc63bdab5455",
    (1.0, True): "1f94c94abba1847f",
    (1.3, False): "5cf2f750f74012a6",
    (1.3, True): "c255a09fffaea35f",
}
RECORDED: dict[tuple[str, str], dict[tuple[float, bool], str]] = {
    ("znver4", "0.68.1"): _BITS,
    ("znver5", "0.68.1"): _BITS,
    ("emulated", "0.68.1"): _BITS,  # benchmarks/emulate_avx2.sh (znver3, AVX2): the same
}


def compiled_for() -> tuple[str, str]:
    """The CPU that Numba compiles for (LLVM's name; "emulated" under
    ``NUMBA_CPU_FEATURES``, as ``benchmarks/emulate_avx2.sh`` sets) and Numba's version."""
    from llvmlite import binding

    name = numba.config.CPU_NAME or binding.get_host_cpu_name()
    return (name if numba.config.CPU_FEATURES is None else "emulated", numba.__version__)


def _softmax32(z: np.ndarray, temperature: float) -> np.ndarray:
    """float32 softmax of float32 ``z / T`` per row, formed in float64."""
    z64 = z.astype(np.float64) / temperature
    e = np.exp(z64 - z64.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def hard_rows(temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 logits and targets (8 x CLASSES), float64 class weights (a third 0)."""
    rng = np.random.default_rng(1313)
    z = (rng.standard_normal((8, CLASSES)) * 3).astype(np.float32)
    z[1] = 2.5  # every logit ties with the top
    z[1, ::5] = 1.5
    z[2, ::3] = -np.inf  # runs of -inf
    z[2, 1::7] = -np.inf
    z[3] = rng.uniform(-900.0, 0.0, CLASSES).astype(np.float32)  # below the clamp
    z[4, 100] = 60.0  # one logit dominates: S is 1 and e^-60-sized terms
    z[5, -1] = 9.0  # the top in the ragged block
    z[6] = rng.uniform(-1.0, 1.0, CLASSES).astype(np.float32) * 1e-3  # nearly flat
    t = rng.random(z.shape, dtype=np.float32)
    t /= t.sum(-1, keepdims=True, dtype=np.float64).astype(np.float32)
    t[0], t[5], t[6] = _softmax32(z[[0, 5, 6]], temperature)  # cancelling rows
    t[7] = 0.0
    t[7, 17] = 1.0  # a hard label as a distribution
    w = rng.uniform(0.5, 2.0, CLASSES)
    w[::3] = 0.0
    return z, t, w


def row_tops_and_shifts(z: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Each row's maximum (float64) and :math:`\log\sum_c e^{(z_c - \max)/T}` rounded to
    a multiple of :math:`2^{-24}` (what ``write_target_gradient`` passes), by
    ``math.fsum``."""
    top = z.max(-1).astype(np.float64)
    ell = [
        math.log(math.fsum(np.exp((row.astype(np.float64) - m) / temperature)))
        for row, m in zip(z, top, strict=True)
    ]
    return top, np.rint(np.array(ell) * 2.0**24) / 2.0**24


def kernel_gradient(module: Any, temperature: float, weighted: bool) -> np.ndarray:
    """``module.target_gradient_kernel_serial`` on :func:`hard_rows`, row scale 1: plain
    (keep 1, spread 0, no z-loss: the cancelling rows' entries, about a float32 ulp of
    :math:`p`, move with :math:`S` below a float64 ulp), then with keep 0.9, spread
    0.1/V and a z-loss coefficient 2e-3."""
    z, t, w = hard_rows(temperature)
    top, shift = row_tops_and_shifts(z, temperature)
    weight = read_only(w if weighted else np.zeros(0))
    w_sum = float(np.add.reduce(w)) if weighted else float(CLASSES)
    inv_t = 1.0 / temperature
    rows = read_only(np.ones(z.shape[0]))
    # read-only inputs, as _cpu_kernels hands them (one compilation)
    z, t, top, shift = (read_only(x) for x in (z, t, top, shift))
    outs = []
    for keep, spread, z_coef in ((1.0, 0.0, 0.0), (0.9, 0.1 / CLASSES, 2e-3)):
        out = np.empty(z.shape, np.float32)
        module.target_gradient_kernel_serial(
            z, z.view(np.int32), t, top, shift, inv_t, temperature, rows, keep, spread,
            w_sum, z_coef, weight, out,
        )  # fmt: skip
        outs.append(out)
    return np.concatenate(outs)


def digest(gradient: np.ndarray) -> str:
    """The first 16 hex digits of the sha256 of the array's bytes."""
    return hashlib.sha256(gradient.tobytes()).hexdigest()[:16]


@numba.njit(fastmath=_FLAGS)
def _row_sums(z, t, top, inv_t, temperature, shift, weight, terms, out):  # type: ignore[no-untyped-def]
    # target_row_sums of each row, as target_gradient_row calls it
    for i in range(z.shape[0]):
        s_hi, s_lo, total = kernels.target_row_sums(
            z[i], t[i], top[i], inv_t, temperature, shift[i], weight, terms[i]
        )
        out[i, 0] = s_hi
        out[i, 1] = s_lo
        out[i, 2] = total


def _sums_and_terms(temperature: float, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
    """(s_hi, s_lo, total) per row of :func:`hard_rows`, and the terms buffer."""
    z, t, w = hard_rows(temperature)
    top, shift = row_tops_and_shifts(z, temperature)
    terms = np.full(z.shape, np.nan)
    out = np.empty((z.shape[0], 3))
    weight = w if weighted else np.zeros(0)
    _row_sums(z, t, top, 1.0 / temperature, temperature, shift, weight, terms, out)
    return out, terms


@pytest.mark.parametrize(("temperature", "weighted"), VARIANTS)
def test_terms_are_the_scalar_exp_of_each_logit(temperature: float, weighted: bool) -> None:
    z, _, _ = hard_rows(temperature)
    top, shift = row_tops_and_shifts(z, temperature)
    _, terms = _sums_and_terms(temperature, weighted)
    for i, row in enumerate(z):
        floor = shift[i] - 708.0
        for j in range(0, CLASSES, 7):  # a seventh of the entries, every block and tail
            if temperature == 1.0:
                want = kernels.target_exp_unit(row[j], top[i], floor, shift[i])
            else:
                want = kernels.target_exp(
                    row[j], top[i], 1.0 / temperature, temperature, floor, shift[i]
                )
            assert np.float64(terms[i, j]).tobytes() == np.float64(want).tobytes(), (i, j)


@pytest.mark.parametrize(("temperature", "weighted"), VARIANTS)
def test_sums_against_mpmath(temperature: float, weighted: bool) -> None:
    z, t, w = hard_rows(temperature)
    _, shift = row_tops_and_shifts(z, temperature)
    top = z.max(-1)
    sums, terms = _sums_and_terms(temperature, weighted)
    with mpmath.workdps(40):
        tau = mpmath.mpf(temperature)
        for i, row in enumerate(z):
            got = mpmath.mpf(float(sums[i, 0])) + mpmath.mpf(float(sums[i, 1]))
            exact = mpmath.fsum(
                mpmath.exp((mpmath.mpf(float(x)) - mpmath.mpf(float(top[i]))) / tau - shift[i])
                for x in row
                if x != -np.inf
            )
            # each term carries the kernels' exp error (up to EXP_ERROR relative), and the
            # sum its reassociated order's (SUM_ULPS)
            bound = (EXP_ERROR + SUM_ULPS * EPS64) * exact
            assert abs(got - exact) <= bound, (i, float(got / exact - 1))
            own = math.fsum(terms[i])  # the kernel's own terms, summed exactly
            assert abs(float(got) - own) <= SUM_ULPS * EPS64 * own, i
            weights = w if weighted else np.ones(CLASSES)
            total = mpmath.fsum(
                mpmath.mpf(float(wc)) * mpmath.mpf(float(tc))
                for wc, tc in zip(weights, t[i], strict=True)
            )
            assert abs(sums[i, 2] - total) <= 2 * EPS64 * total, i


@pytest.mark.parametrize(("temperature", "weighted"), VARIANTS)
def test_gradient_keeps_its_recorded_bits(temperature: float, weighted: bool) -> None:
    machine = compiled_for()
    if machine not in RECORDED:
        pytest.skip(f"bits recorded for {sorted(RECORDED)}, not {machine}")
    got = kernel_gradient(kernels, temperature, weighted)
    assert digest(got) == RECORDED[machine][temperature, weighted]


def test_pair_minus_one_has_no_reassoc() -> None:
    """``pair_minus_one`` (the gradient's :math:`S - 1` of the row sums' pair) keeps its
    own flags, without ``reassoc``: under it LLVM added ``lo`` to -1 first, dropping it
    (the gradient check above failed on the unweighted rows, 448 and 225 entries)."""
    options = kernels.pair_minus_one.targetoptions
    assert "fastmath" in options, "no fastmath of its own: it would inherit the kernel's"
    assert not options["fastmath"] or "reassoc" not in set(options["fastmath"])
