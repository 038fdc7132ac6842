"""Issue 14: the smooth calibration error (Blasiok & Nakkiran 2023) against relplot, a
direct float64 oracle, and values known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

import crossent


def _reflected_kernel(t: np.ndarray, s: np.ndarray, sigma: float) -> np.ndarray:
    """K(t, s) = sum_m phi(t - s - 2m) + phi(t + s - 2m), images |m| <= 3, float64."""
    diff = t[:, None] - s[None, :]
    total = t[:, None] + s[None, :]
    out = np.zeros_like(diff)
    for m in range(-3, 4):
        out += np.exp(-0.5 * ((diff - 2 * m) / sigma) ** 2)
        out += np.exp(-0.5 * ((total - 2 * m) / sigma) ** 2)
    return out / (sigma * math.sqrt(2 * math.pi))


def oracle_smece_sigma(f: np.ndarray, y: np.ndarray, sigma: float, points: int = 1001) -> float:
    """integral over [0, 1] of |mean_i K(t, f_i) (y_i - f_i)|, Simpson's rule, directly."""
    from scipy.integrate import simpson

    t = np.linspace(0.0, 1.0, points)
    smoothed = _reflected_kernel(t, f, sigma) @ (y - f) / f.shape[0]
    return float(simpson(np.abs(smoothed), x=t))


def oracle_smece(f: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The fixed point sigma* = smECE_sigma* by a bracketing root finder."""
    sigma = optimize.brentq(lambda s: oracle_smece_sigma(f, y, s) - s, 1e-3, 1.0, xtol=1e-10)
    return oracle_smece_sigma(f, y, sigma), sigma


def _binary(n: int, seed: int, distort: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Confidences f ~ Beta(2, 2) and labels y ~ Bernoulli(f ** distort)."""
    rng = np.random.default_rng(seed)
    f = rng.beta(2.0, 2.0, size=n)
    y = (rng.uniform(size=n) < f**distort).astype(np.int64)
    return f, y


@pytest.mark.parametrize(("distort", "seed"), [(1.0, 0), (2.0, 1), (0.5, 2)])
def test_issue14_smooth_ece_matches_direct_float64_oracle(distort: float, seed: int) -> None:
    f, y = _binary(200, seed, distort)
    expected, sigma = oracle_smece(f, y)
    result = crossent.smooth_calibration_error(f, y, scope="positive-class")
    assert result.value == pytest.approx(expected, abs=2e-6)
    assert result.bandwidth == pytest.approx(sigma, abs=2e-6)
    assert result.value == pytest.approx(result.bandwidth, abs=1e-6)  # the fixed point
    fixed = crossent.smooth_calibration_error(f, y, scope="positive-class", bandwidth=0.05)
    assert fixed.value == pytest.approx(oracle_smece_sigma(f, y, 0.05), abs=2e-6)


@pytest.mark.parametrize(("distort", "seed"), [(1.0, 3), (2.0, 4), (0.5, 5), (3.0, 6)])
def test_issue14_smooth_ece_matches_relplot(distort: float, seed: int) -> None:
    relplot = pytest.importorskip("relplot")
    f, y = _binary(2000, seed, distort)
    expected = relplot.smECE(f, y)
    result = crossent.smooth_calibration_error(f, y, scope="positive-class")
    assert result.value == pytest.approx(expected, abs=2e-3)
    at_sigma = relplot.smECE_sigma(f, y, 0.1)
    fixed = crossent.smooth_calibration_error(f, y, scope="positive-class", bandwidth=0.1)
    assert fixed.value == pytest.approx(at_sigma, abs=2e-3)


def test_issue14_smooth_ece_matches_relplot_top_label() -> None:
    relplot = pytest.importorskip("relplot")
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3000, 5)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in probs**1.5 / (probs**1.5).sum(1)[:, None]])
    confidence, correct = relplot.multiclass_logits_to_confidences(probs, labels, probs=True)
    expected = relplot.smECE(confidence, correct)
    result = crossent.smooth_calibration_error(probs, labels)
    assert result.value == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize(("p", "hit_rate"), [(0.5, 1.0), (0.2, 0.7), (0.9, 0.4)])
def test_issue14_smooth_ece_constant_prediction_is_its_gap(p: float, hit_rate: float) -> None:
    """All mass at one confidence: smECE_sigma = |hit rate - p| for every sigma."""
    n = 1000
    labels = (np.arange(n) < round(hit_rate * n)).astype(np.int64)
    result = crossent.smooth_calibration_error(np.full(n, p), labels, scope="positive-class")
    assert result.value == pytest.approx(abs(hit_rate - p), abs=1e-9)
    assert result.bandwidth == pytest.approx(abs(hit_rate - p), abs=1e-6)


