"""``crossent demo [TOPIC]``: the tutorial examples, every number computed by crossent.

The topics follow the tutorials' order: surprisal, entropy, cross-entropy, KL, binary
cross-entropy, softmax from logits with its ``p - y`` gradient, temperature, label
smoothing, class weights, distillation, perplexity, calibration and the hinge loss as
the contrast; without a topic, all of them.  Where a tutorial's printed
number is an artefact (clipping at 1e-10, probabilities that do not sum to 1), the
demo shows the exact value beside it and says why they differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TextIO

import numpy as np

import crossent

from .._hints import reads_as_number
from ._pipe import closed_pipe_is_quiet
from ._width import fill_paragraph

__all__ = ["ALIASES", "TOPICS", "run_demo", "topic_name"]


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Text columns left-aligned, numbers right-aligned (by the first data row).

    A number passed already formatted (``"1.97e-01"``) is a number: right-aligned too.
    """
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    textual = [isinstance(v, str) and not reads_as_number(v) for v in rows[0]]
    for n, row in enumerate(cells):
        padded = [
            c.ljust(w) if is_text else c.rjust(w)
            for c, w, is_text in zip(row, widths, textual, strict=True)
        ]
        out.write("  " + "  ".join(padded).rstrip() + "\n")
        if n == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):  # inf, -inf, undefined (NaN): the report's
        return crossent.Report.format_number(float(value))
    return str(value)


def _heading(out: TextIO, title: str) -> None:
    out.write(f"\n{title}\n{'=' * len(title)}\n")


def _note(out: TextIO, *lines: str) -> None:
    """The text under a table, one paragraph: indented like the table, filled to the
    80 columns of a terminal."""
    out.write(fill_paragraph(lines, indent="  ") + "\n")


def _surprisal(out: TextIO) -> None:
    _heading(out, "Surprisal: I(p) = -log2 p")
    probabilities = [1.0, 0.5, 0.125, 0.01, 0.0]
    bits = crossent.surprisal(probabilities, base=2)
    _table(out, ["p", "bits"], [[p, b] for p, b in zip(probabilities, bits, strict=True)])
    _note(out, "An event of probability 0 is infinitely surprising: -log2 0 = inf.")


def _dice_sum() -> np.ndarray:
    counts = [min(s - 1, 13 - s) for s in range(2, 13)]
    return np.array([float(Fraction(c, 36)) for c in counts])


def _entropy(out: TextIO) -> None:
    _heading(out, "Entropy: H(P) = -sum p log2 p (0 log 0 = 0)")
    rows = [
        ["fair coin [0.5, 0.5]", crossent.entropy([0.5, 0.5], base=2)],
        ["biased coin [0.9, 0.1]", crossent.entropy([0.9, 0.1], base=2)],
        ["certain coin [1, 0]", crossent.entropy([1.0, 0.0], base=2)],
        ["sum of two dice (exact /36)", crossent.entropy(_dice_sum(), base=2)],
    ]
    _table(out, ["distribution", "bits"], rows)
    rounded = [0.03, 0.06, 0.08, 0.11, 0.14, 0.17, 0.14, 0.11, 0.08, 0.06, 0.03]
    try:
        crossent.entropy(rounded, base=2)
    except crossent.InputError:
        printed = crossent.entropy(rounded, base=2, validate=False)
        _note(
            out,
            f"A tutorial prints {printed:.2f} bits for the dice: it used probabilities rounded "
            f"to 0.01, which sum to {sum(rounded):.2f}.",
            "crossent refuses them (InputError) instead of renormalising; the exact answer is "
            "above.",
        )


def _friends(out: TextIO) -> None:
    _heading(out, "Cross-entropy: the friends guessing a coin with P(heads) = 0.7")
    truth = [0.7, 0.3]
    guesses = [0.0, 0.2, 0.5, 0.7, 0.9, 1.0]
    rows = [
        [
            f"friend {n} (q={guess})",
            crossent.cross_entropy(truth, [guess, 1 - guess], base=2),
            crossent.cross_entropy(truth, [guess, 1 - guess], base=2, eps=1e-10),
        ]
        for n, guess in enumerate(guesses, start=1)
    ]
    _table(out, ["guess", "H(P,Q) bits", "clipped at 1e-10"], rows)
    _note(
        out,
        "Friends 1 and 6 gave probability 0 to something that happens: the exact cost is",
        "infinite. The tutorial's 23.25 and 9.97 are what clipping q at 1e-10 makes of it.",
        "Friend 4, who guessed the truth, has the least: H(P,Q) >= H(P) = "
        f"{crossent.entropy(truth, base=2):.4f} bits.",
    )


