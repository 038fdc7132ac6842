r"""Smooth calibration error (smECE) of Błasiok and Nakkiran (2023): no bins, one bandwidth.

Design
------
For confidences :math:`f_i \in [0, 1]` and hits :math:`y_i \in \{0, 1\}`, the residuals
:math:`r_i = y_i - f_i` are smoothed with the reflected Gaussian kernel
:math:`K_\sigma` on :math:`[0, 1]`:

.. math::

    \hat r_\sigma(t) = \frac{\sum_i K_\sigma(t, f_i)\, r_i}{\sum_i K_\sigma(t, f_i)}, \qquad
    \hat\delta_\sigma(t) = \frac1n \sum_i K_\sigma(t, f_i), \qquad
    \mathrm{smECE}_\sigma = \int_0^1 |\hat r_\sigma(t)|\, \hat\delta_\sigma(t)\, dt
    = \int_0^1 \Big|\frac1n \sum_i K_\sigma(t, f_i)\, r_i\Big|\, dt,

and the bandwidth is the fixed point :math:`\sigma^*` with
:math:`\mathrm{smECE}_{\sigma^*} = \sigma^*`, which exists and is unique because
:math:`\mathrm{smECE}_\sigma` does not increase with :math:`\sigma` (the reflected
Gaussian kernels form a semigroup of Markov kernels, which cannot increase an
:math:`L_1` norm) while :math:`\sigma` increases.  The reported value is
:math:`\mathrm{smECE}_{\sigma^*} = \sigma^*`.

The reflected kernel is the Gaussian density folded back into :math:`[0, 1]` at both
ends, :math:`K_\sigma(t, s) = \sum_{m \in \mathbb Z} \varphi_\sigma(t - s - 2m) +
\varphi_\sigma(t + s - 2m)`; it integrates to 1 over :math:`t \in [0, 1]` for every
:math:`s`.

Computation: the :math:`n` points are spread once onto a grid of :data:`GRID` + 1 points
by linear binning (each point's weight split between its two neighbours; :math:`O(n)`).
Folding the grid evenly into a period of 2 turns the reflected kernel into a circular
convolution with the periodised Gaussian, done by FFT in :math:`O(G \log G)` per
bandwidth, independent of :math:`n`.  The integrals use the trapezoidal rule, and the
value is divided by the grid integral of :math:`\hat\delta_\sigma` (exactly 1 in the
continuum) so the quadrature error largely cancels.  The fixed point is found by
bisection on :math:`\mathrm{smECE}_\sigma - \sigma` to :data:`BANDWIDTH_TOL`; bandwidths
are floored at ``min_bandwidth`` (relplot's 0.001), where the grid still samples the
kernel at 16 points per :math:`\sigma`.

References
----------
Błasiok and Nakkiran (2023), Smooth ECE: Principled Reliability Diagrams via Kernel
Smoothing, arXiv:2309.12236.  Reference implementation: the ``relplot`` package.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_scalar
from ..errors import InputError
from ._error import scope_arrays
from ._inputs import FloatArray, as_predictions

__all__ = [
    "BANDWIDTH_TOL",
    "GRID",
    "MIN_BANDWIDTH",
    "SmoothCalibrationError",
    "smooth_calibration_error",
    "smooth_calibration_of",
]

GRID = 1 << 14
"""Grid intervals on [0, 1] (spacing 6.1e-5)."""

BANDWIDTH_TOL = 1e-7
"""Absolute tolerance of the bisection for the bandwidth."""

MIN_BANDWIDTH = 1.0 / 1024
"""The least bandwidth the grid resolves: 16 grid points a :math:`\\sigma`. Below it the
kernel falls between the grid points and the integrals are not the definition's (a
fixed ``bandwidth=1e-9`` gave 0.5476 where the value is 0.5511, the mean
:math:`|y_i - f_i|` of distinct confidences)."""

_SMOOTH_SCOPES = ("top-label", "positive-class")


@dataclass(frozen=True)
class SmoothCalibrationError:
    r"""A smooth calibration error and its smoothed reliability curve.

    Attributes
    ----------
    value : float
        :math:`\mathrm{smECE}_\sigma` at the chosen bandwidth (``float(result)``).
    bandwidth : float
        The bandwidth :math:`\sigma` (the fixed point, unless given).
    scope : {"top-label", "positive-class"}
        Which confidences were smoothed.
    n : int
        Number of examples.
    grid : ndarray, shape (points,)
        Points :math:`t` in [0, 1] where the curve is given.
    accuracy : ndarray, shape (points,)
        The smoothed reliability curve :math:`t + \hat r_\sigma(t)`: the kernel-smoothed
        hit rate among predictions of confidence near :math:`t` (NaN where there is no
        data at all).
    density : ndarray, shape (points,)
        :math:`\hat\delta_\sigma(t)`, the kernel density of the confidences (integrates
        to 1); plot the curve thicker where it is large.
    """

    value: float
    bandwidth: float
    scope: str
    n: int
    grid: FloatArray = field(repr=False)
    accuracy: FloatArray = field(repr=False)
    density: FloatArray = field(repr=False)

    def __float__(self) -> float:
        return self.value

    @property
    def definition(self) -> str:
        """The definition in one line of words."""
        return (
            f"smooth ECE (Blasiok & Nakkiran 2023), {self.scope}, reflected Gaussian kernel, "
            f"bandwidth {self.bandwidth:.4g}"
        )


class _Smoother:
    """The residuals and counts of the data on the grid, and their smoothing by FFT."""

    def __init__(self, confidence: FloatArray, hits: FloatArray) -> None:
        n = confidence.shape[0]
        position = np.clip(confidence, 0.0, 1.0) * GRID
        lower = np.minimum(np.floor(position).astype(np.intp), GRID - 1)
        upper_share = position - lower
        residual = (hits - confidence) / n
        mass = np.full(n, 1.0 / n)
        length = GRID + 1
        self.residual = _spread(lower, upper_share, residual, length)
        self.mass = _spread(lower, upper_share, mass, length)
        self._residual_spectrum = np.fft.rfft(_fold(self.residual))
        self._mass_spectrum = np.fft.rfft(_fold(self.mass))

    def smooth(self, sigma: float) -> tuple[FloatArray, FloatArray]:
        r""":math:`\frac1n\sum_i K_\sigma(t, f_i) r_i` and :math:`\hat\delta_\sigma(t)` on
        the grid."""
        kernel = _kernel_spectrum(sigma)
        length = 2 * GRID
        residual = np.fft.irfft(self._residual_spectrum * kernel, n=length)[: GRID + 1]
        density = np.fft.irfft(self._mass_spectrum * kernel, n=length)[: GRID + 1]
        return residual, density

    def value(self, sigma: float) -> float:
        residual, density = self.smooth(sigma)
        total = _trapezoid(density)
        return _trapezoid(np.abs(residual)) / total if total > 0 else 0.0


def _spread(lower: Any, upper_share: FloatArray, weight: FloatArray, length: int) -> FloatArray:
    """Linear binning: each weight split between grid points ``lower`` and ``lower + 1``."""
    return np.bincount(lower, weights=weight * (1.0 - upper_share), minlength=length) + (
        np.bincount(lower + 1, weights=weight * upper_share, minlength=length)
    )


def _fold(values: FloatArray) -> FloatArray:
    """The even extension of grid values on [0, 1] to a period of 2 (``2 * GRID`` points).

    A point mass at an end reflects onto itself, so the kernel counts it twice there:
    the end values are doubled to match :math:`K_\\sigma(t, 0) = 2\\sum_m \\varphi(t - 2m)`.
    """
    folded = np.concatenate([values, values[-2:0:-1]])
    folded[0] *= 2.0
    folded[GRID] *= 2.0
    return folded


def _periodic_gaussian(sigma: float) -> FloatArray:
    """:math:`\\sum_m \\varphi_\\sigma(u - 2m)` at ``u = k / GRID``, ``k = 0 .. 2 GRID - 1``.

    Formed at the ``GRID + 1`` distinct distances ``min(k, 2 GRID - k) / GRID`` only and
    mirrored (the values of ``k`` and ``2 GRID - k`` are the same numbers, formed by the
    same operations): half the exponentials of every point, the same bits.
    """
    h = 1.0 / GRID
    distance = np.arange(GRID + 1) * h
    images = math.ceil(4.0 * sigma) + 2
    shifts = 2.0 * np.arange(-images, images + 1)
    # (d + s) / sigma, (-0.5 u) u, exp and the row sums in place: the operations of
    # ``np.exp(-0.5 * u * u).sum(axis=1)`` in the same order, without three temporaries
    # of (GRID + 1) x (2 images + 1) float64 (20% of the search's CPU)
    u = np.add(distance[:, None], shifts[None, :])
    u /= sigma
    terms = np.multiply(u, -0.5)
    terms *= u
    np.exp(terms, out=terms)
    half = terms.sum(axis=1)
    half /= sigma * math.sqrt(2.0 * math.pi)
    return np.concatenate([half, half[-2:0:-1]])


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(sigma: float) -> Any:
    """``rfft`` of :func:`_periodic_gaussian` (read-only), kept for the last 32 bandwidths.

    A pure function of ``sigma``: the bisection of :func:`_fixed_point` evaluates its
    two ends twice (``scipy.optimize.bisect`` again after the checks) and data of
    similar calibration walk the same first midpoints (0.5005, 0.25075, ...), as do two
    reports of the same predictions. 256 KiB an entry (8 MiB at most).
    """
    spectrum = np.fft.rfft(_periodic_gaussian(sigma))
    spectrum.flags.writeable = False
    return spectrum


def _trapezoid(values: FloatArray) -> float:
    h = 1.0 / GRID
    return float(h * (values.sum() - 0.5 * (values[0] + values[-1])))


def smooth_calibration_of(
    confidence: FloatArray,
    hits: FloatArray,
    *,
    scope: str,
    bandwidth: float | None = None,
    min_bandwidth: float = 1e-3,
    points: int = 201,
) -> SmoothCalibrationError:
    """:func:`smooth_calibration_error` of float64 confidences and hits, shape ``(n,)``."""
    n = int(confidence.shape[0])
    if n == 0:
        raise InputError("`probs` must have at least one row for the smooth calibration error")
    grid = np.linspace(0.0, 1.0, points)
    if not np.isfinite(confidence).all():  # validate=False: NaN, as calibration_error's
        unknown = np.full(points, np.nan)
        return SmoothCalibrationError(
            value=math.nan,
            bandwidth=math.nan if bandwidth is None else float(bandwidth),
            scope=scope,
            n=n,
            grid=grid,
            accuracy=unknown,
            density=unknown.copy(),
        )
    smoother = _Smoother(confidence, hits)
    sigma = _fixed_point(smoother, min_bandwidth) if bandwidth is None else bandwidth
    residual, density = smoother.smooth(sigma)
    total = _trapezoid(density)
    value = _trapezoid(np.abs(residual)) / total
    on_grid = np.arange(GRID + 1) / GRID
    smoothed_residual = np.interp(grid, on_grid, residual)
    smoothed_density = np.interp(grid, on_grid, density) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(smoothed_density > 0, smoothed_residual / smoothed_density / total, np.nan)
    return SmoothCalibrationError(
        value=float(value),
        bandwidth=float(sigma),
        scope=scope,
        n=n,
        grid=grid,
        accuracy=grid + ratio,
        density=smoothed_density,
    )


def _check_bandwidth(value: object, *, name: str) -> float:
    """A bandwidth option in :data:`MIN_BANDWIDTH` to 1."""
    checked = check_scalar(value, name=name, low=0.0, high=1.0, low_open=True)
    if checked < MIN_BANDWIDTH:
        raise InputError(
            f"`{name}` must be at least 1/1024 (the grid's resolution: 16 points a "
            f"bandwidth); got {checked}"
        )
    return checked


def _fixed_point(smoother: _Smoother, min_bandwidth: float) -> float:
    r"""The :math:`\sigma` with :math:`\mathrm{smECE}_\sigma = \sigma` (bisection), floored."""

    def excess(sigma: float) -> float:
        return smoother.value(sigma) - sigma

    if excess(min_bandwidth) <= 0:
        return min_bandwidth
    if excess(1.0) >= 0:  # smECE <= 1 always; equality only for maximally wrong data
        return 1.0
    return _bisect(excess, min_bandwidth, 1.0, BANDWIDTH_TOL)


_RTOL = 4 * 2.220446049250313e-16
"""SciPy's ``bisect`` default relative tolerance, four float64 machine epsilons."""


