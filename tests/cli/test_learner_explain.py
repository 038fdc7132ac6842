"""`crossent explain` read as a learner reads it: every number against mpmath, every
sentence true of the numbers above it.

The oracle is mpmath at 50 digits (softmax, logarithms in the unit shown); nothing here
calls crossent except through the command line.
"""

from __future__ import annotations

import re

import mpmath
import pytest

from crossent.cli import main

MP = mpmath.mp.clone()
MP.dps = 50


def _ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return " ".join(out.split())  # rich wraps long lines where the terminal is narrow


def _log(x: object, bits: bool) -> mpmath.mpf:
    return MP.log(MP.mpf(x), 2) if bits else MP.log(MP.mpf(x))


def _softmax(z: list[str], t: str = "1") -> list[mpmath.mpf]:
    e = [MP.exp(MP.mpf(v) / MP.mpf(t)) for v in z]
    return [v / MP.fsum(e) for v in e]


def _entropy(p: list[mpmath.mpf], bits: bool) -> mpmath.mpf:
    return -MP.fsum(v * _log(v, bits) for v in p if v > 0)


def _f(value: object, digits: int = 6, sign: bool = False) -> str:
    return f"{float(value):{'+' if sign else ''}.{digits}f}"  # type: ignore[arg-type]


# The sentences under the tables ----------------------------------------------------------------


def test_learner_hinge_note_when_the_true_class_is_behind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main said "its loss and gradient shrink" while the table above showed them grow."""
    out = _ok(capsys, ["explain", "--logits", "1,1.5,0.5", "--label", "0", "--hinge"])
    z = ["1", "1.5", "0.5"]
    losses = [-MP.log(_softmax([str(s * MP.mpf(v)) for v in z])[0]) for s in (1, 2, 4, 8)]
    assert losses == sorted(losses)  # the oracle: scaling up, the loss grows
    for loss in losses:
        assert f"{float(loss):.2e}" in out
    for hinge in ("1.500000", "2.000000", "3.000000", "5.000000"):  # 1 - margin, growing
        assert hinge in out
    assert "shrink" not in out
    assert "both losses grow" in out


@pytest.mark.parametrize("bits", [False, True])
def test_learner_hinge_note_at_a_tie_names_the_limit(
    capsys: pytest.CaptureFixture[str], bits: bool
) -> None:
    """At margin 0 scaling never helps: cross-entropy tends to log 2 (two classes tie)."""
    out = _ok(
        capsys, ["explain", "--logits", "1,1,0", "--label", "0", "--hinge", *(["--bits"] * bits)]
    )
    big = -_log(_softmax(["1000", "1000", "0"])[0], bits)  # the limit, to 50 digits
    assert f"{_f(big)} {'bits' if bits else 'nats'}, not to 0" in out
    assert "shrink" not in out


def test_learner_hinge_note_when_the_margin_is_positive_is_unchanged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _ok(capsys, ["explain", "--logits", "1,0.5,0", "--label", "0", "--hinge"])
    assert "never stops pushing" in out


def test_learner_smoothing_zero_does_not_claim_a_floor_above_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main printed "The loss can no longer reach 0: its floor is H(y') = 0.000000"."""
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--smoothing", "0"])
    assert "no longer reach 0" not in out
    assert "floor stays H(y) = 0.000000 nats" in out


