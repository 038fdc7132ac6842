r"""Issue 13 follow-up: distillation at far gaps (logit gaps near or past the float64
range), NumPy path: the loss and its gradient, both directions, every teacher form,
temperatures 1, 2, 0.5, 1e306 and 1e200 (whose square overflows), reductions none, sum
and mean; no warning may escape.

Oracle: the definitions in mpmath, at 400 bits more than the largest logit over T holds
before the point (:func:`_truth`), checked against fewer. The gradient's
oracle is the analytic derivative, checked against ``mpmath.diff`` (finite differences in
float64 mean nothing at these magnitudes). A value must be the truth rounded to 4 ulps,
or, where terms far larger than itself cancel in it (or an :math:`e^{\sigma}` of a large
:math:`|\sigma|` makes it), to 4 ulps of those terms: what float64 arithmetic on the
inputs can give. :func:`test_most_entries_are_exact` counts the (at most 8) entries that need it.

On main (``git archive main src``): the reverse gradients of rows with a far teacher gap
are ``-inf``/NaN with RuntimeWarnings at every T; the losses at T = 1e306 and 1e200 are
NaN (reverse with a far teacher gap, forward with a far student gap); the reverse
gradient at T = 1e306 loses a student gap that T brings back in range (0 for -2.8e221).
"""

from __future__ import annotations

import functools
import math
import warnings

import mpmath
import numpy as np
import pytest

import crossent

_BITS = 400

_EPS = 2.0**-52


def _teacher_scores(teacher: list[float], form: str) -> list[mpmath.mpf]:
    """The teacher's logits (up to a constant): v, log t, or the log-probabilities."""
    if form == "probs":
        return [mpmath.log(mpmath.mpf(c)) if c > 0 else mpmath.mpf("-inf") for c in teacher]
    return [mpmath.mpf(c) for c in teacher]


def _log_softmax(x: list[mpmath.mpf], temperature: mpmath.mpf) -> list[mpmath.mpf]:
    xt = [c / temperature for c in x]
    top = max(xt)
    lse = top + mpmath.log(mpmath.fsum(mpmath.exp(c - top) for c in xt))
    return [c - lse for c in xt]


def _kl(log_p: list[mpmath.mpf], log_q: list[mpmath.mpf]) -> tuple[mpmath.mpf, mpmath.mpf]:
    r"""``(KL, scale)``: :math:`\sum_c p_c(\log p_c - \log q_c)` and the size of its
    terms, :math:`\sum_c \tilde p_c(|\log p_c| + |\log q_c|)` (:func:`_rough`)."""
    pairs = [(mpmath.exp(a), a, b) for a, b in zip(log_p, log_q, strict=True) if a > -mpmath.inf]
    kl = mpmath.fsum(p * (a - b) for p, a, b in pairs)
    return kl, mpmath.fsum(_rough(p, a) * (abs(a) + abs(b)) for p, a, b in pairs)


def _rough(p: mpmath.mpf, log_p: mpmath.mpf) -> mpmath.mpf:
    r""":math:`p(1 + |\log p|)`: a probability formed as :math:`e^{\log p}` in float64 is
    :math:`p` to about :math:`|\log p|` ulps (the exponential's condition)."""
    return p * (1 + abs(log_p))


def _exact(student, teacher, temperature, form, direction):
    """``(loss, grad, scales)`` of one row in mpmath at the working precision: T^2 KL, its
    analytic gradient in the student's logits, and the size of the terms of each (the
    loss's first)."""
    t = mpmath.mpf(temperature)
    log_s = _log_softmax([mpmath.mpf(c) for c in student], t)
    log_t = _log_softmax(_teacher_scores(teacher, form), t)
    s = [mpmath.exp(c) for c in log_s]
    if direction == "forward":
        kl, scale = _kl(log_t, log_s)
        grad = [t * (sc - mpmath.exp(c)) for sc, c in zip(s, log_t, strict=True)]
        terms = [
            t * (_rough(sc, a) + _rough(mpmath.exp(b), b))
            for sc, a, b in zip(s, log_s, log_t, strict=True)
        ]
    else:
        kl, scale = _kl(log_s, log_t)
        grad = [t * sc * (a - b - kl) for sc, a, b in zip(s, log_s, log_t, strict=True)]
        # the terms of s_j (d_j - sum_c s_c d_c), d = T (log s - log t) up to a constant
        d = [t * (a - b) for a, b in zip(log_s, log_t, strict=True)]
        mean_abs = mpmath.fsum(
            _rough(sc, a) * abs(dc) for sc, a, dc in zip(s, log_s, d, strict=True)
        )
        terms = [
            _rough(sc, a) * (abs(dc) + mean_abs) for sc, a, dc in zip(s, log_s, d, strict=True)
        ]
    return t * t * kl, grad, [t * t * scale, *terms]


