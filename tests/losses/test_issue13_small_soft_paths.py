"""Issue 13, "Small inputs": what the soft-target and distillation shortcuts share.

``softmax_cross_entropy_with_targets`` and ``distillation_loss`` (and their gradients)
try a lean shortcut on small NumPy inputs (``losses/_small_targets.py``,
``losses/_small_distill.py``), float64 or float32. One parametrised test per property,
over both families (``small_target_checks.FAMILIES``): the benchmark's calls are
answered by the compiled calls with the full path's values bit for bit; what the
shortcut does not take returns None and the public call is the full path's; every bad
call has the full path's error, warning or value, validating or not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _distill_fused, _small_targets_numba, _softmax
from crossent.losses._widen import upcast
from losses.small_call_paths import record_calls
from losses.small_target_checks import (
    BAD,
    BAD32,
    FAMILIES,
    TARGETS,
    Family,
    benchmark_case,
    handed_on_cases,
    same_bits,
    same_outcomes,
)

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

DTYPES = (np.float64, np.float32)


# (float32: computed with float64 logits and the float32 targets or teacher since issue
# 13's generic-float32 fix, which no compiled small call takes: the full path)
@pytest.mark.parametrize("dtype", DTYPES[:1], ids=["float64"])
@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_issue13_small_soft_benchmark_calls_take_the_shortcut(monkeypatch, family, dtype) -> None:
    """The calls of ``bench_small_inputs.py`` ((1, 10) and (8, 10), validating or not),
    float64 and float32, are answered by the compiled calls, never by the full path,
    with the full path's values bit for bit."""
    loss_name, grad_name = family.compiled
    loss_calls = record_calls(monkeypatch, _small_targets_numba, (loss_name,))
    grad_calls = record_calls(monkeypatch, _small_targets_numba, (grad_name,))
    loss, grad = family.public
    for rows in (1, 8):
        first, second = benchmark_case(rows, dtype)
        want = [family.full(first, second, validate=v) for v in (True, False)]
        with monkeypatch.context() as patched:
            family.only_shortcut(patched)
            for validate, (want_loss, want_grad) in zip((True, False), want, strict=True):
                same_bits(loss(first, second, validate=validate), want_loss)
                same_bits(grad(first, second, validate=validate), want_grad)
    assert loss_calls == [loss_name] * 4
    assert grad_calls == [grad_name] * 4


_HANDED_ON = [(family, *case) for family in FAMILIES for case in handed_on_cases(family)]


@pytest.mark.parametrize(
    ("family", "what", "first", "second", "kwargs"),
    _HANDED_ON,
    ids=[f"{case[0].name}-{case[1]}" for case in _HANDED_ON],
)
def test_issue13_small_soft_leaves_other_inputs_to_the_full_path(
    family: Family,
    what: str,
    first: Any,
    second: Any,
    kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the shortcut does not take returns None, and the public call is the full
    path's (large distillation calls take the fused kernels, ``_distill_fused``, since
    issue 13's follow-up: turned off here, where the full path's bits are pinned)."""
    monkeypatch.setattr(_distill_fused, "FUSED_ELEMENTS", 1 << 62)
    for shortcut in family.shortcuts:
        assert shortcut((first, second), dict(kwargs)) is None, what
    with np.errstate(invalid="ignore"):
        want_loss, want_grad = (part(first, second, **kwargs) for part in _widened(family))
        loss, grad = family.public
        same_bits(loss(first, second, **kwargs), want_loss)
        same_bits(grad(first, second, **kwargs), want_grad)


def _widened(family: Family) -> tuple[Any, Any]:
    """The full path's loss and gradient as the public call reaches them (issue 13):
    float16/float32 NumPy logits of distillation computed as float64 and the result
    rounded; float32 soft-target calls so where the small call takes them (it computes
    on float64 copies: values that overflow only float32's arithmetic then give the
    float64 call's outcome), else as they are when C-contiguous (``_softmax``'s
    ``_RELAYOUT_TARGETS``)."""

    def part(full: Any, shortcut: Any) -> Any:
        def widen(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if family is not TARGETS:
                return upcast(args, kwargs)
            try:
                with np.errstate(all="ignore"):
                    taken = shortcut(args, dict(kwargs)) is not None
            except Exception:  # (a float64 value that overflows float32 when rounded)
                taken = True
            return (upcast if taken else _softmax._RELAYOUT_TARGETS)(args, kwargs)

        def call(*args: Any, **kwargs: Any) -> Any:
            widened = widen(args, kwargs)
            if widened is None:
                return full(*args, **kwargs)
            return widened.finish(call(*widened.args, **widened.kwargs))  # (as public)

        return call

    loss, gradient = family.full_parts()
    return part(loss, family.shortcuts[0]), part(gradient, family.shortcuts[1])


_BAD = [
    (family, dtype, *case)
    for family in FAMILIES
    for dtype, cases in ((np.float64, BAD[family.name]), (np.float32, BAD32[family.name]))
    for case in cases
]


@pytest.mark.parametrize(
    ("family", "dtype", "first", "second", "kwargs"),
    _BAD,
    ids=[f"{case[0].name}-{np.dtype(case[1]).name}-{k}" for k, case in enumerate(_BAD)],
)
def test_issue13_small_soft_errors_are_the_full_paths(
    family: Family, dtype: type, first: Any, second: Any, kwargs: dict[str, Any]
) -> None:
    """Every error (and warning) of a small call is the full path's, and where the full
    path has none, so is its value; float64 and float32 (values that overflow float32
    only)."""
    arrays = (np.array(first, dtype=dtype), np.array(second, dtype=dtype))
    same_outcomes(family.public, _widened(family), arrays, kwargs)
