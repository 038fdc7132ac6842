"""The hinge margin (lossulp1: ``(z_c + t) + tau`` with ``t + tau = delta - z_y`` by a
TwoSum per row) against hostile21's ``delta + (z_c - z_y)``, the older ``(delta + z_c)
- z_y`` and an exact TwoSum of every difference, in one process: ``_hinge._margin``
swapped, calls interleaved::

    python benchmarks/bench_hinge_margin_ab.py [--rounds 5]

Large calls (the generic NumPy path) of ``multiclass_hinge_loss`` and its gradient, both
variants, float32 and float64 scores (2048 x 1000); the minimum CPU time per call in ms
over the rounds, and each form's time over the old one's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from crossent.losses import _hinge


def _old(delta: float, z_c: Any, z_y: Any, *, xp: Any) -> Any:
    """Main's margin before hostile21: ``(delta + z_c) - z_y``."""
    return delta + z_c - z_y


def _hostile21(delta: float, z_c: Any, z_y: Any, *, xp: Any) -> Any:
    """Main's margin before lossulp1: the difference first, ``delta + (z_c - z_y)``."""
    return delta + (z_c - z_y)


def _two_sum(delta: float, z_c: Any, z_y: Any, *, xp: Any) -> Any:
    """``(delta + s) + e`` with ``z_c - z_y = s + e`` exactly (Knuth): within an ulp or
    two also near the kink; what that exactness would cost."""
    s = z_c - z_y
    with np.errstate(invalid="ignore"):
        back = s - z_c
        e = (z_c - (s - back)) + ((-z_y) - back)
    e = np.where(np.isfinite(e), e, 0)
    return (delta + s) + e


def _cpu_ms(f: Callable[[], Any], number: int = 3) -> float:
    start = time.process_time()
    for _ in range(number):
        f()
    return (time.process_time() - start) / number * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    rng = np.random.default_rng(0)
    forms = {"new": _hinge._margin, "hostile21": _hostile21, "old": _old, "twosum": _two_sum}
    best: dict[tuple[str, str], float] = {}
    cases = []
    for dtype in (np.float32, np.float64):
        z = rng.normal(size=(2048, 1000)).astype(dtype)
        y = rng.integers(0, 1000, size=2048)
        for name in ("multiclass_hinge_loss", "multiclass_hinge_loss_grad"):
            for variant in ("crammer_singer", "weston_watkins"):
                fn = getattr(crossent, name)
                label = f"{np.dtype(dtype).name} {name} {variant}"
                cases.append((label, lambda fn=fn, z=z, y=y, v=variant: fn(z, y, variant=v)))
    for _ in range(args.rounds):
        for label, f in cases:
            for which, margin in forms.items():
                _hinge._margin = margin  # type: ignore[assignment]
                try:
                    ms = _cpu_ms(f)
                finally:
                    _hinge._margin = forms["new"]
                best[label, which] = min(ms, best.get((label, which), float("inf")))
    for label, _ in cases:
        old = best[label, "old"]
        cells = ", ".join(
            f"{w} {best[label, w]:.1f} ms ({best[label, w] / old:.2f}x)" for w in forms
        )
        print(f"{label}: {cells}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
