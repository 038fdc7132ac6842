r"""Recalibration: temperature scaling (robust), vector scaling, Platt scaling, histogram binning.

Every calibrator follows scikit-learn's conventions (``fit`` returns ``self``, learned
attributes end in ``_``) and ``transform`` returns normalised full distributions.

Temperature scaling (Guo et al. 2017) divides the logits by :math:`T > 0`.  With the
inverse temperature :math:`\beta = 1/T` the mean negative log-likelihood

.. math::

    f(\beta) = \frac1n \sum_i \Big[\log \sum_k e^{\beta z_{ik}} - \beta z_{i y_i}\Big]

is convex (a log-sum-exp of linear functions), with
:math:`f'(\beta) = \frac1n\sum_i (\mathbb{E}_{\mathrm{softmax}(\beta z_i)}[z_i] - z_{iy_i})`
non-decreasing.  The fit finds the root of :math:`f'` inside the bracket
:math:`[1/T_{\max}, 1/T_{\min}]` with a bracketing root finder (TOMS 748), so it cannot
diverge or leave the bounds; when :math:`f'` does not change sign there, the optimum is
at a bound and ``at_bound_`` says so (for example separable data, where the NLL keeps
falling as :math:`T \to 0`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from .._checks import check_integer, check_scalar
from .._xp import log_softmax
from ..errors import InputError
from ..info._kernels import safe_log
from ._binning import assign_bins, check_bins, uniform_edges
from ._inputs import FloatArray, IntArray, Predictions, as_predictions, require_examples

__all__ = [
    "HistogramBinning",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "recalibration_gap",
]


# ------------------------------------------------------------------ temperature


def _scores(values: FloatArray, form: str) -> FloatArray:
    """Float64 scores whose softmax is the prediction: logits as given, else log-probs."""
    return safe_log(values, xp=np) if form == "probs" else values


def _moments(predictions: Predictions, beta: float) -> tuple[float, float, float]:
    r"""Mean NLL at inverse temperature ``beta`` and its first two derivatives, in one pass.

    With :math:`s = z - \max_k z_k` (so that every exponent is at most 0),
    :math:`S = \sum_k e^{\beta s_k}` and :math:`E`, :math:`V` the mean and variance of
    :math:`s` under :math:`\mathrm{softmax}(\beta s)`:
    :math:`f = \log S - \beta s_y`, :math:`f' = E - s_y`, :math:`f'' = V \ge 0`.
    """

    def block_moments(_: int, values: FloatArray, labels: IntArray) -> FloatArray:
        z = _scores(values, predictions.form)
        shifted = z - z.max(axis=1, keepdims=True)
        label_shift = shifted[np.arange(z.shape[0]), labels]
        weights = np.exp(beta * shifted)
        partition = weights.sum(axis=1)
        mean = _weighted_row_sum(weights, shifted) / partition
        shifted -= mean[:, None]
        np.square(shifted, out=shifted)
        variance = _weighted_row_sum(weights, shifted) / partition
        return np.array(
            [
                np.sum(np.log(partition) - beta * label_shift),
                np.sum(mean - label_shift),
                np.sum(variance),
            ]
        )

    total = np.zeros(3)
    for part in predictions.map_raw(block_moments):
        total += part
    nll, slope, curvature = total / predictions.n
    return float(nll), float(slope), float(max(curvature, 0.0))


def _weighted_row_sum(weights: FloatArray, values: FloatArray) -> FloatArray:
    """Row sums of ``weights * values``, a zero weight contributing 0 even where ``values``
    is infinite (a score of -inf, probability 0): such rows are summed again, masked."""
    with np.errstate(invalid="ignore"):
        sums = np.einsum("ij,ij->i", weights, values)
    redo = ~np.isfinite(sums)
    if redo.any():
        w, v = weights[redo], values[redo]
        sums[redo] = np.multiply(w, v, out=np.zeros_like(v), where=w > 0).sum(axis=1)
    return sums


def _check_finite_label_scores(predictions: Predictions) -> None:
    """Refuse a label of probability 0 (a probability of 0, a log-probability or logit of
    ``-inf``): its NLL is ``+inf`` at every temperature, so no temperature is better than
    another, and the NLL's slope would be ``inf - inf``."""

    def zero_label(start: int, values: FloatArray, labels: IntArray) -> int | None:
        # Only the labels' entries matter: no log or exp of the whole block.
        hit = values[np.arange(labels.shape[0]), labels] == (0.0 if form == "probs" else -math.inf)
        return start + int(np.argmax(hit)) if hit.any() else None

    form = predictions.form
    entry = "" if form == "probs" else f" ({_FORM_WORDS[form]} -inf)"
    for row in predictions.map_raw(zero_label):
        if row is not None:
            raise InputError(
                f"row {row}'s label has probability 0{entry}, so the NLL is +inf at every "
                "temperature and no temperature can be fitted"
            )


