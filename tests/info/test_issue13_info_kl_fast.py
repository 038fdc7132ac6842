"""Issue 13 follow-up: the fast KL of float32 logits and log-probabilities, still exact.

The fused kernel (``info/_fused_kernels.py``) walked each row of a KL with a scalar
compensated loop. Now, for float32 rows of logits and log-probabilities:

* two logit sides: one vectorised pass summing the non-negative Bregman terms
  :math:`q_i \\varphi(r_i)` (no cancellation, whatever P and Q), and where the KL is so
  small that the log-partitions' error could show (nearly equal rows), a second pass
  with the shift corrected (``_shift_negligible``);
* other forms: a vectorised pass of the terms :math:`p_i(\\log p_i - \\log q_i)` with an
  error bound, the compensated loop only for rows the bound flags (``_divergence_safe``).

Checked against mpmath (50 digits, on the stored values): float32 and float16 results
within 0.51 float32 ulps (the tolerance of ``test_issue13_info_fastexp``: the float64
value errs by about 1e-10 relative, then one rounding) on hard rows (nearly equal P and Q
with KL from 1e-12 down to 1e-20, huge spreads, dominant logits, ``-inf`` entries in P,
in Q, in both: 0 and ``+inf`` rules), V = 2, 7, 1000 and 32000, C and Fortran order;
float64 (the unchanged compensated loop with ``math.exp``) within 2e-13 relative on rows
without heavy cancellation.

Mutants caught (by hand, then restored): ``_divergence_safe`` without its bound (the
fast sum taken on a cancelling log-probability row: 3 tests), ``_shift_negligible``
always true (no second pass: the bound's unit test and the worst-case log-partition
error, tens to thousands of ulps), the KL sums accumulated in float32
(``kl = np.float32(kl + term)``: in the Bregman pass 8 tests, in the bounded pass 4),
``_log_softmax_entry`` without its own ``fastmath`` (the cross-entropy of a dominant
large logit: 0 instead of 4.2e-18). On random and hard rows the realised log-partition
error is far below the worst case (it is shared by nearly equal rows), so only the
forced error shows the second pass.
Main (the compensated loop on logits) gave nearly equal float32 logit rows 1e5 to
1e11 ulps off, some of them negative; float64 logits were too (now the float64 Bregman
sums: ``test_issue13_kl_float64_exact``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

FLOAT32_ULPS = 0.51
FLOAT64_RELATIVE = 2e-13


def _mp_row(row: Sequence[float]) -> list[Any]:
    return [mp.mpf(float(v)) for v in row]


def _log_softmax(v: list[Any]) -> tuple[list[Any], Any]:
    finite = [t for t in v if t != -mp.inf]
    top = max(finite)
    lse = top + mp.log(mp.fsum(mp.exp(t - top) for t in finite))
    return [t - lse for t in v], lse


def _kl_truth(x: Sequence[float], y: Sequence[float], forms: tuple[str, str]) -> Any:
    """D(P||Q) of one pair of rows in 50-digit arithmetic, 0 log 0 = 0 and +inf where
    only q = 0. Logits on both sides: :math:`\\sum_i p_i d_i - c` (:math:`d = x - y`,
    :math:`c` the difference of the log-partitions), exact since :math:`\\sum p = 1`."""
    with mpmath.workdps(50):
        a, b = _mp_row(x), _mp_row(y)
        empty = 0 if forms[0] == "probs" else -mp.inf  # a zero probability, in its form
        if any(s != empty and t == empty for s, t in zip(a, b, strict=True)):
            return mp.inf
        if forms == ("probs", "probs"):
            return mp.fsum(s * mp.log(s / t) for s, t in zip(a, b, strict=True) if s > 0)
        if forms == ("logits", "logits"):
            la, lse_a = _log_softmax(a)
            _, lse_b = _log_softmax(b)
            total = mp.fsum(
                mp.exp(s) * (t - u)
                for s, t, u in zip(la, a, b, strict=True)
                if s != -mp.inf and t != u
            )
            return total - (lse_a - lse_b)
        la = _log_softmax(a)[0] if forms[0] == "logits" else a
        lb = _log_softmax(b)[0] if forms[1] == "logits" else b
        return mp.fsum(mp.exp(s) * (s - t) for s, t in zip(la, lb, strict=True) if s != -mp.inf)


def _ulps(got: float, truth: Any) -> float:
    """|got - truth| in float32 ulps of the truth; an infinite truth must be matched."""
    if mp.isinf(truth):
        return 0.0 if got == float(truth) else np.inf
    unit = float(np.spacing(np.float32(abs(float(truth)))))
    if unit == 0.0 or not np.isfinite(unit):
        unit = float(np.spacing(np.float32(0)))
    with mpmath.workdps(50):
        return float(abs(mp.mpf(float(got)) - truth) / unit)


def _nearly(x: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A float32 row close to ``x``: a few entries one ulp up or down ("ulp"), or every
    entry moved by about 2e-6 ("noise", a KL near 1e-12)."""
    y = x.copy()
    if kind == "ulp":
        k = min(3, len(x))
        y[:k] = np.nextafter(y[:k], np.float32(np.inf))
        if len(x) > 4:
            y[4] = np.nextafter(y[4], np.float32(-np.inf))
        return y
    return (x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(2e-6)).astype(
        np.float32
    )


