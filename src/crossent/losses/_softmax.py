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

Layout
------
The shared batch machinery (options, layout, labels, masks, reduction) is in
``_batch.py``; each option's per-row term, with its derivation, in ``_terms.py``; the
fused float32 CPU kernels in ``_cpu_kernels.py`` (Numba) and their blocked NumPy twins,
used when Numba is absent, in ``_numpy_kernels.py``. This module holds the
value-and-gradient entry points, which the public functions (and ``crossent.torch``'s
autograd Functions) are thin wrappers over:

* ``prepare_softmax_labels(logits, labels, /, *, axis=-1, weight=None,
  ignore_index=None, label_smoothing=0.0, reduction="mean", temperature=1.0,
  z_loss=0.0, soft_cap=None, base=None, validate=True, fused=True) -> SoftmaxProblem``
  and ``prepare_softmax_targets(logits, targets, /, *, axis=-1, weight=None,
  label_smoothing=0.0, reduction="mean", temperature=1.0, z_loss=0.0, soft_cap=None,
  base=None, validate=True) -> SoftmaxProblem``: validate once and compute the
  per-row log-sum-exp (with the fused kernels when they apply: NumPy float32/float16
  logits, classes last and C-contiguous, no soft-capping, ``fused``; Numba's kernels
  when it is installed, else the NumPy twins).
* ``SoftmaxProblem.loss()``: the reduced loss (per row for ``reduction="none"``);
  ``SoftmaxProblem.row_loss()``: per row, in nats, 0 on ignored rows;
  ``SoftmaxProblem.row_lse``: the per-row log-sum-exp of :math:`z'` (batch shape).
* ``softmax_gradient(problem, *, upstream=None, out=None)`` (also exported as
  ``softmax_label_gradient`` and ``softmax_target_gradient``): the gradient with
  respect to the logits of :math:`\sum_i u_i L_i` (``upstream`` :math:`u`: None for 1,
  a scalar, or an array of the batch shape for ``reduction="none"``), the reduction's
  normaliser and unit folded in, written into ``out`` when given; the log-sum-exp is
  never recomputed, and the fused gradient kernel is used when the problem was fused.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import check_logits, check_out
from .._sides import prepare
from .._xp import Array, namespace, take_along_last
from ..errors import InputError
from . import _cpu_kernels, _numpy_kernels
from ._batch import (
    Batch,
    Labels,
    LossOptions,
    batch_for,
    label_batch,
    options_of,
    prepare_logits,
    prepare_weight,
    prepared_by,
    zero_where_ignored,
)
from ._kernel_inputs import GradientTerms, StatisticsOptions
from ._terms import (
    SoftmaxRows,
    chain_rule,
    label_target_gradient,
    label_terms,
    p_coefficient,
    probs,
    row_loss,
    smoothing_coefficients,
    softmax_rows,
    target_terms,
    weighted_class_sum,
)

__all__ = [
    "SoftmaxProblem",
    "prepare_softmax_labels",
    "prepare_softmax_targets",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_targets",
    "softmax_cross_entropy_with_targets_grad",
    "softmax_gradient",
    "softmax_label_gradient",
    "softmax_target_gradient",
]


@dataclass
class SoftmaxProblem:
    """One validated softmax cross-entropy call: everything the loss and gradient need."""

    batch: Batch  # layout, example weights omega (0 on ignored rows), reduction
    options: LossOptions
    rows: SoftmaxRows  # m + ell = LSE of z', and sigma on the generic path
    a: Array  # A = sum_c w_c t~_c, keepdims
    b: Array  # B = sum_c w_c t~_c sigma_c, keepdims
    logits: Array  # the caller's array (to check ``out`` against)
    labels: Labels | None = None  # integer labels (None for probability targets)
    target_term: Array | None = None  # w * t~ for probability targets
    fast_logits: Any = None  # (rows, classes) float32 NumPy view when the kernels apply

    @property
    def row_lse(self) -> Array:
        """Per-row log-sum-exp of the transformed logits :math:`z'`, batch shape."""
        return self.rows.lse[..., 0]

    def row_loss(self) -> Array:
        """Per-row loss in nats, batch shape; 0 on ignored rows."""
        loss = row_loss(
            self.rows, self.a, self.b, self.batch.example_weight, z_loss=self.options.z_loss
        )
        return zero_where_ignored(loss, self.batch.active, xp=self.batch.xp)

    def loss(self) -> Any:
        """The loss reduced as ``reduction`` says, in the unit of ``base``."""
        return self.batch.reduce(self.row_loss())


