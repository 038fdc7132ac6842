"""Issue 13, "Small inputs": the lean distillation and soft-target paths, and the float64
softmax cross-entropy's hybrid, call their compiled functions by their entry points
(``losses/_entry_points.py``), picked once per dtype.

An entry point checks no argument types (Numba's unboxing checks an array's item size
only), so these tests pin that every call the lean path makes passes exactly the types
its entry point was compiled for, over the options, forms and shapes it takes; that a
function patched on its module (the other tests' spies and mutants) runs as it is and
leaves no table behind; and that where no entry point is picked (no dispatcher) the
values are the full path's all the same. The values themselves are pinned bit for bit
by ``test_issue13_small_distill.py`` and ``test_issue13_small_targets*.py``, whose calls
take the entry points.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import (
    _cpu_kernels,
    _entry_points,
    _small_distill,
    _small_targets,
    _softmax_small,
)
from losses.small_call_paths import LEAN_OPTIONS, full_path, random_case
from losses.small_target_checks import (
    DISTILL,
    TARGETS,
    distill_case,
    same_bits,
    target_case,
)

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

numba = pytest.importorskip("numba")

from crossent.losses import _small_numba, _small_targets_numba  # noqa: E402  (imports Numba)

DTYPES = (np.float64, np.float32)
OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    {"reduction": "none"},
    {"reduction": "parts", "base": 2},
    {"temperature": 2.0, "reduction": "sum"},
    {"direction": "reverse"},
    {"direction": "reverse", "temperature": 0.5, "reduction": "none", "base": 10.0},
]
FORMS = ("logits", "probs")
SHAPES = [(1, 10), (8, 10), (10,), (3, 4, 10)]

#: The functions of ``_small_distill._Steps`` (its fields, in order) by their modules.
FUNCTIONS = {
    "shift_pair": (_small_targets_numba, "shift_pair64"),
    "shift_logits": (_small_targets_numba, "shift_logits64"),
    "rest": (_small_numba, "rest_of_rows64"),
    "subtract": (_small_numba, "subtract_rows64"),
    "screen": (_small_targets_numba, "screen_distributions64"),
    "kl": (_small_targets_numba, "kl_loss64"),
    "difference": (_small_targets_numba, "tempered_difference64"),
    "reverse": (_small_targets_numba, "reverse_gradient64"),
}


#: The same for the soft-target path (``_small_targets._Steps``).
TARGET_FUNCTIONS = {
    "shift": (_small_targets_numba, "shift_targets64"),
    "rows": (_small_targets_numba, "target_rows64"),
    "loss": (_small_targets_numba, "target_loss64"),
    "gradient": (_small_targets_numba, "target_gradient64"),
    "subtract": (_small_numba, "subtract_rows64"),
}
TARGET_OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    {"reduction": "none", "label_smoothing": 0.1},
    {"reduction": "parts", "base": 2, "z_loss": 1e-3},
    {"temperature": 2.0, "reduction": "sum"},
    {"label_smoothing": 0.2, "temperature": 0.5, "z_loss": 0.1, "base": 10.0},
]


def _target_calls() -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """The soft-target lean path's calls: every shape and option set, both dtypes."""
    cases = []
    for dtype, shape, options in itertools.product(DTYPES, SHAPES, TARGET_OPTIONS):
        logits, targets = target_case(shape, 5 * len(shape) + shape[-1], dtype)
        cases.append((logits, targets, options))
    return cases


#: Per family: the module of its table, the table's functions, the lean path's calls.
TABLES = {
    "distill": (DISTILL, _small_distill, FUNCTIONS, lambda: _calls()),
    "targets": (TARGETS, _small_targets, TARGET_FUNCTIONS, lambda: _target_calls()),
}


def _calls() -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """The lean path's calls: every shape, form and option set, float64 and float32."""
    cases = []
    for dtype, shape, form, options in itertools.product(DTYPES, SHAPES, FORMS, OPTIONS):
        reverse = options.get("direction") == "reverse"
        seed = 7 * len(shape) + shape[-1]
        student, teacher = distill_case(shape, seed, form, zeros=not reverse, dtype=dtype)
        cases.append((student, teacher, {**options, "teacher_form": form}))
    return cases


