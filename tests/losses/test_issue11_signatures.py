"""Issue 11: the public losses keep their signatures while their twins share one definition.

Each public loss and its gradient twin is pinned to the literal signature it had before
the loss/gradient twins were derived from one ``prepare`` step (``_batch.prepared_by``):
names, order, defaults, positional-only and keyword-only markers, annotations.
"""

from __future__ import annotations

import doctest
import inspect

import pytest

import crossent
import crossent.losses

EXPECTED = {
    "distillation_loss": (
        "(student_logits: 'object', teacher: 'object', /, *, axis: 'int' = -1, "
        "temperature: 'float' = 1.0, teacher_form: 'str' = 'logits', "
        "direction: 'str' = 'forward', reduction: 'str' = 'mean', "
        "base: 'float | None' = None, validate: 'bool' = True) -> 'Any'"
    ),
    "distillation_loss_grad": (
        "(student_logits: 'object', teacher: 'object', /, *, axis: 'int' = -1, "
        "temperature: 'float' = 1.0, teacher_form: 'str' = 'logits', "
        "direction: 'str' = 'forward', reduction: 'str' = 'mean', "
        "base: 'float | None' = None, validate: 'bool' = True) -> 'Array'"
    ),
    "multiclass_hinge_loss": (
        "(logits: 'object', labels: 'object', /, *, margin: 'float' = 1.0, "
        "variant: 'str' = 'crammer_singer', axis: 'int' = -1, "
        "ignore_index: 'int | None' = None, reduction: 'str' = 'mean', "
        "validate: 'bool' = True) -> 'Any'"
    ),
    "multiclass_hinge_loss_grad": (
        "(logits: 'object', labels: 'object', /, *, margin: 'float' = 1.0, "
        "variant: 'str' = 'crammer_singer', axis: 'int' = -1, "
        "ignore_index: 'int | None' = None, reduction: 'str' = 'mean', "
        "validate: 'bool' = True) -> 'Array'"
    ),
    "poly1_cross_entropy": (
        "(logits: 'object', labels: 'object', /, *, epsilon: 'float' = 1.0, "
        "axis: 'int' = -1, weight: 'object' = None, ignore_index: 'int | None' = None, "
        "reduction: 'str' = 'mean', validate: 'bool' = True) -> 'Any'"
    ),
    "poly1_cross_entropy_grad": (
        "(logits: 'object', labels: 'object', /, *, epsilon: 'float' = 1.0, "
        "axis: 'int' = -1, weight: 'object' = None, ignore_index: 'int | None' = None, "
        "reduction: 'str' = 'mean', validate: 'bool' = True) -> 'Array'"
    ),
    "sigmoid_cross_entropy": (
        "(logits: 'object', targets: 'object', /, *, weight: 'object' = None, "
        "pos_weight: 'object' = None, label_smoothing: 'float' = 0.0, "
        "reduction: 'str' = 'mean', base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Any'"
    ),
    "sigmoid_cross_entropy_grad": (
        "(logits: 'object', targets: 'object', /, *, weight: 'object' = None, "
        "pos_weight: 'object' = None, label_smoothing: 'float' = 0.0, "
        "reduction: 'str' = 'mean', base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Array'"
    ),
    "sigmoid_focal_loss": (
        "(logits: 'object', targets: 'object', /, *, gamma: 'float' = 2.0, "
        "alpha: 'float | None' = None, weight: 'object' = None, "
        "label_smoothing: 'float' = 0.0, reduction: 'str' = 'mean', "
        "base: 'float | None' = None, validate: 'bool' = True) -> 'Any'"
    ),
    "sigmoid_focal_loss_grad": (
        "(logits: 'object', targets: 'object', /, *, gamma: 'float' = 2.0, "
        "alpha: 'float | None' = None, weight: 'object' = None, "
        "label_smoothing: 'float' = 0.0, reduction: 'str' = 'mean', "
        "base: 'float | None' = None, validate: 'bool' = True) -> 'Array'"
    ),
    "softmax_cross_entropy": (
        "(logits: 'object', labels: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, ignore_index: 'int | None' = None, "
        "label_smoothing: 'float' = 0.0, reduction: 'str' = 'mean', "
        "temperature: 'float' = 1.0, z_loss: 'float' = 0.0, "
        "soft_cap: 'float | None' = None, base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Any'"
    ),
    "softmax_cross_entropy_grad": (
        "(logits: 'object', labels: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, ignore_index: 'int | None' = None, "
        "label_smoothing: 'float' = 0.0, reduction: 'str' = 'mean', "
        "temperature: 'float' = 1.0, z_loss: 'float' = 0.0, "
        "soft_cap: 'float | None' = None, base: 'float | None' = None, "
        "validate: 'bool' = True, out: 'Array | None' = None) -> 'Array'"
    ),
    "softmax_cross_entropy_with_targets": (
        "(logits: 'object', targets: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, label_smoothing: 'float' = 0.0, "
        "reduction: 'str' = 'mean', temperature: 'float' = 1.0, z_loss: 'float' = 0.0, "
        "soft_cap: 'float | None' = None, base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Any'"
    ),
    "softmax_cross_entropy_with_targets_grad": (
        "(logits: 'object', targets: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, label_smoothing: 'float' = 0.0, "
        "reduction: 'str' = 'mean', temperature: 'float' = 1.0, z_loss: 'float' = 0.0, "
        "soft_cap: 'float | None' = None, base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Array'"
    ),
    "softmax_focal_loss": (
        "(logits: 'object', labels: 'object', /, *, gamma: 'float' = 2.0, "
        "axis: 'int' = -1, weight: 'object' = None, ignore_index: 'int | None' = None, "
        "reduction: 'str' = 'mean', base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Any'"
    ),
    "softmax_focal_loss_grad": (
        "(logits: 'object', labels: 'object', /, *, gamma: 'float' = 2.0, "
        "axis: 'int' = -1, weight: 'object' = None, ignore_index: 'int | None' = None, "
        "reduction: 'str' = 'mean', base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'Array'"
    ),
}


def test_issue11_every_public_loss_is_pinned() -> None:
    public = {n for n in crossent.losses.__all__ if inspect.isfunction(getattr(crossent.losses, n))}
    assert public == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_issue11_signature_is_unchanged(name: str) -> None:
    assert str(inspect.signature(getattr(crossent, name))) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_issue11_twin_reports_its_own_name_and_module(name: str) -> None:
    function = getattr(crossent, name)
    assert function.__name__ == name
    assert function.__module__.startswith("crossent.losses._")
    assert f"{function.__module__}.{name}" == f"{function.__module__}.{function.__qualname__}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_issue11_twin_examples_are_still_collected_as_doctests(name: str) -> None:
    function = getattr(crossent, name)
    module = inspect.getmodule(function)
    found = {test.name.rsplit(".", 1)[-1] for test in doctest.DocTestFinder().find(module)}
    assert name in found


@pytest.mark.parametrize(
    ("loss", "gradient"),
    [(n.removesuffix("_grad"), n) for n in sorted(EXPECTED) if n.endswith("_grad")],
)
def test_issue11_gradient_twin_documents_every_argument_of_its_loss(
    loss: str, gradient: str
) -> None:
    doc = inspect.getdoc(getattr(crossent, gradient)) or ""
    parameters = doc.split("\nParameters\n----------\n", 1)[1].split("\nReturns\n", 1)[0]
    for argument in inspect.signature(getattr(crossent, loss)).parameters:
        assert argument in parameters, (gradient, argument)
    assert f":func:`{loss}`" in parameters
