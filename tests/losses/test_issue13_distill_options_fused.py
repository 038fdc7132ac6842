r"""Issue 13 follow-up: large NumPy :func:`crossent.distillation_loss` calls of every
``teacher_form`` and ``direction`` take the fused kernels (``_distill_fused``).

On main the kernels took teacher logits with ``direction='forward'`` only; a teacher
of probabilities or log-probabilities, or the reverse KL, ran the full path (some 5
to 10 times slower at 256 x 1000). Now the teacher reaches the kernels as logits (its
log-probabilities, or the log of its probabilities formed in float64), the reverse
direction as the forward kernel of the roles swapped and a reverse backward kernel
(``_distill_rows.Options``).

Oracle: the full path itself on the same arrays with the class axis first (``axis=0``:
``_distill_fused`` takes the classes last only), float64: within 1e-13 of the terms'
scale; float32 results within a float32 rounding of it. Every test here fails on main:
the spy sees no fused call there.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses import _distill_rows

FORMS = ("logits", "probs", "log_probs")
DIRECTIONS = ("forward", "reverse")
TEMPERATURES = (1e-3, 0.3, 1.0, 2.5, 1e3)


@pytest.fixture
def fused(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The options of each call of the kernels (``_distill_rows.forward_statistics``)."""
    seen: list[tuple[str, str]] = []
    statistics = _distill_rows.forward_statistics

    def spy(*args: Any, **kwargs: Any) -> Any:
        options = kwargs.get("options", _distill_rows.FORWARD_LOGITS)
        seen.append((options.teacher_form, options.direction))
        return statistics(*args, **kwargs)

    monkeypatch.setattr(_distill_rows, "forward_statistics", spy)
    return seen