def _logit_pairs(classes: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    idx = np.arange(classes)
    x = (rng.standard_normal(classes) * 3).astype(np.float32)
    spread = np.where(idx % 2 == 0, 0.0, -1e4).astype(np.float32)
    dominant = np.where(idx == 0, 0.0, -30.0).astype(np.float32)
    p_inf = np.where(idx % 3 == 1, -np.inf, x).astype(np.float32)
    q_inf = np.where(idx == classes - 1, -np.inf, x).astype(np.float32)
    return [
        (x, (rng.standard_normal(classes) * 3).astype(np.float32)),
        (x, _nearly(x, rng, "ulp")),
        (x, _nearly(x, rng, "noise")),
        (x * np.float32(10), _nearly(x * np.float32(10), rng, "ulp")),
        (x, x),  # exactly 0
        (spread, np.roll(spread, 1)),
        (spread, _nearly(spread, rng, "noise")),
        (dominant, np.where(idx == 0, 0.0, -31.0).astype(np.float32)),
        (dominant, (rng.standard_normal(classes) * 1e4).astype(np.float32)),
        (p_inf, x),  # 0 where p = 0
        (p_inf, _nearly(p_inf, rng, "noise")),
        (x, q_inf),  # +inf where only q = 0
        (q_inf, q_inf),  # both 0: 0
    ]


_NEARLY_EQUAL = (1, 2, 3, 6, 10)
"""The pairs of :func:`_logit_pairs` whose KL is below 1e-9 (but not 0)."""


def _check(pairs: list[tuple[np.ndarray, np.ndarray]], forms: tuple[str, str], **kw: Any) -> None:
    a = np.stack([p for p, _ in pairs])
    b = np.stack([q for _, q in pairs])
    dtype = kw.pop("dtype", np.float32)
    layout = kw.pop("layout", "C")
    a, b = a.astype(dtype), b.astype(dtype)
    if layout == "F":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1], validate=False)
    assert got.dtype == (np.float64 if dtype == np.float64 else np.float32)
    for i, value in enumerate(got):
        truth = _kl_truth(a[i], b[i], forms)
        if dtype == np.float64:
            if mp.isinf(truth):
                assert value == np.inf, (i, value)
                continue
            error = abs(mp.mpf(float(value)) - truth)
            assert error <= FLOAT64_RELATIVE * abs(truth), (i, float(value), float(truth))
        else:
            assert _ulps(float(value), truth) <= FLOAT32_ULPS, (i, float(value), float(truth))


@pytest.mark.parametrize("classes", [2, 7, 1000])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_issue13_kl_fast_float32_logits_hard_rows(classes: int, layout: str) -> None:
    rng = np.random.default_rng(classes)
    _check(_logit_pairs(classes, rng), ("logits", "logits"), layout=layout)


@pytest.mark.parametrize("forms", [("log_probs", "log_probs"), ("logits", "log_probs")])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_issue13_kl_fast_float32_log_probabilities_hard_rows(
    forms: tuple[str, str], layout: str
) -> None:
    """The bounded pass (and the compensated loop for the rows it flags)."""
    rng = np.random.default_rng(77)
    pairs = []
    for k, (x, y) in enumerate(_logit_pairs(300, rng)):
        if forms[0] == "logits" and k in (*_NEARLY_EQUAL, 4, 12):  # 4, 12: Q is P rounded
            continue  # see test_issue13_kl_fast_mixed_forms_nearly_equal_exact
        if forms[0] == "log_probs":
            with mpmath.workdps(30):
                x = np.array([float(v) for v in _log_softmax(_mp_row(x))[0]], np.float32)
        pairs.append((x, np.array([float(v) for v in _log_softmax(_mp_row(y))[0]], np.float32)))
    _check([*pairs, _cancelling_log_probs(rng, 300)], forms, layout=layout)


