"""Issue 13, tenth hostile pass over the NumPy losses (branch hostilenumpy10): each test
pins a defect found by attacking them, and fails on main before its fix.

* float16/float32 NumPy logits with labels given as a Python list, tuple or number (or a
  NumPy scalar) skipped the float64 computation that the same labels as a NumPy array
  get (``_widen._low_precision`` looked for ``np.ndarray`` only): focal, poly-1, a
  soft-capped or non-contiguous softmax cross-entropy and their gradients computed in
  float32, up to 2e-6 relative off (some 30 float32 ulps; 5e-3 for poly-1 at
  ``epsilon=-1``), and the answer depended on the container of the labels.
* ``poly1_cross_entropy`` with ``epsilon < 0`` cancelled as p_y -> 1
  (``-log p_y - |epsilon| (1 - p_y)``, about ``u**2 / 2`` at ``epsilon=-1``): a row's
  loss of 9.0e-36 was 0, one of 5.45e-25 was 9e-5 relative off, on every path.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

_F32 = np.float32
_F64 = np.float64
_CONFIDENT = np.array([[10.0, -3.5, -2.0, -4.0, -3.0], [-1.0, 9.0, -2.5, -3.0, -2.0]], _F32)
"""Rows whose label (0, then 1) has probability near 1: a float32 ``LSE - z_y`` keeps
few of the loss's digits there."""


def _exact_row_loss(row: np.ndarray, label: int, kind: str) -> float:
    """The loss of one row by mpmath at 50 digits (the float32 entries exactly)."""
    with mpmath.workdps(50):
        z = [mpmath.mpf(float(v)) for v in row]
        log_p = z[label] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
        p = mpmath.exp(log_p)
        if kind == "focal":  # gamma = 2
            return float(-((1 - p) ** 2) * log_p)
        if kind == "poly1":  # epsilon = 1
            return float(-log_p + (1 - p))
        capped = [20 * mpmath.tanh(v / 20) for v in z]  # soft_cap = 20
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in capped))
        return float(lse - capped[label])


_LOSSES = {
    "focal": lambda z, y: crossent.softmax_focal_loss(z, y, reduction="none"),
    "poly1": lambda z, y: crossent.poly1_cross_entropy(z, y, reduction="none"),
    "soft_cap": lambda z, y: crossent.softmax_cross_entropy(z, y, soft_cap=20.0, reduction="none"),
}


@pytest.mark.parametrize("kind", sorted(_LOSSES))
@pytest.mark.parametrize("container", ["list", "tuple"])
def test_float32_logits_with_listed_labels_computed_in_float64(kind: str, container: str) -> None:
    labels = [0, 1] if container == "list" else (0, 1)
    got = _LOSSES[kind](_CONFIDENT, labels)
    assert got.dtype == _F32
    as_array = _LOSSES[kind](_CONFIDENT, np.array([0, 1], np.int64))
    np.testing.assert_array_equal(got, as_array)
    exact = np.array([_exact_row_loss(_CONFIDENT[i], i, kind) for i in range(2)])
    ulps = np.abs(got.astype(np.float64) - exact) / np.spacing(exact.astype(_F32)).astype(float)
    # correctly rounded from float64 (main: 1.6 ulps focal, 0.57 poly-1, 8.3 soft-capped)
    assert np.all(ulps <= 0.51), ulps


@pytest.mark.parametrize("label", [1, np.int64(1)], ids=["int", "numpy_int64"])
def test_float32_gradient_of_one_row_with_scalar_label(label: object) -> None:
    row = _CONFIDENT[1]
    got = crossent.softmax_focal_loss_grad(row, label)
    wide = crossent.softmax_focal_loss_grad(row.astype(np.float64), 1)
    np.testing.assert_array_equal(got, wide.astype(_F32))


def test_fortran_float32_logits_with_listed_labels_as_with_an_array() -> None:
    logits = np.asfortranarray(np.tile(_CONFIDENT, (3, 1)))
    listed = crossent.softmax_cross_entropy_grad(logits, [0, 1] * 3, reduction="none")
    as_array = crossent.softmax_cross_entropy_grad(logits, np.array([0, 1] * 3), reduction="none")
    np.testing.assert_array_equal(listed, as_array)


def test_float32_logits_past_a_block_with_listed_labels_as_with_an_array() -> None:
    # 64000 logits: 8 bytes each past _widen.BLOCK_BYTES, widened block by block (the
    # listed labels read as an array first, as for the calls above)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1000, 64)).astype(_F32)
    labels = rng.integers(0, 64, 1000)
    listed = crossent.poly1_cross_entropy(logits, labels.tolist(), reduction="none")
    as_array = crossent.poly1_cross_entropy(logits, labels, reduction="none")
    np.testing.assert_array_equal(listed, as_array)


def _exact_poly(row: np.ndarray, label: int, epsilon: float) -> float:
    """The poly-1 loss of one row by mpmath at 60 digits."""
    with mpmath.workdps(60):
        z = [mpmath.mpf(float(v)) for v in row]
        log_p = z[label] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
        return float(-log_p + epsilon * (1 - mpmath.exp(log_p)))


_NEAR_ONE = np.array(
    [
        [40.0, 0.0, -1.0],
        [30.0, 0.0, 0.5],
        [10.0, 0.0, -3.0],
        [1.0, 0.0, 0.0],
        [0.0, -0.23, -0.23],
        [0.2, 0.0, 0.1],
        [0.0, 4.0, 4.0],
    ]
)
"""Rows whose label 0 has ``u = -log p_y`` from 4e-18 to 0.95 (the series: all its terms
count near 1), then 1.2 and 4.7 (the formula)."""


@pytest.mark.parametrize("epsilon", [-1.0, -0.75, 0.0])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32], ids=["small", "full"])
def test_poly1_negative_epsilon_without_cancellation(epsilon: float, label_dtype: type) -> None:
    labels = np.zeros(len(_NEAR_ONE), label_dtype)
    got = crossent.poly1_cross_entropy(_NEAR_ONE, labels, epsilon=epsilon, reduction="none")
    exact = np.array([_exact_poly(row, 0, epsilon) for row in _NEAR_ONE])
    # main: 0 for 9.0e-36 at epsilon=-1 (relative error 1), 9e-5 relative at 5.45e-25
    np.testing.assert_allclose(got, exact, rtol=4e-16, atol=0)
    # p_y = 0, u = +inf: a loss of +inf, not 0 * inf (NaN); such a row is its own call, as
    # the other rows take the compiled small path, which does not take non-finite logits
    lost = np.array([[-np.inf, 0.0, 0.0]])
    assert crossent.poly1_cross_entropy(lost, labels[:1], epsilon=epsilon).item() == np.inf
