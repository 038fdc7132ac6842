r"""Issue 13: ``NearRows``' forward gradient where a little mass is moved far (branch
nearfwd1).

A row whose student is its teacher up to tiny noise (1e-7 to 1e-12 times :math:`T`)
but for one class of small mass (:math:`2^{-18}`; 2.9e-5) moved down by :math:`70T`
is a near row by its spread (below ``SPREAD_FLOOR`` times :math:`\max_c t_c`).
``NearRows`` formed :math:`T(s - t) = t \odot a\,\operatorname{expm1}(a/T)/(a/T)`
with :math:`a = U - M - T D`, :math:`U` the log-ratio less its mean under :math:`t`:
the moved class moves that mean by some :math:`70\,T\,t_j`, every bulk class's
:math:`U` and :math:`T D` are of that size, and :math:`a` (of the size of :math:`T
t_j`) cancels. Student logits ``[0, log1p(-m) + 1e-7 T, log(m) - 70 T]`` beside
teacher logits ``[0, log1p(-m), log(m)]``, :math:`m = (2.9\cdot 10^{-5})^T`, were
12.1, 63.8 and 31.4 units of :math:`2^{-53}` times the row's largest entry off at
:math:`T = 1/4, 1/2, 4` (NumPy's array formulas; its Numba twin 12.1, 5.3, 31.4); the
rows of :func:`_row` 33.1 (37.1 at :math:`T = 0.1`; 17.2 with 997 classes at
:math:`-70T`). Now :math:`a = W - \ell`, :math:`W` the log-ratio shifted at the
teacher's top class and centred on the classes not moved far, :math:`\ell = T\log\mathrm
E_t[e^{W/T}]` formed as :math:`G + T\psi(G/T)`, :math:`G = \mathrm
E_t[T\operatorname{expm1}(W/T)]` (``_near_rows._tempered_log_mean``): 0.8, 2.7 and 0.2;
1.1 (6.1 at :math:`T = 0.1`, the weights' own rounding there, :math:`e^{\log t_c}` of
a rounded :math:`(v_c - \max v)/T`, the same on main) and 0.5.

Oracle: mpmath at 80 digits. Paths: the NumPy array formulas (``NearRows`` given the
softened rows, as PyTorch and JAX callers give them), the Numba twin
(``near_gradient64``), the public call (the lean path) and PyTorch tensors through the
array formulas. On main: 61 of 61 fail.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels
from crossent.losses._far_gaps import tempered_log_softmax64
from crossent.losses._near_rows import NearRows, spread_is_small

TEMPERATURES = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
ROWS = [("bulk", 3, 1e-7), ("bulk", 3, 1e-10), ("bulk", 3, 1e-12), ("far", 1000, 1e-10)]
CASES = [(name, classes, step, t) for name, classes, step in ROWS for t in TEMPERATURES]
CASES.remove(("far", 1000, 1e-10, 0.1))  # (within 8 units on main: the weights' rounding)
MOVED = [("moved", 3, 1e-7, t) for t in (0.25, 0.5, 4.0)]
IDS = [f"{name}{classes}-{step:g}-T{t:g}" for name, classes, step, t in CASES + MOVED]


def _units(temperature: float) -> float:
    """Tolerance per entry, in units of :math:`2^{-53}` times the row's largest entry: 3,
    and 8 at :math:`T = 0.1` (not a power of 2: the weights' rounding, module
    docstring)."""
    return 3.0 if math.frexp(temperature)[0] == 0.5 else 8.0


def _row(name: str, classes: int, step: float, temperature: float) -> tuple[np.ndarray, ...]:
    r"""The student's and the teacher's logits: ``'moved'`` the row of the module
    docstring; ``'bulk'`` a teacher of two classes of logits :math:`0.3T` apart and a last
    class of mass :math:`2^{-18}` (``'far'``: and the classes between at :math:`-70T`),
    the student the teacher plus noise of ``step`` :math:`T` (its first class the
    teacher's) with the last class moved down by :math:`70T` (a spread of
    :math:`2^{-18}`, below ``SPREAD_FLOOR`` times :math:`\max_c t_c`)."""
    t = temperature
    if name == "moved":
        m = 2.9e-5**t
        z = [0.0, math.log1p(-m) + step * t, math.log(m) - 70 * t]
        return np.array(z), np.array([0.0, math.log1p(-m), math.log(m)])
    rng = np.random.default_rng(classes)
    v = np.full(classes, -70.0 * t)
    v[0], v[1] = 0.0, 0.3 * t * rng.normal()
    v[-1] = t * (math.log(2.0**-18) + math.log(np.sum(np.exp(v[:-1] / t))))
    z = v + step * t * rng.normal(size=classes)
    z[0], z[-1] = v[0], v[-1] - 70 * t
    return z, v


def _off(got: object, z: np.ndarray, v: np.ndarray, temperature: float) -> float:
    r"""The largest :math:`|g_c - T(s_c - t_c)|` of a row, in units of :math:`2^{-53}`
    times its largest :math:`|T(s_c - t_c)|` (mpmath, 80 digits)."""
    row = np.asarray(got, dtype=np.float64).reshape(-1)
    with mpmath.workdps(80):
        t = mpmath.mpf(temperature)
        es = [mpmath.exp(mpmath.mpf(float(x)) / t) for x in z]
        et = [mpmath.exp(mpmath.mpf(float(x)) / t) for x in v]
        ss, st = mpmath.fsum(es), mpmath.fsum(et)
        truth = [t * (a / ss - b / st) for a, b in zip(es, et, strict=True)]
        unit = max(abs(x) for x in truth) * mpmath.mpf(2) ** -53
        return max(
            float(abs(mpmath.mpf(float(g)) - x) / unit) for g, x in zip(row, truth, strict=True)
        )


@pytest.mark.parametrize(("name", "classes", "step", "temperature"), CASES + MOVED, ids=IDS)
def test_array_formulas(name, classes, step, temperature) -> None:
    """NumPy's array formulas (``NearRows`` given the softened rows)."""
    z, v = _row(name, classes, step, temperature)
    zs, vs = z[None], v[None]
    log_s = tempered_log_softmax64(zs, temperature)[2]
    log_t = tempered_log_softmax64(vs, temperature)[2]
    got = NearRows(zs, vs, temperature, np, log_s, log_t).gradient(forward=True)
    assert _off(got, z, v, temperature) <= _units(temperature)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize(("name", "classes", "step", "temperature"), CASES + MOVED, ids=IDS)
