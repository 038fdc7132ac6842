"""The built documentation site (``python3 tasks.py docs``; CI builds it before pytest).

The API reference is generated from ``crossent.__all__``; these tests check that no
public name is missing from it, that the built pages carry each name's formula, and
that the index and a tutorial load in headless Chromium with no console errors, every
image decoded and the math typeset by MathJax.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import crossent
from browser import headless_chromium, images, severe_console_messages

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SITE = ROOT / "site"

TUTORIALS = [
    "surprise-entropy",
    "cross-entropy-kl",
    "clipping",
    "softmax",
    "gradient",
    "binary",
    "temperature",
    "smoothing-weights",
    "imbalance-focal",
    "distillation",
    "perplexity",
    "calibration",
    "hinge",
    "code-length",
]


def _api_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crossent_api", DOCS / "_ext" / "crossent_api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _built(page: str) -> Path:
    path = SITE / page
    if not path.exists():
        pytest.skip(f"{path} is not built (python3 tasks.py docs)")
    return path


def test_issue13_api_reference_lists_every_public_name() -> None:
    text = _api_extension().reference_rst()
    documented = set(re.findall(r"^   (\w+)$", text, flags=re.MULTILINE))
    documented |= set(re.findall(r"^\.\. py:data:: (\w+)$", text, flags=re.MULTILINE))
    assert set(crossent.__all__) <= documented, set(crossent.__all__) - documented


def test_issue13_every_public_function_states_its_formula() -> None:
    for name in crossent.__all__:
        obj = getattr(crossent, name)
        if inspect.isfunction(obj):
            assert ".. math::" in (obj.__doc__ or "") or ":math:" in (obj.__doc__ or ""), name


def test_issue13_shape_stars_are_escaped_only_where_they_open_a_shape() -> None:
    escape = _api_extension().escape_shape_stars
    assert escape("shape (*batch, classes)") == r"shape (\*batch, classes)"
    assert escape("broadcast(*batch_p, *batch_q)") == r"broadcast(\*batch_p, \*batch_q)"
    assert escape("this is *not* renormalised") == "this is *not* renormalised"
    assert escape("``f(*args)`` and :math:`(*a)`") == "``f(*args)`` and :math:`(*a)`"


def test_issue13_every_tutorial_is_in_the_toctree_and_ends_with_something_to_run() -> None:
    toctree = (DOCS / "tutorials" / "index.md").read_text()
    for name in TUTORIALS:
        assert f"\n{name}\n" in toctree, name
        text = (DOCS / "tutorials" / f"{name}.md").read_text()
        assert text.count("```{code-cell} python") >= 1, name
        assert "\n## Try it\n" in text, name
    on_disk = {p.stem for p in (DOCS / "tutorials").glob("*.md")} - {"index"}
    assert on_disk == set(TUTORIALS)


def test_issue13_built_reference_has_a_page_with_math_for_every_function() -> None:
    _built("api/index.html")
    for name in crossent.__all__:
        obj = getattr(crossent, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            assert f'id="crossent.{name}"' in (SITE / "api" / "index.html").read_text(), name
            continue
        page = SITE / "api" / "generated" / f"crossent.{name}.html"
        assert page.exists(), name
        if inspect.isfunction(obj):
            assert 'class="math' in page.read_text(), name


def test_issue13_every_tutorial_page_shows_executed_output() -> None:
    _built("index.html")
    for name in TUTORIALS:
        html = (SITE / "tutorials" / f"{name}.html").read_text()
        assert "cell_output" in html, name  # the cells ran at build time
        assert "Traceback" not in html, name
        assert "Warning" not in html, name  # no RuntimeWarning printed by a cell


def _typeset_math(driver: Any) -> tuple[int, int]:
    """Wait for MathJax to finish; (typeset formulas, formulas with errors)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return typeof MathJax !== 'undefined' && MathJax.startup !== undefined "
            "&& MathJax.startup.promise !== undefined;"
        )
    )
    driver.set_script_timeout(60)
    return tuple(
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "MathJax.startup.promise.then(() => done(["
            "document.querySelectorAll('mjx-container').length,"
            "document.querySelectorAll('mjx-merror').length]));"
        )
    )


@pytest.mark.parametrize(
    ("page", "min_images"),
    [("index.html", 0), ("tutorials/calibration.html", 2)],
)
def test_issue13_site_pages_load_in_headless_chromium(
    tmp_path: Path, page: str, min_images: int
) -> None:
    path = _built(page)
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(path.as_uri())
        assert "crossent" in driver.title
        formulas, errors = _typeset_math(driver)
        assert formulas > 0
        assert errors == 0
        found = images(driver)
        assert len(found) >= min_images
        for src, complete, width, height in found:
            assert complete, src
            assert width > 0, src
            assert height > 0, src
        if min_images:
            assert max(width for _, _, width, _ in found) > 200
        assert severe_console_messages(driver) == []
