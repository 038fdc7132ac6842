"""Issue 13, "Small inputs": one compiled call for the lean softmax cross-entropy path.

``softmax_cross_entropy`` and its gradient on small float32 logits with int64 labels
(no class weights, ignore_index, smoothing or soft-capping) are one Numba call
(``losses/_small_numba.py``, dispatched by ``losses/_softmax_small.py``). These tests
pin that the call is taken, that it gives the full path's values bit for bit (every
reduction, temperature, z-loss, base, shapes whose row count crosses NumPy's pairwise
summation blocks), that a suspect input still raises the full path's named error, and
which calls it leaves to the other paths.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _cpu_kernels, _softmax, _softmax_small
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient
from losses.small_call_paths import (
    LEAN_OPTIONS,
    fail_on,
    full_path,
    layouts_not_taken,
    random_case,
    record_calls,
)

from tolerances import assert_identical

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

OPTIONS = LEAN_OPTIONS

# (1, 10) and (10,): the issue's row; 128/129/300/2000 rows: NumPy's pairwise sum in
# one block of 8 accumulators, then split in halves; (16384, 1): SERIAL_ELEMENTS.
SHAPES = [(1, 10), (10,), (8, 10), (2, 3, 10), (7, 1), (128, 5), (129, 5), (300, 7)]
SHAPES += [(2000, 3), (16384, 1)]


def _case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_case(shape, seed, np.float32)


def _only_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every other path fail: the lean statistics, the fused and generic problems."""
    names = ("_lean_statistics", "_fused_label_problem", "label_batch")
    fail_on(monkeypatch, _softmax, names, expected="the compiled call")


def _full(logits: np.ndarray, labels: np.ndarray, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """The full (fused problem) path's loss and gradient."""
    return full_path(logits, labels, fused=True, **kwargs)


@pytest.mark.parametrize(("shape", "options"), list(itertools.product(SHAPES, OPTIONS)))
def test_issue13_compiled_small_is_the_full_path_bit_for_bit(monkeypatch, shape, options) -> None:
    logits, labels = _case(shape, seed=len(shape) * 100 + shape[-1])
    want_loss, want_grad = _full(logits, labels, **options)
    _only_compiled(monkeypatch)
    assert_identical(crossent.softmax_cross_entropy(logits, labels, **options), want_loss)
    assert_identical(crossent.softmax_cross_entropy_grad(logits, labels, **options), want_grad)
    out = np.full_like(logits, np.nan)
    assert crossent.softmax_cross_entropy_grad(logits, labels, out=out, **options) is out
    assert_identical(out, want_grad)


@pytest.mark.parametrize("options", OPTIONS)
def test_issue13_compiled_small_edge_rows_bit_for_bit(monkeypatch, options) -> None:
    inf = np.inf
    logits = np.array(
        [
            [0.0, -inf, 1.0, 2.0],  # -inf on a class that is not the label
            [5.0, 5.0, 5.0, 5.0],  # ties
            [1e4, -1e4, 0.0, 3.0],  # a huge spread
            [3.0, 2.0, 1.0, 0.0],
            [0.0, 1e-3, 0.0, -3e38],  # near-ties and a huge negative logit
            [-inf, 0.0, 1.0, 2.0],  # the label's logit -inf: the loss is +inf
            [3e38, -3e38, 0.0, 1.0],  # LSE^2 overflows for the z-loss
        ],
        dtype=np.float32,
    )
    labels = np.array([0, 1, 1, 3, 2, 0, 0])
    # The z-loss of the last row is beyond float32: the full path's cast to float32
    # warns (NumPy's overflow warning), the compiled call gives the same inf silently.
    with np.errstate(over="ignore"):
        want_loss, want_grad = _full(logits, labels, **options)
        _, want_near = _full(logits[:-1], labels[:-1], **options)
    _only_compiled(monkeypatch)
    assert_identical(crossent.softmax_cross_entropy(logits, labels, **options), want_loss)
    near = crossent.softmax_cross_entropy_grad(logits[:-1], labels[:-1], **options)
    assert_identical(near, want_near)
    # The last row's |LSE| >= 2**20: the compiled gradient hands the call to the full
    # path, which forms that row again from the row maximum (issue 13)
    monkeypatch.undo()
    assert_identical(crossent.softmax_cross_entropy_grad(logits, labels, **options), want_grad)


def test_issue13_compiled_small_pairwise_sum_is_numpys() -> None:
    from crossent.losses._small_numba import pairwise_sum

    rng = np.random.default_rng(7)
    for n in [*range(1, 300), 511, 1000, 1023, 4096, 9999, 16384]:
        a = rng.standard_normal(n) * np.exp(rng.uniform(-30, 30, n))
        assert pairwise_sum(a) == np.add.reduce(a, dtype=np.float64), n
    assert str(pairwise_sum(np.array([-0.0]))) == "0.0"  # NumPy starts from +0.0


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "parts"])
def test_issue13_compiled_small_lean_z_loss_is_the_full_paths(reduction) -> None:
    """The z-loss of the (uncompiled) lean path for float32: the full path's example
    weight is a float32 1, so its term is float32(z_loss) * LSE^2; the lean path used
    z_loss itself, a float32 ulp off the full path's per-row losses ("none") on some rows."""
    for seed, z_loss in itertools.product(range(6), (1e-2, 0.1, 1e-4)):
        logits, labels = _case((300, 7), seed=seed)
        labels32 = labels.astype(np.int32)  # not the compiled call's: the lean statistics
        assert not _softmax_small.takes(logits, labels32)
        assert _softmax.lean_call((logits, labels32), {}) is not None
        want, _ = _full(logits, labels32, z_loss=z_loss, reduction=reduction)
        got = crossent.softmax_cross_entropy(logits, labels32, z_loss=z_loss, reduction=reduction)
        assert_identical(got, want)


