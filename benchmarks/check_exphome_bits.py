r"""Bits of the generic path's JS against mpmath, this tree against another (issue 13,
branch exphome1).

    cd benchmarks
    PYTHONPATH=../src:. NUMBA_CACHE_DIR=$(mktemp -d) python check_exphome_bits.py \
        --against /tmp/old/src [--rows 40] [--classes 64]

Not a timing. Branch exphome1 made ``_double_double.exp_pairs`` (a table of 4096, six
series terms with exact heads: about :math:`2^{-104}`) the one array double-double
exponential; ``exp_dd`` (the table of 64 and eleven terms it replaces, :math:`2^{-96.4}`
relative where there is a low part) gave the generic path's exact JS its other side's
probabilities (``_js_mixed.side_probabilities``) and the excess of a side of
log-probabilities beside logits (``_measures._log_probs_excess``). Both trees
(``_against.load_tree``) compute ``js_divergence`` on the generic path (NumPy with the
fused kernels off, and array-api-strict) of float64 rows of ``--classes`` classes in
the pairs of forms that reach those (probabilities against logits and against
log-probabilities, logits against log-probabilities and back), ``--rows`` rows each of
nearly equal sides (Q's logits P's plus noise 1e-13, 1e-9, 1e-6, 1e-3), far sides,
spread rows (scale 12: probabilities down to 1e-60) and rows whose smallest
probabilities are subnormal; every result that differs between the trees is compared
with mpmath at 60 digits (``tests.oracles.row_probabilities``) and its error counted in
ulps of the truth. Prints, per pair of forms, the results, how many changed, the
largest error before and after over the changed ones, and how many got worse by more
than half an ulp (none should), and the entries that went through the new tree's
``exp_dd`` (so that the exact passes were reached). Then the exponential itself: both
trees' ``exp_dd`` of the arguments the exact JS gives it (:math:`s_{hi}`, every entry of
the sets above, logits normalised) against mpmath, as bits of relative accuracy
(:math:`-\log_2` of the error; the low part subnormal below :math:`e^{-669}` and so
left out).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import mpmath
import numpy as np

from _against import load_tree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.oracles import row_probabilities

PAIRS = [
    ("probs", "logits"),
    ("probs", "log_probs"),
    ("logits", "log_probs"),
    ("log_probs", "logits"),
]


def _logits(rows: int, classes: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(13)
    out = []
    for noise in (1e-13, 1e-9, 1e-6, 1e-3):
        z = rng.standard_normal((rows, classes)) * 3.0
        out.append((f"near {noise:g}", z, z + noise * rng.standard_normal(z.shape)))
    z = rng.standard_normal((rows, classes)) * 3.0
    out.append(("far", z, rng.standard_normal(z.shape) * 3.0))
    z = rng.standard_normal((rows, classes)) * 12.0
    out.append(("spread 1e-9", z, z + 1e-9 * rng.standard_normal(z.shape)))
    z = rng.standard_normal((rows, classes)) * 3.0
    z[:, : classes // 8] -= rng.uniform(700.0, 740.0, (rows, classes // 8))  # subnormal
    out.append(("subnormal 1e-9", z, z + 1e-9 * rng.standard_normal(z.shape)))
    return out


def _in_form(z: np.ndarray, form: str) -> np.ndarray:
    if form == "logits":
        return z
    top = z.max(-1, keepdims=True)
    log_p = (z - top) - np.log(np.exp(z - top).sum(-1, keepdims=True))
    return log_p if form == "log_probs" else np.exp(log_p)


def _truth(a: np.ndarray, b: np.ndarray, forms: tuple[str, str]) -> mpmath.mpf:
    p = row_probabilities(a.tolist(), forms[0])
    q = row_probabilities(b.tolist(), forms[1])
    total = mpmath.mpf(0)
    for x, y in zip(p, q, strict=True):
        m = (x + y) / 2
        if x > 0:
            total += x * mpmath.log(x / m) / 2
        if y > 0:
            total += y * mpmath.log(y / m) / 2
    return total


def _ulps(value: float, truth: mpmath.mpf) -> float:
    unit = float(np.spacing(abs(float(truth)))) if truth != 0 else 2.0**-1074
    return float(abs(mpmath.mpf(value) - truth) / unit)


def _backends(tree: Any) -> dict[str, Any]:
    import array_api_strict as xs

    def numpy_generic(a: np.ndarray, b: np.ndarray, f: str, g: str) -> np.ndarray:
        fused = tree.info._fused
        available = fused.available
        fused.available = lambda: False
        try:
            return np.asarray(tree.js_divergence(a, b, p_form=f, q_form=g))
        finally:
            fused.available = available

    def strict(a: np.ndarray, b: np.ndarray, f: str, g: str) -> np.ndarray:
        got = tree.js_divergence(xs.asarray(a), xs.asarray(b), p_form=f, q_form=g)
        return np.asarray(got._array)

    return {"numpy_generic": numpy_generic, "array_api_strict": strict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the other tree (its src)")
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--classes", type=int, default=64)
    args = parser.parse_args()
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    new, old = load_tree(here, "tree_exphome_new"), load_tree(args.against, "tree_exphome_old")
    sets = _logits(args.rows, args.classes)
    reached = [0]
    for module in (new.info._js_mixed, new.info._measures):
        real = module.exp_dd

        def counted(y: Any, *, xp: Any, real: Any = real) -> Any:
            reached[0] += int(np.prod(y.shape))
            return real(y, xp=xp)

        module.exp_dd = counted
    print(
        f"{'backend':17} {'forms':20} {'results':>7} {'changed':>7} "
        f"{'max ulps before':>15} {'after':>8} {'worse>0.5':>9}"
    )
    for backend in ("numpy_generic", "array_api_strict"):
        run_new, run_old = _backends(new)[backend], _backends(old)[backend]
        for forms in PAIRS:
            results = changed = worse = 0
            before = after = 0.0
            worst: list[str] = []
            for name, z, w in sets:
                a, b = _in_form(z, forms[0]), _in_form(w, forms[1])
                got_new, got_old = run_new(a, b, *forms), run_old(a, b, *forms)
                results += got_new.size
                for i in np.flatnonzero(got_new != got_old):
                    changed += 1
                    with mpmath.workdps(60):
                        truth = _truth(a[i], b[i], forms)
                        e_new, e_old = _ulps(got_new[i], truth), _ulps(got_old[i], truth)
                    before, after = max(before, e_old), max(after, e_new)
                    if e_new > e_old + 0.5:
                        worse += 1
                        worst.append(f"{name} row {i}: {e_old:.3f} -> {e_new:.3f} ulps")
            print(
                f"{backend:17} {'-'.join(forms):20} {results:7d} {changed:7d} "
                f"{before:15.3f} {after:8.3f} {worse:9d}"
            )
            for line in worst:
                print("    worse:", line)
    print(f"entries through the new tree's exp_dd: {reached[0]}")
    _exponential(new, old, sets)


def _exponential(new: Any, old: Any, sets: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    y = np.concatenate([_in_form(z, "log_probs").ravel() for _, z, _ in sets])
    y = y[y > -669.0]
    trees = {"before": old._double_double.exp_dd, "after": new._double_double.exp_dd}
    pairs = {k: f(y, xp=np) for k, f in trees.items()}
    changed = (pairs["before"][0] != pairs["after"][0]) | (pairs["before"][1] != pairs["after"][1])
    worst = dict.fromkeys(trees, mpmath.mpf(0))
    with mpmath.workdps(60):
        for i in range(y.size):
            truth = mpmath.exp(mpmath.mpf(float(y[i])))
            for k, (hi, lo) in pairs.items():
                value = mpmath.mpf(float(hi[i])) + mpmath.mpf(float(lo[i]))
                worst[k] = max(worst[k], abs(value - truth) / truth)
    bits = {k: float(-mpmath.log(v, 2)) if v else float("inf") for k, v in worst.items()}
    print(
        f"exp_dd of {y.size} arguments: {int(changed.sum())} pairs changed; "
        f"worst relative error 2^-{bits['before']:.1f} before, 2^-{bits['after']:.1f} after"
    )


if __name__ == "__main__":
    main()
