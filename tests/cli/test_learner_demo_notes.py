"""`crossent demo distillation`: the note under the table says what the table shows.

Main said "The gradient of the KL alone shrinks about as 1/T^2" under a table where it
falls by a factor 1.46 from T = 1 to T = 2 (1/T^2 would be 4): the 1/T^2 law holds only
once T is large. The note now says so and quotes the factor from T = 4 to T = 8, which
mpmath recomputes here from the definition, (softmax(z/T) - softmax(v/T)) / T.
"""

from __future__ import annotations

import mpmath
import pytest

from crossent.cli import main

MP = mpmath.mp.clone()
MP.dps = 40
TEACHER = [9, 5, 4.5, 0, -2]
STUDENT = [6, 4, 4, 1, 0]


def _softmax(z: list[float], t: int) -> list[mpmath.mpf]:
    e = [MP.exp(MP.mpf(v) / t) for v in z]
    total = MP.fsum(e)
    return [v / total for v in e]


def _kl_grad(t: int) -> mpmath.mpf:
    """max_k |d D(softmax(v/T) || softmax(z/T)) / d z_k| = max |s - t| / T."""
    s, p = _softmax(STUDENT, t), _softmax(TEACHER, t)
    return max(abs(a - b) for a, b in zip(s, p, strict=True)) / t


def test_learner_demo_distillation_note_quotes_the_large_t_factor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "distillation"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    small_t = _kl_grad(1) / _kl_grad(2)
    assert small_t < 2  # far from the 4 of 1/T^2: the old note's "about as 1/T^2" was wrong
    factor = _kl_grad(4) / _kl_grad(8)
    assert abs(factor - 4) < MP.mpf("0.2")  # close to 1/T^2 once T is large
    assert "shrinks about as 1/T^2" not in out
    assert f"as 1/T^2 once T is large (a factor {float(factor):.1f} from T = 4 to T = 8" in out


def test_learner_demo_smoothing_note_places_the_minimum_along_the_scales(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main: "rises again once the logits grow past the confidence y' asks for" (0.933).

    Along s z the smoothed loss is smallest where sum_k (p_k - y'_k) z_k = 0, at
    s = 2.44 with p(class 0) = 0.911, below y'_0: it rises before that confidence.
    """
    assert main(["demo", "smoothing"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    z = [MP.mpf(2), MP.mpf(1), MP.mpf("0.1")]
    target = [1 - MP.mpf("0.1") + MP.mpf("0.1") / 3, MP.mpf("0.1") / 3, MP.mpf("0.1") / 3]

    def probs(s: mpmath.mpf) -> list[mpmath.mpf]:
        e = [MP.exp(s * v) for v in z]
        return [v / MP.fsum(e) for v in e]

    def slope(s: mpmath.mpf) -> mpmath.mpf:
        return MP.fsum((p - y) * v for p, y, v in zip(probs(s), target, z, strict=True))

    best = MP.findroot(slope, 2.4)
    p0 = probs(best)[0]
    assert p0 < target[0]
    assert "grow past the confidence y' asks for" not in out
    assert f"smallest near x{float(best):.2f}, where p(class 0) = {float(p0):.3f}" in out


def test_learner3_demo_binary_gradient_column_says_it_is_in_the_logit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main headed the column beside "predicted p" "gradient p - y" with no word that it is
    the gradient in the logit z (in p it is (p - y) / (p (1 - p)), -20 at p = 0.05)."""
    from fractions import Fraction

    assert main(["demo", "binary"]) == 0
    out = capsys.readouterr().out
    assert "gradient in z: p - y" in out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith("0.")]
    for p, _bce, grad in lines:  # the column is p - 1, as crossent's sigmoid gradient gives it
        assert float(grad) == pytest.approx(float(p) - 1, abs=1e-4)
    in_p = Fraction(5, 100) - 1
    in_p /= Fraction(5, 100) * (1 - Fraction(5, 100))
    assert in_p == -20
    assert f"(p - y) / (p (1 - p)) = -1/p here ({float(in_p):.1f} at p = 0.05)" in " ".join(
        out.split()
    )


@pytest.mark.parametrize(
    ("topic", "joined", "separated"),
    [
        (
            "cross-entropy",
            "D(P||Q) = 0.3567 identity H(P,Q)",
            "D(P||Q) = 0.3567. The identity H(P,Q) = H(P) + D(P||Q): 0.356675 =",
        ),
        (
            "perplexity",
            "perplexity 50.0 a [0.9, 0.1] coin",
            "perplexity 50.0; a [0.9, 0.1] coin: perplexity 1.3841",
        ),
        ("weights", "(sum w_y = 7) Class 1", "(sum w_y = 7). Class 1 counts five times"),
    ],
    ids=["cross-entropy", "perplexity", "weights"],
)
def test_learner5_demo_note_sentences_stay_apart(
    capsys: pytest.CaptureFixture[str], topic: str, joined: str, separated: str
) -> None:
    """Each note is filled into one paragraph; main's two-sentence notes ran together
    with nothing between them ("perplexity 50.0 a [0.9, 0.1] coin")."""
    assert main(["demo", topic]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert joined not in out
    assert separated in out
    # the numbers, from the definitions: H([0.9, 0.1]) in nats, -log 0.7
    assert (
        f"{float(MP.exp(-(MP.mpf('0.9') * MP.log('0.9') + MP.mpf('0.1') * MP.log('0.1')))):.4f}"
        == "1.3841"
    )
    assert f"{float(-MP.log('0.7')):.4f}" == "0.3567"
