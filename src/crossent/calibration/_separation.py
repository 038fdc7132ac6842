r"""Whether vector scaling's maximum-likelihood fit exists (the classes are not separated).

Vector scaling predicts :math:`\mathrm{softmax}(u_i)` with :math:`u_{ik} = w_k z_{ik} +
b_k`.  Its mean NLL is convex in :math:`\theta = (w, b)` and bounded below by 0; it has
no minimiser (the infimum is approached as :math:`\|\theta\| \to \infty`) exactly when
some direction :math:`d = (\delta w, \delta b)` has every margin

.. math::

    m_{ik}(d) = (\delta w_{y_i} z_{iy_i} + \delta b_{y_i}) - (\delta w_k z_{ik} + \delta b_k)
    \ge 0 \quad (k \ne y_i)

and one of them :math:`> 0`: along such a direction every row's loss
:math:`\log(1 + \sum_{k \ne y} e^{-m_{ik}})` is non-increasing and one strictly
decreasing (complete or quasi-complete separation, Albert and Anderson 1984; a class
never the label is the direction :math:`\delta b_k = -1`).  Writing the margins as
:math:`M d`, Gordan's theorem of the alternative (in Stiemke's form) says that either such
a :math:`d` exists or some :math:`\lambda > 0` (every entry) has :math:`M^T \lambda = 0`,
never both.

:func:`separated` decides it in three steps:

1. The argmax direction :math:`\delta w = 1, \delta b = 0`: margins
   :math:`z_{iy_i} - z_{ik}`, whose signs are exact in floating point.  All
   :math:`\ge 0` (every label top-ranked, ties allowed) and one :math:`> 0`: separated;
   likewise the reverse direction :math:`\delta w = -1` (every label ranked last).
2. A certificate of overlap from the fit: at the optimum the gradient of the NLL is
   :math:`-M^T p / n` with :math:`p_{ik} > 0` the fitted probabilities of the wrong
   classes, so :math:`\lambda = p` is a positive null vector up to the gradient left.
   With :math:`r = M^T \lambda` and :math:`G = M^T \Lambda^2 M` (:math:`2K \times
   2K`, formed as the Hessian is), the nearest null vector in the relative sense,
   :math:`\lambda' = \lambda - \Lambda^2 M G^{+} r`, differs from :math:`\lambda`
   by at most :math:`\sqrt{q}` relatively in every entry, :math:`q = r^T G^{+} r` (a
   Newton decrement): :math:`q < 1` proves a positive null vector exists, and on
   separated data :math:`q \ge 1` for every :math:`\lambda > 0`
   (:func:`_decrement`).  Step 2 accepts where a bound on :math:`q` that covers the
   rounding of :math:`r` and :math:`G` is at most :data:`_ACCEPT`: not separated.  The
   test is scale-free: fitted probabilities spread over hundreds of orders of magnitude
   (near-separated data: most labels confidently top-ranked, a few not) pass it
   directly.  Where it fails, up to :data:`_REFINE` corrections :math:`\lambda'` are
   tested in turn (each also by the residual test of stop 52, :func:`_residual_small`,
   for scores along whose affine dependences, e.g. binary :math:`[-s, s]`, :math:`M`
   is 0 and :math:`G` singular: no bound on :math:`q` there), then the same from the
   probabilities raised to at least :data:`_FLOORS` times their largest wrong-class
   entry (where some are 0, or the first tries fail).  It costs :math:`O(n K)` and one
   :math:`2K \times 2K` eigendecomposition per try, and only ever answers "not
   separated".
3. Otherwise the linear program's dual: :math:`\min \sum \lambda` subject to
   :math:`M^T \lambda = 0`, :math:`\lambda \ge 1` (the columns of :math:`z` scaled
   to a largest magnitude of 1), by HiGHS's dual simplex
   (:func:`scipy.optimize.linprog`, ``"highs-ds"``).  It has :math:`2K` equality rows
   (the simplex basis is :math:`2K` wide, against the primal's :math:`n (K - 1)`
   rows): feasible, the data overlap; infeasible, they are separated (Gordan).  Any
   other ending (an iteration limit, a solve error) leaves the answer to the primal
   program :math:`\max \sum M d` subject to :math:`0 \le M d \le 1`
   (:func:`scipy.optimize.milp`), whose optimum is 0 when the data overlap and at
   least 1 when they are separated (taken as separated above 1/2).  Both programs
   decide up to HiGHS's feasibility tolerance (1e-7 on the scaled margins, on
   :math:`M^T \lambda` for the dual).  Measured (``tests/calibration/
   test_separation_decrement.py``, exact oracles in fractions): labels that win by
   1e-10 are answered separated, labels that lose by 1e-6 or 1e-8 not separated, but
   labels that lose by 1e-10 (the data overlap, by less than the tolerance) are
   answered separated: the documented decision, as such a fit's finite optimum has
   parameters some 1e10 times the scores' inverse scale.  The dual program took 2 s
   on 2000 rows of 100 classes where the primal took 16, 42 s on 20 000 rows of 100
   (the primal about 48); step 1 or 2 settles most data sets first
   (``benchmarks/bench_vector_scaling_separation.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._inputs import FloatArray, IntArray

__all__ = ["separated"]

_RESIDUAL = 1e-6
""":func:`_residual_small` accepts :math:`\\lambda'` when :math:`|M^T \\lambda'| \\le`
this times :math:`|M|^T \\lambda'` times :math:`\\min \\lambda' / \\max \\lambda'`
(componentwise): were the data separated by :math:`d` (largest margin 1), :math:`d^T M^T
\\lambda' \\ge \\min \\lambda'`, so a residual must be small against the smallest
entry, not the sums."""

_FLOORS = (1e-8, 1e-6, 1e-10, 1e-4)
"""Step 2's further starting points: the fitted probabilities raised to at least these
times their largest wrong-class entry (in this order)."""

_REFINE = 3
"""Step 2's corrections at most from each starting point (each a Newton step towards a
null vector of :math:`M^T`; the test is rerun on each)."""

_ACCEPT = 0.25
"""Step 2 accepts :math:`\\lambda > 0` when its bound on :math:`q = r^T G^{+} r` is at
most this (:math:`q < 1` suffices in exact arithmetic; the margin covers what the
rounding bounds leave out)."""

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)


def separated(scores: FloatArray, labels: IntArray, probs: FloatArray) -> bool:
    """Whether no finite vector-scaling fit exists for ``scores`` ``(n, K)`` (finite
    float64) and ``labels``; ``probs``: the fit's probabilities ``(n, K)`` (any point
    whose probabilities are all positive serves, the optimum best)."""
    n, classes = scores.shape
    if classes == 1:  # every fit gives probability 1: the NLL is 0 everywhere, a finite fit
        return False  # (a linear program with no other class to rank was a SciPy error)
    rows = np.arange(n)
    if np.bincount(labels, minlength=classes).min() == 0:
        return True  # a class never the label: the direction db_k = -1
    with np.errstate(over="ignore"):  # (1e308 - -1e308: +inf, its sign still exact)
        top = scores[rows, labels][:, None] - scores  # the argmax direction's margins
    if np.all(top >= 0.0) and np.any(top > 0.0):
        return True
    if np.all(top <= 0.0) and np.any(top < 0.0):  # the reverse: every label ranked last
        return True
    if _overlap_certified(scores, labels, probs):
        return False
    with np.errstate(invalid="ignore"):
        largest = float(np.max(np.where(labels[:, None] == np.arange(classes), 0.0, probs)))
    for floor in _FLOORS:  # the same test from better-spread starting points
        if _overlap_certified(scores, labels, np.maximum(probs, floor * largest)):
            return False
    return _separated_by_program(scores, labels)


def _transposed(scores: FloatArray, onehot: FloatArray, weights: FloatArray) -> FloatArray:
    r""":math:`M^T \lambda` for ``weights`` :math:`\lambda` ``(n, K)`` (0 at the label):
    :math:`\sum_i (e_{y_i} \Lambda_i - \lambda_i)` times :math:`z` (scales) and 1 (biases),
    :math:`\Lambda_i = \sum_k \lambda_{ik}`."""
    spread = onehot * weights.sum(axis=1, keepdims=True) - weights
    return np.concatenate([(spread * scores).sum(axis=0), spread.sum(axis=0)])


def _gram(scores: FloatArray, onehot: FloatArray, weights: FloatArray) -> FloatArray:
    r""":math:`M^T \mathrm{diag}(w) M` for ``weights`` :math:`w` ``(n, K)`` (0 at the label).

    Row :math:`i` contributes :math:`A_i^T L_i A_i` with :math:`A_i` the ``(K, 2K)`` map
    :math:`\theta \mapsto u_i` and :math:`L_i = \mathrm{diag}(w_i + W_i e_{y_i}) - e_{y_i}
    w_i^T - w_i e_{y_i}^T` (:math:`W_i = \sum_k w_{ik}`): column sums, and the
    cross terms :math:`e_{y_i} [z_{iy_i}, 1]^T [w_i z_i, w_i]` as sums of the rows of
    each label."""
    n, classes = scores.shape
    diagonal = weights + onehot * weights.sum(axis=1, keepdims=True)
    # [e_y z_iy, e_y]^T [w_i z_i, w_i] summed over the rows: per label, sums of rows
    # sorted by label (O(n K), not a dense product of O(n K^2), nor a threaded BLAS call)
    labels = onehot.argmax(axis=1)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=classes)
    present = counts > 0
    starts = (np.cumsum(counts) - counts)[present]
    right = np.take(np.concatenate([weights * scores, weights], axis=1), order, axis=0)
    product = np.zeros((2 * classes, 2 * classes))
    label_z = np.take(scores[np.arange(n), labels], order)
    product[:classes][present] = np.add.reduceat(right * label_z[:, None], starts, axis=0)
    product[classes:][present] = np.add.reduceat(right, starts, axis=0)
    gram = -(product + product.T)
    index = np.arange(classes)
    gram[index, index] += (diagonal * scores * scores).sum(axis=0)
    gram[classes + index, classes + index] += diagonal.sum(axis=0)
    cross = (diagonal * scores).sum(axis=0)
    gram[index, classes + index] += cross
    gram[classes + index, index] += cross
    return gram


def _margins(scores: FloatArray, labels: IntArray, direction: FloatArray) -> FloatArray:
    """:math:`M d` as ``(n, K)`` (0 at the label)."""
    classes = scores.shape[1]
    u = scores * direction[:classes] + direction[classes:]
    return u[np.arange(scores.shape[0]), labels][:, None] - u


def _overlap_certified(scores: FloatArray, labels: IntArray, probs: FloatArray) -> bool:
    """Step 2 of :mod:`this module <._separation>` from ``probs``: their wrong-class
    entries, then up to :data:`_REFINE` corrections of them, each tested by
    :func:`_decrement`."""
    n, classes = scores.shape
    onehot = np.zeros_like(scores)
    onehot[np.arange(n), labels] = 1.0
    wrong = onehot == 0.0
    constant = np.all(scores == scores[:1], axis=0)
    # a constant column's scale moves every margin as its bias does: left out of M
    free = np.concatenate([~constant, np.ones(classes, dtype=bool)])
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        start = weights = np.where(wrong, probs, 0.0)
        for step in range(_REFINE + 1):
            if not (np.all(np.isfinite(weights)) and np.all(weights[wrong] > 0.0)):
                return False
            if step > 0 and _residual_small(scores, onehot, weights, start, wrong):
                return True
            bound, correction = _decrement(scores, onehot, free, weights)
            if bound <= _ACCEPT:
                return True
            if correction is None:
                return False
            # the Newton step towards M^T lambda = 0: lambda - Lambda^2 M x
            weights = weights * (1.0 - weights * _margins(scores, labels, correction))
    return False


def _residual_small(
    scores: FloatArray, onehot: FloatArray, weights: FloatArray, start: FloatArray, wrong: Any
) -> bool:
    """Step 2's test up to stop 52, kept for the directions in which :math:`M` is 0 or
    nearly (e.g. binary scores :math:`[-s, s]`), where :func:`_decrement` has no
    bound: every entry of the corrected :math:`\\lambda'` at least half the starting
    one's, and :math:`|M^T \\lambda'| \\le` :data:`_RESIDUAL` times :math:`|M|^T
    \\lambda'` times :math:`\\min \\lambda' / \\max \\lambda'` (componentwise)."""
    if not np.all(weights[wrong] >= start[wrong] / 2):
        return False
    residual = np.abs(_transposed(scores, onehot, weights))
    spread = onehot * weights.sum(axis=1, keepdims=True) + weights
    size = np.concatenate([(spread * np.abs(scores)).sum(axis=0), spread.sum(axis=0)])
    share = weights[wrong].min() / weights[wrong].max()
    return bool(np.all(residual <= _RESIDUAL * share * size))


