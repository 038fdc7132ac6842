r"""Jensen-Shannon divergence of nearly equal float64 rows of logits and
log-probabilities on the generic (Array-API) path: NumPy without Numba, PyTorch and
JAX with x64 (issue 13, branch jsgeneric1).

The generic path formed each log-ratio :math:`\delta_i = (h_a - h_b) - c + \ell`
(:math:`h = x - m`, :math:`c` the log-partitions' difference) from the rounded
:math:`h_a - h_b`, whose rounding (up to :math:`u|h_a - h_b|`, about the
log-partition's size) is as large as a log-ratio of 1e-12: the fused kernel's bug that
jsmixed3 fixed there (``_fused_kernels._log_ratio``). The difference is now exact
(TwoSum, ``_measures._difference``). On main: rows N(0, 1) 1e-12 apart 1.7e11 ulps off,
1e-9 apart 2.2e8, 1e-3 apart 165 (NumPy, PyTorch and JAX; V = 2 alike); now within 3.

Oracle: mpmath at 60 digits of the given values (the logits' exact softmax, the
log-probabilities' exact exponentials, not renormalised).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.info import _fused

from oracles import row_probabilities

ULPS = 3.0


def _numpy(x: np.ndarray) -> Any:
    return x


def _torch(x: np.ndarray) -> Any:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(x)


def _jax(x: np.ndarray) -> Any:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax.numpy.asarray(x)


BACKENDS: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy_without_numba": _numpy,
    "torch": _torch,
    "jax": _jax,
}


def _form(z: np.ndarray, form: str) -> np.ndarray:
    """Rows of logits ``z`` as ``form``: themselves, or their rounded log-softmax or
    softmax (``-inf`` logits give ``-inf`` and 0)."""
    if form == "logits":
        return z
    shifted = z - np.max(z, axis=-1, keepdims=True)
    log_q = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return log_q if form == "log_probs" else np.exp(log_q)


@functools.cache
def _logits(classes: int, noise: float, zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows of logits N(0, 1) (eight of 2 classes, else one) and the same plus noise
    (``zeros``: the first two entries ``-inf`` in both)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((8 if classes == 2 else 1, classes))
    w = z + noise * rng.standard_normal(z.shape)
    if zeros:
        z[:, :2] = -np.inf
        w[:, :2] = -np.inf
    return z, w


@functools.cache
def _oracle(classes: int, noise: float, zeros: bool, form_a: str, form_b: str) -> list[Any]:
    """JS in nats of the rows of :func:`_logits` as ``form_a`` against the noisy ones as
    ``form_b``, exactly of the given values (mpfs)."""
    z, w = _logits(classes, noise, zeros)
    out = []
    with mpmath.workdps(60):
        for x, y in zip(_form(z, form_a), _form(w, form_b), strict=True):
            p = row_probabilities(x, form_a)
            q = row_probabilities(y, form_b)
            total = mpmath.fsum(
                (a * mpmath.log(2 * a / (a + b)) if a else 0)
                + (b * mpmath.log(2 * b / (a + b)) if b else 0)
                for a, b in zip(p, q, strict=True)
            )
            out.append(total / 2)
    return out


def _ulps(got: Any, want: list[Any]) -> float:
    """The worst distance of ``got``'s rows from ``want``'s, in ulps of the truth."""
    values = np.asarray(got.tolist() if hasattr(got, "tolist") else got).reshape(-1)
    eps = np.finfo(np.float64).eps
    return max(
        float(abs(mpmath.mpf(float(v)) - w) / (w * eps)) for v, w in zip(values, want, strict=True)
    )


def _both_orders(backend: str) -> Callable[[Any, Any], tuple[Any, Any]]:
    """JS of logits ``a`` against log-probabilities ``b`` and of ``b`` against ``a``;
    JAX under one ``jax.jit`` (``jax.lax.cond``'s branch; eager JAX would compile each
    of the path's operations, 3.7 s of CPU against 1.3)."""

    def both(a: Any, b: Any) -> tuple[Any, Any]:
        validate = backend != "jax"
        return (
            crossent.js_divergence(a, b, p_form="logits", q_form="log_probs", validate=validate),
            crossent.js_divergence(b, a, p_form="log_probs", q_form="logits", validate=validate),
        )

    if backend == "jax":
        import jax

        return jax.jit(both)
    return both


CASES = [(2, 1e-9, False), (2, 1e-3, False), (1000, 1e-12, False), (1000, 1e-9, True)]
CASES += [(1000, 1e-3, True)]
# (PyTorch and JAX one case each: eager JAX compiles every operation per shape)
CASES = [("numpy_without_numba", *case) for case in CASES]
CASES += [("torch", 1000, 1e-9, True), ("jax", 1000, 1e-9, True)]


@pytest.mark.parametrize(("backend", "classes", "noise", "zeros"), CASES)
def test_logits_against_log_probs_within_ulps(
    monkeypatch: pytest.MonkeyPatch, backend: str, classes: int, noise: float, zeros: bool
) -> None:
    """Both orders (the sign of :math:`h_a - h_b`); main: 4.0e8 ulps (V = 2, 1e-9),
    165 (V = 2, 1e-3), 1.7e11 (1e-12), 2.2e8 (1e-9, ``-inf`` entries; PyTorch and JAX
    alike), 50 (1e-3)."""
    monkeypatch.setattr(_fused, "available", lambda: False)  # (the generic path)
    convert = BACKENDS[backend]
    z, w = _logits(classes, noise, zeros)
    want = _oracle(classes, noise, zeros, "log_probs", "logits")
    a, b = convert(w), convert(_form(z, "log_probs"))  # (the noisy row as logits)
    forward, backward = _both_orders(backend)(a, b)
    assert max(_ulps(forward, want), _ulps(backward, want)) <= ULPS


PAIRS = [(a, b) for a in ("probs", "log_probs", "logits") for b in ("log_probs", "logits")]


@pytest.mark.parametrize(("form_a", "form_b"), PAIRS)
def test_every_form_pair_within_ulps(
    monkeypatch: pytest.MonkeyPatch, form_a: str, form_b: str
) -> None:
    """Guard (passes on main but for logits against log-probabilities, 2.2e8 and 3.6e7
    ulps): every pair of forms with one not probabilities, NumPy without Numba, rows
    1e-9 apart with ``-inf`` entries."""
    monkeypatch.setattr(_fused, "available", lambda: False)
    z, w = _logits(1000, 1e-9, True)
    got = crossent.js_divergence(_form(z, form_a), _form(w, form_b), p_form=form_a, q_form=form_b)
    assert _ulps(got, _oracle(1000, 1e-9, True, form_a, form_b)) <= ULPS
