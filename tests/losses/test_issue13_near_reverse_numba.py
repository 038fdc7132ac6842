r"""Issue 13: the near-row reverse gradient compiled (``_near_rows_numba``), and the lean
path's reverse near rows in one compiled call.

``NearRows.gradient(forward=False)`` of float64 NumPy rows is ``near_reverse_rows64``:
``_far_gaps.reverse_distillation_gradient64`` (:math:`s \odot (D - \sum_c s_c D_c)`,
:math:`D` the log-ratio less the student's top class's) one row at a time, with libm's
exp in place of NumPy's loop. An ulp of :math:`s_c` moves :math:`\sum_c s_c D_c` by up
to :math:`s_c|D_c|`, which may be a few times :math:`|D_j - \sum_c s_c D_c|`: against
that formula and the array-API one (:math:`-p \odot (U - M)` of ``_parts``) the
compiled gradient is within 8 ulps of the row's largest entry over 3600 random near
rows (in 99 rows of 100, 5), pinned at 16 (:data:`ULPS_FORMULAS`); against mpmath,
where it is NumPy's to the ulp (observed: 6, both), at 8. The lean path
(``_small_distill``) forms its reverse near rows by the same row function
(``near_reverse_gradient64``), so it stays the full path bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import mpmath
import numpy as np
import pytest

pytest.importorskip("numba")

import crossent
from crossent.losses import _near_rows, _near_rows_numba
from crossent.losses._far_gaps import reverse_distillation_gradient64, tempered_log_softmax64
from crossent.losses._near_rows import KL_FLOOR, NearRows
from crossent.losses._near_rows_numba import near_reverse_rows64
from losses.small_target_checks import DISTILL, same_bits
from losses.test_issue13_near_gradient_numba import _ulps_of_top

ULPS = 8
ULPS_FORMULAS = 16


def _array_api_formula(z: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    r""":math:`-p \odot (U - M)` of ``_parts``: ``NearRows``' reverse gradient given the
    softened rows (as other namespaces form it), in NumPy."""
    log_s = tempered_log_softmax64(z, t)[2]
    log_t = tempered_log_softmax64(v, t)[2]
    return NearRows(z, v, t, np, log_s, log_t).gradient(forward=False)


def _random_near_rows(count: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """``count`` blocks of 3 near rows ``(z, v, T)``: T of 1 + i (even i) or 1 to 1e300
    (odd), 2 to 50 classes, logits of size 1 to 1e3, teachers 1e-3 to 1e-10 away."""
    rng = np.random.default_rng(seed)
    drawn = zip(
        rng.integers(2, 51, count),
        rng.choice([1.0, 10.0, 1e3], count),
        rng.choice([1e-3, 1e-6, 1e-10], count),
        10.0 ** rng.uniform(0.0, 300.0, count),
        strict=True,
    )
    for i, (classes, size, step, wide) in enumerate(drawn):
        z = size * rng.standard_normal((3, int(classes)))
        yield z, z + step * rng.standard_normal(z.shape), float(wide if i % 2 else 1.0 + i)


def test_compiled_reverse_gradient_matches_the_numpy_formulas(monkeypatch) -> None:
    """Random near rows: temperatures 1 to 1e300, 2 to 50 classes, logits of size 1 to
    1e3 (at T near 1, classes whose s underflows: 0), teachers 1e-3 to 1e-10 away;
    against ``reverse_distillation_gradient64`` (the compiled gradient off) and the
    array-API formula."""
    cases = [(*rows, near_reverse_rows64(*rows)) for rows in _random_near_rows(150, 31)]
    monkeypatch.setattr(_near_rows, "_compiled_reverse_gradient", lambda rows: None)
    for z, v, temperature, compiled in cases:
        formulas = NearRows(z, v, temperature).gradient(forward=False)
        assert _ulps_of_top(compiled, formulas) <= ULPS_FORMULAS
        # (s of softmax_pair's pairs: NumPy's exp of rounded log s was up to 39 units
        # off on these rows, branch nearrows2)
        s = _near_rows.softmax_pair(z, temperature, np)[2]
        numpy_formula = reverse_distillation_gradient64(z, v, temperature, s=s)
        assert _ulps_of_top(compiled, numpy_formula) <= ULPS_FORMULAS
        assert _ulps_of_top(compiled, _array_api_formula(z, v, temperature)) <= ULPS_FORMULAS


def _mpmath_gradient(z: np.ndarray, v: np.ndarray, t: float) -> list[float]:
    r""":math:`s \odot (d - \sum_c s_c d_c)`, :math:`d = z - v`, of one row in mpmath,
    rounded: 1200 bits, as the entry of a dominant class of :math:`s = 1 - 10^{-116}` is
    :math:`10^{-116}` of its terms (logits of 1e3 at T = 1)."""
    with mpmath.workprec(1200):
        temperature = mpmath.mpf(t)
        zs = [mpmath.mpf(float(c)) for c in z]
        scaled = [c / temperature for c in zs]
        top = max(scaled)
        weights = [mpmath.exp(c - top) for c in scaled]
        total = mpmath.fsum(weights)
        s = [w / total for w in weights]
        d = [a - mpmath.mpf(float(b)) for a, b in zip(zs, v, strict=True)]
        mean = mpmath.fsum(a * b for a, b in zip(s, d, strict=True))
        return [float(a * (b - mean)) for a, b in zip(s, d, strict=True)]


def _hard_rows(kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Rows whose reverse gradient is far below its terms: a dominant class (its entry
    :math:`10^{-13}` of the log-ratios), :math:`T = 10^{300}` (s uniform to 300 digits),
    :math:`T = 10^8` with teachers 0.3 away, logits of 1e3 at T = 1 (s underflows), and
    logits past :math:`2^{1018}` (the rows scaled by :math:`2^{-4}`)."""
    rng = np.random.default_rng(len(kind))
    z = rng.standard_normal((3, 12))
    noise = rng.standard_normal(z.shape)
    if kind == "dominant":
        z[:, 0] += 30.0
        return z, z + 1e-6 * noise, 1.0
    if kind == "huge T":
        return z, z + noise, 1e300
    if kind == "T 1e8":
        return z, z + 0.3 * noise, 1e8
    if kind == "underflow":
        return 1e3 * z, 1e3 * z + 1e-7 * noise, 1.0
    wide = 1e308 * np.tanh(z)
    return wide, wide * (1.0 + 1e-13 * noise), 1e306


