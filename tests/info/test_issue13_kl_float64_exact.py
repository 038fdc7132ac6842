r"""Issue 13 follow-up: the KL of float64 logits, and of logits against log-probabilities
(float64 and float32), exact.

Float64 logits took the compensated loop of :math:`p_i(\log p_i - \log q_i)`, in which
the log-partitions' rounding (about 1e-16 each) is a first-order error: a KL of 1e-25
came out as 1.8e-17. Logits against log-probabilities did the same in float64, and in
float32 the fast pass took the polynomial log-partition's error (up to 8e-11) as one.
Now both take the Bregman sums (``info/_fused_kernels._bregman64_sums``,
:func:`_kl_exact`): the terms :math:`q_i\varphi(r_i) \ge 0` with each :math:`r_i` from
the exact difference of the inputs, the common shift of the :math:`r_i` measured by Q's
or P's normalisation and removed in closed form (or by another pass), and the masses of
log-probability sides in double-double.

Checked against mpmath at 150 digits (50 are too few: a KL of 1e-38 from O(1) terms
keeps 12 of them): float64 logits within :data:`FEW_ULPS` relative on nearly equal rows
(one ulp apart, shifted by 1000, scaled by 1 + 1e-12, KL from 1e-16 down to 1e-40),
huge spreads, dominant logits, ``-inf`` entries (0 and ``+inf`` rules), V = 2, 7, 1000;
float64 mixed forms within the same plus :data:`MASS_ERROR` absolute (the double-double
masses: a row whose Q is P's log-softmax rounded has a KL of 1e-17 and below, against
masses of 1); float32 mixed forms within :data:`FLOAT32_ULPS`, nearly equal rows included.

Mutants caught (by hand, then restored; failing tests of this file and
``test_issue13_info_kl_fast``): no closed-form shift correction (``return kl`` in
``_kl_shifted``: 4), the difference's low part dropped (``d_lo``: 5), plain sums instead
of Neumaier's (3), ``u`` without the rounding of ``y - m`` (``sy_lo``: 1), the masses
in plain floats (``_exp_dd`` as ``math.exp``: 5), the fast pass's log-partition bound
dropped (float32 mixed forms: 3), the shift's further passes off (``or k == 3`` as
``or True``: 1, :func:`test_issue13_kl_exact_further_shift_passes`).

The float64 fast pass (``_kl64_sums``) and its bound: the bound loosened by 2^20 (5,
:func:`test_issue13_kl64_fast_pass_bound_is_safe` among them), ``S_b`` summed plainly
(1). Not caught: the differences' low parts dropped (their error, :math:`u|w_i|` a
term, stays within the tolerance on these rows).
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

FEW_ULPS = 8 * 2.0**-53
"""Relative error allowed on float64 results (4 ulps where the result is a power of 2)."""

MASS_ERROR = 2.0**-98
"""Absolute error allowed besides on float64 mixed forms (double-double masses)."""

FLOAT32_ULPS = 0.51
DIGITS = 150


def _lse(v: list[Any]) -> Any:
    finite = [t for t in v if t != -mp.inf]
    top = max(finite)
    return top + mp.log(mp.fsum(mp.exp(t - top) for t in finite))


def _minus_lse(v: list[Any]) -> list[Any]:
    lse = _lse(v)
    return [t - lse for t in v]


def _truth(x: Sequence[float], y: Sequence[float], forms: tuple[str, str]) -> Any:
    """D(P||Q) at 150 digits, 0 log 0 = 0, +inf where only q = 0."""
    with mpmath.workdps(DIGITS):
        a = [mp.mpf(float(v)) for v in x]
        b = [mp.mpf(float(v)) for v in y]
        if any(s != -mp.inf and t == -mp.inf for s, t in zip(a, b, strict=True)):
            return mp.inf
        la = _minus_lse(a) if forms[0] == "logits" else a
        lb = _minus_lse(b) if forms[1] == "logits" else b
        return mp.fsum(mp.exp(s) * (s - t) for s, t in zip(la, lb, strict=True) if s != -mp.inf)


def _log_softmax(row: np.ndarray) -> np.ndarray:
    with mpmath.workdps(60):
        return np.array([float(t) for t in _minus_lse([mp.mpf(float(t)) for t in row])])


def _check(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    forms: tuple[str, str],
    dtype: Any = np.float64,
    absolute: float = 0.0,
) -> None:
    a = np.stack([p for p, _ in pairs]).astype(dtype)
    b = np.stack([q for _, q in pairs]).astype(dtype)
    got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1], validate=False)
    for i, value in enumerate(got):
        truth = _truth(a[i], b[i], forms)
        if mp.isinf(truth):
            assert value == np.inf, (i, value)
            continue
        with mpmath.workdps(DIGITS):
            error = float(abs(mp.mpf(float(value)) - truth))
            if dtype == np.float32:
                unit = float(np.spacing(np.float32(abs(float(truth)))))
                assert error <= FLOAT32_ULPS * unit, (i, float(value), float(truth))
                continue
            bound = max(FEW_ULPS * float(abs(truth)), absolute, 2.0**-1074)
            assert error <= bound, (i, float(value), float(truth), error / bound)


def _pairs(classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hard float64 rows: nearly equal (one ulp, shifted, scaled, noise), huge spreads,
    dominant logits, -inf entries."""
    rng = np.random.default_rng(seed)
    idx = np.arange(classes)
    x = rng.standard_normal(classes) * 4
    one_ulp = x.copy()
    one_ulp[0] = np.nextafter(one_ulp[0], np.inf)
    spread = np.where(idx % 2 == 0, 0.0, -1e4)
    dominant = np.where(idx == 0, 0.0, -30.0)
    p_inf = np.where(idx % 3 == 1, -np.inf, x)
    q_inf = np.where(idx == classes - 1, -np.inf, x)
    return [
        (x, rng.standard_normal(classes) * 4),
        (x, one_ulp),
        (x, x + 1000.0),  # the same P and Q but for the rounding of the shift
        (x, x * (1 + 1e-12)),
        (x, x + 1e-9 * rng.standard_normal(classes)),
        (x, x),
        (spread, np.roll(spread, 1)),
        (spread, spread + 1e-6 * rng.standard_normal(classes)),
        (dominant, np.where(idx == 0, 0.0, -31.0)),
        (dominant, rng.standard_normal(classes) * 1e4),
        (np.where(idx == 0, 30.0, x - 10.1), np.where(idx == 0, 30.0, x - 15.1)),
        (p_inf, x),
        (p_inf, p_inf + 1e-9 * rng.standard_normal(classes)),
        (x, q_inf),
        (q_inf, q_inf),
    ]