@functools.cache
def _truth(student, teacher, temperature, form, direction):
    """``(loss, grad, scales, loss_scale)`` of :func:`_exact`, rounded to float64 (the
    scales as mpf), at :data:`_BITS` more bits than the largest :math:`|x_c/T|` has
    before the point (the log-softmax cancels them), checked against 200 bits fewer:
    the same float64, or within 2**-300 of the scales."""
    top = max(abs(c) for c in (*student, *teacher) if math.isfinite(c) and c != 0.0)
    wide = _BITS + max(0, math.ceil(math.log2(top) - math.log2(temperature)))
    found = []
    for bits in (wide - 200, wide):
        with mpmath.workprec(bits):
            loss, grad, scales = _exact(list(student), list(teacher), temperature, form, direction)
            found.append(([loss, *grad], scales))
    with mpmath.workprec(wide):
        for a, b, scale in zip(found[0][0], found[1][0], found[1][1], strict=True):
            same = float(a) == float(b) or abs(a - b) <= mpmath.mpf(2) ** -300 * scale
            same = same or (mpmath.isnan(a) and mpmath.isnan(b))  # (t = 0 < s)
            assert same, "the oracle needs more bits"
    values, scales = [float(x) for x in found[1][0]], found[1][1]
    return values[0], values[1:], scales[1:], scales[0]


def _close(ours: float, truth: float, scale: object = 0) -> bool:
    """``ours`` is ``truth`` (inf of its sign) or within 4 ulps of it, or of ``scale`` (an
    mpf: it may be past the float64 range)."""
    if math.isnan(ours) or math.isnan(truth):
        return False
    if math.isinf(truth) or math.isinf(ours):
        return ours == truth
    error = abs(mpmath.mpf(ours) - mpmath.mpf(truth))
    return error <= 4 * max(mpmath.mpf(np.spacing(abs(truth))), 2 * _EPS * abs(scale))


