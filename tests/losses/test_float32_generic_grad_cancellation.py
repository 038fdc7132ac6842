"""Float32 soft-target gradients where :math:`c\\,p - \\tilde t` cancels, on every path.

``softmax_cross_entropy_with_targets_grad`` of float32 logits through the generic
(Array API) path formed :math:`c\\,p - \\tilde t` in float32: where the target meets the
(capped, tempered) softmax the entry is a few float32 ulps of :math:`p`, and :math:`p` in
float32 is only good to a few ulps of itself, so such entries were hundreds to tens of
thousands of float32 ulps off (array_api_strict, torch, JAX with x64, and NumPy without
Numba), while the fused NumPy kernel was within one. The oracle: mpmath at 40 digits on
the float32 inputs' exact values, elementwise, in float32 ulps of the truth.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels

CAP, TEMPERATURE, Z_LOSS, EPS = 7.0, 1.7, 1e-3, 0.1
ULPS = 1.0  # rounding the float64 entry once (1/2), and its own float64 error
FLOAT64_SLACK = 3e-14  # float64's error of c p and t~ at these logits (|z'| < 20)


def _transformed(z: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """z' of float32 logits in float64 (no rounding of z itself)."""
    z = z.astype(np.float64)
    if options.get("soft_cap") is not None:
        z = options["soft_cap"] * np.tanh(z / options["soft_cap"])
    return z / options.get("temperature", 1.0)


def _hard_rows(options: dict[str, Any], *, rows: int = 6, classes: int = 40) -> tuple:
    """float32 logits and targets with :math:`\\tilde t_c \\approx c\\,p_c` on many classes:
    :math:`t = \\mathrm{fl}((c\\,p - \\varepsilon/V)/(1 - \\varepsilon))` on the classes where
    that is positive and a few are left to take the rest of the row's mass."""
    rng = np.random.default_rng(20261204)
    z = rng.normal(size=(rows, classes)) * np.array([[1.0], [3.0], [6.0], [0.3], [9.0], [2.0]])
    z = z.astype(np.float32)
    zp = _transformed(z, options)
    lse = np.log(np.exp(zp - zp.max(-1, keepdims=True)).sum(-1, keepdims=True)) + zp.max(
        -1, keepdims=True
    )
    p = np.exp(zp - lse)
    eps = options.get("label_smoothing", 0.0)
    c = 1.0 + 2.0 * options.get("z_loss", 0.0) * lse  # A = 1 to float32 accuracy
    want = (c * p - eps / classes) / (1.0 - eps)
    t = np.where(want > 0, want, 0.0)
    # the three likeliest classes of a row take the rest of its mass, unevenly (its
    # largest entries, against which the cancelling ones are tiny)
    free = np.zeros_like(t, dtype=bool)
    np.put_along_axis(free, np.argsort(-p, axis=-1)[:, :3], True, axis=-1)
    rest = 1.0 - np.where(free, 0.0, t).sum(-1, keepdims=True)
    share = np.where(free, p * rng.uniform(0.5, 1.5, size=p.shape), 0.0)
    t = np.where(free, rest * share / share.sum(-1, keepdims=True), t).astype(np.float32)
    assert (t >= 0).all()
    return z, t


