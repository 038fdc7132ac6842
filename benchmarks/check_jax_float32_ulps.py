"""Information measures of nearly equal FLOAT32 rows on JAX without x64 (JAX's default:
no float64), against mpmath (issue 13, branch jaxf32).

    cd benchmarks
    PYTHONPATH=../src:.:../tests python check_jax_float32_ulps.py [--rows 3] [--classes 2,1000]
        [--measures js,kl,decomposition] [--jit] [--against ../../main/src]

Not a timing. The rows of ``check_js_float32_ulps.py`` (float32 logits N(0, 1) and the
same plus noise 1e-7 to 1e-3, each side as ``logits``, ``log_probs`` or ``probs``),
every pair of forms, through ``crossent.js_divergence``, ``kl_divergence`` and
``cross_entropy_decomposition`` (its ``kl``; its entropies do not cancel) on float32
JAX arrays (eager, or one ``jax.jit`` of the call with ``--jit``). Each cell is the
worst distance from mpmath (50 digits, the given float32 values) in float32 ulps of the
truth, ``|got - t| / (|t| 2^-23)``; rows whose truth is 0 are left out (a KL of
sides not normalised, a side of probabilities or log-probabilities rounded to float32,
may be negative: branch jaxkl1 counts those rows too, jaxf32 left them out).
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings

import mpmath
import numpy as np

from check_js_float32_ulps import FORMS, NOISES, base, in_form

from oracles import row_probabilities


@functools.cache
def truth(classes: int, rows: int, noise: float, fa: str, fb: str, measure: str) -> tuple:
    z, w = base(classes, rows, noise)
    a, b = in_form(z, fa), in_form(w, fb)
    out = []
    with mpmath.workdps(50):
        for r in range(rows):
            p = row_probabilities(a[r].astype(np.float64), fa)
            q = row_probabilities(b[r].astype(np.float64), fb)
            if measure == "js":
                total = mpmath.fsum(
                    (x * mpmath.log(2 * x / (x + y)) if x else 0)
                    + (y * mpmath.log(2 * y / (x + y)) if y else 0)
                    for x, y in zip(p, q, strict=True)
                )
                out.append(min(total / 2, mpmath.log(2)))
            else:
                out.append(
                    mpmath.fsum(x * mpmath.log(x / y) for x, y in zip(p, q, strict=True) if x)
                )
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--classes", default="2,1000")
    parser.add_argument("--measures", default="js,kl,decomposition")
    parser.add_argument("--forms", default="")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--noises", default="", help="e.g. 1e-2,1e-1,1 (default 1e-7..1e-3)")
    parser.add_argument("--against", default="")
    args = parser.parse_args()
    if args.against:
        sys.path.insert(0, args.against)
    import jax
    import jax.numpy as jnp

    import crossent

    assert not jax.config.jax_enable_x64
    print("crossent from", crossent.__file__, "jit" if args.jit else "eager")
    calls = {
        "js": crossent.js_divergence,
        "kl": crossent.kl_divergence,
        "decomposition": lambda a, b, **k: (
            crossent.cross_entropy_decomposition(a, b, **k).kl_divergence
        ),
    }
    noises = tuple(float(x) for x in args.noises.split(",")) if args.noises else NOISES
    eps = float(np.finfo(np.float32).eps)
    pairs = [(fa, fb) for fa in FORMS for fb in FORMS]
    if args.forms:
        pairs = [tuple(x.split("/")) for x in args.forms.split(",")]  # type: ignore[misc]
    for measure in args.measures.split(","):
        worst = 0.0
        print(
            f"{measure}: worst float32 ulps per pair, noise "
            + " ".join(f"{n:8.0e}" for n in noises)
        )
        for classes in (int(c) for c in args.classes.split(",")):
            for fa, fb in pairs:
                cells = []
                for noise in noises:
                    z, w = base(classes, args.rows, noise)
                    a, b = in_form(z, fa), in_form(w, fb)
                    want = truth(
                        classes, args.rows, noise, fa, fb, "js" if measure == "js" else "kl"
                    )
                    call = functools.partial(calls[measure], p_form=fa, q_form=fb)
                    if args.jit:
                        call = jax.jit(functools.partial(call, validate=False))
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        got = call(jnp.asarray(a), jnp.asarray(b))
                    assert got.dtype == jnp.float32
                    got = np.asarray(got, np.float64).reshape(-1)
                    ulps = [
                        float(abs(mpmath.mpf(float(g)) - t) / (abs(t) * eps))
                        for g, t in zip(got, want, strict=True)
                        if t != 0
                    ]
                    cell = max(ulps, default=float("nan"))
                    worst = max(worst, cell) if ulps else worst
                    cells.append(f"{cell:8.3g}")
                print(f"  {fa + '/' + fb:20s} {classes:5d} " + " ".join(cells))
        print(f"{measure}: worst {worst:.3g}")


if __name__ == "__main__":
    main()
