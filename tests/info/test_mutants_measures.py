"""Tests that kill the surviving mutants of ``crossent/info/_measures.py`` (tests/MUTATION.md).

Each error must name the argument the caller passed; the mutants renamed it (``XXpXX``).
Numbers are mutmut 2.5.1's in the recorded (partial) run.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError, InputTypeError

P = np.array([0.25, 0.75])


@pytest.mark.parametrize("measure", [crossent.entropy, crossent.perplexity])
def test_mutants_measures_bad_p_form_names_p_form(measure: object) -> None:
    """Mutant 1: the one-sided path names ``p_form``."""
    with pytest.raises(InputError, match=r"^`p_form` must be one of"):
        measure(P, p_form="bad")  # type: ignore[operator]


def test_mutants_measures_bad_axis_names_p() -> None:
    """Mutant 5: an axis out of range names the array ``p``."""
    with pytest.raises(InputError, match=r"^`axis` 3 is out of range for `p` with 1 dimensions$"):
        crossent.entropy(P, axis=3)


def test_mutants_measures_complex_p_names_p() -> None:
    """Mutant 7: a complex ``p`` is refused by name."""
    with pytest.raises(InputTypeError, match=r"^`p` must be real numbers; got dtype complex128$"):
        crossent.entropy(P.astype(complex))
