r"""The one autograd wrapper of the binary (sigmoid) cross-entropy's exact gradient.

Both :func:`crossent.sigmoid_cross_entropy` (and ``sigmoid_focal_loss(gamma=0)``) on
PyTorch tensors that require a gradient and ``crossent.torch``'s drop-in
``binary_cross_entropy_with_logits`` take their gradients here (issue 13, branch wrap1:
until then two autograd wrappers of one gradient, ``losses._sigmoid._terms_function``
and ``crossent.torch._binary.BinaryFunction``). This module imports torch; the losses
package imports it lazily, on tensors only (``import crossent`` imports no torch), and
``crossent.torch._binary`` imports it.

* :class:`BinaryFunction` (eager): its forward is the caller's loss (``loss``: the
  losses package's unreduced weighted terms, or the drop-in's loss with PyTorch's
  reductions); its backward takes the logits' gradient from
  ``crossent.losses._sigmoid_grad`` (float64, double-double where :math:`\sigma(x)`
  meets the target, times the upstream gradient and the reduction's scale in float64,
  rounded once to the logits' dtype: :func:`logit_gradient`), and the targets' and
  weights' gradients by their closed forms in plain torch operations
  (:func:`input_gradients`). Under ``create_graph`` (and ``torch.func.grad``, whose
  backward builds a graph) the logits' gradient carries the float formula's graph at
  zero value, so second derivatives are those of the formula; ``jvp`` (``jacfwd``)
  uses the same exact gradient. ``generate_vmap_rule``: ``vmap`` runs the three on
  batched tensors (the double-double then forms every entry, since which entries
  cancel cannot be read there).
* :class:`FocalTerms` (eager): as ``loss``, the sigmoid focal loss's terms at
  :math:`\gamma > 0` with their own gradients (the focal twin's in the logits, autograd
  of the formula in the targets; issue 13, branch focal2), for
  ``crossent.sigmoid_focal_loss``; while Dynamo traces, the op
  ``crossent::sigmoid_focal_terms_v1`` whose autograd is ``crossent::sigmoid_focal_v1_backward``,
  the same gradients (:func:`sigmoid_focal_terms`; branch focal3: first derivatives,
  eager's bits).
* The custom ops ``crossent::sigmoid_ce_v1_backward`` and
  ``crossent::sigmoid_ce_v1_input_grads`` (the same two gradients, for Dynamo:
  ``torch.compile``, ``torch.export``) and ``crossent::sigmoid_terms_v1``, the losses
  package's terms as one op whose autograd is those two (:func:`sigmoid_terms`): under
  ``torch.compile`` the losses package's gradient is the eager one, bit for bit (until
  branch wrap1 the compiled graph took autograd's gradient of the formula, a few ulps
  off, since Dynamo cannot trace the wrapper's backward), first derivatives only.

This module is not annotated with ``from __future__ import annotations``: the custom
op machinery reads the annotations to infer each schema.
"""

from typing import Any

import array_api_compat.torch as torch_xp
import numpy as np
import torch

from ._xp import float64_twin, functorch_wrapped, namespace
from .losses import _cpu_kernels, _sigmoid, _sigmoid_grad

__all__ = [
    "BinaryFunction",
    "FocalTerms",
    "input_gradients",
    "logit_gradient",
    "op_gradients",
    "sigmoid_ce_backward",
    "sigmoid_ce_backward_fake",
    "sigmoid_ce_input_grads",
    "sigmoid_ce_input_grads_fake",
    "sigmoid_focal_backward",
    "sigmoid_focal_terms",
    "sigmoid_terms",
    "takes",
    "terms",
]

Tensor = torch.Tensor


def takes(x: Any, t: Any) -> bool:
    """Whether :class:`BinaryFunction` computes this call: logits and targets of at most
    32 bits (so computed in float32) on a device that offers float64, or both float64."""
    return float64_twin(x, t) is not None or _both_float64(x, t)