def _bisect(f: Callable[[float], float], a: float, b: float, xtol: float) -> float:
    r"""SciPy's ``optimize.bisect(f, a, b, xtol=xtol)`` step for step, where
    :math:`f(a) > 0 > f(b)`: the same midpoints, the same stop, the same root.

    From :math:`x_a = a` and :math:`d = b - a`, each step halves :math:`d`, evaluates
    :math:`f(x_m)` at :math:`x_m = x_a + d`, moves :math:`x_a` to :math:`x_m` when
    :math:`f(x_m)` has the sign of :math:`f(a)` (positive), and returns :math:`x_m`
    once :math:`f(x_m) = 0` or :math:`|d| < \mathrm{xtol} + 4\epsilon\,|x_m|`
    (SciPy's ``Zeros/bisect.c``, at most 100 steps).

    Issue 13 (first-call latency): ``from scipy import optimize`` took 0.09-0.15 s of
    CPU (with ``scipy.sparse``, ``scipy.fft``, ``scipy.spatial``) in every ``crossent
    report`` and every first ``smooth_calibration_error``, for this loop alone.
    """
    xa, dm = a, b - a
    for _ in range(100):
        dm *= 0.5
        xm = xa + dm
        fm = f(xm)
        if math.isnan(fm):
            raise ValueError(f"the smECE fixed point's function is NaN at {xm!r}")
        if fm > 0:  # SciPy: f(xm)'s sign bit is f(a)'s (f(a) > 0; f(xm) = 0 returns)
            xa = xm
        if fm == 0 or abs(dm) < xtol + _RTOL * abs(xm):
            return xm
    raise RuntimeError("the smECE bandwidth's bisection failed to converge in 100 steps")


