"""Issue 13, exactness: the probability targets' softmax cross-entropy gradient.

Off the small path, float32 logits took the generic path in float32: :math:`p` from a
float32 ``exp`` of float32 shifted logits, then :math:`A p - w\\tilde t`, which cancels
where the target is near the softmax (a distillation target, a converged model): up to
3.7e-7 absolute, thousands of ulps of such an entry. Now a fused kernel
(``_softmax._fused_target_gradient``) forms each entry in float64 from the fused
statistics' float64 log-sum-exp and rounds once; float16 logits and soft-capping were
computed in float64 already (``_widen.upcast``).

Checked against a float64 NumPy/SciPy reference on the same stored values, every layout
(C, Fortran, classes first, strided slices, a 3-D batch with the classes on axis 1),
float16 and float32, the three reductions, with and without temperature, label
smoothing, z-loss and class weights: each entry within one float32 ulp of the truth,
plus 1e-9 of its :math:`p` term (float64's reach: the kernel's ``exp`` is good to 5e-11
relative; a float32 :math:`p` is only good to 6e-8).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import special

import crossent

ROWS, CLASSES = 64, 600  # 38400 entries: past the small path
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "temperature_smoothing_zloss_weight": {
        "temperature": 1.7,
        "label_smoothing": 0.1,
        "z_loss": 1e-3,
    },
}


def _reference(
    z: np.ndarray, t: np.ndarray, w: np.ndarray | None, reduction: str, **kw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 gradient (rows x classes) and the size of each entry's p term."""
    temperature = kw.get("temperature", 1.0)
    eps, lam = kw.get("label_smoothing", 0.0), kw.get("z_loss", 0.0)
    zt = z / temperature
    lse = special.logsumexp(zt, axis=-1, keepdims=True)
    p = np.exp(zt - lse)
    weight = np.ones(z.shape[-1]) if w is None else w
    wt = weight * ((1 - eps) * t + eps / z.shape[-1])
    a = wt.sum(-1, keepdims=True)
    # the example weight: sum_c w_c t_c, 1 without class weights (whatever t sums to)
    omega = np.ones_like(a) if w is None else (weight * t).sum(-1, keepdims=True)
    coef = a + 2 * lam * omega * lse
    scale = {"sum": 1.0, "none": 1.0, "mean": 1.0 / omega.sum()}[reduction] / temperature
    return (coef * p - wt) * scale, np.abs(coef * p * scale)


def _data(dtype: type, weighted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(1313)
    z = (rng.standard_normal((ROWS, CLASSES)) * 2).astype(dtype)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - special.logsumexp(z64, axis=-1, keepdims=True))
    t = p * (1 + rng.uniform(-1e-3, 1e-3, p.shape))  # near the softmax: entries cancel
    t = (t / t.sum(-1, keepdims=True)).astype(dtype)
    w = rng.uniform(0.5, 2.0, CLASSES) if weighted else None
    return z, t, w


def _layouts(x: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    wide = np.zeros((2 * ROWS, 3 * CLASSES), dtype=x.dtype)
    wide[::2, ::3] = x
    return {
        "C": (x, -1),
        "F": (np.asfortranarray(x), -1),
        "classes_first": (np.ascontiguousarray(x.T), 0),
        "strided": (wide[::2, ::3], -1),
        "batch_3d_axis_1": (np.ascontiguousarray(x.reshape(8, 8, CLASSES).transpose(0, 2, 1)), 1),
    }


def _rows(grad: np.ndarray, layout: str) -> np.ndarray:
    """The gradient back as (rows, classes)."""
    if layout == "classes_first":
        return grad.T
    if layout == "batch_3d_axis_1":
        return grad.transpose(0, 2, 1).reshape(ROWS, CLASSES)
    return grad


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["C", "F", "classes_first", "strided", "batch_3d_axis_1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_issue13_soft_target_gradient_within_an_ulp(
    dtype: type, layout: str, reduction: str, options: str
) -> None:
    kw = OPTIONS[options]
    z, t, w = _data(dtype, weighted=options != "plain")
    truth, p_term = _reference(z.astype(np.float64), t.astype(np.float64), w, reduction, **kw)
    (zl, axis), (tl, _) = _layouts(z)[layout], _layouts(t)[layout]
    grad = crossent.softmax_cross_entropy_with_targets_grad(
        zl, tl, axis=axis, weight=w, reduction=reduction, validate=False, **kw
    )
    assert grad.dtype == np.float32
    assert grad.shape == zl.shape
    got = _rows(grad, layout).astype(np.float64)
    bound = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64) + 1e-9 * p_term
    worst = np.max(np.abs(got - truth) / bound)
    assert worst <= 1.0, f"{worst:.1f} of the bound off"
