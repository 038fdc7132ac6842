r"""The label's gradient entry of the softmax cross-entropy with a z-loss (issue 13 follow-up).

With a z-loss :math:`\lambda` the gradient of a row (with respect to :math:`z' = z/T`)
is :math:`c\,p - w\odot\tilde t` with :math:`c = A + 2\lambda\omega\operatorname{LSE}`,
and every path formed the label's entry as :math:`c\operatorname{expm1}(\log p_y) +
(c - t_y)` with :math:`c` rounded to float64 first: :math:`c - t_y` kept
:math:`2\lambda\omega\operatorname{LSE}` only to an ulp of :math:`A`. Logits ``[0, -80]``
(label 0): :math:`\operatorname{LSE} = 1.8\cdot10^{-35}` and the entry is
:math:`-1.8\cdot10^{-35}(1 - 2\lambda)`, which came out as
:math:`-1.8\cdot10^{-35}`; logits ``[5, 0]`` with :math:`\lambda = 10^{-4}`: the entry
is :math:`-5.7\cdot10^{-3}`, and came out 38 float64 ulps off. The entry is now
:math:`c\operatorname{expm1}(\log p_y) + ((A - t_y) + 2\lambda\omega\operatorname{LSE})`
on every path (:math:`A - t_y` as before: 0 without smoothing).

Rows: the label at the maximum (:math:`p_y > 1/2`, the ``expm1`` form) with the
log-sum-exp tiny and positive (maximum 0), tiny and negative (maximum :math:`-2^{-40}`),
about the gap (maximum = gap) and about -1000; one row whose label is not the maximum.
Paths: the public gradient on the compiled small calls (float32: one compiled call;
float64: the hybrid) and on large calls (float32: the fused kernels, Numba's and the
NumPy twins under both settings of ``EXACT_ALL``; float64: the lean and the full generic
path), ``validate`` on and off, reductions ``'mean'``, ``'sum'`` and ``'none'``, label
smoothing 0 and 0.1, class weights, temperatures 1 and 0.7; the generic path's ``where``
form (classes on axis 0, torch tensors); ``crossent.torch.cross_entropy``'s backward
(float64 and float32); and ``crossent.torch``'s fused linear and vocab-parallel losses
(one gloo rank), whose label entry :math:`g\operatorname{expm1}(\log p_y) + (c - g)\,p_y`
had the same :math:`c - g`. With :math:`\lambda = 1` the entry of ``[0, -80]`` is
:math:`+1.8\cdot10^{-35}`: it came out with the wrong sign.

``soft_cap`` :math:`s` with the z-loss on the same paths (:math:`s` = 64, where
:math:`z/s` is exact, and 20): the oracle of the capped logits :math:`s\tanh(z/s)`
(formed in mpmath from the exact :math:`z`) times the cap's slope
:math:`\operatorname{sech}^2(z/s)`, also checked against mpmath's numerical derivative.
Soft-capping keeps every NumPy call off the compiled small calls and the fused kernels
(the generic path, float64; asserted), and ``crossent.torch``'s off its fused kernels
(the generic path in float64 on the CPU); the fused linear and vocab-parallel losses
cap and apply the slope themselves. No path was wrong: the tolerances add the rounding
of the capped logits, which every path rounds (:math:`\max_c|z'_c|` ulps, as
:math:`z/T` where :math:`1/T` is inexact), and of :math:`z/s` in the slope
(:math:`|z_c/s|` ulps).

Oracle: :math:`\partial/\partial z` of :math:`(1-\varepsilon)w_y(\operatorname{LSE} -
z'_y) + \tfrac{\varepsilon}{C}\sum_c w_c(\operatorname{LSE} - z'_c) + \lambda w_y
\operatorname{LSE}^2` (``crossent.torch.cross_entropy``'s formula) times the reduction's
scale, in mpmath at 50 digits from the float inputs, with :math:`p_y - 1 = -s/(1 + s)`,
:math:`s = \sum_{c\ne y}e^{z'_c - z'_y}` (no cancellation), checked against mpmath's
numerical derivative of that loss. The label's entry within 4 ulps (relative; more only
by the rounding of :math:`z/T` where :math:`1/T` is inexact, and, with smoothing, by
4 ulps of :math:`A` and :math:`t_y`, which every path rounds); the other entries within
:math:`4 + |m'| + \max_c|z'_c - m'|` ulps (the rounding of :math:`z'_c -
\operatorname{LSE}`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _softmax_small

from kernel_paths import use_kernel_path

#: The oracle's working precision, set where it runs: 50 digits (its one cancellation,
#: :math:`-c\,s/(1 + s) + 2\lambda\omega\operatorname{LSE}` of a ``[0, -80]`` row, is
#: by a factor :math:`1 - 2\lambda` at most; :math:`A - t_y` is exactly 0 without
#: smoothing).
DIGITS = 50

_CLASSES = 6
_LAMBDAS = (1e-4, 1.0)
_TINY = -(2.0**-40)  # a maximum below 0 by more than the rest's mass: LSE < 0, tiny


def _base_rows(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the module's docstring (``_CLASSES`` classes, values exact in float32)
    and their labels: the label at ``(3 i) % C``, the others ``k/4`` below the gap."""
    gaps = [0.5, 2.0, 5.0, 30.0, 80.0] + ([300.0] if dtype == np.float64 else [])
    rows, labels = [], []
    for gap in gaps:
        tops = [0.0, gap, -1000.0] + ([_TINY] if gap >= 30.0 else [])
        for top in tops:
            label = (3 * len(rows)) % _CLASSES
            row = top - gap - 0.25 * np.arange(_CLASSES)
            row[label] = top
            rows.append(row)
            labels.append(label)
    rows.append(np.array([1.5, 0.25, -2.0, 0.75, 3.0, -0.5]))  # label 1: p_y < 1/2
    labels.append(1)
    return np.asarray(rows, dtype=dtype), np.asarray(labels, dtype=np.int64)


