"""The worked numbers of the documents crossent grew from (../shared/seeds/)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent


def test_surprise_of_certain_coin_and_one_in_eight() -> None:
    assert crossent.surprisal(1.0, base=2) == 0.0
    assert crossent.surprisal(0.5, base=2) == 1.0
    assert crossent.surprisal(0.125, base=2) == 3.0


def test_surprise_table() -> None:
    probabilities = np.linspace(0.01, 1, 10)
    expected = [6.64, 3.06, 2.12, 1.56, 1.15, 0.84, 0.58, 0.36, 0.17, 0.00]
    np.testing.assert_array_equal(np.round(crossent.surprisal(probabilities, base=2), 2), expected)


def test_dice_sum_surprise_table_from_rounded_probabilities() -> None:
    rounded = [0.03, 0.06, 0.08, 0.11, 0.14, 0.17, 0.14, 0.11, 0.08, 0.06, 0.03]
    expected = [5.06, 4.06, 3.64, 3.18, 2.84, 2.56, 2.84, 3.18, 3.64, 4.06, 5.06]
    np.testing.assert_array_equal(np.round(crossent.surprisal(rounded, base=2), 2), expected)


def _dice_sum_distribution() -> np.ndarray:
    counts = np.bincount([a + b for a in range(1, 7) for b in range(1, 7)])[2:]
    return counts / 36


def test_coin_and_dice_entropies() -> None:
    assert crossent.entropy([0.5, 0.5], base=2) == 1.0
    assert round(float(crossent.entropy([0.9, 0.1], base=2)), 2) == 0.47
    assert crossent.entropy([1, 0], base=2) == 0.0
    assert math.copysign(1, crossent.entropy([1, 0], base=2)) == 1  # +0.0, no abs() needed
    assert crossent.entropy(_dice_sum_distribution(), base=2) == pytest.approx(3.2744019, abs=1e-7)


def test_seed_dice_entropy_came_from_probabilities_that_sum_to_1_01() -> None:
    # The seed's 3.30 bits is the "entropy" of probabilities rounded to 2 decimals,
    # which sum to 1.01. crossent refuses them; with validation off it reproduces 3.30.
    rounded = [0.03, 0.06, 0.08, 0.11, 0.14, 0.17, 0.14, 0.11, 0.08, 0.06, 0.03]
    with pytest.raises(crossent.InputError, match=r"sums to 1\.01"):
        crossent.entropy(rounded, base=2)
    assert round(float(crossent.entropy(rounded, base=2, validate=False)), 2) == 3.30


FRIENDS = [0, 0.2, 0.5, 0.7, 0.9, 1]


def test_friends_coin_guessing_table_is_infinite_for_certain_wrong_guesses() -> None:
    truth = [0.7, 0.3]
    got = [crossent.cross_entropy(truth, [f, 1 - f], base=2) for f in FRIENDS]
    assert got[0] == math.inf
    assert got[5] == math.inf
    assert [round(float(v), 2) for v in got[1:5]] == [1.72, 1.00, 0.88, 1.10]
    assert int(np.argmin(got)) == 3  # friend 4, who guessed the truth


def test_friends_table_23_25_and_9_97_are_artefacts_of_clipping_at_1e_10() -> None:
    truth = [0.7, 0.3]
    clipped = [crossent.cross_entropy(truth, [f, 1 - f], base=2, eps=1e-10) for f in FRIENDS]
    assert [round(float(v), 2) for v in clipped] == [23.25, 1.72, 1.00, 0.88, 1.10, 9.97]


def test_step_by_step_example() -> None:
    p, q = [1, 0, 0], [0.7, 0.2, 0.1]
    assert round(float(crossent.cross_entropy(p, q)), 3) == 0.357
    d = crossent.cross_entropy_decomposition(p, q)
    assert d.entropy == 0.0
    assert d.kl_divergence == d.cross_entropy  # one-hot P: loss = H(P,Q) = KL


def test_good_bad_and_uniform_predictions() -> None:
    p = [1.0, 0.0, 0.0]
    assert round(float(crossent.cross_entropy(p, [0.9, 0.07, 0.03])), 4) == 0.1054
    assert round(float(crossent.cross_entropy(p, [0.05, 0.90, 0.05])), 4) == 2.9957
    assert round(float(crossent.cross_entropy(p, [1 / 3] * 3)), 4) == 1.0986
    # The seed's "uniform" [0.333] * 3 sums to 0.999: not a distribution.
    with pytest.raises(crossent.InputError, match=r"the distribution sums to 0\.999"):
        crossent.cross_entropy(p, [0.333] * 3)


def test_binary_cross_entropy_examples() -> None:
    got = crossent.binary_cross_entropy(1, [0.95, 0.50, 0.05])
    np.testing.assert_array_equal(np.round(got, 4), [0.0513, 0.6931, 2.9957])
    assert round(float(crossent.surprisal(0.01)), 1) == 4.6
    assert round(float(crossent.surprisal(0.99)), 2) == 0.01


def test_pytorch_example_logits() -> None:
    loss = crossent.cross_entropy([1, 0, 0], [2.0, 0.5, -1.0], q_form="logits")
    assert round(float(loss), 4) == 0.2413
