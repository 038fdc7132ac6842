"""Issue 13, "Small inputs": the lean distillation loss on small float64 inputs.

``distillation_loss`` and its gradient on small float64 student logits and teachers
(``'logits'`` or ``'probs'``, either direction, any temperature, reduction and base, the
classes last) are a hybrid (``losses/_small_distill.py``): compiled calls do the generic
path's arithmetic in its order around NumPy's own np.exp, np.log1p and np.log, so the
values are the full path's (``_distill.prepare_distillation`` and the public functions'
bodies) bit for bit. These tests pin that over random and hard rows, that the
benchmark's calls take the hybrid, that everything else (and every bad input) is handed
to the full path with its errors, and that a hybrid off by one rounding fails them.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _distill, _small_distill, _small_targets_numba
from losses.small_call_paths import fail_on, random_case, record_calls
from losses.small_target_checks import check_shortcuts, same_bits, same_outcomes

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")

LOSS = crossent.distillation_loss
GRAD = crossent.distillation_loss_grad

OPTIONS: list[dict[str, Any]] = [
    {},
    {"validate": False},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "parts", "base": 2},
    {"temperature": 2.0},
    {"temperature": 0.5, "reduction": "sum"},
    {"temperature": 4.0, "base": 10.0, "reduction": "none", "validate": False},
    {"direction": "reverse"},
    {"direction": "reverse", "temperature": 2.0, "reduction": "none"},
    {"direction": "reverse", "temperature": 0.3, "reduction": "parts"},
    {"direction": "reverse", "base": 2, "axis": -1},
]
FORMS = ("logits", "probs")

SHAPES = [(1, 10), (10,), (8, 10), (3, 4, 10), (7, 1), (3, 8), (3, 9), (2, 128), (2, 129)]
SHAPES += [(1, 1000), (129, 5), (300, 7), (8192, 2)]


def _case(
    shape: tuple[int, ...], seed: int, form: str, zeros: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Student logits and a teacher of ``form``: logits, or probabilities (with zeros
    unless not ``zeros``)."""
    student, _ = random_case(shape, seed, np.float64)
    teacher, _ = random_case(shape, seed + 1, np.float64)
    if form == "probs":
        rng = np.random.default_rng(seed + 2)
        teacher = rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1])
        if shape[-1] > 2 and zeros:
            teacher[..., 1] = 0.0
            teacher /= np.add.reduce(teacher, -1, keepdims=True)
    return student, teacher


