"""Command-line leftovers of the morning's hostile pass (branch clileft7).

* Binary data on standard input (``gzip -c preds.csv | crossent report -``, ``report -
  < a.npz``) was refused with pyarrow's "cannot be parsed (CSV parse error: Expected 2
  columns, got 1: <binary bytes>)"; compressed data was recognised only in a file.  It is
  now one line naming what standard input holds and what to do (and a ``.csv`` that is an
  ``.npz`` is said so too).
* A class named 猫 was drawn as an empty box in the HTML report's figures, with four lines
  of "UserWarning: Glyph 29483 missing from font(s) DejaVu Sans" on standard error; the
  figures now fall back to an installed font that has it, else show ``\\u732b``.
* ``--class-columns c0,,c1,c2``: the empty name was skipped silently; it is refused.
* ``--output /dev/stderr 2>&-`` printed "HTML report written to /dev/stderr", exit 0, and
  the page was lost; it is refused before the work (exit 2, nothing written).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.cli import main

pytest.importorskip("rich")
pytest.importorskip("pyarrow")

SRC = Path(crossent.__file__).resolve().parents[1]  # the crossent imported here, for the child
_FAST = ["--resamples", "5", "--top", "3"]
_CSV = "label,a,b\na,0.9,0.1\nb,0.2,0.8\na,0.6,0.4\nb,0.3,0.7\n"


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, probs=np.array([[0.7, 0.3], [0.2, 0.8]]), labels=np.array([0, 1]))
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[0.7, 0.3], [0.2, 0.8]]))
    return buffer.getvalue()


def _pt_bytes(legacy: bool) -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save(
        {"probs": torch.tensor([[0.7, 0.3]]), "labels": torch.tensor([0])},
        buffer,
        _use_new_zipfile_serialization=not legacy,
    )
    return buffer.getvalue()


_STDIN = {
    "gzip": (lambda: gzip.compress(_CSV.encode()), "is gzip-compressed", "gunzip -c"),
    "npz": (_npz_bytes, "holds a zip archive (an .npz, or a .pt", ".npz or .pt"),
    "npy": (_npy_bytes, "holds a .npy array", "named .npy"),
    "pt": (lambda: _pt_bytes(legacy=False), "holds a zip archive", ".npz or .pt"),
    "pt-legacy": (lambda: _pt_bytes(legacy=True), "holds a .pt in torch's legacy", "named .pt"),
    "parquet": (lambda: b"PAR1" + bytes(40), "holds a Parquet file", "named .parquet"),
    "safetensors": (
        lambda: (2).to_bytes(8, "little") + b"{}" + bytes(8),
        "holds a .safetensors file",
        "named .safetensors",
    ),
}


@pytest.mark.parametrize("kind", list(_STDIN))
def test_binary_standard_input_is_named_in_one_line(
    kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make, found, advice = _STDIN[kind]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(make())))
    assert main(["report", "-", *_FAST]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"crossent: error: standard input {found}"), lines[0]
    assert advice in lines[0]
    assert "parse" not in lines[0]
    assert captured.out == ""


def _pipe_in_two_writes(data: bytes, first: int) -> io.TextIOWrapper:
    """A real pipe as standard input, whose writer sends ``data[:first]``, waits, then
    the rest: its reader's first read gets ``first`` bytes only."""
    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as writer:
            writer.write(data[:first])
            time.sleep(0.2)
            writer.write(data[first:])

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(read_end, "r")


class _Trickle(io.RawIOBase):
    """A raw stream that gives one byte a read (standard input without a buffer)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            return 0
        buffer[0] = self._data[0]
        self._data = self._data[1:]
        return 1


def test_first_bytes_arriving_one_at_a_time_are_all_looked_at(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gzip magic over two reads is still recognised: ``_head`` reads until it has
    the bytes it looks at (a mutant that reads once fails here)."""
    data = gzip.compress(_CSV.encode())
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=_Trickle(data)))
    assert main(["report", "-", *_FAST]) == 2
    assert capsys.readouterr().err.startswith("crossent: error: standard input is gzip-compressed")


