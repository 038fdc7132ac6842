r"""Issue 13 follow-up: the fused distillation kernels' rows against an extended-precision
oracle, with bounds in float64 ulps.

``losses._distill_numba``'s forward kernel gives per row :math:`(D, m_z, \ell_s, m_v,
\ell_t)` and its backward kernel :math:`g_c = s_c - t_c` (times the row's scale, 1
here), both in float64 (the CPU op ``crossent.torch.distillation_loss`` rounds them
once). The oracle forms the same quantities from the same float64 inputs in
``np.longdouble`` (x87 extended: 64-bit significand, :math:`2^{11}` times float64's
precision; the module is skipped where ``longdouble`` is float64), by the textbook
formulas: :math:`\sigma = (z - \max z)/T`, :math:`\ell = \log\sum_c e^{\sigma_c}`,
:math:`D = \sum_c t_c(\tau_c - \sigma_c) + \ell_s - \ell_t`. With
:math:`\varepsilon = 2^{-53}` and :math:`A = \sum_c t_c|\tau_c - \sigma_c|`:

* :math:`|\Delta\ell| \le 12\varepsilon` (absolute: a relative error of :math:`S`),
* :math:`|\Delta D| \le 16\varepsilon(1 + A)` (the two :math:`\ell` and :math:`W/S_t`),
* :math:`|\Delta g_c| \le 12\varepsilon(s_c + t_c) + \varepsilon(s_c|\sigma_c| +
  t_c|\tau_c|)\,[\text{float64 rows}] + 2e^{-708}`: each of :math:`s, t` within a few
  ulps (exp within 0.7 ulp, its argument :math:`(z - m)/T` as the pair
  :math:`q + \mathrm{lo}` within about :math:`2^{-104}|q|` of the quotient of the
  stored difference, :math:`\ell`'s error); for float64 logits the difference :math:`z - m`
  itself is rounded (the term in :math:`|\sigma|`: exact for float32 logits, the op's
  usual input); below :math:`e^{-708}` an exponential is 0 (module docstring).

Measured worst on these rows (T = 0.5, 1, 2, 7; C = 2, 3, 1000, 65536): :math:`\ell`
7.8, :math:`D` 11.0, :math:`g` 7.2 (7.0 before the backward's product
:math:`e^\sigma e^{-\ell}`), against main's kernel 7.8, 11.0 and 911 (its
per-entry division :math:`(z - m)/T - \ell`, rounded, left an error of
:math:`|\sigma - \ell|\varepsilon` in each exponential: main fails the gradient bound at
10 of the 16 temperatures and sizes, e.g. 37 ulps at T = 0.5, 791 at T = 7, C = 65536).
Mutants caught: the remainder ``lo`` dropped from the quotient pair (4 cases: T = 7,
the other temperatures are powers of two, where it is 0); the first maximum's term kept
in the sums (every case); the student's ``exp_of_pair`` replaced by the degree-7
``exp_nonpositive`` (all 16 cases); the flag's :math:`\max_c t_c` doubled or halved
(the threshold test). Not caught: :math:`\tau - \sigma` without the remainders in
:math:`W` (within the :math:`D` bound). Rows with a NaN, ``+inf`` or ``-inf`` give a
NaN :math:`D, \ell_s, \ell_t` (the caller's exact path) and a zero gradient row.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from crossent._read_only import read_only
from crossent.losses import _distill_numba

if np.finfo(np.longdouble).nmant < 63:  # pragma: no cover - platforms without x87
    pytest.skip("longdouble is not extended precision here", allow_module_level=True)

EPS = 2.0**-53
TEMPERATURES = (0.5, 1.0, 2.0, 7.0)
CLASSES = (2, 3, 1000, 65536)
FLOOR = 2.0 * np.exp(-708.0)  # entries below e^-708 are 0 (both s and t)
FLOAT64_ROWS = (2, 3)  # the rows whose differences z - m are not exact in float64


def _hard_rows(classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits (11 x ``classes``, float64, C-contiguous)."""
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal((11, classes), dtype=np.float32).astype(np.float64)
    v = 3.0 * rng.standard_normal((11, classes), dtype=np.float32).astype(np.float64)
    z[1] *= 300.0  # a spread of 1e3: most terms underflow
    v[1] *= 300.0
    z[2] = rng.uniform(-4e4, 4e4, classes)  # float64, huge spreads
    v[2] = rng.uniform(-4e4, 4e4, classes)
    v[3] = z[3] + 1e-3 * rng.standard_normal(classes)  # float64, near (D ~ 1e-7)
    z[4] = 1.0  # near ties: maxima repeated, one float64 ulp apart
    v[4] = 1.0
    z[4, ::3] = 1.0 + 2.0**-20
    v[4, 1::2] = 1.0 - 2.0**-52
    z[5] = z[5].max()  # all at the maximum but one
    z[5, 0] -= 1.0
    v[6] = -z[6]  # opposite
    z[7] = np.round(z[7])  # many exact ties at the maximum
    v[7] = np.round(v[7])
    z[8, classes // 2] = 5e3  # a gap: s one-hot
    v[9, -1] = 7e2  # a gap on each side
    z[9, 0] = -7e2
    z[10] = np.float32(10.0) * z[10]  # equal rows (D = 0)
    v[10] = z[10]
    return np.ascontiguousarray(z), np.ascontiguousarray(v)


def _oracle(z: np.ndarray, v: np.ndarray, temperature: float) -> dict:
    """The rows' D, ell_s, ell_t, A, and the entries' s, t, |sigma|, |tau| (longdouble)."""
    wide = np.longdouble
    t_wide = wide(temperature)
    zl, vl = z.astype(wide), v.astype(wide)
    sigma = (zl - zl.max(1, keepdims=True)) / t_wide
    tau = (vl - vl.max(1, keepdims=True)) / t_wide
    ell_s = np.log(np.exp(sigma).sum(1))
    ell_t = np.log(np.exp(tau).sum(1))
    s = np.exp(sigma - ell_s[:, None])
    t = np.exp(tau - ell_t[:, None])
    gap = tau - sigma
    return {
        "D": (t * gap).sum(1) + ell_s - ell_t,
        "ell_s": ell_s,
        "ell_t": ell_t,
        "A": (t * np.abs(gap)).sum(1),
        "s": s,
        "t": t,
        "sigma": np.abs(sigma),
        "tau": np.abs(tau),
    }


def _kernels(z: np.ndarray, v: np.ndarray, temperature: float) -> tuple:
    """The kernels' statistics, gradient and small-spread flags (the op's argument types:
    read-only rows, as ``_distill_rows`` hands them, and its ``given`` and ``lse`` passed:
    the one specialisation the op compiles, not another of the defaults left out)."""
    z, v = read_only(z), read_only(v)
    rows = z.shape[0]
    stats = np.empty((rows, 5))
    _distill_numba.distillation_forward_kernel(z, v, temperature, stats, False, 0)
    grad = np.empty_like(z)
    small = np.zeros(rows, dtype=np.bool_)
    _distill_numba.distillation_backward_kernel(
        z, v, stats, temperature, np.ones(rows), grad, small
    )
    return stats, grad, small


def _errors(classes: int, temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the errors of ell, D and the gradient, in units of their bounds' epsilons
    (the gradient's: the worst entry's error over its bound, times 12)."""
    z, v = _hard_rows(classes, classes)
    stats, grad, _ = _kernels(z, v, temperature)
    o = _oracle(z, v, temperature)
    ell = np.maximum(np.abs(stats[:, 2] - o["ell_s"]), np.abs(stats[:, 4] - o["ell_t"])) / EPS
    kl = np.abs(stats[:, 0] - o["D"]) / (EPS * (1.0 + o["A"]))
    s, t = o["s"], o["t"]
    rounded = np.zeros(z.shape[0], dtype=bool)
    rounded[list(FLOAT64_ROWS)] = True
    slack = np.where(rounded[:, None], EPS * (s * o["sigma"] + t * o["tau"]), 0.0) + FLOOR
    excess = np.maximum(np.abs(grad - (s - t)) - slack, 0.0)
    g = (excess / (EPS * (s + t) + np.finfo(float).tiny)).max(1)
    return ell.astype(float), kl.astype(float), g.astype(float)


@pytest.mark.parametrize("classes", CLASSES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_rows_within_ulps_of_the_extended_oracle(temperature: float, classes: int) -> None:
    ell, kl, g = _errors(classes, temperature)
    assert ell.max() <= 12.0, ell
    assert kl.max() <= 16.0, kl
    assert g.max() <= 12.0, g


def test_small_spread_flags_and_rows_that_are_not_finite() -> None:
    """The backward's flag (max |s - t| < 2^-15 max t) on rows far on each side of it;
    NaN, +inf and a row of -inf: a NaN D (the caller's exact path) and a zero gradient
    (a -inf logit beside others: a finite D, test_issue13_distill_masked_rows.py)."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 700))
    v = z + 1e-9 * rng.standard_normal(700)  # small spread
    v[1] = z[1] + 1e-2 * rng.standard_normal(700)  # not small
    v[2, 5] = np.nan
    z[3, 699] = np.inf
    v[4] = -np.inf  # (a -inf logit alone: valid, formed; issue 13 masked rows)
    z[5] = -np.inf
    stats, grad, small = _kernels(np.ascontiguousarray(z), np.ascontiguousarray(v), 1.5)
    assert small[0]
    assert not small[1]
    assert np.isfinite(stats[:2, 0]).all()
    assert np.isnan(stats[2:, 0]).all()
    assert np.isnan(stats[2:, 2]).all()
    assert np.isnan(stats[2:, 4]).all()
    assert (grad[2:] == 0.0).all()
    assert not small[2:].any()
    assert stats[4, 1] == z[4].max()
    v[4, 1:] = 0.0  # one -inf logit: formed
    stats, _, _ = _kernels(np.ascontiguousarray(z), np.ascontiguousarray(v), 1.5)
    assert np.isfinite(stats[4, 0])
    assert stats[3, 3] == v[3].max()


@pytest.mark.parametrize("ratio", [0.6, 1.6])
def test_small_spread_flag_beside_its_threshold(ratio: float) -> None:
    """A row whose max |s - t| / max t is ``ratio`` times 2^-15 (by the oracle): flagged
    below the threshold, not above it."""
    rng = np.random.default_rng(11)
    z = rng.standard_normal((1, 500))
    noise = rng.standard_normal((1, 500))

    def spread(delta: float) -> float:
        o = _oracle(z, z + delta * noise, 3.0)
        return float(np.abs(o["s"] - o["t"]).max() / o["t"].max())

    delta = 1e-6 * ratio * 2.0**-15 / spread(1e-6)
    v = z + delta * noise
    assert abs(spread(delta) / 2.0**-15 - ratio) < 0.05
    _, _, small = _kernels(z, v, 3.0)
    assert small[0] == (ratio < 1.0)


# ------------------------------------------------------------------ the reverse direction
#
# Issue 13 follow-up (the options on the fused kernels): the reverse D(s || t) is the
# forward kernel of the roles swapped (``_distill_rows.reverse_statistics``), its
# gradient g_c = s_c (sigma_c - tau_c + ell_t - ell_s - D) the reverse kernel's. Bounds,
# with C = |ell_t - ell_s| + |D|, A = sum_c s_c |sigma_c - tau_c| and I_c = |g_c| / s_c:
# |Delta D| <= 16 eps (1 + A + C) (measured 11.0) and |Delta g_c| <= 6 eps s_c (I_c +
# |sigma_c - tau_c| + C + 1 + A) (measured 3.0), plus for float64 rows eps s_c (|sigma_c|
# (1 + I_c) + |tau_c|) and below e^-708, where s_c is 0 here, e^-708 (1 + I_c).
# Mutants caught (T = 7): the remainders lo left out of sigma - tau (250), the student's
# exponential of q without lo (307). Two more rows: float32-valued logits spread to
# some 1e3 with a teacher 0.01 away (sigma large, the bracket small).


def _reverse_rows(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_hard_rows` and two rows where sigma is large and the bracket small."""
    z, v = _hard_rows(classes, classes)
    rng = np.random.default_rng(classes + 1)
    ez = (300.0 * rng.standard_normal((2, classes), dtype=np.float32)).astype(np.float64)
    noise = 0.01 * rng.standard_normal((2, classes), dtype=np.float32)
    ev = (ez + noise).astype(np.float32).astype(np.float64)
    return np.ascontiguousarray(np.vstack([z, ez])), np.ascontiguousarray(np.vstack([v, ev]))


def _reverse_oracle(z: np.ndarray, v: np.ndarray, temperature: float) -> dict:
    """D(s || t), its gradient's entries and their bounds' magnitudes (longdouble)."""
    wide = np.longdouble
    zl, vl = z.astype(wide), v.astype(wide)
    sigma = (zl - zl.max(1, keepdims=True)) / wide(temperature)
    tau = (vl - vl.max(1, keepdims=True)) / wide(temperature)
    ell_s, ell_t = np.log(np.exp(sigma).sum(1)), np.log(np.exp(tau).sum(1))
    s = np.exp(sigma - ell_s[:, None])
    gap = sigma - tau
    kl = (s * gap).sum(1) + ell_t - ell_s
    inner = gap + (ell_t - ell_s - kl)[:, None]
    return {
        "D": kl,
        "g": s * inner,
        "s": s,
        "I": np.abs(inner),
        "gap": np.abs(gap),
        "C": np.abs(ell_t - ell_s) + np.abs(kl),
        "A": (s * np.abs(gap)).sum(1),
        "sigma": np.abs(sigma),
        "tau": np.abs(tau),
    }


@pytest.mark.parametrize("classes", CLASSES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_reverse_rows_within_ulps_of_the_extended_oracle(temperature: float, classes: int) -> None:
    from crossent.losses import _distill_rows

    z, v = _reverse_rows(classes)
    rows = z.shape[0]
    stats = np.empty((rows, 6))
    forward, _ = _distill_rows.kernels()
    _distill_rows.reverse_statistics(forward, read_only(z), read_only(v), temperature, stats, False)
    grad = np.empty_like(z)
    _distill_numba.distillation_reverse_backward_kernel(
        read_only(z), read_only(v), stats, temperature, np.ones(rows), grad, np.empty(rows, bool)
    )
    o = _reverse_oracle(z, v, temperature)
    kl = np.abs(stats[:, 0] - o["D"]) / (EPS * (1 + o["A"] + o["C"]))
    assert float(kl.max()) <= 16.0, kl
    s, inner = o["s"], o["I"]
    rounded = np.zeros(rows, dtype=bool)
    rounded[list(FLOAT64_ROWS)] = True
    slack = np.where(rounded[:, None], EPS * s * (o["sigma"] * (1 + inner) + o["tau"]), 0.0)
    slack = slack + FLOOR * (1 + inner)
    excess = np.maximum(np.abs(grad - o["g"]) - slack, 0.0)
    unit = EPS * s * (inner + o["gap"] + o["C"][:, None] + 1 + o["A"][:, None])
    g = (excess / (unit + np.finfo(float).tiny)).max(1)
    assert float(g.max()) <= 6.0, g
