"""Reliability diagrams: scikit-learn's calibration_curve, intervals, and the figure."""

from __future__ import annotations

import io

import numpy as np
import pytest

import crossent

from tolerances import CLOSED_FORM


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_matches_sklearn_calibration_curve(strategy: str) -> None:
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(0)
    p1 = rng.random(700) ** 2
    y = (rng.random(700) < p1).astype(int)
    prob_true, prob_pred = calibration.calibration_curve(y, p1, n_bins=8, strategy=strategy)
    diagram = crossent.reliability_diagram(
        np.stack([1 - p1, p1], axis=1),
        y,
        bins=8,
        binning=strategy,
        **{
            k: v
            for k, v in crossent.CALIBRATION_PRESETS["sklearn"].items()
            if k not in ("bins", "binning")
        },
    )
    shown = diagram.count > 0
    np.testing.assert_allclose(diagram.accuracy[shown], prob_true, rtol=CLOSED_FORM.rtol)
    np.testing.assert_allclose(diagram.confidence[shown], prob_pred, rtol=CLOSED_FORM.rtol)


def test_intervals_bracket_the_accuracy_and_empty_bins_are_nan() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 3)) * 2
    labels = rng.integers(0, 3, size=300)
    d = crossent.reliability_diagram(logits, labels, form="logits", bins=20)
    shown = d.count > 0
    assert np.all(d.accuracy_low[shown] <= d.accuracy[shown])
    assert np.all(d.accuracy[shown] <= d.accuracy_high[shown])
    assert np.all((d.accuracy_low[shown] >= 0) & (d.accuracy_high[shown] <= 1))
    assert np.all(np.isnan(d.accuracy[~shown]))
    assert (~shown).any()
    assert d.count.sum() == 300
    assert (
        d.calibration.value
        == crossent.calibration_error(logits, labels, form="logits", bins=20).value
    )


def test_jeffreys_interval_against_mpmath_beta_quantiles() -> None:
    """One bin of 10 examples with 7 hits: the 2.5% and 97.5% quantiles of Beta(7.5, 3.5)."""
    mpmath = pytest.importorskip("mpmath")

    @mpmath.workdps(30)
    def quantile(q: float) -> float:
        cdf = lambda x: mpmath.betainc(7.5, 3.5, 0, x, regularized=True) - q  # noqa: E731
        return float(mpmath.findroot(cdf, (0.01, 0.99), solver="bisect"))

    probs = np.tile([[0.3, 0.7]], (10, 1))
    labels = np.array([1] * 7 + [0] * 3)
    d = crossent.reliability_diagram(probs, labels, bins=1, scope="positive-class")
    assert d.accuracy_low[0] == pytest.approx(quantile(0.025), **CLOSED_FORM.rel_abs())
    assert d.accuracy_high[0] == pytest.approx(quantile(0.975), **CLOSED_FORM.rel_abs())


@pytest.mark.parametrize("logit_axis", [False, True])
def test_the_figure_renders_to_a_png(logit_axis: bool) -> None:
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(500, 4)) * 4
    labels = rng.integers(0, 4, size=500)
    diagram = crossent.reliability_diagram(logits, labels, form="logits")
    figure = crossent.plot_reliability_diagram(diagram, logit_axis=logit_axis)
    assert len(figure.axes) == 2
    assert figure.axes[0].get_xscale() == ("logit" if logit_axis else "linear")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_wise_has_no_single_diagram() -> None:
    with pytest.raises(crossent.InputError, match="one curve"):
        crossent.reliability_diagram([[0.5, 0.5]], [0], scope="class-wise")
