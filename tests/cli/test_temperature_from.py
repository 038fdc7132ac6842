"""``crossent report PATH --temperature-from VAL``: the temperature fitted on held-out
validation rows (Guo et al. 2017) and PATH's metrics at it, in every rendering, equal to
``TemperatureScaling(guard=False).fit(val).transform(test)`` then the metric functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import crossent
from crossent.cli import main

from .conftest import make_predictions

_RESAMPLES = "40"


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, Path, tuple[np.ndarray, ...]]:
    val_logits, val_labels = make_predictions(n=300, classes=4, seed=1)
    test_logits, test_labels = make_predictions(n=200, classes=4, seed=2)
    val, test = tmp_path / "val.npz", tmp_path / "test.npz"
    np.savez(val, logits=val_logits, labels=val_labels)
    np.savez(test, logits=test_logits, labels=test_labels)
    return val, test, (val_logits, val_labels, test_logits, test_labels)


def _held_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)["held_out_temperature"]


def test_numbers_equal_transform_then_the_metric_functions_and_scipy(
    capsys: pytest.CaptureFixture[str], split: tuple[Path, Path, tuple[np.ndarray, ...]]
) -> None:
    val, test, (val_logits, val_labels, test_logits, test_labels) = split
    held = _held_out(
        capsys,
        ["report", str(test), "--temperature-from", str(val), "--json", "--resamples", _RESAMPLES],
    )
    scaler = crossent.TemperatureScaling(guard=False).fit(val_logits, val_labels)
    scaled = scaler.transform(test_logits)
    interval = crossent.bootstrap_interval(
        "calibration_error", scaled, test_labels, resamples=int(_RESAMPLES)
    )
    assert held["value"] == scaler.temperature_
    assert held["nll_nats"] == crossent.negative_log_likelihood(scaled, test_labels)
    assert held["brier"] == crossent.brier_score(scaled, test_labels)
    assert held["ece"]["value"] == crossent.calibration_error(scaled, test_labels).value
    assert (held["ece"]["ci_low"], held["ece"]["ci_high"]) == (interval.low, interval.high)
    assert (held["n"], held["source"], held["at_bound"]) == (300, str(val), False)

    def nll(t: float) -> float:  # independent oracle: SciPy's bounded minimiser
        z = val_logits / t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(300), val_labels]))

    optimum = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-10})
    assert abs(held["value"] - optimum.x) < 1e-7
    assert held["fit_nll_nats"] == pytest.approx(nll(held["value"]), rel=1e-12)


def test_every_rendering_shows_the_held_out_metrics(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    split: tuple[Path, Path, tuple[np.ndarray, ...]],
) -> None:
    from crossent._report import _html

    monkeypatch.setattr(_html, "figures", lambda report: [])  # the page's tables only: cheap
    val, test, _ = split
    base = ["report", str(test), "--temperature-from", str(val), "--resamples", _RESAMPLES]
    page = tmp_path / "r.html"
    assert main([*base, "--markdown", "--output", str(page)]) == 0
    markdown = capsys.readouterr().out
    assert "Held-out temperature scaling, at the temperature T = " in markdown
    assert "| metric | uncalibrated | at held-out T |" in markdown
    html = page.read_text(encoding="utf-8")
    assert "<h2>Held-out temperature scaling</h2>" in html
    assert "<th>at held-out T</th>" in html
    assert main([*base, "--output", str(tmp_path / "r.txt")]) == 0
    capsys.readouterr()
    text = (tmp_path / "r.txt").read_text(encoding="utf-8")
    assert "fitted on" in text
    assert "300 validation rows" in text
    assert "at held-out T" in text
    # without the option: the field is there, null
    assert main(["report", str(test), "--json", "--resamples", _RESAMPLES]) == 0
    assert json.loads(capsys.readouterr().out)["held_out_temperature"] is None


def test_python_api_takes_the_validation_pair() -> None:
    val_logits, val_labels = make_predictions(n=120, classes=3, seed=3)
    test_logits, test_labels = make_predictions(n=80, classes=3, seed=4)
    val_probs = np.exp(val_logits) / np.exp(val_logits).sum(axis=1, keepdims=True)
    test_probs = np.exp(test_logits) / np.exp(test_logits).sum(axis=1, keepdims=True)
    result = crossent.report(
        test_probs, test_labels, resamples=20, temperature_from=(val_probs, val_labels)
    )
    held = result.to_dict()["held_out_temperature"]
    scaler = crossent.TemperatureScaling(guard=False).fit(val_probs, val_labels, form="probs")
    scaled = scaler.transform(test_probs, form="probs")
    assert held["value"] == scaler.temperature_
    assert held["nll_nats"] == crossent.negative_log_likelihood(scaled, test_labels)
    assert result.held_out_rows() is not None
    with pytest.raises(crossent.InputError, match="2 classes; the report's predictions have 3"):
        crossent.report(test_probs, test_labels, temperature_from=(val_probs[:, :2], val_labels))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("classes", "its 3 classes (0, 1, 2) are not PATH's 4"),
        ("missing", "--temperature-from: "),
        ("same", "the validation file is PATH itself"),
        ("npy", "VAL must hold its own labels"),
        ("two", "takes one PATH (2 given)"),
        ("none", "--temperature-from needs a PATH"),
        ("zero", "other.npz: row 0's label has probability 0"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    split: tuple[Path, Path, tuple[np.ndarray, ...]],
    case: str,
    message: str,
) -> None:
    val, test, (val_logits, val_labels, *_) = split
    other = tmp_path / "other.npz"
    if case == "classes":
        np.savez(other, logits=val_logits[:, :3], labels=val_labels % 3)
    elif case == "npy":
        other = tmp_path / "other.npy"
        np.save(other, val_logits)
    elif case == "zero":  # a validation label of probability 0: no temperature fits
        probs = np.full((10, 4), 0.25)
        probs[0] = [0.0, 0.5, 0.25, 0.25]
        np.savez(other, probs=probs, labels=np.zeros(10, dtype=np.int64))
    val_arg = {"missing": tmp_path / "nope.npz", "same": test}.get(case, other)
    paths = {"two": [str(test), str(val)], "none": []}.get(case, [str(test)])
    output = tmp_path / "out.json"
    argv = ["report", *paths, "--temperature-from", str(val_arg), "--output", str(output)]
    if case == "zero":  # the report's own file in probabilities too (same form flags)
        np.savez(test, probs=np.full((5, 4), 0.25), labels=np.zeros(5, dtype=np.int64))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("crossent: error: ")
    assert message in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("paths", "vals", "message"),
    [
        # one VAL per PATH, in order (what a user may try for a comparison)
        (["test", "val"], ["val", "test"], "--temperature-from takes one PATH (2 given)"),
        (["test", "val"], ["val"], "crossent report {test} --temperature-from VAL_A; "),
        # given twice for one PATH: main fitted on the last file, silently
        (["test"], ["val", "val"], "--temperature-from given 2 times"),
    ],
)
def test_several_vals_or_paths_say_what_to_run(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    split: tuple[Path, Path, tuple[np.ndarray, ...]],
    paths: list[str],
    vals: list[str],
    message: str,
) -> None:
    """Stop 63: one model's validation file fits that model's temperature only, so the
    option stays one PATH's, and the refusal names the commands to run instead; given
    twice, it is refused (main kept the last VAL without a word)."""
    val, test, _ = split
    files = {"test": str(test), "val": str(val)}
    output = tmp_path / "out.json"
    argv = ["report", *(files[p] for p in paths), "--output", str(output)]
    for v in vals:
        argv += ["--temperature-from", files[v]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message.format(**files) in err
    assert not output.exists()
