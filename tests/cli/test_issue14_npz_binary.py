"""Issue 14, binary predictions stored as one array: a 1-D ``probs`` (P(label = 1)) or
``logits`` (the log-odds of class 1) in an ``.npz`` or ``.safetensors`` file gives the
metrics of the two-column file, with the positive-class scope; a 1-D ``log_probs`` is a
clear error naming the array and its shape."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

pytest.importorskip("rich")

_METRICS = ("n", "classes", "accuracy", "nll_nats", "brier", "spherical", "mean_entropy_nats")


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code = main([*argv, "--json", "--resamples", "50"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _binary(n: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """P(label = 1) and labels drawn from a miscalibrated version of it."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, size=n)
    return p, (rng.uniform(size=n) < p**1.3).astype(np.int64)


def _assert_same_report(one: dict, two: dict) -> None:
    for key in _METRICS:
        assert one[key] == pytest.approx(two[key], rel=1e-12), key
    for key in ("value", "ci_low", "ci_high", "scope"):
        assert one["ece"][key] == pytest.approx(two["ece"][key], abs=1e-12), key
    assert one["smooth_ece"]["value"] == pytest.approx(two["smooth_ece"]["value"], abs=1e-12)
    assert one["temperature"]["value"] == pytest.approx(two["temperature"]["value"], rel=1e-9)
    assert one["recalibration_gap_nats"] == pytest.approx(two["recalibration_gap_nats"], abs=1e-12)
    assert one["reliability_bins"] == two["reliability_bins"]
    assert [c["count"] for c in one["per_class"]] == [c["count"] for c in two["per_class"]]
    assert one["binary"] is True
    assert one["classes"] == 2
    assert one["ece"]["scope"] == "positive-class"
    assert any("positive-class" in note for note in one["notes"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue14_item_binary_one_column_npz_probs_equals_the_two_column_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: type
) -> None:
    p, labels = _binary()
    p = p.astype(dtype)
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    np.savez(one, probs=p, labels=labels)
    # the two-column file the library builds from P(y = 1): [1 - p, p] in float64
    wide = p.astype(np.float64)
    np.savez(two, probs=np.stack([1.0 - wide, wide], axis=1), labels=labels)
    got = _json(capsys, ["report", str(one)])
    want = _json(capsys, ["report", str(two), "--scope", "positive-class"])
    _assert_same_report(got, want)


def test_issue14_item_binary_one_column_npz_logits_are_the_log_odds_of_class_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, labels = _binary(seed=5)
    z = np.log(p) - np.log1p(-p)
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    np.savez(one, logits=z, labels=labels)
    np.savez(two, logits=np.stack([np.zeros_like(z), z], axis=1), labels=labels)
    got = _json(capsys, ["report", str(one)])
    want = _json(capsys, ["report", str(two), "--scope", "positive-class"])
    _assert_same_report(got, want)
    # and the log-odds mean what they say: the NLL of sigmoid(z)
    nll = -np.mean(np.where(labels == 1, np.log(p), np.log1p(-p)))
    assert got["nll_nats"] == pytest.approx(nll, rel=1e-12)


def test_issue14_item_binary_one_column_compressed_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, labels = _binary(seed=7)
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    np.savez(plain, probs=p, labels=labels)
    np.savez_compressed(packed, probs=p, labels=labels)
    a, b = _json(capsys, ["report", str(plain)]), _json(capsys, ["report", str(packed)])
    for key in _METRICS:
        assert a[key] == b[key], key


def _safetensors(path: Path, tensors: dict[str, tuple[np.ndarray, str]]) -> Path:
    header, blobs, offset = {}, [], 0
    for name, (array, kind) in tensors.items():
        data = array.tobytes()
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def test_issue14_item_binary_one_dimensional_safetensors_equals_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, labels = _binary(seed=11)
    st = _safetensors(
        tmp_path / "one.safetensors", {"probs": (p, "F64"), "labels": (labels, "I64")}
    )
    npz = tmp_path / "one.npz"
    np.savez(npz, probs=p, labels=labels)
    a, b = _json(capsys, ["report", str(st)]), _json(capsys, ["report", str(npz)])
    _assert_same_report(a, b)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_issue14_item_binary_one_dimensional_log_probs_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    p, labels = _binary()
    path = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        np.savez(path, log_probs=np.log(p), labels=labels)
    else:
        _safetensors(path, {"log_probs": (np.log(p), "F64"), "labels": (labels, "I64")})
    code = main(["report", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "'log_probs'" in err
    assert "(300,)" in err
    assert "Traceback" not in err


def test_issue14_item_binary_one_column_npz_labels_must_be_0_or_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, labels = _binary()
    labels[4] = 2
    path = tmp_path / "bad.npz"
    np.savez(path, probs=p, labels=labels)
    code = main(["report", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "labels" in err
    assert "2" in err


def test_issue14_item_binary_npz_of_three_dimensions_names_the_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, probs=np.full((4, 2, 1), 0.5), labels=np.zeros(4, dtype=np.int64))
    code = main(["report", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "'probs'" in err
    assert "(4, 2, 1)" in err
