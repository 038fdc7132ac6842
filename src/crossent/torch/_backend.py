r"""The one place where ``crossent.torch`` reaches into ``crossent.losses``.

Every autograd path of :mod:`crossent.torch` computes the softmax cross-entropy of
integer labels through the functions of this module, on one block of rows at a time
(class axis last), and they call the losses package's value-and-gradient entry
points (``prepare_softmax_labels``, ``SoftmaxProblem``, ``softmax_label_gradient``),
so the formula (:math:`A\ell - B + \lambda\omega\,\operatorname{LSE}^2` and its
gradient) has one home:

* :func:`label_rows` returns the per-row loss :math:`L_i` (ignored rows 0), the
  per-row :math:`\operatorname{LSE}(z'_i)` and the per-row :math:`\log p_{y_i}`;
* :func:`label_gradient` writes :math:`u_i\,\partial L_i / \partial z_i` for a per-row
  upstream gradient :math:`u`, given the forward's LSE and :math:`\log p_y` (the fused
  kernels form the label's entry from the latter, exact at any confidence).

Both take NumPy arrays (the fused Numba kernels run when they apply: C-contiguous
float32, float16, or uint16 holding bfloat16 bits, which the kernels decode as they
read; no soft-capping) or any Array-API array such as a torch tensor (the generic
path). Isolating them here keeps a change in the losses package's private API a
one-file change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .._checks import check_logits_of_rows
from ..losses import _cpu_kernels, _numpy_kernels
from ..losses._batch import (
    LossKeywords,
    LossOptions,
    label_batch,
    loss_options,
)
from ..losses._softmax import (
    SoftmaxProblem,
    _fast_rows,
    _label_log_p,
    label_problem,
    prepare_softmax_labels,
    quiet_ignored_rows,
    softmax_label_gradient,
)
from ..losses._terms import SoftmaxRows, log_prob_of_labels

__all__ = [
    "Options",
    "fused_applies",
    "label_gradient",
    "label_rows",
    "options",
    "pack",
    "unpack",
]

Options = LossOptions


class _Terms(Protocol):
    """What :func:`pack` reads: :class:`Options`, or ``_arguments.CallOptions``."""

    @property
    def label_smoothing(self) -> float: ...
    @property
    def z_loss(self) -> float: ...
    @property
    def temperature(self) -> float: ...
    @property
    def soft_cap(self) -> float | None: ...


def options(
    *, label_smoothing: float, z_loss: float, temperature: float, soft_cap: float | None
) -> Options:
    """Validated options (an :class:`InputError` names a bad one), with per-row reduction.

    The losses package's :func:`~crossent.losses._batch.options_of` does not read its
    table of checked options while Dynamo traces (a traced lookup guarded on the table,
    so each compiled loss was built again after any call that added options: issue 13),
    so this is one call, eager or traced.
    """
    return loss_options(
        label_smoothing=label_smoothing,
        temperature=temperature,
        z_loss=z_loss,
        soft_cap=soft_cap,
        reduction="none",
    )


def pack(opts: _Terms) -> list[float]:
    """The numeric options as the custom ops take them: one ``float[]`` argument.

    ``[label_smoothing, z_loss, temperature, soft_cap]``, with ``soft_cap`` 0.0 for
    none (a cap is > 0). A schema takes no dataclass; this pair of functions is the one
    place that knows the order, so every op (``_ops.py``) declares one argument, not four.
    """
    cap = 0.0 if opts.soft_cap is None else opts.soft_cap
    return [opts.label_smoothing, opts.z_loss, opts.temperature, cap]


def unpack(packed: Sequence[float]) -> Options:
    """The :class:`Options` that :func:`pack` encoded (checked again: a cache lookup)."""
    label_smoothing, z_loss, temperature, cap = packed
    return options(
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        temperature=temperature,
        soft_cap=None if cap == 0.0 else cap,
    )


def fused_applies(opts: Options) -> bool:
    """Whether the fused kernels compute this problem, given C-contiguous float32 NumPy logits."""
    return opts.soft_cap is None and _cpu_kernels.available()


def _prepare(
    z: Any, labels: Any, weight: Any, opts: Options, *, ignore_index: int | None, validate: bool
) -> SoftmaxProblem:
    return prepare_softmax_labels(
        z,
        labels,
        axis=-1,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=opts.label_smoothing,
        reduction="none",
        temperature=opts.temperature,
        z_loss=opts.z_loss,
        soft_cap=opts.soft_cap,
        validate=validate,
    )


def label_rows(
    z: Any, labels: Any, weight: Any, opts: Options, *, ignore_index: int | None, validate: bool
) -> tuple[Any, Any, Any]:
    r"""Per-row losses (0 on ignored rows), log-sum-exps and :math:`\log p_y` of the block
    ``z`` (rows x classes).

    In the compute dtype of ``z`` (float32 for float32; float64 log-sum-exps and
    :math:`\log p_y` from the fused kernels). :math:`\log p_y = (z'_y - m) - \ell` from
    the row statistics (class 0 on ignored rows): exact where the label is the maximum,
    unlike :math:`z'_y - \mathrm{LSE}` with the LSE rounded to an ulp of :math:`m`, so the
    backward's label entry :math:`c \operatorname{expm1}(\log p_y) + (c - g)` is exact
    at any confidence (issue 13).
    """
    if _reduced(z):
        problem = _fused_problem(
            z, labels, weight, opts, ignore_index=ignore_index, validate=validate
        )
    else:
        problem = _prepare(z, labels, weight, opts, ignore_index=ignore_index, validate=validate)
    # ``loss()`` with reduction "none": ``row_loss()`` keeps the smoothing term of
    # ignored rows (arch branch, 145d273), which ``loss()`` zeroes.
    return problem.loss(), problem.row_lse, _row_label_log_p(problem)


def _row_label_log_p(problem: SoftmaxProblem) -> Any:
    r""":math:`\log p_y` per row (flat) of a forward's problem, either path."""
    if problem.shifted_y is not None:  # the fused kernels' statistics
        return _label_log_p(problem.shifted_y, problem.rows)
    assert problem.labels is not None
    return log_prob_of_labels(problem.rows, problem.labels.safe, xp=problem.batch.xp)[..., 0]


