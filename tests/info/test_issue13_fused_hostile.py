r"""Issue 13, hostile tests of the fused Numba kernels (``info/_fused_kernels``), each a
defect of the kernel where the generic (Array-API) path was right, against mpmath
(:data:`DIGITS` digits, log-partitions by ``log1p`` so that a tiny one is not lost) or
the generic path itself (array-api-strict: no fused kernel).

* F6: the plain cross-entropy of logits against log-probabilities was finite (1400)
  where :math:`p_i` underflowed to 0 but :math:`\log p_i` is finite against
  :math:`q_i = 0`: :math:`p_i > 0`, so the term is :math:`+\infty`, as the KL and the
  decomposition have it (``_cross_from_log``).
* F7: ``binary_cross_entropy_grad`` summed :math:`-p/q + (1-p)/(1-q)`, which cancels as
  :math:`q \to p`: 3.4e-5 relative off at :math:`q = p + 10^{-12}`
  (``_binary_cross_grad_term`` now ``((q - p)/q)/(1 - q)``, as ``_numerics``).
* F3: the KL of two float64 logit rows whose spread overflows (:math:`x_i - m = -\infty`)
  was NaN (``_kl64_pass``: ``_two_diff``'s NaN low part), where it is :math:`+\infty`.

* F1, F2: a subnormal probability made the KL +inf or NaN: compiled, ``2.0**k`` is
  ``1/2^-k``, 0 below :math:`2^{-1023}`, so ``_exp_dd`` of its logarithm was 0 and
  ``_log_dd``'s quotient by it infinite (now ``_scaled``: ``math.ldexp`` there).
* F4: :math:`q = e^{-744}`, subnormal, is 29 % off once rounded, and
  ``_bregman64_sums`` took :math:`p = q e^r` from it (1.5412e-32 for 1.1966e-32); now
  from P's side where :math:`q` is subnormal.
* F5: ``_kl_log_probs_td`` left out the terms of :math:`v \le -745`
  (:math:`e^{-745} \cdot 10^{300}`: 0 for 2.82e-24; the claimed 4.94e-24 is the float
  product with :math:`e^{-745}` rounded to :math:`2^{-1074}`, mpmath says 2.8224e-24);
  now :math:`e^v` unscaled times :math:`v - w`, scaled after.

Fails on main (measured): all 12 tests at 4c77793; 11 at 450236f (klfast merged: its
loop bound stands on the F2 row of log-probabilities against probabilities).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")

DIGITS = 80
"""mpmath's working precision (decimal digits) for the references."""


def _log_softmax(logits: list[float]) -> list[object]:
    r""":math:`x_i - m - \operatorname{log1p}(\sum_{j \ne k} e^{x_j - m})` in mpmath,
    :math:`m = x_k` the maximum: exact differences, so a tiny log-partition survives."""
    xs = [mpmath.mpf(x) for x in logits]
    top = max(range(len(xs)), key=lambda i: xs[i])
    rest = mpmath.fsum(mpmath.exp(x - xs[top]) for i, x in enumerate(xs) if i != top)
    shift = mpmath.log1p(rest)
    return [(x - xs[top]) - shift for x in xs]


def _kl_of_logs(log_p: list[object], log_q: list[object]) -> float:
    r""":math:`\sum_i e^{\log p_i}(\log p_i - \log q_i)` in mpmath, 0 where
    :math:`p_i = 0`, :math:`+\infty` where only :math:`q_i = 0`."""
    with mpmath.workdps(DIGITS):
        total = mpmath.mpf(0)
        for a, b in zip(log_p, log_q, strict=True):
            if a == -mpmath.inf:
                continue
            if b == -mpmath.inf:
                return float("inf")
            total += mpmath.exp(a) * (a - b)
        return float(total)


