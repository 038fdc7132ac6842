"""Worst float32 ulps of ``kl_divergence`` (and the decomposition's KL) per form pair on
nearly equal rows, against the exact KL of the float32 values (mpmath, 50 digits).

Rows: float32 logits ``z`` (standard normal times 3), Q's ``z + delta * N(0, 1)``; each
side given as logits, as log-probabilities (``log_softmax`` in float64, rounded to
float32) or as probabilities (``softmax``, rounded).  ``delta`` in 1e-7 .. 1e-2, V = 2, 9,
1000.  Backends: NumPy with Numba (the fused kernel), NumPy without it (the generic
path), torch float32.  Usage: ``python check_kl_float32_near.py [--rows N] [--no-torch]``.
"""

from __future__ import annotations

import argparse
import itertools

import mpmath
import numpy as np

import crossent
from crossent.info import _fused

FORMS = ("probs", "log_probs", "logits")
DELTAS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def _sides(z: np.ndarray) -> dict[str, np.ndarray]:
    z64 = z.astype(np.float64)
    lse = np.logaddexp.reduce(z64, axis=-1, keepdims=True)
    return {
        "logits": z,
        "log_probs": (z64 - lse).astype(np.float32),
        "probs": np.exp(z64 - lse).astype(np.float32),
    }


@mpmath.workdps(50)
def _exact_logs(row: np.ndarray, form: str) -> list[mpmath.mpf]:
    v = [mpmath.mpf(float(x)) for x in row]
    if form == "log_probs":
        return v
    if form == "probs":
        return [mpmath.log(x) if x > 0 else -mpmath.inf for x in v]
    top = max(v)
    lse = top + mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in v))
    return [x - lse for x in v]


@mpmath.workdps(50)
def _kl(lp: list[mpmath.mpf], lq: list[mpmath.mpf]) -> float:
    return float(
        mpmath.fsum(
            mpmath.exp(a) * (a - b) for a, b in zip(lp, lq, strict=True) if a != -mpmath.inf
        )
    )


def _ulps(value: float, truth: float) -> float:
    t32 = np.float32(truth)
    spacing = (
        float(np.spacing(abs(t32))) if t32 != 0 else float(np.finfo(np.float32).smallest_subnormal)
    )
    return abs(float(value) - truth) / spacing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(20261207)
    backends = ["numba", "numpy"] + ([] if args.no_torch else ["torch"])
    if not args.no_torch:
        import torch
    worst: dict[tuple[str, str, str, str], float] = {}
    for v in (2, 9, 1000):
        rows = args.rows if v < 1000 else max(2, args.rows // 4)
        for delta in DELTAS:
            z = (3.0 * rng.standard_normal((rows, v))).astype(np.float32)
            w = (z + delta * rng.standard_normal((rows, v))).astype(np.float32)
            sp, sq = _sides(z), _sides(w)
            logs_p = {f: [_exact_logs(sp[f][i], f) for i in range(rows)] for f in FORMS}
            logs_q = {f: [_exact_logs(sq[f][i], f) for i in range(rows)] for f in FORMS}
            for fp, fq in itertools.product(FORMS, FORMS):
                truth = [_kl(logs_p[fp][i], logs_q[fq][i]) for i in range(rows)]
                for backend in backends:
                    a, b = sp[fp], sq[fq]
                    kw = {"p_form": fp, "q_form": fq, "validate": False}
                    if backend == "torch":
                        a, b = torch.from_numpy(a), torch.from_numpy(b)
                    saved = _fused.available
                    if backend == "numpy":
                        _fused.available = lambda: False  # type: ignore[assignment]
                    try:
                        kl = np.asarray(crossent.kl_divergence(a, b, **kw))
                        dec = np.asarray(
                            crossent.cross_entropy_decomposition(a, b, **kw).kl_divergence
                        )
                    finally:
                        _fused.available = saved  # type: ignore[assignment]
                    for what, values in (("kl", kl), ("decomposition", dec)):
                        key = (backend, what, fp, fq)
                        for i in range(rows):
                            worst[key] = max(worst.get(key, 0.0), _ulps(values[i], truth[i]))
    print(f"{'backend':8} {'measure':14} {'p_form':10} {'q_form':10} worst ulps")
    for key in sorted(worst):
        print(f"{key[0]:8} {key[1]:14} {key[2]:10} {key[3]:10} {worst[key]:.3g}")


if __name__ == "__main__":
    main()
