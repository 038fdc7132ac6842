"""Issue 11: the report's headline rows and definition come from one place, behind Report.

The HTML page and ``crossent report`` (terminal and Markdown) both show
``Report.metric_rows()`` and ``Report.calibration_definition()``.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


@pytest.fixture(scope="module")
def report() -> crossent.Report:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) * 2
    labels = rng.integers(0, 3, size=200)
    return crossent.report(logits, labels, form="logits", resamples=20)


def test_issue11_metric_rows_are_the_payloads_numbers(report: crossent.Report) -> None:
    payload = report.to_dict()
    rows = dict(report.metric_rows())
    assert rows["accuracy"] == f"{payload['accuracy']:.4f}"
    assert rows["NLL (nats)"] == f"{payload['nll_nats']:.4f}"
    assert rows["perplexity"] == f"{payload['perplexity']:.3f}"
    assert len(rows) == 8


def test_issue11_definition_and_columns_statement(report: crossent.Report) -> None:
    definition = report.calibration_definition()
    assert definition.startswith(report.to_dict()["ece"]["definition"])
    assert definition.endswith("20 resamples")
    assert report.columns_statement() is None  # arrays, not a table's columns


def test_issue11_markdown_shows_the_same_rows(report: crossent.Report) -> None:
    from crossent.cli._render import render_markdown

    text = render_markdown(report)
    for label, value in report.metric_rows():
        assert f"| {label} | {value} |" in text
    assert f"Calibration error: {report.calibration_definition()}." in text
