"""The fused losses as ``torch.library`` custom operators, with fake kernels and autograd.

Registering them as custom ops (the custom-op form of an ``autograd.Function``)
makes them opaque to ``torch.compile``: Dynamo records one node per op, its shapes
come from the fake (meta) kernels below, and the real kernel runs at execution time
on real data. That is also where the data checks live on the CPU: class ids and
non-finite logits are checked inside the op, on data already in host memory, so
they run under ``torch.compile(fullgraph=True)`` too, with no graph break and no
synchronisation. On other devices the ops read no data for checks.

* ``crossent::softmax_ce_labels_v3(logits, labels, ...) -> (loss_rows, lse,
  label_log_p, wide_rows)`` and its backward ``crossent::softmax_ce_labels_v2_backward``
  (``upstream * dL_i/dz_i`` from the saved ``lse`` and ``label_log_p``), over a
  ``(rows, classes)`` view; the launcher picks the fused NumPy kernels or the generic
  path. ``_v2``: issue 13 added ``label_log_p``. Inductor's and AOTAutograd's on-disk
  caches key a graph by the ops' names, not their schemas, so a graph compiled with the
  old two-output op would be replayed (its backward called with the old arguments):
  a changed schema takes a new name. ``_v3``: issue 13 (branch rowrule1) added
  ``wide_rows``, the rows' losses in float64, differentiable (a ``'mean'`` takes its
  entries where a float32 row is past float32's range by itself:
  :func:`._reduction.rows_in_range_total`; its upstream joins the rows',
  :func:`._reduction.rows_upstream`).
* ``crossent::softmax_ce_probs_v3(logits, targets, weight, options) -> (loss_rows,
  lse)`` (float64 per-row losses of probability targets and the log-partitions
  :math:`\\ell` of their shifted tempered logits) and its
  backward ``crossent::softmax_ce_probs_v3_backward`` (``upstream * dL_i/dz_i`` in the
  logits' dtype, each entry formed in float64 and rounded once, from the saved
  ``lse``), over ``(rows, classes)`` views, for the CPU
  (:func:`crossent.torch._launch.uses_target_op`). Autograd saves the logits, the
  targets, the weights and the ``lse``: no float64 copy of the logits. ``_v2``: issue
  13 added ``lse`` (the backward recomputed it per block); ``_v3``: that output became
  :math:`\\ell` of :math:`(c - m)/T` instead of the log-sum-exp of :math:`c/T` (the
  temperature divides after the shift), a changed meaning with the same schema, which
  takes a new name too (a cached graph would pair the old forward's ``lse`` with the
  new backward). Its ``torch.func.vmap`` rule passes the examples' rows as one call's
  rows (:func:`_probs_vmap`); a ``create_graph`` backward gives the op's gradient the
  graph of the generic rows' (:func:`_twice_differentiable`).
* ``crossent::linear_cross_entropy_v4(...) -> (loss, lse, label_log_p, grad_input,
  grad_weight, grad_bias)``: the gradients are formed in the forward for the scalar
  reductions when ``need_grad`` (empty tensors otherwise; float32 for bfloat16/float16
  tensors), and the backward scales them by the incoming scalar and rounds them to the
  tensors' dtypes; otherwise the backward calls
  ``crossent::linear_cross_entropy_v4_backward``, which recomputes the logits blocks
  from the float64 ``lse`` and ``label_log_p`` (``log p_y``: its label entry
  exact at any confidence). ``_v2``: issue 13 added ``label_log_p`` (a changed schema
  takes a new name, as above); ``_v3``: ``lse`` became each row's ``(m, ell)``, shape
  ``(N, 2)`` (the temperature divides after the shift); ``_v4``: the formed gradients
  of bfloat16/float16 tensors became float32, rounded after the upstream scalar.

This module is not annotated with ``from __future__ import annotations``: the custom
op machinery reads the annotations to infer each schema.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .. import _torch_binary
from .._checks import check_logits_of_rows
from ..errors import InputError, InputTypeError
from . import _backend, _launch, _targets
from ._agreement import untraced_exchange
from ._arguments import callers_names, examples, first_order_only
from ._focal_eager import closed_gradient
from ._labels import check_class_ids
from ._linear import (
    Gradients,
    LinearProblem,
    auto_chunks,
    backward_pass,
    forward_pass,
    row_stats,
)
from ._reduction import rows_in_range_total, rows_upstream, weighted_mean

__all__ = [
    "LabelsFunction",
    "LinearFunction",
    "formed_gradients_scaled",
    "linear_cross_entropy_backward",
    "linear_cross_entropy_op",
    "plain_label_rows",
    "probability_targets_checked",
    "refused_on_every_rank",
    "refused_while_traced",
    "sigmoid_ce",
    "sigmoid_ce_backward",
    "sigmoid_ce_input_grads",
    "sigmoid_inputs_checked",
    "softmax_ce_labels",
    "softmax_ce_labels_backward",
    "softmax_ce_probs",
    "softmax_ce_probs_backward",
    "softmax_focal",
    "softmax_focal_backward",
]

Tensor = torch.Tensor


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------- softmax cross-entropy


@torch.library.custom_op("crossent::softmax_ce_labels_v3", mutates_args=())
def softmax_ce_labels(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    batch_shape: list[int],
    ignore_index: int | None,
    options: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row losses (float32; float64 for float64 logits), float64 log-sum-exps,
    float64 ``log p_y`` (``(z'_y - m) - ell`` from the row statistics, of class 0 on
    ignored rows: the backward's label entry, exact at any confidence; issue 13) and
    the per-row losses in float64 (finite where a float32 row is ``inf`` by float32's
    range only). Off the CPU the second output is each row's ``ell`` instead
    (``_launch.forward``).

    ``options``: the numeric options, packed by :func:`crossent.torch._backend.pack`.
    """
    if labels.device.type == "cpu":
        check_class_ids(
            labels, classes=logits.shape[1], ignore_index=ignore_index, shape=tuple(batch_shape)
        )
    opts = _backend.unpack(options)
    try:
        return _launch.forward(logits, labels, weight, opts, ignore_index=ignore_index)
    except (InputError, InputTypeError) as error:
        # The logits are ``cross_entropy``'s ``input`` (compiled calls too; branch wrap1)
        callers_names(error, {"logits": "input"})
        raise


# The fake (meta) kernels take the op's arguments positionally (the dispatcher passes
# them so: no schema here has keyword-only arguments) and name only those they read.


@softmax_ce_labels.register_fake
def _softmax_ce_labels_fake(logits: Tensor, *_: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n = logits.shape[0]
    return (
        logits.new_empty((n,), dtype=_acc(logits.dtype)),
        logits.new_empty((n,), dtype=torch.float64),
        logits.new_empty((n,), dtype=torch.float64),
        logits.new_empty((n,), dtype=torch.float64),
    )


@torch.library.custom_op("crossent::softmax_ce_labels_v2_backward", mutates_args=())
def softmax_ce_labels_backward(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    label_log_p: Tensor,
    ignore_index: int | None,
    options: list[float],
) -> Tensor:
    """``upstream[i] * d L_i / d logits[i]`` in the dtype of ``logits``, from the forward's
    ``lse`` and ``label_log_p``."""
    opts = _backend.unpack(options)
    return _launch.backward(
        upstream, logits, labels, weight, lse, label_log_p, opts, ignore_index=ignore_index
    )


@softmax_ce_labels_backward.register_fake
def _softmax_ce_labels_backward_fake(upstream: Tensor, logits: Tensor, *_: Any) -> Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _ce_setup_context(
    ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor, Tensor, Tensor]
) -> None:
    logits, labels, weight, _, ignore_index, options = inputs
    _, lse, label_log_p, _ = output
    ctx.save_for_backward(logits, labels, weight, lse, label_log_p)
    ctx.options = (ignore_index, options)
    ctx.mark_non_differentiable(lse, label_log_p)


def _ce_backward(
    ctx: Any, grad_rows: Tensor, *grads: Tensor | None, recompute: Callable[..., Any] | None = None
) -> tuple[Any, ...]:
    # ``recompute``: the backward op (default :func:`softmax_ce_labels_backward`; its
    # twin with the options as a tensor under ``torch.compile``, ``_traced_options``).
    logits, labels, weight, lse, label_log_p = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad_rows = rows_upstream(grad_rows, grads[2])
        grad = (recompute or softmax_ce_labels_backward)(
            grad_rows, logits, labels, weight, lse, label_log_p, *ctx.options
        )
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():  # create_graph
            grad = _labels_twice_differentiable(grad, grad_rows, logits, labels, weight, ctx)
    return (grad,) + (None,) * 5


softmax_ce_labels.register_autograd(_ce_backward, setup_context=_ce_setup_context)


# torch.func: vmap rules of the class-id ops, and their autograd.Function twin. A custom
# op's autograd (``register_autograd``) is an old-style ``autograd.Function`` inside
# PyTorch: torch.func.grad, vjp and jacrev refuse it ("must override the setup_context
# staticmethod"). ``LabelsFunction`` calls the same ops with the same setup and
# backward, and vmap's generated rule batches its forward and backward through the
# ops' vmap rules below; the functional forms take it under torch.func only
# (``_arguments.under_torch_func``), so eager and compiled calls keep the ops.


