"""A raw write that takes no bytes is an error, not a retry (mutation pass 7).

``cli._pipe._WholeWrites`` writes the rest of a short write again; a write that
returns 0 or ``None`` (nothing taken: a non-blocking file that would block) raises
``OSError(EIO)`` at once. Guards the mutant ``if not written`` -> ``if written is
None``, under which a file that returns 0 was written again and again (a hang).
"""

from __future__ import annotations

import errno
import io

import pytest

from crossent.cli._pipe import _WholeWrites


class _TakesNothing(io.RawIOBase):
    """A raw file whose write takes ``taken`` bytes (0 or None); a second try fails."""

    def __init__(self, taken: int | None) -> None:
        super().__init__()
        self.taken = taken
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int | None:
        self.calls += 1
        assert self.calls == 1, "written again after a write that took nothing"
        return self.taken


@pytest.mark.parametrize("taken", [0, None], ids=["zero", "none"])
def test_a_write_that_takes_nothing_is_an_error(taken: int | None) -> None:
    raw = _TakesNothing(taken)
    with pytest.raises(OSError, match="took no more bytes") as caught:
        _WholeWrites(raw).write(b"report")
    assert caught.value.errno == errno.EIO
    assert raw.calls == 1