def _both_float64(x: Any, t: Any) -> bool:
    """Whether ``x`` and ``t`` are float64 tensors (computed in float64)."""
    return (
        isinstance(x, torch.Tensor)
        and isinstance(t, torch.Tensor)
        and x.dtype == t.dtype == torch.float64
    )


def terms(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str = "none"
) -> torch.Tensor:
    r"""The losses package's weighted terms :math:`w[\pi t'\operatorname{sp}(-x) +
    (1-t')\operatorname{sp}(x)]` of raw targets ``t`` (:math:`t' = (1-\varepsilon)t +
    \varepsilon/2`), no checks: ``crossent.sigmoid_cross_entropy``'s forward in
    :class:`BinaryFunction` and :func:`sigmoid_terms` (``reduction``: ``'none'``, for
    the signature of :class:`BinaryFunction`'s ``loss``)."""
    return _sigmoid.weighted_terms(x, t, w, pw, eps, xp=torch_xp)


def _plain(grad: torch.Tensor) -> torch.Tensor:
    """``grad.detach()`` (a forward-mode tangent dropped), or ``grad`` where the legacy
    batching of ``torch.autograd.functional.jacobian(..., vectorize=True)`` has no rule
    for ``detach`` ("Batching rule not implemented for aten::detach"): under
    ``no_grad`` no graph is recorded either way, and that batching carries no tangent."""
    try:
        return grad.detach()
    except RuntimeError:
        return grad


def _computed(a: Any, dtype: torch.dtype) -> Any:
    """A weight in the compute dtype, as the loss takes it (None stays None)."""
    return a if a is None or a.dtype == dtype else a.to(dtype)


