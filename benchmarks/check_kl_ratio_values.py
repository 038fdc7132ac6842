"""The generic KL of nearly equal rows in mixed forms against mpmath at 70 digits, this
tree and another (issue 13, branch klexact4): the first ``rows`` of
``bench_kl_generic_mixed_ab``'s 1000 x 1000 set (logits 1e-9 apart), six pairings::

    python check_kl_ratio_values.py 100 --against /tmp/klexact4_main/src

(in ``benchmarks/``, ``PYTHONPATH=../src:.:..``: ``tests.oracles`` from the repository
root). Prints, a pairing, how many values differ between the trees and each tree's worst
and mean error in eps (NumPy, the fused kernel and the host route off).
"""

from __future__ import annotations

import argparse
import importlib
import sys

import mpmath
import numpy as np
from tests.oracles import row_probabilities

import crossent
from bench_kl_generic_mixed_ab import _side
from bench_kl_mixed_ab import _copy

PAIRINGS = (
    ("probs", "log_probs"),
    ("probs", "logits"),
    ("log_probs", "probs"),
    ("log_probs", "logits"),
    ("logits", "probs"),
    ("logits", "log_probs"),
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("--against", required=True, help="the other src folder")
    args = parser.parse_args(argv)
    other = _copy(args.against, 0)
    for package in (crossent, other):
        importlib.import_module(f"{package.__name__}.info._fused").available = lambda: False
        importlib.import_module(f"{package.__name__}._torch_host").MAX_ELEMENTS = -1
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1000, 1000)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    z, near = z[: args.rows], near[: args.rows]
    eps = 2.0**-52
    for p_form, q_form in PAIRINGS:
        a, b = _side(z, p_form), _side(near, q_form)
        values = [k.kl_divergence(a, b, p_form=p_form, q_form=q_form) for k in (crossent, other)]
        errors: list[list[float]] = [[], []]
        with mpmath.workdps(70):
            for i in range(args.rows):
                p = row_probabilities(a[i].tolist(), p_form)
                q = row_probabilities(b[i].tolist(), q_form)
                pairs = zip(p, q, strict=True)
                truth = mpmath.fsum(x * (mpmath.log(x) - mpmath.log(y)) for x, y in pairs)
                for got, out in zip(values, errors, strict=True):
                    out.append(float(abs(mpmath.mpf(float(got[i])) - truth) / abs(truth)) / eps)
        this, that = (np.array(e) for e in errors)
        print(
            f"{p_form:9s} {q_form:9s} differ {int(np.sum(values[0] != values[1]))}/{args.rows}"
            f"  this max {this.max():.2f} mean {this.mean():.2f}"
            f"  other max {that.max():.2f} mean {that.mean():.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
