"""`crossent explain --p P` alone: the entropy H(P) outcome by outcome.

The seeds start from the surprisal of one event and the entropy of a distribution
(`surprise(0.125)` is 3 bits, `entropy([0.9, 0.1])` is 0.47 bits) before any model Q;
`explain` answered `--p 0.9,0.1` with "explain needs --p and --q", and the entropy
tutorial's "Try it" worked around it with `--p 0.5,0.5 --q 0.5,0.5`. Every number is
checked against mpmath at 50 digits and against crossent's own `entropy`; nothing else
of crossent is called except through the command line (in process).
"""

from __future__ import annotations

import re

import mpmath
import pytest

import crossent
from crossent.cli import main

MP = mpmath.mp.clone()
MP.dps = 50


def _ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    # rich wraps long lines where the terminal is narrow, and draws the table's borders
    return " ".join(re.sub("[\u2500-\u257f]", " ", out).split())


def _bad(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["explain", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("bits", [True, False])
def test_learner_entropy_of_p_alone_against_mpmath(
    capsys: pytest.CaptureFixture[str], bits: bool
) -> None:
    out = _ok(capsys, ["--p", "0.9,0.1", *(["--bits"] if bits else [])])
    log = (lambda x: MP.log(MP.mpf(x), 2)) if bits else (lambda x: MP.log(MP.mpf(x)))
    unit = "bits" if bits else "nats"
    h = -(MP.mpf("0.9") * log("0.9") + MP.mpf("0.1") * log("0.1"))
    assert f"entropy H(P) in {unit}" in out
    assert f"H(P) = {float(h):.6f} {unit}" in out  # 0.468996 bits, the seed's 0.47
    assert (
        f"{float(h):.6f}" == f"{float(crossent.entropy([0.9, 0.1], base=2 if bits else None)):.6f}"
    )
    for p in ("0.9", "0.1"):  # each outcome's surprisal and its share
        assert f"{float(-log(p)):.4f} {float(-MP.mpf(p) * log(p)):.4f}" in out
    most = log(2)
    assert f"= {float(most):.6f} {unit}, for the uniform" in out
    assert f"this P is {float(most - h):.6f} {unit} below it" in out
    perplexity = MP.exp(-(MP.mpf("0.9") * MP.log("0.9") + MP.mpf("0.1") * MP.log("0.1")))
    assert f"H(P) = {float(perplexity):.4f}:" in out  # 1.3841 in either unit
    assert "--q Q for the cross-entropy" in out


def test_learner_entropy_uniform_and_certain(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["--p", ",".join(["0.04"] * 25)])
    assert f"H(P) = {float(MP.log(25)):.6f} nats" in out  # 3.218876: the maximum, log 25
    assert "this P is uniform, so H(P) is that maximum" in out  # not "4.4e-16 below it"
    assert "fair choice among 25.0000 equally likely outcomes" in out
    out = _ok(capsys, ["--p", "1,0", "--bits"])
    assert "H(P) = 0.000000 bits" in out
    assert "1 0 inf 0.0000" in out  # -log2 0 = inf, but 0 log 0 = 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--p", "0.125"], "--p 0.125,0.875"),  # the seed's surprise(0.125)
        (["--p", "0.5,0.5", "--kl"], "--kl needs --q"),
        (["--p", "0.5,0.5", "--temperature", "2"], "--temperature needs --q"),
        (["--p", "0.5,0.4"], "must sum to 1"),
        (["--q", "0.5,0.5"], "explain needs --p (a distribution: its entropy)"),
    ],
)
def test_learner_entropy_refusals_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _bad(capsys, argv)


@pytest.mark.parametrize(
    ("argv", "row"),
    [
        # the P and Q columns printed ":.4g": 0.99999 read "1" beside a surprisal of
        # 1.4427e-05 bits, and the logits 2.00001 and 2 read "2" and "2"
        (["--p", "0.99999,0.00001", "--q", "0.5,0.5", "--bits"], "0 0.99999 0.5 1.0000"),
        (["--p", "0.5,0.5", "--q", "0.99999,0.00001", "--kl"], "0 0.5 0.99999"),
        (["--logits", "2.00001,2", "--label", "0"], "0 2.00001 0.5000 1 -0.5000"),
        (["--logits", "2.00001,2", "--label", "0", "--hinge"], "0 2.00001 0.5000"),
    ],
)
def test_learner_explain_shows_the_numbers_as_typed(
    capsys: pytest.CaptureFixture[str], argv: list[str], row: str
) -> None:
    assert row in _ok(capsys, argv)