def _signatures(dispatcher: Any) -> dict[Any, tuple[Any, ...]]:
    """The argument types of each compiled overload of ``dispatcher``, by entry point."""
    return {cres.entry_point: tuple(types) for types, cres in dispatcher.overloads.items()}


def test_issue13_entry_points_are_kept_per_dtype() -> None:
    """After a call of each dtype, the float64 table (float32 calls compute on float64
    copies, issue 13) holds the entry points of the module's dispatchers (none is a
    dispatcher: the type resolution is skipped)."""
    for dtype in DTYPES:
        student, teacher = distill_case((8, 10), 1, "logits", dtype=dtype)
        DISTILL.check(student, teacher, {})
        steps = _small_distill._STEPS[np.dtype(np.float64)]  # (float32 too: issue 13)
        for field, (module, name) in FUNCTIONS.items():
            dispatcher = getattr(module, name)
            assert getattr(steps, field) in _signatures(dispatcher), (field, dtype)
        assert steps.kl_of is _small_targets_numba.kl_loss64
        assert steps.difference_of is _small_targets_numba.tempered_difference64
        assert steps.reverse_of is _small_targets_numba.reverse_gradient64


@pytest.mark.parametrize("table", TABLES)
def test_issue13_entry_points_take_exactly_their_types(monkeypatch, table) -> None:
    """Every call of an entry point, over the lean path's options, forms, shapes and
    dtypes, passes the argument types (dtype, dimensions, layout, scalars) of the
    overload it belongs to; and the values are the full path's bit for bit."""
    family, module, functions, calls = TABLES[table]
    seen: dict[str, int] = dict.fromkeys(functions, 0)
    wrong: list[str] = []

    def spied(dtype: np.dtype) -> Any:
        steps = module._steps_of(dtype)
        spies = {}
        for field, (home, name) in functions.items():
            entry, signature = getattr(steps, field), _signatures(getattr(home, name))

            def spy(
                *args: Any, entry: Any = entry, field: str = field, sig: Any = signature
            ) -> Any:
                seen[field] += 1
                if tuple(numba.typeof(arg) for arg in args) != sig[entry]:
                    wrong.append(f"{field}: {[numba.typeof(arg) for arg in args]} != {sig[entry]}")
                return entry(*args)

            spies[field] = spy
        return steps._replace(**spies)

    for dtype in DTYPES:  # the real tables first, with spies on their entry points
        module._STEPS.pop(np.dtype(dtype), None)
        monkeypatch.setitem(module._STEPS, np.dtype(dtype), spied(np.dtype(dtype)))
    for first, second, options in calls():
        family.check(first, second, options)
    assert not wrong, wrong[:5]
    assert all(seen.values()), seen  # every function was called


@pytest.mark.parametrize(
    ("table", "name", "field"),
    [("distill", "kl_loss64", "kl"), ("targets", "target_loss64", "loss")],
)
def test_issue13_entry_points_a_patched_function_runs_and_no_table_is_kept(
    monkeypatch, table, name, field
) -> None:
    """A function patched on its module (a spy) is what a call runs, and no table is kept
    while it is patched; with the dispatcher back, the next call keeps the entry points
    picked from it; patched again, the spy runs, not the kept entry point."""
    family, module = TABLES[table][0], TABLES[table][1]
    first, second = (
        distill_case((8, 10), 2, "logits") if table == "distill" else target_case((8, 10), 2)
    )
    monkeypatch.setattr(module, "_STEPS", {})
    calls: list[str] = []
    real = getattr(_small_targets_numba, name)

    def spy(*args: Any) -> Any:
        calls.append(name)
        return real(*args)

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, name, spy)
        family.check(first, second, {})
        assert calls == [name]
        assert module._STEPS == {}
    family.check(first, second, {})
    assert calls == [name]
    steps = module._STEPS[first.dtype]
    assert getattr(steps, f"{field}_of") is real
    assert getattr(steps, field) in _signatures(real)
    with monkeypatch.context() as patched:  # patched again, beside a kept table
        patched.setattr(_small_targets_numba, name, spy)
        family.check(first, second, {})
        assert calls == [name] * 2


