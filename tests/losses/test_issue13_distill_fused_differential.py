r"""Issue 13 review: the fused distillation paths against the full path and an oracle.

Differential tests of the fused kernels' routes (``_distill_fused`` for NumPy
:func:`crossent.distillation_loss` and :func:`crossent.distillation_loss_grad` of more
than 16384 entries; ``torch._distill_cpu`` for ``crossent.torch.distillation_loss`` on
CPU) over inputs hypothesis draws: float32/float64, 2-D and 3-D, sizes straddling the
16384-entry crossover, classes on both sides of the kernels' 512-class blocks, every
reduction, nats and bits, :math:`T` from 1/8 to 1000, and hard rows (student equal to
the teacher, shifted, 1e-7 or an ulp apart, ties, a gap of 1e4, subnormal logits,
masked classes on one side or both, a student ``-inf`` beside a teacher probability
above 0 or below :math:`e^{-708}`, student logits of :math:`-10^{300}`).

Oracles: the full path itself (``FUSED_ELEMENTS`` raised: no call fused), to float64
rounding; an extended-precision (x87 ``longdouble``) log-softmax KL times :math:`T^2`
and gradient :math:`T(s - t)`, with a bound of some 64 float64 ulps of the terms
(weak on near rows at large :math:`T`, where the full path's own tests hold mpmath);
the same ``InputError`` from both routes for NaN, ``+inf``, a negative NaN and rows of
``-inf``, and the same values with ``validate=False``; rows in blocks on one thread or
two (``_distill_rows.BLOCK_BYTES`` lowered) keep their bits. For crossent.torch: the
loss within one rounding of the oracle, the gradient of every dtype within one
rounding (two for float16/bfloat16, through float32), the generic path's errors and
dtypes.

Bugs these found and the regressions below pin (on main's d445a34 tree the two
regression tests and the hypothesis tests fail, run with ``PYTHONPATH`` at that tree):

* the forward kernel dropped a teacher term below its :math:`e^{-708}` floor beside a
  student ``-inf``: :math:`t_c > 0 = s_c` is :math:`D = \infty` (the full path's and
  PyTorch's generic path's), the kernels gave a finite loss;
* the same floor beside a student logit of :math:`-10^{300}`: the term
  :math:`t_c(\tau_c - \sigma_c)` (:math:`4.5\cdot 10^{-9}` there) was lost, the loss
  off in its ninth digit.

Mutants caught (each run by hand, reverted): the kernel's flag of a student ``-inf``
beside a teacher logit above it dropped (the property test and the first regression);
the :math:`2^{900}T` comparison dropped (the property tests, NumPy and torch, and the
second regression); the flag raised on every student ``-inf``, masked teacher classes
too (a slower, equal result: the kernel-rows test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import crossent  # noqa: E402
from crossent import _parallel  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from crossent.losses import _distill_fused, _distill_rows  # noqa: E402
from losses.distill_differential import (  # noqa: E402
    EPS,
    HARD,
    TEMPERATURES,
    full_path,
    harden,
    loss_values,
    oracle,
    ulp32,
)

CLASSES = (2, 3, 5, 511, 512, 513, 1025)
REDUCTIONS = ("none", "mean", "sum", "parts")


def _inputs(
    seed: int, classes: int, extra: int, dtype: Any, t: float, hard: list[tuple[int, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits of ``ceil(16385 / classes) + extra`` rows (the
    crossover's either side), N(0, s^2) for a drawn scale, the ``hard`` rows made so."""
    rng = np.random.default_rng(seed)
    rows = max(2, -(-_distill_fused.FUSED_ELEMENTS // classes) + extra)
    scale = float(rng.choice([0.1, 1.0, 3.0, 30.0]))
    z = scale * rng.standard_normal((rows, classes))
    v = scale * rng.standard_normal((rows, classes))
    with np.errstate(all="ignore"):  # (-1e300 is -inf in float32: a student_inf row)
        for row, kind in hard:
            harden(z, v, row % rows, kind, t, rng)
        return z.astype(dtype), v.astype(dtype)


def _assert_close(a: Any, b: Any, rtol: float, atol: Any = 0.0, *, dtypes: bool = True) -> None:
    """``a`` (fused) against ``b`` (the full path, or the oracle where not ``dtypes``):
    dtype, shape, the same non-finite entries, the finite ones within ``rtol`` and
    ``atol`` (one float32 ulp more of either side that is float32)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype or not dtypes
    wa, wb = a.astype(np.float64), b.astype(np.float64)
    finite = np.isfinite(wb)
    np.testing.assert_array_equal(np.isfinite(wa), finite)
    np.testing.assert_array_equal(wa[~finite], wb[~finite])
    bound = np.broadcast_to(rtol * np.abs(wb) + atol + ulp32(b) + ulp32(a), b.shape)
    excess = np.abs(wa[finite] - wb[finite]) - bound[finite]
    assert not (excess > 0).any(), (wa[finite], wb[finite], excess.max())


@st.composite
def _calls(draw: st.DrawFn) -> dict[str, Any]:
    """One call: seed, classes, rows' offset from the crossover, dtype, T, hard rows,
    batch axes, base."""
    t = draw(st.sampled_from(TEMPERATURES))
    hard = draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.sampled_from(HARD)), max_size=8))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "classes": draw(st.sampled_from(CLASSES)),
        "extra": draw(st.integers(-1, 2)),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "t": t,
        "hard": hard,
        "three_axes": draw(st.booleans()),
        "base": draw(st.sampled_from([None, 2.0])),
    }


@settings(max_examples=30, deadline=None)
@given(_calls())
def test_numpy_fused_against_full_path_and_oracle(call: dict[str, Any]) -> None:
    """Loss and gradient, every reduction: the full path's dtype, type and values (to
    float64 rounding), and the long-double oracle; the call fused iff it has more than
    16384 entries."""
    t, dtype = call["t"], call["dtype"]
    z, v = _inputs(call["seed"], call["classes"], call["extra"], dtype, t, call["hard"])
    rows, classes = z.shape
    if call["three_axes"] and rows % 2 == 0:
        z, v = z.reshape(2, rows // 2, classes), v.reshape(2, rows // 2, classes)
    base = call["base"]
    unit = 1.0 if base is None else math.log(base)
    fused = _distill_fused.fused_call((z, v), {"temperature": t, "base": base})
    assert (fused is not None) == (z.size >= _distill_fused.FUSED_ELEMENTS)
    with np.errstate(all="ignore"):  # (the full path's warnings of the -inf rows)
        for reduction in REDUCTIONS:
            options = {"temperature": t, "reduction": reduction, "base": base}
            loss = crossent.distillation_loss(z, v, **options)
            want = full_path(crossent.distillation_loss, z, v, **options)
            assert type(loss) is type(want)
            if isinstance(want, tuple):
                assert np.asarray(loss.normalizer).dtype == np.asarray(want.normalizer).dtype
                assert loss.normalizer == want.normalizer
            _assert_close(loss_values(loss), loss_values(want), rtol=1e-9)
            grad = crossent.distillation_loss_grad(z, v, **options)
            expected = full_path(crossent.distillation_loss_grad, z, v, **options)
            scale = t / (rows if reduction == "mean" else 1) / unit
            _assert_close(grad, expected, rtol=1e-12, atol=8 * EPS * scale)
        truth = oracle(z.reshape(rows, classes), v.reshape(rows, classes), t)
        loss = np.asarray(crossent.distillation_loss(z, v, temperature=t, reduction="none"))
        grad = crossent.distillation_loss_grad(z, v, temperature=t, reduction="none")
    _assert_close(loss.ravel(), truth["loss"], 1e-12, truth["loss_bound"], dtypes=False)
    g = grad.reshape(rows, classes)
    _assert_close(g, truth["grad"], 1e-12, truth["grad_bound"], dtypes=False)


def test_rows_in_blocks_on_one_thread_or_two_keep_their_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows are independent: blocks of 3 rows on one thread or two (and a read-only
    input, copied into the blocks) give the bits of one block, loss and gradient."""
    hard = [(i, kind) for i, kind in enumerate(HARD)]
    z, v = _inputs(7, 513, 0, np.float64, 2.0, hard)
    kwargs = {"temperature": 2.0, "reduction": "none"}
    with np.errstate(all="ignore"):
        one = crossent.distillation_loss(z, v, **kwargs), crossent.distillation_loss_grad(z, v)
        monkeypatch.setattr(_distill_rows, "BLOCK_BYTES", 3 * 8 * 513)
        for threads in (1, 2):
            monkeypatch.setattr(_parallel, "_threads", lambda n=threads: n)
            for frozen in (False, True):
                z.flags.writeable = not frozen
                loss = crossent.distillation_loss(z, v, **kwargs)
                np.testing.assert_array_equal(loss, one[0])
                np.testing.assert_array_equal(crossent.distillation_loss_grad(z, v), one[1])


def _raised(function: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InputError) as error:
        function(*args, **kwargs)
    return str(error.value)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([np.float32, np.float64]),
    st.lists(
        st.tuples(
            st.sampled_from(["z", "v"]),
            st.integers(0, 40),
            st.sampled_from(["nan", "-nan", "inf", "row"]),
        ),
        min_size=1,
        max_size=2,
    ),
    st.sampled_from(CLASSES[3:]),
)
def test_invalid_rows_raise_the_full_path_s_error(
    dtype: Any, bad: list[tuple[str, int, str]], classes: int
) -> None:
    """NaN, a negative NaN, ``+inf`` or a row of ``-inf`` on either side, one or two
    rows: the full path's ``InputError`` (argument, row) from both functions; with
    ``validate=False`` the full path's rows (NaN where it has them)."""
    z, v = _inputs(3, classes, 0, dtype, 2.0, [(0, "masked_teacher"), (1, "student_inf")])
    for side, drawn, what in bad:
        x, row = (z if side == "z" else v), drawn % len(z)
        value = {"nan": np.nan, "-nan": -np.nan, "inf": np.inf, "row": -np.inf}[what]
        if what == "row":
            x[row] = value
        else:
            x[row, row % classes] = np.copysign(np.nan, -1.0) if what == "-nan" else value
    for function in (crossent.distillation_loss, crossent.distillation_loss_grad):
        want = _raised(full_path, function, z, v, temperature=2.0)
        assert _raised(function, z, v, temperature=2.0) == want
    with np.errstate(all="ignore"):
        for function in (crossent.distillation_loss, crossent.distillation_loss_grad):
            options = {"temperature": 2.0, "reduction": "none", "validate": False}
            got, want = function(z, v, **options), full_path(function, z, v, **options)
            assert (got.dtype, got.shape) == (want.dtype, want.shape)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            _assert_close(np.nan_to_num(got, nan=0.0), np.nan_to_num(want, nan=0.0), 1e-9, 1e-15)


