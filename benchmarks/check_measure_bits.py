"""Bits of the measures' row kernel (``info/_fused_kernels.rows``), this tree or another.

    cd benchmarks
    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=/tmp/old/src python check_measure_bits.py
    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=../src python check_measure_bits.py

Not a timing: a check that a change of the kernel's compilation (which helpers Numba
inlines in its IR; issue 13, branch numbainline1) keeps every result bit. Calls the
serial row kernel of float32 and float64 (the parallel twin calls the same compiled
``_row``) for every pair of forms (probabilities, log-probabilities, logits), every
``want`` (the 15 sets of H, CE, KL and JS), the unit nats and bits, unscreened and
screened sides, on rows of 2, 3, 17, 100, 1000 and 4099 classes: random logits (scale 1
and 12), nearly equal sides (relative noise 1e-12, 1e-7 and 1e-3: the exact sums and the
Bregman, ratio and JS log-ratio passes), far sides, peaked rows, rows with ``-inf``
logits (zero probabilities) on either side, huge logits (1e4 scale, +1e5 offset),
tiny probabilities (1e-300 and subnormal), unnormalised rows and a NaN. Prints the
number of results and one SHA-256 over every result and suspect count; two trees that
print the same line gave the same bits. ``--detail FILE`` writes one digest per
(dtype, classes, forms, want) to find where two trees differ; ``--classes`` other sizes
(the digest is then another).
"""

from __future__ import annotations

import argparse
import hashlib
import math

import numpy as np

from crossent.info import _fused_kernels


def base_rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of float64 logit rows ``(P, Q)``, every hard kind for ``n`` classes."""
    pairs = []
    for scale in (1.0, 12.0):
        x = rng.normal(size=n) * scale
        pairs.append((x, rng.normal(size=n) * scale))  # random, far apart
        for noise in (1e-12, 1e-7, 1e-3):  # nearly equal
            pairs.append((x, x + noise * rng.normal(size=n)))
        pairs.append((x, x[::-1].copy()))  # the same entries, reordered
    peaked = rng.normal(size=n)
    peaked[rng.integers(n)] += 40.0
    pairs.append((peaked, peaked + 1e-9 * rng.normal(size=n)))
    pairs.append((peaked, rng.normal(size=n)))
    zeros = rng.normal(size=n)
    zeros[rng.random(n) < 0.3] = -math.inf
    zeros[0] = 0.0
    other = zeros.copy()
    other[np.isfinite(other)] += 1e-6 * rng.normal(size=int(np.isfinite(other).sum()))
    pairs.append((zeros, other))
    pairs.append((zeros, rng.normal(size=n)))
    pairs.append((rng.normal(size=n), zeros))
    huge = rng.normal(size=n) * 1e4 + 1e5
    pairs.append((huge, huge + rng.normal(size=n)))
    tiny = rng.normal(size=n) - 690.0
    tiny[0] = 0.0
    pairs.append((tiny, tiny + 1e-8 * rng.normal(size=n)))
    pairs.append((tiny, rng.normal(size=n)))
    a = np.array([p for p, _ in pairs])
    b = np.array([q for _, q in pairs])
    return a, b


def in_form(logits: np.ndarray, form: int) -> np.ndarray:
    """The rows as probabilities (0), log-probabilities (1) or logits (2)."""
    if form == 2:
        return logits
    top = np.max(logits, axis=1, keepdims=True)
    shifted = logits - top
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return log_p if form == 1 else np.exp(log_p)


def odd_rows(a: np.ndarray, b: np.ndarray, form: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rows more: one unnormalised (probabilities times 1.01, logits as they are), one
    with a NaN."""
    extra_a = a[:2].copy()
    extra_b = b[:2].copy()
    if form == 0:
        extra_a[0] *= 1.01
        extra_a[1, -1] = 1e-310  # subnormal
    extra_a[1, 0] = math.nan
    return np.vstack([a, extra_a]), np.vstack([b, extra_b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detail", default=None)
    parser.add_argument("--classes", default="2,3,17,100,1000,4099")
    args = parser.parse_args()
    digest = hashlib.sha256()
    lines = []
    results = 0
    for dtype in (np.float64, np.float32):
        kernel = _fused_kernels.rows(np.dtype(dtype), parallel=False)
        for n in (int(c) for c in args.classes.split(",")):
            rng = np.random.default_rng([args.seed, n])
            base_a, base_b = base_rows(n, rng)
            for form_a in (0, 1, 2):
                for form_b in (0, 1, 2):
                    a, _ = odd_rows(in_form(base_a, form_a), base_b, form_a)
                    b, _ = odd_rows(in_form(base_b, form_b), base_b, form_b)
                    a = a.astype(dtype)
                    b = b.astype(dtype)
                    for want in range(1, 16):
                        one = hashlib.sha256()
                        for scale in (1.0, math.log(2.0)):
                            for tol in (-1.0, 1e-3):
                                out = np.empty((want.bit_count(), a.shape[0]), dtype)
                                suspects = kernel(a, b, form_a, form_b, want, scale, tol, tol, out)
                                one.update(out.tobytes())
                                one.update(int(suspects).to_bytes(8, "little"))
                                results += out.size
                        digest.update(one.digest())
                        key = f"{np.dtype(dtype).name} {n} {form_a}{form_b} {want}"
                        lines.append(f"{key} {one.hexdigest()[:16]}")
    if args.detail:
        with open(args.detail, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    print(f"{results} {digest.hexdigest()}")


if __name__ == "__main__":
    main()
