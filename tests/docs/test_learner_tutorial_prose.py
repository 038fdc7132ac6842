"""The learners' reading of the tutorials: each sentence added or corrected, recomputed.

The calibration tutorial said "when the model says 95 % or more, it is right much less
often" under a diagram whose last bin starts at 90 %; the numbers it now quotes (the
last bin's bounds, mean confidence and accuracy) are recomputed here from the
tutorial's own data, by NumPy from the definitions and by crossent. The sentences added
for the seed tutorials' ideas that no page stated (the loss is a negative
log-likelihood with floor H(P_hat); a lower NLL is not a better calibration; which
scores are proper) are pinned the same way: mpmath at 40 digits or exact fractions as
the oracle, crossent beside it, and the text as typed.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from tests.learner_pages import MP, TUTORIALS
from tests.learner_pages import prose as _prose

import crossent


def _calibration_data() -> tuple[np.ndarray, np.ndarray]:
    """The calibration tutorial's simulated model: its logits and labels, as the page draws them."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5000, 5)) * 2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = (rng.random((5000, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return logits, labels


def _mp_nll(logits: np.ndarray, labels: np.ndarray) -> mpmath.mpf:
    """Mean -log softmax(z)_y at 40 digits."""
    total = MP.fsum(
        MP.log(MP.fsum(MP.exp(MP.mpf(float(v))) for v in row)) - MP.mpf(float(row[y]))
        for row, y in zip(logits, labels, strict=True)
    )
    return total / len(labels)


