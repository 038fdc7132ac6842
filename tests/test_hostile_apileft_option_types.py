"""Hostile pass: ``axis``, ``ignore_index`` and ``base`` of the wrong Python type (a
tuple, a float, a bool, a string) raise :class:`~crossent.InputTypeError` (a
``TypeError``), as ``validate`` and the other type checks do; on main (afc1e53) they
raised ``InputError`` (a ``ValueError``). Values of the right type out of range still
raise ``InputError``. Fails on main for each wrong type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_P = np.array([[0.25, 0.75], [0.5, 0.5]])
_Z = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
_Y = np.array([0, 2])

_CALLS: dict[str, Callable[..., Any]] = {
    "entropy": lambda **k: crossent.entropy(_P, **k),
    "cross_entropy": lambda **k: crossent.cross_entropy(_P, _P, **k),
    "kl_divergence": lambda **k: crossent.kl_divergence(_P, _P, **k),
    "softmax_cross_entropy": lambda **k: crossent.softmax_cross_entropy(_Z, _Y, **k),
    "softmax_cross_entropy_grad": lambda **k: crossent.softmax_cross_entropy_grad(_Z, _Y, **k),
    "multiclass_hinge_loss": lambda **k: crossent.multiclass_hinge_loss(_Z, _Y, **k),
}
_WRONG = [(0,), 1.0, True, "1"]


@pytest.mark.parametrize("name", list(_CALLS))
@pytest.mark.parametrize("value", _WRONG, ids=repr)
def test_axis_of_the_wrong_type_is_a_type_error(name: str, value: object) -> None:
    with pytest.raises(crossent.InputTypeError, match="`axis` must be an integer"):
        _CALLS[name](axis=value)


@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "softmax_cross_entropy"])
@pytest.mark.parametrize("value", [(2,), True, "2"], ids=repr)
def test_base_of_the_wrong_type_is_a_type_error(name: str, value: object) -> None:
    with pytest.raises(crossent.InputTypeError, match="`base` must be a positive number"):
        _CALLS[name](base=value)


@pytest.mark.parametrize(
    "name", ["softmax_cross_entropy", "softmax_cross_entropy_grad", "multiclass_hinge_loss"]
)
@pytest.mark.parametrize("value", [(1,), 1.0, True, "1"], ids=repr)
def test_ignore_index_of_the_wrong_type_is_a_type_error(name: str, value: object) -> None:
    with pytest.raises(crossent.InputTypeError, match="`ignore_index` must be an integer"):
        _CALLS[name](ignore_index=value)


def test_values_of_the_right_type_out_of_range_stay_value_errors() -> None:
    with pytest.raises(crossent.InputError, match="out of range"):
        crossent.entropy(_P, axis=5)
    with pytest.raises(crossent.InputError, match="other than 1"):
        crossent.entropy(_P, base=1)
    with pytest.raises(crossent.InputError, match="other than 1"):
        crossent.entropy(_P, base=-2.0)
