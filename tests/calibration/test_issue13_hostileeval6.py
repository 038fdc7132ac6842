"""Issue 13, sixth hostile pass over the evaluation API: numbers against oracles written
here, independent of crossent's binning code."""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _calibrated(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions whose labels are drawn from them: some classes' debiased squared
    errors fall below 0."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(classes), size=rows)
    labels = (rng.random((rows, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return probs, np.minimum(labels, classes - 1)


def _kumar_marginal_l2(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Kumar, Liang and Ma (2019)'s debiased marginal L2 error, as their reference code
    computes it: each class's debiased error ``max(sum_b w_b (gap_b^2 - var_b), 0)^(1/2)``
    (bins ``[a, b)``, the last closed; a bin of one example contributes 0), then the
    root of the mean of their squares."""
    rows, classes = probs.shape
    errors = []
    for k in range(classes):
        p, hit = probs[:, k], (labels == k).astype(float)
        index = np.minimum((p * bins).astype(int), bins - 1)  # no p on an edge here
        total = 0.0
        for b in range(bins):
            chosen = index == b
            n = int(chosen.sum())
            if n < 2:
                continue
            rate = hit[chosen].mean()
            gap2 = (rate - p[chosen].mean()) ** 2
            total += n / rows * (gap2 - rate * (1 - rate) / (n - 1))
        errors.append(max(total, 0.0) ** 0.5)
    return float(np.mean(np.square(errors)) ** 0.5)


def test_class_wise_debiased_l2_is_the_mean_of_each_class_clipped_square() -> None:
    probs, labels = _calibrated(200, 4, seed=18)
    edges = np.linspace(0, 1, 6)
    assert not np.isin(probs, edges).any()
    expected = _kumar_marginal_l2(probs, labels, bins=5)
    options = {"bins": 5, "scope": "class-wise"}
    one_shot = crossent.calibration_error(probs, labels, norm="l2", debias=True, **options)
    # some classes' debiased squares are below 0: main gave 0.0 here, the truth is 0.0347
    from crossent.calibration._binning import squared_or_values

    squares = squared_or_values(one_shot.statistics, norm="l2", debias=True)
    assert (squares < 0).any()
    assert (squares > 0).any()
    state = crossent.EvaluationState(4, **options).update(probs, labels)
    interval = crossent.bootstrap_interval(
        "calibration_error", probs, labels, norm="l2", debias=True, resamples=2, **options
    )
    report = crossent.report(probs, labels, norm="l2", debias=True, resamples=2, **options)
    payload = report.to_dict()
    per_class = [row["calibration_error"] for row in payload["per_class"]]
    for value in (
        one_shot.value,
        state.calibration(norm="l2", debias=True).value,
        interval.value,
        payload["ece"]["value"],
        float(np.mean(np.square(per_class)) ** 0.5),  # the report's own column
    ):
        assert value == pytest.approx(expected, rel=1e-12)


def _declared_bins(confidence: np.ndarray, hits: np.ndarray, edges: np.ndarray, closed: str):
    """Counts and the L1 error of the bins that ``edges`` and ``closed`` declare."""
    side = "right" if closed == "left" else "left"
    index = np.clip(np.searchsorted(edges, confidence, side=side) - 1, 0, edges.size - 2)
    count = np.bincount(index, minlength=edges.size - 1)
    gaps = np.bincount(index, hits - confidence, minlength=edges.size - 1)
    return count, float(np.abs(gaps).sum() / confidence.size)


@pytest.mark.parametrize("closed", ["left", "right"])
def test_streaming_equal_mass_bins_hold_an_edge_confidence_as_declared(closed: str) -> None:
    # 0.5 lies on the fine grid's edge at logit 0, which becomes the bins' edge
    p1 = np.repeat([0.499, 0.5, 0.501], 2)
    labels = np.array([1, 1, 1, 1, 0, 0])
    probs = np.stack([1 - p1, p1], axis=1)
    options = {"bins": 2, "binning": "quantile", "closed": closed}
    positive = crossent.EvaluationState(2, scope="positive-class", **options)
    result = positive.update(probs, labels).calibration()
    np.testing.assert_array_equal(result.edges, [0.0, 0.5, 1.0])
    count, value = _declared_bins(p1, labels.astype(float), result.edges, closed)
    np.testing.assert_array_equal(result.statistics.count, count)  # right: [4, 2], not [2, 4]
    assert result.value == pytest.approx(value, rel=1e-12)  # right: 0.5007, not 0.1673
    # the class-wise state's column of class 1 is the same curve
    columns = crossent.EvaluationState(2, scope="class-wise", **options).update(probs, labels)
    np.testing.assert_array_equal(columns.calibration().statistics.count[1], count)


def test_class_wise_report_labels_its_top_label_curve_with_that_curves_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("matplotlib")
    from crossent._report import _html

    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(300, 3)) * 3, rng.integers(0, 3, size=300)
    report = crossent.report(logits, labels, form="logits", scope="class-wise", resamples=2)
    # the drawn bins are the top-label ones (the JSON's reliability_bins): their error
    rows = [row for row in report.to_dict()["reliability_bins"] if row["count"]]
    drawn = sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / 300
    assert drawn == pytest.approx(
        crossent.calibration_error(logits, labels, form="logits").value, rel=1e-12
    )
    class_wise = report.to_dict()["ece"]["value"]
    assert abs(drawn - class_wise) > 0.1  # 0.506 against 0.357
    figure = _html.reliability_figure([("model", report)])
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    binned = next(text for text in legend if "binned" in text)
    assert f"top-label ECE {drawn:.3f}" in binned
    assert f"{class_wise:.3f}" not in binned
    assert "top-label" in figure.axes[0].get_title()
    monkeypatch.setattr(_html, "figures", lambda report: [])  # the page's text only
    assert "The bins of the top-label confidence" in _html.body_html(report)
