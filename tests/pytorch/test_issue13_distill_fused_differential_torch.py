r"""Issue 13 review: ``crossent.torch.distillation_loss``'s fused CPU op, differentially.

The fused op (``torch._distill_cpu``: 2-D CPU tensors of one dtype) over inputs
hypothesis draws: float64, float32, float16 and bfloat16, contiguous or strided
(a transposed copy), classes on both sides of the kernels' 512-class blocks, every
reduction it takes, :math:`T` from 1/8 to 1000, and the hard rows of
``losses/distill_differential.py`` (equal, shifted, near, ties, masked classes, a
student ``-inf`` beside a teacher probability above 0 or below :math:`e^{-708}`, a
student logit of :math:`-10^{300}`).

Oracles: an extended-precision (x87 ``longdouble``) log-softmax KL times :math:`T^2`
and gradient :math:`T(s - t)` of the stored inputs (the documented results: the loss
within an ulp of the float64 truth, the gradient rounded once, through float32 for
float16/bfloat16), within some 64 float64 ulps of the terms; PyTorch's float64
``kl_div`` idiom and its autograd on the rows it forms (no ``-inf`` logit: a masked
teacher class is NaN there, the oracle's 0); the generic path (the op turned off) for
the dtypes and the ``InputError`` of NaN, ``+inf`` and rows of ``-inf``. Rows in
blocks on one thread or two keep their bits.

On main's d445a34 tree the property test fails (a student ``-inf`` beside a teacher
probability below the kernels' floor: a finite loss where the oracle and the generic
path have ``inf``; ``tests/losses/test_issue13_distill_fused_differential.py`` holds the
regressions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crossent.errors import InputError  # noqa: E402
from crossent.losses import _distill_rows  # noqa: E402
from crossent.torch import _distill_cpu, _far_distillation, distillation_loss  # noqa: E402
from losses.distill_differential import EPS, HARD, TEMPERATURES, harden, oracle  # noqa: E402

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def _inputs(
    seed: int, rows: int, classes: int, t: float, hard: list[tuple[int, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """float64 student and teacher logits, N(0, s^2) for a drawn scale, ``hard`` rows."""
    rng = np.random.default_rng(seed)
    scale = float(rng.choice([0.1, 1.0, 3.0, 30.0]))
    z = scale * rng.standard_normal((rows, classes))
    v = scale * rng.standard_normal((rows, classes))
    with np.errstate(all="ignore"):
        for row, kind in hard:
            harden(z, v, row % rows, kind, t, rng)
    return z, v


def _tensor(x: np.ndarray, dtype: torch.dtype, strided: bool) -> torch.Tensor:
    """``x`` in ``dtype``, contiguous or as a transposed copy's transpose (strided)."""
    y = torch.tensor(x).to(dtype)
    return y.t().contiguous().t() if strided else y


def _call(z: torch.Tensor, v: torch.Tensor, t: float, reduction: str) -> tuple[Any, ...]:
    """The loss and its gradient in ``z`` (of the loss times row weights for 'none')."""
    z = z.detach().clone().requires_grad_()
    loss = distillation_loss(z, v, t, reduction)
    rows = z.shape[0]
    weights = np.full(rows, 1.0 / rows if reduction == "mean" else 1.0)
    if reduction == "none":
        weights = 1.0 + (np.arange(rows) % 4) / 4.0  # (exact in every dtype: its upstream)
    upstream = torch.tensor(weights if reduction == "none" else 1.0, dtype=torch.float64)
    (grad,) = torch.autograd.grad((loss.double() * upstream).sum(), z)
    return loss.detach(), grad, weights


