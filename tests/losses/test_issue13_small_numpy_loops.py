"""Issue 13, "Small inputs": focal and poly-1 in one compiled call with NumPy's own loops.

Where NumPy runs its own SIMD code for float64 exp, log, log1p and expm1 (AVX-512),
``_small_label_families`` answers focal and poly-1 small calls (float32 ones on float64
copies, issue 13)
by one compiled call (``label_libm``) that calls NumPy's inner loops of those functions
(``_small_loops.numpy_loops``, ``_small_loops_numba.apply``). These tests prove that the
loops found are NumPy's float64 ones (every function, every length through the SIMD
tails, special values), that the route gives the full path's outcome bit for bit over
the speedup tests' random and hard rows, options and keywords (float64 too, on any
machine: the C library's route is turned off here), and that the checks refuse what
they must: another Python, a ufunc of another shape, a loop one ulp off or swapped.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import crossent
from crossent.losses import _small_label_families, _small_label_numba, _small_loops
from losses.small_call_paths import record_calls
from losses.test_issue13_small_focal_speedup import _HYBRID, _LIBM, _sweep

_UFUNCS = (np.exp, np.log, np.log1p, np.expm1)
_CPYTHON = sys.implementation.name == "cpython"


@pytest.fixture
def _needs_loops() -> None:
    """Skips where NumPy's loops are not found: asked when a test runs, not at collection
    (each xdist worker collects every module; the first ask compiles a kernel)."""
    if _small_loops.numpy_loops() is None:
        pytest.skip("NumPy's loops are not found here")


_NEEDS_LOOPS = pytest.mark.usefixtures("_needs_loops")


def _compiled() -> types.ModuleType:
    from crossent.losses import _small_loops_numba

    return _small_loops_numba


@pytest.mark.skipif(not _CPYTHON, reason="CPython only")
def test_issue13_small_numpy_loops_are_found_on_cpython() -> None:
    loops = _small_loops.numpy_loops()
    assert loops is not None
    assert loops.dtype == np.int64
    assert loops.shape == (4,)  # (float64 only: float32 calls compute on float64 copies)
    assert np.all(loops != 0)


def _values(k: int, dtype: type, n: int, seed: int) -> np.ndarray:
    """``n`` arguments of function ``k`` in its interesting ranges, specials included."""
    rng = np.random.default_rng(seed)
    spread = [
        rng.uniform(-760.0, 20.0, n),
        np.exp(rng.uniform(-740.0, 20.0, n)),
        rng.uniform(-1.0, 3.0, n),
        rng.uniform(-40.0, 2.0, n),
    ][k]
    specials = [0.0, -0.0, 1.0, -1e-300, 5e-324, -5e-324, np.inf, -np.inf, np.nan, 1e-8]
    x = np.concatenate([spread, specials])
    rng.shuffle(x)
    return x[:n].astype(dtype)


@_NEEDS_LOOPS
@pytest.mark.parametrize("k", range(4))
def test_issue13_small_numpy_loops_give_numpys_values(k: int) -> None:
    """``apply`` of each loop is NumPy's ufunc bit for bit (NaN and -0.0 too), on every
    length from 1 to 70 (the SIMD blocks' tails) and on 1000 and 4099 values."""
    loops = _small_loops.numpy_loops()
    apply = _compiled().apply
    for n in [*range(1, 71), 1000, 4099]:
        x = _values(k, np.float64, n, seed=n)
        out = np.empty_like(x)
        apply(loops, k, x, out)
        with np.errstate(all="ignore"):
            want = _UFUNCS[k](x)
        assert out.tobytes() == want.tobytes(), (n, x[out.view(np.uint8) != want.view(np.uint8)])
        matrix = x[: n - n % 2].reshape(2, -1) if n > 1 else x.reshape(1, 1)
        out2 = np.empty_like(matrix)
        apply(loops, k, matrix, out2)  # (2-d: all entries, as for a contiguous array)
        with np.errstate(all="ignore"):
            assert out2.tobytes() == _UFUNCS[k](matrix).tobytes()


@_NEEDS_LOOPS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_LIBM))
def test_issue13_small_numpy_loops_route_is_the_full_path_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: type
) -> None:
    """The one compiled call with NumPy's loops gives the full path's bits, warnings and
    errors (float64 too, with the C library's route turned off), and answers most calls
    (the others: suspect rows, which the full path names)."""
    monkeypatch.setattr(_small_label_families, "libm_is_numpys", lambda: False)
    count, calls = _sweep(monkeypatch, name, dtype)
    answered = sum(call == "label_libm" for call in calls)
    assert answered > count // 2
    assert not set(calls) & {"label_rows64", "rest_of_rows", *_HYBRID[name]}  # (no hybrid)


