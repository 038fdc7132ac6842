"""Float64 ``sigmoid_cross_entropy_grad`` where a soft target meets :math:`\\sigma(x)`.

On main the float64 gradient was the formula :math:`(1-t)\\sigma(x) - \\pi t\\sigma(-x)` in
float64: where the target is within a few ulps of :math:`\\sigma(x)` (a target set to the
float64 :math:`\\sigma(x)`, its neighbours) the difference cancelled and the entry was up to
:math:`10^{16}` float64 ulps off (as PyTorch's float64 gradient is), on every path. Now it
is formed as the float32 one is (``_sigmoid_grad``: float64, and where :math:`N` cancels
:math:`N` to about :math:`2^{-110}` of its terms): within 4 float64 ulps of mpmath's (1200
bits) per entry. The hard entries: targets at :math:`fl(\\sigma(x))` (with ``pos_weight``:
at the gradient's zero) and one ulp either side, 0 and 1, :math:`x` of 0, :math:`\\pm
10^{-300}`, :math:`\\pm 40`, :math:`\\pm 700`; every path (Numba's kernel, NumPy without
Numba, the small calls, array-api-strict, PyTorch), ``pos_weight``, weights, label
smoothing, every reduction. Each test checks float32 beside float64 (within one float32
ulp: the same careful numerator, now also float32's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _sigmoid, _sigmoid_grad, _small_sigmoid
from sigmoid_grad_oracle import at_sigma_entries, exact_gradient_wide, ulps_off

ULPS = {np.float64: 4.0, np.float32: 1.0}
TINY = {np.float64: 2.0**-1074, np.float32: 2.0**-149}

OPTIONS = {
    "plain_sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "mean_weight": {"weight": True},
    "pos_weight_sum": {"pos_weight": True, "reduction": "sum"},
    "all_mean": {"pos_weight": True, "weight": True, "label_smoothing": 0.1},
    "smoothing_base_none": {"label_smoothing": 0.05, "base": 2, "reduction": "none"},
}


def _call(
    data: dict[str, np.ndarray], options: dict[str, Any], convert: Callable[[Any], Any]
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = convert(data["w"])
    if kwargs.pop("pos_weight", False):
        kwargs["pos_weight"] = convert(data["pw"])
    return (convert(data["x"]), convert(data["t"])), kwargs


def _strict(a: np.ndarray) -> Any:
    return pytest.importorskip("array_api_strict").asarray(a)


def _torch(a: np.ndarray) -> Any:
    return pytest.importorskip("torch").from_numpy(a.copy())


BACKENDS: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": np.asarray,
    "numpy_no_numba": np.asarray,
    "array_api_strict": _strict,
    "torch": _torch,
}


def _entries(dtype: Any, options: dict[str, Any], n: int, seed: int) -> dict[str, np.ndarray]:
    return at_sigma_entries(
        n,
        dtype,
        pos_weight="pos_weight" in options,
        eps=options.get("label_smoothing", 0.0),
        seed=seed,
    )


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_float64_sigmoid_gradient_within_a_few_ulps_where_the_target_meets_sigma(
    backend: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float64 within 4 ulps (on main up to 1e16 ulps off), float32 within one."""
    if backend == "numpy_no_numba":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    chosen = OPTIONS[options]
    for dtype in (np.float64, np.float32):
        data = _entries(dtype, chosen, 300, seed=len(options))
        args, kwargs = _call(data, chosen, BACKENDS[backend])
        got = np.asarray(crossent.sigmoid_cross_entropy_grad(*args, **kwargs))
        assert got.dtype == dtype
        off = ulps_off(got, exact_gradient_wide(data, chosen), tiny=TINY[dtype], dtype=dtype)
        assert off.max() <= ULPS[dtype], (np.dtype(dtype).name, int(off.argmax()), off.max())


@pytest.mark.parametrize("options", list(OPTIONS))
def test_small_float64_calls_are_the_full_path_bit_for_bit_on_hard_entries(options: str) -> None:
    """The small-call path takes 100 hard entries of each dtype, gives the full path's
    bits (its kernel), and both are within the tolerance (on main float64's small path
    was the float64 formula, as far off as the full path)."""
    if not _cpu_kernels.available():
        pytest.skip("needs Numba")
    chosen = OPTIONS[options]
    for dtype in (np.float64, np.float32):
        data = _entries(dtype, chosen, 100, seed=7)
        (x, t), kwargs = _call(data, chosen, np.asarray)
        small = _small_sigmoid.cross_entropy_grad((x, t), dict(kwargs))
        assert small is not None, "the small path did not take the call"
        full = _sigmoid.sigmoid_cross_entropy_grad.__wrapped__(_sigmoid._binary(x, t, **kwargs))
        assert small.dtype == full.dtype == dtype
        assert small.tobytes() == full.tobytes()
        off = ulps_off(small, exact_gradient_wide(data, chosen), tiny=TINY[dtype], dtype=dtype)
        assert off.max() <= ULPS[dtype]