def test_option_errors_match() -> None:
    """Temperatures that are not finite and above 0, and other bad options: the full
    path's error from a call the fused route would otherwise take."""
    z, v = _inputs(1, 513, 0, np.float32, 1.0, [])
    for options in (
        {"temperature": 0.0},
        {"temperature": -2.0},
        {"temperature": math.inf},
        {"temperature": math.nan},
        {"temperature": True},
        {"base": 1.0},
        {"reduction": "batchmean"},
    ):
        want = _raised(full_path, crossent.distillation_loss, z, v, **options)
        assert _raised(crossent.distillation_loss, z, v, **options) == want
        assert _raised(crossent.distillation_loss_grad, z, v, **options) == want


def test_a_student_minus_inf_beside_an_underflowing_teacher_probability_is_inf() -> None:
    r"""Regression: :math:`t_2 = e^{-800}/S > 0` beside :math:`s_2 = 0` is
    :math:`D = \infty` (the full path's, the lean path's); the forward kernel's floor
    made the term absent and the loss 0.462. float32 and float64, 5462 x 3."""
    for dtype in (np.float32, np.float64):
        z = np.tile(np.array([0.0, 1.0, -np.inf], dtype=dtype), (5462, 1))
        v = np.tile(np.array([1.0, 0.0, -800.0], dtype=dtype), (5462, 1))
        assert _distill_fused.fused_call((z, v), {}) is not None
        with np.errstate(all="ignore"):
            assert np.isposinf(crossent.distillation_loss(z, v, reduction="none")).all()
            assert np.isposinf(crossent.distillation_loss(z[:2], v[:2], reduction="none")).all()
            grad = crossent.distillation_loss_grad(z, v)
            _assert_close(grad, full_path(crossent.distillation_loss_grad, z, v), 1e-12, 1e-18)