def test_learner_calibration_last_bin_sentence_matches_the_diagram() -> None:
    """Main's prose spoke of "95 % or more"; the diagram's last bin is [0.9, 1]."""
    text = _prose("calibration.md")
    sentence = (
        "The last bin holds the predictions made with 90 % confidence or more (97.9 % on "
        "average): they are right only 76 % of the time."
    )
    assert sentence in text
    assert "95 % or more" not in text
    logits, labels = _calibration_data()
    confident = 3 * logits
    # The oracle: the definitions, in NumPy float64 (softmax, top label, its hit).
    p = np.exp(confident - confident.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    confidence, hit = p.max(1), p.argmax(1) == labels
    last = confidence >= 0.9
    assert f"{100 * confidence[last].mean():.1f}" == "97.9"
    assert f"{100 * hit[last].mean():.0f}" == "76"
    # crossent's diagram, as the page draws it (bins=10): the same last bin.
    diagram = crossent.reliability_diagram(confident, labels, form="logits", bins=10)
    assert (diagram.lower[-1], diagram.upper[-1]) == (0.9, 1.0)
    assert diagram.count[-1] == last.sum()
    assert f"{100 * diagram.confidence[-1]:.1f}" == "97.9"
    assert f"{100 * diagram.accuracy[-1]:.0f}" == "76"


def test_learner_calibration_lower_nll_is_not_better_calibration() -> None:
    text = _prose("calibration.md")
    sentence = (
        "Its confidence, 0.2056, is its accuracy (ECE 0), but its NLL, 1.6093 nats, is "
        "above the over-confident model's 1.4724."
    )
    assert sentence in text
    logits, labels = _calibration_data()
    counts = np.bincount(labels, minlength=5)
    frequencies = [Fraction(int(c), len(labels)) for c in counts]
    top = max(frequencies)
    hits = Fraction(int(counts[int(np.argmax(counts))]), len(labels))
    assert top == hits  # the constant forecast's confidence is its accuracy, exactly
    assert f"{float(top):.4f}" == "0.2056"
    nll_constant = -MP.fsum(MP.log(MP.mpf(int(c)) / len(labels)) * int(c) for c in counts) / len(
        labels
    )
    nll_confident = _mp_nll(3 * logits, labels)
    assert f"{float(nll_constant):.4f}" == "1.6093"
    assert f"{float(nll_confident):.4f}" == "1.4724"
    assert nll_constant > nll_confident
    # crossent agrees
    constant = np.tile(counts / len(labels), (len(labels), 1))
    assert f"{crossent.negative_log_likelihood(constant, labels):.4f}" == "1.6093"
    assert crossent.calibration_error(constant, labels).value < 1e-12
    nll = crossent.negative_log_likelihood(3 * logits, labels, form="logits")
    assert f"{nll:.4f}" == "1.4724"


@pytest.mark.parametrize("heads", ["0.6", "0.7", "0.9"])
def test_learner_calibration_which_scores_are_proper(heads: str) -> None:
    """Log loss and Brier are smallest at the truth; absolute error at 1; hinge at +1."""
    text = _prose("calibration.md")
    assert "The Brier score $(y - q)^2$ is; the absolute error $|y - q|$ is not" in text
    assert "its best score is $+1$ whatever the probability of heads above 1/2" in text
    eta = Fraction(heads)
    grid = [Fraction(k, 100) for k in range(101)]

    def brier(q: Fraction) -> Fraction:
        return eta * (1 - q) ** 2 + (1 - eta) * q**2

    def absolute(q: Fraction) -> Fraction:
        return eta * (1 - q) + (1 - eta) * q

    def hinge(f: Fraction) -> Fraction:
        return eta * max(Fraction(0), 1 - f) + (1 - eta) * max(Fraction(0), 1 + f)

    assert min(grid, key=brier) == eta
    assert min(grid, key=absolute) == 1
    scores = [Fraction(k, 100) for k in range(-300, 301)]
    assert min(scores, key=hinge) == 1
    log_loss = crossent.cross_entropy(
        [float(eta), 1 - float(eta)], np.array([[float(q), 1 - float(q)] for q in grid])
    )
    assert grid[int(np.argmin(log_loss))] == eta


def test_learner_cross_entropy_is_the_negative_log_likelihood() -> None:
    text = _prose("cross-entropy-kl.md")
    assert "the loss is $H(\\hat P) = 0.8979$ nats, not 0" in text
    assert "# P_hat = [0.6, 0.3, 0.1]" in text
    labels = [0, 0, 1, 0, 2, 0, 1, 0, 0, 1]
    p_hat = [Fraction(labels.count(k), len(labels)) for k in range(3)]
    assert p_hat == [Fraction(6, 10), Fraction(3, 10), Fraction(1, 10)]
    floor = -MP.fsum(
        MP.mpf(v.numerator) / v.denominator * MP.log(MP.mpf(v.numerator) / v.denominator)
        for v in p_hat
    )
    assert f"{float(floor):.4f}" == "0.8979"
    assert f"{crossent.entropy([float(v) for v in p_hat]):.4f}" == "0.8979"
    # the mean NLL of any fixed Q is H(P_hat, Q) >= H(P_hat): the page's Q and a few others
    for q in ([0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.3, 0.2]):
        nll = -MP.fsum(MP.log(MP.mpf(q[y])) for y in labels) / len(labels)
        assert abs(float(nll) - crossent.cross_entropy([float(v) for v in p_hat], q)) < 1e-15
        assert nll >= floor - MP.mpf(10) ** -30


def test_learner_smoothing_floor_is_reached_only_off_the_line() -> None:
    """The page's table never reaches H(y'): logits [2, 1, 0.1] scaled cannot give p = y'."""
    text = _prose("smoothing-weights.md")
    assert "$z_0 - z_1 = z_0 - z_2 = \\log(y'_0 / y'_1)$" in text
    eps = MP.mpf("0.1")
    target = [1 - eps + eps / 3, eps / 3, eps / 3]
    floor = -MP.fsum(t * MP.log(t) for t in target)

    def smoothed(z: list[mpmath.mpf]) -> mpmath.mpf:
        lse = MP.log(MP.fsum(MP.exp(v) for v in z))
        return MP.fsum(t * (lse - v) for t, v in zip(target, z, strict=True))

    gap = MP.log(target[0] / target[1])  # log 28
    assert abs(smoothed([gap, MP.mpf(0), MP.mpf(0)]) - floor) < MP.mpf(10) ** -35
    line = [
        smoothed([s * MP.mpf(2), s * MP.mpf(1), s * MP.mpf("0.1")]) for s in MP.linspace(1, 4, 301)
    ]
    assert min(line) > floor + MP.mpf("0.03")  # 0.3283 against 0.2911
    ours = crossent.softmax_cross_entropy(np.array([float(gap), 0.0, 0.0]), 0, label_smoothing=0.1)
    assert abs(ours - float(floor)) < 1e-15


# The third reading (branch docsreader3): the seeds' worked examples that no page rebuilt
# (the cat/dog/bird logits [1.3, 4.1, 0.5], the error vector (0.1, -0.2, 0.1)), the
# distillation page's "its gradient twin is exact" above a cell that computed only the
# loss, and the binary page's "explodes near 0 and 1" (for a hard label only one end).


def _mp_softmax(z: list[str]) -> list[mpmath.mpf]:
    e = [MP.exp(MP.mpf(v)) for v in z]
    total = MP.fsum(e)
    return [v / total for v in e]


def test_learner3_softmax_page_rebuilds_the_seed_animals() -> None:
    """Seed: logits [1.3, 4.1, 0.5] (cat, dog, bird) give "a very high probability" to dog."""
    text = _prose("softmax.md")
    assert "outputs the logits $[1.3, 4.1, 0.5]$" in text
    sentence = (
        "The dog gets 0.9190, and the right answer costs 0.0845 nats; had the picture been a "
        "cat, the same logits would cost 2.8845 nats, exactly 2.8 more"
    )
    assert sentence in text
    assert "a factor $e^{2.8} \\approx 16$ between their probabilities" in text
    z = ["1.3", "4.1", "0.5"]
    p = _mp_softmax(z)
    assert f"{float(p[1]):.4f}" == "0.9190"
    assert f"{float(p[1] / p[0]):.0f}" == "16"
    dog, cat = -MP.log(p[1]), -MP.log(p[0])
    assert (f"{float(dog):.4f}", f"{float(cat):.4f}") == ("0.0845", "2.8845")
    assert abs(cat - dog - MP.mpf("2.8")) < MP.mpf(10) ** -35  # log p_dog - log p_cat = z gap
    logits = np.array([1.3, 4.1, 0.5])
    assert abs(crossent.softmax_cross_entropy(logits, 1) - float(dog)) < 1e-15
    assert abs(crossent.softmax_cross_entropy(logits, 0) - float(cat)) < 1e-15


def test_learner3_gradient_page_rebuilds_the_seed_error_vector() -> None:
    """Seed: predicting (0.1, 0.8, 0.1) for (0, 1, 0) gives the error vector (0.1, -0.2, 0.1)."""
    text = _prose("gradient.md")
    assert "gets the **error vector** $(0.1, -0.2, 0.1)$ as its gradient" in text
    prediction = np.array([0.1, 0.8, 0.1])
    grad = crossent.softmax_cross_entropy_grad(np.log(prediction)[None], np.array([1]))[0]
    exact = [Fraction(1, 10), Fraction(-2, 10), Fraction(1, 10)]  # p - y, exactly
    assert np.allclose(grad, [float(v) for v in exact], rtol=0, atol=1e-16)
    loss = crossent.softmax_cross_entropy(np.log(prediction), 1)
    assert abs(loss - float(-MP.log(MP.mpf("0.8")))) < 1e-15


def test_learner3_distillation_page_shows_the_gradient_it_names() -> None:
    """Main said "its gradient twin is exact:" above a cell that printed only the loss."""
    text = _prose("distillation.md")
    assert "its gradient twin is exact:" not in text
    assert "crossent.distillation_loss_grad(student, teacher, temperature=T)" in text
    assert "is the exact gradient of the mean, $T (s - t) / n$ over $n$ rows" in text
    # the formula, at 40 digits, against crossent's gradient on a small batch
    student = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.25]]
    teacher = [[3.0, 0.5, 0.0], [-1.0, 0.0, 1.5]]
    t_ = 4
    ours = crossent.distillation_loss_grad(np.array(student), np.array(teacher), temperature=t_)
    for row, (zs, zt) in enumerate(zip(student, teacher, strict=True)):
        s = _mp_softmax([str(v / t_) for v in zs])
        t = _mp_softmax([str(v / t_) for v in zt])
        for k in range(3):
            oracle = t_ * (s[k] - t[k]) / len(student)
            assert abs(ours[row, k] - float(oracle)) < 1e-16


