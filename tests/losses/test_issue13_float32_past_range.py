"""Float32 losses and measures whose true value passes float32's range (3.4e38).

Hostile pass 8: (1) the ``'mean'`` of float32 rows of loss 2e38 was ``inf`` where the
total, 6e38, was rounded to float32 before the division (hinge and the sigmoid losses on
NumPy, focal too on PyTorch); the mean is 2e38. (2) A float32 result past the range is
``inf`` (the float64 value rounded), but NumPy's "overflow encountered in cast" escaped
as a warning, an error under ``-W error``. Oracle: the same inputs in float64, the
result rounded to float32 (``np.float32`` of the float64 value, warnings silenced).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

ROWS = 3
HINGE_LOGITS = np.array([[2e38, 0.0]] * ROWS, np.float32)  # margin 0: loss 2e38 a row
LABELS = np.ones(ROWS, np.int64)
SIGMOID_LOGITS = np.full(ROWS, -2e38, np.float32)  # target 1: loss 2e38 an entry
ONES = np.ones(ROWS, np.float32)
FAR = np.array([[3e38, -3e38, 0.0]], np.float32)  # label 1: loss 6e38, past the range


def _float32_of(value: Any) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(value, np.float64).astype(np.float32)


def _quiet_and_oracle(
    f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The float32 call's result (warnings as errors) and the float64 call's, rounded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = np.asarray(f(*args, **kw))
    return got, _float32_of(f(*_wide(args), **kw))


def _wide(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a
        for a in args
    )


MEANS: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    ("hinge-cs", crossent.multiclass_hinge_loss, (HINGE_LOGITS, LABELS), {"margin": 0.0}),
    (
        "hinge-ww",
        crossent.multiclass_hinge_loss,
        (HINGE_LOGITS, LABELS),
        {"margin": 0.0, "variant": "weston_watkins"},
    ),
    ("sigmoid", crossent.sigmoid_cross_entropy, (SIGMOID_LOGITS, ONES), {}),
    ("sigmoid-bits", crossent.sigmoid_cross_entropy, (SIGMOID_LOGITS, ONES), {"base": 2.0}),
    ("sigmoid-focal", crossent.sigmoid_focal_loss, (SIGMOID_LOGITS, ONES), {"gamma": 0.0}),
]


@pytest.mark.parametrize(("name", "f", "args", "kw"), MEANS, ids=[m[0] for m in MEANS])
def test_float32_mean_of_rows_whose_total_passes_the_range(
    name: str, f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    got, expected = _quiet_and_oracle(f, args, kw)
    assert np.isfinite(expected)  # 2e38 (or 2.885e38 bits)
    assert got.dtype == np.float32
    assert got == expected


def test_float32_mean_on_pytorch() -> None:
    torch = pytest.importorskip("torch")
    z, y = torch.from_numpy(HINGE_LOGITS), torch.from_numpy(LABELS)
    for got in (
        crossent.multiclass_hinge_loss(z, y, margin=0.0),
        crossent.softmax_focal_loss(z, y, gamma=0.0),
        crossent.sigmoid_cross_entropy(torch.from_numpy(SIGMOID_LOGITS), torch.from_numpy(ONES)),
    ):
        assert got.dtype == torch.float32
        assert got.item() == np.float32(2e38)


def test_float32_mean_and_sum_on_array_api_strict() -> None:
    """NumPy underneath: the mean 2e38, the sum ``inf`` without NumPy's cast warning."""
    xps = pytest.importorskip("array_api_strict")
    z, y = xps.asarray(HINGE_LOGITS), xps.asarray(LABELS)
    x, t = xps.asarray(SIGMOID_LOGITS), xps.asarray(ONES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = [
            crossent.multiclass_hinge_loss(z, y, margin=0.0),
            crossent.sigmoid_cross_entropy(x, t),
        ]
        sums = [
            crossent.multiclass_hinge_loss(z, y, margin=0.0, reduction="sum"),
            crossent.sigmoid_cross_entropy(x, t, reduction="sum"),
        ]
    assert [float(m) for m in means] == [float(np.float32(2e38))] * 2
    assert [float(s) for s in sums] == [np.inf] * 2


PAST: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    # (labels as a list: int64 arrays take the small compiled call, which did not warn)
    ("sce", crossent.softmax_cross_entropy, (FAR, [1]), {}),
    ("sce-none", crossent.softmax_cross_entropy, (FAR, [1]), {"reduction": "none"}),
    ("sce-sum", crossent.softmax_cross_entropy, (FAR, [1]), {"reduction": "sum"}),
    (
        "sce-zloss",
        crossent.softmax_cross_entropy,
        (np.float32([[1e20, -1.0]]), [1]),
        {"z_loss": 1.0},
    ),
    ("targets", crossent.softmax_cross_entropy_with_targets, (FAR, np.float32([[0, 1, 0]])), {}),
    (
        "sigmoid-sum",
        crossent.sigmoid_cross_entropy,
        (SIGMOID_LOGITS, ONES),
        {"reduction": "sum"},
    ),
    (
        "sigmoid-focal-sum",
        crossent.sigmoid_focal_loss,
        (SIGMOID_LOGITS, ONES),
        {"gamma": 0.0, "reduction": "sum"},
    ),
    (
        "perplexity",
        crossent.perplexity,
        (np.float32([[0.5, 0.5]]), np.float32([[0.0, -200.0]])),
        {"q_form": "logits"},
    ),
]