@pytest.mark.parametrize("classes", [2, 7, 1000])
def test_issue13_kl_float64_logits_exact(classes: int) -> None:
    _check(_pairs(classes, classes), ("logits", "logits"))


def test_issue13_kl_float64_logits_exact_in_the_decomposition() -> None:
    """The decomposition's KL is the same exact sum (the loop keeps H and CE)."""
    pairs = _pairs(50, 1)
    a = np.stack([p for p, _ in pairs])
    b = np.stack([q for _, q in pairs])
    kw: dict[str, Any] = {"p_form": "logits", "q_form": "logits", "validate": False}
    got = crossent.cross_entropy_decomposition(a, b, **kw).kl_divergence
    np.testing.assert_array_equal(got, crossent.kl_divergence(a, b, **kw))


@pytest.mark.parametrize("forms", [("logits", "log_probs"), ("log_probs", "logits")])
@pytest.mark.parametrize("classes", [2, 300])
def test_issue13_kl_float64_mixed_forms_exact(forms: tuple[str, str], classes: int) -> None:
    pairs = []
    for x, y in _pairs(classes, classes + 1):
        if forms[0] == "log_probs":
            x = _log_softmax(x)
        else:
            y = _log_softmax(y)
        pairs.append((x, y))
    _check(pairs, forms, absolute=MASS_ERROR)


@pytest.mark.parametrize("forms", [("logits", "log_probs"), ("log_probs", "logits")])
def test_issue13_kl_float32_mixed_forms_nearly_equal_exact(forms: tuple[str, str]) -> None:
    """Float32 rows whose KL is small (the fast pass's log-partition bound sends them to
    the exact sums), Q or P the other's log-softmax rounded included."""
    rng = np.random.default_rng(32)
    x = (rng.standard_normal(300) * 3).astype(np.float32)
    near = x.copy()
    near[:3] = np.nextafter(near[:3], np.float32(np.inf))
    noisy = (x + rng.standard_normal(300).astype(np.float32) * np.float32(2e-6)).astype(np.float32)
    pairs = []
    for y in (x, near, noisy):
        if forms[0] == "log_probs":
            pairs.append((_log_softmax(x).astype(np.float32), y))
        else:
            pairs.append((x, _log_softmax(y).astype(np.float32)))
    _check(pairs, forms, dtype=np.float32)


# The fast float64 pass (``_fused_kernels._kl64_sums``) and its error bound: where the
# bound stands the KL is within ``_KL64_TOLERANCE`` of the truth; elsewhere the exact
# sums run (nearly equal rows, tiny KL).

FAST_TOLERANCE = 2.0**-47
"""``_fused_kernels._KL64_TOLERANCE``: the fast pass's guaranteed relative error."""


def _kernels() -> Any:
    from crossent.info import _fused_kernels

    return _fused_kernels


def _fast_pass(x: np.ndarray, y: np.ndarray, forms: tuple[int, int]) -> tuple[float, bool]:
    tops = (float(x.max()) if forms[0] == 2 else 0.0, float(y.max()) if forms[1] == 2 else 0.0)
    kl, stands = _kernels()._kl64_sums(x, y, forms, tops)
    return float(kl), bool(stands)


