r"""Issue 13 follow-up: distillation at large temperature: the lean small call, the full
path, float32 through both, and the generic path (``array_api_strict``).

At :math:`T = 10^8` the KL of a row of logits of size 1 is :math:`10^{-17}`, the
common path's terms of size :math:`\log C`: on main, the row of :data:`ROWS` ``[0]``
gave :math:`T^2 D` = -1.06 (forward) and 1.99 (reverse) for a truth of 0.468, 0 at
:math:`T = 10^{100}` and :math:`10^{306}`, with gradients 0 or off by their own size
from :math:`T = 10^{16}` (``_near_rows`` forms such rows without cancellation).

Oracle: the definitions in mpmath at :math:`2\log_2 T + 160` bits (the log-softmax of
:math:`x/T` cancels :math:`\log_2 T` bits, the KL twice that), the analytic gradient
checked against ``mpmath.diff``. Ordinary rows (:math:`T` = 1, 2, 4) keep the common
path's bits: its own internals (``prepare_distillation``) formed as before, compared
bit for bit.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _distill_fused
from crossent.losses._distill import prepare_distillation
from crossent.losses._near_rows import CANCEL_SPREAD
from losses.small_target_checks import DISTILL

try:
    import array_api_strict as strict_xp
except ImportError:  # pragma: no cover - an optional backend
    strict_xp = None

TEMPERATURES = [1e4, 1e8, 1e16, 1e100, 1e306]
DIRECTIONS = ["forward", "reverse"]

ROWS = [
    ([1.0, 0.2, -0.5], [0.3, -0.4, 0.9]),  # the row of the report
    ([0.5, 0.5, -1.0, 2.0], [0.25, 0.25, 0.25, 0.25]),  # ties on both sides
    ([9.0, 0.0, -1.0, 0.5], [8.0, 0.5, -0.5, 0.0]),  # one class dominant
    ([0.7, -0.3], [0.1, 0.4]),  # two classes
]


def _bits(temperature: float) -> int:
    return 2 * max(0, math.ceil(math.log2(temperature))) + 160


def _log_softmax(x, temperature):
    xt = [(c if isinstance(c, mpmath.mpf) else mpmath.mpf(float(c))) / temperature for c in x]
    top = max(xt)
    lse = top + mpmath.log(mpmath.fsum(mpmath.exp(c - top) for c in xt))
    return [c - lse for c in xt]


def _loss(student, teacher, temperature, forward):
    """:math:`T^2 D` in mpmath (the working precision)."""
    t = mpmath.mpf(temperature)
    log_s, log_t = _log_softmax(student, t), _log_softmax(teacher, t)
    log_p, log_q = (log_t, log_s) if forward else (log_s, log_t)
    return t * t * mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))


def _gradient(student, teacher, temperature, forward):
    """:math:`T(s - t)` or :math:`T s (\\log s - \\log t - D)` in mpmath."""
    t = mpmath.mpf(temperature)
    log_s, log_t = _log_softmax(student, t), _log_softmax(teacher, t)
    s = [mpmath.exp(c) for c in log_s]
    if forward:
        return [t * (a - mpmath.exp(b)) for a, b in zip(s, log_t, strict=True)]
    kl = mpmath.fsum(a * (b - c) for a, b, c in zip(s, log_s, log_t, strict=True))
    return [t * a * (b - c - kl) for a, b, c in zip(s, log_s, log_t, strict=True)]


def _truth(student, teacher, temperature, forward):
    """``(loss, gradient)`` rounded to float64."""
    with mpmath.workprec(_bits(temperature)):
        loss = _loss(student, teacher, temperature, forward)
        grad = _gradient(student, teacher, temperature, forward)
    return float(loss), [float(g) for g in grad]


def _paths(z, v, **keywords):
    """``(loss rows, gradient)`` of the public call (the lean path, for these sizes), of
    the full path (the public bodies, with the far-row check) and of the generic path
    (``array_api_strict`` arrays, where it is installed), as NumPy arrays."""
    loss, grad = DISTILL.full_parts()
    public = (
        crossent.distillation_loss(z, v, reduction="none", **keywords),
        crossent.distillation_loss_grad(z, v, reduction="sum", **keywords),
    )
    full = (loss(z, v, reduction="none", **keywords), grad(z, v, reduction="sum", **keywords))
    paths = {"lean": public, "full": full}
    if strict_xp is not None:
        zs, vs = strict_xp.asarray(z), strict_xp.asarray(v)
        generic = (
            crossent.distillation_loss(zs, vs, reduction="none", **keywords),
            crossent.distillation_loss_grad(zs, vs, reduction="sum", **keywords),
        )
        paths["generic"] = (np.asarray(generic[0]), np.asarray(generic[1]))
    return paths


def _close(got, want, scale, ulps):
    return abs(float(got) - want) <= ulps * np.spacing(abs(scale))


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_rows_at_large_temperature_are_the_truth(temperature, direction) -> None:
    r"""Each row's :math:`T^2 D` to 8 ulps, each gradient entry to 8 ulps of its row's
    largest, on both paths. On main: -1.06, 1.99, 1.23, 0 (loss), gradients 0 or
    wrong in their leading digit from 1e16. The forward gradient at :math:`T = 10^4`
    (a spread of about :math:`10^{-4}` of the largest teacher probability, above
    ``_near_rows.SPREAD_FLOOR``) is the common path's, to its documented bound
    :math:`2^{17}(1 + \log C)` ulps of the row's largest entry."""
    forward = direction == "forward"
    common = forward and temperature == 1e4
    if temperature in (1e4, 1e100):
        _check_the_oracle_gradient(temperature, forward)
    for student, teacher in ROWS:
        z, v = np.array([student]), np.array([teacher])
        loss, grad = _truth(student, teacher, temperature, forward)
        for name, (rows, gradient) in _paths(
            z, v, temperature=temperature, direction=direction
        ).items():
            assert _close(rows[0], loss, loss, 8), (name, student, rows[0], loss)
            top = max(abs(g) for g in grad)
            ulps = 2**17 * (1 + math.log(len(student))) if common else 8
            for got, want in zip(gradient[0], grad, strict=True):
                assert _close(got, want, top, ulps), (name, student, gradient[0], grad)


