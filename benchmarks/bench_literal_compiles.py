"""Issue 13: the Numba compiles a cold cache pays for constants passed as literals.

    python benchmarks/bench_literal_compiles.py --src SRC [--src OTHER/src ...]

For each source tree, a fresh process on a fresh ``NUMBA_CACHE_DIR`` runs the kernels
that pass constants to other compiled functions (the small label calls' ``_statistics``,
``block_sum`` and ``_small_loops_numba.apply``; the calibration row summaries'
``chunk_rows``) with a ``numba.core.event`` listener on ``numba:compile``: the crossent
dispatchers compiled, those compiled for a ``Literal`` argument type (Numba types a
Python constant that compiled code passes to another dispatcher as ``Literal[int](0)``
or ``Literal[bool](False)`` and compiles that dispatcher once more for each such value,
beside its version for ``int64`` or ``bool``), the CPU seconds those compiles took (a
nested compile counted in its caller too), the process's CPU seconds and a digest of
every output (the bits, to compare between trees).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
from numba.core import event

compiles = []


class Listener(event.Listener):
    def on_start(self, ev):
        ev.data["_t0"] = time.process_time()

    def on_end(self, ev):
        d = ev.data["dispatcher"]
        if d.py_func.__module__.startswith("crossent"):
            args = str(ev.data["args"])
            cpu = time.process_time() - ev.data["_t0"]
            compiles.append([d.py_func.__module__ + "." + d.__name__, args, cpu])


event.register("numba:compile", Listener())
from crossent.calibration import _row_kernels as rk
from crossent.losses import _small_label_numba as sl
from crossent.losses import _small_loops
from crossent.losses import _small_numba as sn

digest = hashlib.sha256()
rng = np.random.default_rng(5)
loops = _small_loops.numpy_loops()
for n, c in [(1, 3), (7, 10), (64, 100), (33, 129), (5, 1000), (300, 37)]:
    for scale in (1.0, 30.0, 1e4):
        z = (rng.standard_normal((n, c)) * scale).astype(np.float32)
        if scale == 1e4:
            z[0, :] = 0
            z[-1, 0] = 88.0
        lab = rng.integers(0, c, n)
        for eps in (0.0, 0.1):
            for red in (0, 1, 2):
                rows = np.zeros(n, np.float32)
                ok, loss = sn.label_loss(z, lab, 1 / 1.5, 1e-3, red, 0.0, rows, eps)
                out = np.zeros_like(z)
                ok2 = sn.label_gradient(z, lab, 1.5, 1e-3, red, 0.0, out, eps)
                for x in (np.float64(loss), rows, out, np.array([ok, ok2])):
                    digest.update(x.tobytes())
        z64 = z.astype(np.float64)
        for a in (z64.ravel(), z.ravel().copy()):
            digest.update(np.asarray(sn.pairwise_sum(a)).tobytes())
            digest.update(np.asarray(sn.row_sum(a[:200].copy())).tobytes())
        w = np.ones((2, n))
        for lp in [np.empty(0, np.int64)] + ([loops] if loops is not None else []):
            for what in range(4):
                for option in (0.0, 2.0):
                    per_row, grad = np.zeros(n), np.zeros((n, c))
                    ok, v = sl.label_libm(
                        z64, lab, what, option, w, what % 2, 0.0, 1.0, per_row, grad, lp
                    )
                    for x in (np.float64(v), per_row, grad, np.array([ok])):
                        digest.update(x.tobytes())
for dt in (np.float32, np.float64):
    for n, c in [(1, 2), (17, 5), (2000, 10), (300, 1000)]:
        p = rng.dirichlet(np.full(c, 0.3), n).astype(dt)
        p[0] = 0
        p[0, 0] = 1
        lab = rng.integers(0, c, n)
        for top in (False, True):
            for ent in (False, True):
                for x in rk.row_summaries(p, lab, top=top, entropy=ent, limit=1e-5):
                    digest.update(x.tobytes() if isinstance(x, np.ndarray) else repr(x).encode())
print(json.dumps({"compiles": compiles, "digest": digest.hexdigest()[:16],
                  "cpu": time.process_time()}))
"""


def measure(src: str) -> dict[str, object]:
    """One cold process of :data:`CHILD` on ``src``: its compiles, digest and CPU."""
    with tempfile.TemporaryDirectory(prefix="numba_literal") as cache:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src), NUMBA_CACHE_DIR=cache)
        start = time.time()
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
        )
        found = json.loads(out.stdout.strip().splitlines()[-1])
        found["wall"] = time.time() - start
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for round_ in range(args.rounds):
        for src in args.src:
            found = measure(src)
            compiles = found["compiles"]
            literal = [c for c in compiles if "Literal" in c[1]]
            print(
                f"round {round_} {src}: digest {found['digest']}, {len(compiles)} compiles, "
                f"{len(literal)} with a Literal argument ({sum(c[2] for c in literal):.2f} s "
                f"CPU, nested counted twice); process CPU {found['cpu']:.2f} s"
            )
            for name, sig, cpu in sorted(literal, key=lambda c: -c[2]):
                print(
                    f"    {cpu:6.2f} s  {name}  {hashlib.sha256(sig.encode()).hexdigest()[:6]}"
                    f"  {'; '.join(a for a in sig.split(', ') if 'Literal' in a)}"
                )


if __name__ == "__main__":
    main()
