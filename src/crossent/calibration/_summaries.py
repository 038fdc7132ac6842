"""Per-example summaries of a prediction: the numbers every evaluation metric averages.

For a predicted distribution :math:`p` over classes and the true label :math:`y`:

* surprisal (negative log-likelihood) :math:`-\\log p_y`;
* Brier score :math:`\\sum_k (p_k - [k = y])^2`, computed as
  :math:`\\sum_{k \\ne y} p_k^2 + (1 - p_y)^2` with :math:`1 - p_y = -\\operatorname{expm1}
  (\\log p_y)`, so a near-certain correct prediction keeps its tiny score instead of
  cancelling to 0;
* spherical score :math:`p_y / \\lVert p \\rVert_2`;
* top-label confidence :math:`\\max_k p_k`, the predicted class (the first maximum) and
  whether it is correct;
* the entropy of the prediction :math:`-\\sum_k p_k \\log p_k` (with :math:`0 \\log 0 = 0`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ._inputs import Block, FloatArray, IntArray, Predictions

__all__ = ["ExampleSummaries", "summarize", "summarize_block"]


@dataclass(frozen=True)
class ExampleSummaries:
    """One float64 (or integer) value per example (per row of the predictions)."""

    surprisal: FloatArray
    brier: FloatArray
    spherical: FloatArray
    entropy: FloatArray
    confidence: FloatArray
    predicted: IntArray
    labels: IntArray

    @property
    def correct(self) -> FloatArray:
        return (self.predicted == self.labels).astype(np.float64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def summarize_block(block: Block) -> ExampleSummaries:
    """The summaries of one block of rows."""
    rows = np.arange(block.labels.shape[0])
    probs, labels = block.probs, block.labels
    log_p_label = block.label_log_probs()
    squares = np.square(probs)
    norm = np.sqrt(squares.sum(axis=1))
    squares[rows, labels] = 0.0
    brier = squares.sum(axis=1) + np.square(-np.expm1(log_p_label))
    spherical = probs[rows, labels] / norm
    if block.log_probs is None:
        terms = special.entr(probs)
    else:
        terms = np.multiply(probs, block.log_probs, out=np.zeros_like(probs), where=probs > 0)
        np.negative(terms, out=terms)
    predicted = np.argmax(probs, axis=1)
    return ExampleSummaries(
        surprisal=-log_p_label,
        brier=brier,
        spherical=spherical,
        entropy=np.maximum(terms.sum(axis=1), 0.0),
        confidence=probs[rows, predicted],
        predicted=predicted.astype(np.intp),
        labels=labels,
    )


def summarize(predictions: Predictions) -> ExampleSummaries:
    """The summaries of every row, computed block by block."""
    parts = list(predictions.map_blocks(summarize_block))
    if not parts:
        empty, no_ids = np.zeros(0), np.zeros(0, np.intp)
        return ExampleSummaries(empty, empty, empty, empty, empty, no_ids, no_ids)
    return ExampleSummaries(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("surprisal", "brier", "spherical", "entropy", "confidence", "predicted", "labels")
