"""Writing an output file without ever destroying one: atomically, or directly to a device.

The one file writer of crossent, shared by ``Report.to_html(path)`` /
``ReportComparison.to_html(path)`` and the CLI's ``--output`` (whose own check that the
output is not an input stays in ``crossent.cli._files``).

* A regular file (new, or replacing one) is written to a short-named temporary file in the
  destination's own folder (the same file system, so the final ``os.replace`` is atomic; a
  temporary file in TMPDIR would need a rename across file systems, which fails), and
  renamed over the destination only when it is complete.  The new file gets the mode of the
  file it replaces, and its owner and group where this process may give them, or the
  umask's mode (``0o666 & ~umask``) when there was none.
* A symbolic link keeps its place: the file it points to is replaced.
* A regular file that this process may not write (``chmod a-w``, as its owner's
  protection) is refused (:func:`refuse_read_only`): a rename needs only the folder's
  permission, so it was replaced without a word, where a shell's ``>`` says "Permission
  denied".
* A character device (``/dev/null``, a terminal) is written to directly: renaming over it
  would replace the device with a regular file.  A FIFO is written to directly only while
  a process reads it (it is opened without waiting: opened plainly, a FIFO nobody reads
  blocked the write forever); one that nobody reads is refused.  A socket or a block
  device (a disk, which the page would overwrite) is refused.
* A name of one of this process's open descriptors (``/dev/stdout``, ``/dev/stderr``,
  ``/dev/fd/N``, ``/proc/self/fd/N``) is written through that descriptor, whatever it is
  open on: with standard output appended to a file (``>> log``), renaming over the
  link's target replaced the whole file by the page (its earlier content lost, and the
  text printed after it went to the replaced file), and opening it afresh would
  truncate it.
  When that descriptor is standard output or error and Python's stream for it is closed
  (``2>&-``: ``sys.stderr`` is None, or the CLI's stream that drops what it is given),
  the path is refused (:func:`refuse_closed_stream`): the page was lost, and the CLI
  said "HTML report written to /dev/stderr", exit 0.
* Every error is an :class:`~crossent.InputError` that names the caller's path, never the
  temporary file.  Text is written as UTF-8, a lone surrogate (a file name that is not
  UTF-8) as its backslash escape (:data:`_ERRORS`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import sys
from pathlib import Path

from .errors import InputError

__all__ = ["refuse_closed_stream", "refuse_read_only", "refuse_special", "write_atomically"]

_TEMPORARY_PREFIX = ".crossent-"
"""Temporary names are ``.crossent-<16 hex digits>.tmp`` (31 bytes): short whatever the
destination's name, so any name the file system accepts (up to 255 bytes) works."""


_ERRORS = "backslashreplace"
"""How text that is not Unicode is written: a file name of bytes that are not UTF-8 is
held by Python as lone surrogates (``b"a\\xff.npz"`` is ``"a\\udcff.npz"``), which
UTF-8 cannot encode; written as ``\\udcff``, as Python shows it on standard error, the
page is written instead of failing with ``UnicodeEncodeError``."""


def _error(path: Path, exc: OSError) -> InputError:
    return InputError(f"{path}: cannot write ({exc.strerror or exc})")


def _no_new_files(path: Path, folder: Path) -> InputError:
    """The error for a folder in which no file can be created although it exists (a
    virtual file system: ``/proc``, ``/sys``), where creating one fails with ``ENOENT``:
    ``--output /proc/version`` said "cannot write (No such file or directory)" of a file
    that exists."""
    return InputError(
        f"{path}: cannot write: the folder {folder} takes no new files (the page is written "
        "to a new file beside the output, then renamed over it); choose another --output"
    )


_SPECIAL = (
    (stat.S_ISDIR, "is a directory; the output needs a file name"),
    (stat.S_ISSOCK, "is a socket, not a file; the output needs a file name"),
    (stat.S_ISBLK, "is a block device (a disk), not a file; the output needs a file name"),
)
"""What an existing output path must not be, with why (a FIFO is said when opened)."""


def refuse_special(path: Path, mode: int) -> None:
    """Raise :class:`~crossent.InputError` when ``mode`` (of the existing ``path``, links
    followed) is a directory, a socket or a block device: none can take a page."""
    for test, why in _SPECIAL:
        if test(mode):
            raise InputError(f"{path}: {why}")


def refuse_read_only(path: Path, mode: int) -> None:
    """Raise :class:`~crossent.InputError` when ``path`` (links followed), of ``mode``, is
    a regular file that this process may not write: it is kept, not replaced by a rename
    (which needs only the folder's permission).  Root may write any file, and is not
    refused."""
    if stat.S_ISREG(mode) and not os.access(path, os.W_OK):
        raise InputError(
            f"{path}: is read-only (mode {stat.S_IMODE(mode):#o}), so it is kept; make it "
            "writable (chmod u+w) or write to another file"
        )


_STANDARD_STREAMS = {
    1: ("stdout", "standard output", ">&-"),
    2: ("stderr", "standard error", "2>&-"),
}


