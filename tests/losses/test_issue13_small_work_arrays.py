"""Issue 13, "Small inputs": the kept work arrays and the direct scalar of the small
soft-target and distillation calls (branch smallcall4).

The shortcuts of ``softmax_cross_entropy_with_targets``, ``distillation_loss`` and their
gradients keep their float64 work arrays per thread (``_small_targets.work_arrays``)
and form a reduced float32 loss by ``np.float32`` of the compiled float64 value
(``_small_targets.narrowed_scalar``). These tests pin what that must not change: a call
after calls of other data, and calls from several threads at once, give the full
path's bits (the float32 inputs' full path: on their float64 copies, rounded once);
a result is never a kept array, so the next call leaves it alone; and the direct scalar
is ``narrow_for``'s, bit and type, on the float32 range's edges.
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _small_targets
from crossent.losses._small_narrow import narrow_for
from losses.small_target_checks import DISTILL, TARGETS, Family, same_bits, target_case

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

F32 = np.float32
OPTIONS: list[dict[str, Any]] = [
    {},  # 'mean': the direct scalar
    {"reduction": "sum", "base": 2},
    {"reduction": "none"},
    {"reduction": "parts"},
]
HARD = np.array(
    [
        [1.0, 1.0 + 2.0**-52, 1.0, -2.0, 0.0],  # a near-tie
        [700.0, -700.0, 0.0, 3.0, 1e-300],  # a huge spread
        [-np.inf, 0.5, 7.0, -np.inf, 40.0],  # -inf where the target is 0
        [0.0, 5e-324, -5e-324, 0.0, 0.0],  # subnormal near-ties
    ]
)
HARD_TARGETS = np.array(
    [
        [0.5, 0.0, 0.25, 0.25, 0.0],
        [0.25, 0.25, 0.25, 0.25, 0.0],
        [0.0, 0.5, 0.5, 0.0, 0.0],
        [1e-40, 0.0, 0.0, 1.0, 5e-324],  # subnormal targets (of float32, of float64)
    ]
)


def _cases(family: Family, dtype: type) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random (8, 10) calls of ``dtype`` and the hard rows, together and one at a time:
    the same shapes again and again, with other data each time (distillation: the hard
    rows as the student's, beside random teacher logits; its shortcut hands the others
    on to the full path)."""
    cases = [target_case((8, 10), seed, dtype) for seed in range(3)]
    first, second = HARD, HARD_TARGETS
    if family is DISTILL:  # (no -inf student logit: an infinite KL, the full path's)
        first, second = HARD[[0, 1, 3]], target_case((3, 5), 9)[0]
    cases.append((first.astype(dtype), second.astype(dtype)))
    rows = range(first.shape[0])
    cases += [(first[i : i + 1].astype(dtype), second[i : i + 1].astype(dtype)) for i in rows]
    return cases


@pytest.mark.parametrize("family", [TARGETS, DISTILL], ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", [np.float64, F32], ids=["float64", "float32"])
def test_issue13_small_calls_after_other_data_are_the_full_path(family: Family, dtype) -> None:
    """Each call, after calls of the same shape on other data (the kept arrays hold
    their values), gives the full path's loss and gradient bit for bit; and a result
    is not changed by the calls after it."""
    kept: list[tuple[Any, Any]] = []
    for options in OPTIONS:
        for first, second in _cases(family, dtype):
            family.check(first, second, options)
            gradient = family.shortcuts[1]((first, second), dict(options))
            kept.append((gradient, family.full(first, second, **options)[1]))
    for got, want in kept:  # (the gradients, checked again after every later call)
        same_bits(got, want)


def test_issue13_small_work_arrays_are_per_thread() -> None:
    """Two threads calling at once, switching every microsecond, get the bits that the
    full path gives each call; and a thread's kept arrays are not another's."""
    cases = [target_case((8, 10), seed, F32) for seed in range(4)]
    expected = [TARGETS.full(*case) for case in cases]
    loss, gradient = TARGETS.shortcuts
    failures: list[str] = []

    def work(offset: int) -> None:
        for k in range(300):
            i = (k + offset) % len(cases)
            got = (loss(cases[i], {}), gradient(cases[i], {}))
            for value, want in zip(got, expected[i], strict=True):
                if np.asarray(value).tobytes() != np.asarray(want).tobytes():
                    failures.append(f"case {i}, call {k}")

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(before)
    assert failures == []
    mine = _small_targets.work_arrays(8, 10, 6)
    other: list[Any] = []
    thread = threading.Thread(target=lambda: other.append(_small_targets.work_arrays(8, 10, 6)))
    thread.start()
    thread.join()
    assert mine[0] is not other[0][0]
    assert mine[1] is not other[0][1]
    assert _small_targets.work_arrays(8, 10, 6)[0] is mine[0]  # (kept for this thread)


TINY32 = float(np.finfo(F32).smallest_subnormal)
MAX32 = float(np.finfo(F32).max)
EDGES = [
    0.0,
    1 / 3,
    -2.5,
    5e-324,  # to 0
    TINY32,
    TINY32 * 0.5,  # a tie: to even, 0
    TINY32 * 0.5000001,
    MAX32,
    -MAX32,
    float(np.nextafter(MAX32, np.inf)),  # above the largest float32, rounds to it
    MAX32 * (1 + 2.0**-24),  # the tie at the top: inf
    1e39,
    np.inf,
]


def test_issue13_narrowed_scalar_is_narrow_for() -> None:
    """``narrowed_scalar`` gives ``narrow_for``'s value of the float64 (its bits, its
    NumPy type and its warnings: none, past the largest float32 too) for float32 and
    float64 logits, at float32's edges."""
    for logits in (np.zeros((1, 2), F32), np.zeros((1, 2))):
        for value in EDGES + [-v for v in EDGES]:
            with warnings.catch_warnings(record=True) as wanted:
                warnings.simplefilter("always")
                want = narrow_for(logits, np.float64(value))
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                got = _small_targets.narrowed_scalar(logits, value)
            assert type(got) is type(want), value
            assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), value
            assert [str(w.message) for w in seen] == [str(w.message) for w in wanted] == []
