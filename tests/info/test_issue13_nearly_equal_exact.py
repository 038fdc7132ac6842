"""Nearly equal rows and subnormal probabilities, exact to about 2^-47 (issue 13).

The mpmath references (200 bits, ``BITS``) are independent of crossent's kernels. Each test runs
the fused kernel (NumPy float64/float32) and the generic path (PyTorch float64).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent

torch = pytest.importorskip("torch")

#: The references' working precision, set where they run (``@mpmath.workprec(BITS)``):
#: 200 bits. Their worst cancellation, a KL of 2^-80 from terms of 2^-40, keeps 160.
BITS = 200
TOLERANCE = 2.0**-47


@mpmath.workprec(BITS)
def _kl_reference(p: np.ndarray, q: np.ndarray) -> mpmath.mpf:
    return mpmath.fsum(
        mpmath.mpf(float(a)) * mpmath.log(mpmath.mpf(float(a)) / mpmath.mpf(float(b)))
        for a, b in zip(p, q, strict=True)
        if a > 0
    )


@mpmath.workprec(BITS)
def _relative_error(value: object, truth: mpmath.mpf) -> float:
    return float(abs(mpmath.mpf(float(value)) - truth) / abs(truth))


BACKENDS = [pytest.param(np.asarray, id="fused"), pytest.param(torch.tensor, id="generic")]


@pytest.mark.parametrize("to_array", BACKENDS)
def test_kl_probabilities_nearly_equal_rows(to_array: object) -> None:
    """The issue's row: main's plain sum was 1.2e-9 relative off on both paths."""
    p = np.array([0.25, 0.25, 0.5])
    q = np.array([0.25, 0.25 + 2.0**-30, 0.5 - 2.0**-30])
    value = crossent.kl_divergence(to_array(p), to_array(q))
    assert _relative_error(value, _kl_reference(p, q)) <= TOLERANCE


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(1, 1000), min_size=2, max_size=6),
    st.integers(20, 40),
    st.integers(0, 2**31),
)
def test_kl_probabilities_perturbed_rows(weights: list[int], exponent: int, seed: int) -> None:
    """Normalised rows and a perturbation of 2^-exponent moving mass between classes."""
    p = np.asarray(weights, dtype=np.float64)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    i, j = rng.choice(len(p), size=2, replace=False)
    q = p.copy()
    shift = min(p[i], p[j]) * 2.0**-exponent
    q[i] += shift
    q[j] -= shift
    truth = _kl_reference(p, q)
    for to_array in (np.asarray, torch.tensor):
        value = crossent.kl_divergence(to_array(p), to_array(q))
        assert _relative_error(value, truth) <= TOLERANCE


def test_kl_probabilities_float32_against_float64_truth() -> None:
    """Float32 rows (computed in float64 by the fused kernel): within a float32 rounding."""
    p = np.array([0.25, 0.25, 0.5], dtype=np.float32)
    q = np.array([0.25, 0.25 + 2.0**-22, 0.5 - 2.0**-22], dtype=np.float32)
    value = crossent.kl_divergence(p, q)
    assert value.dtype == np.float32
    assert _relative_error(value, _kl_reference(p, q)) <= 2.0**-23


@pytest.mark.parametrize("to_array", BACKENDS)
@mpmath.workprec(BITS)
def test_cross_entropy_of_subnormal_probability(to_array: object) -> None:
    """-p log q with p = e^-745 subnormal: main gave 4.94e-24 (2^-1074 * 1e300)."""
    log_p = np.array([-745.0, 0.0])
    log_q = np.array([-1e300, 0.0])
    truth = mpmath.exp(-745) * mpmath.mpf(1e300)
    forms = {"p_form": "log_probs", "q_form": "log_probs"}
    parts = crossent.cross_entropy_decomposition(to_array(log_p), to_array(log_q), **forms)
    alone = crossent.cross_entropy(to_array(log_p), to_array(log_q), **forms)
    for value in (alone, parts.cross_entropy, parts.kl_divergence):
        assert _relative_error(value, truth) <= TOLERANCE
    # H(P, Q) = H(P) + D(P||Q) on that row (H(P) = 745 e^-745 is below D's ulp)
    assert float(parts.cross_entropy) == float(parts.entropy) + float(parts.kl_divergence)


@pytest.mark.parametrize("to_array", BACKENDS)
@pytest.mark.parametrize("log_p0", [-800.0, -1000.0])
@mpmath.workprec(BITS)
def test_cross_entropy_of_underflowed_probability(to_array: object, log_p0: float) -> None:
    """e^log_p0 underflows (0.0 at -1000): main gave 0 or a multiple of 2^-1074."""
    log_p = np.array([log_p0, 0.0])
    log_q = np.array([-1e300, 0.0])
    truth = mpmath.exp(log_p0) * mpmath.mpf(1e300)
    value = crossent.cross_entropy(
        to_array(log_p), to_array(log_q), p_form="log_probs", q_form="log_probs"
    )
    assert _relative_error(value, truth) <= TOLERANCE


@mpmath.workprec(BITS)
def _log_softmax_reference(z: np.ndarray) -> list[mpmath.mpf]:
    values = [mpmath.mpf(float(v)) for v in z]
    log_partition = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values))
    return [v - log_partition for v in values]


@mpmath.workprec(BITS)
def _js_reference(log_p: list[mpmath.mpf], log_q: list[mpmath.mpf]) -> mpmath.mpf:
    total = mpmath.mpf(0)
    for a, b in zip(log_p, log_q, strict=True):
        p, q = mpmath.exp(a), mpmath.exp(b)
        m = (p + q) / 2
        total += p * mpmath.log(p / m) + q * mpmath.log(q / m)
    return total / 2


@pytest.mark.parametrize("to_array", BACKENDS)
@pytest.mark.parametrize(("classes", "noise", "shift"), [(10, 1e-9, 37.25), (100, 1e-12, 0.0)])
def test_js_of_nearly_equal_logits(
    to_array: object, classes: int, noise: float, shift: float
) -> None:
    """Logits z and z + shift + noise: main was 1e-7 to 1e-4 relative off on both paths
    (p - q of the separately rounded probabilities)."""
    rng = np.random.default_rng(classes)
    z = 3.0 * rng.normal(size=classes)
    w = z + shift + noise * rng.normal(size=classes)
    truth = _js_reference(_log_softmax_reference(z), _log_softmax_reference(w))
    value = crossent.js_divergence(to_array(z), to_array(w), p_form="logits", q_form="logits")
    assert _relative_error(value, truth) <= TOLERANCE


@pytest.mark.parametrize("to_array", BACKENDS)
def test_js_of_nearly_equal_log_probabilities(to_array: object) -> None:
    """Log-probabilities (float64 log-softmax of nearly equal logits, taken as given)."""
    rng = np.random.default_rng(7)
    z = 3.0 * rng.normal(size=20)
    w = z + 1e-10 * rng.normal(size=20)
    log_p = np.array([float(v) for v in _log_softmax_reference(z)])
    log_q = np.array([float(v) for v in _log_softmax_reference(w)])
    truth = _js_reference(
        [mpmath.mpf(float(v)) for v in log_p], [mpmath.mpf(float(v)) for v in log_q]
    )
    value = crossent.js_divergence(
        to_array(log_p), to_array(log_q), p_form="log_probs", q_form="log_probs"
    )
    assert _relative_error(value, truth) <= TOLERANCE


def test_js_of_nearly_equal_logits_float32() -> None:
    """Float32 logits: the float64 truth of the float32 inputs, within a float32 rounding."""
    rng = np.random.default_rng(3)
    z = (3.0 * rng.normal(size=16)).astype(np.float32)
    w = z + np.float32(2.0**-20) * rng.choice([-1.0, 1.0], size=16).astype(np.float32)
    truth = _js_reference(_log_softmax_reference(z), _log_softmax_reference(w))
    value = crossent.js_divergence(z, w, p_form="logits", q_form="logits")
    assert value.dtype == np.float32
    assert _relative_error(value, truth) <= 2.0**-23