def label_gradient(
    z: Any,
    labels: Any,
    weight: Any,
    lse: Any,
    label_log_p: Any,
    upstream: Any,
    opts: Options,
    *,
    ignore_index: int | None,
    out: Any,
) -> Any:
    r"""Write ``upstream[i] * d L_i / d z[i]`` into ``out`` (rows x classes); return it.

    For the fused kernels (NumPy float32 ``z``, or float16 / bfloat16 bits) the problem
    is rebuilt from the forward's log-sum-exp and :math:`\log p_y` (``label_log_p``), so
    the backward is one pass over ``z`` (the gradient kernel); elsewhere the entry point
    recomputes the row statistics (``lse`` and ``label_log_p`` unread).
    For float16 and bfloat16 ``out`` must be None: the kernel returns a new array in
    ``z``'s format (``softmax_label_gradient`` checks ``out`` against float32).
    """
    if _reduced(z) or (isinstance(z, np.ndarray) and z.dtype == np.float32 and fused_applies(opts)):
        saved = (lse, label_log_p)
        problem = _fused_problem(
            z, labels, weight, opts, ignore_index=ignore_index, validate=False, saved=saved
        )
        return softmax_label_gradient(problem, upstream=upstream, out=out)
    problem = _prepare(z, labels, weight, opts, ignore_index=ignore_index, validate=False)
    if isinstance(out, np.ndarray):
        softmax_label_gradient(problem, upstream=upstream, out=out)
    else:  # ``out=`` is for NumPy buffers only
        out[...] = softmax_label_gradient(problem, upstream=upstream)
    return out


def _reduced(z: Any) -> bool:
    """Whether ``z`` is NumPy float16, or uint16 holding bfloat16 bits (fused kernels only)."""
    return isinstance(z, np.ndarray) and z.dtype in (np.float16, np.uint16)


def _float32_proxy(z: np.ndarray) -> np.ndarray:
    """A float32 array of ``z``'s shape that allocates nothing (zeros, zero strides).

    What the losses package's batch helpers see of 16-bit logits: they read the shape
    and the compute dtype, never the values (the kernels read those).
    """
    return np.broadcast_to(np.float32(0.0), z.shape)


def _fused_problem(
    z: np.ndarray,
    labels: np.ndarray,
    weight: np.ndarray | None,
    opts: Options,
    *,
    ignore_index: int | None,
    validate: bool,
    saved: tuple[np.ndarray, np.ndarray] | None = None,
) -> SoftmaxProblem:
    r"""``prepare_softmax_labels``'s fused problem for NumPy logits the kernels read.

    ``z``: float32, float16, or uint16 holding bfloat16 bits; the kernels decode each
    value as they read it (no float32 copy; the losses package's batch helpers see a
    float32 proxy of 16-bit logits).

    ``saved`` None (the forward): the row statistics from the kernels. A row is
    non-finite exactly when the kernel would call it suspect (a NaN, ``+inf``, or all
    ``-inf``); only then are the logits decoded whole, for the check to name the entry.

    ``saved`` given (the backward): the forward's per-row ``(lse, label_log_p)``, taken
    as the statistics :math:`m = \mathrm{LSE}`, :math:`\ell = 0`, :math:`z'_y - m = \log
    p_y`; nothing is read from ``z``. The fused gradient needs per row only these and
    :math:`A` (which depends on the label and the class weights, not on the logits);
    pass ``validate=False`` (the forward checked). Nor are the labels' range read again
    (issue 13: a min/max pass, 0.25 ms per :math:`10^6` labels, 0.95 ms with
    ``ignore_index`` rows): they are the tensor the forward op checked
    (``_ops.softmax_ce_labels``' ``check_class_ids``), saved by ``save_for_backward``,
    which refuses a tensor changed in place since; and the gradient kernel never reads
    nor writes outside a row for a label that is not a class.
    """
    like = _float32_proxy(z) if _reduced(z) else z
    keywords = LossKeywords(weight=weight, ignore_index=ignore_index, validate=validate)
    given = label_batch(
        like, labels, opts, keywords, xp=np, validate_logits=False, check_range=saved is None
    )
    lab = given.labels
    if saved is None:
        rows, shifted_y, smooth_b = _fast_rows(z, lab, opts, validate=False, axis=1)
        if not np.isfinite(rows.lse).all():
            if validate:  # the rows that count only: an ignored row is never read (issue 13)
                logits = _numpy_kernels.as_float32(z)
                check_logits_of_rows(logits, lab.active, name="logits", xp=np, axis=1)
            quiet_ignored_rows(rows, shifted_y, smooth_b, lab.active)
    else:
        # The gradient reads no B: zeros in place of the smoothing's term (and B's
        # label term, formed from log p_y, is unread too).
        zeros = np.zeros((z.shape[0], 1))
        lse, log_p = (np.reshape(np.asarray(x, dtype=np.float64), (-1, 1)) for x in saved)
        rows = SoftmaxRows(z=like, shifted=None, ell=zeros, lse=lse)
        shifted_y, smooth_b = log_p, zeros if opts.label_smoothing else None
    problem = label_problem(given.batch, lab, opts, rows, shifted_y, smooth_b, like, z)
    problem.shifted_y = shifted_y  # for the gradient's label entries (_label_log_p)
    return problem
