"""Bits of the generic path's double-double measures (issue 13, ddone1), this tree or another.

    cd benchmarks
    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=/tmp/old/src python check_dd_bits.py
    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=../src python check_dd_bits.py

Not a timing: a check that moving the double-double primitives (TwoSum, TwoProduct,
``log_dd``, ``exp_dd``, the exact extraction sums) into one module keeps every result
bit of the measures built on them. Calls ``perplexity`` (of P, and of P against Q),
``kl_divergence``, ``js_divergence`` and ``cross_entropy`` of float64 rows for every
pair of forms (probabilities, log-probabilities, logits) on rows of 3, 17 and 300
classes: random logits (scale 1 and 12), nearly equal sides (relative noise 1e-12,
1e-7, 1e-3), reordered entries, a peaked row, rows with ``-inf`` logits (zero
probabilities) on either side and tiny probabilities; in NumPy without Numba (the
generic path), PyTorch float64 (CPU), JAX with x64 and array-api-strict (each skipped
where it is not installed), and last the NumPy path with Numba (the fused kernels:
``_perplexity_kernels``, whose bits a change of its arithmetic may move; printed on a
line of its own). Prints the number of results and one SHA-256 per backend; two trees
that print the same lines gave the same bits. ``--detail FILE`` writes one digest per
(backend, classes, forms, measure).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from crossent.info import _fused

_FORMS = ("probs", "log_probs", "logits")


def base_rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of float64 logit rows ``(P, Q)``, the hard kinds for ``n`` classes."""
    pairs = []
    for scale in (1.0, 12.0):
        x = rng.normal(size=n) * scale
        pairs.append((x, rng.normal(size=n) * scale))
        for noise in (1e-12, 1e-7, 1e-3):
            pairs.append((x, x + noise * rng.normal(size=n)))
        pairs.append((x, x[::-1].copy()))
    peaked = rng.normal(size=n)
    peaked[rng.integers(n)] += 40.0
    pairs.append((peaked, peaked + 1e-9 * rng.normal(size=n)))
    zeros = rng.normal(size=n)
    zeros[rng.random(n) < 0.3] = -math.inf
    zeros[0] = 0.0
    other = zeros.copy()
    other[np.isfinite(other)] += 1e-6 * rng.normal(size=int(np.isfinite(other).sum()))
    pairs.append((zeros, other))
    pairs.append((other, rng.normal(size=n)))
    tiny = rng.normal(size=n) * 3.0
    tiny[0] = 700.0
    pairs.append((tiny, tiny + 1e-8 * rng.normal(size=n)))
    return np.array([p for p, _ in pairs]), np.array([q for _, q in pairs])


def in_form(logits: np.ndarray, form: str) -> np.ndarray:
    """The rows as probabilities, log-probabilities or logits."""
    if form == "logits":
        return logits
    top = np.max(logits, axis=1, keepdims=True)
    shifted = logits - top
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return log_p if form == "log_probs" else np.exp(log_p)


def _measures() -> dict[str, Callable[..., Any]]:
    """The measures, each of ``(p, q, p_form, q_form)``."""
    return {
        "perplexity": lambda p, q, f, g: crossent.perplexity(p, p_form=f),
        "perplexity_pq": lambda p, q, f, g: crossent.perplexity(p, q, p_form=f, q_form=g),
        "kl": lambda p, q, f, g: crossent.kl_divergence(p, q, p_form=f, q_form=g),
        "js": lambda p, q, f, g: crossent.js_divergence(p, q, p_form=f, q_form=g),
        "cross_entropy": lambda p, q, f, g: crossent.cross_entropy(p, q, p_form=f, q_form=g),
    }


def _backends() -> dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]]:
    """Each installed backend's conversion in and out."""
    out: dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]] = {
        "numpy_generic": (lambda x: x.copy(), np.asarray)
    }
    try:
        import torch

        out["torch_float64"] = (torch.from_numpy, lambda y: y.numpy())
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        out["jax_x64"] = (jnp.asarray, np.asarray)
    except ImportError:
        pass
    try:
        import array_api_strict

        out["array_api_strict"] = (
            lambda x: array_api_strict.asarray(x),
            lambda y: np.asarray(y._array),
        )
    except ImportError:
        pass
    out["numpy_numba"] = (lambda x: x.copy(), np.asarray)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detail", default=None)
    parser.add_argument("--classes", default="3,17,300")
    args = parser.parse_args()
    lines = []
    real_available = _fused.available
    for backend, (to, back) in _backends().items():
        _fused.available = real_available if backend == "numpy_numba" else (lambda: False)
        digest = hashlib.sha256()
        results = 0
        for n in (int(c) for c in args.classes.split(",")):
            rng = np.random.default_rng([args.seed, n])
            base_a, base_b = base_rows(n, rng)
            for form_a in _FORMS:
                for form_b in _FORMS:
                    a, b = to(in_form(base_a, form_a)), to(in_form(base_b, form_b))
                    for name, measure in _measures().items():
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            value = np.asarray(back(measure(a, b, form_a, form_b)), np.float64)
                        one = hashlib.sha256(value.tobytes()).hexdigest()
                        digest.update(one.encode())
                        results += value.size
                        lines.append(f"{backend} {n} {form_a}/{form_b} {name} {one[:16]}")
        print(f"{backend:18s} {results} {digest.hexdigest()}", flush=True)
    _fused.available = real_available
    if args.detail:
        with open(args.detail, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
