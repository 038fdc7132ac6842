"""Issue 14: ``crossent.report`` -- the CLI's report from Python (NumPy, torch, pandas)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import crossent


def _data(n: int = 300, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.5
    probs = np.exp(logits * 0.6)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.minimum((probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), classes - 1)
    return logits, labels.astype(np.int64)


def _cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    from crossent.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return json.loads(out)


def test_issue14_report_to_dict_equals_the_cli_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")
    logits, labels = _data()
    path = tmp_path / "preds.npz"
    np.savez(path, logits=logits, labels=labels)
    cli = _cli_json(
        capsys,
        ["report", str(path), "--json", "--resamples", "30", "--seed", "3", "--max-ece", "0.01"],
    )
    result = crossent.report(
        logits,
        labels,
        form="logits",
        resamples=30,
        seed=3,
        max_ece=0.01,
        source=cli["source"],
    )
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False)) == cli
    assert cli["gates"] == [
        {"name": "max_ece", "threshold": 0.01, "value": cli["ece"]["value"], "pass": False}
    ]
    assert not result.passed


def test_issue14_report_numbers_are_the_public_functions() -> None:
    logits, labels = _data()
    d = crossent.report(logits, labels, form="logits", resamples=20).to_dict()
    assert d["nll_nats"] == pytest.approx(
        crossent.negative_log_likelihood(logits, labels, form="logits"), rel=1e-12
    )
    assert d["ece"]["value"] == pytest.approx(
        crossent.calibration_error(logits, labels, form="logits").value, rel=1e-12
    )
    assert d["smooth_ece"]["value"] == pytest.approx(
        crossent.smooth_calibration_error(logits, labels, form="logits").value, rel=1e-9
    )
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for row in d["per_class"]:
        mine = labels == row["class"]
        assert row["count"] == int(mine.sum())
        assert row["accuracy"] == pytest.approx(np.mean(np.argmax(probs[mine], 1) == row["class"]))
    table = d["reliability_bins"]  # the non-empty bins (format 3), in order
    assert d["bins"] == 15
    assert sum(b["count"] for b in table) == len(labels)
    assert all(b["count"] > 0 for b in table)
    edges = np.linspace(0.0, 1.0, 16)
    assert [b["index"] for b in table] == sorted({b["index"] for b in table})
    assert [(b["lower"], b["upper"]) for b in table] == [
        (edges[b["index"]], edges[b["index"] + 1]) for b in table
    ]


def test_issue14_report_options_choose_the_calibration_definition() -> None:
    logits, labels = _data()
    d = crossent.report(
        logits, labels, form="logits", bins=10, binning="quantile", norm="l2", resamples=20
    ).to_dict()
    expected = crossent.calibration_error(
        logits, labels, form="logits", bins=10, binning="quantile", norm="l2"
    )
    assert d["ece"]["value"] == pytest.approx(expected.value, rel=1e-12)
    assert d["ece"]["definition"] == expected.spec.definition
    preset = crossent.report(logits, labels, form="logits", preset="netcal", resamples=20)
    assert preset.to_dict()["bins"] == 10
    assert preset.to_dict()["ece"]["preset"] == "netcal"
    with pytest.raises(crossent.InputError, match="preset"):
        crossent.report(logits, labels, form="logits", preset="nope")


def test_issue14_report_binary_one_dimensional_uses_positive_class_and_says_so() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=400)
    labels = (rng.uniform(size=400) < p**1.4).astype(np.int64)
    one = crossent.report(p, labels, resamples=20).to_dict()
    two = crossent.report(
        np.stack([1 - p, p], 1), labels, scope="positive-class", resamples=20
    ).to_dict()
    assert one["binary"] is True
    assert one["ece"]["scope"] == "positive-class"
    assert any("positive-class" in note for note in one["notes"])
    for key in ("nll_nats", "brier", "accuracy", "perplexity"):
        assert one[key] == pytest.approx(two[key], rel=1e-14)
    assert one["ece"]["value"] == pytest.approx(two["ece"]["value"], abs=1e-15)
    assert one["smooth_ece"]["value"] == pytest.approx(two["smooth_ece"]["value"], abs=1e-12)


def test_issue14_report_renormalize_records_the_correction() -> None:
    logits, labels = _data()
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    off = probs * np.linspace(0.995, 1.0, len(labels))[:, None]
    with pytest.raises(crossent.InputError, match="renormalize"):
        crossent.report(off, labels, resamples=20)
    got = crossent.report(off, labels, renormalize=True, resamples=20).to_dict()
    want = crossent.report(
        off / off.sum(1, keepdims=True), labels, resamples=20, source=got["source"]
    ).to_dict()
    assert got["renormalized"]["max_deviation"] == pytest.approx(0.005, rel=1e-9)
    assert got["nll_nats"] == pytest.approx(want["nll_nats"], rel=1e-14)
    assert got["ece"]["value"] == pytest.approx(want["ece"]["value"], abs=1e-15)


def test_issue14_report_ids_label_the_most_surprising_rows() -> None:
    logits, labels = _data()
    ids = np.array([f"img-{i:04d}" for i in range(len(labels))])
    d = crossent.report(logits, labels, form="logits", ids=ids, resamples=20).to_dict()
    plain = crossent.report(logits, labels, form="logits", resamples=20).to_dict()
    for row in d["most_surprising"]:
        assert row["id"] == f"img-{row['index']:04d}"
    assert d["nll_nats"] == plain["nll_nats"]


def test_issue14_report_from_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    logits, labels = _data()
    tensor = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    d = crossent.report(tensor, torch.tensor(labels), form="logits", resamples=20).to_dict()
    ref = crossent.report(logits.astype(np.float32), labels, form="logits", resamples=20)
    assert d["nll_nats"] == pytest.approx(ref.to_dict()["nll_nats"], rel=1e-12)
    assert d["source"].startswith("torch.Tensor")


def test_issue14_report_from_pandas_frames_names_classes() -> None:
    pd = pytest.importorskip("pandas")
    logits, labels = _data()
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    frame = pd.DataFrame(probs, columns=["cat", "dog", "bird", "fish"])
    d = crossent.report(frame, pd.Series(labels), resamples=20).to_dict()
    assert [row["name"] for row in d["per_class"]] == ["cat", "dog", "bird", "fish"]


def test_issue14_report_html_and_notebook(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    logits, labels = _data(n=200)
    result = crossent.report(logits, labels, form="logits", resamples=20)
    page = tmp_path / "r.html"
    text = result.to_html(page)
    assert page.read_text() == text
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<img") == 4  # reliability, surprisal, per-class, class-wise
    fragment = result._repr_html_()
    assert "<html" not in fragment
    assert "smooth calibration error" in fragment
    with pytest.raises(crossent.InputError, match="does not exist"):
        result.to_html(tmp_path / "missing" / "r.html")


def test_issue14_report_rejects_bad_input_clearly() -> None:
    logits, labels = _data()
    with pytest.raises(crossent.InputError, match=r"`probs`|`predictions`"):
        crossent.report(logits, labels)  # logits passed as probabilities
    with pytest.raises(crossent.InputError, match="class_names"):
        crossent.report(logits, labels, form="logits", class_names=["a"])
    with pytest.raises(crossent.InputError, match="ids"):
        crossent.report(logits, labels, form="logits", ids=np.arange(3))


def test_to_dict_is_a_deep_copy_equal_to_copy_deepcopy() -> None:
    """``Report.to_dict`` copies the payload's dicts and lists (its own JSON-tree copy,
    not ``copy.deepcopy``): equal to ``copy.deepcopy``, and changing the copy at any
    depth (per-class rows, lists, a table's ``columns``) leaves the report as it was."""
    import copy

    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(60, 7)) * 2, rng.integers(0, 7, size=60)
    result = crossent.report(
        logits, labels, form="logits", resamples=10, columns={"classes": ("a", ["b"])}
    )
    expected = copy.deepcopy(result.payload)
    copied = result.to_dict()
    assert copied == expected
    copied["per_class"][0]["name"] = "changed"
    copied["temperature"]["bounds"].append(1.0)
    copied["columns"]["classes"][1].append("c")
    copied["reliability_bins"].clear()
    assert result.payload == expected


