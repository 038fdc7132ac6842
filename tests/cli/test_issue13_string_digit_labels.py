"""Parquet/Arrow string labels of digits are class names (issue 13, evalstate15).

``--help`` says string labels name the class columns; a Parquet string column "0", "1",
"2" beside class columns a, b, c was read as the positions 0, 1, 2 (a report, exit 0),
though no column is named "2".  Now: one line, exit 2, naming the label and the class
columns.  Columns named "0", "1", "2" still take such labels (by name), and a CSV's
cells of digits are still integers (guards).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as parquet
import pytest

from crossent.cli import main

PROBS = {"a": [0.7, 0.1, 0.2], "b": [0.2, 0.8, 0.1], "c": [0.1, 0.1, 0.7]}


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_digit_strings_name_no_class_column(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"preds{suffix}"
    table = pa.table({**PROBS, "label": ["0", "1", "2"]})
    (parquet.write_table if suffix == ".parquet" else feather.write_feather)(table, path)
    assert main(["report", "--json", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Traceback" not in err
    assert "'0'" in err
    assert "'a', 'b', 'c'" in err


def test_digit_strings_naming_columns_are_read_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # guard: columns named "2", "0", "1" (not in order) take the string labels by name
    path = tmp_path / "named.parquet"
    table = pa.table({"2": PROBS["c"], "0": PROBS["a"], "1": PROBS["b"], "label": ["0", "1", "2"]})
    parquet.write_table(table, path)
    assert main(["report", "--json", str(path)]) == 0
    assert '"accuracy": 1.0' in capsys.readouterr().out


def test_csv_digits_stay_integer_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # guard: a CSV cell has no type; its digits are the class id (a position)
    path = tmp_path / "preds.csv"
    path.write_text('a,b,c,label\n0.7,0.2,0.1,"0"\n0.1,0.8,0.1,"+1"\n0.2,0.1,0.7,"2"\n')
    assert main(["report", "--json", str(path)]) == 0
    assert '"accuracy": 1.0' in capsys.readouterr().out
