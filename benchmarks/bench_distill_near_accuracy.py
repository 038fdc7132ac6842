"""Accuracy of ``crossent.distillation_loss`` on rows of a student near its teacher,
against mpmath at 50 digits: the largest relative error (in units of the dtype's
epsilon) per direction and spread of :math:`z - v`, for the NumPy lean path (one
row), the NumPy fused kernels (the row repeated to some 70,000 entries),
``_near_rows.NearRows`` itself, ``crossent.torch`` float64 and float32, and NumPy
float32. Seeded teacher logits (normal, scale 0.1, 1 or 3), the student off by
``scale`` times a standard normal, 2 to 1000 classes, :math:`T = 1`, ``'none'``.
"""

from __future__ import annotations

import mpmath
import numpy as np

import crossent
from crossent.losses._near_rows import NearRows

try:
    import torch

    import crossent.torch as ct
except ImportError:  # pragma: no cover - an optional backend
    torch = None


def exact(z, v, forward: bool) -> mpmath.mpf:
    """:math:`D` (forward :math:`D(t\\,\\|\\,s)`) of one row at 50 digits."""
    with mpmath.workdps(50):
        a = [mpmath.mpf(float(x)) for x in z]
        b = [mpmath.mpf(float(x)) for x in v]
        if not forward:
            a, b = b, a
        la = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in a))
        lb = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in b))
        return mpmath.fsum(
            mpmath.exp(y - lb) * ((y - lb) - (x - la)) for x, y in zip(a, b, strict=True)
        )


def error(value, want: mpmath.mpf, eps: float) -> float:
    """``value``'s relative error against ``want`` in units of ``eps`` (absolute where 0)."""
    with mpmath.workdps(50):
        if want == 0:
            return abs(float(value))
        return float(abs(mpmath.mpf(float(value)) - want) / want / eps)


def paths(z: np.ndarray, v: np.ndarray, direction: str) -> dict[str, float]:
    """Each path's error on the row ``z``, ``v``."""
    forward = direction == "forward"
    options = {"reduction": "none", "direction": direction}
    want = exact(z, v, forward)
    big_z = np.repeat(z[None], max(1, 70000 // z.size), axis=0)
    big_v = np.repeat(v[None], big_z.shape[0], axis=0)
    out = {
        "np lean": error(
            crossent.distillation_loss(z[None], v[None], **options)[0], want, 2.0**-52
        ),
        "np fused": error(crossent.distillation_loss(big_z, big_v, **options)[0], want, 2.0**-52),
        "NearRows": error(NearRows(z[None], v[None], 1.0).loss(forward=forward)[0], want, 2.0**-52),
    }
    z32, v32 = z.astype(np.float32), v.astype(np.float32)
    want32 = exact(z32, v32, forward)
    out["np f32"] = error(
        crossent.distillation_loss(z32[None], v32[None], **options)[0], want32, 2.0**-23
    )
    if torch is not None:
        value = ct.distillation_loss(torch.tensor(z[None]), torch.tensor(v[None]), **options)[0]
        out["torch f64"] = error(value.item(), want, 2.0**-52)
        value = ct.distillation_loss(torch.tensor(z32[None]), torch.tensor(v32[None]), **options)[0]
        out["torch f32"] = error(value.item(), want32, 2.0**-23)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    names: list[str] = []
    for direction in ("forward", "reverse"):
        for scale in (1e-2, 3e-3, 1e-3, 1e-4, 1e-6, 1e-8):
            worst: dict[str, float] = {}
            kls = []
            for classes in (2, 6, 50, 1000):
                for _ in range(3):
                    v = rng.normal(size=classes) * rng.choice([0.1, 1.0, 3.0])
                    z = v + rng.normal(size=classes) * scale
                    kls.append(float(exact(z, v, direction == "forward")))
                    for name, e in paths(z, v, direction).items():
                        worst[name] = max(worst.get(name, 0.0), e)
            if not names:
                names = list(worst)
                print("| direction | spread | KL | " + " | ".join(names) + " |")
                print("|---|---:|---|" + "---:|" * len(names))
            cells = " | ".join(f"{worst[n]:.3g}" for n in names)
            print(f"| {direction} | {scale:g} | {min(kls):.1e} to {max(kls):.1e} | {cells} |")


if __name__ == "__main__":
    main()
