"""Issue 13, exactness: the measures of NumPy float16/float32 inputs, every form and layout.

Before, float32 logits and log-probabilities took NumPy's float32 path (the log-softmax
and each term rounded to float32, the log-partition's sum naive along a strided class
axis): 2 to 4 ulps off the float64 truth on C-contiguous rows, 16 to 32 on Fortran-ordered
ones or with the classes first; the perplexity's ``exp`` of float32 nats and the
``base=`` division of the rounded sum added their own. Now every result is the float64
value of the float32 (or float16) inputs rounded once: here within one float32 ulp of an
independent float64 reference (SciPy's ``logsumexp``, ``entr``, ``rel_entr``), for every
measure, pair of forms, dtype and layout, with and without Numba (the generic path then
computes in float64, ``_measures._Prepared.widened``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import special

import crossent
from crossent.info import _fused

FORMS = ("probs", "log_probs", "logits")
RNG = np.random.default_rng(20261202)
ROWS, CLASSES = 6, 1500


# ------------------------------------------------------------------ float64 references


def _log_probs(x: np.ndarray, form: str) -> np.ndarray:
    if form == "logits":
        return x - special.logsumexp(x, axis=-1, keepdims=True)
    if form == "log_probs":
        return x
    with np.errstate(divide="ignore"):
        return np.log(x)


def _probs(x: np.ndarray, form: str) -> np.ndarray:
    return x if form == "probs" else np.exp(_log_probs(x, form))


def _entropy(p: np.ndarray, fp: str) -> np.ndarray:
    return special.entr(_probs(p, fp)).sum(-1)


def _cross_entropy(p: np.ndarray, q: np.ndarray, fp: str, fq: str) -> np.ndarray:
    pp = _probs(p, fp)
    return -np.where(pp > 0, pp * _log_probs(q, fq), 0.0).sum(-1)


def _kl(p: np.ndarray, q: np.ndarray, fp: str, fq: str) -> np.ndarray:
    if fp == fq == "probs":
        return special.rel_entr(p, q).sum(-1)
    pp = _probs(p, fp)
    return np.where(pp > 0, pp * (_log_probs(p, fp) - _log_probs(q, fq)), 0.0).sum(-1)


def _js(p: np.ndarray, q: np.ndarray, fp: str, fq: str) -> np.ndarray:
    pp, qq = _probs(p, fp), _probs(q, fq)
    m = (pp + qq) / 2
    return (special.rel_entr(pp, m).sum(-1) + special.rel_entr(qq, m).sum(-1)) / 2


# (the call, its float64 reference from classes-last float64 values), by measure name
TWO_SIDED: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "cross_entropy": (crossent.cross_entropy, _cross_entropy),
    "cross_entropy_base2": (
        lambda p, q, **kw: crossent.cross_entropy(p, q, base=2, **kw),
        lambda p, q, fp, fq: _cross_entropy(p, q, fp, fq) / np.log(2),
    ),
    "kl_divergence": (crossent.kl_divergence, _kl),
    "js_divergence": (crossent.js_divergence, _js),
    "perplexity": (
        crossent.perplexity,
        lambda p, q, fp, fq: np.exp(_cross_entropy(p, q, fp, fq)),
    ),
    "decomposition.entropy": (
        lambda p, q, **kw: crossent.cross_entropy_decomposition(p, q, **kw).entropy,
        lambda p, q, fp, fq: _entropy(p, fp),
    ),
    "decomposition.kl_divergence": (
        lambda p, q, **kw: crossent.cross_entropy_decomposition(p, q, **kw).kl_divergence,
        _kl,
    ),
}
ONE_SIDED: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "entropy": (crossent.entropy, _entropy),
    "entropy_base2": (
        lambda p, **kw: crossent.entropy(p, base=2, **kw),
        lambda p, fp: _entropy(p, fp) / np.log(2),
    ),
    "perplexity": (crossent.perplexity, lambda p, fp: np.exp(_entropy(p, fp))),
}


# ------------------------------------------------------------------------ the inputs


def _values(form: str, dtype: type, seed: int) -> np.ndarray:
    """``(ROWS, CLASSES)`` values of ``form`` in ``dtype``, C-contiguous, classes last."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(CLASSES, 4.0), size=ROWS)  # none 0 in float16
    if form == "probs":
        return probs.astype(dtype)
    if form == "log_probs":
        return np.log(probs).astype(dtype)
    return (rng.standard_normal((ROWS, CLASSES)) * 3 + 1).astype(dtype)