@_NEEDS_LOOPS
def test_issue13_small_numpy_loops_agreement_sees_one_ulp_and_a_swap() -> None:
    """``loops_agree`` compares all four functions, each on every probe, and sees two
    loops swapped."""
    loops = _small_loops.numpy_loops()
    assert loops is not None
    x = np.array([[-0.5, -3.0], [0.25, 7.0], [-0.5, 2.0], [-0.25, -1e-5]])
    want = np.stack([f(row) for f, row in zip(_UFUNCS, x, strict=True)])
    agrees = _compiled().loops_agree
    assert agrees(loops, x, want)
    for row in range(4):
        for column in range(2):
            off = want.copy()
            off[row, column] = np.nextafter(off[row, column], np.inf)
            assert not agrees(loops, x, off), (row, column)
    swapped = loops.copy()
    swapped[[2, 3]] = loops[[3, 2]]  # log1p and expm1
    assert not agrees(swapped, x, want)


def test_issue13_small_numpy_loops_refuses_what_it_cannot_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another Python, a ufunc of two inputs or none of the signature: no loops."""
    with monkeypatch.context() as patch:
        fake = types.SimpleNamespace(implementation=types.SimpleNamespace(name="pypy"))
        patch.setattr(_small_loops, "sys", fake)
        assert _small_loops.numpy_loops.__wrapped__() is None
    if _CPYTHON:
        assert _small_loops._loop(np.add, "dd->d") is None
        with pytest.raises(ValueError, match="not in list"):
            _small_loops._loop(np.exp, "q->q")  # (numpy_loops gives None then)
        with monkeypatch.context() as patch:
            patch.setattr(_small_loops, "_loop", lambda *_: None)
            assert _small_loops.numpy_loops.__wrapped__() is None


@_NEEDS_LOOPS
def test_issue13_small_numpy_loops_off_the_hybrid_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without loops (and without the C library's route) float32 focal takes the hybrid."""
    monkeypatch.setattr(_small_label_families, "libm_is_numpys", lambda: False)
    monkeypatch.setattr(_small_label_families, "numpy_loops", lambda: None)
    calls = record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)
    z = np.random.default_rng(3).standard_normal((8, 10)).astype(np.float32)
    crossent.softmax_focal_loss(z, np.arange(8))
    assert "label_libm" not in calls, calls
    assert calls[-1] == "focal_loss64", calls


@_NEEDS_LOOPS
def test_issue13_small_numpy_loops_leave_long_float32_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of more than 128 classes, float32 (computed on float64 copies) and float64:
    the one call."""
    monkeypatch.setattr(_small_label_families, "libm_is_numpys", lambda: False)
    calls = record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)
    z = np.random.default_rng(4).standard_normal((2, 200))
    for fn in (crossent.softmax_focal_loss, crossent.poly1_cross_entropy_grad):
        calls.clear()
        fn(z.astype(np.float32), np.array([3, 150]))
        # (issue 13: float32 logits are computed as float64: the float64 one call)
        assert calls[-1] == "label_libm", calls
        calls.clear()
        fn(z, np.array([3, 150]))
        assert calls[-1] == "label_libm", calls


def test_issue13_small_label_spies_leave_the_compiled_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spies on ``CALLS`` (the Python side's calls) leave the module's names, which the
    compiled functions call, as they are: a function compiled afresh while the spies
    are in place compiles and calls the compiled functions, and the spies see the calls."""
    import numba

    calls = record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)
    for name in _small_label_numba.__all__:
        assert isinstance(getattr(_small_label_numba, name), numba.core.dispatcher.Dispatcher)
    fresh = numba.njit(_small_label_numba._libm_modulation.py_func)  # (its callees: public)
    log_p_y = np.array([-0.1, -2.0])
    p_y, expm1, out = np.exp(log_p_y), np.expm1(log_p_y), np.empty((2, 1))
    fresh(log_p_y, p_y, expm1, 1, 2.0, out, np.empty(0, np.int64), np.empty((4, 2)))
    assert np.all(np.isfinite(out))
    assert calls == []
    crossent.softmax_focal_loss(np.zeros((1, 3)), np.array([0]))
    assert "label_libm" in calls or "focal_loss64" in calls, calls
