"""Issue 13, "Small inputs": the compiled small softmax cross-entropy for float64 logits.

``softmax_cross_entropy`` and its gradient on small float64 logits with int64 labels
(no class weights, ignore_index, smoothing or soft-capping) are a hybrid
(``losses/_softmax_small.py``): compiled calls (``losses/_small_numba.py``) screen the
rows and do the arithmetic of the generic path (maximum, shift, temperature, the row
sums in NumPy's pairwise order, the label's term, the z-loss, the reduction, the
gradient's coefficients), and NumPy's own np.exp and np.log1p do the transcendentals on
the same values as there, so the values are the full path's bit for bit on every CPU.
These tests pin that, the full path's errors and warnings, and where the hybrid hands a
call on.
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

OPTIONS: list[dict[str, Any]] = [
    *LEAN_OPTIONS,
    {"label_smoothing": 0.1},
    {"label_smoothing": 1.0, "reduction": "none"},
    {"label_smoothing": 1 / 3, "z_loss": 1e-3, "temperature": 0.7, "reduction": "sum"},
    {"label_smoothing": 1e-7, "base": 2, "reduction": "parts", "validate": False},
]

# The issue's row; classes around NumPy's pairwise blocks within a row (8 accumulators
# from 8 terms, one block up to 128, halves above); rows around them for the sum over
# rows; (16384, 1) and (1, 16384): SERIAL_ELEMENTS, the most the hybrid takes.
SHAPES = [(1, 10), (10,), (8, 10), (2, 3, 10), (7, 1), (3, 7), (3, 8), (3, 9), (3, 17)]
SHAPES += [(2, 127), (2, 128), (2, 129), (2, 256), (2, 257), (1, 1000), (128, 5), (129, 5)]
SHAPES += [(300, 7), (2000, 3), (16384, 1), (1, 16384)]


def _case(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_case(shape, seed, np.float64)


def _only_hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every other path fail: the lean statistics and the generic problem."""
    names = ("_lean_statistics", "label_batch")
    fail_on(monkeypatch, _softmax, names, expected="the compiled hybrid")