FAR_CLASS_ROWS = [
    # (student, teacher, T): a class of small weight whose log-ratio is not small
    ([0.0, -19e158], [0.0, -20e158], 1e158),  # T^2 past the range, the loss finite
    ([0.0, 3.05e5, 1e3], [0.0, 3e5, 0.0], 1e4),  # one class dominant, by 30 T
    ([0.0, -5.0], [0.0, -1000.0], 1.0),  # a teacher class that underflows (its t e^u)
]


@pytest.mark.parametrize(("student", "teacher", "temperature"), FAR_CLASS_ROWS)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_rows_with_a_far_class(student, teacher, temperature, direction) -> None:
    r"""The loss and the gradient (of its largest entry) to 32 ulps where a class's
    :math:`|U|/T` passes the series (its :math:`T^2\varphi` by powers of two): that
    class's weight :math:`e^{-30}` is the exponential of a rounded logarithm (30 ulps).
    On main: the loss 45 ulps off (1e4), 3e-15 relative (1e158 reverse)."""
    loss, grad = _truth(student, teacher, temperature, direction == "forward")
    paths = _paths(
        np.array([student]), np.array([teacher]), temperature=temperature, direction=direction
    )
    top = max(abs(g) for g in grad)
    for name, (rows, gradient) in paths.items():
        assert _close(rows[0], loss, loss, 32), (name, rows[0], loss)
        for got, want in zip(gradient[0], grad, strict=True):
            assert _close(got, want, top, 32), (name, gradient[0], grad)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_float32_rows(direction) -> None:
    """Float32 logits: the truth of the float32 values, rounded to float32 (2 float32 ulps),
    by the lean path and by the blocked float64 copies of a large call."""
    student, teacher = ROWS[0]
    z32, v32 = np.array([student], np.float32), np.array([teacher], np.float32)
    many = (np.repeat(z32, 6000, axis=0), np.repeat(v32, 6000, axis=0))  # past the lean path
    for temperature in (1e8, 1e306):
        loss, grad = _truth(z32[0], v32[0], temperature, direction == "forward")
        for z, v in ((z32, v32), many):
            keywords = {"temperature": temperature, "direction": direction}
            rows = crossent.distillation_loss(z, v, reduction="none", **keywords)
            gradient = crossent.distillation_loss_grad(z, v, reduction="sum", **keywords)
            assert rows.dtype == gradient.dtype == np.float32
            assert abs(float(rows[0]) - loss) <= 2 * np.spacing(np.float32(loss))
            top = np.float32(max(abs(g) for g in grad))
            for got, want in zip(gradient[-1], grad, strict=True):
                assert abs(float(got) - want) <= 2 * np.spacing(top)


