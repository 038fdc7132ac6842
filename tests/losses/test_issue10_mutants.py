"""Issue 10, "Tests that let bugs through": tests that kill the losses' surviving mutants.

Each test here was checked to fail on the mutant it names (applied to ``src/`` by hand).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent import InputError
from crossent.losses import _cpu_kernels
from crossent.losses._kernel_inputs import StatisticsOptions

pytest.importorskip("numba")

RNG = np.random.default_rng(1010)


def _negative_nan() -> np.float32:
    """A NaN with its sign bit set, as ``inf - inf`` gives on x86 (whose default NaN it is)."""
    nan = np.copysign(np.float32(np.nan), np.float32(-1.0))
    assert np.signbit(nan)
    return nan


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_issue10_tests_kernel_nan_with_sign_bit_makes_the_row_suspect(sign: float) -> None:
    # A negative NaN orders below every float under the integer key, so it never becomes
    # the row maximum: only the exp-sum's finiteness check can catch it (mutant: drop
    # ``isfinite(s)``).  One row per position covers vector bodies and scalar tails.
    v = 37
    nan = np.copysign(np.float32(np.nan), np.float32(sign))
    z = np.tile((RNG.standard_normal(v) * 5).astype(np.float32), (v + 1, 1))
    z[np.arange(v), np.arange(v)] = nan
    assert bool(np.signbit(z[0, 0])) == (sign < 0)
    for inv_temperature in (1.0, 0.5):
        suspect = _cpu_kernels.row_statistics(
            z,
            np.zeros(v + 1, dtype=np.int64),
            StatisticsOptions(inv_temperature=inv_temperature),
        )[-1]
        np.testing.assert_array_equal(suspect, [True] * v + [False])


@pytest.mark.parametrize(
    "options", [{}, {"label_smoothing": 0.1}, {"temperature": 2.0, "reduction": "none"}]
)
def test_issue10_tests_fused_loss_rejects_nan_with_sign_bit(options: dict) -> None:
    logits = (RNG.standard_normal((70, 50)) * 3).astype(np.float32)
    labels = RNG.integers(0, 50, size=70)
    logits[41, 13] = _negative_nan()
    assert _cpu_kernels.available()
    pattern = r"`logits` contains NaN at index \(41, 13\)"
    with pytest.raises(InputError, match=pattern):
        crossent.softmax_cross_entropy(logits, labels, **options)
    with pytest.raises(InputError, match=pattern):
        crossent.softmax_cross_entropy_grad(logits, labels, **options)
