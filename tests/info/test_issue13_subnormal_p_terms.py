r"""Issue 13 follow-up: terms :math:`p(\log p - \log q)` and :math:`-p\log q` whose
:math:`p`, given by logits or log-probabilities, is subnormal or below the float64
range while :math:`\log p - \log q` is so large that the term is a normal number.

:math:`p = e^{\log p}` rounded to a subnormal (or to 0) loses its relative accuracy:
:math:`e^{-745}` is :math:`2^{-1074}`, 29 % too large, and the KL of logits
``[-745, 0]`` against log-probabilities ``[-1e300, 0]`` was :math:`4.94\cdot 10^{-24}`
for :math:`2.82235073\cdot 10^{-24}`; below :math:`e^{-745}` it was 0 (``[-1000, 0]``:
:math:`5.08\cdot 10^{-135}`). The cross-entropy had been fixed by scaling the product
(``_numerics.exp_times``, ``_fused_kernels._exp_times``); the KL had not, on the fused
path where one side is logits (``_fused_kernels._bregman64_sums``, P's term
:math:`u + pU(r - 1)`), nor on the generic path of two sides of logits
(``_numerics.kl_terms_from_normalised_logs``, :math:`q + p(r - 1)`).

Oracle: mpmath at :data:`DIGITS` digits, :math:`\log p = z - \operatorname{logsumexp}(z)`
for logits and the entries themselves for log-probabilities, each term
:math:`e^{\log p}(\log p - \log q)` (KL) or :math:`-e^{\log p}\log q` (cross-entropy).
Bound: :data:`FEW_ULPS` ulps of the truth (0 where the truth underflows).

The generic path rounds each log-softmax entry to a float (about :math:`2^{-53}|\log p|`
absolute, some 270 ulps of :math:`p` at :math:`\log p = -745` whether :math:`p` is
subnormal or not, e.g. :math:`-700`): its rows here have a log-partition below an ulp
(one dominant class), so that only the product is at stake; the fused path takes a row
with a log-partition of :math:`\log 4` too.

Also: ``exp_times`` (both homes) overflowed in :math:`e^{s} y` for :math:`y` near the
largest float (:math:`+\infty` for :math:`e^{-1400}\cdot 1.7\cdot 10^{308}`, row
``deep``); and the generic KL of a subnormal probability (exact as given) against
logits or log-probabilities took ``exp_times`` of its rounded logarithm (297 ulps off).

Fails on main (25b6bdb, measured): 37 of 60. Fused: the KL (alone and in the
decomposition) of logits/logits, logits/log_probs and log_probs/logits, and through
``deep`` every cross-entropy. Generic NumPy: every case (``deep``); the backends'
logits/logits (NumPy, read-only NumPy, array-api-strict, torch, JAX); the probability
P. Mutants (a copy of ``src``, measured): the new branch of ``_bregman64_sums`` off: 6
fail (the fused KLs); ``_exp_times_where_subnormal`` returning the plain product: 7
(generic logits/logits KL, every backend); ``exp_times``/``_exp_times`` without the
:math:`y/4`: 30; ``_measures._kl_terms`` passing no ``p``: 2. The ``probs`` form of Q
and the float32 rows (whose results are below float32's range long before :math:`p` is
subnormal in float64, where the kernels compute) pass on main: pinned as guards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.info import _fused

mpmath = pytest.importorskip("mpmath")

DIGITS = 60
FEW_ULPS = 4

ROWS = {
    "issue": ([-745.0, 0.0], [-1e300, 0.0]),  # 2.82235073e-24
    "below_range": ([-1000.0, 0.0], [-1e300, 0.0]),  # 5.08e-135
    "just_subnormal": ([-709.0, 0.0], [-1e300, 0.0]),
    "two_tiny": ([-800.0, -760.0, 0.0], [-1e300, -1e250, 0.0]),
    "deep": ([-1400.0, 0.0], [-1.7e308, 0.0]),  # e^-1400 * 1.7e308, about 1e-300
    "underflows": ([-2100.0, 0.0], [-1.7e308, 0.0]),  # the truth is below 2^-1074: 0
}
"""Float64 rows (P, Q) valid both as logits and as log-probabilities."""

SPREAD = ([-745.0, 0.0, 0.0, 0.0], [-1e300, 0.0, 0.0, 0.0])
"""Two sides of logits with a log-partition of log 4 (fused path)."""

Q_PROBS = ([-745.0, 0.0], [2.0**-1074, 1.0])
"""Q as probabilities: :math:`\\log q \\ge -745`, no huge difference (a guard)."""

FLOAT32_ROW = ([-170.0, 0.0], [-3e38, 0.0])
"""About 4e-36, normal in float32; :math:`e^{-170}` is normal in float64 (a guard)."""

FORM_PAIRS = [
    (p_form, q_form) for p_form in ("logits", "log_probs") for q_form in ("logits", "log_probs")
]


def _decomposition_kl(p: Any, q: Any, **options: Any) -> Any:
    return crossent.cross_entropy_decomposition(p, q, **options).kl_divergence


def _decomposition_cross_entropy(p: Any, q: Any, **options: Any) -> Any:
    return crossent.cross_entropy_decomposition(p, q, **options).cross_entropy


MEASURES: dict[str, Callable[..., Any]] = {
    "kl_divergence": crossent.kl_divergence,
    "cross_entropy": crossent.cross_entropy,
    "decomposition_kl": _decomposition_kl,
    "decomposition_cross_entropy": _decomposition_cross_entropy,
}
KL_MEASURES = {"kl_divergence", "decomposition_kl"}


def _logs(values: Any, form: str) -> list[Any]:
    x = [mpmath.mpf(float(v)) for v in values]
    if form == "logits":
        partition = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))
        return [v - partition for v in x]
    if form == "log_probs":
        return x
    return [mpmath.log(v) for v in x]  # probabilities, all positive here


def _truth(measure: str, p: Any, q: Any, forms: tuple[str, str]) -> float:
    """The measure of the given floats at :data:`DIGITS` digits, rounded to float64."""
    with mpmath.workdps(DIGITS):
        log_p, log_q = _logs(p, forms[0]), _logs(q, forms[1])
        if measure in KL_MEASURES:
            terms = (mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))
        else:
            terms = (-mpmath.exp(a) * b for a, b in zip(log_p, log_q, strict=True))
        return float(mpmath.fsum(terms))


def _assert_few_ulps(got: Any, truth: float, dtype: type = np.float64) -> None:
    expected = np.asarray(truth, dtype=dtype)
    got = np.asarray(got, dtype=dtype)
    allowed = FEW_ULPS * np.spacing(abs(expected))  # 2^-1074 steps at 0 and below normal
    assert abs(float(got) - float(expected)) <= float(allowed), (float(got), float(expected))


@pytest.fixture
def generic() -> Iterator[None]:
    """The generic path (Numba reported missing), as the fused-vs-generic tests force it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fused, "available", lambda: False)
        yield


