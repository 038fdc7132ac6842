"""Hostile pass 71 over ``crossent report``: what the validation file of
``--temperature-from`` says about itself is read, not overridden by PATH.

An ``.npz`` (``.safetensors``, a ``.pt`` dict) names the form of its predictions by the
array's name.  The validation file was read in PATH's form whatever its own array was
called: a VAL of ``probs`` beside a PATH of ``logits`` fitted the temperature of
``softmax(p / T)`` (T = 0.33 where the probabilities' own fit is 1.09), exit 0, and a VAL
of ``logits`` beside a PATH of ``probs`` was refused with "``logits`` must be
non-negative (probabilities) ... name the array logits", which it was.  A 1-D binary
VAL (P(label = 1)) beside a two-column PATH was said to have "1 classes (0)".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

from .conftest import make_predictions, softmax


def _saved(tmp_path: Path, name: str, n: int, seed: int, classes: int = 3) -> dict[str, Path]:
    logits, labels = make_predictions(n=n, classes=classes, seed=seed)
    probs = softmax(logits)
    paths = {}
    for form, values in (("logits", logits), ("probs", probs), ("log_probs", np.log(probs))):
        path = tmp_path / f"{name}_{form}.npz"
        np.savez(path, **{form: values}, labels=labels)
        paths[form] = path
    return paths


@pytest.mark.parametrize(
    ("path_form", "val_form"),
    [("logits", "probs"), ("probs", "logits"), ("probs", "log_probs"), ("log_probs", "probs")],
)
def test_validation_file_of_another_form_is_refused_not_misread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path_form: str, val_form: str
) -> None:
    test = _saved(tmp_path, "test", 60, seed=2)[path_form]
    val = _saved(tmp_path, "val", 80, seed=1)[val_form]
    output = tmp_path / "out.json"
    argv = ["report", str(test), "--temperature-from", str(val), "--output", str(output)]
    assert main([*argv, "--resamples", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"crossent: error: --temperature-from {val}: ")
    assert f"'{val_form}'" in err, err
    assert f"'{path_form}'" in err, err
    assert not output.exists()


def test_validation_table_beside_named_logits_is_refused_not_guessed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A VAL that does not name its form (a table: probabilities unless --logits, which
    PATH's .npz refuses) beside an .npz of logits was read as logits, whatever it held."""
    test = _saved(tmp_path, "test", 60, seed=2)["logits"]
    logits, labels = make_predictions(n=40, classes=3, seed=1)
    val = tmp_path / "val.csv"
    rows = [",".join(["label", "a", "b", "c"])]
    rows += [
        ",".join([str(y), *(repr(float(v)) for v in softmax(z[None])[0])])
        for z, y in zip(logits, labels, strict=True)
    ]
    val.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["report", str(test), "--temperature-from", str(val), "--resamples", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "does not name its form" in err, err


def test_validation_file_of_the_same_form_still_fits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A guard (passes on main): forms that agree, in every form."""
    test = _saved(tmp_path, "test", 60, seed=2)
    val = _saved(tmp_path, "val", 80, seed=1)
    temperatures = []
    for form in ("logits", "probs"):
        argv = ["report", str(test[form]), "--temperature-from", str(val[form]), "--json"]
        assert main([*argv, "--resamples", "20"]) == 0
        held = __import__("json").loads(capsys.readouterr().out)["held_out_temperature"]
        temperatures.append(held["value"])
    assert temperatures[0] == pytest.approx(temperatures[1], rel=1e-6)


@pytest.mark.parametrize("val_binary", [True, False])
def test_binary_layouts_that_differ_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, val_binary: bool
) -> None:
    logits, labels = make_predictions(n=50, classes=2, seed=3)
    probs = softmax(logits)
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    np.savez(one, probs=probs[:, 1], labels=labels)
    np.savez(two, probs=probs, labels=labels)
    test, val = (two, one) if val_binary else (one, two)
    assert main(["report", str(test), "--temperature-from", str(val)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "1 classes" not in err, err
    assert "P(label = 1)" in err, err


def test_no_most_surprising_table_without_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--top 0`` (``top=0``) printed the heading "most surprising examples (check these
    labels first)" over an empty table in the terminal, the ``.txt`` and the HTML page
    (the Markdown summary already left it out); ``--top 1`` keeps it."""
    import io

    import crossent
    from crossent._report import _html
    from crossent.cli import _console
    from crossent.cli._render import render_terminal

    monkeypatch.setattr(_html, "figures", lambda report: [])  # the page's tables only: cheap
    logits, labels = make_predictions(n=30, classes=3, seed=5)
    for top in (0, 1):
        report = crossent.report(logits, labels, form="logits", resamples=10, top=top)
        buffer = io.StringIO()
        render_terminal(report, _console(file=buffer, width=100))
        assert ("most surprising examples" in buffer.getvalue()) == (top > 0)
        assert ("Most surprising examples" in report.to_html()) == (top > 0)


def test_temperature_at_a_bound_names_that_bound_s_causes() -> None:
    """The terminal gave every fit at a bound the same causes, "labels nearly independent
    of the predictions, or separable data": an under-confident model (logits scaled by
    0.01, T at 0.05) is neither; the upper bound's line names the independence only."""
    import io

    import crossent
    from crossent.cli import _console
    from crossent.cli._render import render_terminal

    logits, labels = make_predictions(n=200, classes=3, seed=6)
    rng = np.random.default_rng(6)
    lines = []
    for scaled, shuffled in ((0.01 * logits, labels), (logits, rng.permutation(labels))):
        report = crossent.report(scaled, shuffled, form="logits", resamples=10, top=0)
        assert report.to_dict()["temperature"]["at_bound"]
        buffer = io.StringIO()
        render_terminal(report, _console(file=buffer, width=200))
        (line,) = [x for x in buffer.getvalue().splitlines() if "at a bound of" in x]
        lines.append(line)
    assert "less confident than the labels warrant" in lines[0]
    assert "labels nearly independent" not in lines[0]
    assert "labels nearly independent of the predictions)" in lines[1]
    assert "separable" not in lines[1]