def _calls(f, *args, **kwargs):
    """``f`` with every warning an error (no RuntimeWarning may escape)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args, **kwargs)


ORDINARY = ([0.5, -0.25, 1.5], [0.2, 0.3, 0.5])
"""An ordinary row, batched with each far one (its logits and its teacher probabilities)."""

ROWS = [
    # (student, teacher, teacher_form): a gap past the float64 range on one side
    ([0.0, 1.0, -2.0], [0.0, -1e308, 1e308], "logits"),
    ([0.0, 1.0, -2.0], [1e308, -1e308, 0.0], "logits"),
    ([0.0, 1.0, -2.0], [0.0, -1.5e308, 1.5e308], "logits"),
    ([0.0, 1e308, -1e308], [0.0, 1.0, 2.0], "logits"),
    ([0.0, 1.0, -2.0], [0.0, -1e308, -1.7e308], "log_probs"),
    ([0.0, 1e308, -1e308], [0.2, 0.3, 0.5], "probs"),
    # (found by a fuzz: T^2 D of T = 1e306 was -inf; a finite D of 6e307 times T^2 warned)
    ([3.0, 5e307, 0.0], [1e300, 1e308, 0.0], "logits"),
    ([0.0, 1.0, -2.0], [0.0, -1.7e308, -1.7e308], "log_probs"),
]
TEMPERATURES = [1.0, 2.0, 0.5, 1e306, 1e200]
DIRECTIONS = ["forward", "reverse"]


def _batch(student, teacher, form, temperature):
    """The far row and an ordinary one (its teacher in ``form``), or the far row twice
    where :math:`T > 2` (there an ordinary row's :math:`T^2 D` and :math:`T(s - t)` are
    lost to cancellation on the common path: not a far gap, not this file's subject)."""
    if temperature > 2.0:
        return np.array([student, student]), np.array([teacher, teacher])
    probs = np.array(ORDINARY[1])
    other = {"probs": probs, "log_probs": np.log(probs), "logits": np.log(probs) + 3.0}[form]
    return np.array([student, ORDINARY[0]]), np.array([teacher, other])


def _case_list():
    for index, (student, teacher, form) in enumerate(ROWS):
        for temperature in TEMPERATURES:
            for direction in DIRECTIONS:
                yield pytest.param(
                    student,
                    teacher,
                    form,
                    temperature,
                    direction,
                    id=f"row{index}-T{temperature:g}-{direction}",
                )


CASES = list(_case_list())


def _expected(z, v, temperature, form, direction):
    return [
        _truth(tuple(zr), tuple(vr), temperature, form, direction)
        for zr, vr in zip(z, v, strict=True)
    ]


@pytest.mark.parametrize(("student", "teacher", "form", "temperature", "direction"), CASES)
def test_loss_rows_and_reductions(student, teacher, form, temperature, direction) -> None:
    """Each row's T^2 KL, and their sum and mean, are the truth rounded (``inf`` only where
    it overflows). On main: NaN at T = 1e306 (reverse, teacher far) and T = 1e200 (an
    overflowing T**2 times a finite KL; T**2 times 0 too), with warnings."""
    z, v = _batch(student, teacher, form, temperature)
    keywords = {"temperature": temperature, "teacher_form": form, "direction": direction}
    truth = _expected(z, v, temperature, form, direction)
    rows = _calls(crossent.distillation_loss, z, v, reduction="none", **keywords)
    for got, (loss, _, _, scale) in zip(rows, truth, strict=True):
        assert _close(float(got), loss, scale), (got, loss)
    with mpmath.workprec(_BITS):
        total = mpmath.fsum(mpmath.mpf(row[0]) for row in truth)  # (exact: two rows)
        scale = mpmath.fsum(row[3] for row in truth)
    got_sum = _calls(crossent.distillation_loss, z, v, reduction="sum", **keywords)
    got_mean = _calls(crossent.distillation_loss, z, v, reduction="mean", **keywords)
    assert _close(float(got_sum), float(total), scale), (got_sum, total)
    assert _close(float(got_mean), float(total / 2), scale / 2), (got_mean, total / 2)


@pytest.mark.parametrize(("student", "teacher", "form", "temperature", "direction"), CASES)
def test_gradient_entries(student, teacher, form, temperature, direction) -> None:
    """Each gradient entry is the analytic derivative rounded, for every reduction; never
    NaN, ``inf`` only where it overflows. On main: ``-inf``/NaN in the reverse rows whose
    teacher has a far gap, with RuntimeWarnings."""
    z, v = _batch(student, teacher, form, temperature)
    keywords = {"temperature": temperature, "teacher_form": form, "direction": direction}
    truth = _expected(z, v, temperature, form, direction)
    for reduction, scale in (("none", 1.0), ("sum", 1.0), ("mean", 0.5)):
        grad = _calls(crossent.distillation_loss_grad, z, v, reduction=reduction, **keywords)
        assert not np.isnan(grad).any()
        for row, (_, entries, terms, _) in zip(grad, truth, strict=True):
            for got, entry, term in zip(row, entries, terms, strict=True):
                # (a 'mean' halves the truth exactly: a power of two)
                assert _close(float(got), entry * scale, term * scale), (reduction, got, entry)


def test_most_entries_are_exact() -> None:
    r"""Every far-row gradient entry off by more than 4 ulps of itself has terms 100 times
    larger or more (cancelled by them, or an :math:`e^{\sigma}` of :math:`|\sigma| \ge
    100`, whose float64 rounding of :math:`\sigma` alone moves it that much); 8 at most."""
    loose = []
    for student, teacher, form in ROWS:
        for temperature in TEMPERATURES:
            for direction in DIRECTIONS:
                keywords = {"temperature": temperature, "teacher_form": form}
                grad = _calls(
                    crossent.distillation_loss_grad,
                    np.array([student]),
                    np.array([teacher]),
                    direction=direction,
                    **keywords,
                )[0]
                found = _truth(tuple(student), tuple(teacher), temperature, form, direction)
                for got, entry, term in zip(grad, found[1], found[2], strict=True):
                    if not _close(float(got), entry):
                        assert abs(entry) * 100 <= term, (student, teacher, temperature, got)
                        loose.append(entry)
    assert len(loose) <= 8, loose


@pytest.mark.parametrize("temperature", [1e-300, 1e-160])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("teacher", "form"), [([0.5, 0.5, 0.0], "probs"), ([1.0, 0.0, 3.0], "logits")]
)
def test_square_of_temperature_underflows(teacher, form, direction, temperature) -> None:
    """A small call (the lean path's size) whose T**2 underflows: T^2 D by powers of two
    (on main, and with the lean path taking it, 0 for 1e-300)."""
    z, v = np.array([[0.0, 2.0, 1.0]]), np.array([teacher])
    keywords = {"temperature": temperature, "teacher_form": form, "direction": direction}
    loss, entries, terms, scale = _truth((0.0, 2.0, 1.0), tuple(teacher), *keywords.values())
    got = _calls(crossent.distillation_loss, z, v, **keywords)
    assert _close(float(got), loss, scale), (got, loss)
    if math.isinf(loss):  # t = 0 < s: no gradient (not this file's subject)
        return
    grad = _calls(crossent.distillation_loss_grad, z, v, **keywords)[0]
    for value, entry, term in zip(grad, entries, terms, strict=True):
        assert _close(float(value), entry, term), (value, entry)


