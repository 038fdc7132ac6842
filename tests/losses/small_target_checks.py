"""What the small-call tests of the soft-target loss and distillation share (issue 13).

Both shortcuts (``_small_targets``, ``_small_distill``) are tested the same way: the
shortcut is called directly and must answer, with the full path's loss and gradient bit
for bit; bad calls must give the full path's outcome (its error, warning or value).
:data:`FAMILIES` describes each (its public functions, full path, shortcuts, compiled
entry points, the calls it hands on and the bad calls), so that one parametrised test
(``test_issue13_small_soft_paths.py``) proves each thing of both.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import crossent
from crossent._xp import to_float32
from crossent.errors import InputError
from crossent.losses import _cpu_kernels, _distill, _distill_rows, _small_distill, _small_targets
from crossent.losses._far_gaps import guarded_like, tempered_log_softmax64
from crossent.losses._softmax import prepare_softmax_targets
from losses.small_call_paths import fail_on, random_case

from tolerances import assert_identical

Shortcut = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def same_bits(actual: Any, expected: Any) -> None:
    """:func:`assert_identical`, and the same bytes (a -0.0 is not a 0.0)."""
    assert_identical(actual, expected)
    for got, want in zip(np.atleast_1d(actual), np.atleast_1d(expected), strict=True):
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def check_shortcuts(
    shortcuts: tuple[Shortcut, Shortcut],
    full: Callable[..., tuple[Any, Any]],
    arrays: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
) -> None:
    """The ``(loss, gradient)`` shortcuts answer ``arrays`` (not None) with what ``full``
    (the full path's loss and gradient) gives, bit for bit."""
    expected = full(*arrays, **options)
    for shortcut, want in zip(shortcuts, expected, strict=True):
        got = shortcut(arrays, dict(options))
        assert got is not None, shortcut.__name__
        same_bits(got, want)


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The error (or warning, an error under the suite's filterwarnings) a call raises,
    or its value's bytes."""
    try:
        value = function(*args, **kwargs)
    except (InputError, TypeError, RuntimeWarning) as error:
        return type(error), str(error)
    return "value", repr(value) + str(np.asarray(value, dtype=np.float64).tobytes())


def same_outcomes(
    public: tuple[Callable[..., Any], Callable[..., Any]],
    full: tuple[Callable[..., Any], Callable[..., Any]],
    arrays: tuple[np.ndarray, np.ndarray],
    kwargs: dict[str, Any],
) -> None:
    """Each public function's outcome is its full path's, validating as ``kwargs`` say
    and (NumPy's warnings ignored) without validation."""
    for function, reference in zip(public, full, strict=True):
        assert outcome(function, *arrays, **kwargs) == outcome(reference, *arrays, **kwargs)
        with np.errstate(all="ignore"):
            unchecked = {**kwargs, "validate": False}
            assert outcome(function, *arrays, **unchecked) == outcome(
                reference, *arrays, **unchecked
            )


# ------------------------------------------------------------------ the two families


def target_case(
    shape: tuple[int, ...], seed: int, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (some rows near-deterministic) and Dirichlet targets, some entries 0, of
    ``dtype`` (the targets rounded to it, then renormalised in it)."""
    logits, _ = random_case(shape, seed, dtype)
    rng = np.random.default_rng(seed + 1)
    targets = rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1])
    if shape[-1] > 2:
        targets[..., 1] = 0.0
    targets = targets.astype(dtype)
    return logits, targets / np.add.reduce(targets, -1, keepdims=True)


def distill_case(
    shape: tuple[int, ...], seed: int, form: str, zeros: bool = True, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """Student logits and a teacher of ``form``: logits, or probabilities (with zeros
    unless not ``zeros``), of ``dtype``."""
    student, _ = random_case(shape, seed, dtype)
    teacher, _ = random_case(shape, seed + 1, dtype)
    if form == "probs":
        rng = np.random.default_rng(seed + 2)
        probs = rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1])
        if shape[-1] > 2 and zeros:
            probs[..., 1] = 0.0
        probs = probs.astype(dtype)
        teacher = probs / np.add.reduce(probs, -1, keepdims=True)
    return student, teacher


@dataclass(frozen=True)
class Family:
    """One small-call shortcut family and what its tests need: the public loss and
    gradient, the full path's ``prepare`` step (the public bodies over it are the full
    path), the functions of ``prepare``'s module that only the full path calls, the
    shortcuts, and the compiled functions the shortcuts end in (loss, gradient)."""

    name: str
    public: tuple[Callable[..., Any], Callable[..., Any]]
    prepare: Callable[..., Any]
    full_names: tuple[str, ...]
    shortcuts: tuple[Shortcut, Shortcut]
    compiled: tuple[str, str]

    def full_parts(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The full path's loss and gradient functions: each public body over ``prepare``,
        never the shortcut."""

        def part(public: Any) -> Callable[..., Any]:
            full = lambda *args, **kwargs: public.__wrapped__(self.prepare(*args, **kwargs))  # noqa: E731
            # the losses' far-row check (issue 13 follow-up) is above the full path too
            return guarded_like(public, full) if hasattr(public, "_far_rows") else full

        return part(self.public[0]), part(self.public[1])

    def full(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The full path's loss and gradient of one call; of float32 logits, those of
        the float64 logits (the other array as given) rounded to float32, which the
        small calls give (issue 13: exact float32 results)."""
        loss, gradient = self.full_parts()
        if args[0].dtype == np.float32:
            wide = (args[0].astype(np.float64), *args[1:])
            return to_float32(loss(*wide, **kwargs)), to_float32(gradient(*wide, **kwargs))
        return loss(*args, **kwargs), gradient(*args, **kwargs)

    def only_shortcut(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the full path fail: a public call must be answered by the shortcut."""
        module = sys.modules[self.prepare.__module__]
        fail_on(monkeypatch, module, self.full_names, expected="the shortcut")

    def check(self, first: np.ndarray, second: np.ndarray, options: dict[str, Any]) -> None:
        """The shortcuts answer and give the full path's loss and gradient bit for bit."""
        check_shortcuts(self.shortcuts, self.full, (first, second), options)


def benchmark_case(rows: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """``bench_small_inputs.py``'s call of both families: normal logits and Dirichlet
    targets (distillation takes them as the teacher's logits)."""
    rng = np.random.default_rng(rows)
    logits = rng.standard_normal((rows, 10)).astype(dtype)
    return logits, rng.dirichlet(np.ones(10), size=rows).astype(dtype)


TARGETS = Family(
    "targets",
    (crossent.softmax_cross_entropy_with_targets, crossent.softmax_cross_entropy_with_targets_grad),
    prepare_softmax_targets,
    ("softmax_rows", "target_terms"),
    (_small_targets.target_loss, _small_targets.target_gradient),
    ("target_loss64", "target_gradient64"),
)
DISTILL = Family(
    "distill",
    (crossent.distillation_loss, crossent.distillation_loss_grad),
    _distill.prepare_distillation,
    ("prepare_pair", "tempered_log_softmax"),
    (_small_distill.distillation_loss, _small_distill.distillation_gradient),
    ("kl_loss64", "tempered_difference64"),
)
FAMILIES = (TARGETS, DISTILL)


def handed_on_cases(family: Family) -> list[tuple[str, Any, Any, dict[str, Any]]]:
    """Calls the shortcut of ``family`` does not take: layouts, dtypes, sizes and
    options of the full path only, and values it must refuse."""
    if family is TARGETS:
        first, second = target_case((6, 10), seed=3)
        big = target_case((_cpu_kernels.SERIAL_ELEMENTS // 10 + 1, 10), seed=4)
    else:
        first, second = distill_case((6, 10), 3, "logits")
        big = distill_case((_cpu_kernels.SERIAL_ELEMENTS // 10 + 1, 10), 4, "logits")
    probs = target_case((6, 10), seed=3)[1]
    readonly = first.copy()
    readonly.flags.writeable = False
    off = probs.copy()
    off[2] *= 1.5  # no distribution
    probs_form = {} if family is TARGETS else {"teacher_form": "probs"}
    cases = [
        ("float32 and float64", first.astype(np.float32), second, {}),
        ("float64 and float32", first, second.astype(np.float32), {}),
        ("float16", first.astype(np.float16), second.astype(np.float16), {}),
        ("strided first", np.repeat(first, 2, axis=0)[::2], second, {}),
        ("Fortran second", first, np.asfortranarray(second), {}),
        ("read-only first", readonly, second, {}),
        ("byte-swapped first", first.astype(first.dtype.newbyteorder()), second, {}),
        ("byte-swapped float32", *(a.astype(">f4") for a in (first, second)), {}),
        ("more than SERIAL_ELEMENTS", *big, {}),
        ("classes first", first.T.copy(), second.T.copy(), {"axis": 0}),
        ("lists", first.tolist(), second.tolist(), {}),
        ("unchecked, off the simplex", first, off, {**probs_form, "validate": False}),
    ]
    if family is TARGETS:
        negative = probs.copy()
        negative[1, :2] = [-0.25, negative[1, 0] + negative[1, 1] + 0.25]
        cases += [
            ("class weights", first, probs, {"weight": np.linspace(0.5, 2.0, 10)}),
            ("soft-capping", first, probs, {"soft_cap": 5.0}),
            ("unchecked, negative", first, negative, {"validate": False}),
        ]
    else:
        with np.errstate(divide="ignore"):
            log_probs = np.log(probs)
        cases += [
            ("log_probs teacher", first, log_probs, {"teacher_form": "log_probs"}),
            ("reverse, t = 0 < s", first, probs, {"teacher_form": "probs", "direction": "reverse"}),
        ]
    return cases


INF, NAN = np.inf, np.nan
T3 = [0.2, 0.3, 0.5]
V3 = [0.2, -0.3, 0.5]
_COMMON_BAD: list[tuple[Any, Any, dict[str, Any]]] = [
    ([[0.0, NAN, 2.0]], [T3], {}),
    ([[0.0, 1.0, 2.0], [-INF, -INF, -INF]], [T3, T3], {"reduction": "sum"}),
    ([0.0, 1.0, NAN], T3, {}),  # one row, no batch axis
    (1.0, 1.0, {}),  # scalars (0-d arrays): no class axis
    ([[0.0, 1.0, 2.0]], [T3, T3], {}),  # shapes differ
    ([[0.0, 1.0, 2.0]], [[0.5, 0.5]], {}),
    ([[0.0, 1.0, 2.0]], [T3], {"reduction": "avg"}),
    ([[0.0, 1.0, 2.0]], [T3], {"temperature": 0.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"base": 1.0}),
    ([[0.0, 1.0, 2.0]], [T3], {"axis": 2}),
    ([[0.0, 1.0, 2.0]], [T3], {"axis": True}),
    ([[0.0, 1.0, 2.0]], [T3], {"bogus": 1}),
]
"""Bad calls of either family: the logits (or student) first, then the options."""

BAD: dict[str, list[tuple[Any, Any, dict[str, Any]]]] = {
    "targets": [
        *_COMMON_BAD,
        ([[0.0, INF, 2.0]], [T3], {"reduction": "none"}),
        ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.6]], {}),  # sums to 1.1
        ([[0.0, 1.0, 2.0]], [[-0.2, 0.7, 0.5]], {}),  # a negative entry
        ([[0.0, 1.0, 2.0]], [[NAN, 0.5, 0.5]], {}),
        ([[0.0, 1.0, 2.0]], [[1.5, -0.5, 0.0]], {"validate": True}),
        ([[0.0, NAN, 2.0]], [[-0.2, 0.7, 0.5]], {}),  # both bad: the logits are named first
        ([[0.0, 1.0, 2.0]], [T3], {"label_smoothing": 2.0}),
        ([[0.0, 1.0, 2.0]], [T3], {"label_smoothing": True}),
        ([[0.0, 1.0, 2.0]], [T3], {"z_loss": -1.0}),
        # values the full path makes warn or not finite (its warnings are errors here)
        ([[1e308, -1e308, 0.0]], [T3], {}),  # z - max overflows
        ([[1.7e308, 1.7e308, 0.0]], [T3], {}),  # LSE overflows
        ([[1e200, 0.0, 0.0]], [T3], {"z_loss": 1.0}),  # LSE^2 overflows
        ([[0.0, 1e308, 0.0], [0.0, 1e308, 0.0]], [[1.0, 0.0, 0.0]] * 2, {"reduction": "sum"}),
        ([[0.0, -INF, 1.0]], [T3], {}),  # mass on a -inf logit: +inf
        ([[0.0, -INF, 1.0]], [[0.5, 0.0, 0.5]], {"label_smoothing": 0.1}),  # +inf too
    ],
    "distill": [
        *_COMMON_BAD,
        ([[0.0, 1.0, 2.0]], [[0.0, INF, 2.0]], {"reduction": "none"}),
        ([[0.0, 1.0, 2.0]], [[-INF, -INF, -INF]], {}),
        ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.6]], {"teacher_form": "probs"}),  # sums to 1.1
        ([[0.0, 1.0, 2.0]], [[-0.2, 0.7, 0.5]], {"teacher_form": "probs"}),
        ([[0.0, 1.0, 2.0]], [[NAN, 0.5, 0.5]], {"teacher_form": "probs"}),
        ([[0.0, NAN, 2.0]], [[NAN, 0.5, 0.5]], {"teacher_form": "probs"}),  # the student first
        ([[0.0, 1.0, 2.0]], [V3], {"temperature": True}),
        ([[0.0, 1.0, 2.0]], [V3], {"teacher_form": "prob"}),
        ([[0.0, 1.0, 2.0]], [V3], {"direction": "both"}),
        # values the full path makes warn or not finite (its warnings are errors here)
        ([[1e308, -1e308, 0.0]], [V3], {}),  # z - max overflows
        ([[0.0, 1.0, 2.0]], [[1e308, -1e308, 0.0]], {}),
        ([[0.0, -INF, 1.0]], [V3], {}),  # D(t || s) = +inf
        ([[0.0, -INF, 1.0]], [T3], {"teacher_form": "probs", "temperature": 2.0}),
        ([[0.0, 2.0, 1.0]], [[0.5, 0.0, 0.5]], {"teacher_form": "probs", "direction": "reverse"}),
        ([[0.0, 2.0, 1.0]], [[0.5, 0.5, 0.0]], {"teacher_form": "probs", "temperature": 1e-300}),
    ],
}
"""Bad float64 calls of each family, by name: errors, warnings, values not finite."""

BAD32: dict[str, list[tuple[Any, Any, dict[str, Any]]]] = {
    "targets": [
        ([[3e38, -3e38, 0.0]], [T3], {}),  # z - max overflows float32
        ([[3.4e38, 3.4e38, 0.0]], [T3], {}),  # LSE overflows float32
        ([[1e20, 0.0, 0.0]], [T3], {"z_loss": 1.0}),  # LSE^2 overflows float32
        ([[0.0, 3e38, 0.0], [0.0, 3e38, 0.0]], [[1.0, 0.0, 0.0]] * 2, {"reduction": "sum"}),
        ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.5001]], {}),  # off by more than float32's tolerance
        ([[0.0, 1.0, 2.0]], [T3], {"temperature": 1e-45}),  # T rounds to a subnormal
    ],
    "distill": [
        ([[3e38, -3e38, 0.0]], [V3], {}),  # z - max overflows float32
        ([[0.0, 1.0, 2.0]], [[3e38, -3e38, 0.0]], {}),
        ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.5001]], {"teacher_form": "probs"}),
        ([[0.0, 2.0, 1.0]], [[0.5, 0.5, 0.0]], {"teacher_form": "probs", "temperature": 1e-30}),
        ([[0.0, -INF, 1.0]], [V3], {"temperature": 3.0}),  # D(t || s) = +inf
    ],
}
"""Bad float32 calls of each family, by name: what overflows float32 and not float64."""


