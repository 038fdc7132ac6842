"""Issue 13, CI time: the Numba cache tests' two processes, run ahead of pytest.

``tasks.py test`` runs ``numba_cache_harness.main`` beside the documentation build and
hands its folder to pytest (``CROSSENT_NUMBA_CACHE_RUNS``). The fixture must read those
results only if they are the output of the scripts registered in this run, and ``main``
must register every section, as the test modules do under pytest. The processes
themselves are replaced here by a stand-in that records its calls (no Numba needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import numba_cache_harness as harness


def _stand_in(calls: list[Path]) -> object:
    def run_registered(cache: Path, seed: Path | None = None) -> harness.CacheRuns:
        calls.append(cache)
        out = {name: {"stdout": f"run {len(calls)}", "error": None} for name in harness._REGISTERED}
        return harness.CacheRuns(out, out)

    return run_registered


def test_issue13_results_are_read_only_for_the_scripts_that_made_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(harness, "run_registered", _stand_in(calls))
    monkeypatch.setattr(harness, "_REGISTERED", {"numba_cache": "print(1)"})
    first = harness.run_registered_once(tmp_path)
    assert harness.run_registered_once(tmp_path) == first  # read, not run again
    assert len(calls) == 1
    # Another script (an edited test, or a run ahead of other sources): run anew.
    monkeypatch.setattr(harness, "_REGISTERED", {"numba_cache": "print(2)"})
    assert harness.run_registered_once(tmp_path).cold["numba_cache"]["stdout"] == "run 2"
    # More sections than the run ahead had: run anew too.
    monkeypatch.setattr(harness, "_REGISTERED", {"numba_cache": "print(2)", "fused_cache": ""})
    assert set(harness.run_registered_once(tmp_path).cold) == {"numba_cache", "fused_cache"}
    assert len(calls) == 3


def test_issue13_main_registers_every_section_as_pytest_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[dict[str, str]] = []

    def run_registered_once(shared: Path, suite_cache: Path | None = None) -> None:
        assert shared == tmp_path
        ran.append(dict(harness._REGISTERED))

    pytest.importorskip("numba")  # as the test modules it imports
    pytest.importorskip("llvmlite.binding")
    registered = dict(harness._REGISTERED)  # by this pytest run's test modules, if collected
    monkeypatch.setattr(harness, "_REGISTERED", {})
    monkeypatch.setattr(harness, "run_registered_once", run_registered_once)
    harness.main(tmp_path)
    (scripts,) = ran
    assert list(scripts) == list(harness.SECTIONS)
    for name, script in registered.items():
        assert scripts[name] == script, name


def test_issue13_harness_processes_outlast_the_default_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cold process compiles every section's kernels; beside the docs build on a
    loaded 2-core machine it ran past ``run_python``'s 600 s and was killed, its work
    lost, and a test worker then ran both processes again (2026-12-05, load average 12:
    76 s of CPU). Its limit is longer than the CI job's 15 minutes, which ends a hang."""
    seen: list[float] = []

    def run_python(
        script: str, *, numba_cache: Path, debug_cache: bool = False, **kw: float
    ) -> str:
        seen.append(kw.get("timeout", 600))
        return harness._MARKER + "{}"

    monkeypatch.setattr(harness, "run_python", run_python)
    harness._run_once([("numba_cache", "print(1)")], Path("unused"))
    (timeout,) = seen  # one process
    assert timeout > 15 * 60
