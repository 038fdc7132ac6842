r"""Sigmoid (multi-label binary) cross-entropy and sigmoid focal loss from logits.

Every entry of ``logits`` is an independent binary problem with target probability
``t`` in [0, 1]. With :math:`\operatorname{sp}(x) = \log(1 + e^x)` evaluated as
:math:`\max(x, 0) + \operatorname{log1p}(e^{-|x|})`, :math:`-\log\sigma(x) = \operatorname{sp}(-x)`
and :math:`-\log(1-\sigma(x)) = \operatorname{sp}(x)` hold without overflow or
cancellation for any :math:`x`, including :math:`\pm\infty`:

.. math:: \ell(x, t) = w\,[\,\pi\,t\,\operatorname{sp}(-x) + (1 - t)\,\operatorname{sp}(x)\,],
          \qquad \frac{\partial\ell}{\partial x} = w\,[(1-t)\,\sigma(x) - \pi\,t\,\sigma(-x)]

with class or element weights :math:`w` and positive-class weight :math:`\pi`
(PyTorch's ``pos_weight``). With :math:`\pi = 1` the gradient is :math:`w(\sigma(x) - t)`.

The ``'mean'`` reduction is the weighted mean :math:`\sum w\ell / \sum w` (the count of
entries without weights), the same model as the softmax losses. PyTorch's
``binary_cross_entropy_with_logits`` divides by the count even with weights; its value
is ``reduction='sum'`` divided by ``logits.size``.

The gradient of float32 (float16, bfloat16) logits is formed in float64 and rounded
once, re-done in double-double where :math:`\sigma(x)` meets :math:`t` (``_sigmoid_grad``:
within an ulp there too, where float32 arithmetic cancels); that of float64 logits the
same way, re-done where the float64 difference loses accuracy (within a few float64
ulps). PyTorch's autograd of the loss of tensors takes that gradient too, and the
targets' exact slope (:func:`_terms_in_graph`; branch hostile3), keeping the formula's
second derivatives. With label smoothing :math:`1 - t'` is formed from the raw targets
(:attr:`_Binary.complement`), so the loss keeps its digits where :math:`t'` is near 1.

Small calls on NumPy float32 or float64 arrays take the lean path of
``_small_sigmoid`` first (issue 13: per-call overhead), which gives these functions'
values bit for bit and hands anything else (and every error) to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import (
    check_broadcastable,
    check_flag,
    check_non_negative,
    check_not_nan,
    check_probabilities,
    check_scalar,
)
from .._far_row_gradients import wants_gradient
from .._xp import (
    Array,
    accumulation_dtype,
    astype,
    compute_dtype,
    compute_dtype_weak,
    device,
    full_like,
    functorch_wrapped,
    is_jax_tracer,
    namespace,
    numpy_errstate,
    ones_like,
    reduce_sum,
    size,
    where_zero,
    zeros_like,
)
from ..errors import InputError
from . import _cpu_kernels, _focal_root, _sigmoid_grad, _small_sigmoid
from ._batch import _by_value, extends, options_of, prepared_by
from ._reduction import reduce_loss, scale_for_reduction, weighted_gradient, weighted_term
from ._weight_scale import weight_scaled

__all__ = [
    "focal_of",
    "focal_terms",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "softplus",
    "target_slope",
    "weighted_terms",
]


def softplus(x: Array, *, xp: ModuleType) -> Array:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``.

    Other namespaces than NumPy form :math:`-|x|` as ``min(x, 0) - max(x, 0)`` (the same
    bits): JAX differentiates :math:`|x|` at 0 as 1, which made the derivative of the
    sum 0 at :math:`x = 0` (issue 13: ``jax.grad`` of ``sigmoid_cross_entropy`` at a
    zero logit was 0, not :math:`1/2 - t`); a tie of ``min``/``max`` splits evenly."""
    zero = zeros_like(x, xp=xp)
    high = xp.maximum(x, zero)
    if type(x) is np.ndarray:
        return high + xp.log1p(xp.exp(-xp.abs(x)))
    return high + xp.log1p(xp.exp(xp.minimum(x, zero) - high))


@dataclass
class _Binary:
    """Validated elementwise inputs, all broadcast to the shape of ``logits``.

    ``softplus_pos``, ``softplus_neg`` and ``positive`` are computed on first use (every
    loss and gradient but the float32 gradient needs them; issue 13: a plain property,
    no cached-property lock per call).
    """

    xp: ModuleType
    dtype: Any
    x: Array
    t: Array  # smoothed targets
    weight: Array | None
    pos_weight: Array | None
    reduction: str
    log_base: float | None
    raw_t: Array | None = field(default=None, repr=False)  # the targets before smoothing
    label_smoothing: float = 0.0
    _softplus_pos: Any = field(default=None, init=False, repr=False)
    _softplus_neg: Any = field(default=None, init=False, repr=False)
    _positive: Any = field(default=None, init=False, repr=False)

    @property
    def softplus_pos(self) -> Array:
        """:math:`\\operatorname{sp}(x) = -\\log(1 - \\sigma(x))`."""
        if self._softplus_pos is None:
            self._softplus_pos = softplus(self.x, xp=self.xp)
        return self._softplus_pos

    @property
    def softplus_neg(self) -> Array:
        """:math:`\\operatorname{sp}(-x) = -\\log\\sigma(x)`."""
        if self._softplus_neg is None:
            self._softplus_neg = softplus(-self.x, xp=self.xp)
        return self._softplus_neg

    @property
    def positive(self) -> Array:
        """:math:`\\pi t`, the coefficient of :math:`\\operatorname{sp}(-x)`."""
        if self._positive is None:
            self._positive = self.t if self.pos_weight is None else self.pos_weight * self.t
        return self._positive

    @property
    def complement(self) -> Array:
        r""":math:`1 - t'`, the coefficient of :math:`\operatorname{sp}(x)`: with label
        smoothing :math:`(1-\varepsilon)(1-t) + \varepsilon/2` of the raw targets, not
        :math:`1 - \operatorname{fl}(t')`, whose rounding (an ulp of :math:`t'`, near 1)
        is all of a small :math:`1 - t'` (issue 13, branch hostile3: float64 logit 20,
        target 1, ``label_smoothing=1e-6``: 825,103 ulps of the loss; the gradient's
        numerator had the same fix in branch hostile1)."""
        if self.label_smoothing and self.raw_t is not None:
            eps = self.label_smoothing
            return (1 - eps) * (1 - self.raw_t) + eps / 2
        return 1 - self.t

    def ones(self) -> Array:
        return ones_like(self.x, xp=self.xp)

    def normalizer(self) -> Array:
        if self.weight is None and type(self.x) is np.ndarray:
            # The count of entries, as the float64 sum of ones gives it (issue 13).
            return np.dtype(self.dtype).type(self.x.size)
        w = self.ones() if self.weight is None else self.xp.broadcast_to(self.weight, self.x.shape)
        return reduce_sum(self.xp.reshape(w, (-1,)), xp=self.xp, out_dtype=self.dtype)

    def weighted(self, value: Array, *, gradient: bool = False) -> Array:
        """``w value``; ``gradient``: with :func:`weighted_gradient`'s zeros."""
        if self.weight is None:
            return value
        return (weighted_gradient if gradient else weighted_term)(self.weight, value, xp=self.xp)

    def reduce(self, loss: Array) -> Any:
        return reduce_loss(
            loss,
            self.normalizer(),
            reduction=self.reduction,
            xp=self.xp,
            log_base=self.log_base,
            dtype=self.dtype,
        )

    def scale(self, grad: Array) -> Array:
        return grad * scale_for_reduction(
            self.normalizer(), reduction=self.reduction, xp=self.xp, log_base=self.log_base
        )


