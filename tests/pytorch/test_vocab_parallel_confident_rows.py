"""``vocab_parallel_cross_entropy`` of float32 logits: confident rows' losses to float32's
rounding (one gloo rank).

A row whose label leads every other class by 80 has the loss
:math:`\\log(1 + \\sum_{c \\ne y} e^{z_c - z_y}) \\approx 4.2\\cdot 10^{-30}`. The sharded
loss formed :math:`z_c - m` in float32 before float32 exponentials, which left it 36
float32 ulps off (2.1e-6 relative, found by ``benchmarks/check_torch_cuda.py``: the same
on the CPU's gloo and an H200's NCCL), where ``cross_entropy`` gives 5e-8. On the CPU the
exponentials are now formed in float64, as the unsharded loss's. The oracle is the
log1p form in float64 (exact here: no cancellation) on the float32 values.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")
import crossent.torch as ct  # noqa: E402
from spawned import one_rank_group  # noqa: E402

pytestmark = pytest.mark.distributed


def _rows(classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(classes)
    z = torch.randn(8, classes, generator=g, dtype=torch.float64) * 3
    z[0, 0] = 80.0  # the label leads by about 80: loss ~ 1e-30
    z[1, 1] = 40.0
    z[1, 0] = -40.0  # label 1 leads by 80 over class 0, by ~40 over the rest
    z[2, 0] = 20.0
    y = torch.zeros(8, dtype=torch.int64)
    y[1] = 1
    return z.float(), y


def _exact(z: torch.Tensor, y: torch.Tensor, temperature: float) -> np.ndarray:
    """LSE - z_y in float64 as log1p of the other classes' exponentials where y leads."""
    x = z.double().numpy() / temperature
    out = np.empty(x.shape[0])
    for i, (row, label) in enumerate(zip(x, y.numpy(), strict=True)):
        others = np.delete(row, label) - row[label]
        if others.max() < 0:
            out[i] = np.log1p(np.exp(others).sum())
        else:
            top = max(others.max(), 0.0)
            out[i] = top + np.log(np.exp(others - top).sum() + np.exp(-top))
    return out


@pytest.mark.parametrize("classes", [2, 7, 1000])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_float32_confident_rows_within_two_ulps(classes: int, temperature: float) -> None:
    z, y = _rows(classes)
    with tempfile.TemporaryDirectory() as folder, one_rank_group(folder):
        got = ct.vocab_parallel_cross_entropy(
            z, y, reduction="none", temperature=temperature
        ).numpy()
    exact = _exact(z, y, temperature)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= 2 * ulp), (got, exact, np.abs(got - exact) / ulp)