def _batch_first(x: Tensor, dim: int | None, size: int) -> Tensor:
    """``x`` with vmap's batch axis first (broadcast to ``size`` where unbatched)."""
    return x.expand(size, *x.shape) if dim is None else x.movedim(dim, 0)


def _each_example(
    op: Any, size: int, in_dims: tuple[int | None, ...], args: tuple[Any, ...]
) -> tuple[Any, Any]:
    """vmap's result of ``op`` by one call an example (PyTorch's fallback, without its
    performance warning): for a batched argument the rows cannot share (per-example
    class weights; the linear losses, whose reductions and gradients sum over rows)."""
    results = []
    for b in range(size):
        call = [
            a.select(d, b) if isinstance(a, Tensor) and isinstance(d, int) else a
            for a, d in zip(args, in_dims, strict=True)
        ]
        results.append(op(*call))
    if isinstance(results[0], Tensor):
        return torch.stack(results), 0
    stacked = tuple(torch.stack(parts) for parts in zip(*results, strict=True))
    return stacked, (0,) * len(stacked)


def _rows_of_examples(x: Tensor, dim: int | None, size: int) -> Tensor:
    """The examples' rows (each of shape ``(rows, *tail)``) as one call's rows."""
    x = _batch_first(x, dim, size)
    return x.reshape(size * x.shape[1], *x.shape[2:]).contiguous()


def _labels_vmap(
    info: Any,
    in_dims: tuple[int | None, ...],
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    batch_shape: list[int],
    ignore_index: int | None,
    options: list[float],
) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], tuple[int, int, int, int]]:
    """``torch.func.vmap`` of :func:`softmax_ce_labels`: the examples' rows as one call's
    rows (each row's values are its own), the batch shape ``(examples, *batch_shape)``
    (a bad class id is named by its example and row). Class weights of each example:
    one call an example."""
    size = info.batch_size
    if in_dims[2] is not None:
        args = (logits, labels, weight, batch_shape, ignore_index, options)
        return _each_example(softmax_ce_labels, size, in_dims, args)
    n = _batch_first(labels, in_dims[1], size).shape[1]
    out = softmax_ce_labels(
        _rows_of_examples(logits, in_dims[0], size),
        _rows_of_examples(labels, in_dims[1], size),
        weight,
        [size, *batch_shape],
        ignore_index,
        options,
    )
    rows, lse, log_p, wide = (x.reshape(size, n) for x in out)
    return (rows, lse, log_p, wide), (0, 0, 0, 0)


softmax_ce_labels.register_vmap(_labels_vmap)


def _labels_backward_vmap(
    info: Any,
    in_dims: tuple[int | None, ...],
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    label_log_p: Tensor,
    ignore_index: int | None,
    options: list[float],
) -> tuple[Tensor, int]:
    """``torch.func.vmap`` of :func:`softmax_ce_labels_backward`, as :func:`_labels_vmap`."""
    size = info.batch_size
    args = (upstream, logits, labels, weight, lse, label_log_p, ignore_index, options)
    if in_dims[3] is not None:
        return _each_example(softmax_ce_labels_backward, size, in_dims, args)
    z = _batch_first(logits, in_dims[1], size)
    u, z_rows, y, s1, s2 = (
        _rows_of_examples(x, in_dims[i], size)
        for x, i in ((upstream, 0), (logits, 1), (labels, 2), (lse, 4), (label_log_p, 5))
    )
    grad = softmax_ce_labels_backward(u, z_rows, y, weight, s1, s2, ignore_index, options)
    return grad.reshape(z.shape), 0


softmax_ce_labels_backward.register_vmap(_labels_backward_vmap)


class _Settings:
    """Non-tensor arguments of an ``autograd.Function`` as one pytree leaf. Under
    forward mode (``jacfwd(jacrev(...))``) PyTorch's generated vmap rule pairs the
    flattened in-dims of the forward's arguments with their tangents, one an
    argument; a list argument (the ops' packed options) flattens to more in-dims
    than tangents (its ``treespec.unflatten`` ValueError)."""

    __slots__ = ("values",)

    def __init__(self, *values: Any) -> None:
        self.values = values


class _FirstOrder(torch.autograd.Function):
    """A backward op called in a backward under torch.func, which differentiates that
    backward too (torch.func.grad's backward builds a graph, as ``create_graph``): the
    op's own autograd is refused there (as the forward op's), and the op has no
    derivative; a second derivative through it (reverse or forward mode: ``hessian``,
    ``jacfwd(jacrev(...))``, ``jvp`` of ``grad``) is an :class:`InputError` naming the
    loss and what to use, as it is outside torch.func. The linear losses only: the
    class ids' backward is :class:`_LabelsGrad`."""

    generate_vmap_rule = True

    @staticmethod
    def call(op: Any, loss: str, use: str, *args: Any) -> Any:
        """``op(*args)`` through this function, the list arguments as :class:`_Settings`
        (forward mode of vmap's generated rule: ``jacfwd(jacrev(...))``)."""
        wrapped = (_Settings(a) if isinstance(a, list) else a for a in args)
        return _FirstOrder.apply(op, loss, use, *wrapped)

    @staticmethod
    def forward(op: Any, loss: str, use: str, *args: Any) -> Any:
        return op(*(a.values[0] if isinstance(a, _Settings) else a for a in args))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.loss, ctx.use = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx: Any, *_: Any) -> Any:
        raise _FirstOrder.error(ctx)

    @staticmethod
    def jvp(ctx: Any, *_: Any) -> Any:
        raise _FirstOrder.error(ctx)

    @staticmethod
    def error(ctx: Any) -> InputError:
        return InputError(
            f"crossent.torch.{ctx.loss} has no second derivative under torch.func (its "
            f"backward is a fused kernel): for a Hessian, jvp of grad or a gradient "
            f"penalty use {ctx.use}"
        )


