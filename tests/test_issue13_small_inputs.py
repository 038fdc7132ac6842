"""Issue 13, "Small inputs": the NumPy shortcuts that cut per-call overhead change nothing.

Timing lives in ``benchmarks/bench_small_inputs.py``; these tests pin what the shortcuts
must keep: the same dtypes, tolerances and values as the generic Array-API path, and a
NumPy call of a measure that never enters array-api-compat's dispatch.
"""

from __future__ import annotations

from collections.abc import Callable

import array_api_compat
import numpy as np
import pytest

import crossent
from crossent import _checks, _xp
from crossent._xp import compat_numpy

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint64, np.bool_]


def _fast_and_generic(
    fn: Callable[[], object], monkeypatch: pytest.MonkeyPatch
) -> tuple[object, object]:
    """``fn()`` with the NumPy shortcuts, and with ``xp is compat_numpy`` made false so
    that the generic Array-API branches run on NumPy."""
    fast = fn()
    with monkeypatch.context() as patch:
        patch.setattr(_xp, "_compat_numpy", object())  # _xp's own checks
        patch.setattr(_xp, "compat_numpy", object())  # those of _checks
        generic = fn()
    return fast, generic


@pytest.mark.parametrize("first", DTYPES)
@pytest.mark.parametrize("second", [None, *DTYPES])
def test_issue13_small_inputs_compute_dtype_shortcut_matches_generic(
    first: type, second: type | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = (np.zeros(2, dtype=first),) + (() if second is None else (np.zeros(2, second),))
    names = ("a", "b")[: len(arrays)]
    for _ in range(2):  # the second call answers from the cache
        fast, generic = _fast_and_generic(
            lambda: _xp.compute_dtype(*arrays, xp=compat_numpy, names=names), monkeypatch
        )
        assert fast == generic
        assert np.dtype(fast) == np.dtype(generic)


@pytest.mark.parametrize("dtype", ["complex128", "U1", "datetime64[s]"])
def test_issue13_small_inputs_compute_dtype_shortcut_refuses_the_same(dtype: str) -> None:
    with pytest.raises(crossent.InputTypeError, match="`b` must be real numbers; got dtype"):
        _xp.compute_dtype(np.zeros(2), np.zeros(2, dtype=dtype), xp=compat_numpy, names=("a", "b"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [1, 10, 1000, 100_000])
def test_issue13_small_inputs_row_sum_tolerance_shortcut_matches_generic(
    dtype: type, classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, generic = _fast_and_generic(
        lambda: _checks.row_sum_tolerance(dtype, classes, xp=compat_numpy), monkeypatch
    )
    assert fast == generic


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(10,), (3, 10), (0, 4), (2, 3, 5)])
def test_issue13_small_inputs_reductions_match_the_namespace(dtype: type, shape: tuple) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    shifted = x - x.max(axis=-1, keepdims=True) if x.size else x
    total = _xp.reduce_sum(x, xp=compat_numpy, out_dtype=dtype)
    expected = np.sum(x, axis=-1, dtype=np.float64).astype(dtype)
    assert np.asarray(total).dtype == expected.dtype
    np.testing.assert_array_equal(total, expected)
    if x.size:
        ell = _xp.log_sum_exp_shifted(shifted, xp=compat_numpy)
        at_max = shifted == 0
        rest = np.sum(np.where(at_max, 0, np.exp(shifted)), axis=-1, keepdims=True)
        ties = np.sum(at_max.astype(dtype), axis=-1, keepdims=True)
        assert ell.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(ell, np.log1p(rest + (ties - 1)))


def test_issue13_small_inputs_numpy_measures_skip_array_api_compat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A NumPy call of a measure, validation included, needs none of array-api-compat's
    dispatch (namespace inference, device, size): that dispatch cost most of the 39 us."""
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(10), size=2)
    z = rng.standard_normal(10)
    expected = {
        "entropy": crossent.entropy(p),
        "cross_entropy": crossent.cross_entropy(p, q),
        "logits": crossent.cross_entropy(p, z, q_form="logits"),
        "kl": crossent.kl_divergence(p, q),
        "js": crossent.js_divergence(p, q),
        "perplexity": crossent.perplexity(p),
    }

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("array-api-compat dispatch on the NumPy path")

    for name in ("array_namespace", "device", "size", "is_array_api_obj"):
        monkeypatch.setattr(array_api_compat, name, refuse)
    got = {
        "entropy": crossent.entropy(p),
        "cross_entropy": crossent.cross_entropy(p, q),
        "logits": crossent.cross_entropy(p, z, q_form="logits"),
        "kl": crossent.kl_divergence(p, q),
        "js": crossent.js_divergence(p, q),
        "perplexity": crossent.perplexity(p),
    }
    for key, value in got.items():
        assert type(value) is type(expected[key]) is np.float64
        assert value == expected[key], key


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 10]), r"in \[0, 10\); got values in \[0, 10\] \(row 1 has 10\)"),
        (np.array([-1, 3]), r"in \[0, 10\); got values in \[-1, 3\] \(row 0 has -1\)"),
    ],
)
def test_issue13_small_inputs_label_shortcut_still_names_the_bad_label(
    labels: np.ndarray, message: str
) -> None:
    logits = np.zeros((2, 10))
    with pytest.raises(crossent.InputError, match=message):
        crossent.softmax_cross_entropy(logits, labels)
    assert crossent.softmax_cross_entropy(logits, np.array([0, 9])) == pytest.approx(np.log(10))