def test_numba_twin(name, classes, step, temperature) -> None:
    """``near_gradient64``, the formulas compiled (a float64 NumPy row's)."""
    from crossent.losses._near_rows_numba import near_gradient64

    z, v = _row(name, classes, step, temperature)
    got = near_gradient64(z[None], v[None], temperature)
    assert _off(got, z, v, temperature) <= _units(temperature)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_public_call(temperature) -> None:
    """``distillation_loss_grad`` (the lean path) on the rows, flagged by their spread."""
    for name, classes, step in ROWS:
        z, v = _row(name, classes, step, temperature)
        s, t = (np.exp(tempered_log_softmax64(x, temperature)[2]) for x in (z, v))
        assert spread_is_small(s - t, t, np)
        got = crossent.distillation_loss_grad(z, v, temperature=temperature, reduction="sum")
        assert _off(got, z, v, temperature) <= _units(temperature), name


@pytest.mark.parametrize("temperature", [0.1, 0.5, 4.0])
def test_torch_array_formulas(temperature) -> None:
    """PyTorch float64 tensors through the array formulas (``NearRows`` in ``torch``)."""
    torch = pytest.importorskip("torch")
    for name, classes, step in ROWS[:3]:
        z, v = _row(name, classes, step, temperature)
        zs, vs = torch.tensor(z[None]), torch.tensor(v[None])
        log_s = torch.log_softmax(zs / temperature, dim=-1)
        log_t = torch.log_softmax(vs / temperature, dim=-1)
        got = NearRows(zs, vs, temperature, torch, log_s, log_t).gradient(forward=True)
        assert _off(got.numpy(), z, v, temperature) <= _units(temperature), name
