"""Time of ``crossent.distillation_loss`` (float64, ``'mean'``) on near rows (a teacher's
standard normal logits, the student off by 1e-2 a class) and on ordinary rows (two
independent standard normals), per shape and temperature: the cost of
``_near_rows.KL_FLOOR``. Best of 3 repeats, wall time. Run with ``PYTHONPATH`` naming
the tree to time; the first argument labels the output.
"""

from __future__ import annotations

import sys
import timeit

import numpy as np

import crossent


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "tree"
    rng = np.random.default_rng(0)
    for kind in ("near", "ordinary"):
        for shape in [(1, 10), (8, 1000), (256, 32000)]:
            for temperature in (1.0, 4.0):
                v = rng.standard_normal(shape)
                z = v + 1e-2 * rng.standard_normal(shape)
                if kind == "ordinary":
                    z = rng.standard_normal(shape)

                def call(z=z, v=v, t=temperature) -> None:
                    crossent.distillation_loss(z, v, temperature=t)

                call()
                number = 3 if shape[1] > 1000 else 100
                best = min(timeit.repeat(call, number=number, repeat=3)) / number
                print(f"{label} {kind} {shape[0]}x{shape[1]} T={temperature:g} {best * 1e6:.1f} us")


if __name__ == "__main__":
    main()
