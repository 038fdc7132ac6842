"""Issue 13 hostile review of ``crossent report``: each test pins a defect found by attacking
the command line, and fails on the code before its fix (main at 44a6699), where the first
three ended in exit 3 ("internal error ... please report it").

* ``--max-ece inf`` / ``--max-nll inf``: the JSON report could not hold the threshold;
* ``--seed -1``: NumPy's ``ValueError``;
* logits of +-1e308: the recalibration gap ``inf - inf`` was NaN, which JSON cannot hold;
* ``--output`` a dangling link into a missing folder: the message named the link's folder,
  which exists, instead of the missing one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

import oracles
from .conftest import make_predictions


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    _out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "internal error" not in err
    return err


@pytest.mark.parametrize("flag", ["--max-ece", "--max-nll"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_thresholds_are_usage_errors(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, flag: str, value: str
) -> None:
    """Main: exit 3 for +-inf (NaN was refused already, in other words: a guard)."""
    argv = ["report", "--json", "--resamples", "5", str(npz_logits), f"{flag}={value}"]
    err = _usage_error(capsys, argv)
    assert (
        f"{flag}: a threshold must be a finite number (not NaN or infinite); got '{value}'" in err
    )


def test_negative_seed_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], npz_logits: Path
) -> None:
    err = _usage_error(
        capsys, ["report", "--json", "--resamples", "5", "--seed", "-1", str(npz_logits)]
    )
    assert len(err.strip().splitlines()) == 1
    assert "argument --seed: must be a non-negative integer; got '-1'" in err  # 4th pass


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_logits_give_a_json_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The surprisal at T = 1 of logits [1e308, -1e308] with label 1 is 2e308, past
    float64's range; the mean over the 12 rows is not, and is reported (issue 13, calib2:
    "inf" until then); the gap is reported as null, not NaN."""
    logits, labels = make_predictions(n=12, classes=2)
    logits[0], labels[0] = (1e308, -1e308), 1
    path = tmp_path / "huge.npz"
    np.savez(path, logits=logits, labels=labels)
    assert main(["report", "--json", "--resamples", "5", str(path)]) == 0
    out, _err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["recalibration_gap_nats"] is None
    want = oracles.mean_surprisal_of_logits(logits, labels)
    assert payload["nll_nats"] == pytest.approx(want, rel=1e-15)


def test_dangling_output_link_names_the_missing_folder(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, tmp_path: Path
) -> None:
    link = tmp_path / "report.html"
    link.symlink_to(tmp_path / "gone" / "report.html")
    err = _usage_error(
        capsys, ["report", "--resamples", "5", str(npz_logits), "--output", str(link)]
    )
    assert f"the folder {tmp_path / 'gone'} does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([npz_logits.name, link.name])
