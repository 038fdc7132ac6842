"""Shared checks of the blocked float64 widening (``losses/_widen.blocked``, issue 13):
``test_issue13_blocked_widen.py`` (focal, poly-1, distillation) and
``test_issue13_blocked_softmax.py`` (softmax cross-entropy with ``soft_cap`` and soft
targets)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from crossent.losses import _widen

CLASSES = 37


def bits(x: Any) -> Any:
    """A result's bits, comparable with ``==`` (LossParts: both fields)."""
    if isinstance(x, tuple):
        return tuple(bits(v) for v in x)
    a = np.asarray(x)
    assert a.dtype == np.float32, a.dtype
    return (a.shape, a.tobytes())


def whole(f: Callable[..., Any], z: np.ndarray, *rest: Any, **kwargs: Any) -> Any:
    """The truth: ``f`` on the float64 logits, its result rounded to float32."""
    result = f(z.astype(np.float64), *rest, **kwargs)
    if isinstance(result, tuple):
        return type(result)(*(np.float32(v) for v in result))
    return np.asarray(result).astype(np.float32)[()]


def logits(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * 4.0
    z.flat[:: max(1, z.size // 7)] += 30.0  # some confident rows
    return z.astype(dtype)


def labels(shape: tuple[int, ...], classes: int = CLASSES, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, shape)


LARGE = (256, 32000)  # 31.25 MiB of float32 logits; their float64 copy is 62.5 MiB


def peak_of(call: Callable[[], Any]) -> tuple[int, int]:
    """tracemalloc's peak of ``call()`` and the size of its result, in bytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, np.asarray(result).nbytes


def assert_peak_within_blocks(call: Callable[[], Any]) -> None:
    """tracemalloc's peak of ``call()``: at most its result plus 8 blocks
    (:data:`crossent.losses._widen.BLOCK_BYTES` each)."""
    peak, result = peak_of(call)
    bound = result + 8 * _widen.BLOCK_BYTES
    assert peak <= bound, (peak / 2**20, bound / 2**20)
