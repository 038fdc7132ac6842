r"""Issue 13 follow-up: large NumPy distillation calls by the fused kernels (``_distill_fused``).

:func:`crossent.distillation_loss` and :func:`crossent.distillation_loss_grad` take NumPy
float32/float64 student and teacher logits of more than the lean path's entries through
``_distill_numba``'s float64 kernels (``_distill_rows``' blocks and threads, shared with
``crossent.torch``'s CPU op); the rows the kernels do not form go to the full path.

Oracles: the full path itself (today's path: ``_distill_fused.FUSED_ELEMENTS`` raised so
that no call is fused), which forms the near, far and ``-inf`` rows exactly (its own
tests); mpmath at 40 digits on a few rows of two classes. Hard rows: student equal to the
teacher, nearly equal (:math:`10^{-7}`), a shift (:math:`D = 0`), a gap of
:math:`10^4`, a teacher probability 0 (a ``-inf`` logit); NaN, ``+inf`` and a row of
``-inf`` (errors); :math:`C = 2` and :math:`C = 3000`, :math:`T = 0.5, 1, 2`, every
reduction, float32 and float64. A counter on ``_distill_fused`` shows the calls were
fused (or, for errors and declined calls, not).

On main the file fails to import (``_distill_fused`` does not exist); with the fused
step turned off (``fused_call`` returning None, main's path) the counted tests fail.
Mutants caught (each run by hand, reverted): the host rows not formed again (loss:
near and ``-inf`` rows; gradient: small spreads), the gradient scale without :math:`T`,
no invalid-row check (the NaN row formed unchecked: no error), the float32 gradient
blocks not stored, the near flags of ``_distill_rows.row_kinds`` dropped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent
from crossent._parallel import workers
from crossent.errors import InputError
from crossent.losses import _distill_fused, _distill_rows
from losses.blocked_checks import peak_of
from losses.distill_differential import full_path, loss_values

pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")

REDUCTIONS = ("none", "mean", "sum", "parts")
NEAR = (2, 3, 6)  # the rows the full path forms by _near_rows (equal, nearly equal, shift)


def _hard_rows(rows: int, classes: int, dtype: Any, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Student and teacher logits (``rows`` x ``classes``): ordinary rows and the hard ones."""
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal((rows, classes))
    v = 3.0 * rng.standard_normal((rows, classes))
    v[2] = z[2]  # equal: D = 0
    v[3] = z[3] + 1e-7 * rng.standard_normal(classes)  # near: the terms cancel
    z[4, 0] = 1e4  # a gap of 1e4
    v[5, -1] = -np.inf  # a teacher probability 0 (valid; the kernels leave the row)
    v[6] = z[6] + 0.5  # a shift: D = 0
    return z.astype(dtype), v.astype(dtype)