def _check_rows(
    measure: str,
    rows: list[tuple[list[float], list[float]]],
    forms: tuple[str, str],
    asarray: Callable[[np.ndarray], Any] = np.asarray,
    to_numpy: Callable[[Any], np.ndarray] = np.asarray,
) -> None:
    p_form, q_form = forms
    for p, q in rows:
        got = MEASURES[measure](
            asarray(np.array(p)), asarray(np.array(q)), p_form=p_form, q_form=q_form
        )
        _assert_few_ulps(to_numpy(got), _truth(measure, p, q, forms))


@pytest.mark.parametrize("forms", FORM_PAIRS)
@pytest.mark.parametrize("measure", list(MEASURES))
def test_issue13_subnormal_p_terms_fused(measure: str, forms: tuple[str, str]) -> None:
    pytest.importorskip("numba")
    rows = list(ROWS.values())
    if forms == ("logits", "logits"):
        rows.append(SPREAD)
    _check_rows(measure, rows, forms)


@pytest.mark.parametrize("forms", FORM_PAIRS)
@pytest.mark.parametrize("measure", list(MEASURES))
def test_issue13_subnormal_p_terms_generic_numpy(
    measure: str, forms: tuple[str, str], generic: None
) -> None:
    _check_rows(measure, list(ROWS.values()), forms)


@pytest.mark.parametrize("forms", FORM_PAIRS)
def test_issue13_subnormal_p_terms_generic_backends(forms: tuple[str, str], backend: Any) -> None:
    """Every backend's generic path (NumPy's forced), KL and cross-entropy, and a batch
    of the rows against one Q (broadcast)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fused, "available", lambda: False)
        for measure in ("kl_divergence", "cross_entropy"):
            _check_rows(measure, list(ROWS.values())[:3], forms, backend.asarray, backend.to_numpy)
        p = np.array([ROWS["issue"][0], ROWS["below_range"][0]])
        q = np.array([ROWS["issue"][1]])
        got = backend.to_numpy(
            crossent.kl_divergence(
                backend.asarray(p), backend.asarray(q), p_form=forms[0], q_form=forms[1]
            )
        )
        for row, value in zip(p, got, strict=True):
            _assert_few_ulps(value, _truth("kl_divergence", row, q[0], forms))


P_PROBS = ([2.0**-1074, 1.0], [-1e300, 0.0])
"""P as probabilities, one subnormal (exact as given), Q logits or log-probabilities."""


@pytest.mark.parametrize("path", ["fused", "generic"])
@pytest.mark.parametrize("q_form", ["logits", "log_probs"])
def test_issue13_subnormal_probabilities_keep_their_value(q_form: str, path: str) -> None:
    """A subnormal probability is exact: its term is ``p (log p - log q)`` as it is, not
    rebuilt from its rounded logarithm (the generic path's scaled product was 297 ulps
    off)."""
    if path == "fused":
        pytest.importorskip("numba")
    with pytest.MonkeyPatch.context() as patch:
        if path == "generic":
            patch.setattr(_fused, "available", lambda: False)
        for measure in ("kl_divergence", "decomposition_kl"):
            _check_rows(measure, [P_PROBS], ("probs", q_form))


@pytest.mark.parametrize("path", ["fused", "generic"])
@pytest.mark.parametrize("p_form", ["logits", "log_probs"])
def test_issue13_subnormal_p_against_probabilities_and_in_float32(p_form: str, path: str) -> None:
    """Guards: Q as probabilities (no huge difference there), and float32 sides."""
    if path == "fused":
        pytest.importorskip("numba")
    with pytest.MonkeyPatch.context() as patch:
        if path == "generic":
            patch.setattr(_fused, "available", lambda: False)
        for measure in MEASURES:
            _check_rows(measure, [Q_PROBS], (p_form, "probs"))
            p32, q32 = (np.array(v, dtype=np.float32) for v in FLOAT32_ROW)
            for q_form in ("logits", "log_probs"):
                got = MEASURES[measure](p32, q32, p_form=p_form, q_form=q_form)
                assert np.asarray(got).dtype == np.float32
                truth = _truth(measure, p32, q32, (p_form, q_form))
                _assert_few_ulps(got, truth, np.float32)