def test_a_csv_whose_first_bytes_come_alone_is_read_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real pipe whose writer sends one byte, waits, then the rest: the bytes looked at
    are kept for the CSV reader (guards the copy; it passes on main)."""
    stdin = _pipe_in_two_writes(_CSV.encode(), first=1)
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        assert main(["report", "-", "--json", *_FAST]) == 0
    finally:
        stdin.close()
    assert '"n": 4' in capsys.readouterr().out


def test_csv_file_holding_an_npz_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "preds.csv"
    path.write_bytes(_npz_bytes())
    assert main(["report", str(path), *_FAST]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"crossent: error: {path}: holds a zip archive (an .npz, or a .pt written by "
        "torch.save), not CSV text; name the file .npz or .pt\n"
    )


# --- class names without a glyph --------------------------------------------------------


def _cjk_csv(tmp_path: Path) -> Path:
    path = tmp_path / "cjk.csv"
    path.write_text("label,猫,狗\n猫,0.9,0.1\n狗,0.2,0.8\n猫,0.6,0.4\n狗,0.3,0.7\n", "utf-8")
    return path


def test_cjk_class_names_draw_without_glyph_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "x.html"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # main's "Glyph 29483 missing" is an error here
        assert main(["report", str(_cjk_csv(tmp_path)), "--output", str(output), *_FAST]) == 0
    assert capsys.readouterr().err == ""
    assert output.stat().st_size > 0


def _tick_names(names: list[str]) -> list[str]:
    """The per-class figure's tick labels of a report whose classes are ``names``."""
    pytest.importorskip("matplotlib")
    from crossent._report import _html

    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    report = crossent.report(probs, np.array([0, 1, 0]), class_names=names, resamples=5)
    with warnings.catch_warnings(), _html._text_as_typed():
        warnings.simplefilter("error")
        _, figure = _html._per_class_figure(report)
        figure.savefig(io.BytesIO(), format="png")  # glyphs are looked up when drawn
        return [label.get_text() for label in figure.axes[0].get_xticklabels()]


def test_a_character_no_font_has_is_drawn_as_its_escape() -> None:
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    if any("CJK" in name or "Hei" in name or "Gothic" in name for name in installed):
        pytest.skip("a font with Chinese characters is installed: they are drawn")
    assert _tick_names(["猫", "dog é"]) == ["\\u732b", "dog é"]


def test_a_character_of_a_fallback_font_is_drawn_as_typed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """U+210A (script small g) is in STIXGeneral, which matplotlib ships, not in DejaVu
    Sans: with STIXGeneral among the fallbacks it is drawn as typed, without a warning."""
    from crossent import _fonts

    monkeypatch.setattr(_fonts, "FALLBACK_FONTS", ("DejaVu Sans", "STIXGeneral"))
    assert _tick_names(["\u210a", "b"]) == ["\u210a", "b"]


# --- --class-columns with an empty name -------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "position"), [("a,,b", "2 of 3"), ("a,b,", "3 of 3"), (",a,b", "1 of 3")]
)
def test_an_empty_class_column_name_is_refused_by_position(
    typed: str, position: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("label,a,b,c\n0,0.7,0.2,0.1\n1,0.1,0.8,0.1\n")
    assert main(["report", str(path), "--class-columns", typed, "--json", *_FAST]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"crossent: error: --class-columns: name {position} is empty in {typed!r}; "
        "separate the class columns' names by single commas\n"
    )


# --- --output to a closed standard stream -----------------------------------------------


def test_output_to_closed_standard_error_is_refused_before_the_work(
    tmp_path: Path, npz_logits: Path
) -> None:
    """``--output /dev/stderr 2>&-``: the descriptor is closed, so the page cannot be
    written; main said "HTML report written to /dev/stderr", exit 0."""
    pytest.importorskip("matplotlib")
    if not os.path.exists("/dev/stderr"):
        pytest.skip("no /dev/stderr")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "crossent", "report", str(npz_logits), "--output"]
    done = subprocess.run(  # the shell closes it: preexec_fn would fork under JAX's threads
        ["sh", "-c", 'exec "$@" 2>&-', "sh", *command, "/dev/stderr", *_FAST],
        env=env,
        text=True,
        timeout=120,
        stdout=subprocess.PIPE,
    )
    assert done.returncode == 2
    assert done.stdout == ""


def test_output_to_a_standard_error_python_lacks_is_refused(
    npz_logits: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process: ``sys.stderr`` None (closed) is replaced by a stream that drops what it
    is given; the page is not written into it."""
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["report", str(npz_logits), "--output", "/dev/fd/2", *_FAST]) == 2
    said = sys.stderr.getvalue()  # type: ignore[union-attr]
    assert "<html" not in said
    assert said == (
        "crossent: error: /dev/fd/2: standard error is closed (2>&-), so the page would be "
        "lost; give a file name, or leave it open\n"
    )
    assert capsys.readouterr().out == ""


# --- a sequence model's outputs ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_sequence_outputs_are_refused_with_how_to_flatten(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Hugging Face-like (batch, positions, vocabulary) logits array: refused (nothing
    reshapes it on a guess), the line now says how to flatten it into rows."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 8, 30)).astype(np.float32)
    labels = rng.integers(0, 30, (4, 8))
    path = tmp_path / f"seq{suffix}"
    if suffix == ".npz":
        np.savez(path, logits=logits, labels=labels)
    else:
        torch = pytest.importorskip("torch")
        torch.save({"logits": torch.tensor(logits), "labels": torch.tensor(labels)}, path)
    assert main(["report", str(path), *_FAST]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "A sequence model's outputs (batch, positions, classes)? Flatten them into rows "
        "first: logits.reshape(-1, 30) and labels.reshape(-1)"
    )
