"""Hostile pass 74 over ``crossent report`` (after stops 71-73 changed its numbers):
every number the report prints checked against an independent computation.

Each test pins a defect found by running the command on hostile model outputs.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

from .conftest import make_predictions
from oracles import mean_softmax_surprisal


def test_per_class_nll_of_far_logits_is_finite_as_the_nll_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Logits of ``[1e308, -1e308]`` labelled 1 have a surprisal of 2e308 (+inf in
    float64).  The report's NLL is formed from the logits' halves (7.5e307, finite since
    stop 73), but its per-class table took the state's per-class mean: class 1 (that
    row and one of surprisal 0, mean 1e308) printed inf under the finite NLL."""
    rows = [[1e308, -1e308], [-1e308, 1e308], [0.0, 1e308], [5.0, -5.0]]
    labels = [1, 1, 0, 0]
    path = tmp_path / "far.npz"
    np.savez(path, logits=np.array(rows), labels=np.array(labels))
    output = tmp_path / "far.json"
    assert main(["report", str(path), "--resamples", "10", "--output", str(output)]) == 0
    text = capsys.readouterr().out
    payload = json.loads(output.read_text(encoding="utf-8"))
    assert payload["nll_nats"] == mean_softmax_surprisal(rows, labels)  # 7.5e307
    for k in (0, 1):
        mine = [i for i, y in enumerate(labels) if y == k]
        want = mean_softmax_surprisal([rows[i] for i in mine], [labels[i] for i in mine])
        assert payload["per_class"][k]["nll_nats"] == want  # 5e307, 1e308 (was "inf")
    line = next(s for s in text.splitlines() if s.startswith("│     1 │"))
    assert "1.0000e+308" in line, line


@pytest.fixture(scope="module")
def far_report() -> crossent.Report:
    """A report of logits +-1e308: surprisals and class NLLs up to 1e308 on the axes."""
    logits = np.array([[1e308, -1e308], [-1e308, 1e308], [0.0, 1e308], [5.0, -5.0]])
    return crossent.report(logits, np.array([1, 1, 0, 0]), form="logits", resamples=10)


def test_html_figures_of_far_logits_leak_no_warning(far_report: crossent.Report) -> None:
    """Matplotlib's ticker overflowed on the axes up to 1e308: "RuntimeWarning:
    overflow encountered in multiply" on standard error of ``--output x.html``."""
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = far_report.to_html()
    assert page.count("data:image/png;base64,") == 4


def test_surprisal_histogram_tick_labels_are_plain_text() -> None:
    """The HTML figures draw text as typed (``text.parse_math`` off, so that a class
    named ``$\\frac$`` is drawn as named), and the histogram's log axis kept its
    mathtext labels: every report's histogram read ``$\\mathdefault{10^{2}}$``."""
    pytest.importorskip("matplotlib")
    from crossent._report._html import _surprisal_figure, _text_as_typed

    logits, labels = make_predictions(n=60, classes=3, seed=4)
    with _text_as_typed():
        figure = _surprisal_figure(crossent.report(logits, labels, form="logits", resamples=10))
        figure.savefig(io.BytesIO(), format="png")  # (tick labels are made when drawn)
        axis = figure.axes[0]
        shown = [
            label.get_text()
            for minor in (False, True)
            for label in axis.get_yticklabels(minor=minor)
            if label.get_text()
        ]
    assert shown, shown
    assert not [text for text in shown if "$" in text or "\\" in text], shown
    assert "1" in shown, shown