def _not_compiled_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    logits, labels = _case((6, 10), seed=3)
    # (float64 logits: the float64 hybrid's, tests/losses/test_issue13_float64_small.py)
    return [*layouts_not_taken(np.float32), ("float16 logits", logits.astype(np.float16), labels)]


@pytest.mark.parametrize(("what", "logits", "labels"), _not_compiled_cases())
def test_issue13_compiled_small_leaves_other_inputs_to_the_other_paths(
    monkeypatch, what, logits, labels
) -> None:
    """Same values, from the lean statistics or the full path (strided logits: those of
    their C-contiguous copy, which the public call makes; issue 13)."""
    copied = what == "strided logits"
    reference = np.ascontiguousarray(logits) if copied else logits
    problem = prepare_softmax_labels(reference, labels, z_loss=0.1, reduction="sum")
    want_loss, want_grad = problem.loss(), softmax_gradient(problem)
    calls = record_calls(monkeypatch, _softmax_small, ("label_loss", "label_gradient"))
    assert_identical(
        crossent.softmax_cross_entropy(logits, labels, z_loss=0.1, reduction="sum"), want_loss
    )
    assert_identical(
        crossent.softmax_cross_entropy_grad(logits, labels, z_loss=0.1, reduction="sum"),
        want_grad,
    )
    assert calls == [] or copied


def _message(function: Any, *args: Any, **kwargs: Any) -> tuple[type, str]:
    with pytest.raises((InputError, TypeError, IndexError)) as info:
        function(*args, **kwargs)
    return info.type, str(info.value)


NAN, INF = np.nan, np.inf
BAD = [
    ([[0.0, 1.0, 2.0]], [3], {}),
    ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [0, -1], {}),
    ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [0, 7], {"validate": True}),
    ([[0.0, NAN, 2.0]], [0], {}),
    ([[0.0, INF, 2.0]], [0], {"reduction": "none"}),
    ([[0.0, 1.0], [-INF, -INF]], [0, 1], {"reduction": "sum"}),
    ([[0.0, NAN, 2.0]], [5], {}),  # both bad: the logits are named first
    ([[0.0, 1.0, 2.0], [0.0, 1.0, -INF]], [0, 9], {"temperature": 2.0}),
    ([0.0, 1.0, NAN], 0, {}),  # one row, no batch axis
    ([[[0.0, 1.0], [1.0, 1.0]], [[2.0, 1.0], [INF, 1.0]]], [[0, 1], [1, 0]], {}),
    ([[0.0, 1.0, 2.0]], [[0]], {}),
    ([[0.0, 1.0, 2.0]], [0, 1], {}),
    ([[0.0, 1.0, 2.0]], [0.0], {}),
    ([[0.0, 1.0, 2.0]], [0], {"reduction": "avg"}),
    ([[0.0, 1.0, 2.0]], [0], {"temperature": 0.0}),
    ([[0.0, 1.0, 2.0]], [0], {"z_loss": -1.0}),
    ([[0.0, 1.0, 2.0]], [0], {"base": 1.0}),
    ([[0.0, 1.0, 2.0]], [0], {"axis": 2}),
    ([[0.0, 1.0, 2.0]], [0], {"axis": True}),
]


