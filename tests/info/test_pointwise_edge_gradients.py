"""Autodiff of the elementwise measures at the ends of [0, 1]: the one-sided derivatives.

``surprisal``, ``binary_entropy`` and ``binary_cross_entropy`` (both arguments) under
torch autograd and ``jax.grad`` at 0 and 1 against an mpmath oracle: the limit of the
derivative from inside the domain, which the closed-form ``binary_cross_entropy_grad``
takes too. The placeholders of the plain terms gave finite numbers there (``surprisal``
0 at ``p = 0``, ``binary_entropy`` 1 and -1, ``d/dq BCE(0.5, q)`` 0.5 at ``q = 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

mp = mpmath.mp


def _bce(p: object, q: object) -> object:
    return -p * mpmath.log(q) - (1 - p) * mpmath.log(1 - q)  # type: ignore[operator]


def _limit(derivative: Callable[[object], object]) -> float:
    """lim of ``derivative(t)`` as t -> 0+, from t = 1e-30 and 1e-60: its value where the
    two agree to 1e-20, +-inf where it keeps growing (the logarithmic divergences grow by
    69 between the two)."""
    with mp.workdps(150):
        near, nearer = (derivative(mpmath.mpf(10) ** -k) for k in (30, 60))
    if abs(nearer - near) < 1e-20:
        return float(nearer)
    assert near * nearer > 0, (near, nearer)
    assert abs(nearer) > abs(near) + 10, (near, nearer)
    return math.copysign(math.inf, float(nearer))


def _inside_limit(f: Callable[[object], object], x: float, side: int) -> float:
    """lim of f'(x + side t) as t -> 0+: the one-sided derivative of f at the edge x."""
    return _limit(lambda t: mpmath.diff(f, mpmath.mpf(x) + side * t))


def _side(x: float) -> int:
    return 1 if x < 0.5 else -1


EDGES = [0.0, 1.0]
PAIRS = [(p, q) for q in (0.0, 1.0) for p in (0.0, 0.25, 1.0)] + [
    (p, q) for p in (0.0, 1.0) for q in (0.375,)
]


def _oracles() -> dict[str, list[tuple[tuple[float, ...], tuple[float, ...]]]]:
    """Per measure: (point, expected derivative in each argument)."""
    cases: dict[str, list[tuple[tuple[float, ...], tuple[float, ...]]]] = {}
    cases["surprisal"] = [
        ((x,), (_inside_limit(lambda v: -mpmath.log(v), x, _side(x)),)) for x in EDGES
    ]
    cases["binary_entropy"] = [
        ((x,), (_inside_limit(lambda v: _bce(v, v), x, _side(x)),)) for x in EDGES
    ]
    bce = []
    for p, q in PAIRS:
        # d/dq: along q into the domain; d/dp: the same limit of the p-partial (p in the
        # loss is a weight: BCE is linear in it, so mpmath's central difference is exact)
        side_q = _side(q) if q in (0.0, 1.0) else 1
        d_q = _inside_limit(lambda v, p=p: _bce(p, v), q, side_q)

        def d_p_at(t: object, p: float = p, q: float = q, side_q: int = side_q) -> object:
            return mpmath.diff(lambda v: _bce(v, mpmath.mpf(q) + side_q * t), p)

        d_p = _limit(d_p_at) if q in (0.0, 1.0) else float(d_p_at(0))
        bce.append(((p, q), (d_p, d_q)))
    cases["binary_cross_entropy"] = bce
    return cases


ORACLES = _oracles()
CASES = [
    pytest.param(name, point, expected, id=f"{name}-{'-'.join(map(str, point))}")
    for name, rows in ORACLES.items()
    for point, expected in rows
]


def _assert_same(got: list[float], expected: tuple[float, ...]) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("name", "point", "expected"), CASES)
def test_torch_autograd_gives_the_one_sided_derivative(
    name: str, point: tuple[float, ...], expected: tuple[float, ...]
) -> None:
    torch = pytest.importorskip("torch")
    args = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in point]
    getattr(crossent, name)(*args).sum().backward()
    _assert_same([float(a.grad[0]) for a in args], expected)


@pytest.mark.parametrize(("name", "point", "expected"), CASES)
def test_jax_grad_gives_the_one_sided_derivative(
    name: str, point: tuple[float, ...], expected: tuple[float, ...], jax_x64: Any
) -> None:
    jax = jax_x64
    import jax.numpy as jnp

    args = [jnp.asarray([v], dtype=jnp.float64) for v in point]
    measure = getattr(crossent, name)
    grads = jax.grad(lambda *a: measure(*a).sum(), argnums=tuple(range(len(args))))(*args)
    _assert_same([float(g[0]) for g in grads], expected)


@pytest.mark.parametrize(
    ("point", "expected"),
    [pytest.param(pt, ex, id=f"{pt[0]}-{pt[1]}") for pt, ex in ORACLES["binary_cross_entropy"]],
)
def test_closed_form_q_gradient_agrees_with_the_oracle(
    point: tuple[float, float], expected: tuple[float, float]
) -> None:
    _assert_same([float(crossent.binary_cross_entropy_grad(*point))], expected[1:])


def test_values_keep_the_conventions_and_the_interior_gradients() -> None:
    """0 log 0 = 0 (+0.0), +inf where a weight meets log 0; inside, log((1 - p)/p)."""
    torch = pytest.importorskip("torch")
    p = torch.tensor([0.0, 1.0, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    h = crossent.binary_entropy(p)
    assert h[:2].tolist() == [0.0, 0.0]
    assert not torch.signbit(h[:2]).any()
    h.sum().backward()
    inner = p.detach()[2:]
    torch.testing.assert_close(p.grad[2:], torch.log((1 - inner) / inner), rtol=1e-14, atol=0)
    q = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0, 0.5], dtype=torch.float64)
    assert crossent.binary_cross_entropy(t, q).tolist() == [0.0, math.inf, 0.0, math.inf]
