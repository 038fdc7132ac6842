"""Issue 13: the report's gates and resample count are bounded; each test fails on main
at f845b61.

* ``--max-ece -1`` / ``--max-nll -1`` (and ``crossent.report(max_ece=-0.1)``) were
  accepted, and then failed every report's gate: the calibration error and the NLL are
  never negative.  A threshold of 0 stays allowed (a perfect report passes it).
* ``--resamples 10**20`` ran until interrupted (each replicate recomputes the
  calibration error).  The library refuses more than ``MAX_RESAMPLES`` in ``report``,
  ``compare_reports`` and ``bootstrap_interval``; the command line refuses it while
  parsing, before it reads the input.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

pytest.importorskip("rich")

_MISSING = "no-such-predictions.npz"
MAX_RESAMPLES = 1_000_000


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("flag", ["--max-ece", "--max-nll"])
@pytest.mark.parametrize("value", ["-1", "-1e-300", "-0.0001"])
def test_issue13_negative_gate_threshold_refused_while_parsing(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """A negative threshold is refused by name before the (missing) file is opened."""
    err = _usage_error(capsys, ["report", _MISSING, f"{flag}={value}"])
    assert f"argument {flag}: a threshold must be >= 0" in err
    assert repr(value) in err


@pytest.mark.parametrize("gate", ["max_ece", "max_nll"])
@pytest.mark.parametrize("value", [-1, -0.1, np.float32(-1e-30), -math.ulp(0.0)])
def test_issue13_report_refuses_a_negative_gate(gate: str, value: float) -> None:
    probs, labels = np.full((4, 2), 0.5), np.array([0, 1, 0, 1])
    with pytest.raises(crossent.InputError, match=f"`{gate}` must be >= 0"):
        crossent.report(probs, labels, resamples=2, **{gate: value})


@pytest.mark.parametrize("gate", ["max_ece", "max_nll"])
def test_issue13_gate_at_zero_is_allowed(gate: str) -> None:
    """0 is a legitimate threshold: a report whose value is 0 passes it."""
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    result = crossent.report(probs, np.array([0, 1]), resamples=2, **{gate: 0})
    [verdict] = result.to_dict()["gates"]
    assert (verdict["threshold"], verdict["value"], verdict["pass"]) == (0.0, 0.0, True)


@pytest.mark.parametrize("value", ["0", "-5", str(MAX_RESAMPLES + 1), str(10**20), "1e3"])
def test_issue13_resamples_refused_while_parsing(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Refused by name before the input is read: the file named does not exist, and the
    message is about ``--resamples`` (main read the file first, or ran until killed)."""
    err = _usage_error(capsys, ["report", _MISSING, "--resamples", value])
    assert "argument --resamples:" in err
    assert _MISSING not in err


def test_issue13_the_bound_is_one_number() -> None:
    """The command line's parse-time bound is the library's."""
    from crossent import cli
    from crossent.calibration import _bootstrap

    assert cli._MAX_RESAMPLES == _bootstrap.MAX_RESAMPLES == MAX_RESAMPLES


def test_issue13_the_bound_itself_is_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--resamples 1000000`` parses; the run then stops at the missing file."""
    code = main(["report", str(tmp_path / "absent.npz"), "--resamples", str(MAX_RESAMPLES)])
    _out, err = capsys.readouterr()
    assert code == 2
    assert "absent.npz" in err
    assert "--resamples" not in err


@pytest.mark.parametrize("resamples", [MAX_RESAMPLES + 1, 10**20, np.int64(2**62)])
def test_issue13_library_refuses_too_many_resamples(resamples: int) -> None:
    probs, labels = np.full((4, 2), 0.5), np.array([0, 1, 0, 1])
    message = "`resamples` must be at most 1_000_000 .*got " + re.escape(repr(resamples))
    with pytest.raises(crossent.InputError, match=message):
        crossent.report(probs, labels, resamples=resamples)
    with pytest.raises(crossent.InputError, match=message):
        crossent.bootstrap_interval("nll", probs, labels, resamples=resamples)
    with pytest.raises(crossent.InputError, match=message):
        crossent.compare_log_loss(probs, probs, labels, resamples=resamples)
    one = crossent.report(probs, labels, resamples=2)
    with pytest.raises(crossent.InputError, match=message):
        crossent.compare_reports([one, one], resamples=resamples)
