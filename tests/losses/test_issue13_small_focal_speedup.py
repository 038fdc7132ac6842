"""Issue 13, "Small inputs": focal and poly-1 small calls under 10 us, float32 ones too.

Three routes answer the small calls of ``softmax_focal_loss``, ``poly1_cross_entropy`` and
their gradients (``_small_label_families``):

* float64 logits where NumPy's float64 exp, log, log1p and expm1 are the C library's
  (``libm_is_numpys``): one compiled call (``*_libm``) doing the hybrid's arithmetic
  with the C library's functions in place of NumPy's calls;
* float32 logits (and float64 elsewhere): the same call with NumPy's own loops where
  ``_small_loops.numpy_loops`` finds them (``test_issue13_small_numpy_loops.py``), else
  the hybrid, NumPy's own ufuncs between compiled calls that round every operation to
  the dtype as NumPy does.

These tests prove that each answer is the full path's bit for bit (type, dtype, shape,
bytes, warnings) over random and hard rows (ties and one-ulp near-ties, spreads that
underflow :math:`p_y` in float32, labels at both ends, gamma 0, fractional and large,
class weights and ``ignore_index``, every reduction, ``base``), that the benchmark's
calls take these routes, and that the route's gate refuses a machine where NumPy runs
its own code.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest

from crossent.losses import _batch, _focal, _small_label_families, _small_label_numba
from losses.small_call_paths import fail_on, record_calls
from losses.small_label_paths import (
    FAMILIES,
    REDUCTIONS,
    full_path_outcome,
    hard_cases,
    hybrid_only,
    keywords,
    outcome,
    random_cases,
)

_LIBM = {"focal": ("label_libm", "label_libm"), "poly1": ("label_libm", "label_libm")}
_HYBRID = {
    "focal": ("focal_loss64", "focal_gradient64"),
    "poly1": ("poly_loss64", "poly_gradient64"),
}
_OPTIONS = {
    "focal": [{}, {"gamma": 0.0}, {"gamma": 0.25}, {"gamma": 1.5}, {"gamma": 9.0, "base": 2}],
    "poly1": [{}, {"epsilon": 0.0}, {"epsilon": -1.0}, {"epsilon": 3.7}],
}
_MORE_KEYWORDS: list[dict[str, Any]] = [
    {"reduction": "none", "base": 10.0},
    {"reduction": "sum", "base": 2},
    {"reduction": "parts", "base": 2, "ignore_index": 3},
    {"ignore_index": 0, "reduction": "mean", "base": 2},
]
"""Keywords beyond ``REDUCTIONS``: ``base`` with every reduction (the gradient's scale
rounds differently for 'mean' and the others in float32). Poly-1 has no ``base``."""

_NEEDS_LIBM = pytest.mark.skipif(
    not _small_label_families.libm_is_numpys(),
    reason="NumPy's float64 exp/log/log1p/expm1 are not the C library's on this machine",
)


def _more_hard_rows(dtype: type) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Rows beyond ``hard_cases``: spreads that underflow :math:`p_y` (and ``exp`` of a
    rival) in float32 but not in float64, one-ulp near-ties around the label, the labels
    at both ends, and :math:`p_y` near 1/2 in the dtype."""
    one_up = float(np.nextafter(dtype(3.0), dtype(4.0)))
    cases = [
        ("float32 underflow", [[0.0, 110.0, 1.0, -5.0]], [0]),
        ("float32 p_y denormal", [[0.0, 95.0, 1.0, -5.0]], [0]),
        ("rival underflows", [[120.0, 0.0, 1.0, -5.0]], [0]),
        ("near tie, label first", [[3.0, one_up, 0.0, -1.0]], [0]),
        ("near tie, label second", [[3.0, one_up, 0.0, -1.0]], [1]),
        ("label last", [[0.5, -1.0, 2.0, 0.25, 4.0]], [4]),
        ("label first of many", [list(np.linspace(-3.0, 3.0, 12))], [0]),
        ("p_y about 1/2", [[0.6931471805599453, 0.0, -40.0]], [0]),
        ("huge spread, both ends", [[-3e4, 0.0, 3e4], [3e4, 0.0, -3e4]], [0, 2]),
    ]
    return [(name, np.array(z, dtype=dtype), np.array(y)) for name, z, y in cases]


def _all_cases(dtype: type) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return random_cases(dtype, 16) + hard_cases(dtype) + _more_hard_rows(dtype)


