"""Issue 13: the near-row forward gradient compiled (``_near_rows_numba``), and the lean
path's near rows in one compiled call.

``NearRows.gradient(forward=True)`` of float64 NumPy rows is ``near_gradient64``: the
NumPy formulas of ``_near_rows`` with libm's exp/expm1/log in place of NumPy's loops,
so within a few ulps of the row's largest entry of them (observed: up to 3, over 450
random rows; pinned at 8, as the loss), and of mpmath (observed: 2) on rows whose gradient
is far below its terms. The lean path (``_small_distill``) forms its near rows by the
same compiled rows (``near_forward_gradient64``, ``near_kl_loss64``), so it stays the
full path bit for bit: on rows beside identical, ordinary and "handed on but not near"
rows (``tempered_difference64``'s looser test: no :math:`|s_c - t_c|` of twice
``SPREAD_FLOOR``), whose flag is ``spread_is_small``'s to the last comparison.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

pytest.importorskip("numba")

import crossent
from crossent.losses import _near_rows, _near_rows_numba, _small_targets_numba
from crossent.losses._near_rows import SPREAD_FLOOR, NearRows, spread_is_small
from crossent.losses._near_rows_numba import near_gradient64, near_loss64
from losses.small_target_checks import DISTILL, same_bits

ULPS = 8


def _ulps_of_top(got: np.ndarray, want: np.ndarray) -> float:
    """The largest :math:`|g - w|` of a row in ulps of the row's largest :math:`|w|`."""
    top = np.max(np.abs(want), axis=-1, keepdims=True)
    return float(np.max(np.abs(got - want) / np.spacing(top)))


def test_compiled_gradient_matches_the_numpy_formulas(monkeypatch) -> None:
    """Random near rows: temperatures 1 to 1e300, 2 to 50 classes, logits of size 1 to
    1e3, teachers 1e-3 to 1e-10 away (the series of h and psi, and at T near 1 the
    direct forms of |U/T| >= 1/2); the NumPy formulas with the compiled gradient off.
    Rows sum to 0 within two ulps of the largest entry a class (the compiled rows are
    ``_distill_numba._exact_forward_row``'s since branch distfwd1: 80 ulps on a row of
    43 classes, each entry within 4.7 units of mpmath; 64 ulps was the bound before)."""
    rng = np.random.default_rng(29)
    cases = []
    for case in range(150):
        classes = int(rng.integers(2, 51))
        temperature = float(10.0 ** rng.uniform(0.0, 300.0)) if case % 2 else 1.0 + case
        z = rng.standard_normal((3, classes)) * rng.choice([1.0, 10.0, 1e3])
        v = z + rng.choice([1e-3, 1e-6, 1e-10]) * rng.standard_normal((3, classes))
        cases.append((z, v, temperature, near_gradient64(z, v, temperature)))
    monkeypatch.setattr(_near_rows, "_compiled_gradient", lambda rows: None)
    for z, v, temperature, compiled in cases:
        sums = np.abs(np.sum(compiled, axis=-1))
        assert np.all(sums <= 2 * compiled.shape[-1] * np.spacing(np.abs(compiled).max()))
        formulas = NearRows(z, v, temperature).gradient(forward=True)
        assert _ulps_of_top(compiled, formulas) <= ULPS


def _mpmath_gradient(z: np.ndarray, v: np.ndarray, t: float) -> list[float]:
    r""":math:`T(s - t)` of one row in mpmath (200 bits past :math:`\log_2 T`: the
    difference is :math:`1/T` of its terms), rounded to float64."""
    with mpmath.workprec(200 + int(math.log2(t))):
        temperature = mpmath.mpf(t)

        def softmax(x: np.ndarray) -> list[mpmath.mpf]:
            scaled = [mpmath.mpf(float(c)) / temperature for c in x]
            total = mpmath.fsum(mpmath.exp(c) for c in scaled)
            return [mpmath.exp(c) / total for c in scaled]

        return [float(temperature * (a - b)) for a, b in zip(softmax(z), softmax(v), strict=True)]


@pytest.mark.parametrize(
    ("temperature", "step"),
    [(1.0, 1e-3), (4.0, 1e-6), (1e8, 0.3), (1e300, 1.0), (3.0, math.inf), (1.0, math.inf)],
)
def test_compiled_gradient_against_mpmath(temperature: float, step: float) -> None:
    """Near rows (the series), and rows far apart (step inf: an independent teacher;
    at T = 1 classes with |a|/T >= 1/2, formed as T(s - t))."""
    rng = np.random.default_rng(int(math.log10(temperature)) + 7)
    z = rng.standard_normal((4, 12))
    v = (
        rng.standard_normal((4, 12))
        if math.isinf(step)
        else z + step * rng.standard_normal(z.shape)
    )
    compiled = near_gradient64(z, v, temperature)
    for row in range(z.shape[0]):
        want = np.array(_mpmath_gradient(z[row], v[row], temperature))
        assert _ulps_of_top(compiled[row], want) <= ULPS, (compiled[row], want)


