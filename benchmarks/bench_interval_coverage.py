"""Coverage of the bootstrap intervals on data whose truth is known.

    python benchmarks/bench_interval_coverage.py [--rows 200] [--datasets 300] [--resamples 400]

Each data set draws ``rows`` predictions ``p ~ Dirichlet(0.7, 0.7, 0.7)`` and labels
``y ~ p`` (a perfectly calibrated model), so the population values are known by Monte
Carlo on 2e6 draws: E[NLL] = E[H(p)], E[Brier] = 1 - E[sum p_k^2], E[spherical] =
E[||p||_2], E[accuracy] = E[max p].  Printed: the share of data sets whose 95 %
interval holds the truth, and how many missed below and above.

* ``bootstrap_interval`` for "nll", "brier", "spherical", "accuracy";
* ``compare_log_loss`` of the calibrated model against the same model at temperature 2
  (true difference -E[KL(p || q)]), paired as shipped, and the width of the interval
  when the two models' rows are resampled independently instead (what pairing buys);
* ``bootstrap_interval("calibration_error")`` of a binary positive-class curve with
  ``p ~ U(0, 1)``, 10 equal-width bins, for ``P(y = 1 | p) = p`` (population error 0) and
  ``p^1.5`` (population binned error by quadrature), plug-in L1 and L2 and debiased L2,
  on ``--ece-rows`` rows (default 500).

Fixed seeds: the same run prints the same numbers.  A few tens of seconds on one core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import crossent
from crossent.calibration._bootstrap import percentile_interval, resample_counts

_K = 3
_ALPHA = 0.7


def _draw(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(_K, _ALPHA), size=rows)
    y = np.minimum((rng.random(rows)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), _K - 1)
    return p, y


def _temper(p: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(p) / temperature
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(axis=1, keepdims=True)


def _tally(hits: list[int]) -> str:
    n = len(hits)
    inside, below, above = hits.count(0), hits.count(-1), hits.count(1)
    return f"coverage {inside / n:.3f} (truth below low {below}, above high {above})"


def _where(truth: float, low: float, high: float) -> int:
    return 0 if low <= truth <= high else (-1 if truth < low else 1)


def means(rows: int, datasets: int, resamples: int) -> None:
    big = np.random.default_rng(123).dirichlet(np.full(_K, _ALPHA), size=2_000_000)
    square = np.square(big).sum(axis=1)
    truth = {
        "nll": float(np.mean(-(big * np.log(big)).sum(axis=1))),
        "brier": float(np.mean(1.0 - square)),
        "spherical": float(np.mean(np.sqrt(square))),
        "accuracy": float(np.mean(big.max(axis=1))),
    }
    for metric, value in truth.items():
        hits = []
        for r in range(datasets):
            p, y = _draw(rows, 1000 + r)
            ci = crossent.bootstrap_interval(metric, p, y, resamples=resamples, seed=r)
            hits.append(_where(value, ci.low, ci.high))
        print(f"bootstrap_interval {metric:10s} truth {value:.4f}  {_tally(hits)}")
    q = _temper(big, 2.0)
    difference = float(np.mean((big * (np.log(q) - np.log(big))).sum(axis=1)))
    hits, paired, unpaired = [], [], []
    for r in range(datasets):
        p, y = _draw(rows, 5000 + r)
        result = crossent.compare_log_loss(p, _temper(p, 2.0), y, resamples=resamples, seed=r)
        hits.append(_where(difference, result.low, result.high))
        paired.append(result.high - result.low)
        unpaired.append(_independent_width(p, y, resamples, r))
    print(f"compare_log_loss (T = 2) truth {difference:.4f}  {_tally(hits)}")
    print(
        f"  mean width: paired {np.mean(paired):.4f}, rows of each model resampled "
        f"independently {np.mean(unpaired):.4f}"
    )


def _independent_width(p: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> float:
    rows = np.arange(y.size)
    loss_a = -np.log(p[rows, y])
    loss_b = -np.log(_temper(p, 2.0)[rows, y])
    a = [w @ loss_a / y.size for w in resample_counts(y.size, resamples, 2 * seed)]
    b = [w @ loss_b / y.size for w in resample_counts(y.size, resamples, 2 * seed + 1)]
    low, high = percentile_interval(np.subtract(a, b), 0.95)
    return high - low


def _binned_truth(rate: Callable[[np.ndarray], np.ndarray], norm: str, bins: int) -> float:
    grid = (np.arange(2_000_000) + 0.5) / 2_000_000
    index = np.minimum((grid * bins).astype(int), bins - 1)
    gap = np.array([np.mean(rate(grid[index == b]) - grid[index == b]) for b in range(bins)])
    return float(np.mean(np.abs(gap)) if norm == "l1" else np.sqrt(np.mean(np.square(gap))))


def calibration(rows: int, datasets: int, resamples: int, bins: int = 10) -> None:
    curves: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "P(y|p) = p": lambda p: p,
        "P(y|p) = p^1.5": lambda p: p**1.5,
    }
    for name, rate in curves.items():
        for norm, debias in (("l1", False), ("l2", False), ("l2", True)):
            truth = _binned_truth(rate, norm, bins)
            hits, values = [], []
            for r in range(datasets):
                rng = np.random.default_rng(r)
                p = rng.random(rows)
                y = (rng.random(rows) < rate(p)).astype(int)
                ci = crossent.bootstrap_interval(
                    "calibration_error",
                    p,
                    y,
                    scope="positive-class",
                    bins=bins,
                    norm=norm,
                    debias=debias,
                    resamples=resamples,
                    seed=r,
                )
                values.append(ci.value)
                hits.append(_where(truth, ci.low, ci.high))
            label = f"{norm}{' debiased' if debias else ''}"
            print(
                f"calibration_error {name:15s} {label:12s} truth {truth:.4f} "
                f"mean estimate {np.mean(values):.4f}  {_tally(hits)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option, default in (
        ("--rows", 200),
        ("--ece-rows", 500),
        ("--datasets", 300),
        ("--resamples", 400),
    ):
        parser.add_argument(option, type=int, default=default)
    args = parser.parse_args()
    start = time.process_time()
    print(f"{args.datasets} data sets, {args.resamples} resamples, 95 % intervals")
    means(args.rows, args.datasets, args.resamples)
    calibration(args.ece_rows, min(args.datasets, 200), args.resamples)
    print(f"CPU time {time.process_time() - start:.1f} s")


if __name__ == "__main__":
    main()
