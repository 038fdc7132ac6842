r"""Issue 13 follow-up: the distillation kernels read float32 rows as they are.

``_distill_numba``'s kernels widen each entry as they read it, and the backward kernel
rounds each gradient entry once to its output's dtype, so float32 rows need no float64
copy and a float32 gradient no float64 block (``_distill_rows.KERNEL_DTYPES``). The
claim: the same bits as the float64 route (the rows widened to float64 by NumPy, the
gradient formed in a float64 block and rounded by ``astype``), on every kind of row.

Oracles: the float64 kernels on the widened rows (the kernels' own comparison); the
fused NumPy :func:`crossent.distillation_loss` and its gradient with the float64 route
forced (``KERNEL_DTYPES`` without float32: main's route). Hard rows: NaN, ``+inf``,
``-inf`` (one and all), near ties one float32 ulp apart, a spread of :math:`10^4`, a
row equal to the teacher (a near row), the maximum in the second block, :math:`C = 2`
and :math:`C = 513` (two blocks), :math:`T = 0.7, 1, 2` (a power of two or not).

On main (0d894b6): the structural test fails (the float32 rows widened into float64
blocks) and the forced-route tests fail (no ``KERNEL_DTYPES``); the kernel test passes
there too (Numba compiles the kernels for any dtype; main never called them so).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import crossent
from crossent._read_only import read_only
from crossent.losses import _cpu_kernels, _distill_fused, _distill_rows

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="no Numba kernels")

_F32 = np.float32


def _hard_rows(classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher rows (float32, 12 x classes) of every kind (module docstring)."""
    z = (rng.standard_normal((12, classes)) * 3).astype(_F32)
    v = (rng.standard_normal((12, classes)) * 3).astype(_F32)
    z[1, 0] = np.nan
    v[2, -1] = np.inf
    v[3, 0] = -np.inf  # a masked class (valid)
    z[4, :] = -np.inf  # a row of -inf (invalid)
    v[5] = z[5]  # a near row
    v[6] = np.nextafter(z[6], _F32(np.inf))  # one ulp apart
    z[7, 0] = 1e4  # a huge spread
    v[8, -1] = v[8].max() + 5  # the maximum in the last block
    z[9, :] = z[9, 0]  # every class tied
    return z, v


@pytest.mark.parametrize("classes", [2, 513])
@pytest.mark.parametrize("temperature", [0.7, 1.0, 2.0])
def test_float32_kernels_match_the_widened_rows(classes: int, temperature: float) -> None:
    forward, backward = _distill_rows.kernels()
    z, v = map(read_only, _hard_rows(classes, np.random.default_rng(classes)))
    z64, v64 = read_only(z.astype(np.float64)), read_only(v.astype(np.float64))
    rows = z.shape[0]
    stats, stats64 = np.empty((rows, 5)), np.empty((rows, 5))
    # (given=False, lse=0 passed as the library passes them: its compiled signature)
    forward(z, v, temperature, stats, False, 0)
    forward(z64, v64, temperature, stats64, False, 0)
    np.testing.assert_array_equal(stats, stats64)  # (NaN where NaN)
    assert np.isfinite(stats[[0, 5, 6, 7, 8, 9], 0]).all()
    scale = np.linspace(-2.0, 3.0, rows)
    grad, grad64 = np.empty((rows, classes), _F32), np.empty((rows, classes))
    small, small64 = np.empty(rows, np.bool_), np.empty(rows, np.bool_)
    backward(z, v, stats, temperature, scale, grad, small)
    backward(z64, v64, stats64, temperature, scale, grad64, small64)
    assert grad.tobytes() == grad64.astype(_F32).tobytes()
    np.testing.assert_array_equal(small, small64)


def _calls(z: np.ndarray, v: np.ndarray) -> list[object]:
    """The fused loss (three reductions) and gradient of one call, as bits."""
    out: list[object] = []
    for reduction in ("mean", "sum", "none"):
        for t in (0.7, 2.0):
            kwargs = {"temperature": t, "reduction": reduction}
            out.append(np.asarray(crossent.distillation_loss(z, v, **kwargs)).tobytes())
            out.append(np.asarray(crossent.distillation_loss_grad(z, v, **kwargs)).tobytes())
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_fused_bits_match_the_float64_route(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    z, v = _hard_rows(513, rng)
    z, v = (
        np.concatenate([z[[0, 3, 5, 6, 7, 8, 9]]] * 5),
        np.concatenate([v[[0, 3, 5, 6, 7, 8, 9]]] * 5),
    )
    z, v = z.astype(dtype), v.astype(dtype)
    assert z.size >= _distill_fused.FUSED_ELEMENTS
    assert _distill_fused.fused_call((z, v), {}) is not None
    now = _calls(z, v)
    monkeypatch.setattr(_distill_rows, "KERNEL_DTYPES", (np.dtype(np.float64),))
    assert now == _calls(z, v)


def test_numpy_fused_float32_rows_are_not_widened(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    z = rng.standard_normal((40, 512)).astype(_F32)
    v = rng.standard_normal((40, 512)).astype(_F32)
    expected = crossent.distillation_loss_grad(z, v, temperature=2.0)

    def refused(*_: object) -> np.ndarray:
        raise AssertionError("a float64 block of float32 rows")

    monkeypatch.setattr(_distill_rows.Blocks, "get", refused)
    assert crossent.distillation_loss_grad(z, v, temperature=2.0).tobytes() == expected.tobytes()
    assert crossent.distillation_loss(z, v, temperature=2.0) == crossent.distillation_loss(
        z.astype(np.float64), v.astype(np.float64), temperature=2.0
    ).astype(_F32)
    # read-only rows (a memory map): read as they are too, by the same kernels (issue 13:
    # _distill_rows hands every row to them read-only; main widened these)
    z.flags.writeable = False
    v.flags.writeable = False
    assert crossent.distillation_loss_grad(z, v, temperature=2.0).tobytes() == expected.tobytes()
