"""Issue 13, "Small inputs": a lean call with keywords costs what a default call costs.

``softmax_cross_entropy`` and its gradient keep the settings of a call's keywords
(options, axis, validate) by the keywords' names, values and types
(``_softmax.lean_settings``), so a repeated call with ``reduction="sum"`` or a
temperature does not merge dictionaries and check options again. These tests pin that
the settings are looked up (not recomputed), that values are unchanged, and that the
errors are still the full path's: a bool or float where an int or real is wanted is
not confused with an equal cached value, an unknown keyword is still a ``TypeError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _softmax
from crossent.losses._softmax import prepare_softmax_labels, softmax_gradient

from tolerances import assert_identical

KEYWORDS: list[dict[str, Any]] = [
    {"reduction": "sum"},
    {"reduction": "none", "base": 2},
    {"base": 2, "reduction": "none"},  # the same settings, the other order
    {"temperature": 2.0, "z_loss": 1e-3},
    {"temperature": np.float32(0.5)},
    {"validate": False, "reduction": "parts"},
    {"axis": -1, "validate": True},
    {"axis": 1, "reduction": "mean"},
]


def _inputs(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    return rng.standard_normal((8, 10)).astype(dtype), rng.integers(0, 10, size=8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", KEYWORDS)
def test_issue13_lean_keywords_values_are_the_full_paths(dtype, kwargs) -> None:
    logits, labels = _inputs(dtype)
    problem = prepare_softmax_labels(logits, labels, **kwargs)
    for _ in range(3):  # the first call works the settings out, the others look them up
        assert_identical(crossent.softmax_cross_entropy(logits, labels, **kwargs), problem.loss())
        assert_identical(
            crossent.softmax_cross_entropy_grad(logits, labels, **kwargs),
            softmax_gradient(problem),
        )


def test_issue13_lean_keywords_settings_are_looked_up_not_rechecked(monkeypatch) -> None:
    """A repeated keyword call does not check its options again (before: every call
    merged the keywords into the defaults and went through ``options_of``)."""
    logits, labels = _inputs(np.float32)
    kwargs = {"reduction": "sum", "temperature": 1.5, "z_loss": 1e-4, "base": 2.0}
    want = crossent.softmax_cross_entropy(logits, labels, **kwargs)

    def fail(*args: Any) -> Any:
        raise AssertionError("the options were checked again")

    monkeypatch.setattr(_softmax, "options_of", fail)
    assert_identical(crossent.softmax_cross_entropy(logits, labels, **kwargs), want)
    crossent.softmax_cross_entropy_grad(logits, labels, **kwargs)


def _error(function: Any, *args: Any, **kwargs: Any) -> tuple[type, str]:
    with pytest.raises((InputError, TypeError)) as info:
        function(*args, **kwargs)
    return info.type, str(info.value)


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ({"temperature": 1}, {"temperature": True}),  # 1 == True: a bool is still refused
        ({"z_loss": 0}, {"z_loss": False}),
        ({"axis": -1}, {"axis": -1.0}),  # -1 == -1.0: a float axis is still refused
        ({"axis": 1}, {"axis": True}),
        ({"reduction": "sum"}, {"reduction": "avg"}),
        ({"base": 2}, {"base": 1}),
        ({"temperature": 2.0}, {"temperature": np.nan}),
    ],
)
def test_issue13_lean_keywords_errors_are_the_full_paths(good, bad) -> None:
    """A bad value raises the full path's error, also after an equal good value (of
    another type) was looked up."""
    logits, labels = _inputs(np.float32)
    crossent.softmax_cross_entropy(logits, labels, **good)
    want = _error(prepare_softmax_labels, logits, labels, fused=False, **bad)
    for function in (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad):
        for _ in range(2):
            assert _error(function, logits, labels, **bad) == want


@pytest.mark.parametrize(
    "kwargs",
    [{"foo": 1}, {"reduction": "sum", "foo": 1}, {"fused": True}, {"validate": False, "x": []}],
)
def test_issue13_lean_keywords_unknown_keyword_is_a_type_error(kwargs) -> None:
    logits, labels = _inputs(np.float64)
    name = next(k for k in kwargs if k not in {"reduction", "validate"})
    # (``fused`` is a keyword of the prepare step that the public functions hide)
    want = None if name == "fused" else _error(prepare_softmax_labels, logits, labels, **kwargs)
    for function in (crossent.softmax_cross_entropy, crossent.softmax_cross_entropy_grad):
        for _ in range(2):
            got = _error(function, logits, labels, **kwargs)
            assert got[0] is TypeError
            assert repr(name) in got[1]
            assert want is None or got == want


def test_issue13_lean_keywords_other_options_take_the_full_path() -> None:
    """Keywords the lean path does not handle (smoothing, weights, ignore_index, an
    unhashable value) still give the full path's values."""
    logits, labels = _inputs(np.float64)
    for kwargs in (
        {"label_smoothing": 0.1},
        {"ignore_index": -100, "reduction": "sum"},
        {"weight": np.linspace(0.5, 1.5, 10)},
        {"soft_cap": 30.0},
    ):
        problem = prepare_softmax_labels(logits, labels, **kwargs)
        for _ in range(2):
            got = crossent.softmax_cross_entropy(logits, labels, **kwargs)
            assert_identical(got, problem.loss())


def test_issue13_lean_keywords_cache_is_bounded() -> None:
    logits, labels = _inputs(np.float32)
    for i in range(300):
        crossent.softmax_cross_entropy(logits, labels, temperature=1.0 + i / 1000)
    assert _softmax._cached_settings.cache_info().currsize <= 256