@pytest.mark.parametrize(("logits", "labels", "kwargs"), BAD)
def test_issue13_compiled_small_errors_are_the_full_paths(logits, labels, kwargs) -> None:
    """Every error of a small float32 call is the one the full (generic) path raises."""
    z = np.array(logits, dtype=np.float32)
    y = np.array(labels)
    generic = _message(prepare_softmax_labels, z, y, fused=False, **kwargs)
    assert _message(crossent.softmax_cross_entropy, z, y, **kwargs) == generic
    assert _message(crossent.softmax_cross_entropy_grad, z, y, **kwargs) == generic


@pytest.mark.parametrize(
    ("logits", "labels"),
    [([[0.0, NAN, 2.0], [1.0, 2.0, 3.0]], [0, 1]), ([[0.0, 1.0], [INF, 0.0]], [1, 0])],
)
def test_issue13_compiled_small_suspect_rows_take_the_full_path(
    monkeypatch, logits, labels
) -> None:
    """The compiled call screens the rows and hands a suspect call to the full path: an
    error when validating, the full path's values (NaN) without."""
    z = np.array(logits, dtype=np.float32)
    y = np.array(labels)
    calls = record_calls(monkeypatch, _softmax_small, ("label_loss",))
    with pytest.raises(InputError):
        crossent.softmax_cross_entropy(z, y)
    assert calls == ["label_loss"]
    with np.errstate(invalid="ignore", over="ignore"):
        want, want_grad = _full(z, y, validate=False, reduction="none")
        got = crossent.softmax_cross_entropy(z, y, validate=False, reduction="none")
        got_grad = crossent.softmax_cross_entropy_grad(z, y, validate=False, reduction="none")
    assert_identical(got, want)
    assert_identical(got_grad, want_grad)
    assert calls == ["label_loss", "label_loss"]


def test_issue13_compiled_small_unvalidated_bad_label_is_the_generic_paths() -> None:
    """validate=False with a label outside [0, C): the compiled call hands it on, and the
    call does what the generic path does (here NumPy's IndexError)."""
    z = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5]], dtype=np.float32)
    y = np.array([0, 3])
    generic = _message(prepare_softmax_labels, z, y, fused=False, validate=False)
    assert _message(crossent.softmax_cross_entropy, z, y, validate=False) == generic


@pytest.mark.parametrize(
    "make_out",
    [
        lambda z: np.empty(z.shape, dtype=np.float64),  # wrong dtype
        lambda z: np.empty((z.shape[0] + 1, z.shape[1]), dtype=np.float32),  # wrong shape
        lambda z: np.empty(z.shape[::-1], dtype=np.float32).T,  # not C-contiguous
        lambda z: z,  # the logits themselves
        lambda z: [[0.0] * z.shape[1]] * z.shape[0],  # not an array
    ],
)
def test_issue13_compiled_small_bad_out_is_named(make_out) -> None:
    z, y = _case((3, 4), seed=1)
    before = z.copy()
    problem = prepare_softmax_labels(z, y)
    out = make_out(z)
    with pytest.raises((InputError, TypeError)) as want:
        softmax_gradient(problem, out=out)
    with pytest.raises(want.type, match=re.escape(str(want.value))):
        crossent.softmax_cross_entropy_grad(z, y, out=out)
    np.testing.assert_array_equal(z, before)


def test_issue13_compiled_small_writes_nothing_into_out_for_a_suspect_row() -> None:
    z = np.array([[0.0, 1.0, 2.0], [0.0, NAN, 1.0]], dtype=np.float32)
    out = np.full_like(z, 7.0)
    with pytest.raises(InputError, match="NaN"):
        crossent.softmax_cross_entropy_grad(z, np.array([0, 1]), out=out)
    assert (out == 7.0).all()
