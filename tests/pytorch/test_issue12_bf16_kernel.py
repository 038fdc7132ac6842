"""Issue 12, item bf16: the fused kernels read bfloat16 / float16 logits as they are stored.

A bf16 tensor reaches the kernels as its uint16 bits and float16 as itself: no float32
copy of the logits. Both kernels (Numba, and the NumPy twin of the default install)
are checked against the float64 truth of the same 16-bit values, the gradient's
rounding against torch's own float32 -> bf16/fp16 conversion (round to nearest even,
NaN and infinities kept), and ``crossent.torch.cross_entropy`` against naive bf16
PyTorch: loss within 1e-5 relative of the truth, gradients no further from it,
including peaked rows with p_y = 0.9, 0.99, 0.999.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

F = torch.nn.functional

import crossent.torch as ct  # noqa: E402
from crossent import InputError  # noqa: E402
from crossent.losses import _cpu_kernels, _numpy_kernels  # noqa: E402
from crossent.losses._kernel_inputs import GradientTerms, StatisticsOptions  # noqa: E402

from tolerances import KERNEL_EXP  # noqa: E402

KERNELS = [_cpu_kernels, _numpy_kernels]
DTYPES = [torch.bfloat16, torch.float16]


def _stored(t: torch.Tensor) -> np.ndarray:
    """What the kernels take: float16 as is, bf16 as its uint16 bits."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _tensor(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bfloat16:
        return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(values)


def _logits(dtype: torch.dtype, rows: int = 33, classes: int = 517) -> torch.Tensor:
    gen = torch.Generator().manual_seed(12)
    z = torch.randn(rows, classes, generator=gen, dtype=torch.float64) * 3
    z[5, 7] = -math.inf  # a -inf beside finite logits is valid
    z[6] = 0.0  # a row of exact ties
    return z.to(dtype)