def logit_gradient(
    x: torch.Tensor,
    t: torch.Tensor,
    w: Any,
    pw: Any,
    eps: float,
    reduction: str,
    upstream: torch.Tensor,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """The exact gradient in ``x`` times ``upstream`` (``_sigmoid_grad.gradient``; for
    float32 CPU tensors of a reduced loss, whose values can be read, Numba's kernel)."""
    fast = _kernel_gradient(x, t, w, pw, eps, reduction, upstream, out_dtype)
    if fast is not None:
        return fast
    found = float64_twin(x, t)
    if found is None:  # (float64 tensors: BinaryFunction is used only where one holds)
        found = namespace(x, t, names=("input", "target"))[0], torch.float64
    xp, wide = found
    compute = torch.promote_types(torch.promote_types(x.dtype, t.dtype), torch.float32)
    return _sigmoid_grad.gradient(
        x,
        t,
        weight=_computed(w, compute),
        pos_weight=_computed(pw, compute),
        eps=eps,
        scale=1.0 / max(x.numel(), 1) if reduction == "mean" else 1.0,
        xp=xp,
        wide=wide,
        upstream=upstream,
        out_dtype=out_dtype,
    )


def _kernel_gradient(
    x: torch.Tensor,
    t: torch.Tensor,
    w: Any,
    pw: Any,
    eps: float,
    reduction: str,
    upstream: torch.Tensor,
    out_dtype: torch.dtype,
) -> torch.Tensor | None:
    """``_sigmoid_grad.kernel_gradient`` of float32 (or float64) CPU tensors of a
    ``'mean'`` or ``'sum'`` loss (the upstream gradient a number, in the float64 scale); None for
    anything else, and for tensors without readable values (``torch.func``'s)."""
    if reduction == "none" or upstream.ndim != 0 or not _cpu_kernels.available():
        return None
    tensors = [a for a in (x, t, w, pw) if a is not None]
    if out_dtype not in (torch.float32, torch.float64):
        return None
    if any(a.device.type != "cpu" or a.dtype != out_dtype for a in tensors):
        return None
    try:
        x_np, t_np = x.detach().numpy(), t.detach().numpy()
        w_np = None if w is None else w.detach().numpy()
        pw_np = None if pw is None else pw.detach().numpy()
        scale = float(upstream)
    except (RuntimeError, TypeError, ValueError):  # (functorch's tensors have no data)
        return None
    if reduction == "mean":
        scale = scale / max(x.numel(), 1)
    grad = _sigmoid_grad.kernel_gradient(x_np, t_np, w_np, pw_np, eps, scale)
    return torch.from_numpy(grad)


def _formula(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str
) -> torch.Tensor:
    """The gradient in ``x`` by the float32 formula :math:`w[(1-t)\\sigma(x) -
    \\pi t\\sigma(-x)]` (scaled; the graph of second derivatives)."""
    ts = (1 - eps) * t + eps / 2 if eps else t
    positive = ts if pw is None else pw * ts
    g = (1 - ts) * torch.sigmoid(x) - positive * torch.sigmoid(-x)
    g = g if w is None else w * g
    return g / max(x.numel(), 1) if reduction == "mean" else g


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\log(1 + e^x)` as the generic loss forms it (``losses._sigmoid.softplus``)."""
    return torch.maximum(x, torch.zeros_like(x)) + torch.log1p(torch.exp(-torch.abs(x)))


def _wide_scale(
    upstream: torch.Tensor, dtype: torch.dtype, reduction: str, x: torch.Tensor
) -> torch.Tensor:
    """The upstream gradient in ``dtype``, over the count for ``'mean'``."""
    scale = upstream.to(dtype)
    return scale / max(x.numel(), 1) if reduction == "mean" else scale


def _absent_zero(coefficient: Any, value: torch.Tensor) -> torch.Tensor:
    """``coefficient * value`` with ``0 * inf = 0`` (``value`` where no coefficient)."""
    if coefficient is None:
        return value
    return coefficient * torch.where(coefficient != 0, value, torch.zeros_like(value))


def _target_slope(x: torch.Tensor, pi: Any) -> torch.Tensor:
    """``losses._sigmoid.target_slope`` of a tensor (its home)."""
    return _sigmoid.target_slope(x, pi, xp=namespace(x, names=("input",))[0])


def input_gradients(
    x: torch.Tensor,
    t: torch.Tensor,
    w: Any,
    pw: Any,
    eps: float,
    reduction: str,
    upstream: torch.Tensor,
    needs: Any,
    create_graph: bool,
) -> tuple[Any, Any, Any]:
    r"""The gradients in ``t``, ``w`` and ``pw`` (None where ``needs`` says no) times
    ``upstream``, by their closed forms in plain torch operations. With
    :math:`t' = (1-\varepsilon)t + \varepsilon/2`, :math:`s_\pm = \operatorname{sp}(\pm x)`
    and the loss :math:`\ell = w[\pi t' s_- + (1-t') s_+]`:

    .. math:: \frac{\partial\ell}{\partial t} = (1-\varepsilon)\,w\,(\pi s_- - s_+),
              \qquad \frac{\partial\ell}{\partial w} = \pi t' s_- + (1-t') s_+,
              \qquad \frac{\partial\ell}{\partial \pi} = w\,t' s_-

    each product 0 where a factor that multiplies the loss term is 0 (a term of weight
    0 is absent: :math:`0\cdot\infty = 0`), times the upstream gradient and
    :math:`1/n` for ``'mean'``, summed over the axes the weights were broadcast along,
    in the inputs' dtypes (the targets' in float64 where the device has it, rounded
    once, their slope by :func:`_target_slope`). These are the true partial
    derivatives also at the targets 0 and 1 and at a weight 0 (autograd of the
    generic loss's masked products gave 0 for the masked term there).
    ``create_graph``: recorded (the eager backward's ``create_graph``: second
    derivatives, in ``x`` too); else no graph, as
    ``crossent::sigmoid_ce_v1_input_grads`` calls it under ``torch.compile``."""
    compute = torch.promote_types(torch.promote_types(x.dtype, t.dtype), torch.float32)
    with torch.set_grad_enabled(create_graph):
        xc, tc = x.to(compute), t.to(compute)
        wc, pwc = _computed(w, compute), _computed(pw, compute)
        s_pos, s_neg = _softplus(xc), _softplus(-xc)
        ts = (1 - eps) * tc + eps / 2 if eps else tc
        scale = upstream.to(compute)
        if reduction == "mean":
            scale = scale / max(x.numel(), 1)
        gt = gw = gpw = None
        if needs[0]:  # in float64 where the device has it, rounded once
            wide = torch.float64 if float64_twin(x, t) is not None else compute
            g = _target_slope(xc.to(wide), _computed(pw, wide))
            g = _absent_zero(_computed(w, wide), g)
            g = (1 - eps) * g if eps else g
            gt = (g * _wide_scale(upstream, wide, reduction, x)).sum_to_size(t.shape)
            gt = gt.to(t.dtype)
        if needs[1] and w is not None:
            positive = ts if pwc is None else pwc * ts
            rest = (1 - eps) * (1 - tc) + eps / 2 if eps else 1 - ts  # (_Binary.complement)
            term = _absent_zero(positive, s_neg) + _absent_zero(rest, s_pos)
            gw = (term * scale).sum_to_size(w.shape).to(w.dtype)
        if needs[2] and pw is not None:
            g = _absent_zero(wc, _absent_zero(ts, s_neg))
            gpw = (g * scale).sum_to_size(pw.shape).to(pw.dtype)
    return gt, gw, gpw


class BinaryFunction(torch.autograd.Function):
    """The loss ``loss(x, t, w, pw, eps, reduction)`` of logits ``x``, targets ``t``,
    ``weight`` and ``pos_weight`` (or None), ``label_smoothing`` and ``reduction``
    (``'none'``, ``'sum'`` or PyTorch's ``'mean'``, the count dividing the sum), with
    the exact gradients of the module notes: ``apply(x, t, w, pw, eps, reduction,
    loss)``. ``loss`` computes the value (it is not differentiated): :func:`terms`
    for the losses package, ``crossent.torch._binary``'s loss for the drop-in."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor,
        t: torch.Tensor,
        w: Any,
        pw: Any,
        eps: float,
        reduction: str,
        loss: Any,
    ) -> torch.Tensor:
        out: torch.Tensor = loss(x, t, w, pw, eps, reduction)
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, t, w, pw, eps, reduction, _ = inputs
        ctx.save_for_backward(x, t, w, pw)
        ctx.save_for_forward(x, t, w, pw)
        ctx.eps, ctx.reduction, ctx.out_dtype = eps, reduction, output.dtype
        ctx.loss = inputs[6]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, t, w, pw = ctx.saved_tensors
        eps, reduction = ctx.eps, ctx.reduction
        needs = ctx.needs_input_grad
        if isinstance(ctx.loss, FocalTerms):  # (its own gradients; no weights)
            gx, gt = ctx.loss.gradients(x, t, eps, grad, needs[:2], torch.is_grad_enabled())
            return gx, gt, None, None, None, None, None
        gx = gt = gw = gpw = None
        if needs[0]:
            with torch.no_grad():  # (and no tangent: detached for forward mode too)
                w_plain = None if w is None else w.detach()
                pw_plain = None if pw is None else pw.detach()
                upstream = _plain(grad)
                gx = logit_gradient(
                    x.detach(), t.detach(), w_plain, pw_plain, eps, reduction, upstream, x.dtype
                )
            if torch.is_grad_enabled():  # create_graph: the formula's graph, at value 0
                f = (grad * _formula(x, t, w, pw, eps, reduction)).to(x.dtype)
                gx = gx + (f - f.detach())
        if needs[1] or needs[2] or needs[3]:
            gt, gw, gpw = input_gradients(
                x, t, w, pw, eps, reduction, grad, needs[1:4], torch.is_grad_enabled()
            )
        return gx, gt, gw, gpw, None, None, None

    @staticmethod
    def jvp(ctx: Any, x_t: Any, t_t: Any, w_t: Any, pw_t: Any, *_: Any) -> torch.Tensor:
        x, t, w, pw = ctx.saved_tensors
        eps, reduction = ctx.eps, ctx.reduction
        if isinstance(ctx.loss, FocalTerms):
            return ctx.loss.tangent(x, t, eps, x_t, t_t, ctx.out_dtype)
        tangent = None
        if x_t is not None:
            one = torch.ones((), dtype=ctx.out_dtype, device=x.device)
            g = logit_gradient(x, t, w, pw, eps, reduction, one, ctx.out_dtype)
            tangent = g * x_t
        if t_t is not None or w_t is not None or pw_t is not None:
            sp_pos, sp_neg = torch.nn.functional.softplus(x), torch.nn.functional.softplus(-x)
            ts = (1 - eps) * t + eps / 2 if eps else t
            pi = 1 if pw is None else pw
            weight = 1 if w is None else w
            parts = []
            if t_t is not None:
                parts.append(weight * (1 - eps) * _target_slope(x, pw) * t_t)
            if w_t is not None:
                rest = (1 - eps) * (1 - t) + eps / 2 if eps else 1 - ts
                parts.append(w_t * (pi * ts * sp_neg + rest * sp_pos))
            if pw_t is not None:
                parts.append(weight * ts * sp_neg * pw_t)
            rest = sum(parts[1:], parts[0])
            if reduction == "mean":
                rest = rest / max(x.numel(), 1)
            tangent = rest if tangent is None else tangent + rest
        assert tangent is not None
        if reduction != "none":
            tangent = tangent.sum()
        return tangent.to(ctx.out_dtype)


class FocalTerms:
    r"""The sigmoid focal loss's terms :math:`\alpha_t(1-p_t)^\gamma\ell_{\mathrm{BCE}}`
    (no weights, ``reduction='none'``) as :class:`BinaryFunction`'s ``loss``, with
    their own gradients (issue 13, branch focal2): the logits' gradient is
    ``crossent.sigmoid_focal_loss_grad``'s per entry, in float64 (NumPy's for CPU
    tensors with readable values, refined by ``losses._focal_root`` where its two terms
    cancel; else in the tensors' namespace in float64), times the upstream gradient in
    float64, rounded once to the logits' dtype (:meth:`logit_gradient`); the targets'
    gradient is autograd's of the formula ``losses._sigmoid.focal_terms`` (whose graph
    has the exact targets' slopes); under ``create_graph`` the logits' gradient carries
    the formula's graph at zero value (second derivatives the formula's), as
    :class:`BinaryFunction` does for the cross-entropy. The caller applies the weights
    and the reduction (autograd of products and sums)."""

    def __init__(self, gamma: float, alpha: float | None) -> None:
        self.gamma, self.alpha = gamma, alpha

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str
    ) -> torch.Tensor:
        """The terms of logits ``x`` and raw targets ``t`` (``w``, ``pw``: None)."""
        focal = _sigmoid.focal_of(x, t, eps, self.gamma, self.alpha, xp=torch_xp)
        out: torch.Tensor = _sigmoid.focal_terms(focal)
        return out

    def logit_gradient(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        eps: float,
        upstream: torch.Tensor,
        out_dtype: torch.dtype,
    ) -> torch.Tensor:
        """The exact gradient in ``x`` per entry times ``upstream`` (float64, rounded
        once to ``out_dtype``)."""
        from . import losses

        options = {
            "gamma": self.gamma,
            "alpha": self.alpha,
            "label_smoothing": eps,
            "reduction": "sum",
            "validate": False,
        }
        grad: Any = None
        readable = not (functorch_wrapped(x) or functorch_wrapped(t))
        if readable and x.device.type == "cpu" and t.device.type == "cpu":
            x_np = x.detach().to(torch.float64).numpy()
            t_np = t.detach().to(torch.float64).numpy()
            g = losses.sigmoid_focal_loss_grad(x_np, t_np, **options)
            grad = torch.from_numpy(np.asarray(g, dtype=np.float64).reshape(x_np.shape))
        if grad is None:
            grad = losses.sigmoid_focal_loss_grad(
                x.to(torch.float64), t.to(torch.float64), **options
            )
        return (grad * upstream.to(torch.float64)).to(out_dtype)

    def gradients(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        eps: float,
        grad: torch.Tensor,
        needs: Any,
        create_graph: bool,
    ) -> tuple[Any, Any]:
        """The gradients in ``x`` and ``t`` times ``grad`` (None where ``needs`` says no);
        ``create_graph``: with the formula's graphs (second derivatives)."""
        gx = gt = None
        if needs[0]:
            with torch.no_grad():
                gx = self.logit_gradient(x.detach(), t.detach(), eps, _plain(grad), x.dtype)
            if create_graph:  # the formula's graph, at value 0
                focal = _sigmoid.focal_of(x, t, eps, self.gamma, self.alpha, xp=torch_xp)
                f = (grad * _sigmoid._focal_gradient(focal, formula=True)).to(x.dtype)
                gx = gx + (f - f.detach())
        if needs[1] and create_graph:  # autograd of the formula, with its graph
            with torch.enable_grad():
                out = self(x, t, None, None, eps, "none")
                (gt,) = torch.autograd.grad(out, t, grad, create_graph=True, allow_unused=True)
            if gt is None:
                gt = torch.zeros_like(t)
        elif needs[1]:
            gt = self.target_gradient(x, t, eps, _plain(grad))
        return gx, gt

    def target_gradient(
        self, x: torch.Tensor, t: torch.Tensor, eps: float, upstream: torch.Tensor
    ) -> torch.Tensor:
        """The gradient in ``t`` times ``upstream``, no graph: the vector-Jacobian product
        of the formula in ``t`` (its exact targets' slopes) by ``torch.func.vjp``, which
        also runs inside a custom op's kernel (``crossent::sigmoid_focal_v1_backward``),
        where ``torch.autograd.grad`` records nothing: eager's and the compiled graph's
        bits are one function's."""
        xs = x.detach()
        pair: Any = torch.func.vjp(lambda ts: self(xs, ts, None, None, eps, "none"), t.detach())
        gt: torch.Tensor = pair[1](_plain(upstream))[0]  # (the one primal's)
        return gt

    def tangent(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        eps: float,
        x_t: Any,
        t_t: Any,
        out_dtype: torch.dtype,
    ) -> torch.Tensor:
        """The forward-mode tangent: the exact slope in ``x`` times ``x_t``, plus the
        formula's slope in ``t`` (per entry: the terms are elementwise) times ``t_t``."""
        tangent = None
        if x_t is not None:
            one = torch.ones((), dtype=out_dtype, device=x.device)
            tangent = self.logit_gradient(x, t, eps, one, out_dtype) * x_t
        if t_t is not None:  # (by torch.func.vjp, as :meth:`target_gradient`: also
            # inside a torch.func transform, where ``requires_grad_`` is refused)
            slope = self.target_gradient(x, t, eps, torch.ones_like(t, dtype=out_dtype))
            part = slope * t_t
            tangent = part if tangent is None else tangent + part
        if tangent is None:
            return torch.zeros_like(x, dtype=out_dtype)
        return tangent.to(out_dtype)