def _binary(
    logits: object,
    targets: object,
    /,
    *,
    weight: object = None,
    pos_weight: object = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    base: float | None = None,
    validate: bool = True,
) -> _Binary:
    """Check one call of :func:`sigmoid_cross_entropy` (or its gradient)."""
    # label_smoothing, base and reduction checked in this order, once per distinct set
    options = options_of(label_smoothing, 1.0, 0.0, None, base, reduction)
    validate = check_flag(validate)
    eps = options.label_smoothing
    given = {"logits": logits, "targets": targets}
    if weight is not None:
        given["weight"] = weight
    if pos_weight is not None:
        given["pos_weight"] = pos_weight
    names = tuple(given)
    xp, arrays = namespace(*given.values(), names=names)
    by_name = dict(zip(names, arrays, strict=True))
    x, t = by_name["logits"], by_name["targets"]
    if tuple(t.shape) != tuple(x.shape):
        raise InputError(
            f"`logits` and `targets` must have the same shape; got {tuple(x.shape)} and "
            f"{tuple(t.shape)}"
        )
    # The weights are parameters of the loss, not data: like the softmax losses' class
    # weights they take the dtype of the logits and targets (issue 13: a float64 or
    # Python-float ``pos_weight`` made a float32 loss float64), after their own dtype check.
    # A Python float logit or target is weak (``_xp.compute_dtype_weak``): the other
    # decides, as in ``binary_cross_entropy`` (issue 13: ``sigmoid_cross_entropy(
    # np.float32(2), 1.0)`` was float64).
    dtype = compute_dtype_weak((logits, targets), (x, t), xp=xp, names=("logits", "targets"))
    for name in names[2:]:
        compute_dtype(by_name[name], xp=xp, names=(name,))
    cast = {n: (astype(a, dtype, xp=xp) if a.dtype != dtype else a) for n, a in by_name.items()}
    for name in ("weight", "pos_weight"):
        if name in cast:
            check_broadcastable(tuple(cast[name].shape), tuple(x.shape), name=name, target="logits")
    if validate:
        check_not_nan(cast["logits"], name="logits", xp=xp)
        check_probabilities(cast["targets"], name="targets", xp=xp)
        for name in ("weight", "pos_weight"):
            if name in cast:
                check_non_negative(cast[name], name=name, xp=xp)
    raw_t = t = cast["targets"]
    if eps:
        t = (1 - eps) * t + eps / 2
    return _Binary(
        xp=xp,
        dtype=dtype,
        x=cast["logits"],
        t=t,
        weight=cast.get("weight"),
        pos_weight=cast.get("pos_weight"),
        reduction=reduction,
        log_base=options.log_base_in(dtype),
        raw_t=raw_t,
        label_smoothing=eps,
    )


def _bce(b: _Binary, down: Array | None = None) -> Array:
    """``pi t sp(-x) + (1 - t) sp(x)``, each term 0 where its coefficient is; ``down``:
    a power of 2 by which ``pi`` was scaled, ``sp(x)`` is scaled too (the terms times
    ``down``, exact but where one is subnormal: ``crossent.torch._binary``)."""
    xp = b.xp
    softplus_pos = b.softplus_pos if down is None else b.softplus_pos * down
    return weighted_term(b.positive, b.softplus_neg, xp=xp) + weighted_term(
        b.complement, softplus_pos, xp=xp
    )