@mpmath.workdps(40)
def _oracle(z: np.ndarray, t: np.ndarray, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\partial/\\partial z` of the summed loss, exact to 40 digits: per row
    :math:`((A + 2\\lambda\\,\\mathrm{LSE})\\,p - \\tilde t)\\,\\mathrm{sech}^2(z/s)/T` with
    :math:`\\tilde t = w \\odot ((1-\\varepsilon)t + \\varepsilon/V)` (class weights
    ``weight``, else 1), :math:`A = \\sum\\tilde t`, :math:`\\lambda` times
    :math:`\\omega = \\sum w\\,t` (1 without class weights); and
    the size of its two terms, :math:`(|c\\,p| + \\tilde t)\\,\\mathrm{sech}^2(z/s)/T`.
    Entries of a row with the same logit, target and weight are formed once (the
    stationary rows at V = 32000 repeat a few values; its weighted rows do not, but
    each entry's logit, target and weight is read into mpmath once), and the row's sums
    are exact dot products of the distinct entries and their counts (``mpmath.fdot``:
    the same sums as over every entry); :math:`p = e^{z'}/\\sum e^{z'}`."""
    cap, temp = options.get("soft_cap"), mpmath.mpf(options.get("temperature", 1.0))
    lam, eps = (
        mpmath.mpf(options.get("z_loss", 0.0)),
        mpmath.mpf(options.get("label_smoothing", 0.0)),
    )
    out, size = np.empty(z.shape), np.empty(z.shape)
    v = z.shape[-1]
    weighted = options.get("weight") is not None  # else each row weighs 1, as crossent's
    w = np.asarray(options.get("weight", np.ones(v)), dtype=np.float64)
    for i in range(z.shape[0]):
        entries = np.stack([np.asarray(z[i], np.float64), np.asarray(t[i], np.float64), w], 1)
        keys, inverse, counts = np.unique(entries, axis=0, return_inverse=True, return_counts=True)
        n = [int(k) for k in counts]
        zi = [mpmath.mpf(float(x)) for x in keys[:, 0]]
        ti = [mpmath.mpf(float(x)) for x in keys[:, 1]]
        wi = [mpmath.mpf(float(x)) for x in keys[:, 2]]
        slope = [mpmath.mpf(1)] * len(zi)
        if cap is not None:
            s = mpmath.mpf(cap)
            slope = [mpmath.sech(x / s) ** 2 for x in zi]
            zi = [s * mpmath.tanh(x / s) for x in zi]
        zi = [x / temp for x in zi]
        exps = [mpmath.exp(x) for x in zi]
        total = mpmath.fdot(n, exps)
        lse = mpmath.log(total)
        keep, spread = 1 - eps, eps / v
        tt = [wc * (keep * tc + spread) for wc, tc in zip(wi, ti, strict=True)]
        omega = mpmath.fdot(n, [wc * tc for wc, tc in zip(wi, ti, strict=True)]) if weighted else 1
        coef = mpmath.fdot(n, tt) + 2 * lam * omega * lse
        row, row_size = np.empty(len(zi)), np.empty(len(zi))
        scale = coef / total
        for k, (ek, tk, sk) in enumerate(zip(exps, tt, slope, strict=True)):
            cp, outer = scale * ek, sk / temp
            row[k] = float((cp - tk) * outer)
            row_size[k] = float((abs(cp) + tk) * outer)
        out[i], size[i] = row[inverse.reshape(-1)], row_size[inverse.reshape(-1)]
    return out, size


def _ulps(got: Any, truth: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The error of ``got`` in float32 ulps of ``truth``, less what float64 itself cannot
    resolve: :data:`FLOAT64_SLACK` times the size of the entry's two terms (an entry
    cancelled far past float32's resolution, :math:`10^{-11}` of its terms, is beyond
    the resolution of a float64 computation too: the fused kernel's included)."""
    got = np.asarray(got, dtype=np.float64)
    error = np.maximum(np.abs(got - truth) - FLOAT64_SLACK * size, 0.0)
    return error / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)


def _assert_within_ulps(got: np.ndarray, truth: np.ndarray, size: np.ndarray) -> None:
    """``got`` float32, every entry within :data:`ULPS` of ``truth`` (:func:`_ulps`), and
    the rows hard: many entries far below their row's largest."""
    assert got.dtype == np.float32
    ulps = _ulps(got, truth, size)
    assert (np.abs(truth) < 1e-4 * np.abs(truth).max(-1, keepdims=True)).sum() >= 20
    worst = np.unravel_index(np.argmax(ulps), ulps.shape)
    assert ulps.max() <= ULPS, (worst, got[worst], truth[worst], ulps.max())


OPTIONS = {
    "temperature": {"temperature": TEMPERATURE},
    "soft_cap": {"soft_cap": CAP},
    "smoothing": {"label_smoothing": EPS},
    "z_loss": {"z_loss": Z_LOSS},
    "all": {"label_smoothing": EPS, "soft_cap": CAP, "temperature": TEMPERATURE, "z_loss": Z_LOSS},
}


def _numpy(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    return z, t, np.asarray


def _strict(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    xs = pytest.importorskip("array_api_strict")
    return xs.asarray(z), xs.asarray(t), lambda g: np.from_dlpack(g)


def _torch(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(z), torch.from_numpy(t), lambda g: g.numpy()


def _jax(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as the suite's backend fixture has it
    import jax.numpy as jnp

    return jnp.asarray(z), jnp.asarray(t), np.asarray


BACKENDS = {"numpy": _numpy, "numpy_no_numba": _numpy, "array_api_strict": _strict}
BACKENDS.update(torch=_torch, jax=_jax)


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_float32_gradient_within_ulps_where_p_meets_target(
    backend: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "numpy" and not _cpu_kernels.available():
        pytest.skip("needs Numba")
    if backend == "numpy_no_numba":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    opts = OPTIONS[options]
    z, t = _hard_rows(opts)
    truth, size = _oracle(z, t, opts)
    zs, ts, back = BACKENDS[backend](z, t)
    got = back(crossent.softmax_cross_entropy_with_targets_grad(zs, ts, reduction="sum", **opts))
    _assert_within_ulps(got, truth, size)


def test_the_oracle_is_crossents_float64_gradient() -> None:
    """The oracle's formula is the float64 call's, within :data:`FLOAT64_SLACK`."""
    opts = OPTIONS["all"]
    z, t = _hard_rows(opts)
    g64 = crossent.softmax_cross_entropy_with_targets_grad(
        z.astype(np.float64), t.astype(np.float64), reduction="sum", validate=False, **opts
    )
    truth, size = _oracle(z, t, opts)
    assert (np.abs(g64 - truth) <= FLOAT64_SLACK * size).all()


def test_jitted_float32_gradient_within_ulps(jax_x64: Any) -> None:
    """``jax.jit`` (x64 on) traces the float64 call: within the same bar as eager."""
    jax = jax_x64
    import jax.numpy as jnp

    opts = OPTIONS["all"]
    z, t = _hard_rows(opts)
    truth, size = _oracle(z, t, opts)

    def grad(a: Any, b: Any) -> Any:
        return crossent.softmax_cross_entropy_with_targets_grad(
            a, b, reduction="sum", validate=False, **opts
        )

    jitted = jax.jit(grad)(jnp.asarray(z), jnp.asarray(t))
    assert jitted.dtype == jnp.float32
    assert _ulps(jitted, truth, size).max() <= ULPS


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jax_without_x64_stays_float32() -> None:
    """Without ``jax_enable_x64`` JAX has no float64: the call runs as before, in
    float32 (the documented limit), eager and jitted."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        import jax.numpy as jnp

        opts = OPTIONS["all"]
        z, t = _hard_rows(opts)

        def grad(a: Any, b: Any) -> Any:
            return crossent.softmax_cross_entropy_with_targets_grad(a, b, validate=False, **opts)

        eager = grad(jnp.asarray(z), jnp.asarray(t))
        jitted = jax.jit(grad)(jnp.asarray(z), jnp.asarray(t))
        assert eager.dtype == jitted.dtype == jnp.float32
        assert np.isfinite(np.asarray(jitted)).all()
        z, labels = _hard_label_rows(LABEL_OPTIONS["temperature"])  # integer labels: alike
        g = crossent.softmax_cross_entropy_grad(
            jnp.asarray(z), jnp.asarray(labels), **LABEL_OPTIONS["temperature"]
        )
        assert g.dtype == jnp.float32
        assert np.isfinite(np.asarray(g)).all()
    finally:
        jax.config.update("jax_enable_x64", before)


# Integer labels: the smoothed one-hot :math:`w \odot ((1-\varepsilon)e_y + \varepsilon/V)`
# meets :math:`c\,p` on most classes of a row (the smoothed loss's stationary point there).
LABEL_WEIGHT = np.linspace(0.5, 2.0, 40).astype(np.float32)
LABEL_OPTIONS = {
    "smoothing": {"label_smoothing": EPS},
    "temperature": {"label_smoothing": EPS, "temperature": TEMPERATURE},
    "soft_cap": {"label_smoothing": EPS, "soft_cap": CAP},
    "z_loss": {"label_smoothing": EPS, "z_loss": Z_LOSS},
    "weight": {"label_smoothing": EPS, "weight": LABEL_WEIGHT},
    "ignore_index": {"label_smoothing": EPS, "ignore_index": -100},
    "all": {
        "label_smoothing": EPS,
        "soft_cap": CAP,
        "temperature": TEMPERATURE,
        "z_loss": Z_LOSS,
        "weight": LABEL_WEIGHT,
        "ignore_index": -100,
    },
}


def _hard_label_rows(options: dict[str, Any], *, rows: int = 6, classes: int = 40) -> tuple:
    """float32 logits and int64 labels with :math:`c\\,p_c \\approx w_c\\varepsilon/V` on
    30 classes of each row: :math:`z' = \\log p + 3.5` (so :math:`\\mathrm{LSE} = 3.5`), the
    label and 9 other classes sharing the rest of the mass, then :math:`z` from
    :math:`z'` through temperature and soft-capping and rounded to float32 (the
    cancellation is then to about 1e-6 of the terms). Every other row's label is
    ``ignore_index`` where the options have one."""
    rng = np.random.default_rng(20261205)
    eps, w = options["label_smoothing"], options.get("weight", np.ones(classes))
    labels = rng.integers(0, classes, size=rows)
    z = np.empty((rows, classes))
    for i, y in enumerate(labels):
        c = (1 - eps) * w[y] + eps / classes * w.sum() + 2 * options.get("z_loss", 0.0) * w[y] * 3.5
        others = rng.permutation(np.delete(np.arange(classes), y))
        meet, free = others[:30], np.append(others[30:], y)
        p = np.empty(classes)
        p[meet] = w[meet] * eps / classes / c
        share = rng.uniform(0.2, 1.0, size=free.size)
        share[-1] = 4.0  # the label the likeliest
        p[free] = (1.0 - p[meet].sum()) * share / share.sum()
        scaled = (np.log(p) + 3.5) * options.get("temperature", 1.0)
        cap = options.get("soft_cap")
        z[i] = scaled if cap is None else cap * np.arctanh(scaled / cap)
    if options.get("ignore_index") is not None:
        labels[::2] = options["ignore_index"]
    return z.astype(np.float32), labels.astype(np.int64)


def _label_oracle(
    z: np.ndarray, labels: np.ndarray, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_oracle` of the one-hot targets (zero on ignored rows)."""
    kept = labels != options.get("ignore_index", -1)
    onehot = np.zeros(z.shape, np.float32)
    onehot[kept, labels[kept]] = 1.0
    truth, size = _oracle(z, onehot, options)
    return np.where(kept[:, None], truth, 0.0), size


def _float32_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy without Numba as on a CPU without NumPy's AVX-512 loops (the float32
    passes and float32 ``exp`` of ``_numpy_kernels``; :data:`EXACT_ALL` off)."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", False)


