"""Issue 13, hostile pass 26: ``crossent report`` on model outputs as evaluators save them.

On main (d6e53ad7):

* boolean labels beside three or more prediction columns (an ``.npz``, ``.pt``,
  ``.safetensors``, a ``--labels`` array or table, a CSV/Parquet/Arrow label column of
  ``True``/``False``) were cast to the classes 0 and 1 as they were read, before the
  columns were counted, and reported: 3-class logits gave an NLL and accuracy of the
  wrong classes (NLL 1.92 for 1.54 nats) where :func:`crossent.report` refuses the same
  arrays ("`labels` are booleans, which are the classes 0 (False) and 1 (True) of a
  binary problem, but the predictions have 3 classes");
* a compressed ``preds.npy.gz`` (or ``.npz.gz``, ``.pt.gz``) was refused with the advice
  "decompress it, or pipe it as a CSV: gunzip -c preds.npy.gz | crossent report - ...",
  and the pipe is refused ("standard input holds a .npy array, not CSV text");
* a ``.pt`` (zip format) cut after its first 4 KiB, as a copy or a full disk leaves a
  model's outputs, said "cannot be read (Invalid argument)": torch's zip reader raises
  ``OSError(EINVAL)``, read as an I/O error.  ``test_pt_every_cut_point`` cut a file of
  2165 bytes only; a 5.6 KB file of float64 logits failed at 1524 of its 5620 cut
  points.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

_BOOLEANS = (
    "the labels are booleans, the classes 0 (False) and 1 (True) of a binary problem, but "
    "the predictions have 3 classes; if False and True are the classes 0 and 1, save the "
    "labels as integers (labels.astype(int))\n"
)


def _three_classes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(12, 3)), rng.random(12) > 0.5


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], where: Path) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"crossent: error: {where}: {_BOOLEANS}"


def test_boolean_labels_of_an_npz_beside_three_classes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _three_classes()
    path = tmp_path / "preds.npz"
    np.savez(path, logits=logits, labels=labels)
    _refused(capsys, ["report", str(path), "--json"], path)


def test_boolean_labels_of_a_labels_file_beside_three_classes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _three_classes()
    preds, truth = tmp_path / "logits.npy", tmp_path / "labels.npy"
    np.save(preds, logits)
    np.save(truth, labels)
    _refused(capsys, ["report", str(preds), "--logits", "--labels", str(truth)], truth)


def test_a_csv_label_column_of_booleans_beside_three_classes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _three_classes()
    path = tmp_path / "preds.csv"
    rows = "".join(
        f"{a!r},{b!r},{c!r},{y}\n" for (a, b, c), y in zip(logits.tolist(), labels, strict=True)
    )
    path.write_text("a,b,c,label\n" + rows, encoding="utf-8")
    _refused(capsys, ["report", str(path), "--logits", "--json"], path)


def test_boolean_labels_beside_one_or_two_columns_are_still_the_classes_0_and_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the binary reading (passes on main): a mutant refusing every boolean
    label, or casting True to 0, fails it.  Oracle: NumPy's log-sigmoid in float64."""
    logits, labels = _three_classes()
    score = logits[:, 0]
    path, two = tmp_path / "one.npz", tmp_path / "two.npz"
    np.savez(path, logits=score, labels=labels)
    np.savez(two, logits=np.stack([np.zeros_like(score), score], axis=1), labels=labels)
    expected = np.mean(np.where(labels, np.logaddexp(0, -score), np.logaddexp(0, score)))
    for file in (path, two):
        assert main(["report", str(file), "--json", "--resamples", "10"]) == 0
        nll = float(capsys.readouterr().out.split('"nll_nats": ')[1].split(",")[0])
        assert nll == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("name", ["preds.npy", "preds.npz", "my preds.pt"])
def test_a_compressed_binary_file_is_decompressed_not_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    inner = tmp_path / name
    path = tmp_path / f"{name}.gz"
    path.write_bytes(gzip.compress(b"\x93NUMPY whatever"))
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    quoted = f"'{inner}'" if " " in name else str(inner)
    gz = f"'{path}'" if " " in name else str(path)
    assert err == (
        f"crossent: error: {path}: is gzip-compressed, which is not read; decompress it "
        f"first: gunzip -c {gz} > {quoted}, then give {quoted}\n"
    )


def test_a_compressed_csv_is_still_offered_the_pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the CSV advice (passes on main): '-' reads a CSV, so piping it is right."""
    path = tmp_path / "preds.csv.gz"
    path.write_bytes(gzip.compress(b"a,b,label\n0.5,0.5,0\n"))
    assert main(["report", str(path)]) == 2
    assert capsys.readouterr().err.endswith(
        f"decompress it, or pipe it as a CSV: gunzip -c {path} | crossent report - ...\n"
    )


def test_a_pt_cut_after_its_first_4_kib_is_said_to_be_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    whole = tmp_path / "whole.pt"
    logits = torch.arange(400, dtype=torch.float64).reshape(100, 4) / 100
    torch.save({"logits": logits, "labels": torch.arange(100) % 4}, whole)
    data = whole.read_bytes()
    assert len(data) > 5000
    path = tmp_path / "cut.pt"
    for kept in (4097, len(data) - 22, len(data) - 1):
        path.write_bytes(data[:kept])
        assert main(["report", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (
            f"crossent: error: {path}: not a complete PyTorch file (truncated or damaged): "
            "the zip archive's end (its central directory) is missing\n"
        ), kept