def test_a_student_logit_of_minus_1e300_keeps_the_teacher_s_tiny_term() -> None:
    r"""Regression: beside :math:`z_2 = -10^{300}` a teacher probability of
    :math:`e^{-710}` (below the kernels' floor) weighs :math:`4.5\cdot10^{-9}` in
    :math:`D`; the fused loss lost it (0.462117157260 against 0.462117158464, mpmath's
    0.46211715846386850)."""
    z = np.tile([0.0, 1.0, -1e300], (5462, 1))
    v = np.tile([1.0, 0.0, -710.0], (5462, 1))
    loss = crossent.distillation_loss(z, v, reduction="none")
    np.testing.assert_allclose(loss, 0.46211715846386850, rtol=4 * EPS)
    np.testing.assert_array_equal(
        loss, full_path(crossent.distillation_loss, z, v, reduction="none")
    )


def _mpmath_row(
    mp: Any, first: np.ndarray, second: np.ndarray, *, forward: bool
) -> tuple[float, list[float]]:
    r""":math:`T^2 D(p\,\|\,q)` at :math:`T = 2` (60 digits), :math:`p` of ``second``
    and :math:`q` of ``first`` (the student's ``first`` forward), and its gradient in
    the student's logits: :math:`T(s - t)` forward, :math:`T s(\log s - \log t - D)`
    reverse."""
    with mp.workdps(60):
        log_p, log_q = ([mp.mpf(float(x)) / 2 for x in row] for row in (second, first))
        lse_p, lse_q = (mp.log(sum(mp.exp(x) for x in row)) for row in (log_p, log_q))
        log_p, log_q = [x - lse_p for x in log_p], [x - lse_q for x in log_q]
        kl = sum(mp.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))
        pairs = list(zip(log_p, log_q, strict=True))
        if forward:
            grad = [float(2 * (mp.exp(b) - mp.exp(a))) for a, b in pairs]
        else:
            grad = [float(2 * mp.exp(a) * (a - b - kl)) for a, b in pairs]
        return float(4 * kl), grad


