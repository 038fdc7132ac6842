r"""Issue 13 follow-up: the KL of probabilities against logits or log-probabilities (either
way round) certifies its loop's result by a cheap bound, and the hard rows still take
the exact sums.

The klexact change (44a6699) bounded the loop's error row by row
(``_fused_kernels._loop_kl_bound``: three sums an entry) and summed a float64 logits
side's exp-sum by Neumaier's method, which cost random rows 10 to 25 % (issue 13). Now
the loop keeps one sum an entry (two where P is logits or float32 log-probabilities)
and ``_loop_kl_bound_cheap`` bounds the precise bound from it; the precise one runs as a
second pass only where the cheap one does not stand and it may; the exp-sum is
compensated by Fast2Sum from 1, branch-free.

Proved here:

* the cheap bound is at least the precise one on every row below (every mixed pair of
  forms, float32 and float64, random, nearly equal, peaked, spread and zero-holding
  rows), computed from the kernel's own helpers on the kernel's own entries, so a row
  the cheap bound lets stand would have stood under the precise bound
  (``_loop_kl_bound``, whose rigour ``test_issue13_kl_tiny_exact`` checks);
* the compensated log-partition is within its stated bound of mpmath's (rows of 20000
  entries; on one the plain sum errs by 146 ulps of the log-partition);
* nearly equal rows, a KL down to 1e-20, and random rows of every mixed pair are exact
  against mpmath (float64: 4 ulps and :math:`2^{-150}`; float32: one rounding).

Mutants (each on a copy of ``src``, measured): the sides' mass term dropped (``kappa``
0 in ``_loop_bound_weights``): 4 dominance cases fail (probs against logits, logits
against probs, float32 and float64); float64 logits' ``t_weight`` 0 (T dropped): 1
(logits against probs); float32 mode 2 without :math:`2u(1 + 746)T` (the
:math:`\\log p` parts): 2 (float32 logits and log_probs against probs); slope
:math:`2u` in mode 0 (:math:`c_t T` dropped): 5; ``_cheap_bound_term`` without the
factor :math:`1 + |r|`: 1 (float64 logits against probs); the log-partition's
compensation ``lost`` dropped: the partition test (146 ulps against a bound of 34);
``_loop_kl_bound_cheap`` returning 0 (the loop always stands): 6 of the 8 mpmath cases
(all but float32 probs and log_probs, either way round, whose loop stays within a
float32 rounding there). The dominance and partition tests cannot run on 44a6699
(no cheap bound); its results pass the mpmath test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent

numba = pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

from crossent.info import _fused_kernels as kernels  # noqa: E402

FORMS = {"probs": 0, "log_probs": 1, "logits": 2}
PAIRS = [("probs", "logits"), ("logits", "probs"), ("probs", "log_probs"), ("log_probs", "probs")]
DIGITS = 60
U = 2.0**-53


@numba.njit(error_model="numpy")
def _bounds(a: Any, b: Any, form_a: int, form_b: int) -> tuple[float, float]:
    """The cheap and the precise bound of one row pair, from the kernel's helpers: the
    shifts as ``_row`` computes them, the loop's cheap sums entry by entry, its KL."""
    fast = kernels._narrow(a)
    # the flags typed as _row passes them (bool, not literals: the helpers' versions
    # compiled for _row, one for both dtypes)
    flag, no_entropy = np.bool_(fast), np.bool_(False)
    n = a.shape[0]
    m_a = ell_a = m_b = ell_b = 0.0
    if form_a == 2:
        if fast:
            m_a, ell_a, _ = kernels._log_partition(a, no_entropy, fast)
        else:
            m_a, ell_a = kernels._log_partition_compensated(a)
    if form_b == 2:
        if fast:
            m_b, ell_b, _ = kernels._log_partition(b, no_entropy, fast)
        else:
            m_b, ell_b = kernels._log_partition_compensated(b)
    errors = (
        kernels._side_error(form_a, n, ell_a, flag),
        kernels._side_error(form_b, n, ell_b, flag),
    )
    weights = kernels._loop_bound_weights(form_a, errors, n, flag)
    kl = kl_c = logs = t_abs = 0.0
    for i in range(n):
        p, log_p = kernels._side(np.float64(a[i]), form_a, m_a, ell_a, 3, fast)
        _, log_q = kernels._side(np.float64(b[i]), form_b, m_b, ell_b, 2, fast)
        term = kernels._kl_from_log(p, log_p, log_q)
        kl, kl_c = kernels._add(kl, kl_c, term)
        if log_p != -math.inf:
            logs += kernels._cheap_bound_term(p, log_p, log_q, weights[1], weights[3])
            if weights[2] > 0.0:
                t_abs += abs(term)
    shifts = (m_a, ell_a, m_b, ell_b)
    cheap = kernels._loop_kl_bound_cheap(kl + kl_c, logs, t_abs, weights, n)
    sums = kernels._loop_bound_sums(a, b, (form_a, form_b), shifts)
    precise = kernels._loop_kl_bound(kl + kl_c, sums, errors, n, (form_a, flag))
    return cheap, precise


def _as_form(z: np.ndarray, form: str) -> np.ndarray:
    """Logits ``z`` (float64) in ``form``: as they are, their log-softmax, its exp."""
    if form == "logits":
        return z
    log_p = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    return log_p if form == "log_probs" else np.exp(log_p)