@pytest.fixture
def fused(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the loss and gradient calls ``_distill_fused`` answered (not None)."""
    counts = {"loss": 0, "gradient": 0}
    for name in counts:
        original = getattr(_distill_fused, name)

        def counted(args: Any, kwargs: Any, host: Any, _f: Any = original, _n: str = name) -> Any:
            result = _f(args, kwargs, host)
            counts[_n] += result is not None
            return result

        monkeypatch.setattr(_distill_fused, name, counted)
    return counts


def _assert_close(a: Any, b: Any, rtol: float = 1e-9, atol: Any = 0.0) -> None:
    """``a`` (fused) against ``b`` (today's): the same dtype and shape; float64 within
    ``rtol`` (the kernels' rounding: a few ulps of the terms, relative to a KL near
    ``_near_rows.KL_FLOOR``), float32 within one float32 ulp more; ``atol`` beside."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
    assert np.array_equal(np.isfinite(wide_a), np.isfinite(wide_b))
    ulp = np.spacing(np.abs(b)).astype(np.float64) if b.dtype == np.float32 else 0.0
    bound = np.broadcast_to(rtol * np.abs(wide_b) + ulp + atol, b.shape)
    finite = np.isfinite(wide_b)
    assert np.all(np.abs(wide_a[finite] - wide_b[finite]) <= bound[finite])
    assert np.array_equal(wide_a[~finite], wide_b[~finite], equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("rows", "classes"), [(8200, 2), (8, 3000)])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_fused_matches_today(
    fused: dict[str, int], dtype: Any, rows: int, classes: int, temperature: float
) -> None:
    """Every reduction, the loss and its gradient: the full path's values within float64
    rounding (its near rows to 1e-12, both formed by ``_near_rows``), its dtypes, shapes."""
    z, v = _hard_rows(rows, classes, dtype)
    options = {"temperature": temperature}
    for reduction in REDUCTIONS:
        loss = crossent.distillation_loss(z, v, reduction=reduction, **options)
        expected = full_path(crossent.distillation_loss, z, v, reduction=reduction, **options)
        assert type(loss) is type(expected)
        _assert_close(loss_values(loss), loss_values(expected))
        if reduction == "none":
            _assert_close(loss[list(NEAR)], expected[list(NEAR)], rtol=1e-12)
        grad = crossent.distillation_loss_grad(z, v, reduction=reduction, **options)
        want = full_path(crossent.distillation_loss_grad, z, v, reduction=reduction, **options)
        scale = temperature / rows if reduction == "mean" else temperature
        # each entry: s - t of two float64 exponentials of at most 1, times the scale
        _assert_close(grad, want, rtol=1e-12, atol=8 * np.finfo(np.float64).eps * scale)
        _assert_close(grad[list(NEAR)], want[list(NEAR)], rtol=1e-9, atol=1e-300)
    assert fused == {"loss": 4, "gradient": 4}


def test_blocks_on_threads_keep_the_bits(fused: dict[str, int], monkeypatch: Any) -> None:
    """Blocks of two rows on the process's threads (``_distill_rows.over_blocks``): the
    bits of one block (rows are independent); a read-only float64 input (copied into
    the blocks) too, and a batch of two axes (shape kept)."""
    z, v = _hard_rows(12, 3000, np.float64)
    one = crossent.distillation_loss(z, v, temperature=2.0, reduction="none")
    grad = crossent.distillation_loss_grad(z, v, temperature=2.0)
    monkeypatch.setattr(_distill_rows, "BLOCK_BYTES", 2 * 8 * 3000)
    assert len(_distill_rows.row_blocks(12, 3000)) == 6
    z.flags.writeable = False
    blocked = crossent.distillation_loss(z, v, temperature=2.0, reduction="none")
    np.testing.assert_array_equal(blocked, one)
    np.testing.assert_array_equal(crossent.distillation_loss_grad(z, v, temperature=2.0), grad)
    batch = crossent.distillation_loss(
        z.reshape(3, 4, 3000), v.reshape(3, 4, 3000), temperature=2.0, reduction="none"
    )
    np.testing.assert_array_equal(batch, one.reshape(3, 4))
    assert fused == {"loss": 3, "gradient": 2}


def test_peak_memory_is_bounded_by_the_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """tracemalloc's peak of a fused float32 gradient (ordinary rows): its result plus
    three float64 blocks a thread (``_distill_rows.Blocks``: both sides and the
    gradient's), not a float64 copy of the call (1.5 MiB here, the full path's)."""
    block = 2 * 3000 * 8
    monkeypatch.setattr(_distill_rows, "BLOCK_BYTES", block)
    rng = np.random.default_rng(5)
    z, v = (rng.standard_normal((64, 3000), dtype=np.float32) for _ in range(2))
    peak, result = peak_of(lambda: crossent.distillation_loss_grad(z, v, temperature=2.0))
    assert peak <= result + 3 * workers() * block + 64 * 1024, peak - result


@mpmath.workdps(40)
def test_two_classes_against_mpmath(fused: dict[str, int]) -> None:
    r""":math:`T^2 D(t\,\|\,s)` and :math:`T(s - t)` of a few rows of two classes at
    :math:`T = 2` against mpmath (40 digits), the fused call in bits (base 2)."""
    z, v = _hard_rows(8200, 2, np.float64, seed=3)
    t = 2.0
    loss = crossent.distillation_loss(z, v, temperature=t, reduction="none", base=2)
    grad = crossent.distillation_loss_grad(z, v, temperature=t, reduction="none", base=2)
    for i in (0, 1, 3, 4, 7):
        sigma = [mpmath.mpf(float(x)) / t for x in z[i]]
        tau = [mpmath.mpf(float(x)) / t for x in v[i]]
        ls = mpmath.log(sum(map(mpmath.exp, sigma)))
        lt = mpmath.log(sum(map(mpmath.exp, tau)))
        s = [mpmath.exp(x - ls) for x in sigma]
        p = [mpmath.exp(x - lt) for x in tau]
        kl = t * t * sum(pc * ((b - lt) - (a - ls)) for pc, a, b in zip(p, sigma, tau, strict=True))
        assert loss[i] == pytest.approx(float(kl / mpmath.log(2)), rel=1e-9)
        exact = [float(t * (a - b) / mpmath.log(2)) for a, b in zip(s, p, strict=True)]
        np.testing.assert_allclose(grad[i], exact, rtol=1e-9, atol=1e-16)
    assert fused == {"loss": 1, "gradient": 1}


def test_far_and_infinite_rows(fused: dict[str, int]) -> None:
    """A gap past the float64 range (its row formed again by the far-row guard) and a
    student probability 0 under a teacher's mass (``inf``): today's rows and sums."""
    z, v = _hard_rows(8, 3000, np.float64, seed=1)
    z[0, 0], z[0, 1] = 1e308, -1e308
    z[1, 2] = -np.inf
    for reduction in ("none", "sum"):
        loss = crossent.distillation_loss(z, v, reduction=reduction)
        _assert_close(loss, full_path(crossent.distillation_loss, z, v, reduction=reduction))
    assert math.isinf(crossent.distillation_loss(z, v, reduction="none")[1])
    grad = crossent.distillation_loss_grad(z, v)
    _assert_close(grad, full_path(crossent.distillation_loss_grad, z, v), rtol=1e-12, atol=1e-18)
    assert fused["loss"] >= 3
    assert fused["gradient"] == 1


@pytest.mark.parametrize(
    ("side", "row", "value"),
    [("z", 4, np.nan), ("v", 3, np.inf), ("z", 5, -np.inf), ("v", 1, np.nan)],
)
def test_invalid_rows_raise_today_s_error(
    fused: dict[str, int], side: str, row: int, value: float
) -> None:
    """A NaN, ``+inf`` or a row of ``-inf``: the full path's ``InputError`` (argument,
    row), float32 and float64, loss and gradient; nothing fused. ``validate=False``:
    today's values (NaN rows)."""
    for dtype in (np.float64, np.float32):
        z, v = _hard_rows(8, 3000, dtype)
        x = z if side == "z" else v
        if value == -np.inf:
            x[row] = value
        else:
            x[row, 17] = value
        for function in (crossent.distillation_loss, crossent.distillation_loss_grad):
            with pytest.raises(InputError) as expected:
                full_path(function, z, v, temperature=2.0)
            with pytest.raises(InputError) as raised:
                function(z, v, temperature=2.0)
            assert str(raised.value) == str(expected.value)
    assert fused == {"loss": 0, "gradient": 0}
    with np.errstate(all="ignore"):  # (NumPy's warnings of those rows, on both paths)
        unchecked = crossent.distillation_loss(z, v, validate=False, reduction="none")
        kept = full_path(crossent.distillation_loss, z, v, validate=False, reduction="none")
    _assert_close(unchecked, kept)


def test_option_errors_keep_their_order(fused: dict[str, int]) -> None:
    """Invalid options: today's error (the first the full path checks), nothing fused."""
    z, v = _hard_rows(8, 3000, np.float32)
    for options in (
        {"temperature": -1.0, "reduction": "bogus"},
        {"reduction": "bogus"},
        {"base": -2.0},
        {"temperature": 2.0, "direction": "sideways"},
    ):
        with pytest.raises(InputError) as expected:
            full_path(crossent.distillation_loss, z, v, **options)
        with pytest.raises(InputError) as raised:
            crossent.distillation_loss(z, v, **options)
        assert str(raised.value) == str(expected.value)
    assert fused == {"loss": 0, "gradient": 0}


def test_declined_calls() -> None:
    """What the kernels do not cover keeps the full path (``fused_call`` gives None)."""
    z, v = _hard_rows(8, 3000, np.float64)
    call = _distill_fused.fused_call
    assert call((z, v), {"temperature": 2.0, "reduction": "parts", "base": 2}) is not None
    assert call((z, v), {"teacher_form": "log_probs"}) is None
    assert call((z, v), {"direction": "reverse"}) is None
    assert call((z, v), {"axis": 0}) is None
    assert call((z, v), {"validate": 1}) is None
    assert call((z, v), {"temperature": 1e300}) is None  # T^2 past the range
    assert call((z, v), {"out": np.empty_like(z)}) is None
    assert call((z, v.astype(np.float32)), {}) is None
    assert call((z[:, ::2], v[:, ::2]), {}) is None  # not contiguous
    assert call((z.astype(">f8"), v.astype(">f8")), {}) is None
    assert call((z[:5, :3000], v[:5, :3000]), {}) is None  # within the lean path's size
    assert call((z.ravel(), v.ravel()), {}) is None  # one row
    assert call((z.reshape(-1, 1), v.reshape(-1, 1)), {}) is None  # one class
    assert call((z.tolist(), v), {}) is None
