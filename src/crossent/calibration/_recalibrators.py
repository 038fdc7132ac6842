"""Vector scaling, Platt scaling and histogram binning.

Every calibrator follows scikit-learn's conventions (``fit`` returns ``self``, learned
attributes end in ``_``) and ``transform`` returns normalised full distributions.
Temperature scaling, the robust default, is in :mod:`._temperature`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._reprs import number, numbers, one_line
from .._xp import log_softmax
from ..errors import InputError
from . import _binning
from ._binning import assign_bins, check_bins, uniform_edges
from ._calibrator import all_log_scores, as_output, check_classes, check_fitted, unlabelled
from ._inputs import (
    LOGITS,
    FloatArray,
    IntArray,
    Predictions,
    as_predictions,
    require_examples,
)
from ._separation import separated

__all__ = ["HistogramBinning", "PlattScaling", "VectorScaling"]


def _finite_log_scores(predictions: Predictions, what: str) -> FloatArray:
    """The float64 log-scores of every row (:func:`all_log_scores`), or ``InputError``
    naming the first row with one that is not finite, its class and the value given:
    a probability of 0 (log-score -inf), or, with ``validate=False``, a NaN or +inf
    logit (which spreads over its row's log-softmax: the entry named is the one given,
    not the first NaN it left; issue 13: both were "a probability of 0")."""
    scores = all_log_scores(predictions)
    bad = ~np.isfinite(scores)
    if not bad.any():
        return scores
    row = int(np.argmax(bad.any(axis=1)))
    given = np.asarray(predictions.values[row], dtype=np.float64)
    spread = np.flatnonzero(np.isnan(given) | (given == math.inf))
    col = int(spread[0]) if spread.size else int(np.argmax(bad[row]))
    value = float(given[col])
    where = f"at index ({row}, {col})"
    if spread.size:
        raise InputError(
            f"`logits` ({predictions.form}) must be finite for {what}; got {value} {where} "
            "(validate=False skipped the check that names it)"
        )
    raise InputError(
        f"{what} needs every class's probability above 0 (it fits on log-scores); "
        f"`logits` ({predictions.form}) has {value} {where}: probability 0, log-score -inf"
    )


def _minimise(objective: Any, start: FloatArray, bounds: Any = None) -> Any:
    from scipy import optimize  # lazily: only the L-BFGS calibrators need it

    return optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)


_POLISH_STEPS = 12
"""The most Newton steps of :func:`_polished` (from L-BFGS-B's point on well-scaled
scores, three or four reach the rounding of the gradient)."""

_SINGULAR = 1e-12
"""A Jacobi-scaled Hessian with a Cholesky pivot below this is singular (a direction in
which the NLL is flat: a score column that is constant) and solved by least squares."""

_REUSE = 1e-6
"""From a Newton decrement below this, :func:`_polished` keeps the last Hessian's
factor (its change over the remaining steps is ~1e-3 relative: each step still gains
about three digits, for a gradient instead of a Hessian and a factorisation)."""

_DONE = 1e-30
"""A Newton decrement (about twice the objective's excess over its minimum) below this
is far under the objective's rounding: the polish ends."""


def _polished(
    gradient: Any, hessian: Any, start: FloatArray, singular: list[bool] | None = None
) -> FloatArray:
    r"""``start`` (L-BFGS-B's stopping point) after Newton steps on a convex objective.

    L-BFGS-B stops at SciPy's default tolerances: parameters ~1e-5 from the optimum on
    well-scaled scores, much farther on scores of 1e8 or 1e-6 (its tolerance is on the
    unscaled gradient).  Newton's method does not depend on the parameters' scale:
    each step solves :math:`H d = -g`, and is taken whole once the Newton decrement
    :math:`\lambda^2 = -g^T d` is below 1/16 (where it converges quadratically), else
    damped to :math:`d / (1 + \lambda)` (the damped Newton step of self-concordant
    objectives).  :math:`H` is the exact Hessian of the point while
    :math:`\lambda^2 \ge` :data:`_REUSE`, then the last one's factor is kept (each step
    then costs a gradient).  A step is kept only while the decrement falls (the
    objective is convex: a decrement that does not fall is rounding noise, or a fit that
    does not exist running away), until it is below :data:`_DONE`; at most
    :data:`_POLISH_STEPS`.

    ``gradient(theta)`` and ``hessian(theta)`` return float64 arrays.  :math:`H` is
    scaled to a unit diagonal and factored by Cholesky; where a pivot falls below
    :data:`_SINGULAR` (the NLL is flat in some direction) the scaled system is solved
    by least squares, so no step moves along the flat direction.  Non-finite values, or
    a negative diagonal entry, end the polish where it stands.
    """
    theta = start
    solve = _newton_solver(hessian, start)
    if singular is not None:  # whether the first Hessian had a pivot below _SINGULAR
        singular.append(solve is None or bool(getattr(solve, "singular", True)))
    if solve is None:
        return start
    step, decrement = _step(gradient, solve, start)
    for _ in range(_POLISH_STEPS):
        if step is None or not decrement > _DONE:
            break
        size = math.sqrt(decrement)
        candidate = theta + (step if size <= 0.25 else step / (1.0 + size))
        if not np.all(np.isfinite(candidate)):
            break
        if decrement >= _REUSE:
            solve = _newton_solver(hessian, candidate)
            if solve is None:
                break
        step_next, decrement_next = _step(gradient, solve, candidate)
        if step_next is None or not decrement_next < decrement:
            break
        theta, step, decrement = candidate, step_next, decrement_next
    return theta


def _step(gradient: Any, solve: Any, theta: FloatArray) -> tuple[Any, float]:
    """The step ``d = solve(-g)`` at ``theta`` and its decrement ``-g @ d``; ``(None,
    nan)`` where any of them is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        g = gradient(theta)
        if not np.all(np.isfinite(g)):
            return None, math.nan
        step = solve(-g)
        if not np.all(np.isfinite(step)):
            return None, math.nan
        decrement = float(-g @ step)  # (past float64 where the fit diverges: +-inf)
    return (step, decrement) if math.isfinite(decrement) else (None, math.nan)


def _newton_solver(hessian: Any, theta: FloatArray) -> Any:
    """``rhs -> H^{-1} rhs`` for the Hessian at ``theta`` (scaled to a unit diagonal,
    Cholesky, least squares where singular: :func:`_polished`); None where the Hessian
    is not finite or has a negative diagonal entry."""
    from scipy import linalg  # lazily, as optimize

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        matrix = hessian(theta)
        diagonal = np.diag(matrix).copy()
        if not (np.all(np.isfinite(matrix)) and np.all(diagonal >= 0)):
            return None
        # (a 0 on the diagonal of a positive semi-definite matrix: its row is 0, a flat
        # direction: left unscaled, for the least squares)
        unit = np.where(diagonal > 0, 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0)), 1.0)
        scaled = matrix * unit[:, None] * unit[None, :]
    try:
        factor = linalg.cho_factor(scaled)
        singular = bool(np.min(np.abs(np.diag(factor[0]))) ** 2 < _SINGULAR)
    except linalg.LinAlgError:
        singular = True

    def solve(rhs: FloatArray) -> FloatArray:
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.all(np.isfinite(unit * rhs)):
                # (a gradient of 1e300 on a Hessian entry of 1e-300: SciPy's solvers
                # raised ValueError; a polish step that is not finite ends the polish)
                return np.full_like(rhs, math.nan)
        if singular:
            return unit * np.linalg.lstsq(scaled, unit * rhs, rcond=_SINGULAR)[0]
        return unit * linalg.cho_solve(factor, unit * rhs)

    solve.singular = singular  # type: ignore[attr-defined]
    return solve


_FLAT = 1e-10
"""An eigenvalue of the Jacobi-scaled Gram matrix of the row-centred scores' map below
this times the largest marks a direction in which the NLL may be flat
(:func:`_nearest_on_flat`; each is then checked on the data)."""


def _nearest_on_flat(
    scores: FloatArray, theta: FloatArray, start: FloatArray, free: Any
) -> FloatArray:
    r"""``theta`` moved, along the directions in which vector scaling's NLL is flat, to
    the point nearest ``start`` (the identity, :math:`w = 1, b = 0`).

    The NLL depends on :math:`\theta = (w, b)` only through each row's
    :math:`u_i = w \odot z_i + b` up to a constant: it is flat along :math:`d` exactly
    when :math:`C A_i d = 0` for every row (:math:`A_i = [\mathrm{diag}(z_i), I]`,
    :math:`C = I - \mathbf{1}\mathbf{1}^T / K`), the null space of
    :math:`G = \sum_i A_i^T C A_i = \begin{bmatrix} \mathrm{diag}(\sum z^2) &
    \mathrm{diag}(\sum z) \\ \mathrm{diag}(\sum z) & n I \end{bmatrix} - S^T S / K`,
    :math:`S = [z, \mathbf{1}]` (over the ``free`` parameters; a constant column's
    scale is pinned before; every bias alike, flat too, is left out: the biases of sum
    0 already are its nearest).  Most data have no other flat direction and ``theta``
    is returned unchanged; e.g. binary scores :math:`z_{i1} = a z_{i0} + c`, where
    :math:`u_{i1} - u_{i0} = (a w_1 - w_0) z_{i0} + c w_1 + b_1 - b_0`: flat along
    :math:`\delta w = (a, 1)`, :math:`\delta b_1 - \delta b_0 = -c`.  L-BFGS-B's
    steps stay near ``start`` + range(:math:`G`) but drift along the null space by
    some 1e-5; the component
    :math:`N N^T (\theta - \mathrm{start})` (:math:`N` an orthonormal basis of the
    null space, eigenvalues below :data:`_FLAT`; called only where the polish's first
    Hessian was singular, and not looked for where the scaled
    :math:`G`'s Cholesky pivots all exceed :math:`\sqrt{10^3 \cdot}` :data:`_FLAT`,
    which bounds its smallest eigenvalue away from 0 only loosely but, as
    :func:`_polished`'s test, marks no flat direction) is removed.  Kept only when the
    row-centred :math:`u` it changes moves by no more than rounding (64 ulp of the
    largest :math:`|u|`); else ``theta`` is returned as it was.
    """
    n, classes = scores.shape
    stacked = np.concatenate([scores, np.ones_like(scores)], axis=1)
    index = np.arange(classes)
    with np.errstate(over="ignore", invalid="ignore"):  # scores of 1e200: not finite
        gram = -(stacked.T @ stacked) / classes
        sums = scores.sum(axis=0)
        gram[index, index] += (scores * scores).sum(axis=0)
        gram[classes + index, classes + index] += n
        gram[index, classes + index] += sums
        gram[classes + index, index] += sums
    # every bias alike is flat too, but the biases of sum 0 are already its nearest:
    # n g g^T (g = 1 / sqrt(K) on the biases) takes it out of the null space, whose
    # computed vectors would carry rounding of order (the scales' spread) x 1e-16
    gram[classes:, classes:] += n / classes
    gram = gram[np.ix_(free, free)]
    if not np.all(np.isfinite(gram)):
        return theta
    diagonal = np.diag(gram)
    unit = np.where(diagonal > 0, 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0)), 1.0)
    scaled = gram * unit[:, None] * unit[None, :]
    try:  # most data: positive definite, pivots far from 0 (eigh is ~30x a Cholesky)
        if np.diag(np.linalg.cholesky(scaled)).min() ** 2 > 1e3 * _FLAT:
            return theta
    except np.linalg.LinAlgError:
        pass
    values, vectors = np.linalg.eigh(scaled)
    null = vectors[:, values <= _FLAT * values.max()] * unit[:, None]
    if null.shape[1] == 0:
        return theta
    basis = np.linalg.qr(null)[0]
    moved = theta.copy()
    moved[free] -= basis @ (basis.T @ (theta[free] - start[free]))
    change = moved - theta
    with np.errstate(over="ignore", invalid="ignore"):
        shift = scores * change[:classes] + change[classes:]
        shift -= shift.mean(axis=1, keepdims=True)
        size = np.abs(scores * theta[:classes] + theta[classes:]).max()
        if not (np.isfinite(size) and np.abs(shift).max() <= 64 * np.finfo(float).eps * size):
            return theta
    return moved


def _absent_classes(labels: IntArray, classes: int) -> bool:
    """Some class never is the label: the likelihood keeps rising as its bias falls to
    ``-inf``, so the maximum-likelihood fit does not exist."""
    return bool(np.unique(labels).size < classes)


def _separated(log_odds: FloatArray, target: FloatArray) -> bool:
    r"""Whether the log-odds :math:`s` separate the classes, so that :math:`\sigma(a s + b)`
    has no maximum-likelihood fit (Albert and Anderson 1984).

    The fit does not exist when some line :math:`a s + b` with :math:`(a, b) \ne 0` is
    :math:`\ge 0` on every positive and :math:`\le 0` on every negative example and
    nonzero on one of them: following it lowers the loss without end.  In one dimension
    that is one class only, or :math:`\max_{y=0} s \le \min_{y=1} s` (or the reverse),
    unless every :math:`s` is the same (then only the intercept matters, and it is finite).
    """
    positive, negative = log_odds[target == 1.0], log_odds[target == 0.0]
    if positive.size == 0 or negative.size == 0:
        return True
    if log_odds.min() == log_odds.max():
        return False
    return bool(negative.max() <= positive.min() or positive.max() <= negative.min())


def _platt_log_odds(scores: FloatArray) -> tuple[FloatArray, bool]:
    """Class 1's log-odds :math:`z_1 - z_0` of ``scores`` ``(n, 2)``, or where any of
    them passes float64 (logits more than 1.8e308 apart) all their halves
    :math:`z_1/2 - z_0/2`, and whether they are the halves.  The halving is exact
    down to :math:`2^{-1021}`; a subnormal score's half rounds (5e-324 to 0), and
    rounding is monotone, so whether the log-odds separate the classes is kept."""
    with np.errstate(over="ignore"):
        log_odds = scores[:, 1] - scores[:, 0]
    if not np.isinf(log_odds).any():
        return log_odds, False
    return scores[:, 1] * 0.5 - scores[:, 0] * 0.5, True


_AT_OPTIMUM = 1e-10
"""A Platt fit whose gradient is more than this relative to its terms
(:meth:`_PlattNewton.imbalance`) is fitted again by :meth:`_PlattNewton.minimise`.
L-BFGS-B and :func:`_polished` end near 1e-15 on ordinary log-odds.  (Not the Newton
decrement: a row 1e300 on the wrong side at a third of the optimum's slope leaves
the mean NLL 1e-90 above its minimum, far below its rounding, while that row's term
decides the slope's gradient.)"""

_TINY_RESIDUAL = 700.0
"""A residual below :math:`e^{-700}` (about 1e-304; :math:`|t| > 700` on the row's
far side) enters the slope's sums by its logarithm, :math:`-|t|`
(:meth:`_PlattNewton._slope_sums`)."""

_EPS = 2.0**-52

_FLOOR = 4 * _EPS
"""A sum of residuals this small relative to their sizes ends
:meth:`_PlattNewton._intercept`; a slope's gradient this small ends
:meth:`_PlattNewton._slope_root`."""

_PLATT_STEPS = 200
"""The most Newton steps of :meth:`_PlattNewton._intercept` (one or two from the
predicted intercept, up to six from a far one)."""

_SLOPE_STEPS = 200
"""The most slopes :meth:`_PlattNewton._slope_root` tries (4 to 12 on the rows
tried)."""


_FAR = 2.0**32
"""A row whose log-odds are this many times the median's size or more (the median
not 0) sends :meth:`PlattScaling.fit` to :class:`_PlattNewton` without L-BFGS-B
(:func:`_far_spread`)."""


def _far_spread(log_odds: FloatArray) -> bool:
    """Whether the largest :math:`|s_i|` is more than :data:`_FAR` times the median
    :math:`|s_i|`, which is not 0 (one partition of the sizes: about 1% of an ordinary
    fit's time)."""
    size = np.abs(log_odds)
    middle = size.size // 2
    typical = float(np.partition(size, middle)[middle])
    return typical > 0 and float(size.max()) > _FAR * typical


def _dot(x: FloatArray, y: FloatArray) -> float:
    """:math:`\\sum_i x_i y_i` by NumPy's own loop, not BLAS: OpenBLAS's threads, woken
    for each of the refit's short products, took 60 ms of CPU a product of 10^5 on the
    loaded 2-core machine (this loop: 0.05 ms)."""
    return float(np.einsum("i,i->", x, y))


def _split(low: float, high: float) -> float:
    """A point between ``low`` and ``high``: 0 where they differ in sign, the geometric
    mean where one is more than 4 times the other (a bracket of 1e-3 and 1e60 is
    halved in its exponent, 8 steps; +-1 where the other is 0), else the midpoint."""
    if low < 0.0 < high:
        return 0.0
    small, large = sorted((abs(low), abs(high)))
    if small == 0.0 and large > 4.0:  # from 0 to 1e60: 1 first, then geometric
        return math.copysign(1.0, low + high)
    if small > 0.0 and large > 4.0 * small:
        return math.copysign(math.sqrt(small) * math.sqrt(large), high)
    return low + (high - low) / 2


class _Rows:
    r"""One pass over the rows at a slope and an intercept (:meth:`_PlattNewton._rows`):
    :math:`|t|`, :math:`\sigma(-|t|)`, :math:`\sigma(|t|)`, whether the residual's
    size :math:`|r| = |\sigma(t) - y|` is the first (``small``), and :math:`|r|`."""

    __slots__ = ("a", "hi", "lo", "size", "small")

    def __init__(
        self, a: FloatArray, lo: FloatArray, hi: FloatArray, small: Any, size: FloatArray
    ) -> None:
        self.a, self.lo, self.hi, self.small, self.size = a, lo, hi, small, size


class _PlattNewton:
    r"""Platt scaling's maximum-likelihood fit where L-BFGS-B does not reach it: a row
    far on the wrong side of its label (issue 13).

    The mean NLL is :math:`f(a, b) = \frac1n \sum_i \log(1 + e^{-(2 y_i - 1)(a s_i +
    b)})`.  A row of log-odds :math:`s = -S` with label 1 (:math:`S = 10^{10}` and
    beyond) makes the optimum's slope :math:`a^* \approx -\log(S / G) / S` (:math:`G`
    the other rows' pull on the slope), unless the other rows pull it negative
    themselves: -1.2e-9 for :math:`2 \cdot 10^{10}`, -2.1e-306 for :math:`3.4 \cdot
    10^{308}` (rows of the tests).  The row's residual there is about :math:`G / S`,
    its loss :math:`e^{-700}`, far below the NLL's rounding, so only the gradient tells
    the optimum.  L-BFGS-B (from :math:`a = 1`, its tolerance on the unscaled gradient)
    stopped at -6.8e-8 for the first and at its start for log-odds past 1e300; Newton's
    method advances the far row's :math:`t = a s + b` by about 1 a step in its
    exponential tail (700 steps).  Here:

    * the slope is :math:`a = c \alpha`, :math:`c = 2^{-k}` the least power of two that
      keeps :math:`n \max_i |c s_i|` below :math:`2^{1020}` (:math:`c = 1` unless the
      log-odds pass about :math:`10^{307} / n`), so sums of the rows' terms stay
      finite; :math:`u_i = c s_i` is exact down to :math:`|s_i| \approx 2^{k - 1022}`
      (:math:`k \le 24` at :math:`10^6` rows: log-odds of :math:`10^{-300}` keep their
      digits beside one of :math:`1.7 \cdot 10^{308}`);
    * the profile :math:`F(\alpha) = \min_b f(c \alpha, b)` is convex: its derivative
      :math:`g(\alpha) = \sum_i r_i u_i` at the intercept that zeroes :math:`\sum_i r_i`
      (:meth:`_intercept`, Newton's method inside a bracket, from the intercept
      predicted by :math:`db/d\alpha = -\sum_i w_i u_i / \sum_i w_i`, :math:`w_i =
      \sigma(t_i) \sigma(-t_i)`: one or two passes) is increasing, and its root is the
      fit;
    * the root is found by Newton's method on :math:`h = \log P - \log N =
      \operatorname{log1p}(g / N)` (:math:`P` and :math:`N` the sums of the positive
      and the negative terms :math:`r_i u_i`), kept inside the bracket of the signs
      seen (:meth:`_slope_root`).  Where one far row's term
      :math:`\approx S e^{-|t|}` decides :math:`P`, :math:`h` is linear in
      :math:`\alpha` (Newton's method on :math:`g` moved that row's :math:`t` by 1 a
      step); near the root :math:`h \approx g / N` (Newton's method on :math:`g`).
      :math:`h' = P'/P - N'/N`, each a mean of :math:`k_i = (w_i / |r_i|)
      \operatorname{sign}(u_i) (u_i + db/d\alpha)` weighted by :math:`|r_i u_i|` (the
      largest scaled to 1: no square of :math:`u` is formed, whose range, :math:`10^{-600}`
      to :math:`10^{616}` beside a far row, float64 does not hold);
    * each row's residual is formed from one exponential, :math:`e = e^{-|t|}`,
      :math:`\sigma(|t|) = 1 / (1 + e)`, :math:`\sigma(-|t|) = e \sigma(|t|)`, with
      :math:`r = \sigma(t)` for :math:`y = 0` and :math:`r = -\sigma(-t)` for
      :math:`y = 1` (where :math:`\sigma(t) - 1` rounds to 0), and one below
      :math:`e^{-700}` enters the slope's sums by its logarithm :math:`-|t|`
      (:meth:`_slope_sums`).

    ``converged_`` says whether the fit's gradient is within :data:`_AT_OPTIMUM` of its
    terms' sizes (:meth:`imbalance`).
    """

    def __init__(self, log_odds: FloatArray, target: FloatArray) -> None:
        self.target, self.n = target, target.size
        largest = float(np.max(np.abs(log_odds)))
        # sums of n terms of size |u| at most stay below 2^1020 (platt2 kept (c s)^2 n
        # below 2^1000 for a Hessian: log-odds of 1e-300 beside one of 1e300 became 0,
        # and the fit and its converged_ ignored them; issue 13)
        exponent = math.frexp(largest)[1] + math.frexp(float(self.n))[1]
        self.shift = max(0, exponent - 1020)
        self.u = np.ldexp(log_odds, -self.shift)  # c s, c = 2^-shift (exact unless subnormal)
        self.one = target == 1.0
        self.flip = np.where(self.one, -1.0, 1.0)
        self.fu = self.flip * self.u  # r u = |r| fu
        self.sign_u = np.sign(self.u)

    def _rows(self, alpha: float, b: float) -> _Rows:
        r"""The pass at :math:`(\alpha, b)`: one exponential a row."""
        with np.errstate(over="ignore", invalid="ignore"):
            t = self.u * alpha
            t += b
        a = np.abs(t)
        e = np.negative(a)
        np.exp(e, out=e)
        hi = e + 1.0
        np.divide(1.0, hi, out=hi)  # sigma(|t|)
        lo = np.multiply(e, hi, out=e)  # sigma(-|t|)
        small = np.equal(t >= 0.0, self.one)  # |r| = sigma(-|t|)
        return _Rows(a, lo, hi, small, np.where(small, lo, hi))

    def _slope_sums(self, rows: _Rows) -> tuple[FloatArray, float, float]:
        r"""The terms :math:`r_i u_i`, their sum :math:`g` and the sum of their sizes
        (a residual below :math:`e^{-700}` from its logarithm, :math:`-|t|`: the far
        row's at the optimum, 6e-309 for log-odds of 1.7e308, has lost its digits)."""
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            product = rows.size * self.fu
            tiny = rows.small & (rows.a > _TINY_RESIDUAL) & (self.u != 0.0)
            if tiny.any():
                u = self.u[tiny]
                size = np.exp(np.log(np.abs(u)) - rows.a[tiny])
                product[tiny] = np.copysign(size, self.fu[tiny])
            return product, float(product.sum()), float(np.abs(product).sum())

    def imbalance(self, theta: FloatArray) -> float:
        r"""The gradient's entries relative to the sums of their terms' sizes,
        :math:`|\sum_i r_i u_i| / \sum_i |r_i u_i|` and :math:`|\sum_i r_i| / \sum_i
        |r_i|`, the larger (0 where every term is 0; nan where not finite): 1 where one
        row's term decides the entry, the sums' rounding at the optimum."""
        rows = self._rows(float(theta[0]), float(theta[1]))
        _, total, size = self._slope_sums(rows)
        with np.errstate(over="ignore", invalid="ignore"):
            residuals = (abs(float((rows.size * self.flip).sum())), float(rows.size.sum()))
        worst = 0.0
        for part, whole in ((abs(total), size), residuals):
            if not (math.isfinite(part) and math.isfinite(whole)):
                return math.nan
            if whole > 0:
                worst = max(worst, part / whole)
        return worst

    def _scaled(self, fitted: FloatArray) -> FloatArray:
        with np.errstate(over="ignore"):  # (past float64: inf, then not at the optimum)
            return np.array([np.ldexp(float(fitted[0]), self.shift), float(fitted[1])])

    def at_optimum(self, fitted: FloatArray) -> bool:
        """Whether ``fitted`` (slope and intercept of the log-odds) has an
        :meth:`imbalance` of at most :data:`_AT_OPTIMUM`."""
        return self.imbalance(self._scaled(fitted)) <= _AT_OPTIMUM

    def _intercept(self, alpha: float, start: float) -> tuple[float, _Rows, float]:
        r"""The intercept that minimises the NLL at the slope ``alpha`` (scaled units):
        the root of :math:`\sum_i r_i`, increasing in :math:`b`, by Newton's method
        kept inside the bracket of the signs seen (split where a step leaves it),
        until the sum is its rounding (then one more step) or a step is below 2 ulp of
        :math:`b`.  Returns it, the last pass (at the intercept before that last step)
        and the last step."""
        b, low, high, reach = start, -math.inf, math.inf, 1.0
        rows = self._rows(alpha, b)
        for _ in range(_PLATT_STEPS):
            size = rows.size
            total = float((size * self.flip).sum())  # (pairwise: its rounding is the floor)
            curvature = _dot(rows.lo, rows.hi)
            step = b - total / curvature if curvature > 0 else math.nan
            if abs(total) <= _FLOOR * float(size.sum()):
                # the sum is its rounding: Newton's last correction, below it
                return (step, rows, step - b) if math.isfinite(step) else (b, rows, 0.0)
            low, high = (b, high) if total < 0 else (low, b)
            if not low < step < high:
                if math.isfinite(low) and math.isfinite(high):
                    step = _split(low, high)
                else:  # no bracket yet (a slope far past the fit's: every row
                    # saturated): steps that grow as 2^(k^2 / 2), to 1e60 in 20
                    reach *= 2.0
                    step = b + (1.0 + abs(b)) * reach * (1.0 if total < 0 else -1.0)
            if abs(step - b) <= 2 * _EPS * abs(b) or step in (low, high):
                return step, rows, step - b
            b = step
            rows = self._rows(alpha, b)
        return b, rows, 0.0

    def _profile(
        self, alpha: float, start: float
    ) -> tuple[float, float, float, float, float, float]:
        r"""At the slope ``alpha``: the intercept (:meth:`_intercept` from ``start``),
        :math:`g`, :math:`N` (the sum of the negative terms' sizes), :math:`h' = P'/P -
        N'/N` (nan where either is not formed), :math:`db/d\alpha`, and the sum of
        the terms' sizes."""
        b, rows, last = self._intercept(alpha, start)
        product, total, size = self._slope_sums(rows)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            # w u = |r u| (w / |r|) sign(u) = r u flip (w / |r|); w / |r| is the other
            # of sigma(+-|t|)
            other = np.where(rows.small, rows.hi, rows.lo)
            weight = _dot(rows.lo, rows.hi)
            pull = _dot(product, other * self.flip)  # sum of w u
            rate = -pull / weight if weight > 0 else 0.0  # db / d alpha
            total += pull * last  # g at b, to first order in the last step
            k = (self.u + rate) * other * self.sign_u
            means, rest = [], 0.0
            for sign in (1.0, -1.0):
                part = np.maximum(product * sign, 0.0)
                most = float(part.max())
                rest = float(part.sum())  # (the last: N)
                if not (most > 0 and math.isfinite(most)):
                    means.append(math.nan)
                    continue
                part = np.ldexp(part, -math.frexp(most)[1])
                means.append(_dot(part, k) / float(part.sum()))
        return b, total, rest, means[0] + means[1], rate, size

    def minimise(self) -> tuple[FloatArray, bool]:
        """The maximum-likelihood fit (slope and intercept of the log-odds) and whether
        its :meth:`imbalance` reached :data:`_AT_OPTIMUM` (from the intercept-only fit;
        the point L-BFGS-B left is not used)."""
        positive = float(self.target.sum())
        alpha, intercept = self._slope_root(math.log(positive / (self.n - positive)))
        theta = np.array([alpha, intercept])
        reached = self.imbalance(theta) <= _AT_OPTIMUM
        return np.array([math.ldexp(alpha, -self.shift), intercept]), bool(reached)

    def _slope_root(self, intercept: float) -> tuple[float, float]:
        r"""The root of the profile's derivative :math:`g` (increasing) and its
        intercept: Newton's method on :math:`h = \operatorname{log1p}(g / N)` from
        :math:`\alpha = 0` (where ``intercept``, the intercept-only fit, is the
        profile's), a step that leaves the bracket of the signs seen, or one after
        which :math:`|h|` did not halve (once the bracket is closed), replaced by a
        split of the bracket
        (:func:`_split`: geometric across scales) or, before the bracket closes, by
        steps that square their factor; until :math:`|g|` is its rounding
        (:data:`_FLOOR` of its terms' sizes) or the bracket is 4 ulp wide."""
        alpha, below, above = 0.0, -math.inf, math.inf  # g(below) < 0 < g(above)
        slow, factor, previous = False, 2.0, math.inf
        for _ in range(_SLOPE_STEPS):
            intercept, total, rest, rate_h, rate, size = self._profile(alpha, intercept)
            at_floor = abs(total) <= _FLOOR * size  # (a nan goes on: the bracket decides)
            if not at_floor:
                below, above = (alpha, above) if total < 0 else (below, alpha)
                if above - below <= 4 * _EPS * max(abs(below), abs(above)) < math.inf:
                    break
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                ratio = total / rest if rest > 0 else math.inf
                h = math.log1p(ratio) if ratio > -1 else -math.inf  # (P = 0: -inf)
                step = alpha - h / rate_h if rate_h > 0 else math.nan
            if at_floor or abs(step - alpha) <= 2 * _EPS * abs(alpha):
                # Newton's last correction, below the gradient's rounding (a flat
                # profile: 3.7e-13 of the slope where the gradient was 5e-16 of its
                # terms), kept in the bracket
                if below < step < above and math.isfinite(step):
                    intercept += rate * (step - alpha)
                    alpha = step
                break
            closed = math.isfinite(below) and math.isfinite(above)
            if (not (slow and closed)) and below < step < above and math.isfinite(step):
                # (a slow step splits a closed bracket; while it is open, Newton's
                # step beats growing it: from the far row's scale to the others')
                slow, previous = abs(h) > previous / 2, abs(h)
            elif closed:
                step, slow, previous = _split(below, above), False, math.inf
            else:  # the bracket is open on one side: outwards, by squared factors
                direction = 1.0 if total < 0 else -1.0
                if alpha == 0.0:
                    scale = float(np.max(np.abs(self.u)))
                    step = direction / scale if scale > 0 else direction
                else:
                    step = alpha * factor
                    factor *= factor
                slow, previous = False, math.inf
            if not math.isfinite(step):  # the root past float64 (log-odds of 1e-310
                break  # beside one of 1e300: |slope| > 1e308): not converged
            move = step - alpha
            with np.errstate(over="ignore", invalid="ignore"):
                guess = intercept + rate * move
            intercept = guess if math.isfinite(guess) else intercept
            alpha = step
        return alpha, intercept


class VectorScaling:
    r"""Vector scaling: ``softmax(w * z + b)`` with one scale and one bias per class.

    Guo et al. (2017)'s diagonal matrix scaling, fitted by L-BFGS on the mean NLL with
    its exact gradient.

    The maximum-likelihood fit does not exist when some class is never the label (its
    bias falls without end) or when the scaled scores separate the classes (some
    direction of the parameters has every label's margin :math:`u_{iy_i} - u_{ik}`
    non-decreasing and one increasing, e.g. every label top-ranked: the scales grow
    without end); L-BFGS then stops at an arbitrary point of a falling NLL.  As for
    :class:`PlattScaling`, ``separated_`` is then True, ``converged_`` False and the fit
    is kept as L-BFGS stopped.  Separation is decided exactly up to rounding
    (:mod:`crossent.calibration._separation`: the argmax direction, a certificate of
    overlap from the fit's probabilities (a bound on a Newton decrement below 1 proves
    a positive null vector of the margins' matrix exists), else the dual linear
    program of :math:`2K` equality rows by HiGHS's dual simplex; overlaps thinner than
    its tolerance, about 1e-8 of the scores' scale, are reported as separated).

    A score column that is the same on every row (:math:`z_{ik} = c_k`) makes
    :math:`w_k c_k + b_k` the only thing the data determine: its scale is pinned to
    ``scale_[k] = 1`` (the identity's) and its bias carries the fit.  Other directions
    in which the NLL is flat (e.g. binary scores :math:`z_{i1} = a z_{i0} + c`, where
    only :math:`a w_1 - w_0` and :math:`c w_1 + b_1 - b_0` matter; logits
    :math:`[-s, s]`: :math:`w_0 + w_1`) are fixed at the fit nearest the identity
    :math:`w = 1, b = 0` (for :math:`[-s, s]`: both scales equal), where L-BFGS drifted
    along them by some 1e-5.

    L-BFGS-B stops at SciPy's default tolerances (projected gradient below 1e-5,
    parameters about 1e-5 from the optimum); Newton steps with the exact Hessian
    (formed once, :math:`O(n K^2)`) then bring the parameters to the optimum within the
    rounding of the gradient (about 1e-15 against a float64 Newton reference on
    well-conditioned data).  Softmax is unchanged by a constant added to every bias:
    the fitted biases are those that sum to 0.
    :class:`~crossent.TemperatureScaling`'s one parameter is solved to ``xtol``.

    Attributes
    ----------
    scale_, bias_ : ndarray, shape (classes,)
        ``scale_[k]`` is 1 for a column constant over the fitting rows.
    converged_ : bool
        L-BFGS converged and the fit exists (the classes are not separated).
    separated_ : bool
        The scores separate the classes (or some class is never the label): no finite
        fit exists.
    n_iter_ : int

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 3))
    >>> y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in z])
    >>> vs = crossent.VectorScaling().fit(3 * z + [1.0, 0.0, -1.0], y)
    >>> np.round(vs.scale_, 1).tolist()
    [0.3, 0.3, 0.3]
    """

    def __repr__(self) -> str:
        """One line: the classes, scales and biases (their range beyond 4 classes) and
        whether the fit converged (and the classes are separated), or ``unfitted``."""
        if not hasattr(self, "scale_"):
            return one_line("VectorScaling", ["unfitted"])
        state = [
            f"classes={len(self.scale_)}",
            f"scale={numbers(self.scale_)}",
            f"bias={numbers(self.bias_)}",
            f"converged={self.converged_}",
        ]
        return one_line("VectorScaling", state + (["separated=True"] if self.separated_ else []))

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = LOGITS, validate: bool = True
    ) -> VectorScaling:
        """Fit one scale and one bias per class by the mean NLL on ``logits`` and ``labels``.

        ``logits`` ``(n, classes)`` may also be log-probabilities or probabilities
        (``form``; their logarithm is taken as the scores). Returns ``self``;
        ``validate=False`` skips the values' check. Raises ``InputError`` for scores
        that are not finite (a probability of 0).
        """
        predictions = as_predictions(logits, labels, form=form, validate=validate)
        require_examples(predictions, purpose="fitting VectorScaling")
        scores = _finite_log_scores(predictions, "VectorScaling")
        n, classes = scores.shape
        rows, labels = np.arange(n), predictions.labels
        onehot = np.zeros_like(scores)
        onehot[rows, labels] = 1.0

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            scale, bias = params[:classes], params[classes:]
            # scores of 1e308 make NLLs and slopes past float64's range: +-inf, their
            # rounded values (no NumPy warning). The label's log-probability is taken,
            # not summed against the one-hot rows, where -inf * 0 was NaN (issue 13).
            with np.errstate(over="ignore"):
                log_probs = log_softmax(scores * scale + bias, xp=np)
                residual = (np.exp(log_probs) - onehot) / n
                grad = np.concatenate([(residual * scores).sum(axis=0), residual.sum(axis=0)])
                return float(-np.sum(log_probs[rows, labels]) / n), grad

        def gradient(params: FloatArray) -> FloatArray:
            # the gradient of the NLL plus (sum of biases)^2 / (2 K): softmax ignores a
            # constant added to every bias, and the penalty picks the biases of sum 0
            # (where L-BFGS-B's steps, all orthogonal to that direction, stay from 0)
            grad = objective(params)[1]
            grad[classes:] += params[classes:].sum() / classes
            return grad

        def hessian(params: FloatArray) -> FloatArray:
            # u = w z + b, P = softmax(u): H = J^T (diag P - P P^T) J / n summed over rows,
            # in blocks of A = P z: [[diag(sum P z^2) - A^T A, diag(sum P z) - A^T P],
            #                        [.. its transpose .., diag(sum P) - P^T P]] / n
            with np.errstate(over="ignore", invalid="ignore"):
                probs = np.exp(log_softmax(scores * params[:classes] + params[classes:], xp=np))
                weighted = probs * scores
                blocks = np.empty((2 * classes, 2 * classes))
                stacked = np.concatenate([weighted, probs], axis=1)
                np.matmul(stacked.T, stacked, out=blocks)
                blocks *= -1.0
                diagonal = np.concatenate([(weighted * scores).sum(axis=0), probs.sum(axis=0)])
                blocks[np.diag_indices(2 * classes)] += diagonal
                cross = np.arange(classes)
                blocks[cross, classes + cross] += weighted.sum(axis=0)
                blocks[classes + cross, cross] += weighted.sum(axis=0)
                blocks /= n
                blocks[classes:, classes:] += 1.0 / classes  # the penalty's
            return blocks

        # a constant column's scale multiplies a constant: only w_k c_k + b_k matters,
        # and the scale is pinned to 1 (L-BFGS-B's bounds; the polish leaves it out)
        constant = np.all(scores == scores[:1], axis=0)
        free = np.concatenate([~constant, np.ones(classes, dtype=bool)])
        start = np.concatenate([np.ones(classes), np.zeros(classes)])
        bounds = [(1.0, 1.0) if pinned else (None, None) for pinned in constant]
        result = _minimise(objective, start, bounds + [(None, None)] * classes)
        stopped = np.where(free, result.x, start)

        def polished(theta: FloatArray) -> FloatArray:
            def full(reduced: FloatArray) -> FloatArray:
                out = start.copy()
                out[free] = reduced
                return out

            picked = np.ix_(free, free)
            reduced = _polished(
                lambda t: gradient(full(t))[free],
                lambda t: hessian(full(t))[picked],
                theta[free],
                singular,
            )
            return full(reduced)

        fitted, singular = stopped, list[bool]()
        self.separated_ = _absent_classes(labels, classes)
        if not self.separated_:
            fitted = polished(stopped)
            with np.errstate(over="ignore", under="ignore"):
                probs = np.exp(log_softmax(scores * fitted[:classes] + fitted[classes:], xp=np))
            self.separated_ = separated(scores, labels, probs)
            if self.separated_:
                fitted = stopped
            elif any(singular):  # a flat direction makes the Hessian singular: look for it
                fitted = _nearest_on_flat(scores, fitted, start, free)
        self.scale_, self.bias_ = fitted[:classes], fitted[classes:]
        self.converged_ = bool(result.success) and not self.separated_
        self.n_iter_ = int(result.nit)
        return self

    def transform(self, logits: Any, /, *, form: str = LOGITS, output: str = "probs") -> Any:
        """The recalibrated distributions ``softmax(scale * z + bias)`` as probabilities or
        log-probs.

        Runs on the host in float64, like the evaluation functions: ``logits`` of any
        library (a CPU tensor, a JAX or array-api-strict array) is read through NumPy,
        and the result is a NumPy float64 array of shape ``(n, classes)`` whatever the
        input's library (``torch.from_numpy(result)`` brings it back to PyTorch).
        """
        check_fitted(self, "scale_")
        predictions = unlabelled(logits, form)
        check_classes(predictions, self.scale_.size, logits)
        scores = _finite_log_scores(predictions, "VectorScaling")
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = scores * self.scale_ + self.bias_
        far = ~np.all(np.isfinite(scaled), axis=1)
        if not far.any():
            return as_output(scaled, output)
        # Rows whose scaled scores overflow (logits of 1e308 times a scale of 48): their
        # softmax of +-inf was NaN.  They are scaled down by W = 4 max(|scale|, |bias|, 1)
        # first, every entry then at most 0.45e308 and their differences finite, and the
        # log-softmax taken of W times those differences (a difference past float64 is
        # -inf: probability 0, as it rounds)
        weight = 4.0 * max(
            float(np.max(np.abs(self.scale_))), float(np.max(np.abs(self.bias_))), 1.0
        )
        small = scores[far] * (self.scale_ / weight) + self.bias_ / weight
        with np.errstate(over="ignore"):
            gaps = (small - small.max(axis=1, keepdims=True)) * weight
        scaled[far] = gaps
        return as_output(scaled, output)


class PlattScaling:
    r"""Platt scaling for binary problems: :math:`p_1 = \sigma(a s + b)`, :math:`s = z_1 - z_0`.

    Platt (1999)'s logistic calibration of the log-odds, fitted by maximum likelihood
    (L-BFGS) on the labels themselves (not Platt's smoothed targets
    :math:`(n_+ + 1)/(n_+ + 2)` and :math:`1/(n_- + 2)`, which scikit-learn uses).
    Returns both classes' probabilities.

    When the log-odds separate the classes (:math:`\max_{y=0} s \le \min_{y=1} s` or
    the reverse, or only one class is present) the maximum-likelihood fit does not
    exist: the slope or the intercept grows without end and L-BFGS stops at an arbitrary
    point.  ``separated_`` is then True and ``converged_`` False.

    As :class:`VectorScaling`, L-BFGS-B's point (about 1e-5 from the optimum) is
    polished by Newton steps with the exact 2 x 2 Hessian to within the rounding of the
    gradient; a separated fit is kept as L-BFGS stopped.  Where the polished point's
    gradient is still more than 1e-10 of its terms' sizes (a row far on the wrong side
    of its label, log-odds of 1e10 against it: the optimum's slope is then near
    :math:`-\log(S)/S`, down to -2e-306), the fit is the root of the profile
    likelihood's derivative in the slope, found by a safeguarded Newton's method
    (``_PlattNewton``), and ``converged_`` says whether it reached that gradient.
    Where some row's log-odds are :math:`2^{32}` times the median's size or more, that
    fit is taken without L-BFGS (which took three times an ordinary fit's time there).

    Attributes
    ----------
    slope_, intercept_ : float
    converged_ : bool
        L-BFGS converged (or, where its polished point was not the optimum or a row's
        log-odds were :math:`2^{32}` times the median's, the profile fit reached a
        gradient within 1e-10 of its terms) and the fit exists (the classes are not
        separated).
    separated_ : bool
        The log-odds separate the classes (or one class only): no finite fit exists.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=5000) * 2
    >>> y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * s - 0.3)))).astype(int)
    >>> platt = crossent.PlattScaling().fit(np.stack([np.zeros_like(s), s], axis=1), y)
    >>> round(platt.slope_, 1), round(platt.intercept_, 1)
    (0.5, -0.3)
    """

    def __repr__(self) -> str:
        """One line: slope, intercept and whether the fit converged (and the classes are
        separated), or ``unfitted``."""
        if not hasattr(self, "slope_"):
            return one_line("PlattScaling", ["unfitted"])
        state = [
            f"slope={number(self.slope_)}",
            f"intercept={number(self.intercept_)}",
            f"converged={self.converged_}",
        ]
        return one_line("PlattScaling", state + (["separated=True"] if self.separated_ else []))

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = LOGITS, validate: bool = True
    ) -> PlattScaling:
        """Fit slope and intercept of the log-odds ``z_1 - z_0`` by the labels' NLL.

        ``logits`` ``(n, 2)`` may also be log-probabilities or probabilities (``form``).
        Returns ``self``; ``validate=False`` skips the values' check. Raises
        ``InputError`` for another number of classes than 2.
        """
        predictions = as_predictions(logits, labels, form=form, validate=validate)
        if predictions.classes != 2:
            raise InputError(
                f"PlattScaling is for 2 classes; got {predictions.classes}. Use "
                "TemperatureScaling or VectorScaling."
            )
        require_examples(predictions, purpose="fitting PlattScaling")
        from scipy import special  # here, not at import (issue 13: import time)

        # one read of the scores: the log-odds, or their halves where they pass float64
        # (logits more than 1.8e308 apart, [1e308, -1e308]: log-odds 2e308, +-inf, left
        # the fit at its start, slope 1 and intercept 0; issue 13). The halves
        # z_1/2 - z_0/2 are exact (a power of two); their slope is twice the log-odds' own
        log_odds, halved = _platt_log_odds(_finite_log_scores(predictions, "PlattScaling"))
        target = predictions.labels.astype(np.float64)
        n = target.size

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            # log(1 + e^t) - y t is log(1 + e^-t) for y = 1: no inf - inf (NaN) at an
            # infinite t; sums past float64's range are +-inf, unwarned (issue 13).
            with np.errstate(over="ignore", invalid="ignore"):
                t = params[0] * log_odds + params[1]
                loss = np.logaddexp(0.0, np.where(target == 1.0, -t, t))
                residual = (special.expit(t) - target) / n
                return float(loss.sum() / n), np.array([residual @ log_odds, residual.sum()])

        def gradient(params: FloatArray) -> FloatArray:
            return objective(params)[1]

        def hessian(params: FloatArray) -> FloatArray:
            # sum of p (1 - p) [s, 1]^T [s, 1] / n, p = sigma(a s + b). (weight * s) @ s:
            # a weight of 0 at a log-odds past 1.34e154 is 0, not 0 * inf (NaN: the polish
            # then failed, and the fit kept L-BFGS-B's point, 5e-7 off, for any row of
            # log-odds past it on its own side; issue 13). Sums past float64 (a row far on
            # the wrong side) are +inf, unwarned, as the objective's
            with np.errstate(over="ignore", invalid="ignore"):
                t = params[0] * log_odds + params[1]
                weight = special.expit(t) * special.expit(-t) / n
                ws = weight @ log_odds
                return np.array([[(weight * log_odds) @ log_odds, ws], [ws, weight.sum()]])

        self.separated_ = _separated(log_odds, target)
        if not self.separated_ and _far_spread(log_odds):
            # a row 2^32 times the median log-odds or more: L-BFGS-B's point is not the
            # optimum where it is on the wrong side of its label, and it took 3 times an
            # ordinary fit's time to reach it (10^6 rows, one of 1e10 or 1.7e308: 1.2 s
            # of 1.8; issue 13): the profile fit, without it
            fitted, converged = _PlattNewton(log_odds, target).minimise()
        else:
            result = _minimise(objective, np.array([1.0, 0.0]))
            fitted = result.x if self.separated_ else _polished(gradient, hessian, result.x)
            converged = bool(result.success) and not self.separated_
            if not self.separated_:
                # L-BFGS-B and the polish stop short of the optimum where a row is far
                # on the wrong side of its label (log-odds 1e10 against it: the slope is
                # -1.2e-9, where they stopped at -6.8e-8; issue 13): checked by the
                # gradient, and fitted again by _PlattNewton where it is not small
                newton = _PlattNewton(log_odds, target)
                if not newton.at_optimum(fitted):
                    fitted, converged = newton.minimise()
        self.slope_, self.intercept_ = float(fitted[0]) * (0.5 if halved else 1.0), float(fitted[1])
        self.converged_ = converged
        return self

    @staticmethod
    def _log_odds(predictions: Predictions) -> FloatArray:
        """Class 1's log-odds :math:`z_1 - z_0` (+-inf past float64's range)."""
        scores = _finite_log_scores(predictions, "PlattScaling")
        with np.errstate(over="ignore"):
            return scores[:, 1] - scores[:, 0]

    def transform(self, logits: Any, /, *, form: str = LOGITS, output: str = "probs") -> Any:
        """The recalibrated two-class distributions (class 1's log-odds ``slope * t +
        intercept``) as probabilities or log-probs.

        Runs on the host in float64, like the evaluation functions: ``logits`` of any
        library (a CPU tensor, a JAX or array-api-strict array) is read through NumPy,
        and the result is a NumPy float64 array of shape ``(n, classes)`` whatever the
        input's library (``torch.from_numpy(result)`` brings it back to PyTorch).
        """
        check_fitted(self, "slope_")
        predictions = unlabelled(logits, form)
        check_classes(predictions, 2, logits)
        # logits more than 1.8e308 apart ([-1e308, 1e308]) give log-odds of +-inf: their
        # rows are [0, 1] or [1, 0] (as every finite row so far apart rounds), where the
        # softmax of [0, inf] was [0, nan] with NumPy's overflow warnings
        log_odds = self._log_odds(predictions)
        infinite = np.isinf(log_odds)
        far = infinite & (self.slope_ != 0.0)  # (a slope of 0 leaves the intercept alone)
        t = self.slope_ * np.where(infinite, 0.0, log_odds) + self.intercept_
        result = as_output(np.stack([np.zeros_like(t), t], axis=1), output)
        if far.any():
            one = np.signbit(self.slope_ * log_odds[far])  # class 0 certain where t = -inf
            sure, never = (1.0, 0.0) if output == "probs" else (0.0, -math.inf)
            result[far] = np.where(one[:, None], [sure, never], [never, sure])
        return result


class HistogramBinning:
    r"""Histogram binning (Zadrozny and Elkan 2001), one-vs-rest per class, then normalised.

    Each class's probability is replaced by the smoothed hit rate of its bin,
    :math:`(h_b + 1)/(n_b + 2)` (Laplace's rule, so no class gets probability 0), and the
    row is divided by its sum so the result is a distribution.

    Parameters
    ----------
    bins : int, default 15
        Equal-width bins on [0, 1], ``[a, b)`` with the last closed; at most 2**20, and
        at most 2**24 over all the classes (``fit`` keeps one hit rate a bin a class).

    Examples
    --------
    >>> import numpy as np, crossent
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> out = crossent.HistogramBinning(bins=2).fit(probs, [0, 1, 1]).transform(probs)
    >>> np.allclose(out.sum(axis=1), 1.0)
    True
    """

    def __init__(self, *, bins: int = 15) -> None:
        self.bins = bins

    def __repr__(self) -> str:
        """One line: the bins and, once fitted, the classes, or ``unfitted``."""
        state = [f"classes={len(self.rates_)}"] if hasattr(self, "rates_") else ["unfitted"]
        return one_line("HistogramBinning", [f"bins={self.bins!r}", *state])

    def fit(
        self, probs: Any, labels: Any, /, *, form: str = "probs", validate: bool = True
    ) -> HistogramBinning:
        """Fit each class's bin hit rates, one-vs-rest, on ``probs`` and ``labels``.

        ``probs`` ``(n, classes)`` may also be log-probabilities or logits (``form``).
        Returns ``self``; ``validate=False`` skips the values' check.
        """
        bins = check_bins(self.bins, "uniform", "left", "l1")
        predictions = as_predictions(probs, labels, form=form, validate=validate)
        require_examples(predictions, purpose="fitting HistogramBinning")
        cells, bound = bins * predictions.classes, _binning.MAX_CLASS_BINS
        if cells > bound:  # the class-wise scope's bound (384 MiB of sums there)
            raise InputError(
                f"HistogramBinning keeps {bins} bins for each of {predictions.classes} "
                f"classes, {cells} in all, more than {bound} (2**24); use fewer `bins`"
            )
        p = predictions.probs()
        self.edges_ = uniform_edges(bins)
        rates = np.empty((predictions.classes, bins))
        for k in range(predictions.classes):
            index = assign_bins(p[:, k], self.edges_, "left")
            count = np.bincount(index, minlength=bins)
            hits = np.bincount(index, weights=predictions.labels == k, minlength=bins)
            rates[k] = (hits + 1.0) / (count + 2.0)
        self.rates_ = rates
        return self

    def transform(self, probs: Any, /, *, form: str = "probs", output: str = "probs") -> Any:
        """The recalibrated distributions (each bin's observed rates) as probabilities or
        log-probs.

        Runs on the host in float64, like the evaluation functions: ``probs`` of any
        library (a CPU tensor, a JAX or array-api-strict array) is read through NumPy,
        and the result is a NumPy float64 array of shape ``(n, classes)`` whatever the
        input's library (``torch.from_numpy(result)`` brings it back to PyTorch).
        """
        check_fitted(self, "rates_")
        predictions = unlabelled(probs, form)
        check_classes(predictions, self.rates_.shape[0], probs)
        p = predictions.probs()
        mapped = np.stack(
            [self.rates_[k][assign_bins(p[:, k], self.edges_, "left")] for k in range(p.shape[1])],
            axis=1,
        )
        return as_output(np.log(mapped), output)
