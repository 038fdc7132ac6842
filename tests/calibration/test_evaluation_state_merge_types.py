"""``EvaluationState.merge`` and ``+`` with something other than a state: the project's
error conventions (a wrong type is an ``InputTypeError``; ``+`` defers to Python)."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration import EvaluationState
from crossent.errors import InputError, InputTypeError


def _state() -> EvaluationState:
    state = EvaluationState(classes=3)
    state.update(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), np.array([0, 2]))
    return state


@pytest.mark.parametrize("other", [3, None, "state", 2.5], ids=["int", "none", "str", "float"])
def test_merge_with_a_non_state_is_an_input_type_error_naming_other(other: object) -> None:
    with pytest.raises(InputTypeError, match=r"`other`.*EvaluationState") as caught:
        _state().merge(other)  # type: ignore[arg-type]
    assert not isinstance(caught.value, InputError)  # (not a subclass: the convention)
    assert type(other).__name__ in str(caught.value)


def test_add_of_a_non_state_returns_not_implemented_and_python_raises() -> None:
    state = _state()
    assert state.__add__(3) is NotImplemented
    with pytest.raises(TypeError, match="unsupported operand") as caught:
        state + 3  # type: ignore[operator]
    assert not isinstance(caught.value, crossent.errors.CrossentError)


def test_add_defers_to_the_right_operand() -> None:
    """NotImplemented lets the other operand's ``__radd__`` answer (it was never asked)."""

    class Collector:
        def __radd__(self, other: object) -> str:
            return "collected"

    assert _state() + Collector() == "collected"  # type: ignore[operator]


def test_add_of_two_states_still_merges() -> None:
    a, b = _state(), _state()
    assert (a + b).n == a.merge(b).n == 4
