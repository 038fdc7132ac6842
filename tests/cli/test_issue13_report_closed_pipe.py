"""Issue 13 hostile pass: ``crossent report`` into a closed pipe is quiet, and its exit
code is the gates' (as ``demo`` and ``explain`` are quiet since issue 16).

On main (fa36995) ``crossent report preds.npz | head -0`` exited 1, the code of a failed
gate, with no gate given (rich's console exits 1 on a broken pipe); with ``--json`` or
``--markdown``, and for several models, it exited 2 with "crossent: error: [Errno 32]
Broken pipe".  A full device is still an error (exit 2, ``test_report_errors``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stdio_streams import main_on

pytest.importorskip("rich")

SRC = Path(__file__).resolve().parents[2] / "src"
_BUFFERED = not os.environ.get("PYTHONUNBUFFERED")
"""As the process below would start (it inherits the environment)."""


def _into_a_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte
    try:
        return subprocess.run(
            [sys.executable, "-m", "crossent", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env=env,
        )
    finally:
        os.close(write)


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("closed_pipe") / "preds.npz"
    np.savez(path, logits=rng.normal(size=(40, 3)), labels=np.arange(40) % 3)
    # a byte-identical copy for two models: the same file twice is refused (clihostile6)
    shutil.copyfile(path, path.with_name("preds_again.npz"))
    return path


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The writing end of a pipe whose reader is gone before the first byte."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


@pytest.mark.parametrize("style", [[], ["--json"], ["--markdown"]], ids=["text", "json", "md"])
@pytest.mark.parametrize("models", [1, 2])
def test_report_into_a_closed_pipe_is_quiet(
    npz: Path, style: list[str], models: int, closed_pipe: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """In the test process, on the stream and exit of a fresh one (``stdio_streams``:
    a process each cost 11 s of CPU in all); a real process below."""
    files = [str(npz), str(npz.with_name("preds_again.npz"))][:models]
    argv = ["report", *files, "--resamples", "5", *style]
    assert main_on(closed_pipe, argv, buffered=_BUFFERED, capsys=capsys) == (0, "")


def test_report_into_a_closed_pipe_in_a_real_process(npz: Path) -> None:
    """Ties ``stdio_streams``' stream and exit to the interpreter's: one comparison."""
    files = [str(npz), str(npz.with_name("preds_again.npz"))]
    done = _into_a_closed_pipe(["report", *files, "--resamples", "5", "--json"])
    assert (done.returncode, done.stderr) == (0, "")


def test_report_into_a_closed_pipe_keeps_a_failed_gate(
    npz: Path, closed_pipe: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report was computed: a failed gate still exits 1 and says so on stderr."""
    argv = ["report", str(npz), "--resamples", "5", "--max-nll", "0"]
    code, err = main_on(closed_pipe, argv, buffered=_BUFFERED, capsys=capsys)
    assert code == 1
    assert err.startswith("crossent: gate failed: NLL")
