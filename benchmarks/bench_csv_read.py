"""Reading a CSV of predictions into ``crossent report``'s matrix, tree against tree.

    python benchmarks/bench_csv_read.py [--rows 1000000] [--classes 10] [--repeats 3]
        [--one-hot] [--against PATH/TO/OTHER/src ...] [--rounds 3] [--clock cpu]

Times ``crossent.cli._tables.open_csv`` (pyarrow's streaming reader, the null check of
every class column, the copy into the mapped scratch file) on a CSV of ``rows`` rows of
a label and ``classes`` float columns written once to a temporary folder.  Issue 13's
empty-cell message added a null check per column and batch and a conversion option
that reads ``nan`` as the number: with ``--against`` the script runs under each tree,
the trees alternating round by round (``_against.compare``).  A class column holding 0
(or an infinity) has its text read again, to refuse a number below float64's range
(``1e-400``, read as 0): ``--one-hot`` times that worst case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from _against import add_options, clock, compare
from crossent.cli._tables import open_csv


def _write(folder: Path, rows: int, classes: int, one_hot: bool = False) -> Path:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(classes), size=rows)
    labels = rng.integers(0, classes, size=rows)
    if one_hot:  # hard predictions: every class column holds zeros written as 0
        probs = np.eye(classes)[labels]
    path = folder / "predictions.csv"
    header = "label," + ",".join(f"c{k}" for k in range(classes))
    table = np.column_stack([labels, probs])
    fmt = ["%d"] + ["%.9g"] * classes
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=header, comments="")
    return path


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--one-hot",
        action="store_true",
        help="one-hot rows (zeros in every column: their text is read again, to tell a 0 "
        "from a number below float64's range such as 1e-400)",
    )
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--clock", args.clock]
        own += ["--one-hot"] if args.one_hot else []
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), args.rows, args.classes, args.one_hot)
        for _ in range(args.repeats + 1):  # the first read warms the page cache
            start = timer()
            dataset = open_csv(path, None)
            dataset.close()
            times.append(timer() - start)
    name = f"open_csv {args.rows} x {args.classes}" + (" one-hot" if args.one_hot else "")
    if args.json:
        print(json.dumps({name: times[1:]}))
        return
    print(f"{name:55s} {min(times[1:]) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
