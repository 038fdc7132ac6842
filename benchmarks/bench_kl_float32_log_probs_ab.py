"""KL of float32 log-probabilities against log-probabilities (alone and in the
decomposition), random and nearly equal rows: this tree against others, interleaved
call by call in one process (issue 13, branch klf32: the fast pass's bound now counts
the polynomial ``exp``'s error, and the rows it flags take the exact sums).

    python bench_kl_float32_log_probs_ab.py --against /tmp/main/src --clock cpu

Rows: ``log`` of float32 Dirichlet(1) rows against the batch reversed (random rows, as
``bench_info_float32.py``), and against themselves with relative noise 1e-4 (nearly
equal), for V = 2 (200000 rows), 9 (100000) and 1000 (5000); ``--sizes`` other
``classes:rows`` pairs, ``--validate`` the screened calls (``validate=True``, the
default of the API; branch klf32d: the screen of two float32 log-probability sides in
the row's own kernel).

    python bench_kl_float32_log_probs_ab.py --sizes 2:200000 9:100000 16:100000 --validate
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, clock, load_tree


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", default=["2:200000", "9:100000", "1000:5000"])
    parser.add_argument("--validate", action="store_true", help="screened calls")
    add_options(parser)
    args = parser.parse_args()
    trees = [load_tree("../src", "crossent_here")]
    trees += [load_tree(t, f"crossent_other{i}") for i, t in enumerate(args.against or [])]
    now = clock(args)
    rng = np.random.default_rng(0)
    options = {"p_form": "log_probs", "q_form": "log_probs", "validate": args.validate}
    sizes = [tuple(int(x) for x in size.split(":")) for size in args.sizes]
    for classes, rows in sizes:
        p = rng.dirichlet(np.ones(classes), rows)
        near = p * (1.0 + 1e-4 * rng.standard_normal(p.shape))
        near /= near.sum(axis=1, keepdims=True)
        log_p = np.log(p.astype(np.float32))
        cases = {
            "random": (log_p, log_p[::-1].copy()),
            "near 1e-4": (log_p, np.log(near.astype(np.float32))),
        }
        for name, (a, b) in cases.items():
            for measure in ("kl", "decomposition"):
                best = []
                for module in trees:
                    if measure == "kl":
                        module.kl_divergence(a, b, **options)
                    else:
                        module.cross_entropy_decomposition(a, b, **options)
                times: list[list[float]] = [[] for _ in trees]
                for _ in range(args.repeats):
                    for k, module in enumerate(trees):
                        start = now()
                        if measure == "kl":
                            module.kl_divergence(a, b, **options)
                        else:
                            module.cross_entropy_decomposition(a, b, **options)
                        times[k].append(now() - start)
                best = [min(t) * 1e3 for t in times]
                ratios = " ".join(f"{b / best[0]:.2f}x" for b in best[1:])
                cells = " ".join(f"{b:8.2f}" for b in best)
                print(f"V={classes:<5d} {name:10s} {measure:14s} best ms {cells}  vs here {ratios}")


if __name__ == "__main__":
    main()
