"""Issue 13, "Small inputs": a lean path from the public softmax cross-entropy to the
row statistics, and the fused kernels' serial twins.

``softmax_cross_entropy`` and its gradient take a lean path for NumPy float64 logits
(the generic path's statistics) and float32 logits with Numba (the fused kernels'),
for every option but class weights, ``ignore_index`` and label smoothing; the fused
kernels run serially on small inputs and check the labels' range themselves. These
tests pin that the lean path gives the full path's values bit for bit and its errors,
that the fused path gives the generic path's values for every option and edge case,
and that each path is really taken.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pytest

import crossent
from crossent._read_only import read_only
from crossent.errors import InputError
from crossent.losses import _cpu_kernels, _softmax
from crossent.losses._kernel_inputs import StatisticsOptions
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient

from tolerances import assert_identical

needs_numba = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

OPTIONS: list[dict[str, Any]] = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "parts"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 1.0},
    {"temperature": 0.5},
    {"temperature": 3.0, "label_smoothing": 0.2},
    {"z_loss": 1e-2},
    {"base": 2},
    {"weight": "w"},
    {"weight": "w", "label_smoothing": 0.3, "z_loss": 0.1},
    {"ignore_index": -100},
    {"ignore_index": -100, "weight": "w", "reduction": "sum"},
    {"ignore_index": -100, "label_smoothing": 0.1, "temperature": 2.0, "reduction": "none"},
]

SHAPES = [(1, 10), (8, 10), (10,), (2, 3, 10)]


def _tolerance(dtype: Any) -> dict[str, float]:
    return {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 2e-6, "atol": 1e-7}


def _case(shape: tuple[int, ...], dtype: Any, options: dict[str, Any], seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    if "ignore_index" in options and labels.size > 1:
        labels.flat[1] = options["ignore_index"]
    kwargs = dict(options)
    if kwargs.get("weight") == "w":
        weight = rng.uniform(0.5, 2.0, shape[-1])
        weight[2] = 0.0
        kwargs["weight"] = weight
    return logits, np.asarray(labels), kwargs


def _both(logits, labels, **kwargs):
    """(fused, generic) problems of one call."""
    return (
        prepare_softmax_labels(logits, labels, **kwargs),
        prepare_softmax_labels(logits, labels, fused=False, **kwargs),
    )


def _assert_same(got: Any, want: Any, dtype: Any) -> None:
    if isinstance(want, tuple):
        for g, w in zip(got, want, strict=True):
            _assert_same(g, w, dtype)
        return
    assert np.asarray(got).dtype == np.asarray(want).dtype
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, **_tolerance(dtype))


@needs_numba
@pytest.mark.parametrize(("shape", "options"), list(itertools.product(SHAPES, OPTIONS)))
def test_issue13_small_dispatch_fused_equals_generic(shape, options) -> None:
    """Float32: the fused kernels (serial here) against the generic path, every option."""
    dtype = np.float32
    logits, labels, kwargs = _case(shape, dtype, options)
    fused, generic = _both(logits, labels, **kwargs)
    assert fused.fast_logits is not None  # the fused path was taken
    assert generic.fast_logits is None
    _assert_same(fused.loss(), generic.loss(), dtype)
    _assert_same(softmax_gradient(fused), softmax_gradient(generic), dtype)
    # and through the public functions, which take the fused path
    _assert_same(crossent.softmax_cross_entropy(logits, labels, **kwargs), generic.loss(), dtype)
    _assert_same(
        crossent.softmax_cross_entropy_grad(logits, labels, **kwargs),
        softmax_gradient(generic),
        dtype,
    )
    _assert_same(
        crossent.softmax_cross_entropy(logits, labels, validate=False, **kwargs),
        generic.loss(),
        dtype,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_issue13_small_dispatch_result_dtypes(dtype) -> None:
    logits = np.linspace(-2, 2, 10).astype(dtype)[None, :]
    want = np.float64 if dtype == np.float64 else np.float32
    assert crossent.softmax_cross_entropy(logits, np.array([3])).dtype == want
    assert crossent.softmax_cross_entropy_grad(logits, np.array([3])).dtype == want
    loss = crossent.softmax_cross_entropy(logits, np.array([3]), reduction="none")
    assert loss.dtype == want
    assert loss.shape == (1,)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_issue13_small_dispatch_edge_cases(dtype) -> None:
    inf = np.inf
    logits = np.array(
        [
            [0.0, -inf, 1.0, 2.0],  # -inf on a class that is not the label
            [5.0, 5.0, 5.0, 5.0],  # ties
            [1e4, -1e4, 0.0, 3.0],  # a huge spread
            [0.0, 1.0, -inf, 2.0],  # -inf on a class of weight 0
            [2.0, 1.0, 0.0, -1.0],  # ignored
        ],
        dtype=dtype,
    )
    labels = np.array([0, 1, 1, 2, -1])
    weight = np.array([1.0, 2.0, 0.0, 0.5])
    for kwargs in (
        {"ignore_index": -1},
        {"ignore_index": -1, "weight": weight},
        {"ignore_index": -1, "weight": weight, "label_smoothing": 0.2},
        {"ignore_index": -1, "reduction": "none", "temperature": 4.0},
    ):
        fused, generic = _both(logits, labels, **kwargs)
        assert fused.fast_logits is not None
        _assert_same(fused.loss(), generic.loss(), dtype)
        with np.errstate(invalid="ignore"):
            _assert_same(softmax_gradient(fused), softmax_gradient(generic), dtype)
    # the label's own logit -inf: the loss is +inf on both paths, and on the lean one
    dead = np.array([[-inf, 0.0, 1.0]], dtype=dtype)
    fused, generic = _both(dead, np.array([0]), reduction="none")
    assert fused.loss()[0] == generic.loss()[0] == inf
    assert crossent.softmax_cross_entropy(dead, np.array([0]))[()] == inf


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "parts", "none"])
def test_issue13_small_dispatch_every_row_ignored(dtype, reduction) -> None:
    logits = np.ones((3, 10), dtype=dtype)
    labels = np.full(3, -100)
    fused, generic = _both(logits, labels, ignore_index=-100, reduction=reduction)
    assert fused.fast_logits is not None
    _assert_same(fused.loss(), generic.loss(), dtype)
    _assert_same(softmax_gradient(fused), softmax_gradient(generic), dtype)
    assert not np.any(softmax_gradient(fused))


def _message(function: Any, *args: Any, **kwargs: Any) -> tuple[type, str]:
    with pytest.raises((InputError, TypeError, IndexError)) as info:
        function(*args, **kwargs)
    return info.type, str(info.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("logits", "labels", "kwargs"),
    [
        ([[0.0, 1.0, 2.0]], [3], {}),
        ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [0, -1], {}),
        ([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], [-100, 7], {"ignore_index": -100}),
        ([[0.0, np.nan, 2.0]], [0], {}),
        ([[0.0, np.inf, 2.0]], [0], {}),
        ([[0.0, 1.0], [-np.inf, -np.inf]], [0, 1], {}),
        ([[0.0, np.nan, 2.0]], [5], {}),  # both bad: the logits are named first
        ([[0.0, 1.0, 2.0]], [0], {"weight": np.array([1.0, -1.0, 1.0])}),
        ([[0.0, 1.0, 2.0]], [0], {"weight": np.array([1.0, 1.0])}),
        ([[0.0, 1.0, 2.0]], [[0]], {}),
        ([[0.0, 1.0, 2.0]], [0.0], {}),
        ([[0.0, 1.0, 2.0]], [0], {"ignore_index": 1.5}),
        ([[0.0, 1.0, 2.0]], [0], {"axis": 2}),
        ([[0.0, 1.0, 2.0]], [0], {"axis": True}),
        ([[[0.0, 1.0], [1.0, 1.0]], [[2.0, 1.0], [np.inf, 1.0]]], [[0, 1], [1, 0]], {}),
    ],
)
def test_issue13_small_dispatch_errors_are_the_generic_ones(dtype, logits, labels, kwargs) -> None:
    z = np.array(logits, dtype=dtype)
    y = np.array(labels)
    if dtype == np.float32 and not _cpu_kernels.available() and y.max() > 3 and np.isnan(z).any():
        # Without Numba the fused path checks the labels before its NumPy twin reads
        # them, so a call with both wrong names its labels first (as before issue 13).
        pytest.skip("both wrong: the NumPy twins name the labels first")
    generic = _message(prepare_softmax_labels, z, y, fused=False, **kwargs)
    assert _message(prepare_softmax_labels, z, y, **kwargs) == generic  # fused for float32
    assert _message(crossent.softmax_cross_entropy, z, y, **kwargs) == generic  # lean first
    assert _message(crossent.softmax_cross_entropy_grad, z, y, **kwargs) == generic


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("labels", [[0, -1], [0, 3], [-100, 7]])
def test_issue13_small_dispatch_unvalidated_bad_labels_do_what_the_generic_path_does(
    dtype, labels
) -> None:
    """validate=False with a label outside [0, C): the kernel never reads outside the
    row, and the call is the generic path's: the labels' InputError (labelsafe: it was
    NumPy's index wrap-around or IndexError), or the loss with the -100 row ignored."""
    z = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5]], dtype=dtype)
    y = np.array(labels)
    kwargs = {"ignore_index": -100, "validate": False}
    try:
        want = prepare_softmax_labels(z, y, fused=False, **kwargs).loss()
    except InputError as error:
        with pytest.raises(InputError, match=re.escape(str(error))):
            crossent.softmax_cross_entropy(z, y, **kwargs)
        return
    assert labels[0] == -100  # the only one of the three that is no error
    _assert_same(crossent.softmax_cross_entropy(z, y, **kwargs), want, dtype)


