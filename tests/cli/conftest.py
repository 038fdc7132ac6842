"""Fixtures for the command-line tests: small prediction files in every supported format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_predictions(
    n: int = 400, classes: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / 0.6): an over-confident model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.5
    probs = np.exp(logits * 0.6)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.minimum((probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), classes - 1)
    return logits, labels.astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray]:
    return make_predictions()


@pytest.fixture
def npz_logits(tmp_path: Path, predictions: tuple[np.ndarray, np.ndarray]) -> Path:
    path = tmp_path / "preds.npz"
    np.savez(path, logits=predictions[0], labels=predictions[1])
    return path