@pytest.mark.parametrize("table", TABLES)
def test_issue13_entry_points_none_picked_gives_the_full_path(monkeypatch, table) -> None:
    """Where no entry point is picked (no function a dispatcher: ``NUMBA_DISABLE_JIT``),
    the module's functions are called as they are, no table is kept, and the values are
    the full path's bit for bit."""
    family, module, _, calls = TABLES[table]
    monkeypatch.setattr(module, "_STEPS", {})
    monkeypatch.setattr(_entry_points, "entry_point", lambda function, *args: None)
    for first, second, options in calls()[::5]:
        family.check(first, second, options)
    assert module._STEPS == {}


def test_issue13_entry_point_of_a_dispatcher_and_of_a_function() -> None:
    """``entry_point``: the compiled overload of a dispatcher for the arguments' types,
    whose value is the dispatcher's; None for a function that is no dispatcher."""
    z = np.array([[3.0, 1.0, -2.0]])
    shifted, rows = np.empty_like(z), np.empty((4, 1))
    entry = _entry_points.entry_point(_small_targets_numba.shift_logits64, z, 1.0, shifted, rows)
    assert entry is not None
    assert entry is not _small_targets_numba.shift_logits64
    assert entry(z, 0.5, shifted, rows) is True
    want, want_rows = np.empty_like(z), np.empty((4, 1))
    assert _small_targets_numba.shift_logits64(z, 0.5, want, want_rows) is True
    same_bits(shifted, want)
    same_bits(rows[0], want_rows[0])
    assert _entry_points.entry_point(len, [1]) is None


#: The float64 label hybrid's table (``_softmax_small._Steps64``), by its fields.
LABEL_FUNCTIONS = {
    "shift": "shift_rows64",
    "rest": "rest_of_rows64",
    "subtract": "subtract_rows64",
    "loss": "label_loss64",
    "gradient": "label_gradient64",
}


def test_issue13_entry_points_of_the_float64_label_hybrid(monkeypatch) -> None:
    """The float64 softmax cross-entropy's hybrid calls its compiled functions by the
    entry points of ``_small_numba``'s dispatchers, each call with exactly their types
    (every lean option set, shapes (1, 10), (8, 10), (10,) and (3, 4, 10), a given
    ``out``), and its values are the full path's bit for bit."""
    steps = _softmax_small.steps64()
    assert _softmax_small._STEPS["d"] == steps
    seen: dict[str, int] = dict.fromkeys(LABEL_FUNCTIONS, 0)
    wrong: list[str] = []
    spies = {}
    for field, name in LABEL_FUNCTIONS.items():
        entry, signature = getattr(steps, field), _signatures(getattr(_small_numba, name))
        assert entry in signature, field

        def spy(*args: Any, entry: Any = entry, field: str = field, sig: Any = signature) -> Any:
            seen[field] += 1
            if tuple(numba.typeof(arg) for arg in args) != sig[entry]:
                wrong.append(f"{field}: {[numba.typeof(arg) for arg in args]} != {sig[entry]}")
            return entry(*args)

        spies[field] = spy
    monkeypatch.setitem(_softmax_small._STEPS, "d", steps._replace(**spies))
    for shape, options in itertools.product(SHAPES, LEAN_OPTIONS):
        logits, labels = random_case(shape, 3 * len(shape) + shape[-1])
        want_loss, want_grad = full_path(logits, labels, fused=False, **options)
        same_bits(crossent.softmax_cross_entropy(logits, labels, **options), want_loss)
        same_bits(crossent.softmax_cross_entropy_grad(logits, labels, **options), want_grad)
        out = np.empty_like(logits)
        grad = crossent.softmax_cross_entropy_grad(logits, labels, out=out, **options)
        assert grad is out
        same_bits(out, want_grad)
    assert not wrong, wrong[:5]
    assert all(seen.values()), seen
