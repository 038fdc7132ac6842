"""Compiled reverse distillation against mpmath, and where the generic graph's error comes from.

    PYTHONPATH=src python benchmarks/check_distill_reverse_compiled.py [--terms]

``crossent.torch.distillation_loss(z, v, T, 'sum', direction='reverse')`` eagerly and
under ``torch.compile(fullgraph=True, backend='aot_eager')`` on 64 rows of 32 student
and teacher logits drawn from N(0, 60^2) (seed 0) and the saturated row ``[80, 0, -80,
3]`` beside ``[-80, 0, 80, 1]``, at T = 1, 2, 0.5, float64 and float32 (the float64
values rounded), the teacher requiring no gradient. Printed per case: the largest error
of the student's gradient in units of the dtype's ulp of 1 (``2^-53``, ``2^-23``) times
the row's largest entry of mpmath's (500 digits) gradient, and the largest relative
error of the per-row loss in units of ``2^-53`` or ``2^-24``.

``--terms`` attributes the generic graph's error (``losses.distillation_loss`` of
float64 tensors recorded by autograd, as the compiled graph computed it before this
branch): each quantity the graph forms (``log s``, ``log t``, ``s = exp(log s)``, ``D``)
put into the exact gradient :math:`T s (\\log s - \\log t - D)` alone, the others exact
(the top entry of a row of :math:`s_r > 1/2` minus the others, as the graph forms it),
in the same units. Issue 13, branch distrev1.
"""

from __future__ import annotations

import argparse
import warnings

import mpmath
import numpy as np
import torch

from crossent import losses
from crossent.torch import distillation_loss

warnings.filterwarnings("ignore", message=".*script_method.*")
warnings.filterwarnings("ignore", message=".*lru_cache.*")
mpmath.mp.dps = 500  # (a top entry of s_r ~ 1 cancels by some 400 digits at T = 1/2)
TEMPERATURES = (1.0, 2.0, 0.5)
DTYPES = (torch.float64, torch.float32)
SATURATED = ([80.0, 0.0, -80.0, 3.0], [-80.0, 0.0, 80.0, 1.0])


def rows() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "N(0,60^2) 64x32": (rng.normal(0, 60, (64, 32)), rng.normal(0, 60, (64, 32))),
        "saturated": (np.array([SATURATED[0]]), np.array([SATURATED[1]])),
    }


def truth(z: np.ndarray, v: np.ndarray, temperature: float) -> tuple[list, list]:
    """mpmath's per-row loss T^2 D(s || t) and gradient T s (log s - log t - D)."""
    t = mpmath.mpf(temperature)
    out_l, out_g = [], []
    for zr, vr in zip(z.tolist(), v.tolist(), strict=True):
        ls = _log_softmax([mpmath.mpf(x) / t for x in zr])
        lt = _log_softmax([mpmath.mpf(x) / t for x in vr])
        s = [mpmath.exp(x) for x in ls]
        d = mpmath.fsum(a * (b - c) for a, b, c in zip(s, ls, lt, strict=True))
        out_l.append(t * t * d)
        out_g.append([t * a * (b - c - d) for a, b, c in zip(s, ls, lt, strict=True)])
    return out_l, out_g


def _log_softmax(x: list) -> list:
    m = max(x)
    ell = mpmath.log(mpmath.fsum(mpmath.exp(a - m) for a in x))
    return [a - m - ell for a in x]


def units(grad: np.ndarray, want: list, eps: float, tiny: float) -> float:
    """The largest error in units of ``eps`` times the row's largest entry of ``want``, or
    of ``tiny`` (the dtype's smallest subnormal) where that is larger: a float32 row of
    entries below 1e-45 is 0, rightly."""
    worst = 0.0
    for g, w in zip(grad.tolist(), want, strict=True):
        scale = max(max(abs(x) for x in w) * mpmath.mpf(eps), mpmath.mpf(tiny))
        worst = max(
            worst, max(float(abs(mpmath.mpf(a) - b) / scale) for a, b in zip(g, w, strict=True))
        )
    return worst


def loss_units(rows_: np.ndarray, want: list, eps: float) -> float:
    return max(
        float(abs(mpmath.mpf(a) - b) / (abs(b) * mpmath.mpf(eps)))
        for a, b in zip(rows_.tolist(), want, strict=True)
    )


def run(fn, z: np.ndarray, v: np.ndarray, temperature: float, dtype) -> tuple:
    zt = torch.tensor(z, dtype=dtype, requires_grad=True)
    rows_ = fn(zt, torch.tensor(v, dtype=dtype), temperature)
    rows_.sum().backward()
    return rows_.detach().double().numpy(), zt.grad.double().numpy()