def prepare_softmax_labels(
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
    fused: bool = True,
) -> SoftmaxProblem:
    """Validate a call of :func:`softmax_cross_entropy` once and compute its row statistics.

    ``fused``: use the fused CPU kernels when they apply (NumPy float32/float16 logits
    with the classes last, C-contiguous, no soft-capping): Numba's when it is
    installed, else their NumPy twins, which read the logits in blocks of rows.
    """
    opts = options_of(label_smoothing, temperature, z_loss, soft_cap, base, reduction)
    xp, (logits_arr, labels_arr) = namespace(logits, labels, names=("logits", "labels"))
    fast = fused and _fast_path_applies(logits_arr, axis, opts)
    given = label_batch(
        logits_arr,
        labels_arr,
        opts,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        validate=validate,
        xp=xp,
        validate_logits=validate and not fast,
    )
    z, lab, eps = given.values, given.labels, opts.label_smoothing
    flat = None
    if fast:
        flat = np.reshape(z, (-1, z.shape[-1]))
        rows, shifted_y, smooth_b = _fast_rows(
            flat, lab, opts, validate=validate, axis=given.batch.axis
        )
    else:
        rows = softmax_rows(z, soft_cap=opts.soft_cap, temperature=opts.temperature, xp=xp)
        assert rows.shifted is not None
        shifted_y = take_along_last(rows.shifted, lab.safe[..., None], xp=xp)
        smooth_b = weighted_class_sum(rows.shifted, lab.weight, xp=xp) if eps else None
    a, b = label_terms(
        shifted_y,
        smooth_b,
        lab.row_weight,
        lab.weight,
        eps=eps,
        classes=z.shape[-1],
        xp=xp,
        unweighted=lab.unweighted,
    )
    return SoftmaxProblem(
        batch=given.batch,
        options=opts,
        rows=rows,
        a=a,
        b=b,
        logits=logits_arr,
        labels=lab,
        fast_logits=flat,
    )


def _fast_path_applies(logits: Array, axis: int, opts: LossOptions) -> bool:
    if not isinstance(logits, np.ndarray) or logits.dtype.char not in _FUSED_DTYPES:
        return False  # the dtype first: a character, not a dtype comparison (issue 13)
    if opts.soft_cap is not None or logits.ndim == 0 or axis % logits.ndim != logits.ndim - 1:
        return False
    return bool(logits.flags.c_contiguous)


_FUSED_DTYPES = (np.dtype(np.float32).char, np.dtype(np.float16).char)
"""The logits the fused kernels take: float32 and float16."""


def _kernels() -> ModuleType:
    """The Numba kernels when Numba is installed, else their blocked NumPy twins (issue 13)."""
    return _cpu_kernels if _cpu_kernels.available() else _numpy_kernels


def _fast_rows(
    flat: np.ndarray, labels: Labels, opts: LossOptions, *, validate: bool, axis: int
) -> tuple[SoftmaxRows, Array, Array | None]:
    """Row statistics from the fused kernel, shaped like the generic path's (keepdims)."""
    m, ell, shifted_y, total, suspect = _kernels().row_statistics(
        flat,
        np.reshape(labels.safe, (-1,)),
        StatisticsOptions(
            inv_temperature=1.0 / opts.temperature,
            need_sum=bool(opts.label_smoothing),
            weight=labels.weight,
        ),
    )
    if validate and suspect.any():
        # A NaN, +inf or a row of -inf may be there: the full check names it.
        check_logits(flat, name="logits", xp=np, axis=axis)
    shape = (*labels.safe.shape, 1)
    ell = np.reshape(ell, shape)
    rows = SoftmaxRows(z=flat, shifted=None, ell=ell, lse=np.reshape(m, shape) + ell)
    smooth_b = np.reshape(total, shape) if opts.label_smoothing else None
    return rows, np.reshape(shifted_y, shape), smooth_b


