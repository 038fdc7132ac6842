"""Issue 13 hostile pass: ``crossent explain`` takes values that begin with a minus sign.

On main (fa36995) ``crossent explain --logits -1,2 --label 0`` failed with "argument
--logits: expected one argument": argparse reads ``-1,2`` (and ``-1e309,0``,
``-1e-3``) as an option, since it matches neither ``-1`` nor ``-1.5``; only
``--logits=-1,2`` worked, which the help does not say.  Logits are often negative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from crossent.cli import main

pytest.importorskip("rich")


def _loss(capsys: pytest.CaptureFixture[str], argv: list[str]) -> float:
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("loss = "))
    return float(line.split("=")[2].split()[0])


@pytest.mark.parametrize(
    ("logits", "label"), [("-1,2", 0), ("-1,2,-0.5", 2), ("-.5,-2e-1", 1), ("-3", 0)]
)
def test_negative_logits_are_values(
    capsys: pytest.CaptureFixture[str], logits: str, label: int
) -> None:
    z = np.array([float(v) for v in logits.split(",")])
    expected = logsumexp(z) - z[label]
    assert _loss(capsys, ["--logits", logits, "--label", str(label)]) == pytest.approx(
        expected, abs=5e-7
    )


def test_negative_logits_before_the_label_and_after_an_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    got = _loss(capsys, ["--bits", "--logits", "-1,2", "--label", "1"])
    assert got == pytest.approx((math.log1p(math.exp(-3))) / math.log(2), abs=5e-7)


@pytest.mark.parametrize("option", ["--temperature", "--smoothing"])
def test_a_negative_scalar_is_refused_by_its_check_not_by_argparse(
    capsys: pytest.CaptureFixture[str], option: str
) -> None:
    code = main(["explain", "--logits", "1,2", "--label", "0", option, "-1e-3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "expected one argument" not in err
    assert option in err
    assert "-0.001" in err
