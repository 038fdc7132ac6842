"""The oracle of the float32 sigmoid gradient tests (issue 13: the cancellation where a
soft target meets :math:`\\sigma(x)`): hard entries, mpmath's exact gradient of the
float32 inputs, and errors in float32 ulps."""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

__all__ = [
    "FLOAT32_TINY",
    "at_sigma_entries",
    "exact_gradient",
    "exact_gradient_wide",
    "hard_entries",
    "ulps_off",
]

FLOAT32_TINY = 2.0**-149


def hard_entries(n: int, *, pos_weight: bool, eps: float, seed: int) -> dict[str, np.ndarray]:
    """float32 logits, targets at the zero of the gradient (``+-`` up to 4 ulps), some
    0 and 1, and weights."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-30, 1e-3, 0.5, 2.0, 8.0, 20.0, 60.0])
    x = (rng.standard_normal(n) * scales[rng.integers(0, scales.size, n)]).astype(np.float32)
    x[:4] = [0.0, -0.0, 90.0, -90.0]
    pw = rng.uniform(0.1, 6.0, n).astype(np.float32) if pos_weight else np.ones(n, np.float32)
    zero = 1 / (1 + pw.astype(np.float64) * np.exp(-x.astype(np.float64)))
    raw = (zero - eps / 2) / (1 - eps)  # the smoothed target at the zero
    t = np.clip(raw, 0, 1).astype(np.float32)
    step = rng.integers(-4, 5, n)
    t = np.clip(t.view(np.int32) + step, 0, np.float32(1).view(np.int32)).astype(np.int32)
    t = t.view(np.float32)
    t[rng.uniform(size=n) < 0.05] = 0.0
    t[rng.uniform(size=n) < 0.05] = 1.0
    w = rng.uniform(0.05, 5.0, n).astype(np.float32)
    w[::17] = 0.0
    return {"x": x, "t": t, "pw": pw, "w": w}


def exact_gradient(data: dict[str, np.ndarray], options: dict[str, Any]) -> list[Any]:
    """The exact gradient of the float32 inputs, per entry (mpmath, 200 bits)."""
    with mpmath.workprec(200):
        eps = mpmath.mpf(options.get("label_smoothing", 0.0))
        weighted = "weight" in options
        w = [mpmath.mpf(float(v)) for v in data["w"]] if weighted else [1] * data["x"].size
        scale = mpmath.mpf(1)
        if options.get("reduction", "mean") == "mean":
            scale = 1 / mpmath.fsum(w)
        if options.get("base") is not None:
            scale /= mpmath.log(options["base"])
        out = []
        use_pw = "pos_weight" in options
        for i, (x, t) in enumerate(zip(data["x"].tolist(), data["t"].tolist(), strict=True)):
            x, t = mpmath.mpf(x), mpmath.mpf(t)
            pi = mpmath.mpf(float(data["pw"][i])) if use_pw else 1
            ts = (1 - eps) * t + eps / 2
            s = 1 / (1 + mpmath.exp(-x))
            out.append(w[i] * ((1 - ts) * s - pi * ts * (1 / (1 + mpmath.exp(x)))) * scale)
        return out


def ulps_off(
    got: Any, truth: list[Any], *, tiny: float = FLOAT32_TINY, dtype: Any = np.float32
) -> np.ndarray:
    """``|got - truth|`` in ulps of ``dtype`` (float32 by default) of the truth (``tiny``,
    the subnormal spacing, at least; the smallest normal for XLA, which flushes float32
    subnormals to 0; pass ``2.0**-1074`` for float64)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    out = np.empty(got.size)
    with mpmath.workprec(1200):
        for i, (g, v) in enumerate(zip(got.tolist(), truth, strict=True)):
            spacing = max(float(np.spacing(np.abs(dtype(float(v))))), tiny)
            out[i] = float(abs(mpmath.mpf(g) - v)) / spacing
    return out


def at_sigma_entries(n: int, dtype: Any, *, pos_weight: bool, eps: float, seed: int) -> dict:
    """Logits of ``dtype`` (|x| from 1e-300 to 700, and 0, -0, +-1e-300, +-700, +-40) with
    targets at the rounded zero of the gradient ``fl(1/(1 + pi e^{-x}))`` (as smoothed
    targets), its neighbours one ulp either side, and some 0 and 1; weights."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    scales = np.array([1e-300, 1e-8, 0.5, 2.0, 8.0, 30.0, 120.0, 400.0])
    if dtype == np.float32:
        scales = np.array([1e-30, 1e-5, 0.5, 2.0, 8.0, 20.0, 40.0, 60.0])
    x = rng.standard_normal(n) * scales[rng.integers(0, scales.size, n)]
    x = np.clip(x, -700.0, 700.0).astype(dtype)
    edge = [0.0, -0.0, 1e-300, -1e-300, 700.0, -700.0, 40.0, -40.0]
    if dtype == np.float32:
        edge = [0.0, -0.0, 1e-30, -1e-30, 90.0, -90.0, 17.0, -17.0]
    x[: len(edge)] = edge
    pw = rng.uniform(0.1, 6.0, n).astype(dtype) if pos_weight else np.ones(n, dtype)
    with mpmath.workprec(200):
        zero = []
        for xi, pi in zip(x.tolist(), pw.tolist(), strict=True):
            s = 1 / (1 + pi * mpmath.exp(-mpmath.mpf(xi)))
            zero.append(float((s - mpmath.mpf(eps) / 2) / (1 - mpmath.mpf(eps))))
    t = np.clip(np.array(zero), 0.0, 1.0).astype(dtype)
    t[1::3] = np.nextafter(t[1::3], dtype.type(2))
    t[2::3] = np.nextafter(t[2::3], dtype.type(-1))
    t = np.clip(t, 0, 1).astype(dtype)
    t[5::23] = 0.0
    t[6::23] = 1.0
    w = rng.uniform(0.05, 5.0, n).astype(dtype)
    w[::17] = 0.0
    return {"x": x, "t": t, "pw": pw, "w": w}


def exact_gradient_wide(data: dict[str, np.ndarray], options: dict[str, Any]) -> list[Any]:
    """:func:`exact_gradient` at 1200 bits, formed as :math:`N/(1 + u)`, :math:`u =
    e^{-|x|}` (float64 inputs: a gradient down to :math:`2^{-1074}` beside terms near 1)."""
    with mpmath.workprec(1200):
        eps = mpmath.mpf(options.get("label_smoothing", 0.0))
        weighted = "weight" in options
        w = [mpmath.mpf(float(v)) for v in data["w"]] if weighted else [1] * data["x"].size
        scale = mpmath.mpf(1)
        if options.get("reduction", "mean") == "mean":
            scale = 1 / mpmath.fsum(w)
        if options.get("base") is not None:
            scale /= mpmath.log(options["base"])
        out = []
        use_pw = "pos_weight" in options
        for i, (x, t) in enumerate(zip(data["x"].tolist(), data["t"].tolist(), strict=True)):
            x, t = mpmath.mpf(x), mpmath.mpf(t)
            pi = mpmath.mpf(float(data["pw"][i])) if use_pw else 1
            ts = (1 - eps) * t + eps / 2
            u = mpmath.exp(-abs(x))
            n = (1 - ts) - pi * ts * u if x >= 0 else (1 - ts) * u - pi * ts
            out.append(w[i] * n / (1 + u) * scale)
        return out