def _layouts(x: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """``x`` (C-contiguous, classes last) in each layout, with its class axis."""
    wide = np.zeros((2 * x.shape[0], 3 * x.shape[1]), dtype=x.dtype)
    wide[::2, ::3] = x
    f3 = np.asfortranarray(x.reshape(2, ROWS // 2, CLASSES))  # no 2-D view: copied
    return {
        "C": (x, -1),
        "F": (np.asfortranarray(x), -1),
        "classes_first": (np.ascontiguousarray(x.T), 0),
        "strided": (wide[::2, ::3], -1),
        "fortran_3d": (f3, 2),
    }


def _as_rows(values: Any, layout: str) -> np.ndarray:
    return np.asarray(values).reshape(ROWS) if layout == "fortran_3d" else np.asarray(values)


def _ulps_off(got: Any, truth: np.ndarray) -> float:
    """The largest error of ``got`` (float32) in float32 ulps of the float64 truth."""
    got = np.asarray(got)
    assert got.dtype == np.float32
    assert np.all(np.isfinite(truth))
    unit = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
    return float(np.max(np.abs(got.astype(np.float64) - truth) / unit))


@pytest.fixture(params=["numba", "generic"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fused kernels (where Numba is installed) or the generic path."""
    if request.param == "numba":
        pytest.importorskip("numba")
    else:
        monkeypatch.setattr(_fused, "available", lambda: False)
    return str(request.param)


LAYOUTS = ("C", "F", "classes_first", "strided", "fortran_3d")
DTYPES = (np.float16, np.float32)


# (each layout in the loop, not a parameter: 1440 tests were 1.5-2 ms each of pytest's
# own time, CI time; every layout of every case still runs, the layout in the message)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("q_form", FORMS)
@pytest.mark.parametrize("p_form", FORMS)
@pytest.mark.parametrize("name", list(TWO_SIDED))
def test_issue13_two_sided_measures_within_an_ulp(
    name: str, p_form: str, q_form: str, dtype: type, path: str
) -> None:
    call, reference = TWO_SIDED[name]
    p, q = _values(p_form, dtype, 1), _values(q_form, dtype, 2)
    truth = reference(p.astype(np.float64), q.astype(np.float64), p_form, q_form)
    p_layouts, q_layouts = _layouts(p), _layouts(q)
    for layout in LAYOUTS:
        (pl, axis), (ql, _) = p_layouts[layout], q_layouts[layout]
        got = call(pl, ql, axis=axis, p_form=p_form, q_form=q_form, validate=False)
        assert _ulps_off(_as_rows(got, layout), truth) <= 1.0, layout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p_form", FORMS)
@pytest.mark.parametrize("name", list(ONE_SIDED))
def test_issue13_one_sided_measures_within_an_ulp(
    name: str, p_form: str, dtype: type, path: str
) -> None:
    call, reference = ONE_SIDED[name]
    p = _values(p_form, dtype, 3)
    truth = reference(p.astype(np.float64), p_form)
    for layout, (pl, axis) in _layouts(p).items():
        got = call(pl, axis=axis, p_form=p_form, validate=False)
        assert _ulps_off(_as_rows(got, layout), truth) <= 1.0, layout


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue13_broadcast_decomposition_and_eps_within_an_ulp(dtype: type, path: str) -> None:
    """P of one row against a batch of logits (the decomposition's entropy then has P's
    shape, which the kernel does not take), and the ``eps`` clip (no kernel)."""
    p, z = _values("probs", dtype, 4)[0], _values("logits", dtype, 5)
    p64, z64 = p.astype(np.float64), z.astype(np.float64)
    got = crossent.cross_entropy_decomposition(
        p, np.asfortranarray(z), q_form="logits", validate=False
    )
    assert _ulps_off(got.entropy, _entropy(p64, "probs")) <= 1.0
    assert _ulps_off(got.cross_entropy, _cross_entropy(p64, z64, "probs", "logits")) <= 1.0
    assert _ulps_off(got.kl_divergence, _kl(p64, z64, "probs", "logits")) <= 1.0
    q = _values("probs", dtype, 6)
    q[:, ::7] = 0.0  # clipped to eps
    truth = -(p64 * np.log(np.clip(q.astype(np.float64), 1e-30, 1.0))).sum(-1)
    got_eps = crossent.cross_entropy(p, np.asfortranarray(q), eps=1e-30, validate=False)
    assert _ulps_off(got_eps, truth) <= 1.0


def test_issue13_validated_calls_still_raise_and_pass() -> None:
    """The float64 widening runs after the validation of the float32 values."""
    z = _values("logits", np.float32, 7)
    p = _values("probs", np.float64, 8).astype(np.float32)
    value = crossent.perplexity(np.asfortranarray(p), np.asfortranarray(z), q_form="logits")
    assert value.dtype == np.float32
    assert value.shape == (ROWS,)
    bad = np.asfortranarray(z.copy())
    bad[1, 2] = np.nan
    with pytest.raises(crossent.InputError):
        crossent.perplexity(p, bad, q_form="logits")


# ------------------------------------------------------------- the elementwise measures

POINTWISE: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "surprisal": (lambda p, q: crossent.surprisal(p), lambda p, q: -np.log(p)),
    "binary_entropy": (
        lambda p, q: crossent.binary_entropy(p),
        lambda p, q: special.entr(p) + special.entr(1 - p),
    ),
    "binary_cross_entropy": (
        crossent.binary_cross_entropy,
        lambda p, q: -(special.xlogy(p, q) + special.xlog1py(1 - p, -q)),
    ),
    "binary_cross_entropy_eps": (
        lambda p, q: crossent.binary_cross_entropy(p, q, eps=1e-3),
        lambda p, q: (
            -(
                special.xlogy(p, np.clip(q, 1e-3, 1 - 1e-3))
                + special.xlog1py(1 - p, -np.clip(q, 1e-3, 1 - 1e-3))
            )
        ),
    ),
    "binary_cross_entropy_grad": (
        crossent.binary_cross_entropy_grad,
        lambda p, q: (q - p) / (q * (1 - q)),  # exact in float64 for float16/32 inputs
    ),
}


@pytest.mark.parametrize("layout", ["C", "F", "transposed", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(POINTWISE))
def test_issue13_elementwise_measures_within_an_ulp(
    name: str, dtype: type, layout: str, path: str
) -> None:
    """Each entry the float64 value rounded once (the float32 kernel read its entries as
    float32, Numba's ``float()`` of one, and the generic path computed in float32; the
    gradient's quotients cancel: thousands of ulps off)."""
    call, reference = POINTWISE[name]
    rng = np.random.default_rng(9)
    p, q = (rng.uniform(0.01, 0.99, size=(40, 50)).astype(dtype) for _ in range(2))
    q[:, ::5] = p[:, ::5] * np.array(1.01, dtype)  # nearly equal: the gradient cancels
    truth = reference(p.astype(np.float64), q.astype(np.float64))
    wide_p, wide_q = np.zeros((80, 100), dtype), np.zeros((80, 100), dtype)
    wide_p[::2, ::2], wide_q[::2, ::2] = p, q
    laid = {
        "C": (p, q, lambda x: x),
        "F": (np.asfortranarray(p), np.asfortranarray(q), lambda x: x),
        "transposed": (p.T, q.T, lambda x: x.T),
        "strided": (wide_p[::2, ::2], wide_q[::2, ::2], lambda x: x),
    }
    pl, ql, back = laid[layout]
    assert _ulps_off(back(np.asarray(call(pl, ql))), truth) <= 1.0
