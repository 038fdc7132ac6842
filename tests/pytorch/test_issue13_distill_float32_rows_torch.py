r"""Issue 13 follow-up: ``crossent.torch.distillation_loss``'s CPU op reads float32 rows as
they are and its backward writes the float32 gradient itself.

The claim: the same bits as main's route (float32 rows widened into float64 blocks,
the gradient formed in a float64 block, rounded by ``astype`` and copied), forced here
by ``_distill_rows.KERNEL_DTYPES`` without float32, on ordinary, near, masked
(``-inf``) and far rows, contiguous or not, :math:`T = 0.7` and 2, the three
reductions; float16 and bfloat16 keep the widened route (the kernels' float64 blocks).

On main (0d894b6) every test here fails: no ``KERNEL_DTYPES``, and the structural
test sees float64 blocks of float32 rows.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from crossent.losses import _distill_rows  # noqa: E402
from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402


def _rows(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(13)
    z = torch.randn(24, 600, generator=g) * 3
    v = torch.randn(24, 600, generator=g) * 3
    v[1] = z[1]  # a near row
    v[2, 7] = -torch.inf  # a masked class
    z[3, 0] = 1e4  # a huge spread
    v[4] = z[4] + 1e-6
    return z.to(dtype), v.to(dtype)


def _bits(z: torch.Tensor, v: torch.Tensor, temperature: float, reduction: str) -> list[bytes]:
    z = z.detach().clone().requires_grad_(True)
    assert _distill_cpu.applies(z, v, temperature, reduction)
    loss = distillation_loss(z, v, temperature=temperature, reduction=reduction)
    loss.backward(torch.linspace(0.5, 2.0, loss.numel()).reshape(loss.shape).to(loss.dtype))
    assert z.grad is not None
    return [x.detach().reshape(-1).view(torch.uint8).numpy().tobytes() for x in (loss, z.grad)]


def _all(dtype: torch.dtype) -> list[bytes]:
    z, v = _rows(dtype)
    out: list[bytes] = []
    for temperature in (0.7, 2.0):
        for reduction in ("mean", "sum", "none"):
            out += _bits(z, v, temperature, reduction)
    # not contiguous (a copy of the rows, as they are)
    out += _bits(z.t().contiguous().t(), v, 2.0, "none")
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_bits_match_the_float64_route(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _all(dtype)
    monkeypatch.setattr(_distill_rows, "KERNEL_DTYPES", (np.dtype(np.float64),))
    assert now == _all(dtype)


def test_float32_rows_are_not_widened(monkeypatch: pytest.MonkeyPatch) -> None:
    z, v = _rows(torch.float32)
    expected = _bits(z, v, 2.0, "mean")
    widened: list[np.ndarray] = []
    get = _distill_rows.Blocks.get

    def counted(self: _distill_rows.Blocks, slot: int, rows: int) -> np.ndarray:
        block = get(self, slot, rows)
        widened.append(block)
        return block

    monkeypatch.setattr(_distill_rows.Blocks, "get", counted)
    assert _bits(z, v, 2.0, "mean") == expected
    assert not widened
    _bits(z.to(torch.bfloat16), v.to(torch.bfloat16), 2.0, "mean")  # widened (slots 0, 1, 2)
    assert widened
    assert all(block.dtype == np.float64 for block in widened)
