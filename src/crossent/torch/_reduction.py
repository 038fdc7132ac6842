r"""The rows that count and the weighted mean of per-row losses, shared by the torch losses.

With class weights :math:`w` (all 1 without them) and the rows that count
:math:`\mathcal A` (label not ``ignore_index``), ``'mean'`` is PyTorch's weighted mean

.. math:: \bar L = \frac{\sum_{i\in\mathcal A} L_i}{\sum_{i\in\mathcal A} w_{y_i}},

and 0 (with a zero gradient), not NaN, when the denominator is 0 (every row ignored).
Plain torch operations, differentiable and free of host syncs (``torch.compile``
traces them without a graph break).
"""

from __future__ import annotations

import math

import torch

from ._arguments import examples, under_torch_func

__all__ = [
    "label_rows",
    "label_weight_sum",
    "mean_scaled_weight",
    "power_of_two_exponent",
    "power_of_two_scaled",
    "reads_on_host",
    "rows_in_range_total",
    "rows_upstream",
    "weighted_mean",
]


def label_rows(labels: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(active, safe)``: the rows that count (bool) and the labels as int64, 0 where ignored."""
    if ignore_index is None:
        active = torch.ones_like(labels, dtype=torch.bool)
    else:
        active = labels != ignore_index
    safe = torch.where(active, labels, torch.zeros_like(labels)).to(torch.int64)
    return active, safe


def label_weight_sum(
    labels: torch.Tensor, weight: torch.Tensor | None, ignore_index: int | None, dtype: torch.dtype
) -> torch.Tensor:
    """The mean's denominator :math:`\\sum_{i\\in\\mathcal A} w_{y_i}`, summed in float64."""
    active, safe = label_rows(labels, ignore_index)
    if weight is None:
        return active.sum().to(dtype)
    w_y = weight.to(torch.float64)[safe]
    return torch.where(active, w_y, torch.zeros_like(w_y)).sum().to(dtype)


def weighted_mean(total: torch.Tensor, normalizer: torch.Tensor) -> torch.Tensor:
    """``total / normalizer``, and 0 (with a zero gradient) when the normaliser is 0."""
    positive = normalizer > 0
    safe = torch.where(positive, normalizer, torch.ones_like(normalizer))
    return torch.where(positive, total / safe, torch.zeros_like(total))


def reads_on_host(a: torch.Tensor, *, per_example: bool) -> bool:
    """Whether a loss reads a value of ``a`` on the host (then takes its host-read
    branch) rather than its device branch: eagerly on the CPU only (elsewhere a read
    is a host sync; while compiling, a graph break), and with ``per_example`` False
    outside ``torch.func`` only.

    The one home of both host reads, which differ on purpose: ``per_example`` True
    where the caller reads every example's values (``examples``: the weights of
    :func:`mean_scaled_weight`, the float64 sum of ``_binary.mean_of_terms``), which
    a ``torch.func`` transform does not stop; False where it reads the value itself
    (the float64 sum of :func:`rows_in_range_total`), a batched value under
    ``vmap``. A function of its own so that tests on the CPU can take the device
    branches (patch it to ``False``: every branch that CUDA takes eagerly)."""
    return (
        a.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and (per_example or not under_torch_func())
    )


def power_of_two_exponent(top: torch.Tensor, *, at_most_one: bool) -> torch.Tensor:
    r"""The integer :math:`k` (a tensor, by ``torch.frexp``: device operations, no host
    read) of the power of 2 :math:`2^{-k}` that scales the number ``top`` down (or up)
    into a bound: with ``at_most_one`` False into :math:`[1/2, 1)` (``frexp``'s
    exponent: :func:`power_of_two_scaled`), with ``at_most_one`` True the least
    :math:`k \ge 0` with :math:`\mathrm{top}\,2^{-k} \le 1`, never up (0 where
    ``top`` is at most 1; a power of 2 lands on 1: ``_binary._down_to_one``). 0 for
    a ``top`` of 0. The one home of both scalings' exponent."""
    mantissa, exponent = torch.frexp(top)
    if not at_most_one:
        return exponent
    return (exponent - (mantissa == 0.5).to(exponent.dtype)).clamp(min=0)


def power_of_two_scaled(weight: torch.Tensor, wide: torch.dtype | None = None) -> torch.Tensor:
    r"""``weight`` times :math:`2^{-e}`, :math:`e` the exponent that ``torch.frexp`` gives
    its largest entry (which lands in :math:`[1/2, 1)`; :func:`power_of_two_exponent`):
    device operations only, no host read. A new tensor, exact where the scaled entry is
    a normal number of ``weight``'s dtype.

    The product is formed in ``wide`` (default float64; float32 on MPS, which has no
    float64) as two factors :math:`2^h` and :math:`2^{-e-h}`, :math:`h` the integer part
    of :math:`-e/2`: :math:`|e| \le 150` for float32 weights, so each
    factor (at most :math:`2^{75}`) is a normal float32 and each multiplication exact
    for the entries that stay normal; in float64 the bits are those of one factor
    :math:`2^{-e}`.
    """
    if wide is None:
        wide = torch.float32 if weight.device.type == "mps" else torch.float64
    exponent = power_of_two_exponent(weight.detach().max(), at_most_one=False)
    # Clamped so that each factor is a normal number of ``wide``.
    shift = -exponent.clamp(-1000, 1000).to(wide)
    half = torch.trunc(shift / 2)
    return (weight.to(wide) * torch.exp2(half) * torch.exp2(shift - half)).to(weight.dtype)


def mean_scaled_weight(weight: torch.Tensor | None) -> torch.Tensor | None:
    r"""Class weights for ``'mean'``: ``weight`` times the power of 2 :math:`2^{-e}` that
    brings its largest entry into :math:`[1/2, 1)` (``torch.frexp``,
    :func:`power_of_two_scaled`); on the CPU eagerly only where that entry is outside
    :math:`[2^{-64}, 1]` (else ``weight`` itself; up to :math:`2^{64}` also where the
    scaling would make the smallest positive weight subnormal), off the CPU and while
    compiling always.

    A weight above 1 multiplies a row loss past its dtype's range where the mean is
    not (issue 13, branch torchweight1): float32 rows near ``2e38`` times a weight of 2
    gave a float32 row ``inf`` and a ``'mean'`` of ``inf`` for 1.49e38 (the float64
    mean). With the largest weight below 1 a weighted row is at most its unweighted
    loss. Until then the CPU scaled only weights above :math:`2^{64}`.

    The weighted mean :math:`\sum_i w_{y_i} L_i / \sum_i w_{y_i}` does not change when
    every weight is scaled by one factor, and a power of 2 scales every weight, row
    loss and sum exactly (the same bits where they stay normal numbers). Without it,
    float32 weights near the ends of the range broke the mean (issue 13, branch
    hostiletorch3): weights of about ``1e-40`` (subnormal) gave a NaN gradient from
    :math:`1/\sum w = \infty` (``linear_cross_entropy`` an ``inf`` loss), weights of
    about ``1e38`` a NaN loss from :math:`\infty/\infty`, where the float64 mean is
    about 2. The largest entry is read on the host on the CPU only (as the weight
    checks read it; :func:`reads_on_host`), and weights of at most 1 stay the caller's
    tensor there (autograd still sees an in-place change of it before the backward;
    of weights above 1 the loss saves the scaled copy, as off the CPU).
    Elsewhere (off the CPU, or compiling) a read would be a host sync or a graph break,
    so every weight is scaled with device operations: the same numbers for ordinary
    weights, a new tensor (the loss saves it, so an in-place change of the caller's
    weight after the call no longer reaches the backward, nor is it reported). Off the
    CPU eagerly nothing was scaled until issue 13 (branch leftovers14), so CUDA weights
    of ``1e-40`` or ``1e38`` still gave the NaN or ``inf``. The class-id losses never
    differentiate ``weight`` (``check_weight_not_differentiated``).
    """
    if weight is None or weight.numel() == 0:
        return weight
    if reads_on_host(weight, per_example=True):
        seen = examples(weight.detach())[0]  # every example's under vmap
        low, high = torch.aminmax(seen)
        top = float(high)
        if 2.0**-64 <= top <= 1.0:
            return weight
        if 1.0 < top <= 2.0**64:
            if _flushed_by_scaling(seen, float(low), top):
                return weight
            # The factor of power_of_two_scaled as a Python float: the same bits (exact
            # products, none subnormal), a few microseconds less a call.
            return weight * 2.0 ** -math.frexp(top)[1]
    return power_of_two_scaled(weight)


def _flushed_by_scaling(weight: torch.Tensor, smallest: float, top: float) -> bool:
    """Whether scaling ``weight`` (entries from ``smallest`` to ``top``) into ``[1/2, 1)``
    would make its smallest positive entry a subnormal number of its dtype (weights
    more than about :math:`2^{125}` apart in float32): then weights up to
    :math:`2^{64}` stay as given, as before issue 13's branch torchweight1 (a label of
    the tiny weight alone would otherwise have a mean of 0)."""
    if smallest <= 0:  # (a weight of 0: the smallest positive one)
        smallest = float(torch.where(weight > 0, weight, top).min())
    return smallest / top < 2.0 * torch.finfo(weight.dtype).tiny


def rows_in_range_total(
    total: torch.Tensor, rows: torch.Tensor, wide: torch.Tensor | None
) -> torch.Tensor:
    r"""The float64 sum ``total`` of float32 (or float16, bfloat16) ``rows``, or where it
    is ``inf`` and the sum of the rows with their ``inf`` ones taken from ``wide`` (the
    same rows in float64; differentiated there, the other rows through ``rows``) is
    finite, that sum. The one rule of every torch ``'mean'`` of class ids
    (``cross_entropy``, ``CrossEntropyLoss``, ``linear_cross_entropy``, the
    vocab-parallel losses), eager, compiled, under ``torch.func`` and on any device.

    A row past float32's range by itself made a finite ``'mean'`` ``inf`` (issue 13,
    branch torchrow1: logits ``[3e38, -3e38]``, label 1, beside five rows ``[0, 0]``:
    ``inf`` for 1e38). Where a row is ``+inf`` in float64 too (a label on a ``-inf``
    logit) the mean is ``inf`` and its value and gradient stay the rows' (the op's
    bits). Eagerly on the CPU outside ``torch.func`` (:func:`reads_on_host`) a host
    read of ``total`` first, ordinary inputs paying that read only; elsewhere the same
    ``torch.where`` always, no host sync (a second sum of the N rows). ``wide`` None
    (no float64 twin, float64 rows): ``total``."""
    if wide is None or rows.dtype == torch.float64:
        return total
    if reads_on_host(rows, per_example=False) and not bool(torch.isinf(total.detach())):
        return total
    far = torch.isinf(rows.detach())
    again = torch.where(far, wide, rows.to(torch.float64)).sum()
    # a row +inf in float64 too: the mean is inf, and value and gradient stay the rows'
    recovered = torch.isinf(total.detach()) & torch.isfinite(again.detach())
    return torch.where(recovered, again, total)


def rows_upstream(grad_rows: torch.Tensor, grad_wide: torch.Tensor | None) -> torch.Tensor:
    """The rows' upstream gradient: that of the rows, and where their float64 twin's is
    not 0 (:func:`rows_in_range_total` differentiates the twin at the ``inf`` float32
    rows only, the rows elsewhere), the twin's, in the rows' dtype. A zero or absent
    twin's upstream leaves ``grad_rows``' bits, signed zeros included."""
    if grad_wide is None:
        return grad_rows
    return torch.where(grad_wide != 0, grad_wide.to(grad_rows.dtype), grad_rows)
