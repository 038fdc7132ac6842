"""Issue 13, memory: the float32 soft-target gradient forms no generic softmax terms.

``prepare_softmax_targets`` formed the generic path's ``softmax_rows`` (a float32 pass
and an N x V shifted copy, with an N x V ``exp`` temporary) and ``target_terms`` on
every call; the float32 gradient then took the fused kernel
(``_softmax._fused_target_gradient``), which reads none of them. The problem now forms
those terms on first use (``SoftmaxProblem.terms``): the loss uses them (once), the
gradient only off its fused kernel (a suspect row with ``validate=False``; no Numba).

Checked here, for every option, reduction and layout the fused gradient takes:

* the gradient never calls ``softmax_rows`` or ``target_terms``, and its bits are those
  of the problem whose terms were formed first (main's order), within one float32 ulp
  of an independent float64 route (SciPy's ``logsumexp``, ``test_issue13_soft_target_grad``);
* the loss forms none of them (its fused path, ``_softmax._fused_target_loss``); off
  the fused path it forms them exactly once, however often it is asked, and gives the
  generic path's bits (the terms formed by hand from the prepared problem's arrays);
* rows the kernel calls suspect give the generic path's bits (NaN where it has NaN);
* the peak memory of the gradient is its result and a few per-row vectors;
* neither soft-target function takes ``out=``, for any dtype or layout (main's float16
  and relaid-out float32 gradients wrote into it, float64 raised ``TypeError``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _softmax
from crossent.losses._softmax import prepare_softmax_targets, softmax_gradient
from crossent.losses._terms import row_loss, softmax_rows, target_terms
from losses.blocked_checks import peak_of
from losses.small_call_paths import fail_on, record_calls
from losses.test_issue13_soft_target_grad import _data, _layouts, _reference, _rows

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="the fused kernel needs Numba")

GENERIC = ("softmax_rows", "target_terms")
OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "weight": {"weighted": True},
    "smoothing_temperature": {"label_smoothing": 0.1, "temperature": 1.7},
    "all": {"weighted": True, "label_smoothing": 0.2, "z_loss": 1e-3, "temperature": 0.6},
}
LOSS = crossent.softmax_cross_entropy_with_targets
GRAD = crossent.softmax_cross_entropy_with_targets_grad


def _case(name: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    """float32 logits and targets near their softmax, the call's keywords and those of
    :func:`_reference` (without the class weights)."""
    kw = dict(OPTIONS[name])
    weighted = kw.pop("weighted", False)
    z, t, w = _data(np.float32, weighted)
    return z, t, {**kw, "weight": w}, kw


def _bits(x: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    return x.shape, np.ascontiguousarray(x).tobytes()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["C", "F", "batch_3d_axis_1"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_gradient_forms_no_generic_terms(
    monkeypatch: pytest.MonkeyPatch, options: str, layout: str, reduction: str
) -> None:
    z, t, kw, reference_kw = _case(options)
    truth, p_term = _reference(
        z.astype(np.float64), t.astype(np.float64), kw["weight"], reduction, **reference_kw
    )
    # main's order: the generic terms first, then the gradient, on the C layout (the
    # others are relaid out to it: the same bits)
    eager = prepare_softmax_targets(z, t, reduction=reduction, **kw)
    eager.generic()
    expected = softmax_gradient(eager)
    (zl, axis), (tl, _) = _layouts(z)[layout], _layouts(t)[layout]

    fail_on(monkeypatch, _softmax, GENERIC, expected="the fused kernel alone")
    grad = GRAD(zl, tl, axis=axis, reduction=reduction, **kw)
    assert _bits(_rows(grad, layout)) == _bits(expected)
    got = _rows(grad, layout).astype(np.float64)
    bound = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64) + 1e-9 * p_term
    assert np.max(np.abs(got - truth) / bound) <= 1.0


def test_entry_point_gradient_with_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point, per-row ``upstream``: the fused kernel alone, main's bits."""
    z, t, kw, _ = _case("all")
    u = np.random.default_rng(5).normal(size=z.shape[0])
    eager = prepare_softmax_targets(z, t, reduction="none", **kw)
    eager.generic()
    expected = softmax_gradient(eager, upstream=u)
    fail_on(monkeypatch, _softmax, GENERIC, expected="the fused kernel alone")
    lazy = prepare_softmax_targets(z, t, reduction="none", **kw)
    assert _bits(softmax_gradient(lazy, upstream=u)) == _bits(expected)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_loss_forms_the_terms_once(
    monkeypatch: pytest.MonkeyPatch, options: str, reduction: str
) -> None:
    z, t, kw, _ = _case(options)
    problem = prepare_softmax_targets(z, t, reduction=reduction, **kw)
    # The generic path's loss, formed by hand from the prepared arrays: main's bits.
    rows = softmax_rows(z, soft_cap=None, temperature=problem.options.temperature, xp=np)
    assert problem.targets is not None
    w = None if kw["weight"] is None else kw["weight"].astype(np.float32)
    a, b, _ = target_terms(
        rows.shifted, problem.targets, w, eps=problem.options.label_smoothing, xp=np
    )
    by_hand = problem.batch.reduce(
        row_loss(rows, a, b, problem.batch.example_weight, z_loss=problem.options.z_loss)
    )
    calls = record_calls(monkeypatch, _softmax, GENERIC)
    fused = prepare_softmax_targets(z, t, reduction=reduction, **kw)
    fused.loss()
    assert calls == []  # the fused loss forms none (test_issue13_fused_target_loss.py)
    # off the fused path (as without Numba): the generic terms, once
    monkeypatch.setattr(_softmax, "_fused_target_logits", lambda *args: None)
    fresh = prepare_softmax_targets(z, t, reduction=reduction, **kw)
    assert calls == []  # nothing formed by the prepare step
    first, second = fresh.loss(), fresh.loss()
    assert calls == list(GENERIC)  # once, kept
    assert _bits(np.asarray(first)) == _bits(np.asarray(by_hand))
    assert _bits(np.asarray(second)) == _bits(np.asarray(by_hand))
    assert _bits(np.asarray(LOSS(z, t, reduction=reduction, **kw))) == _bits(np.asarray(by_hand))