def target_slope(x: Array, pi: Any, *, xp: ModuleType) -> Array:
    r""":math:`\pi\,\mathrm{sp}(-x) - \mathrm{sp}(x)` (:math:`\pi = 1` where ``pi`` is
    None), the targets' slope of the binary loss, with no cancellation between its parts.

    By :math:`\mathrm{sp}(x) - \mathrm{sp}(-x) = x`, it is :math:`-x` where
    :math:`\pi = 1` (exactly; PyTorch's own form), and else :math:`\pi|x| + (\pi - 1)
    \mathrm{sp}(x)` for :math:`x < 0`, :math:`(\pi - 1)\mathrm{sp}(-x) - x` for
    :math:`x \ge 0`: the softplus there at most :math:`\log 2`, so only a true zero of
    the slope cancels. The difference of the two softplus terms (issue 13, branch
    hostile24) kept none of :math:`-x`'s digits for small :math:`|x|`: float32 logit
    ``-5.353383e-4`` gave ``5.353093e-4``, 454 ulps, float64 logit ``1e-10`` six digits.
    ``pi`` 0 times an infinite :math:`|x|` is 0 (the term is absent). The home of
    ``crossent.torch``'s binary cross-entropy's slope and of :func:`_bce_in_graph`'s."""
    if pi is None:
        return -x
    zero = zeros_like(x, xp=xp)
    below = x < 0
    magnitude, rest = xp.where(below, -x, zero), xp.where(below, zero, x)
    small = softplus(-xp.abs(x), xp=xp)  # sp(x) for x < 0, sp(-x) for x >= 0
    return pi * xp.where(pi != 0, magnitude, zero) + (pi - 1) * small - rest


def _stopped_target(t: Any) -> Any:
    r"""The targets ``t`` with no derivative (same values) where autodiff may record one
    for them, else None: a tensor that requires grad (``detach``), or a JAX tracer
    (``jax.lax.stop_gradient``: ``jax.grad``, ``jax.jvp``, ``jax.jit``, ``jax.vmap``;
    whether the targets are differentiated is not known while tracing, and the
    zero-valued term costs a few operations an entry). Issue 13, branch torchrev1:
    ``jax.grad`` in the targets differentiated the two softplus terms, as torch's
    autograd did before branch focal4."""
    if getattr(t, "requires_grad", False):
        return t.detach()
    if is_jax_tracer(t):
        import jax  # (a tracer: JAX is imported)

        return jax.lax.stop_gradient(t)
    return None


def _bce_in_graph(b: _Binary) -> Array:
    r""":func:`_bce`, the same value, whose autograd graph has the targets' slope
    :func:`target_slope` where PyTorch records one for ``b.t`` (``requires_grad``): the
    loss of the detached :math:`t_s` plus :math:`(t - t_s)\,S(x, \pi)`, exact since the
    loss is linear in :math:`t` (every derivative, of any order, in :math:`x`,
    :math:`\pi` and :math:`t` is the loss's; :math:`t - t_s = 0` adds 0). Autograd of
    :func:`_bce` summed :math:`\pi\,\mathrm{sp}(-x)` and :math:`-\mathrm{sp}(x)`,
    which cancel for small :math:`|x|` (issue 13, branch focal4: the targets' gradient of
    ``crossent.torch.sigmoid_focal_loss`` at ``gamma=0``, float32 logit
    ``-5.353383e-4``, 454 ulps, as the binary cross-entropy's before hostile24; JAX
    tracers too since branch torchrev1, :func:`_stopped_target`). Where the slope is
    infinite (an infinite logit) the graph is :func:`_bce`'s. Other arrays (NumPy,
    concrete JAX arrays) get :func:`_bce` itself."""
    t = b.t
    stopped = _stopped_target(t)
    if stopped is None:
        return _bce(b)
    xp = b.xp
    slope = target_slope(b.x, b.pos_weight, xp=xp)
    finite = xp.isfinite(slope)
    held = xp.where(finite, stopped, t)
    complement = b.complement
    complement_held = _stopped_target(complement)
    if complement_held is not None:
        complement = xp.where(finite, complement_held, complement)
    positive = held if b.pos_weight is None else b.pos_weight * held
    term = weighted_term(positive, b.softplus_neg, xp=xp) + weighted_term(
        complement, b.softplus_pos, xp=xp
    )
    return term + (t - held) * xp.where(finite, slope, zeros_like(slope, xp=xp))


def _terms_in_graph(b: _Binary) -> Array:
    r"""``b.weighted(_bce_in_graph(b))``, the same values, whose autograd gradient in the
    logits of PyTorch tensors of which one requires one (float32 or float64 computation,
    float64 offered) is :func:`sigmoid_cross_entropy_grad`'s per entry: :math:`w[(1-t)\sigma(x)
    - \pi t\sigma(-x)]` formed in float64 (double-double where it cancels,
    ``_sigmoid_grad.gradient``), times the upstream gradient in float64, rounded once;
    the targets', weights' and ``pos_weight``'s by their closed forms (the targets' slope
    :func:`target_slope` in float64, rounded once); second derivatives the formula's.
    Eagerly by ``crossent._torch_binary.BinaryFunction`` (the wrapper of
    ``crossent.torch.binary_cross_entropy_with_logits`` too), while Dynamo traces
    (``torch.compile``, ``torch.export``) by the custom op ``crossent::sigmoid_terms_v1``
    whose autograd is the same gradients (first derivatives only).

    Autograd of :func:`_bce` summed :math:`w(1-t)\sigma(x)` and :math:`-w\pi t\sigma(-x)`
    in the logits' dtype, which cancel where :math:`\sigma(x)` meets the smoothed target
    (issue 13, branch hostile3: float64 logit 3, target 1, ``label_smoothing=0.1``, 268
    ulps (of 2**-53)), and its targets' gradient :math:`\pi\operatorname{sp}(-x) -
    \operatorname{sp}(x)`, which cancels for small :math:`|x|` (float32 ``x =
    -5.353383e-4``: 454 ulps; float64 ``1e-10``: millions). Until branch wrap1 a compiled
    call took autograd's gradient of the formula (the wrapper was a class defined in a
    function, which Dynamo cannot trace). NumPy and JAX arrays, and tensors that require
    no gradient, get ``b.weighted(_bce_in_graph(b))``."""
    x = b.x
    differentiated = (x, b.raw_t, b.weight, b.pos_weight)
    if b.raw_t is None or not any(wants_gradient(a) for a in differentiated):
        return b.weighted(_bce_in_graph(b))
    import torch

    wide = accumulation_dtype(b.dtype, xp=b.xp, device=device(x))
    if b.dtype not in (torch.float32, torch.float64) or wide != torch.float64:
        return b.weighted(_bce_in_graph(b))
    from .. import _torch_binary

    parts = (x, b.raw_t, b.weight, b.pos_weight, b.label_smoothing)
    if torch.compiler.is_compiling():
        return _torch_binary.sigmoid_terms(*parts)
    return _torch_binary.BinaryFunction.apply(*parts, "none", _torch_binary.terms)


