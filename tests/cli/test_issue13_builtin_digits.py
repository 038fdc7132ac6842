"""Issue 13, ``python3 tasks.py report`` (the built-in example): the digits without
importing scikit-learn.

``from sklearn.datasets import load_digits`` imported SciPy's statistics and pandas
with it, about 0.7 s of the built-in report's 3.4 s of CPU; the example now reads the
bundled ``digits.csv.gz`` as ``load_digits`` does, found by ``importlib.util.find_spec``.
The oracle is ``load_digits`` itself.  Both tests fail on main (6a130e6): it has no
``_digits``, and its report imports ``sklearn``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fresh_process import run_python

datasets = pytest.importorskip("sklearn.datasets")


def test_the_digits_are_load_digits() -> None:
    from crossent.cli._builtin import _digits

    data, target = _digits()
    digits = datasets.load_digits()
    assert data.dtype == digits.data.dtype
    assert target.dtype == digits.target.dtype
    np.testing.assert_array_equal(data, digits.data)
    np.testing.assert_array_equal(target, digits.target)


def test_the_builtin_report_imports_neither_sklearn_nor_pandas(tmp_path: Path) -> None:
    out = run_python(
        "import io, contextlib, sys\n"
        "from crossent.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['report', '--json']) == 0\n"
        "print(sorted(m for m in ('sklearn', 'pandas', 'scipy.stats') if m in sys.modules))\n",
        numba_cache=Path(os.environ.get("NUMBA_CACHE_DIR") or tmp_path),  # warm if set
    )
    assert out.strip().splitlines()[-1] == "[]"
