"""The installed `crossent` script as a subprocess, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


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


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "Chromium and chromedriver are not installed (Debian: chromium chromium-driver)"
        )
    pytest.importorskip("selenium")
    return browser, driver


def test_html_report_loads_in_headless_chromium_without_errors(
    tmp_path: Path, npz_logits: Path
) -> None:
    browser, driver_path = _chromium()
    pytest.importorskip("matplotlib")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from crossent.cli import main

    page = tmp_path / "report.html"
    assert main(["report", str(npz_logits), "--resamples", "20", "--output", str(page)]) == 0
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.title == "crossent report"
        images = driver.execute_script(
            "return Array.from(document.images).map("
            "i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert len(images) == 4
        for alt, complete, width, height in images:
            assert complete, alt
            assert width > 100, alt
            assert height > 100, alt
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