LABEL_BACKENDS = [*BACKENDS, "numpy_float32_passes"]


def _label_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set up ``backend`` of :data:`LABEL_BACKENDS`; the :data:`BACKENDS` key of its arrays."""
    if backend == "numpy" and not _cpu_kernels.available():
        pytest.skip("needs Numba")
    if backend == "numpy_no_numba":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    if backend == "numpy_float32_passes":
        _float32_passes(monkeypatch)
        return "numpy"
    return backend


@pytest.mark.parametrize("options", list(LABEL_OPTIONS))
@pytest.mark.parametrize("backend", LABEL_BACKENDS)
def test_float32_label_gradient_within_ulps_where_p_meets_smoothing(
    backend: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``softmax_cross_entropy_grad`` of float32 logits and integer labels: each entry
    within :data:`ULPS` of mpmath where :math:`c\\,p_c` meets :math:`w_c\\varepsilon/V`
    (the generic path formed it in float32: up to 1e10 ulps off at these rows, which
    cancel to about 1e-8 of the terms). The fused NumPy (Numba) kernels too, the small
    calls' (smoothing, temperature, z-loss: one compiled call) and the full path's
    (weights, ``ignore_index``): their :math:`p = e^{z/T - \\mathrm{LSE}}` erred by the
    kernel exp's 5.2e-11 and the statistics' LSE (about 5e-13), 1.6e4-8.7e5 ulps here
    (issue 13); NumPy without Numba off AVX-512 (its float32 passes) 1.1e7-1.6e9."""
    backend = _label_backend(backend, monkeypatch)
    opts = dict(LABEL_OPTIONS[options])
    z, labels = _hard_label_rows(opts)
    truth, size = _label_oracle(z, labels, opts)
    zs, ys, back = BACKENDS[backend](z, labels)
    if "weight" in opts:  # float32, of the backend's library
        opts["weight"] = BACKENDS[backend](LABEL_WEIGHT, labels)[0]
    got = back(crossent.softmax_cross_entropy_grad(zs, ys, reduction="sum", **opts))
    _assert_within_ulps(got, truth, size)