def test_nearly_equal_rows_at_ordinary_temperature() -> None:
    """A student within 1e-9 of its teacher at T = 1 and 2: KL near 1e-19, once lost to
    the terms' rounding (1e-16) on main, negative there too."""
    student = [0.3 + 1e-9, -1.2 - 2e-9, 0.8, 2.0 + 1e-9]
    teacher = [0.3, -1.2, 0.8, 2.0]
    for temperature in (1.0, 2.0):
        for direction in DIRECTIONS:
            loss, grad = _truth(student, teacher, temperature, direction == "forward")
            paths = _paths(
                np.array([student]),
                np.array([teacher]),
                temperature=temperature,
                direction=direction,
            )
            for name, (rows, gradient) in paths.items():
                assert _close(rows[0], loss, loss, 64), (name, rows[0], loss)
                top = max(abs(g) for g in grad)
                for got, want in zip(gradient[0], grad, strict=True):
                    assert _close(got, want, top, 64), (name, gradient[0], grad)


def _check_the_oracle_gradient(temperature: float, forward: bool) -> None:
    """The oracle's analytic gradient is ``mpmath.diff`` of its loss (the report's row)."""
    student, teacher = ROWS[0]
    with mpmath.workprec(_bits(temperature) + 200):
        grad = _gradient(student, teacher, temperature, forward)
        for j in range(len(student)):

            def loss_of(x, j=j):
                moved = [mpmath.mpf(c) for c in student]
                moved[j] = x
                return _loss(moved, teacher, temperature, forward)

            numeric = mpmath.diff(loss_of, mpmath.mpf(student[j]))
            assert abs(numeric - grad[j]) <= mpmath.mpf(2) ** -60 * abs(grad[j])