def _step_by_step(out: TextIO) -> None:
    _heading(out, "Cross-entropy step by step: P = [1, 0, 0] (cat), Q = [0.7, 0.2, 0.1] (nats)")
    p, q = [1.0, 0.0, 0.0], [0.7, 0.2, 0.1]
    surprise = crossent.surprisal(q)
    rows = [
        [label, pi, qi, si, 0.0 if pi == 0 else pi * si]
        for label, pi, qi, si in zip(["cat", "dog", "bird"], p, q, surprise, strict=True)
    ]
    _table(out, ["outcome", "P", "Q", "-log Q", "-P log Q"], rows)
    d = crossent.cross_entropy_decomposition(p, q)
    _note(
        out,
        f"H(P) = {d.entropy:.4f}   H(P,Q) = {d.cross_entropy:.4f}   "
        f"D(P||Q) = {d.kl_divergence:.4f}.",
        f"The identity H(P,Q) = H(P) + D(P||Q): {d.cross_entropy:.6f} = "
        f"{d.entropy:.6f} + {d.kl_divergence:.6f}",
    )


def _three_predictions(out: TextIO) -> None:
    _heading(out, "Three predictions for a true class 0 (nats)")
    p = [1.0, 0.0, 0.0]
    rows = [
        [name, text, crossent.cross_entropy(p, q)]
        for name, text, q in (
            ("confident and right", "[0.9, 0.07, 0.03]", [0.9, 0.07, 0.03]),
            ("confident and wrong", "[0.05, 0.9, 0.05]", [0.05, 0.9, 0.05]),
            ("uniform", "[1/3, 1/3, 1/3]", [1 / 3, 1 / 3, 1 / 3]),
        )
    ]
    _table(out, ["prediction", "Q", "H(P,Q)"], rows)
    typed = [0.333, 0.333, 0.333]
    try:
        crossent.cross_entropy(p, typed)
    except crossent.InputError:
        printed = crossent.cross_entropy(p, typed, validate=False)
        _note(
            out,
            f"The uniform loss is log 3 = {np.log(3):.4f}. Tutorial code that types 0.333 gets "
            f"-log 0.333 = {printed:.4f}:",
            f"its Q sums to {sum(typed):.3f}, which crossent refuses (InputError).",
        )


def _binary(out: TextIO) -> None:
    _heading(out, "Binary cross-entropy, true label y = 1 (nats)")
    predictions = [0.95, 0.5, 0.05, 0.0]
    losses = crossent.binary_cross_entropy(1.0, predictions)
    # The logit z with sigmoid(z) = p (-inf for p = 0), and crossent's d BCE / d z there.
    with np.errstate(divide="ignore"):
        logits = np.log(predictions) - np.log1p(-np.asarray(predictions))
    grads = crossent.sigmoid_cross_entropy_grad(logits, np.ones(len(logits)), reduction="none")
    _table(
        out,
        ["predicted p", "BCE", "gradient in z: p - y"],
        [[q, v, g] for q, v, g in zip(predictions, losses, grads, strict=True)],
    )
    in_p = crossent.binary_cross_entropy_grad(1.0, 0.05)  # (p - y) / (p (1 - p)) = -1/p
    _note(
        out,
        "With p = sigmoid(z), the gradient in the logit z is p - y, as for the softmax. In p",
        f"itself it is (p - y) / (p (1 - p)) = -1/p here ({in_p:.1f} at p = 0.05), unbounded",
        "as p nears 0: one reason to train on logits.",
    )


def _softmax(out: TextIO) -> None:
    _heading(out, "From logits: softmax, the loss and the p - y gradient")
    logits = [2.0, 0.5, -1.0]
    classes = len(logits)
    one_hot = np.eye(classes)
    # softmax(z)_k = exp(-H(e_k, softmax(z))): the probabilities, via crossent's own loss.
    probs = np.exp(-crossent.cross_entropy(one_hot, logits, q_form="logits"))
    loss = crossent.cross_entropy(one_hot[0], logits, q_form="logits")
    grad = crossent.softmax_cross_entropy_grad(np.asarray(logits), 0)  # p - y
    rows = [[k, z, pk, gk] for k, (z, pk, gk) in enumerate(zip(logits, probs, grad, strict=True))]
    _table(out, ["class", "logit z", "softmax p", "gradient p - y"], rows)
    shifted = crossent.cross_entropy(one_hot[0], np.add(logits, 1000.0), q_form="logits")
    _note(
        out,
        f"true class 0: loss = -log p_0 = {loss:.4f} nats; the gradient p - y sums to "
        f"{abs(float(np.sum(grad))):.0e} (zero, to rounding).",
        f"Adding a constant to every logit changes nothing: {shifted:.4f}.",
    )


