"""Issue 14: the HTML reports (one model, a comparison) in headless Chromium at 1280 px:
every image decoded, nothing wider than the window, no console errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from browser import chromium, headless_chromium, severe_console_messages
from crossent.cli import main


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
    assert severe_console_messages(driver) == []


def test_issue14_html_reports_readable_at_1280px(tmp_path: Path) -> None:
    chromium()
    pytest.importorskip("matplotlib")
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
    with headless_chromium(tmp_path / "profile", window=(1280, 900)) as driver:
        _check_page(driver, single, 4)
        _check_page(driver, comparison, 1 + 2 * 4)