def test_learner3_binary_page_says_which_end_the_probability_gradient_explodes_at() -> None:
    """(p - y) / (p (1 - p)) is -1/p for y = 1: bounded near 1, unbounded near 0."""
    text = _prose("binary.md")
    assert "which explodes near 0 and 1" not in text
    assert "explodes as $p$ nears the wrong end (0 for the label 1, 1 for the label 0" in text
    near_one = crossent.binary_cross_entropy_grad(1.0, 1 - 1e-12)
    assert abs(near_one - -1.0) < 1e-11  # -1/p, bounded at the right end
    assert crossent.binary_cross_entropy_grad(1.0, 1e-12) < -1e11
    assert crossent.binary_cross_entropy_grad(0.0, 1 - 1e-12) > 1e11
    soft = [crossent.binary_cross_entropy_grad(0.3, p) for p in (1e-12, 1 - 1e-12)]
    assert soft[0] < -1e11  # a soft label: either end
    assert soft[1] > 1e11


def test_learner3_kelly_bettor_grows_by_one_minus_the_cross_entropy() -> None:
    """The seed's economics link, rebuilt: at even odds, proportional betting on belief q
    grows log2 wealth by 1 - H(P, Q) bits per flip, (1 - H(P)) - D(P||Q)."""
    text = _prose("cross-entropy-kl.md")
    assert "(Kelly, 1956)" in text
    sentence = (
        "The honest guess 0.7 gains 0.1187 bits per flip, $1 - H(P)$: its wealth doubles about "
        "every 8.4 flips. The guess 0.5 keeps its wealth exactly; 0.9 loses 0.1030 bits per "
        "flip"
    )
    assert sentence in text
    p = MP.mpf("0.7")
    heads = np.random.default_rng(0).random(10_000) < 0.7  # the page's flips
    written = {"0.7": "0.1187", "0.5": "0.0000", "0.9": "-0.1030", "0.2": "-0.7219"}
    for guess, as_written in written.items():
        q = MP.mpf(guess)
        growth = p * MP.log(2 * q, 2) + (1 - p) * MP.log(2 * (1 - q), 2)
        h_pq = -(p * MP.log(q, 2) + (1 - p) * MP.log(1 - q, 2))
        h_p = -(p * MP.log(p, 2) + (1 - p) * MP.log(1 - p, 2))
        d_pq = p * MP.log(p / q, 2) + (1 - p) * MP.log((1 - p) / (1 - q), 2)
        assert abs(growth - (1 - h_pq)) < MP.mpf(10) ** -35
        assert abs(growth - ((1 - h_p) - d_pq)) < MP.mpf(10) ** -35
        assert f"{float(growth) + 0.0:.4f}" == as_written
        ours = 1 - crossent.cross_entropy([0.7, 0.3], [float(q), 1 - float(q)], base=2)
        assert abs(ours - float(growth)) < 1e-15
        per_flip = np.where(heads, np.log2(2 * float(q)), np.log2(2 * (1 - float(q))))
        assert abs(per_flip.mean() - float(growth)) < 0.002  # the simulation agrees
    best = 1 - (-(p * MP.log(p, 2) + (1 - p) * MP.log(1 - p, 2)))
    assert f"{float(1 / best):.1f}" == "8.4"
    assert crossent.cross_entropy([0.7, 0.3], [0.0, 1.0], base=2) == np.inf  # broke: -inf growth


