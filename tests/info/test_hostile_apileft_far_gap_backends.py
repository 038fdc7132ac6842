"""Hostile pass: far gaps of Q's logits on every backend, not only NumPy.

``cross_entropy([0.6, 0.4], [1.7e308, -1.7e308], q_form='logits')`` on PyTorch float64
tensors and array-api-strict float64 arrays was ``inf`` on main (afc1e53), and
array-api-strict warned of overflow; NumPy's far-gap pass gave the true 1.36e308
(0.4 times the gap 3.4e308). Both tests fail on main for the non-NumPy backends.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _oracle(p: list[float], x: list[float], *, kl: bool = False) -> float:
    """H(P, softmax(x)) (or D(P||Q)) at 60 digits, each float taken exactly."""
    with mpmath.workdps(60):
        ps = [mpmath.mpf(v) for v in p]
        xs = [mpmath.mpf(v) for v in x]
        top = max(xs)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in xs))
        total = mpmath.fsum(a * (lse - v) for a, v in zip(ps, xs, strict=True) if a > 0)
        if kl:
            total += mpmath.fsum(a * mpmath.log(a) for a in ps if a > 0)
        return float(total)


_P, _X = [0.6, 0.4], [1.7e308, -1.7e308]


@pytest.mark.parametrize("kl", [False, True])
def test_far_gap_rows_agree_with_numpy_on_every_backend(backend: Any, kl: bool) -> None:
    """Main: ``inf`` on torch and array-api-strict (the latter with an overflow warning)."""
    measure = crossent.kl_divergence if kl else crossent.cross_entropy
    p = backend.asarray(np.array([_P, [1.0, 0.0]]))
    x = backend.asarray(np.array([_X, [0.0, -np.inf]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = backend.to_numpy(measure(p, x, q_form="logits"))
    assert got[0] == pytest.approx(_oracle(_P, _X, kl=kl), rel=4e-16)
    assert got[1] == 0.0  # a finite row is kept as it was
    numpy = measure(np.array(_P), np.array(_X), q_form="logits")
    assert got[0] == numpy


def test_far_gap_rows_of_float32_tensors_and_decomposition() -> None:
    """Float32 tensors: the float64 value rounded once (NumPy's float32 gives 2.4e38);
    the decomposition's and the perplexity's rows as cross_entropy's (main: inf)."""
    torch = pytest.importorskip("torch")
    p = torch.tensor(_P, dtype=torch.float32)
    x = torch.tensor([3e38, -3e38], dtype=torch.float32)
    got = crossent.cross_entropy(p, x, q_form="logits")
    numpy = crossent.cross_entropy(p.numpy(), x.numpy(), q_form="logits")
    assert got.dtype == torch.float32
    assert float(got) == float(numpy) == pytest.approx(_oracle(_P, [3e38, -3e38]), rel=6e-8)
    p64, x64 = torch.tensor(_P, dtype=torch.float64), torch.tensor(_X, dtype=torch.float64)
    parts = crossent.cross_entropy_decomposition(p64, x64, q_form="logits")
    assert float(parts.cross_entropy) == pytest.approx(_oracle(_P, _X), rel=4e-16)
    assert float(parts.kl_divergence) == pytest.approx(_oracle(_P, _X, kl=True), rel=4e-16)
    small = torch.tensor([0.5, -700.0], dtype=torch.float64)  # a finite cross-entropy
    assert float(crossent.perplexity(p64, small, q_form="logits")) == pytest.approx(
        float(np.exp(_oracle(_P, [0.5, -700.0]))), rel=1e-13
    )
