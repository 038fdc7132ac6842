"""The options of ``distillation_loss`` and their check, below both of its paths.

``_distill`` (the full path) and ``_small_distill`` (the lean path of small calls, which
``_distill`` imports for its shortcut) both check the options here, in one order and with
one wording, so neither path imports the other.
"""

from __future__ import annotations

from typing import Any

from .._checks import Form, check_choice, check_form, check_scalar
from ._batch import LossOptions, loss_options

__all__ = ["KEYWORDS", "distillation_options"]

KEYWORDS: dict[str, Any] = {
    "axis": -1,
    "temperature": 1.0,
    "teacher_form": "logits",
    "direction": "forward",
    "reduction": "mean",
    "base": None,
    "validate": True,
}
"""The keyword-only parameters of ``_distill.prepare_distillation`` and their defaults
(its signature states them; ``tests/losses/test_issue13_small_distill_options.py`` pins
that the two agree)."""


def distillation_options(
    temperature: float, teacher_form: str, direction: str, reduction: str, base: float | None
) -> tuple[float, Form, str, LossOptions]:
    """The checked options of a call, in the order the full path checks them:
    ``(temperature, teacher_form, direction, options)`` (reduction and unit)."""
    t = check_scalar(temperature, name="temperature", low=0.0, low_open=True)
    form = check_form(teacher_form, name="teacher_form")
    check_choice(direction, ("forward", "reverse"), name="direction")
    return t, form, direction, loss_options(reduction=reduction, base=base)
