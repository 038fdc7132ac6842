"""Fixtures of the losses' tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crossent.losses import _widen
from losses.blocked_checks import CLASSES


@pytest.fixture
def widen_blocks(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list[tuple[Any, ...]]]:
    """``set(rows)``: blocks of ``rows`` rows of :data:`CLASSES` classes; the whole call's
    copies (``_widen._widened``) are recorded in the list it returns."""
    copies: list[tuple[Any, ...]] = []
    real = _widen._widened

    def spy(*args: Any) -> Any:
        copies.append(args)
        return real(*args)

    monkeypatch.setattr(_widen, "_widened", spy)

    def set_rows(rows: int) -> list[tuple[Any, ...]]:
        monkeypatch.setattr(_widen, "BLOCK_BYTES", 8 * CLASSES * rows)
        return copies

    return set_rows