def test_the_label_oracle_is_crossents_float64_gradient() -> None:
    """The label oracle's formula is the float64 call's, within :data:`FLOAT64_SLACK`."""
    opts = LABEL_OPTIONS["all"]
    z, labels = _hard_label_rows(opts)
    g64 = crossent.softmax_cross_entropy_grad(z.astype(np.float64), labels, reduction="sum", **opts)
    truth, size = _label_oracle(z, labels, opts)
    assert (np.abs(g64 - truth) <= FLOAT64_SLACK * size).all()


# Every size the NumPy paths take (issue 13): V = 2 and 40 (the small calls, one compiled
# call without weights; the serial kernel with them), V = 32000 (the parallel kernel),
# rows where p_c meets the smoothing on every class but a few, the label included. Two
# rows at V = 32000 (64000 logits, past SERIAL_ELEMENTS): one of each kind of
# _stationary_rows (the label's third or not; with ignore_index, ignored or not).
SIZE_OPTIONS = {
    name: LABEL_OPTIONS[name] for name in ("smoothing", "temperature", "z_loss", "weight", "all")
}
SIZE_OPTIONS["kernel_all"] = {k: v for k, v in LABEL_OPTIONS["all"].items() if k != "soft_cap"}
SIZES = [(2, 24), (40, 12), (32000, 2)]