def fused_rows(
    monkeypatch: pytest.MonkeyPatch, kernel: str, z: np.ndarray, teacher: np.ndarray, **options: Any
) -> np.ndarray:
    """``crossent.distillation_loss_grad`` of ``z`` and ``teacher`` tiled 400 times (a
    call large enough for the fused kernels), ``_distill_rows.<kernel>`` spied on
    (asserted to run), every tile's rows the same; the first tile's rows."""
    seen: list[bool] = []
    real = getattr(_distill_rows, kernel)

    def spy() -> Any:
        seen.append(True)
        return real()

    monkeypatch.setattr(_distill_rows, kernel, spy)
    tiled_z, tiled_t = np.tile(z, (400, 1)), np.tile(teacher, (400, 1))
    got = crossent.distillation_loss_grad(tiled_z, tiled_t, reduction="sum", **options)
    assert seen
    np.testing.assert_array_equal(got, np.tile(got[: z.shape[0]], (400, 1)))
    return got[: z.shape[0]]


def near_rows(z: np.ndarray, scores: np.ndarray, temperature: float, given: bool) -> Any:
    """``_near_rows.NearRows`` of float64 rows: the compiled formulas, or (``given``)
    handed the softened rows (the formulas other namespaces run)."""
    from crossent.losses import _near_rows

    if not given:
        return _near_rows.NearRows(z, scores, temperature)
    log_s = tempered_log_softmax64(z, temperature)[2]
    log_t = tempered_log_softmax64(scores, temperature)[2]
    return _near_rows.NearRows(z, scores, temperature, np, log_s, log_t)
