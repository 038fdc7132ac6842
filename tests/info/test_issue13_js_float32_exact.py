"""Jensen-Shannon divergence of nearly equal float32 rows, and the fused kernel's float64
rows of logits (issue 13, branch jsexact4).

* The fused kernel's screen of float32 probabilities against log-probabilities counted
  the other side's probabilities as within :math:`2u` (float64) of themselves, but the
  float32 rows take the polynomial ``exp`` (5.2e-11): rows 1e-5 apart were 25 float32
  ulps off.
* PyTorch float32 tensors of logits against log-probabilities (the torch path: past the
  host route's size, with grad, on a GPU) were computed in float32: rows 1e-7 apart
  3.9e7 ulps off. Now in float64, rounded once.
* The fused kernel's float64 JS of logits against logits or log-probabilities took the
  logits' probabilities from the rounded log-partition, a factor :math:`e^{\\ell_{lo}}`
  off: up to 5.2 ulps (rows 1e-3 apart, random rows).

Oracle: mpmath at 50 digits of the given values (a logits row's exact softmax, a
log-probabilities row's exact exponentials, not renormalised).
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

import crossent
import crossent.info._fused as fused

from oracles import row_probabilities

FLOAT32_ULPS = 1.0
FLOAT64_ULPS = 1.5


def _truth(a: np.ndarray, form_a: str, b: np.ndarray, form_b: str) -> list[mpmath.mpf]:
    out = []
    with mpmath.workdps(50):
        for r in range(a.shape[0]):
            p = row_probabilities(a[r].astype(np.float64), form_a)
            q = row_probabilities(b[r].astype(np.float64), form_b)
            total = mpmath.fsum(
                (x * mpmath.log(2 * x / (x + y)) if x else 0)
                + (y * mpmath.log(2 * y / (x + y)) if y else 0)
                for x, y in zip(p, q, strict=True)
            )
            out.append(total / 2)
    return out


def _ulps(got: object, want: list[mpmath.mpf], dtype: type) -> float:
    eps = float(np.finfo(dtype).eps)
    values = np.asarray(got, np.float64).reshape(-1)
    return max(
        float(abs(mpmath.mpf(float(v)) - w) / (w * eps)) for v, w in zip(values, want, strict=True)
    )


@functools.cache
def _float32_rows(classes: int, noise: float, form_a: str, form_b: str) -> tuple[np.ndarray, ...]:
    """Four float32 rows of logits N(0, 1) and the same plus ``noise``, each side in its
    form (log-probabilities and probabilities: the float64 softmax's, rounded)."""
    rng = np.random.default_rng([classes, int(-np.log10(noise))])
    z = rng.standard_normal((4, classes)).astype(np.float32)
    w = (z + noise * rng.standard_normal(z.shape)).astype(np.float32)

    def in_form(x: np.ndarray, form: str) -> np.ndarray:
        if form == "logits":
            return x
        wide = x.astype(np.float64)
        shifted = wide - wide.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return (log_p if form == "log_probs" else np.exp(log_p)).astype(np.float32)

    return in_form(z, form_a), in_form(w, form_b)


@pytest.mark.skipif(not fused.available(), reason="needs Numba")
@pytest.mark.parametrize("noise", [1e-5, 1e-4])
@pytest.mark.parametrize(("form_a", "form_b"), [("probs", "log_probs"), ("log_probs", "probs")])
def test_fused_float32_probs_against_log_probs(noise: float, form_a: str, form_b: str) -> None:
    """Two classes (where the plain sum's error shows most); main: 24.8 and 7.5 ulps."""
    a, b = _float32_rows(2, noise, form_a, form_b)
    got = crossent.js_divergence(a, b, p_form=form_a, q_form=form_b)
    assert _ulps(got, _truth(a, form_a, b, form_b), np.float32) <= FLOAT32_ULPS


@pytest.mark.parametrize("classes", [2, 100])
@pytest.mark.parametrize("noise", [1e-7, 1e-5])
@pytest.mark.parametrize(("form_a", "form_b"), [("logits", "log_probs"), ("log_probs", "logits")])
def test_torch_float32_logits_against_log_probs(
    classes: int, noise: float, form_a: str, form_b: str
) -> None:
    """The torch path (the host route off); main: 20 to 3.9e7 ulps."""
    torch = pytest.importorskip("torch")
    import crossent._torch_host as host

    a, b = _float32_rows(classes, noise, form_a, form_b)
    saved, host.MAX_ELEMENTS = host.MAX_ELEMENTS, -1
    try:
        got = crossent.js_divergence(
            torch.from_numpy(a), torch.from_numpy(b), p_form=form_a, q_form=form_b
        )
    finally:
        host.MAX_ELEMENTS = saved
    assert got.dtype == torch.float32
    assert _ulps(got.numpy(), _truth(a, form_a, b, form_b), np.float32) <= FLOAT32_ULPS


@functools.cache
def _float64_rows(noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six rows of 1000 logits N(0, 1) plus noise, the logits without noise and their
    rounded log-softmax."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 1000))
    shifted = z - z.max(axis=-1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return z + noise * rng.standard_normal(z.shape), z, log_q


@pytest.mark.skipif(not fused.available(), reason="needs Numba")
@pytest.mark.parametrize(
    ("noise", "form_b"),
    [(1e-3, "log_probs"), (1e-2, "log_probs"), (1e-3, "logits"), (1.0, "logits")],
)
def test_fused_float64_logits_sides_within_an_ulp(noise: float, form_b: str) -> None:
    """Rows past the near pass (its exact log-partition): main took the logits'
    probabilities from the rounded log-partition, 2.8 to 5.2 ulps off."""
    logits, z, log_q = _float64_rows(noise)
    other = log_q if form_b == "log_probs" else z
    got = crossent.js_divergence(logits, other, p_form="logits", q_form=form_b)
    assert _ulps(got, _truth(logits, "logits", other, form_b), np.float64) <= FLOAT64_ULPS