def _cancelling_log_probs(rng: np.random.Generator, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities (all <= 0) whose KL terms cancel: p_0 = p_1 = 1/e with
    log q_0 = -1.5, log q_1 = -0.5 (terms +-0.18, exactly opposite), and tiny positive
    terms (about 4e-15 each): a fast sum loses the tiny ones in the large ones' partial
    sums."""
    x = np.full(classes, -20.0, np.float32) + rng.uniform(-1, 0, classes).astype(np.float32)
    x[:2] = -1.0
    y = np.nextafter(x, np.float32(-np.inf))
    y[0], y[1] = -1.5, -0.5
    return x, y


def test_issue13_kl_fast_flagged_row_takes_the_compensated_loop() -> None:
    """The cancelling row alone: the bound flags it (mutant: no bound), and the
    compensated loop's result is exact."""
    x, y = _cancelling_log_probs(np.random.default_rng(5), 1000)
    _check([(x, y)], ("log_probs", "log_probs"))
    shifts = (0.0, 0.0, 0.0, 0.0)
    *_, taken = _kernels()._fast_divergence(x, y, (1, 1), shifts, 4)
    assert not taken
    *_, taken = _kernels()._fast_divergence(x, x - np.float32(1), (1, 1), shifts, 4)
    assert taken  # no cancellation: the fast sum stands


def _kernels() -> Any:
    from crossent.info import _fused_kernels

    return _fused_kernels


def test_issue13_kl_fast_shift_bound() -> None:
    """``_shift_negligible``: the worst-case shift (1.6e-10 for two log-partitions) is
    negligible against a KL of 1e-6, not against 1e-15 (mutant: always true)."""
    negligible = _kernels()._shift_negligible
    assert negligible(1e-6, 1000, 3.0, 3.0)
    assert negligible(np.inf, 1000, 3.0, 3.0)
    assert not negligible(1e-15, 1000, 3.0, 3.0)
    assert not negligible(0.0, 2, 0.0, 0.0)
    assert not negligible(np.nan, 2, 0.0, 0.0)


@pytest.mark.parametrize("error", [1.6e-10, -1.6e-10])
def test_issue13_kl_fast_second_pass_corrects_a_log_partition_error(error: float) -> None:
    """The Bregman pass given P's log-partition off by the worst case of the polynomial
    ``exp`` (the kernel's own errors are far smaller on nearly equal rows, which share
    them): a KL near 1e-15 is then off by about error^2/2 = 1.3e-20 (tens of ulps)
    without the second pass, and within the tolerance with it."""
    rng = np.random.default_rng(15)
    x = (rng.standard_normal(1000) * 3).astype(np.float32)
    y = _nearly(x, rng, "ulp")
    with mpmath.workdps(50):
        ells = [_log_softmax(_mp_row(r))[1] - mp.mpf(float(max(r))) for r in (x, y)]
    shifts = (float(max(x)), float(ells[0]) + error, float(max(y)), float(ells[1]))
    _, _, kl, taken = _kernels()._fast_divergence(x, y, (2, 2), shifts, 4)
    truth = _kl_truth(x, y, ("logits", "logits"))
    assert taken
    assert _ulps(float(np.float32(kl)), truth) <= FLOAT32_ULPS, (kl, float(truth))


@pytest.mark.parametrize("layout", ["C", "F"])
def test_issue13_kl_fast_float16_inputs(layout: str) -> None:
    rng = np.random.default_rng(16)
    pairs = [
        (x.astype(np.float16).astype(np.float32), y.astype(np.float16).astype(np.float32))
        for x, y in _logit_pairs(50, rng)
    ]
    _check(pairs, ("logits", "logits"), dtype=np.float16, layout=layout)


def test_issue13_kl_fast_wide_rows() -> None:
    """V = 32000: a random pair and a nearly equal one (one pass, then two). (The kernel
    has no branch on the width: a float32 sum of 32000 terms already errs by 487 ulps,
    the mpmath truth of 256000 cost most of a CI minute.)"""
    rng = np.random.default_rng(256000)
    x = (rng.standard_normal(32000) * 4).astype(np.float32)
    y = (rng.standard_normal(32000) * 4).astype(np.float32)
    _check([(x, y), (x, _nearly(x, rng, "ulp"))], ("logits", "logits"))


def test_issue13_kl_fast_probabilities_hard_rows() -> None:
    """The probabilities' path (unchanged, compensated): nearly equal rows and zeros."""
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(50)).astype(np.float32)
    q = p.copy()
    q[0], q[1] = np.nextafter(q[0], np.float32(1)), np.nextafter(q[1], np.float32(0))
    zeros_p, zeros_q = p.copy(), p.copy()
    zeros_p[::4] = 0.0
    zeros_q[1::4] = 0.0
    pairs = [(p, q), (zeros_p, p), (p, zeros_q), (zeros_p, zeros_p)]
    _check(pairs, ("probs", "probs"))


