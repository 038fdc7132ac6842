"""`crossent report`: numbers against the library and scikit-learn, formats, outputs, gates."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

from .conftest import softmax
from tolerances import CLOSED_FORM, ROUNDING, SERIALIZED

GOLDEN = Path(__file__).parent / "golden" / "builtin_report.json"


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def _assert_close(actual: object, expected: object, path: str = "") -> None:
    """Equal structure and types; floats within ``SERIALIZED`` (measured: exact)."""
    assert type(actual) is type(expected), path
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path  # type: ignore[arg-type]
        for key in expected:
            _assert_close(actual[key], expected[key], f"{path}.{key}")  # type: ignore[index]
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path  # type: ignore[arg-type]
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):  # type: ignore[call-overload]
            _assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == SERIALIZED.approx(expected), path
    else:
        assert actual == expected, path


def test_builtin_example_matches_the_golden_json(capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, ["report", "--json"])
    golden = json.loads(GOLDEN.read_text())
    report["crossent_version"] = golden["crossent_version"]
    _assert_close(report, golden)
    assert report["builtin_example"] is True
    assert report["format"] == 3


def test_builtin_example_terminal_output_says_what_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    for text in (
        "This is the built-in example",
        "NLL (bits)",
        "calibration error (95% bootstrap interval)",
        "15 equal-width bins",
        "after temperature scaling",
        "cross-entropy per true class",
        "most surprising examples",
    ):
        assert text in out, text


def test_numbers_equal_the_library_and_scikit_learn(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, predictions: tuple[np.ndarray, np.ndarray]
) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    logits, labels = predictions
    report = _json(capsys, ["report", str(npz_logits), "--json", "--resamples", "200"])
    probs = softmax(logits)
    assert report["n"] == 400
    assert report["classes"] == 4
    assert report["accuracy"] == metrics.accuracy_score(labels, probs.argmax(axis=1))
    assert report["nll_nats"] == pytest.approx(
        metrics.log_loss(labels, probs), **CLOSED_FORM.rel_abs()
    )
    assert report["nll_bits"] == pytest.approx(
        report["nll_nats"] / math.log(2), **CLOSED_FORM.rel_abs()
    )
    assert report["perplexity"] == pytest.approx(
        math.exp(report["nll_nats"]), **CLOSED_FORM.rel_abs()
    )
    assert report["brier"] == pytest.approx(
        metrics.brier_score_loss(labels, probs, labels=range(4)), **CLOSED_FORM.rel_abs()
    )
    ece = crossent.bootstrap_interval(
        "calibration_error", logits, labels, form="logits", resamples=200
    )
    assert (report["ece"]["value"], report["ece"]["ci_low"], report["ece"]["ci_high"]) == (
        pytest.approx(ece.value, **CLOSED_FORM.rel_abs()),
        pytest.approx(ece.low, **CLOSED_FORM.rel_abs()),
        pytest.approx(ece.high, **CLOSED_FORM.rel_abs()),
    )
    scaler = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    assert report["temperature"]["value"] == pytest.approx(
        scaler.temperature_, **ROUNDING.rel_abs()
    )
    assert report["temperature"]["value"] == pytest.approx(1 / 0.6, rel=0.2)  # the planted one
    assert report["temperature"]["nll_nats"] == pytest.approx(
        scaler.nll_after_, **ROUNDING.rel_abs()
    )
    gap = crossent.recalibration_gap(logits, labels, folds=2)
    assert report["recalibration_gap_nats"] == pytest.approx(gap, **ROUNDING.rel_abs())
    surprisal = -np.log(probs[np.arange(400), labels])
    top = np.argsort(-surprisal)[:10]
    assert [r["index"] for r in report["most_surprising"]] == top.tolist()
    assert [r["surprisal_nats"] for r in report["most_surprising"]] == pytest.approx(
        surprisal[top], **CLOSED_FORM.rel_abs()
    )
    for row in report["per_class"]:
        k = row["class"]
        assert row["count"] == int(np.sum(labels == k))
        assert row["nll_nats"] == pytest.approx(
            surprisal[labels == k].mean(), **CLOSED_FORM.rel_abs()
        )


@pytest.mark.parametrize("kind", ["probs", "log_probs", "compressed", "csv", "parquet"])
def test_every_format_and_form_gives_the_same_report(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    predictions: tuple[np.ndarray, np.ndarray],
    kind: str,
) -> None:
    logits, labels = predictions
    reference = _json(capsys, ["report", str(npz_logits), "--json", "--resamples", "50"])
    flags: list[str] = []
    if kind == "probs":
        path = tmp_path / "p.npz"
        np.savez(path, probs=softmax(logits), labels=labels)
    elif kind == "log_probs":
        path = tmp_path / "lp.npz"
        np.savez(path, log_probs=np.log(softmax(logits)), labels=labels)
    elif kind == "compressed":
        path = tmp_path / "c.npz"
        np.savez_compressed(path, logits=logits, labels=labels)
    else:
        pyarrow = pytest.importorskip("pyarrow")
        table = pyarrow.table({"label": labels, **{f"class_{k}": logits[:, k] for k in range(4)}})
        if kind == "csv":
            import pyarrow.csv

            path = tmp_path / "preds.csv"
            pyarrow.csv.write_csv(table, path)
        else:
            import pyarrow.parquet

            path = tmp_path / "preds.parquet"
            pyarrow.parquet.write_table(table, path)
        flags = ["--logits"]
    report = _json(capsys, ["report", str(path), "--json", "--resamples", "50", *flags])
    for key in ("n", "accuracy", "nll_nats", "brier", "perplexity", "recalibration_gap_nats"):
        # probabilities and log-probabilities are the logits' softmax rounded once
        assert report[key] == pytest.approx(reference[key], **CLOSED_FORM.rel_abs()), key
    assert report["ece"]["value"] == pytest.approx(
        reference["ece"]["value"], **CLOSED_FORM.rel_abs()
    )
    if kind in ("csv", "parquet"):
        assert [r["name"] for r in report["per_class"]] == [f"class_{k}" for k in range(4)]


def test_html_report_is_self_contained_with_four_decodable_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "report.html"
    assert main(["report", str(npz_logits), "--output", str(target), "--resamples", "50"]) == 0
    assert "HTML report written to" in capsys.readouterr().out
    page = target.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in page
    assert "http" not in page.replace("http-equiv", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.npz", "report.html"]


def test_gates_exit_1_and_say_why(capsys: pytest.CaptureFixture[str], npz_logits: Path) -> None:
    assert main(["report", str(npz_logits), "--json", "--resamples", "20", "--max-ece", "1"]) == 0
    capsys.readouterr()
    assert (
        main(["report", str(npz_logits), "--json", "--resamples", "20", "--max-ece", "0.001"]) == 1
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 400  # the report is still printed
    assert re.search(r"gate failed: calibration error 0\.\d{4} > --max-ece 0\.001", err)
    assert (
        main(["report", str(npz_logits), "--json", "--resamples", "20", "--max-nll", "0.01"]) == 1
    )
    assert "gate failed: NLL" in capsys.readouterr().err


def test_probability_zero_on_a_label_reports_inf_as_the_string_inf(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "zero.npz"
    probs = np.array([[1.0, 0.0], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    np.savez(path, probs=probs, labels=np.array([1, 1, 0, 1]))
    report = _json(capsys, ["report", str(path), "--json", "--resamples", "20"])
    assert report["nll_nats"] == "inf"  # JSON format 2 (format 1: null)
    assert report["perplexity"] == "inf"
    assert report["temperature"]["value"] is None  # not fitted: not applicable
    assert report["most_surprising"][0] == {
        "index": 0,
        "surprisal_nats": "inf",
        "label": 1,
        "predicted": 0,
    }
    assert main(["report", str(path), "--resamples", "20", "--max-nll", "5"]) == 1


def test_long_runs_show_a_progress_bar_on_stderr_only(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import crossent.cli

    monkeypatch.setattr(crossent.cli, "_PROGRESS_ENTRIES", 0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["report", str(npz_logits), "--json", "--resamples", "20"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 400  # stdout stays one JSON object
    assert "evaluating" in err


def test_gate_lines_print_the_pair_in_the_order_of_the_numbers(
    capsys: pytest.CaptureFixture[str], npz_logits: Path
) -> None:
    """A threshold just below the NLL: the failure line printed ``1.5670 > 1.56705``-like
    pairs (4 decimals against ``:g``), false as printed; the Markdown gate line rounded a
    threshold of 7 digits to 6.  Both print the threshold as given now."""
    base = ["report", str(npz_logits), "--json", "--resamples", "20"]
    nll = _json(capsys, base)["nll_nats"]
    below = float(np.nextafter(nll, -np.inf))
    assert main([*base, "--max-nll", repr(below)]) == 1
    err = capsys.readouterr().err
    shown, limit = re.fullmatch(
        r"crossent: gate failed: NLL (\S+) nats > --max-nll (\S+)\n", err
    ).groups()  # type: ignore[union-attr]
    assert float(limit) == below
    assert float(shown) > float(limit)
    assert main(
        ["report", str(npz_logits), "--markdown", "--resamples", "20", "--max-ece", "0.1234567"]
    ) in (0, 1)
    assert "- gate `max_ece <= 0.1234567`" in capsys.readouterr().out