def test_a_near_row_keeps_a_subnormal_teacher_weight_beside_a_huge_student() -> None:
    r"""Regression (hypothesis, dev profile: seed 0, 3 classes, extra 1, float64,
    :math:`T = 2`, hard ``[(0, 'student_huge')]``): a near row (KL :math:`9\cdot
    10^{-6}`, formed again by ``_centred_kl_numba``) whose teacher weight
    :math:`t_2 = e^{-710}` is subnormal beside :math:`z_2 = -10^{300}` weighs
    :math:`T^2 t_2(\tau_2 - \sigma_2) = 8.95\cdot 10^{-9}`; the weight's floor of
    :math:`e^{-708}` dropped it: :math:`3.7107569\cdot 10^{-5}` against mpmath's
    :math:`3.7116521\cdot 10^{-5}` (every path: the lean one of one row, the full
    one, the fused one of 5462 rows, ``crossent.torch``'s; forward, and reverse with
    the sides swapped). The gradient was right; it is held to mpmath too."""
    mp = pytest.importorskip("mpmath")
    torch = pytest.importorskip("torch")
    import crossent.torch as ct

    z, v = (x[0] for x in _inputs(0, 3, 1, np.float64, 2.0, [(0, "student_huge")]))
    assert z[2] == -1e300
    for direction, first, second in (("forward", z, v), ("reverse", v, z)):
        loss, grad = _mpmath_row(mp, first, second, forward=direction == "forward")
        for rows in (1, 2, 5462):
            zs, vs = np.tile(z, (rows, 1)), np.tile(v, (rows, 1))
            options = {"temperature": 2.0, "reduction": "none", "direction": direction}
            got = crossent.distillation_loss(zs, vs, **options)
            np.testing.assert_allclose(got, loss, rtol=16 * EPS, err_msg=(direction, rows))
            g = crossent.distillation_loss_grad(zs, vs, **options)
            np.testing.assert_allclose(g, np.tile(grad, (rows, 1)), rtol=0, atol=1e-18)
            if rows != 2:
                zt = torch.tensor(zs, requires_grad=True)
                got = ct.distillation_loss(zt, torch.tensor(vs), **options)
                np.testing.assert_allclose(got.detach().numpy(), loss, rtol=16 * EPS)
                got.sum().backward()
                assert zt.grad is not None
                np.testing.assert_allclose(zt.grad.numpy()[0], grad, rtol=0, atol=1e-18)


def test_the_kernel_leaves_only_the_rows_it_cannot_form() -> None:
    r"""The forward kernel's :math:`D` (``_distill_rows.forward_statistics``): finite on
    masked classes (both sides, or the teacher's) and on a student logit of
    :math:`-10^{200}` (its dropped terms below an ulp), ``inf`` (the host's rows) for a
    student ``-inf`` beside a teacher logit above ``-inf`` (whatever its probability)
    and for a student logit of :math:`-10^{300}` (a dropped term may count)."""
    rows = {
        "both masked": ([0.0, 1.0, -np.inf], [1.0, 0.0, -np.inf], True),
        "teacher masked": ([0.0, 1.0, 2.0], [1.0, 0.0, -np.inf], True),
        "student -1e200": ([0.0, 1.0, -1e200], [1.0, 0.0, -710.0], True),
        "student -inf": ([0.0, 1.0, -np.inf], [1.0, 0.0, 0.5], False),
        "below the floor": ([0.0, 1.0, -np.inf], [1.0, 0.0, -800.0], False),
        "student -1e300": ([0.0, 1.0, -1e300], [1.0, 0.0, -710.0], False),
    }
    z = np.array([r[0] for r in rows.values()])
    v = np.array([r[1] for r in rows.values()])
    stats = _distill_rows.forward_statistics(len(z), 3, 1.0, lambda a, b: (z[a:b], v[a:b]))
    for (name, (_, _, finite)), d in zip(rows.items(), stats[:, 0], strict=True):
        assert np.isfinite(d) == finite, (name, d)
        assert d > 0, (name, d)
