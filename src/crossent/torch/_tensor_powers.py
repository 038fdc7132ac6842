r"""Exact powers of two whose exponents are tensors: far rows under ``torch.jit.trace``.

Under a trace, :func:`crossent.torch._launch._weighted_gap_sum` scales a row's gaps
by :math:`2^{-j}`, :math:`2^j \ge 4C\max(1, \max_c v_c)`, and their sum back by
:math:`2^{j-e}` (:math:`T = f\,2^e`) with :math:`j` a tensor per row
(:func:`gap_sum_bits`): eager calls read :math:`\max v` on the host, which a trace
would keep as the example's constant.

:func:`power_of_two` is ``torch.exp2`` of the integer exponent: an ``exp2`` splits its
argument into an integer :math:`n` and a fraction :math:`f` and returns
:math:`2^n q(f)` with :math:`q(0) = 1`, so at an integer it is the power of two itself
(checked for every :math:`k` in :math:`[-1074, 1023]`, one element and vectorized, in
``tests/pytorch/test_torch_trace_check.py``). Not the float64's bits
(``view(torch.float64)`` of :math:`(k + 1023) \ll 52`): ``torch.jit.trace`` has no
alias rule for a dtype ``view``.
"""

from __future__ import annotations

import torch

__all__ = ["gap_sum_bits", "power_of_two", "times_power_of_two"]


def power_of_two(k: torch.Tensor) -> torch.Tensor:
    r""":math:`2^k` in float64 for integer ``k`` in :math:`[-1074, 1023]`, exact."""
    return torch.exp2(k.to(torch.float64))


def times_power_of_two(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r""":math:`x\,2^k` for float64 ``x`` and int64 ``k`` :math:`\ge -1022` (broadcast),
    as ``_launch._times_power_of_two``: upward in steps of at most :math:`2^{1000}`,
    downward in one, so rounded at most once and ``inf`` only where it overflows."""
    first = torch.clamp(k, min=0, max=1000)
    second = torch.clamp(k - first, min=0, max=1000)
    return x * power_of_two(first) * power_of_two(second) * power_of_two(k - first - second)


def gap_sum_bits(v: torch.Tensor) -> torch.Tensor:
    r""":math:`j = 2 + \lceil\log_2(C\max(1, \max_c v_c))\rceil` of each row of ``v``
    (classes last; int64, keepdims): ``_launch._gap_sum_bits`` of one row, without a
    host read. Computed in float64; a :math:`\log_2` one ulp above an integer makes
    :math:`j` one more, still a bound (every scaling by it is exact)."""
    top = v.detach().double().amax(-1, keepdim=True).clamp(min=1.0)
    classes = v.new_ones(v.shape[-1:], dtype=torch.float64).sum().clamp(min=1.0)
    return 2 + torch.ceil(torch.log2(top * classes)).to(torch.int64)