def _full(logits: np.ndarray, labels: np.ndarray, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """The full (generic problem) path's loss and gradient."""
    return full_path(logits, labels, fused=False, **kwargs)


def _same_bits(actual: Any, expected: Any) -> None:
    """:func:`assert_identical`, and the same bytes (a -0.0 is not a 0.0)."""
    assert_identical(actual, expected)
    for got, want in zip(np.atleast_1d(actual), np.atleast_1d(expected), strict=True):
        if np.asarray(want).dtype == np.float64:
            assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_issue13_float64_small_is_the_full_path_bit_for_bit(monkeypatch, shape) -> None:
    """Each of :data:`OPTIONS` in turn (in the loop, not a parameter: 378 tests were
    about 2 ms each of pytest's own time, CI time); the full path's results first."""
    logits, labels = _case(shape, seed=len(shape) * 1000 + shape[-1])
    wants = [_full(logits, labels, **options) for options in OPTIONS]
    _only_hybrid(monkeypatch)
    for options, (want_loss, want_grad) in zip(OPTIONS, wants, strict=True):
        _same_bits(crossent.softmax_cross_entropy(logits, labels, **options), want_loss)
        _same_bits(crossent.softmax_cross_entropy_grad(logits, labels, **options), want_grad)
        out = np.full_like(logits, np.nan)
        assert crossent.softmax_cross_entropy_grad(logits, labels, out=out, **options) is out
        _same_bits(out, want_grad)


@pytest.mark.parametrize("options", OPTIONS)
def test_issue13_float64_small_edge_rows_bit_for_bit(monkeypatch, options) -> None:
    inf = np.inf
    logits = np.array(
        [
            [0.0, -inf, 1.0, 2.0],  # -inf on a class that is not the label
            [5.0, 5.0, 5.0, 5.0],  # ties
            [1e4, -1e4, 0.0, 3.0],  # a huge spread
            [3.0, 2.0, 1.0, 0.0],
            [0.0, 1e-300, 0.0, -3e300],  # near-ties and a huge negative logit
            [-0.0, 0.0, -0.0, -40.0],  # signed zeros at the maximum
            [1e-320, 0.0, -1e-320, 5e-324],  # subnormal differences
            [700.0, 699.0, -700.0, 1.0],
        ]
    )
    labels = np.array([0, 1, 1, 3, 2, 0, 3, 1])
    want_loss, want_grad = _full(logits, labels, **options)
    if "label_smoothing" not in options:  # (smoothed, the -inf logit's row is +inf: handed on)
        _only_hybrid(monkeypatch)
    _same_bits(crossent.softmax_cross_entropy(logits, labels, **options), want_loss)
    _same_bits(crossent.softmax_cross_entropy_grad(logits, labels, **options), want_grad)


def test_issue13_float64_small_row_sums_are_numpys() -> None:
    """``rest_of_rows64`` sums each row as ``np.add.reduce(terms, -1)`` does (and the
    shifted logits for smoothing as ``weighted_class_sum`` does)."""
    from crossent.losses._small_numba import REST, SUM, rest_of_rows64

    rng = np.random.default_rng(11)
    for classes, n in itertools.product([*range(1, 140), 255, 256, 257, 1000, 4099], (1, 3)):
        shifted = -rng.uniform(0, 30, (n, classes))
        shifted[:, 0] = 0.0  # one maximal term per row (n_0 = 1)
        terms = np.exp(shifted)
        rows = np.empty((4, n))
        rest_of_rows64(terms.copy(), shifted, rows, True)
        want = np.add.reduce(terms - (shifted == 0), -1)  # as log_sum_exp_shifted
        np.testing.assert_array_equal(rows[REST], want, err_msg=str(classes))
        np.testing.assert_array_equal(rows[SUM], np.add.reduce(shifted, -1), err_msg=str(classes))


def test_issue13_float64_small_transcendentals_are_numpys(monkeypatch) -> None:
    """The exponentials and the log1p are NumPy's ufuncs, on the generic path's values:
    one np.exp and one np.log1p for the loss, one more np.exp for the gradient."""
    logits, labels = _case((4, 10), seed=5)
    want_loss, want_grad = _full(logits, labels)
    calls = record_calls(monkeypatch, np, ("exp", "log1p"))
    _only_hybrid(monkeypatch)
    _same_bits(crossent.softmax_cross_entropy(logits, labels), want_loss)
    assert calls == ["exp", "log1p"]
    _same_bits(crossent.softmax_cross_entropy_grad(logits, labels), want_grad)
    assert calls == ["exp", "log1p", "exp", "log1p", "exp"]


def _not_hybrid_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    logits, labels = _case((6, 10), seed=3)
    return [
        *layouts_not_taken(np.float64),
        ("Fortran logits", np.asfortranarray(logits), labels),
        ("longdouble logits", logits.astype(np.longdouble), labels),
    ]


@pytest.mark.parametrize(("what", "logits", "labels"), _not_hybrid_cases())
def test_issue13_float64_small_leaves_other_inputs_to_the_other_paths(
    monkeypatch, what, logits, labels
) -> None:
    """Same values, from the lean statistics or the full path."""
    problem = prepare_softmax_labels(logits, labels, z_loss=0.1, reduction="sum")
    want_loss, want_grad = problem.loss(), softmax_gradient(problem)
    calls = record_calls(monkeypatch, _softmax_small, ("_label_loss64", "_label_gradient64"))
    _same_bits(
        crossent.softmax_cross_entropy(logits, labels, z_loss=0.1, reduction="sum"), want_loss
    )
    _same_bits(
        crossent.softmax_cross_entropy_grad(logits, labels, z_loss=0.1, reduction="sum"),
        want_grad,
    )
    assert calls == []


def _outcome(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The error (or warning, an error under the suite's filterwarnings) a call raises,
    or its value's bytes."""
    try:
        value = function(*args, **kwargs)
    except (InputError, TypeError, IndexError, RuntimeWarning) as error:
        return type(error), str(error)
    return "value", repr(value) + str(np.asarray(value, dtype=np.float64).tobytes())


NAN, INF = np.nan, np.inf
BAD = [
    ([[0.0, 1.0, 2.0]], [3], {}),
    ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [0, -1], {}),
    ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [0, 7], {"validate": True}),
    ([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5]], [0, 3], {"validate": False}),
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
    # NumPy's overflow warnings of the full path (errors under the suite's settings)
    ([[1e308, -1e308, 0.0]], [0], {}),  # z - max overflows
    ([[1.7e308, 1.7e308, 0.0]], [0], {}),  # LSE = max + log 2 overflows
    ([[1e200, 0.0]], [1], {"z_loss": 1.0}),  # LSE^2 overflows
    ([[1e300, 0.0]], [0], {"z_loss": 1e10, "reduction": "none"}),
    ([[0.0, 1e308], [0.0, 1e308]], [0, 1], {"reduction": "sum"}),  # the sum overflows
    ([[0.0, 1e308]], [0], {"base": 1.5}),  # dividing by ln 1.5 overflows
    ([[0.0, 1e300, 1.0]], [0], {"z_loss": 1e5, "temperature": 1e-10}),
]


