r"""The per-row terms of the softmax losses, one function per option, each with its derivation.

Notation (as in ``_softmax.py``): logits :math:`z` with the classes last;
:math:`z' = \operatorname{cap}_s(z)/T`; :math:`m = \max_c z'_c`;
:math:`\sigma = z' - m \le 0`; :math:`\ell = \log\sum_c e^{\sigma_c} \ge 0`;
:math:`\operatorname{LSE} = m + \ell`; class weights :math:`w`; a target :math:`t`
(one-hot :math:`e_y` for a label) and its smoothed form :math:`\tilde t`.

The loss of a row is :math:`A\ell - B + \lambda\omega\operatorname{LSE}^2` with
:math:`A = \sum_c w_c\tilde t_c` and :math:`B = \sum_c w_c\tilde t_c\sigma_c`, and its
gradient with respect to :math:`z'` is :math:`(A + 2\lambda\omega\operatorname{LSE})\,p
- w\odot\tilde t`. The generic (Array API) path, the fused CPU kernels (which return
:math:`m, \ell, \sigma_y, \sum_c w_c\sigma_c` per row) and the value-and-gradient entry
points of ``_softmax.py`` all build these quantities with the functions below, so each
formula has one home.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._xp import (
    Array,
    finite_row_max,
    log_softmax,
    log_sum_exp_shifted,
    minus_row_max,
    numpy_errstate,
    one_entry,
    row_max,
    row_sum,
    take_along_last,
    where_zero,
)
from ._batch import Batch, LabelBatch, class_mask
from ._reduction import weighted_term

__all__ = [
    "LabelledSoftmax",
    "SoftmaxRows",
    "chain_rule",
    "label_coefficient",
    "label_offset",
    "label_target_gradient",
    "label_terms",
    "labelled_softmax",
    "log_prob_of_labels",
    "p_coefficient",
    "probs",
    "probs_minus_onehot",
    "row_loss",
    "smoothing_coefficients",
    "softmax_rows",
    "target_terms",
    "target_weight",
    "tempered_log_softmax",
    "weighted_class_sum",
    "z_loss_term",
]


# --------------------------------------------------------- soft-cap and temperature


@dataclass
class SoftmaxRows:
    """Per-row quantities of the transformed logits :math:`z'`, class axis last."""

    z: Array  # the logits as given (compute dtype), for the chain rule
    shifted: Array | None  # sigma = z' - m <= 0 (None from the fused kernels)
    ell: Array  # log sum exp(sigma) >= 0, keepdims
    lse: Array  # m + ell, keepdims


def _divide(x: Array, temperature: float, *, xp: ModuleType | None = None) -> Array:
    """``x / T``; a quotient beyond the dtype's range is +-inf, its correctly rounded value.

    NumPy would warn about that overflow, and so would array-api-strict (NumPy
    underneath: ``xp``); the warning is not a defect of the input. Other namespaces
    warn of nothing (and ``torch.compile`` cannot trace ``np.errstate``).
    """
    with numpy_errstate(x, xp, over="ignore"):
        return x / temperature


def softmax_rows(
    z: Array, *, soft_cap: float | None, temperature: float, xp: ModuleType
) -> SoftmaxRows:
    r"""The log-partition of :math:`z' = \operatorname{cap}_s(z)/T` and the shifted logits.

    Soft-capping :math:`\operatorname{cap}_s(z) = s\tanh(z/s)` (Gemma 2) bounds the
    logits to :math:`(-s, s)`. The temperature divides the *shifted* capped logits,
    :math:`\sigma = (\operatorname{cap}_s(z) - \max_c \operatorname{cap}_s(z_c))/T`,
    which equals :math:`z' - \max_c z'_c` for :math:`T > 0`. Dividing first would
    overflow huge finite logits to ``inf`` for :math:`T < 1` and give ``inf - inf =
    NaN`` (issue 10, item 9); shifted first, :math:`\sigma \le 0` and :math:`\ell`
    stay finite, and only :math:`\operatorname{LSE}` (used by the z-loss) can overflow.
    """
    capped = z if soft_cap is None else soft_cap * xp.tanh(_divide(z, soft_cap, xp=xp))
    top = row_max(capped, xp=xp)
    shifted = minus_row_max(capped, one_entry(top), xp=xp)
    if temperature != 1.0:
        shifted = _divide(shifted, temperature, xp=xp)
        top = _divide(top, temperature, xp=xp)
    ell = log_sum_exp_shifted(shifted, xp=xp)
    return SoftmaxRows(z=z, shifted=shifted, ell=ell, lse=top + ell)


def tempered_log_softmax(x: Array, temperature: float, *, xp: ModuleType) -> Array:
    r""":math:`\log\operatorname{softmax}(x/T)` over the last axis, shifted before dividing.

    As in :func:`softmax_rows`, :math:`(x - \max x)/T` cannot overflow where
    :math:`x/T` would for :math:`T < 1` (issue 10, item 9). A row whose maximum is not
    finite is not shifted (as ``_xp.log_softmax``).
    """
    if temperature == 1.0:
        return log_softmax(x, xp=xp)  # the same operations, one home
    shifted = _divide(minus_row_max(x, finite_row_max(x, xp=xp), xp=xp), temperature, xp=xp)
    ell = log_sum_exp_shifted(shifted, xp=xp)
    if type(shifted) is np.ndarray:  # our own temporary: in place (issue 13)
        with np.errstate(invalid="ignore"):  # a row entirely -inf: NaN (as log_softmax)
            return np.subtract(shifted, ell, out=shifted)
    with numpy_errstate(shifted, xp, invalid="ignore"):  # array-api-strict: as above
        return shifted - ell


def chain_rule(
    grad: Array, z: Array, *, soft_cap: float | None, temperature: float, xp: ModuleType
) -> Array:
    r"""Multiply :math:`\partial L/\partial z'` by :math:`\partial z'/\partial z`.

    .. math:: \frac{\partial z'_c}{\partial z_c}
              = \frac{1}{T}\,\frac{d}{dz_c}\,s\tanh(z_c/s)
              = \frac{\operatorname{sech}^2(z_c/s)}{T}
              = \frac{1}{T}\,\frac{4u}{(1 + u)^2},\qquad u = e^{-2|z_c|/s}

    (the cap's factor is 1 without soft-capping). The last form is exact to a few
    ulps at every :math:`z`: :math:`1 - \tanh^2` cancels where :math:`|z| \gg s`
    (2e3 ulps at :math:`|z|/s = 16`, all of them past 19), and :math:`u` underflows
    to 0 where the factor does, with no overflow. The fused kernels apply the
    :math:`1/T` through their per-row coefficients (soft-capping disables them).

    The one home of this factor for array-API namespaces (the generic path). Its torch
    twin, ``crossent.torch._launch._times_cap_slope_`` (the custom op's float64 blocks,
    the fused linear and the vocab-parallel losses), is in place (``abs_``, ``exp_``),
    which the array API cannot express: through this function the op would hold three
    float64 blocks more at its peak (the vocab-parallel backward held one to two more).
    """
    if soft_cap is not None:
        # |z|/s past 9e307 makes -2|z|/s -inf, and u its correctly rounded 0: no defect
        # of the input for NumPy to warn about (as _divide).
        with numpy_errstate(z, xp, over="ignore"):
            u = xp.exp(-2.0 * xp.abs(z / soft_cap))
        square = u + 1.0
        square *= square  # in place (a new array where arrays are immutable)
        u *= 4.0
        u /= square
        del square
        grad = grad * u
    if temperature != 1.0:
        # T = 1e-320 makes 1/T past 1.8e308: the gradient is honestly +-inf there, no
        # defect of the input for NumPy to warn about (the loss does not warn either).
        with numpy_errstate(grad, xp, over="ignore"):
            grad = grad / temperature
    return grad


def probs(rows: SoftmaxRows, *, xp: ModuleType) -> Array:
    r""":math:`p = \operatorname{softmax}(z') = e^{\sigma - \ell}`."""
    assert rows.shifted is not None  # the generic path keeps the shifted logits
    return xp.exp(rows.shifted - one_entry(rows.ell))


# --------------------------------------------------------------------- label smoothing


def smoothing_coefficients(eps: float, classes: int) -> tuple[float, float]:
    r"""``(keep, spread)`` with :math:`\tilde t = \text{keep}\cdot t + \text{spread}`.

    Label smoothing (Szegedy et al. 2016) mixes the target with the uniform
    distribution: :math:`\tilde t = (1-\varepsilon)\,t + \varepsilon/C`. Every smoothed
    quantity below is linear in :math:`\tilde t`, so it is ``keep`` times the unsmoothed
    quantity plus ``spread`` times the same quantity for the all-ones target.
    """
    return 1.0 - eps, eps / classes


# ---------------------------------------------------------------------- class weights


def weighted_class_sum(values: Array, weight: Array | None, *, xp: ModuleType) -> Array:
    r""":math:`\sum_c w_c v_c` over the last axis (kept), a class of weight 0 absent.

    With :math:`v = \sigma` this is the smoothing part of :math:`B`; a ``-inf`` logit
    on a class of weight 0 contributes 0, not :math:`0\cdot(-\infty)` = NaN. A sum past
    the float range is ``-inf`` without NumPy's overflow warning: the far-row guard
    (``_far_gaps``) forms such rows again (a hostile pass, issue 13: ``label_smoothing=0.3``
    on ``[[1e-300, 5e-324, 1.7e308, -0.0, 1e308]]`` warned under ``-W error`` although
    the loss, 1.538e308, and the gradient are finite).
    """
    terms = values if weight is None else weighted_term(weight, values, xp=xp)
    with numpy_errstate(terms, xp, over="ignore"):
        return row_sum(terms, xp=xp)


def label_terms(
    shifted_y: Array,
    smooth_b: Array | None,
    row_weight: Array,
    weight: Array | None,
    *,
    eps: float,
    classes: int,
    xp: ModuleType,
    unweighted: bool = False,
) -> tuple[Array, Array]:
    r""":math:`A` and :math:`B` for integer labels (keepdims).

    With :math:`\tilde t = (1-\varepsilon)e_y + \varepsilon/C` and
    :math:`\omega = w_y` (``row_weight``):

    .. math:: A = (1-\varepsilon)\,w_y + \tfrac{\varepsilon}{C}\textstyle\sum_c w_c,
              \qquad
              B = (1-\varepsilon)\,w_y\sigma_y + \tfrac{\varepsilon}{C}\textstyle\sum_c w_c\sigma_c

    where ``smooth_b`` is :math:`\sum_c w_c\sigma_c` (needed only when
    :math:`\varepsilon > 0`). A label of weight 0 is absent even where
    :math:`\sigma_y = -\infty` (issue 10, item 7), and so is the label's own term when
    :math:`\varepsilon = 1`: :math:`(1-\varepsilon)w_y\sigma_y` is formed by
    :func:`weighted_term`. ``unweighted``: every :math:`w_y` is 1 (no class weights, no
    ignored row), so :math:`B = \sigma_y` without the product.
    """
    if not eps:
        return row_weight, shifted_y if unweighted else weighted_term(row_weight, shifted_y, xp=xp)
    assert smooth_b is not None  # computed whenever smoothing is on
    keep, spread = smoothing_coefficients(eps, classes)
    # The label's coefficient is (1 - eps) w_y: 0 for eps = 1 too, where sigma_y = -inf
    # would otherwise give 0 * -inf (found by the fused-vs-generic property test).
    b = weighted_term(keep * row_weight, shifted_y, xp=xp) + spread * smooth_b
    return label_coefficient(row_weight, weight, eps=eps, classes=classes, xp=xp), b


def label_coefficient(
    row_weight: Array, weight: Array | None, *, eps: float, classes: int, xp: ModuleType
) -> Array:
    r""":math:`A = (1-\varepsilon)\,w_y + \tfrac{\varepsilon}{C}\sum_c w_c` of
    :func:`label_terms`, in the dtype of ``row_weight`` and ``weight``.

    The fused gradient passes them in float64 (issue 13): :math:`A p_y - g` cancels as
    :math:`p_y \to g/A`, so :math:`A` rounded to float32 (half an ulp) would cost the
    label's entry many float32 ulps.
    """
    if not eps:
        return row_weight
    keep, spread = smoothing_coefficients(eps, classes)
    total_w = float(classes) if weight is None else xp.sum(weight)
    return keep * row_weight + spread * total_w


def label_target_gradient(
    safe: Array,
    row_weight: Array,
    weight: Array | None,
    *,
    eps: float,
    like: Array,
    xp: ModuleType,
) -> Array:
    r"""The target part of the gradient, shaped like ``like``.

    .. math:: w\odot\tilde t = (1-\varepsilon)\,w_y e_y + \tfrac{\varepsilon}{C}\,w
    """
    classes = like.shape[-1]
    keep, spread = smoothing_coefficients(eps, classes)
    target = row_weight if keep == 1.0 else keep * row_weight  # exact: 1.0 * w is w
    term = where_zero(class_mask(safe, classes, xp=xp), target, xp=xp)
    if eps:
        term = term + spread * (1.0 if weight is None else weight)
    return term


def target_terms(
    shifted: Array, targets: Array, weight: Array | None, *, eps: float, xp: ModuleType
) -> tuple[Array, Array, Array]:
    r""":math:`A`, :math:`B` and :math:`w\odot\tilde t` for probability targets.

    .. math:: A = \textstyle\sum_c w_c\tilde t_c, \quad B = \sum_c w_c\tilde t_c\sigma_c

    The example weight :math:`\omega` is :func:`target_weight`'s.
    """
    keep, spread = smoothing_coefficients(eps, targets.shape[-1])
    smoothed = keep * targets + spread if eps else targets
    wt = smoothed if weight is None else weight * smoothed
    a = row_sum(wt, xp=xp)
    b = row_sum(weighted_term(wt, shifted, xp=xp), xp=xp)
    return a, b, wt


def target_weight(targets: Array, weight: Array | None, *, xp: ModuleType) -> Array | None:
    r"""The example weight :math:`\omega = \sum_c w_c t_c` of probability targets
    (keepdims); None without class weights (every row weighs 1).

    It is that of the *unsmoothed* target, so a one-hot row weighs :math:`w_y` as an
    integer label does. It needs no logits: a problem's batch holds it before (or
    without) the softmax terms of :func:`target_terms` (issue 13).
    """
    return None if weight is None else row_sum(weight * targets, xp=xp)


# ----------------------------------------------------------------------------- z-loss


def z_loss_term(z_loss: float, omega: Array, lse: Array, *, xp: ModuleType | None = None) -> Array:
    r"""The z-loss :math:`\lambda\,\omega\,\operatorname{LSE}^2` (PaLM, arXiv:2204.02311).

    Its derivative with respect to :math:`z'` is :math:`2\lambda\omega\operatorname{LSE}\,p`
    (since :math:`\partial\operatorname{LSE}/\partial z' = p`): see :func:`p_coefficient`.
    :math:`\operatorname{LSE}^2` overflows past 1.3e154 where a small :math:`\lambda`
    leaves the term finite: a public loss forms such a row again
    (``_far_gaps.scaled_square_term``), this common path keeps its roundings. NumPy's
    overflow there is quiet (a hostile review: logits of 1e200 under ``z_loss=1e-300``
    gave 1e100 with three ``RuntimeWarning``\ s, one per pass; an ignored row's
    :math:`0\cdot\infty` warned too, its NaN then set to 0): ``inf`` only where the
    term truly overflows, as the far rows form it, and no warning, as they give none.
    """
    with numpy_errstate(lse, xp, over="ignore", invalid="ignore"):
        return z_loss * omega * (lse * lse)


def p_coefficient(a: Array, omega: Array, lse: Array, *, z_loss: float | Array) -> Array:
    r"""The factor of :math:`p` in :math:`\partial L/\partial z'`: :math:`A + 2\lambda\omega\,LSE`.

    The cross-entropy part :math:`A\operatorname{LSE} - \sum_c w_c\tilde t_c z'_c` has
    derivative :math:`A p - w\odot\tilde t`; the z-loss adds :math:`2\lambda\omega
    \operatorname{LSE}\,p`.
    """
    return a + 2 * z_loss * omega * lse if _has_z_loss(z_loss) else a


def label_offset(
    a: Array, target: Array, omega: Array, lse: Array, *, z_loss: float | Array
) -> Array:
    r""":math:`c - t_y = (A - t_y) + 2\lambda\omega\operatorname{LSE}` in the label's
    entry :math:`c\operatorname{expm1}(\log p_y) + (c - t_y)` (:func:`p_coefficient`'s
    :math:`c`; ``target``: :math:`t_y`, or the part of it that the caller subtracts
    there).

    Not :math:`c - t_y` of :math:`c` rounded (issue 13): that keeps the z-loss's part
    only to an ulp of :math:`A`, nothing of it where :math:`2\lambda\omega
    \operatorname{LSE}` is below an ulp of 1 (logits ``[0, -80]``: an LSE of 1.8e-35),
    and where it is the entry's main part (:math:`p_y \to 1`) many ulps of the entry
    (logits ``[5, 0]``, :math:`\lambda = 10^{-4}`: 38). :math:`A - t_y` is 0 without
    smoothing (:math:`A = t_y = \omega`); with it, as :math:`c - t_y` had it.
    """
    gap = a - target
    return gap + 2 * z_loss * omega * lse if _has_z_loss(z_loss) else gap


def _has_z_loss(z_loss: Any) -> bool:
    r"""Whether :math:`\lambda` is not the number 0; an array (per row, from
    ``_softmax._scaled_lse``) always counts."""
    return not isinstance(z_loss, int | float) or z_loss != 0


def row_loss(
    rows: SoftmaxRows,
    a: Array,
    b: Array,
    omega: Array,
    *,
    z_loss: float,
    xp: ModuleType | None = None,
) -> Array:
    r"""Per-row loss :math:`A\ell - B + \lambda\omega\operatorname{LSE}^2` (batch shape).

    :math:`A\ell \ge 0` and :math:`-B \ge 0`, so the sum has no cancellation.
    ``xp`` tells :func:`z_loss_term` whether NumPy's warnings apply.
    """
    loss = a * rows.ell - b
    if z_loss:
        loss = loss + z_loss_term(z_loss, omega, rows.lse, xp=xp)
    return loss[..., 0]


# ------------------------------------------------------------------- labels' log p_y


def log_prob_of_labels(rows: SoftmaxRows, safe: Array, *, xp: ModuleType) -> Array:
    r""":math:`\log p_y = \sigma_y - \ell \le 0` (keepdims), clipped at 0 against rounding."""
    assert rows.shifted is not None
    log_p_y = take_along_last(rows.shifted, safe[..., None], xp=xp) - rows.ell
    return (
        xp.minimum(log_p_y, 0.0)
        if type(log_p_y) is np.ndarray
        else xp.minimum(log_p_y, xp.zeros_like(log_p_y))
    )


def probs_minus_onehot(rows: SoftmaxRows, safe: Array, log_p_y: Array, *, xp: ModuleType) -> Array:
    r""":math:`p - e_y`: the gradient of :math:`-\log p_y` with respect to :math:`z'`.

    The label's entry :math:`p_y - 1` is :math:`\operatorname{expm1}(\log p_y)`
    (``log_p_y``: :func:`log_prob_of_labels`'), as the cross-entropy's: :math:`p_y` less 1
    cancels as :math:`p_y \to 1` (0 for :math:`p_y` rounded to 1, where the other
    entries are not 0 and the row must sum to 0; issue 13).
    """
    p = probs(rows, xp=xp)
    if type(p) is np.ndarray and p.size == p.shape[-1]:
        # One row (issue 13: per-call overhead): the label's entry in place (``p`` is our
        # own temporary); a label that is no class has no entry.
        label = int(safe.reshape(-1)[0])
        if 0 <= label < p.shape[-1]:
            p.reshape(-1)[label] = np.expm1(log_p_y.reshape(-1))[0]
        return p
    return xp.where(class_mask(safe, p.shape[-1], xp=xp), xp.expm1(log_p_y), p)


@dataclass
class LabelledSoftmax:
    """Integer labels under the plain softmax of the logits: the base of focal and poly-1."""

    batch: Batch  # example weights w_y (0 on ignored rows), layout, reduction
    rows: SoftmaxRows
    safe: Array  # the labels, ignored rows pointing at class 0
    log_p_y: Array  # keepdims, <= 0

    def probs_minus_onehot(self) -> Array:
        r""":math:`p - e_y`, the gradient of :math:`-\log p_y`."""
        return probs_minus_onehot(self.rows, self.safe, self.log_p_y, xp=self.batch.xp)

    def reduce(self, per_row: Array, weight: Array | None = None) -> Any:
        r"""Reduce :math:`\omega_i\,L_i` (keepdims; :math:`\omega` is ``weight``, by default
        :math:`w_{y_i}`): a row of weight 0 counts 0 even where :math:`L_i = \infty`."""
        if weight is None and self.batch.weighs_one(per_row):
            return self.batch.reduce(per_row[..., 0])  # 1 * L_i is L_i
        omega = self.batch.example_weight if weight is None else weight
        return self.batch.reduce(weighted_term(omega, per_row, xp=self.batch.xp)[..., 0])

    def finish_gradient(self, factor: Array) -> Array:
        r"""The caller's gradient from ``factor`` (keepdims, :math:`w_y` included) times
        :math:`p - e_y`: a loss :math:`w_y f(\log p_y)` has ``factor`` :math:`-w_y f'`."""
        return self.batch.finish_gradient(factor * self.probs_minus_onehot())


def labelled_softmax(given: LabelBatch) -> LabelledSoftmax:
    r""":math:`\log p_y` by the generic path, for logits and labels checked by
    :func:`._batch.labelled_batch` (the prepare step focal and poly-1 extend)."""
    xp = given.batch.xp
    rows = softmax_rows(given.values, soft_cap=None, temperature=1.0, xp=xp)
    safe = given.labels.safe
    return LabelledSoftmax(given.batch, rows, safe, log_prob_of_labels(rows, safe, xp=xp))
