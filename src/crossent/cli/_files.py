"""Writing output files atomically: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import crossent

__all__ = ["write_atomically"]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either untouched or complete.

    The text goes to a temporary file beside ``path`` (same file system, so the final
    ``os.replace`` is atomic); on any failure the temporary file is removed.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise crossent.InputError(f"{path}: the folder {folder} does not exist")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
