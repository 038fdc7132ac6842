"""Issue 13 (branch smallleft): one plain line for an empty standard input.

Main: ``crossent report - < /dev/null`` said "-: cannot be parsed (Empty CSV file)",
pyarrow's words, where an empty file says "<path>: the file is empty".  Now "standard
input is empty" (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_standard_input_reads_as_the_same_file(tmp_path: Path) -> None:
    """The emptiness check reads standard input's first byte and replays it: the report
    of a CSV through standard input is the file's (guards the replay: a read that
    returned that one byte alone made pyarrow refuse the table; passes on main)."""
    path = tmp_path / "preds.csv"
    path.write_text(_CSV)
    argv = ["--json", "--resamples", "5"]
    from_stdin = _crossent(["report", "-", *argv], stdin=_CSV)
    from_file = _crossent(["report", str(path), *argv], stdin=None)
    assert (from_stdin.returncode, from_stdin.stderr) == (0, ""), from_stdin.stderr
    assert from_file.returncode == 0
    got, want = json.loads(from_stdin.stdout), json.loads(from_file.stdout)
    got.pop("source", None), want.pop("source", None)
    assert json.dumps(got, sort_keys=True).replace("standard input (CSV)", str(path)) == (
        json.dumps(want, sort_keys=True)
    )