_FORM_WORDS = {"log_probs": "log-probability", "logits": "logit"}


@dataclass(frozen=True)
class _FitResult:
    beta: float
    nll: float
    slope: float
    iterations: int
    bound: bool
    nll_at_one: float  # the NLL at T = 1, the fit's first evaluation


def _fit_beta(predictions: Predictions, bounds: tuple[float, float], xtol: float) -> _FitResult:
    """Minimise the convex NLL over ``beta`` in ``[1/T_max, 1/T_min]``.

    Safeguarded Newton on :math:`f'(\beta)` (Press et al., Numerical Recipes, ``rtsafe``):
    a Newton step from the current point when it stays inside the bracket that holds the
    sign change of :math:`f'`, a geometric bisection of the bracket otherwise.  ``f'`` is
    non-decreasing, so the bracket always holds the minimiser.  A bound is evaluated only
    when a Newton step would cross it; if ``f'`` has not changed sign there, the minimiser
    is at that bound.  The fit stops when the next Newton step is below ``xtol``
    relative, typically after 4 to 6 passes over the data.
    """
    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]
    known = {"lo": False, "hi": False}  # is the sign of f' known at that end?
    beta = 1.0
    nll, slope, curvature = _moments(predictions, beta)
    nll_at_one, iterations = nll, 1
    for _ in range(200):
        if slope > 0:
            hi, known["hi"] = beta, True
        elif slope < 0:
            lo, known["lo"] = beta, True
        newton = beta - slope / curvature if curvature > 0 else math.nan
        if slope == 0 or abs(newton - beta) <= xtol * beta:
            break  # the next step would not move beta: the current point is the optimum
        if not lo < newton < hi:
            side = "lo" if slope > 0 else "hi"
            if not known[side]:
                edge = lo if side == "lo" else hi
                known[side] = True
                edge_values = _moments(predictions, edge)
                iterations += 1
                if (edge_values[1] >= 0) if side == "lo" else (edge_values[1] <= 0):
                    return _FitResult(edge, *edge_values[:2], iterations, True, nll_at_one)
            newton = math.sqrt(lo * hi)
        beta = newton
        nll, slope, curvature = _moments(predictions, beta)
        iterations += 1
    return _FitResult(beta, nll, slope, iterations, False, nll_at_one)


