"""`crossent explain` and `crossent demo` read by a learner and attacked (issue 13, explain2).

* rich fitted explain's tables to ``$COLUMNS`` (or a narrow terminal) by cutting cells:
  at COLUMNS=40 the softmax 0.6590 was ``0.65…`` and the gradient -0.3410 ``-0.…``; at 20
  the gradient column was empty; at 0 nothing at all was printed, exit 0.
* Six decimals printed a loss of 3.72e-44 (``--logits 100,0 --label 0``) as 0.000000,
  beside a table that showed 3.72e-44 and a note that cross-entropy stays above 0.
* ``:g`` kept six digits of a typed value: ``--smoothing 1.0000001`` was refused as
  "got 1", ``--temperature 1.0000001`` titled "T = 1", ``--p 0.9999999999999999`` "p = 1".
* The demo's distillation and hinge tables gave no unit.
"""

from __future__ import annotations

import io
import math
import re

import mpmath
import pytest

from crossent.cli import main
from crossent.cli._explain import Output

pytest.importorskip("rich")


def _explain(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["explain", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("columns", ["40", "20", "0"])
def test_explain_table_numbers_whole_whatever_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    out = _explain(capsys, ["--logits", "2,1,0.1", "--label", "0"])
    z = [2.0, 1.0, 0.1]
    total = math.fsum(math.exp(v) for v in z)
    for k, v in enumerate(z):
        p = math.exp(v) / total
        assert re.search(rf"│ +{p:.4f} │", out)  # a whole cell
        assert f"{p - (k == 0):+.4f}" in out
    assert "…" not in out
    assert f"loss = -sum y log p = {math.log(total) - 2:.6f} nats" in out


def test_a_table_wider_than_80_columns_is_not_cut() -> None:
    stream = io.StringIO()
    cells = [f"{k}.{'1' * 20}" for k in range(5)]  # five 22-character numbers: 116 wide
    Output(stream).table("wide", [f"c{k}" for k in range(5)], [cells])
    text = stream.getvalue()
    assert "…" not in text
    for cell in cells:
        assert cell in text


def test_a_tiny_loss_is_not_printed_as_zero(capsys: pytest.CaptureFixture[str]) -> None:
    exact = mpmath.log1p(mpmath.exp(-100))  # softmax CE of [100, 0], label 0
    out = _explain(capsys, ["--logits", "100,0", "--label", "0"])
    assert f"loss = -sum y log p = {float(exact):.6e} nats" in out
    assert f"{-float(exact):+.4e}" in out  # the gradient of class 0, p - 1
    out = _explain(capsys, ["--logits", "100,0", "--label", "0", "--hinge"])
    assert f"cross-entropy = {float(exact):.6e} nats" in out
    p = 0.9999999999999999
    exact = -mpmath.log(mpmath.mpf(p))
    out = _explain(capsys, ["--binary", "--y", "1", "--p", repr(p)])
    assert f"loss                = {float(exact):.6e} nats" in out
    assert f"p - y = {p - 1:+.6e}" in out
    assert f"p = {p!r}," in out  # not "p = 1"


def test_an_exact_zero_keeps_its_fixed_form(capsys: pytest.CaptureFixture[str]) -> None:
    out = _explain(capsys, ["--p", "1,0", "--q", "1,0"])
    assert "D(P||Q)  = 0.000000 nats" in out


def test_typed_values_are_shown_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--logits", "2,1", "--label", "0", "--smoothing", "1.0000001"]) == 2
    assert "got 1.0000001" in capsys.readouterr().err
    out = _explain(capsys, ["--logits", "2,1", "--label", "0", "--temperature", "1.0000001"])
    assert "at T = 1.0000001" in out
    assert "T = 1:" not in out


@pytest.mark.parametrize("topic", ["distillation", "hinge"])
def test_demo_tables_state_their_unit(capsys: pytest.CaptureFixture[str], topic: str) -> None:
    assert main(["demo", topic]) == 0
    heading = capsys.readouterr().out.split("\n")[2]
    assert "nats" in heading