def weighted_terms(x: Array, t: Array, w: Any, pw: Any, eps: float, *, xp: ModuleType) -> Array:
    r""":math:`w[\pi t'\operatorname{sp}(-x) + (1-t')\operatorname{sp}(x)]` of raw
    targets ``t`` (:math:`t' = (1-\varepsilon)t + \varepsilon/2`), the weights None or
    broadcastable to ``x``, all of ``x``'s dtype, as :func:`_bce` forms them (no checks):
    the forward of ``crossent._torch_binary``'s wrapper."""
    b = _unchecked(x, t, eps, weight=w, pos_weight=pw, xp=xp)
    return b.weighted(_bce(b))


def _unchecked(
    x: Array,
    t: Array,
    eps: float,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    xp: ModuleType,
) -> _Binary:
    r"""The unreduced :class:`_Binary` of logits ``x``, raw targets ``t`` (smoothed to
    :math:`(1-\varepsilon)t + \varepsilon/2`) and weights of ``x``'s dtype, no checks:
    the one builder of :func:`weighted_terms` and :func:`focal_of` (issue 13, branch
    focal3: two copies of it)."""
    return _Binary(
        xp=xp,
        dtype=x.dtype,
        x=x,
        t=(1 - eps) * t + eps / 2 if eps else t,
        weight=weight,
        pos_weight=pos_weight,
        reduction="none",
        log_base=None,
        raw_t=t,
        label_smoothing=eps,
    )


def _bce_grad(b: _Binary) -> Array:
    xp = b.xp
    sigma = xp.exp(-b.softplus_neg)
    sigma_neg = xp.exp(-b.softplus_pos)
    return (1 - b.t) * sigma - b.positive * sigma_neg


def _plain_grad(b: _Binary) -> Array:
    r""":math:`\sigma(x) - t` per entry (no weights, reduction or base) as
    :func:`sigmoid_cross_entropy_grad` forms it (:func:`_exact_grad`), within an ulp where
    :math:`\sigma(x)` meets :math:`t`: the focal gradient's second term (issue 13: as
    :func:`_bce_grad` it cancelled there, 3339 float64 ulps off at :math:`\gamma = 0`)."""
    exact = _exact_grad(replace(b, weight=None, reduction="none", log_base=None))
    return _bce_grad(b) if exact is None else exact


def _exact_grad(b: _Binary) -> Array | None:
    r"""The gradient of a float32 call (float16 and bfloat16 logits compute in float32)
    within an ulp where :math:`\sigma(x)` meets :math:`t`, and of a float64 call within
    a few float64 ulps there (``_sigmoid_grad``'s notes): float64 arithmetic (beyond it
    where :math:`N` cancels), Numba's kernel for NumPy arrays, else float64 in the
    arrays' own namespace. None for other dtypes (long double), and float32 where
    float64 is not offered (Apple's MPS): those form :func:`_bce_grad` in their dtype."""
    xp, x, t = b.xp, b.x, b.raw_t
    if t is None:
        return None
    if type(x) is np.ndarray:
        if x.dtype != np.float32 and x.dtype != np.float64:
            return None
        wide: Any = np.float64
    else:
        if b.dtype != xp.float32 and b.dtype != xp.float64:
            return None
        wide = accumulation_dtype(b.dtype, xp=xp, device=device(x))
        if b.dtype == xp.float32 and wide == b.dtype:
            return None
    weight, pos_weight = b.weight, b.pos_weight
    if b.reduction == "mean":
        if weight is None:
            normalizer: Any = np.float64(size(x))
        else:
            w = xp.reshape(xp.broadcast_to(weight, tuple(x.shape)), (-1,))
            normalizer = reduce_sum(w, xp=xp, out_dtype=wide)
    else:
        normalizer = np.float64(1.0)  # (not used)
    scale = scale_for_reduction(normalizer, reduction=b.reduction, xp=xp, log_base=b.log_base)
    if isinstance(scale, np.generic):
        scale = float(scale)
    if type(x) is np.ndarray and _cpu_kernels.available():
        grad = _sigmoid_grad.kernel_gradient(x, t, weight, pos_weight, b.label_smoothing, scale)
        return grad if grad.ndim else grad[()]  # 0-d: a NumPy scalar, as a ufunc returns
    return _sigmoid_grad.gradient(
        x,
        t,
        weight=weight,
        pos_weight=pos_weight,
        eps=b.label_smoothing,
        scale=scale,
        xp=xp,
        wide=wide,
    )


def _within(x: Array, bound: float) -> bool:
    """Whether every entry of a NumPy ``x`` is in ``[-bound, bound]`` (clipping to it would
    change nothing; False for anything else, and for NaN)."""
    return (
        type(x) is np.ndarray
        and x.size > 0
        and bool(np.minimum.reduce(x, axis=None) >= -bound)
        and bool(np.maximum.reduce(x, axis=None) <= bound)
    )