def _stationary_rows(options: dict[str, Any], *, rows: int, classes: int) -> tuple:
    """float32 logits and int64 labels at label smoothing's stationary point: :math:`p =
    \\tilde t/c` on every class (:math:`\\tilde t = w \\odot ((1-\\varepsilon)e_y +
    \\varepsilon/V)`, :math:`c = A + 2\\lambda w_y\\,\\mathrm{LSE}`, :math:`\\mathrm{LSE} =
    3.5`) but two (not the label), which take the rest of the mass, in every other row;
    in the others the label holds a third of the row besides (so only the other classes
    meet theirs). Weights: :data:`LABEL_WEIGHT`'s range, one per class. Every other
    row's label is ``ignore_index`` where the options have one (as
    :func:`_hard_label_rows`)."""
    rng = np.random.default_rng(20261206 + classes)
    eps, lam = options["label_smoothing"], options.get("z_loss", 0.0)
    w = np.ones(classes)
    if "weight" in options:
        w = rng.uniform(0.5, 2.0, size=classes).astype(np.float32).astype(np.float64)
    labels = rng.integers(0, classes, size=rows)
    z = np.empty((rows, classes))
    for i, y in enumerate(labels):
        tt = w * eps / classes
        tt[y] += (1 - eps) * w[y]
        p = tt / (tt.sum() + 2 * lam * w[y] * 3.5)
        if i % 2:  # the label takes a third of the row: the rest scaled down
            p *= 2.0 / 3.0
            p[y] += 1.0 / 3.0
        free = rng.choice(np.delete(np.arange(classes), y), size=min(2, classes - 1), replace=False)
        p[free] += (1.0 - p.sum()) / free.size
        scaled = (np.log(p) + 3.5) * options.get("temperature", 1.0)
        cap = options.get("soft_cap")
        z[i] = scaled if cap is None else cap * np.arctanh(scaled / cap)
    if options.get("ignore_index") is not None:
        labels[::2] = options["ignore_index"]
    return z.astype(np.float32), labels.astype(np.int64), w.astype(np.float32)


