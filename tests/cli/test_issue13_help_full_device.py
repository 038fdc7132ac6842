"""Issue 13 hostile pass: a standard output that cannot be written is exit 2 and one line.

On main (fa36995), with stdout on a full device (``> /dev/full``):

* ``crossent --version``, ``--help``, ``report --help`` exited 0 with nothing on stderr
  when Python's stdout is unbuffered (``PYTHONUNBUFFERED=1``, as in this test
  environment): argparse ignores a failed write, so the text was lost without a word;
  buffered, they exited 120 with Python's "Exception ignored ... OSError";
* ``crossent report preds.npz`` (the text report) and ``crossent explain ...``, with a
  buffered stdout (Python's default), printed the error and then Python's "Exception
  ignored in: <_io.TextIOWrapper name='<stdout>'...>" lines and exited 120: the
  unwritten text was flushed again at exit.

A closed pipe stays quiet (exit 0), as ``demo`` and ``explain`` are since issue 16.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stdio_streams import main_on

SRC = Path(__file__).resolve().parents[2] / "src"
_FULL = "crossent: error: standard output: cannot write {} (No space left on device)\n"
"""Since branch cliout the line names what was lost (it was "[Errno 28] No space left on
device"): test_issue13_stdout_unwritable.py."""


def _env(buffered: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(argv: list[str], stdout: int, buffered: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossent", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        env=_env(buffered),
    )


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("full_device") / "preds.npz"
    np.savez(path, logits=rng.normal(size=(30, 3)), labels=np.arange(30) % 3)
    return str(path)


_ARGVS = {
    "version": ["--version"],
    "help": ["--help"],
    "report-help": ["report", "--help"],
    "explain": ["explain", "--p", "1,0,0", "--q", "0.7,0.2,0.1"],
    "demo": ["demo", "kl"],
    "report": ["report", "NPZ", "--resamples", "5"],
    "report-json": ["report", "NPZ", "--resamples", "5", "--json"],
}

_LOST = {
    "version": "the version",
    "help": "the help",
    "report-help": "the help",
    "explain": "the explanation",
    "demo": "the demo",
    "report": "the report",
    "report-json": "the report",
}


_NEEDS_FULL = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@_NEEDS_FULL
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("name", list(_ARGVS))
def test_a_full_device_is_exit_2_and_one_line(
    npz: str, name: str, buffered: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """In the test process, on the stream and exit of a fresh one (``stdio_streams``;
    a process each cost 20 s of CPU in all); the real process below."""
    argv = [npz if arg == "NPZ" else arg for arg in _ARGVS[name]]
    with open("/dev/full", "w") as full:
        done = main_on(full.fileno(), argv, buffered=buffered, capsys=capsys)
    assert done == (2, _FULL.format(_LOST[name]))


@_NEEDS_FULL
@pytest.mark.parametrize(
    ("name", "buffered"), [("report", True), ("help", False)], ids=["report", "help-unbuffered"]
)
def test_a_full_device_in_a_real_process(npz: str, name: str, buffered: bool) -> None:
    """The cases of main's two failures in a process of their own: the buffered report
    (exit 120 and "Exception ignored" at exit) and argparse's unbuffered help (exit 0,
    nothing said); ties ``stdio_streams``' stream and exit to the interpreter's."""
    argv = [npz if arg == "NPZ" else arg for arg in _ARGVS[name]]
    with open("/dev/full", "w") as full:
        done = _run(argv, full.fileno(), buffered)
    assert (done.returncode, done.stderr) == (2, _FULL.format(_LOST[name]))


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("name", ["version", "help", "report-help"])
def test_help_into_a_closed_pipe_is_quiet(
    name: str, buffered: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    read, write = os.pipe()
    os.close(read)
    try:
        done = main_on(write, _ARGVS[name], buffered=buffered, capsys=capsys)
    finally:
        os.close(write)
    assert done == (0, "")
