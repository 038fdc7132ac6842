"""Time reading a CSV with an --id-column: the ids as written (branch cliids) against
main's numbers, CPU time of ``open_csv`` (best of 5), for integer ids and zero-padded ones.

Usage: ``PYTHONPATH=<tree>/src python bench_csv_ids.py LABEL [ROWS]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from crossent.cli._columns import TableColumns
from crossent.cli._tables import open_csv


def _write(path: Path, rows: int, padded: bool) -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=rows).tolist()
    labels = rng.integers(0, 4, size=rows)
    ids = [f"{k:012d}" if padded else str(k) for k in range(rows)]
    with path.open("w") as out:
        out.write("id,label,a,b,c,d\n")
        for k in range(rows):
            out.write(f"{ids[k]},{labels[k]},{','.join(map(repr, p[k]))}\n")


def main() -> None:
    label = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    with tempfile.TemporaryDirectory() as folder:
        for padded in (False, True):
            path = Path(folder) / "p.csv"
            _write(path, rows, padded)
            best = float("inf")
            for _ in range(5):
                start = time.process_time()
                dataset = open_csv(path, None, columns=TableColumns(id="id"))
                assert len(dataset.ids) == rows
                dataset.close()
                best = min(best, time.process_time() - start)
            kind = "padded" if padded else "integers"
            print(f"{label} {kind} {rows} rows: {best * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