def per_row(z: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    return distillation_loss(z, v, temperature, "none", direction="reverse")


def per_row_3d(z: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    """The generic path eagerly: (N, C, 1) logits leave the 2-D CPU op."""
    return per_row(z[:, :, None], v[:, :, None], temperature)[:, 0]


def terms(z: np.ndarray, v: np.ndarray, temperature: float) -> dict[str, float]:
    """Each float64 quantity of the generic graph alone in the exact gradient (units)."""
    zt, vt = torch.tensor(z), torch.tensor(v)
    d = losses._distill.prepare_distillation(
        zt, vt, temperature=temperature, direction="reverse", reduction="none", axis=-1
    )
    kl = d.row_kl()
    got = {"log s": d.log_s.numpy(), "log t": d.log_t.numpy(), "D": kl.numpy()}
    t = mpmath.mpf(temperature)
    out = dict.fromkeys(["log s (s = exp of it)", "log t", "D", "s alone"], 0.0)
    for i, (zr, vr) in enumerate(zip(z.tolist(), v.tolist(), strict=True)):
        ls = _log_softmax([mpmath.mpf(x) / t for x in zr])
        lt = _log_softmax([mpmath.mpf(x) / t for x in vr])
        s = [mpmath.exp(x) for x in ls]
        dd = mpmath.fsum(a * (b - c) for a, b, c in zip(s, ls, lt, strict=True))
        exact = [t * a * (b - c - dd) for a, b, c in zip(s, ls, lt, strict=True)]
        unit = max(abs(x) for x in exact) * mpmath.mpf(2) ** -53
        gls = [mpmath.mpf(x) for x in got["log s"][i]]
        glt = [mpmath.mpf(x) for x in got["log t"][i]]
        gd = mpmath.mpf(float(got["D"][i]))
        gs = [mpmath.mpf(float(np.exp(x))) for x in got["log s"][i]]
        variants = {
            "log s (s = exp of it)": [
                t * mpmath.exp(a) * (a - c - dd) for a, c in zip(gls, lt, strict=True)
            ],
            "log t": [t * a * (b - c - dd) for a, b, c in zip(s, ls, glt, strict=True)],
            "D": [t * a * (b - c - gd) for a, b, c in zip(s, ls, lt, strict=True)],
            "s alone": [t * a * (b - c - dd) for a, b, c in zip(gs, ls, lt, strict=True)],
        }
        top = max(range(len(s)), key=lambda c: s[c])
        for name, g in variants.items():
            if s[top] > 0.5:  # (the graph's top entry: minus the others, _dominant_gradient)
                g[top] = -mpmath.fsum(x for c, x in enumerate(g) if c != top)
            off = max(float(abs(a - b) / unit) for a, b in zip(g, exact, strict=True))
            out[name] = max(out[name], off)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", action="store_true")
    args = parser.parse_args()
    torch._dynamo.config.recompile_limit = 64  # (a graph per shape, dtype and T)
    compiled = torch.compile(per_row, fullgraph=True, backend="aot_eager")
    print(
        f"{'rows':18s} {'T':>4s} {'dtype':8s} {'eager grad':>10s} {'compiled':>10s}"
        f" {'eager loss':>10s} {'compiled':>10s} {'3-D grad':>10s} {'3-D loss':>10s}"
    )
    for name, (z64, v64) in rows().items():
        for temperature in TEMPERATURES:
            for dtype in DTYPES:
                z = torch.tensor(z64, dtype=dtype).double().numpy()
                v = torch.tensor(v64, dtype=dtype).double().numpy()
                want_l, want_g = truth(z, v, temperature)
                eps = 2.0**-53 if dtype == torch.float64 else 2.0**-23
                leps = 2.0**-53 if dtype == torch.float64 else 2.0**-24
                cells = []
                fns = (per_row, compiled, per_row_3d)
                results = [run(fn, z, v, temperature, dtype) for fn in fns]
                tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
                cells += [units(g, want_g, eps, tiny) for _, g in results[:2]]
                cells += [loss_units(r, want_l, leps) for r, _ in results[:2]]
                cells += [
                    units(results[2][1], want_g, eps, tiny),
                    loss_units(results[2][0], want_l, leps),
                ]
                print(
                    f"{name:18s} {temperature:4.1f} {str(dtype)[6:]:8s}"
                    + "".join(f" {c:10.3g}" for c in cells),
                    flush=True,
                )
                if args.terms and dtype == torch.float64:
                    parts = terms(z, v, temperature)
                    print(
                        "   generic graph's terms alone:",
                        ", ".join(f"{k} {x:.3g}" for k, x in parts.items()),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
