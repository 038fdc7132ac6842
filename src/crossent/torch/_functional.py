"""Functional forms: argument handling, layouts and reductions around the fused ops."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError, InputTypeError
from . import _backend, _launch, _ops, _traced_options
from ._arguments import (
    CallOptions,
    autocast_like_linear,
    autocast_off,
    call_options,
    check_chunk_size,
    check_forward_mode_once,
    check_no_tangent,
    check_on_device_of_input,
    check_one_dtype,
    check_weight_not_differentiated,
    examples,
    floating_tensor,
    functorch_reverse_mode,
    grad_recorded,
    has_tangent,
    named_as_called,
    nested_forward_mode,
    op_sizes,
    tensor,
    under_torch_func,
)
from ._family import _reject_legacy
from ._labels import as_class_ids, check_class_ids_off_cpu
from ._launch import work_dtype
from ._ops import (
    LabelsFunction,
    LinearFunction,
    linear_cross_entropy_op,
    plain_label_rows,
    probability_targets_checked,
    softmax_ce_labels,
    softmax_ce_probs,
)
from ._reduction import (
    label_weight_sum,
    mean_scaled_weight,
    rows_in_range_total,
    weighted_mean,
)
from ._targets import check_logits_eagerly, check_targets_eagerly

__all__ = ["cross_entropy", "linear_cross_entropy", "linear_head_cross_entropy"]

#: Classes per block of :func:`linear_cross_entropy` (0: automatic). Tests set it to
#: exercise the online log-sum-exp over vocabulary blocks at small sizes.
_VOCAB_CHUNK = 0

#: Whether :func:`linear_cross_entropy` forms the gradients in the forward for the
#: scalar reductions (else the backward recomputes the logits). The benchmark
#: (benchmarks/bench_torch_losses.py) switches it to measure both.
_FORM_GRADIENTS_IN_FORWARD = True


def _check_weight(weight: object, classes: int, like: torch.Tensor) -> torch.Tensor | None:
    if weight is None:
        return None
    w = tensor(weight, name="weight")
    if tuple(w.shape) != (classes,):
        raise InputError(
            f"`weight` must have shape ({classes},), one weight per class; got {tuple(w.shape)}"
        )
    floating_tensor(w, name="weight")
    check_on_device_of_input(like, weight=w)
    if not torch.compiler.is_compiling() and w.device.type == "cpu":
        # Every example's weights under torch.func.vmap (a batched weight's values).
        values = examples(w.detach())[0].reshape(-1, classes)
        bad = ~((values >= 0) & (values < torch.inf))
        if bool(bad.any()):
            at = int(torch.argmax(bad.reshape(-1).to(torch.int8)))
            value, i = float(values.reshape(-1)[at]), at % classes
            raise InputError(
                f"`weight` must be finite and non-negative; got {value!r} at index {i}"
            )
    return w


def _reduced(
    rows: torch.Tensor,
    reduction: str,
    normalizer: Callable[[], torch.Tensor],
    dtype: torch.dtype,
    wide: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""``'sum'`` or ``'mean'`` of per-row losses: the sum accumulated in float64, the
    mean divided by the float64 ``normalizer()`` (:func:`weighted_mean`), each rounded
    once to ``dtype``. Issue 13 (branch torchmean1): the float32 sum rounded first
    overflowed to ``inf`` where the mean is a float32 number (float32 rows near 1e38:
    ``inf`` for a float64 mean of 1.5e38), and the division in float32 rounded twice.

    ``wide``: the rows in float64 (the op's fourth output), whose entries a ``'mean'``
    takes at the ``inf`` float32 rows where the float64 sum of the rows is ``inf``
    (:func:`._reduction.rows_in_range_total`, the rule of every class-id mean; issue
    13, branches torchrow1 and rowrule1)."""
    total = rows.sum(dtype=torch.float64)
    if reduction == "mean":
        total = weighted_mean(rows_in_range_total(total, rows, wide), normalizer())
    return total.to(dtype)


