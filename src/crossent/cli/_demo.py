"""``crossent demo``: the seeds' worked examples, every number computed by crossent.

The sections follow the tutorial order: surprisal, entropy, cross-entropy, KL, binary
cross-entropy, softmax from logits with its ``p - y`` gradient, and perplexity.  Where
a seed's printed number is an artefact (clipping at 1e-10, probabilities that do not
sum to 1), the demo shows the exact value beside it and says why they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TextIO

import numpy as np

import crossent

__all__ = ["run_demo"]


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
    if isinstance(value, float | np.floating):
        return "inf" if np.isinf(value) else f"{float(value):.4f}"
    return str(value)


def _heading(out: TextIO, title: str) -> None:
    out.write(f"\n{title}\n{'=' * len(title)}\n")


def _surprisal(out: TextIO) -> None:
    _heading(out, "1. Surprisal: I(p) = -log2 p")
    probabilities = [1.0, 0.5, 0.125, 0.01, 0.0]
    bits = crossent.surprisal(probabilities, base=2)
    _table(out, ["p", "bits"], [[p, b] for p, b in zip(probabilities, bits, strict=True)])
    out.write("  An event of probability 0 is infinitely surprising: -log2 0 = inf.\n")


def _dice_sum() -> np.ndarray:
    counts = [min(s - 1, 13 - s) for s in range(2, 13)]
    return np.array([float(Fraction(c, 36)) for c in counts])


def _entropy(out: TextIO) -> None:
    _heading(out, "2. Entropy: H(P) = -sum p log2 p (0 log 0 = 0)")
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
        seed = crossent.entropy(rounded, base=2, validate=False)
        out.write(
            f"  The seed prints {seed:.2f} bits for the dice: it used probabilities rounded "
            f"to 0.01, which sum to {sum(rounded):.2f}.\n  crossent refuses them "
            "(InputError) instead of renormalising; the exact answer is above.\n"
        )


def _friends(out: TextIO) -> None:
    _heading(out, "3. Cross-entropy: the friends guessing a coin with P(heads) = 0.7")
    truth = [0.7, 0.3]
    guesses = [0.0, 0.2, 0.5, 0.7, 0.9, 1.0]
    rows = []
    for n, guess in enumerate(guesses, start=1):
        q = [guess, 1 - guess]
        rows.append(
            [
                f"friend {n} (q={guess})",
                crossent.cross_entropy(truth, q, base=2),
                crossent.cross_entropy(truth, q, base=2, eps=1e-10),
            ]
        )
    _table(out, ["guess", "H(P,Q) bits", "clipped at 1e-10"], rows)
    out.write(
        "  Friends 1 and 6 gave probability 0 to something that happens: the exact cost is\n"
        "  infinite. The seed's 23.25 and 9.97 are what clipping q at 1e-10 makes of it.\n"
        "  Friend 4, who guessed the truth, has the least: H(P,Q) >= H(P) = "
        f"{crossent.entropy(truth, base=2):.4f} bits.\n"
    )


def _step_by_step(out: TextIO) -> None:
    _heading(out, "4. Step by step: P = [1, 0, 0] (cat), Q = [0.7, 0.2, 0.1] (nats)")
    p, q = [1.0, 0.0, 0.0], [0.7, 0.2, 0.1]
    surprise = crossent.surprisal(q)
    rows = [
        [label, pi, qi, si, 0.0 if pi == 0 else pi * si]
        for label, pi, qi, si in zip(["cat", "dog", "bird"], p, q, surprise, strict=True)
    ]
    _table(out, ["outcome", "P", "Q", "-log Q", "-P log Q"], rows)
    d = crossent.cross_entropy_decomposition(p, q)
    out.write(
        f"  H(P) = {d.entropy:.4f}   H(P,Q) = {d.cross_entropy:.4f}   "
        f"KL(P||Q) = {d.kl_divergence:.4f}\n"
        f"  identity H(P,Q) = H(P) + KL: {d.cross_entropy:.6f} = "
        f"{d.entropy:.6f} + {d.kl_divergence:.6f}\n"
    )


def _binary(out: TextIO) -> None:
    _heading(out, "5. Binary cross-entropy, true label y = 1 (nats)")
    predictions = [0.95, 0.5, 0.05, 0.0]
    losses = crossent.binary_cross_entropy(1.0, predictions)
    _table(out, ["predicted p", "BCE"], [[q, v] for q, v in zip(predictions, losses, strict=True)])


def _softmax(out: TextIO) -> None:
    _heading(out, "6. From logits: softmax, the loss and the p - y gradient")
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
    out.write(
        f"  true class 0: loss = -log p_0 = {loss:.4f} nats; the gradient p - y sums to "
        f"{abs(float(np.sum(probs - one_hot[0]))):.0e} (zero, to rounding).\n"
        "  Adding a constant to every logit changes nothing: "
        f"{crossent.cross_entropy(one_hot[0], np.add(logits, 1000.0), q_form='logits'):.4f}.\n"
    )


def _perplexity(out: TextIO) -> None:
    _heading(out, "7. Perplexity = exp(cross-entropy in nats)")
    uniform = np.full(50, 1 / 50)
    out.write(
        f"  a uniform guess over 50 tokens: perplexity {crossent.perplexity(uniform):.1f}\n"
        f"  a [0.9, 0.1] coin: perplexity {crossent.perplexity([0.9, 0.1]):.4f} "
        "(less than 2 choices' worth of confusion)\n"
    )


def run_demo(out: TextIO) -> None:
    """Print every section of the demo to ``out``."""
    out.write(f"crossent {crossent.__version__}: the seeds' worked examples, computed exactly\n")
    for section in (_surprisal, _entropy, _friends, _step_by_step, _binary, _softmax, _perplexity):
        section(out)
