"""Near-deterministic logits: log(1 + delta) with delta < eps must not round to 0.

softmax([40, 0]) puts 4.2e-18 on the second class. Its entropy is 4.2e-18 * 41 (the max
class contributes about delta, the other delta * 40); computing the log-partition as
log(1 + delta) rounds it to 0 and loses the first part (2.4 % relative error).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

import oracles
from tolerances import CLOSED_FORM, FLOAT32_KERNEL

CASES = [[40.0, 0.0], [60.0, 0.0, -5.0], [25.0, 25.0, -30.0], [800.0, 0.0, 760.0]]


@pytest.mark.parametrize("logits", CASES)
def test_entropy_of_near_deterministic_logits(logits: list[float]) -> None:
    expected = oracles.entropy_of_logits(logits)
    assert crossent.entropy(logits, p_form="logits") == pytest.approx(
        expected, **CLOSED_FORM.rel_abs()
    )


@pytest.mark.parametrize("logits", CASES)
def test_cross_entropy_on_the_max_class_is_log1p_of_the_rest(logits: list[float]) -> None:
    target = np.eye(len(logits))[int(np.argmax(logits))]
    expected = oracles.cross_entropy_with_logits(target, logits)
    assert expected > 0
    assert crossent.cross_entropy(target, logits, q_form="logits") == pytest.approx(
        expected, **CLOSED_FORM.rel_abs()
    )
    label = [int(np.argmax(logits))]
    assert crossent.softmax_cross_entropy([logits], label) == pytest.approx(
        expected, **CLOSED_FORM.rel_abs()
    )
    assert crossent.softmax_cross_entropy_with_targets([logits], [target]) == pytest.approx(
        expected, **CLOSED_FORM.rel_abs()
    )


def test_float32_kernel_path_keeps_the_tiny_loss() -> None:
    logits = np.array([[40.0, 0.0, -1.0]] * 8, dtype=np.float32)
    expected = oracles.cross_entropy_with_logits([1.0, 0.0, 0.0], [40.0, 0.0, -1.0])
    got = crossent.softmax_cross_entropy(logits, np.zeros(8, dtype=np.int64))
    assert got == pytest.approx(expected, rel=FLOAT32_KERNEL.rtol32, abs=0)
