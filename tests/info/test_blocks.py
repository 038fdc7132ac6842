"""Row-blocked evaluation on NumPy gives bit-identical results to row-by-row evaluation."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.info._blocks import BLOCK_ELEMENTS

from tolerances import ulps

RNG = np.random.default_rng(8)
# More than 2 * BLOCK_ELEMENTS elements, with a ragged last block.
N, K = 2 * BLOCK_ELEMENTS // 1000 + 37, 1000
P = RNG.dirichlet(np.ones(K), size=N)
Q = RNG.dirichlet(np.ones(K), size=N)
Z = RNG.normal(size=(N, K)) * 4


@pytest.mark.parametrize(
    "call",
    [
        lambda p, q, z: crossent.entropy(p),
        lambda p, q, z: crossent.cross_entropy(p, q),
        lambda p, q, z: crossent.kl_divergence(p, q),
        lambda p, q, z: crossent.js_divergence(p, q),
        lambda p, q, z: crossent.cross_entropy(p, z, q_form="logits"),
        lambda p, q, z: crossent.kl_divergence(z, q, p_form="logits"),
        lambda p, q, z: crossent.cross_entropy(p, q, eps=1e-3),
    ],
)
def test_blocked_equals_row_by_row(call: object) -> None:
    assert P.size > 2 * BLOCK_ELEMENTS
    blocked = call(P, Q, Z)  # type: ignore[operator]
    rows = [call(P[i], Q[i], Z[i]) for i in range(N)]  # type: ignore[operator]
    np.testing.assert_array_equal(blocked, rows)


def test_blocked_with_broadcasting_and_three_dimensional_batches() -> None:
    p = P[: 3 * 98].reshape(3, 98, K)
    assert p.size > 2 * BLOCK_ELEMENTS
    q = Q[0]
    blocked = crossent.kl_divergence(p, q)
    assert blocked.shape == (3, 98)
    expected = [[crossent.kl_divergence(p[i, j], q) for j in range(98)] for i in range(3)]
    np.testing.assert_array_equal(blocked, expected)
    # q with the batch and p without: the broadcast side is the first argument's
    blocked = crossent.cross_entropy(q, p)
    np.testing.assert_array_equal(blocked, [[crossent.cross_entropy(q, r) for r in b] for b in p])


def test_blocked_float32_accumulates_in_float64() -> None:
    p32 = P.astype(np.float32)
    got = crossent.entropy(p32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got, crossent.entropy(p32.astype(np.float64), validate=False), rtol=ulps(2, np.float32)
    )
