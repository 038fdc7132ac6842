"""Issue 13, "Small inputs": the small calls of focal, poly-1 and hinge.

``_small_label_families`` answers small NumPy calls of ``softmax_focal_loss``,
``poly1_cross_entropy`` and ``multiclass_hinge_loss`` (and their gradients) without the
full path's objects. These tests prove that each answer is the full path's bit for bit
(type, dtype, shape, bytes and warnings) over random and hard cases, every reduction and
the families' options; that the benchmark's calls are answered by the compiled
functions and never reach the full path; that what the shortcut does not take (other
dtypes, layouts, options, bad inputs) goes to the full path and so raises its errors;
and that the comparison sees a one-ulp error.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest

from crossent.losses import _batch, _small_label_numba
from losses.small_call_paths import fail_on, layouts_not_taken
from losses.small_label_paths import (
    FAMILIES,
    REDUCTIONS,
    Family,
    full_path_outcome,
    hard_cases,
    hybrid_only,
    keywords,
    outcome,
    random_cases,
    spy_compiled,
)

_NAMES = sorted(FAMILIES)


def _calls(family: Family) -> list[tuple[str, Any]]:
    """``(what, function)``: the family's loss and gradient."""
    return [("loss", family.loss), ("grad", family.grad)]


_CASES = {"random": lambda dtype: random_cases(dtype, 24), "hard": hard_cases}


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cases", sorted(_CASES))
def test_issue13_small_label_cases_are_the_full_path_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: type, cases: str
) -> None:
    """Random rows (many near-deterministic) and hard rows, with every option set and
    reduction; the small call answers most of them (the dtypes it takes)."""
    family = FAMILIES[name]
    calls = spy_compiled(monkeypatch)
    count = 0
    for case, logits, labels in _CASES[cases](dtype):
        for own in family.options:
            for shared in REDUCTIONS:
                for _, fn in _calls(family):
                    call = partial(fn, logits, labels, **own, **keywords(logits, shared))
                    expected = full_path_outcome(monkeypatch, call)
                    assert outcome(call) == expected, (case, own, shared)
                    count += 1
    answered = sum(call in family.compiled for call in calls)
    if dtype in family.dtypes:
        assert answered > count // 2
    else:
        assert answered == 0


_BENCHMARK = [(rows, validate) for rows in (1, 8) for validate in (True, False)]


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize(("rows", "validate"), _BENCHMARK)
def test_issue13_small_label_benchmark_calls_take_the_shortcut(
    monkeypatch: pytest.MonkeyPatch, name: str, rows: int, validate: bool
) -> None:
    """The benchmark's calls ((1, 10) and (8, 10) float64 logits, int labels) end in the
    family's compiled loss or gradient and never reach the full path's batch."""
    family = FAMILIES[name]
    rng = np.random.default_rng(rows)
    logits, labels = rng.standard_normal((rows, 10)), rng.integers(0, 10, size=rows)
    expected = [
        full_path_outcome(monkeypatch, partial(fn, logits, labels, validate=validate))
        for _, fn in _calls(family)
    ]
    calls = spy_compiled(monkeypatch)
    fail_on(monkeypatch, _batch, ["label_batch"], expected="the small call")
    for (_, fn), compiled, wanted in zip(_calls(family), family.compiled, expected, strict=True):
        calls.clear()
        assert outcome(partial(fn, logits, labels, validate=validate)) == wanted
        assert calls[-1] == compiled