def prepare_softmax_targets(
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
) -> SoftmaxProblem:
    """Validate a call of :func:`softmax_cross_entropy_with_targets` once (generic path)."""
    opts = options_of(label_smoothing, temperature, z_loss, soft_cap, base, reduction)
    xp, (logits_arr, targets_arr) = namespace(logits, targets, names=("logits", "targets"))
    if tuple(logits_arr.shape) != tuple(targets_arr.shape):
        raise InputError(
            f"`logits` and `targets` must have the same shape; got {tuple(logits_arr.shape)} "
            f"and {tuple(targets_arr.shape)}"
        )
    z, normalised_axis, dtype = prepare_logits(
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
    w = prepare_weight(
        weight, xp=xp, classes=z.shape[-1], dtype=dtype, validate=validate, like=logits_arr
    )
    rows = softmax_rows(z, soft_cap=opts.soft_cap, temperature=opts.temperature, xp=xp)
    assert rows.shifted is not None
    a, b, omega, wt = target_terms(rows.shifted, t, w, eps=opts.label_smoothing, xp=xp)
    batch = batch_for(
        z, normalised_axis, dtype, opts, xp=xp, example_weight=None if w is None else omega
    )
    return SoftmaxProblem(
        batch=batch, options=opts, rows=rows, a=a, b=b, logits=logits_arr, target_term=wt
    )


def softmax_gradient(problem: SoftmaxProblem, *, upstream: object = None, out: Any = None) -> Array:
    r"""The gradient of :math:`\sum_i u_i L_i` with respect to the logits, from ``problem``.

    .. math:: \frac{\partial L_i}{\partial z'_i} = (A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_i
              - w\odot\tilde t_i

    then through soft-capping and temperature (:func:`chain_rule`), times the
    reduction's scale and ``upstream`` (None: 1; a scalar; or, for ``'none'``, an array
    of the batch shape), zero on ignored rows, in the caller's layout. ``out``: a
    C-contiguous NumPy buffer of the logits' shape and the compute dtype to write into.
    """
    if out is not None:
        check_out(out, problem.logits, dtype=problem.batch.dtype)
    if problem.fast_logits is not None:
        return _fast_gradient(problem, upstream=upstream, out=out)
    xp, opts, rows = problem.batch.xp, problem.options, problem.rows
    coef = p_coefficient(problem.a, problem.batch.example_weight, rows.lse, z_loss=opts.z_loss)
    if problem.labels is not None:
        lab = problem.labels
        target = label_target_gradient(
            lab.safe, lab.row_weight, lab.weight, eps=opts.label_smoothing, like=rows.z, xp=xp
        )
    else:
        assert problem.target_term is not None
        target = problem.target_term
    grad = chain_rule(
        coef * probs(rows, xp=xp) - target,
        rows.z,
        soft_cap=opts.soft_cap,
        temperature=opts.temperature,
        xp=xp,
    )
    grad = problem.batch.finish_gradient(grad, upstream)
    if out is None:
        return grad
    out[...] = grad
    return out


#: The names the brief of ``crossent.torch`` uses; one function serves both forms.
softmax_label_gradient = softmax_gradient
softmax_target_gradient = softmax_gradient


def _fast_gradient(problem: SoftmaxProblem, *, upstream: object, out: Any) -> Array:
    """The label gradient from the fused kernel, every option folded into row coefficients.

    Row i is ``c_i p_i - r_i u - g_i e_{y_i}`` with ``c_i = (A_i + 2 lambda omega_i
    LSE_i) s_i`` (:func:`p_coefficient`), ``g_i = keep omega_i s_i``, ``u = spread w``
    (:func:`smoothing_coefficients`) and ``r_i = s_i``, where ``s_i`` holds the
    reduction's scale and ``upstream`` (:meth:`Batch.gradient_scale`), the
    temperature's ``1/T`` (:func:`chain_rule`) and the row mask.
    """
    opts, flat, lab = problem.options, problem.fast_logits, problem.labels
    assert lab is not None
    n, classes = flat.shape
    scale = np.reshape(np.asarray(problem.batch.gradient_scale(upstream), dtype=np.float64), (-1,))
    row_scale = np.broadcast_to(scale / opts.temperature, (n,))
    if lab.active is not None:
        row_scale = row_scale * np.reshape(lab.active, (-1,))
    omega = np.reshape(lab.row_weight, (-1,)).astype(np.float64)
    lse = np.reshape(problem.rows.lse, (-1,))
    a = np.reshape(problem.a, (-1,)).astype(np.float64)
    coef = p_coefficient(a, omega, lse, z_loss=opts.z_loss)
    keep, spread = smoothing_coefficients(opts.label_smoothing, classes)
    uniform = None
    if opts.label_smoothing:
        uniform = spread * (np.ones(classes) if lab.weight is None else lab.weight)
    terms = GradientTerms(
        shift=lse,
        inv_temperature=1.0 / opts.temperature,
        p_coef=coef * row_scale,
        target_coef=keep * omega * row_scale,
        uniform=uniform,
        row_uniform=row_scale if opts.label_smoothing else None,
    )
    grad = _kernels().write_gradient(
        flat,
        np.reshape(lab.safe, (-1,)),
        terms,
        out=None if out is None else np.reshape(out, flat.shape),
    )
    return out if out is not None else np.reshape(grad, (*lab.safe.shape, classes))


# ------------------------------------------------------------------------------- public


@prepared_by(prepare_softmax_labels, hide=("fused",))
def softmax_cross_entropy(problem: SoftmaxProblem) -> Any:
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
    return problem.loss()


@prepared_by(prepare_softmax_labels, hide=("fused",))
def softmax_cross_entropy_grad(problem: SoftmaxProblem, *, out: Array | None = None) -> Array:
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
        float32 for low-precision logits; ``out`` when given. Errors as in
        :func:`softmax_cross_entropy`.

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
    return softmax_gradient(problem, out=out)


@prepared_by(prepare_softmax_targets)
def softmax_cross_entropy_with_targets(problem: SoftmaxProblem) -> Any:
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
        One-hot ``targets`` give exactly what integer labels give.

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
    return problem.loss()


@prepared_by(prepare_softmax_targets)
def softmax_cross_entropy_with_targets_grad(problem: SoftmaxProblem) -> Array:
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
        ``(A + 2 lambda omega LSE) p - w * t~`` per row, through the chain rule; errors as
        in :func:`softmax_cross_entropy_with_targets`.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_cross_entropy_with_targets_grad([[0.0, 0.0]], [[0.25, 0.75]])
    >>> print(g)
    [[ 0.25 -0.25]]
    """
    return softmax_gradient(problem)