def _log_one_minus_pt(b: _Binary) -> Array:
    r"""``log(1 - p_t)`` with :math:`1 - p_t = t\sigma(-x) + (1-t)\sigma(x)`, in log space."""
    xp = b.xp
    log_sig_neg = -b.softplus_pos  # log sigma(-x)
    log_sig = -b.softplus_neg  # log sigma(x)
    if type(b.t) is np.ndarray:
        is_one = b.t == 1
        if np.count_nonzero(is_one) + np.count_nonzero(b.t == 0) == b.t.size:
            # Hard targets (issue 13: per-call overhead): 1 - p_t is sigma(-x) where t = 1
            # and sigma(x) where t = 0, and the general formula below reduces to the log of
            # that term plus 0.0 (exactly: log 1 = log1p(0) = 0 and the other term is 0,
            # which turns -0.0 into +0.0).
            return np.where(is_one, log_sig_neg, log_sig) + 0.0
    minus_inf = full_like(b.x, -math.inf, xp=xp)
    above, below = b.t > 0, b.t < 1
    first = xp.where(above, xp.log(xp.where(above, b.t, b.ones())) + log_sig_neg, minus_inf)
    second = xp.where(below, xp.log1p(-where_zero(below, b.t, xp=xp)) + log_sig, minus_inf)
    high = xp.maximum(first, second)
    low = xp.minimum(first, second)
    finite = high > -math.inf
    finite_high = where_zero(finite, high, xp=xp)
    return xp.where(finite, finite_high + xp.log1p(_edge_ratio(b, low - finite_high)), high)


def _log_one_minus_pt_in_graph(b: _Binary) -> Array:
    r""":func:`_log_one_minus_pt`, the same value, whose autograd graph has the targets'
    slope :math:`D/(1-p_t)`, :math:`D = \sigma(-x) - \sigma(x) = -\tanh(x/2)`, where
    PyTorch records one for ``b.t`` (as :func:`_bce_in_graph`): :math:`\log(1-p_t)` of
    the detached :math:`t_s` plus :math:`\operatorname{log1p}((t - t_s)D/(1-p_t))`, exact
    to every order since :math:`1 - p_t` is linear in :math:`t` (its value adds 0).
    Autograd of the log-space sum subtracted :math:`\sigma(x)` from :math:`\sigma(-x)`
    (issue 13, branch focal4: the focal loss's targets' gradient at ``gamma=2``, float32
    logit ``1e-10``, ``-2.5e-11`` for ``-5.97e-11``; JAX tracers too since branch
    torchrev1). Other arrays: itself."""
    t = b.t
    held = _stopped_target(t)
    if held is None:
        return _log_one_minus_pt(b)
    xp = b.xp
    stopped = replace(b, t=held)
    # (the same softplus nodes: the logits' gradient sums the same terms, the same bits)
    stopped._softplus_pos, stopped._softplus_neg = b.softplus_pos, b.softplus_neg
    log_q = _log_one_minus_pt(stopped)
    ratio = -xp.tanh(b.x / 2) * xp.exp(-log_q)
    finite = xp.isfinite(ratio)
    step = (t - stopped.t) * xp.where(finite, ratio, zeros_like(ratio, xp=xp))
    return xp.where(finite, log_q + xp.log1p(step), _log_one_minus_pt(b))


def _saturated_held(b: _Binary, log_q: Array) -> Array:
    r"""``log_q`` (:math:`\log(1 - p_t)`) with no derivative in the logits where it is 0
    (:math:`1 - p_t` rounds to 1: :math:`e^{-|x|}` underflowed), where autodiff may
    record one for them (:func:`_stopped_target`); the same values, the targets' slope
    kept. There its slope in :math:`x`, :math:`(1-2t)\sigma(x)\sigma(-x)/(1-p_t)`,
    rounds to 0 (as in the gradient twin), but autograd met it as the upstream
    :math:`\gamma\,\ell_{\mathrm{BCE}}`, which overflowed first (issue 13, branch
    hostile1: float32 logit 1e38 of target 0 at ``gamma=5``, or an infinite wrong logit
    at any ``gamma > 0``, gave a NaN gradient for 0.75): NaN, not 0."""
    held = _stopped_target(b.x)
    if held is None:
        return log_q
    xp = b.xp
    if _stopped_target(b.t) is None:
        rest = zeros_like(log_q, xp=xp)  # (no targets' slope to keep: the value 0)
    else:
        rest = _log_one_minus_pt_in_graph(replace(b, x=held))
    return xp.where(log_q == 0, rest, log_q)


def _edge_ratio(b: _Binary, gap: Array) -> Array:
    r""":math:`e^{\text{gap}}`, the smaller term of :math:`1 - p_t` over the larger, with
    the derivative in :math:`t` of the term that a target 0 or 1 removes.

    At :math:`t = 1` the ratio :math:`(1-t)\sigma(x)/(t\sigma(-x))` is 0 and its
    derivative in :math:`t` is :math:`-e^x`, which ``exp`` of the masked ``-inf`` gap
    cannot carry (issue 13, hostile pass 10: autograd's gradient of the focal loss in
    hard targets missed that term); there the ratio is formed as :math:`(1-t)e^x`, at
    :math:`t = 0` as :math:`t e^{-x}`: the same value 0, the true first derivatives
    (:math:`e^{\pm x}` capped below the dtype's overflow: a finite slope).
    """
    xp, t, x = b.xp, b.t, b.x
    if type(t) is np.ndarray:
        return xp.exp(gap)  # (NumPy: no autograd, and the values are the same)
    # floor(log(max)) - 1 of the dtype, by comparison (Dynamo traces no finfo call)
    cap = 708.0 if x.dtype == xp.float64 else 87.0 if x.dtype == xp.float32 else 10.0
    caps = full_like(x, cap, xp=xp)  # (an array: a scalar in minimum breaks Dynamo)
    one = (1 - t) * xp.exp(xp.minimum(x, caps))
    zero = t * xp.exp(xp.minimum(-x, caps))
    return xp.where(t == 1, one, xp.where(t == 0, zero, xp.exp(gap)))


@dataclass
class _FocalBinary:
    """One validated focal call: the elementwise inputs, gamma and ``alpha_t``."""

    b: _Binary
    gamma: float
    alpha_t: Array | None  # alpha t + (1 - alpha)(1 - t); None without alpha
    alpha: float | None = None

    def weighted(self, value: Array, *, gradient: bool = False) -> Array:
        """``w alpha_t value``: the class balance and the weights applied."""
        value = value if self.alpha_t is None else self.alpha_t * value
        return self.b.weighted(value, gradient=gradient)


