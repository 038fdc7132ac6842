"""The rest of the loss family under the names PyTorch users look for.

These call crossent's generic array-API functions on torch tensors, so autograd
records their (exact, log-space) formulas operation by operation: correct gradients,
but no fused kernel, and their data checks (``validate=True``) read values, which
Dynamo cannot trace. Under ``torch.compile`` (``fullgraph=True`` too) each one
therefore puts what reads values in a custom op:

* ``binary_cross_entropy_with_logits``: the eager call in ``crossent::sigmoid_ce_v1``,
  with the exact logit gradient, and the gradients of targets and weights that require
  one by the eager backward's closed forms in ``crossent::sigmoid_ce_v1_input_grads``
  (first derivatives only);
* ``sigmoid_focal_loss``: its checks in ``crossent::sigmoid_inputs_checked`` (CPU
  tensors), its formula traced;
* ``softmax_focal_loss``: the eager call in ``crossent::softmax_focal_v2`` (its checks,
  its loss: eager's, bit for bit), its gradients in the logits and the class weights by
  their closed forms in the backward op (``_ops._focal_gradients``: within float
  rounding of eager's autograd; first derivatives only);
* ``distillation_loss``: its checks and far and near rows in a custom op
  (``_far_distillation``), and its CPU calls of 2-D logits whose teacher requires no
  gradient in fused kernels of their own (``_distill_cpu``), for every
  ``teacher_form`` and ``direction``.

Under ``torch.func.vmap`` (per-example gradients: ``vmap(grad(...))``) a batched tensor
has no value to read: each function checks vmap's examples first (the generic path on
the unbatched data, no graph: crossent's errors, an index with the example first),
then runs the generic path with ``validate=False``; ``distillation_loss`` forms its
near rows on every row (then picks them) and refuses rows it would form again on the
host (:func:`._far_distillation.distillation_rows_vmapped`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import losses
from .._checks import check_scalar
from ..errors import InputError
from ..losses._distill_options import distillation_options
from . import _binary, _distill_cpu, _focal_eager, _ops, _traced_options
from ._arguments import (
    _by_value,
    check_reduction,
    example_stack,
    named_as_called,
    nested_forward_mode,
    traced_within,
    under_torch_func,
    vmapped,
)
from ._far_distillation import distillation_rows_checked, distillation_rows_vmapped
from ._labels import as_class_ids, check_ignore_index
from ._traced_options import scalar

__all__ = [
    "binary_cross_entropy_with_logits",
    "distillation_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]


def _reject_legacy(size_average: object, reduce: object) -> None:
    """Refuse PyTorch's deprecated ``size_average`` and ``reduce`` (they must stay None)."""
    if size_average is not None or reduce is not None:
        raise InputError(
            "`size_average` and `reduce` are deprecated in PyTorch and not supported; "
            "use `reduction='mean'`, `'sum'` or `'none'`"
        )


def _on_meta(*tensors: torch.Tensor | None) -> bool:
    """Whether any of ``tensors`` is a meta tensor: no data, so no value to check (the
    generic path then runs with ``validate=False``: shapes and dtypes, as
    ``torch.nn.functional`` gives them on meta tensors)."""
    return any(x is not None and x.device.type == "meta" for x in tensors)


def _compiled_check(*tensors: torch.Tensor | None) -> bool:
    """Whether the value checks run in the op ``crossent::sigmoid_inputs_checked``, not
    eagerly: while Dynamo traces (``torch.compile``, ``torch.export``), where no value
    can be read, for CPU tensors (on data in host memory; other devices are not
    checked there, as ``cross_entropy``'s probability targets)."""
    return torch.compiler.is_compiling() and all(
        x is None or x.device.type == "cpu" for x in tensors
    )


def _focal_of_logits(labels: torch.Tensor, logits: torch.Tensor, **options: Any) -> Any:
    """``losses.softmax_focal_loss(logits, labels, **options)``, the logits last (for
    ``functools.partial``)."""
    return losses.softmax_focal_loss(logits, labels, **options)


