"""Command-line leftovers of the seventh hostile pass (branch hostilecli7).

* A closed standard output (``crossent report a.npz >&-``, Python's ``sys.stdout`` is
  None) ended every command in "internal error (AttributeError: 'NoneType' object has no
  attribute 'flush')", exit 3, and ``--help``/``--version`` in a traceback, exit 1.  It is
  now one line on standard error, exit 2, before any work.
* A closed standard error (``2>&-``, ``sys.stderr`` None) turned a usage error
  (``report --bogus``) into an uncaught AttributeError, exit 1 (a failed gate's code),
  and printed the one-line errors on standard output, into the ``--json`` a script
  reads.  The messages are now dropped (their stream is closed) and the exit codes kept.
* A number option read Python's digit separator: ``--max-ece 0_05`` (a typo for 0.05)
  was the threshold 5.0, a gate that every report passes; ``explain --logits 1_5,2``
  read 15.  The CSV reader refuses such cells; the options now refuse them too.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import crossent
from crossent.cli import main
from crossent.cli._numbers import decimal

pytest.importorskip("rich")

SRC = Path(crossent.__file__).resolve().parents[1]  # the crossent imported here, for the child
_FAST = ["--resamples", "5", "--top", "3"]


@pytest.fixture
def npz(npz_logits: Path) -> str:
    return str(npz_logits)


def _run_with_closed(descriptor: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m crossent ARGS`` with ``descriptor`` closed in the child (``>&-``)."""
    other = {1: "stderr", 2: "stdout"}[descriptor]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    # the shell closes the descriptor before Python starts; not preexec_fn, which forks
    # this process, where JAX (imported by other tests on the worker) warns at fork
    return subprocess.run(
        ["sh", "-c", f'exec "$0" -m crossent "$@" {descriptor}>&-', sys.executable, *args],
        env=env,
        text=True,
        timeout=120,
        **{other: subprocess.PIPE},  # type: ignore[call-overload]
    )


# --- a closed standard output --------------------------------------------------------------


_COMMANDS = {
    "report": ["report", "A", *_FAST],
    "report-json": ["report", "A", "--json", *_FAST],
    "report-markdown": ["report", "A", "--markdown", *_FAST],
    "comparison": ["report", "A", "A2", *_FAST],
    "demo": ["demo", "kl"],
    "explain": ["explain", "--p", "1,0,0", "--q", "0.7,0.2,0.1"],
    "help": ["report", "--help"],
    "version": ["--version"],
}


