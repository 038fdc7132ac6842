r"""Softmax cross-entropy from logits, with integer labels or probability targets, and its gradient.

Design
------
Every option is a transformation of the logits or a term of one per-row formula.
With :math:`z' = \operatorname{cap}_s(z) / T` (soft-capping :math:`s\tanh(z/s)`, then
temperature), :math:`m = \max_c z'_c`, :math:`\ell = \log\sum_c e^{z'_c - m} \ge 0` (so
:math:`\operatorname{LSE}(z') = m + \ell`) and :math:`\sigma_c = z'_c - m \le 0`, a target
distribution :math:`\tilde t` (one-hot, or given; smoothed as
:math:`(1-\varepsilon)t + \varepsilon/C`) and class weights :math:`w`:

.. math::

    L = \sum_c w_c \tilde t_c\,(\operatorname{LSE}(z') - z'_c)
      = \underbrace{\Big(\sum_c w_c \tilde t_c\Big)}_{A}\,\ell
        \;-\; \underbrace{\sum_c w_c \tilde t_c\,\sigma_c}_{B \,\le\, 0}
      \;+\; \lambda\,\omega\,\operatorname{LSE}(z')^2

Both parts of :math:`A\ell - B` are non-negative, so the sum has no cancellation even
for logits of :math:`\pm 10^4` (``log(softmax(z))`` would round or overflow there).
The z-loss (PaLM, arXiv:2204.02311) is weighted by the example weight
:math:`\omega = \sum_c w_c t_c` (the unsmoothed target's weight; :math:`w_y` for a
label), and the ``"mean"`` reduction divides by :math:`\sum_i \omega_i`: one weighting
model for labels and targets, so one-hot targets give what integer labels give.
For integer labels this is exactly PyTorch's ``F.cross_entropy`` (whose smoothing
term carries the class weights too), except that a batch whose every target is
ignored has mean 0, not NaN.

The gradient with respect to :math:`z'` is

.. math:: \partial L / \partial z' = (A + 2\lambda\omega\,\operatorname{LSE})\,p - w \odot \tilde t,
          \qquad p = \operatorname{softmax}(z'),

which for a one-hot target and no options is the familiar :math:`p - y`. The chain
rule through temperature and soft-capping multiplies it by
:math:`(1 - \tanh^2(z/s))/T`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import (
    check_axis,
    check_base,
    check_class_weight,
    check_labels,
    check_logits,
    check_out,
    check_reduction,
    check_scalar,
)
from .._xp import (
    Array,
    compute_dtype,
    device,
    is_numpy,
    log_sum_exp_shifted,
    namespace,
    reduce_sum,
)
from ..errors import InputError
from ..info._sides import prepare
from . import _cpu_kernels
from ._reduction import reduce_loss, scale_for_reduction, weighted_term

__all__ = [
    "class_mask",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
]


@dataclass(frozen=True)
class _Options:
    """The validated options of one call."""

    label_smoothing: float
    temperature: float
    z_loss: float
    soft_cap: float | None
    log_base: float | None
    reduction: str


def _options(
    *,
    label_smoothing: float,
    temperature: float,
    z_loss: float,
    soft_cap: float | None,
    base: float | None,
    reduction: str,
) -> _Options:
    return _Options(
        label_smoothing=check_scalar(label_smoothing, name="label_smoothing", low=0.0, high=1.0),
        temperature=check_scalar(temperature, name="temperature", low=0.0, low_open=True),
        z_loss=check_scalar(z_loss, name="z_loss", low=0.0),
        soft_cap=None
        if soft_cap is None
        else check_scalar(soft_cap, name="soft_cap", low=0.0, low_open=True),
        log_base=check_base(base),
        reduction=check_reduction(reduction),
    )


@dataclass
class _Rows:
    """Per-row quantities of the transformed logits, class axis last."""

    z: Array  # the logits as given (compute dtype)
    shifted: Array | None  # sigma = z' - m <= 0 (None from the fused kernels)
    ell: Array  # log sum exp(sigma) >= 0, keepdims
    lse: Array  # m + ell, keepdims


def _transform(z: Array, opts: _Options, *, xp: ModuleType) -> Array:
    if opts.soft_cap is not None:
        z = opts.soft_cap * xp.tanh(z / opts.soft_cap)
    if opts.temperature != 1.0:
        z = z / opts.temperature
    return z


def _rows(z: Array, opts: _Options, *, xp: ModuleType) -> _Rows:
    zt = _transform(z, opts, xp=xp)
    m = xp.max(zt, axis=-1, keepdims=True)
    shifted = zt - m
    ell = log_sum_exp_shifted(shifted, xp=xp)
    return _Rows(z=z, shifted=shifted, ell=ell, lse=m + ell)


def _chain(grad: Array, rows: _Rows, opts: _Options, *, xp: ModuleType) -> Array:
    """Multiply d/dz' by dz'/dz (temperature and soft-capping)."""
    if opts.soft_cap is not None:
        t = xp.tanh(rows.z / opts.soft_cap)
        grad = grad * (1 - t * t)
    if opts.temperature != 1.0:
        grad = grad / opts.temperature
    return grad


def _prepare_logits(
    logits: Array, axis: int, *, xp: ModuleType, validate: bool, extra: tuple[Array, ...] = ()
) -> tuple[Array, int, Any]:
    """Logits with the class axis last, in the compute dtype (of ``logits`` and ``extra``)."""
    normalised = check_axis(axis, logits.ndim, name="logits")
    dtype = compute_dtype(logits, *extra, xp=xp, names=("logits",) + ("targets",) * len(extra))
    side = prepare(
        logits, name="logits", form="logits", axis=normalised, xp=xp, dtype=dtype, validate=validate
    )
    return side.values, normalised, dtype


def class_mask(ids: Array, classes: int, *, xp: ModuleType) -> Array:
    """``mask[..., c] = (c == ids[...])``: the one-hot pattern of integer ``ids``, as booleans."""
    return xp.arange(classes, device=device(ids)) == ids[..., None]


def _prepare_weight(
    weight: object, *, xp: ModuleType, classes: int, dtype: Any, validate: bool, like: Array
) -> Array | None:
    """Class weights as an array of ``like``'s library and device, in the compute dtype."""
    if weight is None:
        return None
    _, (_, w) = namespace(like, weight, names=("logits", "weight"))
    check_class_weight(w, xp=xp, classes=classes, validate=validate)
    return xp.astype(w, dtype) if w.dtype != dtype else w


