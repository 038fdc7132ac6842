"""The float32 label gradient of logits tied (or nearly) at a huge value (issue 13).

The fused kernels shifted each row by the float64 log-sum-exp ``fl(m + ell)``, which
rounds to an ulp of the row maximum ``m``: for float32 logits tied at 1e30 it is ``m``
itself, so each tied class had ``p = 1`` (the gradient of ``[1e30, 1e30, 0]``, label 0,
was ``[0, 1, 0]``, not ``[-0.5, 0.5, 0]``). Every float32 path is checked: the compiled
small call, the full Numba kernel and the NumPy kernels without Numba. Oracles: the
max-shift formula in float64 (independent of crossent), mpmath at 50 digits for the
headline rows, and crossent's float64 (generic, max-shift) path for the options
(label smoothing's kernel corrects the shift by a pass over the row: right already).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels

F32 = np.float32
BIG = [1e30, -1e30, 3e38, -3e38, 2.0**40]
FULL_ROWS = 4000  # 5 classes: past _cpu_kernels.SERIAL_ELEMENTS, the full kernel


def _rows(big: float, n: int) -> np.ndarray:
    """float32 rows tied or nearly tied at ``big``: each row's maximum is shared or one
    float32 ulp from the next."""
    b = F32(big)
    below = np.nextafter(b, F32(-np.inf))
    base = np.array(
        [
            [b, b, 0, 1, 2] if b > 0 else [b, b, below, b, below],
            [b, below, below, b, b],
            [below, b, below, below, below],
        ],
        dtype=F32,
    )
    return np.tile(base, (n // 3 + 1, 1))[:n]


def _max_shift_grad(z: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """sum over rows of the cross-entropy's gradient, float64, p = e^((z' - m) - ell)."""
    x = z.astype(np.float64) / temperature
    x = x - x.max(-1, keepdims=True)
    p = np.exp(x - np.log(np.exp(x).sum(-1, keepdims=True)))
    p[np.arange(len(y)), y] -= 1.0
    return p / temperature


@pytest.fixture(params=["numba", "numpy"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "numba" and not _cpu_kernels.available():
        pytest.skip("Numba is not installed")
    if request.param == "numpy":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    return str(request.param)


def test_tied_at_1e30_the_issue_rows(backend: str) -> None:
    z = np.array([[1e30, 1e30, 0]], dtype=F32)
    got = crossent.softmax_cross_entropy_grad(z, np.array([0]), reduction="sum")
    np.testing.assert_array_equal(got, np.array([[-0.5, 0.5, 0]], dtype=F32))
    z = np.tile(np.array([[1e30, 1e30] + [0] * 21], F32), (300, 1))
    got = crossent.softmax_cross_entropy_grad(z, np.zeros(300, int))
    with mpmath.workdps(50):  # p = 1/2 on each tied class, e^(-1e30) = 0 elsewhere
        half = float(mpmath.mpf(1) / 2 / 300)
    want = np.zeros((300, 23))
    want[:, 0], want[:, 1] = -half, half
    np.testing.assert_array_equal(got, want.astype(F32))


@pytest.mark.parametrize("n", [3, FULL_ROWS])
@pytest.mark.parametrize("big", BIG)
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_against_the_max_shift_formula(
    backend: str, big: float, n: int, temperature: float
) -> None:
    z = _rows(big, n)
    y = np.arange(n) % 5
    got = crossent.softmax_cross_entropy_grad(z, y, reduction="sum", temperature=temperature)
    want = _max_shift_grad(z, y, temperature)
    np.testing.assert_allclose(got, want, rtol=2**-22, atol=1e-30)


OPTIONS: list[dict[str, Any]] = [
    {"label_smoothing": 0.1},
    {"weight": np.array([1.0, 2.0, 0.5, 3.0, 1.5], dtype=F32)},
    {"ignore_index": 2},
    {"z_loss": 1e-34},
    {"temperature": 0.5, "label_smoothing": 0.2, "weight": np.arange(1, 6, dtype=F32)},
    {"reduction": "none"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o))
@pytest.mark.parametrize("n", [3, FULL_ROWS])
@pytest.mark.parametrize("big", [1e30, -3e38, 2.0**40, 3e38])
def test_options_against_float64(backend: str, big: float, n: int, options: dict[str, Any]) -> None:
    z = _rows(big, n)
    y = np.arange(n) % 5
    got = crossent.softmax_cross_entropy_grad(z, y, **options)
    wide = {k: (v.astype(np.float64) if k == "weight" else v) for k, v in options.items()}
    want = crossent.softmax_cross_entropy_grad(z.astype(np.float64), y, **wide)
    scale = np.abs(want).max(-1, keepdims=True)
    assert np.all(np.abs(got - want) <= 2**-22 * scale + 1e-37)


@pytest.mark.parametrize("n", [3, FULL_ROWS])
def test_ordinary_rows_unchanged_next_to_far_ones(backend: str, n: int) -> None:
    rng = np.random.default_rng(13)
    z = rng.normal(size=(n, 5)).astype(F32) * F32(4)
    y = rng.integers(0, 5, size=n)
    plain = crossent.softmax_cross_entropy_grad(z, y, reduction="sum")
    mixed = z.copy()
    mixed[::2] = _rows(1e30, n)[::2]
    got = crossent.softmax_cross_entropy_grad(mixed, y, reduction="sum")
    np.testing.assert_array_equal(got[1::2], plain[1::2])
    np.testing.assert_allclose(got[::2], _max_shift_grad(mixed, y)[::2], rtol=2**-22, atol=1e-30)


def test_out_buffer_far_rows(backend: str) -> None:
    z = _rows(1e30, 6)
    y = np.zeros(6, dtype=np.int64)
    out = np.empty_like(z)
    got = crossent.softmax_cross_entropy_grad(z, y, reduction="sum", out=out)
    assert got is out
    np.testing.assert_allclose(out, _max_shift_grad(z, y), rtol=2**-22, atol=1e-30)