@pytest.mark.parametrize("kind", ["dominant", "huge T", "T 1e8", "underflow", "wide"])
def test_compiled_reverse_gradient_against_mpmath(kind: str) -> None:
    """:func:`_hard_rows` against mpmath, by ``NearRows`` (the compiled gradient)."""
    z, v, temperature = _hard_rows(kind)
    compiled = NearRows(z, v, temperature).gradient(forward=False)
    for row in range(z.shape[0]):
        want = np.array(_mpmath_gradient(z[row], v[row], temperature))
        assert np.abs(want).max() > 0.0
        assert _ulps_of_top(compiled[row], want) <= ULPS, (compiled[row], want)


def test_rows_in_a_batch_are_the_rows_alone() -> None:
    """Each row of a batch (identical, near, ordinary, wide, with classes whose s
    underflows) is that row formed alone, bit for bit; an identical row +0."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((5, 9))
    v = np.stack([z[0], z[1] + 1e-7 * rng.standard_normal(9), rng.standard_normal(9), z[3], z[4]])
    v[3, 4] += 0.5  # one class apart, the rest equal
    z[4] = 1e308 * np.tanh(z[4])  # past 2^1018 (scaled), beside rows that are not
    v[4] = z[4] * (1.0 + 1e-12 * rng.standard_normal(9))
    for temperature in (0.01, 1.0, 2.5):
        batch = near_reverse_rows64(z, v, temperature)
        same_bits(batch[0], np.zeros(9))
        for row in range(5):
            same_bits(batch[row], near_reverse_rows64(z[row], v[row], temperature))


def _mixed_rows(form: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 10: identical, very close and close (the reverse near rows, by the KL),
    ordinary, one near its student of logits of size 30 (probabilities down to
    :math:`10^{-40}`), and one of a KL of 1.5 ``KL_FLOOR`` (the common path's: handed on
    by ``reverse_gradient64``, not near); the teacher as logits or probabilities."""
    rng = np.random.default_rng(19)
    z = rng.standard_normal((6, 10))
    z[4] *= 30.0
    v = z.copy()
    v[1] += 1e-7 * rng.standard_normal(10)
    v[2] += 1e-3 * rng.standard_normal(10)
    v[3] = rng.standard_normal(10)
    v[4] += 1e-5 * rng.standard_normal(10)
    noise = rng.standard_normal(10)
    v[5] += noise * math.sqrt(1.5 * KL_FLOOR / _reverse_kl(z[5], z[5] + noise))
    assert KL_FLOOR < _reverse_kl(z[5], v[5]) < 2.0 * KL_FLOOR
    if form == "probs":
        v = np.exp(v - np.log(np.sum(np.exp(v), axis=-1, keepdims=True)))
    return z, v


def _reverse_kl(z: np.ndarray, v: np.ndarray) -> float:
    r""":math:`D(s\,\|\,t)` of a row of logits at T = 1 (NumPy)."""
    log_s = tempered_log_softmax64(z[None], 1.0)[2][0]
    log_t = tempered_log_softmax64(v[None], 1.0)[2][0]
    return float(np.sum(np.exp(log_s) * (log_s - log_t)))


@pytest.mark.parametrize("form", ["logits", "probs"])
@pytest.mark.parametrize(
    "options",
    [
        {"dtype": np.float32},
        {},
        {"temperature": 3.0, "reduction": "sum", "base": 2},
        {"validate": False, "reduction": "none"},
        {"temperature": 0.5},
    ],
)
def test_lean_reverse_near_rows_are_the_full_paths(monkeypatch, form, options) -> None:
    """The lean path (the full path patched to fail) on :func:`_mixed_rows` and on each
    row alone: the full path's loss and gradient bit for bit, the near rows formed by
    ``near_reverse_gradient64``."""
    options = dict(options, direction="reverse", teacher_form=form)
    dtype = options.pop("dtype", np.float64)
    z, v = _mixed_rows(form)
    z, v = z.astype(dtype), v.astype(dtype)
    cases = [(z, v)] + [(z[row], v[row]) for row in range(6)]
    wants = [DISTILL.full(a, b, **options) for a, b in cases]
    calls = []
    compiled = _near_rows_numba.near_reverse_gradient64
    monkeypatch.setattr(
        _near_rows_numba,
        "near_reverse_gradient64",
        lambda *args: calls.append(1) or compiled(*args),
    )
    DISTILL.only_shortcut(monkeypatch)
    for (a, b), (loss, grad) in zip(cases, wants, strict=True):
        same_bits(crossent.distillation_loss(a, b, **options), loss)
        same_bits(crossent.distillation_loss_grad(a, b, **options), grad)
    assert len(calls) >= 3  # the batch and the rows alone that are near
