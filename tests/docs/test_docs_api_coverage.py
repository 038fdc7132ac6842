"""Every public name of ``crossent`` and ``crossent.torch`` is in the API reference.

The reference page is generated (``docs/_ext/crossent_api.py``) from the packages'
``__all__``; these tests fail when a public name is left out of it, lands under the
wrong module, has no docstring, or (on a built site, ``python3 tasks.py docs``) has no
page showing that docstring's summary.  ``crossent.torch`` is checked where torch is
installed (the reference leaves its section out otherwise).
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SITE = ROOT / "site"
PACKAGES = ["crossent", "crossent.torch"]


def _api_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crossent_api", DOCS / "_ext" / "crossent_api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(name: str) -> ModuleType:
    if name == "crossent.torch":
        pytest.importorskip("torch")
    return importlib.import_module(name)


def documented_names(rst: str) -> dict[str, set[str]]:
    """The names the reference page documents, by the ``currentmodule`` they are under."""
    found: dict[str, set[str]] = {}
    module = ""
    for line in rst.splitlines():
        if line.startswith(".. currentmodule:: "):
            module = line.split()[-1]
        elif match := re.fullmatch(r"   (\w+)|\.\. py:data:: (\w+)", line):
            found.setdefault(module, set()).add(match.group(1) or match.group(2))
    return found


def _words(text: str) -> str:
    """The words of a text, markup and punctuation dropped: `` a b c `` for comparison."""
    return " " + " ".join(re.findall(r"[A-Za-z0-9_]+", text)) + " "


def _summary_words(obj: object) -> str:
    """The first words of the docstring's summary, before any math (which MathJax renders)."""
    summary = (inspect.getdoc(obj) or "").split("\n\n")[0]
    prose = re.split(r":math:|\.\. math|[$\\]", summary)[0]
    prose = re.sub(r":\w+:`~?([^`]*)`", r"\1", prose)  # :func:`x` shows as x
    return " ".join(_words(prose).split()[:8])


def test_documented_names_reads_the_generated_page() -> None:
    rst = "\n".join(
        [
            ".. currentmodule:: crossent",
            "",
            ".. autosummary::",
            "   :toctree: generated",
            "",
            "   entropy",
            "",
            ".. py:data:: __version__",
            ".. currentmodule:: crossent.torch",
            "   cross_entropy",
        ]
    )
    assert documented_names(rst) == {
        "crossent": {"entropy", "__version__"},
        "crossent.torch": {"cross_entropy"},
    }


@pytest.mark.parametrize("name", PACKAGES)
def test_docs_api_reference_lists_every_public_name(name: str) -> None:
    package = _package(name)
    public = list(package.__all__)
    assert len(public) == len(set(public)), f"{name}.__all__ repeats a name"
    assert all(hasattr(package, item) for item in public)
    documented = documented_names(_api_extension().reference_rst())
    missing = set(public) - documented.get(name, set())
    assert not missing, f"{name}: public names missing from the API reference: {sorted(missing)}"


@pytest.mark.parametrize("name", PACKAGES)
def test_docs_every_public_callable_has_a_docstring_summary(name: str) -> None:
    package = _package(name)
    for item in package.__all__:
        obj = getattr(package, item)
        if callable(obj):
            assert _summary_words(obj), f"{name}.{item} has no docstring summary"


@pytest.mark.parametrize("name", PACKAGES)
def test_docs_built_reference_shows_each_public_docstring(name: str) -> None:
    package = _package(name)
    index = SITE / "api" / "index.html"
    if not index.exists():
        pytest.skip(f"{index} is not built (python3 tasks.py docs)")
    listing = index.read_text()
    for item in package.__all__:
        obj = getattr(package, item)
        if not callable(obj):  # data: documented on the index page itself
            assert f'id="{name}.{item}"' in listing, f"{name}.{item}"
            continue
        page = SITE / "api" / "generated" / f"{name}.{item}.html"
        assert page.exists(), f"no reference page for {name}.{item}"
        assert f"{name}.{item}.html" in listing, f"{name}.{item} not linked from the index"
        text = _words(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())))
        summary = _summary_words(obj)
        assert f" {summary} " in text, f"{name}.{item}: the page lacks its summary {summary!r}"


def _public_members(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties that crossent's own classes give ``cls``."""
    found: dict[str, object] = {}
    for klass in cls.__mro__:
        if klass.__module__.startswith("crossent"):
            for item, value in vars(klass).items():
                callable_member = inspect.isfunction(value) or isinstance(
                    value, classmethod | staticmethod | property
                )
                if not item.startswith("_") and callable_member:
                    found.setdefault(item, value)
    return list(found.items())


@pytest.mark.parametrize("name", PACKAGES)
def test_docs_every_public_method_has_a_docstring(name: str) -> None:
    """A method without a docstring would be missing from its class's reference page."""
    package = _package(name)
    undocumented = []
    for item in package.__all__:
        cls = getattr(package, item)
        if not inspect.isclass(cls):
            continue
        for member, value in _public_members(cls):
            if getattr(value, "__doc__", None):
                continue
            if member == "forward" and "``forward(" in (cls.__doc__ or ""):
                continue  # a module's forward, stated in its class docstring
            undocumented.append(f"{name}.{item}.{member}")
    assert not undocumented, f"public methods without a docstring: {undocumented}"


@pytest.mark.parametrize("name", PACKAGES)
def test_docs_built_class_pages_document_their_methods(name: str) -> None:
    package = _package(name)
    if not (SITE / "api" / "index.html").exists():
        pytest.skip("the site is not built (python3 tasks.py docs)")
    members = _api_extension().class_members
    for item in package.__all__:
        cls = getattr(package, item)
        if not inspect.isclass(cls):
            continue
        page = (SITE / "api" / "generated" / f"{name}.{item}.html").read_text()
        listed = members(cls)
        for member in [*listed["methods"], *listed["properties"]]:
            assert f'id="{name}.{item}.{member}"' in page, f"{name}.{item}.{member}"
