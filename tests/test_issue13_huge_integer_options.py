"""A Python integer past float64's range as a float option is refused by name.

Hostile pass 8: ``temperature=10**400`` (or ``base``, ``gamma``, ``alpha``, ``margin``,
``eps``, ``label_smoothing``, ...) raised ``OverflowError: int too large to convert to
float`` from ``float(value)`` in the option checks, not crossent's ``InputError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

Z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
Y = np.array([0, 2])
T = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])

CASES: list[tuple[Callable[..., Any], tuple[Any, ...], str]] = [
    (crossent.softmax_cross_entropy, (Z, Y), "temperature"),
    (crossent.softmax_cross_entropy, (Z, Y), "z_loss"),
    (crossent.softmax_cross_entropy, (Z, Y), "label_smoothing"),
    (crossent.softmax_cross_entropy_grad, (Z, Y), "soft_cap"),
    (crossent.softmax_cross_entropy_with_targets, (Z, T), "base"),
    (crossent.softmax_focal_loss, (Z, Y), "gamma"),
    (crossent.poly1_cross_entropy, (Z, Y), "epsilon"),
    (crossent.multiclass_hinge_loss, (Z, Y), "margin"),
    (crossent.sigmoid_focal_loss, (Z, T), "alpha"),
    (crossent.distillation_loss, (Z, Z), "temperature"),
    (crossent.cross_entropy, (T, T), "eps"),
    (crossent.entropy, (T,), "base"),
    (crossent.surprisal, (T,), "base"),
]


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize(
    ("f", "args", "option"), CASES, ids=[f"{f.__name__}-{o}" for f, _, o in CASES]
)
def test_an_integer_past_the_float_range_is_an_input_error(
    f: Callable[..., Any], args: tuple[Any, ...], option: str, sign: int
) -> None:
    with pytest.raises(crossent.InputError, match=f"`{option}`"):
        f(*args, **{option: sign * 10**400})
