"""What the small-call tests of focal, poly-1 and hinge share (issue 13).

Each family's small calls (``_small_label_families``) are tested the same way: a call's
outcome (its value's type, dtype, shape and bytes, or its exception, and the warnings
it gave) with the shortcut against the same call with the shortcut refused (the full
path), over random and hard cases; spies on the compiled functions prove which path
answered. Random logits and the call spies come from ``small_call_paths``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _batch, _small_label_families, _small_label_numba
from losses.small_call_paths import fail_on, random_case, record_calls


@dataclass(frozen=True)
class Family:
    """A family's public functions, option sets, the compiled functions its small loss
    and gradient end in, and the dtypes its small calls take."""

    loss: Callable[..., Any]
    grad: Callable[..., Any]
    options: list[dict[str, Any]]
    compiled: tuple[str, str]
    dtypes: tuple[type, ...]


REDUCTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "parts"},
    {"validate": False},
    {"reduction": "sum", "validate": False, "axis": -1},
    {"ignore_index": 1},
    {"ignore_index": 0, "reduction": "none"},
    {"ignore_index": -100, "reduction": "parts"},
    {"weight": "per class"},
    {"weight": "per class", "ignore_index": 2, "reduction": "sum"},
    {"weight": "per class", "ignore_index": 0, "reduction": "parts"},
]
"""The shared keywords the small calls take (every reduction, validate, axis,
``ignore_index``, class weights: ``"per class"`` stands for :func:`class_weight`'s;
hinge has no ``weight``, and a call with one raises its ``TypeError``)."""


def class_weight(classes: int) -> np.ndarray:
    """Class weights from 0 to 2 (one of them 0: a label of weight 0 is absent)."""
    return np.linspace(0.0, 2.0, classes)[::-1].copy()


def keywords(logits: np.ndarray, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with ``"per class"`` weights made for the logits' classes."""
    if given.get("weight") == "per class":
        return given | {"weight": class_weight(logits.shape[-1])}
    return given


FAMILIES: dict[str, Family] = {
    "focal": Family(
        crossent.softmax_focal_loss,
        crossent.softmax_focal_loss_grad,
        [{}, {"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 3}, {"gamma": 2.0, "base": 2}],
        ("focal_loss64", "focal_gradient64"),
        (np.float64, np.float32),
    ),
    "poly1": Family(
        crossent.poly1_cross_entropy,
        crossent.poly1_cross_entropy_grad,
        [{}, {"epsilon": 0.0}, {"epsilon": -1.0}, {"epsilon": -0.75}, {"epsilon": 2.5}],
        ("poly_loss64", "poly_gradient64"),
        (np.float64, np.float32),
    ),
    "hinge": Family(
        crossent.multiclass_hinge_loss,
        crossent.multiclass_hinge_loss_grad,
        [
            {},
            {"margin": 0.0},
            {"variant": "weston_watkins"},
            {"margin": 2.5, "variant": "weston_watkins"},
        ],
        ("hinge_loss", "hinge_gradient"),
        (np.float64, np.float32),
    ),
}

Outcome = tuple[Any, ...]


def outcome(call: Callable[[], Any]) -> Outcome:
    """What ``call`` gives: ``('value', type, dtype, shape, bytes, warnings)`` (a
    ``LossParts`` as its two fields) or ``('raises', type, message, warnings)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as error:
            found: Outcome = ("raises", type(error), str(error))
        else:
            parts = tuple(result) if isinstance(result, tuple) else (result,)
            found = ("value", type(result), *map(_fingerprint, parts))
    return (*found, sorted(f"{w.category.__name__}: {w.message}" for w in caught))


def _fingerprint(value: Any) -> tuple[Any, ...]:
    """A value's type, dtype, shape and bytes (equal bytes: equal bits, NaN and -0.0 too)."""
    array = np.asarray(value)
    return type(value), array.dtype, array.shape, array.tobytes()


def full_path_outcome(monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]) -> Outcome:
    """:func:`outcome` of ``call`` with every small-call shortcut refusing it."""
    with monkeypatch.context() as patch:
        patch.setattr(_small_label_families.SmallFamily, "call", lambda *_: None)
        return outcome(call)


def hybrid_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Focal and poly-1 small calls by the hybrid (NumPy's calls between compiled ones),
    not by one compiled call with the C library's functions, which
    ``_small_label_families.libm_is_numpys`` allows where they are NumPy's, or with
    NumPy's own loops (``_small_loops.numpy_loops``; ``test_issue13_small_focal_speedup``
    and ``test_issue13_small_numpy_loops`` test those routes)."""
    monkeypatch.setattr(_small_label_families, "libm_is_numpys", lambda: False)
    monkeypatch.setattr(_small_label_families, "numpy_loops", lambda: None)


def spy_compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of ``_small_label_numba``'s public functions that the calls reach, in
    order (the Python side calls them through ``_small_label_numba._CALLS``, where the
    spies sit; the module's own names, which compiled functions call, stay the compiled
    functions, so a function compiled while the spies are in place finds no spy). Focal
    and poly-1 calls take the hybrid (:func:`hybrid_only`)."""
    hybrid_only(monkeypatch)
    return record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)


