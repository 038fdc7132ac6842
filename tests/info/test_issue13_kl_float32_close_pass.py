r"""Issue 13, branch klf32b: the float32 KL of two log-probability sides, and the
decomposition beside it, where the fused kernel's first pass (polynomial ``exp``) does
not stand: now a second vectorised pass with an ``exp`` within 8 float64 ulps
(``_fused_kernels._log_probs_sums``; rows of two entries ``_log_probs_pair``, alone),
its H and CE taken for the decomposition, instead of ``math.exp`` a term and the
compensated loop for H and CE (1.4x-12x the cost before branch klf32).

Guards (they pass on main too: the change is one of cost, ``benchmarks/RESULTS.md``):
every value within half a float32 ulp of the exact measure of the float32 values
(mpmath, 40 digits) on the rows the new passes choose between: 2-class rows near
:math:`p = 1/2` (the pair's branch: its bound stands, or ``_kl64_pass``, or the exact
sums), independent random 2-class rows, nearly equal rows of 2 and 40 classes (two
blocks of 16 and a tail), ``-inf`` entries (a zero probability on either side or both)
and zero log-probabilities (a probability of 1).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")

HALF_ULP = 0.5 + 2.0**-7
"""Each pass stands within 2^-32 of the measure: rounded once to float32, at most half
an ulp and 2^-32 relative (a value within 2^-32 of a rounding midpoint) off."""

OPTIONS = {"p_form": "log_probs", "q_form": "log_probs", "validate": False}


def _log_probs(x: np.ndarray) -> np.ndarray:
    return (x - np.logaddexp.reduce(x, axis=1, keepdims=True)).astype(np.float32)


def _two_class_rows() -> tuple[np.ndarray, np.ndarray]:
    """Rows of 2 classes: P near 1/2 against its reverse (the terms cancel: the
    pair's bound stands down to ``|p_1 - p_2| >= 1.2e-5``), independent random rows,
    nearly equal rows (Q's logits 1e-6 to 1e-3 from P's), and the edges."""
    rng = np.random.default_rng(72)
    half = 0.5 + np.concatenate(
        [[1e-7, 1e-6, 3e-6, 1e-5, 2e-5, 1e-4], 10.0 ** -rng.uniform(1, 7, 34)]
    )
    near_half = np.log(np.stack([half, 1.0 - half], axis=1)).astype(np.float32)
    random_p = _log_probs(3.0 * rng.standard_normal((40, 2)))
    random_q = _log_probs(3.0 * rng.standard_normal((40, 2)))
    z = 3.0 * rng.standard_normal((40, 2))
    delta = np.repeat([1e-6, 1e-5, 1e-4, 1e-3], 10)[:, None]
    near_p, near_q = _log_probs(z), _log_probs(z + delta * rng.standard_normal((40, 2)))
    log_half = np.float32(np.log(0.5))
    inf = np.inf
    edges_p = np.array(
        [[0, -inf], [log_half, log_half], [0, -inf], [-inf, 0], [log_half, log_half], [-800, 0]],
        dtype=np.float32,
    )
    edges_q = np.array(
        [[log_half, log_half], [0, -inf], [0, -inf], [0, -inf], [log_half, log_half], [0, -900]],
        dtype=np.float32,
    )
    p = np.concatenate([near_half, random_p, near_p, edges_p])
    q = np.concatenate([near_half[:, ::-1], random_q, near_q, edges_q])
    return p, q


def _forty_class_rows() -> tuple[np.ndarray, np.ndarray]:
    """Rows of 40 classes (two blocks of 16 and a tail of 8), Q's logits 1e-6 to 1e-2
    from P's; a few entries ``-inf`` on both sides, on P's alone, and one row with an
    entry ``-inf`` on Q's alone (an infinite KL and CE)."""
    rng = np.random.default_rng(7240)
    z = 3.0 * rng.standard_normal((30, 40))
    delta = np.repeat([1e-6, 1e-5, 1e-4, 1e-3, 1e-2], 6)[:, None]
    p, q = _log_probs(z), _log_probs(z + delta * rng.standard_normal((30, 40)))
    p[0:3, 5] = q[0:3, 5] = -np.inf
    p[3:6, 20] = -np.inf
    p[6:9, 39] = -np.inf
    q[9, 17] = -np.inf
    return p, q


@mpmath.workdps(40)
def _exact(p: np.ndarray, q: np.ndarray) -> dict[str, list[float]]:
    r""":math:`H = -\sum e^v v`, :math:`H(P, Q) = -\sum e^v w` and :math:`D = \sum e^v
    (v - w)` of each row's float32 values (terms where :math:`v = -\infty` are 0)."""
    out: dict[str, list[float]] = {"entropy": [], "cross_entropy": [], "kl_divergence": []}
    for v_row, w_row in zip(p, q, strict=True):
        h = ce = kl = mpmath.mpf(0)
        for v, w in zip(v_row, w_row, strict=True):
            if v == -np.inf:
                continue
            e = mpmath.exp(mpmath.mpf(float(v)))
            h -= e * float(v)
            if w == -np.inf:
                ce = kl = mpmath.inf
                continue
            ce -= e * float(w)
            kl += e * (mpmath.mpf(float(v)) - float(w))
        for name, value in (("entropy", h), ("cross_entropy", ce), ("kl_divergence", kl)):
            out[name].append(float(value))
    return out


def _worst_ulps(values: np.ndarray, truth: list[float]) -> float:
    values = np.asarray(values)
    assert values.dtype == np.float32
    exact = np.array(truth)
    infinite = np.isinf(exact)
    assert np.array_equal(values[infinite], exact[infinite].astype(np.float32))
    values, exact = values[~infinite].astype(np.float64), exact[~infinite]
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    spacing = np.maximum(np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64), tiny)
    return float(np.max(np.abs(values - exact) / spacing))


@pytest.mark.parametrize("classes", [2, 40])
def test_float32_log_probs_kl_and_decomposition_rounded_once(classes: int) -> None:
    p, q = _two_class_rows() if classes == 2 else _forty_class_rows()
    truth = _exact(p, q)
    kl = crossent.kl_divergence(p, q, **OPTIONS)
    assert _worst_ulps(kl, truth["kl_divergence"]) <= HALF_ULP
    parts = crossent.cross_entropy_decomposition(p, q, **OPTIONS)
    for name in ("entropy", "cross_entropy", "kl_divergence"):
        assert _worst_ulps(getattr(parts, name), truth[name]) <= HALF_ULP, name
