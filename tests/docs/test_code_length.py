"""Cross-entropy is a code length: a range coder's file equals the model's cross-entropy.

The documentation's code-length chapter, as a test: the grey levels of scikit-learn's
digit images are compressed with constriction's range coder, driven by a context
model's predicted distributions; the file size in bits must equal the model's
cross-entropy in bits (crossent) up to the coder's rounding to 32-bit words, decode
back exactly, and shrink when the model is temperature-scaled on held-out images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

constriction = pytest.importorskip("constriction")
datasets = pytest.importorskip("sklearn.datasets")

LEVELS = 17
WORD_BITS = 32


def _contexts(images: Any) -> tuple[Any, Any]:
    padded = np.pad(images, ((0, 0), (1, 0), (1, 0)))
    left, up = padded[:, 1:, :-1], padded[:, :-1, 1:]
    return (left * LEVELS + up).ravel(), images.ravel()


def _probabilities(logits: Any) -> Any:
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.ascontiguousarray(p / p.sum(axis=1, keepdims=True))


def _compress(logits: Any, symbols: Any) -> Any:
    encoder = constriction.stream.queue.RangeEncoder()
    model = constriction.stream.model.Categorical(perfect=False)
    encoder.encode(symbols.astype(np.int32), model, _probabilities(logits))
    return encoder.get_compressed()


def _decompress(words: Any, logits: Any) -> Any:
    decoder = constriction.stream.queue.RangeDecoder(words)
    model = constriction.stream.model.Categorical(perfect=False)
    return decoder.decode(model, _probabilities(logits))


@pytest.fixture(scope="module")
def digits_model() -> dict[str, Any]:
    images = datasets.load_digits().images.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    train, held_out, test = np.split(images[order], [900, 1300])
    context, level = _contexts(train)
    counts = np.zeros((LEVELS * LEVELS, LEVELS))
    np.add.at(counts, (context, level), 1)
    table = np.log(counts + 0.01) - np.log((counts + 0.01).sum(axis=1, keepdims=True))

    def logits(imgs: Any) -> tuple[Any, Any]:
        c, x = _contexts(imgs)
        return table[c], x

    return {"test": logits(test), "held_out": logits(held_out)}


def _cross_entropy_bits(logits: Any, symbols: Any) -> float:
    return float(crossent.softmax_cross_entropy(logits, symbols, base=2, reduction="sum"))


def test_issue13_compressed_size_equals_cross_entropy_in_bits(
    digits_model: dict[str, Any],
) -> None:
    logits, symbols = digits_model["test"]
    words = _compress(logits, symbols)
    file_bits = WORD_BITS * words.size
    model_bits = _cross_entropy_bits(logits, symbols)
    assert model_bits > 10_000  # a real sequence, not a toy
    # The range coder emits whole 32-bit words and flushes at most two: the file is
    # the cross-entropy rounded up, plus under 64 bits (measured: 27.2 bits).
    assert 0 <= file_bits - model_bits <= 2 * WORD_BITS
    np.testing.assert_array_equal(_decompress(words, logits), symbols)


def test_issue13_temperature_scaling_compresses_smaller(digits_model: dict[str, Any]) -> None:
    logits, symbols = digits_model["test"]
    held_logits, held_symbols = digits_model["held_out"]
    scaler = crossent.TemperatureScaling().fit(held_logits, held_symbols)
    assert scaler.temperature_ > 1  # the add-0.01 model is over-confident
    before = WORD_BITS * _compress(logits, symbols).size
    scaled = logits / scaler.temperature_
    after = WORD_BITS * _compress(scaled, symbols).size
    assert after < before
    assert 0 <= after - _cross_entropy_bits(scaled, symbols) <= 2 * WORD_BITS
    np.testing.assert_array_equal(_decompress(_compress(scaled, symbols), scaled), symbols)