def test_issue13_fused_plain_cross_entropy_infinite_where_p_underflowed() -> None:
    """F6: p_0 = e^(-700 - 1e10) > 0 against q_0 = 0: +inf (main: 1400), float64 and
    float32, equal to the generic path (array-api-strict) and the decomposition."""
    p = [-700.0, 1e10, 700.0]
    q = [-np.inf, -1400.0, 0.0]
    strict = pytest.importorskip("array_api_strict")
    generic = crossent.cross_entropy(
        strict.asarray(p, dtype=strict.float64),
        strict.asarray(q, dtype=strict.float64),
        p_form="logits",
        q_form="log_probs",
    )
    assert float(generic) == np.inf
    for dtype in (np.float64, np.float32):
        got = crossent.cross_entropy(
            np.array(p, dtype), np.array(q, dtype), p_form="logits", q_form="log_probs"
        )
        assert got == np.inf, dtype
    # A zero probability against q = 0 stays 0 (probabilities: no log to consult).
    zero = crossent.cross_entropy(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    assert zero == 0.0


def test_issue13_fused_binary_cross_entropy_grad_near_q_equal_p() -> None:
    """F7: the gradient (q - p)/(q(1 - q)) at q = p + 1e-12 within 4 ulps of mpmath
    (main: 3.4e-5 relative off), float64 and float32 inputs; q = 0 and q = 1 as before."""
    p = np.array([0.3, 0.7, 0.5, 1e-3])
    q = p + np.array([1e-12, -3e-13, 2e-14, 1e-15])
    got = crossent.binary_cross_entropy_grad(p, q)
    with mpmath.workdps(DIGITS):
        want = [
            float((mpmath.mpf(b) - mpmath.mpf(a)) / (mpmath.mpf(b) * (1 - mpmath.mpf(b))))
            for a, b in zip(p, q, strict=True)
        ]
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float64).eps, atol=0)
    p32, q32 = np.float32([0.3, 0.3]), np.float32([0.3, np.nextafter(np.float32(0.3), 1)])
    got32 = crossent.binary_cross_entropy_grad(p32, q32)
    want32 = [
        float((mpmath.mpf(float(b)) - float(a)) / (float(b) * (1 - mpmath.mpf(float(b)))))
        for a, b in zip(p32, q32, strict=True)
    ]
    np.testing.assert_allclose(got32, want32, rtol=4 * np.finfo(np.float32).eps, atol=0)
    edges = crossent.binary_cross_entropy_grad([0.0, 1.0, 0.5, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(edges, [1.0, -1.0, -np.inf, np.inf, -np.inf])


def test_issue13_fused_kl_of_overflowing_logit_spread_is_infinite() -> None:
    """F3: logits +-1.6e308 (x - m overflows to -inf): the KL is +inf (main: NaN in
    float64), as float32 and the generic path give; the decomposition agrees."""
    p = np.array([1.6e308, -1.6e308])
    q = np.array([-1.6e308, 1.6e308])
    assert crossent.kl_divergence(p, q, p_form="logits", q_form="logits") == np.inf
    h, ce, kl = crossent.cross_entropy_decomposition(p, q, p_form="logits", q_form="logits")
    assert (h, ce, kl) == (0.0, np.inf, np.inf)
    strict = pytest.importorskip("array_api_strict")
    with np.errstate(over="ignore"):  # the generic log-softmax's x - m, as it should
        generic = crossent.kl_divergence(
            strict.asarray(p), strict.asarray(q), p_form="logits", q_form="logits"
        )
    assert float(generic) == np.inf


def _mp_log(x: float) -> object:
    """``log x`` in mpmath, ``-inf`` at 0."""
    return mpmath.log(mpmath.mpf(x)) if x > 0 else -mpmath.inf


# (p, q, p_form, q_form): the KL of each against mpmath. The forms fix the KL:
# probabilities as they are (not renormalised), log-probabilities exponentiated,
# logits by the softmax.
_TINY_KL_ROWS = {
    # F1: a subnormal probability against logits (main: +inf).
    "F1_probs_subnormal_vs_logits": ([1.0, 5e-323], [-50.0, -700.0], "probs", "logits"),
    "F1_probs_1e-310_vs_logits": ([1.0, 1e-310], [0.0, -10.0], "probs", "logits"),
    # F2: a subnormal probability on Q's side (main: NaN).
    "F2_logits_vs_subnormal_probs": ([1e-20, 1e10], [5e-323, 1.0], "logits", "probs"),
    "F2_log_probs_vs_subnormal_probs": ([0.0, -1e300], [1.0, 5e-311], "log_probs", "probs"),
    # F4: q = e^-744 is subnormal, 29 % off once rounded (main: 1.5412e-32).
    "F4_logits_vs_subnormal_log_probs": ([-50.0, 30.0], [-744.0, 0.0], "logits", "log_probs"),
    # F5: p = e^-745 times log p - log q = 1e300 (main: 0); and a subnormal e^-740.
    "F5_log_probs_below_745": ([-745.0, 0.0], [-1e300, 0.0], "log_probs", "log_probs"),
    "F5_log_probs_subnormal": ([-740.0, 0.0], [-1e300, 0.0], "log_probs", "log_probs"),
    "F5_log_probs_far_below": ([-1200.0, 0.0], [-1e308, 0.0], "log_probs", "log_probs"),
}


def _log_side(values: list[float], form: str) -> list[object]:
    """A side's log-probabilities in mpmath, by its form."""
    if form == "logits":
        return _log_softmax(values)
    if form == "log_probs":
        return [mpmath.mpf(v) for v in values]
    return [_mp_log(v) for v in values]


@pytest.mark.parametrize("name", list(_TINY_KL_ROWS))
def test_issue13_fused_kl_subnormal_probabilities_against_mpmath(name: str) -> None:
    """F1, F2, F4, F5: float64 within 4 ulps of mpmath (2^-1074 absolute besides)."""
    p, q, p_form, q_form = _TINY_KL_ROWS[name]
    with mpmath.workdps(DIGITS):
        want = _kl_of_logs(_log_side(p, p_form), _log_side(q, q_form))
    got = crossent.kl_divergence(np.array(p), np.array(q), p_form=p_form, q_form=q_form)
    tolerance = 4 * np.finfo(np.float64).eps * abs(want) + 2.0**-1074
    assert abs(float(got) - want) <= tolerance, (got, want)


def test_issue13_fused_kl_subnormal_log_probs_float32() -> None:
    """F4 in float32 (main: 1.5412183e-32): within an ulp of mpmath."""
    p, q = [-50.0, 30.0], [-744.0, 0.0]
    with mpmath.workdps(DIGITS):
        want = _kl_of_logs(_log_softmax(p), [mpmath.mpf(v) for v in q])
    got = crossent.kl_divergence(np.float32(p), np.float32(q), p_form="logits", q_form="log_probs")
    assert abs(float(got) - want) <= np.finfo(np.float32).eps * abs(want), (got, want)