def _folds(n: int, folds: int, seed: int) -> list[IntArray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _cross_fitted_nll(
    predictions: Predictions, *, folds: int, seed: int, bounds: tuple[float, float], xtol: float
) -> float:
    """Mean NLL of each fold at the temperature fitted on the other folds."""
    total = 0.0
    for held_out in _folds(predictions.n, folds, seed):
        train = np.setdiff1d(np.arange(predictions.n), held_out, assume_unique=True)
        beta = _fit_beta(predictions.subset(train), bounds, xtol).beta
        nll = _moments(predictions.subset(held_out), beta)[0]
        total += nll * held_out.size
    return total / predictions.n


def _check_folds(folds: int, n: int) -> None:
    check_integer(folds, name="folds", low=2)
    if n < folds:
        raise InputError(f"cross-fitting with {folds} folds needs at least {folds} rows; got {n}")


class TemperatureScaling:
    """Temperature scaling with a bounded convex solve and a held-out guard.

    Parameters
    ----------
    bounds : (float, float), default (0.05, 20.0)
        Smallest and largest temperature allowed.
    guard : bool, default True
        Keep :math:`T = 1` unless the cross-fitted NLL (each fold at the temperature fitted
        on the other folds) beats the NLL at :math:`T = 1`.
    folds : int, default 5
        Folds of the guard's cross-fitting.
    seed : int, default 0
        Seed of the fold assignment.
    xtol : float, default 1e-10
        Tolerance on :math:`\\log(1/T)`.

    Attributes
    ----------
    temperature_ : float
        The temperature applied by ``transform``.
    fitted_temperature_ : float
        The NLL-optimal temperature on the fitting data (before the guard).
    converged_ : bool
        The optimum is interior and the root finder converged.
    at_bound_ : bool
        The optimum lies at (or beyond) one of ``bounds``.
    n_iter_ : int
        NLL/derivative evaluations (passes over the data) of the main fit.
    gradient_ : float
        :math:`f'(\\beta)` at the solution (0 at an interior optimum).
    nll_before_, nll_after_ : float
        Mean NLL at :math:`T = 1` and at ``fitted_temperature_`` (nats).
    cross_fitted_nll_ : float or None
        The guard's cross-fitted NLL (None without the guard).
    kept_identity_ : bool
        The guard kept :math:`T = 1`.

    Examples
    --------
    Logits drawn at temperature 1 and then sharpened by a factor 2.5 are recovered:

    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(size=(4000, 10)) * 2
    >>> labels = np.array([rng.choice(10, p=np.exp(r) / np.exp(r).sum()) for r in true_logits])
    >>> scaler = crossent.TemperatureScaling().fit(true_logits * 2.5, labels)
    >>> bool(abs(scaler.temperature_ - 2.5) < 0.15), scaler.converged_
    (True, True)
    """

    def __init__(
        self,
        *,
        bounds: tuple[float, float] = (0.05, 20.0),
        guard: bool = True,
        folds: int = 5,
        seed: int = 0,
        xtol: float = 1e-10,
    ) -> None:
        self.bounds = bounds
        self.guard = guard
        self.folds = folds
        self.seed = seed
        self.xtol = xtol

    def _checked_bounds(self) -> tuple[float, float]:
        low, high = self.bounds
        check_scalar(low, name="bounds[0]", low=0.0, low_open=True)
        check_scalar(high, name="bounds[1]", low=0.0, low_open=True)
        if not low < 1.0 < high:
            raise InputError(f"`bounds` must satisfy low < 1 < high; got {self.bounds!r}")
        return float(low), float(high)

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = "logits", validate: bool = True
    ) -> TemperatureScaling:
        """Fit the temperature on ``logits`` ``(n, classes)`` (or log-probs, probs) and labels.

        Raises ``InputError`` for a label of probability 0 (a probability of 0, or a
        log-probability or logit of ``-inf``): the NLL is ``+inf`` at every temperature.
        """
        bounds = self._checked_bounds()
        predictions = as_predictions(logits, labels, form=form, name="logits", validate=validate)
        require_examples(predictions, name="logits", purpose="fitting a temperature")
        if self.guard:
            _check_folds(self.folds, predictions.n)
        _check_finite_label_scores(predictions)
        result = _fit_beta(predictions, bounds, self.xtol)
        self.fitted_temperature_ = 1.0 / result.beta
        self.at_bound_ = result.bound
        self.converged_ = not result.bound
        self.n_iter_ = result.iterations
        self.gradient_ = result.slope
        self.nll_after_ = result.nll
        self.nll_before_ = result.nll_at_one
        self.cross_fitted_nll_: float | None = None
        self.kept_identity_ = False
        self.temperature_ = self.fitted_temperature_
        if self.guard:
            self.cross_fitted_nll_ = _cross_fitted_nll(
                predictions, folds=self.folds, seed=self.seed, bounds=bounds, xtol=self.xtol
            )
            if not self.cross_fitted_nll_ < self.nll_before_:
                self.temperature_ = 1.0
                self.kept_identity_ = True
        return self

    def transform(self, logits: Any, /, *, form: str = "logits", output: str = "probs") -> Any:
        """The recalibrated distributions ``softmax(z / T)`` as probabilities or log-probs."""
        _check_fitted(self, "temperature_")
        predictions = _unlabelled(logits, form)
        return _output(_scores_all(predictions) / self.temperature_, output)

    def fit_transform(self, logits: Any, labels: Any, /, *, form: str = "logits") -> Any:
        return self.fit(logits, labels, form=form).transform(logits, form=form)


def _unlabelled(values: Any, form: str) -> Predictions:
    """Validated predictions to transform (they have no labels: placeholders of 0)."""
    rows = int(np.shape(values)[0]) if np.ndim(values) else 0
    return as_predictions(values, np.zeros(rows, np.intp), form=form)


