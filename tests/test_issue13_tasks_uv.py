"""``tasks.py``'s install (branch piptime1): uv where pip's configuration can be handed to
it, pip otherwise and wherever uv fails. No network: the commands are recorded, not run."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

# ``pip config list`` on the project's machines: local indexes, wheels and constraints
# that uv, which reads no pip configuration, must be told.
CONFIG = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/other.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/elsewhere'
install.no-index='false'
"""


@functools.cache  # (one module for the file: monkeypatch restores what a test changes)
def _tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crossent_tasks_uv", ROOT / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uv_is_given_pips_indexes_constraints_and_certificates() -> None:
    """The environment (``:env:``) overrides the files, list settings split on blanks."""
    options, environment = _tasks().uv_options(CONFIG)
    assert options == [
        "--constraints",
        "/etc/xdg/pip/constraints.txt",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
        "--find-links",
        "/opt/wheels",
    ]
    assert environment == {
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "UV_HTTP_TIMEOUT": "180",
    }


@pytest.mark.parametrize("setting", ["global.pre='true'", ":env:.trusted-host='mirror'"])
def test_a_setting_uv_is_not_told_leaves_the_install_to_pip(setting: str) -> None:
    assert _tasks().uv_options(CONFIG + setting + "\n") is None


@pytest.mark.parametrize("failing", [None, "uv", "uv pip", "config"])
def test_pip_installs_where_uv_fails(
    failing: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """uv's bootstrap, uv's install or reading pip's configuration failing: pip installs
    the same requirements, as before uv; nothing failing: uv alone."""
    tasks = _tasks()
    monkeypatch.delenv("CROSSENT_NO_UV", raising=False)
    monkeypatch.setattr(tasks, "BIN", tmp_path)  # no uv in .venv yet
    ran: list[str] = []

    def config(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if failing == "config":
            raise subprocess.CalledProcessError(1, command)
        return subprocess.CompletedProcess(command, 0, stdout=CONFIG)

    bootstrap = "python -m pip install --quiet --disable-pip-version-check --no-compile uv"

    def run(*command: object, env: dict[str, str] | None = None, **kwargs: object) -> None:
        line = " ".join(Path(str(c)).name for c in command)
        ran.append(line)
        if failing == "uv" and line == bootstrap:
            raise subprocess.CalledProcessError(1, line)
        if line.startswith("uv pip install"):
            assert env is not None
            assert env["UV_HTTP_TIMEOUT"] == "180"
            if failing == "uv pip":
                raise subprocess.CalledProcessError(2, line)

    monkeypatch.setattr(tasks.subprocess, "run", config)
    monkeypatch.setattr(tasks, "_run", run)
    tasks.install(["-e", ".[cli]"])
    pip_alone = "python -m pip install --quiet --disable-pip-version-check --no-compile -e .[cli]"
    assert ran[-1] == pip_alone if failing else ran[-1].startswith("uv pip install")
    assert ran[0] == (pip_alone if failing == "config" else bootstrap)
    assert len(ran) == {None: 2, "uv": 2, "uv pip": 3, "config": 1}[failing]


def test_crossent_no_uv_is_pip_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = _tasks()
    monkeypatch.setenv("CROSSENT_NO_UV", "1")
    ran: list[tuple[object, ...]] = []
    monkeypatch.setattr(tasks, "_run", lambda *command, **kwargs: ran.append(command))
    tasks.install(["-e", ".[cli]"])
    assert [str(c) for c in ran[0][1:4]] == ["-m", "pip", "install"]
    assert len(ran) == 1
