r"""Issue 13 follow-up: the distillation kernels form rows with ``-inf`` logits (a masked
vocabulary) themselves.

A teacher entry ``-inf`` has :math:`t_c = 0`: no term (0 log 0 = 0), even beside a
student ``-inf``, and a gradient entry :math:`s_c` (0 where both are ``-inf``); a
student ``-inf`` beside :math:`t_c > 0` makes the row's KL ``inf`` (the caller's exact
path forms the row); a row of ``-inf`` on either side stays invalid (NaN: the caller's
validation), as do NaN and ``+inf``.

Oracles: an extended-precision (x87 ``longdouble``) softmax of the rows with the masked
terms left out (the bounds of ``test_issue13_distill_kernel_accuracy.py``); the full
NumPy path (``_distill_fused.FUSED_ELEMENTS`` raised: no call fused), exact on ``-inf``
rows (its own tests), for the fused :func:`crossent.distillation_loss` and its
gradient; the NumPy float64 gradient for ``crossent.torch``'s CPU op. Hard rows: 10 %
of the classes masked in the teacher, the same classes masked in the student too, one
unmasked class, :math:`C = 2` with one class masked, near rows (a masked student equal
to its teacher), :math:`T = 0.7` and 2, float32 and float64.

On main (0d894b6) the kernel tests fail (masked rows come out NaN: the caller formed
them again), and the structural test too (the masked rows were kind 2).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import crossent
from crossent._read_only import read_only
from crossent.losses import _cpu_kernels, _distill_fused, _distill_rows
from losses.distill_differential import full_path

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="no Numba kernels")

EPS = 2.0**-53


def _masked_rows(classes: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Float32-valued rows (10 x classes; the oracle's bounds: ``z - m`` exact): 10 % of
    the teacher masked; rows 0-3 the student masked at the same classes; row 4 one
    class left; row 5 the student equal to the teacher."""
    rng = np.random.default_rng(classes)
    z = (rng.standard_normal((10, classes)) * 3).astype(np.float32).astype(dtype)
    v = (rng.standard_normal((10, classes)) * 3).astype(np.float32).astype(dtype)
    mask = rng.random((10, classes)) < 0.1
    mask[:, 0] = True
    mask[:, 1] = False
    v[mask] = -np.inf
    z[:4][mask[:4]] = -np.inf
    v[4, 2:] = -np.inf
    z[5] = v[5]
    return z, v


def _oracle(z: np.ndarray, v: np.ndarray, temperature: float) -> tuple[np.ndarray, ...]:
    """The rows' D and sum_c t_c |tau_c - sigma_c|, the entries' s, t (longdouble; no
    term where t = 0)."""
    wide = np.longdouble
    zl, vl = z.astype(wide), v.astype(wide)
    sigma = (zl - zl.max(1, keepdims=True)) / wide(temperature)
    tau = (vl - vl.max(1, keepdims=True)) / wide(temperature)
    ell_s = np.log(np.exp(sigma).sum(1))
    ell_t = np.log(np.exp(tau).sum(1))
    s = np.exp(sigma - ell_s[:, None])
    t = np.exp(tau - ell_t[:, None])
    present = t > 0
    gap = np.where(present, tau - np.where(present, sigma, 0), 0)
    return (t * gap).sum(1) + ell_s - ell_t, (t * np.abs(gap)).sum(1), s, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [0.7, 2.0])
@pytest.mark.parametrize("classes", [2, 700])
def test_kernels_form_masked_rows(classes: int, temperature: float, dtype: type) -> None:
    forward, backward = _distill_rows.kernels()
    z, v = map(read_only, _masked_rows(classes, dtype))  # (as _distill_rows hands them)
    rows = z.shape[0]
    stats = np.empty((rows, 5))
    forward(z, v, temperature, stats, False, 0)  # (the library's signature: given, lse)
    kl, spread, s, t = _oracle(z, v, temperature)
    assert np.isfinite(stats[:, 0]).all()
    assert (np.abs(stats[:, 0] - kl) <= 16 * EPS * (1.0 + spread)).all()
    grad = np.empty((rows, classes), dtype)
    small = np.empty(rows, np.bool_)
    backward(z, v, stats, temperature, np.ones(rows), grad, small)
    exact = (s - t).astype(np.float64)
    bound = 12 * EPS * (s + t).astype(np.float64) + 1e-300
    if dtype is np.float32:
        bound = bound + np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(grad - exact) <= bound).all()
    both = np.isneginf(z) & np.isneginf(v)
    assert both[:4].any()
    assert (grad[both] == 0).all()


def test_student_masked_beside_teacher_mass_is_inf_and_invalid_rows_nan() -> None:
    forward, _ = _distill_rows.kernels()
    z, v = _masked_rows(700, np.float64)
    z[6, 1] = -np.inf  # t > 0 there
    z[7] = -np.inf  # a row of -inf
    v[8] = -np.inf
    v[9, 3] = np.nan
    for temperature in (0.7, 2.0):
        stats = np.empty((10, 5))
        forward(read_only(z), read_only(v), temperature, stats, False, 0)
        assert stats[6, 0] == np.inf
        assert np.isnan(stats[7:, 0]).all()
        assert np.isfinite(stats[:6, 0]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_fused_masked_rows_match_the_full_path(dtype: type) -> None:
    z, v = _masked_rows(700, dtype)
    z, v = np.concatenate([z] * 3), np.concatenate([v] * 3)
    call = _distill_fused.fused_call((z, v), {})
    assert call is not None
    for temperature in (0.7, 2.0):
        stats = _distill_rows.forward_statistics(*z.shape, temperature, call.wide)
        _, kind = _distill_rows.row_kinds(stats, temperature)
        assert (kind[[0, 1, 2, 3, 4]] == 0).all()  # (main: 2, the full path's)
        kwargs = {"temperature": temperature, "reduction": "none"}
        loss = crossent.distillation_loss(z, v, **kwargs)
        want = full_path(crossent.distillation_loss, z, v, **kwargs)
        np.testing.assert_allclose(loss, want, rtol=1e-12 if dtype is np.float64 else 1e-6)
        grad = crossent.distillation_loss_grad(z, v, **kwargs)
        want = full_path(crossent.distillation_loss_grad, z, v, **kwargs)
        tol = 1e-13 if dtype is np.float64 else 1e-6
        np.testing.assert_allclose(grad, want, rtol=tol, atol=tol * np.abs(want).max())
        assert (grad[np.isneginf(z) & np.isneginf(v)] == 0).all()


def test_torch_op_masked_rows() -> None:
    torch = pytest.importorskip("torch")
    from crossent.torch import _distill_cpu, distillation_loss

    z, v = _masked_rows(700, np.float64)
    zt = torch.from_numpy(z).requires_grad_(True)
    vt = torch.from_numpy(v)
    assert _distill_cpu.applies(zt, vt, 2.0, "sum")
    _, _, kind, _ = _distill_cpu.distillation_cpu_rows(zt.detach(), vt, 2.0)
    assert (kind[:5] == 0).all()
    distillation_loss(zt, vt, temperature=2.0, reduction="sum").backward()
    want = full_path(crossent.distillation_loss_grad, z, v, temperature=2.0, reduction="sum")
    assert zt.grad is not None
    np.testing.assert_allclose(zt.grad.numpy(), want, rtol=1e-13, atol=1e-15)
