"""Issue 13, "Small inputs": the lean distillation loss on small float64 inputs.

``distillation_loss`` and its gradient on small float64 student logits and teachers
(``'logits'`` or ``'probs'``, either direction, any temperature, reduction and base, the
classes last) are a hybrid (``losses/_small_distill.py``): compiled calls do the generic
path's arithmetic in its order around NumPy's own np.exp, np.log1p and np.log, so the
values are the full path's (``_distill.prepare_distillation`` and the public functions'
bodies) bit for bit. These tests pin that over random and hard rows, and that a hybrid
off by one rounding fails them; that the benchmark's calls take the hybrid and that
everything else (and every bad input) is handed to the full path with its errors is
tested with the soft-target loss's in ``test_issue13_small_soft_paths.py``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _small_numba, _small_targets_numba
from losses.small_call_paths import record_calls
from losses.small_target_checks import DISTILL, distill_case, same_bits

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


@pytest.mark.parametrize(
    ("shape", "form", "options"), list(itertools.product(SHAPES, FORMS, OPTIONS))
)
def test_issue13_small_distill_is_the_full_path_bit_for_bit(
    monkeypatch, shape, form, options
) -> None:
    reverse = options.get("direction") == "reverse"  # (D(s || t) = +inf where t = 0 < s)
    student, teacher = distill_case(shape, len(shape) * 1000 + shape[-1], form, zeros=not reverse)
    kwargs = {**options, "teacher_form": form}
    want_loss, want_grad = DISTILL.full(student, teacher, **kwargs)
    DISTILL.only_shortcut(monkeypatch)
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
            want = DISTILL.full(student_row, teacher_row, **kwargs)
        if not all(np.isfinite(np.asarray(w, dtype=np.float64)).all() for w in want):
            # D(s || t) is +inf where t = 0 < s: handed on (tested below)
            assert reverse or form == "probs"
            continue
        DISTILL.check(student_row[None], teacher_row[None], kwargs)
        DISTILL.check(student_row, teacher_row, kwargs)


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
        DISTILL.check(student, teacher, options)
        with np.errstate(divide="ignore"):
            logits = np.log(teacher) * rng.uniform(0.5, 3.0)
        DISTILL.check(student, logits, {**options, "teacher_form": "logits"})


def test_issue13_small_distill_transcendentals_are_numpys(monkeypatch) -> None:
    """NumPy's ufuncs do the transcendentals: for the benchmark's call one np.exp and one
    np.log1p for both sides (stacked), then one np.exp for the loss (of the teacher) or
    for the gradient (of both, stacked)."""
    student, teacher = distill_case((4, 10), 5, "logits")
    want_loss, want_grad = DISTILL.full(student, teacher)
    calls = record_calls(monkeypatch, np, ("exp", "log1p", "log"))
    DISTILL.only_shortcut(monkeypatch)
    same_bits(LOSS(student, teacher), want_loss)
    assert calls == ["exp", "log1p", "exp"]
    same_bits(GRAD(student, teacher), want_grad)
    assert calls == ["exp", "log1p", "exp"] * 2


_REAL_KL_LOSS = _small_targets_numba.kl_loss64


def test_issue13_small_distill_a_hybrid_off_by_a_rounding_fails(monkeypatch) -> None:
    """The bit-for-bit checks catch a hybrid whose only fault is one rounding: the loss
    times T squared as T * (T * KL), or one ulp in the reduced loss."""
    student, teacher = distill_case((8, 10), 8, "logits")
    DISTILL.check(student, teacher, {"temperature": 3.0})  # the real one passes

    def t_twice(log_p: Any, log_q: Any, p: Any, factor: float, reduce_with: Any) -> Any:
        t = np.sqrt(factor)
        kl = _small_targets_numba.kl_rows64(log_p, log_q, p, 1.0)
        return _small_numba.reduce_rows(t * (t * kl), reduce_with)

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "kl_loss64", t_twice)
        with pytest.raises(AssertionError):
            DISTILL.check(student, teacher, {"temperature": 3.0, "reduction": "none"})

    def one_ulp_more(*args: Any) -> tuple[bool, float]:
        ok, value = _REAL_KL_LOSS(*args)
        return ok, float(np.nextafter(value, np.inf))

    with monkeypatch.context() as patched:
        patched.setattr(_small_targets_numba, "kl_loss64", one_ulp_more)
        with pytest.raises(AssertionError):
            DISTILL.check(student, teacher, {})
