"""Issue 10: tests that checked only a dtype, a shape or finiteness now check the value.

Each value is compared with a float64 oracle of the *same* (rounded) inputs, written here
or taken from the float64 path, with a tolerance from ``tests/tolerances.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crossent

from tolerances import CLOSED_FORM, FLOAT32_KERNEL, ROUNDING, assert_close, ulps


def _entropy64(p: np.ndarray) -> np.ndarray:
    """-sum p log p in float64 of the given values (0 log 0 = 0), with no renormalisation."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=-1)


def _softmax_ce64(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
    return lse - np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]


def _softmax_ce_grad64(logits: np.ndarray, labels: np.ndarray, rows: int) -> np.ndarray:
    """Gradient of the mean softmax cross-entropy over ``rows`` rows, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    onehot = np.eye(z.shape[-1])[labels]
    return (p - onehot) / rows


def test_issue10_tests_float16_numpy_entropy_value() -> None:
    p = np.array([0.25, 0.25, 0.5], dtype=np.float16)  # exact in float16
    got = crossent.entropy(p)
    assert got.dtype == np.float32
    assert_close(got, 1.5 * math.log(2.0), CLOSED_FORM)
    q = np.random.default_rng(4).dirichlet(np.ones(9), size=50).astype(np.float16)
    q[:, -1] = (1.0 - q[:, :-1].astype(np.float32).sum(axis=1)).astype(np.float16)
    ok = np.abs(q.astype(np.float64).sum(axis=1) - 1) < 2e-3
    got = crossent.entropy(q[ok])
    assert got.dtype == np.float32
    assert_close(got, _entropy64(q[ok]), CLOSED_FORM)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_issue10_tests_half_precision_torch_entropy_value(dtype_name: str) -> None:
    torch = pytest.importorskip("torch")
    p = torch.softmax(torch.randn(4, 1000, generator=torch.Generator().manual_seed(0)), -1)
    low = p.to(getattr(torch, dtype_name))  # rows sum to 1 only to ~4e-3 in bf16
    got = crossent.entropy(low)
    assert got.dtype == torch.float32
    assert_close(got, _entropy64(low.double().numpy()), CLOSED_FORM)


def test_issue10_tests_float32_rows_within_1e_6_give_their_entropy_and_nll() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(100), size=1000).astype(np.float32)
    p[:, 0] += np.float32(1e-6)  # a float32 softmax output: sums to 1 only to ~1e-6
    got = crossent.entropy(p)
    assert got.dtype == np.float32
    assert_close(got, _entropy64(p), CLOSED_FORM)
    probs = np.full((3, 10), 0.1, dtype=np.float32)
    probs[:, 0] += np.float32(1e-6)
    labels = np.array([0, 1, 2])
    expected = -np.log(probs.astype(np.float64)[np.arange(3), labels]).mean()
    assert_close(crossent.negative_log_likelihood(probs, labels), expected, CLOSED_FORM)


def test_issue10_tests_batched_and_float16_kernel_values_and_gradients() -> None:
    pytest.importorskip("numba")
    rng = np.random.default_rng(31)
    logits = (rng.normal(size=(40, 300)) * 4).astype(np.float32).reshape(4, 10, 300)
    labels = rng.integers(0, 300, size=(4, 10))
    got = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    assert_close(got, _softmax_ce64(logits, labels), FLOAT32_KERNEL)
    grad = crossent.softmax_cross_entropy_grad(logits, labels)
    assert grad.dtype == np.float32
    expected = _softmax_ce_grad64(logits, labels, rows=40)
    # float32 gradient entries: measured 1.2 float32 ulps of the largest entry, absolutely
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(
        grad,
        expected,
        rtol=FLOAT32_KERNEL.pair(np.float32)[0],
        atol=ulps(16, np.float32, scale),
    )
    half = logits.reshape(40, 300).astype(np.float16)
    flat = labels.reshape(40)
    got = crossent.softmax_cross_entropy(half, flat)
    assert got.dtype == np.float32
    assert_close(got, _softmax_ce64(half, flat).mean(), FLOAT32_KERNEL)
    grad = crossent.softmax_cross_entropy_grad(half, flat)
    assert grad.dtype == np.float32
    expected = _softmax_ce_grad64(half, flat, rows=40)
    np.testing.assert_allclose(
        grad,
        expected,
        rtol=FLOAT32_KERNEL.pair(np.float32)[0],
        atol=ulps(16, np.float32, float(np.abs(expected).max())),
    )


def test_issue10_tests_gradient_through_minus_inf_logit_value() -> None:
    z = np.array([[0.0, -np.inf, 1.0]])
    grad = crossent.softmax_cross_entropy_grad(z, [2])
    e = 1.0 / (1.0 + math.e)  # softmax of the finite pair (0, 1)
    np.testing.assert_allclose(grad, [[e, 0.0, (1.0 - e) - 1.0]], **ROUNDING.tol())


def _expected_score(score, truth: np.ndarray, reported: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """E_{y ~ truth}[score(reported, y)], summed exactly over every label."""
    n, classes = truth.shape
    return sum(
        float(np.sum(truth[:, k] * score(reported, np.full(n, k), reduction="none")))
        for k in range(classes)
    )


SCORES = {
    # name: (score, +1 if lower is better, -1 if higher is better)
    "brier": (crossent.brier_score, 1.0),
    "log": (crossent.negative_log_likelihood, 1.0),
    "spherical": (crossent.spherical_score, -1.0),
}


@pytest.mark.parametrize("name", list(SCORES))
@given(
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=2, max_value=6),
    st.integers(0, 2**32 - 1),
)
def test_issue10_tests_every_score_is_proper(name: str, n: int, classes: int, seed: int) -> None:
    """Reporting the true distribution scores no worse in expectation (Gneiting and
    Raftery 2007): Brier, log (NLL) and spherical scores are all strictly proper."""
    score, sign = SCORES[name]
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.ones(classes), size=n)
    other = rng.dirichlet(np.ones(classes), size=n)
    honest = sign * _expected_score(score, truth, truth)
    dishonest = sign * _expected_score(score, truth, other)
    slack = 1e-12 * max(1.0, abs(honest))
    assert honest <= dishonest + slack
    # and a reported distribution that differs from the truth in a single row loses
    # strictly: the gain is the row's divergence, positive for a strictly proper score
    bent = truth.copy()
    bent[0] = 0.5 * truth[0] + 0.5 * np.eye(classes)[int(np.argmin(truth[0]))]
    assert honest < sign * _expected_score(score, truth, bent)
