r"""Issue 13 follow-up: the exact KL sums of mixed input forms with their double-double
``exp`` and ``log`` and their series taken a row at a time, vectorised.

The KL of probabilities against log-probabilities or logits (either way round), and of
logits against log-probabilities, falls to the exact sums (``_fused_kernels._kl_exact``)
on nearly equal rows, and the first two to the Bregman (ratio) pass on others. Both
took :math:`e^y` and :math:`\log x` in double-double entry by entry (``_exp_dd``,
``_log_dd``: 52 and 62 ns an entry, latency-bound), and the exact sums two Horner
chains of 18 steps an entry, most of their 60 to 200 ms on 10^6 entries. Now
``_exp_dd_row`` and ``_log_dd_row`` compute a row's worth first in branch-free loops
that LLVM vectorises (7 and 9 ns an entry): ``hi`` and ``lo`` of ``_exp_dd`` bit for
bit (the power of two applied as :math:`2^{k+600}` then :math:`2^{-600}`, one rounding
where the result is subnormal, as ``math.ldexp``), arguments clamped into
:math:`[-745, 0]`; ``_log_dd``'s ``lo`` within an ulp of itself; and
``_bregman_series_row`` the series of every :math:`r_i`, Horner's steps one coefficient
at a time over the row, bit for bit. Used by ``_masses`` (the masses at ``precision``
1), ``_bregman64_sums`` (the logarithms of probability sides, the series) and
``_kl_ratio_pass`` (a log-probability side's probabilities).

Proved here against mpmath (``_mp_kl`` of ``test_issue13_kl_bound_cheap``, 60 digits:
the KL as it is defined for each form, :math:`\sum_i p_i(\log p_i - \log q_i)`, a
log-probability side not renormalised), on rows whose entries reach the ends of the new
loops' ranges: log-probabilities down to :math:`-744.4` (subnormal :math:`e^y`, the scaling's second
product rounding) and at :math:`-745.2` (below the clamp), probabilities down to the
least subnormal (``_log_dd_row``'s ``lo`` 0 there), zero probabilities and ``-inf``
logits, one dominant class, Q equal to P up to a relative :math:`10^{-8}` (the masses
then cancel to 1e-16, where only their double-double low parts carry the KL), and rows
0.3 apart (the ratio pass): each KL within :data:`TOLERANCE` of the truth (or
:data:`ABSOLUTE`). Against the existing path: a batch equals its rows taken one by one
and with a strided class axis (the ratio pass's scalar route there); and, measured
(not a test: main is not importable here), 9000 KLs of every pair of forms (rows 1 to
1e-8 apart, ``-inf`` entries, entries near -745), in float64 and in float32, equal
main's bit for bit.

Mutants (a copy of ``src``, measured on the 8 tests here): ``_exp_dd_clamped``'s ``lo``
returned as 0: 6 fail; its scaling by :math:`2^{k + 601}`: 7; ``_log_dd_row``'s ``lo``
0: 1 (the subnormal probabilities); the ratio pass reading the first entry's
:math:`e^y` for every entry: 3; ``_bregman_series_row``'s last Horner step left out: 7.
Not caught (no change above :data:`ABSOLUTE`): the clamp at :math:`-744`.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

from tests.info.test_issue13_kl_bound_cheap import _mp_kl  # noqa: E402  (the oracle)

DIGITS = 80
TOLERANCE = 2.0**-47
"""Relative error allowed: each KL is certified to this fraction of itself (the loop,
the ratio pass) or computed by the exact sums (4 ulps, ``test_issue13_kl_tiny_exact``)."""

ABSOLUTE = 2.0**-150
"""Absolute error allowed besides (the double-double logarithms of probabilities)."""

MIXED = [
    ("probs", "log_probs"),
    ("log_probs", "probs"),
    ("probs", "logits"),
    ("logits", "probs"),
    ("logits", "log_probs"),
    ("log_probs", "logits"),
]


def _encode(log_p: np.ndarray, form: str) -> np.ndarray:
    """Float64 log-probabilities (exact values) in ``form``, each entry rounded."""
    if form == "probs":
        with mpmath.workdps(DIGITS):
            return np.array([float(mp.exp(mp.mpf(float(t)))) for t in log_p])
    return log_p + (2.5 if form == "logits" else 0.0)


def _pair(log_p: np.ndarray, log_q: np.ndarray, forms: tuple[str, str]) -> np.ndarray:
    return np.stack([_encode(log_p, forms[0]), _encode(log_q, forms[1])])


def _hard_rows(forms: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (P, Q) of ``forms`` at the ends of the vectorised loops' ranges."""
    rng = np.random.default_rng(13)
    rows = []
    base = rng.standard_normal(40)
    base -= np.log(np.exp(base).sum())
    near = base + 1e-8 * rng.standard_normal(40)  # Q within 1e-8 of P, relative
    rows.append((base, near))
    rows.append((base, base + 1e-3 * rng.standard_normal(40)))
    rows.append((base, base + 0.3 * rng.standard_normal(40)))  # the ratio pass's rows
    dominant = np.concatenate([[0.0], np.full(39, -40.0)])
    dominant[0] = -float(np.log1p(39 * np.exp(-40.0)))
    rows.append((dominant, dominant + 1e-9 * rng.standard_normal(40)))
    # deep entries: e^y subnormal (below -708.4), the least (near -744.4), and below
    # the clamp at -745 (exp rounds to 0 there)
    deep = base.copy()
    deep[-6:] = [-700.0, -708.5, -730.25, -744.0, -744.4, -745.2]
    deep_q = deep + 1e-8 * rng.standard_normal(40)
    deep_q[-6:] = deep[-6:] + np.array([1e-3, -2e-3, 0.5, -0.25, 0.125, 0.3])
    rows.append((deep, deep_q))
    # zeros in P: -inf log-probabilities and logits, zero probabilities
    zeros = base.copy()
    zeros[::7] = -np.inf
    rows.append((zeros, base + 1e-6 * rng.standard_normal(40)))
    return (
        np.stack([_encode(p, forms[0]) for p, _ in rows]),
        np.stack([_encode(q, forms[1]) for _, q in rows]),
    )