@pytest.mark.parametrize("kernels", KERNELS, ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_issue12_bf16_row_statistics_read_16_bit_logits(kernels, dtype) -> None:  # type: ignore[no-untyped-def]
    z = _logits(dtype)
    labels = np.arange(z.shape[0]) * 13 % z.shape[1]
    weight = np.linspace(0.5, 2.0, z.shape[1])
    m, ell, zy, total, suspect = kernels.row_statistics(
        _stored(z), labels, StatisticsOptions(inv_temperature=1 / 1.5, need_sum=True, weight=weight)
    )
    exact = z.double() * (1 / 1.5)  # as the kernels scale
    top = exact.max(dim=1).values
    shifted = exact - top[:, None]
    np.testing.assert_array_equal(m, top.numpy())
    # Numba's minimax exp (issue 13: relative 5.2e-11); the NumPy twin's float32 exp
    # (corrected to first order) is float32-accurate
    rtol = KERNEL_EXP.rtol if kernels is _cpu_kernels else 1e-7
    np.testing.assert_allclose(m + ell, torch.logsumexp(exact, dim=1).numpy(), rtol=rtol)
    np.testing.assert_allclose(zy, shifted[np.arange(len(labels)), labels].numpy(), rtol=1e-14)
    # (a -inf logit makes the smoothing sum -inf, as in float64)
    np.testing.assert_allclose(
        total, (shifted * torch.from_numpy(weight)).sum(1).numpy(), rtol=1e-12
    )
    assert not suspect.any()


@pytest.mark.parametrize("kernels", KERNELS, ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_issue12_bf16_kernels_flag_nan_and_inf_rows(kernels, dtype, bad: float) -> None:  # type: ignore[no-untyped-def]
    z = _logits(dtype)
    z[9, 100] = bad
    z[11] = -math.inf
    labels = np.zeros(z.shape[0], dtype=np.int64)
    *_, suspect = kernels.row_statistics(_stored(z), labels, StatisticsOptions())
    assert np.flatnonzero(suspect).tolist() == [9, 11]


@pytest.mark.parametrize("kernels", KERNELS, ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_issue12_bf16_gradient_is_one_rounding_of_the_float32_value(kernels, dtype) -> None:  # type: ignore[no-untyped-def]
    """Written in the input's format: float64 -> float32 -> 16 bits, as torch rounds."""
    z = _logits(dtype)
    n, v = z.shape
    labels = np.arange(n) * 7 % v
    exact = z.double()
    lse = torch.logsumexp(exact, dim=1)
    # Coefficients that overflow float32 (inf), give NaN (0 * inf), and tiny ones
    # (subnormal in float16, flushed in bf16's exponent range never).
    p_coef = np.linspace(0.5, 3.0, n)
    p_coef[1], p_coef[2], p_coef[3] = 1e39, math.nan, 1e-6
    target = np.ones(n)
    terms = GradientTerms(shift=lse.numpy(), inv_temperature=1.0, p_coef=p_coef, target_coef=target)
    out = kernels.write_gradient(_stored(z), labels, terms)
    assert out.dtype == _stored(z).dtype
    truth = torch.from_numpy(p_coef)[:, None] * torch.exp(exact - lse[:, None])
    truth[np.arange(n), labels] -= torch.from_numpy(target)
    expected = truth.to(torch.float32).to(dtype)
    got = _tensor(out, dtype)
    finite = torch.isfinite(expected)
    # The NumPy twin's float32 exp (corrected to first order) may move a rounding
    # by one 16-bit ulp; Numba's exp (relative error 5.2e-11, issue 13) rounds as
    # torch's float64 does but within 5.2e-11 of a rounding boundary (none here).
    ulp = torch.finfo(dtype).eps
    diff = (got.double() - expected.double()).abs()[finite]
    assert (diff <= ulp * expected.double().abs()[finite] + 1e-45).all()
    if kernels is _cpu_kernels:
        assert torch.equal(got[finite], expected[finite])
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    assert torch.equal(torch.isposinf(got), torch.isposinf(expected))
    assert torch.isnan(got[2]).all()
    assert torch.isposinf(got[1]).sum() > 0


def test_issue12_bf16_encoding_rounds_to_nearest_even_like_torch() -> None:
    """The NumPy twin's bf16 rounding, over float32 values of every magnitude."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200_000, generator=gen) * torch.logspace(-45, 38, 200_000)
    ties = torch.tensor([1.00390625, 1.01171875, -1.00390625, 3.3961e38, -3.3961e38])
    x = torch.cat([x, ties, torch.tensor([math.inf, -math.inf, 0.0, -0.0])])
    got = _tensor(_numpy_kernels.encode_like(x.numpy(), np.dtype(np.uint16)), torch.bfloat16)
    assert torch.equal(got.view(torch.int16), x.to(torch.bfloat16).view(torch.int16))
    nan = _numpy_kernels.encode_like(np.array([math.nan], np.float32), np.dtype(np.uint16))
    assert math.isnan(float(_tensor(nan, torch.bfloat16)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_issue12_bf16_kernels_get_the_16_bit_logits_not_a_float32_copy(dtype, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[np.dtype] = []
    for name in ("row_statistics", "write_gradient"):
        real = getattr(_cpu_kernels, name)

        def spy(z, *args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(z.dtype)
            return _real(z, *args, **kwargs)

        monkeypatch.setattr(_cpu_kernels, name, spy)
    z = _logits(dtype).requires_grad_()
    ct.cross_entropy(z, torch.arange(z.shape[0])).backward()
    assert seen == [_stored(z.detach()).dtype] * 2
    assert z.grad is not None
    assert z.grad.dtype == dtype


def _peaked(dtype: torch.dtype, classes: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose p_y is 0.9, 0.99, 0.999 (before rounding the logits), then random rows."""
    rows = []
    for p in (0.9, 0.99, 0.999):
        row = torch.zeros(classes, dtype=torch.float64)
        row[3] = math.log((classes - 1) * p / (1 - p))
        rows.append(row)
    gen = torch.Generator().manual_seed(5)
    z = torch.cat(
        [torch.stack(rows), torch.randn(29, classes, generator=gen, dtype=torch.float64) * 4]
    )
    labels = torch.full((z.shape[0],), 3)
    labels[3:] = torch.randint(0, classes, (29,), generator=gen)
    return z.to(dtype), labels


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize(
    "options", [{}, {"label_smoothing": 0.1}, {"reduction": "sum"}, {"reduction": "none"}]
)
def test_issue12_bf16_loss_and_gradient_against_float64_and_naive_torch(
    dtype, options: dict
) -> None:  # type: ignore[no-untyped-def]
    z, labels = _peaked(dtype)
    gen = torch.Generator().manual_seed(3)
    upstream = torch.rand(z.shape[0], generator=gen, dtype=torch.float64) + 0.5

    def run(fn, x):  # type: ignore[no-untyped-def]
        x = x.detach().requires_grad_()
        loss = fn(x, labels, **options)
        (loss.double() * upstream if loss.ndim else loss.double()).sum().backward()
        return loss, x.grad

    ours, ours_grad = run(ct.cross_entropy, z)
    _naive, naive_grad = run(F.cross_entropy, z)
    truth, truth_grad = run(F.cross_entropy, z.double())
    assert ours.dtype == torch.float32
    assert ours_grad.dtype == dtype
    assert ((ours.double() - truth).abs() <= 1e-5 * truth.abs()).all()
    ours_err = (ours_grad.double() - truth_grad).abs()
    naive_err = (naive_grad.double() - truth_grad).abs()
    # per row, and in relative terms on the label's entry (p_y - 1, the peaked regime)
    assert (ours_err.max(dim=1).values <= naive_err.max(dim=1).values).all()
    at = torch.arange(z.shape[0]), labels
    info = torch.finfo(dtype)
    half_ulp = (
        info.eps / 2 * torch.maximum(truth_grad[at].abs(), torch.tensor(info.smallest_normal))
    )
    assert (ours_err[at] <= half_ulp * 1.01).all()  # one rounding (float16 subnormals too)


@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_issue12_bf16_errors_name_the_row_and_value(dtype) -> None:  # type: ignore[no-untyped-def]
    z = _logits(dtype)
    z[21, 4] = math.nan
    with pytest.raises(InputError, match="21"):
        ct.cross_entropy(z, torch.zeros(z.shape[0], dtype=torch.int64))
