"""Issue 11: the softmax keyword group is declared once (``_batch.LossKeywords``).

``labelled_batch``, ``prepare_softmax_labels`` and ``prepare_softmax_targets`` take
their keywords from one declaration through ``_batch.keywords_from``. These tests pin
what that must not change: the three signatures as main spelled them out (the public
losses' are pinned in ``tests/test_issue11_public_signatures.json``), each keyword
reaching the entry point, Python's own ``TypeError`` for a call that does not fit
(oracle: a plain function with the same signature), and the fused path checking no
logits before its kernel.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from crossent.losses import _batch, _softmax
from crossent.losses._batch import LossKeywords, keywords_from, labelled_batch
from crossent.losses._softmax import prepare_softmax_labels, prepare_softmax_targets

_GROUP = (
    "axis: 'int' = -1, weight: 'object' = None, ignore_index: 'int | None' = None, "
    "label_smoothing: 'float' = 0.0, reduction: 'str' = 'mean', temperature: 'float' = 1.0, "
    "z_loss: 'float' = 0.0, soft_cap: 'float | None' = None, base: 'float | None' = None, "
    "validate: 'bool' = True"
)

# As main spelled them out before the group was declared once.
EXPECTED = {
    labelled_batch: (
        "(logits: 'object', labels: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, ignore_index: 'int | None' = None, "
        "reduction: 'str' = 'mean', base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'LabelBatch'"
    ),
    prepare_softmax_labels: (
        f"(logits: 'object', labels: 'object', /, *, {_GROUP}, fused: 'bool' = True) "
        "-> 'SoftmaxProblem'"
    ),
    prepare_softmax_targets: (
        "(logits: 'object', targets: 'object', /, *, axis: 'int' = -1, "
        "weight: 'object' = None, label_smoothing: 'float' = 0.0, "
        "reduction: 'str' = 'mean', temperature: 'float' = 1.0, z_loss: 'float' = 0.0, "
        "soft_cap: 'float | None' = None, base: 'float | None' = None, "
        "validate: 'bool' = True) -> 'SoftmaxProblem'"
    ),
}


@pytest.mark.parametrize("function", list(EXPECTED), ids=lambda f: f.__name__)
def test_issue11_keyword_group_keeps_the_signatures(function: Any) -> None:
    assert str(inspect.signature(function)) == EXPECTED[function]
    signature = inspect.signature(function)
    assert function.__annotations__ == {
        **{p.name: p.annotation for p in signature.parameters.values()},
        "return": signature.return_annotation,
    }


@keywords_from(LossKeywords, hide=("weight", "base"))
def _own(a: object, b: object, given: LossKeywords, /, *, fused: bool = True) -> tuple[Any, ...]:
    return (a, b, given, fused)


def _native(
    a: object,
    b: object,
    /,
    *,
    axis: int = -1,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    validate: bool = True,
    fused: bool = True,
) -> None:
    """The oracle: what Python itself says for ``_own``'s public signature."""


def test_issue11_keywords_from_composes_and_routes() -> None:
    native = inspect.signature(_native).replace(return_annotation="tuple[Any, ...]")
    assert str(inspect.signature(_own)) == str(native)
    a, b, given, fused = _own(1, 2)
    assert (a, b, given, fused) == (1, 2, LossKeywords(), True)
    a, b, given, fused = _own(1, 2, z_loss=0.5, fused=False, axis=0, validate=False)
    assert given == LossKeywords(axis=0, z_loss=0.5, validate=False)
    assert fused is False


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3), {"axis": 0}),
    ((1, 2, 3), {"axis": 0, "fused": False}),
    ((1, 2, 3), {"bogus": 0}),
    ((1,), {"b": 2}),
    ((), {"a": 1, "b": 2}),
    ((1,), {"bogus": 0, "b": 2}),
    ((1, 2), {"bogus": 0, "other": 1}),
    ((1, 2), {"weight": None}),  # hidden
    ((1, 2), {"base": 2.0, "fused": True}),  # hidden, after one of own's
    ((1, 2), {"given": None}),
    ((1,), {"axis": 0}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_issue11_keywords_from_raises_what_python_raises(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError) as want:
        _native(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        _own(*args, **kwargs)
    assert str(got.value) == str(want.value).replace("_native()", "_own()")


def test_issue11_keyword_group_reaches_the_entry_points() -> None:
    """Every keyword changes what it should (against the keyword spelled the default way)."""
    rng = np.random.default_rng(11)
    z = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 2, 3])
    t = rng.dirichlet(np.ones(4), size=5)
    base = prepare_softmax_labels(z, y).loss()
    assert prepare_softmax_labels(z.T, y, axis=0).loss() == base
    assert prepare_softmax_labels(z, y, ignore_index=3).batch.active is not None
    for keyword, value in [
        ("weight", np.array([1.0, 2.0, 3.0, 4.0])),
        ("label_smoothing", 0.1),
        ("temperature", 2.0),
        ("z_loss", 0.1),
        ("soft_cap", 1.0),
        ("base", 2.0),
    ]:
        assert prepare_softmax_labels(z, y, **{keyword: value}).loss() != base, keyword
        plain = prepare_softmax_targets(z, t).loss()
        assert prepare_softmax_targets(z, t, **{keyword: value}).loss() != plain, keyword
    assert prepare_softmax_labels(z, y, reduction="sum").loss() == pytest.approx(5 * base)
    assert prepare_softmax_targets(z, t, reduction="none").loss().shape == (5,)
    bad = np.array([0, 9, 1, 2, 3])
    with pytest.raises(ValueError, match="labels"):
        prepare_softmax_labels(z, bad)
    assert prepare_softmax_labels(z.astype(np.float32), y, fused=False).fast_logits is None


def test_issue11_fused_path_checks_no_logits_before_its_kernel(monkeypatch) -> None:
    """The fused path validates the logits in its kernel: the generic check (the logits
    pass of ``label_batch``) must not run first."""
    if not _softmax._fast_path_applies(np.zeros((2, 3), np.float32), -1, _batch.LossOptions()):
        pytest.skip("no fused path")

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the generic logits check ran")

    monkeypatch.setattr(_batch, "prepare_logits", fail)
    monkeypatch.setattr(_softmax, "label_batch", fail)
    z = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    problem = prepare_softmax_labels(z, np.array([0, 1, 2, 3, 4, 0]), weight=np.ones(5))
    assert problem.fast_logits is not None