@pytest.mark.parametrize(("logits", "labels", "kwargs"), BAD)
def test_issue13_float64_small_errors_are_the_full_paths(logits, labels, kwargs) -> None:
    """Every error (and overflow warning) of a small float64 call is the full path's
    (and where the full path has none, its value)."""
    z = np.array(logits, dtype=np.float64)
    y = np.array(labels)

    def full_loss(*args: Any, **kw: Any) -> Any:
        return prepare_softmax_labels(*args, **kw).loss()

    def full_gradient(*args: Any, **kw: Any) -> Any:
        return softmax_gradient(prepare_softmax_labels(*args, **kw))

    for function, full in (
        (crossent.softmax_cross_entropy, full_loss),
        (crossent.softmax_cross_entropy_grad, full_gradient),
    ):
        assert _outcome(function, z, y, **kwargs) == _outcome(full, z, y, **kwargs)


@pytest.mark.parametrize(("logits", "labels", "kwargs"), BAD[-7:])
def test_issue13_float64_small_overflows_give_the_full_paths_values(logits, labels, kwargs) -> None:
    """Where the full path overflows (with NumPy's warning), the hybrid hands the call
    on: the same values, infinities included."""
    z = np.array(logits, dtype=np.float64)
    y = np.array(labels)
    with np.errstate(over="ignore", invalid="ignore"):
        want_loss, want_grad = _full(z, y, **kwargs)
        _same_bits(crossent.softmax_cross_entropy(z, y, **kwargs), want_loss)
        _same_bits(crossent.softmax_cross_entropy_grad(z, y, **kwargs), want_grad)


@pytest.mark.parametrize(
    ("logits", "labels"),
    [([[0.0, NAN, 2.0], [1.0, 2.0, 3.0]], [0, 1]), ([[0.0, 1.0], [INF, 0.0]], [1, 0])],
)
def test_issue13_float64_small_suspect_rows_take_the_full_path(monkeypatch, logits, labels) -> None:
    """The hybrid screens the rows and hands a suspect call on: an error when
    validating, the full path's values (NaN) without."""
    z = np.array(logits, dtype=np.float64)
    y = np.array(labels)
    calls = record_calls(monkeypatch, _softmax_small, ("_label_loss64", "_label_gradient64"))
    with pytest.raises(InputError):
        crossent.softmax_cross_entropy(z, y)
    assert calls == ["_label_loss64"]
    with np.errstate(invalid="ignore", over="ignore"):
        want, want_grad = _full(z, y, validate=False, reduction="none")
        got = crossent.softmax_cross_entropy(z, y, validate=False, reduction="none")
        got_grad = crossent.softmax_cross_entropy_grad(z, y, validate=False, reduction="none")
    _same_bits(got, want)
    _same_bits(got_grad, want_grad)
    assert calls == ["_label_loss64", "_label_loss64", "_label_gradient64"]


def test_issue13_float64_small_label_logit_minus_inf_is_the_full_paths() -> None:
    """A label whose logit is -inf has loss +inf: handed on, the same values."""
    z = np.array([[-np.inf, 0.0, 1.0], [0.0, 1.0, 2.0]])
    y = np.array([0, 2])
    for options in ({}, {"reduction": "none"}, {"reduction": "sum", "z_loss": 0.1}):
        want_loss, want_grad = _full(z, y, **options)
        _same_bits(crossent.softmax_cross_entropy(z, y, **options), want_loss)
        _same_bits(crossent.softmax_cross_entropy_grad(z, y, **options), want_grad)


