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
    # the same file twice: a difference of exactly 0, the interval [0, 0]
    same = _json(
        capsys,
        [
            "report",
            str(tmp_path / "a.csv"),
            str(tmp_path / "a.csv"),
            "--logits",
            "--id-column",
            "id",
        ],
    )
    for entry in same["comparisons"]:
        assert (entry["difference"], entry["ci_low"], entry["ci_high"]) == (0.0, 0.0, 0.0)