def _sweep(monkeypatch: pytest.MonkeyPatch, name: str, dtype: type) -> tuple[int, list[str]]:
    """Compare every case, option set and keyword set with the full path; the number of
    calls and the compiled functions reached."""
    family = FAMILIES[name]
    extra = (
        _MORE_KEYWORDS
        if name == "focal"
        else [{k: v for k, v in kw.items() if k != "base"} for kw in _MORE_KEYWORDS]
    )
    calls = record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)
    count = 0
    for case, logits, labels in _all_cases(dtype):
        for own in _OPTIONS[name]:
            for shared in REDUCTIONS + extra:
                if "base" in own and "base" in shared:
                    continue
                for fn in (family.loss, family.grad):
                    call = partial(fn, logits, labels, **own, **keywords(logits, shared))
                    expected = full_path_outcome(monkeypatch, call)
                    assert outcome(call) == expected, (case, own, shared, fn.__name__)
                    count += 1
    return count, calls


@_NEEDS_LIBM
@pytest.mark.parametrize("name", sorted(_LIBM))
def test_issue13_small_libm_route_is_the_full_path_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Float64: the one compiled call gives the full path's bits, warnings and errors,
    and answers most calls (the others: suspect rows, which the full path names)."""
    count, calls = _sweep(monkeypatch, name, np.float64)
    answered = sum(call in _LIBM[name] for call in calls)
    assert answered > count // 2
    assert not set(calls) & {"label_rows64", "rest_of_rows"}  # (no hybrid here)


@pytest.mark.parametrize("name", sorted(_HYBRID))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_small_hybrid_route_is_the_full_path_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: type
) -> None:
    """Float32 (and float64 by the hybrid, as on machines where NumPy runs its own
    float64 code): the full path's bits over the same cases."""
    hybrid_only(monkeypatch)
    count, calls = _sweep(monkeypatch, name, dtype)
    answered = sum(call in _HYBRID[name] for call in calls)
    assert answered > count // 2
    assert not set(calls) & set(_LIBM[name])


_BENCHMARK = [
    (rows, validate, dtype)
    for rows in (1, 8)
    for validate in (True, False)
    for dtype in (np.float64, np.float32)
]


@pytest.mark.parametrize("name", sorted(_LIBM))
@pytest.mark.parametrize(("rows", "validate", "dtype"), _BENCHMARK)
def test_issue13_small_focal_benchmark_calls_take_the_fast_routes(
    monkeypatch: pytest.MonkeyPatch, name: str, rows: int, validate: bool, dtype: type
) -> None:
    """The benchmark's calls ((1, 10) and (8, 10) logits, float64 and float32, int64
    labels) end in one compiled call (float64 where the C library's functions are
    NumPy's; float64 and float32 where NumPy's own loops are found) or in the hybrid's
    compiled body, never in the full path."""
    family = FAMILIES[name]
    rng = np.random.default_rng(rows)
    logits = rng.standard_normal((rows, 10)).astype(dtype)
    labels = rng.integers(0, 10, size=rows)
    fns = (family.loss, family.grad)
    expected = [
        full_path_outcome(monkeypatch, partial(fn, logits, labels, validate=validate)) for fn in fns
    ]
    calls = record_calls(monkeypatch, _small_label_numba._CALLS, _small_label_numba.__all__)
    fail_on(monkeypatch, _batch, ["label_batch"], expected="the small call")
    libm = (dtype == np.float64 and _small_label_families.libm_is_numpys()) or (
        _small_label_families.numpy_loops() is not None  # (one call with NumPy's loops)
    )
    for fn, wanted, libm_name, hybrid_name in zip(
        fns, expected, _LIBM[name], _HYBRID[name], strict=True
    ):
        calls.clear()
        assert outcome(partial(fn, logits, labels, validate=validate)) == wanted
        assert calls == ([libm_name] if libm else [*calls[:-1], hybrid_name]), calls
        if libm:
            assert len(calls) == 1  # one compiled call, nothing else of the module


@_NEEDS_LIBM
@pytest.mark.parametrize("name", sorted(_LIBM))
@pytest.mark.parametrize("what", [0, 1])
def test_issue13_small_libm_comparison_sees_a_one_ulp_error(
    monkeypatch: pytest.MonkeyPatch, name: str, what: int
) -> None:
    """The comparison fails when the one compiled call is wrong by one ulp."""
    kernel = _LIBM[name][what]
    real = getattr(_small_label_numba._CALLS, kernel)

    def nudged(*args: Any) -> Any:
        found = real(*args)
        if not what:  # (ok, value): the reduced loss one ulp up
            return found[0], float(np.nextafter(found[1], np.inf))
        grad = args[-1]  # the gradient's first entry one ulp up
        grad.reshape(-1)[0] = np.nextafter(grad.reshape(-1)[0], np.inf)
        return found

    family = FAMILIES[name]
    call = partial(
        (family.loss, family.grad)[what],
        np.random.default_rng(2).standard_normal((8, 10)),
        np.arange(8),
    )
    expected = full_path_outcome(monkeypatch, call)
    assert outcome(call) == expected
    monkeypatch.setattr(_small_label_numba._CALLS, kernel, nudged)
    assert outcome(call) != expected


