r"""The NumPy twins of the fused kernels: blocks of rows, float64 inside, no Numba.

:func:`row_statistics` and :func:`write_gradient` take the arguments of their
namesakes in ``_cpu_kernels`` and return the same quantities, computed with the same
formulas in float64 (issue 13: the default install, without the ``fast`` extra):

.. math:: m_i = \max_c z_{ic}/T, \qquad \sigma_{ic} = (z_{ic} - \max_c z_{ic})/T,
          \qquad \ell_i = \log\textstyle\sum_c e^{\sigma_{ic}}

with :math:`\ell` as ``log1p`` of the non-maximal terms plus the ties when the sum
is below 1.5 (a near-deterministic row, whose :math:`\log(1 + \delta)` would lose
:math:`\delta`'s digits), and the gradient row
:math:`c_i e^{z_i/T - \mathrm{shift}_i} - r_i u - g_i e_{y_i}`.

The logits are read in blocks of consecutive rows of about :data:`BLOCK_ELEMENTS`
values, so the float64 working copy (``float32 -> float64`` and the subtraction of
the row maximum happen in one ufunc call) stays in cache and the peak extra memory is
a few MiB whatever the batch: the generic Array-API path instead materialises several
N x V temporaries (shifted logits, their exponentials, a one-hot mask). Per block:
one float32 max, one fused cast-and-subtract, one ``exp`` in place and one sum.

Validation costs no pass of its own, as in the Numba kernel: a row is *suspect* when
its maximum or its exp-sum is not finite (a NaN or ``+inf`` in it, or every entry
``-inf``); the caller then runs the full check to name the entry.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "row_statistics", "write_gradient"]

#: Logits per block (float64 working copy of 512 KiB): large enough that NumPy's
#: per-call overhead is small, small enough to stay in L2 cache.
BLOCK_ELEMENTS = 1 << 16


def _block_rows(classes: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(classes, 1))


def row_statistics(
    z: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    *,
    inv_temperature: float,
    need_sum: bool,
) -> tuple[np.ndarray, ...]:
    """Per row of ``z`` (N x V float32): m, ell, z'_y - m, sum w (z' - m), suspect.

    The same contract as ``_cpu_kernels.row_statistics``: ``labels`` are valid class
    ids; the weighted sum is computed only with ``need_sum``.
    """
    n, v = z.shape
    m_out, ell_out, zy_out, sum_out = (np.zeros(n) for _ in range(4))
    suspect_out = np.empty(n, dtype=np.bool_)
    labels = np.asarray(labels, dtype=np.intp)
    inv_t = float(inv_temperature)
    w = None
    if need_sum and weight is not None:
        w64 = np.asarray(weight, dtype=np.float64)
        keep = np.flatnonzero(w64 != 0.0)  # a class of weight 0 is absent, even at -inf
        w = (keep, w64[keep])
    step = _block_rows(v)
    buffer = np.empty(step * v)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for first in range(0, n, step):
            stop = min(n, first + step)
            rows = z[first:stop]
            d = buffer[: (stop - first) * v].reshape(stop - first, v)
            top = np.max(rows, axis=1, keepdims=True).astype(np.float64)
            # (x - top) is exact in float64 for float32 x: the maximum gives exactly 0.
            np.subtract(rows, top, out=d, dtype=np.float64)
            if inv_t != 1.0:
                d *= inv_t
            index = np.arange(stop - first)
            zy_out[first:stop] = d[index, labels[first:stop]]
            m = top[:, 0] * inv_t
            m_out[first:stop] = m
            live = m != -np.inf
            if need_sum:
                total = d.sum(axis=1) if w is None else d[:, w[0]] @ w[1]
                sum_out[first:stop] = np.where(live, total, 0.0)
            np.exp(d, out=d)
            s = np.where(live, d.sum(axis=1), 0.0)
            ell_out[first:stop] = np.log(s)
            suspect_out[first:stop] = ~(np.isfinite(m) & np.isfinite(s))
            near = np.flatnonzero(s < 1.5)
            if near.size:
                ell_out[first + near] = _near_deterministic_ell(rows[near], top[near], inv_t)
    return m_out, ell_out, zy_out, sum_out, suspect_out


def _near_deterministic_ell(rows: np.ndarray, top: np.ndarray, inv_t: float) -> np.ndarray:
    r""":math:`\ell = \operatorname{log1p}(\sum_{\sigma_c<0} e^{\sigma_c} + (\#\{\sigma_c=0\}-1))`.

    ``-inf`` for a row with no maximal term (all ``-inf``, or a NaN).
    """
    d = np.subtract(rows, top, dtype=np.float64)
    if inv_t != 1.0:
        d *= inv_t
    rest = np.where(d < 0.0, np.exp(np.minimum(d, 0.0)), 0.0).sum(axis=1)
    ties = (d == 0.0).sum(axis=1).astype(np.float64)
    safe = np.where(ties > 0.0, rest + (ties - 1.0), 0.0)
    return np.where(ties > 0.0, np.log1p(safe), -np.inf)


def write_gradient(
    z: np.ndarray,
    labels: np.ndarray,
    *,
    shift: np.ndarray,
    inv_temperature: float,
    p_coef: np.ndarray,
    target_coef: np.ndarray,
    uniform: np.ndarray | None,
    row_uniform: np.ndarray | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""``out[i, c] = p_coef[i] * exp(z[i, c] / T - shift[i]) - row_uniform[i] * uniform[c]
    - [c == labels[i]] * target_coef[i]``, as float32, block by block (the contract of
    ``_cpu_kernels.write_gradient``)."""
    n, v = z.shape
    if out is None:
        out = np.empty(z.shape, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.intp)
    shift = np.asarray(shift, dtype=np.float64)
    p_coef = np.asarray(p_coef, dtype=np.float64)
    target_coef = np.asarray(target_coef, dtype=np.float64)
    u = None if uniform is None else np.asarray(uniform, dtype=np.float64)
    inv_t = float(inv_temperature)
    step = _block_rows(v)
    buffer = np.empty(step * v)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        for first in range(0, n, step):
            stop = min(n, first + step)
            d = buffer[: (stop - first) * v].reshape(stop - first, v)
            if inv_t != 1.0:
                np.multiply(z[first:stop], inv_t, out=d, dtype=np.float64)
                d -= shift[first:stop, None]
            else:
                np.subtract(z[first:stop], shift[first:stop, None], out=d, dtype=np.float64)
            np.exp(d, out=d)
            d *= p_coef[first:stop, None]
            if u is not None:
                assert row_uniform is not None
                d -= np.multiply.outer(np.asarray(row_uniform[first:stop], dtype=np.float64), u)
            d[np.arange(stop - first), labels[first:stop]] -= target_coef[first:stop]
            out[first:stop] = d
    return out
