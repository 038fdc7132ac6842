"""Float32 ``sigmoid_cross_entropy_grad`` where a soft target meets :math:`\\sigma(x)`.

On main the gradient :math:`w[(1-t)\\sigma(x) - \\pi t\\sigma(-x)]` was formed in float32
from float32 :math:`\\sigma(\\pm x)`: where the target is within a few ulps of the zero of
that difference (:math:`t = 1/(1 + \\pi e^{-x})`) the entry was thousands to billions of
float32 ulps off, on every path (Numba's small calls, NumPy without Numba, the generic
path of array-api-strict, PyTorch and JAX arrays). The oracle: mpmath at 200 bits on the
float32 inputs' exact values, per entry, in float32 ulps of the truth (no slack): every
entry within one ulp, for targets at the zero and a few ulps either side, 0 and 1,
``pos_weight``, weights, label smoothing, every reduction, a base, and :math:`|x|` from
:math:`10^{-30}` to 90.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _sigmoid, _small_sigmoid
from sigmoid_grad_oracle import FLOAT32_TINY, exact_gradient, hard_entries, ulps_off

ULPS = 1.0


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
    """The arguments of a call with ``options`` (``weight``/``pos_weight`` True: the data's)."""
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


def _jax(a: np.ndarray) -> Any:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as the suite's backend fixture has it
    return jax.numpy.asarray(a)


def _flushed(a: np.ndarray) -> np.ndarray:
    """``a`` with its subnormals 0, as XLA reads float32."""
    return np.where(np.abs(a) < np.finfo(np.float32).tiny, np.float32(0), a)


BACKENDS: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": np.asarray,  # (600 entries: the full path; the small path below)
    "numpy_no_numba": np.asarray,
    "array_api_strict": _strict,
    "torch": _torch,
    "jax": _jax,
}


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_float32_sigmoid_gradient_within_an_ulp_where_the_target_meets_sigma(
    backend: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry within an ulp of mpmath's (on main up to billions of ulps off)."""
    if backend == "numpy_no_numba":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    chosen = OPTIONS[options]
    data = hard_entries(
        600,
        pos_weight="pos_weight" in chosen,
        eps=chosen.get("label_smoothing", 0.0),
        seed=len(options),
    )
    if backend == "jax":  # (XLA flushes float32 subnormals, inputs too, to 0)
        data = {k: _flushed(v) for k, v in data.items()}
    args, kwargs = _call(data, chosen, BACKENDS[backend])
    got = np.asarray(crossent.sigmoid_cross_entropy_grad(*args, **kwargs))
    assert got.dtype == np.float32
    tiny = float(np.finfo(np.float32).tiny) if backend == "jax" else FLOAT32_TINY
    off = ulps_off(got, exact_gradient(data, chosen), tiny=tiny)
    assert off.max() <= ULPS, (int(off.argmax()), off.max())


@pytest.mark.parametrize("options", list(OPTIONS))
def test_small_calls_are_the_full_path_bit_for_bit_on_hard_entries(options: str) -> None:
    """The small-call path (Numba) takes 100 hard entries and gives the full path's bits,
    and both are within an ulp."""
    if not _cpu_kernels.available():
        pytest.skip("needs Numba")
    chosen = OPTIONS[options]
    data = hard_entries(
        100, pos_weight="pos_weight" in chosen, eps=chosen.get("label_smoothing", 0.0), seed=7
    )
    (x, t), kwargs = _call(data, chosen, np.asarray)
    small = _small_sigmoid.cross_entropy_grad((x, t), dict(kwargs))
    assert small is not None, "the small path did not take the call"
    full = _sigmoid.sigmoid_cross_entropy_grad.__wrapped__(_sigmoid._binary(x, t, **kwargs))
    assert small.dtype == full.dtype == np.float32
    assert small.tobytes() == full.tobytes()
    assert ulps_off(small, exact_gradient(data, chosen)).max() <= ULPS


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits_compute_in_float32_and_return_it(dtype: str) -> None:
    """float16 (NumPy, PyTorch) and bfloat16 (PyTorch) inputs: the float32 gradient of
    their values, within an ulp."""
    data = hard_entries(300, pos_weight=False, eps=0.0, seed=11)
    torch = pytest.importorskip("torch")
    low = getattr(torch, dtype)
    x = torch.from_numpy(data["x"]).to(low)
    t = torch.from_numpy(data["t"]).to(low)
    exact = {"x": x.float().numpy(), "t": t.float().numpy()}
    truth = exact_gradient(exact, {"reduction": "sum"})
    got = crossent.sigmoid_cross_entropy_grad(x, t, reduction="sum")
    assert got.dtype == torch.float32
    assert ulps_off(got.numpy(), truth).max() <= ULPS
    if dtype == "float16":
        got16 = crossent.sigmoid_cross_entropy_grad(
            x.numpy(), t.numpy(), reduction="sum"
        )  # (NumPy float16)
        assert got16.dtype == np.float32
        assert ulps_off(got16, truth).max() <= ULPS


def test_double_double_numerator_against_mpmath() -> None:
    """``numerator_dd`` (array form and Numba's) to float64 rounding of the exact
    :math:`N`, down to :math:`|N| = 2^{-60}` of its terms; exactly 0 at :math:`x = 0`."""
    from crossent.losses import _sigmoid_grad  # (new: on main this test errors)

    data = hard_entries(400, pos_weight=True, eps=0.0, seed=3)
    x, t, pw = (data[k].astype(np.float64) for k in ("x", "t", "pw"))
    eps = 0.125
    vector = _sigmoid_grad.numerator_dd(x, t, pw, eps, xp=np)
    kernels = None
    if _cpu_kernels.available():
        from crossent.losses import _sigmoid_grad_numba as kernels
    with mpmath.workprec(300):
        for i in range(x.size):
            xi, ti, pi = (mpmath.mpf(float(v[i])) for v in (x, t, pw))
            ts = (1 - mpmath.mpf(eps)) * ti + mpmath.mpf(eps) / 2
            u = mpmath.exp(-abs(xi))
            n = (1 - ts) - pi * ts * u if xi >= 0 else (1 - ts) * u - pi * ts
            scale = max(abs(1 - ts), abs(pi * ts))
            for got in [vector[i]] + (
                [kernels.numerator_dd(x[i], t[i], pw[i], eps)] if kernels else []
            ):
                assert abs(mpmath.mpf(float(got)) - n) <= 2.0**-52 * abs(n) + 2.0**-100 * scale
    assert _sigmoid_grad.numerator_dd(np.zeros(1), np.full(1, 0.5), 1.0, 0.0, xp=np)[0] == 0


def test_pytorch_float32_gradient_is_the_anchor_and_far_off() -> None:
    """The anchor: ``F.binary_cross_entropy_with_logits``' float32 gradient on the same
    hard entries is far off (its ``sigmoid(x) - t`` cancels); crossent's is within an ulp."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    data = hard_entries(400, pos_weight=True, eps=0.0, seed=5)
    x = torch.from_numpy(data["x"]).requires_grad_()
    t, pw = torch.from_numpy(data["t"]), torch.from_numpy(data["pw"])
    functional.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="sum").backward()
    truth = exact_gradient(data, {"pos_weight": True, "reduction": "sum"})
    theirs = ulps_off(x.grad.numpy(), truth)
    ours = ulps_off(
        crossent.sigmoid_cross_entropy_grad(
            data["x"], data["t"], pos_weight=data["pw"], reduction="sum"
        ),
        truth,
    )
    assert ours.max() <= ULPS < 1000 < theirs.max()


def test_jitted_float32_gradient_within_an_ulp(jax_x64: Any) -> None:
    """Under ``jax.jit`` (which entries cancel cannot be read there: every entry takes the
    double-double)."""
    jax = jax_x64
    data = {k: _flushed(v) for k, v in hard_entries(300, pos_weight=True, eps=0.0, seed=9).items()}
    options = {"pos_weight": True, "reduction": "sum"}
    (x, t), kwargs = _call(data, options, jax.numpy.asarray)

    def grad(a: Any, b: Any, pw: Any) -> Any:
        return crossent.sigmoid_cross_entropy_grad(
            a, b, pos_weight=pw, reduction="sum", validate=False
        )

    got = jax.jit(grad)(x, t, kwargs["pos_weight"])
    tiny = float(np.finfo(np.float32).tiny)  # (XLA flushes float32 subnormals to 0)
    assert ulps_off(np.asarray(got), exact_gradient(data, options), tiny=tiny).max() <= ULPS
