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
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rich")

SRC = Path(__file__).resolve().parents[2] / "src"


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


@pytest.mark.parametrize("style", [[], ["--json"], ["--markdown"]], ids=["text", "json", "md"])
@pytest.mark.parametrize("models", [1, 2])
def test_report_into_a_closed_pipe_is_quiet(npz: Path, style: list[str], models: int) -> None:
    files = [str(npz), str(npz.with_name("preds_again.npz"))][:models]
    done = _into_a_closed_pipe(["report", *files, "--resamples", "5", *style])
    assert (done.returncode, done.stderr) == (0, "")


def test_report_into_a_closed_pipe_keeps_a_failed_gate(npz: Path) -> None:
    """The report was computed: a failed gate still exits 1 and says so on stderr."""
    done = _into_a_closed_pipe(["report", str(npz), "--resamples", "5", "--max-nll", "0"])
    assert done.returncode == 1
    assert done.stderr.startswith("crossent: gate failed: NLL")