def test_oracle_gradient_is_the_derivative() -> None:
    """The oracle's analytic gradient is the derivative of its loss (``mpmath.diff`` at 400
    bits) on rows with gaps of 1e300, both directions, T = 2."""
    student, teacher = [0.0, 1.0, -2.0], [0.0, -1e300, 1e300]
    with mpmath.workprec(400):
        for direction in DIRECTIONS:
            _, grad, _ = _exact(student, teacher, 2.0, "logits", direction)
            for j in range(3):

                def loss_at(x, j=j, direction=direction):
                    moved = [mpmath.mpf(c) for c in student]
                    moved[j] = x
                    return _exact(moved, teacher, 2.0, "logits", direction)[0]

                slope = mpmath.diff(loss_at, mpmath.mpf(student[j]))
                assert abs(slope - grad[j]) <= mpmath.mpf(2) ** -300 * (1 + abs(grad[j]))


def test_ordinary_rows_keep_their_bits() -> None:
    """Ordinary rows batched with far ones are the common path's bits (loss and gradient),
    and a call of ordinary rows alone is the common path itself."""
    rng = np.random.default_rng(13)
    z = rng.standard_normal((5, 4))
    v = rng.standard_normal((5, 4))
    far_z, far_v = z.copy(), v.copy()
    far_v[0] = [0.0, -1e308, 1e308, 1.0]
    for temperature in (1.0, 2.0, 1e200):
        for direction in DIRECTIONS:
            keywords = {"temperature": temperature, "direction": direction, "reduction": "none"}
            loss = crossent.distillation_loss
            common = loss._common_path(z, v, **keywords)
            np.testing.assert_array_equal(loss(far_z, far_v, **keywords)[1:], common[1:])
            np.testing.assert_array_equal(loss(z, v, **keywords), common)
            grad = crossent.distillation_loss_grad
            ordinary = grad(z[1:], v[1:], **keywords)
            np.testing.assert_array_equal(_calls(grad, far_z, far_v, **keywords)[1:], ordinary)
