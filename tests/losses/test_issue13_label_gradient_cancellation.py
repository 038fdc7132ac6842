"""The label's gradient entry of focal, poly-1 and cross-entropy where p_y is near 1.

Issue 13 follow-up (found by a docs reviewer): at logits ``[[40, -40]]``, label 0, the
focal and poly-1 gradients formed the label's entry of :math:`p - e_y` as :math:`p_y - 1`,
0 once :math:`p_y` rounds to 1, while the other entry is 1e-52 and the row must sum to
0. The entry is :math:`\\operatorname{expm1}(\\log p_y)` now, in the generic NumPy path,
the small hybrid path and the one-call compiled path (all three run here); poly-1's
factor :math:`1 + \\varepsilon p_y` (:math:`1 - p_y` for :math:`\\varepsilon = -1`) is
:math:`(1 + \\varepsilon) + \\varepsilon\\operatorname{expm1}(\\log p_y)`.

Oracle: the docstrings' formulas in mpmath at 50 digits, with :math:`1 - p_y = s/(1 + s)`,
:math:`s = \\sum_{c \\ne y} e^{z_c - z_y}` (no cancellation), checked against mpmath's
finite differences of the losses. Every entry is within a few ulps (relative; more by
the logits' spread, which rounding :math:`z_c - \\operatorname{LSE}` costs) of the
oracle, and every row sums to ~0 relative to its largest entry.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _small_label_families
from losses.small_label_paths import hybrid_only

_GAPS = {np.float64: [20.0, 40.0, 80.0, 700.0], np.float32: [10.0, 20.0, 40.0]}
_CLASSES = [2, 1000]


def _logits(gap: float, classes: int, rows: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label (row i: class ``(7 i) % classes``) leads the others by ``gap``
    or more; the others spread over [-1, 0]."""
    z = np.tile(np.linspace(0.0, -1.0, classes), (rows, 1))
    labels = (7 * np.arange(rows)) % classes
    z[np.arange(rows), labels] = gap
    return z.astype(dtype), labels


@functools.cache
def _softmax_minus_onehot(z: tuple[float, ...], y: int) -> tuple[Any, Any, Any, list[Any]]:
    """:math:`1 - p_y`, :math:`p_y`, :math:`\\log p_y` and :math:`p - e_y` in mpmath (50
    digits), :math:`1 - p_y = s/(1 + s)` with :math:`s = \\sum_{c \\ne y} e^{z_c - z_y}`."""
    with mpmath.workdps(50):
        zs = [mpmath.mpf(v) for v in z]
        s = mpmath.fsum(mpmath.exp(v - zs[y]) for c, v in enumerate(zs) if c != y)
        q, p_y, log_p_y = s / (1 + s), 1 / (1 + s), -mpmath.log1p(s)
        diff = [-q if c == y else mpmath.exp(v - zs[y]) * p_y for c, v in enumerate(zs)]
    return q, p_y, log_p_y, diff


@functools.cache
def _row_oracle(z: tuple[float, ...], y: int, kind: str, option: float, w_y: float) -> np.ndarray:
    """The gradient of one row (reduction ``'sum'``), from the documented formulas: CE
    :math:`w_y(p - e_y)`; focal :math:`w_y(1 - p_y)^\\gamma(p - e_y)(1 - \\gamma p_y\\log
    p_y/(1 - p_y))`; poly-1 :math:`w_y(1 + \\varepsilon p_y)(p - e_y)`; rounded to float64."""
    q, p_y, log_p_y, diff = _softmax_minus_onehot(z, y)
    with mpmath.workdps(50):
        if kind == "ce":
            factor = mpmath.mpf(w_y)
        elif kind == "focal":
            gamma = mpmath.mpf(option)
            modulation = q**gamma if option else 1
            factor = w_y * modulation * (1 - gamma * p_y * log_p_y / q)
        else:
            factor = w_y * (1 + mpmath.mpf(option) * p_y)
        return np.array([float(factor * d) for d in diff])


def _grad(kind: str, option: float) -> Callable[..., Any]:
    if kind == "ce":
        return crossent.softmax_cross_entropy_grad
    if kind == "focal":
        return lambda z, y, **kw: crossent.softmax_focal_loss_grad(z, y, gamma=option, **kw)
    return lambda z, y, **kw: crossent.poly1_cross_entropy_grad(z, y, epsilon=option, **kw)


_FAMILIES = [
    ("ce", 0.0),
    ("focal", 0.0),
    ("focal", 0.5),
    ("focal", 2.0),
    ("poly", 1.0),
    ("poly", -1.0),
    ("poly", 2.5),
]