def _full_path(z: np.ndarray, t: np.ndarray, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """The full path's per-row loss and gradient (``'none'``; classes on axis 0)."""
    zt, tt = np.ascontiguousarray(z.T), np.ascontiguousarray(t.T)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = crossent.distillation_loss(zt, tt, axis=0, reduction="none", **options)
        grad = crossent.distillation_loss_grad(zt, tt, axis=0, reduction="none", **options)
    return np.asarray(loss, np.float64), np.asarray(grad, np.float64).T


def _inputs(
    form: str, dtype: type, rows: int = 40, classes: int = 600, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Hard rows (gaps of 1e3, near ties, teacher probabilities 0, masked classes), the
    teacher in ``form``, and the largest gap (the terms' scale)."""
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal((rows, classes))
    v = 3.0 * rng.standard_normal((rows, classes))
    z[0, :3], v[0, :3] = (0.0, 1e3, -1e3), (1e3, 0.0, -1e3)  # probabilities that underflow
    v[1] = z[1] + 2.0**-20 * rng.standard_normal(classes)  # near rows
    v[2] = z[2]
    v[3, :50] = -np.inf  # teacher probabilities 0 (the student's too: reverse finite)
    z[3, :50] = -np.inf
    v[4, 7] = -np.inf  # a teacher probability 0 under the student's mass (reverse: inf)
    shifted = v - v.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    teacher = {"logits": v, "probs": np.exp(log_p), "log_probs": log_p}[form]
    gap = float(np.ptp(np.where(np.isfinite(z), z, 0.0)))
    return z.astype(dtype), teacher.astype(dtype), gap


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", FORMS)
def test_fused_options_equal_the_full_path(
    teacher_form: str,
    direction: str,
    temperature: float,
    dtype: type,
    fused: list[tuple[str, str]],
) -> None:
    """Loss and gradient of every option by the kernels, rows the full path's."""
    z, t, gap = _inputs(teacher_form, dtype)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = np.asarray(crossent.distillation_loss(z, t, reduction="none", **options))
        grad = crossent.distillation_loss_grad(z, t, reduction="none", **options)
    assert len(fused) >= 2  # (an infinite row: the far-row guard's second look too)
    assert set(fused) == {(teacher_form, direction)}
    fused.clear()
    truth, truth_grad = _full_path(z, t, **options)
    assert fused == []
    np.testing.assert_array_equal(np.isfinite(loss), np.isfinite(truth))
    assert not np.isnan(loss).any()
    finite = np.isfinite(truth)
    scale = temperature * (temperature + gap)
    eps = 1e-13 if dtype == np.float64 else 4 * 2.0**-23
    np.testing.assert_array_less(np.abs(loss[finite] - truth[finite]), eps * scale)
    both = finite & np.isfinite(truth_grad).all(1)
    error = np.abs(grad.astype(np.float64)[both] - truth_grad[both])
    np.testing.assert_array_less(error, eps * scale / temperature + 1e-300)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_teacher_at_t1_is_taken_as_it_is(
    teacher_form: str, direction: str, fused: list[tuple[str, str]]
) -> None:
    r"""At :math:`T = 1` the full path takes the teacher's probabilities as they are
    (rows summing to :math:`1 + 3\cdot 10^{-6}`, within float32's tolerance): so do the
    kernels (``_distill_numba._given``; without it the loss, a KL of some
    :math:`10^{-3}`, is off by thousands of float32 ulps)."""
    rng = np.random.default_rng(13)
    v = rng.standard_normal((64, 400))
    p = np.exp(v) / np.exp(v).sum(1, keepdims=True) * (1 + 3e-6)
    z = (v + 0.05 * rng.standard_normal(v.shape)).astype(np.float32)
    t = (p if teacher_form == "probs" else np.log(p)).astype(np.float32)
    options = dict(teacher_form=teacher_form, direction=direction)
    loss = crossent.distillation_loss(z, t, reduction="none", **options)
    grad = crossent.distillation_loss_grad(z, t, reduction="none", **options)
    assert fused == [(teacher_form, direction)] * 2
    truth, truth_grad = _full_path(z, t, **options)
    np.testing.assert_allclose(loss, truth, rtol=2.0**-22, atol=0)
    np.testing.assert_allclose(grad, truth_grad, rtol=0, atol=2.0**-22 * 0.05)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
@pytest.mark.parametrize("bad", ["sum", "nan", "above-one"])
def test_invalid_teacher_raises_the_full_paths_error(
    bad: str, teacher_form: str, direction: str, temperature: float
) -> None:
    """A teacher that fails validation in one row of a large call: the full path's
    ``InputError`` (the kernels' screen at :math:`T = 1`, the full check elsewhere,
    then the full path names it); with ``validate=False`` a number."""
    rng = np.random.default_rng(3)
    v = rng.standard_normal((64, 400))
    p = np.exp(v) / np.exp(v).sum(1, keepdims=True)
    if bad == "sum":
        p[17] *= 1.01
    elif bad == "nan":
        p[17, 5] = np.nan
    else:  # an entry above 1 in a row summing to 1: the other entries negative
        p[17] = 0.0
        p[17, :2] = 1.0 + 1e-15, -1e-15
    z = rng.standard_normal(p.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = p if teacher_form == "probs" else np.log(p)
    if teacher_form == "log_probs" and bad == "above-one":
        t[17] = np.log(np.exp(v[17]) / np.exp(v[17]).sum()) + 0.01  # (exp-sum 1.01)
    options = dict(teacher_form=teacher_form, direction=direction, temperature=temperature)
    with pytest.raises(InputError) as error, np.errstate(invalid="ignore"):
        crossent.distillation_loss(z, t, **options)
    with pytest.raises(InputError) as full, np.errstate(invalid="ignore"):
        crossent.distillation_loss(z.T, t.T, axis=0, **options)
    assert "17" in str(error.value)
    swapped = re.sub(r"index \((\d+), (\d+)\)", r"index (\2, \1)", str(full.value))
    assert str(error.value) == swapped


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("teacher_form", ["probs", "log_probs"])
def test_valid_teacher_is_screened_by_the_kernels(
    teacher_form: str, direction: str, temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid teacher passes the kernels' screen at every temperature: the fused call
    gives the result itself (``_distill_fused.loss`` and ``gradient`` return no None,
    which would run the full path to validate)."""
    from crossent.losses import _distill_fused

    results: list[object] = []
    for name in ("loss", "gradient"):
        original = getattr(_distill_fused, name)

        def spy(*args: Any, original: Any = original) -> Any:
            results.append(original(*args))
            return results[-1]

        monkeypatch.setattr(_distill_fused, name, spy)
    z, t, _ = _inputs(teacher_form, np.float32, rows=32, classes=700, seed=4)
    z, t = z[5:], t[5:]  # (no hard rows: ordinary ones)
    options = dict(temperature=temperature, teacher_form=teacher_form, direction=direction)
    crossent.distillation_loss(np.ascontiguousarray(z), np.ascontiguousarray(t), **options)
    crossent.distillation_loss_grad(np.ascontiguousarray(z), np.ascontiguousarray(t), **options)
    assert len(results) == 2
    assert all(r is not None for r in results)
