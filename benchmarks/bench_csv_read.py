"""Reading a CSV of predictions into ``crossent report``'s matrix, tree against tree.

    python benchmarks/bench_csv_read.py [--rows 1000000] [--classes 10] [--repeats 3]
        [--one-hot] [--wide] [--against PATH/TO/OTHER/src ...] [--rounds 3] [--clock cpu]

Times ``crossent.cli._tables.open_csv`` (pyarrow's streaming reader, the null check of
every class column, the copy into the mapped scratch file) on a CSV of ``rows`` rows of
a label and ``classes`` float columns written once to a temporary folder.  Issue 13's
empty-cell message added a null check per column and batch and a conversion option
that reads ``nan`` as the number: with ``--against`` the script runs under each tree,
the trees alternating round by round (``_against.compare``).  A class column holding 0
(or an infinity) has its text read again, to refuse a number below float64's range
(``1e-400``, read as 0): ``--one-hot`` times that worst case.

``--wide`` reads a table of 1000 rows and 20 000 class columns (unless ``--rows`` or
``--classes`` say otherwise), and times beside it pyarrow's own ``pyarrow.csv.read_csv``
of the same file (single-threaded and with its threads: ``open_csv`` streams the file
with pyarrow's one-thread reader) as the floor.  On main at 4d024a0 such a table took
about 100 s of CPU to read: the column choice, made again for every batch, counted
names with ``list.count`` (quadratic), and every batch was converted column by column.
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
    parser.add_argument("--rows", type=int, default=None, help="default 1_000_000 (1000 wide)")
    parser.add_argument("--classes", type=int, default=None, help="default 10 (20_000 wide)")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="1000 rows of 20_000 class columns, timed beside pyarrow.csv.read_csv",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--one-hot",
        action="store_true",
        help="one-hot rows (zeros in every column: their text is read again, to tell a 0 "
        "from a number below float64's range such as 1e-400)",
    )
    add_options(parser)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 1000 if args.wide else 1_000_000
    if args.classes is None:
        args.classes = 20_000 if args.wide else 10
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--clock", args.clock]
        own += ["--one-hot"] if args.one_hot else []
        own += ["--wide"] if args.wide else []
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    shape = f"{args.rows} x {args.classes}" + (" one-hot" if args.one_hot else "")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), args.rows, args.classes, args.one_hot)
        cases = [(f"open_csv {shape}", lambda: open_csv(path, None).close())]
        if args.wide:
            import pyarrow.csv as pa_csv

            one = pa_csv.ReadOptions(use_threads=False)
            cases += [
                (f"pyarrow read_csv, 1 thread {shape}", lambda: pa_csv.read_csv(path, one)),
                (f"pyarrow read_csv, threads {shape}", lambda: pa_csv.read_csv(path)),
            ]
        for name, run in cases:
            times = []
            for _ in range(args.repeats + 1):  # the first read warms the page cache
                start = timer()
                run()
                times.append(timer() - start)
            results[name] = times[1:]
    if args.json:
        print(json.dumps(results))
        return
    for name, times in results.items():
        print(f"{name:55s} {min(times) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
