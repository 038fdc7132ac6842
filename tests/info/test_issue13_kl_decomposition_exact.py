r"""Issue 13 follow-up: the float64 decomposition (entropy, cross-entropy and KL together)
from the KL's fast pass, and the KL of log-probabilities against log-probabilities exact.

The decomposition of float64 logits took the fast KL pass (two ``exp`` an entry), then
the two log-partitions' passes and the compensated loop for H and CE (three more), 1.7
times its earlier time; H and CE now come from the fast pass's own sums
(``info/_fused_kernels._kl64_pass``: :math:`H = \log S_a - \sum_i e_i w_i / S_a`, two
non-negative parts), within a few ulps where the loop was up to 18 off (its rounded
log-partition). The KL of two log-probability sides took the compensated loop of
:math:`p_i(\log p_i - \log q_i)`, whose terms cancel on nearly equal rows (1e8 ulps
off); it now takes the fast pass and, where its bound does not stand, the exact sums.

Oracle: mpmath at 150 digits (the log-partition by ``log1p`` of the non-maximal terms,
so that a dominant logit's tiny entropy is not lost in 1 + 1e-304). Float64 results
within :data:`FEW_ULPS` relative; a KL with a log-probability side besides within
:data:`MASS_ERROR` absolute (its masses in double-double, as
``test_issue13_kl_float64_exact``).

Measured against the code before and mutants (by hand, then restored). On main 876c9d4
6 fail: ``test_issue13_decomposition_float64_exact`` with V = 2 and P logits (an entropy of
1e-12, 25 ulps off: the loop's rounded log-partition) and with two log-probability sides
(the KL 1e8 ulps off), and
``test_issue13_kl64_fast_pass_keeps_low_parts`` (H 2e-12 off on its tied row). The fast
pass without the low parts of its differences (``d = h_a - h_b``): 1 fails,
``test_issue13_kl64_fast_pass_keeps_low_parts`` (12.9 ulps: the row is built so that
they add up, every rounding of :math:`x_i - m` a tie, one way on P's side, the other on
Q's, 0.81 of P's mass on those entries; elsewhere they stay within the fast pass's
:math:`2^{-47}`). The exact sums without theirs (``d_lo``): 9 fail here. ``_exp_dd``
without its table's low parts: 10 fail, :func:`test_issue13_exp_dd_against_mpmath`
among them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

DIGITS = 150
FORMS = [
    ("logits", "logits"),
    ("logits", "log_probs"),
    ("log_probs", "logits"),
    ("log_probs", "log_probs"),
]

FEW_ULPS = 8 * 2.0**-53
"""Relative error allowed on float64 results."""

MASS_ERROR = 2.0**-98
"""Absolute error allowed besides on a KL with a log-probability side."""


def _log_softmax_mp(v: list[Any]) -> list[Any]:
    """``v - logsumexp(v)``, the log-partition as ``top + log1p(rest + ties - 1)``."""
    finite = [t for t in v if t != -mp.inf]
    top = max(finite)
    ties = sum(1 for t in finite if t == top)
    rest = mp.fsum(mp.exp(t - top) for t in finite if t != top)
    lse = top + mp.log1p(rest + (ties - 1))
    return [t - lse for t in v]


def _truth(x: np.ndarray, y: np.ndarray, forms: tuple[str, str]) -> tuple[Any, Any, Any]:
    """H(P), H(P, Q) and D(P||Q) at :data:`DIGITS` digits: 0 log 0 = 0, ``+inf`` where
    only q = 0."""
    with mpmath.workdps(DIGITS):
        a = [mp.mpf(float(v)) for v in x]
        b = [mp.mpf(float(v)) for v in y]
        la = _log_softmax_mp(a) if forms[0] == "logits" else a
        lb = _log_softmax_mp(b) if forms[1] == "logits" else b
        live = [(mp.exp(s), s, t) for s, t in zip(la, lb, strict=True) if s != -mp.inf]
        h = -mp.fsum(p * s for p, s, _ in live)
        if any(t == -mp.inf for _, _, t in live):
            return h, mp.inf, mp.inf
        ce = -mp.fsum(p * t for p, _, t in live)
        kl = mp.fsum(p * (s - t) for p, s, t in live)
        return h, ce, kl


def _as_log_probs(row: np.ndarray) -> np.ndarray:
    """The float64 log-softmax of ``row``, each entry rounded once."""
    with mpmath.workdps(60):
        return np.array([float(t) for t in _log_softmax_mp([mp.mpf(float(t)) for t in row])])


def _rows(classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random rows of several spreads, nearly equal ones (noise 1e-8 down to 1e-15,
    shifted by 1000.3), huge spreads, a dominant logit, ``-inf`` entries."""
    rng = np.random.default_rng(seed)
    idx = np.arange(classes)
    pairs = []
    for scale in (0.1, 1.0, 3.0, 30.0):
        x = rng.standard_normal(classes) * scale
        pairs.append((x, rng.standard_normal(classes) * scale))
        for noise in (1e-8, 1e-12, 1e-15):
            pairs.append((x, x + noise * rng.standard_normal(classes)))
        pairs.append((x + 1000.3, x + 1e-3 * rng.standard_normal(classes)))
    x = rng.standard_normal(classes) * 3
    pairs += [
        (np.where(idx == 0, 0.0, -40.0), np.where(idx == 0, 0.0, -40.5)),
        (np.where(idx == 0, 0.0, -700.0), np.where(idx == 0, 0.0, -20.0)),
        (np.where(idx % 2 == 0, 0.0, -1e4), np.where(idx % 3 == 0, 0.0, -1e4)),
        (np.where(idx % 3 == 1, -np.inf, x), x),
        (x, np.where(idx == classes - 1, -np.inf, x)),
    ]
    return pairs