def _scores_all(predictions: Predictions) -> FloatArray:
    return _scores(np.asarray(predictions.values, dtype=np.float64), predictions.form)


def _output(scores: FloatArray, output: str) -> FloatArray:
    if output not in ("probs", "log_probs"):
        raise InputError(f"`output` must be 'probs' or 'log_probs'; got {output!r}")
    log_probs = log_softmax(scores, xp=np)
    return np.exp(log_probs) if output == "probs" else log_probs


def _check_fitted(calibrator: object, attribute: str) -> None:
    if not hasattr(calibrator, attribute):
        raise InputError(f"this {type(calibrator).__name__} is not fitted yet; call fit() first")


def recalibration_gap(
    logits: Any,
    labels: Any,
    /,
    *,
    form: str = "logits",
    folds: int = 5,
    seed: int = 0,
    base: float | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
    validate: bool = True,
) -> float:
    r"""NLL minus the cross-fitted NLL after temperature scaling: miscalibration in nats.

    .. math:: \Delta = \mathrm{NLL}(T = 1) - \frac1n \sum_f \sum_{i \in f}
              -\log \mathrm{softmax}(z_i / \hat T_{-f})_{y_i}

    where :math:`\hat T_{-f}` is fitted on all folds but :math:`f`.  Unlike binned
    calibration errors it is a difference of proper scores, needs no bins, and is in the
    units of the loss.  Cross-fitting keeps the fit from scoring itself: for a calibrated
    model the gap is near 0 (it may be slightly negative).

    Parameters
    ----------
    logits : array_like, shape (n, classes)
        Predictions in the form named by ``form`` (default logits).
    labels : array_like of int, shape (n,)
        True classes.
    folds : int, default 5
        Number of cross-fitting folds (rows assigned at random with ``seed``).
    base : float, optional
        None for nats, 2 for bits.
    bounds : (float, float), default (0.05, 20.0)
        Temperature bounds of each fit.

    Returns
    -------
    float
        The gap, in nats (or in ``base``).

    Raises
    ------
    InputError
        A label of probability 0 (a probability of 0, or a log-probability or logit of
        ``-inf``): the NLL is ``+inf`` before and after any temperature, so the gap is
        undefined.  Fewer rows than ``folds``; invalid predictions, labels or options.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(3000, 5)) * 2
    >>> y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in z])
    >>> abs(crossent.recalibration_gap(z, y)) < 2e-3        # calibrated: near 0
    True
    >>> crossent.recalibration_gap(3 * z, y) > 0.1          # over-confident: clearly positive
    True
    """
    bounds_checked = TemperatureScaling(bounds=bounds)._checked_bounds()
    predictions = as_predictions(logits, labels, form=form, name="logits", validate=validate)
    _check_folds(folds, predictions.n)
    _check_finite_label_scores(predictions)
    before = _moments(predictions, 1.0)[0]
    after = _cross_fitted_nll(predictions, folds=folds, seed=seed, bounds=bounds_checked, xtol=1e-8)
    gap = before - after
    return gap / math.log(base) if base is not None else gap


# ------------------------------------------------------------------ vector and Platt


def _finite_scores(predictions: Predictions, what: str) -> FloatArray:
    scores = _scores_all(predictions)
    if not np.all(np.isfinite(scores)):
        row = int(np.argmax(~np.all(np.isfinite(scores), axis=1)))
        raise InputError(
            f"{what} needs finite scores; row {row} has a probability of 0 (log-score -inf)"
        )
    return scores


def _minimise(objective: Any, start: FloatArray) -> Any:
    from scipy import optimize  # lazily: only the L-BFGS calibrators need it

    return optimize.minimize(objective, start, jac=True, method="L-BFGS-B")


