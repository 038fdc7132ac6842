"""JS of nearly equal FLOAT32 rows on every path, against mpmath (issue 13, branch
jsexact4).

    cd benchmarks
    PYTHONPATH=../src:.:../tests python check_js_float32_ulps.py [--rows 3] [--classes 2,1000]

Not a timing. Rows of float32 logits N(0, 1) and the same rows plus noise (1e-7 to 1e-3,
rounded to float32), each side given as ``logits``, ``log_probs`` (the float64
log-softmax rounded to float32) or ``probs`` (the float64 softmax rounded); every
pair of forms, on NumPy with the fused kernel (Numba), NumPy's generic path (the
kernel off), PyTorch's own path (the host route off) and JAX float32 (no x64). Each
value's distance from mpmath at 50 digits of the given float32 values is printed in
float32 ulps of the truth (``|got - t| / (t 2^-23)``, the worst of the rows); rows
whose truth is 0 (identical rows) are left out.
"""

from __future__ import annotations

import argparse
import functools
import warnings

import mpmath
import numpy as np

from oracles import row_probabilities

FORMS = ("logits", "log_probs", "probs")
NOISES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


@functools.cache
def base(classes: int, rows: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Float32 logits N(0, 1) and the same plus ``noise`` N(0, 1), rounded."""
    rng = np.random.default_rng([classes, rows, int(-np.log10(noise) * 10)])
    z = rng.standard_normal((rows, classes)).astype(np.float32)
    w = (z + noise * rng.standard_normal(z.shape)).astype(np.float32)
    return z, w


def in_form(z: np.ndarray, form: str) -> np.ndarray:
    z64 = z.astype(np.float64)
    if form == "logits":
        return z
    shifted = z64 - z64.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return (log_p if form == "log_probs" else np.exp(log_p)).astype(np.float32)


@functools.cache
def truth(classes: int, rows: int, noise: float, fa: str, fb: str) -> tuple[mpmath.mpf, ...]:
    z, w = base(classes, rows, noise)
    a, b = in_form(z, fa), in_form(w, fb)
    out = []
    with mpmath.workdps(50):
        for r in range(rows):
            p = row_probabilities(a[r].astype(np.float64), fa)
            q = row_probabilities(b[r].astype(np.float64), fb)
            total = mpmath.fsum(
                (x * mpmath.log(2 * x / (x + y)) if x else 0)
                + (y * mpmath.log(2 * y / (x + y)) if y else 0)
                for x, y in zip(p, q, strict=True)
            )
            out.append(min(total / 2, mpmath.log(2)))
    return tuple(out)


def backends() -> dict[str, object]:
    import crossent
    import crossent._torch_host as host
    from crossent.info import _fused

    out: dict[str, object] = {}
    fused_on = _fused.available

    def numpy_fused(a: np.ndarray, b: np.ndarray, fa: str, fb: str) -> np.ndarray:
        return np.asarray(crossent.js_divergence(a, b, p_form=fa, q_form=fb))

    def numpy_generic(a: np.ndarray, b: np.ndarray, fa: str, fb: str) -> np.ndarray:
        _fused.available = lambda: False
        try:
            return numpy_fused(a, b, fa, fb)
        finally:
            _fused.available = fused_on

    out["numpy+numba"] = numpy_fused
    out["numpy generic"] = numpy_generic
    try:
        import torch

        def torch_path(a: np.ndarray, b: np.ndarray, fa: str, fb: str) -> np.ndarray:
            saved, host.MAX_ELEMENTS = host.MAX_ELEMENTS, -1
            try:
                got = crossent.js_divergence(
                    torch.from_numpy(a), torch.from_numpy(b), p_form=fa, q_form=fb
                )
            finally:
                host.MAX_ELEMENTS = saved
            assert got.dtype == torch.float32
            return got.numpy()

        out["torch"] = torch_path
    except ImportError:
        pass
    try:
        import jax.numpy as jnp

        def jax_path(a: np.ndarray, b: np.ndarray, fa: str, fb: str) -> np.ndarray:
            got = crossent.js_divergence(jnp.asarray(a), jnp.asarray(b), p_form=fa, q_form=fb)
            assert got.dtype == jnp.float32
            return np.asarray(got)

        out["jax f32"] = jax_path
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--classes", default="2,1000")
    parser.add_argument("--forms", default="")
    args = parser.parse_args()
    paths = backends()
    eps = float(np.finfo(np.float32).eps)
    pairs = [(fa, fb) for fa in FORMS for fb in FORMS]
    if args.forms:
        pairs = [tuple(x.split("/")) for x in args.forms.split(",")]  # type: ignore[misc]
    print(f"{'forms':20s} {'V':>5s} " + " ".join(f"{k:>14s}" for k in paths))
    worst: dict[str, float] = dict.fromkeys(paths, 0.0)
    for classes in (int(c) for c in args.classes.split(",")):
        for fa, fb in pairs:
            for noise in NOISES:
                z, w = base(classes, args.rows, noise)
                a, b = in_form(z, fa), in_form(w, fb)
                want = truth(classes, args.rows, noise, fa, fb)
                cells = []
                for name, call in paths.items():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        got = np.asarray(call(a, b, fa, fb), np.float64).reshape(-1)
                    ulps = [
                        float(abs(mpmath.mpf(float(g)) - t) / (t * eps))
                        for g, t in zip(got, want, strict=True)
                        if t > 0
                    ]
                    cell = max(ulps, default=float("nan"))
                    worst[name] = max(worst[name], cell) if ulps else worst[name]
                    cells.append(f"{cell:14.3g}")
                print(f"{fa + '/' + fb:20s} {classes:5d} {noise:7.0e} " + " ".join(cells))
    print("worst: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
