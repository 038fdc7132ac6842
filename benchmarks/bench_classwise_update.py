"""``EvaluationState.update`` with class-wise bins on wide rows, and its first pass in
``crossent report`` (issue 13, evaluation): how much of it is adding each block's bins.

    python benchmarks/bench_classwise_update.py [--rows 2000] [--classes 50000]
        [--repeats 5] [--clock cpu] [--against TREE ...] [--rounds 3]

Float32 probabilities (a softmax of N(0, 3) logits, in float64 then stored as float32)
with uniform labels, made before any timer starts.  Cases, each the best of
``--repeats`` calls after one warm-up:

* ``class-wise update``: ``EvaluationState(classes, scope="class-wise").update`` of all
  rows (blocks of 2^20 entries: 20 rows at 50 000 classes), bins of ``(classes, 15)``;
* ``class-wise update, batches of 1000``: the same rows in ``update`` calls of 1000 rows;
* ``class-wise bins of one block``: ``class_bins_uniform`` of one 20-row block (what
  each block forms; since the bins are added sparse, the state no longer forms it).

With ``--against`` each tree runs in its own process (``_against.compare``), the trees
alternating round by round.  Before this change every block's bins were three dense
``(classes, bins)`` arrays, added to the state's by ``a + b`` (three more): 6 MB each
at 50 000 classes.
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def data(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = np.empty((rows, classes), dtype=np.float32)
    for start in range(0, rows, 500):
        logits = rng.normal(size=(min(500, rows - start), classes)) * 3
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[start : start + 500] = p / p.sum(axis=1, keepdims=True)
    return probs, rng.integers(0, classes, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return

    import crossent
    from crossent.calibration._state import class_bins_uniform

    probs, labels = data(args.rows, args.classes)
    block = max(1, (1 << 20) // args.classes)

    def whole() -> None:
        crossent.EvaluationState(args.classes, scope="class-wise").update(probs, labels)

    def batches() -> None:
        state = crossent.EvaluationState(args.classes, scope="class-wise")
        for start in range(0, args.rows, 1000):
            state.update(probs[start : start + 1000], labels[start : start + 1000])

    def one_block() -> None:
        class_bins_uniform(probs[:block].astype(np.float64), labels[:block], 15, "left")

    cases = {
        "class-wise update": whole,
        "class-wise update, batches of 1000": batches,
        "class-wise bins of one block": one_block,
    }
    time_cases(cases, args)


if __name__ == "__main__":
    main()
