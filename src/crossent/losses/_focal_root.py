r"""The float64 sigmoid focal gradient where its two terms cancel (issue 13, branch focal2).

:func:`_sigmoid._focal_gradient` forms, per entry,

.. math:: g = m\,[\,f + (\sigma(x) - t)\,], \qquad
          f = \gamma\,(1-2t)\,\frac{\sigma(x)\sigma(-x)}{1-p_t}\,\ell_{\mathrm{BCE}},
          \quad m = (1-p_t)^\gamma,

each term within a few float64 ulps. Where :math:`t` lies between :math:`\sigma(x)` and
the focal optimum the terms have opposite signs, and at the optimum (a root of a
transcendental equation) they cancel: there the sum kept the terms' rounding errors,
about 1-4 ulps of :math:`\sigma(x) - t` (lossulp1's mpmath measurement), so the value
near the root had wrong digits and, nearer, the wrong sign (``gamma = 2, t = 0.80292,
x = 3.042166529584443``: ``1.40e-18`` for ``-1.81e-18``).

No reformulation avoids the cancellation, so the entries where it happens,
:math:`|f + (\sigma - t)| <` :data:`CANCELLED` :math:`|\sigma - t|` in float64, are
formed again in double-double arithmetic over NumPy arrays (:func:`refined`; Dekker's
and Knuth's error-free products and sums, ``_numerics``): :math:`e^{-|x|}` by
``_sigmoid_grad.exp_dd`` (the exact gradient's table exponential), :math:`\log(1 +
e^{-|x|})` by one Newton step on the float64 ``log1p`` (:func:`_log1p_exp`, to
:math:`2^{-104}` of itself), :math:`\sigma(\pm x)`, :math:`1-p_t`,
:math:`\ell_{\mathrm{BCE}}`, :math:`f` and the bracket as double-doubles; :math:`m =
(1-p_t)^\gamma` as ``pow`` of the leading part times :math:`1 + \gamma\,\delta/(1-p_t)`
for the low part :math:`\delta`. Each step is within a few units of :math:`2^{-104}`
of its value, so the bracket's error is a few units of :math:`2^{-104}(\sigma + t)`
whatever the cancellation (measured against mpmath at 259 points at and beside float64
roots, ``gamma`` 0.25 to 5, with and without ``alpha``: at most 7.5 units, times
:math:`m\alpha_t`). So :math:`g` is within a few float64 ulps where the bracket is
above about :math:`2^{-50}(\sigma + t)`, which is every entry but the float64 logits
at and next to a root (there the bracket is :math:`2^{-53}` to :math:`2^{-60}` of the
terms, and the error up to 32 ulps of :math:`g` was measured), and its sign is right
wherever :math:`|g|` exceeds that bound (no wrong sign at those 259 points). The old
float64 sum was about :math:`2^{-52}(\sigma + t)` off there.

Where Numba is installed, ``_focal_root_numba`` screens and refines in one pass (60-80
ns an entry refined, 1.3 ns an entry screened; ``benchmarks/RESULTS.md``, branch
focal4), with the same operations in the same order: the same bits. Without it,
:func:`refined_numpy` does about 150 array operations over the refined entries (600-750
ns an entry), and takes ``log1p``, ``pow`` and ``exp`` from the C library through
``math`` (a Python loop over those entries) as the kernel does: NumPy's SIMD ufuncs
differ from it by an ulp at some entries.

Where :math:`x <` ``_sigmoid_grad.EXP_FLOOR`` (-700; targets below about
:math:`10^{-304}` cancel there) the table does not reach: :math:`e^{-|x|}` is the
float64 ``exp`` (one ulp), whose error the bracket keeps, as the float64 formula did;
there the double-double products may also lose their low parts to underflow.

The entries outside the mask keep the float64 formula's error (within a few ulps as
elsewhere: up to about 25 units of :math:`2^{-52}` measured just above
:data:`CANCELLED`, about 17 where nothing cancels; medians 1-2).

The targets are those of the loss (``_Binary.t``: smoothed and rounded, as the
cross-entropy and :math:`\ell_{\mathrm{BCE}}` take them). The factor :math:`\alpha_t`,
the weights and the reduction's scale multiply the refined value as they multiply the
others. The small path (``_small_sigmoid._run``) marks such entries
(``_small_sigmoid_numba._gradient_entry``) and weighs and scales this module's values
for them as the full path does: both paths give the same bits.

References
----------
T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (the gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._numerics import _quick_two_sum, _two_product, _two_sum
from . import _cpu_kernels
from ._sigmoid_grad import EXP_FLOOR as _EXP_FLOOR
from ._sigmoid_grad import _dd_mul_d, exp_dd, exp_parts

__all__ = ["CANCELLED", "refine", "refined", "refined_numpy"]

CANCELLED = 0.25
"""An entry is refined where ``|f + (sigma - t)| < CANCELLED * |sigma - t|`` (float64):
outside, the float64 sum is within a few ulps (its terms' errors at most 4 times)."""

_Pair = tuple[np.ndarray, np.ndarray]


def _libm(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    """``function`` (the C library's, through ``math``) of each of ``values``: NumPy's
    SIMD ``log1p``, ``power`` and ``exp`` differ from it by an ulp at some entries (on
    AVX-512 machines), and ``_focal_root_numba``, which calls the C library, gives the
    same bits as this module (a Python loop, over the refined entries only)."""
    return np.array([function(v) for v in values.tolist()], dtype=np.float64)


def _add(a: _Pair, b: _Pair) -> _Pair:
    """The double-double sum (within a few units of :math:`2^{-104}(|a| + |b|)`)."""
    s, e = _two_sum(a[0], b[0])
    return _quick_two_sum(s, e + (a[1] + b[1]))


def _mul(a: _Pair, b: _Pair) -> _Pair:
    """The double-double product (products that do not underflow)."""
    p, e = _two_product(a[0], b[0])
    return _quick_two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def _reciprocal(b: _Pair) -> _Pair:
    """The double-double :math:`1/b`: the float reciprocal :math:`q` and one correction,
    the exact remainder :math:`1 - bq` times :math:`q` (one division)."""
    q = 1.0 / b[0]
    p, e = _dd_mul_d(b[0], b[1], q)
    r, f = _two_sum(1.0, -p)
    return _quick_two_sum(q, (r + (f - e)) * q)


def _log1p_exp(small: _Pair) -> _Pair:
    r""":math:`\log(1 + s)` for the double-double :math:`s = e^{-|x|} \le 1`, to about
    :math:`2^{-104}` of itself: :math:`h =` ``log1p`` of its leading part, then :math:`h
    + \rho - \rho^2/2` with :math:`\rho = (1 + s)e^{-h} - 1 = s\,e^{-h} + (e^{-h} - 1)`
    (about :math:`2^{-52} h`), from ``_sigmoid_grad.exp_parts``' three floats: the
    leading parts cancel exactly (Sterbenz), the rest to :math:`2^{-106} h`."""
    h = _libm(math.log1p, small[0])
    v0, v1, v2, power = exp_parts(-h)
    v0, v1, v2 = v0 * power, v1 * power, v2 * power  # e^{-h} (exact scalings)
    p, e = _two_product(small[0], v0)
    rho = ((p + (v0 - 1.0)) + v1) + ((e + v2) + (small[0] * (v1 + v2) + small[1] * v0))
    return _quick_two_sum(h, rho - 0.5 * rho * rho)


def refined(x: np.ndarray, t: np.ndarray, gamma: float) -> np.ndarray:
    r""":math:`g` at the entries of the 1-d float64 ``x`` and ``t``, in double-double
    arithmetic (the module notes), rounded to float64: ``_focal_root_numba``'s kernel
    where Numba is installed, else :func:`refined_numpy` (the same bits)."""
    if _cpu_kernels.available():
        from . import _focal_root_numba

        return _focal_root_numba.refined(_flat(x), _flat(t), gamma)
    return refined_numpy(x, t, gamma)


def _flat(a: np.ndarray) -> np.ndarray:
    """``a`` as a contiguous 1-d float64 array (itself where it is one)."""
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


def refined_numpy(x: np.ndarray, t: np.ndarray, gamma: float) -> np.ndarray:
    r""":math:`g` at the entries of the 1-d float64 ``x`` and ``t``, in double-double
    arithmetic (the module notes), rounded to float64."""
    gamma = float(gamma)
    zero = np.zeros_like(x)
    one = (np.ones_like(x), zero)
    magnitude = np.abs(x)
    far = -magnitude < _EXP_FLOOR
    small = exp_dd(np.where(far, 0.0, -magnitude))
    if far.any():
        below = np.zeros_like(x)
        below[far] = _libm(math.exp, -magnitude[far])
        small = (np.where(far, below, small[0]), np.where(far, 0.0, small[1]))
    denominator = _add(one, small)
    big = _reciprocal(denominator)  # sigma(|x|), then sigma(-|x|) = e^{-|x|} sigma(|x|)
    tail = _mul(small, big)
    above = x >= 0
    sigma = (np.where(above, big[0], tail[0]), np.where(above, big[1], tail[1]))
    sigma_neg = (np.where(above, tail[0], big[0]), np.where(above, tail[1], big[1]))
    rest = _log1p_exp(small)
    one_minus_t = _two_sum(1.0, -t)
    weight = (np.where(above, one_minus_t[0], t), np.where(above, one_minus_t[1], 0.0))
    bce = _add(rest, _dd_mul_d(weight[0], weight[1], magnitude))  # t sp(-x) + (1-t) sp(x)
    q = _add(_dd_mul_d(sigma_neg[0], sigma_neg[1], t), _mul(one_minus_t, sigma))  # 1 - p_t
    factor = _two_sum(1.0, -2.0 * t)
    factor = _dd_mul_d(factor[0], factor[1], gamma)
    focus = _mul(_mul(factor, _mul(_mul(sigma, sigma_neg), _reciprocal(q))), bce)
    plain = _add(sigma, (-t, zero))
    total = _add(focus, plain)
    modulation = _libm(lambda v: math.pow(v, gamma), q[0])
    low = modulation * (gamma * (q[1] / q[0]))  # (1-p_t)^gamma's first-order low part
    hi, lo = _dd_mul_d(total[0], total[1], modulation)
    return hi + (lo + total[0] * low)


def refine(
    grad: np.ndarray,
    total: np.ndarray,
    plain: np.ndarray,
    x: np.ndarray,
    t: np.ndarray,
    gamma: float,
) -> np.ndarray:
    r"""``grad`` (:math:`g` in float64, NumPy, the shape of ``x``) with the entries where
    ``total``, :math:`f + (\sigma - t)` in float64, cancels (:data:`CANCELLED`) formed
    again (:func:`refined`). With Numba, one pass (``_focal_root_numba.refine``) that
    writes into ``grad`` where it is a writeable C-contiguous float64 array (the
    caller's temporary); else vectorised: ``grad`` itself where none cancels (the common
    case), or a copy."""
    if _cpu_kernels.available():
        from . import _focal_root_numba

        own = type(grad) is np.ndarray and grad.dtype == np.float64 and grad.ndim > 0
        own = own and grad.flags.c_contiguous and grad.flags.writeable
        out = grad if own else np.array(grad, dtype=np.float64, order="C")
        total, plain, x, t = (_flat(np.broadcast_to(a, out.shape)) for a in (total, plain, x, t))
        _focal_root_numba.refine(out.reshape(-1), total, plain, x, t, gamma)
        return out if out.ndim else out[()]
    bound = np.abs(plain)
    bound *= CANCELLED
    close = np.abs(total) < bound
    if not close.any():
        return grad
    out = np.array(grad, dtype=np.float64)  # (a copy: ``grad`` may be 0-d or shared)
    flat, where = out.reshape(-1), np.flatnonzero(close)
    xs = np.broadcast_to(x, out.shape).reshape(-1)[where]
    ts = np.broadcast_to(t, out.shape).reshape(-1)[where]
    flat[where] = refined_numpy(xs, ts, gamma)
    return out if out.ndim else out[()]