def refuse_closed_stream(path: Path) -> None:
    """Raise :class:`~crossent.InputError` when ``path`` names standard output or error
    (``/dev/stderr``, ``/dev/fd/2``, ...) and Python's stream for it is closed: None, or a
    stream whose ``dropped`` attribute is true (the CLI's for a closed ``2>&-``).  Its
    descriptor is closed, or another file reuses its number: the page would be lost."""
    descriptor = _descriptor(path)
    if descriptor not in _STANDARD_STREAMS:
        return
    name, said, closing = _STANDARD_STREAMS[descriptor]
    stream = getattr(sys, name)
    if stream is None or getattr(stream, "dropped", False):
        raise InputError(
            f"{path}: {said} is closed ({closing}), so the page would be lost; give a file "
            "name, or leave it open"
        )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either untouched or complete.

    See the module docstring for devices, links and modes.  On any failure, a signal
    included (KeyboardInterrupt, or the CLI's SIGTERM exception), the temporary file is
    removed and an :class:`~crossent.InputError` names ``path``.
    """
    descriptor = _descriptor(path)
    if descriptor is not None:
        refuse_closed_stream(path)
        _write_to_descriptor(path, descriptor, text)
        return
    try:
        existing = os.stat(path)  # through links: /dev/stdout is a link to a pipe or tty
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise _error(path, exc) from exc
    if existing is not None:
        refuse_special(path, existing.st_mode)
        refuse_read_only(path, existing.st_mode)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_directly(path, text)
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():  # a dangling link's folder is its target's, not path's
        shown = target.parent if path.is_symlink() else path.parent
        raise InputError(f"{path}: the folder {shown} does not exist")
    try:
        descriptor, temporary = _create_temporary(target.parent, existing)
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # the folder is there (above): it takes no new file
            raise _no_new_files(path, target.parent) from exc
        raise _error(path, exc) from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", errors=_ERRORS) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise _error(path, exc) from exc
        raise


def _create_temporary(folder: Path, existing: os.stat_result | None) -> tuple[int, Path]:
    """An exclusive new file in ``folder``: with the owner, group and mode of the
    ``existing`` file it will replace, else the umask's mode.

    The owner and group are kept where this process may set them (root, or a group it
    is in; else the new file is its own): root's report over a user's file made it
    root's, which the user could no longer write.  They are set before the mode, which
    a change of owner would clear the set-user-ID bit of."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = folder / f"{_TEMPORARY_PREFIX}{secrets.token_hex(8)}.tmp"
        try:
            descriptor = os.open(temporary, flags, 0o666)  # the umask applies
        except FileExistsError:
            continue
        if existing is not None:
            try:
                _keep_owner(descriptor, existing)
                os.chmod(temporary, stat.S_IMODE(existing.st_mode))
            except BaseException:
                os.close(descriptor)
                os.unlink(temporary)
                raise
        return descriptor, temporary
    raise FileExistsError(17, "no free temporary name", str(folder))


def _keep_owner(descriptor: int, existing: os.stat_result) -> None:
    """Give the open new file ``existing``'s owner and group, as far as this process may
    (:func:`_create_temporary`)."""
    if not hasattr(os, "fchown"):  # (Windows: no owners to keep)
        return
    created = os.fstat(descriptor)
    for owner, group in ((existing.st_uid, existing.st_gid), (-1, existing.st_gid)):
        if (owner in (-1, created.st_uid)) and group == created.st_gid:
            return
        try:
            os.fchown(descriptor, owner, group)
            return
        except OSError:  # not root (EPERM): the group alone, if this user is in it
            continue


def _write_directly(path: Path, text: str) -> None:
    """Write to a device or FIFO in place (there is nothing to replace atomically).

    The file is opened without waiting (``O_NONBLOCK``): a FIFO that no process reads
    answers ``ENXIO`` at once, instead of blocking the open forever; the writes that
    follow wait again, as on any pipe."""
    flags = os.O_WRONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and _is_fifo(path):
            raise InputError(
                f"{path}: is a FIFO (named pipe) that no process reads; start its reader "
                "first, or give a file name"
            ) from exc
        raise _error(path, exc) from exc
    try:
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "w", encoding="utf-8", errors=_ERRORS, closefd=False) as handle:
            handle.write(text)
    except OSError as exc:
        raise _error(path, exc) from exc
    finally:
        os.close(descriptor)


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


_DESCRIPTOR_NAME = re.compile(r"/(?:proc/(self|\d+)|dev)/fd/(\d+)")
"""The names of an open descriptor N: ``/dev/fd/N``, ``/proc/self/fd/N``, ``/proc/PID/fd/N``."""


def _descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names, following its links one by one
    (``/dev/stdout`` -> ``/proc/self/fd/1``), or None for any other path.  The last link,
    ``/proc/self/fd/N`` -> the open file, is not followed: it is the descriptor's."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        found = _DESCRIPTOR_NAME.fullmatch(current)
        if found is not None:
            process = found.group(1)
            ours = process is None or process in ("self", str(os.getpid()))
            return int(found.group(2)) if ours else None
        try:
            target = os.readlink(current)
        except OSError:  # not a link (or no such path): an ordinary file name
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return None


def _write_to_descriptor(path: Path, descriptor: int, text: str) -> None:
    """Write ``text`` through the open ``descriptor`` (standard output and error through
    Python's streams, so that it keeps its place among what they print)."""
    stream = {1: sys.stdout, 2: sys.stderr}.get(descriptor)
    try:
        if stream is not None:
            stream.write(text)
            stream.flush()
            return
        data = memoryview(text.encode("utf-8", _ERRORS))
        while data:
            data = data[os.write(descriptor, data) :]
    except OSError as exc:
        raise _error(path, exc) from exc
