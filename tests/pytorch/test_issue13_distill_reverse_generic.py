r"""Issue 13, branch distrev1: the reverse distillation loss's gradient on the generic torch
path, and its per-row value by the fused kernels, against mpmath.

``crossent.torch.distillation_loss(..., direction='reverse')`` off the 2-D CPU op (logits
``(N, C, 1)``: the generic path) gave autograd's derivative of
:math:`T^2\sum_c s_c(\log s_c - \log t_c)`, whose :math:`\log s_c - \log t_c - D` is a
difference of terms of the size of :math:`|\tau_r|` (100 or more on rows of logits from
:math:`N(0, 60^2)`): 3630, 202 and 7960 units of :math:`2^{-53}` of the row's largest
entry off at :math:`T = 1, 2, 1/2` in float64 and 393, 138 and 276 units of
:math:`2^{-23}` in float32 (``benchmarks/check_distill_reverse_compiled.py``, the "3-D
grad" column). Its rows now take the reverse kernel's gradient on the host
(``losses._distill.fused_reverse_rows``, the 2-D op's bits): 3.3, 4.5, 2.8 and 1.9, 0.8,
0.9. And the fused kernels' reverse :math:`D(s\,\|\,t)` (the 2-D op, large NumPy calls)
summed the teacher's gap at the student's top class into :math:`W/S` of rounded
differences: 2.8 and 3.5 units of :math:`2^{-53}` relative at :math:`T = 1, 2` on the
checker's rows; now :math:`g + \mu + (\ell_t - \ell_s)`, :math:`g` a pair of the exact
difference (``_distill_numba._reverse_kl``): 1.6 and 1.3.

Oracle: ``oracles.distillation_reverse`` (mpmath; 100 digits: a saturated row's top entry
cancels by some :math:`\max_c (z_r - z_c)/(T\ln 10)` digits, under 60 here).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402

import oracles  # noqa: E402

UNITS64 = 5.0
"""Gradient, float64: units of :math:`2^{-53}` times the row's largest entry (the 2-D
op's bound, ``test_issue13_distill_reverse_exact.UNITS``)."""
UNITS32 = 2.5
"""Gradient, float32: units of :math:`2^{-23}` times the row's largest entry (the
kernel's float64 entry rounded, then the dominant entry's float32 sum of the others)."""
LOSS_UNITS = 2.0
"""Per-row loss, float64: units of :math:`2^{-53}` relative (measured 1.6)."""


def _rows() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
    rng = np.random.default_rng(31)
    return {
        "wide": (rng.normal(0, 10, (6, 8)), rng.normal(0, 10, (6, 8)), (0.5, 2.0, 20.0)),
        "two": (rng.normal(0, 1, (6, 2)), rng.normal(0, 1, (6, 2)), (0.05, 1.0, 20.0)),
        "vocabulary": (rng.normal(0, 3, (1, 1000)), rng.normal(0, 3, (1, 1000)), (2.0,)),
    }


def _generic(z: np.ndarray, v: np.ndarray, temperature: float, dtype: torch.dtype) -> np.ndarray:
    zt = torch.tensor(z[:, :, None], dtype=dtype, requires_grad=True)
    vt = torch.tensor(v[:, :, None], dtype=dtype)
    ct.distillation_loss(zt, vt, temperature, "sum", direction="reverse").backward()
    assert zt.grad is not None
    return zt.grad[:, :, 0].double().numpy()


def _units(got: np.ndarray, want: list, eps: float) -> float:
    worst = 0.0
    for g, w in zip(got.tolist(), want, strict=True):
        unit = max(abs(x) for x in w) * mpmath.mpf(eps)
        worst = max(worst, max(float(abs(a - b) / unit) for a, b in zip(g, w, strict=True)))
    return worst


@pytest.mark.parametrize("name", ["wide", "two", "vocabulary"])
def test_generic_path_reverse_gradient_against_mpmath(name: str) -> None:
    z64, v64, temperatures = _rows()[name]
    worst = {}
    for temperature in temperatures:
        for dtype, eps, bound in (
            (torch.float64, 2.0**-53, UNITS64),
            (torch.float32, 2.0**-23, UNITS32),
        ):
            z = torch.tensor(z64, dtype=dtype).double().numpy()  # (the values it is given)
            v = torch.tensor(v64, dtype=dtype).double().numpy()
            want = oracles.distillation_reverse(z, v, temperature, digits=100)[1]
            units = _units(_generic(z, v, temperature, dtype), want, eps)
            worst[temperature, str(dtype)] = units
            assert units <= bound, worst


def test_fused_reverse_loss_against_mpmath() -> None:
    """The 2-D op's per-row :math:`T^2 D(s\\,\\|\\,t)` (the fused kernels') on the
    checker's rows (64 x 32 of :math:`N(0, 60^2)`, seed 0)."""
    rng = np.random.default_rng(0)
    z, v = rng.normal(0, 60, (64, 32)), rng.normal(0, 60, (64, 32))
    for temperature in (1.0, 2.0):
        rows = ct.distillation_loss(
            torch.tensor(z), torch.tensor(v), temperature, "none", direction="reverse"
        ).numpy()
        want = oracles.distillation_reverse(z, v, temperature, digits=40)[0]
        units = max(
            float(abs(a - b) / (abs(b) * mpmath.mpf(2) ** -53))
            for a, b in zip(rows.tolist(), want, strict=True)
        )
        assert units <= LOSS_UNITS, (temperature, units)
