"""The sigmoid gradient's careful path without FMA instructions (Dekker's splitting).

``_sigmoid_grad_numba`` forms the exact products' error terms by one FMA where Numba's
target has FMA (:data:`HAS_FMA`), else by Dekker's splitting, and fuses its Horner and
double-double steps only with FMA. On this project's machines the compiled kernels take
the FMA branch, so the other one was run only by hand (``NUMBA_CPU_FEATURES=...,-fma``,
a cold compilation of every kernel). Here it runs as pure Python: the Numba functions'
``py_func`` with :data:`HAS_FMA` False, every helper replaced by its own ``py_func`` (so
the module's ``_SPLITTER`` and branches are the ones executed) and the FMA intrinsic by
a function that fails if called. Oracles: exact rational arithmetic for the products,
mpmath at 300 bits for the numerator :math:`N` (as
``test_issue13_sigmoid_grad_cancellation``), and the compiled FMA branch.
Mutant-guarded (main has the same branch): the split constant 2**27 + 1 changed to
2**27 or 2**26 + 1 fails both tests.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from sigmoid_grad_oracle import hard_entries

pytest.importorskip("numba")

from crossent.losses import _sigmoid_grad_numba as kernels  # (after the skip)

_HELPERS = (
    "_two_sum",
    "_fast_two_sum",
    "_two_prod",
    "_mul_add",
    "_dd_mul_d",
    "_dd_mul_add",
    "_exp_steps",
    "_entry",
    "_look_up",
    "_arithmetic",
)


def _no_fma(*args: float) -> float:
    raise AssertionError("the FMA branch ran")


def _without_fma(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module as a target without FMA would compile it, run as Python (after every
    compiled call of the test: a compilation now would see these globals)."""
    monkeypatch.setattr(kernels, "HAS_FMA", False)
    monkeypatch.setattr(kernels, "_fma", _no_fma)
    for name in _HELPERS:
        monkeypatch.setattr(kernels, name, getattr(kernels, name).py_func)


def _numerator(x: float, t: float, pw: float, eps: float) -> float:
    """``numerator_dd`` of one entry through ``numerators.py_func`` (the module's globals
    as the fixture left them)."""
    xs, ts, ps = (np.array([v]) for v in (x, t, pw))
    out = np.empty(1)
    work = np.empty(1), np.empty(1), np.empty(1), np.empty((3, 1))
    kernels.numerators.py_func(xs, ts, ps, 1, eps, True, kernels._EXP2, *work, out)
    return float(out[0])


def _pairs() -> list[tuple[float, float]]:
    """Factors with full 53-bit significands over the kernel's range (``HUGE`` bounds
    them below 2**996), of both signs, and the splitter's edge cases."""
    rng = np.random.default_rng(5)
    a = rng.uniform(1.0, 2.0, 300) * 2.0 ** rng.integers(-400, 400, 300)
    b = rng.uniform(-2.0, 2.0, 300) * 2.0 ** rng.integers(-400, 400, 300)
    pairs = list(zip(a.tolist(), b.tolist(), strict=True))
    ones = float(np.nextafter(2.0, 0.0))  # 53 one-bits
    pairs += [(ones, ones), (-ones, ones * 2.0**500), (1 + 2.0**-52, 1 - 2.0**-53)]
    pairs += [(134217729.0, ones), (2.0**27 - 1, 2.0**27 + 1), (1.0 / 3.0, 3.0)]
    return pairs


def test_two_prod_by_splitting_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_two_prod`` without FMA: ``a b = p + e`` exactly, ``p`` the rounded product."""
    _without_fma(monkeypatch)
    for a, b in _pairs():
        p, e = kernels._two_prod(a, b)
        assert p == a * b
        assert Fraction(p) + Fraction(e) == Fraction(a) * Fraction(b), (a, b)


def test_numerator_without_fma_against_mpmath_and_the_fma_branch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``N`` of 150 hard entries (targets at and beside the gradient's zero, 0 and 1,
    ``pos_weight``, label smoothing) by the non-FMA branch: within float64 rounding of
    mpmath's down to :math:`|N| = 2^{-60}` of its terms, and within the same of the
    compiled kernel's (the FMA branch, on this machine)."""
    data = hard_entries(150, pos_weight=True, eps=0.0, seed=13)
    x, t, pw = (data[k].astype(np.float64) for k in ("x", "t", "pw"))
    eps = 0.125
    compiled = [kernels.numerator_dd(x[i], t[i], pw[i], eps) for i in range(x.size)]
    _without_fma(monkeypatch)
    with mpmath.workprec(300):
        for i in range(x.size):
            got = _numerator(x[i], t[i], pw[i], eps)
            xi, ti, pi = (mpmath.mpf(float(v[i])) for v in (x, t, pw))
            ts = (1 - mpmath.mpf(eps)) * ti + mpmath.mpf(eps) / 2
            u = mpmath.exp(-abs(xi))
            n = (1 - ts) - pi * ts * u if xi >= 0 else (1 - ts) * u - pi * ts
            bound = 2.0**-52 * abs(n) + 2.0**-100 * max(abs(1 - ts), abs(pi * ts))
            assert abs(mpmath.mpf(got) - n) <= bound, (i, got, float(n))
            assert abs(mpmath.mpf(got) - mpmath.mpf(float(compiled[i]))) <= 2 * bound, i
    assert _numerator(0.0, 0.5, 1.0, 0.0) == 0.0