def test_every_entry_on_the_careful_path_across_blocks() -> None:
    """Targets at the float64 (float32) sigma(x) on every entry of 3 kernel blocks and a
    part (each block's flagged entries are formed together): a sample of 400 entries,
    spread over the blocks, within the tolerance."""
    n = 3 * 4096 + 123  # (_sigmoid_grad_numba.BLOCK)
    rng = np.random.default_rng(4)
    picked = np.sort(rng.choice(n, 400, replace=False))
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal(n) * 6).astype(dtype)
        with mpmath.workprec(200):
            t = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in x])
        t = t.astype(dtype)
        got = crossent.sigmoid_cross_entropy_grad(x, t, reduction="sum")
        data = {"x": x[picked], "t": t[picked], "pw": np.ones(400), "w": np.ones(400)}
        truth = exact_gradient_wide(data, {"reduction": "sum"})
        off = ulps_off(got[picked], truth, tiny=TINY[dtype], dtype=dtype)
        assert off.max() <= ULPS[dtype], (np.dtype(dtype).name, off.max())


def test_careful_numerator_of_float64_inputs_against_mpmath() -> None:
    """``numerator_dd`` (array form and Numba's, the same bits) of float64 entries at the
    gradient's zero and beside it: within :math:`2^{-53}|N| + 2^{-108} M` of mpmath's
    :math:`N` (on main about :math:`2^{-96} M`, thousands of float64 ulps of :math:`N`
    there), for :math:`|x| \\le 700`, with and without smoothing."""
    data = at_sigma_entries(400, np.float64, pos_weight=True, eps=0.0, seed=3)
    x, t, pw = data["x"], data["t"], data["pw"]
    kernels = None
    if _cpu_kernels.available():
        from crossent.losses import _sigmoid_grad_numba as kernels
    for eps in (0.0, 0.125):
        vector = _sigmoid_grad.numerator_dd(x, t, pw, eps, xp=np)
        with mpmath.workprec(1200):
            e = mpmath.mpf(eps)
            for i in range(x.size):
                xi, ti, pi = (mpmath.mpf(float(v[i])) for v in (x, t, pw))
                ts = (1 - e) * ti + e / 2
                u = mpmath.exp(-abs(xi))
                first, second = ((1 - ts), pi * ts * u) if xi >= 0 else ((1 - ts) * u, pi * ts)
                n = first - second
                bound = 2.0**-53 * abs(n) + 2.0**-108 * max(first, second)
                assert abs(mpmath.mpf(float(vector[i])) - n) <= bound, (eps, i)
                if kernels is not None and i % 4 == 0:
                    assert kernels.numerator_dd(x[i], t[i], pw[i], eps) == vector[i]


def test_pytorch_float64_gradient_is_the_anchor_and_far_off() -> None:
    """The anchor: ``F.binary_cross_entropy_with_logits``' float64 gradient on the same
    entries is far off (its ``sigmoid(x) - t`` cancels); crossent's is within 4 ulps."""
    torch = pytest.importorskip("torch")
    data = at_sigma_entries(300, np.float64, pos_weight=True, eps=0.0, seed=5)
    x = torch.from_numpy(data["x"]).requires_grad_()
    t, pw = torch.from_numpy(data["t"]), torch.from_numpy(data["pw"])
    torch.nn.functional.binary_cross_entropy_with_logits(
        x, t, pos_weight=pw, reduction="sum"
    ).backward()
    truth = exact_gradient_wide(data, {"pos_weight": True, "reduction": "sum"})
    theirs = ulps_off(x.grad.numpy(), truth, tiny=TINY[np.float64], dtype=np.float64)
    ours = ulps_off(
        crossent.sigmoid_cross_entropy_grad(
            data["x"], data["t"], pos_weight=data["pw"], reduction="sum"
        ),
        truth,
        tiny=TINY[np.float64],
        dtype=np.float64,
    )
    assert ours.max() <= ULPS[np.float64] < 1000 < theirs.max()
