"""Mutation pass (branch ``mutation4``) over ``_report/_compute._gap_note``.

Cross-fitting can set both flags: one training fold with every label top-ranked (its
fit runs to the smallest temperature) and another whose fit runs to the largest.  The
separated fold is the cause the note must name (no finite temperature exists for it);
the mutant ``flattened and not separated`` -> ``flattened`` named the other and passed
every report test.
"""

from __future__ import annotations

from crossent._report import _compute


def test_a_separated_fold_is_named_before_a_flattened_one() -> None:
    note = _compute._gap_note(True, True)
    assert "every label top-ranked" in note
    assert "tell next to nothing" not in note
    assert "tell next to nothing" in _compute._gap_note(False, True)
    assert "NLL-optimal temperature is at a bound" in _compute._gap_note(False, False)
