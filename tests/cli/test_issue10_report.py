"""Issue 10, items 21 and 22 and the gates: what a successful report shows and prints."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

from .conftest import make_predictions


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    assert [str(w.message) for w in caught] == []
    assert "Warning" not in err
    return code, out, err


# --------------------------------------------------------------------------- item 21


def test_issue10_item21_many_classes_show_only_the_worst(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(21)
    classes = 400
    logits = rng.normal(size=(300, classes))
    labels = rng.integers(0, classes, size=300)
    path = tmp_path / "many.npz"
    np.savez(path, logits=logits, labels=labels)
    output = tmp_path / "many.html"
    code, out, _err = _run(
        capsys, ["report", str(path), "--resamples", "5", "--output", str(output)]
    )
    assert code == 0
    note = f"the 30 classes with the highest mean NLL, of {classes}"
    assert note in output.read_text()
    assert note in out
    table = out[out.index("cross-entropy per true class") : out.index("most surprising")]
    # issue 14: the table also has accuracy and one-vs-rest ECE columns (6 separators)
    shown = [line.split("│")[1].strip() for line in table.splitlines() if line.count("│") == 6]
    surprisal = -(logits[np.arange(300), labels] - np.log(np.exp(logits).sum(axis=1)))
    per_class = {k: surprisal[labels == k].mean() for k in np.unique(labels)}
    worst = sorted(per_class, key=lambda k: -per_class[k])[:30]
    assert shown == [str(k) for k in worst]


# --------------------------------------------------------------------------- item 22


def test_issue10_item22_no_warning_for_a_huge_logit_spread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    logits, labels = make_predictions(n=50)
    logits[3, 2] = -1e200  # (s - mean)^2 overflows in the temperature fit's variance
    path = tmp_path / "huge.npz"
    np.savez(path, logits=logits, labels=labels)
    code, out, _err = _run(capsys, ["report", str(path), "--json", "--resamples", "5"])
    assert code == 0
    report = json.loads(out)
    assert math.isfinite(report["temperature"]["value"])
    assert math.isfinite(report["nll_nats"])


def test_issue10_item22_no_warning_when_every_surprisal_is_infinite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    labels = np.arange(20) % 4
    probs = np.eye(4)[(labels + 1) % 4]  # probability 0 on every label
    path = tmp_path / "wrong.npz"
    np.savez(path, probs=probs, labels=labels)
    output = tmp_path / "wrong.html"
    code, _out, _err = _run(
        capsys, ["report", str(path), "--resamples", "5", "--output", str(output)]
    )
    assert code == 0
    assert output.exists()


# ---------------------------------------------------------------------------- gates


def test_issue10_gates_at_the_exact_threshold(
    capsys: pytest.CaptureFixture[str], npz_logits: Path
) -> None:
    """A gate passes at its threshold and fails one ulp below it: no hidden slack."""
    argv = ["report", str(npz_logits), "--json", "--resamples", "20"]
    code, out, _err = _run(capsys, argv)
    assert code == 0
    report = json.loads(out)
    for flag, value in (("--max-ece", report["ece"]["value"]), ("--max-nll", report["nll_nats"])):
        below, above = np.nextafter(value, -np.inf), np.nextafter(value, np.inf)
        for threshold, expected in ((value, 0), (above, 0), (below, 1)):
            code, out, err = _run(capsys, [*argv, f"{flag}={float(threshold)!r}"])
            assert code == expected, (flag, threshold, value, err)
            assert json.loads(out)["n"] == 400
            assert ("gate failed" in err) is (expected == 1)
