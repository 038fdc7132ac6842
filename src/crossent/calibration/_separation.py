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
   The nearest null vector in the relative sense, :math:`\lambda' = \lambda - \Lambda^2
   M x` with :math:`(M^T \Lambda^2 M) x = M^T \lambda` (:math:`2K \times 2K`, formed as
   the Hessian is), is accepted when every :math:`\lambda'_{ik} \ge \lambda_{ik} / 2`
   and :math:`|M^T \lambda'|` is small (:data:`_RESIDUAL`): not separated.
   On separated data the exact :math:`\lambda'` cannot be positive, so this step only
   ever answers "not separated"; it costs :math:`O(n K^2)`.
3. Otherwise the linear program :math:`\max \sum M d` subject to :math:`0 \le M d \le 1`
   (HiGHS, through :func:`scipy.optimize.milp`; the columns of :math:`z` scaled to a
   largest magnitude of 1).  Its optimum is 0 when the data overlap and at least 1 when
   they are separated (some margin can be scaled up to 1); it is taken as separated
   above 1/2.  HiGHS's feasibility tolerance (1e-7 on the scaled margins) counts data
   that overlap by less than that as separated: their optimum is finite but its
   parameters are some 1e7 times the scores' inverse scale.  The program has
   :math:`n (K - 1)` rows: a second on 100 000 rows of 10 classes, a minute on 20 000
   of 100 (step 1 or 2 settles most data sets first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import FloatArray, IntArray

__all__ = ["separated"]

_RESIDUAL = 1e-6
"""Step 2 accepts :math:`\\lambda'` when :math:`|M^T \\lambda'| \\le` this times
:math:`|M|^T \\lambda'` times :math:`\\min \\lambda' / \\max \\lambda'` (componentwise).
The share: were the data separated by :math:`d` (largest margin 1), :math:`d^T M^T
\\lambda' \\ge \\min \\lambda'`, so a residual must be small against the smallest entry,
not the sums (a quasi-separated fit stops with entries of 1e-9 that a looser test
took for an overlap)."""

_REFINE = 3
"""Step 2's corrections at most (each from the last: the least squares' own rounding)."""


def separated(scores: FloatArray, labels: IntArray, probs: FloatArray) -> bool:
    """Whether no finite vector-scaling fit exists for ``scores`` ``(n, K)`` (finite
    float64) and ``labels``; ``probs``: the fit's probabilities ``(n, K)`` (any point
    whose probabilities are all positive serves, the optimum best)."""
    n, classes = scores.shape
    rows = np.arange(n)
    if np.unique(labels).size < classes:
        return True  # a class never the label: the direction db_k = -1
    with np.errstate(over="ignore"):  # (1e308 - -1e308: +inf, its sign still exact)
        top = scores[rows, labels][:, None] - scores  # the argmax direction's margins
    for margins in (top, -top):  # and the reverse direction's (every label ranked last)
        if np.all(margins >= 0.0) and np.any(margins > 0.0):
            return True
    if _overlap_certified(scores, labels, probs):
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
    w_i^T - w_i e_{y_i}^T` (:math:`W_i = \sum_k w_{ik}`): diagonal sums and three
    matrix products, as the Hessian's blocks."""
    classes = scores.shape[1]
    diagonal = weights + onehot * weights.sum(axis=1, keepdims=True)
    label_z, weight_z = onehot * scores, weights * scores
    left = np.concatenate([label_z, onehot], axis=1)
    right = np.concatenate([weight_z, weights], axis=1)
    product = left.T @ right
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
    """Step 2 of :mod:`this module <._separation>`: a positive null vector of
    :math:`M^T` near the fit's wrong-class probabilities (:data:`_REFINE` corrections)."""
    n = scores.shape[0]
    onehot = np.zeros_like(scores)
    onehot[np.arange(n), labels] = 1.0
    wrong = onehot == 0.0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        weights = np.where(wrong, probs, 0.0)
        if not (np.all(np.isfinite(weights)) and np.all(weights[wrong] > 0.0)):
            return False
        corrected = weights
        for _ in range(_REFINE):
            refined = _corrected(scores, labels, onehot, corrected)
            if refined is None or not np.all(refined[wrong] >= weights[wrong] / 2):
                return False
            corrected = refined
            residual = np.abs(_transposed(scores, onehot, corrected))
            # |M|^T lambda': every term's magnitude, times the smallest entry's share
            spread = onehot * corrected.sum(axis=1, keepdims=True) + corrected
            size = np.concatenate([(spread * np.abs(scores)).sum(axis=0), spread.sum(axis=0)])
            share = corrected[wrong].min() / corrected[wrong].max()
            if np.all(residual <= _RESIDUAL * share * size):
                return True
    return False


def _corrected(
    scores: FloatArray, labels: IntArray, onehot: FloatArray, weights: FloatArray
) -> FloatArray | None:
    r""":math:`\lambda' = \lambda - \Lambda^2 M x` with :math:`(M^T \Lambda^2 M) x = M^T
    \lambda` (Jacobi-scaled, least squares): :math:`M^T \lambda' = 0` up to rounding;
    None where it is not finite."""
    gram = _gram(scores, onehot, weights * weights)
    if not np.all(np.isfinite(gram)):
        return None
    diagonal = np.diag(gram).copy()
    unit = np.where(diagonal > 0, 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0)), 1.0)
    scaled = gram * unit[:, None] * unit[None, :]
    rhs = unit * _transposed(scores, onehot, weights)
    x = unit * np.linalg.lstsq(scaled, rhs, rcond=1e-12)[0]
    corrected = weights * (1.0 - weights * _margins(scores, labels, x))
    return corrected if np.all(np.isfinite(corrected)) else None


def _separated_by_program(scores: FloatArray, labels: IntArray) -> bool:
    """Step 3 of :mod:`this module <._separation>`: the linear program, by HiGHS."""
    from scipy import optimize, sparse  # lazily: only fits that reach step 3 need them

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
    matrix: Any = sparse.csr_array(
        (data, (np.tile(np.arange(count), 4), columns)), shape=(count, 2 * classes)
    )
    objective = -np.asarray(matrix.sum(axis=0)).ravel()
    result = optimize.milp(
        objective,
        constraints=optimize.LinearConstraint(matrix, 0.0, 1.0),
        bounds=optimize.Bounds(-np.inf, np.inf),
    )
    return bool(result.status == 0 and -result.fun > 0.5)
