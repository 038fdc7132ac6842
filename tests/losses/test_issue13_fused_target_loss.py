"""Issue 13: the float32 soft-target loss by the fused statistics and one row pass.

``SoftmaxProblem.loss`` of probability targets that the fused gradient takes (NumPy
float32 C-contiguous logits and targets, classes last, no soft-capping, Numba) is
``_softmax._fused_target_loss``: each row's :math:`A\\ell - B + \\lambda\\omega
\\mathrm{LSE}^2` in float64 (``_target_loss_numba``), reduced in float64 and rounded
once. Checked here, on small hard rows against mpmath (and on 2**17 classes against a
float64 ``math.fsum`` route), for every option:

* each per-row loss and reduction within half a float32 ulp (plus 1e-3) of the oracle,
  and never further from it than the generic float32 path's (computed alongside);
* no generic term is formed, and the peak memory is a few per-row vectors;
* suspect rows (``validate=False``) give the generic path's bits; with ``validate`` the
  generic path's error.

Mutants each case was seen to catch (by hand, in ``_target_loss_numba`` and
``_softmax._fused_target_loss``): smoothing spread ``eps`` for ``eps/C`` (``smoothing``,
``all``), the class weight dropped from :math:`A` and :math:`B` (``weight``, ``all``),
the z-loss dropped (``z_loss``, ``all``), the sums accumulated in float32 (``wide``,
``huge_spread``), the ``1/T`` dropped (``temperature``, ``all``), the maximum taken as
``m * T`` unrounded to float32 (``temperature``: a confident row's loss of 1e-18 off by
1e-15), ``row_top`` without its own ``fastmath``.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _cpu_kernels, _softmax
from crossent.losses._softmax import prepare_softmax_targets
from losses.blocked_checks import peak_of
from losses.small_call_paths import fail_on, record_calls

from tolerances import ulps_apart

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="the fused kernel needs Numba")

GENERIC = ("softmax_rows", "target_terms")
F32 = np.float32


def _softmax32(z: np.ndarray) -> np.ndarray:
    """float32 targets equal to the softmax of ``z`` (rows renormalised in float64)."""
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(F32)


def _hard_rows() -> tuple[np.ndarray, np.ndarray]:
    """Rows of 8 classes: near-ties, huge spreads, a confident one-hot (tiny loss),
    targets at the softmax, -inf logits with zero targets."""
    top = F32(3.0)
    ties = np.array([top + k * np.spacing(top) for k in range(8)], F32)
    z = np.stack(
        [
            ties,
            np.array([1e4, -1e4, 0, 5e3, -3e3, 1, 2, -1e4], F32),
            np.array([30, 0, 0, 0, 0, 0, 0, 0], F32),  # L = ell ~ 7 e^-30
            np.array([1e4, 1e4 - 40, 1e4 - 50, 0, 0, 0, 0, 0], F32),
            # a maximum whose m = top / T does not give it back in float64 at T = 0.7
            np.array([-7.3226733, -40, -40, -45, -50, -40, -60, -40], F32),
            np.array([0.5, -1, 2, 0.25, -3, 1.5, 0, 1], F32),
            np.array([2, -np.inf, 1, -np.inf, 0, 3, -1, -2], F32),
        ]
    )
    t = np.full(z.shape, 1 / 8, F32)
    t[1] = [0.05, 0.3, 0.1, 0.2, 0.1, 0.1, 0.1, 0.05]
    t[2] = t[3] = t[4] = np.eye(8, dtype=F32)[0]
    t[5] = _softmax32(z[5:6])[0]
    t[6] = [0.25, 0, 0.25, 0, 0.125, 0.25, 0.125, 0]
    return z, t


def _oracle(z: np.ndarray, t: np.ndarray, w: np.ndarray | None, **kw: Any) -> np.ndarray:
    """Per-row loss at 40 digits: sum_c w_c t~_c (LSE - z_c/T) + lambda omega LSE^2."""
    eps, temperature = kw.get("label_smoothing", 0.0), kw.get("temperature", 1.0)
    lam = kw.get("z_loss", 0.0)
    out = []
    with mpmath.workdps(40):
        for row, targets in zip(z.tolist(), t.tolist(), strict=True):
            classes = len(row)
            weights = [1.0] * classes if w is None else w.tolist()
            zs = [mpmath.mpf(x) / mpmath.mpf(temperature) for x in row]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in zs if x != -mpmath.inf))
            smooth = [
                (1 - mpmath.mpf(eps)) * mpmath.mpf(x) + mpmath.mpf(eps) / classes for x in targets
            ]
            loss = mpmath.fsum(
                mpmath.mpf(wc) * s * (lse - x)
                for wc, s, x in zip(weights, smooth, zs, strict=True)
                if wc * s != 0
            )
            pairs = zip(weights, targets, strict=True)
            omega = 1 if w is None else mpmath.fsum(a * b for a, b in pairs)
            out.append(float(loss + mpmath.mpf(lam) * omega * lse**2))
    return np.array(out)


def _both(z: np.ndarray, t: np.ndarray, **kw: Any) -> tuple[Any, Any]:
    """The fused loss (no generic term formed) and the generic path's, of one call."""
    with pytest.MonkeyPatch.context() as patch:
        calls = record_calls(patch, _softmax, GENERIC)
        fused = prepare_softmax_targets(z, t, **kw).loss()
        assert calls == []
        patch.setattr(_softmax, "_fused_target_logits", lambda *args: None)
        generic = prepare_softmax_targets(z, t, **kw).loss()
        assert calls == list(GENERIC)
    return fused, generic


