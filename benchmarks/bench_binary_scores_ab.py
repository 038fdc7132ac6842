"""Issue 13 (branches binexact1, binfast1): the evaluators on a 1-D binary ``P(y = 1)``.

    PYTHONPATH=$PWD/src python benchmarks/bench_binary_scores_ab.py --clock cpu \\
        --against /tmp/binfast1_exact /tmp/binfast1_old --rounds 3

Each 1-D case (``negative_log_likelihood``, ``brier_score``, ``calibration_error``,
``EvaluationState.update``; 10^6 float64 and float32 probabilities, labels drawn from
them) and, for the 2-D path, the same on the rows ``[1 - p, p]`` and on 10^6 x 10
float32 rows: the scores of a binary column are formed from ``p`` itself (NumPy passes,
``calibration._binary``) where they were the fused kernel's over the stacked rows.
With ``--against`` the trees run in turn, interleaved (``_against.compare``), as many
as are named: binfast1 measured itself against binexact1's tree (main at 5b973ee5,
``git -C /work/main archive 5b973ee5 src``) and the tree before it (``5b973ee5^1``),
the fused kernel over the rounded rows.
"""

from __future__ import annotations

import argparse

import numpy as np

import crossent
from _against import add_options, compare_if_asked, time_cases

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--repeats", type=int, default=7)
add_options(parser)
args = parser.parse_args()

if not compare_if_asked(args, __file__):
    rng = np.random.default_rng(0)
    p64 = rng.random(args.rows)
    labels = (rng.random(args.rows) < p64).astype(np.intp)
    p32 = p64.astype(np.float32)
    rows64 = np.stack([1.0 - p64, p64], axis=1)
    wide = rng.dirichlet(np.ones(10), size=args.rows).astype(np.float32)
    wide_labels = rng.integers(0, 10, args.rows)
    cases = {}
    for name, p, y in (
        ("1d f64", p64, labels),
        ("1d f32", p32, labels),
        ("2x2d f64", rows64, labels),
        ("10 f32", wide, wide_labels),
    ):
        classes = 2 if name != "10 f32" else 10
        cases[f"nll {name}"] = lambda p=p, y=y: crossent.negative_log_likelihood(p, y)
        cases[f"brier {name}"] = lambda p=p, y=y: crossent.brier_score(p, y)
        cases[f"ece {name}"] = lambda p=p, y=y: crossent.calibration_error(p, y)
        cases[f"state {name}"] = lambda p=p, y=y, k=classes: crossent.EvaluationState(k).update(
            p, y
        )
    time_cases(cases, args)
