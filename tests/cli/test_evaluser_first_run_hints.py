"""An evaluator's first files, saved the way their tools save them, refused with the fix
named: a Hugging Face ``Trainer.predict`` output (``predictions``, ``label_ids``), an
``.npz`` given ``--logits``, float labels, a CSV without a header row (``np.savetxt``), a
DataFrame passed with its label column; and the report's interval named as what it is
(a percentile bootstrap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crossent
from crossent._report._text import definition
from crossent.cli import main

_LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.5, 0.0]])
_LABELS = np.array([0, 2, 1])


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossent: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_hugging_face_trainer_names_get_the_savez_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "preds.npz"
    np.savez(path, predictions=_LOGITS, label_ids=_LABELS)
    err = _error(capsys, ["report", str(path)])
    assert "np.savez(path, logits=out.predictions, labels=out.label_ids)" in err


def test_npz_with_a_form_flag_says_to_name_the_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pos.npz"
    np.savez(path, _LOGITS, _LABELS)
    err = _error(capsys, ["report", str(path), "--logits"])
    assert "CSV and Parquet" not in err  # a .npy and a single tensor take it too
    assert "np.savez(path, logits=..., labels=...)" in err


def test_float_labels_name_the_cast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "z.npy", _LOGITS)
    np.save(tmp_path / "y.npy", _LABELS.astype(np.float64))
    argv = ["report", str(tmp_path / "z.npy"), "--logits", "--labels", str(tmp_path / "y.npy")]
    assert "labels.astype(int)" in _error(capsys, argv)


@pytest.mark.parametrize("columns", [1, 3])
def test_a_csv_without_header_row_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], columns: int
) -> None:
    path = tmp_path / "nohdr.csv"
    if columns == 1:  # labels alone: np.savetxt(..., fmt="%d")
        np.save(tmp_path / "z.npy", _LOGITS)
        np.savetxt(path, _LABELS, fmt="%d")
        argv = ["report", str(tmp_path / "z.npy"), "--logits", "--labels", str(path)]
    else:
        np.savetxt(path, _LOGITS, delimiter=",")
        argv = ["report", str(path), "--logits"]
    err = _error(capsys, argv)
    assert "the first line holds numbers, not column names" in err
    assert ("header='label'" in err) == (columns == 1)


def test_a_frame_with_its_label_column_names_the_call() -> None:
    frame = pd.DataFrame(_LOGITS, columns=["ant", "bee", "cow"]).assign(label=["ant", "cow", "bee"])
    with pytest.raises(crossent.InputError) as info:
        crossent.report(frame, frame["label"], form="logits")
    assert "report(frame[['ant', 'bee', 'cow']], frame['label'])" in str(info.value)


def test_the_interval_is_named_a_percentile_bootstrap() -> None:
    """The text's definition line and the JSON's ``ece.interval`` name the method."""
    rng = np.random.default_rng(3)
    result = crossent.report(
        rng.normal(size=(40, 3)), rng.integers(0, 3, 40), form="logits", resamples=20
    )
    assert result.to_dict()["ece"]["interval"] == "percentile bootstrap"
    assert result.calibration_definition().endswith("; percentile bootstrap of 20 resamples")
    assert definition(result.to_dict()) == result.calibration_definition()
