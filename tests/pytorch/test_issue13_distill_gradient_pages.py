r"""Issue 13 follow-up (distperf): the fused op's gradient in memory advised for huge pages.

``crossent::distillation_cpu_rows_backward`` (``crossent.torch._distill_cpu``) writes an
N x V gradient into fresh memory. ``torch.empty``'s memory faults in 4 KiB pages on its
first touch, which on the 2-core KVM guest cost as much CPU time as the backward
kernel's arithmetic (``benchmarks/bench_torch_distill_compile.py --breakdown``); the op
now allocates it by NumPy, which advises Linux to back a large array with transparent
huge pages (``madvise(MADV_HUGEPAGE)``: the ``hg`` flag of the mapping in
``/proc/self/smaps``). Checked here: the flag on the gradient's memory, and that the
gradient is an ordinary tensor for autograd (accumulated by a second backward, updated
in place, its values the float64 oracle's for every dtype the op takes, the op's own
output in that dtype).

On main (638b205) ``test_gradient_memory_is_advised_for_huge_pages`` fails (the
gradient is ``torch.empty``'s: no ``hg`` flag); the other test passes there (the
values and the accumulation are unchanged: a guard for the new memory). Mutants caught:
``torch.empty``'s memory again (the first test); float16 gradients in float32 memory
(the op's dtype); a gradient that is not contiguous (a reversed view of NumPy's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402

_SMAPS = Path("/proc/self/smaps")


def _advised() -> bool:
    """Whether NumPy advises huge pages here (Linux, THP not off, NumPy's switch on)."""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not sys.platform.startswith("linux") or not _SMAPS.exists() or not thp.exists():
        return False
    if "[never]" in thp.read_text():
        return False
    from numpy._core import multiarray

    return bool(multiarray._get_madvise_hugepage())


def _flags_at(address: int) -> list[str]:
    """The ``VmFlags`` of the mapping of this process that holds ``address``."""
    inside = False
    for line in _SMAPS.read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            low, high = (int(x, 16) for x in head.split("-"))
            inside = low <= address < high
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def _grad(z: torch.Tensor, v: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    leaf = z.detach().clone().requires_grad_()
    distillation_loss(leaf, v, temperature=temperature, reduction="mean").backward()
    assert leaf.grad is not None
    return leaf.grad


@pytest.mark.skipif(not _advised(), reason="no transparent huge pages advised here")
def test_gradient_memory_is_advised_for_huge_pages() -> None:
    g = torch.Generator().manual_seed(0)
    z, v = torch.randn(64, 32768, generator=g), torch.randn(64, 32768, generator=g)
    grad = _grad(z, v)  # 8 MiB: NumPy advises the 2 MiB-aligned pages inside it
    middle = grad.data_ptr() + grad.numel() * grad.element_size() // 2
    assert "hg" in _flags_at(middle)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_gradient_is_an_ordinary_tensor(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    z64, v64 = (
        3 * torch.randn(6, 50, generator=g, dtype=torch.float64),
        3 * torch.randn(6, 50, generator=g, dtype=torch.float64),
    )
    z, v = z64.to(dtype), v64.to(dtype)
    zs, vs = z.double() / 2.0, v.double() / 2.0
    expected = 2.0 * (torch.softmax(zs, 1) - torch.softmax(vs, 1)) / 6  # T (s - t) / N
    leaf = z.clone().requires_grad_()
    for calls in (1, 2):  # the second backward accumulates into the first gradient
        distillation_loss(leaf, v, temperature=2.0, reduction="mean").backward()
        assert leaf.grad is not None
        assert leaf.grad.dtype == dtype
        assert leaf.grad.is_contiguous()
        assert leaf.grad.shape == z.shape
        rtol, atol = {torch.float16: (2e-3, 1e-7), torch.bfloat16: (1.6e-2, 0.0)}.get(
            dtype, (1e-6, 0.0)
        )
        got = leaf.grad.double().numpy()
        np.testing.assert_allclose(got, calls * expected.numpy(), rtol=rtol, atol=atol)
    with torch.no_grad():
        leaf.grad.mul_(0.5).add_(1.0)  # an optimizer's in-place update
    assert torch.isfinite(leaf.grad).all()
    # the op itself (autograd would cast a gradient of another dtype back to z's)
    _, stats, kind, _ = _distill_cpu.distillation_cpu_rows(z, v, 2.0)
    upstream = torch.full((6,), 1.0 / 6, dtype=torch.float64)
    grad = _distill_cpu.distillation_cpu_rows_backward(upstream, z, v, stats, kind, 2.0)
    assert grad.dtype == dtype
    assert grad.is_contiguous()
    np.testing.assert_allclose(grad.double().numpy(), expected.numpy(), rtol=rtol, atol=atol)