def _perplexity(out: TextIO) -> None:
    _heading(out, "Perplexity = exp(cross-entropy in nats)")
    uniform = np.full(50, 1 / 50)
    _note(
        out,
        f"a uniform guess over 50 tokens: perplexity {crossent.perplexity(uniform):.1f};",
        f"a [0.9, 0.1] coin: perplexity {crossent.perplexity([0.9, 0.1]):.4f} "
        "(less than 2 choices' worth of confusion)",
    )
    q_true = [0.5, 0.25, 0.1, 0.4]  # what a model gave each true next token
    surprise = crossent.surprisal(q_true)
    rows = [[n, q, s] for n, (q, s) in enumerate(zip(q_true, surprise, strict=True), start=1)]
    _table(out, ["token", "q(true token)", "-log q"], rows)
    mean = float(np.mean(surprise))
    _note(
        out,
        f"mean cross-entropy {mean:.4f} nats per token: perplexity exp({mean:.4f}) = "
        f"{np.exp(mean):.4f},",
        "one over the geometric mean of the true tokens' probabilities (the exponential of "
        "the mean,",
        f"not the mean of per-token perplexities, {float(np.mean(1 / np.array(q_true))):.4f}).",
    )


def _kl(out: TextIO) -> None:
    _heading(out, "KL divergence: the cost of believing Q when the truth is P (bits)")
    p = [0.5, 0.5]
    rows = [
        [f"Q = {q}", crossent.kl_divergence(p, q, base=2), crossent.kl_divergence(q, p, base=2)]
        for q in ([0.5, 0.5], [0.7, 0.3], [0.9, 0.1], [1.0, 0.0])
    ]
    _table(out, ["P = [0.5, 0.5] against", "D(P||Q)", "D(Q||P)"], rows)
    _note(
        out,
        "Not symmetric, never negative (Gibbs' inequality), 0 only when Q = P; infinite",
        "when Q gives 0 to an outcome P allows.",
    )


def _temperature(out: TextIO) -> None:
    _heading(out, "Temperature: softmax(z / T) for the logits z = [2, 1, 0.1]")
    logits = np.array([2.0, 1.0, 0.1])
    rows = [
        [
            f"T = {t:g}",
            float(np.exp(-crossent.softmax_cross_entropy(logits, 0, temperature=t))),
            crossent.entropy(logits / t, p_form="logits", base=2),
            crossent.softmax_cross_entropy(logits, 0, temperature=t),
        ]
        for t in (0.5, 1.0, 2.0, 5.0)
    ]
    _table(out, ["temperature", "p(class 0)", "entropy (bits)", "loss, label 0 (nats)"], rows)
    _note(out, "T < 1 sharpens the prediction, T > 1 flattens it; the ranking never changes.")


def _smoothing(out: TextIO) -> None:
    _heading(out, "Label smoothing: y' = (1 - eps) y + eps / K, logits z = [2, 1, 0.1], class 0")
    logits = np.array([2.0, 1.0, 0.1])
    classes = logits.size
    rows = []
    for eps in (0.0, 0.1, 0.2):
        smoothed = (1 - eps) * np.eye(classes)[0] + eps / classes
        rows.append(
            [
                f"eps = {eps:g}",
                smoothed[0],
                crossent.softmax_cross_entropy(logits, 0, label_smoothing=eps),
                crossent.entropy(smoothed),
            ]
        )
    _table(out, ["smoothing", "y'(class 0)", "loss (nats)", "floor H(y')"], rows)
    rows = [
        [
            f"logits x {scale}",
            crossent.softmax_cross_entropy(logits * scale, 0),
            crossent.softmax_cross_entropy(logits * scale, 0, label_smoothing=0.1),
        ]
        for scale in (1, 2, 4, 8)
    ]
    _table(out, ["more confident", "plain loss", "smoothed, eps = 0.1"], rows)
    other = crossent.softmax_cross_entropy_with_targets(logits, [0.9, 0.05, 0.05])
    same = crossent.softmax_cross_entropy(logits, 0, label_smoothing=0.15)
    # The smoothed loss along the scales s z: smallest where sum_k (p_k - y'_k) z_k = 0.
    scales = np.linspace(1.0, 4.0, 3001)
    along = crossent.softmax_cross_entropy(
        scales[:, None] * logits,
        np.zeros(scales.size, dtype=np.int64),
        label_smoothing=0.1,
        reduction="none",
    )
    best = scales[int(np.argmin(along))]
    p_best = np.exp(-crossent.softmax_cross_entropy(best * logits, 0))
    _note(
        out,
        "The plain loss falls towards 0 forever. The smoothed one never goes below its floor",
        "H(y'), reached only where p = y'; scaling these logits it is smallest near "
        f"x{best:.2f}, where",
        f"p(class 0) = {p_best:.3f} (these logits cannot give p = y' exactly), and rises beyond.",
        "The target [0.9, 0.05, 0.05] spreads eps = 0.1 over the K - 1 other classes: it is",
        f"label_smoothing = 0.15 in the eps / K convention used here ({other:.4f} = {same:.4f}).",
    )