@pytest.mark.parametrize(
    ("scope", "classes", "curve"),
    [
        ("top-label", 3, "top-label"),
        ("class-wise", 3, "top-label"),
        ("positive-class", 2, "positive-class"),
    ],
)
def test_issue13_json_names_the_scope_of_its_reliability_bins(scope, classes, curve) -> None:
    # Before: no field said whose curve `reliability_bins` is; a class-wise report's bins
    # are the top-label curve (one curve, where the class-wise error has one a class).
    logits, labels = _data(n=120, classes=classes, seed=3)
    payload = crossent.report(logits, labels, form="logits", scope=scope, resamples=2).to_dict()
    assert payload["reliability_scope"] == curve
    assert payload["ece"]["scope"] == scope
    # the oracle: the curve's confidences counted into the 15 equal-width bins by NumPy
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    confidence = probs[:, 1] if curve == "positive-class" else probs.max(axis=1)
    counts = np.bincount(np.minimum((confidence * 15).astype(int), 14), minlength=15)
    assert [(row["index"], row["count"]) for row in payload["reliability_bins"]] == [
        (b, int(counts[b])) for b in np.flatnonzero(counts)
    ]


@pytest.mark.parametrize("form", ["probs", "log_probs"])
def test_issue13_null_temperature_of_a_zero_probability_label_has_a_note(form) -> None:
    # Before: the temperature fields were null and `notes` empty, with nothing saying why
    # (recalibration_gap raises for the same rows, naming the row).
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=20)
    labels = rng.integers(0, 3, size=20)
    probs[7], labels[7] = [0.0, 0.5, 0.5], 0
    values = (
        probs
        if form == "probs"
        else np.log(probs, where=probs > 0, out=np.full_like(probs, -np.inf))
    )
    payload = crossent.report(values, labels, form=form, resamples=2).to_dict()
    temperature = payload["temperature"]
    assert temperature["value"] is None
    assert temperature["nll_nats"] is None
    assert payload["recalibration_gap_nats"] is None
    assert payload["nll_nats"] == "inf"
    with pytest.raises(crossent.InputError, match="row 7's label has probability 0") as error:
        crossent.recalibration_gap(values, labels, form=form)
    (note,) = [n for n in payload["notes"] if "temperature" in n]
    assert note == f"temperature and recalibration gap not reported: {error.value}"