class VectorScaling:
    """Vector scaling: ``softmax(w * z + b)`` with one scale and one bias per class.

    Guo et al. (2017)'s diagonal matrix scaling, fitted by L-BFGS on the mean NLL with
    its exact gradient.

    Attributes
    ----------
    scale_, bias_ : ndarray, shape (classes,)
    converged_ : bool
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

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = "logits", validate: bool = True
    ) -> VectorScaling:
        predictions = as_predictions(logits, labels, form=form, name="logits", validate=validate)
        scores = _finite_scores(predictions, "VectorScaling")
        n, classes = scores.shape
        onehot = np.zeros_like(scores)
        onehot[np.arange(n), predictions.labels] = 1.0

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            scale, bias = params[:classes], params[classes:]
            log_probs = log_softmax(scores * scale + bias, xp=np)
            residual = (np.exp(log_probs) - onehot) / n
            grad = np.concatenate([(residual * scores).sum(axis=0), residual.sum(axis=0)])
            return float(-np.sum(log_probs * onehot) / n), grad

        result = _minimise(objective, np.concatenate([np.ones(classes), np.zeros(classes)]))
        self.scale_, self.bias_ = result.x[:classes], result.x[classes:]
        self.converged_, self.n_iter_ = bool(result.success), int(result.nit)
        return self

    def transform(self, logits: Any, /, *, form: str = "logits", output: str = "probs") -> Any:
        _check_fitted(self, "scale_")
        predictions = _unlabelled(logits, form)
        return _output(
            _finite_scores(predictions, "VectorScaling") * self.scale_ + self.bias_, output
        )


class PlattScaling:
    r"""Platt scaling for binary problems: :math:`p_1 = \sigma(a s + b)`, :math:`s = z_1 - z_0`.

    Platt (1999)'s logistic calibration of the log-odds, fitted by maximum likelihood
    (L-BFGS).  Returns both classes' probabilities.

    Attributes
    ----------
    slope_, intercept_ : float
    converged_ : bool

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

    def fit(
        self, logits: Any, labels: Any, /, *, form: str = "logits", validate: bool = True
    ) -> PlattScaling:
        predictions = as_predictions(logits, labels, form=form, name="logits", validate=validate)
        if predictions.classes != 2:
            raise InputError(
                f"PlattScaling is for 2 classes; got {predictions.classes}. Use "
                "TemperatureScaling or VectorScaling."
            )
        log_odds = self._log_odds(predictions)
        target = predictions.labels.astype(np.float64)
        n = target.size

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            t = params[0] * log_odds + params[1]
            loss = np.logaddexp(0.0, t) - target * t
            residual = (special.expit(t) - target) / n
            return float(loss.sum() / n), np.array([residual @ log_odds, residual.sum()])

        result = _minimise(objective, np.array([1.0, 0.0]))
        self.slope_, self.intercept_ = float(result.x[0]), float(result.x[1])
        self.converged_ = bool(result.success)
        return self

    @staticmethod
    def _log_odds(predictions: Predictions) -> FloatArray:
        scores = _finite_scores(predictions, "PlattScaling")
        return scores[:, 1] - scores[:, 0]

    def transform(self, logits: Any, /, *, form: str = "logits", output: str = "probs") -> Any:
        _check_fitted(self, "slope_")
        predictions = _unlabelled(logits, form)
        t = self.slope_ * self._log_odds(predictions) + self.intercept_
        return _output(np.stack([np.zeros_like(t), t], axis=1), output)


class HistogramBinning:
    r"""Histogram binning (Zadrozny and Elkan 2001), one-vs-rest per class, then normalised.

    Each class's probability is replaced by the smoothed hit rate of its bin,
    :math:`(h_b + 1)/(n_b + 2)` (Laplace's rule, so no class gets probability 0), and the
    row is divided by its sum so the result is a distribution.

    Parameters
    ----------
    bins : int, default 15
        Equal-width bins on [0, 1], ``[a, b)`` with the last closed.

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

    def fit(
        self, probs: Any, labels: Any, /, *, form: str = "probs", validate: bool = True
    ) -> HistogramBinning:
        bins = check_bins(self.bins, "uniform", "left", "l1")
        predictions = as_predictions(probs, labels, form=form, validate=validate)
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
        _check_fitted(self, "rates_")
        predictions = _unlabelled(probs, form)
        p = predictions.probs()
        if p.shape[1] != self.rates_.shape[0]:
            raise InputError(
                f"`probs` has {p.shape[1]} classes; the calibrator was fitted on "
                f"{self.rates_.shape[0]}"
            )
        mapped = np.stack(
            [self.rates_[k][assign_bins(p[:, k], self.edges_, "left")] for k in range(p.shape[1])],
            axis=1,
        )
        return _output(np.log(mapped), output)
