"""Issue 13 (hostilecli9): the cost of copying a ``.npy`` out of the file instead of mapping it.

    python benchmarks/bench_cli_npy_copy.py --base OTHER/src [--rounds 7]

``crossent report`` opens a ``.npy`` of predictions and the report reads it.  A map of
the user's file ended the process with SIGBUS when the file was truncated while read;
this tree copies it (into memory up to 256 MiB, else into a mapped scratch file).  For
80 MB of float32 logits (2,000,000 x 10 and 200,000 x 100, page cache warm): the time
of ``open_dataset`` plus one pass over the values (a float64 sum), this tree (``src``),
this tree with every array sent to the scratch copy, and ``--base`` (e.g. ``git archive
main src | tar -x -C /tmp/base``), each in its own process, rounds interleaved.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = """
import sys, time
from pathlib import Path
import numpy as np
if sys.argv[3] == "scratch":
    import crossent.cli._copied as copied
    copied.IN_MEMORY_BYTES = 0
from crossent.cli._sources import open_dataset
start = time.perf_counter()
dataset = open_dataset(Path(sys.argv[1]), form="logits", labels=Path(sys.argv[2]))
float(np.add.reduce(np.asarray(dataset.values), axis=None, dtype=np.float64))
print(time.perf_counter() - start)
dataset.close()
"""


def _time(src: Path, model: Path, labels: Path, mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-c", _CHILD, str(model), str(labels), mode]
    return float(subprocess.run(command, env=env, capture_output=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent / "src"
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for rows, classes in ((2_000_000, 10), (200_000, 100)):
            model, labels = Path(folder, "z.npy"), Path(folder, "y.npy")
            np.save(model, rng.standard_normal((rows, classes)).astype(np.float32))
            np.save(labels, rng.integers(0, classes, rows))
            runs: dict[str, list[float]] = {"base (map)": [], "copy": [], "scratch copy": []}
            for _ in range(args.rounds):
                runs["base (map)"].append(_time(args.base, model, labels, "default"))
                runs["copy"].append(_time(here, model, labels, "default"))
                runs["scratch copy"].append(_time(here, model, labels, "scratch"))
            for name, times in runs.items():
                times.sort()
                print(
                    f"{rows} x {classes} float32, {name}: min {times[0] * 1e3:.1f} ms, "
                    f"median {times[len(times) // 2] * 1e3:.1f} ms"
                )


if __name__ == "__main__":
    main()
