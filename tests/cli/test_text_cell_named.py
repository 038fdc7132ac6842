"""Which cell of a text class column is named (mutation pass 7, ``cli._tables._text_cell``).

Empty cells (None) are passed over, not the end of the search, and a ``large_string``
column is searched as a ``string`` one. Guards the mutants ``continue`` -> ``break``
and ``is_large_string`` dropped (each seen surviving
``test_issue13_hostile_eighth_pass.py``).
"""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow")

from crossent.cli._tables import _text_cell  # noqa: E402


@pytest.mark.parametrize("kind", ["string", "large_string"])
def test_the_first_text_cell_after_empty_ones_is_named(kind: str) -> None:
    column = pa.array([None, "0.5", None, "-1.#INF", "x"], type=getattr(pa, kind)())
    batch = pa.record_batch([column], names=["b"])
    assert _text_cell(batch, "b") == " (row 3 holds '-1.#INF', not a number)"