def _route(monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    """``'default'``: whatever answers here (focal and poly-1 small calls: one compiled
    call); ``'hybrid'``: NumPy's calls between compiled ones; ``'full'``: no shortcut."""
    if route == "hybrid":
        hybrid_only(monkeypatch)
    elif route == "full":
        monkeypatch.setattr(_small_label_families.SmallFamily, "call", lambda *_: None)


def _check(
    got: np.ndarray, z: np.ndarray, labels: np.ndarray, family: tuple[str, float], weight: Any
) -> None:
    """Each entry within ``4 + (1 + gamma) spread`` ulps of the oracle, ``spread`` the
    row's largest :math:`|z_c - z_y|` (rounding :math:`z_c - \\operatorname{LSE}` costs
    :math:`p_c` that many ulps, and focal's :math:`(1 - p_y)^\\gamma` gamma times them),
    and each row's sum ~0 relative to its largest entry."""
    kind, option = family
    gamma = option if kind == "focal" else 0.0
    info = np.finfo(got.dtype)
    atol = 4 * float(info.smallest_subnormal)
    for i in range(z.shape[0]):
        row, y = z[i].astype(np.float64), int(labels[i])
        w_y = 1.0 if weight is None else float(weight[y])
        want = _row_oracle(tuple(row.tolist()), y, kind, option, w_y)
        spread = float(np.max(np.abs(row - row[y])))
        rtol = (4 + (1 + gamma) * spread) * float(info.eps)
        entries = got[i].astype(np.float64)
        error = np.abs(entries - want)
        bad = np.flatnonzero(error > rtol * np.abs(want) + atol)
        assert bad.size == 0, (i, bad[:3], entries[bad[:3]], want[bad[:3]])
        biggest = float(np.max(np.abs(entries)))
        total = math.fsum(entries.tolist())
        assert abs(total) <= 4 * rtol * biggest + z.shape[1] * atol, (i, total, biggest)


@pytest.mark.parametrize("route", ["default", "hybrid", "full"])
@pytest.mark.parametrize(("kind", "option"), _FAMILIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 3])
def test_label_entry_near_one(
    monkeypatch: pytest.MonkeyPatch, route: str, kind: str, option: float, dtype: type, rows: int
) -> None:
    if kind == "ce" and route != "default":
        pytest.skip("the routes are focal's and poly-1's")
    _route(monkeypatch, route)
    grad = _grad(kind, option)
    for classes in _CLASSES:
        for gap in _GAPS[dtype]:
            z, labels = _logits(gap, classes, rows, dtype)
            got = np.asarray(grad(z, labels, reduction="sum"))
            assert got.dtype == dtype
            _check(got, z, labels, (kind, option), None)


@pytest.mark.parametrize(("kind", "option"), [("ce", 0.0), ("focal", 2.0), ("poly", -1.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_label_entry_near_one_class_weights(kind: str, option: float, dtype: type) -> None:
    grad = _grad(kind, option)
    for classes in _CLASSES:
        weight = np.linspace(0.5, 2.0, classes).astype(dtype)
        for gap in _GAPS[dtype]:
            z, labels = _logits(gap, classes, 3, dtype)
            got = np.asarray(grad(z, labels, weight=weight, reduction="sum"))
            _check(got, z, labels, (kind, option), weight)


@pytest.mark.parametrize(
    "case",
    [
        ("focal", 0.0, 40.0),
        ("focal", 0.5, 40.0),
        ("focal", 2.0, 80.0),
        ("poly", 1.0, 40.0),
        ("poly", -1.0, 700.0),
    ],
)
def test_oracle_against_finite_differences(case: tuple[str, float, float]) -> None:
    """The oracle's label entry is mpmath's derivative of the loss (the docstrings' loss
    formulas: focal :math:`-(1 - p_y)^\\gamma\\log p_y`, poly-1 :math:`-\\log p_y +
    \\varepsilon(1 - p_y)`) in the label's logit, to 30 digits."""
    kind, option, gap = case
    with mpmath.workdps(50):

        def loss(zy: Any) -> Any:
            s = mpmath.exp(-zy)  # the other logit is 0
            log_p_y, q = -mpmath.log1p(s), s / (1 + s)
            if kind == "focal":
                return -(q**option if option else 1) * log_p_y
            return -log_p_y + option * q

        derivative = mpmath.diff(loss, mpmath.mpf(gap))
        q, p_y, log_p_y, diff = _softmax_minus_onehot((gap, 0.0), 0)
        if kind == "focal":
            factor = (q**option if option else 1) * (1 - option * p_y * log_p_y / q)
        else:
            factor = 1 + option * p_y
        want = factor * diff[0]
        assert abs(derivative - want) <= mpmath.mpf(10) ** -30 * abs(want)
