"""Fuzzing `crossent report` with damaged files (issue 10, item 14).

Valid small files in every format are mutated (truncation, bit flips, overwritten byte
runs, edits of the .npy header's descr/shape/order and of the CSV header line) by a
seeded generator, so the run is deterministic and bounded (a few seconds).  The property:
any input gives exit 0 or 2 (never 3, never a traceback), and an output file exists only
after exit 0.  The HTML rendering is stubbed: the property is about reading files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import crossent.cli
from crossent.cli import main

from .conftest import make_predictions, softmax

SEED = 20261130
MUTANTS_PER_FILE = 48

Mutation = Callable[[bytes, np.random.Generator], bytes]


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _flip_bits(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        where = int(rng.integers(0, len(out)))
        out[where] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _overwrite(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    start = int(rng.integers(0, len(out)))
    run = rng.integers(0, 256, size=min(int(rng.integers(1, 16)), len(out) - start))
    out[start : start + run.size] = bytes(run.astype(np.uint8))
    return bytes(out)


_HEADER_EDITS = [
    (
        rb"'descr': '<f8'",
        [b"'descr': '<f4'", b"'descr': '|O'", b"'descr': '<c16'", b"'descr': 'zz'"],
    ),
    (
        rb"'descr': '<i8'",
        [b"'descr': '<f8'", b"'descr': '|O'", b"'descr': '<u1'", b"'descr': '|b1'"],
    ),
    (rb"'fortran_order': False", [b"'fortran_order': True", b"'fortran_order': 7"]),
    (
        rb"'shape': \((\d+), (\d+)\)",
        [
            b"'shape': (13, 3)",
            b"'shape': (12,)",
            b"'shape': (-12, 3)",
            b"'shape': (999999999999, 3)",
        ],
    ),
    (
        rb"'shape': \((\d+),\)",
        [b"'shape': (11,)", b"'shape': (13,)", b"'shape': ()", b"'shape': [12]"],
    ),
    (rb"label,", [b"label,label,", b"lab\xe9l,", b",", b"label;"]),
    (rb"\n", [b"\r", b"\n\n", b"\x00"]),
]


def _edit_header(data: bytes, rng: np.random.Generator) -> bytes:
    """An edit of the .npy header's text or the CSV header (same-length or not)."""
    edits = [(p, r) for p, r in _HEADER_EDITS if re.search(p, data)]
    if not edits:
        return _flip_bits(data, rng)
    pattern, replacements = edits[int(rng.integers(0, len(edits)))]
    replacement = replacements[int(rng.integers(0, len(replacements)))]
    return re.sub(pattern, replacement.replace(b"\\", b"\\\\"), data, count=1)


MUTATIONS: list[Mutation] = [_truncate, _flip_bits, _overwrite, _edit_header]


def _valid_files(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    logits, labels = make_predictions(n=12, classes=3, seed=3)
    files: dict[str, tuple[Path, list[str]]] = {}
    np.savez(folder / "stored.npz", probs=softmax(logits), labels=labels)
    files["stored"] = (folder / "stored.npz", [])
    np.savez_compressed(folder / "packed.npz", logits=logits, labels=labels)
    files["compressed"] = (folder / "packed.npz", [])
    rows = "".join(
        f"{y}," + ",".join(repr(float(v)) for v in row) + "\n"
        for y, row in zip(labels, logits, strict=True)
    )
    (folder / "t.csv").write_text("label,a,b,c\n" + rows)
    files["csv"] = (folder / "t.csv", ["--logits"])
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return files
    table = pa.table({"label": labels, **{k: logits[:, i] for i, k in enumerate("abc")}})
    pq.write_table(table, folder / "t.parquet")
    files["parquet"] = (folder / "t.parquet", ["--logits"])
    return files


@pytest.mark.parametrize("kind", ["stored", "compressed", "csv", "parquet"])
def test_issue10_item14_fuzzed_files_exit_0_or_2_and_leave_no_output(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    if kind in ("csv", "parquet"):
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(crossent.cli, "render_html", lambda report: "<html></html>")
    valid = _valid_files(tmp_path)
    source, flags = valid[kind]
    original = source.read_bytes()
    rng = np.random.default_rng([SEED, list(valid).index(kind)])
    codes: dict[int, int] = {}
    failures = []
    for case in range(MUTANTS_PER_FILE):
        mutation = MUTATIONS[case % len(MUTATIONS)]
        mutated = mutation(original, rng)
        path = tmp_path / f"m{case}{source.suffix}"
        path.write_bytes(mutated)
        output = tmp_path / f"m{case}.html"
        argv = ["report", str(path), *flags, "--resamples", "3", "--top", "2"]
        argv += ["--output", str(output)] if case % 2 else ["--json"]
        code = main(argv)
        _out, err = capsys.readouterr()
        codes[code] = codes.get(code, 0) + 1
        if code not in (0, 2) or "Traceback" in err or "internal error" in err:
            failures.append(f"{mutation.__name__} #{case}: exit {code}: {err.strip()[:300]}")
        if code != 0 and output.exists():
            failures.append(f"{mutation.__name__} #{case}: exit {code} left {output.name}")
        if code == 2 and not err.startswith(f"crossent: error: {path}"):
            failures.append(
                f"{mutation.__name__} #{case}: the message does not name the file: {err}"
            )
        path.unlink()
        output.unlink(missing_ok=True)
    assert not failures, "\n".join(failures)
    assert codes.get(2, 0) >= MUTANTS_PER_FILE // 4, codes  # the mutations do damage
