r"""Accuracy of the forward distillation gradient on rows of a KL below
``_near_rows.KL_FLOOR`` and a spread above ``SPREAD_FLOOR`` (issue 13, branch leftovers14).

    PYTHONPATH=src python benchmarks/bench_distill_forward_kl_floor_rows.py [--seed 1]

``crossent.distillation_loss_grad`` (NumPy) and the CPU op flag such rows by their KL
and form their gradient by ``_near_rows.NearRows``; ``crossent.torch``'s generic path
(a 1-D call, a teacher that requires a gradient) flags forward rows by the spread alone
(``_near_gradient.gradient_rows``) and keeps autograd's gradient of ``NearRows``' loss
formula there. Each path's student gradient against mpmath's :math:`T(s - t)` at 60
digits, in units of :math:`2^{-53}` times the row's largest entry, float64: seeded rows
(teacher logits normal times a scale, the student's each moved by ``eps T`` times a
standard normal: many classes each moving a little), and a few built ones.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator

import mpmath
import numpy as np
import torch

import crossent
import crossent.torch as ct
from crossent.losses import _near_rows

PATHS = ("1-D generic", "teacher-grad generic", "CPU op", "NumPy")


def softmax(x: list[float], temperature: float) -> list[mpmath.mpf]:
    scaled = [mpmath.mpf(a) / temperature for a in x]
    top = max(scaled)
    e = [mpmath.exp(a - top) for a in scaled]
    total = mpmath.fsum(e)
    return [a / total for a in e]


def truth(z: list[float], v: list[float], temperature: float) -> tuple[list, float, float]:
    """:math:`T(s - t)`, the KL :math:`D(t\\,\\|\\,s)` and the spread over :math:`\\max t`."""
    with mpmath.workdps(60):
        s, t = softmax(z, temperature), softmax(v, temperature)
        kl = mpmath.fsum(b * mpmath.log(b / a) for a, b in zip(s, t, strict=True))
        spread = max(abs(a - b) for a, b in zip(s, t, strict=True)) / max(t)
        return [temperature * (a - b) for a, b in zip(s, t, strict=True)], float(kl), float(spread)


def units(got: list[float], exact: list) -> float:
    with mpmath.workdps(60):
        unit = max(abs(x) for x in exact) * mpmath.mpf(2) ** -53
        return max(float(abs(mpmath.mpf(g) - x) / unit) for g, x in zip(got, exact, strict=True))


def gradients(z: np.ndarray, v: np.ndarray, temperature: float) -> list[list[float]]:
    """The student gradient of one row by each of :data:`PATHS`."""
    one = torch.tensor(z, requires_grad=True)
    ct.distillation_loss(one, torch.tensor(v), temperature=temperature).backward()
    options = {"temperature": temperature, "reduction": "sum"}
    both = torch.tensor(np.stack([z, z]), requires_grad=True)
    teacher = torch.tensor(np.stack([v, v]), requires_grad=True)
    ct.distillation_loss(both, teacher, **options).backward()
    op = torch.tensor(np.stack([z, z]), requires_grad=True)
    ct.distillation_loss(op, teacher.detach(), **options).backward()
    grad = crossent.distillation_loss_grad(z[None], v[None], **options)[0]
    assert one.grad is not None
    assert both.grad is not None
    assert op.grad is not None
    return [one.grad.tolist(), both.grad[0].tolist(), op.grad[0].tolist(), grad.tolist()]


def rows(seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    for c, scale in (
        (3, 2),
        (3, 10),
        (10, 10),
        (10, 30),
        (100, 10),
        (1000, 2),
        (1000, 8),
        (32000, 1),
    ):
        for temperature in (0.5, 1.0, 2.0):
            for eps in (2.0**-14, 2.0**-12, 2.0**-10, 2.0**-9, 2.0**-8):
                v = rng.normal(size=c) * scale
                yield (
                    f"{c}x{scale} 2^{math.log2(eps):.0f}",
                    v + eps * temperature * rng.normal(size=c),
                    v,
                    temperature,
                )
    tiny = math.log(1e-9)
    built = {
        "swap 2^-14, a tiny class down": ([2**-14, -(2**-14), tiny - 70], [0.0, 0.0, tiny]),
        "swap 2^-14, a tiny class up": ([2**-14, -(2**-14), math.log(2e-7)], [0.0, 0.0, tiny]),
        "swap 2^-12, a tiny class down": ([2**-12, -(2**-12), tiny - 72], [0.0, 0.0, tiny - 2.3]),
        "20 tiny classes down": ([0.0] + [tiny - 30] * 20 + [2**-13], [0.0] + [tiny] * 20 + [0.0]),
    }
    for name, (z, v) in built.items():
        for temperature in (0.5, 1.0, 2.0):
            zt, vt = np.array(z) * temperature, np.array(v) * temperature
            yield name, zt, vt, temperature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print("| row | T | KL / KL_FLOOR | spread / SPREAD_FLOOR | " + " | ".join(PATHS) + " |")
    print("|---" * (4 + len(PATHS)) + "|")
    worst = dict.fromkeys(PATHS, 0.0)
    for name, z, v, temperature in rows(args.seed):
        exact, kl, spread = truth(z.tolist(), v.tolist(), temperature)
        kl, spread = kl / _near_rows.KL_FLOOR, spread / _near_rows.SPREAD_FLOOR
        if not (kl < 1.0 < spread):
            continue
        off = [units(g, exact) for g in gradients(z, v, temperature)]
        worst = {p: max(worst[p], u) for p, u in zip(PATHS, off, strict=True)}
        cells = " | ".join(f"{u:.1f}" for u in off)
        print(f"| {name} | {temperature} | {kl:.3g} | {spread:.3g} | {cells} |")
    print("| worst | | | | " + " | ".join(f"{worst[p]:.1f}" for p in PATHS) + " |")


if __name__ == "__main__":
    main()
