"""Issue 13: the fused kernel's row maximum from a signed maximum and an unsigned minimum.

The statistics kernel finds each row's maximum from the float32 bits: the signed
maximum of the bits when some value has its sign bit clear, else their unsigned minimum
(``_cpu_kernels_numba.maximum_bits``). These rows test every case against NumPy: rows of
negatives only (where the unsigned minimum decides), mixed signs, -0 beside +0 and
beside negatives, -inf entries, +inf, and a positive NaN (which must surface, making the
row suspect), in the first row of a block (its own pass) and in the rows whose maximum
is taken inside the previous row's exp-sum loop, for float32, float16 and bfloat16.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.losses import _cpu_kernels
from crossent.losses._kernel_inputs import StatisticsOptions

pytest.importorskip("numba")


def _total_order_max(values: np.ndarray) -> np.ndarray:
    """Each row's maximum in IEEE 754's total order (+0 above -0), by NumPy."""
    bits = values.view(np.int32)
    keys = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # orders like the floats
    return np.take_along_axis(values, keys.argmax(axis=1)[:, None], axis=1)[:, 0]


def _rows(v: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = [
        -rng.uniform(0.5, 100.0, v),  # negatives only
        -rng.uniform(1e-3, 1e-2, v),  # negatives close to 0: the largest has the least bits
        rng.normal(size=v) * 3,  # mixed signs
        np.abs(rng.normal(size=v)) + 1.0,  # positives only
        -np.abs(rng.normal(size=v)) - 1.0,
    ]
    zeros = -rng.uniform(1.0, 2.0, v)
    zeros[v // 2] = -0.0  # -0 is the maximum of a row of negatives
    rows.append(zeros)
    both = zeros.copy()
    both[v // 3] = 0.0  # +0 beside -0
    rows.append(both)
    with_inf = -rng.uniform(1.0, 5.0, v)
    with_inf[::3] = -np.inf
    rows.append(with_inf)
    rows.append(np.full(v, -np.inf))  # all -inf: m = -inf
    rows.append(np.full(v, -7.25))  # ties
    return np.stack(rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16"])
@pytest.mark.parametrize("v", [2, 7, 33, 1000])
def test_issue13_row_maximum_is_numpys_in_every_position_of_a_block(dtype: object, v: int) -> None:
    base = _rows(v, seed=v)
    # each kind of row first in a block (the rows run on the calling thread below the
    # block size and SERIAL_ELEMENTS), and after every other kind (the fused loop)
    order = np.concatenate([np.roll(np.arange(len(base)), k) for k in range(len(base))])
    z64 = base[order]
    if dtype == "bfloat16":
        z32 = z64.astype(np.float32)
        bits = z32.view(np.uint32)
        z = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # to nearest even
        values = (z.astype(np.uint32) << 16).view(np.float32)
    else:
        z = z64.astype(dtype)
        values = z.astype(np.float32)
    for rows in (z, np.concatenate([z] * 8)):  # a single block, and several in parallel
        expected = _total_order_max(np.tile(values, (len(rows) // len(values), 1)))
        m, _, _, _, suspect = _cpu_kernels.row_statistics(
            rows, np.zeros(len(rows), dtype=np.int64), StatisticsOptions()
        )
        np.testing.assert_array_equal(m, expected.astype(np.float64))
        # the sign of a zero maximum: -0 only where the row has no +0
        np.testing.assert_array_equal(np.signbit(m), np.signbit(expected))
        np.testing.assert_array_equal(suspect, np.isneginf(expected))


def test_issue13_a_positive_nan_surfaces_as_the_maximum() -> None:
    z = np.array(
        [[-1.0, np.nan, -3.0], [-1.0, -2.0, -3.0], [5.0, np.nan, np.inf], [-1.0, -2.0, np.nan]],
        dtype=np.float32,
    )
    z = np.concatenate([z, z[::-1]])
    m, _, _, _, suspect = _cpu_kernels.row_statistics(
        z, np.zeros(len(z), dtype=np.int64), StatisticsOptions()
    )
    has_nan = np.isnan(z).any(axis=1)
    assert np.isnan(m[has_nan]).all()
    assert suspect[has_nan].all()
    assert not suspect[~has_nan].any()