def test_issue14_smooth_ece_certain_and_wrong_is_one() -> None:
    result = crossent.smooth_calibration_error(
        np.zeros(10), np.ones(10, dtype=int), scope="positive-class"
    )
    assert result.value == pytest.approx(1.0, abs=1e-9)


def test_issue14_smooth_ece_tends_to_zero_for_calibrated_data() -> None:
    values = []
    for n in (1_000, 10_000, 100_000):
        f, y = _binary(n, 10 + n, 1.0)
        values.append(crossent.smooth_calibration_error(f, y, scope="positive-class").value)
    assert values[0] > values[1] > values[2]
    assert values[2] < 0.02
    miscalibrated = _binary(100_000, 99, 2.0)
    assert crossent.smooth_calibration_error(*miscalibrated, scope="positive-class").value > 0.05


def test_issue14_smooth_ece_binary_views_agree() -> None:
    """A 1-D P(y = 1), its two-column matrix and its log-odds give the same value."""
    f, y = _binary(500, 11, 2.0)
    one = crossent.smooth_calibration_error(f, y, scope="positive-class")
    two = crossent.smooth_calibration_error(np.stack([1 - f, f], 1), y, scope="positive-class")
    logits = np.log(f) - np.log1p(-f)
    odds = crossent.smooth_calibration_error(logits, y, scope="positive-class", form="logits")
    assert one.value == pytest.approx(two.value, abs=1e-12)
    assert one.value == pytest.approx(odds.value, abs=1e-9)


def test_issue14_smooth_ece_curve_for_plotting() -> None:
    f, y = _binary(5000, 12, 1.0)
    result = crossent.smooth_calibration_error(f, y, scope="positive-class")
    assert result.grid.shape == result.accuracy.shape == result.density.shape
    assert result.grid[0] == 0.0
    assert result.grid[-1] == 1.0
    assert np.trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-3)
    middle = (result.grid > 0.2) & (result.grid < 0.8)
    assert np.max(np.abs(result.accuracy[middle] - result.grid[middle])) < 0.1  # near y = x
    assert "smooth ECE" in result.definition
    assert float(result) == result.value


def test_issue14_smooth_ece_rejects_bad_options() -> None:
    f, y = _binary(50, 13)
    with pytest.raises(crossent.InputError, match="scope"):
        crossent.smooth_calibration_error(f, y, scope="class-wise")
    with pytest.raises(crossent.InputError, match="bandwidth"):
        crossent.smooth_calibration_error(f, y, scope="positive-class", bandwidth=0.0)
    with pytest.raises(crossent.InputError, match="labels"):
        crossent.smooth_calibration_error(f, y + 1, scope="positive-class")
    with pytest.raises(crossent.InputError, match=r"\[0, 1\]"):
        crossent.smooth_calibration_error(f + 1, y, scope="positive-class")


@pytest.mark.parametrize("end", [0.0, 1.0])
def test_issue14_smooth_ece_mass_at_an_end_counts_once(end: float) -> None:
    """Half the data certain and wrong at an end (residual +-1), half calibrated at 0.5:
    smECE_sigma = 0.5 for every sigma, which needs the kernel's reflection of a point at
    the end onto itself (a grid that counted it half would give 1/3)."""

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        f = np.concatenate([np.full(n, end), np.full(n, 0.5)])
        y = np.concatenate([np.full(n, 1 - end), np.arange(n) % 2]).astype(np.int64)
        return f, y

    for sigma in (0.05, 0.3):
        result = crossent.smooth_calibration_error(
            *data(1000), scope="positive-class", bandwidth=sigma
        )
        assert result.value == pytest.approx(0.5, abs=1e-9)
        assert oracle_smece_sigma(*data(50), sigma) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("sigma", [1.0 / 1024, 0.0137, 0.25, 0.2500001, 0.61, 1.0])
def test_periodic_gaussian_mirrored_is_the_direct_sum_bit_for_bit(sigma: float) -> None:
    """The kernel formed at the ``GRID + 1`` distinct distances and mirrored (stop 60: a
    3.5x cheaper bandwidth search) is the direct sum over all ``2 GRID`` points, bit for
    bit; a mirror off by one point fails."""
    from crossent.calibration import _smooth

    grid = _smooth.GRID
    k = np.arange(2 * grid)
    distance = np.minimum(k, 2 * grid - k) * (1.0 / grid)
    images = math.ceil(4.0 * sigma) + 2
    shifts = 2.0 * np.arange(-images, images + 1)
    u = (distance[:, None] + shifts[None, :]) / sigma
    direct = np.exp(-0.5 * u * u).sum(axis=1) / (sigma * math.sqrt(2.0 * math.pi))
    got = _smooth._periodic_gaussian(sigma)
    assert got.shape == direct.shape
    assert np.array_equal(got.view(np.int64), direct.view(np.int64))
