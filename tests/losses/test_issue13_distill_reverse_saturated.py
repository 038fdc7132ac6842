r"""Issue 13: the reverse distillation gradient of a saturated student, on every path.

The gradient of :math:`T^2 D(s\,\|\,t)` in the student's logits is :math:`g_c = T s_c
(d_c - D)`, :math:`d_c = \log s_c - \log t_c`. At the top class :math:`r` of a saturated
student (:math:`s_r \to 1`) beside a teacher that gives it a tiny probability,
:math:`d_r - D` cancels: on main, student logits ``[0, -34]`` and teacher probabilities
``[1e-70, 1]`` gave ``[3.41e-13, -3.345e-13]`` (2% off at ``r``, the truth ``[3.345e-13,
-3.345e-13]``), and from gaps of -100 on the entry at ``r`` was 0 or of the wrong
sign (relative errors up to 1 on the generic, lean and fused paths). The entry is now
:math:`-\sum_{c \ne r} g_c` where :math:`s_r > 1/2` (``losses/_dominant_entry.py``).

Oracle: mpmath at 60 digits of :math:`g_c = T s_c \sum_k s_k(d_c - d_k)` (the same
number, :math:`\sum_k s_k = 1`, with no cancellation: :math:`d_c - d_k = (z_c - z_k -
x_c + x_k)/T` of the inputs as given, :math:`x` the teacher's logits or :math:`\log t`),
checked against the formula itself at 400 digits (:func:`test_the_oracle_is_the_formula`).
Each entry must be within :data:`ULPS` units of :math:`2^{-53}` of the oracle,
relative, times :math:`1 + \max_c |\log s_c|` of its row (a probability held as
:math:`e^{\log s}` carries the rounding of :math:`\log s`, and the top entry the others'
errors); float32 results within 2 float32 units.

Paths, each forced: the generic NumPy path (``_distill._host_gradient``), the lean path
(``_small_targets_numba.reverse_gradient64``, the full path made to fail), the fused
kernel (``_distill_numba.distillation_reverse_backward_kernel``, float64 and float32
rows, and a public call large enough to take it), the near rows' formulas
(``_near_rows.NearRows``, compiled and given softened rows), the far gaps'
(``_far_gaps.reverse_distillation_gradient64``), PyTorch tensors through the generic
path and ``crossent.torch.distillation_loss``' CPU op. On main: 32 of 36 fail; the near
and far formulas already held no cancellation (3 guards), and
:func:`test_ordinary_rows_keep_the_formula` guards rows of :math:`s_r \le 1/2` (a
mutant that forms every row's top entry from the others fails it).
"""

from __future__ import annotations

import inspect
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent._read_only import read_only
from crossent.losses import _cpu_kernels, _distill, _distill_rows, _far_gaps
from losses.small_target_checks import DISTILL, fused_rows, near_rows

EPS = 2.0**-53
ULPS = 4.0
GAPS = (-20.0, -34.0, -100.0, -300.0, -700.0)


def _rows(classes: int, form: str) -> tuple[np.ndarray, np.ndarray]:
    """Saturated students (logits ``[0, g, g - 1, ..., g - 6, g, ...]`` for each gap
    ``g``) beside a teacher that gives the top class a tiny probability (``1e-70`` or
    ``e^-160``)."""
    z = np.zeros((len(GAPS), classes))
    z[:, 1:] = np.array(GAPS)[:, None] - np.arange(classes - 1) % 7
    if form == "probs":
        teacher = np.full((len(GAPS), classes), 1.0 / (classes - 1))
        teacher[:, 0] = 1e-70
    else:
        teacher = np.zeros((len(GAPS), classes))
        teacher[:, 0] = -160.0
    return z, teacher


def _oracle(z: np.ndarray, x: np.ndarray, temperature: float) -> np.ndarray:
    """:math:`T s_c \\sum_k s_k (d_c - d_k)` per entry (module docstring), as :math:`T
    s_c((d_c - d_r) + I_r)` with :math:`I_r = \\sum_{k \\ne r} s_k (d_r - d_k)` of the
    top class :math:`r` (the rows here: no cancellation); ``x``: the teacher's logits or
    :math:`\\log t`."""
    out = np.empty(z.shape)
    t = mpmath.mpf(temperature)
    with mpmath.workdps(60):
        for i in range(z.shape[0]):
            zs = [mpmath.mpf(float(c)) / t for c in z[i]]
            r = int(np.argmax(z[i]))
            exps = {c: mpmath.exp(c - zs[r]) for c in set(zs)}  # (few values)
            total = mpmath.fsum(exps[c] for c in zs)
            s = [exps[c] / total for c in zs]
            d = [a - mpmath.mpf(float(b)) / t for a, b in zip(zs, x[i], strict=True)]
            inner = mpmath.fsum(s[k] * (d[r] - d[k]) for k in range(z.shape[1]))
            out[i] = [float(t * s[c] * ((d[c] - d[r]) + inner)) for c in range(z.shape[1])]
    return out