@pytest.mark.parametrize("name", list(_COMMANDS))
def test_closed_standard_output_is_one_line_and_exit_2(
    name: str,
    npz: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "b.npz"
    other.write_bytes(Path(npz).read_bytes())
    argv = [{"A": npz, "A2": str(other)}.get(arg, arg) for arg in _COMMANDS[name]]
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", None)  # Python's stdout when descriptor 1 is closed
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("crossent: error: standard output is closed"), err


def test_closed_standard_output_writes_no_html(
    npz: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before the work: no page written while its report could not be shown."""
    page = tmp_path / "r.html"
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["report", npz, "--output", str(page), *_FAST]) == 2
    assert not page.exists()
    assert "standard output is closed" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--version"], ["demo", "kl"]], ids=["version", "demo"])
def test_closed_descriptor_1_in_a_real_process(args: list[str]) -> None:
    done = _run_with_closed(1, args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "standard output is closed" in done.stderr


# --- a closed standard error ----------------------------------------------------------------


def test_closed_standard_error_keeps_the_usage_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["report", "--bogus"]) == 2
    assert main(["report", "--max-ece", "-1"]) == 2
    assert capsys.readouterr().out == ""


def test_closed_standard_error_keeps_errors_off_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error line went to standard output (``print(file=None)`` is stdout's)."""
    bad = tmp_path / "nan.csv"
    bad.write_text("label,c0,c1\n0,nan,0.7\n1,0.6,0.4\n")
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["report", str(bad), "--json"]) == 2
    assert capsys.readouterr().out == ""


def test_closed_descriptor_2_in_a_real_process(npz: str) -> None:
    done = _run_with_closed(2, ["report", "--bogus"])
    assert done.returncode == 2
    assert done.stdout == ""
    done = _run_with_closed(2, ["report", npz, "--json", *_FAST])
    assert done.returncode == 0
    assert done.stdout.lstrip().startswith("{")


# --- Python's digit separator in a number option --------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "A", "--max-ece", "0_05", *_FAST],
        ["report", "A", "--max-nll", "1_0", *_FAST],
        ["explain", "--logits", "1_5,2", "--label", "0"],
        ["explain", "--p", "1,0", "--q", "0.5,0.5", "--temperature", "1_0"],
        ["explain", "--logits", "1,2", "--label", "0", "--smoothing", "0_1"],
        ["explain", "--binary", "--y", "1", "--p", "0_9"],
    ],
    ids=["max-ece", "max-nll", "logits", "temperature", "smoothing", "binary-p"],
)
def test_digit_separator_is_refused(
    argv: list[str], npz: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([npz if arg == "A" else arg for arg in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "'_'" in err, err


@pytest.mark.parametrize("text", ["0_05", "1_0", "1e1_0"])
def test_decimal_refuses_a_digit_separator(text: str) -> None:
    with pytest.raises(ValueError, match="'_'"):
        decimal(text)


def test_decimal_still_reads_plain_numbers() -> None:
    """Guards the check against refusing too much (a mutant refusing every number)."""
    assert decimal("0.05") == 0.05
    assert decimal(" 1e-3 ") == 1e-3
    assert decimal("-0") == 0.0


# --- a newline in a name forged lines of the Markdown summary ------------------------------


def _forged_csv(folder: Path, stem: str) -> Path:
    """A CSV whose file name and class column hold a newline and a Markdown heading."""
    path = folder / f"{stem}\n# forged.csv"
    path.write_text('label,c0,"c1\n# forged"\n0,0.7,0.3\n1,0.4,0.6\n1,0.2,0.8\n')
    return path


def test_markdown_name_with_a_newline_forges_no_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--markdown`` kept the newlines of a path and of a column name, so a CSV header
    ``"c1\\n# forged"`` printed a line ``# forged" ...`` that Markdown renders as a
    heading in the CI summary; the name is now one line, its newline written ``\\x0a``
    as on the terminal."""
    path = _forged_csv(tmp_path, "a")
    assert main(["report", str(path), "--markdown", *_FAST]) == 0
    out = capsys.readouterr().out
    assert not any(line.startswith("# forged") for line in out.splitlines()), out
    assert "c1\\x0a# forged" in out
    assert "a\\x0a# forged.csv" in out


def test_markdown_comparison_name_with_a_newline_forges_no_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _forged_csv(tmp_path, "a"), _forged_csv(tmp_path, "b")
    assert main(["report", str(first), str(second), "--markdown", *_FAST]) == 0
    out = capsys.readouterr().out
    assert not any(line.startswith("# forged") for line in out.splitlines()), out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert any("b\\x0a# forged.csv" in line for line in table), out


# --- a standard output whose encoding cannot hold a name ------------------------------------


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
@pytest.mark.parametrize("mode", [[], ["--markdown"]], ids=["terminal", "markdown"])
def test_a_name_the_output_encoding_cannot_hold_is_escaped(
    encoding: str, mode: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Class names the standard output's encoding cannot write (a redirected Windows
    console's cp1252, ``PYTHONIOENCODING=ascii``) ended the report in "internal error
    (UnicodeEncodeError ...)", exit 3; they are now written as Python writes them on
    standard error, ``\\u732b``."""
    path = tmp_path / "cjk.csv"
    path.write_text("label,\u732b,\u72d7\n\u732b,0.3,0.7\n\u72d7,0.6,0.4\n\u732b,0.5,0.5\n")
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding=encoding)
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["report", str(path), *mode, *_FAST])
    stdout.flush()
    assert code == 0
    assert "\\u732b" in buffer.getvalue().decode(encoding)