def _row_pairs(classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of logit rows: random, nearly equal (1e-9 and 1e-15 apart), peaked (one
    class 30 nats above), spread over 90 nats, two classes."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(classes) * 3
    peaked = z.copy()
    peaked[0] += 30.0
    spread = np.linspace(-90.0, 0.0, classes)
    noise = rng.standard_normal(classes)
    return [
        (z, rng.standard_normal(classes) * 3),
        (z, rng.standard_normal(classes) * 0.3),
        (z, z + noise * 1e-9),
        (z, z + noise * 1e-15),
        (peaked, z),
        (z, peaked),
        (spread, spread[::-1]),
        (z[:2], z[:2] + 0.5),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("p_form", "q_form"), PAIRS)
def test_cheap_bound_dominates_precise(p_form: str, q_form: str, dtype: Any) -> None:
    """On every row the cheap bound is at least the precise bound: where the loop's KL
    stands under it, it stands under the precise one (at most the tolerance)."""
    for classes, seed in ((9, 0), (300, 1)):
        for z_p, z_q in _row_pairs(classes, seed):
            a = _as_form(z_p, p_form).astype(dtype)
            b = _as_form(z_q, q_form).astype(dtype)
            if p_form == "probs":
                a[::5] = 0.0  # zeros in P: their terms are left out of both bounds
            cheap, precise = _bounds(a, b, FORMS[p_form], FORMS[q_form])
            assert np.isfinite(precise)
            assert cheap >= precise, (classes, cheap, precise)


def test_log_partition_compensated_within_bound() -> None:
    """The float64 logits' log-partition against mpmath: within
    :math:`(4 + \\log n)u + 2.02(nu)^2 + 2u|\\ell|` (``_side_error`` states 2u more) on
    rows of 20000 entries near the maximum: random ones, and ones whose every
    :math:`e^{s_i}` falls 0.3 ulps of :math:`2^{-44}` short of 1, where the plain sum
    rounds up at every step (146 ulps of :math:`\\ell` off, against a bound of 34)."""
    rng = np.random.default_rng(7)
    short = math.log1p(-0.3 * 2.0**-44)
    for rest in (-rng.uniform(0.0, 1e-6, 19999), np.full(19999, short)):
        x = np.concatenate([[0.0], rest])
        m, ell = kernels._log_partition_compensated(x)
        with mp.workdps(40):
            truth = mp.log(mp.fsum(mp.exp(mp.mpf(float(v)) - mp.mpf(m)) for v in x))
        n = x.size
        bound = (4.0 + math.log(n)) * U + 2.02 * (n * U) ** 2 + 2.0 * U * abs(ell)
        assert abs(mp.mpf(ell) - truth) <= bound


def _mp_kl(a: np.ndarray, b: np.ndarray, forms: tuple[str, str]) -> Any:
    """The KL of the inputs as given, in mpmath (:data:`DIGITS` digits)."""

    def logs(x: np.ndarray, form: str) -> list[Any]:
        values = [mp.mpf(float(v)) for v in x]
        if form == "probs":
            return [mp.log(v) if v > 0 else -mp.inf for v in values]
        if form == "log_probs":
            return values
        top = max(values)
        total = mp.log(mp.fsum(mp.exp(v - top) for v in values))
        return [v - top - total for v in values]

    with mp.workdps(DIGITS):
        log_p, log_q = logs(a, forms[0]), logs(b, forms[1])
        return mp.fsum(
            mp.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q, strict=True) if lp != -mp.inf
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("p_form", "q_form"), PAIRS)
def test_hard_rows_exact_against_mpmath(p_form: str, q_form: str, dtype: Any) -> None:
    """Nearly equal rows (one distribution in each form, logits 1e-9 and 1e-15 apart,
    and one entry one ulp off: KLs down to about 1e-20), random and peaked rows: float64
    within 4 ulps and :math:`2^{-150}` of mpmath, float32 within one float32 rounding
    (plus float32's smallest normal)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal(40) * 3
    a_rows, b_rows = [], []
    for z_q in (z, z + rng.standard_normal(40) * 1e-9, z + rng.standard_normal(40) * 1e-15):
        a_rows.append(_as_form(z, p_form).astype(dtype))
        b_rows.append(_as_form(z_q, q_form).astype(dtype))
    one_ulp = _as_form(z, q_form).astype(dtype)
    one_ulp[3] = np.nextafter(one_ulp[3], dtype(np.inf))
    a_rows.append(_as_form(z, p_form).astype(dtype))
    b_rows.append(one_ulp)
    for z_p, z_q in _row_pairs(40, 4)[:2] + _row_pairs(40, 4)[4:6]:
        a_rows.append(_as_form(z_p, p_form).astype(dtype))
        b_rows.append(_as_form(z_q, q_form).astype(dtype))
    a, b = np.stack(a_rows), np.stack(b_rows)
    got = crossent.kl_divergence(a, b, p_form=p_form, q_form=q_form, validate=False)
    for row, value in enumerate(got):
        truth = _mp_kl(a[row], b[row], (p_form, q_form))
        if dtype is np.float64:
            allowed = 4 * U * abs(truth) + 2.0**-150
        else:
            allowed = 2.0**-24 * abs(truth) + float(np.finfo(np.float32).tiny)
        assert abs(mp.mpf(float(value)) - truth) <= allowed, (row, float(value), truth)