@needs_numba
def test_issue13_small_dispatch_kernel_flags_a_label_outside_the_row() -> None:
    z = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5], [1.0, 1.0, 1.0]], dtype=np.float32)
    *_, suspect = _cpu_kernels.row_statistics(z, np.array([0, 3, -1]), StatisticsOptions())
    assert suspect.tolist() == [False, True, True]


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_issue13_small_dispatch_serial_and_parallel_kernels_agree(dtype) -> None:
    rng = np.random.default_rng(3)
    z = (5 * rng.standard_normal((300, 70))).astype(dtype)
    labels = rng.integers(0, 70, 300)
    options = StatisticsOptions(inv_temperature=0.7, need_sum=True, weight=rng.uniform(size=70))
    kernels = _cpu_kernels._kernels()
    # read-only inputs, as ``_cpu_kernels.row_statistics`` hands them: the kernels' own
    # specialisations (writable ones are others, compiled for this test alone)
    stored = read_only(z if dtype == np.float32 else z.view(np.int16))
    results = []
    for name in ("row_statistics", "row_statistics_serial"):
        outs = [np.empty(300) for _ in range(4)] + [np.empty(300, dtype=np.bool_)]
        kernels[name](
            stored,
            stored.view(np.int32) if dtype == np.float32 else stored,
            read_only(labels),
            read_only(options.weight),
            options.inv_temperature,
            options.need_sum,
            32,
            *outs,
        )
        results.append(outs)
    for parallel, serial in zip(*results, strict=True):
        np.testing.assert_array_equal(parallel, serial)