def test_learner_smoothing_a_soft_target_raises_its_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A soft target never let the loss reach 0: the floor rises from H(y) to H(y')."""
    argv = ["explain", "--logits", "2,1,0.1", "--p", "0.5,0.5,0", "--smoothing", "0.1", "--bits"]
    out = _ok(capsys, argv)
    y = [MP.mpf("0.5"), MP.mpf("0.5"), MP.mpf(0)]
    smoothed = [(1 - MP.mpf("0.1")) * v + MP.mpf("0.1") / 3 for v in y]
    assert "no longer reach 0" not in out
    assert (
        f"rises from H(y) = {_f(_entropy(y, True))} to H(y') = {_f(_entropy(smoothed, True))} bits"
    ) in out


def test_learner_smoothing_a_one_hot_target_floor(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--smoothing", "0.1"])
    smoothed = [1 - MP.mpf("0.1") + MP.mpf("0.1") / 3, MP.mpf("0.1") / 3, MP.mpf("0.1") / 3]
    assert f"can no longer reach 0: its floor is H(y') = {_f(_entropy(smoothed, False))}" in out


def test_learner_temperature_on_a_uniform_q_is_not_called_sharper(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """softmax(log Q / T) of a uniform Q is Q itself; main said "Here: sharper"."""
    out = _ok(capsys, ["explain", "--p", "0.7,0.3", "--q", "0.5,0.5", "--temperature", "0.5"])
    assert "Here: sharper" not in out
    assert "leaves it unchanged" in out
    out = _ok(capsys, ["explain", "--p", "1,0,0", "--q", "0.5,0,0.5", "--temperature", "3"])
    assert "Here: flatter" not in out  # uniform over the outcomes it allows
    out = _ok(capsys, ["explain", "--p", "1,0", "--q", "0.8,0.2", "--temperature", "0.5"])
    assert "Here: sharper" in out
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--temperature", "2"])
    assert re.search(r"class\W+softmax\(z\)\W+p = softmax\(z/T\)", out)  # class, as above it


def test_learner5_logits_temperature_tables_give_p_one_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main's first table headed softmax(z/T) "softmax p" (0.8638 at T = 0.5), then its
    temperature table headed softmax(z) "p" (0.6590) beside "p at T": one letter, two
    columns of numbers. The loss and gradient lines use p = softmax(z/T)."""
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--temperature", "0.5"])
    assert not re.search(r"class\W+p\W+p at T", out)
    z = [MP.mpf(2), MP.mpf(1), MP.mpf("0.1")]

    def softmax(t: mpmath.mpf) -> list[mpmath.mpf]:
        e = [MP.exp(v / t) for v in z]
        return [v / MP.fsum(e) for v in e]

    at_t, at_1 = softmax(MP.mpf("0.5")), softmax(MP.mpf(1))
    for k in range(3):  # each row of the temperature table: class, softmax(z), softmax(z/T)
        assert re.search(rf"\b{k}\W+{float(at_1[k]):.4f}\W+{float(at_t[k]):.4f}\b", out)
    grad = (at_t[0] - 1) / MP.mpf("0.5")
    assert re.search(rf"\b0\W+2\W+{float(at_t[0]):.4f}\W+1\W+{float(grad):+.4f}", out)


# Bits: the logarithm named is the one computed ----------------------------------------------


def test_learner_bits_tables_name_log2(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["explain", "--p", "0.7,0.3", "--q", "0.5,0.5", "--bits"])
    assert "-log2 Q" in out
    assert "-P log2 Q" in out
    assert "-log Q" not in out
    out = _ok(capsys, ["explain", "--p", "0.5,0.5", "--q", "0.9,0.1", "--kl", "--bits"])
    assert "p log2(p/q)" in out
    out = _ok(capsys, ["explain", "--binary", "--y", "1", "--p", "0.9", "--bits"])
    assert "-y log2 p" in out
    out = _ok(capsys, ["explain", "--logits", "2,1,0.1", "--label", "0", "--temperature", "2"])
    assert "logsumexp(z/T) - sum y z/T" in out  # the loss is of z / T


def test_learner_binary_terms_are_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", "--binary", "--y", "0.3", "--p", "0.9"])
    lines = capsys.readouterr().out.splitlines()[1:4]
    assert len({line.index("=") for line in lines}) == 1, lines


# Every number of the main modes against mpmath -------------------------------------------------


@pytest.mark.parametrize("bits", [False, True])
@pytest.mark.parametrize(("p", "q"), [("1,0,0", "0.7,0.2,0.1"), ("0.2,0.3,0.5", "0.6,0.3,0.1")])
def test_learner_distributions_numbers_are_mpmath_s(
    capsys: pytest.CaptureFixture[str], p: str, q: str, bits: bool
) -> None:
    out = _ok(capsys, ["explain", "--p", p, "--q", q, *(["--bits"] * bits)])
    P, Q = [MP.mpf(v) for v in p.split(",")], [MP.mpf(v) for v in q.split(",")]
    unit = "bits" if bits else "nats"
    h_p = _entropy(P, bits)
    h_pq = -MP.fsum(a * _log(b, bits) for a, b in zip(P, Q, strict=True) if a > 0)
    for qk in Q:
        assert _f(-_log(qk, bits), 4) in out
    assert f"H(P) = {_f(h_p)} {unit}" in out
    assert f"H(P, Q) = {_f(h_pq)} {unit}" in out
    assert f"D(P||Q) = {_f(h_pq - h_p)} {unit}" in out


@pytest.mark.parametrize(
    ("extra", "t"), [([], "1"), (["--temperature", "2"], "2"), (["--temperature", "0.5"], "0.5")]
)
def test_learner_logits_numbers_are_mpmath_s(
    capsys: pytest.CaptureFixture[str], extra: list[str], t: str
) -> None:
    z = ["2", "1", "0.1"]
    out = _ok(capsys, ["explain", "--logits", ",".join(z), "--label", "0", *extra])
    out_bits = _ok(capsys, ["explain", "--logits", ",".join(z), "--label", "0", "--bits", *extra])
    for text, in_bits in ((out, False), (out_bits, True)):
        p = _softmax(z, t)
        scale = MP.mpf(t) * (MP.log(2) if in_bits else 1)
        for k, pk in enumerate(p):
            assert _f(pk, 4) in text
            assert _f((pk - (k == 0)) / scale, 4, sign=True) in text
        assert f"= {_f(-_log(p[0], in_bits))} {'bits' if in_bits else 'nats'}" in text


def test_learner_binary_numbers_are_mpmath_s(capsys: pytest.CaptureFixture[str]) -> None:
    out = _ok(capsys, ["explain", "--binary", "--y", "0.3", "--p", "0.9", "--bits"])
    y, p = MP.mpf("0.3"), MP.mpf("0.9")
    positive, negative = -y * MP.log(p, 2), -(1 - y) * MP.log(1 - p, 2)
    assert f"= {_f(positive)}" in out
    assert f"= {_f(negative)}" in out
    assert f"= {_f(positive + negative)} bits" in out
    assert f"(p - y) / ln 2 = {_f((p - y) / MP.log(2), sign=True)}" in out
    assert re.search(r"loss += ", out)
