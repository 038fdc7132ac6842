"""What the small-call tests of the soft-target loss and distillation share (issue 13).

Both shortcuts (``_small_targets``, ``_small_distill``) are tested the same way: the
shortcut is called directly and must answer, with the full path's loss and gradient bit
for bit; bad calls must give the full path's outcome (its error, warning or value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crossent.errors import InputError

from tolerances import assert_identical

Shortcut = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def same_bits(actual: Any, expected: Any) -> None:
    """:func:`assert_identical`, and the same bytes (a -0.0 is not a 0.0)."""
    assert_identical(actual, expected)
    for got, want in zip(np.atleast_1d(actual), np.atleast_1d(expected), strict=True):
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def check_shortcuts(
    shortcuts: tuple[Shortcut, Shortcut],
    full: Callable[..., tuple[Any, Any]],
    arrays: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
) -> None:
    """The ``(loss, gradient)`` shortcuts answer ``arrays`` (not None) with what ``full``
    (the full path's loss and gradient) gives, bit for bit."""
    expected = full(*arrays, **options)
    for shortcut, want in zip(shortcuts, expected, strict=True):
        got = shortcut(arrays, dict(options))
        assert got is not None, shortcut.__name__
        same_bits(got, want)


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The error (or warning, an error under the suite's filterwarnings) a call raises,
    or its value's bytes."""
    try:
        value = function(*args, **kwargs)
    except (InputError, TypeError, RuntimeWarning) as error:
        return type(error), str(error)
    return "value", repr(value) + str(np.asarray(value, dtype=np.float64).tobytes())


def same_outcomes(
    public: tuple[Callable[..., Any], Callable[..., Any]],
    full: tuple[Callable[..., Any], Callable[..., Any]],
    arrays: tuple[np.ndarray, np.ndarray],
    kwargs: dict[str, Any],
) -> None:
    """Each public function's outcome is its full path's, validating as ``kwargs`` say
    and (NumPy's warnings ignored) without validation."""
    for function, reference in zip(public, full, strict=True):
        assert outcome(function, *arrays, **kwargs) == outcome(reference, *arrays, **kwargs)
        with np.errstate(all="ignore"):
            unchecked = {**kwargs, "validate": False}
            assert outcome(function, *arrays, **unchecked) == outcome(
                reference, *arrays, **unchecked
            )