@extends(_binary, hide=("pos_weight",))
def _focal_binary(b: _Binary, /, *, gamma: float = 2.0, alpha: float | None = None) -> _FocalBinary:
    """Check one call of :func:`sigmoid_focal_loss` (or its gradient).

    Its keywords after ``alpha`` are those of :func:`_binary` but ``pos_weight``.
    """
    # By value (``_batch._by_value``, as the other options): under ``torch.compile(
    # dynamic=True)`` a float argument is symbolic, which ``math.isfinite`` cannot take
    # (issue 13, branch focal3: a full graph stopped at ``gamma``).
    gamma_value = check_scalar(_by_value(gamma), name="gamma", low=0.0)
    alpha_value = (
        None if alpha is None else check_scalar(_by_value(alpha), name="alpha", low=0.0, high=1.0)
    )
    # alpha_t = alpha t + (1 - alpha)(1 - t): alpha for positives, 1 - alpha for negatives
    alpha_t = None if alpha_value is None else alpha_value * b.t + (1 - alpha_value) * (1 - b.t)
    return _FocalBinary(b, gamma_value, alpha_t, alpha_value)


# ------------------------------------------------------------------------------- public


@weight_scaled
@prepared_by(_binary, shortcut=_small_sigmoid.cross_entropy)
def sigmoid_cross_entropy(b: _Binary) -> Any:
    r"""Binary cross-entropy from logits, elementwise (multi-label classification).

    .. math:: \ell = w\,[\,\pi\,t\,\log(1 + e^{-x}) + (1 - t)\log(1 + e^{x})\,]
              = -w\,[\,\pi\,t\log\sigma(x) + (1-t)\log(1-\sigma(x))\,]

    Parameters
    ----------
    logits : array, any shape
        Logits :math:`x`; ``+-inf`` allowed (probability 1 or 0), NaN is not.
    targets : array, the shape of ``logits``
        Target probabilities in [0, 1] (0/1 labels or soft targets).
    weight : array, broadcastable to ``logits``, optional
        Non-negative element or class weights :math:`w`; their scale cancels in the
        ``'mean'`` at any size, as in :func:`softmax_cross_entropy`.
    pos_weight : array, broadcastable to ``logits``, optional
        Weight :math:`\pi` of the positive term, e.g. negatives/positives per class.
    label_smoothing : float in [0, 1], optional
        Targets become :math:`(1-\varepsilon)t + \varepsilon/2`.
    reduction : {'mean', 'sum', 'none', 'parts'}, optional
        ``'mean'`` is :math:`\sum w\ell / \sum w` (see the module notes).
    base : float, optional
        None for nats, 2 for bits.
    validate : bool, optional
        Check for NaN logits, targets outside [0, 1] and negative weights.

    Returns
    -------
    array or LossParts
        float32 for low-precision logits.

    Raises
    ------
    InputError
        NaN logits, targets outside [0, 1], shapes that differ or do not broadcast,
        bad options.

    See Also
    --------
    sigmoid_cross_entropy_grad, sigmoid_focal_loss
    crossent.binary_cross_entropy : the same on probabilities.
    torch.nn.functional.binary_cross_entropy_with_logits : same terms; its mean
        divides by the count of entries even with weights.

    Examples
    --------
    >>> import math, crossent
    >>> print(round(float(crossent.sigmoid_cross_entropy([0.0], [1.0])), 6))  # log 2
    0.693147
    >>> crossent.sigmoid_cross_entropy([1e4, -1e4], [1.0, 0.0])  # exact, no overflow
    np.float64(0.0)
    >>> bool(crossent.sigmoid_cross_entropy([math.inf], [0.0]) == math.inf)
    True
    """
    return b.reduce(_terms_in_graph(b))


@weight_scaled
@prepared_by(_binary, twin=sigmoid_cross_entropy, shortcut=_small_sigmoid.cross_entropy_grad)
def sigmoid_cross_entropy_grad(b: _Binary) -> Array:
    r"""Gradient of :func:`sigmoid_cross_entropy` with respect to ``logits``.

    .. math:: \frac{\partial\ell}{\partial x} = w\,[(1-t)\,\sigma(x) - \pi\,t\,\sigma(-x)]

    which is :math:`w(\sigma(x) - t)` without ``pos_weight``; scaled for the
    reduction and base.

    Returns
    -------
    array, the shape of ``logits``
        Elementwise, scaled for the reduction and base. Raises what
        :func:`sigmoid_cross_entropy` raises.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.sigmoid_cross_entropy_grad([0.0, 2.0], [1.0, 1.0], reduction="sum"))
    [-0.5        -0.11920292]
    """
    exact = _exact_grad(b)
    if exact is not None:
        return exact
    return b.scale(b.weighted(_bce_grad(b), gradient=True))


