"""Issue 13 follow-up: distillation rows whose student is its teacher, bit for bit.

Such a row's KL and gradient are exactly 0 (both directions); the common path flags it
as a near row (a KL below ``_near_rows.KL_FLOOR``, a spread below ``SPREAD_FLOOR``), and
``_near_rows.NearRows`` gave +0 for it by its formulas (100 us for a row of 10). NumPy
calls whose rows are all such now skip the formulas (the same +0, on the lean and the
full path alike); a row beside them that is only near is still formed (mpmath oracle).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _near_rows
from losses.small_target_checks import DISTILL, same_bits

try:
    import array_api_strict as strict_xp
except ImportError:  # pragma: no cover - an optional backend
    strict_xp = None

TEMPERATURES = [1.0, 4.0, 1e8]
DIRECTIONS = ["forward", "reverse"]


def _paths(z, v, *, generic=True, **keywords):
    """``{name: (loss rows, gradient)}`` of the lean path (the public call, for these
    sizes), the full path and the generic path (``array_api_strict``, if installed)."""
    loss, grad = DISTILL.full_parts()
    paths = {
        "lean": (
            crossent.distillation_loss(z, v, reduction="none", **keywords),
            crossent.distillation_loss_grad(z, v, reduction="sum", **keywords),
        ),
        "full": (loss(z, v, reduction="none", **keywords), grad(z, v, reduction="sum", **keywords)),
    }
    if generic and strict_xp is not None:
        zs, vs = strict_xp.asarray(z), strict_xp.asarray(v)
        paths["generic"] = (
            np.asarray(crossent.distillation_loss(zs, vs, reduction="none", **keywords)),
            np.asarray(crossent.distillation_loss_grad(zs, vs, reduction="sum", **keywords)),
        )
    return paths


def _identical_cases():
    """``(student, teacher, teacher_form)``: logits, and probabilities whose log is the
    student's logits bit for bit (the teacher's scores are :math:`\\log t`)."""
    rng = np.random.default_rng(13)
    z = rng.standard_normal((3, 10))
    probs = np.exp(z - np.log(np.exp(z).sum(axis=-1, keepdims=True)))
    return [(z, z.copy(), "logits"), (np.log(probs), probs, "probs")]


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_identical_rows_give_zero_on_every_path(temperature, direction) -> None:
    """0 loss and gradient, +0 on the NumPy paths (a -0.0 or any other value fails)."""
    for z, v, form in _identical_cases():
        keywords = {"temperature": temperature, "direction": direction, "teacher_form": form}
        for name, (rows, gradient) in _paths(z, v, **keywords).items():
            assert np.all(rows == 0.0), (name, form)
            assert np.all(gradient == 0.0), (name, form)
            if name != "generic":  # (its reverse gradient is -(p * 0): -0.0)
                same_bits(rows, np.zeros(z.shape[0]))
                same_bits(gradient, np.zeros(z.shape))


def _raise(*args, **kwargs):
    raise AssertionError("the near-row formulas ran on identical rows")


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_identical_rows_skip_the_formulas(monkeypatch, direction) -> None:
    """No ``_parts`` (which every formula starts from) and no reverse gradient of
    ``_far_gaps`` for NumPy rows all identical (main ran them: the 100 us)."""
    monkeypatch.setattr(_near_rows, "_parts", _raise)
    monkeypatch.setattr(_near_rows, "reverse_distillation_gradient64", _raise)
    z, v, _ = _identical_cases()[0]
    paths = _paths(z, v, generic=False, temperature=4.0, direction=direction)
    for rows, gradient in paths.values():
        same_bits(rows, np.zeros(3))
        same_bits(gradient, np.zeros(z.shape))


def _truth(student, teacher, temperature, forward):
    """``(T^2 D, gradient)`` of one row in mpmath (200 bits), rounded to float64."""
    with mpmath.workprec(200):
        t = mpmath.mpf(temperature)

        def log_softmax(x):
            xt = [mpmath.mpf(float(c)) / t for c in x]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(c) for c in xt))
            return [c - lse for c in xt]

        log_s, log_t = log_softmax(student), log_softmax(teacher)
        s = [mpmath.exp(c) for c in log_s]
        if forward:
            loss = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_t, log_s, strict=True))
            grad = [t * (a - mpmath.exp(b)) for a, b in zip(s, log_t, strict=True)]
        else:
            loss = mpmath.fsum(a * (b - c) for a, b, c in zip(s, log_s, log_t, strict=True))
            grad = [t * a * (b - c - loss) for a, b, c in zip(s, log_s, log_t, strict=True)]
        return float(t * t * loss), [float(g) for g in grad]


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_identical_beside_near_rows(temperature, direction) -> None:
    """A batch of an identical row, a near one and an ordinary one: the lean path is the
    full path bit for bit, the identical row +0, the near one within 8 ulps of mpmath
    (a shortcut taken for the whole block when only one row is identical fails)."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((3, 6))
    v = z.copy()
    v[1] += 1e-5 * rng.standard_normal(6)
    v[2] = rng.standard_normal(6)
    keywords = {"temperature": temperature, "direction": direction}
    paths = _paths(z, v, **keywords)
    same_bits(paths["lean"][0], paths["full"][0])
    same_bits(paths["lean"][1], paths["full"][1])
    rows, gradient = paths["lean"]
    same_bits(rows[:1], np.zeros(1))
    same_bits(gradient[0], np.zeros(6))
    loss, grad = _truth(z[1], v[1], temperature, direction == "forward")
    assert math.isclose(rows[1], loss, rel_tol=8 * 2.0**-52), (rows[1], loss)
    top = max(abs(g) for g in grad)
    for got, want in zip(gradient[1], grad, strict=True):
        assert abs(got - want) <= 8 * np.spacing(top), (gradient[1], grad)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("base", [None, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_identical_calls_keep_the_full_paths_zeros(direction, base, dtype) -> None:
    """The lean path's whole-call shortcut (every row identical) is the full path bit for
    bit: the reduction's scale too (base 1/2: :math:`\\ln b < 0`, a gradient of -0.0),
    float32, one row and a batch, every reduction."""
    rng = np.random.default_rng(3)
    for shape in ((10,), (4, 5)):
        z = rng.standard_normal(shape).astype(dtype)
        for reduction in ("none", "mean", "sum"):
            keywords = {"direction": direction, "base": base, "reduction": reduction}
            for temperature in (1.0, 3.0):
                want = DISTILL.full(z, z.copy(), temperature=temperature, **keywords)
                got = (
                    crossent.distillation_loss(z, z.copy(), temperature=temperature, **keywords),
                    crossent.distillation_loss_grad(
                        z, z.copy(), temperature=temperature, **keywords
                    ),
                )
                same_bits(got[0], want[0])
                same_bits(got[1], want[1])
                assert np.all(got[1] == 0.0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_identical_rows_with_an_infinite_logit(direction) -> None:
    """A ``-inf`` logit on both sides (a masked class): ``NearRows`` forms the row, whose
    loss and gradient are then exactly 0 (the common path left a residual of 1e-16 at
    T = 3 or 7 until issue 13's masked near rows); the lean path's value is the full
    path's."""
    z = 5.0 * np.random.default_rng(1).standard_normal((8, 5))
    z[:, 1] = -np.inf
    for temperature in (3.0, 7.0):
        keywords = {"temperature": temperature, "direction": direction, "reduction": "none"}
        want = DISTILL.full(z, z.copy(), **keywords)
        assert not np.any(want[0])  # (the exact 0: the masked class dropped)
        assert not np.any(want[1])
        same_bits(crossent.distillation_loss(z, z.copy(), **keywords), want[0])
        same_bits(crossent.distillation_loss_grad(z, z.copy(), **keywords), want[1])


def test_rows_to_form_with_every_row_flagged() -> None:
    """``rows_to_form``'s shortcut where every row is flagged (no copy of them) picks
    the rows a plain per-row test picks (finite logits and difference, or ``-inf`` on
    both sides, one class finite), as where some rows are not flagged; a 0-d mask (one
    row) stays a 0-d array."""
    values = [0.0, 1.0, -np.inf, np.inf, np.nan, 1.7e308, -1.7e308]
    rng = np.random.default_rng(5)
    z = rng.choice(values, size=(200, 3))
    v = rng.choice(values, size=(200, 3))
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.array(
            [
                all(math.isfinite(a - b) or a == b == -math.inf for a, b in zip(*row, strict=True))
                and any(math.isfinite(a - b) for a, b in zip(*row, strict=True))
                for row in zip(z, v, strict=True)
            ]
        )
    same_bits(_near_rows.rows_to_form(np.ones(200, bool), z, v), want)
    some = np.arange(200) % 3 != 0
    same_bits(_near_rows.rows_to_form(some, z, v), want & some)
    one = _near_rows.rows_to_form(np.array(True), np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert type(one) is np.ndarray
    assert one.shape == ()
    assert _near_rows.rows_to_form(np.ones(1, bool), np.full((1, 3), np.inf), v[:1]) is None
