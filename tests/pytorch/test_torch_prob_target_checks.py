"""Probability targets of ``crossent.torch.cross_entropy`` are checked as the NumPy API's.

Before, ``cross_entropy(logits, target_probs)`` (and ``CrossEntropyLoss``) took targets
with NaN, infinite or negative entries, or rows not summing to 1, and returned NaN or
the formula's meaningless number, as PyTorch does. Now an ``InputError`` names the row
(in the caller's layout) and the value: inside ``crossent::softmax_ce_probs_v3`` on the
CPU (so under ``torch.compile(fullgraph=True)`` too) and eagerly on the generic path
(targets that require grad). The oracle for the rules and the tolerance is the NumPy
API, ``crossent.softmax_cross_entropy_with_targets``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossent
from crossent.errors import InputError
from crossent.torch import CrossEntropyLoss, cross_entropy

# Row 2 of four 4-class rows is bad; what the message names, and the value.
_BAD = {
    "negative": ([0.75, 0.5, -0.25, 0.0], r"non-negative .*got -0\.25 at index \(2, 2\)"),
    "nan": ([0.5, float("nan"), 0.5, 0.0], r"contains NaN at index \(2, 1\)"),
    "inf": ([0.5, float("inf"), 0.0, 0.0], r"must be finite; got inf at index \(2, 1\)"),
    "sum": ([0.5, 0.625, 0.0, 0.0], r"row 2 sums to 1\.125"),
}
_DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def _targets(bad_row: list[float], dtype: torch.dtype) -> torch.Tensor:
    rows = [[0.25] * 4, [1.0, 0.0, 0.0, 0.0], bad_row, [0.5, 0.5, 0.0, 0.0]]
    return torch.tensor(rows, dtype=dtype)


def _logits(dtype: torch.dtype) -> torch.Tensor:
    z = torch.linspace(-2.0, 2.0, 16, dtype=torch.float64).reshape(4, 4)
    return z.to(torch.float64 if dtype == torch.float64 else torch.float32)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_targets_raise_eagerly(case: str, dtype: torch.dtype) -> None:
    row, message = _BAD[case]
    z, t = _logits(dtype), _targets(row, dtype)
    for reduction in ("mean", "none"):
        with pytest.raises(InputError, match=message):
            cross_entropy(z, t, reduction=reduction)
    with pytest.raises(InputError, match=message):
        CrossEntropyLoss()(z, t)
    # The generic path (targets that require grad), checked eagerly.
    with pytest.raises(InputError, match=message):
        cross_entropy(z, t.clone().requires_grad_())


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_bad_targets_raise_under_compile_fullgraph(dtype: torch.dtype) -> None:
    loss = torch.compile(cross_entropy, fullgraph=True, backend="aot_eager")
    z = _logits(dtype)
    assert torch.isfinite(loss(z, _targets([0.0, 0.0, 0.0, 1.0], dtype)))
    for case in ("negative", "sum"):
        row, message = _BAD[case]
        with pytest.raises(InputError, match=message):
            loss(z, _targets(row, dtype))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_k_dim_targets_name_the_row_in_the_callers_layout(compiled: bool) -> None:
    """(N, C, d1): the row is (n, d1), the entry (n, c, d1)."""
    loss = torch.compile(cross_entropy, fullgraph=True, backend="aot_eager")
    fn = loss if compiled else cross_entropy
    z = torch.linspace(-1.0, 1.0, 24).reshape(2, 4, 3)
    t = torch.full((2, 4, 3), 0.25)
    assert torch.isfinite(fn(z, t))
    t[1, 3, 2] = -0.5
    t[1, 0, 2] = 1.0
    with pytest.raises(InputError, match=r"got -0\.5 at index \(1, 3, 2\) \(row \(1, 2\)\)"):
        fn(z, t)
    t[1, 3, 2] = 0.25
    with pytest.raises(InputError, match=r"row \(1, 2\) sums to 1\.75"):
        fn(z, t)


def test_vmap_names_the_example_and_the_row() -> None:
    z = torch.zeros(3, 2, 4)
    t = torch.full((3, 2, 4), 0.25)
    t[2, 1, 0] = 0.5
    with pytest.raises(InputError, match=r"row \(2, 1\) sums to 1\.25"):
        torch.func.vmap(cross_entropy)(z, t)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_tolerance_is_the_numpy_apis(dtype: torch.dtype) -> None:
    """A row sum just inside the NumPy API's tolerance passes, just outside it fails,
    the same verdicts as ``crossent.softmax_cross_entropy_with_targets`` (float32 for
    bfloat16, which NumPy lacks: the tolerance is bfloat16's there, checked by value)."""
    classes = 4
    info = torch.finfo(dtype)
    eps_c = float(np.finfo(np.float32).eps) if info.bits < 32 else float(info.eps)
    # a normalising sum stored in a dtype narrower than float32 adds its eps / 2 (the
    # evaluation pass hostile19: p / p.sum() of float16 rows keeps the sum in float16)
    stored_sum = info.eps / 2 if info.bits < 32 else 0.0
    tol = info.eps / 2 + stored_sum + min(eps_c * (classes + 1 + 512), 1e-3)
    z = np.zeros((2, classes))
    for offset, passes in ((0.5 * tol, True), (2.0 * tol, False)):
        rows = np.array([[0.25] * 4, [0.25, 0.25, 0.25, 0.25 + offset]])
        t = torch.tensor(rows).to(dtype)
        offset_stored = float(t[1].double().sum()) - 1
        assert (abs(offset_stored) <= tol) == passes
        if dtype != torch.bfloat16:
            numpy_passes = True
            try:
                crossent.softmax_cross_entropy_with_targets(z, t.numpy())
            except InputError:
                numpy_passes = False
            assert numpy_passes == passes
        if passes:
            assert torch.isfinite(cross_entropy(torch.zeros(2, classes), t))
        else:
            with pytest.raises(InputError, match=r"row 1 sums to"):
                cross_entropy(torch.zeros(2, classes), t)


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_valid_edge_cases_pass(dtype: torch.dtype) -> None:
    """One-hot rows, zero entries, softmax rows off 1 by float32 rounding, no rows."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 1000, generator=g)
    scores = torch.randn(64, 1000, generator=g, dtype=torch.float64) * 4
    # The softmax in the targets' dtype (float32 for bfloat16, then rounded).
    soft = torch.softmax(scores.to(torch.promote_types(dtype, torch.float32)), dim=1).to(dtype)
    assert float((soft.double().sum(1) - 1).abs().max()) > 0  # rounding is there
    one_hot = torch.nn.functional.one_hot(torch.arange(64) % 1000, 1000).to(dtype)
    for t in (soft, one_hot):
        value = cross_entropy(z, t)
        oracle = torch.nn.functional.cross_entropy(z.double(), t.double())
        assert torch.isclose(value.double(), oracle, rtol=1e-6)
        cross_entropy(z, t.clone().requires_grad_()).backward()
    empty = cross_entropy(torch.zeros(0, 5), torch.zeros(0, 5, dtype=dtype))
    assert float(empty) == 0.0


def test_entry_above_one_within_the_row_tolerance_is_refused() -> None:
    """[1 + 2^-16, 0, 0, 0] sums to 1 within float32's tolerance (6.2e-5) but holds no
    probability: refused, as by the NumPy API (its entries in [0, 1])."""
    t = torch.tensor([[0.25] * 4, [1.0 + 2.0**-16, 0.0, 0.0, 0.0]])
    with pytest.raises(InputError):
        crossent.softmax_cross_entropy_with_targets(np.zeros((2, 4)), t.numpy())
    with pytest.raises(InputError, match=r"in \[0, 1\]; got 1\.0000152587890625 at index \(1, 0\)"):
        cross_entropy(torch.zeros(2, 4), t)
