"""Issue 11, the CLI's part: a registry of input formats, and imports of the public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import crossent.cli
import crossent.cli._sources as sources
from crossent.cli import main

from .conftest import make_predictions

CLI = Path(crossent.cli.__file__).parent


def _open_tsv(path: Path, form: str | None, dtype: str | None) -> sources.Dataset:
    table = np.loadtxt(path, delimiter="\t", ndmin=2)
    return sources.Dataset(
        table[:, 1:], table[:, 0].astype(np.int64), form or "probs", ["a", "b", "c", "d"], str(path)
    )


def test_issue11_a_new_format_is_one_registry_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tsv = sources.InputFormat((".tsv",), "a .tsv of label then logits", _open_tsv)
    monkeypatch.setattr(sources, "FORMATS", (*sources.FORMATS, tsv))
    assert main(["report", "--help"]) == 0
    assert "a .tsv of label then logits" in " ".join(capsys.readouterr().out.split())
    assert main(["report", str(tmp_path / "x.txt")]) == 2  # missing: checked first
    (tmp_path / "x.txt").write_text("1")
    assert main(["report", str(tmp_path / "x.txt")]) == 2
    assert "use .npz, .csv, .parquet, .pq, " in capsys.readouterr().err  # issue 14 added more
    assert main(["report", str(tmp_path / "x.txt")]) == 2
    assert capsys.readouterr().err.rstrip().endswith(" or .tsv")
    logits, labels = make_predictions(n=30)
    path = tmp_path / "p.tsv"
    np.savetxt(path, np.column_stack([labels, logits]), delimiter="\t")
    assert main(["report", str(path), "--logits", "--json", "--resamples", "5"]) == 0
    assert '"n": 30' in capsys.readouterr().out


def _private_imports(path: Path) -> list[str]:
    """Imports and attribute uses of private names outside cli/ in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level >= 2:
                found.append(f"from {'.' * node.level}{node.module or ''} import ...")
            elif node.level == 0 and (node.module or "").startswith("crossent"):
                parts = (node.module or "").split(".")[1:] + [a.name for a in node.names]
                if any(p.startswith("_") and p != "__version__" for p in parts):
                    found.append(f"from {node.module} import {[a.name for a in node.names]}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "crossent" and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "crossent"
            and node.attr.startswith("_")
            and node.attr != "__version__"
        ):
            found.append(f"crossent.{node.attr}")
    return found


#: Package infrastructure the CLI shares with the library rather than library API: the
#: one atomic file writer behind both ``Report.to_html(path)`` and ``--output`` (two
#: copies of it had drifted apart: the report's renamed over FIFOs and symlinks), and
#: the one rule for integer-named class columns that ``crossent.report`` and the CLI's
#: tables both apply (labels as names or positions: refused unless said), and the one
#: wording of the command that installs an optional extra (``_hints.install_command``),
#: which every MissingDependencyError of the library and of the CLI ends with; and the
#: one threshold from which numbers print in scientific notation (``_reprs.FIXED_LIMIT``),
#: which the report's tables and ``crossent explain`` share; and the one way user text
#: (names) is shown with its control characters escaped (``_printable.printable``), which
#: the terminal and the HTML report share (issue 13, hostile5).
SHARED_INFRASTRUCTURE = {
    "from .._reprs import ...",
    "from .._files import ...",
    "from .._class_columns import ...",
    "from .._hints import ...",
    "from .._printable import ...",
}


@pytest.mark.parametrize("module", sorted(p.name for p in CLI.glob("*.py")))
def test_issue11_cli_modules_use_only_the_public_api(module: str) -> None:
    assert [i for i in _private_imports(CLI / module) if i not in SHARED_INFRASTRUCTURE] == []


def test_issue11_the_private_import_check_finds_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from .._checks import check_form\n"
        "from crossent.info._kernels import safe_log\n"
        "from crossent import _xp\n"
        "import crossent.calibration._inputs\n"
        "import crossent\n"
        "crossent._checks.check_form\n"
        "from ._sources import open_dataset\n"
        "from crossent import InputError, __version__\n"
    )
    assert len(_private_imports(bad)) == 5
