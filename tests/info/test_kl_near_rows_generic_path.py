r"""KL of nearly equal float64 probability rows on the generic (Array-API) path: NumPy
without Numba, PyTorch tensors and ``array_api_strict`` arrays.

The rows of ``test_kl_near_rows_mass_cancellation.py`` (ratios near :math:`1 \pm
10^{-8}`: :math:`\sum_i t_i` of the non-negative terms cancels against the mass
difference :math:`\sum_i (p_i - q_i)`), which the fused kernel takes within an ulp. The
generic path added the terms' float sum to the exactly rounded mass difference: up to
41.6 ulps off (seed 1). Its terms of :math:`|r| \le 2^{-6}` are now double-doubles
(``kl_terms_nonnegative_dd``), summed exactly with the mass difference and rounded once.

Oracle: mpmath at 50 digits of :math:`\sum_i p_i \log(p_i/q_i)` of the given floats.
On main all fail (the 7-class row: 19.1 ulps on NumPy without Numba; the random rows'
worst 41.6 ulps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tests.info.test_kl_near_rows_mass_cancellation import P7, Q7, _truth, _ulps

import crossent
from crossent.info import _fused, _measures

Convert = Callable[[np.ndarray], Any]


def _numpy(x: np.ndarray) -> Any:
    return x


def _torch(x: np.ndarray) -> Any:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(x)


def _strict(x: np.ndarray) -> Any:
    strict = pytest.importorskip("array_api_strict")
    return strict.asarray(x)


BACKENDS = {"numpy_without_numba": _numpy, "torch": _torch, "array_api_strict": _strict}


@pytest.fixture(params=list(BACKENDS))
def convert(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Convert:
    """Each backend on the generic path (Numba made unavailable, as without the ``fast``
    extra: NumPy then takes the Array-API form)."""
    monkeypatch.setattr(_fused, "available", lambda: False)
    return BACKENDS[request.param]


@pytest.fixture(params=["host", "extraction"])
def mass_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The exact sum by ``math.fsum`` on the host, or by the vectorised extraction."""
    if request.param == "extraction":
        monkeypatch.setattr(_measures, "_HOST_MASS_COST", {"numpy": -1, "cpu": -1})
    else:
        monkeypatch.setattr(_measures, "_HOST_MASS_COST", {"numpy": 10**9, "cpu": 10**9})
    return str(request.param)


def _value(x: Any) -> np.ndarray:
    return np.asarray(x.tolist() if hasattr(x, "tolist") else x, dtype=np.float64)


@pytest.mark.usefixtures("mass_path")
def test_seven_classes_cancelling_by_63(convert: Convert) -> None:
    p, q = np.array(P7), np.array(Q7)
    truth = _truth(p, q)
    assert _ulps(float(_value(crossent.kl_divergence(convert(p), convert(q)))), truth) <= 1.0
    batch = _value(
        crossent.kl_divergence(convert(np.stack([p, q, p])), convert(np.stack([q, p, p])))
    )
    assert _ulps(batch[0], truth) <= 1.0
    assert batch[2] == 0.0


@pytest.mark.usefixtures("mass_path")
def test_random_near_rows_within_two_ulps(convert: Convert) -> None:
    """Seed 1 of the fused kernel's test (3 to 60 classes, ratios :math:`1 + 10^{-8} z`),
    each alone and all in one batch beside far rows (which keep their plain sums); results below
    the normal range left out."""
    rng = np.random.default_rng(1)
    rows_p, rows_q, worst = [], [], 0.0
    for _ in range(100):
        n = int(rng.integers(3, 61))
        p = rng.dirichlet(np.ones(n))
        q = p * (1.0 + 1e-8 * rng.standard_normal(n))
        q /= q.sum()
        truth = _truth(p, q)
        if truth != 0 and abs(truth) >= 2.0**-1000:  # each row alone
            worst = max(
                worst, _ulps(float(_value(crossent.kl_divergence(convert(p), convert(q)))), truth)
            )
        rows_p.append(np.pad(p, (0, 60 - n)))
        rows_q.append(np.pad(q, (0, 60 - n)))
        rows_p.append(rng.dirichlet(np.ones(60)))  # a far row between near ones
        rows_q.append(rng.dirichlet(np.ones(60)))
    p_all, q_all = np.array(rows_p), np.array(rows_q)
    got = _value(crossent.kl_divergence(convert(p_all), convert(q_all)))
    far = _value(crossent.kl_divergence(convert(p_all[1::2]), convert(q_all[1::2])))
    assert np.array_equal(got[1::2], far)  # far rows: the plain sum, as without near rows
    for i in range(0, len(rows_p), 2):
        truth = _truth(p_all[i], q_all[i])
        if truth == 0 or abs(truth) < 2.0**-1000:
            continue
        worst = max(worst, _ulps(got[i], truth))
    assert worst <= 2.0, worst
