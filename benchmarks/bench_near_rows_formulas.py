"""Time of ``NearRows``' array formulas given the softened rows (issue 13, branch nearfast1).

    python benchmarks/bench_near_rows_formulas.py [--repeats 5] [--clock cpu]
        [--backends numpy torch jax] [--against PATH/TO/OTHER/src ...] [--rounds 3]

What PyTorch's generic (3-D) path and JAX run on near rows, and NumPy where Numba is
not: ``NearRows(z, v, T, xp, log_s, log_t)``'s forward gradient, loss and reverse
gradient (``.gradient(forward=True)``, ``.loss(forward=True)``,
``.gradient(forward=False)``), float64, on a row of 10 (NumPy and PyTorch 100 calls,
JAX eager 10) and on a block (NumPy 2000 x 1000, PyTorch and JAX 256 x 1000, one call),
at T = 1/2 (a power of two: the quotient exact) and T = 2.32 (Dekker's remainder).
Rows: standard normal logits times 3, the teacher 1e-9 standard normal away. PyTorch
on one thread. Times in seconds per case; with ``--against``, each tree in its own
process, alternating round by round (``_against.compare``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _against import add_options, compare_if_asked, time_cases
from crossent.losses._far_gaps import tempered_log_softmax64
from crossent.losses._near_rows import NearRows


def _rows(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    z = 3.0 * rng.standard_normal(shape)
    return z, z + 1e-9 * rng.standard_normal(shape)


def _calls(rows: NearRows, n: int, done: object) -> dict[str, object]:
    """The three formulas of ``rows``, ``n`` calls each (``done``: a result's wait)."""

    def timed(fn: object) -> object:
        return lambda: [done(fn()) for _ in range(n)]  # type: ignore[operator]

    return {
        "grad": timed(lambda: rows.gradient(forward=True)),
        "loss": timed(lambda: rows.loss(forward=True)),
        "rev": timed(lambda: rows.gradient(forward=False)),
    }


def cases(backends: list[str]) -> dict[str, object]:
    """The calls timed, by name."""
    out: dict[str, object] = {}
    for t in (0.5, 2.32):
        if "numpy" in backends:
            for shape, n in (((1, 10), 100), ((2000, 1000), 1)):
                z, v = _rows(shape)
                log_s, log_t = (tempered_log_softmax64(x, t)[2] for x in (z, v))
                rows = NearRows(z, v, t, np, log_s, log_t)
                for name, fn in _calls(rows, n, lambda r: r).items():
                    out[f"numpy {shape[0]}x{shape[1]} T={t} {name}"] = fn
        if "torch" in backends:
            import torch

            from crossent._xp import array_namespace

            torch.set_num_threads(1)
            for shape, n in (((1, 10), 100), ((256, 1000), 1)):
                tz, tv = (torch.tensor(x) for x in _rows(shape))
                ts, tt = (torch.log_softmax(x / t, -1) for x in (tz, tv))
                rows = NearRows(tz, tv, t, array_namespace(tz), ts, tt)
                for name, fn in _calls(rows, n, lambda r: r).items():
                    out[f"torch {shape[0]}x{shape[1]} T={t} {name}"] = fn
        if "jax" in backends:
            import jax

            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp

            from crossent._xp import array_namespace

            for shape, n in (((1, 10), 10), ((256, 1000), 1)):
                jz, jv = (jnp.asarray(x) for x in _rows(shape))
                js, jt = (jax.nn.log_softmax(x / t, -1) for x in (jz, jv))
                rows = NearRows(jz, jv, t, array_namespace(jz), js, jt)
                for name, fn in _calls(rows, n, lambda r: r.block_until_ready()).items():
                    out[f"jax {shape[0]}x{shape[1]} T={t} {name}"] = fn
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch", "jax"])
    add_options(parser)
    args = parser.parse_args(argv)
    if compare_if_asked(args, __file__):
        return
    time_cases(cases(args.backends), args)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
