"""Issue 13, CI time: the documentation build reads (executes) last the pages whose
examples call kernels that the Numba cache harness compiles too
(``docs/_ext/crossent_order.py``), so that beside the harness (``tasks.py test``) it
loads them from the cache the harness seeds instead of compiling them again.

Pinned: every page named there exists and runs code (a renamed page would silently
fall back to its sorted place), the pages that share no kernel come first, and the
order is sorted within a rank.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import time
from pathlib import Path
from types import ModuleType

import pytest

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


def test_issue13_the_harness_compiles_the_pages_kernels_in_their_reading_order() -> None:
    """Each rank of pages waits for one section of the harness (``WAIT_FOR``), and the
    harness runs those sections in that order, before ``kernel_bits`` (which no page
    needs): it ran before ``totals_bits`` and ``temperature_bits``, and the build compiled
    their kernels beside the harness."""
    import numba_cache_harness as harness

    order = _order_extension()
    assert set(order.WAIT_FOR) == set(order.LATE.values())
    sections = list(harness.SECTIONS)
    places = [sections.index(order.WAIT_FOR[rank]) for rank in sorted(order.WAIT_FOR)]
    assert places == sorted(places), sections
    assert places[-1] < sections.index("kernel_bits"), sections
    marker = order.seeded_marker(Path("cache"), "totals_bits")
    assert marker == Path("cache") / (harness.SEEDED + "totals_bits")


def test_issue13_pages_wait_for_the_harness_only_while_it_runs_and_within_a_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = _order_extension()
    monkeypatch.setattr(order, "WAIT_BUDGET", 0.3)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CROSSENT_NUMBA_CACHE_RUNS", raising=False)

    def waited(page: str) -> float:
        start = time.monotonic()
        order.wait_for_harness(None, page, [""])
        return time.monotonic() - start

    assert waited("tutorials/clipping") < 0.1  # no harness running ahead
    monkeypatch.setenv("CROSSENT_NUMBA_CACHE_RUNS", str(tmp_path))
    assert waited("tutorials/softmax") < 0.1  # rank 0: needs none of its kernels
    order.seeded_marker(tmp_path, "totals_bits").touch()
    assert waited("tutorials/clipping") < 0.1  # seeded
    assert 0.25 < waited("tutorials/perplexity") < 1.0  # not seeded: the budget
    assert waited("differs") < 0.1  # the budget is spent


def test_issue13_the_cold_process_marks_each_section_seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness's driver, run here in this process (an empty Numba cache: nothing to
    copy), touches the marker of every section in the seeded folder, a failed one too."""
    import numba_cache_harness as harness

    compiled, suite = tmp_path / "compiled", tmp_path / "suite"
    compiled.mkdir()
    suite.mkdir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(compiled))

    def in_process(script: str, **_: object) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(script, "<driver>", "exec"), {"__name__": "__main__"})
        return out.getvalue()

    monkeypatch.setattr(harness, "run_python", in_process)
    sections = [("fused_cache", "print(1)"), ("totals_bits", "raise ValueError")]
    outputs = harness._run_once(sections, compiled, seed=suite)
    assert outputs["fused_cache"]["stdout"] == "1\n"
    assert outputs["totals_bits"]["error"]
    assert sorted(path.name for path in suite.iterdir()) == [
        harness.SEEDED + "fused_cache",
        harness.SEEDED + "totals_bits",
    ]

    def crashed(script: str, **_: object) -> str:
        raise AssertionError("the process failed")

    monkeypatch.setattr(harness, "run_python", crashed)
    with pytest.raises(AssertionError, match="failed"):
        harness._run_once([("measure_bits", "")], compiled, seed=suite)
    assert (suite / (harness.SEEDED + "measure_bits")).exists()  # the pages wait no longer
