"""The installed `crossent` script as a subprocess, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import chromium, headless_chromium, images, severe_console_messages


def _script() -> str:
    script = Path(sys.executable).with_name("crossent")
    if script.exists():
        return str(script)
    found = shutil.which("crossent")
    if found is None:
        pytest.skip("the crossent script is not installed")
    return found


def test_installed_script_reports_json_and_exits_0(npz_logits: Path) -> None:
    out = subprocess.run(
        [_script(), "report", str(npz_logits), "--json", "--resamples", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 400


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["report", "/nonexistent/file.npz"], 2),
        (["report", "{npz}", "--resamples", "20", "--max-ece", "0.0001"], 1),
        (["report", "--no-such-option"], 2),
        (["--version"], 0),
    ],
)
def test_installed_script_exit_codes(npz_logits: Path, arguments: list[str], code: int) -> None:
    argv = [a.replace("{npz}", str(npz_logits)) for a in arguments]
    out = subprocess.run([_script(), *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr


def test_html_report_loads_in_headless_chromium_without_errors(
    tmp_path: Path, npz_logits: Path
) -> None:
    chromium()
    pytest.importorskip("matplotlib")
    from crossent.cli import main

    page = tmp_path / "report.html"
    assert main(["report", str(npz_logits), "--resamples", "20", "--output", str(page)]) == 0
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        assert driver.title == "crossent report"
        shown = images(driver)
        assert len(shown) == 4
        for source, complete, width, height in shown:
            assert complete, source[:80]
            assert width > 100, source[:80]
            assert height > 100, source[:80]
        assert severe_console_messages(driver) == []