LEAN_OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "parts"},
    {"temperature": 2.0},
    {"z_loss": 1e-2, "reduction": "none"},
    {"base": 2, "reduction": "sum"},
    {"axis": -1, "temperature": 1.5, "z_loss": 0.1, "base": 10.0},
]


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the lean path was not taken")


FLOATS = [np.float64, np.float32]


def _lean_dtype(dtype: Any) -> None:
    """Float32 takes the lean path through the Numba kernels only."""
    if dtype == np.float32 and not _cpu_kernels.available():
        pytest.skip("needs Numba")


def _no_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the full path (the fused problem, or the generic labels and batch) fail."""
    monkeypatch.setattr(_softmax, "_fused_label_problem", _fail)
    monkeypatch.setattr(_softmax, "label_batch", _fail)


@pytest.mark.parametrize(
    ("shape", "dtype", "options"), list(itertools.product(SHAPES, FLOATS, LEAN_OPTIONS))
)
def test_issue13_small_dispatch_lean_path_is_the_problem_bit_for_bit(
    monkeypatch, shape, dtype, options
) -> None:
    """The public functions skip the problem (the spies fail if it is built) and give
    exactly what it gives: the fused problem's for float32, the generic one's for
    float64."""
    _lean_dtype(dtype)
    logits, labels, kwargs = _case(shape, dtype, options, seed=5)
    problem = prepare_softmax_labels(logits, labels, **kwargs)
    assert (problem.fast_logits is not None) == (dtype == np.float32)
    want_loss, want_grad = problem.loss(), softmax_gradient(problem)
    _no_full_path(monkeypatch)
    assert_identical(crossent.softmax_cross_entropy(logits, labels, **kwargs), want_loss)
    assert_identical(crossent.softmax_cross_entropy_grad(logits, labels, **kwargs), want_grad)
    out = np.full_like(logits, np.nan)
    assert crossent.softmax_cross_entropy_grad(logits, labels, out=out, **kwargs) is out
    assert_identical(out, want_grad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight": np.ones(10)},
        {"ignore_index": -100},
        # (label smoothing: the compiled small calls take it, the others leave it to the
        # full path: tests/losses/test_issue13_compiled_small_smoothing.py)
        {"soft_cap": 5.0},
        {"axis": 0},
    ],
)
def test_issue13_small_dispatch_lean_path_leaves_other_options_to_the_problem(
    monkeypatch, kwargs
) -> None:
    """Class weights, ignore_index, smoothing, soft-capping, another class axis: the full
    path, once (the lean path looks at the arguments only)."""
    logits, labels, _ = _case((4, 10), np.float64, {})
    if kwargs.get("axis") == 0:
        logits = np.ascontiguousarray(logits.T)
    full: list[int] = []
    real = _softmax.label_batch

    def spy(*args: Any, **kw: Any) -> Any:
        full.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(_softmax, "label_batch", spy)
    crossent.softmax_cross_entropy(logits, labels, **kwargs)
    crossent.softmax_cross_entropy_grad(logits, labels, **kwargs)
    assert full == [1, 1]


@pytest.mark.parametrize("dtype", FLOATS)
def test_issue13_small_dispatch_lean_path_edge_cases_bit_for_bit(monkeypatch, dtype) -> None:
    _lean_dtype(dtype)
    inf = np.inf
    logits = np.array(
        [[0.0, -inf, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0], [1e4, -1e4, 0.0, 3.0], [3.0, 2.0, 1.0, 0.0]],
        dtype=dtype,
    )
    labels = np.array([0, 1, 1, 3])
    for kwargs in ({}, {"reduction": "none", "temperature": 0.25, "z_loss": 0.5}):
        problem = prepare_softmax_labels(logits, labels, **kwargs)
        want_loss, want_grad = problem.loss(), softmax_gradient(problem)
        with monkeypatch.context() as patch:
            _no_full_path(patch)
            assert_identical(crossent.softmax_cross_entropy(logits, labels, **kwargs), want_loss)
            assert_identical(
                crossent.softmax_cross_entropy_grad(logits, labels, **kwargs), want_grad
            )


def test_issue13_small_dispatch_lean_path_falls_back_on_bad_input() -> None:
    z = np.array([[0.0, np.nan, 1.0]])
    # validate=False: a NaN row is computed (NaN) by the full path, as before
    assert np.isnan(crossent.softmax_cross_entropy(z, np.array([0]), validate=False))
    with pytest.raises(InputError, match="NaN"):
        crossent.softmax_cross_entropy_grad(z, np.array([0]))
    with pytest.raises(TypeError, match="'fused'"):
        crossent.softmax_cross_entropy(z, np.array([0]), fused=True)
    with pytest.raises(InputError, match=r"integers in \[0, 3\)"):
        crossent.softmax_cross_entropy(np.zeros((1, 3)), np.array([3]))


@needs_numba
def test_issue13_small_dispatch_gradient_kernel_skips_a_label_outside_the_row() -> None:
    """An unchecked label that is not a class: no target term, nothing written outside."""
    from crossent.losses._kernel_inputs import GradientTerms

    z = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5]], dtype=np.float32)
    lse = np.log(np.exp(z.astype(np.float64)).sum(axis=1))
    terms = GradientTerms(shift=lse, inv_temperature=1.0, p_coef=np.ones(2), target_coef=np.ones(2))
    buffer = np.zeros((3, 3), dtype=np.float32)  # a row beyond the output, to catch writes
    got = _cpu_kernels.write_gradient(z, np.array([0, 3]), terms, out=buffer[:2])
    p = np.exp(z - lse[:, None])
    np.testing.assert_allclose(got[1], p[1], rtol=1e-6)  # no target term on row 1
    np.testing.assert_allclose(got[0], p[0] - [1, 0, 0], rtol=1e-6, atol=1e-7)
    assert not buffer[2].any()
