r"""Issue 13 follow-up: the allocator's peak of one probability-target step, end to end.

A quiet run of ``benchmarks/bench_torch_soft_targets.py`` read a higher peak for the
refactored soft cap (``_launch._capped_logits``, ``_target_forward_block``,
``_target_gradient_block``) than for 876c9d4: that bench reads the rise of the peak
resident set size, which glibc's retained heap (blocks of 16 MiB sit under its dynamic
mmap threshold) moves by tens of MiB either way. PyTorch's CPU allocator, read here
through the profiler's allocation events (``total_allocated``), is not fooled: one
``cross_entropy(...).backward()`` through the public API (autograd, the saved
tensors, the gradient) holds at its peak the gradient and 3 float64 blocks with a cap,
2 without (876c9d4: 5 and 4), and the forward 5 blocks (876c9d4: 6 with a cap, 5 and
a mask without).

Oracle: the count of blocks, each ``rows x classes`` float64, from the operations.
Fails on 876c9d4's ``_launch.py`` in all 4 cases (forward 5.14 blocks without a cap,
6.14 with; backward 4 and 5 blocks beside the gradient); main at 568bc4d: 5.01 and
2.01/3.01.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.torch import _launch  # noqa: E402

# the allocator peak is benchmarks/bench_torch_soft_targets.py's too: one reading of it
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _machine import torch_allocator_peak_bytes  # noqa: E402

N, C = 48, 500
BLOCK_ROWS = 16  # of _BLOCK_BYTES = 64 KiB: 64 KiB // (4 * 2C) float64 rows
BLOCK = BLOCK_ROWS * C * 8
SLACK = 4096  # row vectors (losses, LSEs, upstream) and the reduction's scalars


def _allocator_peak(run: Callable[[], object]) -> int:
    """Peak bytes of PyTorch's CPU allocator during ``run()`` above its level at the start
    (``benchmarks/_machine.py``'s reading of the profiler's allocation events)."""
    peak = torch_allocator_peak_bytes(run)
    if peak is None:  # pragma: no cover - the profiler's private event tree changed
        pytest.skip("no allocation events from torch's profiler (torch._C._profiler)")
    return peak


@pytest.mark.parametrize("soft_cap", [None, 30.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_issue13_target_step_peak_in_blocks(
    monkeypatch: pytest.MonkeyPatch, soft_cap: float | None, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(_launch, "_BLOCK_BYTES", 64 * 1024)
    g = torch.Generator().manual_seed(13)
    z = (torch.randn(N, C, generator=g) * 40).to(dtype).requires_grad_()
    t = torch.softmax(torch.randn(N, C, generator=g), -1).to(dtype)
    ct.cross_entropy(z, t, soft_cap=soft_cap).backward()  # warm-up: imports, first calls
    z.grad = None

    loss: list[torch.Tensor] = []
    forward = _allocator_peak(lambda: loss.append(ct.cross_entropy(z, t, soft_cap=soft_cap)))
    backward = _allocator_peak(lambda: loss[0].backward())

    gradient = N * C * z.element_size()
    assert forward <= 5 * BLOCK + SLACK
    assert backward <= gradient + (2 if soft_cap is None else 3) * BLOCK + SLACK
