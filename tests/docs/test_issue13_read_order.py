"""Issue 13, CI time: the documentation build reads (executes) last the pages whose
examples call kernels that the Numba cache harness compiles too
(``docs/_ext/crossent_order.py``), so that beside the harness (``tasks.py test``) it
loads them from the cache the harness seeds instead of compiling them again.

Pinned: every page named there exists and runs code (a renamed page would silently
fall back to its sorted place), the pages that share no kernel come first, and the
order is sorted within a rank.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _order_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "crossent_order", DOCS / "_ext" / "crossent_order.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages_with_code() -> list[str]:
    return sorted(
        str(page.relative_to(DOCS).with_suffix(""))
        for page in DOCS.rglob("*.md")
        if "_build" not in page.parts and "```{code-cell}" in page.read_text(encoding="utf-8")
    )


def test_issue13_pages_sharing_kernels_with_the_harness_are_read_last() -> None:
    late = _order_extension().LATE
    pages = _pages_with_code()
    assert set(late) <= set(pages), sorted(set(late) - set(pages))
    names = sorted([*pages, "index", "api/index"])  # Sphinx's order: sorted
    _order_extension().order_pages(None, None, names)
    ranks = [late.get(name, 0) for name in names]
    assert ranks == sorted(ranks), names
    for rank in set(ranks):
        within = [name for name in names if late.get(name, 0) == rank]
        assert within == sorted(within)
    assert names[: len(names) - len(late)] == sorted(set(names) - set(late))
    assert names[-1] == "tutorials/perplexity"


def test_issue13_every_page_calling_a_measure_is_read_after_the_harness_compiled_it() -> None:
    """A page whose code calls one of ``crossent.info``'s measures (their float64 row
    kernels: the harness's ``fused_cache`` section) is ranked 1 or later: the tutorial
    on distillation, whose last cell calls ``kl_divergence``, was read first and compiled
    those kernels at the same time as the harness."""
    import crossent.info

    measures = set(crossent.info.__all__)
    late = _order_extension().LATE
    for name in _pages_with_code():
        text = (DOCS / f"{name}.md").read_text(encoding="utf-8")
        code = " ".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S))
        called = sorted(set(re.findall(r"crossent\.(\w+)\(", code)) & measures)
        if called:
            assert late.get(name, 0) >= 1, (name, called)
