"""JS of every form pairing, random rows and a distribution against its own rounded
forms (branch jsexact2, issue 13): this tree against others in one process.

    python benchmarks/bench_js_forms_self_ab.py --tree SRC [--tree SRC ...]
        [--rows 200] [--classes 1000] [--repeats 5] [--rounds 3]

Branch jsexact2 corrected the log-partition's rounding of logits against
log-probabilities (fused kernel and generic path: an exact excess of the
log-probabilities), summed the fused kernel's correction mass compensated (every row of
two sides not probabilities), and gave the fused kernel's nearly equal rows of
probabilities against logits or log-probabilities a double-double ratio pass. Cases:
NumPy float64 on the fused kernel and on the generic path (Numba off), and PyTorch
float64 with the host route off (the torch path); rows ``random`` (P's logits N(0, 3),
Q's another row's) and ``self`` (Q the same distribution in the other form, rounded).
Each tree is imported from a renamed copy (``_against.load_tree``); CPU time, the trees'
order rotated each round, ``--repeats`` calls per case and round.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import compare_trees, load_tree

PAIRS = (("logits", "logits"), ("probs", "logits"), ("logits", "log_probs"))


def _forms(z: np.ndarray) -> dict[str, np.ndarray]:
    shifted = z - z.max(axis=-1, keepdims=True)
    total = np.exp(shifted).sum(axis=-1, keepdims=True)
    return {"logits": z, "probs": np.exp(shifted) / total, "log_probs": shifted - np.log(total)}


def _cases(rows: int, classes: int) -> dict[str, Callable[[Any], Any]]:
    import torch

    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    own = _forms(z)
    other = _forms(np.roll(z, 1, axis=0))
    near = _forms(z + 1e-9 * rng.standard_normal(z.shape))

    def generic(m: Any, a: Any, b: Any, fa: str, fb: str) -> Any:
        fused = sys.modules[f"{m.__name__}.info._fused"]
        saved = fused.available
        fused.available = lambda: False
        try:
            return m.js_divergence(a, b, p_form=fa, q_form=fb)
        finally:
            fused.available = saved

    def torch_path(m: Any, a: Any, b: Any, fa: str, fb: str) -> Any:
        host = m._torch_host
        saved = host.MAX_ELEMENTS
        host.MAX_ELEMENTS = -1
        try:
            return m.js_divergence(a, b, p_form=fa, q_form=fb)
        finally:
            host.MAX_ELEMENTS = saved

    cases: dict[str, Callable[[Any], Any]] = {}
    for fa, fb in PAIRS:
        kinds = {"random": (own[fa], other[fb]), "self": (own[fa], own[fb])}
        if fa == fb:
            kinds = {"random": (own[fa], other[fb]), "1e-9 apart": (own[fa], near[fb])}
        for kind, (a, b) in kinds.items():
            label = f"{fa} vs {fb}, {kind}"
            cases[f"fused   {label}"] = lambda m, a=a, b=b, fa=fa, fb=fb: m.js_divergence(
                a, b, p_form=fa, q_form=fb
            )
            cases[f"generic {label}"] = lambda m, a=a, b=b, fa=fa, fb=fb: generic(m, a, b, fa, fb)
            if fb == "log_probs":
                ta, tb = torch.tensor(a), torch.tensor(b)
                cases[f"torch   {label}"] = lambda m, a=ta, b=tb, fa=fa, fb=fb: torch_path(
                    m, a, b, fa, fb
                )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="another src tree")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    import crossent

    torch.set_num_threads(1)
    trees: dict[str, Any] = {"this tree": crossent}
    for i, source in enumerate(args.tree):
        trees[source] = load_tree(source, f"crossent_jsself{i}")
    cases = _cases(args.rows, args.classes)
    compare_trees(trees, cases, args.rounds, args.repeats)


if __name__ == "__main__":
    main()
