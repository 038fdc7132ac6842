r"""``crossent.torch.binary_cross_entropy_with_logits``' loss: PyTorch's reductions, and
the exact logit gradient of the shared autograd wrapper (issue 13 follow-up).

Autograd through the generic path's loss formed :math:`(1-t)\sigma(x) - \pi t\sigma(-x)`
in float32 from the softplus terms' derivatives: where a soft target is within a few ulps
of :math:`\sigma(x)` that difference cancels, and the float32 gradient was hundreds to
millions of ulps off (as ``F.binary_cross_entropy_with_logits``' own is). For float32,
float16 and bfloat16 logits on a device with float64 (and for float64 logits and
targets, whose float64 difference cancels the same way) the loss is
:class:`crossent._torch_binary.BinaryFunction` (the one wrapper the losses package's
``sigmoid_cross_entropy`` of tensors takes too; its module notes give the backward,
``create_graph``, ``jvp`` and ``vmap``) whose forward is :func:`checked_loss` (or
:func:`unchecked_loss`): the generic path's loss with PyTorch's ``'mean'``
(:func:`mean_of_terms`). Nested forward mode (``jacfwd(jacfwd(...))``, ``jvp`` of
``jvp``) does not take that function (PyTorch does not differentiate its ``jvp`` rule
again: a silent 0) but the generic formula's plain operations (``_family``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .. import losses
from .._torch_binary import BinaryFunction, input_gradients, logit_gradient, takes
from ..losses import _sigmoid
from . import _reduction
from ._arguments import examples

__all__ = [
    "BinaryFunction",
    "checked_loss",
    "input_gradients",
    "logit_gradient",
    "mean_of_terms",
    "takes",
    "unchecked_loss",
]


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


def checked_loss(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str
) -> torch.Tensor:
    """:func:`_loss` with its value checks: :class:`BinaryFunction`'s ``loss``."""
    return _loss(x, t, w, pw, eps, reduction, True)


def unchecked_loss(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, reduction: str
) -> torch.Tensor:
    """:func:`_loss` without them (meta tensors; ``vmap``'s, checked on the examples)."""
    return _loss(x, t, w, pw, eps, reduction, False)
