"""JS of float32 PyTorch tensors of logits against log-probabilities: A/B (issue 13,
branch jsexact4).

    cd benchmarks
    PYTHONPATH=../src:. python bench_js_float32_torch_ab.py --tree /tmp/main/src
        [--rows 1000] [--classes 1000] [--repeats 5] [--rounds 3]

The torch path (the host route off, as for tensors past its size, with grad or on a
GPU): float32 tensors of logits and log-probabilities are now computed in float64 and
rounded once (branch jsexact4; main computed them in float32: rows 1e-7 apart 3.9e7
ulps off). Rows: random (logits N(0, 3), the log-probabilities of other rows) and
nearly equal (the log-softmax of the same logits plus noise of 1e-6, rounded to
float32). One torch thread; process CPU time of each tree in one process
(``_against.compare_trees``), the trees' order rotated each round.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from _against import compare_trees, load_tree


def _cases(rows: int, classes: int) -> dict[str, Callable[[Any], Any]]:
    import torch

    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    shifted = z - z.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    near = log_p + 1e-6 * rng.standard_normal(z.shape)
    logits = torch.tensor(z, dtype=torch.float32)
    others = {
        "random": torch.tensor(np.roll(log_p, 1, axis=0), dtype=torch.float32),
        "nearly equal": torch.tensor(near, dtype=torch.float32),
    }

    def call(m: Any, b: Any) -> Any:
        host = m._torch_host
        saved, host.MAX_ELEMENTS = host.MAX_ELEMENTS, -1
        try:
            return m.js_divergence(logits, b, p_form="logits", q_form="log_probs")
        finally:
            host.MAX_ELEMENTS = saved

    return {f"torch float32 {k}": lambda m, b=v: call(m, b) for k, v in others.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="SRC")
    args = parser.parse_args()
    import torch

    import crossent

    torch.set_num_threads(1)
    trees: dict[str, Any] = {"this tree": crossent}
    for i, source in enumerate(args.tree):
        trees[source] = load_tree(source, f"crossent_js32_{i}")
    compare_trees(trees, _cases(args.rows, args.classes), args.rounds, args.repeats)


if __name__ == "__main__":
    main()
