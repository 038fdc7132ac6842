r"""Issue 13 follow-up: near distillation rows with classes masked (``-inf``) on both
sides are formed without cancellation.

A class that is ``-inf`` in both the student and the teacher has :math:`s_c = t_c = 0`:
the exact KL and gradient are those of the row with the class removed (the oracle
here: mpmath, 40 digits, the masked classes dropped; the gradient 0 there, ``+0`` as
the common path gives it). Such a near row (``v = z + 10^{-6}`` noise, 5 of 50 classes
masked) went to the common path's cancelling formula in every path
(``_near_rows.rows_to_form`` took only finite rows): :math:`T^2 D` 7e-4 relative off at
:math:`T = 1`, and negative at :math:`T = 100` in reverse (-1.0e-12 against 5.6e-13).
Checked here: the small NumPy call (one row, ``_small_distill``), a call past 16384
entries (``_distill_fused`` then ``NearRows``), the NumPy formulas of ``NearRows``
(Numba's left out) and in torch's operations, and ``crossent.torch``; a ``-inf`` on
one side only stays outside the near rows. On main (d25f216) 24 of the 26 tests fail (3 by
the missing ``_near_rows.formable``, 21 by their values; the 2 one-sided near rows
pass there: they guard the change's reach).
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _near_rows

torch = pytest.importorskip("torch")
import crossent.torch as ct  # noqa: E402

TEMPERATURES = (1.0, 2.0, 100.0)
DIRECTIONS = ("forward", "reverse")
TOLERANCE = 2.0**-44  # relative: main's error is 2e-10 (gradient) to 3 (loss)


def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two student rows of 50 logits, 5 classes ``-inf``; the teacher 1e-6 away, masked
    at the same classes, and 5e-6 above (row 0) or below (row 1) (the forward gradient's
    :math:`a` at a masked class of either sign: its ``-0`` either way); the mask."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(50)
    mask = np.zeros(50, bool)
    mask[[0, 10, 20, 30, 49]] = True
    z[mask] = -np.inf
    z = np.stack([z, z])
    v = z + 1e-6 * rng.standard_normal((2, 50)) + np.array([[5e-6], [-5e-6]])
    return z, v, mask


@mpmath.workdps(40)
def _kl_and_gradient(z: np.ndarray, v: np.ndarray, temperature: float, direction: str):
    r""":math:`T^2 D` and its gradient in the student's logits ``z`` (0 where
    :math:`s_c = 0`) of one row, in 40 digits: the classes of a probability 0 give no
    term."""
    t = mpmath.mpf(temperature)

    def softmax(x: np.ndarray) -> list[mpmath.mpf]:
        scaled = [mpmath.mpf(float(a)) / t if a > -np.inf else None for a in x]
        top = max(a for a in scaled if a is not None)
        weights = [mpmath.exp(a - top) if a is not None else mpmath.mpf(0) for a in scaled]
        total = mpmath.fsum(weights)
        return [w / total for w in weights]

    s, p = softmax(z), softmax(v)
    first, second = (p, s) if direction == "forward" else (s, p)
    kl = mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(first, second, strict=True) if a)
    if direction == "forward":
        grad = [t * (a - b) for a, b in zip(s, p, strict=True)]
    else:
        grad = [t * a * (mpmath.log(a / b) - kl) if a else 0 for a, b in zip(s, p, strict=True)]
    return float(t * t * kl), np.array([float(g) for g in grad])


@functools.cache
def _oracle(temperature: float, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_kl_and_gradient` of each row of :func:`_rows`."""
    z, v, _ = _rows()
    pairs = [_kl_and_gradient(a, b, temperature, direction) for a, b in zip(z, v, strict=True)]
    return np.array([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def _check(loss: np.ndarray, gradient: np.ndarray, temperature: float, direction: str) -> None:
    """Each row's ``loss`` and ``gradient`` against the oracle: relative to the loss and
    to the gradient's largest entry; non-negative; ``+0`` at the masked classes."""
    expected, expected_gradient = _oracle(temperature, direction)
    mask = _rows()[2]
    assert np.all(loss >= 0.0)
    assert np.all(np.abs(loss - expected) <= TOLERANCE * expected), (loss, expected)
    scale = np.abs(expected_gradient).max(axis=1)
    error = np.abs(gradient - expected_gradient).max(axis=1)
    assert np.all(error <= TOLERANCE * scale), (error, scale)
    assert np.array_equal(gradient[:, mask], np.zeros((2, 5)))
    assert not np.signbit(gradient[:, mask]).any()


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_small_call(temperature: float, direction: str) -> None:
    """Two rows: the lean path (``_small_distill``, the compiled near rows)."""
    z, v, _ = _rows()
    options = {"temperature": temperature, "direction": direction, "reduction": "none"}
    loss = crossent.distillation_loss(z, v, **options)
    gradient = crossent.distillation_loss_grad(z, v, **options)
    _check(loss, gradient, temperature, direction)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy-formulas"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_large_call(
    temperature: float, direction: str, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 rows of 50 (20000 entries: fused where forward), two of them the near masked
    rows between ordinary ones; with and without the compiled ``NearRows``."""
    if not compiled:
        monkeypatch.setattr(_near_rows, "_compiled", lambda rows: None)
    z, v, _ = _rows()
    rng = np.random.default_rng(1)
    student = rng.standard_normal((400, 50))
    teacher = rng.standard_normal((400, 50))
    student[7:9], teacher[7:9] = z, v
    options = {"temperature": temperature, "direction": direction, "reduction": "none"}
    loss = crossent.distillation_loss(student, teacher, **options)
    gradient = crossent.distillation_loss_grad(student, teacher, **options)
    _check(loss[7:9], gradient[7:9], temperature, direction)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_torch(temperature: float) -> None:
    """``crossent.torch.distillation_loss`` (forward): loss and autograd's gradient."""
    z, v, _ = _rows()
    student = torch.tensor(z, requires_grad=True)
    loss = ct.distillation_loss(student, torch.tensor(v), temperature, reduction="none")
    loss.sum().backward()
    _check(loss.detach().numpy(), student.grad.numpy(), temperature, "forward")


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_near_rows_in_torch_operations(direction: str) -> None:
    """``NearRows`` in another namespace's operations (torch; the generic path's
    ``_near_rows_of_namespace``), at :math:`T = 100`."""
    z, v, _ = _rows()
    t = 100.0
    zt, vt = torch.tensor(z), torch.tensor(v)
    log_s, log_t = (torch.log_softmax(x / t, dim=-1) for x in (zt, vt))
    assert bool(_near_rows.formable(zt, vt, torch).all())
    rows = _near_rows.NearRows(zt, vt, t, torch, log_s, log_t)
    forward = direction == "forward"
    _check(rows.loss(forward=forward).numpy(), rows.gradient(forward=forward).numpy(), t, direction)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_one_sided_near_row(direction: str) -> None:
    """A near row with a ``-inf`` on the first side of the KL only (beside a logit of
    -40: a KL of 1e-18, flagged) is not formed by ``NearRows`` (:math:`D_c` infinite):
    the common path's value, finite, to its absolute error; a gradient finite."""
    z = np.random.default_rng(2).standard_normal((2, 50))
    v = z.copy()
    first = v if direction == "forward" else z
    second = z if direction == "forward" else v
    first[:, 3] = -np.inf
    second[:, 3] = -40.0
    options = {"direction": direction, "reduction": "none"}
    loss = crossent.distillation_loss(z, v, **options)
    gradient = crossent.distillation_loss_grad(z, v, **options)
    expected = [_kl_and_gradient(a, b, 1.0, direction)[0] for a, b in zip(z, v, strict=True)]
    assert np.all(np.abs(loss - expected) <= 2.0**-48)
    assert np.isfinite(gradient).all()


def test_one_sided_infinity_is_not_near() -> None:
    """A ``-inf`` on one side only (the student's beside a teacher logit, the teacher's
    beside a student logit) or a row masked throughout is not formable; the masked
    row is."""
    z, v, _ = _rows()
    rows_z, rows_v = np.tile(z[0], (5, 1)), np.tile(v[0], (5, 1))
    rows_z[1, 3] = -np.inf
    rows_v[2, 4] = -np.inf
    rows_z[3, 5] = rows_v[3, 5] = np.inf
    rows_z[4] = rows_v[4] = -np.inf
    assert _near_rows.formable(rows_z, rows_v, np).tolist() == [True] + [False] * 4
    flagged = _near_rows.rows_to_form(np.ones(5, bool), rows_z, rows_v)
    assert flagged is not None
    assert flagged.tolist() == [True] + [False] * 4
