"""An array's bytes copied out of the user's file, never memory-mapped in place.

A memory map of the user's file ends the process with SIGBUS ("Bus error", exit 135,
no message) when another process truncates the file while it is read (``np.save``
over it from a training job), and Python cannot catch that signal.  So an array is
read with ``read()``, which returns fewer bytes instead: up to :data:`IN_MEMORY_BYTES`
into memory, larger ones into an anonymous scratch file in TMPDIR that is then mapped
(ours alone, unlinked, so nobody can truncate it), which keeps the input out of
memory.  A file that ends early is a :class:`._dataset.SourceError` naming it.

A reader that maps a file by its name itself (``torch.load(mmap=True)`` of a large
``.pt``) is given the name of such a copy: :func:`copied_file`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from ._dataset import SourceError, scratch_file

__all__ = ["IN_MEMORY_BYTES", "copied_array", "copied_file", "named_copies"]

IN_MEMORY_BYTES = 1 << 28
"""Arrays up to this many bytes (256 MiB) are read into memory; larger ones are copied
to a scratch file and mapped from there."""

_CHUNK = 1 << 22


def copied_array(
    raw: IO[bytes],
    offset: int,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    *,
    fortran_order: bool = False,
    where: str,
    in_memory: bool = False,
) -> Any:
    """The read-only array of ``shape`` and ``dtype`` stored at byte ``offset`` of
    ``raw``: in memory when ``in_memory`` or at most :data:`IN_MEMORY_BYTES`, else a
    memory map of a scratch copy.  ``where`` begins the message if the file holds
    fewer bytes than the array needs."""
    order: Literal["C", "F"] = "F" if fortran_order else "C"
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    raw.seek(offset)
    if in_memory or nbytes <= IN_MEMORY_BYTES:
        buffer = np.empty(nbytes, dtype=np.uint8)
        _copy(raw, buffer.data, offset, offset + nbytes, where)
        array = buffer.view(dtype).reshape(shape, order=order)
        array.flags.writeable = False  # as a map of the file would be
        return array
    with scratch_file() as scratch:  # the map keeps the unlinked file alive
        chunk = bytearray(_CHUNK)
        done = 0
        while done < nbytes:
            view = memoryview(chunk)[: min(_CHUNK, nbytes - done)]
            _copy(raw, view, offset + done, offset + nbytes, where)
            scratch.write(view)
            done += len(view)
        scratch.flush()
        return np.memmap(scratch, dtype=dtype, mode="r", shape=shape, order=order)


def _copy(raw: IO[bytes], into: memoryview, at: int, end: int, where: str) -> None:
    """Fill ``into`` with the bytes of ``raw`` from byte ``at`` (the array ends at ``end``)."""
    filled = 0
    while filled < len(into):
        got = raw.readinto(into[filled:])  # type: ignore[attr-defined]
        if not got:
            raise SourceError(
                f"{where}: the file ends after {at + filled:_} bytes, where its array needs "
                f"{end:_}; was it truncated or rewritten while crossent read it?"
            )
        filled += got


def named_copies() -> bool:
    """Whether :func:`copied_file` can name an unnamed scratch file: ``/dev/fd`` (Linux,
    macOS, the BSDs), which opens the file a descriptor holds, deleted or not."""
    return os.path.isdir("/dev/fd")


@contextlib.contextmanager
def copied_file(path: Path) -> Iterator[str]:
    """The name of a copy of the file ``path`` in an unnamed scratch file in TMPDIR,
    ``/dev/fd/N`` (:func:`named_copies`), for a reader that opens or maps a file by its
    name itself.  A map of the copy keeps it alive after the block; nothing else can
    reach it, so no other process can truncate it under the map (SIGBUS).

    A file that ends early while it is copied is copied as far as it goes (the reader
    then finds it incomplete, as it would the file itself)."""
    with scratch_file() as scratch, open(path, "rb") as source:
        shutil.copyfileobj(source, scratch, _CHUNK)
        scratch.flush()
        yield f"/dev/fd/{scratch.fileno()}"
