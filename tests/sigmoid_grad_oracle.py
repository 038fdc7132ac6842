"""The oracle of the float32 sigmoid gradient tests (issue 13: the cancellation where a
soft target meets :math:`\\sigma(x)`): hard entries, mpmath's exact gradient of the
float32 inputs, and errors in float32 ulps."""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

__all__ = ["FLOAT32_TINY", "exact_gradient", "hard_entries", "ulps_off"]

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


def ulps_off(got: Any, truth: list[Any], *, tiny: float = FLOAT32_TINY) -> np.ndarray:
    """``|got - truth|`` in float32 ulps of the truth (``tiny``, the subnormal spacing,
    at least; the smallest normal for XLA, which flushes float32 subnormals to 0)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    out = np.empty(got.size)
    with mpmath.workprec(200):
        for i, (g, v) in enumerate(zip(got.tolist(), truth, strict=True)):
            spacing = max(float(np.spacing(np.abs(np.float32(float(v))))), tiny)
            out[i] = float(abs(mpmath.mpf(g) - v)) / spacing
    return out
