"""Issue 13, an evaluator's pass: predictions saved the way people save them.

Oracles: the metrics of the same predictions written without the artefact (a pandas
index, a shuffled row order) and SciPy's ``log_softmax``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax

from crossent.cli import main

pytest.importorskip("rich")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code = main([*argv, "--json", "--resamples", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _frame(n: int = 120, classes: int = 3, seed: int = 0) -> tuple[object, np.ndarray]:
    """Logits in columns "0", "1", ... and a label column, with the shuffled index that
    ``train_test_split`` leaves on a test split (not a RangeIndex)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    labels = np.argmax(logits + rng.gumbel(size=(n, classes)), axis=1)
    frame = pd.DataFrame(logits, columns=[str(k) for k in range(classes)])
    frame["label"] = labels
    frame.index = rng.permutation(10 * n)[:n]
    return frame, logits


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_pandas_index_column_is_not_a_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """``DataFrame.to_csv(path)`` writes the index as an unnamed first column, and
    ``to_parquet`` stores a non-range index as ``__index_level_0__``: read as a class of
    logits, it made a 4-class report of a 3-class model (NLL about 70 nats).  The index
    is the row ids; the metrics are those of the file written without it."""
    frame, logits = _frame()
    with_index, without = tmp_path / f"with.{suffix}", tmp_path / f"without.{suffix}"
    if suffix == "csv":
        frame.to_csv(with_index)
        frame.to_csv(without, index=False)
    else:
        frame.to_parquet(with_index)
        frame.to_parquet(without, index=False)
    got = _json(capsys, ["report", str(with_index), "--logits"])
    want = _json(capsys, ["report", str(without), "--logits"])
    assert got["classes"] == 3
    assert got["columns"]["classes"] == ["0", "1", "2"]
    labels = frame["label"].to_numpy()
    nll = -log_softmax(logits, axis=1)[np.arange(labels.size), labels].mean()
    assert got["nll_nats"] == pytest.approx(nll, rel=1e-12)
    for key in ("accuracy", "nll_nats", "brier"):
        assert got[key] == want[key], key
    # the index names the rows of the most surprising examples
    index = frame.index.to_numpy()
    assert [e["id"] for e in got["most_surprising"]] == [
        int(index[e["index"]]) for e in got["most_surprising"]
    ]


