"""Issue 13: integer labels beside class columns named by other integers.

A table whose class columns are named ``1,2,3`` (scikit-learn's ``classes_`` for the
labels 1..3), ``2,5,7`` or ``-1,1``, with an integer label column, was read with the
labels as column positions: a label 3 was refused as out of range, but a test set
without the last class (labels 1 and 2 only) was read shifted, exit 0 and wrong numbers.
Such labels could be the columns' names or their positions, so they are refused (exit 2,
one line) unless ``--integer-labels names`` or ``--integer-labels positions`` says which;
columns named ``0..K-1`` in order, string class names and string labels read as before.
The oracle is scikit-learn's ``log_loss``, which matches labels to ``labels=`` by value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossent.cli import main

from .conftest import make_predictions, softmax

pytest.importorskip("rich")
metrics = pytest.importorskip("sklearn.metrics")

_FAST = ["--resamples", "5", "--top", "3"]


def _table(path: Path, names: list[str], labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A CSV of probabilities with the class columns ``names`` and the label column
    ``labels`` (written as they are); returns the probabilities."""
    logits, _ = make_predictions(n=labels.size, classes=len(names), seed=seed)
    probs = softmax(logits)
    rows = [
        f"{y}," + ",".join(repr(float(v)) for v in row)
        for y, row in zip(labels.tolist(), probs, strict=True)
    ]
    path.write_text("\n".join([",".join(["label", *names]), *rows]) + "\n", encoding="utf-8")
    return probs


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err
    return err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main([*argv, "--json", *_FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


_SHIFTED = [
    (["1", "2", "3"], [1, 2]),  # scikit-learn's classes_ 1..3, a test set without 3
    (["2", "5", "7"], [5, 7]),
    (["-1", "1"], [-1, 1]),  # scikit-learn's classes_ of a {-1, 1} binary problem
    (["1", "0", "2"], [0, 1, 2]),  # 0..K-1, out of order
]


@pytest.mark.parametrize(("names", "values"), _SHIFTED)
def test_integer_labels_beside_other_integer_names_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, names: list[str], values: list[int]
) -> None:
    labels = np.resize(np.array(values), 40)
    path = tmp_path / "preds.csv"
    _table(path, names, labels)
    err = _refused(capsys, ["report", str(path), *_FAST])
    for text in ("--integer-labels names", "--integer-labels positions", str(path), "'label'"):
        assert text in err, err


@pytest.mark.parametrize(("names", "values"), _SHIFTED)
def test_integer_labels_names_match_the_column_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, names: list[str], values: list[int]
) -> None:
    labels = np.resize(np.array(values), 40)
    path = tmp_path / "preds.csv"
    probs = _table(path, names, labels)
    report = _json(capsys, ["report", str(path), "--integer-labels", "names"])
    classes = [int(name) for name in names]
    order = np.argsort(classes)  # log_loss takes the columns in sorted label order
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs[:, order], labels=sorted(classes)), rel=1e-12
    )
    assert report["accuracy"] == metrics.accuracy_score(
        labels, np.array(classes)[probs.argmax(axis=1)]
    )


def test_integer_labels_positions_read_the_labels_as_column_positions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = np.resize(np.array([0, 1, 2]), 40)
    path = tmp_path / "preds.csv"
    probs = _table(path, ["1", "2", "3"], labels)
    report = _json(capsys, ["report", str(path), "--integer-labels", "positions"])
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-12
    )


def test_integer_labels_names_refuse_a_label_that_names_no_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = np.resize(np.array([5, 7, 2]), 40)
    labels[17] = 3
    path = tmp_path / "preds.csv"
    _table(path, ["2", "5", "7"], labels)
    err = _refused(capsys, ["report", str(path), *_FAST, "--integer-labels", "names"])
    for text in ("row 17 has 3,", "'2', '5', '7'"):
        assert text in err, err


def test_integer_labels_names_need_class_columns_named_by_integers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "preds.csv"
    _table(path, ["cat", "dog", "emu"], np.resize(np.array([0, 1, 2]), 40))
    err = _refused(capsys, ["report", str(path), *_FAST, "--integer-labels", "names"])
    for text in ("--integer-labels names", "'cat'"):
        assert text in err, err