def test_one_row_is_one_example(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A report of one row said "1 examples, 2 classes" (terminal, .txt, Markdown)."""
    path = tmp_path / "one.csv"
    path.write_text("label,a,b\n1,0.3,0.7\n", encoding="utf-8")
    assert main(["report", str(path), "--resamples", "10", "--markdown"]) == 0
    assert "\n1 example, 2 classes (probs).\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("where", "shape", "fix"),
    [
        ("npz", (30, 3), "labels.argmax(axis=1)"),
        ("npy", (30, 3), "labels.argmax(axis=1)"),
        ("npy", (30, 1), "labels.reshape(-1)"),
    ],
)
def test_two_dimensional_labels_are_told_their_fix(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    where: str,
    shape: tuple[int, int],
    fix: str,
) -> None:
    """One-hot labels (``(rows, classes)``, as Keras scripts save them) and a column of
    class ids were refused with their shape only: "must be one-dimensional; got shape
    (30, 3)"."""
    logits, labels = make_predictions(n=30, classes=3, seed=5)
    stored = np.eye(3, dtype=np.int64)[labels] if shape[1] == 3 else labels[:, None]
    if where == "npz":
        path = tmp_path / "preds.npz"
        np.savez(path, logits=logits, labels=stored)
        argv = ["report", str(path)]
    else:
        path, labels_path = tmp_path / "logits.npy", tmp_path / "labels.npy"
        np.save(path, logits)
        np.save(labels_path, stored)
        argv = ["report", str(path), "--logits", "--labels", str(labels_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"got shape {shape}: " in err, err
    assert fix in err, err


def test_comparison_of_far_logits_pairs_finite_differences(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A row ``[1e308, -1e308]`` of label 1 (surprisal 2e308, +inf in float64) was
    paired as +inf: ``crossent report A B`` printed the NLL difference -inf, interval
    [-inf, ...], beside the two finite NLLs 7.5e307 and 3.75e307 (and 0.69)."""
    rows = [[1e308, -1e308], [-1e308, 1e308], [0.0, 1e308], [5.0, -5.0]]
    labels = [1, 1, 0, 0]
    models = {"far": rows, "half": [[v / 2 for v in row] for row in rows], "flat": [[0.0, 0.0]] * 4}
    paths = []
    for name, logits in models.items():
        paths.append(tmp_path / f"{name}.npz")
        np.savez(paths[-1], logits=np.array(logits), labels=np.array(labels))
    output = tmp_path / "compare.json"
    argv = ["report", *map(str, paths), "--resamples", "50", "--output", str(output)]
    assert main(argv) == 0
    capsys.readouterr()
    comparisons = json.loads(output.read_text(encoding="utf-8"))["comparisons"]
    for name in ("half", "flat"):
        (nll,) = (
            c for c in comparisons if Path(c["model"]).stem == name and c["metric"] == "nll_nats"
        )
        want = mean_softmax_surprisal(models[name], labels) - mean_softmax_surprisal(rows, labels)
        assert nll["difference"] == pytest.approx(want, rel=1e-15)  # -3.75e307, -7.5e307
        assert isinstance(nll["ci_low"], float), nll
        assert nll["ci_low"] <= nll["difference"] <= nll["ci_high"] < 1.0, nll


def test_held_out_nll_of_a_sharp_row_is_finite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--temperature-from``: PATH's NLL at the held-out temperature was taken from
    the probabilities, where a label 10^4 nats below its row's top logit rounds to
    probability 0: the table printed NLL inf at T where the NLL is finite."""
    val_logits, val_labels = make_predictions(n=120, classes=3, seed=6)
    logits, labels = make_predictions(n=60, classes=3, seed=7)
    logits[0], labels[0] = [0.0, -1e4, -2e4], 1
    val, test = tmp_path / "val.npz", tmp_path / "test.npz"
    np.savez(val, logits=val_logits, labels=val_labels)
    np.savez(test, logits=logits, labels=labels)
    output = tmp_path / "held.json"
    argv = ["report", str(test), "--temperature-from", str(val), "--output", str(output)]
    assert main([*argv, "--resamples", "10"]) == 0
    capsys.readouterr()
    held = json.loads(output.read_text(encoding="utf-8"))["held_out_temperature"]
    z = logits / held["value"]
    z -= z.max(axis=1, keepdims=True)
    want = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(60), labels])
    assert held["nll_nats"] == pytest.approx(want, rel=1e-13)  # was "inf"
