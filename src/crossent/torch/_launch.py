r"""Launchers: run the backend's per-block functions over a ``(rows, classes)`` tensor.

* CPU, float32, C-contiguous: the tensor *is* a NumPy array (``tensor.numpy()`` shares
  its memory), so the fused kernels read it and write the gradient in place, no copy.
* CPU, bfloat16/float16: the same, the kernels reading the 16-bit values as they are
  (NumPy has no bfloat16: a bf16 tensor goes as its uint16 bits) and decoding each to
  float32 in registers (exact: every bf16/fp16 value is a float32); the gradient is
  computed in float64, rounded to float32 and then once to the tensor's dtype, into
  a new array that becomes the gradient tensor without a copy.
* Off the CPU: :mod:`crossent.torch._accelerator` (torch operations on large blocks
  of whole rows, the fused linear loss's formulas).
* Anything else on the CPU (float64, soft-capping, no Numba): the generic
  array-API path of the losses package on torch tensors, in blocks of rows; with
  soft-capping on the CPU in float64 (:func:`work_dtype`, which also sets the dtype of
  probability targets, of the linear and of the vocab-parallel losses), the results
  rounded once to float32 (the loss) and to ``z``'s dtype (the gradient), as the fused
  kernels' are (issue 13: in float32 the gradient's small entries were up to 90 ulps off).

Probability targets (:func:`target_rows`, differentiable torch operations) go through
``crossent::softmax_ce_probs_v3`` on the CPU for float64/float32/float16/bfloat16
logits, soft-capped or not (:func:`uses_target_op`): the forward computes the same float64
operations a block of rows at a time under no autograd, which then saves only the
logits, the targets and the rows' float64 log-partitions :math:`\ell` of the shifted
logits (not several float64 copies of the logits); the backward forms the gradient's
formula in float64 by blocks too (the cap's chain rule included), each entry rounded
once to the logits' dtype. Not
the fused kernel of ``softmax_cross_entropy_with_targets_grad``: on entries where
:math:`p \approx \tilde t` cancel it was measured up to 35 float32 ulps off at
4000-32000 classes (its ``exp`` is not correctly rounded; the hard cases of
``tests/pytorch/test_issue13_torch_exact.py``), against half an ulp here.

There the temperature divides the *shifted* capped logits, :math:`\sigma = (c - m)/T`
with :math:`m` the row maximum of :math:`c = \operatorname{cap}_s(z)`
(:func:`_capped_logits`), as the NumPy kernels do (:math:`c/T` overflows huge finite
logits for :math:`T < 1`), and the op saves :math:`\ell = \operatorname{lse}(\sigma)`:
the gradient's ``exp(sigma_c - ell)`` carries no rounding of :math:`\operatorname{LSE}
= m/T + \ell`, which loses :math:`\ell` next to a huge :math:`m/T`.

Labels: the per-row log-sum-exp is kept in float64 (N numbers): the gradient's
``exp(z'_c - LSE)`` then carries no float32 rounding of the LSE; its float64 rounding
to an ulp of ``m`` matters only for ``|LSE| >= 2**20``, whose rows the losses package
forms again in float64 from the row maximum (``losses._far_lse``). So is the per-row
``log p_y = (z'_y - m) - ell`` of the row statistics (N more): the label's entry
``c expm1(log p_y) + (c - g)`` then keeps the digits of ``1 - p_y`` that the rounding
of ``LSE = m + ell`` to an ulp of ``m`` loses (issue 13).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._checks import row_offset
from ..errors import InputError
from ..losses._kernel_inputs import HALF_LOG as _HALF_LOG
from . import _backend, _targets
from ._arguments import (
    examples,
    grad_recorded,
    has_tangent,
    nested_forward_mode,
    under_torch_func,
)
from ._tensor_powers import gap_sum_bits, power_of_two, times_power_of_two

__all__ = [
    "backward",
    "forward",
    "target_backward",
    "target_forward",
    "target_rows",
    "uses_fused_kernels",
    "uses_target_op",
    "work_dtype",
]

#: The smoothed targets and the class weights (None: 1) of :math:`v = w\tilde t`.
_Parts = tuple[torch.Tensor, torch.Tensor | None]

#: float32 bytes of one block of rows of the generic path.
_BLOCK_BYTES = 16 * 2**20


def uses_fused_kernels(z: torch.Tensor, opts: _backend.Options) -> bool:
    """Whether ``z`` (rows x classes) goes to the fused NumPy kernels."""
    return (
        z.device.type == "cpu"
        and z.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and _backend.fused_applies(opts)
    )


def work_dtype(
    z: torch.Tensor, soft_cap: float | None, *, soft_targets: bool = False
) -> torch.dtype:
    r"""The dtype the generic paths compute in: float64 for float64 ``z``; on the CPU
    float64 too with soft-capping (the cap's ``tanh`` and the softmax of capped logits
    in float32 left the gradient's small entries up to 90 ulps off, issue 13) and for
    probability targets (``soft_targets``: the gradient's entries :math:`p - t` cancel,
    1e6 float32 ulps off and more where :math:`t \approx p`); else float32. The fused
    kernels, which take neither, are exact in float32. On accelerators these calls stay
    in float32, as the fused GPU kernels of Liger Kernel and Cut Cross-Entropy compute
    them: float64 there runs at a small fraction of float32's rate on most GPUs (1/64
    on consumer and L4-class parts)."""
    if z.dtype == torch.float64:
        return torch.float64
    widen = soft_cap is not None or soft_targets
    return torch.float64 if widen and z.device.type == "cpu" else torch.float32


def _blocks(rows: int, classes: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_BYTES // (4 * max(classes, 1)))
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def _stored(z: torch.Tensor) -> np.ndarray:
    """A NumPy view of contiguous CPU ``z`` as the kernels read it (bf16: its uint16 bits)."""
    z = z.contiguous()
    if z.dtype == torch.bfloat16:
        return z.view(torch.int16).numpy().view(np.uint16)
    return z.numpy()


def _from_stored(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """The tensor of ``dtype`` whose memory is ``values`` (the inverse of :func:`_stored`)."""
    if dtype == torch.bfloat16:
        return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(values)


def _numpy_weight(weight: torch.Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    return weight.detach().to("cpu", torch.float64).numpy().astype(dtype)


def forward(
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    ignore_index: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-row losses (float32, or float64 for float64 ``z``), float64 log-sum-exps,
    float64 ``log p_y`` (of class 0 on ignored rows) and the per-row losses in float64
    (a row past float32's range by itself finite there: the twin that a ``'mean'``
    takes, :func:`crossent.torch._reduction.rows_in_range_total`; a new tensor, N
    numbers). Off the CPU (:func:`crossent.torch._accelerator.applies`) the torch path
    of :mod:`crossent.torch._accelerator`, whose second output is the rows'
    :math:`\ell` (the shifted log-partition), not the log-sum-exp: its backward forms
    the row maxima again."""
    n, classes = z.shape
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    rows = torch.empty(n, dtype=acc, device=z.device)
    lse = torch.empty(n, dtype=torch.float64, device=z.device)
    log_p = torch.empty(n, dtype=torch.float64, device=z.device)
    if n == 0:
        return rows, lse, log_p, torch.empty(n, dtype=torch.float64, device=z.device)
    z = z.detach()
    from . import _accelerator  # (it imports _linear, which imports this module)

    if _accelerator.applies(z):
        return _accelerator.forward(z, labels, weight, opts, ignore_index=ignore_index)
    if uses_fused_kernels(z, opts):
        y = labels.numpy()
        w = _numpy_weight(weight, np.dtype(np.float32))
        values, row_lse, row_log_p = _backend.label_rows(
            _stored(z), y, w, opts, ignore_index=ignore_index, validate=True
        )
        rows.numpy()[...] = values
        lse.numpy()[...] = row_lse
        log_p.numpy()[...] = row_log_p
        w_far = None if weight is None else weight.detach()
        # a row's inf (issue 13: a float32 sum overflowed) formed again
        rows, wide = _far_label_rows(rows, z, labels, w_far, opts)
        return rows, lse, log_p, wide
    # Data checks here would be host syncs on an accelerator: only on the CPU.
    validate = z.device.type == "cpu"
    work = work_dtype(z, opts.soft_cap)
    wt = None if weight is None else weight.detach().to(work)
    wide = torch.empty(n, dtype=torch.float64, device=z.device)
    for start, stop in _blocks(n, classes):
        with row_offset(start):
            values, row_lse, row_log_p = _backend.label_rows(
                z[start:stop].to(work),
                labels[start:stop],
                wt,
                opts,
                ignore_index=ignore_index,
                validate=validate,
            )
        twin = values
        if validate:
            values, twin = _far_label_rows(values, z[start:stop], labels[start:stop], wt, opts)
        rows[start:stop] = values
        wide[start:stop] = twin
        lse[start:stop] = row_lse
        log_p[start:stop] = row_log_p
    return rows, lse, log_p, wide