def test_comparison_refuses_and_reads_integer_names_as_one_file_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = np.resize(np.array([1, 2]), 40)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    probs_a = _table(a, ["1", "2", "3"], labels, seed=1)
    probs_b = _table(b, ["1", "2", "3"], labels, seed=2)
    err = _refused(capsys, ["report", str(a), str(b), *_FAST])
    assert "--integer-labels" in err, err
    payload = _json(capsys, ["report", str(a), str(b), "--integer-labels", "names"])
    for model, probs in zip(payload["models"], (probs_a, probs_b), strict=True):
        assert model["nll_nats"] == pytest.approx(
            metrics.log_loss(labels, probs, labels=[1, 2, 3]), rel=1e-12
        )


def test_help_states_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--integer-labels {names,positions}" in out
    assert "0..K-1" in out


@pytest.mark.parametrize("table", [False, True])
def test_integer_labels_apply_to_tables_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: bool
) -> None:
    argv = ["report", "--integer-labels", "names"]
    if table:  # an .npz is not a table: its columns have no names
        np.savez(tmp_path / "p.npz", probs=np.full((3, 2), 0.5), labels=np.array([0, 1, 1]))
        argv.append(str(tmp_path / "p.npz"))
    err = _refused(capsys, argv)
    assert "--integer-labels" in err, err
    assert ("apply to tables" if table else "needs a PATH") in err, err


# --- guards: what reads as before (these pass on main too) -------------------------------


@pytest.mark.parametrize(
    "flag", [[], ["--integer-labels", "names"], ["--integer-labels", "positions"]]
)
def test_guard_columns_named_0_to_k_minus_1_read_as_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: list[str]
) -> None:
    labels = np.resize(np.array([0, 1]), 40)  # the last class absent
    path = tmp_path / "preds.csv"
    probs = _table(path, ["0", "1", "2"], labels)
    report = _json(capsys, ["report", str(path), *flag])
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-12
    )


def test_guard_string_names_and_labels_read_as_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    names = ["cat", "dog", "emu"]
    path = tmp_path / "preds.csv"
    probs = _table(path, names, np.resize(np.array(["dog", "emu"]), 40))
    report = _json(capsys, ["report", str(path)])
    labels = np.resize(np.array([1, 2]), 40)
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-12
    )
    path2 = tmp_path / "positions.csv"
    probs = _table(path2, names, labels)
    report = _json(capsys, ["report", str(path2)])
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-12
    )


def test_guard_one_class_column_is_p_of_label_1_whatever_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels = np.resize(np.array([0, 1, 1]), 40)
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, size=40)
    path = tmp_path / "binary.csv"
    rows = [f"{y},{v!r}" for y, v in zip(labels.tolist(), p.tolist(), strict=True)]
    path.write_text("\n".join(["label,1", *rows]) + "\n", encoding="utf-8")
    report = _json(capsys, ["report", str(path)])
    assert report["nll_nats"] == pytest.approx(metrics.log_loss(labels, p), rel=1e-12)


# --- the Python API: a DataFrame's columns name the classes as a table's do --------------


@pytest.mark.parametrize("columns", [[1, 2, 3], ["1", "2", "3"], [2, 5, 7], [-1, 1]])
def test_report_refuses_a_frame_of_columns_named_by_other_integers(columns: list[Any]) -> None:
    pd = pytest.importorskip("pandas")
    import crossent

    labels = np.resize(np.array([int(c) for c in columns][:2]), 40)
    logits, _ = make_predictions(n=40, classes=len(columns))
    frame = pd.DataFrame(softmax(logits), columns=columns)
    with pytest.raises(crossent.InputError, match="get_indexer") as caught:
        crossent.report(frame, pd.Series(labels), resamples=5)
    assert "0..K-1" in str(caught.value)


def test_guard_report_reads_a_frame_of_columns_0_to_k_minus_1_as_before() -> None:
    pd = pytest.importorskip("pandas")
    import crossent

    labels = np.resize(np.array([0, 1]), 40)
    logits, _ = make_predictions(n=40, classes=3)
    probs = softmax(logits)
    got = crossent.report(pd.DataFrame(probs), labels, resamples=5).to_dict()["nll_nats"]
    assert got == pytest.approx(metrics.log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-12)
