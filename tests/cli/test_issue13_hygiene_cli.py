"""Issue 13 follow-ups of the hostile review of ``crossent report`` (input hygiene): each
test fails on main at 47e5a2f, as its docstring says.

* ``--bins 10**12`` ended in ``MemoryError``, exit 3 ("internal error ... please report");
* logits of +-1e308 printed NumPy's ``RuntimeWarning``s (overflow in subtract, in reduce)
  on stderr around a valid report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

from .conftest import make_predictions


@pytest.mark.parametrize("bins", ["1048577", str(10**12)])
def test_too_many_bins_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, bins: str
) -> None:
    """Main: exit 3 with ``MemoryError: Unable to allocate 7.28 TiB`` for 10**12, and
    2**20 + 1 taken."""
    code = main(["report", "--json", "--resamples", "5", "--bins", bins, str(npz_logits)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "argument --bins: must be at most 1_048_576 (2**20" in err  # 4th hostile pass
    assert f"got '{bins}'" in err
    assert "internal error" not in err


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("options", [[], ["--scope", "class-wise"], ["--binning", "quantile"]])
def test_overflowing_logits_report_without_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, options: list[str]
) -> None:
    """Main: ``RuntimeWarning: overflow encountered in subtract`` (_xp.log_softmax,
    the temperature moments, the report's recalibrated curve) and ``... in reduce``
    (finite_row_max) on stderr; raised as errors here, they made the run exit 3."""
    logits, labels = make_predictions(n=12, classes=3)
    logits[0] = (1e308, -1e308, 0.0)
    logits[1] = (-1e308, 1e308, 1e308)
    path = tmp_path / "huge.npz"
    np.savez(path, logits=logits, labels=labels)
    code = main(["report", "--json", "--resamples", "5", *options, str(path)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    payload = json.loads(out)
    assert payload["n"] == 12
