r"""The logit gradient of :func:`crossent.torch.binary_cross_entropy_with_logits`, exact
where :math:`\sigma(x)` meets the target (issue 13 follow-up).

Autograd through the generic path's loss formed :math:`(1-t)\sigma(x) - \pi t\sigma(-x)`
in float32 from the softplus terms' derivatives: where a soft target is within a few ulps
of :math:`\sigma(x)` that difference cancels, and the float32 gradient was hundreds to
millions of ulps off (as ``F.binary_cross_entropy_with_logits``' own is). For float32,
float16 and bfloat16 logits on a device with float64 (and for float64 logits and
targets, whose float64 difference cancels the same way) the loss is :class:`BinaryFunction`:
its forward is the generic path's loss, unchanged; its backward takes the logits'
gradient from ``crossent.losses._sigmoid_grad`` (float64, double-double where it
cancels, times the upstream gradient and the reduction's scale in float64, rounded once
to the logits' dtype), and the targets' and weights' gradients by their closed forms in
plain torch operations (:func:`input_gradients`, also the compiled backward op's).
Under ``create_graph`` (and ``torch.func.grad``, whose backward builds a graph) the
logits' gradient carries the float32 formula's graph at zero value, so second
derivatives are those of the formula; ``jvp`` (``jacfwd``) uses the same exact gradient.
Nested forward mode (``jacfwd(jacfwd(...))``, ``jvp`` of ``jvp``) does not take this
function (PyTorch does not differentiate its ``jvp`` rule again: a silent 0) but the
generic formula's plain operations (``_family``).
``generate_vmap_rule``: ``vmap`` runs the three on batched tensors (the double-double
then forms every entry, since which entries cancel cannot be read there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .. import losses
from .._xp import float64_twin, namespace
from ..losses import _cpu_kernels, _sigmoid, _sigmoid_grad
from . import _reduction
from ._arguments import examples

__all__ = ["BinaryFunction", "input_gradients", "logit_gradient", "mean_of_terms", "takes"]


def takes(x: torch.Tensor, t: torch.Tensor) -> bool:
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


def _floating(a: Any) -> bool:
    """Whether ``a`` is a floating tensor."""
    return isinstance(a, torch.Tensor) and a.is_floating_point()


def _overflowed(total: torch.Tensor) -> bool:
    """Whether the float64 sum ``total`` is ``inf``, read on the host (every example's
    under ``vmap``)."""
    return bool(torch.isinf(examples(total.detach())[0]).any())


def _down_to_one(a: Any, like: torch.Tensor) -> torch.Tensor:
    r"""The float64 :math:`2^{-k}`, :math:`k \ge 0` the least with :math:`\max a\,
    2^{-k} \le 1` (1 where ``a`` is None or empty, or its largest entry at most 1), by
    ``torch.frexp`` (:func:`._reduction.power_of_two_exponent`; device operations, no
    host read; every example's under ``vmap``)."""
    if a is None or not a.numel():
        return torch.ones((), dtype=torch.float64, device=like.device)
    k = _reduction.power_of_two_exponent(a.detach().max().to(torch.float64), at_most_one=True)
    return torch.exp2(-k.to(torch.float64))


def _scaled_total(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, validate: bool
) -> torch.Tensor:
    r"""The float64 sum of the terms of :func:`mean_of_terms` off the CPU: ``pw`` times
    :math:`2^{-a}` and ``w`` times :math:`2^{-b}`, each then at most 1
    (:func:`_down_to_one`), :math:`\mathrm{sp}(x)` times :math:`2^{-a}` too, so that a
    term :math:`2^{-a-b} w[\pi t\,\mathrm{sp}(-x) + (1-t)\,\mathrm{sp}(x)]` is at most
    :math:`\max(\mathrm{sp}(-x), \mathrm{sp}(x))`, finite for finite logits; the sum
    times :math:`2^{a+b}`. The weights are checked before they are scaled (an error
    names the caller's values)."""
    b = _sigmoid._binary(
        x, t, weight=w, pos_weight=pw, label_smoothing=eps, reduction="none", validate=validate
    )  # (checked as given: an error names the caller's values)
    down_w, down_pw = _down_to_one(b.weight, x), _down_to_one(b.pos_weight, x)

    def scaled(a: Any, down: torch.Tensor) -> Any:
        return None if a is None else (a.to(torch.float64) * down).to(b.dtype)

    b = replace(b, weight=scaled(b.weight, down_w), pos_weight=scaled(b.pos_weight, down_pw))
    terms = b.weighted(_sigmoid._bce(b, None if pw is None else down_pw))
    return terms.sum(dtype=torch.float64) / (down_w * down_pw)


def mean_of_terms(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, validate: bool
) -> torch.Tensor:
    r"""PyTorch's ``'mean'`` of the binary terms :math:`w\,[\pi t\,\mathrm{sp}(-x) +
    (1-t)\,\mathrm{sp}(x)]`, the count dividing the sum even with weights: the float64
    sum of the terms by the count, rounded once to the terms' dtype (issue 13, branch
    torchmean1: the float32 sum overflowed to ``inf`` where the mean is a float32
    number, terms near ``3e38``).

    A term is at most :math:`\max w\max(1, \max\pi)\,\mathrm{sp}(|x|)`, so a
    ``weight`` or ``pos_weight`` above 1 made a float32 term ``inf`` whose mean is
    finite (issue 13, branch torchweight1: logits ``-3e38``, target 1, weight 2 beside
    three ordinary terms gave ``inf`` for 1.5e38). Now, with ``w`` or ``pw`` given, on
    the CPU the terms are formed again in float64 where their sum came out ``inf`` (a
    host read of that sum; the ordinary path unchanged), each rounded once, the mean
    then once; elsewhere (no host read, :func:`._reduction.reads_on_host`)
    :func:`_scaled_total` scales ``pw`` and :math:`\mathrm{sp}(x)` by one power of 2
    and ``w`` by another so that no term passes the range, and the float64 sum back:
    exact scalings, the same bits but where a scaled term or :math:`\mathrm{sp}(x)` is
    subnormal (none is scaled where ``w`` and ``pw`` are at most 1). Until branch bcew1
    that path scaled ``w`` only, and :math:`\pi t\,\mathrm{sp}(-x)`, formed before
    ``w`` multiplies it, still overflowed (``pos_weight`` 2 on logits ``-3e38``:
    ``inf`` for 1.5e38). Differentiable (the factors are constants)."""
    out_dtype = torch.promote_types(torch.promote_types(x.dtype, t.dtype), torch.float32)
    given = (w is not None or pw is not None) and all(
        a is None or _floating(a) for a in (x, t, w, pw)
    )  # (else the loss's own type errors)
    if given and not _reduction.reads_on_host(x, per_example=True):
        total = _scaled_total(x, t, w, pw, eps, validate)
        return (total / max(x.numel(), 1)).to(out_dtype)
    loss = losses.sigmoid_cross_entropy(
        x, t, weight=w, pos_weight=pw, label_smoothing=eps, reduction="none", validate=validate
    )
    total = loss.sum(dtype=torch.float64)
    if given and out_dtype != torch.float64 and _overflowed(total):
        w64, pw64 = (None if a is None else a.to(torch.float64) for a in (w, pw))
        terms = losses.sigmoid_cross_entropy(
            x.to(torch.float64),
            t.to(torch.float64),
            weight=w64,
            pos_weight=pw64,
            label_smoothing=eps,
            reduction="none",
            validate=False,  # (checked by the call above; a batched tensor under vmap)
        )
        total = terms.sum()
    return (total / max(x.numel(), 1)).to(out_dtype)


def _loss(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str, validate: bool
) -> torch.Tensor:
    """The generic path's loss; PyTorch's ``'mean'`` divides the sum by the count
    (:func:`mean_of_terms`)."""
    if reduction == "mean":
        return mean_of_terms(x, t, w, pw, eps, validate)
    return losses.sigmoid_cross_entropy(
        x,
        t,
        weight=w,
        pos_weight=pw,
        label_smoothing=eps,
        reduction=reduction,
        validate=validate,
    )


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
    """``binary_cross_entropy_with_logits`` of logits ``x``, targets ``t``, ``weight``
    and ``pos_weight`` (or None), then ``label_smoothing``, ``reduction`` and
    ``validate``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor,
        t: torch.Tensor,
        w: Any,
        pw: Any,
        eps: float,
        reduction: str,
        validate: bool,
    ) -> torch.Tensor:
        return _loss(x, t, w, pw, eps, reduction, validate)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, t, w, pw, eps, reduction, _ = inputs
        ctx.save_for_backward(x, t, w, pw)
        ctx.save_for_forward(x, t, w, pw)
        ctx.eps, ctx.reduction, ctx.out_dtype = eps, reduction, output.dtype

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, t, w, pw = ctx.saved_tensors
        eps, reduction = ctx.eps, ctx.reduction
        needs = ctx.needs_input_grad
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
