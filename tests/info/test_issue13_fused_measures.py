"""Issue 13, "Small inputs": the fused Numba kernels of the measures (``info/_fused.py``).

Every NumPy float32/float64 input of the measures (the elementwise ones included) now
takes one compiled call per array, validation screened in the same pass. Pinned
here: the kernels are taken (a spy, so these tests fail if the dispatch is removed);
they agree with the generic path (Numba switched off) and with mpmath on hard rows
(huge spreads, ``-inf`` logits, ties, near-deterministic rows, zeros, subnormals,
nearly equal distributions); dtypes; and bad input raises the generic path's message.
Skipped without Numba (the optional ``fast`` extra), where the generic path runs and
the rest of the suite tests it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.info import _fused

import oracles
from tolerances import CLOSED_FORM, FLOAT32_KERNEL, ROUNDING, assert_close, ulps

pytest.importorskip("numba")

INF = np.inf
RNG = np.random.default_rng(1313)

LOGIT_ROWS = {
    "huge_spread": [1000.0, -1000.0, 0.0, 3.0],
    "minus_inf": [-INF, 0.0, 1.0, -INF],
    "ties": [5.0, 5.0, 5.0, 5.0],
    "near_deterministic": [0.0, -40.0, -40.0, -45.0],
    "underflowing_rest": [0.0, -800.0, -760.0],
    "extreme_finite": [1.0, -1.0, 0.0, 0.0],  # times a quarter of the largest finite number
    "one_class": [3.0],
    "random": list(RNG.normal(size=10) * 7),
}

PROB_ROWS = {
    "zeros": ([0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.0, 0.5]),
    "one_hot": ([0.0, 0.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4]),
    "nearly_equal": ([0.5, 0.5 - 2.0**-40, 2.0**-40], [0.5 - 2.0**-40, 0.5, 2.0**-40]),
    "subnormal_q": ([0.5, 0.5, 0.0], [1.0 - 1e-310, 1e-310, 0.0]),
    "random": tuple(RNG.dirichlet(np.full(12, 0.3), size=2)),
}


class _Spy:
    """Counts the calls of the fused kernels' entry points."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("measure_rows", "perplexity_rows", "pointwise"):
            original = getattr(_fused, name)
            monkeypatch.setattr(_fused, name, self._counting(original))

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        return wrapper


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    return _Spy(monkeypatch)


@pytest.fixture
def generic() -> Callable[[Callable[[], Any]], Any]:
    """``generic(call)``: ``call()`` with Numba reported missing (the generic path)."""

    def run(call: Callable[[], Any]) -> Any:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_fused, "available", lambda: False)
            return call()

    return run


def _logits(row: str, dtype: type) -> np.ndarray:
    scale = float(np.finfo(dtype).max) / 4 if row == "extreme_finite" else 1.0
    return (np.array(LOGIT_ROWS[row]) * scale).astype(dtype)


def _finite_logits(row: list[float]) -> list[float]:
    return [v for v in row if v > -INF]  # -inf classes have probability 0


# ----------------------------------------------------------------------- the dispatch


