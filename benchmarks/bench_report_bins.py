"""``crossent report`` with many bins: CPU time, peak memory and output size, A/B.

Each case runs ``python -m crossent report FILE --bins B ...`` under ``/usr/bin/time -v``
once per source tree, the trees interleaved, and prints the user + system CPU seconds,
the peak resident set size and the size of what was written (standard output, or the
``--output`` file). A case that passes ``--timeout`` is reported as such.

    python bench_report_bins.py --rows 4 --bins 4096 1048576 --against /tmp/main/src
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _file(folder: Path, rows: int, classes: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / f"rows{rows}.npz"
    np.savez(
        path,
        logits=rng.normal(size=(rows, classes)) * 2,
        labels=rng.integers(0, classes, size=rows),
    )
    return path


def _run(src: str, args: list[str], output: Path | None, timeout: float) -> str:
    env = dict(os.environ, PYTHONPATH=src)
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "crossent", "report", *args]
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"over {timeout:.0f} s"
    err = done.stderr.decode(errors="replace")

    def field(name: str) -> float:
        found = re.search(rf"{name}: ([\d.]+)", err)
        return float(found.group(1)) if found else float("nan")

    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    peak = field(r"Maximum resident set size \(kbytes\)") / 1024
    size = output.stat().st_size if output is not None else len(done.stdout)
    return f"exit {done.returncode}, CPU {cpu:.2f} s, peak {peak:.0f} MiB, {size:,} bytes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--bins", type=int, nargs="+", default=[4096, 1048576])
    parser.add_argument("--outputs", nargs="+", default=["json", "txt", "md", "html"])
    parser.add_argument("--extra", nargs="*", default=[], help="more report options")
    parser.add_argument("--against", nargs="*", default=[], help="other src trees (A/B)")
    parser.add_argument("--timeout", type=float, default=600)
    options = parser.parse_args()
    trees = [str(HERE.parent / "src"), *options.against]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = _file(folder, options.rows, options.classes)
        for bins in options.bins:
            for kind in options.outputs:
                for src in trees:
                    args = [str(data), "--bins", str(bins), *options.extra]
                    output = None
                    if kind == "json":
                        args.append("--json")
                    elif kind == "md":
                        args.append("--markdown")
                    else:
                        output = folder / f"report.{kind}"
                        args += ["--output", str(output)]
                    result = _run(src, args, output, options.timeout)
                    print(f"rows {options.rows} bins {bins} {kind:4} {src}: {result}", flush=True)


if __name__ == "__main__":
    main()