def _decrement(
    scores: FloatArray, onehot: FloatArray, free: Any, weights: FloatArray
) -> tuple[float, FloatArray | None]:
    r"""An upper bound on :math:`q = r^T G^{+} r` for :math:`\lambda` = ``weights``
    (positive off the label, 0 at it), :math:`r = M^T \lambda`, :math:`G = M^T
    \Lambda^2 M`; and :math:`x = G^{+} r` (``(2K,)``, 0 on the scales left out; None
    where not finite), the correction :math:`\lambda' = \lambda - \Lambda^2 M x`.

    :math:`\lambda'` has :math:`M^T \lambda' = 0` and :math:`|\lambda'_{ik} /
    \lambda_{ik} - 1| = |(\Lambda M x)_{ik}| \le \|\Lambda M x\|_2 = \sqrt{q}`:
    where :math:`q < 1` it is a positive null vector, a certificate of overlap, without
    being computed.  Conversely, on separated data (a direction :math:`d`, margins
    :math:`m = M d \ge 0`, one :math:`> 0`), :math:`q \ge (d^T r)^2 / d^T G d =
    (\sum \lambda m)^2 / \sum \lambda^2 m^2 \ge 1` for every :math:`\lambda > 0`:
    the test cannot pass there in exact arithmetic, however far the entries spread.

    The bound accounts for rounding: :math:`r` and :math:`G` are sums of at most
    :math:`n + K + 8` rounded terms, so each :math:`r_j` is within :math:`\gamma =
    (n + K + 8) \epsilon` times :math:`(|M|^T \lambda)_j` (plus :math:`n` times the
    smallest normal number: underflow), and the Jacobi-scaled :math:`G` (entries at
    most 1 in magnitude) within :math:`\|E\|_2 \le D (\gamma + D \epsilon)`
    (:math:`D` its size; the second term the eigensolver's).  With :math:`\mu` the
    computed smallest eigenvalue, :math:`\rho = \|E\| / \mu < 1/2` is required and
    :math:`q \le (\sqrt{\hat q} + \|e\| / \sqrt{\mu})^2 / (1 - \rho)`.  Squares
    :math:`\lambda^2` that underflow drop PSD terms from :math:`G` (a larger bound).
    Every bias alike (:math:`M g = 0`) is kept out of the null space by adding
    :math:`g g^T` times the bias block's mean diagonal over :math:`K` (the exact
    :math:`r` has :math:`g^T r = 0`); any other direction in which :math:`M` is (nearly)
    0 makes :math:`\mu` too small: no bound (infinity).
    """
    n, classes = scores.shape
    spread = onehot * weights.sum(axis=1, keepdims=True)
    residual = _transposed(scores, onehot, weights)[free]
    spread += weights  # |M|^T lambda: every term's magnitude
    size = np.concatenate([(spread * np.abs(scores)).sum(axis=0), spread.sum(axis=0)])[free]
    gram = _gram(scores, onehot, weights * weights)[np.ix_(free, free)]
    scales = int(np.count_nonzero(free[:classes]))
    gram[scales:, scales:] += np.diag(gram)[scales:].mean() / classes
    diagonal = np.diag(gram).copy()
    if not (np.all(np.isfinite(gram)) and np.all(diagonal > 0.0)):
        return math.inf, None
    unit = 1.0 / np.sqrt(diagonal)
    values, vectors = np.linalg.eigh(gram * unit[:, None] * unit[None, :])
    projected = vectors.T @ (unit * residual)
    gamma = (n + classes + 8) * _EPS
    error = float(np.linalg.norm(unit * (gamma * size + n * _TINY)))
    rho = diagonal.size * (gamma + diagonal.size * _EPS) / values[0]
    bound = math.inf
    if 0.0 < rho < 0.5 and np.isfinite(error):
        estimate = float(np.sum(projected * projected / values))
        bound = (math.sqrt(estimate) + error / math.sqrt(values[0])) ** 2 / (1.0 - rho)
    if bound <= _ACCEPT:
        return bound, None
    # the correction leaves out the directions of eigenvalues below 1e-12 of the largest
    kept = values > 1e-12 * values[-1]
    x = np.zeros(free.size)
    x[free] = unit * (vectors @ np.where(kept, projected / np.where(kept, values, 1.0), 0.0))
    return bound, x if np.all(np.isfinite(x)) else None


