"""Issue 13, hostile pass 23: the CLI's files (``--output``, CSV cells, label columns).

On main (2d810fa6):

* a CSV class cell that Python's ``float`` reads but the CSV reader does not (``0.8_0``,
  ``0.8`` and a no-break space, Arabic-Indic digits) was refused as "column 'b' must be
  numeric to be a class" with no row and no value: the row was looked for with
  ``float(cell)``, which accepts all three;
* a CSV label column of class ids with one stray text cell (``0``, then ``x``) was refused
  as "row 0 has '0', which names none": the row of a good label, not of the stray cell;
* an existing ``--output`` that its owner cannot write (``chmod a-w``) was replaced
  without a word: the page is renamed over it, and a rename needs only the folder's
  permission, so the protected file was lost (a shell's ``>`` says "Permission denied").
  The tests run as root here, so the permission check a user gets is stood in for by
  ``os.access`` answering from the mode bits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossent import InputError
from crossent._files import write_atomically
from crossent.cli import main

pytest.importorskip("pyarrow")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "preds.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("cell", ["0.8_0", "0.8\u00a0", "\u0660.\u0668"])
def test_a_class_cell_python_reads_but_the_csv_does_not_is_named_with_its_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cell: str
) -> None:
    path = _csv(tmp_path, f"a,b,label\n0.7,0.3,0\n0.2,{cell},1\n")
    assert main(["report", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert f"column 'b' must be numeric to be a class (row 1 holds {cell!r}, not a number)" in err


def test_a_class_cell_with_spaces_around_a_number_is_not_the_one_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CSV reader trims spaces and tabs around a number: `` 0.3 `` is a number, the
    cell named is the one after it."""
    path = _csv(tmp_path, "a,b,label\n0.7, 0.3\t,0\n0.2,0.8_0,1\n")
    assert main(["report", str(path), "--json"]) == 2
    assert "(row 1 holds '0.8_0', not a number)" in capsys.readouterr().err


def test_a_stray_text_label_among_class_ids_is_named_with_its_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _csv(tmp_path, "a,b,label\n0.7,0.3,0\n0.2,0.8,1\n0.6,0.4,x\n")
    assert main(["report", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"crossent: error: {path}: the 'label' column holds class ids (row 0 has '0') and, "
        "in row 2, 'x', which is no integer and names no class column (class columns: "
        "'a', 'b')\n"
    )


def test_class_ids_mixed_with_class_names_are_said_to_be_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _csv(tmp_path, "a,b,label\n0.7,0.3,a\n0.2,0.8,1\n")
    assert main(["report", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"crossent: error: {path}: the 'label' column holds both class ids (row 1 has '1') "
        "and class names (row 0 has 'a'); write every label one way\n"
    )


@pytest.fixture
def as_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.access`` as a user other than root answers: from the owner's mode bits."""
    if os.geteuid() != 0:
        return

    def access(path: object, mode: int, **kwargs: object) -> bool:
        bits = stat.S_IMODE(os.stat(path, follow_symlinks=True).st_mode)  # type: ignore[arg-type]
        wanted = (
            (stat.S_IRUSR if mode & os.R_OK else 0)
            | (stat.S_IWUSR if mode & os.W_OK else 0)
            | (stat.S_IXUSR if mode & os.X_OK else 0)
        )
        return bits & wanted == wanted

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_output_is_kept_and_refused_before_the_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    as_a_user: None,
) -> None:
    kept = tmp_path / "kept.json"
    kept.write_text("the only copy\n")
    kept.chmod(0o444)
    assert main(["report", str(npz_logits), "--resamples", "5", "--output", str(kept)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"crossent: error: {kept}: is read-only (mode 0o444), so it is kept; make it "
        "writable (chmod u+w) or write to another file\n"
    )
    assert kept.read_text() == "the only copy\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["kept.json", npz_logits.name])


def test_a_read_only_file_through_a_link_is_kept_by_the_library_writer(
    tmp_path: Path, as_a_user: None
) -> None:
    """``Report.to_html(path)`` writes with the same writer: a link to a read-only file."""
    kept = tmp_path / "kept.html"
    kept.write_text("the only copy\n")
    kept.chmod(0o400)
    link = tmp_path / "link.html"
    link.symlink_to(kept.name)
    with pytest.raises(InputError, match=r"link\.html: is read-only \(mode 0o400\)"):
        write_atomically(link, "<!DOCTYPE html>\n")
    assert kept.read_text() == "the only copy\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.html", "link.html"]


def test_a_writable_output_is_still_replaced_with_its_mode(tmp_path: Path, as_a_user: None) -> None:
    """Guard: the refusal is of a file its owner cannot write, not of every mode."""
    out = tmp_path / "out.html"
    out.write_text("old\n")
    out.chmod(0o640)
    write_atomically(out, "new\n")
    assert out.read_text() == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root gives files away"
)
def test_a_replaced_output_keeps_its_owner_and_group(tmp_path: Path) -> None:
    """Root's report over a user's file (a container's ``--output`` into a mounted
    folder, or ``Report.to_html``: the one writer) made it root's: the user could no
    longer write it (mode 0o644)."""
    out = tmp_path / "out.html"
    out.write_text("old\n")
    os.chown(out, 4321, 4322)
    out.chmod(0o644)
    write_atomically(out, "new\n")
    after = out.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (4321, 4322, 0o644)
    assert out.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]