def _check(a: np.ndarray, b: np.ndarray, forms: tuple[str, str]) -> None:
    kw: dict[str, Any] = {"p_form": forms[0], "q_form": forms[1], "validate": False}
    got = crossent.cross_entropy_decomposition(a, b, **kw)
    np.testing.assert_array_equal(got.kl_divergence, crossent.kl_divergence(a, b, **kw))
    absolute = MASS_ERROR if "log_probs" in forms else 0.0
    for i in range(a.shape[0]):
        truths = _truth(a[i], b[i], forms)
        values = (got.entropy[i], got.cross_entropy[i], got.kl_divergence[i])
        for name, value, truth in zip(("H", "CE", "KL"), values, truths, strict=True):
            if mp.isinf(truth):
                assert value == np.inf, (i, name, value)
                continue
            with mpmath.workdps(DIGITS):
                error = float(abs(mp.mpf(float(value)) - truth))
            allowed = FEW_ULPS * float(abs(truth)) + (absolute if name == "KL" else 0.0)
            assert error <= max(allowed, 2.0**-1074), (i, name, float(value), float(truth))


@pytest.mark.parametrize("forms", FORMS)
@pytest.mark.parametrize("classes", [2, 7, 60])
def test_issue13_decomposition_float64_exact(classes: int, forms: tuple[str, str]) -> None:
    pairs = _rows(classes, classes)
    a = np.stack([_as_log_probs(x) if forms[0] == "log_probs" else x for x, _ in pairs])
    b = np.stack([_as_log_probs(y) if forms[1] == "log_probs" else y for _, y in pairs])
    _check(a, b, forms)


def _tied_rows(classes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Logit rows whose differences :math:`x_i - m` all round by a tie, the same way on
    each side and the two sides opposite (low parts :math:`-8u` on P's, :math:`+8u` on
    Q's), with 0.81 of P's mass on those entries and a KL of 0.96, where the fast pass's
    bound stands: its low parts move the KL by 13 ulps."""
    top = 4.0 + 2.0**-50  # ulp 2^-50; the differences in [8, 16) have ulp 2^-49
    x = np.full(classes, -4.25)
    y = np.full(classes, -7.25 - 2.0**-49)
    x[0] = y[0] = top
    return x, y


def test_issue13_kl64_fast_pass_keeps_low_parts() -> None:
    x, y = _tied_rows(16384)
    truths = _truth_tied(x, y)
    from crossent.info import _fused_kernels

    kl, stands = _fused_kernels._kl64_sums(x, y, (2, 2), (x[0], y[0]))
    assert stands
    kw: dict[str, Any] = {"p_form": "logits", "q_form": "logits", "validate": False}
    got = crossent.cross_entropy_decomposition(x, y, **kw)
    values = (float(got.entropy), float(got.cross_entropy), float(got.kl_divergence), kl)
    with mpmath.workdps(DIGITS):
        for value, truth in zip(values, (*truths, truths[2]), strict=True):
            assert float(abs(mp.mpf(value) - truth)) <= FEW_ULPS * float(truth), (value, truth)


def _truth_tied(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
    """:func:`_truth` of rows with two distinct values each (the first entry, then the
    rest), in closed form."""
    n = x.shape[0]
    with mpmath.workdps(DIGITS):
        x0, xr, y0, yr = (mp.mpf(float(v)) for v in (x[0], x[1], y[0], y[1]))
        lse_a = mp.log(mp.exp(x0) + (n - 1) * mp.exp(xr))
        lse_b = mp.log(mp.exp(y0) + (n - 1) * mp.exp(yr))
        parts = [(1, x0 - lse_a, y0 - lse_b), (n - 1, xr - lse_a, yr - lse_b)]
        h = -mp.fsum(k * mp.exp(s) * s for k, s, _ in parts)
        ce = -mp.fsum(k * mp.exp(s) * t for k, s, t in parts)
        return h, ce, ce - h


def test_issue13_exp_dd_against_mpmath() -> None:
    """The double-double exponential of the exact KL's masses (``_exp_dd``: reduction by
    ln 2/64 and a table of :math:`2^{j/64}`) within :math:`2^{-100}` relative, across the
    table's steps (both sides of each rounding boundary of ``y 64/ln 2``) and the range
    where its low part stays normal."""
    from crossent.info import _fused_kernels

    rng = np.random.default_rng(105)
    step = float(np.log(2.0)) / 64
    boundaries = -(np.arange(1, 200) + 0.5) * step
    values = np.concatenate(
        [
            boundaries * (1 + 1e-15),
            boundaries * (1 - 1e-15),
            -rng.random(100) * 600,
            -rng.random(100) * 0.02,
            [0.0, -1e-300, -(2.0**-60)],
        ]
    )
    with mpmath.workdps(60):
        for y in values:
            hi, lo = _fused_kernels._exp_dd(float(y))
            truth = mp.exp(mp.mpf(float(y)))
            error = abs(mp.mpf(hi) + mp.mpf(lo) - truth) / truth
            assert error <= mp.mpf(2) ** -100, (float(y), float(error))
