r"""The reverse-KL distillation gradient beside a teacher probability of exactly 0.

With :math:`s = \operatorname{softmax}(z/T)` and :math:`t` the softened teacher,
:math:`D(s\,\|\,t) = +\infty` wherever a class has :math:`t_c = 0 < s_c`, and it is
:math:`+\infty` on a whole neighbourhood of such logits :math:`z`: there is no
derivative. The formula :math:`T s \odot (\log s - \log t - D)` gave a mix of NaN
(:math:`\infty - \infty` where :math:`t_c = 0`) and ``-inf`` (elsewhere), which is
also what autograd of the plain formula gives in PyTorch and JAX; the limit as the
zeros rise to :math:`\epsilon` is :math:`\pm\infty` with signs that depend on how
several zeros rise. The gradient is now NaN in every class of such a row whose
student logit is above ``-inf``, 0 in a class whose logit is ``-inf`` (a masked
class, as in every row). A student ``-inf`` logit in each zero class instead gives a
finite loss (:math:`0\log 0 = 0`) and a finite gradient: float64 torch autograd of the
masked formula (the classes of ``-inf`` logits left out) and central finite differences
are the oracles.

On main every test here fails: the rows of an infinite loss had gradient entries of
``-inf`` (``assert_array_equal`` against NaN).
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

pytest.importorskip("torch")

from reverse_kl_zero_teacher import (
    FORMS,
    INF,
    INFINITE,
    ROWS,
    inputs,
    masked_oracle,
)

TEMPERATURES = (1.0, 0.5, 3.0)
DTYPES = (np.float64, np.float32)


def _central_difference(z: np.ndarray, teacher: np.ndarray, form: str, t: float) -> np.ndarray:
    """Central finite differences (float64, step 1e-6) of the NumPy row loss in the
    finite logits of ``z`` (0 in the ``-inf`` ones)."""
    out = np.zeros_like(z)
    for c in np.flatnonzero(np.isfinite(z)):
        plus, minus = z.copy(), z.copy()
        plus[c] += 1e-6
        minus[c] -= 1e-6
        losses = [
            crossent.distillation_loss(
                x, teacher, temperature=t, teacher_form=form, direction="reverse"
            )
            for x in (plus, minus)
        ]
        out[c] = (losses[0] - losses[1]) / 2e-6
    return out


def _check(loss: np.ndarray, grad: np.ndarray, z: np.ndarray, form: str, t: float) -> None:
    """Rows of ``ROWS`` (tiled): infinite rows ``inf`` with NaN gradients but 0 in their
    ``-inf`` classes; finite rows within the dtype's tolerance of the masked oracle."""
    dtype = grad.dtype
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    z64, teacher64 = inputs(form, np.float64)
    copies = loss.shape[0] // len(ROWS)
    infinite = np.tile(INFINITE, copies)
    assert (loss[infinite] == INF).all()
    want = np.where(np.isneginf(z[infinite]), 0.0, np.nan).astype(dtype)
    np.testing.assert_array_equal(grad[infinite], want)
    finite = np.flatnonzero(~INFINITE)
    oracle = np.array([masked_oracle(z64[k], teacher64[k], form, t) for k in finite])
    for j, k in enumerate(finite):
        np.testing.assert_allclose(loss[k :: len(ROWS)], oracle[j, 0], rtol=rtol, atol=0)
        rows = grad[k :: len(ROWS)]
        np.testing.assert_allclose(
            rows, np.tile(oracle[j, 1:], (copies, 1)), rtol=rtol, atol=rtol * 0.1
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("copies", [1, 800])  # 800 x 6 x 4 > 16384 entries: the fused kernels
def test_reverse_gradient_nan_rows_beside_zero_teacher(
    form: str, temperature: float, dtype: type, copies: int
) -> None:
    z, teacher = inputs(form, dtype, copies)
    options = {"temperature": temperature, "teacher_form": form, "direction": "reverse"}
    loss = crossent.distillation_loss(z, teacher, reduction="none", **options)
    grad = crossent.distillation_loss_grad(z, teacher, reduction="none", **options)
    assert grad.dtype == dtype
    _check(np.asarray(loss), grad, z, form, temperature)


@pytest.mark.parametrize("form", FORMS)
def test_reverse_gradient_one_row_and_scaled(form: str) -> None:
    """A single row (1-D, the lean path's shape) and a ``'mean'`` of several: the
    reduction's scale keeps the NaN and the 0 of a masked class."""
    z, teacher = inputs(form, np.float64)
    options = {"temperature": 2.0, "teacher_form": form, "direction": "reverse"}
    one = crossent.distillation_loss_grad(z[2], teacher[2], **options)
    np.testing.assert_array_equal(one, [0.0, np.nan, np.nan, np.nan])
    mean = crossent.distillation_loss_grad(z, teacher, reduction="mean", **options)
    none = crossent.distillation_loss_grad(z, teacher, reduction="none", **options)
    np.testing.assert_allclose(mean, none / len(ROWS), rtol=1e-15, atol=0)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("form", FORMS)
def test_masked_zero_class_gradient_against_finite_differences(
    form: str, temperature: float
) -> None:
    """The finite rows, each alone (the lean path) and beside the infinite rows, against
    central finite differences of the loss; and each infinite row alone NaN."""
    z, teacher = inputs(form, np.float64)
    options = {"temperature": temperature, "teacher_form": form, "direction": "reverse"}
    together = crossent.distillation_loss_grad(z, teacher, reduction="none", **options)
    for k in range(len(ROWS)):
        alone = crossent.distillation_loss_grad(z[k : k + 1], teacher[k : k + 1], **options)[0]
        np.testing.assert_array_equal(alone, together[k])
        if INFINITE[k]:
            assert np.isnan(alone[np.isfinite(z[k])]).all()
            continue
        numeric = _central_difference(z[k], teacher[k], form, temperature)
        np.testing.assert_allclose(alone, numeric, rtol=1e-6, atol=1e-8)