def _label_statistics(
    rows: _Rows, labels: Array, weight: Array | None, *, smoothing: bool, xp: ModuleType
) -> tuple[Array, Array | None]:
    """``z'_y - m`` and, for label smoothing, ``sum_c w_c (z'_c - m)``, keepdims."""
    shifted_y = xp.take_along_axis(rows.shifted, labels[..., None], axis=-1)
    if not smoothing:
        return shifted_y, None
    terms = rows.shifted if weight is None else weighted_term(weight, rows.shifted, xp=xp)
    return shifted_y, xp.sum(terms, axis=-1, keepdims=True)


def _label_terms(
    shifted_y: Array,
    smooth_b: Array | None,
    labels: Array,
    weight: Array | None,
    *,
    eps: float,
    classes: int,
    xp: ModuleType,
) -> tuple[Array, Array, Array]:
    """A, B and omega for integer labels (ignored rows come with label 0, masked later)."""
    if weight is None:
        w_y = xp.ones_like(shifted_y)
        total_w = float(classes)
    else:
        w_y = xp.reshape(xp.take(weight, xp.reshape(labels, (-1,))), shifted_y.shape)
        total_w = xp.sum(weight)
    if eps:
        assert smooth_b is not None  # computed whenever smoothing is on
        a = (1 - eps) * w_y + (eps / classes) * total_w
        b = (1 - eps) * (w_y * shifted_y) + (eps / classes) * smooth_b
    else:
        a, b = w_y, w_y * shifted_y
    return a, b, w_y


def _target_terms(
    rows: _Rows, targets: Array, weight: Array | None, opts: _Options, *, xp: ModuleType
) -> tuple[Array, Array, Array, Array]:
    """A, B, omega and w * smoothed targets for probability targets."""
    eps = opts.label_smoothing
    classes = targets.shape[-1]
    smoothed = (1 - eps) * targets + eps / classes if eps else targets
    wt = smoothed if weight is None else weight * smoothed
    a = xp.sum(wt, axis=-1, keepdims=True)
    b = xp.sum(weighted_term(wt, rows.shifted, xp=xp), axis=-1, keepdims=True)
    # The example weight is that of the unsmoothed target (w_y for a one-hot row).
    omega = xp.ones_like(a) if weight is None else xp.sum(weight * targets, axis=-1, keepdims=True)
    return a, b, omega, wt