def smooth_calibration_error(
    probs: Any,
    labels: Any,
    /,
    *,
    scope: str = "top-label",
    bandwidth: float | None = None,
    min_bandwidth: float = 1e-3,
    form: str = "probs",
    renormalize: bool = False,
    validate: bool = True,
) -> SmoothCalibrationError:
    r"""Smooth calibration error (smECE) with the reflected Gaussian kernel.

    .. math::

        \mathrm{smECE}_\sigma = \int_0^1 \Big|\frac1n\sum_i K_\sigma(t, f_i)\,(y_i - f_i)
        \Big|\,dt, \qquad \sigma^*: \ \mathrm{smECE}_{\sigma^*} = \sigma^*,

    where :math:`f_i` is the confidence, :math:`y_i` the hit and :math:`K_\sigma` the
    Gaussian kernel reflected at 0 and 1 (Błasiok and Nakkiran 2023).  Unlike the binned
    ECE it is a consistent calibration measure in the sense of Błasiok, Gopalan, Hu and
    Nakkiran (2023): bounded above and below by polynomials (not constant multiples) of
    the distance to the nearest perfectly calibrated predictor; and it has no bins to
    choose.

    Parameters
    ----------
    probs : array_like, shape (n, classes) or (n,)
        Predicted distributions in the form named by ``form``; a 1-D array is the
        probability of class 1 in a binary problem (labels in {0, 1}).
    labels : array_like of int, shape (n,)
        True classes.
    scope : {"top-label", "positive-class"}, default "top-label"
        Confidence :math:`\max_k p_k` against "argmax is the label", or :math:`p_1`
        against :math:`[y = 1]` (binary problems).
    bandwidth : float, optional
        A fixed :math:`\sigma` in [1/1024, 1] (:math:`\mathrm{smECE}_\sigma`; the grid
        resolves no narrower kernel); default: the fixed point :math:`\sigma^*`, as in
        the paper.
    min_bandwidth : float in [1/1024, 1], default 1e-3
        Floor of the bandwidth search (relplot's), reached only for very well calibrated,
        very large samples; the result's ``bandwidth`` says when it was.
    form : {"probs", "log_probs", "logits"}, default "probs"
        What ``probs`` holds.  Never inferred from the values.
    renormalize : bool, default False
        Divide each row by its sum first (see :func:`calibration_error`).
    validate : bool, default True
        Check the values (ranges, NaN, rows summing to 1 within a dtype-aware
        tolerance). The labels' range is checked in any case (a label outside ``[0,
        classes)`` is an index out of bounds), as are shapes and dtypes. Unchecked, a
        NaN or infinite confidence makes the value, the bandwidth searched for and the
        curve NaN (as :func:`calibration_error`'s value).

    Returns
    -------
    SmoothCalibrationError
        ``.value``, ``.bandwidth``, and the smoothed reliability curve (``.grid``,
        ``.accuracy``, ``.density``) for plotting.

    Raises
    ------
    InputError
        Invalid options, predictions or labels; ``scope="class-wise"``.

    See Also
    --------
    calibration_error : The binned estimate, with its definition.
    reliability_diagram : The binned curve.

    Notes
    -----
    The data are linearly binned onto a grid of 16385 points once; each bandwidth then
    costs two FFTs of 32768 points, so the cost is :math:`O(n)` plus a constant.  The
    ``relplot`` package (the authors' code) discretises more coarsely and searches the
    bandwidth to about 1e-3; the two agree to about 1e-3.

    References
    ----------
    Błasiok and Nakkiran (2023), Smooth ECE: Principled Reliability Diagrams via Kernel
    Smoothing, arXiv:2309.12236.

    Examples
    --------
    A constant prediction of 0.5 for examples that are all positive is off by 0.5 at
    every bandwidth, so :math:`\sigma^* = 0.5`:

    >>> import crossent
    >>> result = crossent.smooth_calibration_error([0.5] * 8, [1] * 8, scope="positive-class")
    >>> round(result.value, 6), round(result.bandwidth, 6)
    (0.5, 0.5)
    """
    if scope not in _SMOOTH_SCOPES:
        raise InputError(
            "`scope` must be 'top-label' or 'positive-class' for the smooth calibration "
            f"error; got {scope!r}"
        )
    if bandwidth is not None:
        bandwidth = _check_bandwidth(bandwidth, name="bandwidth")
    min_bandwidth = _check_bandwidth(min_bandwidth, name="min_bandwidth")
    predictions = as_predictions(
        probs, labels, form=form, validate=validate, renormalize=renormalize
    )
    confidence, hits = scope_arrays(predictions, scope)  # type: ignore[arg-type]
    return smooth_calibration_of(
        confidence, hits, scope=scope, bandwidth=bandwidth, min_bandwidth=min_bandwidth
    )