def _cross_entropy_checks(
    input: Any,
    target: Any,
    weight: Any,
    size_average: Any,
    reduce: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    z_loss: Any,
    soft_cap: Any,
    temperature: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, CallOptions]:
    """:func:`cross_entropy`'s argument, option, device and shape checks, on Python
    values and shapes: ``input``, ``target`` (returned as int64 class ids, or the
    probabilities), ``weight`` (its values too in eager CPU calls) and the call's
    options. Run by the eager call and, while Dynamo traces, by
    ``_ops.refused_while_traced`` (one sequence: the compiled call refuses what eager
    refuses, in the same order, with eager's error; issue 13, branch hostile17: the
    device and shape errors came out of ``torch.compile(fullgraph=True)`` as Dynamo's
    ``Unsupported: Observed exception``)."""
    _reject_legacy(size_average, reduce)
    input = tensor(input, name="input")
    target = tensor(target, name="target")
    floating_tensor(input, name="input")
    # The options' checks (InputError naming the option) run on Python values only.
    opts = call_options(
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=soft_cap,
        temperature=temperature,
        symbolic=True,
    )
    check_on_device_of_input(input, target=target)
    if input.ndim == 0:
        raise InputError("`input` must have a class axis: shape (C,), (N, C) or (N, C, d1, ...)")
    unbatched = input.ndim == 1
    classes = input.shape[0 if unbatched else 1]
    if classes == 0 and (target.is_floating_point() or input.ndim > 2):
        # (Class ids of (N, 0) logits: an empty batch, or a class id out of range.)
        raise InputError(
            f"`input` has 0 classes along axis {0 if unbatched else 1}; a distribution "
            "needs at least one class"
        )
    w = _check_weight(weight, classes, input)
    if target.is_floating_point():
        if tuple(target.shape) != tuple(input.shape):
            raise InputError(
                f"probability `target` must have the shape of `input` {tuple(input.shape)}; "
                f"got {tuple(target.shape)}"
            )
        if opts.ignore_index is not None and opts.ignore_index >= 0:
            # As F.cross_entropy: a class to ignore has no meaning for probabilities (it
            # was silently not applied); the default -100 (any negative) is no class.
            raise InputError(
                f"`ignore_index` applies to class-id targets only; got {opts.ignore_index} "
                f"with probability targets (dtype {target.dtype}): leave it at -100"
            )
        return input, target, w, opts
    check_weight_not_differentiated(w)
    check_no_tangent("cross_entropy", weight=w)
    labels = as_class_ids(target)
    expected = () if unbatched else (input.shape[0], *input.shape[2:])
    if tuple(labels.shape) != expected:
        raise InputError(
            f"`target` must have the shape of `input` without its class axis "
            f"{0 if unbatched else 1}, {tuple(expected)}; got {tuple(target.shape)}"
        )
    return input, labels, w, opts


def _linear_checks(
    input: Any,
    linear_weight: Any,
    target: Any,
    linear_bias: Any,
    weight: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    z_loss: Any,
    soft_cap: Any,
    temperature: Any,
    chunk_size: Any,
) -> tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor | None,
    torch.Tensor | None,
    CallOptions,
    int | None,
]:
    """:func:`linear_cross_entropy`'s argument, option, device and shape checks, on
    Python values and shapes: ``input``, ``linear_weight``, ``target`` (returned as
    int64 class ids), ``linear_bias``, ``weight``, the call's options and
    ``chunk_size`` (the dtypes are judged after autocast, by the caller). Run by the
    eager call and, while Dynamo traces, by ``_ops.refused_while_traced`` (one
    sequence, as :func:`_cross_entropy_checks`)."""
    input = tensor(input, name="input")
    linear_weight = tensor(linear_weight, name="linear_weight")
    target = tensor(target, name="target")
    floating_tensor(input, name="input")
    floating_tensor(linear_weight, name="linear_weight")
    opts = call_options(
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=soft_cap,
        temperature=temperature,
        symbolic=True,
    )
    chunk_size = check_chunk_size(chunk_size)
    check_on_device_of_input(input, linear_weight=linear_weight, target=target)
    if input.ndim < 1 or linear_weight.ndim != 2 or linear_weight.shape[1] != input.shape[-1]:
        raise InputError(
            "`input` (*batch, D) and `linear_weight` (V, D) must share D; got shapes "
            f"{tuple(input.shape)} and {tuple(linear_weight.shape)}"
        )
    classes = linear_weight.shape[0]
    if linear_bias is not None:
        # Floating, as `input` and `linear_weight` (an integer bias was silently cast).
        linear_bias = floating_tensor(linear_bias, name="linear_bias")
        check_on_device_of_input(input, linear_bias=linear_bias)
        if tuple(linear_bias.shape) != (classes,):
            raise InputError(
                f"`linear_bias` must have shape ({classes},); got {tuple(linear_bias.shape)}"
            )
    if target.is_floating_point():
        raise InputTypeError(
            "`target` must hold integer class ids for `linear_cross_entropy`; for probability "
            "targets use `cross_entropy(F.linear(input, linear_weight, linear_bias), target)`"
        )
    labels = as_class_ids(target)
    batch_shape = tuple(input.shape[:-1])
    if tuple(labels.shape) != batch_shape:
        raise InputError(
            f"`target` must have the batch shape of `input` {batch_shape}; "
            f"got {tuple(target.shape)}"
        )
    w = _check_weight(weight, classes, input)
    check_weight_not_differentiated(w)
    # Forward-mode AD: _ops.LinearFunction.jvp (every reduction); the class weights
    # have no derivative.
    check_no_tangent("linear_cross_entropy", weight=w)
    return input, linear_weight, labels, linear_bias, w, opts, chunk_size


