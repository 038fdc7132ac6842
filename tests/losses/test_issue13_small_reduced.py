"""Issue 13, "Small inputs": the one home of the small soft-target and distillation
losses' reduction and rounding (branch smallcall5).

``_small_targets.reduced`` forms every reduced loss of both shortcuts (the scalar of
``'mean'`` and ``'sum'`` by ``narrowed_scalar``, per-row values in the batch shape,
``LossParts``) and rounds it to the caller's float32; the float32 gradient of the
soft targets is rounded by the compiled cast called directly, then put in the
caller's shape; the work arrays keep the view of their row of log1p's argument.
Guards of existing behaviour (no new behaviour: these pass on main's code too): a
batch of one row, of no axis and of two axes, in float32 and float64, give the full
path's values, bit for bit and type for type. The mutants they kill are named in each
test and in ``tests/MUTATION.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _small_targets
from losses.small_target_checks import DISTILL, TARGETS, Family, distill_case, target_case

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

SHAPES = [(10,), (1, 10), (2, 3, 10)]
REDUCTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "sum", "base": 2},
    {"reduction": "none"},
    {"reduction": "parts"},
]


def _case(family: Family, shape: tuple[int, ...], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    if family is TARGETS:
        return target_case(shape, 5, dtype)
    return distill_case(shape, 5, "logits", dtype=dtype)


@pytest.mark.parametrize("family", [TARGETS, DISTILL], ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_issue13_small_reductions_in_every_batch_shape(family: Family, dtype: type) -> None:
    """Each reduction of each batch shape, both dtypes: the full path's loss and gradient
    bit for bit, of its type and shape. Kills: ``reduced`` taking the batch shape as
    ``shape[1:]`` (or leaving the per-row values flat); ``reduced``'s scalar, per-row or
    ``'parts'`` result not rounded to float32; the float32 gradient not put back in the
    caller's shape after its cast."""
    for shape in SHAPES:
        first, second = _case(family, shape, dtype)
        for options in REDUCTIONS:
            family.check(first, second, options)


def test_issue13_small_kept_rest_row_is_the_kept_rows() -> None:
    """The kept work arrays' third member is the view of their rows' ``REST`` row (the
    argument of log1p), for kept and for new arrays. Kills: a ``rest`` that is its own
    array or another row (every call after the first reads what no step wrote)."""
    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        shifted, rows, rest = _small_targets.work_arrays(3, 7, 6, dtype)
        assert shifted.shape == (3, 7)
        assert rows.shape == (6, 3)
        assert rest.base is rows
        assert rest.dtype == dtype
        rows[...] = np.arange(18).reshape(6, 3)
        np.testing.assert_array_equal(rest, [6.0, 7.0, 8.0])  # row 2: _small_numba.REST
    again = _small_targets.work_arrays(3, 7, 6)
    assert again[2].base is again[1]