P10 = RNG.dirichlet(np.ones(10))
Q10 = RNG.dirichlet(np.ones(10))
Z10 = RNG.normal(size=10)
B10 = RNG.uniform(0.05, 0.95, size=10)
CALLS = {
    "entropy": lambda v: crossent.entropy(P10, validate=v),
    "entropy_logits": lambda v: crossent.entropy(Z10, p_form="logits", validate=v),
    "cross_entropy": lambda v: crossent.cross_entropy(P10, Q10, validate=v),
    "cross_entropy_q_logits": lambda v: crossent.cross_entropy(
        P10, Z10, q_form="logits", validate=v
    ),
    "kl_divergence": lambda v: crossent.kl_divergence(P10, Q10, validate=v),
    "kl_log_probs": lambda v: crossent.kl_divergence(
        np.log(P10), Z10, p_form="log_probs", q_form="logits", validate=v
    ),
    "js_divergence": lambda v: crossent.js_divergence(P10, Q10, validate=v),
    "perplexity": lambda v: crossent.perplexity(P10, validate=v),
    "perplexity_q": lambda v: crossent.perplexity(P10, Q10, validate=v),
    "decomposition": lambda v: tuple(crossent.cross_entropy_decomposition(P10, Q10, validate=v)),
    "binary_cross_entropy_grad": lambda v: crossent.binary_cross_entropy_grad(P10, B10, validate=v),
    "surprisal": lambda v: crossent.surprisal(B10, base=2, validate=v),
    "binary_entropy": lambda v: crossent.binary_entropy(B10, validate=v),
    "binary_cross_entropy": lambda v: crossent.binary_cross_entropy(P10, B10, validate=v),
}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("name", list(CALLS))
def test_issue13_fused_path_taken_and_equal_to_generic(
    name: str, validate: bool, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    fused = CALLS[name](validate)
    assert spy.calls == 1
    expected = generic(lambda: CALLS[name](validate))
    assert spy.calls == 1  # the generic path does not call the kernel
    assert type(fused) is type(expected)
    assert_close(fused, expected, ROUNDING)


def test_issue13_not_fused_for_other_arrays_or_eps(spy: _Spy) -> None:
    class Plain(np.ndarray):
        pass

    crossent.entropy(P10.view(Plain))
    crossent.cross_entropy(P10, Q10, eps=1e-9)
    crossent.binary_cross_entropy(P10, Q10, eps=1e-9)
    assert spy.calls == 0


# ------------------------------------------------------------------- values, hard rows


@pytest.mark.parametrize("form", ["logits", "log_probs"])
def test_issue13_float32_logits_take_the_kernel(form: str, spy: _Spy) -> None:
    """Float32 logits and log-probabilities take the kernel, whose float64 terms are
    rounded once (they kept NumPy's float32 path, 2 to 32 ulps off, before: see
    ``test_issue13_info_layout.py``)."""
    z = RNG.normal(size=(4, 9)).astype(np.float32)
    p = RNG.dirichlet(np.ones(9), size=4).astype(np.float32)
    crossent.entropy(z, p_form=form, validate=False)
    crossent.cross_entropy(p, z, q_form=form, validate=False)
    crossent.kl_divergence(z, p, p_form=form, validate=False)
    assert spy.calls == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("row", list(LOGIT_ROWS))
def test_issue13_entropy_of_logits_hard_rows(
    row: str, dtype: type, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    z = _logits(row, dtype)
    got = crossent.entropy(z, p_form="logits")
    assert spy.calls == 1
    assert got.dtype == dtype
    truth = oracles.entropy_of_logits(_finite_logits(list(z.astype(np.float64))))
    kind = CLOSED_FORM if dtype is np.float64 else FLOAT32_KERNEL
    assert_close(got, truth, kind, dtype=dtype)
    assert_close(got, generic(lambda: crossent.entropy(z, p_form="logits")), kind)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("row", list(LOGIT_ROWS))
def test_issue13_cross_entropy_with_logits_hard_rows(
    row: str, dtype: type, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    z = _logits(row, dtype)
    p = RNG.dirichlet(np.ones(z.size)).astype(dtype)
    p[z == -INF] = 0.0  # else the truth is +inf (pinned below)
    p /= p.sum(dtype=np.float64)

    def call() -> Any:
        return crossent.cross_entropy(p, z, q_form="logits", validate=False)

    got = call()
    assert spy.calls == 1
    truth = oracles.cross_entropy_with_logits(list(p.astype(np.float64)), list(z))
    kind = CLOSED_FORM if dtype is np.float64 else FLOAT32_KERNEL
    assert_close(got, truth, kind, dtype=dtype)
    assert_close(got, generic(call), kind)


def test_issue13_cross_entropy_with_logits_infinite_and_zero_terms() -> None:
    z = np.array([-INF, 0.0, 1.0])
    assert crossent.cross_entropy([0.5, 0.5, 0.0], z, q_form="logits") == INF
    assert np.isfinite(crossent.cross_entropy([0.0, 0.5, 0.5], z, q_form="logits"))
    assert crossent.kl_divergence([0.5, 0.5, 0.0], z, q_form="logits") == INF
    assert crossent.entropy(np.array([1.0, 0.0, 0.0])) == 0.0  # 0 log 0 = 0, +0.0
    assert np.signbit(crossent.entropy(np.array([1.0, 0.0]))) == np.False_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", list(PROB_ROWS))
def test_issue13_measures_of_probabilities_hard_rows(
    rows: str, dtype: type, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    p, q = (np.asarray(r, dtype=dtype) for r in PROB_ROWS[rows])
    p64, q64 = list(p.astype(np.float64)), list(q.astype(np.float64))
    got = crossent.cross_entropy_decomposition(p, q, validate=False)
    js = crossent.js_divergence(p, q, validate=False)
    assert spy.calls == 2
    assert {got.entropy.dtype, got.kl_divergence.dtype, js.dtype} == {np.dtype(dtype)}
    kind = CLOSED_FORM if dtype is np.float64 else FLOAT32_KERNEL
    # KL and JS sum terms of both signs: an absolute bound on the scale of the terms
    cancelling = ulps(16, dtype, scale=1.0)
    assert_close(got.entropy, oracles.entropy(p64), kind, dtype=dtype)
    assert_close(got.cross_entropy, oracles.cross_entropy(p64, q64), kind, dtype=dtype)
    kl, js_truth = oracles.kl_divergence(p64, q64), oracles.js_divergence(p64, q64)
    if np.isinf(kl):
        assert got.kl_divergence == INF
    else:
        assert abs(float(got.kl_divergence) - kl) <= cancelling + kind.pair(dtype)[0] * abs(kl)
    assert abs(float(js) - js_truth) <= cancelling + kind.pair(dtype)[0] * js_truth
    assert float(js) >= 0.0
    generic_parts = generic(lambda: crossent.cross_entropy_decomposition(p, q, validate=False))
    for part, expected in zip(got, generic_parts, strict=True):
        if np.isinf(expected):
            assert part == expected
        else:
            assert abs(float(part) - float(expected)) <= cancelling + kind.pair(dtype)[0] * abs(
                float(expected)
            )


@pytest.mark.parametrize("p_form", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("q_form", ["probs", "log_probs", "logits"])
def test_issue13_every_form_pair_batched_equals_generic(
    p_form: str, q_form: str, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    """A (2, 3, 7) batch with zeros (``-inf`` log-probabilities), a class axis moved,
    float32 and float16 (computed in float32) against the generic path."""
    probs = RNG.dirichlet(np.full(7, 0.4), size=(2, 3, 2))
    probs[0, 0, :, :2] = 0.0
    probs /= probs.sum(-1, keepdims=True)
    as_form = {
        "probs": lambda x: x,
        "log_probs": lambda x: np.log(np.where(x > 0, x, 1.0)) + np.where(x > 0, 0.0, -INF),
        "logits": lambda x: np.log(np.where(x > 0, x, 1.0)) + np.where(x > 0, 3.0, -INF),
    }
    p, q = as_form[p_form](probs[..., 0, :]), as_form[q_form](probs[..., 1, :])
    for dtype in (np.float64, np.float32, np.float16):
        pa, qa = np.moveaxis(p.astype(dtype), -1, 0), np.moveaxis(q.astype(dtype), -1, 0)

        def calls(pa: np.ndarray = pa, qa: np.ndarray = qa) -> list[Any]:
            kw = {"axis": 0, "p_form": p_form, "q_form": q_form, "validate": False}
            return [
                crossent.entropy(pa, axis=0, p_form=p_form, validate=False),
                crossent.cross_entropy(pa, qa, **kw),
                crossent.kl_divergence(pa, qa, **kw, base=2),
                crossent.js_divergence(pa, qa, **kw),
                *crossent.cross_entropy_decomposition(pa, qa, **kw),
            ]

        before = spy.calls
        got = calls()
        compute = np.float64 if dtype is np.float64 else np.float32
        assert spy.calls - before == 5
        kind = ROUNDING if dtype is np.float64 else CLOSED_FORM
        for value, expected in zip(got, generic(calls), strict=True):
            assert value.dtype == compute
            assert value.shape == (2, 3)
            finite = np.isfinite(expected)
            np.testing.assert_array_equal(value[~finite], expected[~finite])
            np.testing.assert_allclose(
                value[finite], expected[finite], rtol=kind.pair(compute)[0], atol=ulps(16, compute)
            )


def test_issue13_broadcast_and_parallel_rows_equal_generic(
    spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    """Broadcast batches (views, no copy), and more than ``PARALLEL_ELEMENTS`` elements
    (the rows run in parallel)."""
    p = RNG.dirichlet(np.ones(400), size=(400,))
    assert p.size > _fused.PARALLEL_ELEMENTS
    z = RNG.normal(size=(400, 400)) * 5
    q = RNG.dirichlet(np.ones(400))
    cases: list[Callable[[], Any]] = [
        lambda: crossent.cross_entropy(p, z, q_form="logits"),
        lambda: crossent.entropy(z, p_form="logits"),
        lambda: crossent.kl_divergence(p.reshape(4, 100, 400), q),
        lambda: crossent.js_divergence(q, p.reshape(2, 200, 400)),
    ]
    for call in cases:
        before = spy.calls
        got = call()
        assert spy.calls == before + 1
        assert_close(got, generic(call), ROUNDING)


def test_issue13_decomposition_with_broadcast_p_keeps_entropy_shape(spy: _Spy) -> None:
    """H(P) has P's batch shape: a P broadcast against Q's batch takes the generic path."""
    p, q = RNG.dirichlet(np.ones(5)), RNG.dirichlet(np.ones(5), size=3)
    d = crossent.cross_entropy_decomposition(p, q)
    assert d.entropy.shape == ()
    assert d.cross_entropy.shape == (3,)
    assert spy.calls == 0


# ------------------------------------------------------------------------- validation

BAD = {
    "probs_nan": lambda: crossent.entropy(np.array([[0.5, 0.5], [np.nan, 1.0]])),
    "probs_negative": lambda: crossent.cross_entropy(np.array([1.2, -0.2]), np.array([0.5, 0.5])),
    "probs_above_one_q": lambda: crossent.kl_divergence(
        np.array([0.5, 0.5]), np.array([[0.5, 0.5], [1.5, -0.5]])
    ),
    "probs_sum": lambda: crossent.js_divergence(np.array([0.5, 0.5]), np.array([0.6, 0.5])),
    "probs_sum_float32": lambda: crossent.entropy(np.array([0.5, 0.5001], dtype=np.float32)),
    "logits_plus_inf": lambda: crossent.entropy(np.array([0.0, INF]), p_form="logits"),
    "logits_nan": lambda: crossent.cross_entropy(
        np.array([0.5, 0.5]), np.array([np.nan, 0.0]), q_form="logits"
    ),
    "logits_all_minus_inf": lambda: crossent.entropy(
        np.array([[0.0, 1.0], [-INF, -INF]]), p_form="logits"
    ),
    "log_probs_not_normalised": lambda: crossent.kl_divergence(
        np.log([0.5, 0.6]), np.array([0.0, 0.0]), p_form="log_probs", q_form="logits"
    ),
    "p_and_q_bad_reports_p": lambda: crossent.cross_entropy_decomposition(
        np.array([0.7, 0.7]), np.array([-1.0, 2.0])
    ),
    "binary_grad_p": lambda: crossent.binary_cross_entropy_grad(
        np.array([0.5, 1.5]), np.array([0.5, 0.5])
    ),
    "binary_grad_q_nan": lambda: crossent.binary_cross_entropy_grad(
        np.array([0.5, 0.5]), np.array([np.nan, 0.5])
    ),
    "surprisal_above_one": lambda: crossent.surprisal(np.array([[0.5], [1.0 + 1e-12]])),
    "binary_entropy_inf": lambda: crossent.binary_entropy(np.array([0.5, INF])),
    "binary_cross_entropy_q_negative": lambda: crossent.binary_cross_entropy(
        np.array([1.0, 0.0]), np.array([0.5, -0.5])
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_issue13_fused_validation_raises_the_generic_message(
    case: str, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    with pytest.raises(InputError) as fused:
        BAD[case]()
    assert spy.calls == 1  # screened in the kernel's pass, then checked in full
    with pytest.raises(InputError) as expected:
        generic(BAD[case])
    assert str(fused.value) == str(expected.value)


def test_issue13_screen_passes_rows_within_the_tolerance(spy: _Spy) -> None:
    from crossent._checks import row_sum_tolerance
    from crossent._xp import compat_numpy

    tolerance = row_sum_tolerance(np.float64, 2, xp=compat_numpy)
    p = np.array([0.5, 0.5 + tolerance / 2])
    assert np.isfinite(crossent.entropy(p))
    assert np.isfinite(crossent.entropy(np.array([-INF, 0.0]), p_form="logits"))
    assert spy.calls == 2


# ------------------------------------------------------------ binary_cross_entropy_grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue13_binary_grad_edges_and_shapes(
    dtype: type, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    p = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 0.3, 2.0**-30, 1e-38], dtype=dtype)
    q = np.array([0.0, 1.0, 0.0, 0.5, 1.0, 0.3, 1e-38, 0.5], dtype=dtype)
    got = crossent.binary_cross_entropy_grad(p, q, base=2)
    assert got.dtype == dtype
    edges = np.array([1, -1, -INF, -2, INF]) / np.log(2)
    np.testing.assert_array_equal(got[:5], edges.astype(dtype))
    assert_close(got, generic(lambda: crossent.binary_cross_entropy_grad(p, q, base=2)), ROUNDING)
    row = crossent.binary_cross_entropy_grad(np.asarray(dtype(1.0)), q)  # broadcast, no copy
    assert_close(
        row,
        generic(lambda: crossent.binary_cross_entropy_grad(np.asarray(dtype(1.0)), q)),
        ROUNDING,
    )
    scalar = crossent.binary_cross_entropy_grad(np.asarray(dtype(0.0)), np.asarray(dtype(0.0)))
    assert type(scalar) is np.dtype(dtype).type
    assert scalar == 1.0
    assert spy.calls == 3
    # a grid would need a copy to flatten: the generic path
    grid = crossent.binary_cross_entropy_grad(p.reshape(8, 1), q)
    assert grid.shape == (8, 8)
    assert spy.calls == 3


BINARY_VALUES = [0.0, 1.0, 0.5, 1e-10, 2.0**-30, 1 - 2.0**-20, 1e-300, 0.3, 0.7]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue13_pointwise_measures_hard_values(
    dtype: type, spy: _Spy, generic: Callable[[Callable[[], Any]], Any]
) -> None:
    """Surprisal, binary entropy and binary cross-entropy of every pair of hard values
    (0, 1, tiny, near 1) against mpmath and the generic path."""
    values = np.array(BINARY_VALUES).astype(dtype)
    p, q = (a.ravel() for a in np.meshgrid(values, values))
    calls: list[Callable[[], Any]] = [
        lambda: crossent.surprisal(q),
        lambda: crossent.binary_entropy(q),
        lambda: crossent.binary_cross_entropy(p, q),
    ]
    got = [call() for call in calls]
    assert spy.calls == 3
    q64, p64 = q.astype(np.float64), p.astype(np.float64)
    truths = [
        [oracles.cross_entropy([1.0], [y]) for y in q64],
        [oracles.binary_cross_entropy(y, y) for y in q64],
        [oracles.binary_cross_entropy(x, y) for x, y in zip(p64, q64, strict=True)],
    ]
    kind = CLOSED_FORM if dtype is np.float64 else FLOAT32_KERNEL
    for value, truth, call in zip(got, truths, calls, strict=True):
        assert value.dtype == dtype
        truth_array = np.array(truth)
        finite = np.isfinite(truth_array)
        np.testing.assert_array_equal(value[~finite], truth_array[~finite])
        assert_close(value[finite], truth_array[finite], kind, dtype=dtype)
        expected = generic(call)
        np.testing.assert_allclose(value, expected, rtol=kind.pair(dtype)[0], atol=ulps(4, dtype))