@named_as_called(logits="input")
def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: None = None,
    ignore_index: int = -100,
    reduce: None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""Softmax cross-entropy, a drop-in for :func:`torch.nn.functional.cross_entropy`.

    .. math::

        L_i = (1-\varepsilon)\,w_{y_i}(\operatorname{LSE}(z'_i) - z'_{iy_i})
            + \tfrac{\varepsilon}{C}\textstyle\sum_c w_c(\operatorname{LSE}(z'_i) - z'_{ic})
            + \lambda\,w_{y_i}\operatorname{LSE}(z'_i)^2,
        \qquad z' = s\tanh(z/s)/T

    Parameters
    ----------
    input : Tensor, shape (C,), (N, C) or (N, C, d1, ...)
        Logits, classes along axis 1 (PyTorch's layouts). float16/bfloat16 are
        computed in float32.
    target : Tensor
        Class ids of shape (), (N) or (N, d1, ...), any integer dtype (int8 .. int64,
        uint8); or class probabilities of the shape of ``input``, checked as the NumPy
        API checks them: finite, in [0, 1], each row (along axis 1) summing to 1 within
        :func:`crossent._checks.row_sum_tolerance` of their dtype and ``C`` (PyTorch
        checks nothing: NaN or a meaningless number).
    weight : Tensor, shape (C,), optional
        Non-negative class weights. Not differentiated with class-id targets (as
        PyTorch's): one that requires grad is an error there (under ``torch.no_grad()``
        or detached it is none); probability targets differentiate them.
    size_average, reduce : None
        PyTorch's deprecated arguments, in PyTorch's positions (so that positional
        calls bind as there); anything but None is an error: use ``reduction``.
    ignore_index : int or None, optional
        Target value whose rows contribute nothing (default -100, as PyTorch). Their
        logits are never used: a NaN or an infinity there is no error, their loss and
        gradient are 0 (PyTorch's gradient there is NaN). Class-id targets only: with
        probability targets a class (a value >= 0) is an error, as in PyTorch.
    reduction : {'mean', 'sum', 'none'}, optional
        ``'mean'`` divides by the sum of the rows' label weights (PyTorch's weighted
        mean), and is 0, not NaN (PyTorch's), where that sum is 0: every row ignored,
        an empty batch (N = 0 or a d_k = 0), or rows whose labels' class weights are
        all 0. With probability targets it divides by the number of rows, and is 0 for
        an empty batch.
    label_smoothing : float in [0, 1], optional
        :math:`\varepsilon`: the one-hot target mixed with the uniform distribution, as
        PyTorch's. With class weights its term weighs every class :math:`c` by
        :math:`w_c`, so a row whose label has weight 0 still has a loss (``'none'``,
        ``'sum'``); ``'mean'`` divides by the labels' weights, and is 0 with a zero
        gradient where they are all 0, where PyTorch's is NaN.
    z_loss : float >= 0, optional
        Coefficient of the z-loss :math:`\lambda\,\mathrm{LSE}^2` (PaLM).
    soft_cap : float > 0, optional
        Soft-cap the logits to :math:`s\tanh(z/s)` (Gemma 2) before the temperature.
        On the CPU computed in float64 (the fused kernels do not take it), the loss
        rounded once to float32 (float64 for float64 input) and the gradient once to
        the input's dtype; on accelerators in float32.
    temperature : float > 0, optional

    Returns
    -------
    Tensor
        Shape of ``target`` for ``'none'`` (class ids), else a scalar; float32 for
        float16/bfloat16 input, the input dtype otherwise.

    Raises
    ------
    InputError
        A class id out of range (naming the row and the value), probability targets
        with a NaN, an infinite or negative entry or a row not summing to 1 (naming
        the row, the entry and the value, or the row's sum; on the CPU also under
        ``torch.compile``, targets that require grad too, elsewhere in eager calls,
        as class ids), non-finite logits
        in a row that counts (CPU), bad shapes or options (``size_average`` or
        ``reduce`` not None: PyTorch maps them to a reduction with a deprecation
        warning), a ``weight`` that requires grad with class-id targets
        (``F.cross_entropy`` raises a ``RuntimeError`` there).
    InputTypeError
        Non-tensor arguments, float input expected, boolean targets.

    See Also
    --------
    crossent.softmax_cross_entropy : the same loss on any array library.
    linear_cross_entropy : fused with the classifier's matrix product.

    Notes
    -----
    Class-id targets go through the custom op ``crossent::softmax_ce_labels_v3``: on the
    CPU, float32 input is handed to crossent's fused Numba kernels without a copy
    (bfloat16/float16 read as stored); the forward keeps only the per-row
    log-sum-exp and :math:`\log p_y` (float64) and the backward writes the gradient in
    one pass, the label's entry as :math:`c \operatorname{expm1}(\log p_y) + (c - g)`
    where :math:`p_y > 1/2` (exact at any confidence). Other dtypes and
    devices use the generic array-API code, in blocks of rows. Probability targets
    are computed in float64 on the CPU (their gradient's entries :math:`p - t` cancel;
    the loss and the gradient are rounded once): through the custom op
    ``crossent::softmax_ce_probs_v3`` (float64, float32, float16, bfloat16 input), by
    blocks of rows, autograd saving only the input, the targets and the rows'
    log-sum-exps; its backward forms the entry where :math:`p_c > 1/2` as
    :math:`c\,(p_c - 1) + (c - t_c)`, :math:`p_c - 1 = -r/(1 + r)` from the other
    classes' sum :math:`r` (exact at any confidence: plain autograd's float64
    gradient was 0 for :math:`-1.8\cdot10^{-35}` at logits ``[0, -80]``). Second
    derivatives (``create_graph=True``) take the op's gradient with the graph of the
    plain operations' (those derivatives as plain autograd's). Plain differentiable
    torch operations instead where the targets or the class weights require a
    gradient, under forward-mode AD and ``torch.func``'s reverse-mode transforms
    (``grad``, ``vjp``, ``jacrev``), and off the CPU. ``torch.func.vmap`` works on
    both (per-example gradients: ``vmap(grad(...))``); there a row whose loss
    overflows the common form (logits near the float range) raises an
    :class:`InputError` (its exact form cannot be batched). Their ``'mean'`` divides
    by the number of rows, as PyTorch's does (0 for no row, as with class ids).

    Under ``torch.func`` (``grad``, ``vmap(grad(...))``, ``jacrev``, ``jvp``,
    ``jacfwd``) class ids take the op through an ``autograd.Function`` with the same
    setup and backward (``_ops.LabelsFunction``), whose forward-mode rule is the
    backward kernel's gradient times the tangent; under ``vmap`` the examples' rows
    are one op call's rows (a bad class id is named by its example and row). Second
    derivatives there (``hessian``, ``jacfwd(jacrev(...))``, ``grad`` of ``grad``,
    ``jvp`` of ``grad``) are those of the plain float64 gradient
    (``_ops._LabelsGrad``), the first the kernel's. Under nested forward mode
    (``jacfwd(jacfwd(...))``, ``jvp`` of ``jvp``), where PyTorch does not differentiate
    an ``autograd.Function``'s forward-mode rule again, class ids take plain float64
    operations (the generic rows of one-hot targets, ``_ops.plain_label_rows``, checked
    as the op checks): every derivative is torch's, the first that of the plain
    gradient (:math:`p - t`, which keeps no digit of :math:`1 - p` as :math:`p \to 1`,
    where the kernel's is exact). ``jvp`` of ``vmap`` works too.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from crossent.torch import cross_entropy
    >>> z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=torch.float64)
    >>> y = torch.tensor([0, 2], dtype=torch.int32)  # any integer dtype
    >>> bool(torch.isclose(cross_entropy(z, y), F.cross_entropy(z, y.long())))
    True
    >>> cross_entropy(z, torch.tensor([-100, -100]))  # every row ignored: 0, not NaN
    tensor(0., dtype=torch.float64)
    """
    checks = functools.partial(
        _cross_entropy_checks,
        input,
        target,
        weight,
        size_average,
        reduce,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        soft_cap,
        temperature,
    )
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    input, target, w, opts = checks()
    unbatched = input.ndim == 1
    z = input[None] if unbatched else input
    classes = z.shape[1]
    if target.is_floating_point():
        return _cross_entropy_probs(z, target[None] if unbatched else target, w, opts, unbatched)
    labels = target[None] if unbatched else target
    batch_shape = (z.shape[0], *z.shape[2:])
    check_class_ids_off_cpu(labels, classes=classes, ignore_index=opts.ignore_index)
    if opts.reduction == "mean":  # the same mean, its sums away from the float range's ends
        w = mean_scaled_weight(w)
    flat = z if z.ndim == 2 else z.movedim(1, -1).reshape(-1, classes)
    flat_labels = labels.reshape(-1)
    # Under torch.func (and forward-mode AD) the op's autograd.Function twin: the op's
    # own autograd cannot run there, nor has it a forward-mode rule.
    transformed = under_torch_func()
    op = LabelsFunction.call if transformed or has_tangent(input) else softmax_ce_labels
    if op is softmax_ce_labels and torch.compiler.is_dynamo_compiling():
        op = _traced_options.labels_op  # the options as a tensor: symbolic floats stay so
    if transformed and nested_forward_mode():
        # jacfwd(jacfwd(...)): plain operations, whose derivatives torch takes at every
        # level (an autograd.Function's forward-mode rule is not differentiated again).
        rows, wide = plain_label_rows(flat, flat_labels, w, opts.ignore_index, opts.packed())
    else:
        sizes = op_sizes(batch_shape)
        rows, _, _, wide = op(flat, flat_labels, w, sizes, opts.ignore_index, opts.packed())
    if opts.reduction == "none":
        out = rows.reshape(batch_shape)
        return out[0] if unbatched else out
    return _reduced(
        rows,
        opts.reduction,
        lambda: label_weight_sum(flat_labels, w, opts.ignore_index, torch.float64),
        rows.dtype,
        wide,
    )


def _cross_entropy_probs(
    z: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    opts: CallOptions,
    unbatched: bool,
) -> torch.Tensor:
    """Probability targets: ``crossent::softmax_ce_probs_v3`` on the CPU (float64,
    float32, float16, bfloat16 logits, no gradient wanted for the targets or the class
    weights, no forward-mode tangent, no ``torch.func`` reverse-mode transform), which
    checks the targets in its forward pass (``_targets``); else plain differentiable
    torch operations (the generic path), the targets checked eagerly first
    (:func:`_targets.check_targets_eagerly`), or while Dynamo traces by the op
    ``crossent::probability_targets_checked`` at run time (CPU targets)."""
    out_dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    classes = z.shape[1]
    t = target.movedim(1, -1)
    # The op differentiates with respect to the logits only.
    differentiated = grad_recorded() and (
        target.requires_grad or (weight is not None and weight.requires_grad)
    )
    # Forward-mode AD: plain torch operations (the op would drop the tangent); so
    # under torch.func.grad, vjp, jacrev (the op's autograd cannot run there).
    differentiated = differentiated or has_tangent(z, target, weight) or functorch_reverse_mode()
    if _launch.uses_target_op(z, None) and not differentiated:  # (the options: not read)
        # The custom op: the same float64 values, float64 copies of a block of rows at
        # a time, autograd saving only the logits and the targets (_launch).
        flat = z.movedim(1, -1).reshape(-1, classes).contiguous()
        flat_t = t.reshape(-1, classes).contiguous()
        # The op checks the targets (on the CPU, under torch.compile too).
        batch_shape = op_sizes(t.shape[:-1])
        op: Callable[..., tuple[torch.Tensor, torch.Tensor]] = softmax_ce_probs
        if torch.compiler.is_dynamo_compiling():
            op = _traced_options.probs_op  # the options as a tensor: symbolic floats stay so
        rows = op(flat, flat_t, weight, opts.packed(), batch_shape)[0]
        rows = rows.reshape(t.shape[:-1])
    else:
        check_targets_eagerly(target)
        check_logits_eagerly(z)
        numeric = _backend.unpack(opts.packed())
        # float64 on the CPU: the result rounded once to out_dtype, the gradient to z's.
        acc = work_dtype(z, opts.soft_cap, soft_targets=True)
        w = None if weight is None else weight.to(acc)
        rows = _launch.target_rows(z.movedim(1, -1).to(acc), t.to(acc), w, numeric)
        if torch.compiler.is_compiling() and target.device.type == "cpu":
            # The check above cannot read values while Dynamo traces: an op that
            # checks at run time (on the CPU, as the target op), its zero kept.
            rows = rows + probability_targets_checked(target.detach()).to(rows.dtype)
    if opts.reduction == "none":
        return (rows[0] if unbatched else rows).to(out_dtype)
    # 0 for an empty batch (0/0), as the mean of class ids (PyTorch's is NaN). The row
    # count by torch.full, which keeps a symbolic size symbolic (issue 13: new_tensor
    # made torch.export specialise a dynamic batch to the example's).
    return _reduced(
        rows.reshape(-1),
        opts.reduction,
        lambda: torch.full((), rows.numel(), dtype=torch.float64, device=rows.device),
        out_dtype,
    )


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""``cross_entropy(input @ linear_weight.T + linear_bias, target)`` without the logits.

    The loss of :func:`cross_entropy` at the logits :math:`z_i = W h_i + b`, which are
    never held whole.

    Parameters
    ----------
    input : Tensor, shape (*batch, D)
        Hidden states :math:`h` (float32, float64, bfloat16 or float16).
    linear_weight : Tensor, shape (V, D)
        The classifier :math:`W` (``nn.Linear(D, V).weight``).
    target : Tensor, shape (*batch)
        Class ids, any integer dtype.
    linear_bias : Tensor, shape (V,), optional
        Of the dtype of ``input`` and ``linear_weight``, as ``F.linear``'s bias (another
        dtype is an error, not a silent cast).
    weight, reduction, label_smoothing, z_loss, soft_cap, temperature
        As in :func:`cross_entropy` (``weight`` is not differentiated: one that
        requires grad is an error).
    ignore_index : int, optional
        Default None, as PyTorch 2.13's ``F.linear_cross_entropy``; unlike it, a label
        of -100 with ``ignore_index=None`` is an error (which suggests
        ``ignore_index=-100``), not silently ignored. The hidden states of ignored rows
        are never used (zeroed before the products): a NaN or an infinity there (a
        padding position) is no error, their loss and gradient are 0 and ``dW`` is
        that of the other rows.
    chunk_size : int, optional
        Tokens per block. Default: equal blocks of at most about 96 MiB of logits
        (at least 64 rows; 683 rows at V = 32000), large enough for the matrix
        products to run at the multipliers' speed; the vocabulary is split too when
        64 rows exceed 192 MiB.

    Returns
    -------
    Tensor
        Shape ``batch`` for ``'none'``, else a scalar; float32 for bf16/fp16 input.

    Raises
    ------
    InputError
        Bad shapes, options, class ids out of range (naming row and value), logits
        of a row that counts that are not finite (naming the row; CPU), a ``weight``
        that requires grad, a second derivative under ``torch.func`` (``hessian``,
        ``grad`` of ``grad``: naming ``cross_entropy(F.linear(...))``), nested
        forward mode (``jacfwd(jacfwd(...))``).
    InputTypeError
        Non-integer targets (probability targets: use ``cross_entropy(F.linear(...))``);
        ``input``, ``linear_weight`` and ``linear_bias`` of more than one dtype (inside a
        ``torch.autocast`` region their float32/float16/bfloat16 ones are cast to the
        region's dtype first, as ``F.linear``'s arguments there).

    See Also
    --------
    cross_entropy, LinearCrossEntropyLoss, linear_head_cross_entropy

    Notes
    -----
    The logits are formed in blocks of tokens (and of classes) and dropped; the
    log-sum-exp is kept online. When autograd needs gradients and the reduction is
    a scalar, the forward forms them from the same blocks (three matrix products, as
    the naive pair), and the backward scales them in place by the incoming scalar, so
    a second backward through the same graph (``retain_graph=True``, ``gradcheck``)
    raises an error rather than doubling them (as PyTorch's chunked path by
    default); with ``'none'`` the backward recomputes the blocks and may run again.
    There is no second derivative: backpropagating through gradients taken with
    ``create_graph=True`` (a gradient penalty) raises an error (for one, use
    ``cross_entropy(F.linear(...))``). Nothing of the gradient is computed under
    ``torch.no_grad()``. Gradients accumulate in float32 (float64 for float64 input)
    and are rounded once to the input dtype. Under ``torch.func`` the op runs through
    an ``autograd.Function`` (``_ops.LinearFunction``): the backward recomputes the
    logits blocks, ``vmap`` calls the op once an example (per-example gradients of the
    classifier: ``vmap(grad(f, argnums=1), in_dims=(0, None, 0))``), and every
    reduction has a forward-mode rule (``jvp``, ``jacfwd``; ``'none'`` forms the
    logits whole there, each row's tangent needing its logits' gradient). Inside a
    CPU ``torch.autocast`` region the operands are those autocast gives ``F.linear``
    (mixed dtypes cast to the region's) and the op's products are not autocast: the
    float32 computation of those operands, eager and compiled alike.
    See the design notes of ``crossent/torch/_linear.py``.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from crossent.torch import linear_cross_entropy
    >>> g = torch.Generator().manual_seed(0)
    >>> h = torch.randn(5, 4, dtype=torch.float64, generator=g)
    >>> W = torch.randn(11, 4, dtype=torch.float64, generator=g)
    >>> y = torch.tensor([1, 0, 10, 3, 3])
    >>> naive = F.cross_entropy(h @ W.T, y)
    >>> bool(torch.isclose(linear_cross_entropy(h, W, y, chunk_size=2), naive))
    True
    """
    checks = functools.partial(
        _linear_checks,
        input,
        linear_weight,
        target,
        linear_bias,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        soft_cap,
        temperature,
        chunk_size,
    )
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    input, linear_weight, labels, linear_bias, w, opts, chunk_size = checks()
    # As F.linear inside a torch.autocast region: mixed dtypes cast to the region's.
    input, linear_weight, linear_bias = autocast_like_linear(input, linear_weight, linear_bias)
    # Of one dtype, as F.linear's (issue 13: a bias of another dtype was cast to theirs).
    check_one_dtype(input=input, linear_weight=linear_weight, linear_bias=linear_bias)
    classes = linear_weight.shape[0]
    batch_shape = tuple(input.shape[:-1])
    check_class_ids_off_cpu(labels, classes=classes, ignore_index=opts.ignore_index)
    if opts.reduction == "mean":  # the same mean, its sums away from the float range's ends
        w = mean_scaled_weight(w)
    # The row count spelled out: -1 is ambiguous for D = 0 (a RuntimeError there).
    h = input.reshape(math.prod(batch_shape), input.shape[-1])
    tensors = (input, linear_weight, linear_bias)
    # Under torch.func the op's autograd.Function twin, the gradients not formed ahead.
    transformed = under_torch_func()
    if transformed:
        check_forward_mode_once(
            "linear_cross_entropy",
            "cross_entropy(F.linear(input, linear_weight, linear_bias), target)",
        )
    transformed = transformed or has_tangent(input, linear_weight, linear_bias)
    need_grad = (
        _FORM_GRADIENTS_IN_FORWARD
        and not transformed
        and grad_recorded()
        and any(t is not None and t.requires_grad for t in tensors)
    )
    op: Callable[..., tuple[torch.Tensor, ...]] = linear_cross_entropy_op
    if transformed:
        op = LinearFunction.call
    elif torch.compiler.is_dynamo_compiling():
        op = _traced_options.linear_op  # the options as a tensor: symbolic floats stay so
    # Not autocast inside: the op's float32 products are the loss's, not F.linear's.
    with autocast_off(input.device.type):
        loss, *_ = op(
            h,
            linear_weight,
            linear_bias,
            labels.reshape(-1),
            w,
            op_sizes(batch_shape),
            opts.ignore_index,
            opts.packed(),
            opts.reduction,
            chunk_size or 0,
            _VOCAB_CHUNK,
            need_grad,
        )
    return loss.reshape(batch_shape) if opts.reduction == "none" else loss


def linear_head_cross_entropy(
    input: torch.Tensor, head: torch.nn.Linear, target: torch.Tensor, **options: Any
) -> torch.Tensor:
    """:func:`linear_cross_entropy` through an existing ``nn.Linear`` classifier ``head``.

    ``loss = linear_head_cross_entropy(h, model.lm_head, y)`` equals
    ``cross_entropy(model.lm_head(h), y)`` (keyword options as in
    :func:`linear_cross_entropy`), with gradients for the head's parameters.
    The loss reads ``head.weight`` and ``head.bias`` and does not call ``head``: a
    subclass with its own ``forward`` (``InputTypeError``) and a head with forward
    hooks or pre-hooks (``InputError``; the old ``torch.nn.utils.weight_norm``,
    ``spectral_norm`` and ``torch.nn.utils.prune`` register one) are refused; parametrizations
    (``torch.nn.utils.parametrizations``) form ``head.weight`` and work. Under
    ``torch.compile``, a hook registered after a compiled call traced the head is not
    seen: PyTorch's default ``torch._dynamo.config.skip_nnmodule_hook_guards = True``
    guards on no module's hooks, so a compiled ``cross_entropy(head(input), target)``
    keeps the graph without the hook too (set it False and the hook recompiles the
    call, which then refuses the head as eagerly).

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import cross_entropy, linear_head_cross_entropy
    >>> head = torch.nn.Linear(4, 7).double()
    >>> h, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 6, 2])
    >>> fused = linear_head_cross_entropy(h, head, y)
    >>> bool(torch.isclose(fused, cross_entropy(head(h), y)))
    True
    """
    checks = functools.partial(_check_head, head)
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    checks()
    return linear_cross_entropy(input, head.weight, target, linear_bias=head.bias, **options)


def _check_head(head: object) -> None:
    """:func:`linear_head_cross_entropy`'s own check (the options are
    :func:`linear_cross_entropy`'s): ``head`` an ``nn.Linear`` whose call is
    ``F.linear(input, head.weight, head.bias)``.

    The fused loss reads ``head.weight`` and ``head.bias`` and never calls ``head``: a
    subclass's own ``forward`` (a LoRA or fake-quantised layer) and the head's forward
    hooks and pre-hooks (``torch.nn.utils.weight_norm``, ``spectral_norm`` and
    ``prune`` form the weight in one) were silently left out of the loss and its
    gradients."""
    if not isinstance(head, torch.nn.Linear):
        raise InputTypeError(f"`head` must be a torch.nn.Linear; got {type(head).__name__}")
    if type(head).forward is not torch.nn.Linear.forward:
        raise InputTypeError(
            f"`head` is a {type(head).__name__}, whose own forward the fused loss would "
            "not run (it reads head.weight and head.bias only): use "
            "cross_entropy(head(input), target)"
        )
    if head._forward_hooks or head._forward_pre_hooks:
        raise InputError(
            "`head` has forward hooks or pre-hooks (torch.nn.utils.weight_norm, "
            "spectral_norm and prune form the weight in one), which the fused loss would not run "
            "(it reads head.weight and head.bias only): use "
            "cross_entropy(head(input), target), or torch.nn.utils.parametrizations"
            ".weight_norm / spectral_norm, which the fused loss follows"
        )
