"""Near rows with a class far below the top: each path's error against mpmath (issue 13,
branch nearrows2).

    PYTHONPATH=src python benchmarks/check_near_rows_far_class.py [-v]

Student logits ``[0, -300]`` beside teacher logits ``[0, -290]`` and the roles swapped
at T = 2.32, 2.34, 2.36, 2.38, 2.4 (``T^2 D`` 5e-55 to 6e-52, all of it the far
class's), and seeded near rows (teacher ``[0, -U(0, spread) x 4]``, spreads 50, 300 and
700 where ``spread/T <= 700``, the student 1e-3 T away at the others; seed 1) at T in
{0.5, 1, 2, 2.32, 2.4, 3}; forward and reverse. Printed per direction and path: the
largest relative error of the loss ``T^2 D`` and the largest error of the gradient
(forward ``T(s - t)``, reverse ``T s (log s - log t - D)``) in units of ``2^-53`` of
the row's largest entry, against mpmath at 500 digits. Paths: the NumPy lean path (one
row), the full path (a 1 x 3 batch), ``NearRows`` (compiled where Numba is),
``crossent.torch`` float64 2-D (the CPU op) and 3-D ``(1, C, 1)`` (the generic path),
the torch loss's gradient by autograd. ``-v``: each row.
"""

from __future__ import annotations

import sys

import mpmath
import numpy as np

import crossent
from crossent.losses._near_rows import NearRows

try:
    import torch

    import crossent.torch as ct
except ImportError:  # pragma: no cover - an optional backend
    torch = None

mpmath.mp.dps = 500


def truth(z, v, temperature: float, forward: bool):
    """mpmath's ``T^2 D`` and gradient of one row."""
    t = mpmath.mpf(temperature)

    def log_softmax(x):
        xs = [mpmath.mpf(float(a)) / t for a in x]
        top = max(xs)
        ell = top + mpmath.log(mpmath.fsum(mpmath.exp(a - top) for a in xs))
        return [a - ell for a in xs]

    ls, lt = log_softmax(z), log_softmax(v)
    s, p = [mpmath.exp(a) for a in ls], [mpmath.exp(a) for a in lt]
    if forward:
        d = mpmath.fsum(b * (y - x) for b, y, x in zip(p, lt, ls, strict=True))
        grad = [t * (a - b) for a, b in zip(s, p, strict=True)]
    else:
        d = mpmath.fsum(a * (x - y) for a, x, y in zip(s, ls, lt, strict=True))
        grad = [t * a * (x - y - d) for a, x, y in zip(s, ls, lt, strict=True)]
    return t * t * d, grad


def errors(loss, grad, want) -> tuple[float, float]:
    unit = mpmath.mpf(2) ** -53
    top = max(abs(g) for g in want[1])
    loss_units = abs(mpmath.mpf(float(loss)) - want[0]) / want[0] / unit
    grad_units = max(
        abs(mpmath.mpf(float(a)) - g) / top / unit
        for a, g in zip(np.ravel(grad), want[1], strict=True)
    )
    return float(loss_units), float(grad_units)


def paths(z: np.ndarray, v: np.ndarray, t: float, direction: str) -> dict:
    forward = direction == "forward"
    options = {"reduction": "none", "direction": direction, "temperature": t}
    row_z, row_v = z[None], v[None]
    wide_z, wide_v = np.repeat(row_z, 3, axis=0)[None], np.repeat(row_v, 3, axis=0)[None]
    near = NearRows(row_z, row_v, t)
    out = {
        "lean": (
            crossent.distillation_loss(row_z, row_v, **options)[0],
            crossent.distillation_loss_grad(row_z, row_v, **options)[0],
        ),
        "full": (
            crossent.distillation_loss(wide_z, wide_v, **options)[0, 1],
            crossent.distillation_loss_grad(wide_z, wide_v, **options)[0, 1],
        ),
        "NearRows": (near.loss(forward=forward)[0], near.gradient(forward=forward)[0]),
    }
    if torch is not None:
        for name, shape in (("torch 2-D", (1, -1)), ("torch 3-D", (1, -1, 1))):
            student = torch.tensor(z).reshape(shape).requires_grad_()
            loss = ct.distillation_loss(
                student, torch.tensor(v).reshape(shape), t, "sum", direction=direction
            )
            loss.backward()
            out[name] = (loss.item(), student.grad.reshape(-1).numpy())
    return out


def rows() -> list[tuple[np.ndarray, np.ndarray, float]]:
    out = []
    far, near = np.array([0.0, -300.0]), np.array([0.0, -290.0])
    for t in (2.32, 2.34, 2.36, 2.38, 2.4):
        out += [(far, near, t), (near, far, t)]
    rng = np.random.default_rng(1)
    for t in (0.5, 1.0, 2.0, 2.32, 2.4, 3.0):
        for spread in (50.0, 300.0, 700.0):
            v = np.concatenate([[0.0], -rng.uniform(0.0, spread, 4)])
            z = v + rng.normal(0.0, 1e-3, 5) * t
            z[0] = 0.0
            if spread / t <= 700.0:
                out.append((z, v, t))
    return out


def main() -> None:
    worst: dict[tuple[str, str, str], float] = {}
    for z, v, t in rows():
        kind = "far class" if z.size == 2 else "seeded"
        for direction in ("forward", "reverse"):
            want = truth(z, v, t, direction == "forward")
            for path, got in paths(z, v, t, direction).items():
                loss_units, grad_units = errors(*got, want)
                if "-v" in sys.argv:
                    print(f"{direction} T={t} {z[:3]} {path}: {loss_units:.1f} / {grad_units:.1f}")
                for what, value in (("loss", loss_units), ("grad", grad_units)):
                    key = (kind, direction, what, path)
                    worst[key] = max(worst.get(key, 0.0), value)
    names = list(dict.fromkeys(k[3] for k in worst))
    print("| rows | direction | value | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---:|" * len(names))
    for kind in ("far class", "seeded"):
        for direction in ("forward", "reverse"):
            for what in ("loss", "grad"):
                cells = " | ".join(f"{worst[(kind, direction, what, n)]:.1f}" for n in names)
                print(f"| {kind} | {direction} | {what} | {cells} |")


if __name__ == "__main__":
    main()
