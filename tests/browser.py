"""Headless Chromium for the tests that open crossent's HTML (the report, the docs site)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["chromium", "headless_chromium", "images", "severe_console_messages"]


def chromium() -> tuple[str, str]:
    """Paths of Chromium and chromedriver; skip the test when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "Chromium and chromedriver are not installed (Debian: chromium chromium-driver)"
        )
    pytest.importorskip("selenium")
    return browser, driver


@contextmanager
def headless_chromium(profile: Path, *, window: tuple[int, int] | None = None) -> Iterator[Any]:
    """A headless Chromium WebDriver that records the browser console; quit afterwards.

    ``window`` is the window's (width, height) in CSS pixels; Chromium's default if None.
    """
    browser, driver_path = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    if window is not None:
        options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def images(driver: Any) -> list[tuple[str, bool, int, int]]:
    """(src, complete, naturalWidth, naturalHeight) of every image on the page."""
    return [
        tuple(row)
        for row in driver.execute_script(
            "return Array.from(document.images).map("
            "i => [i.currentSrc || i.src, i.complete, i.naturalWidth, i.naturalHeight]);"
        )
    ]


def severe_console_messages(driver: Any) -> list[dict[str, Any]]:
    """The console's errors since the last call (the log is drained by reading it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
