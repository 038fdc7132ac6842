"""Hostile pass 75 over the command line: what stop 74's pass found and left (the report's
own state of far logits, a surprisal past float64 in the most-surprising table, repeated
``--id-column`` ids, two messages), then ``crossent report A B``, ``explain`` and ``demo``.

Each test pins a defect found by running the command on hostile model outputs; numbers
are checked against mpmath or float64 NumPy.
"""

from __future__ import annotations

import decimal
import json
import os
from pathlib import Path

import mpmath
import numpy as np
import pytest

import crossent
from crossent.cli import main

from oracles import mean_softmax_surprisal

_FAR_ROWS = [[1e308, -1e308], [-1e308, 1e308], [0.0, 1e308], [5.0, -5.0]]
_FAR_LABELS = [1, 1, 0, 0]


def test_report_states_of_far_logits_have_finite_nll_and_per_class_nll() -> None:
    """The report's states (``add_summarized_block``, one summary a block for both
    states) added a row ``[1e308, -1e308]`` of label 1 (surprisal 2e308, past float64)
    to their scaled sums as +inf: the state's NLL and class 1's NLL were +inf where they
    are 7.5e307 and 1e308, and where ``EvaluationState.update`` of the same rows gives
    them finite (the report printed its own numbers; the state's were wrong)."""
    from crossent._report._compute import _first_pass

    rows, labels = np.array(_FAR_ROWS), np.array(_FAR_LABELS)
    states = (
        crossent.EvaluationState(2, keep=4),
        crossent.EvaluationState(2, scope="class-wise", keep=0),
    )
    _first_pass(rows, labels, "logits", states, "top-label", lambda _: None)
    want = [
        mean_softmax_surprisal([_FAR_ROWS[i] for i in (2, 3)], [0, 0]),  # 5e307
        mean_softmax_surprisal([_FAR_ROWS[i] for i in (0, 1)], [1, 1]),  # 1e308 (was inf)
    ]
    for state in states:
        summary = state.compute()
        assert summary.nll == mean_softmax_surprisal(_FAR_ROWS, _FAR_LABELS)  # 7.5e307 (was inf)
        assert summary.per_class_nll.tolist() == want


