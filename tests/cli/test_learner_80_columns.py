"""`crossent demo` and `crossent explain` fit an 80-column terminal.

Their notes were single long lines (up to 171 characters) that a terminal breaks
mid-word, and the distillation table was 82 wide.  Every line now fits in 80 columns,
with NO_COLOR set and with rich or the plain-text fallback alike; the words are the
same (the tests that quote the notes compare whitespace-normalised text).
"""

from __future__ import annotations

import pytest

from crossent.cli import main
from crossent.cli._demo import TOPICS

WIDTH = 80

EXPLAINS = [
    ["--p", "1,0,0", "--q", "0.7,0.2,0.1"],
    ["--p", "1,0,0", "--q", "0.7,0.2,0.1", "--kl"],
    ["--p", "0.5,0.5", "--q", "1,0", "--kl", "--bits"],
    ["--logits", "2,1,0.1", "--label", "0"],
    ["--logits", "2,1,0.1", "--label", "0", "--smoothing", "0.1"],
    ["--logits", "2,1,0.1", "--label", "0", "--hinge"],
    ["--logits", "2,1,0.1", "--label", "0", "--temperature", "2"],
    ["--binary", "--y", "1", "--p", "0.9"],
    ["--binary", "--y", "0.3", "--p", "0.9", "--bits"],
    ["--p", "0.7,0.3", "--q", "0.5,0.5", "--temperature", "2"],
]


def _too_wide(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]


@pytest.fixture(autouse=True)
def _no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_learner_demo_topic_fits_80_columns(capsys: pytest.CaptureFixture[str], topic: str) -> None:
    assert main(["demo", topic]) == 0
    out = capsys.readouterr().out
    assert _too_wide(out) == []


@pytest.mark.parametrize("args", EXPLAINS, ids=[" ".join(a) for a in EXPLAINS])
@pytest.mark.parametrize("rich", [True, False], ids=["rich", "plain"])
def test_learner_explain_fits_80_columns(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    rich: bool,
) -> None:
    if not rich:  # the fallback when rich is not installed
        monkeypatch.setitem(__import__("sys").modules, "rich.console", None)
    assert main(["explain", *args]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    assert _too_wide(out) == []


def test_learner_explain_wrapped_line_keeps_its_words(capsys: pytest.CaptureFixture[str]) -> None:
    """The long 'loss =' line is wrapped at a space, its number on the first line."""
    assert main(["explain", "--logits", "2,1,0.1", "--label", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("loss = "))
    assert lines[first].startswith("loss = -sum y log p = 0.417030 nats")
    joined = " ".join(" ".join(lines[first : first + 2]).split())
    assert "(computed as logsumexp(z) - sum y z, never log(softmax(z)))" in joined
