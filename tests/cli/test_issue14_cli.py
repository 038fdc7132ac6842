"""Issue 14: the report's command line -- comparison, calibration options, renormalisation,
Markdown, and the JSON additions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

pytest.importorskip("rich")


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code, out, err = _run(capsys, [*argv, "--json"])
    assert code == 0, err
    return json.loads(out)


def _models(tmp_path: Path) -> tuple[list[Path], list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 4)) * 2.5
    labels = logits.argmax(1)
    labels[::5] = rng.integers(0, 4, size=80)
    variants = [logits, logits / 3, logits * 1.5]
    paths = []
    for index, values in enumerate(variants):
        path = tmp_path / f"model{index}.npz"
        np.savez(path, logits=values, labels=labels)
        paths.append(path)
    return paths, variants, labels


def test_issue14_comparison_differences_equal_compare_log_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, variants, labels = _models(tmp_path)
    d = _json(capsys, ["report", *map(str, paths), "--resamples", "200", "--seed", "4"])
    assert [m["name"] for m in d["models"]] == [str(p) for p in paths]
    assert {"format", "crossent_version", "models", "comparisons"} <= set(d)
    nll = [c for c in d["comparisons"] if c["metric"] == "nll_nats"]
    assert [c["model"] for c in nll] == [str(paths[1]), str(paths[2])]
    for entry, values in zip(nll, variants[1:], strict=True):
        expected = crossent.compare_log_loss(
            values, variants[0], labels, form_a="logits", form_b="logits", resamples=200, seed=4
        )
        assert entry["difference"] == pytest.approx(expected.difference, rel=1e-12)
        assert entry["ci_low"] == pytest.approx(expected.low, rel=1e-12)
        assert entry["ci_high"] == pytest.approx(expected.high, rel=1e-12)
        assert entry["baseline"] == str(paths[0])
    brier = [c for c in d["comparisons"] if c["metric"] == "brier"]
    for entry, values in zip(brier, variants[1:], strict=True):
        expected = crossent.brier_score(values, labels, form="logits") - crossent.brier_score(
            variants[0], labels, form="logits"
        )
        assert entry["difference"] == pytest.approx(expected, rel=1e-10)
        assert entry["ci_low"] <= entry["difference"] <= entry["ci_high"]
    # each model's entry is its own single-model report
    single = _json(capsys, ["report", str(paths[1]), "--resamples", "200", "--seed", "4"])
    assert {k: v for k, v in d["models"][1].items() if k != "name"} == single


def test_issue14_comparison_terminal_markdown_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    paths, _, _ = _models(tmp_path)
    page = tmp_path / "cmp.html"
    code, out, err = _run(
        capsys, ["report", str(paths[0]), str(paths[1]), "--resamples", "30", "--output", str(page)]
    )
    assert code == 0, err
    assert "paired differences against" in out
    text = page.read_text()
    assert "Reliability diagrams" in text
    assert text.count("<img") >= 1 + 2 * 3
    code, out, _ = _run(capsys, ["report", *map(str, paths[:2]), "--resamples", "30", "--markdown"])
    assert code == 0
    assert out.startswith("### crossent report: 2 models")
    assert "| model | metric |" in out


def test_issue14_comparison_needs_the_same_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, variants, labels = _models(tmp_path)
    other = labels.copy()
    other[7] = (other[7] + 1) % 4
    np.savez(paths[1], logits=variants[1], labels=other)
    code, _, err = _run(capsys, ["report", str(paths[0]), str(paths[1]), "--resamples", "20"])
    assert code == 2
    assert "different labels (first at row 7" in err
    np.savez(paths[1], logits=variants[1][:300], labels=labels[:300])
    code, _, err = _run(capsys, ["report", str(paths[0]), str(paths[1]), "--resamples", "20"])
    assert code == 2
    assert "has 300 rows" in err


def test_issue14_renormalize_equals_explicit_renormalisation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5), size=300)
    labels = rng.integers(0, 5, size=300)
    off = (probs * np.linspace(0.997, 1.0, 300)[:, None]).astype(np.float32)
    raw, fixed = tmp_path / "raw.npz", tmp_path / "fixed.npz"
    np.savez(raw, probs=off, labels=labels)
    explicit = off.astype(np.float64) / off.astype(np.float64).sum(1, keepdims=True)
    np.savez(fixed, probs=explicit.astype(np.float32), labels=labels)
    code, _, err = _run(capsys, ["report", str(raw), "--resamples", "20"])
    assert code == 2
    assert "--renormalize" in err
    got = _json(capsys, ["report", str(raw), "--resamples", "20", "--renormalize"])
    want = _json(capsys, ["report", str(fixed), "--resamples", "20"])
    assert got["renormalized"]["max_deviation"] == pytest.approx(
        np.max(np.abs(off.astype(np.float64).sum(1) - 1)), rel=1e-9
    )
    for key in ("nll_nats", "brier", "accuracy"):
        assert got[key] == pytest.approx(want[key], rel=1e-6)
    assert got["ece"]["value"] == pytest.approx(want["ece"]["value"], abs=1e-6)
    assert any("renormalised" in note for note in got["notes"])


@pytest.mark.parametrize(
    ("flags", "options"),
    [
        (["--bins", "10", "--binning", "quantile"], {"bins": 10, "binning": "quantile"}),
        (["--norm", "l2", "--debias"], {"norm": "l2", "debias": True}),
        (["--scope", "class-wise", "--norm", "max"], {"scope": "class-wise", "norm": "max"}),
        (["--preset", "netcal"], crossent.CALIBRATION_PRESETS["netcal"]),
        (
            ["--preset", "netcal", "--bins", "7"],
            {**crossent.CALIBRATION_PRESETS["netcal"], "bins": 7},
        ),
    ],
)
def test_issue14_calibration_options_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], options: dict
) -> None:
    paths, variants, labels = _models(tmp_path)
    d = _json(capsys, ["report", str(paths[0]), "--resamples", "20", *flags])
    expected = crossent.calibration_error(variants[0], labels, form="logits", **options)
    assert d["ece"]["value"] == pytest.approx(expected.value, rel=1e-12)
    assert d["ece"]["definition"] == expected.spec.definition


def test_issue14_json_per_bin_table_per_class_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, variants, labels = _models(tmp_path)
    code, out, err = _run(
        capsys,
        ["report", str(paths[0]), "--json", "--resamples", "20", "--max-ece", "0.01"],
    )
    assert code == 1
    assert "gate failed: calibration error" in err
    d = json.loads(out)
    assert d["gates"][0]["name"] == "max_ece"
    assert d["gates"][0]["pass"] is False
    diagram = crossent.reliability_diagram(variants[0], labels, form="logits")
    counts = [(b["index"], b["count"]) for b in d["reliability_bins"]]
    assert counts == [(b, int(diagram.count[b])) for b in np.flatnonzero(diagram.count)]
    for row, k in zip(d["per_class"], range(4), strict=True):
        assert set(row) >= {"accuracy", "calibration_error", "count", "nll_nats"}
        assert row["class"] == k
    assert d["smooth_ece"]["value"] == pytest.approx(
        crossent.smooth_calibration_error(variants[0], labels, form="logits").value, rel=1e-9
    )


def test_issue14_markdown_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths, _, _ = _models(tmp_path)
    code, out, _ = _run(
        capsys, ["report", str(paths[0]), "--markdown", "--resamples", "20", "--max-nll", "10"]
    )
    assert code == 0
    assert out.startswith(f"### crossent report: `{paths[0]}`")
    assert "| metric | value |" in out
    assert "smooth calibration error" in out
    assert "- gate `max_nll <= 10`: **pass**" in out