@pytest.mark.parametrize("name", _NAMES)
def test_issue13_small_label_what_the_shortcut_leaves_reaches_no_compiled_family_call(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Other dtypes and layouts, class weights that are not finite non-negative float64
    arrays of one per class, an ignore_index that is no int, another class axis: the
    full path, and its values."""
    family = FAMILIES[name]
    logits, labels = random_cases(np.float64, 2)[1][1:]
    left: list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]] = [
        (what, z, y, {}) for what, z, y in layouts_not_taken(np.float64)
    ]
    left += [
        ("ignore_index a NumPy integer", logits, labels, {"ignore_index": np.int64(labels[0])}),
        ("ignore_index a bool", logits, labels, {"ignore_index": True}),
        ("axis 0", logits.T.copy(), labels, {"axis": 0}),
        ("a list", logits.tolist(), labels, {}),
    ]
    weights = [np.linspace(0.5, 2.0, 10).tolist(), np.linspace(0.5, 2.0, 10, dtype=np.float32)]
    weights += [np.full(10, np.nan), np.full(10, -1.0), np.full(10, np.inf), np.ones(9)]
    left += [(f"weight {w!r}", logits, labels, {"weight": w}) for w in weights]
    # (float16/float32 logits: computed as float64 (issue 13), whose small calls take them;
    # tests/losses/test_issue13_generic_float32.py)
    calls = spy_compiled(monkeypatch)
    for what, z, y, kw in left:
        for _, fn in _calls(family):
            call = partial(fn, z, y, **kw)
            assert outcome(call) == full_path_outcome(monkeypatch, call), what
    assert set(calls) <= {"label_weights"}  # (which refuses weights it cannot take)


def _bad_calls(name: str) -> list[tuple[str, Any, Any, dict[str, Any]]]:
    logits, labels = np.random.default_rng(5).standard_normal((3, 4)), np.array([0, 3, 1])
    nan, posinf, dead = logits.copy(), logits.copy(), logits.copy()
    nan[1, 2], posinf[2, 0], dead[0] = np.nan, np.inf, -np.inf
    bad = [
        ("NaN", nan, labels, {}),
        ("+inf", posinf, labels, {}),
        ("a row of -inf", dead, labels, {}),
        ("label too big", logits, np.array([0, 4, 1]), {}),
        ("negative label", logits, np.array([0, -1, 1]), {}),
        ("float labels", logits, labels.astype(np.float64), {}),
        ("labels of another shape", logits, labels[:2], {}),
        ("bad reduction", logits, labels, {"reduction": "avg"}),
        ("bool reduction", logits, labels, {"reduction": True}),
        ("array validate", logits, labels, {"validate": np.array([True, False])}),
        ("validate None", nan, labels, {"validate": None}),
        ("unknown keyword", logits, labels, {"temperature": 2.0}),
        ("bad axis", logits, labels, {"axis": 5}),
        ("bool axis", logits, labels, {"axis": True}),
        ("NaN and a bad option", nan, labels, {"reduction": "avg"}),
        ("extra argument", logits, labels, None),
    ]
    own = {
        "focal": [{"gamma": -1.0}, {"gamma": np.inf}, {"gamma": True}, {"gamma": "2"}],
        "poly1": [{"epsilon": -1.5}, {"epsilon": np.nan}, {"base": 2}],
        "hinge": [{"margin": -1.0}, {"variant": "crammer"}, {"weight": np.ones(4)}],
    }[name]
    bad += [(f"bad option {kw}", logits, labels, kw) for kw in own]
    return bad


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("validate", [True, False])
def test_issue13_small_label_bad_inputs_give_the_full_paths_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, validate: bool
) -> None:
    """A bad input raises what the full path raises (or, unvalidated, gives what it
    gives), with the same warnings: the shortcut hands it on."""
    family = FAMILIES[name]
    raised = 0
    for what, logits, labels, kw in _bad_calls(name):
        for _, fn in _calls(family):
            if kw is None:
                call = partial(fn, logits, labels, 0, validate=validate)
            else:
                call = partial(fn, logits, labels, **({"validate": validate} | kw))
            got = outcome(call)
            assert got == full_path_outcome(monkeypatch, call), what
            raised += got[0] == "raises"
    assert raised >= 20


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("what", ["loss", "grad"])
def test_issue13_small_label_comparison_sees_a_one_ulp_error(
    monkeypatch: pytest.MonkeyPatch, name: str, what: str
) -> None:
    """The comparison above fails when the small call is wrong by one ulp (a compiled
    result nudged), so its passing means bit-for-bit equality."""
    family = FAMILIES[name]
    compiled = family.compiled[what == "grad"]
    real = getattr(_small_label_numba._CALLS, compiled)
    hybrid_only(monkeypatch)  # (the compiled function nudged is the hybrid's)

    def nudged(*args: Any) -> Any:
        found = real(*args)
        if isinstance(found, tuple):  # (ok, value): the reduced loss one ulp up
            return found[0], float(np.nextafter(found[1], np.inf))
        out = args[-1]
        out.reshape(-1)[0] = np.nextafter(out.reshape(-1)[0], np.inf)
        return found

    logits, labels = np.random.default_rng(9).standard_normal((8, 10)), np.arange(8)
    fn = family.loss if what == "loss" else family.grad
    call = partial(fn, logits, labels)
    expected = full_path_outcome(monkeypatch, call)
    assert outcome(call) == expected
    monkeypatch.setattr(_small_label_numba._CALLS, compiled, nudged)
    assert outcome(call) != expected