def test_issue13_float64_small_writes_nothing_into_out_when_handing_on() -> None:
    z = np.array([[0.0, 1.0, 2.0], [0.0, NAN, 1.0]])
    out = np.full_like(z, 7.0)
    with pytest.raises(InputError, match="NaN"):
        crossent.softmax_cross_entropy_grad(z, np.array([0, 1]), out=out)
    assert (out == 7.0).all()
    big = np.array([[0.0, 1e300, 1.0]])
    out = np.full_like(big, 7.0)
    with pytest.raises(RuntimeWarning):  # the full path's overflow (1/T), here an error
        crossent.softmax_cross_entropy_grad(
            big, np.array([0]), out=out, z_loss=1e5, temperature=1e-10
        )
    assert (out == 7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["logits", "labels", "out"])
def test_issue13_float64_small_byte_swapped_arrays_take_the_other_paths(dtype, which) -> None:
    """Arrays in the other byte order, which Numba does not take (a TypingError before,
    for float32 logits on main too), go to the generic path: its values, and its
    refusal of a byte-swapped ``out``."""
    logits, labels = _case((3, 10), seed=21)
    logits = logits.astype(dtype)
    out = None
    if which == "logits":
        logits = logits.astype(np.dtype(dtype).newbyteorder())
    elif which == "labels":
        labels = labels.astype(np.dtype(np.int64).newbyteorder())
    else:
        out = np.empty(logits.shape, dtype=np.dtype(dtype).newbyteorder())
    problem = prepare_softmax_labels(logits, labels, reduction="sum")
    assert problem.fast_logits is None or which == "out"
    if np.dtype(dtype) == np.float32 and which != "out":  # issue 13: a native copy's bits
        native = (a.astype(a.dtype.newbyteorder("=")) for a in (logits, labels))
        problem = prepare_softmax_labels(*native, reduction="sum")
    assert_identical(
        crossent.softmax_cross_entropy(logits, labels, reduction="sum"), problem.loss()
    )
    try:
        want = softmax_gradient(problem, out=out)
    except (InputError, TypeError) as error:
        with pytest.raises(type(error), match=re.escape(str(error))):
            crossent.softmax_cross_entropy_grad(logits, labels, reduction="sum", out=out)
        return
    got = crossent.softmax_cross_entropy_grad(logits, labels, reduction="sum", out=out)
    np.testing.assert_array_equal(got, want)


def test_issue13_float64_small_random_hard_rows_bit_for_bit() -> None:
    """Seeded random rows with the hard parts mixed in (huge spreads, exact and near
    ties, -inf logits, subnormal differences) under random options: the full path's
    values and errors, whichever path the call takes."""
    rng = np.random.default_rng(1313)
    for case in range(300):
        rows, classes = int(rng.integers(1, 40)), int(rng.integers(1, 140))
        logits = rng.standard_normal((rows, classes)) * 10.0 ** rng.uniform(-300, 300)
        kind = case % 4
        if kind == 1:  # ties and near-ties at the maximum
            logits[:, : classes // 2] = logits[:, :1] + rng.choice([0.0, 1e-300, 5e-324])
        elif kind == 2 and classes > 1:  # masked classes
            logits[rng.random((rows, classes)) < 0.3] = -np.inf
            logits[:, 0] = 0.0
        elif kind == 3:
            logits = rng.integers(-3, 3, (rows, classes)).astype(np.float64)
        labels = rng.integers(0, classes, rows)
        options: dict[str, Any] = {
            "reduction": str(rng.choice(["mean", "sum", "none", "parts"])),
            "temperature": float(rng.choice([1.0, 0.5, 2.5])),
            "z_loss": float(rng.choice([0.0, 1e-4, 0.5])),
            "base": [None, 2, 10.0][case % 3],
            "label_smoothing": float(rng.choice([0.0, 0.0, 0.1, 1.0])),
        }

        def full_loss(z: Any, y: Any, **kw: Any) -> Any:
            return prepare_softmax_labels(z, y, **kw).loss()

        def full_gradient(z: Any, y: Any, **kw: Any) -> Any:
            return softmax_gradient(prepare_softmax_labels(z, y, **kw))

        with np.errstate(under="ignore"):
            for function, full in (
                (crossent.softmax_cross_entropy, full_loss),
                (crossent.softmax_cross_entropy_grad, full_gradient),
            ):
                got = _outcome(function, logits, labels, **options)
                assert got == _outcome(full, logits, labels, **options), (case, options)