def _loss(
    rows: _Rows, a: Array, b: Array, omega: Array, opts: _Options, *, xp: ModuleType
) -> Array:
    loss = a * rows.ell - b
    if opts.z_loss:
        loss = loss + opts.z_loss * omega * (rows.lse * rows.lse)
    return loss[..., 0]


def _grad_wrt_transformed(
    rows: _Rows, a: Array, omega: Array, opts: _Options, *, xp: ModuleType
) -> Array:
    """(A + 2 lambda omega LSE) p, before the target term is subtracted."""
    p = xp.exp(rows.shifted - rows.ell)
    coef = a + 2 * opts.z_loss * omega * rows.lse if opts.z_loss else a
    return coef * p


@dataclass
class _Problem:
    """Everything one call needs after validation, class axis last."""

    xp: ModuleType
    dtype: Any
    axis: int  # the caller's class axis, normalised
    opts: _Options
    rows: _Rows
    a: Array
    b: Array
    omega: Array  # example weights, keepdims; 0 on ignored rows
    active: Array | None  # rows that count (None: all of them)
    fast_logits: Any = None  # (rows, classes) float32 NumPy view when the kernels apply

    def normalizer(self) -> Array:
        return reduce_sum(self.xp.reshape(self.omega, (-1,)), xp=self.xp, out_dtype=self.dtype)

    def reduce(self, loss: Array) -> Any:
        """Reduce per-row losses (nats) as the options say."""
        return reduce_loss(
            loss,
            self.normalizer(),
            reduction=self.opts.reduction,
            xp=self.xp,
            log_base=self.opts.log_base,
            dtype=self.dtype,
        )

    def reduced_loss(self) -> Any:
        xp = self.xp
        loss = _loss(self.rows, self.a, self.b, self.omega, self.opts, xp=xp)
        if self.active is not None:
            loss = xp.where(self.active, loss, xp.zeros_like(loss))
        return self.reduce(loss)

    def gradient(self, target_term: Array) -> Array:
        """``d loss / d logits`` given the target part ``w * t~`` of ``d loss / d z'``."""
        grad = _grad_wrt_transformed(self.rows, self.a, self.omega, self.opts, xp=self.xp)
        return self.finish_gradient(grad - target_term)

    def finish_gradient(self, grad: Array) -> Array:
        """From per-row ``d loss_i / d z'`` to ``d loss / d logits`` in the caller's layout."""
        xp = self.xp
        grad = _chain(grad, self.rows, self.opts, xp=xp)
        grad = grad * scale_for_reduction(
            self.normalizer(), reduction=self.opts.reduction, xp=xp, log_base=self.opts.log_base
        )
        if self.active is not None:
            grad = xp.where(self.active[..., None], grad, xp.zeros_like(grad))
        return xp.moveaxis(grad, -1, self.axis) if self.axis != grad.ndim - 1 else grad


def _label_problem(
    logits: object,
    labels: object,
    opts: _Options,
    *,
    axis: int,
    weight: object,
    ignore_index: int | None,
    validate: bool,
    allow_fast: bool = False,
) -> tuple[_Problem, Array, Array | None]:
    """The problem for integer labels, with the safe labels and the class weights.

    ``allow_fast``: use the fused CPU kernels when they apply (NumPy float32 logits
    with the classes last, no soft-capping, Numba installed).
    """
    xp, (logits_arr, labels_arr) = namespace(logits, labels, names=("logits", "labels"))
    fast = allow_fast and _fast_path_applies(logits_arr, axis, opts, xp=xp)
    z, normalised_axis, dtype = _prepare_logits(
        logits_arr, axis, xp=xp, validate=validate and not fast
    )
    classes = z.shape[-1]
    check_labels(
        labels_arr,
        xp=xp,
        batch_shape=tuple(z.shape[:-1]),
        classes=classes,
        ignore_index=ignore_index,
        validate=validate,
    )
    w = _prepare_weight(
        weight, xp=xp, classes=classes, dtype=dtype, validate=validate, like=logits_arr
    )
    active = None if ignore_index is None else labels_arr != ignore_index
    safe = labels_arr if active is None else xp.where(active, labels_arr, xp.zeros_like(labels_arr))
    smoothing = bool(opts.label_smoothing)
    flat = None
    if fast:
        flat = xp.reshape(z, (-1, classes))
        rows, shifted_y, smooth_b = _fast_rows(
            flat, safe, w, opts, validate=validate, axis=normalised_axis, xp=xp
        )
    else:
        rows = _rows(z, opts, xp=xp)
        shifted_y, smooth_b = _label_statistics(rows, safe, w, smoothing=smoothing, xp=xp)
    a, b, omega = _label_terms(
        shifted_y, smooth_b, safe, w, eps=opts.label_smoothing, classes=classes, xp=xp
    )
    if active is not None:
        omega = xp.where(active[..., None], omega, xp.zeros_like(omega))
    problem = _Problem(
        xp=xp,
        dtype=dtype,
        axis=normalised_axis,
        opts=opts,
        rows=rows,
        a=a,
        b=b,
        omega=omega,
        active=active,
        fast_logits=flat,
    )
    return problem, safe, w