def _log_s(z: np.ndarray, temperature: float) -> np.ndarray:
    shifted = (z - z.max(1, keepdims=True)) / temperature
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def _assert_close(
    got: Any, z: np.ndarray, x: np.ndarray, temperature: float, floor: float = 0.0
) -> None:
    """Each entry within :data:`ULPS` of the oracle, relative, times :math:`1 + \\max_c
    |\\log s_c|` of its row (the :math:`s_c` above the subnormal range), plus ``floor``
    (absolute: the fused kernel's, below) and the subnormal range's spacing."""
    got = np.asarray(got, dtype=np.float64)
    truth = _oracle(z, x, temperature)
    log_s = _log_s(z, temperature)
    spread = np.where(log_s > -708.0, np.abs(log_s), 0.0).max(axis=1, keepdims=True)
    unit = EPS * np.abs(truth) * (1.0 + spread)
    excess = np.maximum(np.abs(got - truth) - floor, 0.0) / (unit + 2.0**-1060)
    assert float(excess.max()) <= ULPS, (excess.max(axis=1), got, truth)


CASES = [
    (classes, form, temperature)
    for classes in (2, 9)
    for form in ("probs", "logits")
    for temperature in (1.0, 2.0)
]
IDS = [f"C{c}-{f}-T{t:g}" for c, f, t in CASES]


def _scores(teacher: np.ndarray, form: str) -> np.ndarray:
    return np.log(teacher) if form == "probs" else teacher


def test_the_oracle_is_the_formula() -> None:
    """The issue's reproducer: the oracle is :math:`s_c(\\log(s_c/t_c) - D)` itself at
    400 digits (where its cancellation leaves some 330)."""
    z, teacher = np.array([[0.0, -34.0]]), np.array([[1e-70, 1.0]])
    with mpmath.workdps(400):
        e = [mpmath.exp(mpmath.mpf(c)) for c in z[0]]
        s = [c / mpmath.fsum(e) for c in e]
        t = [mpmath.mpf(float(c)) for c in teacher[0]]
        kl = mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(s, t, strict=True))
        formula = [float(a * (mpmath.log(a / b) - kl)) for a, b in zip(s, t, strict=True)]
    oracle = _oracle(z, np.log(teacher), 1.0)[0]  # (of the rounded log 1e-70: an ulp)
    np.testing.assert_allclose(oracle, formula, rtol=2.0**-51, atol=0.0)
    got = crossent.distillation_loss_grad(z, teacher, teacher_form="probs", direction="reverse")
    _assert_close(got, z, np.log(teacher), 1.0)  # main: [3.41e-13, -3.345e-13]


@pytest.mark.parametrize(("classes", "form", "temperature"), CASES, ids=IDS)
def test_generic_numpy_path(classes: int, form: str, temperature: float) -> None:
    z, teacher = _rows(classes, form)
    options = _distill_rows.Options(form, "reverse")
    got = _distill._host_gradient(z, teacher, temperature, options)
    _assert_close(got, z, _scores(teacher, form), temperature)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize(("classes", "form", "temperature"), CASES, ids=IDS)
def test_lean_path(monkeypatch, classes: int, form: str, temperature: float) -> None:
    z, teacher = _rows(classes, form)
    DISTILL.only_shortcut(monkeypatch)
    got = crossent.distillation_loss_grad(
        z, teacher, teacher_form=form, direction="reverse", temperature=temperature, reduction="sum"
    )
    _assert_close(got, z, _scores(teacher, form), temperature)


def _kernel(z: np.ndarray, v: np.ndarray, temperature: float, dtype: type) -> np.ndarray:
    """The fused reverse backward kernel on rows of ``dtype`` (teacher logits ``v``)."""
    z, v = np.ascontiguousarray(z, dtype=dtype), np.ascontiguousarray(v, dtype=dtype)
    stats = np.empty((z.shape[0], 6))
    forward, _ = _distill_rows.kernels()
    _distill_rows.reverse_statistics(forward, read_only(z), read_only(v), temperature, stats, False)
    grad = np.empty_like(z)
    scale = np.full(z.shape[0], temperature)
    small = np.empty(z.shape[0], dtype=bool)
    _distill_rows.reverse_kernel()(
        read_only(z), read_only(v), stats, temperature, scale, grad, small
    )
    return grad


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("classes", [2, 9, 1100])  # (1100: the row in three blocks)
def test_fused_kernel(classes: int, temperature: float) -> None:
    z, teacher = _rows(classes, "logits")
    if classes > 9:  # the top class in the second block
        z, teacher = np.roll(z, 700, axis=1), np.roll(teacher, 700, axis=1)
    # (the kernel drops an s_c below e^-708: an error of e^-708 (1 + |I_c|) an entry)
    floor = np.exp(-708.0) * 2000.0
    _assert_close(_kernel(z, teacher, temperature, np.float64), z, teacher, temperature, floor)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
