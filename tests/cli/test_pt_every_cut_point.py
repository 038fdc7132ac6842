"""A ``.pt`` file cut at every byte says it is truncated, in one line, exit 2.

Main (branch leftovers6 found): a legacy-format file (``_use_new_zipfile_serialization=
False``) cut inside a pickled class name (``torch._utils _rebuild_tensor_v2`` read as
``torch._utils _rebuild_te``) said it "holds Python objects other than tensors, which
crossent never unpickles", and a file of 1 to 3 bytes said "not a file torch.save
wrote (IndexError: index out of range)", "(EOFError: no message)" or "(Unsupported
operand 80)". The empty file (cut point 0) keeps its own
line, "the file is empty". Wrong on main: 95 of the 1083 cut points of the legacy dict
below, 77 of 388 (tensor), 95 of 555 (pair), 3 of 2388 (the zip dict: its first 3 bytes).
"""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Any

import pytest

from crossent import cli
from crossent.cli import main

torch = pytest.importorskip("torch")

_TRUNCATED = "not a complete PyTorch file (truncated or damaged): "


def _objects() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    return {
        "dict": {"logits": torch.randn(30, 3, generator=generator), "labels": torch.arange(30) % 3},
        "tensor": torch.randn(4, 3, generator=generator),
        "pair": (torch.randn(5, 3, generator=generator), torch.arange(5) % 3),
    }


@pytest.mark.parametrize(
    ("kind", "legacy"),
    [("dict", True), ("tensor", True), ("pair", True), ("dict", False)],
    ids=["dict-legacy", "tensor-legacy", "pair-legacy", "dict-zip"],
)
def test_every_cut_point_reports_truncation(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    legacy: bool,
) -> None:
    # One argparse parser for the test's 388 to 2388 calls of main (built afresh by each,
    # about 2.4 of its 3.8 ms of CPU: 10 s of the 15.6 s of this file in CI); the parser
    # holds no state between parses (what _Once records lives in the namespace).
    parser = cli._parser()
    monkeypatch.setattr(cli, "_parser", lambda: parser)
    whole = tmp_path / "whole.pt"
    torch.save(_objects()[kind], whole, _use_new_zipfile_serialization=not legacy)
    data = whole.read_bytes()
    path = tmp_path / "cut.pt"
    argv = ["report", str(path)] + ([] if kind == "dict" else ["--logits"])
    wrong = []
    for kept in range(1, len(data)):
        path.write_bytes(data[:kept])
        code = main(argv)
        out, err = capsys.readouterr()
        prefix = f"crossent: error: {path}: {_TRUNCATED}"
        if code != 2 or out or not err.startswith(prefix) or err.count("\n") != 1:
            wrong.append((kept, code, err))
    assert not wrong, f"{len(wrong)} of {len(data) - 1} cut points: {wrong[:3]}"
    path.write_bytes(data)  # (the whole file is read: the cut is what the tests see)
    main(argv)
    assert _TRUNCATED not in capsys.readouterr().err


def test_a_whole_legacy_file_of_other_objects_is_still_not_called_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the cut-name rule from calling every refused global truncated (passes on
    main): a complete legacy file holding a ``Fraction`` is refused as objects."""
    path = tmp_path / "objects.pt"
    torch.save({"logits": fractions.Fraction(1, 3)}, path, _use_new_zipfile_serialization=False)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"crossent: error: {path}: holds Python objects other than tensors")
    assert err.count("\n") == 1


def test_a_short_file_that_is_no_header_is_not_called_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the short-file rule (passes on main): 3 bytes that start neither header."""
    path = tmp_path / "short.pt"
    path.write_bytes(b"abc")
    assert main(["report", str(path), "--logits"]) == 2
    err = capsys.readouterr().err
    assert _TRUNCATED not in err
    assert err.count("\n") == 1