@weight_scaled
@prepared_by(_focal_binary, shortcut=_small_sigmoid.focal_loss)
def sigmoid_focal_loss(focal: _FocalBinary) -> Any:
    r"""Sigmoid focal loss (Lin et al. 2017), elementwise.

    .. math:: \mathrm{FL} = w\,\alpha_t\,(1 - p_t)^\gamma\,\ell_{\mathrm{BCE}}(x, t),
              \qquad 1 - p_t = t\,\sigma(-x) + (1-t)\,\sigma(x),
              \quad \alpha_t = \alpha t + (1-\alpha)(1-t)

    Parameters
    ----------
    logits, targets : arrays of one shape
        As in :func:`sigmoid_cross_entropy`.
    gamma : float >= 0, optional
        Focusing parameter; 0 gives the (alpha-weighted) cross-entropy.
    alpha : float in [0, 1], optional
        Class balance; None (default) for none (torchvision's ``alpha=-1``).
    weight, label_smoothing, reduction, base, validate
        As in :func:`sigmoid_cross_entropy`.

    Returns
    -------
    array or LossParts
        The focal loss reduced like :func:`sigmoid_cross_entropy`: ``'mean'`` of no
        element (an empty batch), or of elements whose weights are all 0, is 0 with a
        zero gradient, where ``torchvision.ops.sigmoid_focal_loss``'s ``loss.mean()``
        of an empty batch is NaN (as :func:`crossent.torch.sigmoid_focal_loss`).

    Raises
    ------
    InputError
        As in :func:`sigmoid_cross_entropy`, and ``gamma < 0`` or ``alpha`` outside [0, 1].

    See Also
    --------
    sigmoid_focal_loss_grad, softmax_focal_loss
    torchvision.ops.sigmoid_focal_loss : the same value; its gradient is NaN for
        saturated logits when ``gamma < 1``.

    Notes
    -----
    :math:`(1 - p_t)^\gamma` is evaluated as :math:`\exp(\gamma \log(1 - p_t))` with
    the logarithm in log space, so saturated logits give finite values and gradients
    for any :math:`\gamma \ge 0` (optax#1267 reports NaN for :math:`\gamma < 1`);
    :math:`\gamma = 0` takes the factor as 1 (:math:`0^0 = 1`), and a term with
    :math:`\alpha_t = 0` is 0 even where the cross-entropy is infinite.

    %(focal_references)s

    Examples
    --------
    >>> import crossent
    >>> a = crossent.sigmoid_focal_loss([0.3, -2.0], [1.0, 0.0], gamma=0.0)
    >>> b = crossent.sigmoid_cross_entropy([0.3, -2.0], [1.0, 0.0])
    >>> bool(abs(a - b) < 1e-16)  # gamma = 0 is the cross-entropy
    True
    """
    b = focal.b
    term = _focal_in_graph(focal)
    if term is None:
        term = focal_terms(focal)
    return b.reduce(b.weighted(term))


def focal_terms(focal: _FocalBinary) -> Array:
    r""":math:`\alpha_t(1-p_t)^\gamma\ell_{\mathrm{BCE}}` per entry (no weights, no
    reduction): :func:`sigmoid_focal_loss`'s terms, whose autograd graph has the exact
    targets' slopes (:func:`_bce_in_graph`, :func:`_log_one_minus_pt_in_graph`); the
    forward (and, under ``create_graph``, the graph of second derivatives) of
    ``crossent._torch_binary.FocalTerms``."""
    b = focal.b
    # gamma = 0 is the cross-entropy: its terms with the exact autograd gradients
    # (_terms_in_graph; the weights applied by the caller, as for gamma > 0)
    term = _terms_in_graph(replace(b, weight=None)) if focal.gamma == 0.0 else _bce_in_graph(b)
    if focal.gamma != 0.0:
        # (1 - p_t)^0 = 1 even where 1 - p_t = 0 (a saturated right logit): there the
        # log is -inf and exp(0 * -inf) would be NaN, so gamma = 0 skips the factor.
        log_one_minus_pt = _saturated_held(b, _log_one_minus_pt_in_graph(b))
        # gamma log(1 - p_t) below -1.8e308: a factor 0, without NumPy's overflow warning
        with numpy_errstate(log_one_minus_pt, b.xp, over="ignore"):
            exponent = focal.gamma * log_one_minus_pt
        term = term * b.xp.exp(exponent)
    if focal.alpha_t is not None:
        # alpha_t = 0 (alpha = 1 for a negative, 0 for a positive) removes the term, an
        # infinite one too (a saturated wrong logit): 0, not 0 * inf = NaN.
        term = weighted_term(focal.alpha_t, term, xp=b.xp)
    return term


def _focal_in_graph(focal: _FocalBinary) -> Array | None:
    r""":func:`focal_terms` of PyTorch logits that require a gradient at
    :math:`\gamma > 0` (float32 or float64 computation, float64 offered; eager), through
    ``crossent._torch_binary.BinaryFunction`` with ``FocalTerms``: the same values, the
    logits' gradient :func:`sigmoid_focal_loss_grad`'s per entry (float64, refined by
    ``_focal_root`` where its two terms cancel, CPU tensors) times the upstream gradient
    in float64, rounded once; the targets' gradient autograd's of :func:`focal_terms`,
    second derivatives those of :func:`focal_terms`. While Dynamo traces
    (``torch.compile``, ``torch.export``) the custom op ``crossent::sigmoid_focal_terms_v1``
    with the same values and first derivatives, bit for bit (issue 13, branch focal3: the
    compiled graph took autograd's gradient of the formula). None for anything else (the
    caller forms :func:`focal_terms`: NumPy and JAX arrays, :math:`\gamma = 0`, whose
    :func:`_terms_in_graph` is exact).

    Autograd of :func:`focal_terms` summed the gradient's two terms
    :math:`\gamma(1-2t)\frac{\sigma(x)\sigma(-x)}{1-p_t}\ell` and
    :math:`\sigma(x) - t` (times :math:`(1-p_t)^\gamma`) in the logits' dtype, which
    cancel near the gradient's root (issue 13, branch focal2: float32 up to 2.7e7 ulps
    with the wrong sign, float64 relative error 77 at a root)."""
    b = focal.b
    x = b.x
    if focal.gamma == 0.0 or b.raw_t is None or not wants_gradient(x):
        return None
    import torch

    wide = accumulation_dtype(b.dtype, xp=b.xp, device=device(x))
    if b.dtype not in (torch.float32, torch.float64) or wide != torch.float64:
        return None
    from .. import _torch_binary

    t = b.raw_t
    if torch.compiler.is_compiling():
        return _torch_binary.sigmoid_focal_terms(x, t, b.label_smoothing, focal.gamma, focal.alpha)
    loss = _torch_binary.FocalTerms(focal.gamma, focal.alpha)
    if wants_gradient(t) and (functorch_wrapped(x) or functorch_wrapped(t)):
        return None  # (the targets' gradient needs autograd of the formula in backward)
    parts = (x, t, None, None, b.label_smoothing, "none", loss)
    return _torch_binary.BinaryFunction.apply(*parts)