def _random_rows(seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((40, 6))
    v = z + rng.standard_normal((40, 6)) * np.logspace(-12, 1, 40)[:, None]
    return z, v


@pytest.mark.parametrize("temperature", [1.0, 3.0, 1e3, 1e8, 1e16])
def test_the_loss_is_never_negative(temperature) -> None:
    """Teachers from 1e-12 to 10 away from their students: no row below 0 on either path
    (on main: about a third of the rows at T = 1e8, some at T = 1)."""
    z, v = _random_rows(7)
    big = (np.repeat(z, 70, axis=0), np.repeat(v, 70, axis=0))  # past the lean path
    for direction in DIRECTIONS:
        keywords = {"temperature": temperature, "direction": direction, "reduction": "none"}
        assert (crossent.distillation_loss(z, v, **keywords) >= 0).all()
        assert (crossent.distillation_loss(*big, **keywords) >= 0).all()


def _common_path(z, v, temperature, direction):
    """The common path's rows and gradient, from its own internals (as before issue 13's
    follow-up): ``T^2 * row_kl``, and ``T (s - t)`` or ``T s (log s - log t - D)``."""
    d = prepare_distillation(z, v, temperature=temperature, direction=direction, reduction="none")
    kl = d.row_kl()
    rows = kl if temperature == 1.0 else (temperature * temperature) * kl
    s, t = np.exp(d.log_s), np.exp(d.log_t)
    if direction == "forward":
        grad = s - t if temperature == 1.0 else temperature * (s - t)
    else:
        grad = temperature * (s * (d.log_s - d.log_t - kl[..., None]))
        # where s_r > 1/2, the top class's entry is minus the sum of the others
        # (``_dominant_entry``: the formula's d_r - D cancels there)
        for i in np.flatnonzero(s.max(axis=-1) > 0.5):
            top = int(np.argmax(d.log_s[i]))
            others = grad[i].copy()
            others[top] = 0.0
            grad[i, top] = -np.add.reduce(others)
    return rows, grad


@pytest.mark.parametrize("shape", [(8, 10), (300, 64)])  # the lean path, the full path
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_ordinary_rows_keep_their_bits(shape, temperature, direction, monkeypatch) -> None:
    r"""Random rows (normal logits) at T = 1, 2, 4: the common path's bits (the fused
    kernels of large calls, ``_distill_fused``, turned off: their rows are the common
    path's within float64 rounding, ``test_issue13_distill_numpy_fused.py``). Forward
    rows of :math:`\max_c |s_c - t_c|` below ``_near_rows.CANCEL_SPREAD`` :math:`\max_c
    t_c` are formed without the difference since branch distfwd1: within the common
    formula's own error of it (some ulps of :math:`T \max_c t_c`), not its bits."""
    monkeypatch.setattr(_distill_fused, "FUSED_ELEMENTS", 1 << 62)
    rng = np.random.default_rng(shape[0] + int(temperature))
    z, v = rng.standard_normal(shape), rng.standard_normal(shape)
    rows, grad = _common_path(z, v, temperature, direction)
    keywords = {"temperature": temperature, "direction": direction}
    got = crossent.distillation_loss(z, v, reduction="none", **keywords)
    assert got.tobytes() == rows.tobytes()
    got = crossent.distillation_loss_grad(z, v, reduction="sum", **keywords)
    kept = np.ones(shape[0], dtype=bool)
    if direction == "forward":
        d = prepare_distillation(z, v, temperature=temperature, reduction="none")
        s, t = np.exp(d.log_s), np.exp(d.log_t)
        kept = np.abs(s - t).max(axis=-1) >= CANCEL_SPREAD * t.max(axis=-1)
        bound = 8 * np.spacing(temperature * t.max(axis=-1, keepdims=True))
        assert np.all(np.abs(got - grad)[~kept] <= np.broadcast_to(bound, grad.shape)[~kept])
    assert got[kept].tobytes() == grad[kept].tobytes()


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_one_dimensional_row(direction) -> None:
    """A 1-D call (one row, its loss a NumPy scalar) at T = 1e8, on both paths."""
    student, teacher = ROWS[0]
    loss, grad = _truth(student, teacher, 1e8, direction == "forward")
    z, v = np.array(student), np.array(teacher)
    full_loss, full_grad = DISTILL.full_parts()
    keywords = {"temperature": 1e8, "direction": direction, "reduction": "sum"}
    for got in (crossent.distillation_loss(z, v, **keywords), full_loss(z, v, **keywords)):
        assert _close(got, loss, loss, 8), (got, loss)
    top = max(abs(g) for g in grad)
    for gradient in (
        crossent.distillation_loss_grad(z, v, **keywords),
        full_grad(z, v, **keywords),
    ):
        assert gradient.shape == (3,)
        for got, want in zip(gradient, grad, strict=True):
            assert _close(got, want, top, 8), (gradient, grad)
