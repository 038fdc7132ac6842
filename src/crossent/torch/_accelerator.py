r"""Cross-entropy of class ids off the CPU: torch operations on large blocks of whole rows.

Design
------
The fused linear loss (:mod:`crossent.torch._linear`) already computes everything
per row from blocks of logits it forms as :math:`h W^\top`; here the blocks are rows
of the given logits :math:`z` (N x V) instead (:class:`LogitsProblem`, a "logits
provider": its ``hidden`` copies a block of rows, ignored rows zeroed, into a buffer
of the work dtype and its ``logits`` caps that buffer in place). The formulas have
one home, ``_linear``'s:

* forward (:func:`crossent.torch._linear.forward_pass`): :math:`c = \operatorname{cap}(z)`,
  :math:`m, j = \max_c c`, the float64 sum :math:`s' = \sum_{c \ne j} e^{(c - m)/T}`
  over all classes but one maximal one (each exponential in the work dtype,
  float32 on accelerators, accumulated in float64), :math:`\ell =
  \operatorname{log1p}(s')` and

  .. math:: L_i = -(1-\varepsilon) w_{y_i} \log p_{y_i}
            + \tfrac{\varepsilon}{V}\Big(\textstyle\sum_c w_c\,\ell_i - D_i/T\Big)
            + \lambda\,\omega_i \operatorname{LSE}_i^2,\qquad
            -\log p_y = (m - c_y)/T + \ell,

  every term :math:`\ge 0` (:math:`D_i = \sum_c w_c(c_{ic} - m_i) \le 0`, no
  :math:`\operatorname{LSE} - z'` cancellation, never a sum minus 1);
  :math:`\operatorname{LSE} = m/T + \ell`. Ignored rows are 0 and never read (their
  logits are replaced by 0 in the block: a NaN or infinity there reaches nothing).
* backward (:meth:`crossent.torch._linear.LinearProblem.gradient_block`):

  .. math:: G_i = u_i\,\big[(A_i + 2\lambda\omega_i\operatorname{LSE}_i)\,p_i
            - w \odot \tilde t_i\big] \odot \operatorname{sech}^2(z_i/s)/T,

  :math:`p = e^{(c - m)/T - \ell}`, the label's entry :math:`g
  \operatorname{expm1}(\log p_y) + (c - g)\,p_y` (exact where :math:`p_y \to 1`),
  from the forward's :math:`\ell` and :math:`\log p_y` and the row maxima :math:`m`
  formed again (one read of the block: the op's two float64 outputs are
  :math:`\ell` and :math:`\log p_y` here, not the LSE, whose rounding to an ulp of
  :math:`m/T` would lose :math:`\ell` beside a large maximum, issue 13).

Passes over a float32 block of N x V (one read or write of it each), with
``ignore_index`` set, T = 1, no cap or smoothing: forward 8 (the masked copy 2, the
maximum 1, ``c - m`` 2, ``exp`` 2, the float64 sum 1); backward 11, the gradient
written into its own output (the masked copy 2, the maximum 1, ``c - m``, ``- ell``
and ``exp`` 2 each, the scaling 2). bfloat16/float16 logits are read as they are and
computed in float32; float64 stays float64. No host synchronisation: no check reads a
value (the class ids are checked before, ``check_class_ids_off_cpu``).

Blocks: whole rows, as many as make :data:`BLOCK_BYTES` of the work dtype or the size of
the input, whichever is smaller, in blocks of equal size (4096 x 32000 float32: two of
2048 rows, 250 MiB each). The extra memory is one such block (two with soft-capping:
its ``tanh``), and none in the backward for float32 (the gradient is formed in its
output's rows).

On the CPU this path runs only when a test sets :data:`ON_CPU` (the fused kernels and
the generic path keep the CPU); its exponentials are then float64 (``_linear._wide``),
as the fused linear loss's on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

from ._backend import Options
from ._linear import LinearProblem, _soft_capped, forward_pass

__all__ = ["BLOCK_BYTES", "ON_CPU", "LogitsProblem", "applies", "backward", "block_rows", "forward"]

#: Largest block of rows, in bytes of the work dtype (and at most the input's size).
BLOCK_BYTES = 256 * 2**20

#: Route CPU tensors here too (tests only: the path's checks without an accelerator).
ON_CPU = False


def applies(z: torch.Tensor) -> bool:
    """Whether the logits ``z`` go through this path: off the CPU (or :data:`ON_CPU`)."""
    return z.device.type != "cpu" or ON_CPU


def block_rows(rows: int, classes: int, itemsize: int, work_itemsize: int) -> int:
    r"""Rows per block: :math:`R = \min(\text{BLOCK\_BYTES}, N V b_z) / (V b_w)`, at least 1,
    then evened out (:math:`\lceil N / \lceil N/R \rceil\rceil`) so that the blocks are of
    one size.

    Parameters
    ----------
    rows, classes : int
        :math:`N` and :math:`V`.
    itemsize, work_itemsize : int
        Bytes of an entry of the input (:math:`b_z`) and of the work dtype (:math:`b_w`).

    Returns
    -------
    int
        The rows of a block, in :math:`[1, \max(N, 1)]`.
    """
    rows, classes = max(rows, 1), max(classes, 1)
    budget = min(BLOCK_BYTES, rows * classes * itemsize)
    step = max(1, budget // (classes * work_itemsize))
    return -(-rows // -(-rows // step))


@dataclass
class LogitsProblem(LinearProblem):
    r"""A :class:`~crossent.torch._linear.LinearProblem` whose logits are given: ``h`` is
    :math:`z` (N x V) and ``w`` a (V, 0) placeholder that carries the classes and the
    accumulation dtype (no product is formed). Its blocks are whole rows, copied into one
    buffer of the work dtype (:meth:`hidden`)."""

    buffer: torch.Tensor | None = None

    @classmethod
    def of(
        cls,
        z: torch.Tensor,
        labels: torch.Tensor,
        weight: torch.Tensor | None,
        opts: Options,
        *,
        ignore_index: int | None,
    ) -> LogitsProblem:
        """The problem of logits ``z`` (rows x classes) and class ids ``labels`` (rows)."""
        n, classes = z.shape
        acc = torch.float64 if z.dtype == torch.float64 else torch.float32
        placeholder = torch.empty((classes, 0), dtype=acc, device=z.device)
        problem = cast(
            LogitsProblem,
            cls.build(
                z,
                placeholder,
                None,
                labels,
                weight,
                opts,
                ignore_index=ignore_index,
                chunk_size=1,
                vocab_chunk=classes,
            ),
        )
        work_itemsize = torch.finfo(problem.work).bits // 8
        problem.token_chunk = block_rows(n, classes, z.element_size(), work_itemsize)
        return problem

    @staticmethod
    def reads_mask(h: torch.Tensor, active: torch.Tensor) -> bool:
        """True: rows may be ignored, never read on the host (on the CPU too)."""
        return True

    @property
    def host_checks(self) -> bool:
        """False: the accelerator's behaviour, also on the CPU (:data:`ON_CPU`)."""
        return False

    def hidden(self, rows: slice, into: torch.Tensor | None = None) -> torch.Tensor:
        r"""The logits of the rows ``rows`` in the work dtype, ignored rows 0, in ``into``
        (a block of the work dtype) or in the problem's buffer: one pass (float32 into
        float32), two with a dtype change and ignored rows (a copy, then a fill)."""
        z = self.h[rows]
        if into is None:
            if self.buffer is None:
                shape = (self.token_chunk, self.classes)
                self.buffer = torch.empty(shape, dtype=self.work, device=z.device)
            into = self.buffer[: z.shape[0]]
        if not self.masked:
            return into.copy_(z)
        keep = self.active[rows, None]
        if z.dtype == into.dtype:
            return torch.where(keep, z, torch.zeros((), dtype=z.dtype, device=z.device), out=into)
        return into.copy_(z).masked_fill_(~keep, 0.0)

    def logits(
        self, hc: torch.Tensor, v0: int, v1: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""The capped logits :math:`c = s\tanh(z/s)` of the columns ``v0:v1`` of a block
        from :meth:`hidden` (ours: capped in place; itself without a cap) and ``z/s``."""
        return _soft_capped(hc[:, v0:v1], self.options.soft_cap, overwrite=True)


def forward(
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    opts: Options,
    *,
    ignore_index: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-row losses (float32, float64 for float64 ``z``; 0 on ignored rows), the
    rows' float64 :math:`\ell = \operatorname{log1p}(s')` and :math:`\log p_y =
    (c_y - m)/T - \ell` (:func:`crossent.torch._linear.forward_pass`), and the losses
    in float64 (the twin of ``_launch.forward``).

    Parameters
    ----------
    z : torch.Tensor
        Logits ``(rows, classes)``, float64, float32, bfloat16 or float16.
    labels : torch.Tensor
        Class ids ``(rows,)``, in range (checked by the caller) or ``ignore_index``.
    weight : torch.Tensor or None
        Class weights ``(classes,)``.
    opts : Options
        Label smoothing, z-loss, temperature and soft cap.
    ignore_index : int or None
        The id of rows that count for nothing.

    Returns
    -------
    tuple of torch.Tensor
        Losses, :math:`\ell`, :math:`\log p_y` and the losses in float64, a row each.
    """
    problem = LogitsProblem.of(z.detach(), labels, weight, opts, ignore_index=ignore_index)
    with torch.no_grad():
        loss, stats, log_p, _ = forward_pass(problem, row_scale=None)
    rows = loss.to(problem.acc, copy=True)  # (float64 z: not the twin itself)
    return rows, stats[:, 1].contiguous(), log_p, loss


def backward(
    upstream: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None,
    ell: torch.Tensor,
    label_log_p: torch.Tensor,
    opts: Options,
    *,
    ignore_index: int | None,
) -> torch.Tensor:
    r"""``upstream[i] * d L_i / d z[i]`` in ``z``'s dtype from :func:`forward`'s ``ell`` and
    ``label_log_p``, a block of rows at a time
    (:meth:`~crossent.torch._linear.LinearProblem.gradient_block`, the row maxima
    :math:`m` formed again from the block).

    For float32 (float64) logits each block is formed in place in the gradient's own
    rows; bfloat16/float16 ones in a float32 buffer, rounded once to ``z``'s dtype.
    """
    n, classes = z.shape
    out = torch.empty((n, classes), dtype=z.dtype, device=z.device)
    if n == 0:
        return out
    problem = LogitsProblem.of(z.detach(), labels, weight, opts, ignore_index=ignore_index)
    scale = upstream.detach().to(problem.work) * problem.active
    ell = ell.to(torch.float64)
    with torch.no_grad():
        for start, stop in problem.token_blocks():
            rows = slice(start, stop)
            here = out[rows] if out.dtype == problem.work else None
            c, t = problem.logits(problem.hidden(rows, into=here), 0, classes)
            m = c.amax(1).to(torch.float64)
            stats = torch.stack((m, ell[rows]), 1)
            grad = problem.gradient_block(
                c, t, stats, label_log_p[rows], scale[rows], rows, 0, classes
            )
            del c, t
            if here is None or grad.data_ptr() != here.data_ptr():
                out[rows] = grad  # rounded once to z's dtype
            del grad
    return out
