"""The docstring examples are collected without the optional PyTorch extra.

pyproject's ``--doctest-modules`` runs every example under ``src/crossent``. On ``main``,
where PyTorch is not installed, each of the 20 modules of ``crossent.torch`` was a
collection error and pytest stopped before running anything; the repository's
``conftest.py`` now leaves them out. PyTorch is hidden here by a ``sitecustomize`` whose
import hook raises ``ModuleNotFoundError`` for it, as an environment without the extra
does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
"""


def _collect(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "src")]))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only"]
    return subprocess.run(
        [*command, "-q", "src/crossent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_learner_doctests_collect_without_torch(tmp_path: Path) -> None:
    result = _collect(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "ERROR" not in output, output[-3000:]
    assert "errors" not in output, output[-3000:]
    assert "crossent/torch" not in output  # left out, not collected
    assert "crossent.calibration._error.calibration_error" in output, output[-3000:]