def test_rows_in_a_batch_are_the_rows_alone() -> None:
    """Each row of a batch (identical, near, far apart: scratch rows reused, log s formed
    only for some) is that row formed alone, bit for bit; an identical row +0."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 9))
    v = np.stack([z[0], z[1] + 1e-7 * rng.standard_normal(9), rng.standard_normal(9), z[3]])
    v[3, 4] += 0.5  # one class apart, the rest equal
    for temperature in (1.0, 2.5):
        batch = near_gradient64(z, v, temperature)
        losses = near_loss64(z, v, temperature, forward=True)
        same_bits(batch[0], np.zeros(9))
        same_bits(losses[:1], np.zeros(1))
        for row in range(4):
            same_bits(batch[row], near_gradient64(z[row], v[row], temperature))
            same_bits(losses[row], near_loss64(z[row], v[row], temperature, forward=True)[()])


def test_compiled_spread_test_is_numpys() -> None:
    """``_spread_is_small`` against ``spread_is_small``: random rows about the floor, a
    row exactly at it (not below: ``<``), ties, and NaN (False)."""
    rng = np.random.default_rng(11)
    teacher = rng.dirichlet(np.ones(7), size=60)
    scale = SPREAD_FLOOR * np.max(teacher, axis=-1, keepdims=True)
    s = teacher + scale * rng.uniform(-1.5, 1.5, (60, 1)) * rng.uniform(-1.0, 1.0, teacher.shape)
    teacher[0] = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    s[0] = teacher[0] + [SPREAD_FLOOR / 2, -SPREAD_FLOOR / 2, 0.0, 0.0, 0.0, 0.0, 0.0]  # at it
    s[1] = teacher[1]
    s[2, 3] = np.nan
    teacher[3, 1] = np.nan
    want = spread_is_small(s - teacher, teacher, np)
    assert want[1]
    assert not np.any(want[[0, 2, 3]])
    assert 0 < want.sum() < 50
    for row in range(60):
        assert _near_rows_numba._spread_is_small(s[row], teacher[row]) == want[row], row


def test_tempered_difference_hands_on_every_near_row() -> None:
    """``tempered_difference64`` writes nothing and hands the call on wherever a row is
    near (its looser test implies it), down to a spread a hair below the floor of a
    teacher of nearly 1; an ordinary batch it forms."""
    rng = np.random.default_rng(5)
    for top in (0.999, 0.5, 0.05):
        teacher = np.full((3, 8), (1.0 - top) / 7)
        teacher[:, 2] = top
        s = teacher + rng.standard_normal((3, 8)) * 0.3  # ordinary rows (not probabilities)
        s[1] = teacher[1]
        s[1, 0] += 0.99 * SPREAD_FLOOR * top
        s[1, 2] -= 0.99 * SPREAD_FLOOR * top
        assert list(spread_is_small(s - teacher, teacher, np)) == [False, True, False]
        given = s.copy()
        assert not _small_targets_numba.tempered_difference64(s, teacher, 1.0, 2, 0.0)
        same_bits(s, given)
        ordinary = np.delete(s, 1, axis=0)
        expected = (ordinary - np.delete(teacher, 1, axis=0)) / 2
        for row, t_row, out in zip(ordinary, np.delete(teacher, 1, axis=0), expected, strict=True):
            r = int(np.argmax(row))
            if row[r] > 0.5 and t_row[r] > 0.5:  # (``_dominant_entry``, branch distillfwd)
                others = row - t_row
                others[r] = 0.0  # (NumPy's order: the row with a 0 at r)
                out[r] = -np.add.reduce(others) / 2
        assert _small_targets_numba.tempered_difference64(
            ordinary, np.delete(teacher, 1, axis=0), 1.0, 2, 0.0
        )
        same_bits(ordinary, expected)


def _mixed_rows(form: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 10: identical, very close (the gradient's near rows), handed on but not
    near (a spread of about 1.5 floors of a teacher of 0.2), close (the loss's near
    rows only) and ordinary; the teacher as logits or probabilities."""
    rng = np.random.default_rng(17)
    z = rng.standard_normal((5, 10))
    v = z.copy()
    v[1] += 1e-7 * rng.standard_normal(10)
    v[2] += 8e-5 * rng.standard_normal(10)
    v[3] += 1e-3 * rng.standard_normal(10)
    v[4] = rng.standard_normal(10)
    if form == "probs":
        v = np.exp(v - np.log(np.sum(np.exp(v), axis=-1, keepdims=True)))
    return z, v


@pytest.mark.parametrize("form", ["logits", "probs"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"validate": False, "reduction": "none"},
        {"temperature": 4.0, "reduction": "sum", "base": 2},
        {"temperature": 0.5},
        {"dtype": np.float32},
    ],
)
def test_lean_near_rows_are_the_full_paths(monkeypatch, form, options) -> None:
    """The lean path (the full path patched to fail) on :func:`_mixed_rows` and on each
    row alone: the full path's loss and gradient bit for bit, the near rows formed."""
    options = dict(options)
    dtype = options.pop("dtype", np.float64)
    options["teacher_form"] = form
    z, v = _mixed_rows(form)
    z, v = z.astype(dtype), v.astype(dtype)
    cases = [(z, v)] + [(z[row], v[row]) for row in range(5)]
    wants = [DISTILL.full(a, b, **options) for a, b in cases]
    ds = z.astype(np.float64)[:, 1:] - v.astype(np.float64)[:, 1:]
    assert np.all(np.isfinite(ds))
    DISTILL.only_shortcut(monkeypatch)
    for (a, b), (loss, grad) in zip(cases, wants, strict=True):
        same_bits(crossent.distillation_loss(a, b, **options), loss)
        same_bits(crossent.distillation_loss_grad(a, b, **options), grad)
