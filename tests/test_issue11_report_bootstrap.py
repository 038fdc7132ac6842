"""Issue 11: the report's bootstrap is calibration's, through shared package-internal API.

``crossent.report`` and ``crossent.compare_reports`` used to reach into
``calibration._bootstrap``'s private helpers, and ``compare_reports`` kept its own copy of
the replicate loop and of the percentiles (``np.quantile``, which differs from
:func:`compare_log_loss`'s in the last bit and warns, then turns into NaN, on infinite
replicates).  Both now call ``mean_replicates``, ``percentile_interval`` and
``binned_calibration_interval``; these tests pin that the numbers are the public
functions', to the bit.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import crossent

REPORT = Path(crossent.__file__).parent / "_report"


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4)) * 2.5
    labels = logits.argmax(1)
    labels[::5] = rng.integers(0, 4, size=len(labels[::5]))
    return logits, labels


def _scoped(logits: np.ndarray, labels: np.ndarray, scope: str) -> tuple[np.ndarray, np.ndarray]:
    """The data of ``scope``: two classes and the labels ``== 1`` for ``'positive-class'``."""
    if scope == "positive-class":
        return logits[:, :2], (labels == 1).astype(int)
    return logits, labels


def _assert_ece_is_bootstrap_interval(
    report: crossent.Report,
    logits: np.ndarray,
    labels: np.ndarray,
    scope: str,
    **options: int,
) -> None:
    """The report's ECE and interval are :func:`crossent.bootstrap_interval`'s, to the bit."""
    expected = crossent.bootstrap_interval(
        "calibration_error", logits, labels, form="logits", scope=scope, **options
    )
    got = report.to_dict()["ece"]
    assert (got["value"], got["ci_low"], got["ci_high"]) == (
        expected.value,
        expected.low,
        expected.high,
    )


def test_issue11_report_imports_no_private_name_from_calibration() -> None:
    private = []
    for path in sorted(REPORT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("calibration"):
                private += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_issue11_compare_reports_intervals_are_compare_log_loss_to_the_bit() -> None:
    logits, labels = _data()
    variants = [logits, logits / 3, logits * 1.5]
    reports = [crossent.report(v, labels, form="logits", resamples=10) for v in variants]
    result = crossent.compare_reports(reports, resamples=200, seed=8)
    nll = [c for c in result.comparisons if c["metric"] == "nll_nats"]
    for entry, values in zip(nll, variants[1:], strict=True):
        expected = crossent.compare_log_loss(
            values, logits, labels, form_a="logits", form_b="logits", resamples=200, seed=8
        )
        assert (entry["ci_low"], entry["ci_high"]) == (expected.low, expected.high)


def test_issue11_compare_reports_brier_interval_is_the_shared_percentiles() -> None:
    """The Brier rows through the same replicates and percentiles as compare_log_loss."""
    from crossent.calibration._bootstrap import mean_replicates, percentile_interval

    logits, labels = _data(seed=3)
    reports = [
        crossent.report(v, labels, form="logits", resamples=10) for v in (logits, logits / 3)
    ]
    [entry] = [
        c
        for c in crossent.compare_reports(reports, resamples=130, seed=8).comparisons
        if c["metric"] == "brier"
    ]
    difference = reports[1].brier_rows - reports[0].brier_rows
    (drawn,) = mean_replicates([difference], resamples=130, seed=8)
    assert (entry["ci_low"], entry["ci_high"]) == percentile_interval(drawn, 0.95)


def test_issue11_compare_reports_infinite_surprisal_gives_null_bound_without_warning() -> None:
    logits, labels = _data()
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    zero = probs.copy()
    zero[3] = [1.0, 0.0, 0.0, 0.0]
    labels = labels.copy()
    labels[3] = 1  # model A gives the true label probability 0: its surprisal is +inf
    reports = [crossent.report(p, labels, resamples=10) for p in (probs, zero)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = crossent.compare_reports(reports, resamples=50, seed=1)
    nll = result.comparisons[0]
    expected = crossent.compare_log_loss(zero, probs, labels, resamples=50, seed=1)
    assert nll["difference"] == "inf"  # JSON format 2: infinities as strings
    assert expected.difference == np.inf
    assert nll["ci_low"] == expected.low
    assert nll["ci_high"] == "inf"
    assert expected.high == np.inf


def test_issue11_compare_reports_confidence_is_checked_as_in_bootstrap_interval() -> None:
    logits, labels = _data(n=60)
    reports = [crossent.report(v, labels, form="logits", resamples=5) for v in (logits, logits / 2)]
    with pytest.raises(crossent.InputError, match="`confidence` must be in"):
        crossent.compare_reports(reports, confidence=1.0)
    with pytest.raises(crossent.InputError, match="`confidence` must be in"):
        crossent.bootstrap_interval("nll", np.full((3, 2), 0.5), [0, 1, 0], confidence=1.0)


@pytest.mark.parametrize("scope", ["top-label", "class-wise", "positive-class"])
def test_issue11_report_ece_interval_is_bootstrap_interval(scope: str) -> None:
    logits, labels = _data(seed=5)
    logits, labels = _scoped(logits, labels, scope)
    ece = crossent.report(logits, labels, form="logits", scope=scope, resamples=60, seed=4)
    _assert_ece_is_bootstrap_interval(ece, logits, labels, scope, resamples=60, seed=4)


@pytest.mark.parametrize("scope", ["top-label", "positive-class"])
def test_report_rows_kept_in_place_over_many_batches(
    scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first pass writes each block's per-row values at its rows (branch report14: no
    # list of parts joined at the end); batches of 32 rows: 13 batches.  Guards the rows'
    # offsets: a mutant that stops advancing them after the first block leaves rows 64 to
    # 399 unwritten and fails this test
    from scipy import special

    from crossent._report import _compute

    monkeypatch.setattr(_compute, "BATCH_ROWS", 32)
    logits, labels = _data(seed=7)
    logits, labels = _scoped(logits, labels, scope)
    result = crossent.report(logits, labels, form="logits", scope=scope, resamples=30, seed=2)
    log_p = special.log_softmax(logits.astype(np.float64), axis=1)
    rows = np.arange(labels.shape[0])
    np.testing.assert_allclose(result.surprisal, -log_p[rows, labels], rtol=1e-12)
    onehot = np.eye(logits.shape[1])[labels]
    np.testing.assert_allclose(
        result.brier_rows, ((np.exp(log_p) - onehot) ** 2).sum(1), rtol=1e-12
    )
    _assert_ece_is_bootstrap_interval(result, logits, labels, scope, resamples=30, seed=2)
