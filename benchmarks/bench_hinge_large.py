"""Large ``multiclass_hinge_loss`` calls (the generic NumPy path), against other code.

Branch leftovers6 formed the loss as a sum of the counted margins (a ``where``) rather
than ``max(0, margins)`` and a row maximum, so that its derivative under autodiff is the
documented subgradient; this measures what that costs. Each round runs this checkout's
``src`` and the ``--against`` one in turn, in fresh processes (interleaved)::

    cd benchmarks && python bench_hinge_large.py --against /tmp/old/src --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import timeit, numpy as np, crossent
rng = np.random.default_rng(0)
for shape in [(4096, 1000), (512, 32000)]:
    z = rng.normal(size=shape)
    y = rng.integers(0, shape[1], size=shape[0])
    for v in ("crammer_singer", "weston_watkins"):
        f = lambda: crossent.multiclass_hinge_loss(z, y, variant=v)
        f()
        t = min(timeit.repeat(f, number=3, repeat=5)) / 3
        print(f"{shape} {v} {t * 1e3:.1f}")
"""


def _run(src: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in out.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", required=True, help="another checkout's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    best: dict[str, dict[str, float]] = {"this": {}, "against": {}}
    for _ in range(args.rounds):
        for name, src in (("this", here), ("against", args.against)):
            for case, ms in _run(src).items():
                best[name][case] = min(ms, best[name].get(case, float("inf")))
    for case in best["this"]:
        print(f"{case}: {best['this'][case]:.1f} ms, against {best['against'][case]:.1f} ms")


if __name__ == "__main__":
    main()
