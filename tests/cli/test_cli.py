"""The crossent command: in process through main(argv), and as the installed script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crossent
import crossent.cli
from crossent.cli import main


def test_demo_prints_the_seeds_examples_with_exact_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for expected in (
        "0.1250  3.0000",  # surprisal of 1/8 in bits
        "3.2744",  # exact entropy of the sum of two dice
        "sum to 1.01",  # why the seed printed 3.30
        "friend 1 (q=0.0)          inf           23.2535",  # exact vs clipped
        "friend 6 (q=1.0)          inf            9.9658",
        "0.356675 = 0.000000 + 0.356675",  # H(P,Q) = H(P) + KL
        "0.9500  0.0513",  # BCE
        "loss = -log p_0 = 0.2413",
        "perplexity 50.0",
    ):
        assert expected in out, expected


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: crossent" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert crossent.__version__ in capsys.readouterr().out


def test_input_errors_exit_2_with_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bad(*_: object) -> None:
        crossent.entropy([0.5, 0.6])

    monkeypatch.setattr(crossent.cli, "run_demo", bad)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossent: error: `p` must sum to 1")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("debug", [False, True])
def test_internal_errors_exit_3_with_traceback_only_under_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(crossent.cli, "run_demo", broken)
    assert main(["--debug", "demo"] if debug else ["demo"]) == 3
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: boom); please report it" in err
    assert ("Traceback" in err) is debug


def test_installed_script_and_python_m() -> None:
    """The two ways in, each a fresh process printing a computed value: one topic of the
    demo (the entropy of two dice); every topic's values are the in-process test's
    above. (The whole demo in each: 1.6-1.9 s of CPU a process, not 1.3-1.5, on a warm
    Numba cache, and the first process compiled every kernel of the demo that the cache
    lacked, 85 s of CPU on an empty one: nothing more about the entry points.)"""
    script = shutil.which("crossent", path=str(Path(sys.executable).parent))
    commands = [[sys.executable, "-m", "crossent", "demo", "entropy"]]
    if script is not None:
        commands.append([script, "demo", "entropy"])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "3.2744" in result.stdout
    bare = subprocess.run([sys.executable, "-m", "crossent"], capture_output=True, text=True)
    assert bare.returncode == 2
