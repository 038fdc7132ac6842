r"""The float64 sigmoid focal gradient at and around its zero (issue 13, branch focal2).

Where :math:`t` lies between :math:`\sigma(x)` and the focal optimum the gradient's
terms :math:`\gamma(1-2t)\frac{\sigma(x)\sigma(-x)}{1-p_t}\ell` and :math:`\sigma(x) - t`
cancel; on main (96b794e2) the sum kept their rounding errors, about 1-4 ulps of
:math:`\sigma(x) - t` (lossulp1), so near the root it had wrong digits and signs:
``gamma = 2, t = 0.80292, x = 3.042166529584443``: ``1.40e-18`` for ``-1.81e-18``;
``gamma = 2, t = 0.05, x = -5.275197892857137``: ``8.27e-20`` for ``-4.47e-21``;
``gamma = 0.5, t = 0.9, x = 2.9012182062934073``: ``0.0`` for ``-5.96e-19``;
``gamma = 1, alpha = 0.75, t = 0.3, x = -1.4268908310435033``: ``-2.10e-18`` for
``-9.11e-20``.

Oracle: mpmath at 200 bits, the analytic gradient
(``oracles.sigmoid_focal_gradient_and_scale``). Points: the float64 roots that lossulp1
found, bisected roots of other cases, their float64 neighbours and offsets
(cancellations of 2 to 60 bits). Bound (``_focal_root``'s double-double evaluation):
4 units of :math:`2^{-52}` of the true value plus 16 units of :math:`2^{-104}` of
:math:`\alpha_t (1-p_t)^\gamma (\sigma(x) + t)` (measured: at most 7.5), and the true
sign wherever the true value exceeds that; main is about :math:`2^{-52}` of the latter
off.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

import oracles

# (gamma, t, alpha, a float64 root)
ROOTS = [
    (2.0, 0.80292, None, 3.0421665295844433),
    (3.0, 0.7, None, 2.4261147505032614),
    (0.5, 0.9, None, 2.9012182062934073),
    (1.0, 0.3, 0.75, -1.4268908310435033),
    (2.0, 0.05, None, -5.275197892857137),
]
OFFSETS = (0.0, 1e-12, -1e-9, 1e-6, -1e-4, 3e-3, -0.01, 0.03)


def _truth(x: float, t: float, gamma: float, alpha: float | None) -> tuple[mpmath.mpf, float]:
    """The gradient (``oracles.sigmoid_focal_gradient_and_scale``, 200 bits) and the bound
    on its error beyond 4 ulps (the module notes): 16 units of 2^-104 of the terms'
    scale."""
    value, scale = oracles.sigmoid_focal_gradient_and_scale(x, t, gamma, alpha)
    return value, float(16 * 2.0**-104 * scale)


def _check(x: np.ndarray, got: np.ndarray, t: float, gamma: float, alpha: float | None) -> None:
    for xi, gi in zip(x.tolist(), got.tolist(), strict=True):
        true, slack = _truth(xi, t, gamma, alpha)
        if abs(true) > slack:
            assert mpmath.sign(gi) == mpmath.sign(true), (xi, gi, true)
        assert abs(gi - true) <= 4 * 2.0**-52 * abs(true) + slack, (xi, gi, true)


def _points(root: float) -> np.ndarray:
    near = [root]
    for direction in (np.inf, -np.inf):
        x = root
        for _ in range(3):
            x = float(np.nextafter(x, direction))
            near.append(x)
    return np.array(near + [root + d for d in OFFSETS[1:]])


@pytest.mark.parametrize(("gamma", "t", "alpha", "root"), ROOTS)
def test_float64_focal_gradient_near_its_root(
    gamma: float, t: float, alpha: float | None, root: float
) -> None:
    x = _points(root)
    got = crossent.sigmoid_focal_loss_grad(
        x, np.full_like(x, t), gamma=gamma, alpha=alpha, reduction="none"
    )
    _check(x, got, t, gamma, alpha)


def test_small_path_refines_as_the_full_path() -> None:
    """A small call (14 entries) with cancelled entries gives the full path's bits (its
    compiled pass marks them, ``_focal_root.refined`` forms them, a second pass weighs
    and scales them; mutant killed: no second pass, the unrefined float64 sum) and the
    true values."""
    gamma, t, _, root = ROOTS[0]
    x = _points(root)
    targets = np.full_like(x, t)
    small = crossent.sigmoid_focal_loss_grad(x, targets, gamma=gamma, reduction="sum")
    wide = np.concatenate([x, np.zeros(9000)]), np.concatenate([targets, np.full(9000, 0.5)])
    full = crossent.sigmoid_focal_loss_grad(*wide, gamma=gamma, reduction="sum")[: x.size]
    np.testing.assert_array_equal(small, full)
    _check(x, small, t, gamma, None)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_bisected_roots(alpha: float | None) -> None:
    """Roots bisected (on the function's own sign) for ``gamma`` 0.25 to 5 and targets
    from 0.05 to 0.95, with their neighbours: one call, every entry refined at once."""
    rng = np.random.default_rng(7)
    for gamma in (0.25, 1.0, 2.0, 5.0):
        t = rng.uniform(0.05, 0.95, 3)
        lo, hi = np.full(t.size, -30.0), np.full(t.size, 30.0)
        for _ in range(64):
            mid = (lo + hi) / 2
            g = crossent.sigmoid_focal_loss_grad(mid, t, gamma=gamma, alpha=alpha, reduction="none")
            lo, hi = np.where(g < 0, mid, lo), np.where(g < 0, hi, mid)
        x = np.concatenate([_points(root)[:7] for root in lo.tolist()])
        targets = np.repeat(t, 7)
        got = crossent.sigmoid_focal_loss_grad(
            x, targets, gamma=gamma, alpha=alpha, reduction="none"
        )
        for i in range(t.size):
            part = slice(7 * i, 7 * i + 7)
            _check(x[part], got[part], float(t[i]), gamma, alpha)


def test_compiled_and_numpy_refinements_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_focal_root_numba`` (Numba's pass, branch focal4) and the vectorised NumPy
    refinement (the path without Numba) give the same bits: the roots and their
    neighbours, random entries of every sign and target, logits below ``EXP_FLOOR``
    (the C library's ``exp``), ``gamma`` 0.25 to 5; and the public call, 2-d and with
    ``alpha``, with Numba's pass and with the NumPy path (``available`` False). Mutants
    killed: NumPy's SIMD ``power`` in the NumPy path (an ulp off at some entries), the
    kernel's far entries keyed on the float64 ``exp``'s value (0 below -745: the table's
    ``e^0`` taken); survives: NumPy's ``log1p`` (the Newton step absorbs its ulp here)."""
    pytest.importorskip("numba")
    from crossent.losses import _cpu_kernels, _focal_root, _focal_root_numba

    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            *(_points(root) for *_, root in ROOTS),
            rng.normal(0.0, 4.0, 400),
            rng.uniform(-800.0, -690.0, 20),
            rng.uniform(690.0, 800.0, 20),
        ]
    )
    t = rng.uniform(0.0, 1.0, x.size)
    t[:50] = np.repeat([r[1] for r in ROOTS], 10)[:50]
    for gamma in (0.25, 1.0, 2.0, 5.0):
        compiled = _focal_root_numba.refined(x, t, gamma)
        vectorised = _focal_root.refined_numpy(x, t, gamma)
        np.testing.assert_array_equal(compiled.view(np.int64), vectorised.view(np.int64))
    shape = (4, x.size // 4)
    xs, ts = x[: 4 * shape[1]].reshape(shape), t[: 4 * shape[1]].reshape(shape)
    options = {"gamma": 2.0, "alpha": 0.25, "reduction": "none"}
    with_numba = crossent.sigmoid_focal_loss_grad(xs, ts, **options)
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    without = crossent.sigmoid_focal_loss_grad(xs, ts, **options)
    np.testing.assert_array_equal(with_numba.view(np.int64), without.view(np.int64))