def _check(got: Any, generic: Any, truth: np.ndarray) -> None:
    """``got`` float32, correctly rounded (half an ulp, 1e-3 for the oracle) and no
    further from ``truth`` than the generic path's ``generic``."""
    assert np.asarray(got).dtype == F32
    error = ulps_apart(got, truth, "float32")
    assert np.max(error) <= 0.5 + 1e-3, error
    assert np.all(error <= ulps_apart(generic, truth, "float32") + 1e-3)


OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.3},
    "weight": {"weight": np.array([0.5, 2.0, 1.0, 0.0, 3.0, 0.25, 1.5, 0.75])},
    "z_loss": {"z_loss": 1e-3},
    "temperature": {"temperature": 0.7},
    "all": {
        "weight": np.array([0.5, 2.0, 1.0, 0.0, 3.0, 0.25, 1.5, 0.75]),
        "label_smoothing": 0.1,
        "z_loss": 2e-4,
        "temperature": 1.3,
    },
}


@pytest.mark.parametrize("options", list(OPTIONS))
def test_hard_rows_within_half_an_ulp(options: str) -> None:
    kw = OPTIONS[options]
    z, t = _hard_rows()
    if kw.get("label_smoothing") or kw.get("weight") is None:
        z, t = z[:6], t[:6]  # (smoothing puts mass on the -inf logits: an infinite loss)
    truth = _oracle(z, t, kw.get("weight"), **kw)
    fused, generic = _both(z, t, reduction="none", **kw)
    _check(fused, generic, truth)
    if options == "plain":
        assert 0 < fused[2] < 1e-11  # the confident one-hot row's tiny loss, in full
    w = kw.get("weight")
    omega = np.ones(len(z)) if w is None else t.astype(np.float64) @ w
    for reduction, expected in [("sum", truth.sum()), ("mean", truth.sum() / omega.sum())]:
        got, generic = _both(z, t, reduction=reduction, **kw)
        _check(got, generic, np.array(expected))


def test_two_classes_and_an_infinite_loss() -> None:
    """V = 2 near certainty, and smoothing on a -inf logit: +inf, as the generic path."""
    z = np.array([[20, -20], [-15, 15], [0, np.float32(1e-7)]], F32)
    t = np.array([[1 - 2**-20, 2**-20], [0.0, 1.0], [0.5, 0.5]], F32)
    fused, generic = _both(z, t, reduction="none")
    _check(fused, generic, _oracle(z, t, None))
    z[0, 1] = -np.inf
    fused, generic = _both(z, t, reduction="none", label_smoothing=0.1)
    assert fused[0] == np.inf
    assert generic[0] == np.inf


@pytest.mark.parametrize("case", ["wide", "huge_spread"])
def test_wide_rows_against_fsum(case: str) -> None:
    """2**17 classes (the parallel kernel), against a float64 route of ``math.fsum``."""
    rng = np.random.default_rng(13)
    v = 2**17
    z = (rng.standard_normal((2, v)) * (3 if case == "wide" else 2e3)).astype(F32)
    t = rng.dirichlet(np.full(v, 0.5), 2).astype(F32)
    t /= t.sum(-1, keepdims=True, dtype=np.float64).astype(F32)
    truth = []
    for row, targets in zip(z.astype(np.float64), t.astype(np.float64), strict=True):
        sigma = row - row.max()  # exact: float32 values in float64
        ell = math.log(math.fsum(np.exp(sigma)))
        truth.append(math.fsum(targets) * ell - math.fsum(targets * sigma))
    fused, generic = _both(z, t, reduction="none", validate=False)
    _check(fused, generic, np.array(truth))