def backward(
    upstream: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    lse: torch.Tensor,
    label_log_p: torch.Tensor,
    opts: _backend.Options,
    *,
    ignore_index: int | None,
) -> torch.Tensor:
    """``upstream[i] * d L_i / d z[i]`` in ``z``'s dtype (computed in >= float32), from
    the forward's ``lse`` and ``label_log_p`` (the fused kernels; the generic path
    recomputes the row statistics)."""
    n, classes = z.shape
    z = z.detach()
    upstream = upstream.detach()
    from . import _accelerator

    if _accelerator.applies(z):
        return _accelerator.backward(
            upstream, z, labels, weight, lse, label_log_p, opts, ignore_index=ignore_index
        )
    if uses_fused_kernels(z, opts):
        if n == 0:
            return torch.empty((n, classes), dtype=z.dtype)
        u = upstream.to(torch.float64).numpy()
        w = _numpy_weight(weight, np.dtype(np.float32))
        # The kernel allocates the gradient in z's format; torch wraps it, no copy.
        grad = _backend.label_gradient(
            _stored(z),
            labels.numpy(),
            w,
            lse.numpy(),
            label_log_p.numpy(),
            u,
            opts,
            ignore_index=ignore_index,
            out=None,
        )
        return _from_stored(grad, z.dtype)
    work = work_dtype(z, opts.soft_cap)
    grad = torch.empty((n, classes), dtype=z.dtype, device=z.device)
    wt = None if weight is None else weight.detach().to(work)
    for start, stop in _blocks(n, classes):
        block = torch.empty((stop - start, classes), dtype=work, device=z.device)
        _backend.label_gradient(
            z[start:stop].to(work),
            labels[start:stop],
            wt,
            lse[start:stop],
            label_log_p[start:stop],
            upstream[start:stop].to(work),
            opts,
            ignore_index=ignore_index,
            out=block,
        )
        grad[start:stop] = block
    return grad


def _weighted_targets(
    t: torch.Tensor, weight: torch.Tensor | None, opts: _backend.Options
) -> torch.Tensor:
    r""":math:`w \odot \tilde t`, the smoothed targets times the class weights."""
    smoothed = _smoothed(t, opts)
    return smoothed if weight is None else weight * smoothed


def _smoothed(t: torch.Tensor, opts: _backend.Options) -> torch.Tensor:
    r""":math:`\tilde t = (1 - \varepsilon) t + \varepsilon / C`, the smoothed targets.

    Under ``torch.jit.trace`` :math:`C` is a traced size, which divides as a float32
    tensor (``NumToTensor``, ``reciprocal``: 7e-9 off in float64); there
    :math:`\varepsilon / C` is formed in the targets' dtype."""
    eps = opts.label_smoothing
    if not eps:
        return t
    share = t.new_full((), eps) / t.shape[-1] if torch.jit.is_tracing() else eps / t.shape[-1]
    return (1 - eps) * t + share