def _compiled_focal(
    input: torch.Tensor, weight: torch.Tensor | None, gamma: object, ignore_index: object
) -> bool:
    """Whether ``softmax_focal_loss`` takes ``crossent::softmax_focal_v2``: while Dynamo
    traces, with a real ``gamma`` and an ``ignore_index`` of a valid type (other values
    take the generic path, whose checks raise crossent's errors)."""
    numeric = isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
    ignore = ignore_index is None or (
        isinstance(ignore_index, (int, np.integer)) and not isinstance(ignore_index, bool)
    )
    return torch.compiler.is_compiling() and numeric and ignore


def _beside(x: torch.Tensor | None, lead: tuple[int, ...], like: torch.Tensor | None) -> Any:
    """An elementwise weight of :func:`example_stack` (shape ``lead + shape``) broadcast
    against ``like``'s examples (``lead + like's shape``): its own axes last."""
    if x is None or like is None:
        return x
    own = x.shape[len(lead) :]
    return x.reshape(*lead, *(1,) * (like.ndim - len(lead) - len(own)), *own)


def _binary_checks(size_average: Any, reduce: Any, reduction: Any) -> None:
    """:func:`binary_cross_entropy_with_logits`'s option checks before its op (which
    checks ``label_smoothing`` at run time), on Python values: the one sequence of the
    eager call and of ``_ops.refused_while_traced`` (as all four ``_*_checks``)."""
    _reject_legacy(size_average, reduce)
    check_reduction(reduction)


def _sigmoid_focal_checks(reduction: Any, alpha: Any, gamma: Any) -> None:
    """:func:`sigmoid_focal_loss`'s option checks (the losses package's), on Python values."""
    check_reduction(reduction)
    check_scalar(_by_value(gamma), name="gamma", low=0.0)
    try:
        negative = bool(alpha < 0)
    except TypeError:  # None, a string: check_scalar's InputError (was a bare TypeError)
        negative = False
    if not negative:
        check_scalar(_by_value(alpha), name="alpha", low=0.0, high=1.0)


def _softmax_focal_checks(reduction: Any, gamma: Any, ignore_index: Any) -> None:
    """:func:`softmax_focal_loss`'s option checks (the losses package's), on Python
    values; a traced float ``gamma`` in range by comparisons only (it stays symbolic:
    :func:`_traced_gamma`)."""
    check_reduction(reduction)
    if not _traced_gamma(gamma):
        check_scalar(_by_value(gamma), name="gamma", low=0.0)
    check_ignore_index(ignore_index)


def _traced_gamma(gamma: object) -> bool:
    """While Dynamo traces: whether ``gamma`` is a float in :math:`[0, \\infty)`, by
    comparisons only (``_arguments.traced_within``); the focal op then takes it as a
    float64 tensor (``_traced_options.tensor_gamma_softmax_focal``: no graph per value)."""
    return torch.compiler.is_dynamo_compiling() and traced_within(gamma, 0.0, math.inf)


