"""``_far_row_gradients.gradient_term`` with a NaN entry of the far rows' gradient.

Its docstring: an entry :math:`g = \\pm\\infty` is carried as :math:`\\pm\\infty` backward
(0 at a zero upstream), and a NaN entry gets NaN where a far row's upstream gradient is
not 0 (``unformed``, at that entry only), not a silent 0. The mutation pass of branch
mutation5 found no test reaching the NaN branch: the mutants ``if truth_of(xp.any(nan))``
-> ``if False`` (NaN entries dropped: their gradient a silent 0) and ``hit = hit &
entries`` -> ``hit`` (NaN in every entry of the row) survived the far-row files
(``tests/info/test_far_gap_measure_gradients.py``, ``tests/losses/test_far_rows_*.py``),
and no public call of 1144 far-row calls probed fed it a NaN (the twins' gradients of
far rows are finite there). The call is made directly here.

Oracle: the contract written out per entry (finite entries: upstream times ``g``).
The infinite entries are checked at upstreams of 0 and 1 here; other upstreams in
``tests/losses/test_far_rows_scaled_upstream.py`` (branch torchleft6: main's carried
:math:`2\\cdot\\text{max}` times an upstream below 1/2 was finite).
Guards behaviour (passes on main); kills those two mutants.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crossent._far_row_gradients import gradient_term  # noqa: E402  (after the skip)

G = np.array([[0.25, math.nan, -0.5], [0.0, 0.0, 0.0], [math.inf, 1.0, -math.inf]])
FAR = np.array([True, False, True])


def _backward(upstream: list[float]) -> tuple[torch.Tensor, np.ndarray]:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], requires_grad=True)
    x64 = x.double().detach().requires_grad_()
    out = gradient_term(x64, G, torch.tensor(FAR), -1, xp=torch)
    assert out.shape == (3,)
    assert torch.equal(out, torch.zeros(3, dtype=torch.float64))  # value 0 exactly
    (out * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
    assert x64.grad is not None
    return x64.grad, np.asarray(upstream)


def _expected(upstream: np.ndarray) -> np.ndarray:
    want = np.zeros_like(G)
    for i in range(3):
        for c in range(3):
            g, u = G[i, c], upstream[i]
            if math.isnan(g):
                want[i, c] = math.nan if (FAR[i] and u != 0) else 0.0
            elif math.isinf(g):
                want[i, c] = g * u if u != 0 else 0.0
            else:
                want[i, c] = g * u
    return want


@pytest.mark.parametrize("upstream", [[1.0, 1.0, 1.0], [2.0, -1.0, 1.0], [0.0, 3.0, 1.0]])
def test_nan_entry_is_nan_where_upstream_is_not_zero(upstream: list[float]) -> None:
    grad, u = _backward(upstream)
    np.testing.assert_array_equal(grad.numpy(), _expected(u))