@pytest.mark.parametrize("forms", [("logits", "logits"), ("log_probs", "log_probs")])
def test_issue13_kl_fast_float64_unchanged_path(forms: tuple[str, str]) -> None:
    """Float64 log-probabilities keep the compensated loop (``math.exp``), logits take the
    exact Bregman sums: rows without heavy cancellation within 2e-13 relative."""
    rng = np.random.default_rng(64)
    pairs = [
        pair
        for k, pair in enumerate(_logit_pairs(40, rng))
        if k not in _NEARLY_EQUAL  # logits: see test_issue13_kl_float64_exact
    ]
    if forms[0] == "log_probs":
        pairs = [
            tuple(  # type: ignore[misc]
                np.array([float(v) for v in _log_softmax(_mp_row(r))[0]]) for r in pair
            )
            for pair in pairs
        ]
    _check(pairs, forms, dtype=np.float64)


def test_issue13_kl_fast_float64_nearly_equal_logits_exact() -> None:
    """Float64 logits: the compensated loop of ``p (log p - log q)`` took the
    log-partitions' rounding (1e-16) as a first-order error, a KL of 1e-25 far off
    (1.8e-17); the Bregman sums (``_bregman64_sums``) are exact (more cases in
    ``test_issue13_kl_float64_exact``)."""
    rng = np.random.default_rng(64)
    x = rng.standard_normal(1000) * 4
    y = x.copy()
    y[:3] = np.nextafter(y[:3], np.inf) * (1 + 1e-9)
    _check([(x, y)], ("logits", "logits"), dtype=np.float64)


def test_issue13_kl_fast_mixed_forms_nearly_equal_exact() -> None:
    """Logits P against log-probabilities Q: the fast pass of :math:`p(\\log p -
    \\log q)` took the error of P's log-partition (up to 8e-11: the polynomial ``exp``)
    as a first-order error, a KL of 1e-9 thousands of ulps off; its bound now sends
    such rows to the exact Bregman sums (``_kl_exact``, with Q's mass in double-double;
    more cases in ``test_issue13_kl_float64_exact``)."""
    rng = np.random.default_rng(77)
    x = (rng.standard_normal(300) * 3).astype(np.float32)
    y = np.array([float(v) for v in _log_softmax(_mp_row(_nearly(x, rng, "ulp")))[0]])
    _check([(x, y.astype(np.float32))], ("logits", "log_probs"))


def test_issue13_kl_fast_log_softmax_entry_keeps_its_order() -> None:
    """``(y - m) - ell`` at the maximum of large logits is ``-ell`` (4.2e-18), not 0:
    compiled with the flags of a ``reassoc`` caller (which Numba gave a jitted function
    without its own ``fastmath``) it became ``y - (m + ell)`` = 0, and the float32
    cross-entropy of ``[1, 0]`` against these logits was 0."""
    q = np.array([[1e4, 1e4 - 40]], np.float32)
    p = np.array([[1.0, 0.0]], np.float32)
    got = crossent.cross_entropy(p, q, q_form="logits", validate=False)[0]
    with mpmath.workdps(50):
        truth = mp.log1p(mp.exp(-40))
    assert _ulps(float(got), truth) <= FLOAT32_ULPS, float(got)
    got = crossent.kl_divergence(p, q, q_form="logits", validate=False)[0]
    assert _ulps(float(got), truth) <= FLOAT32_ULPS, float(got)
