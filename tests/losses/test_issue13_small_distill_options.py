"""Issue 13, "Small inputs": distillation's options live below both of its paths.

``_distill`` (the full path) imports ``_small_distill`` (its small-call shortcut); both
check the options with ``_distill_options``, so the shortcut does not import the full
path back (no import cycle), and the defaults it assumes are those of the signature.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from crossent.losses import _distill, _distill_options, _small_distill


def test_issue13_distill_keywords_are_prepare_distillations_defaults() -> None:
    parameters = inspect.signature(_distill.prepare_distillation).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    assert defaults == _distill_options.KEYWORDS


def _imported(module: object) -> set[str]:
    """The modules a module imports from its own package (``from . import x``,
    ``from .x import y``)."""
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_issue13_small_distill_does_not_import_the_full_path() -> None:
    assert "_small_distill" in _imported(_distill)
    assert "_distill" not in _imported(_small_distill)
    assert "_distill_options" in _imported(_small_distill) & _imported(_distill)
