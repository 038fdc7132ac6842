r"""Shared pieces of the fused distillation differential tests (issue 13 review):
``tests/losses/test_issue13_distill_fused_differential.py`` (NumPy) and
``tests/pytorch/test_issue13_distill_fused_differential_torch.py``: the hard rows, a
long-double oracle with its rounding bounds, one float32 ulp; and for every NumPy
test of the fused route, the full path's call (:func:`full_path`) and a loss's values
(:func:`loss_values`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crossent.losses import _distill_fused

TEMPERATURES = (0.125, 0.3, 1.0, 2.0, 3.0, 7.0, 1000.0)
HARD = (
    "equal",
    "shift",
    "near",
    "ulp",
    "ties",
    "gap",
    "subnormal",
    "masked_teacher",
    "masked_both",
    "student_inf",
    "student_inf_below_floor",
    "student_huge",
)
EPS = 2.0**-53
LD = np.longdouble


def harden(z: np.ndarray, v: np.ndarray, row: int, kind: str, t: float, rng: Any) -> None:
    """Make row ``row`` of float64 ``z``, ``v`` (rows x classes) one of :data:`HARD`
    (left as it was where that would leave a side all ``-inf``: no distribution)."""
    before = z[row].copy(), v[row].copy()
    _make(z, v, row, kind, t, rng)
    if np.isneginf(z[row]).all() or np.isneginf(v[row]).all():
        z[row], v[row] = before


def _make(z: np.ndarray, v: np.ndarray, row: int, kind: str, t: float, rng: Any) -> None:
    classes = z.shape[1]
    col = int(rng.integers(classes))
    some = rng.choice(classes, size=max(1, classes // 10), replace=False)
    some = some[some != int(np.argmax(v[row]))] if kind != "masked_both" else some
    if kind == "equal":
        v[row] = z[row]
    elif kind == "shift":
        v[row] = z[row] + 0.5
    elif kind == "near":
        v[row] = z[row] + 1e-7 * rng.standard_normal(classes)
    elif kind == "ulp":
        v[row] = np.nextafter(z[row].astype(np.float32), np.float32(np.inf))
    elif kind == "ties":
        z[row] = np.round(z[row] / 3.0)
        v[row] = np.round(v[row] / 3.0)
    elif kind == "gap":
        z[row, col] = 1e4
    elif kind == "subnormal":
        z[row] *= 1e-310
        v[row] *= 1e-310
    elif kind == "masked_teacher":
        v[row, some] = -np.inf
    elif kind == "masked_both":
        z[row, some] = -np.inf
        v[row, some] = -np.inf
        if np.isneginf(z[row]).all():
            z[row, 0] = v[row, 0] = 0.0
    elif kind == "student_inf":
        z[row, col] = -np.inf
    elif kind == "student_inf_below_floor":  # t_c = e^-800 / S > 0 beside s_c = 0
        z[row, col] = -np.inf
        v[row, col] = v[row].max() - 800.0 * t
    elif kind == "student_huge":  # t_c (tau_c - sigma_c): e^-710 times 1e300
        if col == int(np.argmax(z[row])):
            col = (col + 1) % classes
        z[row, col] = -1e300
        v[row, col] = np.delete(v[row], col).max() - 710.0 * t  # (-inf beside a masked row)


def oracle(z: np.ndarray, v: np.ndarray, t: float) -> dict[str, np.ndarray]:
    """Long-double :math:`T^2 D(t\\|s)` per row, :math:`T(s - t)`, and the float64
    rounding bounds of both (some 64 ulps of the terms)."""
    z, v, tt = z.astype(LD), v.astype(LD), LD(t)
    with np.errstate(all="ignore"):
        sigma = (z - z.max(-1, keepdims=True)) / tt
        tau = (v - v.max(-1, keepdims=True)) / tt
        ell_s = np.log(np.exp(sigma).sum(-1, keepdims=True))
        ell_t = np.log(np.exp(tau).sum(-1, keepdims=True))
        log_s, log_t = sigma - ell_s, tau - ell_t
        s, p = np.exp(log_s), np.exp(log_t)
        live = log_t > -np.inf
        terms = np.where(live, p * (log_t - log_s), LD(0))
        terms = np.where(live & np.isneginf(log_s), LD(np.inf), terms)
        magnitude = np.where(live, p * (np.abs(tau) + np.abs(sigma)), LD(0)).sum(-1)
        loss_bound = tt * tt * 64 * EPS * (1 + magnitude + np.abs(ell_s[:, 0]) + ell_t[:, 0])
        grad_magnitude = s + p + np.where(s > 0, s * np.abs(sigma), 0) + p * np.abs(tau)
        grad_bound = tt * (64 * EPS * grad_magnitude + LD(4e-308))  # (+ t_c below e^-708)
    return {
        "loss": (tt * tt * terms.sum(-1)).astype(np.float64),
        "loss_bound": loss_bound.astype(np.float64),
        "grad": (tt * (s - p)).astype(np.float64),
        "grad_bound": grad_bound.astype(np.float64),
    }


def ulp32(x: np.ndarray) -> Any:
    """One float32 ulp of ``x`` where ``x`` is float32 (its rounding once), else 0."""
    if x.dtype != np.float32:
        return 0.0
    return np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)


def full_path(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` by the full path (no NumPy call fused)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_distill_fused, "FUSED_ELEMENTS", 1 << 62)
        return function(*args, **kwargs)


def loss_values(result: Any) -> np.ndarray:
    """A loss (or its ``LossParts``' total) as an array, in its dtype."""
    return np.asarray(result.total if isinstance(result, tuple) else result)
