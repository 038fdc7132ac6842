"""A/B of the distillation gradient's far-row check (issue 13 follow-up; the loss's is
``bench_far_gap_check.py``): the public gradient against the same with
``_distill._far_rows`` answering None at once (no check), interleaved in one process,
thread CPU time (``bench_far_gap_check._best``), min of many rounds. Indicative on a
shared machine. The lean path (small calls, teacher logits or probabilities) makes no
check; these cases take the full path (teacher log-probabilities, or more than the lean
path's elements), where it is one maximum of the per-row KL (reverse) and one
comparison of the temperature.

Run: ``PYTHONPATH=src python benchmarks/bench_distill_far_check.py``.
"""

from __future__ import annotations

import numpy as np

import crossent
from bench_far_gap_check import _best
from crossent.losses import _distill


def main() -> None:
    rng = np.random.default_rng(0)
    checked = _distill._far_rows
    skipped = lambda d, kl, top: None  # noqa: E731
    grad = crossent.distillation_loss_grad
    print(f"{'case':<46} {'with check':>11} {'without':>11} {'ratio':>7}")
    for rows, classes, form, direction, temperature in (
        (1, 8, "log_probs", "reverse", 1.0),
        (32, 10, "log_probs", "reverse", 2.0),
        (32, 10, "log_probs", "forward", 2.0),
        (256, 1000, "logits", "reverse", 2.0),
        (256, 1000, "logits", "forward", 1.0),
    ):
        z = rng.standard_normal((rows, classes))
        v = rng.standard_normal((rows, classes))
        teacher = v - np.log(np.exp(v).sum(-1, keepdims=True)) if form == "log_probs" else v
        kwargs = {"teacher_form": form, "direction": direction, "temperature": temperature}
        calls = 300 if rows * classes < 10**4 else 5
        best = {"a": float("inf"), "b": float("inf")}
        for _ in range(30):
            for key, far_rows in (("a", checked), ("b", skipped)):
                _distill._far_rows = far_rows
                try:
                    best[key] = min(best[key], _best(grad, (z, teacher), kwargs, calls))
                finally:
                    _distill._far_rows = checked
        name = f"{rows}x{classes} {form} {direction} T={temperature:g}"
        print(f"{name:<46} {best['a']:>9.2f}us {best['b']:>9.2f}us {best['a'] / best['b']:>7.3f}")


if __name__ == "__main__":
    main()