def test_learner5_calibration_page_defines_ece_before_printing_it() -> None:
    """Main printed "ECE" in its first cell and never said what the letters stand for."""
    page = (TUTORIALS / "calibration.md").read_text()
    assert "**expected calibration error** (ECE)" in page
    assert page.index("expected calibration error") < page.index('f"ECE ')
    # The formula as typed, against crossent's default on the page's over-confident model:
    # the oracle bins the top-label confidences itself (15 equal-width bins [a, b), the last
    # closed, as the printed definition says) and sums n_b / n |acc(b) - conf(b)|.
    assert (
        r"\sum_b \frac{n_b}{n} \,\big|\operatorname{acc}(b) - \operatorname{conf}(b)\big|" in page
    )
    logits, labels = _calibration_data()
    z = 3 * logits
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    confidence, hit = p.max(1), p.argmax(1) == labels
    bins = np.minimum((confidence * 15).astype(int), 14)
    ece = sum(
        abs(hit[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum()
        for b in np.unique(bins)
    ) / len(labels)
    result = crossent.calibration_error(z, labels, form="logits")
    assert "15 equal-width bins" in result.spec.definition
    assert result.value == pytest.approx(ece, rel=1e-12)


def test_learner5_cross_entropy_page_says_its_log_is_natural() -> None:
    """Main's surprise page worked in bits (log2), the next page's formulas wrote log and
    printed nats, with no word of the switch."""
    text = _prose("cross-entropy-kl.md")
    sentence = "1 nat $= 1/\\ln 2 = 1.4427$ bits, so 0.3567 nats below is 0.5146 bits."
    assert "From this page on, $\\log$ is the natural logarithm and the unit is the **nat**" in text
    assert sentence in text
    assert f"{float(1 / MP.log(2)):.4f}" == "1.4427"
    nats = -MP.log(MP.mpf("0.7"))
    assert f"{float(nats):.4f}" == "0.3567"
    assert f"{float(nats / MP.log(2)):.4f}" == "0.5146"
    bits = crossent.cross_entropy([1.0, 0.0, 0.0], [0.7, 0.2, 0.1], base=2)
    assert float(bits) == pytest.approx(float(nats / MP.log(2)), rel=1e-15)


def test_learner5_perplexity_page_says_what_one_argument_means() -> None:
    """Main defined PPL = e^{H(P, Q)} and then called ``perplexity(uniform)`` with one
    distribution; it now says that is e^{H(P)}, and that PPL = 2^(bits per token)."""
    text = _prose("perplexity.md")
    assert "Perplexity is 2 to the power of the bits per token" in text
    assert "`crossent.perplexity(p)` is $e^{H(P)}$" in text
    assert "`crossent.perplexity(p, q)` is $e^{H(P, Q)}$" in text
    p, q = ["0.9", "0.1"], ["0.6", "0.4"]
    h = -MP.fsum(MP.mpf(a) * MP.log(MP.mpf(a)) for a in p)
    h_bits = -MP.fsum(MP.mpf(a) * MP.log(MP.mpf(a), 2) for a in p)
    h_pq = -MP.fsum(MP.mpf(a) * MP.log(MP.mpf(b)) for a, b in zip(p, q, strict=True))
    assert MP.almosteq(MP.exp(h), MP.power(2, h_bits), 1e-35)
    assert float(crossent.perplexity([0.9, 0.1])) == pytest.approx(float(MP.exp(h)), rel=1e-15)
    got = crossent.perplexity([0.9, 0.1], [0.6, 0.4])
    assert float(got) == pytest.approx(float(MP.exp(h_pq)), rel=1e-15)