@named_as_called(logits="input", targets="target")
def binary_cross_entropy_with_logits(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: None = None,
    reduce: None = None,
    reduction: str = "mean",
    pos_weight: torch.Tensor | None = None,
    *,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    r"""Sigmoid binary cross-entropy, a drop-in for ``F.binary_cross_entropy_with_logits``.

    .. math:: \ell = -w\,[\pi\,t\log\sigma(x) + (1-t)\log(1-\sigma(x))]

    Parameters as PyTorch's (``size_average``/``reduce`` must stay None), plus
    ``label_smoothing``; ``'mean'`` divides by the number of elements, as PyTorch's
    does with or without ``weight`` (0 for no element, where PyTorch's is NaN, as
    :func:`cross_entropy`'s). The generic path: see
    :func:`crossent.sigmoid_cross_entropy`; for float32, float16 and bfloat16 logits the
    gradient in ``input`` is :func:`crossent.sigmoid_cross_entropy_grad`'s, within an ulp
    also where a soft target meets :math:`\sigma(x)` (``_binary``).

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from crossent.torch import binary_cross_entropy_with_logits
    >>> x = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
    >>> t = torch.tensor([1.0, 0.0, 0.25], dtype=torch.float64)
    >>> ours = binary_cross_entropy_with_logits(x, t)
    >>> bool(torch.isclose(ours, F.binary_cross_entropy_with_logits(x, t)))
    True
    """
    checks = functools.partial(_binary_checks, size_average, reduce, reduction)
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    checks()
    validate = not _on_meta(input, target, weight, pos_weight)
    if vmapped(input, target, weight, pos_weight):  # torch.func.vmap: check the examples
        lead, (x, t, w, pw) = example_stack(input, target, weight, pos_weight)
        with torch.no_grad():
            losses.sigmoid_cross_entropy(
                x,
                t,
                weight=_beside(w, lead, x),
                pos_weight=_beside(pw, lead, x),
                label_smoothing=label_smoothing,
                reduction="none",
            )
        validate = False
    if torch.compiler.is_compiling():
        # torch.compile, torch.export: the eager call in a custom op (its checks, the
        # exact logit gradient, the targets' and weights' gradients of the eager
        # backward: first derivatives only), which Dynamo does not trace.
        smoothing: Any = label_smoothing
        # label_smoothing as a tensor (the op checks it): no graph per value. Not for
        # none (0, the default): the tensor, saved for the backward ops, is a buffer
        # that AOTAutograd donates, which a second backward (retain_graph, gradcheck)
        # then refuses.
        op: Callable[..., torch.Tensor] = _ops.sigmoid_ce
        if torch.compiler.is_dynamo_compiling() and type(smoothing) is float and smoothing != 0:
            op, smoothing = _traced_options.tensor_smoothing_sigmoid_ce, scalar(smoothing)
        return op(input, target, weight, pos_weight, smoothing, reduction)
    # Nested forward mode (jacfwd(jacfwd(...)), jvp of jvp): PyTorch does not
    # differentiate BinaryFunction's jvp rule again, so the generic formula's plain
    # operations there (the formula's first and second derivatives).
    nested = under_torch_func() and nested_forward_mode()
    if _binary.takes(input, target) and not nested:  # the exact logit gradient
        loss = _binary.checked_loss if validate else _binary.unchecked_loss
        return _binary.BinaryFunction.apply(
            input, target, weight, pos_weight, label_smoothing, reduction, loss
        )
    # PyTorch's 'mean' divides by the number of elements, also with weights
    # (crossent's by the sum of the weights): the float64 sum, then that division.
    if reduction == "mean":
        return _binary.mean_of_terms(input, target, weight, pos_weight, label_smoothing, validate)
    return losses.sigmoid_cross_entropy(
        input,
        target,
        weight=weight,
        pos_weight=pos_weight,
        label_smoothing=label_smoothing,
        reduction=reduction,
        validate=validate,
    )


@named_as_called(logits="inputs")
def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> torch.Tensor:
    r"""Sigmoid focal loss with ``torchvision.ops.sigmoid_focal_loss``'s signature and defaults.

    .. math:: \mathrm{FL} = \alpha_t\,(1 - p_t)^\gamma\,\ell_{\mathrm{BCE}}(x, t)

    ``alpha < 0`` means no class balancing, as in torchvision. The generic path: see
    :func:`crossent.sigmoid_focal_loss`, which is exact where torchvision's
    ``p * (1 - p)`` form loses digits. ``reduction='mean'`` of an empty batch is 0
    with a zero gradient (eager and compiled), where torchvision's ``loss.mean()`` is
    NaN.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import binary_cross_entropy_with_logits, sigmoid_focal_loss
    >>> x = torch.tensor([3.0, -1.0], dtype=torch.float64)
    >>> t = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> bce = binary_cross_entropy_with_logits(x, t, reduction="none")
    >>> bool(torch.allclose(sigmoid_focal_loss(x, t, alpha=-1, gamma=0.0), bce))
    True
    """
    checks = functools.partial(_sigmoid_focal_checks, reduction, alpha, gamma)
    refused = _ops.refused_while_traced(inputs, checks)
    if refused is not None:
        return refused
    checks()
    # By value, and label_smoothing given: under dynamic=True a float argument, a Module's
    # float and a function's float default are symbolic, which the losses package's
    # checks (math.isfinite) cannot take under fullgraph=True.
    options = {
        "gamma": _by_value(gamma),
        "alpha": None if alpha < 0 else _by_value(alpha),
        "label_smoothing": 0.0,
    }
    validate = not _on_meta(inputs, targets)
    if vmapped(inputs, targets):  # torch.func.vmap: check the examples
        _, (x, t) = example_stack(inputs, targets)
        with torch.no_grad():
            losses.sigmoid_focal_loss(x, t, **options, reduction="none")
        validate = False
    if not _compiled_check(inputs, targets):
        return losses.sigmoid_focal_loss(
            inputs, targets, **options, reduction=reduction, validate=validate
        )
    # While Dynamo traces: 'mean' as the sum over the count (no weights: the same
    # mean; the losses package's division reads a value), the checks in an op at run
    # time, its zero added to keep it in the graph.
    loss = losses.sigmoid_focal_loss(
        inputs,
        targets,
        **options,
        reduction="sum" if reduction == "mean" else reduction,
        validate=False,
    )
    loss = loss / max(inputs.numel(), 1) if reduction == "mean" else loss
    checked = _ops.sigmoid_inputs_checked(inputs.detach(), targets.detach(), None, None)
    return loss + checked.to(loss.dtype)


@named_as_called(logits="input", labels="target")
def softmax_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Softmax focal loss (Lin et al. 2017) in PyTorch's layout (classes on axis 1).

    .. math:: \mathrm{FL}_i = -w_{y_i}(1 - p_{iy_i})^\gamma\log p_{iy_i}

    ``gamma=0`` gives :func:`cross_entropy`. Targets of any integer dtype. The
    generic path: see :func:`crossent.softmax_focal_loss`. The logit gradient is the
    closed form's: eagerly (CPU, float32/float64 logits (N, C) that require grad, class
    weights that require none) in four passes over the logits (``_focal_eager``: 18
    float32 ulps from the float64 truth at 1024 x 32000 where autograd's graph of the
    formula gave 171, in about a quarter of its time; ``benchmarks/RESULTS.md``, issue
    13); compiled, ``_ops._focal_gradients`` (36 ulps). Other eager calls, and a
    ``create_graph`` backward, keep autograd's graph of the formula. ``reduction='mean'``
    divides by the summed label weights, and is 0 with a zero gradient where that sum
    is 0 (an empty batch, every row ignored, labels all of weight 0; eager and
    compiled), where PyTorch's weighted mean (``F.cross_entropy``, ``gamma=0``) is NaN.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import cross_entropy, softmax_focal_loss
    >>> z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=torch.float64)
    >>> y = torch.tensor([0, -100])
    >>> bool(torch.isclose(softmax_focal_loss(z, y, gamma=0.0), cross_entropy(z, y)))
    True
    """
    checks = functools.partial(_softmax_focal_checks, reduction, gamma, ignore_index)
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    checks()
    labels, axis = as_class_ids(target), 1 if input.ndim > 1 else 0
    validate = not _on_meta(input, labels, weight)
    if vmapped(input, labels, weight):  # torch.func.vmap: check the examples
        _, (x, y, w) = example_stack(input, labels, weight)
        x, y = x.reshape(-1, *input.shape), y.reshape(-1, *labels.shape)  # type: ignore[union-attr]
        w = None if w is None else w.reshape(-1, w.shape[-1])
        check = {"gamma": gamma, "ignore_index": ignore_index, "reduction": "none"}
        with torch.no_grad():
            if w is None:
                losses.softmax_focal_loss(x, y, axis=axis + 1, **check)
            else:  # class weights: each example's
                for b in range(x.shape[0]):
                    losses.softmax_focal_loss(x[b], y[b], axis=axis, weight=w[b], **check)
        validate = False
    if _compiled_focal(input, weight, gamma, ignore_index) and validate:
        # torch.compile, torch.export: the eager call in a custom op (its checks, its
        # 'mean' over the summed label weights), which Dynamo does not trace: eager's
        # loss bit for bit, the gradients by their closed forms (_ops._focal_gradients).
        ignore = check_ignore_index(ignore_index)
        if _traced_gamma(gamma):  # gamma as a tensor: symbolic floats stay so
            twin = _traced_options.tensor_gamma_softmax_focal
            return twin(input, labels, weight, scalar(gamma), ignore, reduction)
        return _ops.softmax_focal(input, labels, weight, float(gamma), ignore, reduction)
    generic = functools.partial(
        _focal_of_logits,
        labels,
        gamma=gamma,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
    )
    if validate and _focal_eager.applies(input, labels, weight):
        # The generic loss; its logit gradient by the closed form (5x more exact).
        ignore = check_ignore_index(ignore_index)
        return _focal_eager.focal_with_closed_gradient(
            generic, input, labels, weight, gamma, ignore, reduction
        )
    return generic(input)


def _distillation_checks(
    temperature: Any, reduction: Any, teacher_form: Any, direction: Any
) -> None:
    """:func:`distillation_loss`'s option checks (those of its paths), on Python values."""
    check_reduction(reduction, parts=True)
    # A traced float within range stays symbolic (comparisons only): 1.0 stands in for
    # it in the checks of the other options (``_traced_options.traced_temperature``).
    value = 1.0 if _traced_options.traced_temperature(temperature) else _by_value(temperature)
    distillation_options(value, teacher_form, direction, reduction, None)


