"""``cli._copied.copied_array`` on its own (branch mutation8: mutants of hostilecli9's
copy that the CLI tests let through).  An in-memory ``BytesIO`` stands for the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import crossent.cli._copied as copied
from crossent.cli._dataset import ScratchError, SourceError, scratch_file

_VALUES = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
_PREFIX = b"header!!"  # 8 bytes before the array, as an .npy header


def _raw(values: np.ndarray = _VALUES, *, order: str = "C") -> io.BytesIO:
    return io.BytesIO(_PREFIX + values.tobytes(order=order))


def _copy(raw: io.BytesIO, **kw: object) -> np.ndarray:
    return copied.copied_array(  # type: ignore[no-any-return]
        raw, len(_PREFIX), np.dtype(np.float64), (3, 4), where="f.npy", **kw
    )


@pytest.mark.parametrize("scratch", [False, True], ids=["in-memory", "scratch"])
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
def test_values_from_the_offset_whatever_the_file_position(
    monkeypatch: pytest.MonkeyPatch, scratch: bool, fortran: bool
) -> None:
    # the file is not at the offset (read to its end): the copy seeks there; a chunk
    # (24 bytes) that does not divide the array's 96 bytes ends with a short one
    if scratch:
        monkeypatch.setattr(copied, "IN_MEMORY_BYTES", 0)
        monkeypatch.setattr(copied, "_CHUNK", 24)
    raw = _raw(order="F" if fortran else "C")
    raw.read()
    array = _copy(raw, fortran_order=fortran)
    assert isinstance(array, np.memmap) is scratch
    np.testing.assert_array_equal(array, _VALUES)
    assert not array.flags.writeable


def test_an_array_of_exactly_the_bound_is_read_into_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "up to IN_MEMORY_BYTES into memory": 96 bytes with the bound at 96, and at 95
    monkeypatch.setattr(copied, "IN_MEMORY_BYTES", _VALUES.nbytes)
    assert not isinstance(_copy(_raw()), np.memmap)
    monkeypatch.setattr(copied, "IN_MEMORY_BYTES", _VALUES.nbytes - 1)
    assert isinstance(_copy(_raw()), np.memmap)
    # in_memory (the labels) whatever the size
    assert not isinstance(_copy(_raw(), in_memory=True), np.memmap)


@pytest.mark.parametrize("scratch", [False, True], ids=["in-memory", "scratch"])
def test_a_short_file_names_the_bytes_it_holds(
    monkeypatch: pytest.MonkeyPatch, scratch: bool
) -> None:
    # 8 + 50 bytes where the array needs 8 + 96: "ends after 58 bytes", the file's
    # length, not the array's offset
    if scratch:
        monkeypatch.setattr(copied, "IN_MEMORY_BYTES", 0)
        monkeypatch.setattr(copied, "_CHUNK", 24)
    raw = io.BytesIO(_raw().getvalue()[:58])
    with pytest.raises(SourceError) as info:
        _copy(raw)
    assert str(info.value) == (
        "f.npy: the file ends after 58 bytes, where its array needs 104; was it "
        "truncated or rewritten while crossent read it?"
    )


@pytest.mark.parametrize("size", [16, 1 << 16], ids=["buffered", "past-the-buffer"])
def test_a_failed_scratch_write_is_a_scratch_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # /dev/full fails every write with ENOSPC: a small write fails at the flush, one
    # larger than the buffer at the write itself (the CLI's tests wrote small ones)
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(
        "tempfile.TemporaryFile",
        lambda **kwargs: open("/dev/full", "r+b", buffering=0),  # noqa: SIM115
    )

    def write() -> None:
        with scratch_file() as scratch:  # (as the CLI: the error leaves the block)
            scratch.write(bytes(size))
            scratch.flush()

    with pytest.raises(ScratchError) as info:
        write()
    assert (info.value.filename, info.value.strerror) == (str(tmp_path), "No space left on device")
