r"""Issue 13 follow-up: tiny KLs (down to 1e-40) of nearly equal rows, exact for every
pair of forms in which one side is log-probabilities, logits or both, float32 and float64.

A side's forms fix what the KL is: :math:`\sum_i p_i(\log p_i - \log q_i)` with
:math:`p_i = x_i` (probabilities), :math:`e^{x_i}` (log-probabilities, not
renormalised) or the softmax (logits). Found at bd63441 (``main``), against mpmath:

* one side probabilities, the other not: the compensated loop of
  :math:`p_i(\log p_i - \log q_i)` with the logarithms rounded (and, for float32 logits,
  the polynomial log-partition's error of up to 5e-11 as a first-order error), up to
  1e25 ulps off in float64 and 1e13 in float32 on nearly equal rows;
* a log-probability side: the masses :math:`\Pi = \sum p`, :math:`K = \sum q` in
  double-double (about :math:`2^{-100}`), so :math:`D = B + \Pi - K` erred by about
  1e-30 absolute (2e9 ulps at 2e-25, 1e16 at 1e-40 for two log-probability sides);
* where :math:`\Pi - K` cancels the Bregman sum :math:`B \ge 0` (rows tuned by ulps),
  :math:`B`'s own float rounding, a few ulps of :math:`B`.

Now (``info/_fused_kernels``): the loop's KL carries an error bound
(``_loop_kl_bound``), rows it does not stand take the exact sums, which take
probability sides (logarithms in double-double, ``_log_dd``); the masses in
triple-double (``_exp_td``) where double-double could not stand; :math:`B` in
double-double (``_fine_term``) where it exceeds 8 times the KL; two log-probability
sides by their defining sum in triple-double (``_kl_log_probs_td``).

Bound proved here on every row below (mpmath at :data:`DIGITS` digits): float64
within :data:`FEW_ULPS` relative, and :data:`ABSOLUTE` (:math:`2^{-150}`) besides
unless both sides are log-probabilities (at 1e-40 those rows are up to 1e7 ulps off:
the logarithms of probabilities and the Bregman sum would need triple-double too);
float32 within :data:`FLOAT32_ULPS` of a float32 ulp. Rows: rounding-level
differences (P and Q one exact distribution rounded in each form), one entry one
ulp off, rows tuned by ulps of one side to a KL near 1e-12 ... 1e-40 (float32: 1e-12
... 1e-30), zeros in P, a spread of 90 nats, V = 2, 9 and 300.

Fails on main (bd63441, measured): all 13 cases (the float32 pair of log-probability
sides, exact there already, is skipped). Mutants (a copy of ``src``, measured):
``_loop_kl_bound`` returning 0, so the loop always stands: 8 fail (every probability
pair); ``_log_dd``'s low part 0: 7; ``_exp_td`` as ``_exp_dd`` in ``_masses``: 6 (the
mixed log-probability pairs); ``_kl_log_probs_td`` skipped: 1 (float64 log_probs
against log_probs, at 1e-40); ``fine`` never set (B in floats): 12.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

DIGITS = 100
FEW_ULPS = 4 * 2.0**-53
"""Relative error allowed on float64 results (2 ulps where the KL is a power of 2)."""

ABSOLUTE = 2.0**-150
r"""Absolute error allowed besides on float64 pairs other than two log-probability
sides (7e-46: 7e-6 of a KL of 1e-40, within FEW_ULPS above about 1e-30). What is left
there: the logarithms of probabilities in double-double (about :math:`2^{-104}` of
:math:`|\log x_i|`, times :math:`\sum_i p_i |r_i|`) and the Bregman sum in
double-double; measured at most 4e-47 on these rows."""

FLOAT32_ULPS = 0.51

FORMS = ["probs", "log_probs", "logits"]
PAIRS = [(p, q) for p in FORMS for q in FORMS if (p, q) not in (("probs",) * 2, ("logits",) * 2)]
"""Every pair of forms but two probability sides (not the subject here) and two logit
sides (exact on main: ``test_issue13_kl_float64_exact``)."""
LOGITS_SHIFT = 3.25


def _log_probs(row: list[Any], form: str) -> list[Any]:
    """Exact log-probabilities of a row given in ``form``."""
    if form == "probs":
        return [mp.log(t) if t > 0 else -mp.inf for t in row]
    if form == "log_probs":
        return row
    finite = [t for t in row if t != -mp.inf]
    top = max(finite)
    lse = top + mp.log(mp.fsum(mp.exp(t - top) for t in finite))
    return [t - lse for t in row]


def _terms(x: np.ndarray, y: np.ndarray, forms: tuple[str, str]) -> list[Any]:
    """The KL's terms :math:`p_i(\\log p_i - \\log q_i)` (``+inf`` where only q = 0)."""
    lp = _log_probs([mp.mpf(float(t)) for t in x], forms[0])
    lq = _log_probs([mp.mpf(float(t)) for t in y], forms[1])
    out = []
    for s, t in zip(lp, lq, strict=True):
        if s == -mp.inf:
            out.append(mp.mpf(0))
        else:
            out.append(mp.inf if t == -mp.inf else mp.exp(s) * (s - t))
    return out