@functools.cache
def _row_oracle(
    z: tuple[float, ...],
    y: int,
    temperature: float,
    lam: float,
    eps: float,
    weight: tuple[float, ...] | None,
    cap: float | None = None,
) -> tuple[np.ndarray, float]:
    r"""The row's gradient (reduction ``'sum'``, float64) and the size of the label
    entry's rounded terms: :math:`(|c(p_y - 1)| + |2\lambda\omega\operatorname{LSE}|)/T`,
    plus :math:`(|A| + |t_y|)/T` with smoothing (:math:`A - t_y = 0` without).

    With ``cap`` (``soft_cap`` :math:`s`): the same of the capped logits
    :math:`s\tanh(z/s)`, formed here from the exact :math:`z`, each entry (and its
    size) times the cap's slope :math:`\operatorname{sech}^2(z_c/s)` (the chain rule)."""
    with mpmath.workdps(DIGITS):
        t = mpmath.mpf(temperature)
        raw = [mpmath.mpf(v) for v in z]
        slope = [mpmath.mpf(1)] * len(raw)
        if cap is not None:
            s_cap = mpmath.mpf(cap)
            slope = [mpmath.sech(v / s_cap) ** 2 for v in raw]
            raw = [s_cap * mpmath.tanh(v / s_cap) for v in raw]
        zs = [v / t for v in raw]
        classes = len(zs)
        w = [mpmath.mpf(1)] * classes if weight is None else [mpmath.mpf(v) for v in weight]
        e, lam_mp = mpmath.mpf(eps), mpmath.mpf(lam)
        rest = {c: mpmath.exp(v - zs[y]) for c, v in enumerate(zs) if c != y}
        s = mpmath.fsum(rest.values())
        lse = zs[y] + mpmath.log1p(s)
        omega = w[y]
        a = (1 - e) * omega + e / classes * mpmath.fsum(w)
        target = [e / classes * w[c] + ((1 - e) * omega if c == y else 0) for c in range(classes)]
        z_part = 2 * lam_mp * omega * lse
        coef = a + z_part
        grad = []
        for c in range(classes):
            if c == y:  # c p_y - t_y = c (p_y - 1) + (a - t_y) + 2 lambda omega LSE
                grad.append(coef * (-s / (1 + s)) + (a - target[y]) + z_part)
            else:
                grad.append(coef * rest[c] / (1 + s) - target[c])
        # the size of each entry's rounded terms: c p_c and t_c (they cancel where
        # smoothing's t_c is near c p_c); at the label as the docstring says
        sizes = [
            abs(coef * rest[c] / (1 + s)) + abs(target[c]) if c != y else 0 for c in range(classes)
        ]
        sizes[y] = abs(coef * s / (1 + s)) + abs(z_part) + (abs(a) + abs(target[y]) if eps else 0)
        return (
            np.array([float(g * k / t) for g, k in zip(grad, slope, strict=True)]),
            np.array([float(v * k / t) for v, k in zip(sizes, slope, strict=True)]),
        )