def test_issue13_kl64_fast_pass_bound_is_safe() -> None:
    """Rows from random to nearly equal (Q = P plus noise of 3 down to 1e-9: the terms of
    the fast pass cancel, its raw KL up to thousands of times the tolerance off):
    wherever the bound lets the fast KL stand it is within :data:`FAST_TOLERANCE` of the
    truth, and the rows whose fast KL is off by more are all sent to the exact sums (some
    are: the test has teeth; with the bound loosened by 2^20 some stand and fail)."""
    assert _kernels()._KL64_TOLERANCE == FAST_TOLERANCE
    rng = np.random.default_rng(64)
    stood = flagged_wrong = 0
    for classes in (2, 40, 200):
        x = rng.standard_normal(classes) * 3
        for scale in (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 1e-3, 1e-6, 1e-9):
            y = x + scale * rng.standard_normal(classes)
            forms_list = [
                ((2, 2), x, y),
                ((2, 1), x, _log_softmax(y)),
                ((1, 2), _log_softmax(x), y),
            ]
            for forms, p, q in forms_list:
                names = tuple("logits" if f == 2 else "log_probs" for f in forms)
                kl, stands = _fast_pass(p, q, forms)
                truth = _truth(p, q, names)
                with mpmath.workdps(DIGITS):
                    error = float(abs(mp.mpf(kl) - truth) / abs(truth))
                if stands:
                    stood += 1
                    assert error <= FAST_TOLERANCE, (classes, scale, forms, error)
                elif error > FAST_TOLERANCE:
                    flagged_wrong += 1
    assert stood >= 10, stood
    assert flagged_wrong >= 20, flagged_wrong


def _main_v2(x: np.ndarray, y: np.ndarray) -> float:
    """Main's float64 computation of a V = 2 logits KL (the compensated loop of
    ``p (log p - log q)``, log-partitions rounded to floats)."""

    def log_softmax(v: np.ndarray) -> np.ndarray:
        m = float(v.max())
        ties = int(np.sum(v == m))
        rest = float(sum(np.exp(t - m) for t in v if t != m))
        ell = np.log1p(rest + (ties - 1))
        return (v - m) - ell

    lp, lq = log_softmax(x), log_softmax(y)
    terms = np.exp(lp) * (lp - lq)
    return float(terms[0] + terms[1])


def test_issue13_kl64_two_classes_random_rows_at_least_main_accuracy() -> None:
    """Random V = 2 logits (the fast pass or the exact sums, as the bound decides): mean
    and largest relative error no larger than main's computation on the same rows (main:
    a mean of hundreds of ulps, 1e5 and more at worst, where the two terms cancel), and
    within 2 ulps on average, 8 at worst."""
    rng = np.random.default_rng(2)
    for scale in (1.0, 3.0):
        a = rng.standard_normal((300, 2)) * scale
        b = rng.standard_normal((300, 2)) * scale
        got = crossent.kl_divergence(a, b, p_form="logits", q_form="logits", validate=False)
        ours, main = [], []
        with mpmath.workdps(60):
            for i in range(a.shape[0]):
                truth = _truth(a[i], b[i], ("logits", "logits"))
                ours.append(float(abs(mp.mpf(float(got[i])) - truth) / truth) / 2.0**-53)
                main.append(float(abs(mp.mpf(_main_v2(a[i], b[i])) - truth) / truth) / 2.0**-53)
        assert np.mean(ours) <= min(np.mean(main), 2.0), (np.mean(ours), np.mean(main))
        assert max(ours) <= min(max(main), 16.0), (max(ours), max(main))


def test_issue13_kl_exact_further_shift_passes() -> None:
    """The exact sums given log-partitions off by 1e-3 (far beyond their rounding): the
    common shift's square then exceeds the KL (1e-18) a million-fold, the closed form
    alone cancels (it was 1e-7 off), and the further passes remove it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(50) * 2
    y = x + 1e-9 * rng.standard_normal(50)
    m_a, m_b = float(x.max()), float(y.max())
    ell_a = float(np.log(np.exp(x - m_a).sum()))
    ell_b = float(np.log(np.exp(y - m_b).sum()))
    truth = _truth(x, y, ("logits", "logits"))
    # ``_row``'s argument types (read-only rows of any layout, the estimate passed): the
    # specialisation compiled with the serial row kernel, loaded from Numba's cache
    # where that kernel is cached (tests/numba_cache_harness.py seeds it; 13 s of CPU)
    rows = np.stack([x, y], axis=1)
    rows.flags.writeable = False
    a, b = rows[:, 0], rows[:, 1]
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, y)
    for off in (1e-3, -1e-3, 1e-6):
        shifts = (m_a, ell_a + off, m_b, ell_b)
        kl, ok = _kernels()._kl_exact(a, b, (2, 2), shifts, np.nan)
        assert ok
        with mpmath.workdps(DIGITS):
            error = float(abs(mp.mpf(float(kl)) - truth) / truth)
        assert error <= FEW_ULPS, (off, float(kl), float(truth))
