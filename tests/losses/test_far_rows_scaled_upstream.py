"""Issue 13: a far row's gradient past the dtype's range is right for any upstream.

``_far_row_gradients.gradient_term`` carried an entry :math:`g` past ``x``'s range as
:math:`((x - \\operatorname{detach} x)\\cdot\\text{max})\\cdot 2`: the gradient was
:math:`2\\,\\text{max}\\,u`, finite below an upstream :math:`u = 1/2`. On main, float32,
:math:`g = 10^{39}`, :math:`u = 1/4` gave 1.7014e38 where :math:`u g` is 2.5e38; and
the public ``crossent.softmax_cross_entropy`` of float32 logits with
``temperature=1e-300`` and ``reduction='mean'`` over 4 rows gave the logits the gradient
:math:`\\pm 1.7014\\times 10^{38}` where the truth is :math:`\\pm 2.5\\times 10^{299}`
(:math:`\\pm\\infty` in float32). Now the upstream times :math:`g` is formed in float64
and rounded once to ``x``'s dtype.

Oracles: :math:`u g` in float64 rounded by NumPy to the dtype; the float64 torch call
(whose gradients are finite) rounded to float32. The zero-upstream cases guard
behaviour (pass on main: 0, not NaN, at :math:`g = \\pm\\infty`), and so does the
last test (-0.0 kept; kills the mutant that drops the overflowing part's -0.0).
9 of 12 fail on main.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
from crossent._far_row_gradients import gradient_term  # noqa: E402  (after the skip)


def _gradient(g: np.ndarray, upstream: float, dtype: torch.dtype, shape: tuple[int, ...]) -> Any:
    x = torch.zeros(shape, dtype=dtype, requires_grad=True)
    far = torch.ones(g.shape[:-1], dtype=torch.bool)
    out = gradient_term(x, g, far, -1, xp=torch)
    assert torch.equal(out, torch.zeros_like(out))  # value 0 exactly
    (out * upstream).sum().backward()
    assert x.grad is not None
    return x.grad


def _rounded(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """float64 values rounded once to ``dtype`` (an overflow: inf)."""
    with np.errstate(over="ignore"):
        return torch.from_numpy(np.asarray(values, dtype=np.float64)).to(dtype)


CASES = [
    # (g entry, upstream, dtype)
    (1e39, 0.25, torch.float32),  # main: 1.7014e38
    (1e39, 1e-30, torch.float32),  # main: 3.4e8
    (-1e39, 0.5, torch.float32),  # main: -max (truth -5e38: -inf)
    (1e39, -0.125, torch.float32),  # main: -8.5e37
    (math.inf, 0.25, torch.float32),  # main: 1.7014e38
    (1e5, 0.25, torch.float16),  # fp16's max is 65504; main: 32752
    (math.inf, 0.0, torch.float32),  # guard: 0
    (1e39, 0.0, torch.float32),  # guard: 0
]


@pytest.mark.parametrize(
    ("g", "upstream", "dtype"), CASES, ids=[f"{g:g}-{u:g}-{str(d)[6:]}" for g, u, d in CASES]
)
def test_entry_past_the_range(g: float, upstream: float, dtype: torch.dtype) -> None:
    got = _gradient(np.array([[g, 0.0]]), upstream, dtype, (1, 2))
    want = 0.0 if upstream == 0 else upstream * g
    assert torch.equal(got[0, 0], _rounded(np.array(want), dtype))
    assert got[0, 1] == 0


def test_broadcast_entries_summed() -> None:
    """``x`` of shape (1, 2) broadcast to ``g``'s (3, 2): its gradient sums the rows'
    ``u g`` in float64 ((1e39 + 2e39 - 2e39) / 8 = 1.25e38, finite in float32, where
    each row's share rounded alone would be inf, inf and -inf: NaN), and the second
    class, finite in float32, the plain way."""
    g = np.array([[1e39, 1.0], [2e39, 2.0], [-2e39, 4.0]])
    got = _gradient(g, 0.125, torch.float32, (1, 2))
    assert torch.equal(got[0, 0], _rounded(np.array(0.125 * 1e39), torch.float32))
    assert float(got[0, 1]) == 0.125 * 7.0


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_public_far_rows(reduction: str) -> None:
    """``softmax_cross_entropy`` with a temperature that sends every gap past float64's
    range: every row is far, its gradient formed on the host. ``mean`` over 4 rows (and
    ``0.25 * sum``) gives an upstream of 1/4 per row."""
    z64 = torch.tensor([[1.0, -1.0, 0.5]] * 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 1, 1, 1])
    z = z64.detach().float().requires_grad_()
    scale = 1.0 if reduction == "mean" else 0.25
    for logits in (z, z64):
        loss = crossent.softmax_cross_entropy(logits, y, temperature=1e-300, reduction=reduction)
        (scale * loss).backward()
    assert z64.grad is not None
    assert z.grad is not None
    assert torch.isfinite(z64.grad).all()  # 2.5e299 and -2.5e299, 0
    assert torch.equal(z.grad, z64.grad.float())  # +-inf in float32 (main: +-1.7014e38)


def test_zeros_keep_their_bits() -> None:
    """The entries within the range keep the common path's bits: a -0.0 of the other
    class stays -0.0 (the overflowing part adds -0.0 there)."""
    x = torch.zeros((1, 2), requires_grad=True)
    out = gradient_term(x, np.array([[1e39, 0.0]]), torch.tensor([True]), -1, xp=torch)
    (out * 0.25 + (x * torch.tensor([[0.0, -1.0]])).sum() * 0.0).sum().backward()
    assert x.grad is not None
    assert math.copysign(1.0, float(x.grad[0, 1])) == -1.0