# ----------------------------------------------------------------------- custom ops
# The same gradients for Dynamo (``torch.compile``, ``torch.export``), which cannot trace
# :class:`BinaryFunction`'s backward (host reads, Numba's kernel). Moved here from
# ``crossent.torch._ops`` in branch wrap1 (the same names and schemas).


@torch.library.custom_op("crossent::sigmoid_ce_v1_backward", mutates_args=())
def sigmoid_ce_backward(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    r"""The logits' gradient of ``crossent::sigmoid_ce_v1`` (``reduction``: PyTorch's)
    or ``crossent::sigmoid_terms_v1`` (``'none'``) times ``upstream``, as
    :class:`BinaryFunction`'s backward forms it (exact where :math:`\sigma(x)` meets the
    target: :func:`logit_gradient`)."""
    return logit_gradient(
        logits, targets, weight, pos_weight, label_smoothing, reduction, upstream, logits.dtype
    )


@sigmoid_ce_backward.register_fake
def sigmoid_ce_backward_fake(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    return torch.empty_like(logits)


@torch.library.custom_op("crossent::sigmoid_ce_v1_input_grads", mutates_args=())
def sigmoid_ce_input_grads(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients in ``targets``, ``weight`` and ``pos_weight`` times ``upstream`` (an
    empty tensor where ``needs`` says no), as :class:`BinaryFunction`'s backward forms
    them: their closed forms in plain torch operations (:func:`input_gradients`), so
    eager's, bit for bit where eager takes :class:`BinaryFunction`."""
    found = input_gradients(
        logits, targets, weight, pos_weight, label_smoothing, reduction, upstream, needs, False
    )
    # In the inputs' layouts (the fake kernel's); an empty tensor where none is wanted.
    return tuple(  # type: ignore[return-value]
        logits.new_empty((0,)) if g is None or a is None else torch.empty_like(a).copy_(g)
        for g, a in zip(found, (targets, weight, pos_weight), strict=True)
    )


@sigmoid_ce_input_grads.register_fake
def sigmoid_ce_input_grads_fake(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(  # type: ignore[return-value]
        torch.empty_like(a) if need and a is not None else logits.new_empty((0,))
        for a, need in zip((targets, weight, pos_weight), needs, strict=True)
    )


def op_gradients(ctx: Any, grad: Tensor, *, ops: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    """The autograd formula of ``crossent::sigmoid_ce_v1`` and
    ``crossent::sigmoid_terms_v1``: the gradients of the four tensors (``ctx``: their
    saved tensors, ``eps`` and ``reduction``) by the two backward ops (``ops``: their
    twins with ``label_smoothing`` a tensor, ``crossent.torch._traced_options``), then
    None for each option."""
    logit_grad, input_grads = ops or (sigmoid_ce_backward, sigmoid_ce_input_grads)
    logits, targets, weight, pos_weight = ctx.saved_tensors
    options = (ctx.eps, ctx.reduction)
    needs = list(ctx.needs_input_grad[:4])
    gx = gt = gw = gpw = None
    if needs[0]:
        gx = logit_grad(grad, logits, targets, weight, pos_weight, *options)
    if any(needs[1:]):  # targets or weights that require grad
        found = input_grads(grad, logits, targets, weight, pos_weight, *options, needs[1:])
        gt, gw, gpw = (g if need else None for g, need in zip(found, needs[1:], strict=True))
    return gx, gt, gw, gpw, None, None


@torch.library.custom_op("crossent::sigmoid_terms_v1", mutates_args=())
def sigmoid_terms(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
) -> Tensor:
    """:func:`terms` as one op (raw targets; all of the logits' dtype, float32 or
    float64, the weights broadcastable to the logits; no checks), for
    ``crossent.sigmoid_cross_entropy`` while Dynamo traces: its autograd is
    :func:`op_gradients` with ``reduction='none'`` (the eager gradient, bit for bit;
    first derivatives only)."""
    return terms(logits, targets, weight, pos_weight, label_smoothing).contiguous()


@sigmoid_terms.register_fake
def _sigmoid_terms_fake(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
) -> Tensor:
    return logits.new_empty(logits.shape)


def _terms_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, targets, weight, pos_weight, eps = inputs
    ctx.save_for_backward(logits, targets, weight, pos_weight)
    ctx.eps, ctx.reduction = eps, "none"


def _terms_gradients(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
    return op_gradients(ctx, grad)[:5]


sigmoid_terms.register_autograd(_terms_gradients, setup_context=_terms_setup)


# The sigmoid focal loss's terms at gamma > 0 as one op (issue 13, branch focal3), for
# ``crossent.sigmoid_focal_loss`` while Dynamo traces: until then the compiled graph took
# autograd's gradient of the formula, whose two terms cancel near the gradient's root
# (``benchmarks/check_focal_autograd_root.py``: float32 up to 2.7e7 ulps, wrong signs).


@torch.library.custom_op("crossent::sigmoid_focal_terms_v1", mutates_args=())
def sigmoid_focal_terms(
    logits: Tensor,
    targets: Tensor,
    label_smoothing: float,
    gamma: float,
    alpha: float | None,
) -> Tensor:
    r""":class:`FocalTerms`' value, :math:`\alpha_t(1-p_t)^\gamma\ell_{\mathrm{BCE}}` per
    entry of logits and raw targets of one dtype (float32 or float64; no weights, no
    reduction, no checks), as one op: its autograd is
    ``crossent::sigmoid_focal_v1_backward``, :class:`FocalTerms`' gradients (the logits'
    the focal twin's, the targets' the formula's vector-Jacobian product), so a compiled
    or exported call has eager's values and first derivatives bit for bit (no second
    derivatives: ``create_graph`` through it raises)."""
    out: Tensor = FocalTerms(gamma, alpha)(logits, targets, None, None, label_smoothing, "none")
    return out.contiguous()


@sigmoid_focal_terms.register_fake
def _sigmoid_focal_terms_fake(
    logits: Tensor,
    targets: Tensor,
    label_smoothing: float,
    gamma: float,
    alpha: float | None,
) -> Tensor:
    return logits.new_empty(logits.shape)


@torch.library.custom_op("crossent::sigmoid_focal_v1_backward", mutates_args=())
def sigmoid_focal_backward(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    label_smoothing: float,
    gamma: float,
    alpha: float | None,
    needs: list[bool],
) -> tuple[Tensor, Tensor]:
    """The gradients of ``crossent::sigmoid_focal_terms_v1`` in ``logits`` and ``targets``
    times ``upstream`` (an empty tensor where ``needs`` says no), as
    :class:`BinaryFunction`'s backward forms them with :class:`FocalTerms` (eager's bits)."""
    gx, gt = FocalTerms(gamma, alpha).gradients(
        logits, targets, label_smoothing, upstream, needs, False
    )
    return (
        logits.new_empty((0,)) if gx is None else torch.empty_like(logits).copy_(gx),
        logits.new_empty((0,)) if gt is None else torch.empty_like(targets).copy_(gt),
    )


@sigmoid_focal_backward.register_fake
def _sigmoid_focal_backward_fake(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    label_smoothing: float,
    gamma: float,
    alpha: float | None,
    needs: list[bool],
) -> tuple[Tensor, Tensor]:
    return (
        torch.empty_like(logits) if needs[0] else logits.new_empty((0,)),
        torch.empty_like(targets) if needs[1] else logits.new_empty((0,)),
    )


def _focal_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, targets, label_smoothing, gamma, alpha = inputs
    ctx.save_for_backward(logits, targets)
    ctx.options = (label_smoothing, gamma, alpha)


def _focal_gradients(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
    logits, targets = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:2])
    gx = gt = None
    if any(needs):
        gx, gt = sigmoid_focal_backward(grad, logits, targets, *ctx.options, needs)
    return (gx if needs[0] else None, gt if needs[1] else None, None, None, None)


sigmoid_focal_terms.register_autograd(_focal_gradients, setup_context=_focal_setup)