def test_the_public_function_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call past the small path (class weights; a 3-D batch) reaches the kernel."""
    z, t = _hard_rows()
    w = OPTIONS["weight"]["weight"]
    calls = record_calls(monkeypatch, _cpu_kernels, ["target_row_losses"])
    fail_on(monkeypatch, _softmax, GENERIC, expected="the fused loss")
    got = crossent.softmax_cross_entropy_with_targets(
        z[:6].reshape(2, 3, 8), t[:6].reshape(2, 3, 8), weight=w, reduction="none"
    )
    assert calls == ["target_row_losses"]
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(
        got.reshape(-1), prepare_softmax_targets(z[:6], t[:6], weight=w, reduction="none").loss()
    )


def test_parts_and_base() -> None:
    z, t = _hard_rows()
    kw = {"weight": OPTIONS["weight"]["weight"], "base": 2.0}
    parts, _ = _both(z, t, reduction="parts", **kw)
    truth = _oracle(z, t, kw["weight"]).sum() / math.log(2)
    assert parts.total.dtype == F32
    assert parts.normalizer.dtype == F32
    assert ulps_apart(parts.total, np.array(truth), "float32") <= 0.5 + 1e-3
    assert parts.normalizer == F32((t.astype(np.float64) @ kw["weight"]).sum())


@pytest.mark.parametrize("bad", ["nan", "inf", "row_of_minus_inf"])
def test_suspect_rows_take_the_generic_path(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    z, t = _hard_rows()
    if bad == "row_of_minus_inf":
        z[4] = -np.inf
    else:
        z[4, 2] = F32(bad)
    with np.errstate(invalid="ignore"):
        calls = record_calls(monkeypatch, _softmax, GENERIC)
        got = prepare_softmax_targets(z, t, reduction="none", validate=False).loss()
        assert calls == list(GENERIC)
        monkeypatch.setattr(_softmax, "_fused_target_logits", lambda *args: None)
        generic = prepare_softmax_targets(z, t, reduction="none", validate=False).loss()
    np.testing.assert_array_equal(got, generic)
    with pytest.raises(InputError) as refused:
        crossent.softmax_cross_entropy_with_targets(z, t, weight=OPTIONS["weight"]["weight"])
    with pytest.raises(InputError) as float64:
        crossent.softmax_cross_entropy_with_targets(
            z.astype(np.float64), t.astype(np.float64), weight=OPTIONS["weight"]["weight"]
        )
    assert str(refused.value) == str(float64.value)


@pytest.mark.parametrize("weighted", [False, True])
def test_peak_is_per_row(weighted: bool) -> None:
    """Peak extra memory of the loss: a few float64 vectors of the rows (main's generic
    float32 loss: about 2.2 times the logits)."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((256, 2048), F32)
    t = rng.dirichlet(np.ones(2048), 256).astype(F32)
    kw = {"weight": rng.uniform(0.5, 2.0, 2048)} if weighted else {}
    problem = prepare_softmax_targets(z, t, reduction="none", **kw)
    problem.loss()  # compiled
    peak, _ = peak_of(problem.loss)
    assert peak <= 16 * 8 * 256 + 8 * 2048 + 16 * 1024, peak


def test_helpers_keep_their_own_fastmath() -> None:
    """The kernel's out-of-line helpers under a caller with every fast-math flag: each
    keeps its own (``tests/test_issue13_fastmath_inheritance.py``): ``row_top`` no
    ``reassoc`` or ``arcp`` (its quotient), the row sums no ``nnan``/``ninf``/``afn``."""
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("needs Numba's compiler")
    from test_issue13_fastmath_inheritance import (
        _EVERY_FLAG,
        copy_of,
        instruction_flags,
        own_flags,
    )

    module = "crossent.losses._target_loss_numba"
    top, sums = copy_of(module, "row_top"), copy_of(module, "target_row_sums")
    caller = numba.njit(fastmath=_EVERY_FLAG)(
        lambda r, t, w: (top(r, 2.0, 1.0), sums(r, t, 2.0, 0.5, 1.0, 0.0, w))
    )
    row = np.array([1.0, 2.0], F32)
    caller(row, row, np.zeros(0))
    assert own_flags(top) == {"contract"}
    for helper in (top, sums):
        (signature,) = helper.signatures
        assert instruction_flags(helper.inspect_llvm(signature)) <= own_flags(helper)
