"""The NumPy losses' soft-cap chain rule (``losses._terms.chain_rule``) against mpmath.

:math:`\\frac{d}{dz} s\\tanh(z/s) = \\operatorname{sech}^2(z/s)`, formed as
:math:`4u/(1 + u)^2`, :math:`u = e^{-2|z|/s}` since f5c2d07: :math:`1 - \\tanh^2` had
cancelled where :math:`|z| \\gg s` (1978 ulps at :math:`|z|/s = 5`, every digit past 19
in float64). Each float64 gradient entry of the soft-target and label losses, with a cap
and a temperature, within a few ulps of the 40-digit truth at :math:`|z|/s` from 0 to
30, both signs; the cancelling form fails it (checked on f5c2d07's parent).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

mpmath = pytest.importorskip("mpmath")

CAP, DIGITS = 1.5, 40
SCALED = [0.0, 0.5, 5.0, 10.0, 20.0, 30.0]
ULPS = 8.0


def _logits() -> np.ndarray:
    row = np.array([sign * x * CAP for x in SCALED for sign in (1.0, -1.0)])
    return np.stack([row, row[::-1], np.roll(row, 3)])


def _targets(z: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(5)
    t = rng.random(z.shape)
    return t / t.sum(axis=1, keepdims=True)


def _exact_gradient(
    z: np.ndarray, t: np.ndarray, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """``sum``-reduced gradient of :math:`-\\sum_c t_c \\log\\operatorname{softmax}(
    s\\tanh(z/s)/T)_c`: :math:`(p_i \\sum_c t_c - t_i)\\operatorname{sech}^2(z_i/s)/T`,
    and the size of its two terms, :math:`(p_i \\sum_c t_c + t_i)
    \\operatorname{sech}^2(z_i/s)/T` (their difference cancels a few ulps of it in any
    float64 softmax; the slope is what is checked: it scales both)."""
    out, size = np.empty_like(z), np.empty_like(z)
    with mpmath.workdps(DIGITS):
        s, temp = mpmath.mpf(CAP), mpmath.mpf(temperature)
        for i, (row, targets) in enumerate(zip(z, t, strict=True)):
            capped = [s * mpmath.tanh(mpmath.mpf(float(v)) / s) / temp for v in row]
            top = max(capped)
            weights = [mpmath.exp(c - top) for c in capped]
            total = mpmath.fsum(weights)
            mass = mpmath.fsum(mpmath.mpf(float(x)) for x in targets)
            for j, v in enumerate(row):
                slope = mpmath.sech(mpmath.mpf(float(v)) / s) ** 2
                p = weights[j] / total
                target = mpmath.mpf(float(targets[j]))
                out[i, j] = float((p * mass - target) * slope / temp)
                size[i, j] = float((p * mass + target) * slope / temp)
    return out, size


def _ulps(got: np.ndarray, exact: tuple[np.ndarray, np.ndarray]) -> float:
    """The largest error in ulps of the terms' size (0 entries: exactly 0 wanted)."""
    value, size = exact
    return float(np.max(np.abs(got - value) / np.spacing(size)))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_soft_target_gradient_with_a_cap_is_exact(temperature: float) -> None:
    z = _logits()
    t = _targets(z)
    got = crossent.softmax_cross_entropy_with_targets_grad(
        z, t, soft_cap=CAP, temperature=temperature, reduction="sum"
    )
    assert _ulps(got, _exact_gradient(z, t, temperature)) <= ULPS


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_label_gradient_with_a_cap_is_exact(temperature: float) -> None:
    z = _logits()
    labels = np.array([0, 5, 11])
    onehot = np.eye(z.shape[1])[labels]
    got = crossent.softmax_cross_entropy_grad(
        z, labels, soft_cap=CAP, temperature=temperature, reduction="sum"
    )
    assert _ulps(got, _exact_gradient(z, onehot, temperature)) <= ULPS