def _rounding(want: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """One rounding of ``want`` to ``dtype`` (float16/bfloat16: through float32 first)."""
    if dtype == torch.float64:
        return np.zeros_like(want)
    bound = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    if dtype != torch.float32:
        info = torch.finfo(dtype)
        bound = bound + info.eps * np.abs(want) + info.tiny * info.eps
    return bound


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(DTYPES),
    st.integers(1, 9),
    st.sampled_from((2, 3, 511, 513, 1025)),
    st.sampled_from(TEMPERATURES),
    st.sampled_from(("none", "mean", "sum")),
    st.lists(st.tuples(st.integers(0, 8), st.sampled_from(HARD)), max_size=4),
    st.booleans(),
)
def test_fused_op_against_the_oracle(
    seed: int,
    dtype: torch.dtype,
    rows: int,
    classes: int,
    t: float,
    reduction: str,
    hard: list[tuple[int, str]],
    strided: bool,
) -> None:
    """Loss and gradient within the oracle's bound and one rounding; the generic path's
    dtypes; float64 ordinary rows as PyTorch's ``kl_div`` idiom and its autograd."""
    z64, v64 = _inputs(seed, rows, classes, t, hard)
    z, v = _tensor(z64, dtype, strided), _tensor(v64, dtype, strided)
    assert _distill_cpu.applies(z, v, t, reduction)
    loss, grad, weights = _call(z, v, t, reduction)
    zs, vs = z.double().numpy(), v.double().numpy()  # the stored values
    truth = oracle(zs, vs, t)
    rows_loss, bound = truth["loss"], truth["loss_bound"]
    if reduction != "none":
        rows_loss, bound = (rows_loss * weights).sum(), (bound * weights).sum()
    with np.errstate(all="ignore"):  # (inf - inf of the infinite rows: masked below)
        got = loss.double().numpy()
        finite = np.isfinite(rows_loss)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        np.testing.assert_array_equal(got[~finite], rows_loss[~finite])
        excess = np.abs(got - rows_loss) - 1e-12 * np.abs(rows_loss) - bound
        assert not (excess[finite] > _rounding(rows_loss, torch.float32)[finite]).any()
        want = truth["grad"] * weights[:, None]
        slack = truth["grad_bound"] * weights[:, None] + 1e-12 * np.abs(want)
        error = np.abs(grad.double().numpy() - want) - slack
        assert not (error > _rounding(want, dtype)).any(), error.max()
    with torch.no_grad():
        generic = _far_distillation.distillation_rows_checked(z, v, t, reduction)
    assert (loss.dtype, grad.dtype) == (generic.dtype, z.dtype)
    if dtype == torch.float64:  # PyTorch's idiom on its rows (no -inf: NaN or inf there)
        ordinary = np.isfinite(zs).all(1) & np.isfinite(vs).all(1)
        x = z[ordinary].detach().clone().requires_grad_()
        idiom = torch.nn.functional.kl_div(
            torch.log_softmax(x / t, 1), torch.softmax(v[ordinary] / t, 1), reduction="none"
        )
        (t * t * idiom.sum()).backward()
        rows_want = t * t * idiom.detach().sum(1).numpy()
        ours = _call(z[ordinary], v[ordinary], t, "none")
        near = truth["loss_bound"][ordinary]  # (the idiom's own rounding: that size again)
        assert (np.abs(ours[0].numpy() - rows_want) <= 2 * near + 1e-12 * rows_want).all()
        scale = 1.0 / ours[2][:, None]
        bound_g = 2 * truth["grad_bound"][ordinary] + 64 * EPS * t
        assert (np.abs(ours[1].numpy() * scale - x.grad.numpy()) <= bound_g).all()


def test_rows_in_blocks_on_one_thread_or_two_keep_their_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocks of 2 rows on one thread or two: the bits of one block, every dtype."""
    hard = list(enumerate(HARD))
    z64, v64 = _inputs(11, len(HARD), 513, 2.0, hard)
    threads = torch.get_num_threads()
    try:
        for dtype in DTYPES:
            z, v = _tensor(z64, dtype, False), _tensor(v64, dtype, False)
            monkeypatch.setattr(_distill_rows, "BLOCK_BYTES", 1 << 30)
            one = _call(z, v, 2.0, "none")
            monkeypatch.setattr(_distill_rows, "BLOCK_BYTES", 2 * 8 * 513)
            for count in (1, 2):
                torch.set_num_threads(count)
                blocked = _call(z, v, 2.0, "none")
                assert torch.equal(blocked[0], one[0])
                assert torch.equal(blocked[1], one[1])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("side", "what"), [("z", "nan"), ("v", "inf"), ("v", "row"), ("z", "row")])
def test_invalid_rows_raise_the_generic_path_s_error(
    dtype: torch.dtype, side: str, what: str
) -> None:
    """NaN, ``+inf`` or a row of ``-inf`` beside a masked row: the generic path's error."""
    z64, v64 = _inputs(5, 6, 513, 2.0, [(1, "masked_both"), (2, "student_inf")])
    x = z64 if side == "z" else v64
    if what == "row":
        x[4] = -np.inf
    else:
        x[3, 7] = np.nan if what == "nan" else np.inf
    z, v = _tensor(z64, dtype, False), _tensor(v64, dtype, False)
    with pytest.raises(InputError) as expected:
        _far_distillation.distillation_rows_checked(z, v, 2.0, "mean")
    with pytest.raises(InputError) as raised:
        distillation_loss(z.requires_grad_(), v, 2.0, "mean")
    assert str(raised.value) == str(expected.value)
