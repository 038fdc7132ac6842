"""Issue 13 hostile pass: ``--bins`` and ``--top`` name themselves and the value typed.

On main (fa36995) ``--top -1`` and ``--bins 0`` both said "--bins must be positive, --top
non-negative": which option, and what value, was left to the reader; and the check ran
only after the output path was checked.  They are now refused while parsing, as
``--resamples`` is, before the (here missing) input is opened.
"""

from __future__ import annotations

import pytest

from crossent.cli import main

pytest.importorskip("rich")

_MISSING = "no-such-predictions.npz"


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("flag", "value", "wanted"),
    [
        ("--top", "-1", "a non-negative integer"),
        ("--top", "-100", "a non-negative integer"),
        ("--bins", "0", "a positive integer"),
        ("--bins", "-3", "a positive integer"),
    ],
)
def test_count_option_out_of_range_names_flag_and_value(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, wanted: str
) -> None:
    err = _usage_error(capsys, ["report", _MISSING, flag, value])
    assert f"argument {flag}: must be {wanted}; got '{value}'" in err


@pytest.mark.parametrize("argv", [["--top", "0"], ["--bins", "1"]])
def test_count_option_at_its_bound_is_taken(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """The bound itself parses: the error is then the missing file's, not the option's."""
    err = _usage_error(capsys, ["report", _MISSING, *argv])
    assert _MISSING in err
    assert argv[0] not in err