def _margin_matrix(scores: FloatArray, labels: IntArray) -> Any:
    """:math:`M` as a sparse ``(n (K - 1), 2 K)`` array, the columns of :math:`z` scaled to
    a largest magnitude of 1 (margins ``(i, k)``, ``k != y_i``, row by row)."""
    from scipy import sparse  # lazily: only fits that reach step 3 need it

    n, classes = scores.shape
    largest = np.abs(scores).max(axis=0)
    scaled = scores / np.where(largest > 0, largest, 1.0)
    others = np.broadcast_to(np.arange(classes), (n, classes))
    wrong = others != labels[:, None]
    row = np.repeat(np.arange(n), classes - 1)
    label, other = labels[row], others[wrong]
    count = row.size
    data = np.concatenate(
        [scaled[row, label], np.ones(count), -scaled[row, other], -np.ones(count)]
    )
    columns = np.concatenate([label, classes + label, other, classes + other])
    return sparse.csr_array(
        (data, (np.tile(np.arange(count), 4), columns)), shape=(count, 2 * classes)
    )


def _separated_by_program(scores: FloatArray, labels: IntArray) -> bool:
    """Step 3 of :mod:`this module <._separation>`: the dual linear program by HiGHS's
    dual simplex, the primal one where that ends undecided."""
    from scipy import optimize  # lazily: only fits that reach step 3 need it

    matrix = _margin_matrix(scores, labels)
    count, columns = matrix.shape
    dual = optimize.linprog(
        np.ones(count),
        A_eq=matrix.T.tocsr(),
        b_eq=np.zeros(columns),
        bounds=(1.0, None),
        method="highs-ds",
    )
    if dual.status in (0, 2):  # 0: some lambda >= 1 has M^T lambda = 0; 2: none has
        return bool(dual.status == 2)
    objective = -np.asarray(matrix.sum(axis=0)).ravel()
    result = optimize.milp(
        objective,
        constraints=optimize.LinearConstraint(matrix, 0.0, 1.0),
        bounds=optimize.Bounds(-np.inf, np.inf),
    )
    return bool(result.status == 0 and -result.fun > 0.5)
