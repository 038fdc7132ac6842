"""`crossent demo`: a topic for every idea of the tutorials, every number against mpmath.

The oracle is mpmath at 50 digits, written from the textbook formulas; crossent is only
reached through the command line.
"""

from __future__ import annotations

import re

import mpmath
import pytest

from crossent.cli import main

MP = mpmath.mp.clone()
MP.dps = 50

# The ideas a learner meets in the tutorials, each with the demo topic that shows it.
SEED_TOPICS = [
    "surprisal",
    "entropy",
    "cross-entropy",
    "kl",
    "binary",
    "softmax",
    "temperature",
    "smoothing",
    "weights",
    "distillation",
    "perplexity",
    "calibration",
    "hinge",
]


def _demo(capsys: pytest.CaptureFixture[str], topic: str) -> str:
    assert main(["demo", topic]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return " ".join(out.split())


def _softmax(z: list[object], t: object = 1) -> list[mpmath.mpf]:
    e = [MP.exp(MP.mpf(v) / MP.mpf(t)) for v in z]
    return [v / MP.fsum(e) for v in e]


def _ce(p: list[mpmath.mpf], q: list[mpmath.mpf]) -> mpmath.mpf:
    return -MP.fsum(a * MP.log(b) for a, b in zip(p, q, strict=True) if a > 0)


def _h(p: list[mpmath.mpf]) -> mpmath.mpf:
    return _ce(p, p)


def _f(value: object, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def test_learner_every_tutorial_idea_has_a_demo_topic(capsys: pytest.CaptureFixture[str]) -> None:
    """Main had no topic for label smoothing, class weights, distillation or the hinge loss."""
    assert main(["demo", "--help"]) == 0
    listed = capsys.readouterr().out
    for topic in SEED_TOPICS:
        assert topic in listed, topic


@pytest.mark.parametrize("eps", ["0", "0.1", "0.2"])
def test_learner_demo_smoothing_against_mpmath(
    capsys: pytest.CaptureFixture[str], eps: str
) -> None:
    out = _demo(capsys, "smoothing")
    z = ["2", "1", "0.1"]
    p = _softmax(z)
    e = MP.mpf(eps)
    target = [1 - e + e / 3, e / 3, e / 3]
    assert f"eps = {eps} {_f(target[0])} {_f(_ce(target, p))} {_f(_h(target))}" in out
    # [0.9, 0.05, 0.05] is label_smoothing 0.15 in the eps / K convention
    other = _ce([MP.mpf("0.9"), MP.mpf("0.05"), MP.mpf("0.05")], p)
    assert f"({_f(other)} = {_f(other)})" in out
    tenth = MP.mpf("0.1")
    smoothed = [1 - tenth + tenth / 3, tenth / 3, tenth / 3]
    for scale in (1, 2, 4, 8):
        ps = _softmax([scale * MP.mpf(v) for v in z])
        assert f"logits x {scale} {_f(-MP.log(ps[0]))} {_f(_ce(smoothed, ps))}" in out


def test_learner_demo_weights_against_mpmath(capsys: pytest.CaptureFixture[str]) -> None:
    out = _demo(capsys, "weights")
    rows = [["2", "0.5", "-1"], ["0.1", "0.2", "3"], ["1", "1", "1"]]
    labels, w = [0, 2, 1], [1, 5, 1]
    losses = [-MP.log(_softmax(z)[y]) for z, y in zip(rows, labels, strict=True)]
    for loss in losses:
        assert _f(loss) in out
    weighted = MP.fsum(w[y] * v for y, v in zip(labels, losses, strict=True)) / 7
    assert f"unweighted mean {_f(MP.fsum(losses) / 3)}" in out
    assert f"= {_f(weighted)} (sum w_y = 7)" in out


def test_learner_demo_distillation_against_mpmath(capsys: pytest.CaptureFixture[str]) -> None:
    out = _demo(capsys, "distillation")
    teacher, student = ["9", "5", "4.5", "0", "-2"], ["6", "4", "4", "1", "0"]
    for t in (1, 2, 4, 8):
        pt, ps = _softmax(teacher, t), _softmax(student, t)
        assert f"T = {t} " + " ".join(_f(v) for v in pt) in out
        kl = MP.fsum(a * MP.log(a / b) for a, b in zip(pt, ps, strict=True))
        grad_kl = max(abs(b - a) for a, b in zip(pt, ps, strict=True)) / t  # (s - t) / T
        row = f"T = {t} {_f(kl)} {_f(t**2 * kl)} {_f(grad_kl)} {_f(t**2 * grad_kl)}"
        assert row in out


def test_learner_demo_perplexity_of_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    out = _demo(capsys, "perplexity")
    q = [MP.mpf(v) for v in ("0.5", "0.25", "0.1", "0.4")]
    mean = MP.fsum(-MP.log(v) for v in q) / 4
    assert f"perplexity exp({_f(mean)}) = {_f(MP.exp(mean))}" in out
    assert _f(1 / MP.power(MP.fprod(q), MP.mpf(1) / 4)) == _f(MP.exp(mean))  # geometric mean
    assert f"per-token perplexities, {_f(MP.fsum(1 / v for v in q) / 4)}" in out


def test_learner_demo_hinge_shows_the_tiny_loss_not_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _demo(capsys, "hinge")
    for scale in (1, 2, 4, 8):
        p = _softmax([3 * scale, scale, MP.mpf("0.5") * scale])
        assert f"{float(-MP.log(p[0])):.2e} {float(1 - p[0]):.2e}" in out  # max |p - y| = 1 - p_0
    assert "0.0000 0.0000 0.0000" not in out


def test_learner_demo_three_predictions(capsys: pytest.CaptureFixture[str]) -> None:
    out = _demo(capsys, "cross-entropy")
    for q, text in (("0.9", "0.1054"), ("0.05", "2.9957")):
        assert _f(-MP.log(MP.mpf(q))) == text
        assert text in out
    assert f"log 3 = {_f(MP.log(3))}" in out
    assert f"-log 0.333 = {_f(-MP.log(MP.mpf('0.333')))}" in out  # 1.0996, not 1.0986


def test_learner_demo_binary_gradient(capsys: pytest.CaptureFixture[str]) -> None:
    out = _demo(capsys, "binary")
    for p in ("0.95", "0.5", "0.05"):
        assert f"{_f(p)} {_f(-MP.log(MP.mpf(p)))} {_f(MP.mpf(p) - 1)}" in out


def test_learner_demo_kl_and_temperature_against_mpmath(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _demo(capsys, "kl")
    half = [MP.mpf("0.5"), MP.mpf("0.5")]
    for q in (["0.7", "0.3"], ["0.9", "0.1"]):
        qq = [MP.mpf(v) for v in q]
        forward = MP.fsum(a * MP.log(a / b, 2) for a, b in zip(half, qq, strict=True))
        reverse = MP.fsum(b * MP.log(b / a, 2) for a, b in zip(half, qq, strict=True))
        assert f"{_f(forward)} {_f(reverse)}" in out
    out = _demo(capsys, "temperature")
    for t in ("0.5", "1", "2", "5"):
        p = _softmax(["2", "1", "0.1"], t)
        bits = -MP.fsum(v * MP.log(v, 2) for v in p)
        assert f"T = {t} {_f(p[0])} {_f(bits)} {_f(-MP.log(p[0]))}" in out


def test_demo_numbers_formatted_in_advance_are_right_aligned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hinge table's e-notation columns were left-aligned like text on main."""
    assert main(["demo", "hinge"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "max|CE gradient|" in line)
    end = header.index("max|CE gradient|") + len("max|CE gradient|")
    rows = [line for line in lines if line.lstrip().startswith("logits x")]
    assert len(rows) == 4
    for row in rows:
        assert len(row) == end, row  # the last column ends under its header
        assert re.fullmatch(r"\d\.\d\de[-+]\d\d", row.split()[-1]), row
