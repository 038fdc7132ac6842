"""``TemperatureScaling.fit`` and one NLL pass (``_temperature._moments``) on float32
logits (issue 13, evaluation): the cost of the fused pass's :math:`\\log S` as
``log1p`` of the weights below each row's maximum (branch evalleft).

    python benchmarks/bench_temperature_fit.py [--rows 20000] [--repeats 5]
        [--clock cpu] [--against TREE ...] [--rounds 3]

N(0, 3) logits stored as float32 with uniform labels, made before any timer starts.
Cases, each the best of ``--repeats`` calls after one warm-up (Numba's compile),
the cases alternating:

* ``moments, 1000 classes``: one pass of ``_moments`` over ``rows x 1000`` logits;
* ``moments, 10 classes``: the same over ``10 * rows x 10`` (narrow lanes);
* ``fit, 1000 classes``: ``TemperatureScaling(guard=False).fit`` (4 to 6 passes);
* ``fit with the guard, 10 classes``: the default scaler (the fit and 5 folds' fits).

With ``--against`` each tree runs in its own process (``_against.compare``), the trees
alternating round by round.
"""

from __future__ import annotations

import argparse

import numpy as np

from _against import add_options, compare_if_asked, time_cases


def data(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(rows, classes)) * 3).astype(np.float32)
    return logits, rng.integers(0, classes, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return

    import crossent
    from crossent.calibration._inputs import as_predictions
    from crossent.calibration._temperature import _moments

    wide = data(args.rows, 1000)
    narrow = data(10 * args.rows, 10)
    wide_p = as_predictions(*wide, form="logits")
    narrow_p = as_predictions(*narrow, form="logits")
    cases = {
        "moments, 1000 classes": lambda: _moments(wide_p, 0.7),
        "moments, 10 classes": lambda: _moments(narrow_p, 0.7),
        "fit, 1000 classes": lambda: crossent.TemperatureScaling(guard=False).fit(*wide),
        "fit with the guard, 10 classes": lambda: crossent.TemperatureScaling().fit(*narrow),
    }
    time_cases(cases, args)


if __name__ == "__main__":
    main()