def _one_hot_rows(labels: Tensor, classes: int, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    r"""``(targets, active)``: the class ids as float64 one-hot rows,
    :math:`t_{ic} = [y_i = c]\,[y_i \ne \text{ignore\_index}]` (all 0 on an ignored
    row), and the rows not ignored. By comparison with ``arange(classes)``:
    ``F.one_hot`` reads the labels' maximum, an error under ``torch.func.vmap``. Used by
    both twice-differentiable label gradients (:func:`_plain_label_gradient`,
    :func:`_labels_twice_differentiable`)."""
    active = torch.ones_like(labels, dtype=torch.bool)
    if ignore_index is not None:
        active = labels != ignore_index
    ids = torch.arange(classes, device=labels.device)
    return ((labels[..., None] == ids) & active[..., None]).to(torch.float64), active


def _generic_rows(
    logits: Tensor, targets: Tensor, weight: Tensor | None, options: list[float]
) -> Tensor:
    """The float64 rows of the generic path (:func:`_launch.target_rows`, plain
    differentiable torch operations) of the one-hot ``targets`` (:func:`_one_hot_rows`)."""
    w = None if weight is None else weight.to(torch.float64)
    return _launch.target_rows(logits.to(torch.float64), targets, w, _backend.unpack(options))


def plain_label_rows(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    ignore_index: int | None,
    options: list[float],
) -> tuple[Tensor, Tensor]:
    r"""Per-row losses of class ids by plain differentiable torch operations (rows x
    classes logits): the generic float64 rows of the labels as one-hot targets
    (:func:`_generic_rows`, the rows whose derivatives :class:`_LabelsGrad` takes), 0
    on ignored rows, in :func:`softmax_ce_labels`' dtype (float32; float64 for float64
    logits), and those rows in float64 (:func:`softmax_ce_labels`' fourth output). For
    nested forward mode (``jacfwd(jacfwd(...))``), whose inner ``jvp`` PyTorch does not
    differentiate when it is an ``autograd.Function``'s rule (the
    second derivative came out 0): here every derivative, of any order, is torch's own.
    The class ids and the logits are checked first, as the op checks them (under
    ``vmap``, every example's)."""
    _check_plain_inputs(logits, labels, ignore_index)
    targets, active = _one_hot_rows(labels, logits.shape[-1], ignore_index)
    rows = torch.where(active, _generic_rows(logits, targets, weight, options), 0.0)
    return rows.to(_acc(logits.dtype)), rows.to(torch.float64)


def _check_plain_inputs(logits: Tensor, labels: Tensor, ignore_index: int | None) -> None:
    """:func:`softmax_ce_labels`' checks for :func:`plain_label_rows`: the class ids,
    and the logits of the rows that count (an :class:`InputError` naming the entry of a
    NaN or an infinity; ignored rows are not read), on the values under torch.func's
    wrappers (:func:`examples`)."""
    classes = logits.shape[-1]
    y, z = (examples(x.detach())[0] for x in (labels, logits))
    # Plain tensors here: an operation under torch.func makes a wrapped tensor again.
    with torch._C._DisableFuncTorch():
        check_class_ids(y, classes=classes, ignore_index=ignore_index)
        if bool(torch.isfinite(z).all()):
            return
        active = torch.ones_like(y, dtype=torch.bool)
        if ignore_index is not None:
            active = y != ignore_index
        active, z = torch.broadcast_tensors(active[..., None], z)
        rows = z.reshape(-1, classes).to(torch.float64).cpu().numpy()
        kept = active[..., 0].reshape(-1).cpu().numpy()
    check_logits_of_rows(rows, kept, name="logits", xp=np, axis=1)


def _plain_label_gradient(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    ignore_index: int | None,
    options: list[float],
) -> Tensor:
    r"""``upstream[i] * dL_i/dlogits[i]`` of class ids by differentiable torch operations
    (``torch.func.vjp`` of the generic float64 rows of the labels as one-hot targets, as
    :func:`_labels_twice_differentiable`), in the logits' dtype: the function whose
    derivatives :class:`_LabelsGrad` takes (its values are the backward op's)."""
    targets, active = _one_hot_rows(labels, logits.shape[-1], ignore_index)

    def rows(z: Tensor) -> Tensor:
        return _generic_rows(z, targets, weight, options)

    pull = torch.func.vjp(rows, logits)[1]
    u = torch.where(active, upstream.to(torch.float64), 0.0)
    (grad,) = pull(u)
    return grad


class _LabelsGrad(torch.autograd.Function):
    r"""The backward op of class ids under torch.func, twice differentiable: its value
    the op's (:func:`softmax_ce_labels_backward`, exact at any confidence), its
    derivatives (backward and forward mode, so ``hessian``, ``jacfwd(jacrev(...))``,
    ``jvp`` of ``grad``, ``grad`` of ``grad``) those of :func:`_plain_label_gradient`,
    formed only when asked (a first derivative costs the op alone). As the eager
    ``create_graph`` backward (:func:`_labels_twice_differentiable`), the entries where
    the plain gradient is not finite pass no derivative. ``settings``: ``ignore_index``
    and the packed options (:class:`_Settings`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        upstream: Tensor,
        logits: Tensor,
        labels: Tensor,
        weight: Tensor | None,
        lse: Tensor,
        label_log_p: Tensor,
        settings: _Settings,
    ) -> Tensor:
        return softmax_ce_labels_backward(
            upstream, logits, labels, weight, lse, label_log_p, *settings.values
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        upstream, logits, labels, weight = inputs[:4]
        ctx.save_for_backward(upstream, logits, labels, weight)
        ctx.save_for_forward(upstream, logits, labels, weight)
        ctx.settings = inputs[6].values

    @staticmethod
    def _plain(ctx: Any) -> tuple[Any, Tensor, Tensor]:
        upstream, logits, labels, weight = ctx.saved_tensors

        def plain(u: Tensor, z: Tensor) -> Tensor:
            return _plain_label_gradient(u, z, labels, weight, *ctx.settings)

        return plain, upstream, logits

    @staticmethod
    def backward(ctx: Any, cotangent: Tensor) -> tuple[Any, ...]:
        plain, upstream, logits = _LabelsGrad._plain(ctx)
        grad, pull = torch.func.vjp(plain, upstream, logits)[:2]
        du, dz = pull(torch.where(torch.isfinite(grad), cotangent, 0.0))
        return (du, dz) + (None,) * 5

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> Tensor:
        plain, upstream, logits = _LabelsGrad._plain(ctx)
        # Fresh tensors: a primal or a tangent may be an expanded view (the upstream
        # of a sum's backward, jacfwd's basis), which forward mode's make_dual refuses.
        primals = (upstream.clone(), logits.clone())
        du, dz = (
            torch.zeros_like(x) if t is None else t.clone()
            for x, t in zip(primals, tangents[:2], strict=True)
        )
        grad, tangent = torch.func.jvp(plain, primals, (du, dz))[:2]
        return torch.where(torch.isfinite(grad), tangent, 0.0)


def _unmarked(outputs: tuple[Tensor, ...]) -> tuple[bool, ...]:
    """Which of ``outputs``, marked non-differentiable by a ``setup_context``, stay
    differentiable all the same: those of vmap's generated rule (``generate_vmap_rule``),
    whose ``setup_context`` runs on vmap's wrappers of the outputs (``BatchedTensor``).
    ``ctx.mark_non_differentiable`` does not match a wrapper to its output (torch 2.13:
    ``CtxCustomSave`` unwraps the tensors of ``save_for_backward`` and
    ``save_for_forward`` only), and the ``jvp`` rule must give those outputs a tangent
    (:func:`_stat_tangents`): a None there is PyTorch's internal assert "Expected both
    tensor and its forward grad to be floating point or complex" (pytorch/pytorch#90067,
    open), which ``torch.func.jvp`` of ``torch.func.vmap`` of the losses raised."""
    return tuple(torch._C._functorch.is_batchedtensor(t) for t in outputs)


def _stat_tangents(unmarked: tuple[bool, ...], like: tuple[Tensor, ...]) -> tuple[Any, ...]:
    """The tangents of the outputs marked non-differentiable: zeros like ``like`` where
    the mark did not take (:func:`_unmarked`), else None (eager forward mode refuses a
    tangent of a non-differentiable output)."""
    return tuple(torch.zeros_like(x) if u else None for u, x in zip(unmarked, like, strict=True))


class LabelsFunction(torch.autograd.Function):
    r""":func:`softmax_ce_labels` with its autograd, for ``torch.func``'s transforms.

    The op's setup and backward (:func:`_ce_setup_context`, :func:`_ce_backward`), in
    the form torch.func takes (forward without ``ctx``, ``setup_context``), vmap's
    generated rule (the ops' vmap rules) and a forward-mode rule: the tangent of row
    :math:`i` is :math:`\sum_c (\partial L_i/\partial z_{ic})\,\dot z_{ic}`, the
    backward op's gradient for an upstream of ones (one pass; under ``jacfwd`` one
    pass for every tangent, the rows' gradient being unbatched). The backward is
    :class:`_LabelsGrad` (second derivatives). :meth:`call` takes the op's arguments;
    the non-tensor ones travel as one :class:`_Settings` (forward mode of vmap's
    generated rule, ``jacfwd(jacfwd(...))``).
    """

    generate_vmap_rule = True

    @staticmethod
    def call(
        logits: Tensor,
        labels: Tensor,
        weight: Tensor | None,
        batch_shape: list[int],
        ignore_index: int | None,
        options: list[float],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:func:`softmax_ce_labels`' values with this function's autograd."""
        settings = _Settings(batch_shape, ignore_index, options)
        return LabelsFunction.apply(logits, labels, weight, settings)

    @staticmethod
    def forward(
        logits: Tensor, labels: Tensor, weight: Tensor | None, settings: _Settings
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return softmax_ce_labels(logits, labels, weight, *settings.values)

    @staticmethod
    def setup_context(
        ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor, Tensor, Tensor]
    ) -> None:
        _ce_setup_context(ctx, (*inputs[:3], *inputs[3].values), output)
        ctx.unmarked = _unmarked(output[1:3])
        logits, labels, weight = inputs[:3]
        ctx.save_for_forward(logits, labels, weight, output[1], output[2])

    @staticmethod
    def backward(ctx: Any, grad_rows: Tensor, *grads: Tensor | None) -> tuple[Any, ...]:
        logits, labels, weight, lse, label_log_p = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad_rows = rows_upstream(grad_rows, grads[2])
            settings = _Settings(*ctx.options)
            grad = _LabelsGrad.apply(grad_rows, logits, labels, weight, lse, label_log_p, settings)
        return (grad,) + (None,) * 3

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
        logits, labels, weight, lse, label_log_p = ctx.saved_tensors
        stats = _stat_tangents(ctx.unmarked, (lse, label_log_p))
        if tangent is None:
            return None, *stats, None
        acc = _acc(logits.dtype)
        ones = torch.ones(logits.shape[0], dtype=acc, device=logits.device)
        # _LabelsGrad: the tangent differentiable again (jacrev(jacfwd(...)), jacfwd's).
        settings = _Settings(*ctx.options)
        grad = _LabelsGrad.apply(ones, logits, labels, weight, lse, label_log_p, settings)
        rows = (grad.to(acc) * tangent.to(acc)).sum(-1)
        return rows, *stats, rows.to(torch.float64)


@torch.library.custom_op("crossent::softmax_ce_probs_v3", mutates_args=())
def softmax_ce_probs(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    options: list[float],
    batch_shape: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Float64 per-row losses of probability ``targets`` (rows x classes) under ``logits``
    (the float64 operations of :func:`crossent.torch._launch.target_rows`, by blocks)
    and the rows' float64 log-partitions of the shifted tempered logits
    (``_launch._capped_logits``' sigma; the op's ``lse``).

    The targets are checked as the NumPy API checks them (:mod:`crossent.torch._targets`:
    finite, in [0, 1], each row's sum within the row-sum tolerance of 1), each block's
    per-row flags formed on the float64 targets the forward makes anyway, then read
    once: an :class:`InputError` naming the row by its index in ``batch_shape`` (the
    caller's batch shape; None: the flat row) and the value. Then the logits, as the
    class ids' op and the NumPy API check them (no NaN, no ``+inf``, no row entirely
    ``-inf``; issue 13, branch hostile24: such a row's loss was a silent NaN), from each
    row's largest logit. On data in host memory, so under ``torch.compile`` too (as
    the class ids of ``softmax_ce_labels``).

    ``options``: the numeric options, packed by :func:`crossent.torch._backend.pack`.
    ``batch_shape`` (trailing, default None) names rows only: a graph cached with the
    four-argument call replays unchanged, so the op keeps its name.
    """
    bad = torch.empty(targets.shape[0], dtype=torch.bool)
    dead = torch.empty(targets.shape[0], dtype=torch.bool)
    opts = _backend.unpack(options)
    out = _launch.target_forward(logits, targets, weight, opts, bad=bad, dead=dead)
    shape = None if batch_shape is None else tuple(batch_shape)
    _targets.raise_bad_row(targets, bad, batch_shape=shape, storage_dtype=targets.dtype)
    _targets.raise_bad_logits(logits, dead, batch_shape=shape)
    return out


@softmax_ce_probs.register_fake
def _softmax_ce_probs_fake(logits: Tensor, *_: Any) -> tuple[Tensor, Tensor]:
    n = logits.shape[0]
    return (
        logits.new_empty((n,), dtype=torch.float64),
        logits.new_empty((n,), dtype=torch.float64),
    )


@torch.library.custom_op("crossent::softmax_ce_probs_v3_backward", mutates_args=())
def softmax_ce_probs_backward(
    upstream: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    options: list[float],
) -> Tensor:
    """``upstream[i] * d L_i / d logits[i]`` in the dtype of ``logits``, each entry formed
    in float64 and rounded once, from the forward's ``lse``."""
    opts = _backend.unpack(options)
    return _launch.target_backward(upstream, logits, targets, weight, lse, opts)


@softmax_ce_probs_backward.register_fake
def _softmax_ce_probs_backward_fake(upstream: Tensor, logits: Tensor, *_: Any) -> Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _probs_setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    logits, targets, weight, options = inputs[:4]
    lse = output[1]
    ctx.save_for_backward(logits, targets, weight, lse)
    ctx.mark_non_differentiable(lse)
    ctx.options = options


def _probs_backward(
    ctx: Any, grad_rows: Tensor, *_: Tensor | None, recompute: Callable[..., Any] | None = None
) -> tuple[Any, ...]:
    # ``recompute``: the backward op (its twin under ``torch.compile``, as above).
    logits, targets, weight, lse = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        backward = recompute or softmax_ce_probs_backward
        grad = backward(grad_rows, logits, targets, weight, lse, ctx.options)
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():  # create_graph
            grad = _twice_differentiable(grad, grad_rows, logits, targets, weight, ctx.options)
    return (grad, None, None, None, None)


def _twice_differentiable(
    grad: Tensor,
    grad_rows: Tensor,
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    options: list[float],
) -> Tensor:
    r"""The op's gradient ``grad`` (its values) with the graph of autograd's gradient
    :math:`g` of the generic path's float64 rows (:func:`_launch.target_rows`, the
    forward's operations), for a ``create_graph`` backward (a gradient penalty,
    ``gradgradcheck``):

    .. math:: G + (g - \operatorname{sg}(g)),

    :math:`\operatorname{sg}` a detach: the value :math:`G` (:math:`g - g = 0` exactly;
    where :math:`g` is not finite that term is 0), every derivative :math:`g`'s, of
    any order, in the logits (the saved input, its graph) and in the upstream rows.
    The backward op has no autograd formula of its own: its second derivative was an
    error, and float64 took plain autograd for it, whose :math:`p - t` at :math:`p
    \to 1` keeps no digit of :math:`1 - p` (issue 13 follow-up)."""
    opts = _backend.unpack(options)
    rows = _launch.target_rows(
        logits.to(torch.float64),
        targets.to(torch.float64),
        None if weight is None else weight.to(torch.float64),
        opts,
    )
    (plain,) = torch.autograd.grad(rows, logits, grad_rows.to(rows.dtype), create_graph=True)
    finite = torch.isfinite(plain.detach())
    return grad.detach() + torch.where(finite, plain - plain.detach(), torch.zeros_like(plain))


softmax_ce_probs.register_autograd(_probs_backward, setup_context=_probs_setup_context)


def _labels_twice_differentiable(
    grad: Tensor, grad_rows: Tensor, logits: Tensor, labels: Tensor, weight: Tensor | None, ctx: Any
) -> Tensor:
    r""":func:`_twice_differentiable` for class ids: the labels as one-hot targets, whose
    probability-target rows are the class-id rows (smoothing
    :math:`(1-\varepsilon)w_y\ell_y + \tfrac{\varepsilon}{C}\sum_c w_c\ell_c`, z-loss weight
    :math:`\sum_c w_c t_c = w_y`), the ignored rows' upstream and targets 0; so
    ``create_graph`` backwards (gradient penalties, ``gradgradcheck``) have
    ``F.cross_entropy``'s second derivatives (they were an error)."""
    ignore_index, options = ctx.options
    targets, active = _one_hot_rows(labels, logits.shape[-1], ignore_index)
    upstream = torch.where(active, grad_rows, torch.zeros_like(grad_rows))
    return _twice_differentiable(grad, upstream, logits, targets, weight, options)


def _probs_vmap(
    info: Any,
    in_dims: tuple[int | None, ...],
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    options: list[float],
    batch_shape: list[int] | None = None,
) -> tuple[tuple[Tensor, Tensor], tuple[int, int]]:
    """``torch.func.vmap`` of :func:`softmax_ce_probs`: the examples' rows as one op's
    rows (each row's values are its own: the same numbers, one call; PyTorch's
    fallback called the op once an example, with a performance warning). Class
    weights of each example (batched): one call an example. A bad target row is named
    by its example and its row."""
    size = info.batch_size
    z, t = _batch_first(logits, in_dims[0], size), _batch_first(targets, in_dims[1], size)
    if weight is not None and in_dims[2] is not None:
        w = weight.movedim(in_dims[2], 0)
        each = [softmax_ce_probs(z[b], t[b], w[b], options, batch_shape) for b in range(size)]
        rows, lse = (torch.stack(parts) for parts in zip(*each, strict=True))
        return (rows, lse), (0, 0)
    n, classes = z.shape[1], z.shape[2]
    flat_z = z.reshape(size * n, classes).contiguous()
    flat_t = t.reshape(size * n, classes).contiguous()
    shape = [size, *(batch_shape if batch_shape is not None else [n])]
    rows, lse = softmax_ce_probs(flat_z, flat_t, weight, options, shape)
    return (rows.reshape(size, n), lse.reshape(size, n)), (0, 0)


softmax_ce_probs.register_vmap(_probs_vmap)


@torch.library.custom_op("crossent::probability_targets_checked", mutates_args=())
def probability_targets_checked(target: Tensor) -> Tensor:
    """A float64 zero, after :func:`crossent.torch._targets.check_targets_eagerly` of
    ``target`` (the caller's layout, classes on axis 1): an :class:`InputError` naming
    the row, the entry and the value. For the generic path of probability targets
    under ``torch.compile`` (targets or class weights that require grad), where the
    eager check cannot read values while Dynamo traces: the op is one opaque node
    (no graph break) that checks at run time, on data in host memory, and its zero,
    added to the rows, keeps it in the graph. Called on detached targets: no autograd."""
    _targets.check_targets_eagerly(target)
    return torch.zeros((), dtype=torch.float64, device=target.device)


@probability_targets_checked.register_fake
def _probability_targets_checked_fake(target: Tensor) -> Tensor:
    return target.new_empty((), dtype=torch.float64)


@torch.library.custom_op("crossent::sigmoid_ce_v1", mutates_args=())
def sigmoid_ce(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    """``binary_cross_entropy_with_logits`` as an eager call computes it (its value
    checks, its loss), for ``torch.compile`` and
    ``torch.export``, which cannot trace the checks' reads, the weights' scaling nor
    the exact gradient; its autograd gives the logits' gradient
    (:func:`sigmoid_ce_backward`) and those of targets and weights that require one
    (:func:`sigmoid_ce_input_grads`), first derivatives only (neither backward op is
    differentiable again: a ``create_graph`` backward under ``torch.compile`` has no
    second derivative here; call the loss eagerly for one)."""
    from . import _family

    with torch.no_grad():
        loss = _family.binary_cross_entropy_with_logits(
            logits,
            targets,
            weight,
            reduction=reduction,
            pos_weight=pos_weight,
            label_smoothing=label_smoothing,
        )
    return loss.clone() if loss._base is not None else loss


@sigmoid_ce.register_fake
def _sigmoid_ce_fake(
    logits: Tensor,
    targets: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    dtype = torch.promote_types(torch.promote_types(logits.dtype, targets.dtype), torch.float32)
    shape = logits.shape if reduction == "none" else ()
    return logits.new_empty(shape, dtype=dtype)


# Its backward ops and autograd formula: the shared wrapper's (``crossent._torch_binary``,
# the losses package's too; moved there in branch wrap1, the same names and schemas).
sigmoid_ce_backward = _torch_binary.sigmoid_ce_backward
_sigmoid_ce_backward_fake = _torch_binary.sigmoid_ce_backward_fake
sigmoid_ce_input_grads = _torch_binary.sigmoid_ce_input_grads
_sigmoid_ce_input_grads_fake = _torch_binary.sigmoid_ce_input_grads_fake
_sigmoid_ce_grad = _torch_binary.op_gradients


def _sigmoid_ce_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, targets, weight, pos_weight, eps, reduction = inputs
    ctx.save_for_backward(logits, targets, weight, pos_weight)
    ctx.eps, ctx.reduction = eps, reduction


sigmoid_ce.register_autograd(_sigmoid_ce_grad, setup_context=_sigmoid_ce_setup)


@torch.library.custom_op("crossent::sigmoid_inputs_checked", mutates_args=())
def sigmoid_inputs_checked(
    logits: Tensor, targets: Tensor, weight: Tensor | None, pos_weight: Tensor | None
) -> Tensor:
    """A float64 zero, after the value checks of :func:`crossent.sigmoid_cross_entropy`
    (logits not NaN, targets in [0, 1], ``weight`` and ``pos_weight`` non-negative: its
    :class:`InputError` naming the argument as the caller passed it, the index and the
    value). For ``sigmoid_focal_loss`` under ``torch.compile`` and ``torch.export``,
    whose eager checks read values: one opaque node (no graph break) that checks at run
    time, its zero added to the loss to keep it in the graph; the logits are that
    drop-in's ``inputs`` (branch wrap1: the message said `logits`). Called on detached
    tensors: no autograd."""
    from ..losses import _sigmoid

    try:
        _sigmoid._binary(logits, targets, weight=weight, pos_weight=pos_weight, reduction="none")
    except (InputError, InputTypeError) as error:
        callers_names(error, {"logits": "inputs"})  # (the focal drop-in's argument)
        raise
    return torch.zeros((), dtype=torch.float64, device=logits.device)


@sigmoid_inputs_checked.register_fake
def _sigmoid_inputs_checked_fake(
    logits: Tensor, targets: Tensor, weight: Tensor | None, pos_weight: Tensor | None
) -> Tensor:
    return logits.new_empty((), dtype=torch.float64)


@torch.library.custom_op("crossent::input_refused_v1", mutates_args=())
def input_refused(like: Tensor, type_error: bool, message: str) -> Tensor:
    """Raise crossent's :class:`InputError` (:class:`InputTypeError` where
    ``type_error``) with ``message``, at run time. For a call that Dynamo traces with
    an option it refuses: raised while tracing, the error came out of
    ``torch.compile(fullgraph=True)`` as Dynamo's ``Unsupported: Observed exception``;
    the option's check runs on the Python value while tracing, without raising, and the
    graph holds this one op, whose error is the eager call's. ``like``: a tensor of the
    call (detached), whose dtype the fake result takes."""
    raise (InputTypeError if type_error else InputError)(message)


@input_refused.register_fake
def _input_refused_fake(like: Tensor, type_error: bool, message: str) -> Tensor:
    return like.new_empty((), dtype=torch.promote_types(like.dtype, torch.float32))


def refused_while_traced(
    like: object, check: Callable[[], object], agreement: tuple[str, Any] | None = None
) -> Tensor | None:
    """While Dynamo traces: the op ``crossent::input_refused_v1`` (crossent's error at
    run time, eager's type and message) where ``check`` (a public loss's option checks,
    in eager's order, on Python values and shapes only) raises an :class:`InputError`;
    else None (also in eager calls and where ``like``, the call's first tensor, is none).

    Raised while tracing, the error came out of ``torch.compile(fullgraph=True)`` as
    Dynamo's ``Unsupported: Observed exception``; every public loss of crossent.torch
    calls this first.

    ``agreement``: ``(function, group)`` of a distributed loss, whose eager call shares a
    rank's failed checks with the group's other ranks
    (:func:`crossent.torch._agreement.exchange`). On the default group (``None`` or
    ``WORLD``) its refusal is the op ``crossent::refused_on_every_rank_v1``, which runs
    that exchange at run time: eager's error on every rank, also on ranks that call
    eagerly or whose own checks pass. A graph cannot name another group (it is resolved
    from no argument at run time): there the refusal raises on this rank alone, and the
    group's other ranks wait in their agreement until the group's timeout unless they
    refuse too (the same bad option on every rank)."""
    if not torch.compiler.is_compiling() or not isinstance(like, Tensor):
        return None
    try:
        check()
    # InputTypeError by name: it is no InputError (CrossentError and TypeError).
    except (InputError, InputTypeError) as error:
        problem: InputError | InputTypeError = error
    else:
        return None
    type_error = isinstance(problem, InputTypeError)
    if agreement is not None and dist.is_available() and dist.is_initialized():
        function, group = agreement
        if group is None or group is dist.group.WORLD:
            refused: Tensor = refused_on_every_rank(
                like.detach(), type_error, str(problem), function
            )
            return refused
    return input_refused(like.detach(), type_error, str(problem))


@torch.library.custom_op("crossent::refused_on_every_rank_v1", mutates_args=())
def refused_on_every_rank(like: Tensor, type_error: bool, message: str, function: str) -> Tensor:
    """Raise, at run time, what the eager call of the distributed loss ``function`` on the
    default process group raises when this rank's own checks fail with ``message``: its
    agreement (:func:`crossent.torch._agreement.exchange`) with a failed record, so every
    rank raises the same error (on a group of one rank, the error itself). A compiled
    refusal that raised on this rank alone left the other ranks waiting in their
    agreement until the group's timeout."""
    problem = (InputTypeError if type_error else InputError)(message)
    untraced_exchange()(function, dist.group.WORLD, [], problem)
    raise problem  # (not reached: a failed record is never agreed)


@refused_on_every_rank.register_fake
def _refused_on_every_rank_fake(
    like: Tensor, type_error: bool, message: str, function: str
) -> Tensor:
    return _input_refused_fake(like, type_error, message)


@torch.library.custom_op("crossent::softmax_focal_v2", mutates_args=())
def softmax_focal(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> Tensor:
    """``softmax_focal_loss`` as an eager call computes it (its checks, its loss), for
    ``torch.compile`` and ``torch.export``, which cannot trace the checks' reads nor the
    ``'mean'``'s division by the summed label weights (``_family``). Int64 ``labels``;
    its autograd (:func:`softmax_focal_backward`) gives the gradients in ``logits`` and
    ``weight`` by their closed forms (within float rounding of eager's autograd; the
    true derivative at a class weight 0, where eager's masked product gives 0), the
    weights' only where they require grad. (``_v1``'s backward formed the weights'
    gradient on every call: at 1024 x 32000, float32, 'mean', 1.6x the time of one
    that skips it; ``benchmarks/RESULTS.md``.)"""
    try:
        with torch.no_grad():
            loss = _softmax_focal_eager(
                logits, labels, weight, gamma, ignore_index, reduction, True
            )
    except (InputError, InputTypeError) as error:
        # The drop-in's arguments (``input``, ``target``), as its eager call names them
        callers_names(error, {"logits": "input", "labels": "target"})
        raise
    return loss.clone() if loss._base is not None else loss


def _softmax_focal_eager(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
    validate: bool,
) -> Tensor:
    """The generic path of ``crossent.torch.softmax_focal_loss`` (classes on axis 1)."""
    from .. import losses

    loss: Tensor = losses.softmax_focal_loss(
        logits,
        labels,
        gamma=gamma,
        axis=1 if logits.ndim > 1 else 0,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
    )
    return loss


@softmax_focal.register_fake
def _softmax_focal_fake(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> Tensor:
    # The generic path's: the labels' batch shape (or a scalar), in the logits' dtype
    # promoted to float32 at least (the weight's dtype does not change it).
    shape = labels.shape if reduction == "none" else ()
    return logits.new_empty(shape, dtype=torch.promote_types(logits.dtype, torch.float32))


@torch.library.custom_op("crossent::softmax_focal_v2_backward", mutates_args=())
def softmax_focal_backward(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    weight_grad: bool,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> tuple[Tensor, Tensor]:
    """The gradients in ``logits`` and, where ``weight_grad``, ``weight`` (else an empty
    tensor, also for no ``weight``) of :func:`softmax_focal` times ``upstream``, by their
    closed forms (:func:`_focal_gradients`), in the inputs' layouts (the fake kernel's)."""
    gx, gw = _focal_gradients(
        upstream, logits, labels, weight, gamma, ignore_index, reduction, weight_grad=weight_grad
    )
    grad_logits = torch.empty_like(logits).copy_(gx)
    if weight is None or gw is None:
        return grad_logits, logits.new_empty((0,))
    return grad_logits, torch.empty_like(weight).copy_(gw)


_CLOSED_FOCAL_DTYPES = (torch.float32, torch.float64)


def _focal_gradients(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
    *,
    weight_grad: bool = True,
) -> tuple[Tensor, Tensor | None]:
    r"""The gradients of the softmax focal loss in the logits and (``weight_grad``) the
    class weights times ``upstream``, in plain torch operations (no autograd); None for
    the weights' where not ``weight_grad`` (it costs the loss twice more).

    The logits' of float32/float64 logits of shape (N, C): the eager path's closed form
    (``_focal_eager.closed_gradient``: four passes over the logits, float64 per-row
    factors; 2-3x faster than this formula and twice as exact on 512 x 32000 float32
    with class weights, ``benchmarks/RESULTS.md``). Others: :func:`crossent.softmax_focal_loss_grad`
    (the NumPy twin's formula
    :math:`w_y m (p - e_y)(1 - \gamma p_y r)`, :math:`m = (1-p_y)^\gamma`,
    :math:`r = \log p_y / (1 - p_y)` by ``expm1``: finite and 0 at :math:`p_y = 1` for
    every :math:`\gamma \ge 0`), times the upstream gradient (per row for
    ``'none'``). The class weights': with :math:`f_i = -m_i \log p_{iy_i}` (the
    unweighted row loss, 0 on ignored rows) and :math:`u` the upstream gradient,

    .. math:: \frac{\partial L}{\partial w_c} = \sum_{i: y_i = c} u_i f_i
              \quad(\texttt{'none'}, \texttt{'sum'}), \qquad
              \frac{\partial L}{\partial w_c} = \frac{u}{W}\sum_{i: y_i = c} (f_i - L)
              \quad(\texttt{'mean'},\ W = \textstyle\sum_i w_{y_i})

    (0 where :math:`W = 0`, whose mean is 0), the true partial derivatives also at a
    weight 0; :math:`W` and the quotient of weights far from 1 taken at a power of two
    of their size (``losses._weight_scale``), as the loss takes them."""
    from .. import losses
    from ..losses._weight_scale import _times_power_of_two, scaled_weight

    axis = 1 if logits.ndim > 1 else 0
    common: dict[str, Any] = {
        "gamma": gamma,
        "axis": axis,
        "ignore_index": ignore_index,
        "validate": False,
    }
    if logits.ndim == 2 and logits.dtype in _CLOSED_FOCAL_DTYPES:  # (the eager path's)
        grad_logits = closed_gradient(
            upstream, logits, labels, weight, gamma, ignore_index, reduction
        )
    else:
        grad = losses.softmax_focal_loss_grad(
            logits, labels, weight=weight, reduction=reduction, **common
        )
        up = upstream.to(grad.dtype)
        if reduction == "none" and up.ndim > 0:
            up = up.unsqueeze(axis)
        grad_logits = grad * up
    if weight is None or not weight_grad:
        return grad_logits, None
    rows = losses.softmax_focal_loss(logits, labels, reduction="none", **common)  # f_i
    u = upstream.to(rows.dtype)  # (a number, or one per row for 'none')
    active = labels != ignore_index if ignore_index is not None else torch.ones_like(labels) > 0
    safe = torch.where(active, labels, torch.zeros_like(labels)).to(torch.int64)
    zero = torch.zeros_like(rows)
    if reduction == "mean":
        mean = losses.softmax_focal_loss(
            logits, labels, weight=weight, reduction="mean", **common
        ).to(rows.dtype)
        scaled, shift = scaled_weight(weight)
        omega = torch.where(active, torch.as_tensor(scaled).to(rows.dtype)[safe], zero)
        total = omega.sum()
        inverse = torch.where(total > 0, 1 / torch.where(total > 0, total, 1), zero.sum())
        per_row = torch.where(active, rows - mean, zero) * (u * inverse)
        per_row = _times_power_of_two(per_row, -shift) if shift else per_row
    else:
        per_row = torch.where(active, rows * u, zero)
    grad_weight = torch.zeros(weight.shape, dtype=rows.dtype, device=rows.device)
    grad_weight = grad_weight.index_add(0, safe.reshape(-1), per_row.reshape(-1))
    return grad_logits, grad_weight.to(weight.dtype)


@softmax_focal_backward.register_fake
def _softmax_focal_backward_fake(
    upstream: Tensor,
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    weight_grad: bool,
    gamma: float,
    ignore_index: int | None,
    reduction: str,
) -> tuple[Tensor, Tensor]:
    gw = torch.empty_like(weight) if weight is not None and weight_grad else logits.new_empty((0,))
    return torch.empty_like(logits), gw


def _softmax_focal_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, labels, weight, gamma, ignore_index, reduction = inputs
    ctx.save_for_backward(logits, labels, weight)
    ctx.options = gamma, ignore_index, reduction


def _softmax_focal_grad(
    ctx: Any, grad: Tensor, *, backward: Callable[..., Any] | None = None
) -> tuple[Any, ...]:
    # ``backward``: the backward op (default :func:`softmax_focal_backward`; its twin
    # with ``gamma`` a tensor under ``torch.compile``, ``_traced_options``).
    logits, labels, weight = ctx.saved_tensors
    weight_grad = weight is not None and ctx.needs_input_grad[2]
    gx, gw = (backward or softmax_focal_backward)(
        grad, logits, labels, weight, weight_grad, *ctx.options
    )
    return gx, None, gw if weight_grad else None, None, None, None


softmax_focal.register_autograd(_softmax_focal_grad, setup_context=_softmax_focal_setup)


# ----------------------------------------------------------------- linear cross-entropy


def _problem(
    tensors: tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor | None],
    ignore_index: int | None,
    options: list[float],
    chunk_size: int,
    vocab_chunk: int,
) -> LinearProblem:
    """The problem of the ops' ``(input, linear_weight, linear_bias, labels, weight)``.

    ``options`` packed by :func:`crossent.torch._backend.pack`; block sizes 0: automatic.
    """
    return LinearProblem.build(
        *tensors,
        _backend.unpack(options),
        ignore_index=ignore_index,
        chunk_size=chunk_size if chunk_size > 0 else None,
        vocab_chunk=vocab_chunk if vocab_chunk > 0 else None,
    )


def _normalizer_scale(problem: LinearProblem, reduction: str) -> Tensor:
    """1 / sum(omega) for 'mean' (0 when every row is ignored), 1 for 'sum'."""
    if reduction != "mean":
        return torch.ones((), dtype=problem.work, device=problem.h.device)
    total = problem.omega.sum(dtype=torch.float64)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, 1 / safe, torch.zeros_like(total)).to(problem.work)


def _reduced_rows(rows: Tensor, problem: LinearProblem, reduction: str, wide: Tensor) -> Tensor:
    """``'sum'`` or ``'mean'`` of the rows' losses, rounded once to their dtype: the float64
    sum divided by the float64 :math:`\\sum_i \\omega_i` (0 when every row is ignored), as
    ``cross_entropy``'s (issue 13, branch torchmean1: it was multiplied by
    :func:`_normalizer_scale`, rounded to the work dtype first).

    ``wide``: the same rows in float64, whose ``inf`` float32 rows a ``'mean'`` takes
    where their float64 sum is ``inf`` (:func:`._reduction.rows_in_range_total`; issue
    13, branch torchrow1; the gradient, formed from the row statistics, was right
    already)."""
    total = rows.sum(dtype=torch.float64)
    if reduction != "mean":
        return total.to(rows.dtype)
    total = rows_in_range_total(total, rows, wide)
    return weighted_mean(total, problem.omega.sum(dtype=torch.float64)).to(rows.dtype)


def _check_finite(stats: Tensor, batch_shape: list[int], problem: LinearProblem) -> None:
    """An error where a row's maximum :math:`m` or log-partition :math:`\\ell` (the
    forward's ``stats``) is not finite: its logits are not (an ``inf`` LSE
    :math:`m/T + \\ell` of finite logits is its true value, no error), because an input
    holds a NaN or an infinity, or because the products of finite inputs overflow their
    dtype (:func:`_overflow`)."""
    bad = ~torch.isfinite(stats).all(-1)
    if not bool(bad.any()):
        return
    lse = row_stats(stats, problem.options.temperature)
    position = int(torch.argmax(bad.to(torch.int8)))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(position), tuple(batch_shape)))
    where = str(index[0]) if len(index) == 1 else str(index)
    cause = _overflow(problem, position) or (
        "`input`, `linear_weight` or `linear_bias` holds a NaN or an infinity there"
    )
    raise InputError(
        f"the logits of row {where} are not finite (log-sum-exp {float(lse[position])}): {cause}"
    )


def _overflow(problem: LinearProblem, position: int) -> str | None:
    r"""Why row ``position``'s logits :math:`z = hW^\top + b` are not finite when its
    :math:`h`, :math:`W` and :math:`b` are all finite (else None): their products overflow
    the dtype they are formed in (float32 for float32, bf16 and fp16 inputs), naming the
    first class whose logit is not finite there (else the largest in magnitude) and its
    value summed in float64. Formed at the error only (one row: V x D work)."""
    h = problem.hidden(slice(position, position + 1))
    inputs = (h, problem.w) if problem.b is None else (h, problem.w, problem.b)
    if not all(bool(torch.isfinite(t).all()) for t in inputs):
        return None
    z = problem.products.logits(h, problem.w, problem.b)[0]
    exact = h[0].double() @ problem.w.double().T
    if problem.b is not None:
        exact = exact + problem.b.double()
    bad = ~torch.isfinite(z)
    c = int(torch.argmax(bad.to(torch.int8))) if bool(bad.any()) else int(exact.abs().argmax())
    dtype = str(z.dtype).removeprefix("torch.")
    names = "`input`, `linear_weight` and `linear_bias`"
    if problem.b is None:
        names = "`input` and `linear_weight`"
    return (
        f"{names} are finite there, but their products "
        f"overflow {dtype}, the dtype they are formed in (class {c}: {float(z[c])} in "
        f"{dtype}, {float(exact[c]):.6g} summed in float64; {dtype}'s largest is "
        f"{torch.finfo(z.dtype).max:.6g}): give float64 tensors, or scale them down"
    )


def _grad_outputs(
    grads: Gradients,
    input: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None,
    *,
    unscaled: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """The accumulated gradients in the dtypes of their tensors (empty bias without one);
    ``unscaled`` (the forward's, before the upstream scalar): as accumulated, float32
    for bfloat16/float16 tensors (:func:`_linear_backward` rounds them)."""
    if grads.h is None or grads.w is None:
        raise RuntimeError("crossent: gradients were not formed")  # pragma: no cover
    grad_b = input.new_empty((0,))
    if grads.b is not None and linear_bias is not None:
        grad_b = grads.b if unscaled else grads.b.to(linear_bias.dtype)
    if unscaled:
        return grads.h, grads.w, grad_b
    return grads.h, grads.w.to(linear_weight.dtype), grad_b


@torch.library.custom_op("crossent::linear_cross_entropy_v4", mutates_args=())
def linear_cross_entropy_op(
    input: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None,
    labels: Tensor,
    weight: Tensor | None,
    batch_shape: list[int],
    ignore_index: int | None,
    options: list[float],
    reduction: str,
    chunk_size: int,
    vocab_chunk: int,
    need_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(loss, lse, label_log_p, grad_input, grad_weight, grad_bias)``; the gradients
    empty unless formed. ``lse`` is ``(N, 2)``: each row's maximum :math:`m` of the
    undivided capped logits and :math:`\\ell` (``_linear.row_stats``)."""
    if labels.device.type == "cpu":
        check_class_ids(
            labels,
            classes=linear_weight.shape[0],
            ignore_index=ignore_index,
            shape=tuple(batch_shape),
        )
    tensors = (input, linear_weight, linear_bias, labels, weight)
    problem = _problem(tensors, ignore_index, options, chunk_size, vocab_chunk)
    scale = _normalizer_scale(problem, reduction)
    form = need_grad and reduction != "none"
    row_scale = scale.expand(_rows_of(labels)) if form else None
    wide, lse, log_p, grads = forward_pass(problem, row_scale=row_scale)
    rows = wide.to(problem.acc)
    if labels.device.type == "cpu":
        _check_finite(lse, batch_shape, problem)
    loss = rows if reduction == "none" else _reduced_rows(rows, problem, reduction, wide)
    if grads is None:
        empty = input.new_empty((0,))
        return loss, lse, log_p, empty, empty.clone(), empty.clone()
    grad_outputs = _grad_outputs(grads, input, linear_weight, linear_bias, unscaled=True)
    return (loss, lse, log_p, *grad_outputs)


def _rows_of(labels: Tensor) -> int:
    return int(labels.shape[0])


@linear_cross_entropy_op.register_fake
def _linear_cross_entropy_fake(
    input: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None,
    labels: Tensor,
    *rest: Any,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    # rest: weight, batch_shape, ignore_index, options, reduction, chunk_size,
    # vocab_chunk, need_grad
    reduction, need_grad = rest[4], rest[7]
    acc = _acc(input.dtype)
    n = labels.shape[0]
    loss = input.new_empty((n,) if reduction == "none" else (), dtype=acc)
    lse = input.new_empty((n, 2), dtype=torch.float64)  # the rows' m and ell
    log_p = input.new_empty((n,), dtype=torch.float64)
    empty = input.new_empty((0,))
    if not need_grad or reduction == "none":
        return loss, lse, log_p, empty, empty.clone(), empty.clone()
    return loss, lse, log_p, *_gradient_likes(input, linear_weight, linear_bias, dtype=acc)


def _gradient_likes(
    input: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Empty gradients of the tensors, in their dtypes or in ``dtype``."""
    grad_b = input.new_empty((0,))
    if linear_bias is not None:
        grad_b = torch.empty_like(linear_bias, dtype=dtype or linear_bias.dtype)
    return (
        torch.empty_like(input, dtype=dtype or input.dtype),
        torch.empty_like(linear_weight, dtype=dtype or linear_weight.dtype),
        grad_b,
    )


@torch.library.custom_op("crossent::linear_cross_entropy_v4_backward", mutates_args=())
def linear_cross_entropy_backward(
    upstream: Tensor,
    input: Tensor,
    linear_weight: Tensor,
    linear_bias: Tensor | None,
    labels: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    label_log_p: Tensor,
    ignore_index: int | None,
    options: list[float],
    reduction: str,
    chunk_size: int,
    vocab_chunk: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients for the upstream gradient of the loss, recomputing the logits by blocks.

    ``upstream`` is per row for ``'none'``, a scalar for ``'mean'``/``'sum'``.
    """
    tensors = (input, linear_weight, linear_bias, labels, weight)
    problem = _problem(tensors, ignore_index, options, chunk_size, vocab_chunk)
    if reduction != "none":
        upstream = (upstream.to(problem.work) * _normalizer_scale(problem, reduction)).expand(
            _rows_of(labels)
        )
    grads = backward_pass(problem, lse, label_log_p, upstream, bias=linear_bias is not None)
    return _grad_outputs(grads, input, linear_weight, linear_bias)


@linear_cross_entropy_backward.register_fake
def _linear_cross_entropy_backward_fake(
    upstream: Tensor, input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None, *_: Any
) -> tuple[Tensor, Tensor, Tensor]:
    return _gradient_likes(input, linear_weight, linear_bias)


@torch.library.custom_op("crossent::linear_formed_gradients_scaled_v1", mutates_args=())
def formed_gradients_scaled(
    grad_input: Tensor, grad_weight: Tensor, grad_bias: Tensor, upstream: Tensor, read: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """The formed gradients of ``linear_cross_entropy_v4`` times the scalar ``upstream``
    (the eager backward's in-place products, out of place), for its backward under
    ``torch.compile``. ``read`` (the tensors ``F.cross_entropy(F.linear(...))`` saves:
    the input, the classifier, the labels and the class weights) is not used: passing
    them makes the compiled backward save them, so autograd checks their version
    counters before this runs, as the eager backward does."""
    return grad_input * upstream, grad_weight * upstream, grad_bias * upstream


@formed_gradients_scaled.register_fake
def _formed_gradients_scaled_fake(
    grad_input: Tensor, grad_weight: Tensor, grad_bias: Tensor, upstream: Tensor, read: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(grad_input), torch.empty_like(grad_weight), torch.empty_like(grad_bias)


def _linear_setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    # inputs: the op's arguments; those after ``batch_shape`` but ``need_grad`` are the
    # backward op's last five (ignore_index, options, reduction, chunk_size, vocab_chunk).
    input, linear_weight, linear_bias, labels, weight, _, *settings, need_grad = inputs
    _, lse, log_p, grad_input, grad_weight, grad_bias = output
    reduction = settings[2]
    ctx.has_bias = linear_bias is not None
    ctx.formed = need_grad and reduction != "none"
    ctx.dtypes = (
        input.dtype,
        linear_weight.dtype,
        None if linear_bias is None else linear_bias.dtype,
    )
    ctx.mark_non_differentiable(lse, log_p, grad_input, grad_weight, grad_bias)
    # Otherwise autograd hands the backward a zero tensor for each output without a
    # gradient: zeros the size of the classifier (a second dW's worth of memory).
    ctx.set_materialize_grads(False)
    if ctx.formed:
        # The tensors that ``F.cross_entropy(F.linear(...))`` saves (not the bias)
        # saved beside the gradients, though not read: autograd's version counters then
        # refuse a backward after one of them was changed in place, as there; the
        # formed gradients, of the old values, were silently returned. (References.)
        ctx.save_for_backward(
            grad_input, grad_weight, grad_bias, input, linear_weight, labels, weight
        )
    else:
        ctx.save_for_backward(input, linear_weight, linear_bias, labels, weight, lse, log_p)
        ctx.settings = tuple(settings)


def _linear_backward(
    ctx: Any, grad_loss: Tensor | None, *_: Any, recompute: Callable[..., Any] | None = None
) -> tuple[Any, ...]:
    # ``recompute``: the backward op (default :func:`linear_cross_entropy_backward`; its
    # twin with the options as a tensor under ``torch.compile``, ``_traced_options``).
    if grad_loss is None:  # the loss itself is not used (grads not materialised)
        return (None,) * 12
    if ctx.formed:
        # Scaled in place: no second gradient-sized buffer. A second backward through
        # the same graph (retain_graph=True) then fails on the saved tensors' version
        # counter instead of scaling twice. Scaled in float32 (float64), then rounded
        # to the tensors' dtypes: the forward's bfloat16/float16 gradients rounded
        # before the scalar were rounded twice, and those below float16's range at
        # unit scale came back 0 under a loss scale (GradScaler's 2^16), where
        # PyTorch's are not (issue 13).
        grad_input, grad_weight, grad_bias, *anchors = ctx.saved_tensors  # checks the versions
        g = grad_loss.to(grad_input.dtype)
        dtype_h, dtype_w, dtype_b = ctx.dtypes
        if torch.compiler.is_compiling():
            # AOTAutograd traces this backward and saves only what its graph reads:
            # the formed gradients, not the inputs, whose version counters then went
            # unchecked (a backward after an in-place change of ``input`` or
            # ``linear_weight`` returned the old values' gradients, where eager and
            # compiled ``F.cross_entropy(F.linear(...))`` raise). The op reads them.
            grad_input, grad_weight, grad_bias = formed_gradients_scaled(
                grad_input, grad_weight, grad_bias, g, [a for a in anchors if a is not None]
            )
        else:
            grad_input, grad_weight, grad_bias = (
                grad_input.mul_(g),
                grad_weight.mul_(g),
                grad_bias.mul_(g),
            )
        gi, gw = grad_input.to(dtype_h), grad_weight.to(dtype_w)
        gb = grad_bias.to(dtype_b) if ctx.has_bias else None
        if torch.is_grad_enabled():  # a ``create_graph`` backward
            gi, gw, gb = _first_order_only((gi, gw, gb), (*anchors[:2], grad_loss))
    else:
        input, linear_weight, linear_bias, labels, weight, lse, log_p = ctx.saved_tensors
        gi, gw, gb = (recompute or linear_cross_entropy_backward)(
            grad_loss,
            input,
            linear_weight,
            linear_bias,
            labels,
            weight,
            lse,
            log_p,
            *ctx.settings,
        )
        gb = gb if ctx.has_bias else None
        if torch.is_grad_enabled():  # 'none', create_graph: name the loss, as above
            gi, gw, gb = _first_order_only(
                (gi, gw, gb), (input, linear_weight, linear_bias, grad_loss)
            )
    return (gi, gw, gb) + (None,) * 9


def _first_order_only(
    grads: tuple[Tensor | None, ...], anchors: tuple[Tensor | None, ...]
) -> tuple[Any, ...]:
    """``grads`` whose own gradient raises, also for ``torch.autograd.grad`` of the
    ``anchors`` (the loss's inputs). The gradients formed in the forward are
    constants of the graph: with ``create_graph=True`` they held no graph, and a second
    derivative through them (a gradient penalty added to the loss) was a silent 0."""
    return first_order_only(
        grads,
        "crossent.torch.linear_cross_entropy has no second derivative (its gradients "
        "are formed in the forward): for a gradient penalty, use "
        "cross_entropy(F.linear(input, linear_weight, linear_bias), target)",
        anchors,
    )


linear_cross_entropy_op.register_autograd(_linear_backward, setup_context=_linear_setup_context)


def _linear_vmap(info: Any, in_dims: tuple[int | None, ...], *args: Any) -> tuple[Any, Any]:
    """``torch.func.vmap`` of :func:`linear_cross_entropy_op`: one call an example (its
    reductions and its classifier's gradient sum over the example's rows only)."""
    return _each_example(linear_cross_entropy_op, info.batch_size, in_dims, args)


def _linear_backward_vmap(
    info: Any, in_dims: tuple[int | None, ...], *args: Any
) -> tuple[Any, Any]:
    """``torch.func.vmap`` of :func:`linear_cross_entropy_backward`: one call an example."""
    return _each_example(linear_cross_entropy_backward, info.batch_size, in_dims, args)


linear_cross_entropy_op.register_vmap(_linear_vmap)
linear_cross_entropy_backward.register_vmap(_linear_backward_vmap)


def _unit_row_gradients(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None,
    ignore_index: int | None,
    options: list[float],
) -> Tensor:
    r"""Each row's :math:`\partial L_i/\partial z_i` (rows x classes, the logits' dtype)
    by the class-id ops (forward for the row statistics, backward at a unit upstream)."""
    shape = [logits.shape[0]]
    _, lse, log_p, _ = softmax_ce_labels(logits, labels, weight, shape, ignore_index, options)
    ones = torch.ones(logits.shape[0], dtype=_acc(logits.dtype), device=logits.device)
    return softmax_ce_labels_backward(
        ones, logits, labels, weight, lse, log_p, ignore_index, options
    )


def _linear_rows_tangent(
    tensors: tuple[Any, ...], settings: tuple[Any, ...], tangents: tuple[Any, ...]
) -> Tensor:
    r"""Forward mode of ``reduction='none'``: row :math:`i`'s tangent :math:`g_i \cdot
    \dot z_i`, :math:`g_i = \partial L_i/\partial z_i` at the logits
    :math:`z = hW^\top + b` and :math:`\dot z = \dot h W^\top + h \dot W^\top +
    \dot b` (the tangent of each row needs its logits' gradient, which the scalar
    reductions' rule sums away), :math:`g` by the class-id kernels (as
    ``cross_entropy`` of the logits), a constant whose derivative names the loss
    (:class:`_FirstOrder`). By blocks of rows, as the forward's (``settings``:
    ``ignore_index``, the packed options and ``chunk_size``, 0 for automatic:
    :func:`crossent.torch._linear.auto_chunks`, blocks of some
    ``BLOCK_BYTES`` of logits): a block's logits, their tangent and gradient are
    dropped before the next block, so the memory is that of a block, not of the
    :math:`N \times C` logits (forward mode only; under ``jacfwd`` the tangents are
    batched, each block's tangent as many times as ``jacfwd``'s basis)."""
    input, linear_weight = tensors[:2]
    chunk_size = settings[2]
    n, classes = int(input.shape[0]), int(linear_weight.shape[0])
    itemsize = torch.empty((), dtype=_acc(input.dtype)).element_size()
    rows = auto_chunks(n, classes, itemsize, chunk_size or None, classes)[0]
    if rows >= n:
        return _linear_block_tangent(tensors, settings[:2], tangents, slice(0, n))
    blocks = (slice(i, min(i + rows, n)) for i in range(0, n, rows))
    return torch.cat([_linear_block_tangent(tensors, settings[:2], tangents, b) for b in blocks])


def _linear_block_tangent(
    tensors: tuple[Any, ...], settings: tuple[Any, ...], tangents: tuple[Any, ...], rows: slice
) -> Tensor:
    """:func:`_linear_rows_tangent` of the block ``rows``."""
    input, linear_weight, linear_bias, labels, weight = tensors
    ignore_index, options = settings
    acc = _acc(input.dtype)
    f = torch.nn.functional
    h = input[rows]
    z = f.linear(h, linear_weight, linear_bias)
    dh, dw, db = tangents
    dz = torch.zeros((), dtype=acc, device=input.device)
    if dh is not None:
        dz = dz + f.linear(dh[rows], linear_weight).to(acc)
    if dw is not None:
        dz = dz + f.linear(h, dw).to(acc)
    if db is not None:
        dz = dz + db.to(acc)
    g = _FirstOrder.call(
        _unit_row_gradients,
        "linear_cross_entropy",
        "cross_entropy(F.linear(input, linear_weight, linear_bias), target)",
        z,
        labels[rows],
        weight,
        ignore_index,
        options,
    )
    return (g.to(acc) * dz).sum(-1)


class LinearFunction(torch.autograd.Function):
    """:func:`linear_cross_entropy_op` with its autograd, for ``torch.func``'s transforms
    (as :class:`LabelsFunction`). Called with ``need_grad`` False: the backward
    recomputes the logits blocks (:func:`linear_cross_entropy_backward`), the gradients
    formed in the forward being scaled in place (which a batched upstream, ``jacrev``'s,
    cannot do to an unbatched buffer). :meth:`call` takes the op's arguments; the
    non-tensor ones travel as one :class:`_Settings` (forward mode of vmap's generated
    rule, ``jvp`` of ``vmap``: a list argument gave PyTorch's ``treespec.unflatten``
    ValueError)."""

    generate_vmap_rule = True

    @staticmethod
    def call(*args: Any) -> tuple[Tensor, ...]:
        """:func:`linear_cross_entropy_op`'s values with this function's autograd."""
        return LinearFunction.apply(*args[:5], _Settings(*args[5:]))

    @staticmethod
    def forward(*args: Any) -> tuple[Tensor, ...]:
        return linear_cross_entropy_op(*args[:5], *args[5].values)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        inputs = (*inputs[:5], *inputs[5].values)
        _linear_setup_context(ctx, inputs, output)
        ctx.unmarked = _unmarked(output[1:])
        if not ctx.formed:
            ctx.save_for_forward(*inputs[:5], output[1], output[2])

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Any, ...]:
        if grad_loss is None:  # the loss itself is not used (grads not materialised)
            return (None,) * 6
        tensors = ctx.saved_tensors  # input, linear_weight, linear_bias, labels, weight, ...
        gi, gw, gb = _FirstOrder.call(
            linear_cross_entropy_backward,
            "linear_cross_entropy",
            "cross_entropy(F.linear(input, linear_weight, linear_bias), target)",
            grad_loss,
            *tensors,
            *ctx.settings,
        )
        return (gi, gw, gb if ctx.has_bias else None) + (None,) * 3

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> tuple[Tensor | None, ...]:
        r"""The tangent of a scalar loss :math:`L`: :math:`\langle \nabla_h L, \dot h
        \rangle + \langle \nabla_W L, \dot W \rangle + \langle \nabla_b L, \dot b
        \rangle`, the gradients of one backward pass (under ``jacfwd`` one pass for
        every tangent: the gradients are unbatched). ``'none'``: each row's own
        (:func:`_linear_rows_tangent`)."""
        input, linear_weight, linear_bias, labels, weight, lse, log_p = ctx.saved_tensors
        empty = input.new_empty((0,))  # (the unformed gradients' outputs)
        stats = _stat_tangents(ctx.unmarked, (lse, log_p, empty, empty, empty))
        if ctx.settings[2] == "none":
            settings = (*ctx.settings[:2], ctx.settings[3])  # ignore_index, options, chunk_size
            rows = _linear_rows_tangent(ctx.saved_tensors[:5], settings, tangents[:3])
            return (rows, *stats)
        acc = _acc(input.dtype)
        one = torch.ones((), dtype=acc, device=input.device)
        tensors = (input, linear_weight, linear_bias, labels, weight, lse, log_p)
        # _FirstOrder: a derivative of this tangent (jacrev(jacfwd(...))) names the loss.
        grads = _FirstOrder.call(
            linear_cross_entropy_backward,
            "linear_cross_entropy",
            "cross_entropy(F.linear(input, linear_weight, linear_bias), target)",
            one,
            *tensors,
            *ctx.settings,
        )
        total = torch.zeros((), dtype=acc, device=input.device)
        for g, t in zip(grads, tangents[:3], strict=True):
            if t is not None and g.numel() > 0:
                total = total + (g.to(acc) * t.to(acc)).sum()
        return (total, *stats)