def test_a_pandas_index_column_with_an_id_column_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--id-column`` naming another column, the pandas index is neither a class
    nor the ids: it is listed as ignored."""
    frame, _ = _frame()
    frame["name"] = [f"row{k}" for k in range(len(frame))]
    frame.to_csv(tmp_path / "t.csv")
    got = _json(capsys, ["report", str(tmp_path / "t.csv"), "--logits", "--id-column", "name"])
    assert got["columns"]["classes"] == ["0", "1", "2"]
    assert got["columns"]["id"] == "name"
    assert got["columns"]["ignored"] == [""]


def test_compared_files_with_ids_in_another_order_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two models' files, each sorted by label, rows in another order within a label: the
    labels agree row by row, so only the ids show that the rows are not the same
    examples.  The paired differences were computed anyway (a wrong interval around 0);
    now the differing ids are an error naming the first row."""
    frame, _ = _frame(n=60)
    frame["id"] = np.arange(len(frame))
    ordered = frame.sort_values(["label", "id"])
    shuffled = ordered.groupby("label", group_keys=False).sample(frac=1.0, random_state=3)
    assert (shuffled["label"].to_numpy() == ordered["label"].to_numpy()).all()
    ordered.to_csv(tmp_path / "a.csv", index=False)
    shuffled.to_csv(tmp_path / "b.csv", index=False)
    argv = ["report", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--logits"]
    code = main([*argv, "--id-column", "id", "--resamples", "20"])
    _, err = capsys.readouterr()
    assert code == 2
    first = int(np.flatnonzero(shuffled["id"].to_numpy() != ordered["id"].to_numpy())[0])
    assert f"different ids (first at row {first}" in err
    # the same predictions twice (a copy: one file twice is refused): a difference of
    # exactly 0, the interval [0, 0]
    (tmp_path / "a2.csv").write_bytes((tmp_path / "a.csv").read_bytes())
    same = _json(
        capsys,
        [
            "report",
            str(tmp_path / "a.csv"),
            str(tmp_path / "a2.csv"),
            "--logits",
            "--id-column",
            "id",
        ],
    )
    for entry in same["comparisons"]:
        assert (entry["difference"], entry["ci_low"], entry["ci_high"]) == (0.0, 0.0, 0.0)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main([*argv, "--resamples", "20"])
    _, err = capsys.readouterr()
    assert code == 2, err
    return err


_NAMES = ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("kind", ["csv", "parquet", "categorical"])
def test_labels_that_name_the_class_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """scikit-learn's way: ``DataFrame(predict_proba(X), columns=clf.classes_)`` with the
    string labels ``y``.  Each label names its class column; the metrics are those of the
    integer labels.  A CSV, a Parquet string column and a pandas categorical (a Parquet
    dictionary column) were refused ("must hold integers")."""
    frame, _ = _frame()
    frame.columns = [*_NAMES, "label"]
    integers = tmp_path / "ints.csv"
    frame.to_csv(integers, index=False)
    named = frame.assign(label=np.array(_NAMES)[frame["label"].to_numpy()])
    if kind == "categorical":  # categories in another order than the columns
        named["label"] = pd.Categorical(named["label"], categories=_NAMES[::-1])
    path = tmp_path / f"named.{'csv' if kind == 'csv' else 'parquet'}"
    if kind == "csv":
        named.to_csv(path, index=False)
    else:
        named.to_parquet(path, index=False)
    got = _json(capsys, ["report", str(path), "--logits"])
    want = _json(capsys, ["report", str(integers), "--logits"])
    for key in ("n", "classes", "accuracy", "nll_nats", "brier"):
        assert got[key] == want[key], key


def test_a_label_that_names_no_class_column_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, _ = _frame()
    frame.columns = [*_NAMES, "label"]
    frame = frame.assign(label=np.array(_NAMES)[frame["label"].to_numpy()])
    frame.loc[frame.index[7], "label"] = "Virginica"
    frame.to_csv(tmp_path / "t.csv", index=False)
    err = _error(capsys, ["report", str(tmp_path / "t.csv"), "--logits"])
    assert "row 7 has 'Virginica'" in err
    assert "'setosa', 'versicolor', 'virginica'" in err


def test_boolean_labels_are_0_and_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``label = y == "malignant"``: pandas writes True/False, ``np.savez`` a bool
    array; False is class 0, True class 1 (NumPy's own conversion), so a one-column
    P(label = 1) reads as it says."""
    rng = np.random.default_rng(2)
    p = rng.uniform(size=80)
    y = rng.uniform(size=80) < p
    pd.DataFrame({"p": p, "label": y}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"p": p, "label": y.astype(int)}).to_csv(tmp_path / "i.csv", index=False)
    pd.DataFrame({"p": p, "label": y}).to_parquet(tmp_path / "b.parquet")
    np.savez(tmp_path / "b.npz", probs=p, labels=y)
    want = _json(capsys, ["report", str(tmp_path / "i.csv")])
    nll = -np.mean(np.where(y, np.log(p), np.log1p(-p)))
    assert want["nll_nats"] == pytest.approx(nll, rel=1e-12)
    for name in ("b.csv", "b.parquet", "b.npz"):
        got = _json(capsys, ["report", str(tmp_path / name)])
        for key in ("n", "classes", "accuracy", "nll_nats", "brier"):
            assert got[key] == want[key], (name, key)


def test_string_labels_of_a_one_column_table_are_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "yes"/"no" beside one column P(label = 1): which string is class 1 is not
    written anywhere, so it is an error saying what to write, never a guess."""
    pd.DataFrame({"p_yes": [0.2, 0.9, 0.6], "label": ["no", "yes", "yes"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    err = _error(capsys, ["report", str(tmp_path / "t.csv")])
    assert "'no'" in err
    assert "0 and 1" in err
