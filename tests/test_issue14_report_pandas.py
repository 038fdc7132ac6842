"""Issue 14: ``crossent.report`` from pandas -- a DataFrame of class columns (its column
names name the classes) and a label Series give the NumPy result; a non-numeric column
is an error naming it; misaligned row indexes are refused, never paired by position."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError

pd = pytest.importorskip("pandas")

_RESAMPLES = 40
_CLASSES = ["cat", "dog", "eel"]


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(_CLASSES))) * 2
    labels = np.argmax(logits * 0.6 + rng.gumbel(size=logits.shape), axis=1)
    return logits, labels


def _without_source(report: crossent.Report) -> dict:
    payload = report.to_dict()
    payload.pop("source")
    for row in payload["per_class"]:
        row.pop("name")
    return payload


def test_issue14_report_pandas_frame_equals_numpy() -> None:
    logits, labels = _data()
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(probs, columns=_CLASSES)
    series = pd.Series(labels, name="label")
    got = crossent.report(frame, series, resamples=_RESAMPLES)
    want = crossent.report(probs, labels, resamples=_RESAMPLES)
    assert _without_source(got) == _without_source(want)
    assert [row["name"] for row in got.to_dict()["per_class"]] == _CLASSES
    assert got.to_dict()["source"].startswith("pandas.DataFrame")


def test_issue14_report_pandas_logits_frame_selected_from_a_wider_table() -> None:
    logits, labels = _data(seed=1)
    table = pd.DataFrame(logits, columns=_CLASSES).assign(label=labels, id=np.arange(300) + 1000)
    got = crossent.report(table[_CLASSES], table["label"], form="logits", resamples=_RESAMPLES)
    want = crossent.report(logits, labels, form="logits", resamples=_RESAMPLES)
    assert _without_source(got) == _without_source(want)


def test_issue14_report_pandas_float32_and_nullable_columns() -> None:
    logits, labels = _data(seed=2)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    want = crossent.report(probs, labels, resamples=_RESAMPLES)
    nullable = crossent.report(
        pd.DataFrame(probs, columns=_CLASSES).astype("Float64"),
        pd.Series(labels, dtype="Int64"),
        resamples=_RESAMPLES,
    )
    assert _without_source(nullable) == _without_source(want)
    single = crossent.report(
        pd.DataFrame(probs.astype(np.float32), columns=_CLASSES), labels, resamples=_RESAMPLES
    )
    assert single.to_dict()["nll_nats"] == pytest.approx(
        crossent.negative_log_likelihood(probs.astype(np.float32), labels), rel=1e-6
    )


def test_issue14_report_pandas_binary_series_is_p_of_class_1() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, size=300)
    labels = (rng.uniform(size=300) < p).astype(np.int64)
    got = crossent.report(pd.Series(p, name="p_spam"), pd.Series(labels), resamples=_RESAMPLES)
    want = crossent.report(p, labels, resamples=_RESAMPLES)
    assert _without_source(got) == _without_source(want)
    assert got.to_dict()["binary"] is True
    one_column = crossent.report(pd.DataFrame({"spam": p}), labels, resamples=_RESAMPLES)
    assert one_column.to_dict()["nll_nats"] == want.to_dict()["nll_nats"]
    assert one_column.to_dict()["ece"]["scope"] == "positive-class"


def test_issue14_report_pandas_non_numeric_column_is_an_error_naming_it() -> None:
    logits, labels = _data()
    frame = pd.DataFrame(logits, columns=_CLASSES).assign(note="fine")
    with pytest.raises(InputError, match="'note'"):
        crossent.report(frame, labels, form="logits")
    dated = pd.DataFrame(logits, columns=_CLASSES).assign(when=pd.Timestamp("2024-01-01"))
    with pytest.raises(InputError, match="'when'"):
        crossent.report(dated, labels, form="logits")


def test_issue14_report_pandas_missing_value_is_refused() -> None:
    logits, labels = _data()
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(probs, columns=_CLASSES).astype("Float64")
    frame.iloc[5, 1] = pd.NA
    with pytest.raises(InputError, match="5"):
        crossent.report(frame, labels)


def test_issue14_report_pandas_misaligned_index_is_refused() -> None:
    logits, labels = _data()
    frame = pd.DataFrame(logits, columns=_CLASSES)
    shuffled = pd.Series(labels).sample(frac=1.0, random_state=0)
    with pytest.raises(InputError, match="index"):
        crossent.report(frame, shuffled, form="logits")
    # the same rows in the same order (a filtered frame and its labels) are fine
    kept = frame.index[::2]
    result = crossent.report(
        frame.loc[kept], pd.Series(labels).loc[kept], form="logits", resamples=_RESAMPLES
    )
    assert result.to_dict()["n"] == 150