def _weights(out: TextIO) -> None:
    _heading(out, "Class weights: a weighted mean, divided by the weights of the labels present")
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])
    labels = np.array([0, 2, 1])
    weight = np.array([1.0, 5.0, 1.0])
    losses = crossent.softmax_cross_entropy(logits, labels, reduction="none")
    rows = [[n, int(y), weight[y], v] for n, (y, v) in enumerate(zip(labels, losses, strict=True))]
    _table(out, ["example", "label", "weight w_y", "loss (nats)"], rows)
    total = float(np.sum(weight[labels]))
    plain = crossent.softmax_cross_entropy(logits, labels)
    weighted = crossent.softmax_cross_entropy(logits, labels, weight=weight)
    _note(
        out,
        f"unweighted mean {plain:.4f}; weighted sum(w_y loss) / sum(w_y) = {weighted:.4f} "
        f"(sum w_y = {total:g}).",
        "Class 1 counts five times: its example's loss pulls the mean towards it.",
    )


def _distillation(out: TextIO) -> None:
    _heading(out, "Distillation: T^2 D(softmax(v/T) || softmax(z/T)), teacher v, student z (nats)")
    teacher = np.array([9.0, 5.0, 4.5, 0.0, -2.0])
    classes = teacher.size
    rows = []
    for t in (1.0, 2.0, 4.0, 8.0):
        soft = np.exp(-crossent.cross_entropy(np.eye(classes), teacher / t, q_form="logits"))
        rows.append([f"T = {t:g}", *[float(v) for v in soft]])
    _table(out, ["teacher v = [9, 5, 4.5, 0, -2]", *[f"p{k}" for k in range(classes)]], rows)
    student = np.array([[6.0, 4.0, 4.0, 1.0, 0.0]])
    rows = []
    kl_grad: list[float] = []  # max |gradient of the KL alone|, per temperature
    for t in (1.0, 2.0, 4.0, 8.0):
        loss = crossent.distillation_loss(student, teacher[None], temperature=t)
        kl = crossent.kl_divergence(teacher / t, student[0] / t, p_form="logits", q_form="logits")
        grad = crossent.distillation_loss_grad(student, teacher[None], temperature=t)
        size = float(np.max(np.abs(grad)))
        kl_grad.append(size / t**2)
        rows.append([f"T = {t:g}", float(kl), loss, size / t**2, size])
    _table(
        out,
        ["student z = [6, 4, 4, 1, 0]", "KL", "T^2 KL", "max|KL grad|", "max|T^2 KL grad|"],
        rows,
    )
    _note(
        out,
        "A higher T shows which wrong classes the teacher finds plausible (its dark knowledge).",
        "The gradient of the KL alone shrinks, as 1/T^2 once T is large (a factor "
        f"{kl_grad[2] / kl_grad[3]:.1f} from T = 4 to",
        "T = 8 here, where 1/T^2 gives 4); the T^2 factor keeps it comparable across temperatures,",
        "so T does not silently re-weight it against the label loss.",
    )


def _calibration(out: TextIO) -> None:
    _heading(out, "Calibration: an over-confident model, then temperature scaling")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (rng.random((2000, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)  # drawn from probs
    confident = 3 * logits  # the same ranking, three times too sure
    scaler = crossent.TemperatureScaling().fit(confident, labels)
    scaled = scaler.transform(confident)
    ece = crossent.calibration_error(confident, labels, form="logits")
    rows = [
        [
            "model (logits x 3)",
            crossent.negative_log_likelihood(confident, labels, form="logits"),
            ece.value,
            crossent.accuracy(confident, labels, form="logits"),
        ],
        [
            f"after temperature T = {scaler.temperature_:.2f}",
            crossent.negative_log_likelihood(scaled, labels),
            crossent.calibration_error(scaled, labels).value,
            crossent.accuracy(scaled, labels),
        ],
    ]
    _table(out, ["predictions", "NLL (nats)", "ECE", "accuracy"], rows)
    _note(
        out,
        "Dividing the logits by the fitted temperature keeps every prediction's ranking",
        "(the same accuracy) and removes most of the over-confidence. ECE here: the",
        f"top-label confidence in {ece.spec.bins} equal-width bins, the gap |accuracy -",
        "mean confidence| of each bin weighted by its share of the predictions. The",
        f"temperature is fitted and measured here on the same {len(labels)} predictions,",
        "which flatters it: fit it on held-out rows and measure it on others (the",
        "tutorial's split; crossent report --temperature-from VAL).",
    )


def _hinge(out: TextIO) -> None:
    _heading(out, "The contrast: hinge loss max(0, 1 - margin) against cross-entropy in nats")
    logits = np.array([3.0, 1.0, 0.5])
    rows = []
    for scale in (1, 2, 4, 8):
        z = logits * scale
        rows.append(
            [
                f"logits x {scale}",
                float(z[0] - np.max(z[1:])),
                crossent.multiclass_hinge_loss(z, 0),
                # e-notation: at x 8 they are 1e-7, which four decimals would show as 0
                f"{float(crossent.softmax_cross_entropy(z, 0)):.2e}",
                f"{float(np.max(np.abs(crossent.softmax_cross_entropy_grad(z, 0)))):.2e}",
            ]
        )
    _table(
        out,
        ["z = [3, 1, 0.5], class 0", "margin", "hinge", "cross-entropy", "max|CE gradient|"],
        rows,
    )
    _note(
        out,
        "Past a margin of 1 the hinge loss and its gradient are exactly 0: it stops caring.",
        "Cross-entropy keeps pushing, ever more gently, and so gives probabilities, not only",
        "a winner.",
    )


TOPICS: dict[str, tuple[Callable[[TextIO], None], ...]] = {
    "surprisal": (_surprisal,),
    "entropy": (_entropy,),
    "cross-entropy": (_friends, _step_by_step, _three_predictions),
    "kl": (_kl,),
    "binary": (_binary,),
    "softmax": (_softmax,),
    "temperature": (_temperature,),
    "smoothing": (_smoothing,),
    "weights": (_weights,),
    "distillation": (_distillation,),
    "perplexity": (_perplexity,),
    "calibration": (_calibration,),
    "hinge": (_hinge,),
}
"""Each topic of ``crossent demo TOPIC`` and its sections, in the tutorials' order."""

ALIASES: dict[str, str] = {
    "surprise": "surprisal",  # the seeds' word
    "crossentropy": "cross-entropy",
    "kl-divergence": "kl",
    "bce": "binary",
    "binary-cross-entropy": "binary",
    "logsumexp": "softmax",
    "log-sum-exp": "softmax",
    "gradient": "softmax",  # the p - y gradient is the softmax section's
    "label-smoothing": "smoothing",
    "class-weights": "weights",
    "knowledge-distillation": "distillation",
}
"""Other names a learner types for a topic (after :func:`topic_name`'s case and ``_``)."""


def topic_name(text: str) -> str:
    """``crossent demo``'s TOPIC as typed, in :data:`TOPICS`' spelling: any case,
    ``_`` or a space for ``-`` (``Cross_Entropy``), and the names in :data:`ALIASES`
    (``surprise``, ``bce``); anything else is returned for argparse to refuse."""
    name = "-".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
    return ALIASES.get(name, name)


def run_demo(out: TextIO, topic: str | None = None) -> None:
    """Print the sections of ``topic`` (every topic when None) to ``out``."""
    chosen = list(TOPICS) if topic is None else [topic]
    with closed_pipe_is_quiet(out, what="the demo"):
        out.write(f"crossent {crossent.__version__}: the tutorial examples, computed exactly\n")
        for name in chosen:
            for section in TOPICS[name]:
                section(out)