def test_most_surprising_row_past_float64_prints_from_its_half(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The most-surprising table printed ``inf`` for the row ``[1e308, -1e308]`` of
    label 1, whose surprisal is 2e308 (past float64, finite): under an NLL of 7.5e307
    and a next row of 1.0000e+308.  It prints 2.0000e+308 from the half the JSON keeps
    (``surprisal_half_nats``; ``surprisal_nats`` stays ``"inf"``, JSON's float64)."""
    path = tmp_path / "far.npz"
    np.savez(path, logits=np.array(_FAR_ROWS), labels=np.array(_FAR_LABELS))
    output = tmp_path / "far.json"
    assert main(["report", str(path), "--resamples", "10", "--output", str(output)]) == 0
    text = capsys.readouterr().out
    first = json.loads(output.read_text(encoding="utf-8"))["most_surprising"][0]
    with mpmath.workprec(200):  # the row's surprisal, halved: 1e308 exactly in float64
        half = float((mpmath.mpf(1e308) - mpmath.mpf(-1e308)) / 2)
    assert first == {
        "index": 0,
        "surprisal_nats": "inf",
        "surprisal_half_nats": half,
        "label": 1,
        "predicted": 0,
    }
    assert crossent.Report.format_surprisal(first) == "2.0000e+308"
    line = next(s for s in text.splitlines() if s.startswith("│   0 │"))
    assert line.split("│")[4].strip() == "2.0000e+308", line  # was "inf"


def test_most_surprising_rows_past_float64_are_ranked(tmp_path: Path) -> None:
    """Rows whose surprisals pass float64 were all +inf to the ranking, so ranked by row:
    2e308 above 3e308 (and a probability 0, surprisal +inf indeed, below both).  They
    are ranked by their halves, after the infinite one."""
    rows = [[1e308, -1e308], [1.5e308, -1.5e308], [0.0, 1e308], [5.0, -5.0], [-np.inf, 0.0]]
    path = tmp_path / "far.npz"
    np.savez(path, logits=np.array(rows), labels=np.array([1, 1, 0, 0, 0]))
    output = tmp_path / "far.json"
    assert main(["report", str(path), "--resamples", "10", "--json", "--output", str(output)]) == 0
    shown = json.loads(output.read_text(encoding="utf-8"))["most_surprising"]
    assert [row["index"] for row in shown] == [4, 1, 0, 2, 3]  # was [0, 1, 4, 2, 3]
    assert [crossent.Report.format_surprisal(row) for row in shown[:3]] == [
        "inf",
        "3.0000e+308",
        "2.0000e+308",
    ]


def _csv(path: Path, ids: list[str], header: str = "id") -> Path:
    lines = [f"{header},a,b,label"]
    lines += [f"{i},0.{k + 2},0.{8 - k},{k % 2}" for k, i in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_repeated_id_column_ids_are_refused_naming_the_id_and_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--id-column`` of a column naming a row twice was accepted without a word: the
    report's rows, and a comparison's check that two files' rows are the same
    examples, then went by a name that is not one row's.  Refused, naming the id and
    both rows (the second as early as can be)."""
    text_ids = _csv(tmp_path / "t.csv", ["u", "x", "y", "x", "u"])
    assert main(["report", str(text_ids), "--id-column", "id"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"crossent: error: {text_ids}: the 'id' column (--id-column) has the id 'x' in "
        "rows 1 and 3; --id-column needs a different id in every row\n"
    )
    numbers = _csv(tmp_path / "n.csv", ["7", "3", "3", "7"])
    assert main(["report", str(numbers), "--id-column", "id", "--json"]) == 2
    captured = capsys.readouterr()
    assert "has the id 3 in rows 1 and 2;" in captured.err
    assert captured.out == ""


def test_repeated_pandas_index_is_noted_and_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A pandas index saved by ``to_csv`` (unnamed first column) is the ids without
    ``--id-column``; ``pd.concat`` without ``ignore_index`` repeats it.  The report goes
    on (nobody named it an id), with one line on standard error."""
    path = _csv(tmp_path / "i.csv", ["0", "1", "0", "1"], header="")
    assert main(["report", str(path), "--json", "--resamples", "10"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"crossent: note: {path}: the pandas index has the id 0 in rows 0 and 2; the ids "
        "are shown as written\n"
    )
    assert {row["id"] for row in json.loads(captured.out)["most_surprising"]} == {0, 1}


def test_a_table_of_predictions_is_plural(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A table's prediction columns (and a ``.npy``) are "the predictions (logits)":
    the library's "`logits` contains NaN" read "the predictions (logits) contains NaN",
    and a ``.npy`` of shape (3, 0) "the predictions (probs) has no classes"."""
    path = tmp_path / "nan.csv"
    path.write_text("a,b,label\n1,2,0\nnan,1,1\n", encoding="utf-8")
    assert main(["report", str(path), "--logits"]) == 2
    err = capsys.readouterr().err
    assert "the predictions (logits) contain NaN in row 1, column 'a'" in err, err
    empty, labels = tmp_path / "empty.npy", tmp_path / "labels.npy"
    np.save(empty, np.zeros((3, 0)))
    np.save(labels, np.zeros(3, dtype=np.int64))
    assert main(["report", str(empty), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.endswith(": the predictions (probs) have no classes (shape (3, 0))\n"), err


def test_a_dangling_link_is_said_to_be_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A symbolic link whose target is gone was "no such file", of a name ``ls``
    lists: it is a dangling link, and the message says where it points."""
    link = tmp_path / "preds.npz"
    os.symlink("gone/preds.npz", link)
    assert main(["report", str(link)]) == 2
    err = capsys.readouterr().err
    target = tmp_path / "gone" / "preds.npz"
    assert err == (
        f"crossent: error: {link}: a dangling link: it points to gone/preds.npz, that is "
        f"{target}, which does not exist\n"
    )
    assert main(["report", str(tmp_path / "none.npz")]) == 2
    assert capsys.readouterr().err.endswith("none.npz: no such file\n")


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--label", "1"], "2.000000e+308 nats"),
        (["--label", "1", "--bits"], "2.885390e+308 bits"),  # 2e308 / ln 2
        (["--label", "1", "--smoothing", "0.1"], "1.900000e+308 nats"),  # 0.95 * 2e308
        (["--label", "1", "--temperature", "0.5"], "4.000000e+308 nats"),
    ],
)
def test_explain_loss_past_float64_is_printed(
    capsys: pytest.CaptureFixture[str], argv: list[str], want: str
) -> None:
    """``explain --logits 1e308,-1e308 --label 1`` printed ``loss = ... = inf nats``:
    the loss, ``logsumexp(z) - z_1``, is 2e308, past float64 but finite (the report
    prints such a surprisal since stop 73).  Checked against mpmath at 200 bits."""
    assert main(["explain", "--logits", "1e308,-1e308", *argv]) == 0
    out = " ".join(capsys.readouterr().out.split())
    text, unit = want.split()
    with mpmath.workprec(200):
        z = [mpmath.mpf(1e308), mpmath.mpf(-1e308)]
        t = mpmath.mpf(argv[-1]) if "--temperature" in argv else 1
        eps = mpmath.mpf(argv[-1]) if "--smoothing" in argv else 0
        y = [eps / 2, 1 - eps + eps / 2]
        top = max(z) / t
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v / t - top) for v in z))
        loss = lse - mpmath.fsum(w * v / t for w, v in zip(y, z, strict=True))
        if unit == "bits":
            loss /= mpmath.log(2)
        assert f"{decimal.Decimal(mpmath.nstr(loss, 40)):.6e}" == text
    assert f"p = {want} (computed as" in out, out  # was "inf"
