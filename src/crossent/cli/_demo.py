"""``crossent demo [TOPIC]``: the tutorial examples, every number computed by crossent.

The topics follow the tutorials' order: surprisal, entropy, cross-entropy, KL, binary
cross-entropy, softmax from logits with its ``p - y`` gradient, temperature,
perplexity and calibration; without a topic, all of them.  Where a tutorial's printed
number is an artefact (clipping at 1e-10, probabilities that do not sum to 1), the
demo shows the exact value beside it and says why they differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TextIO

import numpy as np

import crossent

from ._pipe import closed_pipe_is_quiet

__all__ = ["TOPICS", "run_demo"]


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Text columns left-aligned, numbers right-aligned (by the first data row)."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    textual = [isinstance(v, str) for v in rows[0]]
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
    """The text under a table: each line indented like the table."""
    out.write("".join(f"  {line}\n" for line in lines))


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
        f"KL(P||Q) = {d.kl_divergence:.4f}",
        f"identity H(P,Q) = H(P) + KL: {d.cross_entropy:.6f} = "
        f"{d.entropy:.6f} + {d.kl_divergence:.6f}",
    )


def _binary(out: TextIO) -> None:
    _heading(out, "Binary cross-entropy, true label y = 1 (nats)")
    predictions = [0.95, 0.5, 0.05, 0.0]
    losses = crossent.binary_cross_entropy(1.0, predictions)
    _table(out, ["predicted p", "BCE"], [[q, v] for q, v in zip(predictions, losses, strict=True)])


def _softmax(out: TextIO) -> None:
    _heading(out, "From logits: softmax, the loss and the p - y gradient")
    logits = [2.0, 0.5, -1.0]
    classes = len(logits)
    one_hot = np.eye(classes)
    # softmax(z)_k = exp(-H(e_k, softmax(z))): the probabilities, via crossent's own loss.
    probs = np.exp(-crossent.cross_entropy(one_hot, logits, q_form="logits"))
    loss = crossent.cross_entropy(one_hot[0], logits, q_form="logits")
    rows = [
        [k, z, pk, pk - yk]
        for k, (z, pk, yk) in enumerate(zip(logits, probs, one_hot[0], strict=True))
    ]
    _table(out, ["class", "logit z", "softmax p", "p - y"], rows)
    shifted = crossent.cross_entropy(one_hot[0], np.add(logits, 1000.0), q_form="logits")
    _note(
        out,
        f"true class 0: loss = -log p_0 = {loss:.4f} nats; the gradient p - y sums to "
        f"{abs(float(np.sum(probs - one_hot[0]))):.0e} (zero, to rounding).",
        f"Adding a constant to every logit changes nothing: {shifted:.4f}.",
    )


def _perplexity(out: TextIO) -> None:
    _heading(out, "Perplexity = exp(cross-entropy in nats)")
    uniform = np.full(50, 1 / 50)
    _note(
        out,
        f"a uniform guess over 50 tokens: perplexity {crossent.perplexity(uniform):.1f}",
        f"a [0.9, 0.1] coin: perplexity {crossent.perplexity([0.9, 0.1]):.4f} "
        "(less than 2 choices' worth of confusion)",
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
    rows = [
        [
            "model (logits x 3)",
            crossent.negative_log_likelihood(confident, labels, form="logits"),
            crossent.calibration_error(confident, labels, form="logits").value,
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
        "(the same accuracy) and removes most of the over-confidence.",
    )


TOPICS: dict[str, tuple[Callable[[TextIO], None], ...]] = {
    "surprisal": (_surprisal,),
    "entropy": (_entropy,),
    "cross-entropy": (_friends, _step_by_step),
    "kl": (_kl,),
    "binary": (_binary,),
    "softmax": (_softmax,),
    "temperature": (_temperature,),
    "perplexity": (_perplexity,),
    "calibration": (_calibration,),
}
"""Each topic of ``crossent demo TOPIC`` and its sections, in the tutorials' order."""


def run_demo(out: TextIO, topic: str | None = None) -> None:
    """Print the sections of ``topic`` (every topic when None) to ``out``."""
    chosen = list(TOPICS) if topic is None else [topic]
    with closed_pipe_is_quiet(out):
        out.write(f"crossent {crossent.__version__}: the tutorial examples, computed exactly\n")
        for name in chosen:
            for section in TOPICS[name]:
                section(out)