@mpmath.workdps(DIGITS)
def _oracle(
    z: np.ndarray,
    labels: np.ndarray,
    *,
    temperature: float,
    lam: float,
    eps: float,
    weight: np.ndarray | None,
    reduction: str,
    cap: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_row_oracle` of each row times the reduction's scale (``'mean'``:
    :math:`1/\\sum_i\\omega_i`, the sum exact: each label's weight times its count),
    and the label entries' sizes likewise. Each distinct row is formed and scaled once
    (the large calls repeat the base rows) and placed by :func:`numpy.unique`'s
    inverse."""
    w = None if weight is None else tuple(np.asarray(weight, dtype=np.float64).tolist())
    labels = np.asarray(labels, dtype=np.int64)
    scale = None
    if reduction == "mean":
        ys, counts = np.unique(labels, return_counts=True)
        scale = 1 / mpmath.fsum(
            mpmath.mpf(1 if w is None else w[int(y)]) * int(k)
            for y, k in zip(ys.tolist(), counts.tolist(), strict=True)
        )
    keys = np.column_stack([np.asarray(z, dtype=np.float64), labels.astype(np.float64)])
    distinct, where = np.unique(keys, axis=0, return_inverse=True)
    grads, sizes = [], []
    for key in distinct:
        g, size = _row_oracle(tuple(key[:-1].tolist()), int(key[-1]), temperature, lam, eps, w, cap)
        if scale is not None:
            g, size = (np.array([float(mpmath.mpf(v) * scale) for v in a]) for a in (g, size))
        grads.append(g)
        sizes.append(size)
    where = np.asarray(where).reshape(-1)
    return np.array(grads)[where], np.array(sizes)[where]


def _check(
    got: Any,
    z: np.ndarray,
    labels: np.ndarray,
    want: np.ndarray,
    sizes: np.ndarray,
    temperature: float,
    cap: float | None = None,
) -> None:
    """Each label entry within 4 ulps (relative), plus :math:`\\max_c|z'_c|` ulps where
    :math:`1/T` is inexact; each other entry within :math:`4 + |m'| + \\max_c|z'_c -
    m'|` ulps more; each entry within 4 ulps of its terms' ``sizes`` more.

    With ``cap`` (``soft_cap`` :math:`s`), :math:`z'` are the capped logits
    :math:`s\\tanh(z/s)/T`, which every path rounds (as :math:`z/T` where :math:`1/T` is
    inexact: :math:`\\max_c|z'_c|` ulps more at every temperature), and each entry
    :math:`|z_c/s|` ulps more: the rounding of :math:`z/s` moves the cap's slope
    :math:`\\operatorname{sech}^2(z_c/s)` by :math:`2|\\tanh(z_c/s)|` times it."""
    got = np.asarray(got)
    info = np.finfo(got.dtype)
    eps, atol = float(info.eps), 4 * float(info.smallest_subnormal)
    entries = got.astype(np.float64)
    assert entries.shape == want.shape
    z = np.asarray(z, dtype=np.float64)
    slope_ulps = np.zeros(z.shape) if cap is None else np.abs(z / cap)
    if cap is not None:
        z = cap * np.tanh(z / cap)
    scaled = z / temperature
    top = np.max(scaled, axis=-1)
    # z/T rounded: z * fl(1/T); the capped logits rounded at any T
    inexact = temperature not in (0.5, 1.0, 2.0) or cap is not None
    widest = np.max(np.abs(scaled), axis=-1) if inexact else np.zeros(len(labels))
    at = np.arange(len(labels))
    label_got, label_want = entries[at, labels], want[at, labels]
    label_ulps = 4 + widest + slope_ulps[at, labels]
    label_tol = label_ulps * eps * np.abs(label_want) + 4 * eps * sizes[at, labels] + atol
    bad = np.flatnonzero(np.abs(label_got - label_want) > label_tol)
    assert bad.size == 0, ("label", bad[:4], label_got[bad[:4]], label_want[bad[:4]])
    spread = np.max(top[:, None] - scaled, axis=-1)
    rtol = ((4 + np.abs(top) + spread + widest)[:, None] + slope_ulps) * eps
    off = np.ones(want.shape, dtype=bool)
    off[at, labels] = False
    error = np.abs(entries - want)
    bad_off = np.argwhere(off & (error > rtol * np.abs(want) + 4 * eps * sizes + atol))
    assert bad_off.size == 0, ("other", bad_off[:4], entries[tuple(bad_off[:4].T)])


def _weight(dtype: type) -> np.ndarray:
    return np.linspace(0.5, 2.0, _CLASSES).astype(dtype)


def _spy_compiled_small(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each call that reached the compiled small gradient
    (``_softmax_small.label_gradient``: float32's one call, float64's hybrid) was
    answered there (not handed on to the full path)."""
    taken: list[bool] = []
    real = _softmax_small.label_gradient

    def spy(*args: Any) -> Any:
        result = real(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(_softmax_small, "label_gradient", spy)
    return taken


@pytest.fixture(params=["numba", "numpy_exact_all", "numpy_float32_passes"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Numba's kernels and compiled small calls (where installed), or the NumPy twins
    with each ``EXACT_ALL`` (float64: the generic path, no hybrid)."""
    use_kernel_path(request.param, monkeypatch)
    return str(request.param)


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_public_gradient(
    monkeypatch: pytest.MonkeyPatch,
    kernel_path: str,
    size: str,
    dtype: type,
    reduction: str,
    eps: float,
    weighted: bool,
    temperature: float,
) -> None:
    """``softmax_cross_entropy_grad`` on one call of the base rows (the compiled small
    calls, which answer every call without class weights where Numba is installed)
    and on them repeated past ``SERIAL_ELEMENTS`` (the fused kernels, the lean and the
    full path), ``validate`` on and off."""
    if dtype == np.float64 and kernel_path == "numpy_float32_passes":
        pytest.skip("float64 takes no kernel: one NumPy setting is enough")
    taken = _spy_compiled_small(monkeypatch)
    z, labels = _base_rows(dtype)
    if size == "large":
        repeat = _cpu_kernels.SERIAL_ELEMENTS // z.size + 1
        z, labels = np.tile(z, (repeat, 1)), np.tile(labels, repeat)
    weight = _weight(dtype) if weighted else None
    for lam in _LAMBDAS:
        want, sizes = _oracle(
            z,
            labels,
            temperature=temperature,
            lam=lam,
            eps=eps,
            weight=weight,
            reduction=reduction,
        )
        for validate in (True, False):
            options: dict[str, Any] = {"reduction": reduction, "label_smoothing": eps}
            options |= {"temperature": temperature, "z_loss": lam, "validate": validate}
            if weight is not None:  # (a ``weight`` keyword, even None, takes the full path)
                options["weight"] = weight
            got = crossent.softmax_cross_entropy_grad(z, labels, **options)
            assert np.asarray(got).dtype == dtype
            _check(got, z, labels, want, sizes, temperature)
    compiled = size == "small" and not weighted and kernel_path == "numba"
    assert taken == ([True] * 2 * len(_LAMBDAS) if compiled else []), taken


#: ``soft_cap`` values: :math:`z/s` exact (a power of two) and rounded; the rows' gaps of
#: 30 and more capped to less than :math:`2s` (a row with its maximum at 0 and the rest
#: past :math:`-s` has a log-sum-exp of :math:`e^{-s}` or so, the entry's cancellation).
_SOFT_CAPS = (64.0, 20.0)


def _spy_statistics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which row statistics each call formed: the generic path's (``'generic'``) or the
    fused kernels' (``'kernels'``)."""
    from crossent.losses import _softmax

    seen: list[str] = []
    for name, tag in (("_generic_rows", "generic"), ("_kernel_rows", "kernels")):
        real = getattr(_softmax, name)

        def spy(*args: Any, _real: Any = real, _tag: str = tag, **kwargs: Any) -> Any:
            seen.append(_tag)
            return _real(*args, **kwargs)

        monkeypatch.setattr(_softmax, name, spy)
    return seen


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_soft_cap_public_gradient(
    monkeypatch: pytest.MonkeyPatch,
    size: str,
    dtype: type,
    reduction: str,
    eps: float,
    weighted: bool,
    temperature: float,
) -> None:
    """``soft_cap`` with the z-loss: ``softmax_cross_entropy_grad`` against the oracle of
    the capped logits :math:`s\\tanh(z/s)` and their chain rule, one call of the base rows
    and the rows repeated past ``SERIAL_ELEMENTS``, ``validate`` on and off. Soft-capping
    keeps every call off the compiled small calls and the fused kernels (the generic
    path, in float64 for float32 logits): asserted, with Numba installed or not."""
    taken = _spy_compiled_small(monkeypatch)
    statistics = _spy_statistics(monkeypatch)
    z, labels = _base_rows(dtype)
    if size == "large":
        repeat = _cpu_kernels.SERIAL_ELEMENTS // z.size + 1
        z, labels = np.tile(z, (repeat, 1)), np.tile(labels, repeat)
    weight = _weight(dtype) if weighted else None
    for cap in _SOFT_CAPS:
        for lam in _LAMBDAS:
            want, sizes = _oracle(
                z,
                labels,
                temperature=temperature,
                lam=lam,
                eps=eps,
                weight=weight,
                reduction=reduction,
                cap=cap,
            )
            for validate in (True, False):
                options: dict[str, Any] = {"reduction": reduction, "label_smoothing": eps}
                options |= {"temperature": temperature, "z_loss": lam, "validate": validate}
                options |= {"soft_cap": cap}
                if weight is not None:
                    options["weight"] = weight
                got = crossent.softmax_cross_entropy_grad(z, labels, **options)
                assert np.asarray(got).dtype == dtype
                _check(got, z, labels, want, sizes, temperature, cap=cap)
    assert taken == []
    assert statistics
    assert set(statistics) == {"generic"}, set(statistics)


@pytest.mark.parametrize("layout", ["class_axis_0", "torch_tensors"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cap", [None, *_SOFT_CAPS])
def test_generic_where_form(layout: str, eps: float, weighted: bool, cap: float | None) -> None:
    """The generic path's ``where`` form: float64 NumPy logits with the classes on axis
    0, or float64 torch tensors; without and with ``soft_cap``."""
    z, labels = _base_rows(np.float64)
    weight = _weight(np.float64) if weighted else None
    for lam in _LAMBDAS:
        options: dict[str, Any] = {
            "weight": weight,
            "reduction": "sum",
            "label_smoothing": eps,
            "temperature": 0.7,
            "z_loss": lam,
            "soft_cap": cap,
        }
        if layout == "torch_tensors":
            torch = pytest.importorskip("torch")
            if weight is not None:
                options["weight"] = torch.from_numpy(weight)
            got = crossent.softmax_cross_entropy_grad(
                torch.from_numpy(z), torch.from_numpy(labels), **options
            ).numpy()
        else:
            got = np.asarray(
                crossent.softmax_cross_entropy_grad(z.T.copy(), labels, axis=0, **options)
            ).T
        want, sizes = _oracle(
            z, labels, temperature=0.7, lam=lam, eps=eps, weight=weight, reduction="sum", cap=cap
        )
        _check(got, z, labels, want, sizes, 0.7, cap=cap)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("cap", [None, *_SOFT_CAPS])
def test_torch_cross_entropy_backward(
    dtype: str, reduction: str, eps: float, weighted: bool, temperature: float, cap: float | None
) -> None:
    """``crossent.torch.cross_entropy``'s backward (float64: the generic path on torch
    tensors; float32: the fused kernels, or with ``soft_cap`` the generic path in
    float64, its result rounded to float32)."""
    torch = pytest.importorskip("torch")
    ct = pytest.importorskip("crossent.torch")
    np_dtype = np.float64 if dtype == "float64" else np.float32
    z, labels = _base_rows(np_dtype)
    weight = _weight(np_dtype) if weighted else None
    for lam in _LAMBDAS:
        leaf = torch.from_numpy(z.copy()).requires_grad_(True)
        loss = ct.cross_entropy(
            leaf,
            torch.from_numpy(labels),
            weight=None if weight is None else torch.from_numpy(weight),
            reduction=reduction,
            label_smoothing=eps,
            z_loss=lam,
            temperature=temperature,
            soft_cap=cap,
        )
        loss.sum().backward()
        assert leaf.grad is not None
        assert leaf.grad.dtype == leaf.dtype
        want, sizes = _oracle(
            z,
            labels,
            temperature=temperature,
            lam=lam,
            eps=eps,
            weight=weight,
            reduction=reduction,
            cap=cap,
        )
        _check(leaf.grad.numpy(), z, labels, want, sizes, temperature, cap=cap)


@pytest.mark.parametrize(
    ("row", "label", "temperature", "lam", "eps", "weighted", "cap"),
    [
        ((0.0, -80.0, -80.25), 0, 1.0, 1e-4, 0.0, False, None),
        ((0.0, -80.0, -80.25), 0, 1.0, 1.0, 0.1, True, None),
        ((_TINY, -30.0, -30.25), 0, 0.7, 1.0, 0.0, True, None),
        ((5.0, 0.0, -0.25), 0, 1.0, 1e-4, 0.0, False, None),
        ((-1000.0, -1005.0, -1005.25), 0, 0.7, 1e-4, 0.1, False, None),
        ((1.5, 0.25, -2.0), 1, 1.0, 1.0, 0.1, True, None),
        # soft_cap: the capped logits' oracle and its chain rule
        ((0.0, -80.0, -80.25), 0, 1.0, 1e-4, 0.0, False, 64.0),
        ((0.0, -80.0, -80.25), 0, 0.7, 1.0, 0.1, True, 20.0),
        ((_TINY, -30.0, -30.25), 0, 0.7, 1.0, 0.0, True, 20.0),
        ((5.0, 0.0, -0.25), 0, 1.0, 1e-4, 0.0, False, 4.0),
        ((1.5, 0.25, -2.0), 1, 1.0, 1.0, 0.1, True, 1.0),
    ],
)
def test_oracle_against_numerical_derivative(
    row: tuple[float, ...],
    label: int,
    temperature: float,
    lam: float,
    eps: float,
    weighted: bool,
    cap: float | None,
) -> None:
    """The oracle (rounded to float64) is mpmath's numerical derivative of the loss (of
    the capped logits :math:`s\\tanh(z/s)` with ``cap``)."""
    weight = (0.5, 1.25, 2.0) if weighted else None
    want, _ = _row_oracle(row, label, temperature, lam, eps, weight, cap)
    with mpmath.workdps(60):
        w = [mpmath.mpf(1)] * 3 if weight is None else [mpmath.mpf(v) for v in weight]
        e, t = mpmath.mpf(eps), mpmath.mpf(temperature)

        def loss(*z: Any) -> Any:
            if cap is not None:
                z = tuple(cap * mpmath.tanh(v / cap) for v in z)
            zs = [v / t for v in z]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs))
            smooth = e / 3 * mpmath.fsum(w[c] * (lse - zs[c]) for c in range(3))
            z_loss = mpmath.mpf(lam) * w[label] * lse**2
            return (1 - e) * w[label] * (lse - zs[label]) + smooth + z_loss

        point = [mpmath.mpf(v) for v in row]
        for c in range(3):
            order = tuple(int(k == c) for k in range(3))
            derivative = mpmath.diff(loss, point, order)
            assert abs(derivative - want[c]) <= 2.0**-53 * abs(derivative), c


@pytest.mark.parametrize("kind", ["linear", "vocab_parallel", "vocab_parallel_linear"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("cap", [None, 20.0])
def test_torch_linear_and_vocab_parallel_backward(
    tmp_path: Any,
    kind: str,
    dtype: str,
    reduction: str,
    eps: float,
    weighted: bool,
    temperature: float,
    cap: float | None,
) -> None:
    """``crossent.torch``'s fused linear cross-entropy (the hidden states are the rows,
    the linear weight the identity: the hidden states' gradient is the logits') and the
    vocab-parallel losses on one gloo rank, which form the label's entry as
    :math:`g\\operatorname{expm1}(\\log p_y) + (c - g)\\,p_y`; without and with
    ``soft_cap`` (their own cap and slope, ``_launch._soft_capped`` and
    ``_times_cap_slope_``)."""
    torch = pytest.importorskip("torch")
    ct = pytest.importorskip("crossent.torch")
    from spawned import one_rank_group

    np_dtype = np.float64 if dtype == "float64" else np.float32
    z, labels = _base_rows(np_dtype)
    weight = _weight(np_dtype) if weighted else None
    eye = torch.eye(_CLASSES, dtype=getattr(torch, dtype))
    options: dict[str, Any] = {
        "weight": None if weight is None else torch.from_numpy(weight),
        "reduction": reduction,
        "label_smoothing": eps,
        "temperature": temperature,
        "soft_cap": cap,
    }
    calls = {
        "linear": lambda h, y, **kw: ct.linear_cross_entropy(h, eye, y, **kw),
        "vocab_parallel": ct.vocab_parallel_cross_entropy,
        "vocab_parallel_linear": lambda h, y, weight, **kw: ct.vocab_parallel_linear_cross_entropy(
            h, eye, y, class_weight=weight, **kw
        ),
    }
    with one_rank_group(str(tmp_path)) if kind != "linear" else _nothing():
        for lam in _LAMBDAS:
            leaf = torch.from_numpy(z.copy()).requires_grad_(True)
            calls[kind](leaf, torch.from_numpy(labels), z_loss=lam, **options).backward()
            assert leaf.grad is not None
            want, sizes = _oracle(
                z,
                labels,
                temperature=temperature,
                lam=lam,
                eps=eps,
                weight=weight,
                reduction=reduction,
                cap=cap,
            )
            _check(leaf.grad.numpy(), z, labels, want, sizes, temperature, cap=cap)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield
