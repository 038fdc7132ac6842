"""Issue 13, "Small inputs": the NumPy shortcuts of the measures change no value and no message.

The shortcuts (``_sides._ready``, ``_checks._numpy_distribution_passes``, the NumPy
branches of the kernels in ``_numerics`` and of the log-softmax in ``_xp``) only take
fewer ufunc calls. Each is pinned here against the way it short-cuts: the generic
Array-API branch (array-api-strict, or a NumPy subclass, which no ``type(x) is
np.ndarray`` test lets through) or the long way with the shortcut switched off.
Timing lives in ``benchmarks/bench_small_inputs.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _checks, _numerics, _sides, _xp
from crossent._xp import compat_numpy
from crossent.info import _docs

from tolerances import ROUNDING, assert_close

strict = pytest.importorskip("array_api_strict")

DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(13)


class _Plain(np.ndarray):
    """A NumPy array that no ``type(x) is np.ndarray`` shortcut recognises."""


def _hard_probs(dtype: type, size: int = 400) -> np.ndarray:
    """Probabilities at the limits: zeros, ones, subnormals, values near each other."""
    tiny = float(np.finfo(dtype).smallest_subnormal)
    values = np.array([0.0, 1.0, 0.5, 0.3, 0.7, 1e-10, 2.0**-30, 1 - 2.0**-20, tiny, 1e-30])
    return RNG.choice(values, size=size).astype(dtype)


def _hard_log_probs(dtype: type, size: int = 400) -> np.ndarray:
    values = np.array([-np.inf, 0.0, -1.0, -80.0, -1e-7, -30.0, -(2.0**-20), -0.6931])
    return RNG.choice(values, size=size).astype(dtype)


KERNELS: dict[str, Callable[[type], tuple[np.ndarray, ...]]] = {
    "entropy_terms_from_log": lambda dt: (_hard_log_probs(dt),),
    "cross_terms": lambda dt: (_hard_probs(dt), _hard_log_probs(dt)),
    "kl_terms_from_log": lambda dt: (_hard_log_probs(dt), _hard_log_probs(dt)),
    "js_terms": lambda dt: (_hard_probs(dt), _hard_probs(dt)),
    "binary_cross_grad_terms": lambda dt: (_hard_probs(dt), _hard_probs(dt)),
    "binary_cross_grad_terms_broadcast": lambda dt: (
        _hard_probs(dt, 20).reshape(20, 1),
        _hard_probs(dt, 30),
    ),
    "binary_cross_grad_terms_0d": lambda dt: (np.asarray(dt(0.0)), np.asarray(dt(0.0))),
    "kl_terms_from_log_0d": lambda dt: (np.asarray(dt(-0.5)), np.asarray(dt(-np.inf))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_issue13_info_kernel_numpy_branch_equals_generic_branch(name: str, dtype: type) -> None:
    kernel = getattr(_numerics, name.removesuffix("_broadcast").removesuffix("_0d"))
    arrays = KERNELS[name](dtype)
    with np.errstate(over="ignore"):  # p / q for subnormal q: -inf on both branches
        fast = kernel(*arrays, xp=compat_numpy)
        generic = np.asarray(kernel(*(strict.asarray(a) for a in arrays), xp=strict))
    assert isinstance(fast, np.ndarray | np.generic)  # a NumPy scalar for 0-d inputs
    assert fast.dtype == generic.dtype == dtype
    np.testing.assert_array_equal(np.isposinf(fast), np.isposinf(generic))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(generic))
    finite = np.isfinite(generic)
    # js on float32: SciPy's entr rounds differently from -(a * log a), by an ulp or two
    assert_close(fast[finite], generic[finite], ROUNDING, dtype=dtype)


def test_issue13_info_kernels_warn_about_nothing_on_valid_input() -> None:
    p = RNG.dirichlet(np.ones(6), size=5)
    p[0, :3] = 0.0
    p[0] /= p[0].sum()
    q = p[::-1].copy()
    log_p, log_q = np.log(np.where(p > 0, p, 1.0)), np.log(np.where(q > 0, q, 1.0))
    log_p[p == 0] = log_q[q == 0] = -np.inf
    both_zero = np.zeros(6)
    both_zero[0] = 1.0
    # filterwarnings = error: a warning fails the test
    _numerics.js_terms(p, q, xp=compat_numpy)
    _numerics.js_terms(both_zero, both_zero[::-1].copy(), xp=compat_numpy)
    _numerics.entropy_terms_from_log(log_p, xp=compat_numpy)
    _numerics.cross_terms(p, log_q, xp=compat_numpy)
    _numerics.kl_terms_from_log(log_p, log_q, xp=compat_numpy)


ROWS = [
    [1.0, 2.0, 3.0],
    [0.0, 0.0, -np.inf],  # a tie at the maximum
    [5.0, 5.0, 5.0, 5.0],  # all tied
    [0.0, -40.0, -800.0],  # near-deterministic: log-partition below eps
    [-np.inf, -np.inf, 3.0],
    [1e30, -1e30, 0.0],
    [7.0],
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", ROWS)
def test_issue13_log_softmax_of_one_row_equals_the_batched_rows(row: list, dtype: type) -> None:
    # One row counts its ties with count_nonzero, a batch with a reduction; the generic
    # branch with ``where``: the same numbers.
    x = np.array(row, dtype=dtype)
    one = _xp.log_softmax(x, xp=compat_numpy)
    batched = _xp.log_softmax(np.stack([x, x[::-1]]), xp=compat_numpy)
    generic = np.asarray(_xp.log_softmax(strict.asarray(x), xp=strict))
    np.testing.assert_array_equal(one, batched[0])
    np.testing.assert_array_equal(one[::-1], batched[1])
    np.testing.assert_array_equal(one, generic)
    lse = _xp.logsumexp(x, xp=compat_numpy)
    assert lse.shape == (1,)
    np.testing.assert_array_equal(lse, np.asarray(_xp.logsumexp(strict.asarray(x), xp=strict)))


def _outcome(call: Callable[[], Any]) -> Any:
    """The value of ``call()``, or the type and message of what it raised."""
    try:
        return call()
    except crossent.CrossentError as exc:
        return type(exc), str(exc)


EPS64 = float(np.finfo(np.float64).eps)
DISTRIBUTIONS = [
    np.array([0.25, 0.75]),
    np.array([1.0, 0.0, 0.0]),
    np.array([1.0 + EPS64, 0.0]),  # row sum within tolerance, one entry above 1
    np.array([1.0 + 4 * EPS64, -4 * EPS64]),
    np.array([0.5, 0.5 + 1e-6]),
    np.array([0.5, np.nan]),
    np.array([np.inf, 0.0]),
    np.array([-np.inf, 1.0]),
    np.array([[0.5, 0.5], [0.2, 0.7]]),
    np.array([[0.5, 0.5], [0.2, 0.8]]),
    np.array([[0.5, 0.5], [1.5, -0.5]]),
    np.zeros((0, 3)),
    np.array([0.25, 0.75], dtype=np.float32),
    np.array([0.1, 0.2, 0.7001], dtype=np.float32),
    np.array([0.5, 0.5], dtype=np.float16).astype(np.float32),
]


@pytest.mark.parametrize("x", DISTRIBUTIONS, ids=range(len(DISTRIBUTIONS)))
def test_issue13_quick_distribution_check_passes_only_what_the_full_check_passes(
    x: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def check(values: np.ndarray) -> Any:
        return _outcome(
            lambda: _checks.check_distribution(
                values, name="p", xp=compat_numpy, axis=values.ndim - 1, storage_dtype=x.dtype
            )
        )

    quick = check(x)
    assert quick == check(x.view(_Plain))  # no shortcut for a subclass
    with monkeypatch.context() as patch:
        patch.setattr(_checks, "_numpy_distribution_passes", lambda *args: False)
        assert quick == check(x)


LOGITS = [
    np.array([1.0, 2.0]),
    np.array([-np.inf, 0.0]),
    np.array([-np.inf, -np.inf]),
    np.array([np.nan, 0.0]),
    np.array([np.inf, 0.0]),
    np.array([[1.0, 2.0], [-np.inf, -np.inf]]),
    np.array([[1.0, 2.0], [0.0, np.inf]]),
    np.array([[1.0, np.nan], [0.0, 1.0]]),
    np.zeros((0, 2)),
]


@pytest.mark.parametrize("x", LOGITS, ids=range(len(LOGITS)))
def test_issue13_quick_logits_check_passes_only_what_the_full_check_passes(x: np.ndarray) -> None:
    def check(values: np.ndarray) -> Any:
        return _outcome(
            lambda: _checks.check_logits(values, name="z", xp=compat_numpy, axis=values.ndim - 1)
        )

    assert check(x) == check(x.view(_Plain))


def _measure_calls() -> list[Callable[[], Any]]:
    calls: list[Callable[[], Any]] = []
    for dtype in DTYPES:
        p = RNG.dirichlet(np.ones(7), size=3).astype(dtype)
        q = RNG.dirichlet(np.ones(7), size=3).astype(dtype)
        z = (RNG.standard_normal((3, 7)) * 5).astype(dtype)
        log_q = np.log(q)
        bad = p.copy()
        bad[1, 2] = -0.25
        for a, b in [(p[0], q[0]), (p, q), (p.T.copy(), q.T.copy())]:
            axis = 0 if a is not p[0] and a.shape[0] == 7 else -1
            calls += [
                lambda a=a, axis=axis: crossent.entropy(a, axis=axis),
                lambda a=a, b=b, axis=axis: crossent.cross_entropy(a, b, axis=axis, base=2),
                lambda a=a, b=b, axis=axis: crossent.kl_divergence(a, b, axis=axis),
                lambda a=a, b=b, axis=axis: crossent.js_divergence(a, b, axis=axis),
                lambda a=a, b=b, axis=axis: crossent.perplexity(a, b, axis=axis),
                lambda a=a, b=b, axis=axis: tuple(
                    crossent.cross_entropy_decomposition(a, b, axis=axis)
                ),
            ]
        calls += [
            lambda z=z: crossent.entropy(z, p_form="logits"),
            lambda z=z: crossent.entropy(z[0], p_form="logits", validate=False),
            lambda p=p, z=z: crossent.cross_entropy(p, z, q_form="logits"),
            lambda z=z, log_q=log_q: crossent.kl_divergence(
                z, log_q, p_form="logits", q_form="log_probs"
            ),
            lambda p=p, q=q: crossent.kl_divergence(p, q[0]),  # batch shapes differ
            lambda p=p: crossent.entropy(p, axis=1),  # axis given as the last, not -1
            lambda bad=bad, q=q: crossent.kl_divergence(bad, q),  # an error names row (1, 2)
            lambda bad=bad: crossent.entropy(bad.T, axis=0),
            lambda z=z: crossent.entropy(np.where(z > 0, np.nan, z), p_form="logits"),
        ]
    calls += [
        lambda: crossent.kl_divergence(np.array([0.5, 0.5]), np.array([0.5, 0.5], np.float32)),
        lambda: crossent.entropy(np.array([1, 0])),  # integers: computed in float64
        lambda: crossent.entropy(np.array([2, 1, 0]), p_form="logits"),
        lambda: crossent.entropy(np.array([0.25, 0.75], np.float16)),  # float16: in float32
        lambda: crossent.js_divergence(np.array([0.5, 0.5], np.float16), np.array([0.0, 1.0])),
        lambda: crossent.entropy(np.zeros((2, 0))),  # no classes
        lambda: crossent.entropy(np.array([0.5, 0.5]), axis=1),
        lambda: crossent.entropy(np.array([0.5, 0.5]), axis=-1.0),  # not an integer
        lambda: crossent.kl_divergence(np.array([0.5, 0.5]), np.array([0.5, 0.5]), axis=True),
        lambda: crossent.entropy(np.array([0.5, 0.5]), axis=np.int64(-1)),
        lambda: crossent.kl_divergence(np.array([0.5, 0.5]), np.array([1.0, 0.0, 0.0])),
    ]
    return calls


@pytest.mark.parametrize("k", range(len(_measure_calls())))
def test_issue13_fast_preparation_gives_the_same_values_and_errors(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _measure_calls()[k]
    fast = _outcome(call)
    with monkeypatch.context() as patch:
        patch.setattr(_sides, "_ready", lambda x, *, axis: False)
        slow = _outcome(call)
    if isinstance(fast, tuple) and isinstance(fast[0], type):
        assert fast == slow  # the same error and message
        return
    for got, expected in zip(
        np.broadcast_arrays(*np.atleast_1d(fast)),
        np.broadcast_arrays(*np.atleast_1d(slow)),
        strict=True,
    ):
        assert type(got) is type(expected)
        np.testing.assert_array_equal(got, expected)
    assert np.asarray(fast).dtype == np.asarray(slow).dtype


def test_issue13_shared_docstring_sections_are_filled_in() -> None:
    for measure in (
        crossent.kl_divergence,
        crossent.js_divergence,
        crossent.perplexity,
        crossent.cross_entropy_decomposition,
    ):
        doc = measure.__doc__ or ""
        assert "%(" not in doc
        assert "InputError, InputTypeError\n        As in :func:`cross_entropy`." in doc
    for measure in (crossent.kl_divergence, crossent.js_divergence):
        assert "    axis, base, p_form, q_form, validate\n        As in :func:`cross_entropy`." in (
            measure.__doc__ or ""
        )

    def documented() -> None:
        """Summary.

        %(no_such_section)s
        """

    with pytest.raises(ValueError, match="unknown shared section"):
        _docs.fill_shared_sections(documented)