def _z_loss_weight(t: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | float:
    r""":math:`\omega_i = \sum_c w_c t_{ic}` (keepdims; 1 without class weights)."""
    return 1.0 if weight is None else (weight * t).sum(-1, keepdim=True)


def target_rows(
    z: torch.Tensor, t: torch.Tensor, weight: torch.Tensor | None, opts: _backend.Options
) -> torch.Tensor:
    """Per-row losses of probability targets ``t`` under logits ``z`` (both classes last,
    in the work dtype), with differentiable torch operations; a row whose loss came out
    ``inf`` on the CPU is formed again by :func:`_far_rows` (differentiable too)."""
    rows = _target_rows_and_softmax(z, t, weight, opts)[0]
    if z.device.type != "cpu" or torch.compiler.is_compiling():
        # (a graph of this call alone: which rows are far depends on the values)
        return rows
    if torch.jit.is_tracing():
        return _traced_far_target_rows(rows, z, t, weight, opts)
    far = _infinite_at(rows.reshape(-1))
    if far is None:
        return rows
    classes = z.shape[-1]
    z, t = z.reshape(-1, classes), t.reshape(-1, classes)
    again = _far_target_rows(z[far], t[far], weight, opts)
    # The other rows again, the far ones zeroed: in the first graph their -inf log p
    # times a zero upstream made NaN gradients of the targets (0 * inf).
    near = torch.ones(z.shape[0], 1, dtype=torch.bool, device=z.device).index_fill_(0, far, False)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    rows_near = _target_rows_and_softmax(
        torch.where(near, z, zero), torch.where(near, t, zero), weight, opts
    )[0]
    return rows_near.index_put((far,), again.to(rows.dtype)).reshape(rows.shape)


def _traced_far_target_rows(
    rows: torch.Tensor,
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
) -> torch.Tensor:
    r""":func:`target_rows`' far-row pass under ``torch.jit.trace``, with no value read
    on the host (the trace would keep the example's far rows): every row formed both
    ways, the common rows with the far ones' inputs zeroed and :func:`_far_rows` with
    the others' zeroed (its :math:`2^j` per row, :mod:`._tensor_powers`), and
    ``torch.where`` taking the far form where ``rows`` is ``inf``. So the eager values
    and gradients (a zero upstream into each form's other rows), three passes' work."""
    far = torch.isinf(rows.detach())[..., None]
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    near = _target_rows_and_softmax(
        torch.where(far, zero, z), torch.where(far, zero, t), weight, opts
    )[0]
    again = _far_target_rows(
        torch.where(far, z, zero), torch.where(far, t, zero), weight, opts, traced=True
    )
    return torch.where(far[..., 0], again.to(rows.dtype), near)


def _far_target_rows(
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    traced: bool = False,
) -> torch.Tensor:
    """:func:`_far_rows` of probability targets ``t`` under logits ``z`` (rows x classes)."""
    capped = _soft_capped(z, opts.soft_cap)[0]
    smoothed = _smoothed(t, opts).double()
    w = None if weight is None else weight.double()
    v = smoothed if w is None else w * smoothed
    omega = _z_loss_weight(t, weight)
    return _far_rows(capped, v, omega, opts, parts=(smoothed, w), traced=traced)


def _soft_capped(
    z: torch.Tensor, soft_cap: float | None, *, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""The soft-capped logits :math:`s\tanh(x)` (Gemma 2) and :math:`x = z/s`.

    The one home of the cap in ``crossent.torch``: :func:`_capped_logits` (probability
    targets), the fused linear loss and the vocab-parallel loss, whose temperatures
    all divide the *shifted* capped logits (``_linear._tempered_``,
    ``_vocab_parallel._tempered``).

    Parameters
    ----------
    z : torch.Tensor
        Logits in the dtype to compute in.
    soft_cap : float or None
        :math:`s` (None: no cap).
    overwrite : bool
        ``z`` is the caller's own copy, outside autograd and not needed again: it is
        overwritten by :math:`x` and :math:`s\tanh(x)` is one new tensor (``tanh``'s),
        scaled in place, and :math:`x` is returned for the caller's chain rule
        (:func:`_times_cap_slope_`). Otherwise ``z`` is left as it is and the cap is
        differentiable (:class:`_SoftCap`, whose backward is that chain rule; torch's
        own ``tanh`` backward forms :math:`1 - \tanh^2`, 0 past :math:`|x| \approx 19`
        in float64 where the slope is 1.7e-17 at 20). The same roundings either way
        (:math:`\tanh(x)\,s = s\tanh(x)`), so the same values. Under nested forward
        mode (``jacfwd(jacfwd(...))``) torch's own ``tanh``: PyTorch does not
        differentiate an ``autograd.Function``'s ``jvp`` rule again.

    Returns
    -------
    tuple of torch.Tensor
        :math:`s\tanh(x)` (``z`` itself without a cap) and :math:`x` (None without a
        cap or without ``overwrite``).
    """
    if soft_cap is None:
        return z, None
    if not overwrite:
        if under_torch_func() and nested_forward_mode():
            # jacfwd(jacfwd(...)): PyTorch does not differentiate _SoftCap's jvp rule
            # again (the cap's second derivative was a silent 0): torch's own tanh.
            return soft_cap * torch.tanh(z / soft_cap), None
        return _SoftCap.apply(z, soft_cap), None
    scaled = z.div_(soft_cap)
    return torch.tanh(scaled).mul_(soft_cap), scaled


class _SoftCap(torch.autograd.Function):
    r""":math:`s\tanh(z/s)` under autograd, its backward :func:`_times_cap_slope_`.

    It saves ``z`` (the caller's tensor, or a view of it: nothing new, where torch's
    ``tanh`` saved its output, a block) and forms :math:`z/s` anew in the backward, the
    slope in place on it and on a copy of the incoming gradient (two blocks, as many
    as ``tanh``'s output and its backward's). Differentiable twice and more: under
    ``create_graph`` the backward forms the slope out of place (:func:`_cap_slope`), so
    that autograd records it.
    """

    # Written for torch.func too (issue 13 follow-up): forward without ctx, setup_context,
    # a jvp and vmap's generated rule; torch.func.grad, vmap and jacfwd raised for an
    # autograd.Function without them.
    generate_vmap_rule = True

    @staticmethod
    def forward(z: torch.Tensor, soft_cap: float) -> torch.Tensor:
        return soft_cap * torch.tanh(z / soft_cap)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        z, soft_cap = inputs
        ctx.save_for_backward(z)
        ctx.save_for_forward(z)
        ctx.soft_cap = soft_cap

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        scaled = z / ctx.soft_cap
        if torch.is_grad_enabled():  # create_graph: the same slope, out of place
            return grad * _cap_slope(scaled), None
        return _times_cap_slope_(grad.clone(), scaled), None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, _: Any) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return tangent * _cap_slope(z / ctx.soft_cap)


def _capped_logits(
    z: torch.Tensor, opts: _backend.Options, *, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    r"""The shifted tempered logits :math:`\sigma = (\operatorname{cap}_s(z) - m)/T`,
    :math:`m` and :math:`x = z/s`.

    :math:`\operatorname{cap}_s(z) = s\tanh(z/s)` is :func:`_soft_capped`'s and
    :math:`m = \max_c \operatorname{cap}_s(z_c)`, the row maximum of the *undivided*
    capped logits (0 where it is not finite: such a row is divided unshifted, as
    before); the temperature divides the shifted values, the order of the NumPy kernels
    (``crossent.losses._terms.softmax_rows``) and of ``_vocab_parallel._tempered``:
    :math:`\operatorname{cap}_s(z)/T` overflows huge finite logits for :math:`T < 1`
    (``inf - inf = NaN`` in the log-softmax) where :math:`\sigma \le 0` cannot. The
    unshifted log-partition is :math:`m/T + \operatorname{lse}(\sigma)`
    (:func:`_unshifted_lse`), whose overflow to ``inf`` is its true value. At
    :math:`T = 1` nothing is shifted (:math:`m` None: 0): ``torch.log_softmax`` shifts
    by itself, and the values and blocks are those of ``z' = cap_s(z)``.

    The one home of :math:`\sigma` in ``crossent.torch`` where the row is whole:
    :func:`target_rows` (and through it the custom op's forward, a float64 block at a
    time) and :func:`target_backward`. ``overwrite`` is as in :func:`_soft_capped`
    (the shift and the division in place too); otherwise :math:`m` is a constant to
    autograd (the log-softmax does not depend on it: every derivative is exact).

    Parameters
    ----------
    z : torch.Tensor
        Logits ``(rows, classes)`` in the dtype to compute in (float64 blocks in the op).
    opts : _backend.Options
        ``soft_cap`` :math:`s` (None: no cap) and ``temperature`` :math:`T`.
    overwrite : bool
        See :func:`_soft_capped`.

    Returns
    -------
    tuple of torch.Tensor
        :math:`\sigma` (``z`` itself without cap and temperature), :math:`m` (keepdims;
        None at :math:`T = 1`) and :math:`x` (None without a cap or without
        ``overwrite``), for the cap's chain rule :func:`_times_cap_slope_`.
    """
    capped, scaled = _soft_capped(z, opts.soft_cap, overwrite=overwrite)
    temperature = opts.temperature
    if temperature == 1.0:
        return capped, None, scaled
    m = _finite_row_max(capped)
    shifted = capped.sub_(m) if overwrite else capped - m  # a new tensor: ours
    return shifted.div_(temperature), m, scaled


def _finite_row_max(x: torch.Tensor) -> torch.Tensor:
    """The row maxima of ``x`` (keepdims, outside autograd), 0 where not finite."""
    top = x.detach().amax(-1, keepdim=True)
    return torch.where(torch.isfinite(top), top, torch.zeros_like(top))


def _unshifted_lse(m: torch.Tensor | None, ell: torch.Tensor, temperature: float) -> torch.Tensor:
    r""":math:`\operatorname{LSE} = m/T + \ell` of rows' maxima :math:`m` of the undivided
    capped logits and the log-partitions :math:`\ell` of their shifted tempered logits
    (``ell`` itself where :math:`m` is None: :func:`_capped_logits` at :math:`T = 1`);
    ``inf`` where :math:`m/T` overflows, its true value. Out of place (``m`` may be the
    caller's), in ``m``'s dtype. The one home of this sum in ``crossent.torch``: here,
    the fused linear loss (``_linear``, ``m`` widened to float64) and the vocab-parallel
    loss."""
    if m is None:
        return ell
    return (m if temperature == 1.0 else m / temperature) + ell


def _cap_slope(scaled: torch.Tensor) -> torch.Tensor:
    r"""The cap's slope :math:`4v/(1 + v)^2`, :math:`v = e^{-2|x|}`, out of place
    (differentiable: :class:`_SoftCap`'s backward under ``create_graph``); see
    :func:`_times_cap_slope_`, its in-place form. Its derivative through autograd,
    :math:`-8\operatorname{sign}(x)\,v(1 - v)/(1 + v)^3 = -2\operatorname{sech}^2 x
    \tanh x`, has no cancellation either."""
    v = torch.exp(scaled.abs() * -2.0)
    return v * 4.0 / (v + 1.0).square()


def _times_cap_slope_(grad: torch.Tensor, scaled: torch.Tensor) -> torch.Tensor:
    r"""``grad`` times the cap's slope, in place of ``grad`` and of ``scaled`` (spent).

    .. math:: \frac{d}{dz}\,s\tanh(z/s) = \operatorname{sech}^2 x
              = \frac{1}{\cosh^2 x}
              = \frac{4v}{(1 + v)^2},\qquad v = e^{-2|x|},\quad x = z/s

    The one home of the slope in ``crossent.torch`` (probability targets' backward, the
    op's and :class:`_SoftCap`'s, the fused linear loss's gradient blocks, the
    vocab-parallel gradient), in the last form,
    :func:`crossent.losses._terms.chain_rule`'s: exact to a few ulps at every :math:`x`,
    where :math:`1 - \tanh^2 x` cancels for :math:`|x| \gg 1` (0 past
    :math:`|x| \approx 19` in float64, where the slope is still 1e-16) and
    :math:`1/\cosh^2 x` overflows to 0 before the slope leaves float64 (:math:`\cosh^2`
    is ``inf`` past 355, the slope subnormal up to 372); :math:`v` underflows to 0 with
    the slope, nothing overflows. Its torch twin, not a call to it: through the array API
    (no ``abs_``, ``exp_``) that function allocates :math:`|x|`, :math:`v`,
    :math:`(1+v)^2` and the product, three blocks more at the callers' peaks; here the
    block :math:`x` becomes :math:`v` and then :math:`(1 + v)^2`, and ``grad`` is scaled
    in place. The temperature's :math:`1/T` is the caller's.
    """
    v = scaled.abs_().mul_(-2.0).exp_()
    return grad.mul_(v).mul_(4.0).div_(v.add_(1.0).square_())


def _target_rows_and_softmax(
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    overwrite: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":func:`target_rows`, the shifted tempered logits :math:`\sigma`
    (:func:`_capped_logits`, which may ``overwrite`` ``z``) and the log-probabilities
    :math:`\log\operatorname{softmax}(\sigma)` it formed. The z-loss squares
    :math:`\operatorname{LSE} = m/T + \operatorname{lse}(\sigma)` (:func:`_unshifted_lse`)."""
    # z / s not kept (not even under a name: the block it overwrote is freed now).
    z, m = _capped_logits(z, opts, overwrite=overwrite)[:2]
    log_p = torch.log_softmax(z, dim=-1)
    rows = -_target_terms(_smoothed(t, opts), weight, log_p).sum(-1)
    if opts.z_loss:
        lse = _unshifted_lse(m, torch.logsumexp(z, dim=-1, keepdim=True), opts.temperature)
        rows = rows + (opts.z_loss * _z_loss_weight(t, weight) * lse * lse)[..., 0]
    return rows, z, log_p


def _target_terms(
    smoothed: torch.Tensor, weight: torch.Tensor | None, log_p: torch.Tensor
) -> torch.Tensor:
    r""":math:`w_c \tilde t_c \log p_c` per entry, 0 where :math:`w_c\tilde t_c = 0` and
    :math:`\log p_c = -\infty` (a class of zero target weight is absent from the sum);
    ``log_p`` may be any per-class factor (:func:`_scaled_gap_sum`'s gaps).

    Only a ``-inf`` log p is masked, as the generic ``weighted_term``: a finite one is
    kept, so the gradient of a target or class weight of 0 is :math:`-\log p`, as
    ``F.cross_entropy``'s. Where the targets or the class weights are differentiated
    (reverse mode, :func:`grad_recorded`: eager, ``torch.func``; always under
    ``torch.jit.trace``, whose check reruns the call under ``no_grad`` and needs the same
    graph; or a forward-mode tangent), :class:`_TargetTerms` gives the masked
    entries their true derivatives too:
    :math:`\partial/\partial\tilde t_c = w_c\log p_c` (``-inf`` for a ``-inf`` logit
    under a target of 0: the loss's one-sided derivative :math:`-\log p_c = +\infty`,
    ``F.cross_entropy``'s; the mask made it 0), the logits' gradient unchanged and no
    ``0 * inf`` NaN. Not under nested forward mode (``jacfwd(jacfwd(...))``: PyTorch
    does not differentiate a forward-mode rule again) nor under ``torch.compile``
    (Dynamo's own ``DeprecationWarning`` while it traces the rule): the masked product,
    0 there."""
    wanted = smoothed.requires_grad or (weight is not None and weight.requires_grad)
    # Under torch.jit.trace always the rule: trace's check reruns the call under no_grad,
    # where targets formed from the inputs (smoothed, cast) no longer require grad.
    chosen = torch.jit.is_tracing() or (wanted and grad_recorded())
    if (
        (chosen or has_tangent(smoothed, weight))
        and not torch.compiler.is_compiling()
        and not (under_torch_func() and nested_forward_mode())
    ):
        # Not under torch.compile: Dynamo (2.13) instantiates the Function while it
        # traces it, and PyTorch's own DeprecationWarning about that is an error under
        # -W error (InternalTorchDynamoError), with or without the jvp rule.
        return _TargetTerms.apply(smoothed, weight, log_p)
    return _masked_product(smoothed if weight is None else weight * smoothed, log_p)


def _masked_product(v: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    r""":math:`v_c f_c` per entry, 0 (its gradient too) where :math:`v_c = 0` and
    :math:`f_c = -\infty`: a class of zero target weight is absent from the sum (a finite
    factor is kept, so a weight of 0 has its gradient, the factor)."""
    return v * torch.where((v != 0) | (factor > -torch.inf), factor, 0.0)


class _TargetTerms(torch.autograd.Function):
    r""":func:`_target_terms`' product :math:`w\tilde t\log p` (``w`` None: 1), its
    ``0\cdot(-\infty)`` entries 0, with the true derivatives there: in :math:`\tilde t_c`
    :math:`g\,w_c\log p_c` (``-inf`` times the upstream's sign for a ``-inf`` log p), in
    :math:`w_c` :math:`g\,\tilde t_c\log p_c`; 0 where the factor :math:`g w_c` (or
    :math:`g\tilde t_c`) is 0, the loss then constant in that entry; in :math:`\log p`
    :math:`g\,w_c\tilde t_c` (0 at the masked entries, as the mask's). Elsewhere the bits
    of autograd through the masked product. Reverse mode (eager, ``torch.func`` with
    vmap's generated rule, ``torch.jit.trace``) and forward mode
    (``torch.autograd.forward_ad``, ``torch.func.jvp``, ``jacfwd``, ``hessian``), the
    same derivatives there:

    .. math:: \dot y_c = \dot{\tilde t}_c\,w_c\log p_c + \dot w_c\,\tilde t_c\log p_c
              + w_c\tilde t_c\,\dot{\log p_c}

    each term 0 where its factor before :math:`\log p_c = -\infty` (or :math:`w_c\tilde
    t_c` before :math:`\dot{\log p_c}`) is 0. Not under ``torch.compile`` nor nested
    forward mode (``jacfwd(jacfwd(...))``, whose second pass PyTorch does not take
    through this rule): :func:`_target_terms` takes the masked product there. Twice
    differentiable in reverse mode (its backward's operations are recorded under
    ``create_graph``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        smoothed: torch.Tensor, weight: torch.Tensor | None, log_p: torch.Tensor
    ) -> torch.Tensor:
        return _masked_product(smoothed if weight is None else weight * smoothed, log_p)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        smoothed, weight, log_p = ctx.saved_tensors
        wt = smoothed if weight is None else weight * smoothed
        outside = log_p == -torch.inf
        masked = (wt == 0) & outside
        g_wt = grad * log_p  # the product's derivative in w t~: log p (-inf included)
        g_log_p = grad * torch.where(masked, 0.0, wt)
        if weight is None:
            g_t = torch.where(outside & (grad == 0), 0.0, g_wt)
            return g_t, None, g_log_p
        g_t = torch.where(outside & (grad * weight == 0), 0.0, g_wt * weight)
        g_w = torch.where(outside & (grad * smoothed == 0), 0.0, g_wt * smoothed)
        return g_t, g_w.sum_to_size(weight.shape), g_log_p

    @staticmethod
    def jvp(ctx: Any, d_smoothed: Any, d_weight: Any, d_log_p: Any) -> torch.Tensor:
        smoothed, weight, log_p = ctx.saved_tensors
        wt = smoothed if weight is None else weight * smoothed
        outside = log_p == -torch.inf
        out = torch.zeros_like(log_p)
        if d_log_p is not None:
            out = d_log_p * torch.where((wt == 0) & outside, 0.0, wt)
        for d, other in ((d_smoothed, weight), (d_weight, smoothed)):
            if d is not None:
                dv = d if other is None else d * other
                out = out + torch.where(outside & (dv == 0), 0.0, dv * log_p)
        return out


# ----------------------------------------------------------- far gaps (issue 13 follow-up)
# A row's loss A*ell - B (+ z-loss) weighs each gap sigma_c = (c_c - m)/T by
# v_c = w_c t~_c. The gap c - m overflows for |c - m| past the dtype's maximum (float64:
# 1.8e308, so logits of +-1e308), (c - m)/T for T < 1 sooner; but v_c sigma_c is finite
# where v_c is small enough (eps/C of label smoothing, a small probability target, a
# class weight below 1) and (c - m)/T is finite where T > 1. The common path keeps its
# operations; on the CPU the rows whose loss came out inf (one check of a value per row)
# are formed again here, each gap scaled by a power of two before it is formed.


def _infinite_at(rows: torch.Tensor) -> torch.Tensor | None:
    """Indices of the ``inf`` entries of the per-row losses ``rows`` (flat), or None.

    Under ``torch.func.vmap`` (the generic path of probability targets, e.g.
    ``vmap(grad(...))``: per-example gradients) the values are read from the tensor
    under vmap's wrapper (a Python ``bool`` of a batched tensor is an error there):
    None where no row is ``inf``; else an :class:`InputError`, since those rows are
    formed again by selecting them, a shape that depends on the values, which vmap
    cannot batch (and their ``inf`` is no loss: the truth is finite)."""
    far = torch.isinf(rows.detach())
    physical, batched = examples(far)
    if not batched:
        return far.nonzero()[:, 0] if bool(far.any()) else None
    if bool(physical.any()):
        raise InputError(
            "under torch.func.vmap a row's loss overflowed its common form (logits "
            "whose gaps, over the temperature, pass the float range, weighed by a small "
            "target): its exact form selects such rows by value, which vmap cannot "
            "batch; call the loss without vmap (on the whole batch, or in a loop)"
        )
    return None


def _times_power_of_two(x: torch.Tensor, bits: int) -> torch.Tensor:
    r""":math:`x\,2^{\text{bits}}` for ``bits`` :math:`\ge -1022`, exact where the result is
    a normal number: upward in steps of at most :math:`2^{1000}` (:math:`2^{1024}` itself
    is no float64), downward in one (:math:`2^{-1022}` is normal), so the result is
    rounded at most once (to a subnormal) and is ``inf`` only where it overflows."""
    while bits > 1000:
        x = x * 2.0**1000
        bits -= 1000
    return x * 2.0**bits


def _gap_sum_bits(classes: int, largest_weight: float) -> int:
    r"""The :math:`j` of :func:`_weighted_gap_sum`: :math:`2^j \ge 4C\max(1, \max_c v_c)`."""
    return 2 + math.ceil(math.log2(max(1, classes) * max(1.0, largest_weight)))


def _scaled_gap_sum(
    c: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    bits: int | torch.Tensor,
    parts: _Parts | None = None,
) -> torch.Tensor:
    r""":math:`\sum_c v_c (c_c 2^{-j} - m 2^{-j})/f = 2^{e-j} B` (keepdims), ``bits`` :math:`j`
    (:func:`_gap_sum_bits`) and :math:`T = f\,2^e`: :func:`_weighted_gap_sum` before its
    final scaling (the vocab-parallel loss adds the ranks' parts first). ``parts``:
    :math:`(\tilde t, w)` of :math:`v = w\tilde t` (probability targets), whose products
    :func:`_target_terms` forms (a ``-inf`` gap's true derivative in a target of 0)."""
    frac = math.frexp(temperature)[0]
    scale = power_of_two(-bits) if isinstance(bits, torch.Tensor) else 2.0**-bits
    gaps = (c * scale - m * scale) / frac
    if parts is not None:
        return _target_terms(parts[0], parts[1], gaps).sum(-1, keepdim=True)
    return _masked_product(v, gaps).sum(-1, keepdim=True)


def _weighted_gap_sum(
    c: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    temperature: float,
    parts: _Parts | None,
    *,
    traced: bool = False,
) -> torch.Tensor:
    r""":math:`B = \sum_c v_c (c_c - m)/T` per row (keepdims), inf only where it overflows.

    .. math:: B = 2^{j-e}\sum_c v_c\,\frac{c_c 2^{-j} - m 2^{-j}}{f},\qquad
              T = f\,2^e,\quad 2^j \ge 4C\max(1, \max_c v_c)

    Each gap is at most :math:`2\max\cdot 2^{-j}`, its quotient by :math:`f \ge 1/2` and
    product with :math:`v_c` at most :math:`\max/C`, so nothing overflows before the
    exact scaling by :math:`2^{j-e}` (:func:`_times_power_of_two`); the roundings are
    those of :math:`\sum_c v_c \sigma_c`. A class with :math:`v_c = 0` is absent (not
    :math:`0 \cdot \infty`). Reads :math:`\max v` on the host: for the few rows of
    :func:`_far_rows`; ``traced`` (``torch.jit.trace``, every row): :math:`j` of each
    row, as a tensor (:mod:`._tensor_powers`), no host read.
    """
    exponent = math.frexp(temperature)[1]
    if traced:
        row_bits = gap_sum_bits(v)
        scaled = _scaled_gap_sum(c, m, v, temperature, row_bits, parts)
        return times_power_of_two(scaled, row_bits - exponent)
    top = float(v.detach().max()) if v.numel() else 0.0
    bits = _gap_sum_bits(c.shape[-1], top)
    scaled = _scaled_gap_sum(c, m, v, temperature, bits, parts)
    return _times_power_of_two(scaled, bits - exponent)


def _far_rows(
    c: torch.Tensor,
    v: torch.Tensor,
    omega: torch.Tensor | float,
    opts: _backend.Options,
    *,
    parts: _Parts | None = None,
    traced: bool = False,
) -> torch.Tensor:
    r"""Per-row losses :math:`A\ell - B + \lambda\omega\operatorname{LSE}^2` of a few rows
    of capped logits :math:`c` (classes last) and target weights :math:`v = w \odot
    \tilde t`, in float64, :math:`B` by :func:`_weighted_gap_sum`: ``inf`` only where the
    loss overflows. Differentiable (:math:`m` a constant, as in :func:`_capped_logits`;
    ``parts``, :math:`(\tilde t, w)` of probability targets: :func:`_scaled_gap_sum`;
    ``traced``, every row of a traced call: :func:`_weighted_gap_sum`'s).

    For the rows whose loss the common path gave as ``inf``: some :math:`v_c\sigma_c`
    there overflowed, so :math:`-B` is :math:`v_c` times a gap past the float64 range,
    beside which :math:`A\ell \le A\log C` needs no more care than
    ``torch.logsumexp`` of :math:`(c - m)/T` (a gap that overflows there is ``-inf``,
    :math:`e^\sigma` 0 as it truly is but for :math:`T > 2\cdot 10^{305}`).
    """
    c, v = c.double(), v.double()
    temperature = opts.temperature
    m = _finite_row_max(c)
    ell = torch.logsumexp((c - m) / temperature, dim=-1, keepdim=True)
    gap_sum = _weighted_gap_sum(c, m, v, temperature, parts, traced=traced)
    rows = v.sum(-1, keepdim=True) * ell - gap_sum
    if opts.z_loss:
        lse = _unshifted_lse(m, ell, temperature)
        rows = rows + opts.z_loss * omega * lse * lse
    return rows[..., 0]


def _far_label_rows(
    values: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The per-row losses ``values`` of integer labels (a block of the generic path, or
    the fused kernels' rows: float32 logits cannot make :math:`c - m` overflow their
    float64 work, but :math:`(c - m)/T` can for a tiny :math:`T`), the ``inf`` ones
    formed again by :func:`_far_rows` with :math:`v = (1-\varepsilon) w_y e_y +
    \tfrac{\varepsilon}{C} w` (an ignored row's loss is 0, never ``inf``); and the
    rows in float64, those formed again there unrounded (a float32 row past float32's
    range by itself finite: issue 13, branch torchrow1)."""
    wide = values.to(torch.float64, copy=True)
    far = _infinite_at(values)
    if far is None:
        return values, wide
    v, w_y = _label_target_weights(labels[far], weight, opts.label_smoothing, z.shape[-1])
    capped = _soft_capped(z[far].double(), opts.soft_cap)[0]
    again = _far_rows(capped, v, w_y[:, None], opts)
    wide = wide.index_put((far,), again)
    return values.index_put((far,), again.to(values.dtype)), wide


def _label_target_weights(
    labels: torch.Tensor, weight: torch.Tensor | None, eps: float, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`v = (1-\varepsilon) w_y e_y + \tfrac{\varepsilon}{C} w` of each label (rows x
    classes) and :math:`w_y`, in float64 (the float64 work of :func:`_far_rows`)."""
    w = torch.ones(classes, dtype=torch.float64) if weight is None else weight.double()
    y = labels.long()
    w_y = w[y]
    v = ((eps / classes) * w).expand(len(y), classes).clone()
    return v.scatter_add_(1, y[:, None], ((1 - eps) * w_y)[:, None]), w_y


def uses_target_op(z: torch.Tensor, opts: _backend.Options | None = None) -> bool:
    r"""Whether the probability targets of ``z`` go through ``crossent::softmax_ce_probs``:
    CPU floating logits, float64 and float32/float16/bfloat16 (soft-capped or not, issue
    13; float64 since its follow-up: autograd's ``log_softmax`` backward formed the entry
    :math:`p - t` at :math:`p \to 1` from a rounded :math:`p`, 0 for
    :math:`-1.8\cdot 10^{-35}` at logits ``[0, -80]``). Every ``opts`` takes it (not
    read: while Dynamo traces, the options stay symbolic, ``_traced_options``)."""
    return z.device.type == "cpu" and z.dtype in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
    )


def _float64_blocks(
    z: torch.Tensor, weight: torch.Tensor | None
) -> tuple[list[tuple[int, int]], torch.Tensor | None]:
    """The row blocks of the float64 operations (half the float32 rows of
    :data:`_BLOCK_BYTES`) and the class weights in float64."""
    n, classes = z.shape
    return _blocks(n, 2 * classes), None if weight is None else weight.detach().double()


def target_forward(
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    bad: torch.Tensor | None = None,
    dead: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Float64 per-row losses of probability targets (rows x classes), the operations of
    :func:`target_rows` in float64 a block of rows at a time (the same values), and the
    rows' float64 log-partitions :math:`\ell = \operatorname{lse}(\sigma)` of the shifted
    tempered logits (:func:`_capped_logits`) for :func:`target_backward`, which forms the
    row maxima :math:`m` anew (the unshifted :math:`\operatorname{LSE} = m/T + \ell`
    may overflow where :math:`\sigma - \ell` does not).

    :math:`\ell` is read off the log-softmax at each row's maximum, :math:`\sigma_j -
    \log p_j` (its argument found on ``z`` as stored, the order of :math:`\sigma`'s):
    one pass over ``z``, not the backward's log-sum-exp of its float64 block.

    ``bad`` (bool, one entry a row), if given, receives each row's flag of
    :func:`crossent.torch._targets.bad_rows` (targets that are no probability vector),
    from each row's extremes and float64 sum, reduced from the block's float64 targets
    the forward makes anyway into preallocated rows (no allocation a block); the
    caller reads the flags once. ``dead`` (bool, one entry a row), if given, receives
    whether the row's largest logit is not finite (a NaN, a ``+inf``, or every entry
    ``-inf``: :func:`crossent.torch._targets.raise_bad_logits`), read off the argument
    of the row maximum the forward finds anyway.
    """
    n = z.shape[0]
    rows = torch.empty(n, dtype=torch.float64)
    ell = torch.empty(n, dtype=torch.float64)
    blocks, w = _float64_blocks(z, weight)
    stats = None if bad is None else torch.empty(3, n, dtype=torch.float64)
    tol = _targets.tolerance(t.dtype, t.shape[-1])
    with torch.no_grad():
        for start, stop in blocks:
            rows[start:stop], ell[start:stop] = _target_forward_block(
                z[start:stop],
                t[start:stop],
                w,
                opts,
                stats=None if stats is None else stats[:, start:stop],
                tol=tol,
                dead=None if dead is None else dead[start:stop],
            )
    if bad is not None and stats is not None:
        bad.copy_(_targets.flags(stats, tol))
    return rows, ell


def _target_forward_block(
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    stats: torch.Tensor | None = None,
    tol: float = 0.0,
    dead: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`target_forward` on one block of rows; its float64 temporaries die with it.
    A row whose loss came out ``inf`` is formed again by :func:`_far_rows`: float32
    logits cannot make :math:`c - m` overflow float64, but :math:`(c - m)/T` can for a
    tiny :math:`T`, where a smoothed target :math:`\varepsilon/C` weighs it finitely."""
    t64 = t.double()
    if stats is not None:
        _targets.row_stats(t64, out=stats)
    rows, shifted, log_p = _target_rows_and_softmax(
        z.to(torch.float64, copy=True), t64, weight, opts, overwrite=True
    )
    # sigma is nondecreasing in z: its maximum is at z's.
    at = z.argmax(-1, keepdim=True)  # (a NaN's place where the row has one)
    ell = (shifted.gather(-1, at) - log_p.gather(-1, at))[:, 0]
    if dead is not None:
        dead.copy_(~torch.isfinite(z.gather(-1, at)[:, 0]))
    far = _infinite_at(rows)
    if far is not None and stats is not None:
        # A flagged row (the op raises for it) is not formed again: an infinite target
        # has no exact form.
        far = far[~_targets.flags(stats[:, far], tol)]
        far = far if far.numel() else None
    if far is not None:
        rows[far] = _far_target_rows(z[far].double(), t[far].double(), weight, opts)
    return rows, ell


def target_backward(
    upstream: torch.Tensor,
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    ell: torch.Tensor,
    opts: _backend.Options,
) -> torch.Tensor:
    r"""``upstream[i] * d L_i / d z[i]`` of probability targets in ``z``'s dtype:
    :math:`u_i [(A_i + 2\lambda\omega_i\mathrm{LSE}_i)\,p_i - w\odot\tilde t_i]
    \operatorname{sech}^2(z_i/s) / T`, :math:`A_i = \sum_c w_c \tilde t_{ic}`, in float64
    a block of rows at a time, each entry rounded once, :math:`p = e^{\sigma - \ell}`
    from the forward's ``ell`` (issue 13: the backward recomputed it per block) and
    :math:`\operatorname{LSE} = m/T + \ell`. :math:`\sigma` and :math:`m` are
    :func:`_capped_logits`'s, the forward's operations; the cap's factor (1 without
    soft-capping) is :func:`_times_cap_slope_`'s :math:`4v/(1 + v)^2`, :math:`v =
    e^{-2|z|/s}`: no cancellation where :math:`|z| \gg s`. Recomputing :math:`z'` (its
    ``tanh``) is what saving nothing of the logits' size costs: the backward has no
    float64 :math:`z'` to reuse. (A custom op's kernel runs below autograd: the formula,
    not ``autograd.grad`` of :func:`target_rows`.)"""
    z, t = z.detach(), t.detach()
    u = upstream.detach().to(torch.float64)
    out = torch.empty(z.shape, dtype=z.dtype)
    blocks, w = _float64_blocks(z, weight)
    for start, stop in blocks:
        out[start:stop] = _target_gradient_block(
            z[start:stop],
            t[start:stop],
            w,
            opts,
            ell=ell[start:stop, None],
            upstream=u[start:stop, None],
        )
    return out


def _target_gradient_block(
    z: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None,
    opts: _backend.Options,
    *,
    ell: torch.Tensor,
    upstream: torch.Tensor,
) -> torch.Tensor:
    """:func:`target_backward`'s float64 gradient of one block of rows (``upstream`` and
    ``ell`` keepdims); its other float64 temporaries die with it."""
    # sigma over the block's own float64 copy, which becomes z / s for the chain rule.
    shifted, m, scaled = _capped_logits(z.to(torch.float64, copy=True), opts, overwrite=True)
    tb = t.double()
    wt = _weighted_targets(tb, weight, opts)
    a = wt.sum(-1, keepdim=True)
    coef = a
    # log p at the row's maximum, the one class that may have p > 1/2: sigma there is 0
    # where _capped_logits shifted (m given), else sigma's maximum.
    sigma_top = torch.zeros_like(ell) if m is not None else shifted.amax(-1, keepdim=True)
    log_top = sigma_top - ell
    omega = _z_loss_weight(tb, weight) if opts.z_loss else 1.0
    if opts.z_loss:
        lse = _unshifted_lse(m, ell, opts.temperature)
        coef = coef + 2 * opts.z_loss * omega * lse
    scale = upstream / opts.temperature
    confident = log_top > _HALF_LOG
    rows = torch.nonzero(confident[:, 0])[:, 0]
    # q = e^(sigma - sigma_top) in place, p = q / sum(q): no rounding of an exponent
    # sigma - ell (its ulp, 16 float64 ulps of p at a gap of -36, issue 13 follow-up),
    # and q = 1 exactly at the row's maximum.
    q = (shifted if m is not None else shifted.sub_(sigma_top)).exp_()
    if rows.numel():
        # Rows with p > 1/2 at their maximum: p - 1 there is -r/(1 + r), r = the sum of
        # q over the others, and LSE = m/T + sigma_top + log1p(r): the forward's ell is
        # the log of a sum, an ulp of 1's digits (0 at logits [0, -80] for 1.8e-35), and
        # an expm1 of it would keep none of 1 - p's. The others' sum with q_top set
        # aside in place (no copy of the rows: the block's peak stays).
        n, at = q.shape[0], z.argmax(-1, keepdim=True)  # sigma is nondecreasing in z
        q_top = q.gather(-1, at)
        q.scatter_(-1, at, torch.where(confident, 0.0, q_top))
        total = q.sum(-1, keepdim=True)
        q.scatter_(-1, at, q_top)
        r = total[rows]
        total = total.index_put_((rows,), r + q_top[rows])
        c_rows = torch.broadcast_to(torch.as_tensor(coef, dtype=r.dtype), (n, 1))[rows]
        # c - t from c's parts (``_terms.label_offset``)
        gap = a[rows] - wt.gather(-1, at)[rows]
        if opts.z_loss:
            m_rows = None if m is None else m[rows]
            ell_rows = sigma_top[rows] + torch.log1p(r)
            lse_rows = _unshifted_lse(m_rows, ell_rows, opts.temperature)
            omega_rows = omega[rows] if isinstance(omega, torch.Tensor) else omega
            gap = gap + 2 * opts.z_loss * omega_rows * lse_rows
        exact = (c_rows * (-r / (1 + r)) + gap) * torch.broadcast_to(scale, (n, 1))[rows]
    else:
        total = q.sum(-1, keepdim=True)
    # A row the forward found NaN (a +inf or NaN logit) stays NaN throughout, as before.
    total = torch.where(torch.isnan(ell), ell, total)
    # In place on the block's own float64 copy: (q * (coef / sum q) - wt) * scale.
    grad = q.mul_(coef / total).sub_(wt).mul_(scale)
    if rows.numel():
        # c p - t as c (p - 1) + (c - t) (issue 13; [0, -80], one-hot: -1.8e-35, not 0)
        grad[rows, at[rows, 0]] = exact[:, 0]
    return grad if scaled is None else _times_cap_slope_(grad, scaled)
