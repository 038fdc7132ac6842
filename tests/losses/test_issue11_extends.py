"""Issue 11: a loss family's prepare step declares only its own options (``_batch.extends``).

The shared keyword group (``_batch.labelled_batch``) is declared once; the composed
prepare step must take exactly the composed signature and pass each keyword to the
side that declares it.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import crossent
from crossent.losses._batch import extends


def _shared(a: object, /, *, axis: int = -1, base: float | None = None) -> tuple[object, ...]:
    return (a, axis, base)


@extends(_shared, hide=("base",))
def _own(given: tuple[object, ...], /, *, gamma: float = 2.0) -> tuple[object, ...]:
    return (*given, gamma)


def test_issue11_extends_composes_signature_and_routes_keywords() -> None:
    assert str(inspect.signature(_own)) == (
        "(a: 'object', /, *, gamma: 'float' = 2.0, axis: 'int' = -1) -> 'tuple[object, ...]'"
    )
    assert _own("x") == ("x", -1, None, 2.0)
    assert _own("x", axis=0, gamma=1.0) == ("x", 0, None, 1.0)


@pytest.mark.parametrize("keyword", ["base", "nonsense"])
def test_issue11_extends_rejects_hidden_and_unknown_keywords_naming_the_family(
    keyword: str,
) -> None:
    with pytest.raises(
        TypeError, match=rf"^_own\(\) got an unexpected keyword argument '{keyword}'"
    ):
        _own("x", **{keyword: 1})


@pytest.mark.parametrize(
    ("loss", "keyword"),
    [
        (crossent.poly1_cross_entropy, "base"),
        (crossent.multiclass_hinge_loss, "weight"),
        (crossent.multiclass_hinge_loss_grad, "base"),
        (crossent.sigmoid_focal_loss, "pos_weight"),
    ],
)
def test_issue11_families_still_refuse_the_keywords_they_do_not_take(
    loss: object, keyword: str
) -> None:
    assert callable(loss)
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
        loss(np.zeros((2, 3)), np.array([0, 1]), **{keyword: None})
