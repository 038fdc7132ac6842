"""Issue 14: the HTML reports (one model, a comparison) in headless Chromium at 1280 px:
every image decoded, nothing wider than the window, no console errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main


def _driver(tmp_path: Path) -> object:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip(
            "Chromium and chromedriver are not installed (Debian: chromium chromium-driver)"
        )
    pytest.importorskip("selenium")
    pytest.importorskip("matplotlib")
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
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def _check_page(driver: object, page: Path, minimum_images: int) -> None:
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    script = driver.execute_script  # type: ignore[attr-defined]
    assert driver.title == "crossent report"  # type: ignore[attr-defined]
    assert script("return window.innerWidth") <= 1280
    images = script(
        "return Promise.all(Array.from(document.images).map(i => i.decode().then("
        "() => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, "
        "i.getBoundingClientRect().width], () => [i.alt, false, 0, 0, 0])));"
    )
    assert len(images) >= minimum_images
    width = script("return document.documentElement.clientWidth")
    for alt, complete, natural_width, natural_height, shown in images:
        assert complete, alt
        assert natural_width > 100, alt
        assert natural_height > 100, alt
        assert 0 < shown <= width, alt
    assert script("return document.documentElement.scrollWidth") <= width  # no sideways scroll
    body_font = script("return parseFloat(getComputedStyle(document.body).fontSize)")
    assert body_font >= 14
    errors = [
        entry
        for entry in driver.get_log("browser")  # type: ignore[attr-defined]
        if entry["level"] == "SEVERE"
    ]
    assert errors == []


def test_issue14_html_reports_readable_at_1280px(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(600, 25)) * 2.5  # 25 classes: small multiples of the worst 20
    labels = rng.integers(0, 25, size=600)
    paths = []
    for index, scale in enumerate((1.0, 0.4)):
        path = tmp_path / f"m{index}.npz"
        np.savez(path, logits=logits * scale, labels=labels)
        paths.append(path)
    single, comparison = tmp_path / "single.html", tmp_path / "comparison.html"
    assert main(["report", str(paths[0]), "--resamples", "20", "--output", str(single)]) == 0
    argv = ["report", *map(str, paths), "--resamples", "20", "--output", str(comparison)]
    assert main(argv) == 0
    driver = _driver(tmp_path)
    try:
        _check_page(driver, single, 4)
        _check_page(driver, comparison, 1 + 2 * 4)
    finally:
        driver.quit()  # type: ignore[attr-defined]
