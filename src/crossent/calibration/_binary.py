r"""Per-example numbers of a binary prediction given as :math:`p = P(y = 1)`, from ``p``.

A 1-D binary probability is also offered as the two-column rows :math:`[1 - p, p]`
(:func:`._inputs.binary_columns`), for the readers that need columns (class-wise
and positive-class bins, the report's curves).  Those rows cannot serve the scores:
:math:`1 - p` rounds in float64 (to 1 for :math:`p < 2^{-54}`; with a relative error
up to :math:`2^{-53}/p` in :math:`1 - \mathrm{fl}(1 - p)`), so the surprisal of the
label 0, :math:`-\log \mathrm{fl}(1 - p)`, was 0 for :math:`p = 10^{-20}` (not
:math:`10^{-20}`) and its Brier score :math:`p^2 + (1 - \mathrm{fl}(1 - p))^2`
was :math:`10^{-40}`, not :math:`2 \cdot 10^{-40}` (issue 13).  Here every number is
formed from ``p`` itself:

* surprisal :math:`-\log p` for the label 1, :math:`-\log(1 - p)` for the label 0,
  the latter as :math:`-\log q - e/q` with :math:`q = \mathrm{fl}(1 - p)` and
  :math:`e = (1 - p) - q` found exactly (Fast2Sum: :math:`-p - (q - 1)`, both
  operations exact), since :math:`\log(q + e) = \log q + e/q + O(e^2/q^2)` and
  :math:`|e/q| \le 2^{-53}`: the accuracy of ``numpy.log`` (vectorised; ``log1p`` is
  not, and took four times as long), for every ``p``;
* :math:`1 - p_y`, the distance to the one-hot label: :math:`p` for the label 0
  (exact), :math:`1 - p` for the label 1 (exact for :math:`p \ge 1/2`, else
  within half an ulp); the other class's probability is the same number, so the
  Brier score is :math:`2 (p - y)^2` and the sum of squares but the label's is
  :math:`(1 - p_y)^2`;
* the top-label confidence :math:`\max(p, 1 - p)` (rounded once) and the predicted
  class, 1 where :math:`p > 1/2` (the first class on the tie at 1/2, as ``argmax`` of
  the rows);
* the entropy :math:`-p \log p - (1 - p) \log(1 - p)` (the latter logarithm as the
  surprisal's), :math:`0 \log 0 = 0` at either end.

NumPy throughout (a few passes over the column; no compiled kernel, so no new
signature to compile).  A block's sums (``_summaries._binary_totals``) form each of
these only where the metric asks for it, and take the hits and bins from a small
Numba pass over ``p`` (``_row_kernels.binary_bins``: the ``totals`` kernel's numbers
of the rows :math:`[1 - p, p]`, the same confidences and bits, without the rows).
"""

from __future__ import annotations

import numpy as np

from ._inputs import FloatArray, IntArray

__all__ = [
    "binary_entropy_values",
    "binary_label_terms",
    "binary_squared_complement",
    "binary_top",
]


_LEAST_COMPLEMENT = 2.0**-53
"""The least positive :math:`1 - p` of a float64 :math:`p < 1`.  Where :math:`q = 0`
(:math:`p = 1`) the logarithms below take this instead (times a factor 0, or
with :math:`e = 0`: the terms are 0, as :math:`0 \\log 0`), so no NaN forms."""

_LEAST_POSITIVE = 5e-324
"""The least positive float64 (subnormal): :math:`\\log 0` taken at it, times 0."""


def _complement_and_error(p: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:math:`q = \\mathrm{fl}(1 - p)` and :math:`-e = q - (1 - p)`, exactly: Fast2Sum of
    :math:`1` and :math:`-p` (:math:`|p| \\le 1`), :math:`-e = (q - 1) + p`."""
    q = 1.0 - p
    negated = q - 1.0
    negated += p
    return q, negated


def binary_label_terms(
    p: FloatArray, labels: IntArray, out: tuple[FloatArray, FloatArray, FloatArray | None]
) -> None:
    r"""Write each row's surprisal :math:`-\log p_y`, probability :math:`p_y` and
    complement :math:`1 - p_y` (the other class's probability; not where the third
    array of ``out`` is None) into the arrays of ``out``.  ``p`` float64, ``labels`` 0
    or 1.

    With :math:`z = 1 - y` (1 for the label 0, else 0), :math:`s = \mathrm{fl}(z - p)`
    is :math:`-p` (exact) or :math:`q = \mathrm{fl}(1 - p)`, so :math:`p_y = |s|`, and
    Fast2Sum's :math:`t = (s - z) + p` (both operations exact) is 0 or
    :math:`q - (1 - p)`: the surprisal is :math:`-\log |s| + t / |s|` (:math:`\log(q
    + e) = \log q + e/q + O(e^2/q^2)`, :math:`|e/q| \le 2^{-53}`).  The complement
    :math:`|y - p|` is :math:`p` or :math:`q`.  One formula for both labels: selecting
    (``numpy.where`` on random labels) took about as long as the rest together."""
    surprisal, p_label, complement = out
    zero = np.subtract(1.0, labels, dtype=np.float64)
    signed = np.subtract(zero, p, out=p_label)
    np.subtract(signed, zero, out=surprisal)
    if complement is not None:  # |y - p|, y = 1 - z exactly (before z is overwritten)
        np.subtract(1.0, zero, out=complement)
        np.subtract(complement, p, out=complement)
        np.abs(complement, out=complement)
    surprisal += p
    np.abs(signed, out=p_label)
    np.maximum(p_label, _LEAST_COMPLEMENT, out=zero)  # (t = 0 where s = 0)
    surprisal /= zero
    with np.errstate(divide="ignore"):  # (log 0 = -inf: surprisal +inf)
        surprisal -= np.log(p_label, out=zero)


def binary_squared_complement(p: FloatArray, labels: IntArray) -> FloatArray:
    """:math:`(1 - p_y)^2 = (y - p)^2` of each row, the square of
    :func:`binary_label_terms`' complement (the same number: the sign of :math:`y -
    p` does not reach its square)."""
    square = np.subtract(labels, p, dtype=np.float64)
    return np.square(square, out=square)


def binary_top(p: FloatArray) -> tuple[FloatArray, IntArray]:
    """The top-label confidence :math:`\\max(p, 1 - p)` and the predicted class (1 where
    :math:`p > 1/2`)."""
    return np.maximum(p, 1.0 - p), (p > 0.5).astype(np.intp)


def binary_entropy_values(p: FloatArray) -> FloatArray:
    """:math:`-p \\log p - (1 - p) \\log(1 - p)` of each row (:math:`\\log(1 - p)` as
    :func:`binary_label_terms` forms it), 0 at ``p`` 0 and 1."""
    q, negated = _complement_and_error(p)
    guarded = np.maximum(q, _LEAST_COMPLEMENT)
    negated /= guarded
    np.subtract(np.log(guarded, out=guarded), negated, out=negated)
    negated *= q
    terms = np.maximum(p, _LEAST_POSITIVE, out=q)
    np.log(terms, out=terms)
    terms *= p
    terms += negated
    np.negative(terms, out=terms)
    return np.maximum(terms, 0.0, out=terms)