def _size_case(options: str, classes: int, rows: int) -> tuple:
    """``(z, labels, keywords, truth, size)`` of :func:`_stationary_rows`, the oracle's
    once per case (mpmath at V = 32000 takes seconds)."""
    return _size_cases(options, classes, rows)


@functools.cache
def _size_cases(options: str, classes: int, rows: int) -> tuple:
    opts = dict(SIZE_OPTIONS[options])
    z, labels, w = _stationary_rows(opts, rows=rows, classes=classes)
    if "weight" in opts:
        opts["weight"] = w
    truth, size = _label_oracle(z, labels, opts)
    return z, labels, opts, truth, size


def _cancelled(truth: np.ndarray, size: np.ndarray) -> int:
    """How many entries cancel to below 1e-4 of their terms (the rows are hard)."""
    return int((np.abs(truth) < 1e-4 * size).sum())


@pytest.mark.parametrize(("classes", "rows"), SIZES)
@pytest.mark.parametrize("options", list(SIZE_OPTIONS))
@pytest.mark.parametrize("backend", ["numpy", "numpy_no_numba", "numpy_float32_passes"])
def test_label_gradient_within_ulps_at_the_smoothing_stationary_point(
    backend: str, options: str, classes: int, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 logits, integer labels, every entry within :data:`ULPS` of mpmath where
    nearly every entry cancels (the label's too, in every other row: :math:`c\\,(p_y - 1)`
    against :math:`c - w_y(1 - \\varepsilon)`), at V = 2 and 40 (the small calls, or the
    serial kernel with weights and ``ignore_index``) and V = 32000 (the parallel
    kernel), on every NumPy path. Before (issue 13): the Numba kernels 1e3-1e6 ulps off,
    NumPy's float32 passes 1e6-1e9."""
    if classes == 32000 and options not in ("smoothing", "kernel_all"):
        pytest.skip("V = 32000: two of the options (the oracle's time)")
    _label_backend(backend, monkeypatch)
    z, labels, opts, truth, size = _size_case(options, classes, rows)
    got = crossent.softmax_cross_entropy_grad(z, labels, reduction="sum", **opts)
    assert got.dtype == np.float32
    assert _cancelled(truth, size) >= min(z.size // 4, 200)
    ulps = _ulps(got, truth, size)
    worst = np.unravel_index(np.argmax(ulps), ulps.shape)
    assert ulps.max() <= ULPS, (worst, got[worst], truth[worst], ulps.max())


@pytest.mark.parametrize(("classes", "rows"), SIZES)
@pytest.mark.parametrize("options", ["smoothing", "kernel_all", "all"])
def test_float64_label_gradient_within_float64s_resolution_there(
    options: str, classes: int, rows: int
) -> None:
    """float64 logits of the same rows (the small calls' float64 hybrid, or the generic
    path): each entry within :data:`FLOAT64_SLACK` of its terms and a float64 ulp of the
    truth."""
    if classes == 32000 and options == "all":
        pytest.skip("V = 32000: two of the options (the oracle's time)")
    z, labels, opts, truth, size = _size_case(options, classes, rows)
    got = crossent.softmax_cross_entropy_grad(z.astype(np.float64), labels, reduction="sum", **opts)
    assert got.dtype == np.float64
    assert (np.abs(got - truth) <= FLOAT64_SLACK * size + np.spacing(np.abs(truth))).all()
