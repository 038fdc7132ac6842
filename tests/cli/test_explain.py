"""`crossent explain`: the seeds' tables, with numbers checked against direct formulas."""

from __future__ import annotations

import math
import re

import pytest

from crossent.cli import main

pytest.importorskip("rich")


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["explain", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_distributions_table_and_identity(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--p", "1,0,0", "--q", "0.7,0.2,0.1"])
    assert f"{-math.log(0.7):.4f}" in out  # surprisal and contribution of outcome 0
    assert f"{-math.log(0.1):.4f}" in out  # surprisal of outcome 2 (contribution 0)
    assert f"H(P)     = {0:.6f} nats" in out
    assert f"H(P, Q)  = {-math.log(0.7):.6f} nats" in out
    assert re.search(r"H\(P, Q\) = H\(P\) \+ D\(P\|\|Q\):.*\(holds\)", out)


def test_bits_and_a_soft_target(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--p", "0.5,0.5", "--q", "0.25,0.75", "--bits"])
    h_pq = -(0.5 * math.log2(0.25) + 0.5 * math.log2(0.75))
    assert f"H(P, Q)  = {h_pq:.6f} bits" in out
    assert "H(P)     = 1.000000 bits" in out
    assert "(holds)" in out


def test_q_of_zero_where_p_is_positive_is_infinite(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--p", "0.5,0.5", "--q", "1,0"])
    assert "H(P, Q)  = inf nats" in out
    assert "(holds)" in out


def test_logits_show_softmax_and_the_p_minus_y_gradient(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--logits", "2,1,0.1", "--label", "0"])
    z = [2.0, 1.0, 0.1]
    total = sum(math.exp(v) for v in z)
    p = [math.exp(v) / total for v in z]
    for k, pk in enumerate(p):
        assert f"{pk:.4f}" in out
        assert f"{pk - (k == 0):+.4f}" in out
    assert f"loss = -sum y log p = {-math.log(p[0]):.6f} nats" in out


def test_temperature_reshapes(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--logits", "2,1,0.1", "--label", "0", "--temperature", "2"])
    z = [1.0, 0.5, 0.05]
    total = sum(math.exp(v) for v in z)
    assert f"{math.exp(1.0) / total:.4f}" in out
    assert "flatter" in out
    out = _run(capsys, ["--p", "1,0", "--q", "0.8,0.2", "--temperature", "0.5"])
    assert f"{0.64 / 0.68:.4f}" in out
    assert "sharper" in out


def test_binary(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["--binary", "--y", "1", "--p", "0.9"])
    assert re.search(rf"loss += {-math.log(0.9):.6f} nats", out)  # aligned with the terms
    assert "p - y = -0.100000" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--p", "1,0,0", "--q", "0.7,0.2"], "classes"),
        (["--p", "1,0", "--q", "0.7,0.2"], "sum to 1"),
        (["--p", "a,b", "--q", "0.7,0.3"], "comma-separated numbers"),
        (["--q", "1,0"], "explain needs --p"),
        (["--logits", "1,2"], "needs --label"),
        (["--logits", "1,2", "--label", "5"], "--label must be a class in [0, 2)"),
        (["--binary", "--y", "1"], "--binary needs"),
        (["--binary", "--y", "1", "--p", "1.5"], "[0, 1]"),
        (["--p", "1,0", "--q", "0.5,0.5", "--temperature", "0"], "--temperature must be positive"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