@pytest.mark.parametrize(("name", "f", "args", "kw"), PAST, ids=[m[0] for m in PAST])
def test_float32_result_past_the_range_is_inf_without_a_warning(
    name: str, f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    got, expected = _quiet_and_oracle(f, args, kw)
    assert got.dtype == np.float32
    assert np.isinf(expected).all()
    np.testing.assert_array_equal(got, expected)


LEAN_Z = np.float32([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
LEAN_T = np.float32([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
LEAN: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    # a z-loss of 1e38 or more: float64 entries of 1e38 to 1e39, finite, so the lean
    # path computes them (on its float64 copies) and rounds each to float32: some inf,
    # some not (the rows' LSE squared are 2.2 and 9.4)
    (
        "targets-grad",
        crossent.softmax_cross_entropy_with_targets_grad,
        {"z_loss": 3e38, "reduction": "sum"},
    ),
    ("targets-grad-mean", crossent.softmax_cross_entropy_with_targets_grad, {"z_loss": 3e38}),
    (
        "targets-none",
        crossent.softmax_cross_entropy_with_targets,
        {"z_loss": 1e38, "reduction": "none"},
    ),
]


@pytest.mark.parametrize(("name", "f", "kw"), LEAN, ids=[m[0] for m in LEAN])
def test_lean_float32_result_partly_past_the_range(
    name: str, f: Callable[..., Any], kw: dict[str, Any]
) -> None:
    """The small (lean) path's float64 result rounded to float32 without a warning, entry
    by entry as NumPy's cast rounds it (issue 13, lean32: a compiled cast, not NumPy's
    under ``np.errstate``). Guards the mutant that casts with ``astype`` unguarded."""
    got, expected = _quiet_and_oracle(f, (LEAN_Z, LEAN_T), kw)
    assert got.dtype == np.float32
    assert np.isinf(expected).any()
    assert np.isfinite(expected).any()
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


def test_compiled_cast_rounds_as_numpys_cast() -> None:
    """``_small_narrow.to_float32`` (a compiled loop for float64 vectors and matrices) is
    NumPy's ``astype(float32)`` bit for bit, without its overflow warning: ties to even,
    the last finite float32 and the first value that rounds to inf, subnormals, a value
    below the smallest subnormal, signed zeros, NaN, infinities; any layout."""
    pytest.importorskip("numba")
    from crossent.losses._small_narrow import to_float32

    top = float(np.finfo(np.float32).max)
    edge = 2.0**128 - 2.0**103  # halfway between float32's max and 2**128: rounds to inf
    large = [1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24, top, np.nextafter(edge, 0.0), edge, 1e39]
    small = [2.0**-149, 2.0**-150, 3 * 2.0**-150, 1e-46, 1e-39, 0.0, -0.0, np.nan, np.inf]
    values = np.array([*large, *small], np.float64)
    values = np.concatenate([values, -values])
    matrix = values.reshape(2, -1)
    for x in (values, values[::3], matrix, matrix.T, matrix[:, ::2]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = to_float32(x)
        expected = _float32_of(x)
        assert got.dtype == np.float32
        assert got.shape == x.shape
        np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))
