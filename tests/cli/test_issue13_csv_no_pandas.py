"""Issue 13: a CSV report imports no pandas.

Arrow's ``to_numpy`` imports pandas where it is installed (0.25-0.4 s of a CSV report);
the reader now takes columns of integers or floats without nulls from their buffers.
The oracle is Arrow's ``to_numpy``: the same values and dtype for every integer and
float type, sliced arrays (an offset into the buffer) and arrays with nulls (which
still take ``to_numpy``).  The fresh-process test fails on main (6a130e6); the
equality test fails there too (no ``_to_numpy``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fresh_process import run_python

pa = pytest.importorskip("pyarrow")


@pytest.mark.parametrize(
    "kind", ["int8", "uint16", "int32", "int64", "uint64", "float16", "float32", "float64"]
)
def test_columns_from_buffers_are_to_numpys(kind: str) -> None:
    from crossent.cli._tables import _to_numpy

    values = (np.arange(40) % 7).astype(kind)
    array = pa.array(values)
    for column in (array, array.slice(3, 20), array.slice(39, 1), array.slice(5, 0)):
        got, expected = _to_numpy(column), column.to_numpy(zero_copy_only=False)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    with_null = pa.array([1.5, None, 2.0], type=pa.float64())
    np.testing.assert_array_equal(_to_numpy(with_null), [1.5, np.nan, 2.0])


def test_a_csv_report_imports_no_pandas(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=50)
    labels = rng.integers(0, 3, size=50)
    path = tmp_path / "preds.csv"
    rows = [",".join(map(repr, p.tolist())) + f",{y}" for p, y in zip(probs, labels, strict=True)]
    path.write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    out = run_python(
        "import io, contextlib, sys\n"
        "from crossent.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['report', {str(path)!r}, '--json', '--resamples', '20']) == 0\n"
        "print('pandas' in sys.modules)\n",
        numba_cache=Path(os.environ.get("NUMBA_CACHE_DIR") or tmp_path),
    )
    assert out.strip().splitlines()[-1] == "False"
