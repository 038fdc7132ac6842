"""Hostile API pass 2: ``validate=False`` on a row of logits that is entirely ``-inf``.

Such a row is no distribution; ``validate=True`` refuses it by name, and with
``validate=False`` its loss and gradient are NaN (``-inf - -inf``), the other rows' values
unchanged. On main every softmax family (cross-entropy with labels or targets, with
smoothing, temperature, z-loss or class weights, focal, poly-1, distillation of either
side) warned "invalid value encountered in subtract" first, which under ``-W error``
(CI) was raised instead of the answer, on NumPy (float16/32/64, small and large calls)
and on array-api-strict: ``_xp.minus_row_max``, ``_xp.log_softmax`` and
``_terms.tempered_log_softmax`` took ``-inf - -inf`` without silencing it. 93 of the 113
cases fail on main; the 20 that pass there are the label cross-entropy's float32 and
float16 calls (its Numba kernels were quiet already), which pin the value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_TEACHER = "teacher"
_FAMILIES: dict[str, Callable[..., Any]] = {
    "softmax_cross_entropy": lambda x, y, t, **k: crossent.softmax_cross_entropy(x, y, **k),
    "softmax_cross_entropy_grad": lambda x, y, t, **k: crossent.softmax_cross_entropy_grad(
        x, y, **k
    ),
    "smoothed_weighted_grad": lambda x, y, t, **k: crossent.softmax_cross_entropy_grad(
        x,
        y,
        label_smoothing=0.1,
        weight=0.5 + t[0, ...],
        **k,  # (t's namespace)
    ),
    "tempered_z_loss": lambda x, y, t, **k: crossent.softmax_cross_entropy(
        x, y, temperature=0.5, z_loss=1e-4, **k
    ),
    "tempered_z_loss_grad": lambda x, y, t, **k: crossent.softmax_cross_entropy_grad(
        x, y, temperature=0.5, z_loss=1e-4, **k
    ),
    "with_targets": lambda x, y, t, **k: crossent.softmax_cross_entropy_with_targets(x, t, **k),
    "with_targets_grad": lambda x, y, t, **k: crossent.softmax_cross_entropy_with_targets_grad(
        x, t, **k
    ),
    "focal": lambda x, y, t, **k: crossent.softmax_focal_loss(x, y, **k),
    "focal_grad": lambda x, y, t, **k: crossent.softmax_focal_loss_grad(x, y, **k),
    "poly1_grad": lambda x, y, t, **k: crossent.poly1_cross_entropy_grad(x, y, **k),
    "distillation student": lambda x, y, t, **k: crossent.distillation_loss(
        x, t, teacher_form="probs", **k
    ),
    "distillation student grad": lambda x, y, t, **k: crossent.distillation_loss_grad(
        x, t, teacher_form="probs", **k
    ),
    "distillation teacher": lambda x, y, t, **k: crossent.distillation_loss(
        t * 0, x, teacher_form="logits", **k
    ),
    "distillation teacher grad": lambda x, y, t, **k: crossent.distillation_loss_grad(
        t * 0, x, teacher_form="logits", **k
    ),
    "distillation tempered grad": lambda x, y, t, **k: crossent.distillation_loss_grad(
        x, t, teacher_form="probs", temperature=3.0, **k
    ),
    "reverse distillation": lambda x, y, t, **k: crossent.distillation_loss(
        x, t, teacher_form="probs", direction="reverse", **k
    ),
}


def _inputs(rows: int, classes: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(17)
    logits = rng.normal(size=(rows, classes)).astype(dtype)
    logits[1] = -np.inf
    labels = np.arange(rows) % classes
    targets = rng.dirichlet(np.ones(classes), size=rows)
    return logits, labels, targets


def _check(
    family: str,
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    *,
    make: Callable[[np.ndarray], Any] = np.asarray,
    to_numpy: Callable[[Any], Any] = np.asarray,
) -> None:
    """``family`` of ``make``'s arrays of x, y, t with ``validate=False``, under ``-W
    error``: NaN on row 1 (entirely -inf), the other rows as they are alone."""
    call = _FAMILIES[family]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(call(make(x), make(y), make(t), validate=False, reduction="none"))
        mean = to_numpy(call(make(x), make(y), make(t), validate=False, reduction="mean"))
    got = np.asarray(got, np.float64)
    assert np.all(np.isnan(got[1])), got[1]  # the row of -inf: NaN
    if got.ndim == 1:  # a loss: its mean is NaN too
        assert np.isnan(mean)
    # the other rows as they are without the bad one (validated there)
    keep = np.arange(np.shape(got)[0]) != 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        others = (make(x[keep]), make(y[keep]), make(t[keep]))
        alone = to_numpy(call(*others, validate=True, reduction="none"))
    # (a gradient with 'none' is the per-row gradient)
    np.testing.assert_array_equal(got[keep], np.asarray(alone, np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("shape", [(4, 5), (8192, 3)], ids=["small", "large"])
@pytest.mark.parametrize("family", list(_FAMILIES))
def test_numpy_row_of_neginf_logits_is_a_quiet_nan(
    family: str, shape: tuple[int, int], dtype: Any
) -> None:
    _check(family, *_inputs(*shape, dtype))


@pytest.mark.parametrize("family", list(_FAMILIES))
def test_array_api_strict_row_of_neginf_logits_is_a_quiet_nan(family: str) -> None:
    xps = pytest.importorskip("array_api_strict")
    _check(
        family,
        *_inputs(4, 5, np.float64),
        make=xps.asarray,
        to_numpy=lambda a: np.asarray(xps.asarray(a)._array),
    )


def test_one_row_of_neginf_logits_is_a_quiet_nan() -> None:
    row = np.full(4, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(crossent.softmax_cross_entropy(row, 2, validate=False))
        assert np.all(np.isnan(crossent.softmax_cross_entropy_grad(row, 2, validate=False)))
        loss = crossent.distillation_loss(row, np.zeros(4), validate=False)
        assert np.isnan(loss)
