"""`crossent explain`: the notes a learner needs beside the numbers.

Main printed 0.00e+00 in the scaling table (`--logits 100,0 --label 0 --hinge`, scale 8:
the loss is log(1 + e^-800)) and under it "its loss and gradient shrink but stay above
0". The exact value, from mpmath, is positive and below the smallest positive float64,
which is what the note now says. With a soft binary label (`--binary --y 0.3 --p 0.3`)
main printed a loss of 0.610864 at p = y with no word that this is the floor H(y), not an
error of the model; the note names H(y) and the excess D(y||p), both from mpmath here.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from crossent.cli import main

MP = mpmath.mp.clone()
MP.dps = 40


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return " ".join(out.split())


@pytest.mark.parametrize("bits", [False, True])
def test_learner_hinge_table_zero_that_underflowed_is_not_called_zero(
    capsys: pytest.CaptureFixture[str], bits: bool
) -> None:
    out = _run(
        capsys, ["explain", "--logits", "100,0", "--label", "0", "--hinge"] + ["--bits"] * bits
    )
    exact = MP.log1p(MP.exp(-800)) / (MP.log(2) if bits else 1)  # the loss at scale 8
    tiniest = float(np.nextafter(0.0, 1.0))
    assert 0 < exact < MP.mpf(tiniest) / 2  # rounds to 0 in float64
    assert float(exact) == 0.0
    assert "0.00e+00" in out
    assert "The 0.00e+00 at x8 is not 0" in out
    assert f"below the smallest positive float64 ({tiniest:.1e})" in out
    # at scale 4 (e^-400) the loss is still a float64: no note for it
    assert float(MP.log1p(MP.exp(-400))) > 0
    assert "at x4" not in out


def test_learner_hinge_no_underflow_note_when_nothing_underflows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _run(capsys, ["explain", "--logits", "3,1,0.5", "--label", "0", "--hinge"])
    assert "0.00e+00" not in out
    assert "is not 0" not in out
    assert "never stops pushing" in out


@pytest.mark.parametrize(
    ("y", "p", "bits"), [("0.3", "0.9", False), ("0.3", "0.3", False), ("0.3", "0.9", True)]
)
def test_learner_binary_soft_label_names_its_floor(
    capsys: pytest.CaptureFixture[str], y: str, p: str, bits: bool
) -> None:
    """A soft label's loss cannot reach 0: main printed 0.610864 at p = y with no word why."""
    out = _run(capsys, ["explain", "--binary", "--y", y, "--p", p] + ["--bits"] * bits)
    ln = MP.log(2) if bits else MP.mpf(1)
    yy, pp = MP.mpf(y), MP.mpf(p)
    floor = -(yy * MP.log(yy) + (1 - yy) * MP.log(1 - yy)) / ln
    excess = (yy * MP.log(yy / pp) + (1 - yy) * MP.log((1 - yy) / (1 - pp))) / ln
    unit = "bits" if bits else "nats"
    assert f"the entropy H(y) = {float(floor):.6f} {unit}, not 0" in out
    assert f"the rest, {float(excess):.6f} {unit}, is D(y||p)" in out


@pytest.mark.parametrize("y", ["0", "1"])
def test_learner_binary_hard_label_has_no_floor_note(
    capsys: pytest.CaptureFixture[str], y: str
) -> None:
    out = _run(capsys, ["explain", "--binary", "--y", y, "--p", "0.9"])
    assert "soft label" not in out
