"""Time of ``NearRows``' forward gradient (issue 13, branch nearfwd1).

    python benchmarks/bench_near_forward_gradient.py [--repeats 7] [--clock cpu]
        [--against PATH/TO/OTHER/src ...] [--rounds 3]

Cases (float64, T = 1/2): ``crossent.distillation_loss_grad`` 1000 times on one row of
10 near its teacher (student plus 1e-9 standard normal noise: the lean path's compiled
near row) and on the row of ``tests/losses/test_near_forward_moved_mass.py`` (a class of
mass 2^-18 moved down by 70 T); ``NearRows``' array formulas (given the softened rows,
as PyTorch and JAX callers give them) 100 times on the row of 10; the compiled kernel
(``_near_rows_numba.near_gradient64``) and the array formulas once each on 2000 x 1000
near rows (standard normal logits times 3, noise 1e-9). Times in seconds per case;
with ``--against``, each tree in its own process, alternating round by round
(``_against.compare``).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import crossent
from _against import add_options, compare_if_asked, time_cases
from crossent.losses import _near_rows_numba
from crossent.losses._far_gaps import tempered_log_softmax64
from crossent.losses._near_rows import NearRows

T = 0.5


def _formulas(z: np.ndarray, v: np.ndarray) -> NearRows:
    """``NearRows`` of rows ``z``, ``v`` given the softened rows (the array formulas)."""
    log_s, log_t = (tempered_log_softmax64(x, T)[2] for x in (z, v))
    return NearRows(z, v, T, np, log_s, log_t)


def cases() -> dict[str, object]:
    """The calls timed, by name."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(10)
    v = z + 1e-9 * rng.standard_normal(10)
    mass = T * (math.log(2.0**-18) + math.log1p(math.exp(0.3)))
    moved_v = np.array([0.0, 0.3 * T, mass])
    moved_z = np.array([0.0, 0.3 * T + 1e-10 * T, mass - 70 * T])
    big_z = 3.0 * rng.standard_normal((2000, 1000))
    big_v = big_z + 1e-9 * rng.standard_normal(big_z.shape)
    row, big = _formulas(z[None], v[None]), _formulas(big_z, big_v)
    grad = crossent.distillation_loss_grad

    def calls(fn: object, n: int) -> object:
        return lambda: [fn() for _ in range(n)]  # type: ignore[operator]

    return {
        "grad row of 10 x1000": calls(lambda: grad(z, v, temperature=T), 1000),
        "grad moved row x1000": calls(lambda: grad(moved_z, moved_v, temperature=T), 1000),
        "formulas row of 10 x100": calls(lambda: row.gradient(forward=True), 100),
        "kernel 2000x1000": lambda: _near_rows_numba.near_gradient64(big_z, big_v, T),
        "formulas 2000x1000": lambda: big.gradient(forward=True),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    add_options(parser)
    args = parser.parse_args(argv)
    if compare_if_asked(args, __file__):
        return
    time_cases(cases(), args)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
