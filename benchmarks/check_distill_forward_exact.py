"""The forward distillation gradient T (s - t) of float64 rows against mpmath, per path.

    PYTHONPATH=src:tests python benchmarks/check_distill_forward_exact.py

Rows of 2 to 8 classes (seed 13: two classes of N(0, 1) and N(0, 10), three of N(0, 1),
five of N(0, 4), eight of N(0, 9); 16 or 8 rows each) and masked rows (N(0, 60^2), 8
classes, ``-inf`` on both sides and beside each other) at T = 0.5, 1, 2, 4, 8. Printed per
case: the largest error in units of ``2^-53`` times the row's largest entry of mpmath's
(500 digits) gradient, for ``crossent.distillation_loss_grad`` (NumPy, ``'sum'``),
``crossent.torch.distillation_loss``'s 2-D CPU op and its generic path (the logits
``(N, C, 1)``). Issue 13, branch distfwd1.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

import crossent
import crossent.torch as ct

import oracles
from oracles import worst_units_of_row_max as units

warnings.filterwarnings("ignore")


def truth(z: np.ndarray, v: np.ndarray, t: float) -> list:
    """mpmath's T (s - t) per row, at 500 digits (``tests/oracles.py``)."""
    return oracles.distillation_forward_gradient(z, v, t, digits=500)


def numpy_grad(z: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    return crossent.distillation_loss_grad(z, v, temperature=t, reduction="sum")


def op(z: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    zt = torch.tensor(z, requires_grad=True)
    ct.distillation_loss(zt, torch.tensor(v), t, "sum").backward()
    return zt.grad.numpy()


def generic(z: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    zt = torch.tensor(z[:, :, None], requires_grad=True)
    ct.distillation_loss(zt, torch.tensor(v[:, :, None]), t, "sum").backward()
    return zt.grad.numpy()[:, :, 0]


def families() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(13)
    out = {
        "two N(0,1)": (rng.normal(0, 1, (16, 2)), rng.normal(0, 1, (16, 2))),
        "two N(0,10)": (rng.normal(0, 10, (16, 2)), rng.normal(0, 10, (16, 2))),
        "V=3": (rng.normal(0, 1, (8, 3)), rng.normal(0, 1, (8, 3))),
        "V=5": (rng.normal(0, 2, (8, 5)), rng.normal(0, 2, (8, 5))),
        "V=8": (rng.normal(0, 3, (8, 8)), rng.normal(0, 3, (8, 8))),
    }
    z, v = rng.normal(0, 60, (4, 8)), rng.normal(0, 60, (4, 8))
    z[:, 2] = v[:, 2] = -np.inf
    z[1, 5] = -np.inf
    v[1, 5] = -np.inf
    z[3, [0, 6]] = -np.inf
    out["masked"] = (z, v)
    return out


def main() -> None:
    print(f"{'rows':12s} {'T':>4s} {'NumPy':>8s} {'2-D op':>8s} {'generic':>8s}")
    for name, (z, v) in families().items():
        for t in (0.5, 1.0, 2.0, 4.0, 8.0):
            w = truth(z, v, t)
            got = [units(f(z, v, t), w) for f in (numpy_grad, op, generic)]
            print(f"{name:12s} {t:4g} " + " ".join(f"{x:8.2f}" for x in got))


if __name__ == "__main__":
    main()
