"""Issue 13, "Small inputs": label smoothing in the compiled small float32 call.

A float32 call of ``softmax_cross_entropy`` or its gradient with ``label_smoothing``
took the full (fused problem) path, some 80 us on a row of 10 where the call without
it takes about 5. The compiled call (``losses/_small_numba.py``) now forms the smoothed
terms as the full path does (``label_terms``: :math:`A` in float32, as the full path's
float32 row weights make it; :math:`B` from the kernel's row sums; the gradient's
uniform term), bit for bit. Other layouts (int32 labels, float16 logits) still take the
full path with smoothing; its errors are unchanged. (The float64 hybrid's smoothing is
pinned in test_issue13_float64_small.py.)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _cpu_kernels, _softmax, _softmax_small
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient
from losses.small_call_paths import fail_on, full_path, random_case, record_calls

from tolerances import assert_identical

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

EPS = [0.1, 0.5, 1.0, 1e-7, 1 / 3]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "sum"},
    {"reduction": "none", "validate": False},
    {"reduction": "parts"},
    {"temperature": 0.5, "z_loss": 1e-2},
    {"base": 2, "reduction": "none", "z_loss": 0.3},
    {"axis": -1, "temperature": 3.0, "base": 10.0, "reduction": "sum"},
]
SHAPES = [(1, 10), (10,), (8, 10), (2, 3, 10), (7, 1), (3, 2), (129, 5), (300, 7), (2, 300)]


def _case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_case(shape, seed, np.float32)


def _full(logits: np.ndarray, labels: np.ndarray, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """The full (fused problem) path's loss and gradient."""
    return full_path(logits, labels, fused=True, **kwargs)


@pytest.mark.parametrize(("shape", "eps", "options"), list(itertools.product(SHAPES, EPS, OPTIONS)))
def test_issue13_compiled_small_smoothing_is_the_full_path_bit_for_bit(
    monkeypatch, shape, eps, options
) -> None:
    logits, labels = _case(shape, seed=shape[-1] * 7 + len(shape))
    want_loss, want_grad = _full(logits, labels, label_smoothing=eps, **options)
    names = ("_lean_statistics", "_fused_label_problem", "label_batch")
    fail_on(monkeypatch, _softmax, names, expected="the compiled call")
    got = crossent.softmax_cross_entropy(logits, labels, label_smoothing=eps, **options)
    assert_identical(got, want_loss)
    grad = crossent.softmax_cross_entropy_grad(logits, labels, label_smoothing=eps, **options)
    assert_identical(grad, want_grad)
    out = np.full_like(logits, np.nan)
    crossent.softmax_cross_entropy_grad(logits, labels, out=out, label_smoothing=eps, **options)
    assert_identical(out, want_grad)


@pytest.mark.parametrize("eps", EPS)
def test_issue13_compiled_small_smoothing_edge_rows_bit_for_bit(eps) -> None:
    inf = np.inf
    logits = np.array(
        [
            [0.0, -inf, 1.0, 2.0],  # -inf on a class that is not the label: B = -inf
            [5.0, 5.0, 5.0, 5.0],
            [1e4, -1e4, 0.0, 3.0],
            [0.0, 1e-3, 0.0, -3e38],
            [-inf, 0.0, 1.0, 2.0],  # the label's logit -inf
        ],
        dtype=np.float32,
    )
    labels = np.array([0, 1, 1, 2, 0])
    for options in OPTIONS:
        want_loss, want_grad = _full(logits, labels, label_smoothing=eps, **options)
        got = crossent.softmax_cross_entropy(logits, labels, label_smoothing=eps, **options)
        assert_identical(got, want_loss)
        grad = crossent.softmax_cross_entropy_grad(logits, labels, label_smoothing=eps, **options)
        assert_identical(grad, want_grad)


@pytest.mark.parametrize(
    ("what", "dtype", "label_dtype"),
    [
        ("float64 logits, int32 labels", np.float64, np.int32),
        ("int32 labels", np.float32, np.int32),
        ("float16 logits", np.float16, np.int64),
    ],
)
def test_issue13_compiled_small_smoothing_other_inputs_take_the_full_path(
    monkeypatch, what, dtype, label_dtype
) -> None:
    logits, labels = _case((6, 10), seed=9)
    logits, labels = logits.astype(dtype), labels.astype(label_dtype)
    problem = prepare_softmax_labels(logits, labels, label_smoothing=0.2, reduction="sum")
    calls = record_calls(monkeypatch, _softmax_small, ("label_loss", "label_gradient"))
    got = crossent.softmax_cross_entropy(logits, labels, label_smoothing=0.2, reduction="sum")
    assert_identical(got, problem.loss())
    grad = crossent.softmax_cross_entropy_grad(logits, labels, label_smoothing=0.2, reduction="sum")
    assert_identical(grad, softmax_gradient(problem))
    assert calls == []


@pytest.mark.parametrize("eps", [-0.1, 1.5, True, np.nan, "0.1", np.inf])
def test_issue13_compiled_small_smoothing_bad_values_are_the_full_paths_errors(eps) -> None:
    logits, labels = _case((2, 4), seed=1)
    with pytest.raises((InputError, TypeError)) as want:
        prepare_softmax_labels(logits, labels, fused=False, label_smoothing=eps)
    for function in (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad):
        with pytest.raises(want.type) as got:
            function(logits, labels, label_smoothing=eps)
        assert str(got.value) == str(want.value)


def test_issue13_compiled_small_smoothing_suspect_row_is_named() -> None:
    logits = np.array([[0.0, 1.0, 2.0], [0.0, np.nan, 1.0]], dtype=np.float32)
    with pytest.raises(InputError, match="NaN"):
        crossent.softmax_cross_entropy(logits, np.array([0, 1]), label_smoothing=0.1)
    with pytest.raises(InputError, match=r"must be integers in"):
        crossent.softmax_cross_entropy_grad(
            logits[:1], np.array([3]), label_smoothing=0.1, reduction="none"
        )
