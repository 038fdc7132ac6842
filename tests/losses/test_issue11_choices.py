"""Issue 11: string options of the loss families checked by one helper, wording unchanged."""

from __future__ import annotations

import re

import pytest

import crossent
from crossent._checks import check_choice
from crossent.errors import InputError


def test_issue11_check_choice_lists_every_choice() -> None:
    assert check_choice("b", ("a", "b"), name="x") == "b"
    with pytest.raises(InputError, match=re.escape("`x` must be 'a' or 'b'; got 'c'")):
        check_choice("c", ("a", "b"), name="x")
    with pytest.raises(InputError, match=re.escape("`x` must be 'a', 'b' or 'c'; got 3")):
        check_choice(3, ("a", "b", "c"), name="x")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=re.escape("`x` must be 'a'; got 'b'")):
        check_choice("b", ("a",), name="x")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: crossent.distillation_loss([[1.0, 0.0]], [[0.0, 1.0]], direction="back"),
            "`direction` must be 'forward' or 'reverse'; got 'back'",
        ),
        (
            lambda: crossent.distillation_loss_grad([[1.0, 0.0]], [[0.0, 1.0]], direction=None),
            "`direction` must be 'forward' or 'reverse'; got None",
        ),
        (
            lambda: crossent.multiclass_hinge_loss([[1.0, 0.0]], [0], variant="ww"),
            "`variant` must be 'crammer_singer' or 'weston_watkins'; got 'ww'",
        ),
        (
            lambda: crossent.multiclass_hinge_loss_grad([[1.0, 0.0]], [0], variant="cs"),
            "`variant` must be 'crammer_singer' or 'weston_watkins'; got 'cs'",
        ),
    ],
)
def test_issue11_family_choices_keep_their_messages(call: object, message: str) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()  # type: ignore[operator]
