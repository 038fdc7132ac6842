r"""Issue 13, branch klf32: the float32 KL of two log-probability sides of nearly equal
rows, within half a float32 ulp of the exact KL of the float32 values (mpmath).

Found by branch hostile2: the fused kernel's fast pass (``_divergence_sums``) summed
:math:`p_i(\log p_i - \log q_i)` with :math:`p_i` from the polynomial ``exp``
(relative error 5.2e-11), and its bound (``_divergence_safe``) counted only the sum's
rounding. On nearly equal rows the terms (about 1e-5 to 1e-7) cancel to a KL of 1e-11
to 1e-14, so the polynomial's error, relative to each term, was up to 22 float32 ulps
of the KL (``benchmarks/check_kl_float32_near.py``: 6.3; hostile2: 9 classes, rows 1e-4
apart, 4.1138398e-11 for 4.1136336e-11), and the rows the bound did flag took the
compensated loop, with the same ``exp``. Now the bound carries the polynomial's error
and the flagged rows take the float64 pass (``_kl64_pass``, ``math.exp``, its bound
within 2^-32), then the exact sums (``_kl_exact``), as float32 logits against
log-probabilities do.

Fails on main (ab91de5c, measured): both tests (``kl_divergence`` and the
decomposition's KL).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")

HALF_ULP = 0.5 + 2.0**-7
"""The float64 sum stands within 2^-32 of the KL: rounded once to float32, at most half
an ulp and 2^-32 relative (a KL within 2^-32 of a rounding midpoint) off."""


def _rows() -> tuple[np.ndarray, np.ndarray]:
    """Float32 log-probabilities (``log_softmax`` in float64, rounded) of 40 rows of 9
    classes and 40 of 2 (the 2-class rows padded with ``-inf``, a zero probability),
    Q's logits ``delta`` = 1e-5 to 1e-3 from P's."""
    rng = np.random.default_rng(71)
    blocks_p, blocks_q = [], []
    for classes in (9, 2):
        z = 3.0 * rng.standard_normal((40, classes))
        delta = np.repeat([1e-5, 1e-4, 1e-3, 3e-4], 10)[:, None]
        w = z + delta * rng.standard_normal((40, classes))
        pad = np.full((40, 9 - classes), -np.inf)
        for x, out in ((z, blocks_p), (w, blocks_q)):
            log_p = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
            out.append(np.concatenate([log_p, pad], axis=1).astype(np.float32))
    return np.concatenate(blocks_p), np.concatenate(blocks_q)


@mpmath.workdps(50)
def _exact(log_p: np.ndarray, log_q: np.ndarray) -> list[float]:
    r""":math:`\sum_i e^{v_i}(v_i - w_i)` of each row's float32 values, at 50 digits."""
    result = []
    for v, w in zip(log_p, log_q, strict=True):
        terms = [
            mpmath.exp(mpmath.mpf(float(a))) * (mpmath.mpf(float(a)) - mpmath.mpf(float(b)))
            for a, b in zip(v, w, strict=True)
            if a != -np.inf
        ]
        result.append(float(mpmath.fsum(terms)))
    return result


def _worst_ulps(values: np.ndarray, truth: list[float]) -> float:
    values = np.asarray(values)
    assert values.dtype == np.float32
    exact = np.array(truth)
    spacing = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    return float(np.max(np.abs(values.astype(np.float64) - exact) / spacing))


@pytest.mark.parametrize("measure", ["kl_divergence", "decomposition"])
def test_float32_log_probs_kl_of_nearly_equal_rows_is_rounded_once(measure: str) -> None:
    log_p, log_q = _rows()
    options = {"p_form": "log_probs", "q_form": "log_probs", "validate": False}
    if measure == "kl_divergence":
        values = crossent.kl_divergence(log_p, log_q, **options)
    else:
        values = crossent.cross_entropy_decomposition(log_p, log_q, **options).kl_divergence
    assert _worst_ulps(values, _exact(log_p, log_q)) <= HALF_ULP