def _check(a: np.ndarray, b: np.ndarray, forms: tuple[str, str], got: np.ndarray) -> None:
    with mpmath.workdps(DIGITS):
        for i, value in enumerate(got):
            truth = _mp_kl(a[i], b[i], forms)
            if mp.isinf(truth):
                assert value == np.inf, (i, value)
                continue
            error = abs(mp.mpf(float(value)) - truth)
            bound = max(TOLERANCE * abs(truth), ABSOLUTE)
            assert error <= bound, (i, float(value), float(truth), float(error / bound))


@pytest.mark.parametrize("forms", MIXED, ids="-".join)
def test_issue13_mixed_kl_hard_rows_exact(forms: tuple[str, str]) -> None:
    a, b = _hard_rows(forms)
    got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1], validate=False)
    _check(a, b, forms, got)


def test_issue13_mixed_kl_subnormal_probabilities() -> None:
    """A probability side down to the least subnormal (``_log_dd_row``: ``lo`` of
    :math:`\\log x` where :math:`e^{hi}` is subnormal, and 0 below :math:`e^{-745}`)
    against log-probabilities within 1e-9 of it, both ways round."""
    log_p = np.array([-0.5, -1.5, -2.25, -700.0, -709.0, -720.5, -740.0, -744.44])
    log_p[0] = float(np.log1p(-np.exp(log_p[1:]).sum()))
    probs = _encode(log_p, "probs")
    probs[-1] = 5e-324  # the least subnormal
    exact = np.log(probs)  # rounded: the rows' truths come from the values as given
    log_q = exact + 1e-9 * np.random.default_rng(5).standard_normal(len(exact))
    for forms, a, b in (
        (("probs", "log_probs"), probs, log_q),
        (("log_probs", "probs"), log_q, probs),
    ):
        got = crossent.kl_divergence(
            a[None], b[None], p_form=forms[0], q_form=forms[1], validate=False
        )
        _check(a[None], b[None], forms, got)


def test_issue13_mixed_kl_batch_rows_strides_agree() -> None:
    """The existing contract: a row's KL does not depend on its batch or its layout
    (the vectorised loops read a strided class axis through its stride)."""
    forms = ("probs", "log_probs")
    a, b = _hard_rows(forms)
    batch = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1], validate=False)
    one_by_one = [
        crossent.kl_divergence(x, y, p_form=forms[0], q_form=forms[1], validate=False)
        for x, y in zip(a, b, strict=True)
    ]
    strided = crossent.kl_divergence(
        np.asfortranarray(a),
        np.asfortranarray(b),
        p_form=forms[0],
        q_form=forms[1],
        validate=False,
    )
    np.testing.assert_array_equal(batch, np.array(one_by_one))
    np.testing.assert_array_equal(batch, strided)
