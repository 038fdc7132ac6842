"""JS of mixed input forms on the generic Array-API path (branch jaxexact1, issue 13).

A side of probabilities against logits or log-probabilities on JAX, array-api-strict and
PyTorch tensors past the host route formed the other side's rounded probabilities: 0
for 8.154e-36, JAX float64 rows 1e-9 apart 4.0e-7 relative off. Now the rows the
fused kernel's screen sends to the exact pass take ``info._js_mixed.js_mixed_exact``
(double-double probabilities, normalised exactly), eagerly (array-api-strict, PyTorch;
eager JAX shares the code, and its op-by-op compiles cost seconds) and under ``jax.jit``.
Oracle: mpmath at 40 digits. All fail on main (the module is new; the values too).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _torch_host

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
xs = pytest.importorskip("array_api_strict")
torch = pytest.importorskip("torch")

ULP = 2.0**-53


def _oracle(p: np.ndarray, other: np.ndarray, form: str) -> float:
    """JS(p, Q) in nats, Q from ``other`` (logits or log-probabilities), 40 digits."""
    with mpmath.workdps(40):
        x = [mpmath.mpf(float(v)) for v in other]
        q = [mpmath.exp(v) for v in x]
        if form == "logits":
            total = mpmath.fsum(q)
            q = [v / total for v in q]
        js = mpmath.mpf(0)
        for a, b in zip((mpmath.mpf(float(v)) for v in p), q, strict=True):
            m = (a + b) / 2
            js += (a * mpmath.log(a / m) if a else 0) + (b * mpmath.log(b / m) if b else 0)
        return float(js / 2)


def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, and logits 1e-9 and 1e-5 apart from theirs (and the logits' log-
    softmax), 4 rows of 6 classes."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(4, 6))
    y = x + np.array([[1e-9], [1e-9], [1e-5], [1e-12]]) * rng.normal(size=(4, 6))
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    log_q = y - y.max(-1, keepdims=True)
    log_q -= np.log(np.sum(np.exp(log_q), -1, keepdims=True))
    return p, y, log_q


def _check(got: object, p: np.ndarray, other: np.ndarray, form: str, ulps: float) -> None:
    values = np.asarray(got, dtype=np.float64)
    for row, value in enumerate(values):
        want = _oracle(p[row], other[row], form)
        assert abs(value - want) <= ulps * ULP * want, (row, value, want)


def test_the_reported_pair_on_array_api_strict() -> None:
    p = xs.asarray([0.5, 0.5], dtype=xs.float64)
    x = xs.asarray([9.69947612414247e-18, -6.454208613874632e-18], dtype=xs.float64)
    got = float(crossent.js_divergence(p, x, q_form="logits"))
    assert got == pytest.approx(8.154422831726458e-36, rel=4 * ULP, abs=0)


@pytest.mark.parametrize("form", ["logits", "log_probs"])
def test_nearly_equal_rows_on_array_api_strict(form: str) -> None:
    p, y, log_q = _rows()
    other = y if form == "logits" else log_q
    got = crossent.js_divergence(xs.asarray(p), xs.asarray(other), q_form=form)
    _check(got, p, other, form, 8)
    # the probabilities second (Q), the other side first
    got = crossent.js_divergence(xs.asarray(other), xs.asarray(p), p_form=form)
    _check(got, p, other, form, 8)


def test_nearly_equal_rows_under_jit() -> None:
    jax.config.update("jax_enable_x64", True)
    p, y, _ = _rows()
    jitted = jax.jit(lambda a, b: crossent.js_divergence(a, b, q_form="logits", validate=False))
    _check(jitted(jnp.asarray(p), jnp.asarray(y)), p, y, "logits", 8)


def test_torch_past_the_host_route_float64_and_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_torch_host, "MAX_ELEMENTS", -1)  # (as a large tensor)
    p, y, _ = _rows()
    _check(
        crossent.js_divergence(torch.tensor(p), torch.tensor(y), q_form="logits"), p, y, "logits", 8
    )
    p32, y32 = (torch.tensor(v, dtype=torch.float32) for v in (p, y))
    got = crossent.js_divergence(p32, y32, q_form="logits")
    assert got.dtype == torch.float32
    p_wide, y_wide = p32.double().numpy(), y32.double().numpy()
    for row, value in enumerate(got.tolist()):
        want = _oracle(p_wide[row], y_wide[row], "logits")
        assert abs(value - want) <= 2.0**-24 * want  # rounded once from float64


def test_the_screen_keeps_random_rows_on_the_plain_sum() -> None:
    from crossent.info import _js_mixed  # (new: main has none)

    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 100))
    p = rng.dirichlet(np.ones(100), size=64)
    log_q = x - x.max(-1, keepdims=True)
    log_q -= np.log(np.sum(np.exp(log_q), -1, keepdims=True))
    q = np.exp(log_q)
    plain = np.sum(crossent._numerics.js_terms(p, q, xp=np), axis=-1)
    error = (np.ceil(np.log2(101)) + 6) * ULP + 3 * ULP * np.log(101)
    assert not _js_mixed.careful_rows(plain, p, q, log_q, error, xp=np).any()
    q = p * np.exp(1e-9 * rng.normal(size=p.shape))  # nearly equal rows
    plain = np.sum(crossent._numerics.js_terms(p, q, xp=np), axis=-1)
    assert _js_mixed.careful_rows(plain, p, q, np.log(q), error, xp=np).all()
