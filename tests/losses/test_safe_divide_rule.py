"""``_reduction._safe_divide``: one rule for the NumPy-number and the array branches.

``total / normalizer``, 0 where the normaliser is not above 0 (every example ignored, or
a negative sum of class weights under ``validate=False``), NaN where it is NaN (a traced
label that is no class). Commit c7e5b3b6 made the array branch follow the NumPy-number
branch's rule (hostilejax's ``== 0`` had made a negative normaliser divide on arrays and
give 0 on numbers) without a test; the mutation pass of branch mutation5 found that the
mutants ``> 0`` -> ``>= 0`` (NumPy numbers), ``~(n <= 0)`` -> ``n > 0``, ``n != 0`` or
``~(n < 0)`` (arrays) survived the loss tests (their runs passed the 400 s limit).

Oracle: the rule written out per entry in Python floats. Guards behaviour (passes on
main); kills those mutants.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.losses._reduction import _safe_divide

TOTAL = 6.0
NORMALIZERS = (2.0, 0.0, -0.0, -3.0, math.nan, math.inf)


def _rule(total: float, normalizer: float) -> float:
    if math.isnan(normalizer):
        return math.nan
    return total / normalizer if normalizer > 0 else 0.0


@pytest.mark.parametrize("normalizer", NORMALIZERS, ids=[repr(n) for n in NORMALIZERS])
def test_numpy_number_branch(normalizer: float) -> None:
    total = np.float64(TOTAL)
    for n in (np.float64(normalizer), np.asarray(normalizer)):
        got = _safe_divide(total, n, xp=np)
        np.testing.assert_array_equal(got, _rule(TOTAL, normalizer))


def test_numpy_array_branch() -> None:
    n = np.array(NORMALIZERS)
    total = np.full_like(n, TOTAL)
    got = _safe_divide(total, n, xp=np)
    np.testing.assert_array_equal(got, [_rule(TOTAL, v) for v in NORMALIZERS])


def test_torch_array_branch() -> None:
    torch = pytest.importorskip("torch")
    n = torch.tensor(NORMALIZERS, dtype=torch.float64)
    got = _safe_divide(torch.full_like(n, TOTAL), n, xp=torch)
    np.testing.assert_array_equal(got.numpy(), [_rule(TOTAL, v) for v in NORMALIZERS])


def test_negative_weight_sum_gives_zero_on_numpy_and_torch() -> None:
    """The public face: a 'mean' whose class weights sum to a negative number over the
    batch (``validate=False`` lets them through) is 0 on NumPy and PyTorch alike, and a
    batch of ignored labels is 0; the same weights with a positive sum divide."""
    torch = pytest.importorskip("torch")
    logits = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    labels = np.array([0, 2])
    for weight, expect_zero in (([-1.0, 0.5, -2.0], True), ([1.0, 0.5, 2.0], False)):
        w = np.array(weight)
        rows = crossent.softmax_cross_entropy(
            logits, labels, weight=w, reduction="none", validate=False
        )
        oracle = float(rows.sum()) / float(w[labels].sum())
        for lib in ("numpy", "torch"):
            if lib == "numpy":
                got = crossent.softmax_cross_entropy(logits, labels, weight=w, validate=False)
            else:
                got = crossent.softmax_cross_entropy(
                    torch.tensor(logits),
                    torch.tensor(labels),
                    weight=torch.tensor(w),
                    validate=False,
                )
            value = float(got)
            if expect_zero:
                assert value == 0.0, (lib, value)
            else:
                assert value == pytest.approx(oracle, rel=1e-15), lib
    ignored = np.array([-100, -100])
    assert float(crossent.softmax_cross_entropy(logits, ignored, ignore_index=-100)) == 0.0
    got = crossent.softmax_cross_entropy(
        torch.tensor(logits), torch.tensor(ignored), ignore_index=-100
    )
    assert float(got) == 0.0
