"""The smoothed integer-label gradient where only a few entries of a long row cancel.

Label smoothing's entry :math:`c\\,p_j - \\varepsilon/V` cancels where :math:`p_j` meets
:math:`\\varepsilon/V`. On a trained model's rows that is a few classes of many, in a few
of ``smoothed_gradient_kernel``'s blocks: those entries must be found and corrected by the
row's own sum (issue 13), the rest of the row left as it is. Oracle: float64, the
softmax as :math:`e^{z_j - m} / \\sum_k e^{z_k - m}` (``math.fsum``), within about
:math:`3 \\cdot 10^{-16}` of :math:`p` (0.05 float32 ulp of an entry cancelled to
:math:`10^{-7}` of its terms).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels

EPS = 0.1


def _rows(classes: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 random logits (standard normal x 3) with 5 entries per row at
    :math:`p_j = \\varepsilon / V` (to float32's rounding of the logit), each in its own
    block of 256, one in the row's last (partial) block; and int64 labels."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((rows, classes)) * 3.0).astype(np.float32)
    labels = rng.integers(0, classes, size=rows)
    near = np.array([7, 300, 5000, 17001, classes - 2])
    for i in range(rows):
        for _ in range(4):  # the entries move the row's LSE: settle it
            e = np.exp(z[i].astype(np.float64) - z[i].max())
            lse = z[i].max() + math.log(math.fsum(e))
            z[i, near] = np.float32(math.log(EPS / classes) + lse)
        labels[i] = labels[i] if labels[i] not in near else 0
    return z, labels, near


def _truth(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient (reduction ``"sum"``) to about 3e-16 of its terms, and the size
    of the terms."""
    v = z.shape[1]
    truth = np.empty(z.shape)
    size = np.empty(z.shape)
    for i, y in enumerate(labels):
        e = np.exp(z[i].astype(np.float64) - np.float64(z[i].max()))
        p = e / math.fsum(e)
        target = np.full(v, EPS / v)
        target[y] += 1.0 - EPS
        truth[i] = p - target
        size[i] = p + target
    return truth, size


@pytest.mark.parametrize("classes", [32000, 32003])
def test_smoothed_gradient_within_an_ulp_where_a_few_entries_cancel(classes: int) -> None:
    """Every entry within one float32 ulp (and 1e-14 of its terms, float64's own
    resolution) on rows where 5 entries of 32000 cancel to about 1e-7 of their terms.
    Main before issue 13's smoothed kernel (6a130e6): those entries hundreds of ulps off
    (the kernel's exp, 5.2e-11); the kernel with its correction left out: a few ulps."""
    if not _cpu_kernels.available():
        pytest.skip("needs Numba")
    z, labels, near = _rows(classes, 8, 20261204 + classes)
    truth, size = _truth(z, labels)
    assert (np.abs(truth[:, near]) < 1e-5 * size[:, near]).all()  # the rows are hard
    got = crossent.softmax_cross_entropy_grad(z, labels, reduction="sum", label_smoothing=EPS)
    assert got.dtype == np.float32
    error = np.maximum(np.abs(got.astype(np.float64) - truth) - 1e-14 * size, 0.0)
    ulps = error / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
    worst = np.unravel_index(np.argmax(ulps), ulps.shape)
    assert ulps.max() <= 1.0, (worst, got[worst], truth[worst], ulps.max())