def focal_of(
    x: Array, t: Array, eps: float, gamma: float, alpha: float | None, *, xp: ModuleType
) -> _FocalBinary:
    """The unweighted, unreduced focal call of logits ``x`` and raw targets ``t`` (no
    checks): ``crossent._torch_binary.FocalTerms``'s."""
    b = _unchecked(x, t, eps, xp=xp)
    ts = b.t
    alpha_t = None if alpha is None else alpha * ts + (1 - alpha) * (1 - ts)
    return _FocalBinary(b, gamma, alpha_t, alpha)


@weight_scaled
@prepared_by(_focal_binary, twin=sigmoid_focal_loss, shortcut=_small_sigmoid.focal_loss_grad)
def sigmoid_focal_loss_grad(focal: _FocalBinary) -> Array:
    r"""Gradient of :func:`sigmoid_focal_loss` with respect to ``logits``.

    With :math:`m = (1-p_t)^\gamma` and :math:`\partial(1 - p_t)/\partial x =
    (1-2t)\,\sigma(x)\sigma(-x)`:

    .. math:: \frac{\partial\,\mathrm{FL}}{\partial x} = w\,\alpha_t\,m\,\Big[
              \gamma\,(1-2t)\,\frac{\sigma(x)\sigma(-x)}{1-p_t}\,\ell_{\mathrm{BCE}}
              + (\sigma(x) - t)\Big]

    The ratio :math:`\sigma(x)\sigma(-x)/(1-p_t)` is formed in log space, so the
    gradient is finite for saturated logits and any :math:`\gamma \ge 0`;
    :math:`\sigma(x) - t` as :func:`sigmoid_cross_entropy_grad` forms it (within an ulp
    where :math:`\sigma(x)` meets :math:`t`): at :math:`\gamma = 0` the two gradients
    agree.

    Returns
    -------
    array, the shape of ``logits``
        Finite for saturated logits and any gamma >= 0; errors: see
        :func:`sigmoid_focal_loss`.

    Examples
    --------
    >>> import crossent
    >>> g = crossent.sigmoid_focal_loss_grad([40.0, -40.0], [1.0, 0.0], gamma=0.5)
    >>> bool((abs(g) < 1e-8).all())  # saturated and right: tiny, and not NaN
    True
    """
    wide = _widened(focal)
    if wide is None:
        return _focal_gradient(focal)
    return astype(_focal_gradient(wide), focal.b.dtype, xp=focal.b.xp)


def _widened(focal: _FocalBinary) -> _FocalBinary | None:
    r"""A float32 call (float16 and bfloat16 logits compute in float32) in float64, where
    its namespace offers float64 (None otherwise, and for other dtypes).

    The gradient's two terms :math:`\gamma(1-2t)\frac{\sigma(x)\sigma(-x)}{1-p_t}\ell` and
    :math:`\sigma(x) - t` have opposite signs where :math:`t` lies between
    :math:`\sigma(x)` and the focal optimum, and cancel near its zero: in float32 each
    term's half-ulp became up to 47 float32 ulps of the sum (issue 13, hostile20:
    ``x = 6.26042, t = 0.9782481, gamma = 2`` gave ``-8.2202735e-07`` for
    ``-8.2203001e-07``). In float64 and rounded once it is the float64 call's value
    rounded, as the softmax focal loss does (the targets smoothed and
    :math:`\alpha_t` formed again in float64)."""
    b = focal.b
    xp = b.xp
    if b.dtype != xp.float32:
        return None
    wide: Any = np.float64
    if type(b.x) is not np.ndarray:
        wide = accumulation_dtype(b.dtype, xp=xp, device=device(b.x))
        if wide == b.dtype:
            return None

    def up(a: Array | None) -> Array | None:
        return None if a is None else astype(a, wide, xp=xp)

    raw_t = up(b.raw_t)
    eps = b.label_smoothing
    t: Array = astype(b.t, wide, xp=xp)
    if raw_t is not None and eps:
        t = (1 - eps) * raw_t + eps / 2
    widened = replace(
        b,
        dtype=wide,
        x=astype(b.x, wide, xp=xp),
        t=t,
        weight=up(b.weight),
        pos_weight=up(b.pos_weight),
        raw_t=raw_t,
    )
    alpha = focal.alpha
    alpha_t = None if alpha is None else alpha * t + (1 - alpha) * (1 - t)
    return replace(focal, b=widened, alpha_t=alpha_t)


def _focal_gradient(focal: _FocalBinary, *, formula: bool = False) -> Array:
    r"""The body of :func:`sigmoid_focal_loss_grad`, in the call's dtype; ``formula``:
    :math:`\sigma(x) - t` by :func:`_bce_grad`, not refined (plain array operations: the
    graph of second derivatives of ``crossent._torch_binary.FocalTerms``)."""
    b, gamma_value = focal.b, focal.gamma
    xp, bce = b.xp, _bce(b)
    # At x = +-inf the log-ratio below is -inf - (-inf); a huge finite x has the right limit.
    huge = float(xp.finfo(b.dtype).max) / 4
    if not _within(b.x, huge):
        b = replace(b, x=xp.clip(b.x, -huge, huge))
    log_q = _log_one_minus_pt(b)
    modulation = xp.exp(gamma_value * log_q)
    log_ratio = -b.softplus_pos - b.softplus_neg - log_q
    focus = weighted_term(gamma_value * (1 - 2 * b.t) * xp.exp(log_ratio), bce, xp=xp)
    plain = _bce_grad(b) if formula else _plain_grad(b)
    total = focus + plain
    grad = modulation * total
    if formula:
        return focal.weighted(grad, gradient=True)
    if type(b.x) is np.ndarray and b.x.dtype == np.float64 and gamma_value != 0.0:
        # Where the two terms cancel (near the focal optimum), more precision (issue 13).
        grad = _focal_root.refine(grad, total, plain, b.x, b.t, gamma_value)
    return b.scale(focal.weighted(grad, gradient=True))