def _full(student: Any, teacher: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The full path's loss and gradient: the public functions' bodies over
    ``prepare_distillation``, never the shortcut."""
    loss = LOSS.__wrapped__(_distill.prepare_distillation(student, teacher, **kwargs))  # type: ignore[attr-defined]
    grad = GRAD.__wrapped__(_distill.prepare_distillation(student, teacher, **kwargs))  # type: ignore[attr-defined]
    return loss, grad


def _only_hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the full path fail: a public call must be answered by the hybrid."""
    fail_on(monkeypatch, _distill, ("prepare_pair", "tempered_log_softmax"), expected="hybrid")


def _check(student: np.ndarray, teacher: np.ndarray, options: dict[str, Any]) -> None:
    """The hybrid answers (not None) and gives the full path's loss and gradient."""
    shortcuts = (_small_distill.distillation_loss, _small_distill.distillation_gradient)
    check_shortcuts(shortcuts, _full, (student, teacher), options)


@pytest.mark.parametrize(
    ("shape", "form", "options"), list(itertools.product(SHAPES, FORMS, OPTIONS))
)
def test_issue13_small_distill_is_the_full_path_bit_for_bit(
    monkeypatch, shape, form, options
) -> None:
    reverse = options.get("direction") == "reverse"  # (D(s || t) = +inf where t = 0 < s)
    student, teacher = _case(shape, len(shape) * 1000 + shape[-1], form, zeros=not reverse)
    kwargs = {**options, "teacher_form": form}
    want_loss, want_grad = _full(student, teacher, **kwargs)
    _only_hybrid(monkeypatch)
    same_bits(LOSS(student, teacher, **kwargs), want_loss)
    same_bits(GRAD(student, teacher, **kwargs), want_grad)


INF = np.inf
HARD_STUDENT = np.array(
    [
        [0.0, -INF, 1.0, 2.0],  # -inf where the teacher is 0
        [5.0, 5.0, 5.0, 5.0],  # ties
        [1e4, -1e4, 0.0, 3.0],  # a huge spread
        [0.0, 1e-300, 0.0, -3e300],  # near-ties and a huge negative logit
        [-0.0, 0.0, -0.0, -40.0],  # signed zeros at the maximum
        [1e-320, 0.0, -1e-320, 5e-324],  # subnormal differences
        [700.0, 699.0, -700.0, 1.0],
        [40.0, -40.0, -40.0, -40.0],  # near-deterministic
    ]
)
HARD_TEACHER_LOGITS = np.array(
    [
        [1.0, -INF, 0.0, 0.5],
        [0.0, 0.0, 0.0, 0.0],
        [3.0, -2.0, 1e3, 0.0],
        [-1e4, 0.0, 1e4, 5.0],
        [0.0, -0.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
        [-700.0, 0.0, 700.0, 1.0],
        [-40.0, 40.0, -40.0, -40.0],
    ]
)
HARD_TEACHER_PROBS = np.array(
    [
        [0.5, 0.0, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.0, 1.0],  # one-hot on a class 1e4 below the maximum
        [1.0, 0.0, 0.0, 0.0],  # one-hot
        [0.1, 0.2, 0.3, 0.4],
        [0.0, 0.0, 0.0, 1.0],
        [1 / 3, 1 / 3, 0.0, 1 / 3],
        [0.0, 1.0, 0.0, 0.0],
    ]
)


@pytest.mark.parametrize(("form", "options"), list(itertools.product(FORMS, OPTIONS)))
def test_issue13_small_distill_hard_rows_bit_for_bit(form, options) -> None:
    teacher = HARD_TEACHER_LOGITS if form == "logits" else HARD_TEACHER_PROBS
    kwargs = {**options, "teacher_form": form}
    reverse = options.get("direction") == "reverse"
    for k in range(len(HARD_STUDENT)):
        student_row, teacher_row = HARD_STUDENT[k], teacher[k]
        with np.errstate(invalid="ignore"):  # (the full path's inf - inf of D(s || t) = inf)
            want = _full(student_row, teacher_row, **kwargs)
        if not all(np.isfinite(np.asarray(w, dtype=np.float64)).all() for w in want):
            # D(s || t) is +inf where t = 0 < s: handed on (tested below)
            assert reverse or form == "probs"
            continue
        _check(student_row[None], teacher_row[None], kwargs)
        _check(student_row, teacher_row, kwargs)


def test_issue13_small_distill_random_hard_rows_bit_for_bit() -> None:
    """Random rows with huge spreads, ties, teachers with zeros and one-hot rows, and
    ``-inf`` student logits where the teacher is 0, under every option set."""
    rng = np.random.default_rng(31)
    for trial in range(80):
        classes = int(rng.integers(2, 40))
        n = int(rng.integers(1, 9))
        student = rng.standard_normal((n, classes)) * 10.0 ** rng.uniform(-3, 4, (n, 1))
        student[rng.uniform(size=student.shape) < 0.2] = 3.0  # ties
        teacher = rng.dirichlet(np.full(classes, 0.3), size=n)
        teacher[rng.uniform(size=teacher.shape) < 0.3] = 0.0
        teacher[:, 0] += 1e-3
        teacher[0] = 0.0
        teacher[0, int(rng.integers(classes))] = 1.0  # one-hot
        teacher /= np.add.reduce(teacher, -1, keepdims=True)
        student[(teacher == 0.0) & (rng.uniform(size=teacher.shape) < 0.5)] = -np.inf
        options = {**OPTIONS[trial % len(OPTIONS)], "teacher_form": "probs"}
        options.pop("direction", None)  # reverse: +inf where t = 0 < s
        _check(student, teacher, options)
        with np.errstate(divide="ignore"):
            logits = np.log(teacher) * rng.uniform(0.5, 3.0)
        _check(student, logits, {**options, "teacher_form": "logits"})


def test_issue13_small_distill_benchmark_calls_take_the_hybrid(monkeypatch) -> None:
    """The calls of ``bench_small_inputs.py`` (float64 (1, 10) and (8, 10), the teacher
    as logits, validating or not) are answered by the compiled calls."""
    rng = np.random.default_rng(0)
    loss_calls = record_calls(monkeypatch, _small_targets_numba, ("kl_loss64",))
    grad_calls = record_calls(monkeypatch, _small_targets_numba, ("tempered_difference64",))
    for rows in (1, 8):
        student = rng.standard_normal((rows, 10))
        teacher = rng.dirichlet(np.ones(10), size=rows)
        want = [_full(student, teacher, validate=v) for v in (True, False)]
        with monkeypatch.context() as patched:
            _only_hybrid(patched)
            for validate, (want_loss, want_grad) in zip((True, False), want, strict=True):
                same_bits(LOSS(student, teacher, validate=validate), want_loss)
                same_bits(GRAD(student, teacher, validate=validate), want_grad)
    assert loss_calls == ["kl_loss64"] * 4
    assert grad_calls == ["tempered_difference64"] * 4


def _handed_on_cases() -> list[tuple[str, Any, Any, dict[str, Any]]]:
    student, teacher = _case((6, 10), 3, "logits")
    _, probs = _case((6, 10), 3, "probs")
    big, big_teacher = _case((_cpu_kernels.SERIAL_ELEMENTS // 10 + 1, 10), 4, "logits")
    readonly = student.copy()
    readonly.flags.writeable = False
    off = probs.copy()
    off[2] *= 1.5  # no distribution
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    return [
        ("float32", student.astype(np.float32), teacher.astype(np.float32), {}),
        ("float32 teacher", student, teacher.astype(np.float32), {}),
        ("strided student", np.repeat(student, 2, axis=0)[::2], teacher, {}),
        ("Fortran teacher", student, np.asfortranarray(teacher), {}),
        ("read-only student", readonly, teacher, {}),
        ("byte-swapped", student.astype(student.dtype.newbyteorder()), teacher, {}),
        ("more than SERIAL_ELEMENTS", big, big_teacher, {}),
        ("log_probs teacher", student, log_probs, {"teacher_form": "log_probs"}),
        ("classes first", student.T.copy(), teacher.T.copy(), {"axis": 0}),
        ("lists", student.tolist(), teacher.tolist(), {}),
        ("unchecked, off the simplex", student, off, {"teacher_form": "probs", "validate": False}),
        ("reverse, t = 0 < s", student, probs, {"teacher_form": "probs", "direction": "reverse"}),
    ]


_HANDED_ON = _handed_on_cases()


@pytest.mark.parametrize(
    ("what", "student", "teacher", "kwargs"), _HANDED_ON, ids=[case[0] for case in _HANDED_ON]
)
def test_issue13_small_distill_leaves_other_inputs_to_the_full_path(
    what, student, teacher, kwargs
) -> None:
    """What the hybrid does not take returns None, and the public call is the full path's."""
    assert _small_distill.distillation_loss((student, teacher), dict(kwargs)) is None, what
    assert _small_distill.distillation_gradient((student, teacher), dict(kwargs)) is None, what
    with np.errstate(invalid="ignore"):
        want_loss, want_grad = _full(student, teacher, **kwargs)
        same_bits(LOSS(student, teacher, **kwargs), want_loss)
        same_bits(GRAD(student, teacher, **kwargs), want_grad)


NAN = np.nan
V3 = [0.2, -0.3, 0.5]
P3 = [0.2, 0.3, 0.5]
BAD: list[tuple[Any, Any, dict[str, Any]]] = [
    ([[0.0, NAN, 2.0]], [V3], {}),
    ([[0.0, 1.0, 2.0]], [[0.0, INF, 2.0]], {"reduction": "none"}),
    ([[0.0, 1.0, 2.0], [-INF, -INF, -INF]], [V3, V3], {"reduction": "sum"}),
    ([[0.0, 1.0, 2.0]], [[-INF, -INF, -INF]], {}),
    ([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.6]], {"teacher_form": "probs"}),  # sums to 1.1
    ([[0.0, 1.0, 2.0]], [[-0.2, 0.7, 0.5]], {"teacher_form": "probs"}),
    ([[0.0, 1.0, 2.0]], [[NAN, 0.5, 0.5]], {"teacher_form": "probs"}),
    ([[0.0, NAN, 2.0]], [[NAN, 0.5, 0.5]], {"teacher_form": "probs"}),  # the student first
    ([0.0, 1.0, NAN], V3, {}),  # one row, no batch axis
    (1.0, 0.5, {}),  # scalars (0-d arrays): no class axis
    ([[0.0, 1.0, 2.0]], [V3, V3], {}),  # shapes differ
    ([[0.0, 1.0, 2.0]], [[0.5, 0.5]], {}),
    ([[0.0, 1.0, 2.0]], [V3], {"reduction": "avg"}),
    ([[0.0, 1.0, 2.0]], [V3], {"temperature": 0.0}),
    ([[0.0, 1.0, 2.0]], [V3], {"temperature": True}),
    ([[0.0, 1.0, 2.0]], [V3], {"teacher_form": "prob"}),
    ([[0.0, 1.0, 2.0]], [V3], {"direction": "both"}),
    ([[0.0, 1.0, 2.0]], [V3], {"base": 1.0}),
    ([[0.0, 1.0, 2.0]], [V3], {"axis": 2}),
    ([[0.0, 1.0, 2.0]], [V3], {"axis": True}),
    ([[0.0, 1.0, 2.0]], [V3], {"bogus": 1}),
    # values the full path makes warn or not finite (its warnings are errors here)
    ([[1e308, -1e308, 0.0]], [V3], {}),  # z - max overflows
    ([[0.0, 1.0, 2.0]], [[1e308, -1e308, 0.0]], {}),
    ([[0.0, -INF, 1.0]], [V3], {}),  # D(t || s) = +inf
    ([[0.0, -INF, 1.0]], [P3], {"teacher_form": "probs", "temperature": 2.0}),
    ([[0.0, 2.0, 1.0]], [[0.5, 0.0, 0.5]], {"teacher_form": "probs", "direction": "reverse"}),
    ([[0.0, 2.0, 1.0]], [[0.5, 0.5, 0.0]], {"teacher_form": "probs", "temperature": 1e-300}),
]


@pytest.mark.parametrize(("student", "teacher", "kwargs"), BAD)
def test_issue13_small_distill_errors_are_the_full_paths(student, teacher, kwargs) -> None:
    """Every error (and warning) of a small float64 call is the full path's, and where the
    full path has none, so is its value."""
    z = np.array(student, dtype=np.float64)
    v = np.array(teacher, dtype=np.float64)

    def full_loss(*args: Any, **kw: Any) -> Any:
        return LOSS.__wrapped__(_distill.prepare_distillation(*args, **kw))  # type: ignore[attr-defined]

    def full_gradient(*args: Any, **kw: Any) -> Any:
        return GRAD.__wrapped__(_distill.prepare_distillation(*args, **kw))  # type: ignore[attr-defined]

    same_outcomes((LOSS, GRAD), (full_loss, full_gradient), (z, v), kwargs)


def test_issue13_small_distill_transcendentals_are_numpys(monkeypatch) -> None:
    """NumPy's ufuncs do the transcendentals: for the benchmark's call one np.exp and one
    np.log1p for both sides (stacked), then one np.exp for the loss (of the teacher) or
    for the gradient (of both, stacked)."""
    student, teacher = _case((4, 10), 5, "logits")
    want_loss, want_grad = _full(student, teacher)
    calls = record_calls(monkeypatch, np, ("exp", "log1p", "log"))
    _only_hybrid(monkeypatch)
    same_bits(LOSS(student, teacher), want_loss)
    assert calls == ["exp", "log1p", "exp"]
    same_bits(GRAD(student, teacher), want_grad)
    assert calls == ["exp", "log1p", "exp"] * 2


_REAL_KL_LOSS = _small_targets_numba.kl_loss64


def test_issue13_small_distill_a_hybrid_off_by_a_rounding_fails(monkeypatch) -> None:
    """The bit-for-bit checks catch a hybrid whose only fault is one rounding: the loss
    times T squared as T * (T * KL), or one ulp in the reduced loss."""
    student, teacher = _case((8, 10), 8, "logits")
    _check(student, teacher, {"temperature": 3.0})  # the real one passes

    def t_twice(log_p: Any, log_q: Any, p: Any, factor: float, reduce_with: Any) -> Any:
        t = np.sqrt(factor)
        kl = _small_targets_numba.kl_rows64(log_p, log_q, p, 1.0)
        return _small_targets_numba.reduce_rows64(t * (t * kl), reduce_with)

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "kl_loss64", t_twice)
        with pytest.raises(AssertionError):
            _check(student, teacher, {"temperature": 3.0, "reduction": "none"})

    def one_ulp_more(*args: Any) -> tuple[bool, float]:
        ok, value = _REAL_KL_LOSS(*args)
        return ok, float(np.nextafter(value, np.inf))

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "kl_loss64", one_ulp_more)
        with pytest.raises(AssertionError):
            _check(student, teacher, {})