def _encode(log_p: list[Any], form: str, dtype: Any) -> np.ndarray:
    """An exact distribution (its log-probabilities) in ``form``, each entry rounded."""
    if form == "probs":
        return np.array([float(mp.exp(t)) for t in log_p]).astype(dtype)
    shift = LOGITS_SHIFT if form == "logits" else 0.0
    return np.array([float(t + shift) for t in log_p]).astype(dtype)


def _tune(x: np.ndarray, y: np.ndarray, forms: tuple[str, str], target: Any) -> np.ndarray:
    """Q's entries (Q not logits) moved by whole ulps, the largest steps first, so that
    the KL comes near ``target`` (its terms are separate in Q's entries)."""
    y = y.copy()
    lp = _log_probs([mp.mpf(float(t)) for t in x], forms[0])

    def term(j: int, v: float) -> Any:
        if lp[j] == -mp.inf:
            return mp.mpf(0)
        log_q = mp.log(mp.mpf(v)) if forms[1] == "probs" else mp.mpf(v)
        return mp.exp(lp[j]) * (lp[j] - log_q)

    terms = [term(j, float(v)) for j, v in enumerate(y)]
    kl = mp.fsum(terms)
    steps = []
    for j, s in enumerate(lp):
        if s == -mp.inf or y[j] == 0:
            continue
        # dD/dy_j: -p_j for log-probabilities, -p_j/q_j for probabilities
        slope = -mp.exp(s) * (1 if forms[1] == "log_probs" else 1 / mp.mpf(float(y[j])))
        steps.append((abs(slope * float(np.spacing(y[j]))), j, slope))
    steps.sort(key=lambda s: -s[0])
    if kl == 0:  # equal rows: one ulp first, then the others cancel it down
        j = steps[0][1]
        y[j] = np.nextafter(y[j], y.dtype.type(np.inf))
        terms[j] = term(j, float(y[j]))
        kl = mp.fsum(terms)
    for _, j, slope in steps:
        miss = kl - target
        if abs(miss) < abs(target) * 1e-3:
            break
        k = int(mp.nint(-miss / (slope * float(np.spacing(y[j])))))
        if k == 0 or abs(k) > 2**20:
            continue
        moved = y[j] + k * np.spacing(y[j])
        new = term(j, float(moved))
        y[j], kl, terms[j] = moved, kl - terms[j] + new, new
    return y


def _base(classes: int, dtype: Any, seed: int) -> list[Any]:
    """Exact log-probabilities: random logits, and on the last entries (but two) a
    spread down to 90 nats (80 in float32) in steps of 5, whose ulps let
    :func:`_tune` reach a KL of 1e-40."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(classes) * 3
    deep = np.arange(-15.0, -81.0, -5.0) if dtype == np.float32 else np.arange(-15.0, -91.0, -5.0)
    for i, v in enumerate(deep[: max(0, classes - 2)]):
        z[-1 - i] = v
    return _log_probs([mp.mpf(float(t)) for t in z], "logits")


def _rows(forms: tuple[str, str], dtype: Any, classes: int, seed: int) -> list[Any]:
    """The hard rows of one pair of forms (see the module docstring)."""
    with mpmath.workdps(DIGITS):
        exact = _base(classes, dtype, seed)
        x, y = _encode(exact, forms[0], dtype), _encode(exact, forms[1], dtype)
        rows = [(x, y)]
        ulp = y.copy()
        ulp[0] = np.nextafter(ulp[0], dtype(np.inf))
        rows.append((x, ulp))
        zeros = x.copy()
        zeros[1::3] = 0.0 if forms[0] == "probs" else -np.inf
        rows.append((zeros, y))
        if forms[1] != "logits":
            targets = (1e-12, 1e-20, 1e-30) if dtype == np.float32 else (1e-12, 1e-20, 1e-30, 1e-40)
            rows += [(x, _tune(x, y, forms, mp.mpf(t))) for t in targets]
        return rows


def _check(forms: tuple[str, str], dtype: Any, classes: int, seed: int) -> None:
    rows = _rows(forms, dtype, classes, seed)
    a = np.stack([x for x, _ in rows])
    b = np.stack([y for _, y in rows])
    got = crossent.kl_divergence(a, b, p_form=forms[0], q_form=forms[1], validate=False)
    assert got.dtype == dtype
    with mpmath.workdps(DIGITS):
        for i, value in enumerate(got):
            truth = mp.fsum(_terms(a[i], b[i], forms))
            if mp.isinf(truth):
                assert value == np.inf, (i, value)
                continue
            error = abs(mp.mpf(float(value)) - truth)
            if dtype == np.float32:
                bound = FLOAT32_ULPS * float(np.spacing(np.float32(abs(float(truth)))))
            else:
                floor = 2.0**-1074 if forms == ("log_probs", "log_probs") else ABSOLUTE
                bound = max(FEW_ULPS * abs(truth), floor)
            assert error <= bound, (i, float(value), float(truth), float(error / bound))


@pytest.mark.parametrize("forms", PAIRS, ids="-".join)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue13_kl_tiny_exact(forms: tuple[str, str], dtype: Any) -> None:
    if dtype == np.float32 and forms == ("log_probs", "log_probs"):
        pytest.skip("exact on main (the float32 fast pass's bound)")
    for classes, seed in ((2, 0), (9, 1), (300, 2)):
        _check(forms, dtype, classes, seed)