def _fast_path_applies(logits: Array, axis: int, opts: _Options, *, xp: ModuleType) -> bool:
    if not (is_numpy(xp) and opts.soft_cap is None and _cpu_kernels.available()):
        return False
    if logits.ndim == 0 or axis % logits.ndim != logits.ndim - 1:
        return False
    return logits.dtype in (np.float32, np.float16) and bool(logits.flags.c_contiguous)


def _fast_rows(
    flat: Array,
    labels: Array,
    weight: Array | None,
    opts: _Options,
    *,
    validate: bool,
    axis: int,
    xp: ModuleType,
) -> tuple[_Rows, Array, Array | None]:
    """Row statistics from the fused kernel, shaped like the generic path's (keepdims)."""
    m, ell, shifted_y, total, suspect = _cpu_kernels.row_statistics(
        flat,
        np.reshape(labels, (-1,)),
        weight,
        inv_temperature=1.0 / opts.temperature,
        need_sum=bool(opts.label_smoothing),
    )
    if validate and suspect.any():
        # A NaN, +inf or a row of -inf may be there: the full check names it.
        check_logits(flat, name="logits", xp=xp, axis=axis)
    shape = (*labels.shape, 1)
    ell = np.reshape(ell, shape)
    rows = _Rows(z=flat, shifted=None, ell=ell, lse=np.reshape(m, shape) + ell)
    smooth_b = np.reshape(total, shape) if opts.label_smoothing else None
    return rows, np.reshape(shifted_y, shape), smooth_b


def _target_problem(
    logits: object, targets: object, opts: _Options, *, axis: int, weight: object, validate: bool
) -> tuple[_Problem, Array]:
    """The problem for probability targets, with ``w * t~`` for the gradient."""
    xp, z, t, normalised_axis, dtype, logits_arr = _prepare_targets(
        logits, targets, axis, validate=validate
    )
    w = _prepare_weight(
        weight, xp=xp, classes=z.shape[-1], dtype=dtype, validate=validate, like=logits_arr
    )
    rows = _rows(z, opts, xp=xp)
    a, b, omega, wt = _target_terms(rows, t, w, opts, xp=xp)
    problem = _Problem(
        xp=xp,
        dtype=dtype,
        axis=normalised_axis,
        opts=opts,
        rows=rows,
        a=a,
        b=b,
        omega=omega,
        active=None,
    )
    return problem, wt


# ------------------------------------------------------------------------------- public