def distillation_loss(
    input: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "mean",
    *,
    teacher_form: str = "logits",
    direction: str = "forward",
) -> torch.Tensor:
    r"""Knowledge distillation: :math:`T^2 D(t \,\|\, s)`, softened teacher ``t`` and student ``s``.

    With :math:`s = \operatorname{softmax}(z/T)` the softened student and :math:`t =
    \operatorname{softmax}(\log p / T)` the softened teacher (:math:`\log p` its
    logits :math:`v`, or the log of its probabilities), each row's loss is

    .. math:: L_i = T^2 \sum_c t_c(\log t_c - \log s_c) \quad \text{(forward)},
              \qquad L_i = T^2 \sum_c s_c(\log s_c - \log t_c) \quad \text{(reverse)},

    with :math:`0\log 0 = 0`; the reverse direction is :math:`+\infty` where the
    student puts mass on a class of teacher probability 0.

    Parameters
    ----------
    input : Tensor, shape (N, C, ...) or (C,)
        The student's logits :math:`z`, classes on axis 1 (axis 0 for a vector).
    teacher_logits : Tensor, the shape of ``input``
        The teacher, in the form ``teacher_form``: its logits (the default), its
        probabilities or its log-probabilities.
    temperature : float > 0, optional
        :math:`T`.
    reduction : {'mean', 'sum', 'none'}, optional
        ``'mean'`` divides by the number of rows (PyTorch's ``'batchmean'``).
    teacher_form : {'logits', 'probs', 'log_probs'}, optional
        How ``teacher_logits`` is given (keyword only). Probabilities are validated as
        :func:`crossent.distillation_loss` does: in :math:`[0, 1]`, rows summing to 1.
    direction : {'forward', 'reverse'}, optional
        ``'forward'``: :math:`D(t\,\|\,s)`, the classic choice (mean-seeking);
        ``'reverse'``: :math:`D(s\,\|\,t)` (mode-seeking, as in MiniLLM). Keyword only.

    Returns
    -------
    Tensor
        A scalar, or one loss per row for ``'none'``.

    Raises
    ------
    InputError
        As :func:`crossent.distillation_loss`: an option value (naming the argument),
        logits or probabilities that are not valid (naming the row), shapes that differ.

    Notes
    -----
    The student's logits ``input`` and the teacher's, classes on axis 1. The same as
    PyTorch's idiom ``T**2 * F.kl_div(F.log_softmax(z / T, 1), F.softmax(v / T, 1),
    reduction="batchmean")`` for ``reduction='mean'`` and 2-D input, computed in log
    space (exact when the teacher gives a class probability 0). For input of shape
    (N, C, d1, ...) ``'mean'`` averages over the N*d1*... rows (as ``cross_entropy``'s
    mean of probability targets), where ``"batchmean"`` divides their sum by N. The
    generic path: see :func:`crossent.distillation_loss`; rows whose gaps pass the range of the work
    dtype (float64, or float32 for narrower inputs), and temperatures whose :math:`T^2`
    does, are formed in float64 by the NumPy function and its gradient twin
    (``_far_distillation``). Under ``torch.compile`` (``fullgraph=True`` too) the graph
    holds the generic rows and one custom op forms the flagged rows at run time, with
    the eager call's validation and its one host read: eager's numbers and gradients
    (near rows formed in float64 there, within 16 float32 ulps of eager's float32 ones).
    Each ``temperature`` compiles its own graph (a value passed as an argument too),
    but on the fused CPU op below: there a float ``temperature`` stays symbolic (two
    graphs for any number of values, ``_traced_options``; eager's bits).

    On the CPU, 2-D logits of one dtype whose teacher requires no gradient (``'mean'``,
    ``'sum'`` or ``'none'``) take a fused custom op instead (``_distill_cpu``: float64
    kernels, no array of the call's size but the gradient, the near and far rows by the
    NumPy functions; eagerly and under ``torch.compile``): the loss in the same dtype,
    within an ulp of the float64 truth before its rounding, the student's gradient
    :math:`T(s - t)` rounded once (to float32 first for float16 and bfloat16).

    Every ``teacher_form`` and ``direction`` takes that op (``_distill_rows.Options``):
    the teacher's log-probabilities, or the log of its probabilities formed in float64,
    as its logits; the reverse direction by the forward kernel of the roles swapped and
    a reverse backward kernel (:math:`T s \odot (\log s - \log t - D)`); at
    :math:`T = 1` probabilities and log-probabilities taken as they are, as the generic
    path takes them (not renormalised); the teacher validated as the generic path
    does. A reverse row whose :math:`D(s\,\|\,t)` is truly :math:`+\infty` (a teacher
    probability 0 where the student's is not) is formed there as a far row (its
    ``inf``, and NumPy's gradient), eagerly and under ``torch.compile``. Off the op
    the far and near rows are formed again by the NumPy functions with the same
    options. One case takes the generic formula recorded by autograd alone: a teacher
    given as probabilities or log-probabilities that requires a gradient (its rows
    whose gaps pass the work dtype's range are not formed again, and under
    ``torch.compile`` its checks' reads break the graph).

    A reverse row of a truly infinite :math:`D(s\,\|\,t)` has no derivative (the
    loss is :math:`+\infty` around its logits): the student's gradient there is NaN in
    the classes of logits above ``-inf`` and 0 in those of ``-inf``, eagerly and
    compiled, as :func:`crossent.distillation_loss_grad` gives it (its Notes), and 0
    where the row's upstream is 0 (a row that ``torch.where`` drops). The generic graph
    gave the finite gradient of the finite terms alone, which the one case above (the
    generic formula alone) and ``torch.func.grad`` (whose transforms cannot run the
    host rows' ``autograd.Function``) still give.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from crossent.torch import distillation_loss
    >>> z = torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64)
    >>> v = torch.tensor([[1.0, 1.5, 0.0]], dtype=torch.float64)
    >>> idiom = 4 * F.kl_div(F.log_softmax(z / 2, 1), F.softmax(v / 2, 1), reduction="batchmean")
    >>> bool(torch.isclose(distillation_loss(z, v, temperature=2.0), idiom))
    True

    The reverse KL of a teacher's stored probabilities:

    >>> p = F.softmax(v, 1)
    >>> s = F.log_softmax(z, 1)
    >>> reverse = (s.exp() * (s - p.log())).sum()
    >>> loss = distillation_loss(z, p, teacher_form="probs", direction="reverse")
    >>> bool(torch.isclose(loss, reverse))
    True
    """
    checks = functools.partial(
        _distillation_checks, temperature, reduction, teacher_form, direction
    )
    refused = _ops.refused_while_traced(input, checks)
    if refused is not None:
        return refused
    checks()
    if vmapped(input, teacher_logits):  # torch.func.vmap: the generic rows, examples checked
        return distillation_rows_vmapped(
            input,
            teacher_logits,
            temperature,
            reduction,
            teacher_form=teacher_form,
            direction=direction,
        )
    if _on_meta(input, teacher_logits):  # no data: the generic formula's shapes and dtypes
        return losses.distillation_loss(
            input,
            teacher_logits,
            axis=1 if input.ndim > 1 else 0,
            temperature=temperature,
            reduction=reduction,
            teacher_form=teacher_form,
            direction=direction,
            validate=False,
        )
    options = (teacher_form, direction)
    if _traced_options.traced_temperature(temperature) and _distill_cpu.applies(
        input, teacher_logits, 1.0, reduction, *options
    ):  # the fused op's twin: a temperature that Dynamo made symbolic stays so
        return _traced_options.distillation(input, teacher_logits, temperature, reduction, *options)
    if _distill_cpu.applies(input, teacher_logits, temperature, reduction, *options):
        return _distill_cpu.fused_distillation(
            input, teacher_logits, temperature, reduction, *options
        )
    return distillation_rows_checked(
        input,
        teacher_logits,
        temperature,
        reduction,
        teacher_form=teacher_form,
        direction=direction,
    )
