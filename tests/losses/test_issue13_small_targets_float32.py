"""Issue 13, "Small inputs": float32 soft-target and distillation calls take the shortcut.

Float32 logits and targets (both float32) of ``softmax_cross_entropy_with_targets``,
``distillation_loss`` and their gradients are answered by the compiled shortcut, with
the values of the full path on the logits as float64, rounded to float32, bit for bit
(issue 13: the shortcut computes on float64 copies; float32 arithmetic, main's small
path, was some float32 ulps off). These tests pin that over random and hard float32
rows (near-ties, huge spreads, zeros in the targets, temperatures that float32 does not
hold), and that a shortcut computed in float32 fails them. That the benchmark's
float32 calls take the shortcut, and the float32 errors and warnings, are tested in
``test_issue13_small_soft_paths.py``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _small_targets_numba
from losses.small_target_checks import DISTILL, TARGETS, Family, distill_case, target_case

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

F32 = np.float32
SHAPES = [(1, 10), (10,), (8, 10), (3, 4, 10), (3, 9), (2, 129), (129, 5)]
TARGET_OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False, "reduction": "sum"},
    {"reduction": "none", "temperature": 0.3},
    {"reduction": "parts", "base": 2, "z_loss": 1e-3},
    {"temperature": 3.0, "label_smoothing": 0.1},
    {"label_smoothing": 0.3, "base": 10.0, "reduction": "none", "z_loss": 0.1},
    {"base": 10.0, "temperature": 0.7},  # the mean's scale over ln 10, in float32
]
DISTILL_OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "none", "base": 2},
    {"temperature": 0.3, "reduction": "sum"},
    {"temperature": 3.0, "reduction": "parts", "base": 10.0},
    {"direction": "reverse", "temperature": 0.7},
    {"direction": "reverse", "reduction": "none"},
    {"base": 10.0},  # the mean's scale over ln 10, in float32
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_issue13_small_targets_float32_is_the_full_path_bit_for_bit(shape) -> None:
    for seed, options in enumerate(TARGET_OPTIONS):
        TARGETS.check(*target_case(shape, 100 + seed, F32), options)


@pytest.mark.parametrize("form", ["logits", "probs"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_issue13_small_distill_float32_is_the_full_path_bit_for_bit(shape, form) -> None:
    for seed, options in enumerate(DISTILL_OPTIONS):
        reverse = options.get("direction") == "reverse"  # (+inf where t = 0 < s)
        student, teacher = distill_case(shape, 200 + seed, form, zeros=not reverse, dtype=F32)
        DISTILL.check(student, teacher, {**options, "teacher_form": form})


TINY = float(np.finfo(F32).smallest_subnormal)
HARD_LOGITS = np.array(
    [
        [1.0, float(np.nextafter(F32(1.0), F32(2.0))), 1.0, -2.0],  # ties one ulp apart
        [3e38, -3e37, 0.0, 1e38],  # huge values of float32
        [1e4, -1e4, 0.0, 3.0],  # a huge spread
        [0.0, TINY, -TINY, 0.0],  # subnormal near-ties
        [-0.0, 0.0, -0.0, -40.0],  # signed zeros at the maximum
        [40.0, -40.0, -40.0, -40.0],  # near-deterministic
        [-np.inf, 0.5, 7.0, -np.inf],  # -inf where the target is 0
        [16777216.0, 16777217.0, 16777218.0, 0.0],  # beyond float32's integers
    ],
    dtype=F32,
)
HARD_TARGETS = np.array(
    [
        [0.5, 0.0, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.0, 1.0],  # one-hot on a class 1e4 below the maximum
        [0.1, 0.2, 0.3, 0.4],  # (none of them a float32)
        [1 / 3, 1 / 3, 1 / 3, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.5, 0.5, 0.0],
        [0.7, 0.1, 0.1, 0.1],
    ],
    dtype=F32,
)
HARD_OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "none"},
    {"temperature": 0.3, "reduction": "sum"},
    {"temperature": 1.7, "base": 2, "reduction": "none"},
    {"z_loss": 1e-4, "reduction": "parts"},
]


def _check_where_finite(family: Family, first: Any, second: Any, options: Any) -> int:
    """``family.check`` of a call whose full path gives finite values without a warning
    (the others are handed on: ``test_issue13_small_soft_paths.py``); 1 if checked."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            values = family.full(first, second, **options)
    except RuntimeWarning:
        return 0
    if not all(np.isfinite(np.asarray(getattr(v, "total", v))).all() for v in values):
        return 0
    family.check(first, second, options)
    return 1


@pytest.mark.parametrize("options", HARD_OPTIONS)
def test_issue13_small_soft_float32_hard_rows_bit_for_bit(options) -> None:
    """Hard float32 rows, together, one at a time and without a batch axis, of both
    families (the teacher as probabilities and as logits, either direction; smoothed
    targets too) wherever the full path's values are finite."""
    smoothed = {**options, "label_smoothing": 0.1}
    distill = {k: v for k, v in options.items() if k != "z_loss"}
    checked = 0
    for rows in [slice(None), *range(len(HARD_LOGITS))]:
        z, t = HARD_LOGITS[rows], HARD_TARGETS[rows]
        for family, first, second, kwargs in [
            (TARGETS, np.atleast_2d(z), np.atleast_2d(t), options),
            (TARGETS, z, t, options),
            (TARGETS, z, t, smoothed),
            (DISTILL, z, t, {**distill, "teacher_form": "probs"}),
            (DISTILL, z, t, distill),  # (the targets as the teacher's logits)
            (DISTILL, t, z, {**distill, "direction": "reverse"}),
        ]:
            checked += _check_where_finite(family, first, second, kwargs)
    assert checked >= 36  # (of 54; the others overflow float32)


# ------------------------------------------------------------------------ mutants

_REAL_SHIFT = _small_targets_numba.shift_targets64


def _shift_in_float32(z, targets, tolerance, temperature, shifted, rows) -> bool:
    """A mutant of ``shift_targets64``: the temperature divides the differences rounded
    to float32 (the float32 arithmetic that the float64 copy avoids, issue 13)."""
    ok = _REAL_SHIFT(z, targets, tolerance, temperature, shifted, rows)
    difference = z - np.maximum.reduce(z, -1, keepdims=True)
    shifted[...] = (difference.astype(F32) / F32(temperature)).astype(shifted.dtype)
    return ok


def _check_all(family: Family, cases: list[Any], options: dict[str, Any]) -> None:
    """``family.check`` of each case."""
    for first, second in cases:
        family.check(first, second, options)


def test_issue13_small_targets_float32_shift_in_float32_fails(monkeypatch) -> None:
    """A shortcut that divides by the temperature in float32 fails the checks (and the
    real one passes them)."""
    cases = [target_case((8, 37), seed, F32) for seed in range(6)]
    options = {"reduction": "none", "temperature": 0.3}
    _check_all(TARGETS, cases, options)
    monkeypatch.setattr(_small_targets_numba, "shift_targets64", _shift_in_float32)
    with pytest.raises(AssertionError):
        _check_all(TARGETS, cases, options)
