"""JS of ``check_dd_bits.py``'s rows on the generic path, two trees, against mpmath
(issue 13, branch jsgeneric1).

    cd benchmarks
    PYTHONPATH=../src:. python check_js_generic_ulps.py dump new.npy [--jax]
    PYTHONPATH=/tmp/old/src:. python check_js_generic_ulps.py dump old.npy [--jax]
    PYTHONPATH=../src:.:../tests python check_js_generic_ulps.py compare new.npy old.npy

Not a timing. ``dump`` writes ``js_divergence`` of every pair of forms of
``check_dd_bits.base_rows`` (3, 17 and 300 classes, seed 0) in NumPy without Numba (or
JAX with x64); ``compare`` prints each value that differs between two dumps with its
distance from mpmath at 60 digits of the given values (ulps of the truth, capped at
:math:`\\log 2`), and a summary: how many changed, the worst and mean distances, how many
moved closer.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Iterator

import numpy as np

from check_dd_bits import _FORMS, base_rows, in_form


def cases() -> Iterator[tuple[int, str, str, np.ndarray, np.ndarray]]:
    """``(classes, form_a, form_b, a, b)`` in ``check_dd_bits.py``'s order."""
    for n in (3, 17, 300):
        a, b = base_rows(n, np.random.default_rng([0, n]))
        for form_a in _FORMS:
            for form_b in _FORMS:
                yield n, form_a, form_b, in_form(a, form_a), in_form(b, form_b)


def dump(path: str, use_jax: bool) -> None:
    import crossent
    from crossent.info import _fused

    _fused.available = lambda: False  # (the generic path)
    convert = np.asarray
    if use_jax:
        import jax

        jax.config.update("jax_enable_x64", True)
        convert = jax.numpy.asarray
    out = []
    for _, form_a, form_b, a, b in cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            js = crossent.js_divergence(convert(a), convert(b), p_form=form_a, q_form=form_b)
        out.append(np.asarray(js, np.float64))
    np.save(path, np.concatenate(out))


def compare(new_path: str, old_path: str) -> None:
    import mpmath

    from oracles import row_probabilities

    new, old = np.load(new_path), np.load(old_path)
    eps = np.finfo(np.float64).eps
    k, rows = 0, []
    for n, form_a, form_b, a, b in cases():
        for r in range(a.shape[0]):
            if new[k].tobytes() != old[k].tobytes():
                with mpmath.workdps(60):
                    p = row_probabilities(a[r], form_a)
                    q = row_probabilities(b[r], form_b)
                    terms = (
                        (x * mpmath.log(2 * x / (x + y)) if x else 0)
                        + (y * mpmath.log(2 * y / (x + y)) if y else 0)
                        for x, y in zip(p, q, strict=True)
                    )
                    t = min(mpmath.fsum(terms) / 2, mpmath.log(2))
                    ulps_new = float(abs(mpmath.mpf(float(new[k])) - t) / (t * eps))
                    ulps_old = float(abs(mpmath.mpf(float(old[k])) - t) / (t * eps))
                rows.append((n, form_a, form_b, r, ulps_new, ulps_old))
                print(
                    f"{n:4d} {form_a}/{form_b} row {r:2d}: {ulps_new:.3g} ulps (was {ulps_old:.3g})"
                )
            k += 1
    got = [x[4] for x in rows]
    was = [x[5] for x in rows]
    closer = sum(a < b for a, b in zip(got, was, strict=True))
    farther = sum(a > b for a, b in zip(got, was, strict=True))
    print(
        f"changed {len(rows)} of {k}; new worst {max(got, default=0.0):.3g} ulps, mean "
        f"{float(np.mean(got)) if got else 0.0:.3g}; old worst {max(was, default=0.0):.3g}; "
        f"closer {closer}, farther {farther}"
    )
    print(dict(Counter(f"{x[1]}/{x[2]}" for x in rows)))


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2], "--jax" in sys.argv)
    else:
        compare(sys.argv[2], sys.argv[3])