def softmax_cross_entropy(
    logits: object,
    labels: object,
    /,
    *,
    axis: int = -1,
    weight: object = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Softmax cross-entropy of integer class labels under logits.

    .. math::

        L_i = w_{y_i}\,\bigl[(1-\varepsilon)(\operatorname{LSE}(z'_i) - z'_{i,y_i})\bigr]
            + \tfrac{\varepsilon}{C}\sum_c w_c\,(\operatorname{LSE}(z'_i) - z'_{ic})
            + \lambda\,w_{y_i}\operatorname{LSE}(z'_i)^2,
        \qquad z' = s\tanh(z/s)/T

    Parameters
    ----------
    logits : array, shape (*batch, C) with the classes along ``axis``
        Unnormalised log-probabilities. float16/bfloat16 are computed in float32.
    labels : integer array, shape (*batch)
        Class ids in ``[0, C)``, or ``ignore_index``.
    axis : int, optional
        The class axis of ``logits`` (1 for PyTorch's ``(N, C, d1, ...)`` layout).
    weight : array, shape (C,), optional
        Non-negative class weights (PyTorch's ``weight``).
    ignore_index : int, optional
        Label value whose rows contribute nothing, to the sum or to the mean's
        denominator. Default None: every label must be a class (PyTorch: -100).
    label_smoothing : float in [0, 1], optional
        Mix the one-hot target with the uniform distribution (Szegedy et al. 2016).
    reduction : {'mean', 'sum', 'none', 'parts'}, optional
        ``'mean'``: sum over rows divided by the sum of the rows' label weights
        (PyTorch's weighted mean; 0 when every row is ignored). ``'parts'``: a
        :class:`LossParts` ``(total, normalizer)`` for exact gradient accumulation
        and distributed averaging (sum the parts, then divide once).
    temperature : float > 0, optional
        Divide the (capped) logits by ``T`` before the softmax.
    z_loss : float >= 0, optional
        Coefficient :math:`\lambda` of the z-loss :math:`\lambda\,\mathrm{LSE}^2` (PaLM),
        which keeps the log-partition near 0.
    soft_cap : float > 0, optional
        Soft-cap the logits to :math:`s\tanh(z/s)` (Gemma 2) before the temperature.
    base : float, optional
        None for nats, 2 for bits (bits per token).
    validate : bool, optional
        Check logits (no NaN or +inf, no all ``-inf`` row), labels (range) and
        weights. Shape and dtype checks always run.

    Returns
    -------
    array or LossParts
        Shape (*batch) for ``'none'``, a scalar for ``'mean'``/``'sum'``; float32 for
        low-precision logits.

    Raises
    ------
    InputError
        Labels out of range (naming the row and value), bad logits, shapes, options.
    InputTypeError
        Float labels, complex logits, arrays from two libraries.

    See Also
    --------
    softmax_cross_entropy_grad : the gradient with respect to ``logits``.
    softmax_cross_entropy_with_targets : probability (soft) targets.
    crossent.cross_entropy : the measure, with ``q_form='logits'``.

    Notes
    -----
    Computed as :math:`A\ell - B` with both parts non-negative (see the module
    docstring), so logits of :math:`\pm 10^4` stay exact and a ``-inf`` logit on a
    non-target class contributes exactly 0 (``+inf`` on the target).

    References
    ----------
    .. [1] C. Szegedy et al., "Rethinking the Inception Architecture for Computer
       Vision", CVPR 2016, arXiv:1512.00567 (label smoothing).
    .. [2] A. Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways",
       arXiv:2204.02311 (z-loss).
    .. [3] Gemma Team, "Gemma 2: Improving Open Language Models at a Practical
       Size", arXiv:2408.00118 (logit soft-capping).

    Examples
    --------
    >>> import crossent
    >>> logits = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]
    >>> print(round(float(crossent.softmax_cross_entropy(logits, [0, 2])), 6))
    0.175456
    >>> per_row = crossent.softmax_cross_entropy(logits, [0, 2], reduction="none")
    >>> bool(abs(per_row[0] - crossent.cross_entropy([1, 0, 0], logits[0], q_form="logits"))
    ...      < 1e-15)
    True
    >>> crossent.softmax_cross_entropy(logits, [-100, -100], ignore_index=-100)  # not NaN
    np.float64(0.0)
    """
    opts = _options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        base=base,
        reduction=reduction,
    )
    problem, _, _ = _label_problem(
        logits,
        labels,
        opts,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        validate=validate,
        allow_fast=True,
    )
    return problem.reduced_loss()


def softmax_cross_entropy_grad(
    logits: object,
    labels: object,
    /,
    *,
    axis: int = -1,
    weight: object = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    base: float | None = None,
    validate: bool = True,
    out: Array | None = None,
) -> Array:
    r"""Gradient of :func:`softmax_cross_entropy` with respect to ``logits``.

    .. math::

        \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda w_{y_i}\mathrm{LSE}_i)\,p_i
            - (1-\varepsilon)\,w_{y_i} e_{y_i} - \tfrac{\varepsilon}{C} w,
        \qquad A_i = (1-\varepsilon) w_{y_i} + \tfrac{\varepsilon}{C}\textstyle\sum_c w_c

    then multiplied by :math:`(1-\tanh^2(z/s))/T`, divided by the normaliser for
    ``'mean'`` and by :math:`\ln b` for ``base=b``; zero on ignored rows. With no
    options it is :math:`p - y` per row: the seeds' feedback signal.

    Parameters
    ----------
    logits, labels, axis, weight, ignore_index, label_smoothing, reduction
        As in :func:`softmax_cross_entropy`.
    temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy`. For ``'none'`` and ``'sum'`` each row
        gets the gradient of its own loss; for ``'parts'``, of the total.
    out : numpy.ndarray, optional
        A C-contiguous, writable NumPy array of the shape of ``logits`` and the result's
        dtype (float32 for float32/float16 logits, else float64), not overlapping
        ``logits``, to write the gradient into and return.  Reusing one buffer across
        training steps saves allocating (and first-touching) an N x V array per call.

    Returns
    -------
    array, the shape of ``logits``
        float32 for low-precision logits; ``out`` when given.

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`.

    See Also
    --------
    softmax_cross_entropy

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_cross_entropy_grad([[0.5, 2.0, 0.5]], [1], reduction="sum")
    >>> p = np.exp([0.5, 2.0, 0.5]) / np.exp([0.5, 2.0, 0.5]).sum()
    >>> bool(np.allclose(g, p - [0, 1, 0]))  # p - y
    True
    >>> bool(abs(g.sum()) < 1e-15)  # sums to zero over the classes
    True
    """
    opts = _options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        base=base,
        reduction=reduction,
    )
    problem, safe, w = _label_problem(
        logits,
        labels,
        opts,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        validate=validate,
        allow_fast=True,
    )
    if out is not None:
        check_out(out, logits, dtype=problem.dtype)
    if problem.fast_logits is not None:
        return _fast_gradient(problem, safe, w, out=out)
    xp, eps = problem.xp, opts.label_smoothing
    z = problem.rows.z
    classes = z.shape[-1]
    is_target = class_mask(safe, classes, xp=xp)
    # omega is w_y, the label's class weight (zero on ignored rows, whose gradient is zeroed)
    target_term = xp.where(is_target, (1 - eps) * problem.omega, xp.zeros_like(z))
    if eps:
        target_term = target_term + (eps / classes) * (1.0 if w is None else w)
    gradient = problem.gradient(target_term)
    if out is None:
        return gradient
    out[...] = gradient
    return out


def _fast_gradient(
    problem: _Problem, safe: Array, weight: Array | None, *, out: Array | None = None
) -> Array:
    """The label gradient from the fused kernel, every option folded into row coefficients.

    Row i is ``c_i p_i - r_i u - g_i e_{y_i}`` with ``c_i = (A_i + 2 lambda omega_i
    LSE_i) s_i``, ``g_i = (1 - eps) omega_i s_i``, ``u = eps w / C`` and ``r_i = s_i``,
    where ``s_i`` holds the reduction's scale, the temperature's ``1/T`` and the row mask.
    """
    opts, flat = problem.opts, problem.fast_logits
    classes = flat.shape[1]
    eps = opts.label_smoothing
    scale = scale_for_reduction(
        problem.normalizer(), reduction=opts.reduction, xp=np, log_base=opts.log_base
    )
    row_scale = np.full(flat.shape[0], float(scale) / opts.temperature)
    if problem.active is not None:
        row_scale = row_scale * np.reshape(problem.active, (-1,))
    omega = np.reshape(problem.omega, (-1,)).astype(np.float64)
    a = np.reshape(problem.a, (-1,)).astype(np.float64)
    lse = np.reshape(problem.rows.lse, (-1,))
    coef = a + 2 * opts.z_loss * omega * lse if opts.z_loss else a
    uniform = None
    if eps:
        uniform = (eps / classes) * (np.ones(classes) if weight is None else weight)
    grad = _cpu_kernels.write_gradient(
        flat,
        np.reshape(safe, (-1,)),
        shift=lse,
        inv_temperature=1.0 / opts.temperature,
        p_coef=coef * row_scale,
        target_coef=(1 - eps) * omega * row_scale,
        uniform=uniform,
        row_uniform=row_scale if eps else None,
        out=None if out is None else np.reshape(out, flat.shape),
    )
    return out if out is not None else np.reshape(grad, (*problem.rows.lse.shape[:-1], classes))


def _prepare_targets(
    logits: object, targets: object, axis: int, *, validate: bool
) -> tuple[ModuleType, Array, Array, int, Any, Array]:
    xp, (logits_arr, targets_arr) = namespace(logits, targets, names=("logits", "targets"))
    if tuple(logits_arr.shape) != tuple(targets_arr.shape):
        raise InputError(
            f"`logits` and `targets` must have the same shape; got {tuple(logits_arr.shape)} "
            f"and {tuple(targets_arr.shape)}"
        )
    z, normalised_axis, dtype = _prepare_logits(
        logits_arr, axis, xp=xp, validate=validate, extra=(targets_arr,)
    )
    t = prepare(
        targets_arr,
        name="targets",
        form="probs",
        axis=normalised_axis,
        xp=xp,
        dtype=dtype,
        validate=validate,
    ).values
    return xp, z, t, normalised_axis, dtype, logits_arr


def softmax_cross_entropy_with_targets(
    logits: object,
    targets: object,
    /,
    *,
    axis: int = -1,
    weight: object = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    base: float | None = None,
    validate: bool = True,
) -> Any:
    r"""Softmax cross-entropy of probability (soft) targets under logits.

    .. math::

        L_i = \sum_c w_c \tilde t_{ic}\,(\operatorname{LSE}(z'_i) - z'_{ic})
              + \lambda\,\omega_i\,\operatorname{LSE}(z'_i)^2,
        \qquad \tilde t = (1-\varepsilon)\,t + \varepsilon/C,\quad
        \omega_i = \textstyle\sum_c w_c t_{ic}

    One weighting model with :func:`softmax_cross_entropy`: the ``'mean'`` divides by
    :math:`\sum_i \omega_i`, so one-hot targets give what integer labels give (bit
    for bit without smoothing). PyTorch divides by the number of rows for
    probability targets and by the summed label weights for class indices.

    Parameters
    ----------
    logits : array, shape (*batch, C)
    targets : array, shape (*batch, C)
        Probability distributions along ``axis`` (validated: rows sum to 1).
    axis, weight, label_smoothing, reduction, temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy`.

    Returns
    -------
    array or LossParts

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`, and targets that are not distributions.

    See Also
    --------
    softmax_cross_entropy, softmax_cross_entropy_with_targets_grad
    crossent.cross_entropy : the same value per row, as a measure.

    Examples
    --------
    >>> import crossent
    >>> logits = [[2.0, 0.5, -1.0]]
    >>> a = crossent.softmax_cross_entropy_with_targets(logits, [[1.0, 0.0, 0.0]])
    >>> b = crossent.softmax_cross_entropy(logits, [0])
    >>> bool(a == b)
    True
    """
    opts = _options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        base=base,
        reduction=reduction,
    )
    problem, _ = _target_problem(logits, targets, opts, axis=axis, weight=weight, validate=validate)
    return problem.reduced_loss()


def softmax_cross_entropy_with_targets_grad(
    logits: object,
    targets: object,
    /,
    *,
    axis: int = -1,
    weight: object = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    base: float | None = None,
    validate: bool = True,
) -> Array:
    r"""Gradient of :func:`softmax_cross_entropy_with_targets` with respect to ``logits``.

    .. math:: \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_i
              - w \odot \tilde t_i, \qquad A_i = \textstyle\sum_c w_c \tilde t_{ic}

    then through temperature and soft-capping, and scaled for the reduction and base.

    Parameters
    ----------
    logits, targets, axis, weight, label_smoothing, reduction
        As in :func:`softmax_cross_entropy_with_targets`.
    temperature, z_loss, soft_cap, base, validate
        As in :func:`softmax_cross_entropy_with_targets`.

    Returns
    -------
    array, the shape of ``logits``

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy_with_targets`.

    See Also
    --------
    softmax_cross_entropy_with_targets

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_cross_entropy_with_targets_grad([[0.0, 0.0]], [[0.25, 0.75]])
    >>> print(g)
    [[ 0.25 -0.25]]
    """
    opts = _options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        base=base,
        reduction=reduction,
    )
    problem, weighted_targets = _target_problem(
        logits, targets, opts, axis=axis, weight=weight, validate=validate
    )
    return problem.gradient(weighted_targets)