def test_fused_kernel_float32_rounds_the_float64_entries_once() -> None:
    """Float32 rows: the float64 kernel's entries rounded once (the top one too)."""
    z, teacher = _rows(9, "logits")
    z, teacher = z[:2], teacher[:2]  # (gaps -20, -34: the entries are float32 numbers)
    got = _kernel(z, teacher, 1.0, np.float32)
    assert got.tobytes() == _kernel(z, teacher, 1.0, np.float64).astype(np.float32).tobytes()
    truth = _oracle(z, teacher, 1.0)
    assert float((np.abs(got - truth) / (2.0**-24 * np.abs(truth))).max()) <= 2.0


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("form", ["probs", "logits"])
def test_public_fused_call(monkeypatch, form: str) -> None:
    """A call large enough for the fused kernels (the hard rows among ordinary ones)."""
    z, teacher = _rows(9, form)
    got = fused_rows(
        monkeypatch, "reverse_kernel", z, teacher, teacher_form=form, direction="reverse"
    )
    _assert_close(got, z, _scores(teacher, form), 1.0)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("given", [False, True], ids=["compiled", "softened-rows"])
def test_near_rows_formulas(given: bool) -> None:
    """``NearRows``' reverse gradient: compiled, and given the softened rows (the
    formula other namespaces run). Passes on main (a guard)."""
    z, teacher = _rows(9, "logits")
    for temperature in (1.0, 2.0):
        rows = near_rows(z, teacher, temperature, given)
        _assert_close(rows.gradient(forward=False), z, teacher, temperature)


def test_far_gaps_formula() -> None:
    """``reverse_distillation_gradient64``: passes on main (a guard)."""
    z, teacher = _rows(9, "probs")
    x = np.log(teacher)
    for temperature in (1.0, 2.0):
        got = _far_gaps.reverse_distillation_gradient64(z, x, temperature)
        _assert_close(got, z, x, temperature)


def test_public_float32() -> None:
    """Float32 logits and teacher (the work in float64): within 2 float32 units."""
    z, teacher = _rows(9, "probs")
    teacher[:, 0] = 1e-30  # (a float32 number)
    z, teacher = z[:2].astype(np.float32), teacher[:2].astype(np.float32)
    got = crossent.distillation_loss_grad(
        z, teacher, teacher_form="probs", direction="reverse", reduction="sum"
    )
    assert got.dtype == np.float32
    truth = _oracle(z, np.log(teacher.astype(np.float64)), 1.0)
    assert float((np.abs(got - truth) / (2.0**-24 * np.abs(truth))).max()) <= 2.0


@pytest.mark.parametrize("form", ["probs", "logits"])
def test_torch_generic_path_and_cpu_op(form: str) -> None:
    """PyTorch float64 tensors: the generic formula in torch operations
    (``distillation_loss_grad``) and ``crossent.torch.distillation_loss``' CPU op's
    backward (2-D, the fused kernel)."""
    torch = pytest.importorskip("torch")
    from crossent.torch import distillation_loss

    z, teacher = _rows(9, form)
    x = _scores(teacher, form)
    zt, tt = torch.tensor(z, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64)
    grad = crossent.distillation_loss_grad(
        zt, tt, teacher_form=form, direction="reverse", reduction="sum"
    )
    _assert_close(grad.numpy(), z, x, 1.0)
    leaf = zt.clone().requires_grad_(True)
    distillation_loss(leaf, tt, teacher_form=form, direction="reverse", reduction="sum").backward()
    _assert_close(leaf.grad.numpy(), z, x, 1.0)


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
def test_ordinary_rows_keep_the_formula(namespace: str) -> None:
    """Rows whose top probability is at most 1/2 keep the formula's entries bit for bit
    (a mutant that forms every row's top entry from the others fails: its rows of
    near-uniform students move by ulps). PyTorch: the generic path's own test of
    :math:`s_r` (branch mutation8: a mutant without it was let through)."""
    rng = np.random.default_rng(13)
    z, v = rng.standard_normal((6, 40)), rng.standard_normal((6, 40))
    exp: Any = np.exp
    if namespace == "torch":
        torch = pytest.importorskip("torch")
        z, v, exp = torch.asarray(z), torch.asarray(v), torch.exp
    d = _distill.prepare_distillation(z, v, direction="reverse", reduction="sum")
    s = exp(d.log_s)
    assert float(s.max()) <= 0.5
    formula = np.asarray(s * ((d.log_s - d.log_t) - d.row_kl()[:, None]))
    grad = inspect.unwrap(crossent.distillation_loss_grad)(d)
    np.testing.assert_array_equal(np.asarray(grad), formula)
