r"""Issue 13 (branch distfwd2): ``crossent.torch.distillation_loss``' generic path (logits
that are not 2-D, an accelerator's tensors, ...) gives float64 rows whose :math:`s - t`
cancels the fused kernels' exact gradient.

Autograd's :math:`T(s - t)` of the softened rows errs by some :math:`\max_c t_c /
\max_c |s_c - t_c|` units of :math:`2^{-53}` of the row's largest entry: on main, rows
of two classes of :math:`N(0, 1)` as ``(N, 2, 1)`` logits were 33 units off at
:math:`T = 8` (``benchmarks/check_distill_forward_exact.py``, the "generic" column).
Rows of a spread :math:`\max_c |s_c - t_c|` below ``_near_rows.CANCEL_SPREAD``
:math:`\max_c t_c` now take ``_near_rows.exact_forward_gradient`` (the array twin of
``_distill_numba._exact_forward_row``, the 2-D op's formula) in the backward, on the
ordinary call and on a call with near rows alike. On main: 2 of 3 fail (the teacher's
gradient is a guard).

Oracle: mpmath at 60 digits (the direct formula; nothing cancels at that precision on
these rows).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402

import oracles  # noqa: E402

UNITS = 4.5
r"""Tolerance per entry, in units of :math:`2^{-53}` times the row's largest entry (as
``test_issue13_distill_forward_exact.py``'s for the 2-D op; the largest seen here 3.2)."""


def _generic(z: np.ndarray, v: np.ndarray, temperature: float) -> np.ndarray:
    """The student's gradient of ``'sum'`` over logits ``(N, C, 1)`` (the generic path)."""
    zt = torch.tensor(z[:, :, None], requires_grad=True)
    ct.distillation_loss(zt, torch.tensor(v[:, :, None]), temperature, "sum").backward()
    assert zt.grad is not None
    return zt.grad.numpy()[:, :, 0]


def _rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    return rng.normal(0, 1, (8, 2)), rng.normal(0, 1, (8, 2))


NEAR = (
    np.array([[-0.3032453063017112, -0.15455760599407076]]),
    np.array([[0.002017082726634446, 0.14967627793151025]]),
)
"""A row of two classes whose KL is below ``KL_FLOOR`` at :math:`T = 2` (``NearRows``)."""


def test_ordinary_call_rows_of_two_classes() -> None:
    """The ordinary call (no near row): main was 33 units off at :math:`T = 8`, 14 at 1."""
    z, v = _rows()
    worst = {
        t: oracles.worst_units_of_row_max(
            _generic(z, v, t), oracles.distillation_forward_gradient(z, v, t)
        )
        for t in (0.5, 1.0, 8.0)
    }
    assert max(worst.values()) <= UNITS, worst


def test_call_with_a_near_row() -> None:
    """A near row beside the cancelling rows: the call forms its near rows
    (``NearRowsOf``), the others take the exact formula there too (main: 11 units)."""
    z, v = _rows()
    z, v = np.concatenate([NEAR[0], z]), np.concatenate([NEAR[1], v])
    assert (
        oracles.worst_units_of_row_max(
            _generic(z, v, 2.0), oracles.distillation_forward_gradient(z, v, 2.0)
        )
        <= UNITS
    )


def test_teacher_that_requires_a_gradient_keeps_both() -> None:
    """A teacher that requires a gradient: the cancelling rows stay autograd's (their
    teacher's gradient is formed with the student's), both gradients as the plain
    formula's (a guard)."""
    z, v = _rows()
    zt = torch.tensor(z[:, :, None], requires_grad=True)
    vt = torch.tensor(v[:, :, None], requires_grad=True)
    ct.distillation_loss(zt, vt, 2.0, "sum").backward()
    za = torch.tensor(z, requires_grad=True)
    va = torch.tensor(v, requires_grad=True)
    log_t = torch.log_softmax(va / 2.0, 1)
    (4.0 * (log_t.exp() * (log_t - torch.log_softmax(za / 2.0, 1))).sum()).backward()
    grads = [x.grad for x in (zt, vt, za, va)]
    assert all(g is not None for g in grads)
    gz, gv, ga, gb = (torch.as_tensor(g) for g in grads)
    torch.testing.assert_close(gz[:, :, 0], ga, rtol=0, atol=1e-14)
    torch.testing.assert_close(gv[:, :, 0], gb, rtol=0, atol=1e-14)
