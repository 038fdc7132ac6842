"""What an input's first bytes say it is: compressed, a binary format, or text that is
not UTF-8 (UTF-16 or UTF-32 with a byte-order mark), not a CSV that can be read.

``crossent report`` reads a file by its suffix, and ``-`` (standard input) as a CSV; it
never guesses the form.  But a CSV that is not text (``gzip -c preds.csv | crossent
report -``, ``report - < preds.npz``, a ``preds.csv`` that is an ``.npz``) was refused
with pyarrow's parse error quoting its binary bytes ("Expected 2 columns, got 1:
\\x1f\\x8b...").  :func:`binary_format` names what the first :data:`HEAD_BYTES` bytes are,
so that the refusal says what was found and what to do; nothing is read as that format.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

__all__ = [
    "HEAD_BYTES",
    "LEGACY_TORCH_HEADER",
    "ZIP_HEADER",
    "BinaryFormat",
    "binary_format",
    "not_csv",
]

ZIP_HEADER = b"PK\x03\x04"
"""The first bytes of a zip archive: an ``.npz``, or ``torch.save``'s zip format (PyTorch
1.6 on)."""

LEGACY_TORCH_HEADER = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
"""The first bytes of ``torch.save``'s legacy format: pickle protocol 2, then torch's
magic number (``torch.serialization.MAGIC_NUMBER``) pickled as a 10-byte integer."""

HEAD_BYTES = 16
"""How many first bytes :func:`binary_format` looks at (the longest signature, 14)."""


@dataclass(frozen=True)
class BinaryFormat:
    """A format found by its first bytes: ``what`` it is (for a message), and either the
    ``command`` that decompresses it, the ``suffixes`` its file is read by, or the
    ``encoding`` (iconv's name) of text that is not UTF-8."""

    what: str
    command: str | None = None
    suffixes: str | None = None
    encoding: str | None = None


_SIGNATURES = (
    (b"\x1f\x8b", BinaryFormat("gzip-compressed", command="gunzip -c")),
    (b"BZh", BinaryFormat("bzip2-compressed", command="bunzip2 -c")),
    (b"\xfd7zXZ\x00", BinaryFormat("xz-compressed", command="xz -dc")),
    (b"\x28\xb5\x2f\xfd", BinaryFormat("zstd-compressed", command="zstd -dc")),
    (
        ZIP_HEADER,
        BinaryFormat(
            "a zip archive (an .npz, or a .pt written by torch.save)", suffixes=".npz or .pt"
        ),
    ),
    (b"\x93NUMPY", BinaryFormat("a .npy array", suffixes=".npy")),
    (LEGACY_TORCH_HEADER, BinaryFormat("a .pt in torch's legacy format", suffixes=".pt")),
    (b"PAR1", BinaryFormat("a Parquet file", suffixes=".parquet")),
    (b"ARROW1", BinaryFormat("an Arrow IPC (Feather) file", suffixes=".arrow or .feather")),
    (b"\xff\xff\xff\xff", BinaryFormat("an Arrow IPC stream", suffixes=".arrow")),
    # text with a byte-order mark other than UTF-8's (Windows PowerShell 5's `>` writes
    # UTF-16): its NUL bytes were parsed as cells ("Expected 4 columns, got 1: \x00");
    # UTF-32 LE starts with UTF-16 LE's mark, so it is looked for first
    (b"\xff\xfe\x00\x00", BinaryFormat("UTF-32 text", encoding="UTF-32")),
    (b"\x00\x00\xfe\xff", BinaryFormat("UTF-32 text", encoding="UTF-32")),
    (b"\xff\xfe", BinaryFormat("UTF-16 text", encoding="UTF-16")),
    (b"\xfe\xff", BinaryFormat("UTF-16 text", encoding="UTF-16")),
)
"""First bytes, and the format they start."""

_SAFETENSORS = BinaryFormat("a .safetensors file", suffixes=".safetensors")
_SAFETENSORS_HEADER_LIMIT = 100_000_000
"""safetensors' own bound on its JSON header's size (bytes)."""


def binary_format(head: bytes) -> BinaryFormat | None:
    """The format whose signature ``head`` (an input's first bytes) starts with, or None.

    A ``.safetensors`` file starts with its JSON header's size (8 bytes, little-endian,
    at most 100 MB) and then ``{``; in text, those 8 bytes read as a number above 2**53."""
    for magic, found in _SIGNATURES:
        if head.startswith(magic):
            return found
    size = int.from_bytes(head[:8], "little")
    if len(head) > 8 and head[8:9] == b"{" and size <= _SAFETENSORS_HEADER_LIMIT:
        return _SAFETENSORS
    return None


def not_csv(
    where: str, found: BinaryFormat, path: str | None = None, *, inner: str | None = None
) -> str:
    """The one-line refusal of a CSV input (``path``, or standard input when None) that
    is ``found``, without the ``where: `` prefix's colon: what it is and what to do.

    ``inner`` is the name a compressed ``path`` has decompressed when that names a
    format other than CSV (``preds.npy`` of ``preds.npy.gz``): such a file is
    decompressed to that name, never piped, since ``-`` reads a CSV only (the advice
    "gunzip -c preds.npy.gz | crossent report -" was refused as "standard input holds a
    .npy array, not CSV text")."""
    if found.encoding is not None:
        convert = f"iconv -f {found.encoding} -t UTF-8"
        if path is None:
            return (
                f"{where} is {found.what}, not UTF-8; convert it in the pipe (... | "
                f"{convert} | crossent report - ...)"
            )
        return (
            f"{where}: is {found.what}, not UTF-8; save it as UTF-8, or convert it in a "
            f"pipe: {convert} {shlex.quote(path)} | crossent report - ..."
        )
    if found.command is not None:
        if path is None:
            return (
                f"{where} is {found.what}, which is not read; decompress it in the pipe "
                f"(... | {found.command} | crossent report - ...)"
            )
        if inner is not None:
            return (
                f"{where}: is {found.what}, which is not read; decompress it first: "
                f"{found.command} {shlex.quote(path)} > {shlex.quote(inner)}, then give "
                f"{shlex.quote(inner)}"
            )
        return (
            f"{where}: is {found.what}, which is not read; decompress it, or pipe it as a "
            f"CSV: {found.command} {shlex.quote(path)} | crossent report - ..."
        )
    if path is None:
        return (
            f"{where} holds {found.what}, not CSV text; '-' reads a CSV only: give the "
            f"file's path, named {found.suffixes}"
        )
    return f"{where}: holds {found.what}, not CSV text; name the file {found.suffixes}"