@pytest.mark.parametrize("bad", ["nan", "inf", "row_of_minus_inf"])
def test_suspect_rows_take_the_generic_path(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """``validate=False`` and a row the kernel calls suspect: the generic path's bits,
    its terms formed once, and only then."""
    z, t, kw, _ = _case("all")
    if bad == "row_of_minus_inf":
        z[3] = -np.inf
    else:
        z[3, 5] = np.float32(bad)
    with np.errstate(invalid="ignore"):  # inf - inf in the generic path, as on main
        calls = record_calls(monkeypatch, _softmax, GENERIC)
        grad = GRAD(z, t, validate=False, **kw)
        assert calls == list(GENERIC)
        monkeypatch.setattr(_softmax, "_fused_target_logits", lambda *args: None)
        generic = GRAD(z, t, validate=False, **kw)
    assert _bits(grad) == _bits(generic)
    assert np.isnan(grad[3]).any()
    assert np.isfinite(np.delete(grad, 3, axis=0)).all()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("validate", [True, False])
def test_gradient_peak_is_its_result(validate: bool, weighted: bool) -> None:
    """The gradient's peak is its result and per-row vectors (main's: about 2.25 times
    the result, the shifted logits and their exp alive together). With class weights,
    the fused gradient's float64 ``t @ w`` (main's too) copies the float32 targets to
    float64, twice the result, freed before the result is allocated (main's peak: about
    four times the result). The kernel adds one float64 row of terms per thread
    (``_cpu_kernels_numba.target_gradient_kernel``'s buffer)."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((256, 4096), np.float32)
    t = rng.dirichlet(np.ones(4096), 256).astype(np.float32)
    kw = {"weight": rng.uniform(0.5, 2.0, 4096), "label_smoothing": 0.1} if weighted else {}
    GRAD(z, t)  # compiled
    peak, result = peak_of(lambda: GRAD(z, t, validate=validate, **kw))
    import numba  # (after the skip: the fused kernel needs it)

    buffers = numba.get_num_threads() * 4096 * 8
    assert peak <= (2 if weighted else 1) * result + 64 * 1024 + buffers, (peak / result, result)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("function", [LOSS, GRAD], ids=["loss", "grad"])
def test_out_is_refused_alike(function: Callable[..., Any], layout: str, dtype: type) -> None:
    """No soft-target function takes ``out`` (neither signature has it): every dtype and
    layout raises the float64 call's ``TypeError``, writing nothing."""
    assert "out" not in inspect.signature(function).parameters
    z, t, _, _ = _case("plain")
    z, t = z.astype(dtype), t.astype(dtype)
    if layout == "F":
        z, t = np.asfortranarray(z), np.asfortranarray(t)
    out = np.full(z.shape, np.nan, np.float64 if dtype is np.float64 else np.float32)
    with pytest.raises(TypeError) as refused:
        function(z, t, out=out)
    with pytest.raises(TypeError) as float64:
        function(z.astype(np.float64), t.astype(np.float64), out=out.astype(np.float64))
    assert str(refused.value) == str(float64.value)
    assert np.isnan(out).all()