# ---------------------------------------------------------------------------- the gate


def _gate() -> bool:
    """``libm_is_numpys`` computed afresh (its cache bypassed)."""
    return bool(_small_label_families.libm_is_numpys.__wrapped__())


def _numpy_info(target: str) -> Any:
    def info(**_: Any) -> dict[str, Any]:
        names = ("exp", "log", "log1p", "expm1")
        return {name: {"dd": {"current": target, "available": target}} for name in names}

    return info


@_NEEDS_LIBM
def test_issue13_small_libm_gate_refuses_numpys_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """AVX-512 (NumPy's own exp and log, SVML's log1p and expm1), another platform or
    machine, Numba's SVML, or one probe that differs: the hybrid."""
    from numpy.lib import introspect

    assert _gate()
    for target in ("X86_V4", "AVX512F", "AVX512_SKX"):
        with monkeypatch.context() as patch:
            patch.setattr(introspect, "opt_func_info", _numpy_info(target))
            assert not _gate(), target
    with monkeypatch.context() as patch:
        patch.setattr(introspect, "opt_func_info", _numpy_info("X86_V3"))
        assert _gate()
    with monkeypatch.context() as patch:
        patch.setattr(_small_label_families.sys, "platform", "darwin")
        assert not _gate()
    with monkeypatch.context() as patch:
        patch.setattr(_small_label_families.platform, "machine", lambda: "aarch64")
        assert not _gate()
    import numba

    with monkeypatch.context() as patch:
        patch.setattr(numba.config, "USING_SVML", True)
        assert not _gate()
    real_exp = np.exp

    def one_ulp_off(x: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_exp(x, *args, **kwargs)
        if isinstance(found, np.ndarray) and found.shape == (4096,):
            found[17] = np.nextafter(found[17], np.inf)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(_small_label_families.np, "exp", one_ulp_off)
        assert not _gate()


@_NEEDS_LIBM
def test_issue13_small_libm_agrees_sees_each_function_one_ulp_off() -> None:
    """``libm_agrees`` compares all four functions, each on every probe."""
    x = np.array([[-0.5, -3.0], [0.25, 7.0], [-0.5, 2.0], [-0.25, -1e-5]])
    want = np.stack([np.exp(x[0]), np.log(x[1]), np.log1p(x[2]), np.expm1(x[3])])
    assert _small_label_numba.libm_agrees(x, want)
    for row in range(4):
        for column in range(2):
            off = want.copy()
            off[row, column] = np.nextafter(off[row, column], np.inf)
            assert not _small_label_numba.libm_agrees(x, off), (row, column)


def test_issue13_small_float32_focal_is_the_float64_call_rounded() -> None:
    """Independent of the full path: a float32 focal small call is the float64 small call
    on the same values, rounded once to float32 (issue 13: float32 arithmetic lost tens
    of ulps on confident rows), and within half a float32 ulp and a little of a plain
    NumPy float64 formula; the 'sum' gradient likewise."""
    z = np.array([[0.3, -1.7, 2.2, 0.05]], dtype=np.float32)
    y = np.array([2])
    gamma = 0.1  # not a float32 value
    loss = _focal._SMALL.shortcut(_small_label_families.focal_loss)
    got = loss((z, y), {"gamma": gamma, "reduction": "none"})
    wide = loss((z.astype(np.float64), y), {"gamma": gamma, "reduction": "none"})
    assert got.dtype == np.float32
    assert got.tobytes() == wide.astype(np.float32).tobytes()
    z64 = z[0].astype(np.float64)
    log_p_y = z64[2] - np.log(np.sum(np.exp(z64)))
    plain = -((1.0 - np.exp(log_p_y)) ** gamma) * log_p_y
    assert abs(float(got[0]) - plain) <= 0.51 * float(np.spacing(np.float32(plain)))
    grad = _focal._SMALL.shortcut(_small_label_families.focal_gradient)
    grad_sum = grad((z, y), {"gamma": gamma, "reduction": "sum", "base": 2})
    wide_sum = grad((z.astype(np.float64), y), {"gamma": gamma, "reduction": "sum", "base": 2})
    assert grad_sum.dtype == np.float32
    assert grad_sum.tobytes() == wide_sum.astype(np.float32).tobytes()


def test_issue13_small_libm_call_numbers_agree() -> None:
    """The Python side's numbers of ``label_libm``'s calls are its own."""
    codes = _small_label_families._LIBM_CALLS
    assert list(codes) == list(_small_label_numba._LIBM_CALLS)
    assert list(codes.values()) == list(range(len(codes)))
