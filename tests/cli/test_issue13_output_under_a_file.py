"""Issue 13 hostile pass: ``--output`` under a path that is a file, not a folder.

On main (fa36995) ``crossent report preds.npz --output preds.npz/r.html`` said "the
folder preds.npz does not exist", though it exists (as a file); so did
``--output /dev/null/r.html``.  The message now says that it is not a folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crossent.cli import main

pytest.importorskip("rich")


def test_output_under_a_file_says_it_is_not_a_folder(
    capsys: pytest.CaptureFixture[str], npz_logits: Path
) -> None:
    target = npz_logits / "r.html"
    assert main(["report", str(npz_logits), "--output", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"crossent: error: {target}: {npz_logits} is not a folder\n"


def test_output_in_a_missing_folder_still_says_so(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "r.html"
    assert main(["report", str(npz_logits), "--output", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"crossent: error: {target}: the folder {target.parent} does not exist\n"
