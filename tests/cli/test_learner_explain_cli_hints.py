"""`crossent explain`: a learner's two input mistakes get the fix in the command's words.

Logits given as ``--q`` were told to "say so: q_form='logits'", an argument of the Python
API that the command line does not have; a one-hot ``--label 1,0,0`` was argparse's
"invalid int value".  Each message now names the flag to use, and the command it names
works.
"""

from __future__ import annotations

import pytest

from crossent.cli import main


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert _code(argv) == 2
    return " ".join(capsys.readouterr().err.split())


def _code(argv: list[str]) -> int:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code  # type: ignore[assignment]
    return int(code or 0)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> int:
    code = _code(argv)
    capsys.readouterr()
    return code


def test_learner_logits_as_q_name_the_logits_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["explain", "--p", "1,0,0", "--q", "2,1,0.1"])
    assert "q_form" not in err
    assert "`--q`" in err
    assert "--logits" in err
    # The command the message points to works.
    assert _run(capsys, ["explain", "--logits", "2,1,0.1", "--p", "1,0,0"]) == 0


def test_learner_negative_q_names_the_logits_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["explain", "--p", "1,0,0", "--q", "2,-1,0.5"])
    assert "q_form" not in err
    assert "--logits" in err


def test_learner_one_hot_label_names_the_class_id(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0,1,0"])
    assert "invalid int value" not in err
    assert "--label 1" in err  # the position of the 1
    assert "--p 0,1,0" in err  # or the same as a target distribution
    assert _run(capsys, ["explain", "--logits", "2,1,0.1", "--label", "1"]) == 0
    assert _run(capsys, ["explain", "--logits", "2,1,0.1", "--p", "0,1,0"]) == 0


def test_learner_label_that_is_no_integer_keeps_argparse_wording(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _error(capsys, ["explain", "--logits", "2,1,0.1", "--label", "cat"])
    assert "argument --label: invalid int value: 'cat'" in err