def _reads_as_a_number(cell: str) -> bool:
    """The oracle: pyarrow's CSV reader, told the column is float64, reads ``cell``."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    options = pa_csv.ConvertOptions(column_types={"b": pa.float64()}, null_values=[])
    try:
        pa_csv.read_csv(io.BytesIO(f"b\n{cell}\n".encode()), convert_options=options)
    except pa.ArrowInvalid:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(alphabet="09.e-+_ \t\u00a0\u0663in", min_size=1, max_size=5),
        min_size=1,
        max_size=6,
    )
)
def test_the_cell_named_is_the_first_the_csv_reader_does_not_read(cells: list[str]) -> None:
    """Hypothesis: the row named is the first cell that the CSV reader itself refuses
    (one-cell CSVs as the oracle), and none is named when it reads them all."""
    import pyarrow as pa

    from crossent.cli._tables import _text_cell

    batch = pa.record_batch({"b": pa.array(cells, type=pa.string())})
    refused = [k for k, cell in enumerate(cells) if not _reads_as_a_number(cell)]
    expected = f" (row {refused[0]} holds {cells[refused[0]]!r}, not a number)" if refused else ""
    assert _text_cell(batch, "b") == expected


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSV blocks of 64 bytes, not 16 MiB: a few rows past the first block, where the
    columns' types were inferred."""
    monkeypatch.setattr("crossent.cli._tables._CSV_BLOCK_BYTES", 64)


def _rows_then(tmp_path: Path, rows: list[str], last: str) -> Path:
    return _csv(tmp_path, "a,b,label\n" + "\n".join(rows * 8) + f"\n{last}\n")


@pytest.mark.parametrize(
    ("rows", "last"),
    [
        (["1,0,0", "0,1,1"], "x,0.2,1"),  # integers, then text: no row, no value
        (["1,0,0", "0,1,1"], "0.8_0,0.2,1"),  # float() read it: "cannot be parsed"
        (["0.5,0.5,0", "0.25,0.75,1"], "x,0.2,1"),  # floats, then text: "cannot be parsed"
    ],
)
def test_a_class_cell_past_the_first_block_is_named_with_its_row(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_blocks: None,
    rows: list[str],
    last: str,
) -> None:
    path = _rows_then(tmp_path, rows, last)
    assert main(["report", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    cell = last.split(",")[0]
    assert err == (
        f"crossent: error: {path}: column 'a' must be numeric to be a class (row 16 holds "
        f"{cell!r}, not a number); name it with --id-column if it identifies rows, or list "
        "the class columns with --class-columns\n"
    )


def test_an_ignored_column_with_text_past_the_first_block_is_read(
    tmp_path: Path, small_blocks: None
) -> None:
    """A column that is no class (``--class-columns a,b``) of numbers, then ``pending``: the
    whole table was refused as "cannot be parsed (... conversion error to double ...)"."""
    from crossent.cli._columns import TableColumns
    from crossent.cli._tables import open_csv

    lines = ["a,b,label,score"] + ["0.75,0.25,0,0.5", "0.25,0.75,1,0.125"] * 8
    path = _csv(tmp_path, "\n".join([*lines, "0.5,0.5,1,pending"]) + "\n")
    dataset = open_csv(path, None, columns=TableColumns.parse(None, None, "a,b"))
    try:
        assert dataset.values.shape == (17, 2)
        assert dataset.labels.tolist() == [0, 1] * 8 + [1]
    finally:
        dataset.close()
