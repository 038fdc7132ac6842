"""Issue 13 (branch smallleft): one plain line for an empty standard input and for a
truncated ``.pt`` file.

Main: ``crossent report - < /dev/null`` said "-: cannot be parsed (Empty CSV file)",
pyarrow's words, where an empty file says "<path>: the file is empty".  Now "standard
input is empty" (exit 2).

Main: a ``.pt`` cut short said "not a file torch.save wrote (RuntimeError:
PytorchStreamReader failed reading zip archive: failed finding central directory. This is
an internal miniz error. If you are seeing this error, ..." (four sentences of torch's).
Now "<path>: not a complete PyTorch file (truncated or damaged): failed reading zip
archive: failed finding central directory" (the legacy format's too, with its reason).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from crossent.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

_CSV = "p0,p1,p2,label\n" + "".join(
    f"{a / 8},{b / 8},{(8 - a - b) / 8},{k % 3}\n"
    for k, (a, b) in enumerate((1 + k % 4, 1 + k * 3 % 3) for k in range(60))
)


def _crossent(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    paths = [os.environ.get("PYTHONPATH", ""), str(SRC)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, "-m", "crossent", *argv],
        input=stdin if stdin is not None else None,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_empty_standard_input_says_so_in_one_line() -> None:
    done = _crossent(["report", "-"], stdin=None)
    assert done.returncode == 2
    assert done.stderr == "crossent: error: standard input is empty\n"
    assert done.stdout == ""


def test_standard_input_reads_as_the_same_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emptiness check reads standard input's first byte and replays it: the report
    of a CSV through standard input is the file's (guards the replay: a read that
    returned that one byte alone made pyarrow refuse the table; passes on main)."""
    path = tmp_path / "preds.csv"
    path.write_text(_CSV)
    argv = ["--json", "--resamples", "5"]
    from_stdin = _crossent(["report", "-", *argv], stdin=_CSV)
    capsys.readouterr()
    assert main(["report", str(path), *argv]) == 0  # (the file's, in this process)
    assert (from_stdin.returncode, from_stdin.stderr) == (0, ""), from_stdin.stderr
    got, want = json.loads(from_stdin.stdout), json.loads(capsys.readouterr().out)
    got.pop("source", None), want.pop("source", None)
    assert json.dumps(got, sort_keys=True).replace("standard input (CSV)", str(path)) == (
        json.dumps(want, sort_keys=True)
    )


def _saved(path: Path, *, legacy: bool) -> bytes:
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    tensors = {"logits": torch.randn(30, 3, generator=generator), "labels": torch.arange(30) % 3}
    torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
    return path.read_bytes()


_ZIP_REASON = "failed reading zip archive: failed finding central directory"


@pytest.mark.parametrize(
    ("legacy", "kept", "reason"),
    [
        (False, lambda n: n // 2, _ZIP_REASON),
        (False, lambda n: n - 40, _ZIP_REASON),
        (False, lambda n: 60, _ZIP_REASON),
        (True, lambda n: n - 5, "unexpected EOF, expected 5 more bytes"),  # in the last storage
    ],
    ids=["zip-half", "zip-most", "zip-start", "legacy-most"],
)
def test_truncated_pt_says_so_in_one_short_line(
    tmp_path: Path,
    legacy: bool,
    kept: Callable[[int], int],
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In the test process (a process each cost 10 s of CPU in all, torch's import
    included); the same in a real process below."""
    path = tmp_path / "preds.pt"
    data = _saved(path, legacy=legacy)
    path.write_bytes(data[: kept(len(data))])
    capsys.readouterr()
    assert main(["report", str(path)]) == 2
    assert capsys.readouterr() == ("", _truncated(path, reason))


def _truncated(path: Path, reason: str) -> str:
    return (
        f"crossent: error: {path}: not a complete PyTorch file (truncated or damaged): {reason}\n"
    )


def test_truncated_pt_in_a_real_process(tmp_path: Path) -> None:
    """The zip cut in half by ``python -m crossent``: exit 2, the one line on stderr."""
    path = tmp_path / "preds.pt"
    data = _saved(path, legacy=False)
    path.write_bytes(data[: len(data) // 2])
    done = _crossent(["report", str(path)], stdin=None)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == _truncated(path, _ZIP_REASON)


def test_a_whole_zip_that_torch_did_not_write_is_not_called_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the test above from a rule that calls every unreadable file truncated
    (passes on main): a complete zip of other files is still "not a file torch.save
    wrote"."""
    pytest.importorskip("torch")
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    capsys.readouterr()
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"crossent: error: {path}: not a file torch.save wrote (")
    assert err.count("\n") == 1