def random_cases(dtype: type, count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, logits, labels)``: ``count`` random cases of ``small_call_paths`` (rows
    scaled by 0.5 to 40: many near-deterministic, many :math:`p_y > 1/2`) over shapes
    from one class-last row to (3, 4, 10)."""
    shapes = [(1, 10), (8, 10), (10,), (3, 4, 10), (5, 3), (2, 1), (4, 130), (1, 7)]
    cases = []
    for seed in range(count):
        shape = shapes[seed % len(shapes)]
        logits, labels = random_case(shape, seed, dtype)
        cases.append((f"random{seed}{shape}", logits, labels))
    return cases


def hard_cases(dtype: type) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, logits, labels)`` of rows that stress the small calls: ties and near-ties
    (one ulp), saturated rows (:math:`p_y = 1` exactly, and :math:`\\log p_y` a denormal),
    :math:`p_y` that underflows to 0, ``-inf`` rivals and targets, huge logits (whose
    differences overflow), a single class, 0-d labels."""
    big = float(np.finfo(dtype).max)
    one = np.nextafter(dtype(1.0), dtype(2.0))
    rows: list[tuple[str, list[float], int]] = [
        ("all equal", [1.0] * 10, 0),
        ("tie at the top", [2.0, 2.0, 0.0, -1.0], 1),
        ("near tie", [1.0, float(one), 0.5], 0),
        ("near tie, other label", [1.0, float(one), 0.5], 1),
        ("saturated", [800.0, 0.0, -3.0, 1.0], 0),
        ("almost saturated", [40.0, 0.0, -3.0, 1.0], 0),
        ("confident", [3.0, 0.0, -1.0, 0.5], 0),
        ("p_y just above 1/2", [1e-9, 0.0], 0),
        ("p_y 1/2", [0.0, 0.0], 0),
        ("p_y just below 1/2", [-1e-9, 0.0], 0),
        ("p_y underflows", [0.0, 800.0, 1.0], 0),
        ("p_y denormal", [0.0, 740.0, 1.0], 0),
        ("-inf rival", [0.0, -math.inf, 2.0, 1.0], 0),
        ("-inf rivals but one", [-math.inf, 3.0, -math.inf], 1),
        ("-inf target", [-math.inf, 0.0, 1.0], 0),
        ("huge logits", [big, -big, 0.0], 0),
        ("huge equal logits", [big, big, big / 2], 2),
        ("one class", [5.0], 0),
        ("margins at the kink", [1.0, 0.0, 0.0, 1.0], 0),
    ]
    cases = []
    for name, row, label in rows:
        logits = np.array([row], dtype=dtype)
        cases.append((name, logits, np.array([label])))
    logits = np.array([row for _, row, _ in rows if len(row) == 4], dtype=dtype)
    labels = np.array([label for _, row, label in rows if len(row) == 4])
    cases.append(("four-class rows together", logits, labels))
    cases.append(("one row, 0-d label", np.array([3.0, 0.0, -1.0], dtype=dtype), np.array(0)))
    return cases


def assert_taken(
    monkeypatch: pytest.MonkeyPatch,
    fn: Callable[..., Any],
    compiled: str,
    logits: np.ndarray,
    labels: np.ndarray,
    **kwargs: Any,
) -> list[str]:
    """Assert that the small call answers ``fn(logits, labels, **kwargs)`` (ending in
    ``_small_label_numba``'s ``compiled``, never reaching the full path's batch) with the
    full path's outcome; the compiled functions it reached, in order."""
    call = partial(fn, logits, labels, **kwargs)
    expected = full_path_outcome(monkeypatch, call)
    with monkeypatch.context() as patch:
        calls = spy_compiled(patch)
        fail_on(patch, _batch, ["label_batch"], expected="the small call")
        assert outcome(call) == expected
    assert calls[-1] == compiled, calls
    return calls
