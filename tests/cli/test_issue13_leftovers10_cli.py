"""Issue 13, leftovers of stop 56 on the command line (branch leftovers10).

* ``python -m crossent`` imports the package (NumPy, SciPy, crossent's modules) before
  ``crossent/__main__.py`` runs, so Ctrl-C in that time printed Python's
  KeyboardInterrupt traceback, where the installed ``crossent`` command (entered
  through ``crossent_command``) prints "crossent: interrupted" and exits 130.  The
  package's ``__init__`` now ends the process the command's way when its import is
  interrupted under ``python -m crossent`` (and only there), and ``__main__`` imports
  ``crossent.cli`` inside the same handling.  The subprocesses get a real SIGINT, sent
  by the process to itself at a chosen import (a ``sitecustomize`` on the path), so the
  moment is the same on every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import crossent

_SITE = """
import os, signal, sys
# A process started in the background by a non-interactive shell inherits SIGINT
# ignored: restore the handler an interactive user's Ctrl-C meets.
signal.signal(signal.SIGINT, signal.default_int_handler)
WHERE = os.environ["CROSSENT_TEST_SIGINT_AT"]

class _Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == WHERE:  # Ctrl-C while this module is imported
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _Interrupt())
"""


def _run_interrupted(tmp_path: Path, where: str, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(_SITE))
    source_root = Path(crossent.__file__).parents[1]
    env = dict(os.environ, CROSSENT_TEST_SIGINT_AT=where)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(source_root)])
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("where", ["crossent.info", "crossent.cli"])
def test_ctrl_c_while_python_m_crossent_imports_is_one_line(tmp_path: Path, where: str) -> None:
    """``crossent.info``: the package's own import (runpy's, before ``__main__``);
    ``crossent.cli``: ``__main__``'s import of the command.  Main: a traceback ending in
    KeyboardInterrupt, and the process killed by SIGINT (-2), for both."""
    result = _run_interrupted(tmp_path, where, "-m", "crossent", "demo")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == "crossent: interrupted\n"
    assert result.returncode == 130
    assert result.stdout == ""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_while_a_program_imports_crossent_is_still_a_keyboard_interrupt(
    tmp_path: Path,
) -> None:
    """Only the command exits quietly: a program's ``import crossent`` interrupted is the
    program's KeyboardInterrupt, which it may catch (guards a handler that always exits)."""
    program = "try:\n    import crossent\nexcept KeyboardInterrupt:\n    print('caught')\n"
    result = _run_interrupted(tmp_path, "crossent.info", "-c", program)
    assert result.stdout == "caught\n", result.stderr
    assert result.returncode == 0
    assert "crossent: interrupted" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "module"),
    [
        (["-m", "crossent", "report"], "crossent"),
        (["-mcrossent"], "crossent"),
        (["-Im", "crossent"], "crossent"),
        (["-X", "dev", "-Wignore", "-m", "crossent"], "crossent"),
        (["-W", "ignore", "-m", "crossent"], "crossent"),
        (["-Ximporttime", "-mcrossent"], "crossent"),
        (["--check-hash-based-pycs", "always", "-m", "crossent"], "crossent"),
        (["-m", "crossent.cli"], "crossent.cli"),
        (["-c", "import crossent", "-m", "crossent"], None),
        (["script.py", "-m", "crossent"], None),
        (["--", "-m", "crossent"], None),
        ([], None),
    ],
    ids=[
        "m",
        "joined",
        "flags",
        "options",
        "warning-option",
        "joined-options",
        "long-option",
        "cli",
        "c",
        "script",
        "end-of-options",
        "none",
    ],
)
def test_the_module_run_is_read_from_the_interpreter_arguments(
    arguments: list[str], module: str | None
) -> None:
    from crossent import _main_start

    assert _main_start._module_run(arguments) == module


def test_only_python_m_crossent_is_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossent import _main_start

    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "crossent"])
    monkeypatch.setattr(sys, "argv", ["-m"])  # locating the module
    assert _main_start.run_as_command()
    monkeypatch.setattr(sys, "argv", ["/somewhere/crossent/__main__.py"])  # running it
    assert not _main_start.run_as_command()
    monkeypatch.setattr(sys, "argv", ["-m"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "other"])  # imports crossent
    assert not _main_start.run_as_command()
