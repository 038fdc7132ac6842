r"""Issue 13: the forward distillation gradient of a saturated student, on every path.

The gradient of :math:`T^2 D(t\,\|\,s)` in the student's logits is :math:`g_c = T(s_c -
t_c)`. At a class :math:`r` where both are near 1, :math:`s_r - t_r` cancels: its
error is :math:`\varepsilon(s_r + t_r)` against a value of the size of :math:`(1 - s_r)
+ (1 - t_r)`. On main, student logits ``[0, -300, -301]`` beside teacher logits ``[0,
-8, -8]`` gave the top entry some 3000 units of :math:`2^{-53}` off, and the rows whose
spread is small (``_near_rows``: a teacher of :math:`10^{-70}` tails) some 100. The
entry is now :math:`-\sum_{c \ne r} g_c` where :math:`s_r` and :math:`t_r` are above
1/2 (``losses/_dominant_entry.py``; in ``_near_rows``, where :math:`t_r > 1/2`).

Oracle: mpmath at 60 digits of :math:`g_c = T(s_c - t_c)` for :math:`c \ne r` (no
cancellation: one of the two is far below the other) and :math:`g_r = -\sum_{c \ne r}
g_c` (exact: both sides sum to 1), :math:`t = \operatorname{softmax}(x/T)` of the
teacher's logits or :math:`x = \log t`. An a-priori bound per entry
(:func:`_assert_close`): :math:`\varepsilon(s_c(1 + |\log s_c|) + t_c(1 + |\log t_c|))`
for :math:`c \ne r` (a probability held as :math:`e^{\log p}` carries the rounding of
:math:`\log p`), the others' sum at :math:`r`, times :data:`ULPS`, times :math:`T`;
float32 results within 2 float32 units.

Paths, each forced: the generic NumPy path (``_distill._host_gradient``), the lean
path (``_small_targets_numba.tempered_difference64``, the full path made to fail), the
near rows' formulas (``_near_rows.NearRows``, compiled and given softened rows), the
fused kernels (``_distill_numba.distillation_backward_kernel`` and the forward kernel
that writes the gradient, float64 and float32 rows, and a public call large enough to
take them), PyTorch tensors through the generic path, ``crossent.torch``'s CPU op and
its generic autograd path (1-D rows, which the op does not take; the reverse direction
there too, :func:`test_torch_generic_path_reverse`). On main: 48 of 60 fail. Passing
there: the rows of the ``tiny`` teacher at :math:`T = 1` (and ``logits`` at 2
classes) on the generic and lean paths, whose top entry was within its bound (the
near rows' formula errs less there), and the public fused and torch calls of
``tiny`` (every row near, :math:`T = 1`); the float32 kernels (2: the rounding to
float32 hides the error; they guard the one rounding of the top entry);
:func:`test_ordinary_rows_keep_the_formula` guards rows where :math:`s_r` or
:math:`t_r` is at most 1/2 (a mutant that forms every confident student's top entry
from the others fails it).
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
TEACHERS = ("far", "tiny", "logits")
"""The teachers: ``far``, logits ``[0, -8, -9, ...]`` (a spread past
``_near_rows.SPREAD_FLOOR``: the common formula); ``tiny``, probabilities of tails
``1e-70`` (a small spread: the near rows' formulas); ``logits``, tails of ``-160``."""


def _rows(
    classes: int, teacher: str, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray, str]:
    r"""Saturated students (logits ``[0, g, g - 1, ..., g - 6, g, ...]`` for each gap
    ``g``) beside a saturated teacher (:data:`TEACHERS`; ``far``'s tails :math:`e^{-8}`
    at ``temperature`` over 8 classes, their sum some :math:`3\cdot 10^{-3}`), and its
    form."""
    z = np.zeros((len(GAPS), classes))
    z[:, 1:] = np.array(GAPS)[:, None] - np.arange(classes - 1) % 7
    if teacher == "tiny":
        probs = np.full((len(GAPS), classes), 1e-70)
        probs[:, 0] = 1.0 - (classes - 1) * 1e-70
        return z, probs, "probs"
    x = np.zeros((len(GAPS), classes))
    if teacher == "far":
        x[:, 1:] = -temperature * (8.0 + np.log(max(1.0, (classes - 1) / 8.0)))
    else:
        x[:, 1:] = -160.0
    x[:, 1:] -= np.arange(classes - 1) % 3
    return z, x, "logits"


def _scores(teacher: np.ndarray, form: str) -> np.ndarray:
    return np.log(teacher) if form == "probs" else teacher


def _softmax(x: list[Any]) -> list[Any]:
    m = max(x)
    exps = {c: mpmath.exp(c - m) for c in set(x)}  # (few values)
    total = mpmath.fsum(exps[c] for c in x)
    return [exps[c] / total for c in x]


def _oracle(z: np.ndarray, x: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`g = T(s - t)` per entry (module docstring) and each entry's a-priori
    bound (before :data:`ULPS`; in float64 from the rounded softened rows)."""
    out = np.empty(z.shape)
    t = mpmath.mpf(temperature)
    with mpmath.workdps(60):
        for i in range(z.shape[0]):
            s = _softmax([mpmath.mpf(float(c)) / t for c in z[i]])
            p = _softmax([mpmath.mpf(float(c)) / t for c in x[i]])
            r = int(np.argmax(z[i]))
            g = [t * (a - b) for a, b in zip(s, p, strict=True)]
            g[r] = -mpmath.fsum(g[c] for c in range(z.shape[1]) if c != r)
            out[i] = [float(c) for c in g]
    size = np.zeros(z.shape)
    for logits in (z, x):
        log_p = _far_gaps.tempered_log_softmax64(logits, temperature)[2]
        size += np.exp(log_p) * (1.0 + np.abs(log_p))
    r = np.argmax(z, axis=1)
    rows = np.arange(z.shape[0])
    size[rows, r] = 0.0
    size[rows, r] = size.sum(axis=1)
    return out, temperature * EPS * size


def _assert_close(got: Any, z: np.ndarray, x: np.ndarray, temperature: float) -> None:
    """Each entry within :data:`ULPS` of its bound (module docstring) of the oracle, and
    the subnormal range's spacing."""
    got = np.asarray(got, dtype=np.float64)
    truth, bound = _oracle(z, x, temperature)
    excess = np.abs(got - truth) / (bound + 2.0**-1060)
    assert float(excess.max()) <= ULPS, (excess.max(axis=1), got[:, 0], truth[:, 0])


CASES = [
    (classes, teacher, temperature)
    for classes in (2, 9)
    for teacher in TEACHERS
    for temperature in (1.0, 2.0)
]
IDS = [f"C{c}-{f}-T{t:g}" for c, f, t in CASES]


@pytest.mark.parametrize(
    ("teacher", "form"),
    [([1 - 2e-70, 1e-70, 1e-70], "probs"), ([0.0, -8.0, -8.0], "logits")],
    ids=["tiny-probs", "far-logits"],
)
def test_the_issue_reproducers(teacher: list[float], form: str) -> None:
    r"""Student logits ``[0, -300, -301]``: beside the leftover's teacher probabilities
    (a near row; main: the top entry 264 units of :math:`2^{-53}` off the oracle of
    the rounded :math:`\log t`) and beside teacher logits ``[0, -8, -8]`` (main: 426);
    each entry within 8 units of itself."""
    z, x = np.array([[0.0, -300.0, -301.0]]), np.array([teacher])
    got = crossent.distillation_loss_grad(z, x, teacher_form=form)
    truth, _ = _oracle(z, _scores(x, form), 1.0)
    np.testing.assert_allclose(got, truth, rtol=8 * EPS, atol=0.0)


@pytest.mark.parametrize(("classes", "teacher", "temperature"), CASES, ids=IDS)
def test_generic_numpy_path(classes: int, teacher: str, temperature: float) -> None:
    z, x, form = _rows(classes, teacher, temperature)
    got = _distill._host_gradient(z, x, temperature, _distill_rows.Options(form, "forward"))
    _assert_close(got, z, _scores(x, form), temperature)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize(("classes", "teacher", "temperature"), CASES, ids=IDS)
def test_lean_path(monkeypatch, classes: int, teacher: str, temperature: float) -> None:
    z, x, form = _rows(classes, teacher, temperature)
    DISTILL.only_shortcut(monkeypatch)
    got = crossent.distillation_loss_grad(
        z, x, teacher_form=form, temperature=temperature, reduction="sum"
    )
    _assert_close(got, z, _scores(x, form), temperature)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("given", [False, True], ids=["compiled", "softened-rows"])
@pytest.mark.parametrize("teacher", ["tiny", "logits"])
def test_near_rows_formulas(given: bool, teacher: str) -> None:
    """``NearRows``' forward gradient: compiled, and given the softened rows (the
    formula other namespaces run)."""
    z, x, form = _rows(9, teacher)
    x = _scores(x, form)
    for temperature in (1.0, 2.0, 0.5):
        rows = near_rows(z, x, temperature, given)
        _assert_close(rows.gradient(forward=True), z, x, temperature)


def _kernel(
    z: np.ndarray, v: np.ndarray, temperature: float, dtype: type, fused: bool
) -> np.ndarray:
    """The backward kernel (``fused``: the forward kernel that writes the gradient) on
    rows of ``dtype`` (teacher logits ``v``), scale :math:`T`."""
    z, v = np.ascontiguousarray(z, dtype=dtype), np.ascontiguousarray(v, dtype=dtype)
    stats = np.empty((z.shape[0], 6))
    forward, backward = _distill_rows.kernels()
    grad = np.empty_like(z)
    scale = np.full(z.shape[0], temperature)
    small = np.empty(z.shape[0], dtype=np.bool_)
    if fused:
        kernel = _distill_rows.gradient_kernel()
        kernel(read_only(z), read_only(v), temperature, stats, scale, grad, small, False, 0)
        return grad
    forward(read_only(z), read_only(v), temperature, stats, False, 0)
    backward(read_only(z), read_only(v), stats, temperature, scale, grad, small)
    return grad


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("fused", [False, True], ids=["backward", "forward-writes"])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("classes", [2, 9, 1100])  # (1100: the row in three blocks)
def test_fused_kernels(classes: int, temperature: float, fused: bool) -> None:
    z, x, _ = _rows(classes, "far", temperature)
    if classes > 9:  # the top class in the second block
        z, x = np.roll(z, 700, axis=1), np.roll(x, 700, axis=1)
    _assert_close(_kernel(z, x, temperature, np.float64, fused), z, x, temperature)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("fused", [False, True], ids=["backward", "forward-writes"])
def test_fused_kernels_float32_round_the_float64_entries_once(fused: bool) -> None:
    """Float32 rows: the float64 kernel's entries rounded once (the top one too)."""
    z, x, _ = _rows(9, "far")
    z, x = z[:2], x[:2]  # (gaps -20, -34: float32 numbers)
    got = _kernel(z, x, 1.0, np.float32, fused)
    assert got.tobytes() == _kernel(z, x, 1.0, np.float64, fused).astype(np.float32).tobytes()
    truth, _ = _oracle(z, x, 1.0)
    assert float((np.abs(got - truth) / (2.0**-24 * np.abs(truth))).max()) <= 2.0


@pytest.mark.skipif(not _cpu_kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("teacher", TEACHERS)
def test_public_fused_call(monkeypatch, teacher: str) -> None:
    """A call large enough for the fused kernels (the hard rows among ordinary ones)."""
    z, x, form = _rows(9, teacher)
    got = fused_rows(monkeypatch, "kernels", z, x, teacher_form=form)
    _assert_close(got, z, _scores(x, form), 1.0)


@pytest.mark.parametrize("teacher", TEACHERS)
def test_torch_paths(teacher: str) -> None:
    """PyTorch float64 tensors: the generic formula in torch operations
    (``distillation_loss_grad``), ``crossent.torch.distillation_loss``' CPU op's
    backward (2-D) and its generic path, autograd through the formula (1-D rows, which
    the op does not take)."""
    torch = pytest.importorskip("torch")
    from crossent.torch import distillation_loss

    z, x, form = _rows(9, teacher)
    scores = _scores(x, form)
    zt, xt = torch.tensor(z, dtype=torch.float64), torch.tensor(x, dtype=torch.float64)
    grad = crossent.distillation_loss_grad(zt, xt, teacher_form=form, reduction="sum")
    _assert_close(grad.numpy(), z, scores, 1.0)
    leaf = zt.clone().requires_grad_(True)
    distillation_loss(leaf, xt, teacher_form=form, reduction="sum").backward()
    _assert_close(leaf.grad.numpy(), z, scores, 1.0)
    rows = []
    for i in range(z.shape[0]):
        one = zt[i].clone().requires_grad_(True)
        distillation_loss(one, xt[i], teacher_form=form, reduction="sum").backward()
        rows.append(one.grad.numpy())
    _assert_close(np.stack(rows), z, scores, 1.0)


@pytest.mark.parametrize("form", ["probs", "logits"])
def test_torch_generic_path_reverse(form: str) -> None:
    """The reverse direction on ``crossent.torch``'s generic path (1-D rows: autograd
    through ``log_softmax``): on main ``[0, -34]`` beside ``[1e-70, 1]`` gave
    ``[3.4106e-13, -3.3452e-13]``; the reverse file's rows and oracle."""
    torch = pytest.importorskip("torch")
    from crossent.torch import distillation_loss
    from losses import test_issue13_distill_reverse_saturated as reverse

    z, teacher = reverse._rows(9, form)
    z, teacher = np.vstack([z, [[0.0, -34.0] + [-50.0] * 7]]), np.vstack([teacher, teacher[:1]])
    if form == "probs":
        teacher[-1] = 1e-70
        teacher[-1, 1] = 1.0 - 1e-69
    rows = []
    for i in range(z.shape[0]):
        one = torch.tensor(z[i], dtype=torch.float64, requires_grad=True)
        x = torch.tensor(teacher[i], dtype=torch.float64)
        distillation_loss(
            one, x, teacher_form=form, direction="reverse", reduction="sum"
        ).backward()
        rows.append(one.grad.numpy())
    reverse._assert_close(np.stack(rows), z, reverse._scores(teacher, form), 1.0)


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
def test_ordinary_rows_keep_the_formula(namespace: str) -> None:
    """Rows whose :math:`s_r` or :math:`t_r` is at most 1/2 keep the formula's entries
    bit for bit: confident students beside unsure teachers and the reverse, and
    near-uniform rows (a mutant that forms every confident student's top entry from the
    others fails: its entries move by ulps)."""
    rng = np.random.default_rng(13)
    z, v = rng.standard_normal((6, 40)), rng.standard_normal((6, 40))
    z[:3, 0] += 20.0  # (s_r near 1, t_r < 1/2)
    v[3:, 0] += 20.0  # (t_r near 1, s_r < 1/2)
    exp: Any = np.exp
    if namespace == "torch":
        torch = pytest.importorskip("torch")
        z, v, exp = torch.asarray(z), torch.asarray(v), torch.exp
    d = _distill.prepare_distillation(z, v, reduction="sum", temperature=2.0)
    s, t = exp(d.log_s), exp(d.log_t)
    top_s, top_t = np.asarray(s).max(1), np.asarray(t).max(1)
    assert (top_s[:3] > 0.9).all()
    assert (top_t[3:] > 0.9).all()
    assert (top_t[:3] < 0.5).all()
    assert (top_s[3:] < 0.5).all()
    formula = np.asarray(2.0 * (s - t))
    grad = inspect.unwrap(crossent.distillation_loss_grad)(d)
    np.testing.assert_array_equal(np.asarray(grad), formula)


NEAR_ROW = ([0.0, np.log(3e-5), -30.0, -30.0, -31.0], [0.0, np.log(1e-5), -30.0, -30.0, -31.0])
"""A near row of the loss (KL 9e-6: below ``_near_rows.NEAR_CEILING``, above ``KL_FLOOR``)
whose spread is below ``SPREAD_FLOOR`` (student, teacher logits)."""


@pytest.mark.parametrize("route", ["1-D", "teacher-grad", "mean-3-D"])
def test_torch_generic_path_near_rows(monkeypatch, route: str) -> None:
    """``crossent.torch``'s generic path forms a near row's loss by ``NearRows``; its
    gradient was autograd's of that formula: 15.8 units of :math:`2^{-53}` (of the row's
    largest entry) off on :data:`NEAR_ROW`, where ``distillation_loss_grad`` gives 0.7.
    Now ``NearRows``' gradient (``torch/_near_gradient.py``): within :data:`ULPS`, on a 1-D
    call, beside a teacher that requires a gradient (its own within 8 of the reverse
    direction's formula, the roles swapped) and in a ``'mean'`` of a 3-D call whose other
    row has the 2-D op's bits (autograd's until branch distfwd3, which gave every float64
    row of the generic path the fused kernels' gradient)."""
    torch = pytest.importorskip("torch")
    from crossent.torch import distillation_loss

    z, v = (np.array([row]) for row in NEAR_ROW)
    truth = _oracle(z, v, 1.0)[0][0]
    scale = EPS * np.abs(truth).max()
    zt, vt = torch.tensor(z[0], requires_grad=True), torch.tensor(v[0])
    if route == "1-D":
        distillation_loss(zt, vt, reduction="sum").backward()
        assert np.abs(zt.grad.numpy() - truth).max() <= ULPS * scale
        return
    if route == "teacher-grad":
        vt.requires_grad_(True)
        distillation_loss(zt[None], vt[None], reduction="sum").backward()
        assert np.abs(zt.grad.numpy() - truth).max() <= ULPS * scale
        with mpmath.workdps(60):  # T D(t || s) in v: t (log t - log s - D)
            t = _softmax([mpmath.mpf(float(c)) for c in v[0]])
            s = _softmax([mpmath.mpf(float(c)) for c in z[0]])
            d = mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(t, s, strict=True))
            teacher = [float(a * (mpmath.log(a / b) - d)) for a, b in zip(t, s, strict=True)]
        bound = 8.0 * EPS * max(abs(c) for c in teacher)
        assert np.abs(vt.grad.numpy() - teacher).max() <= bound
        return
    rng = np.random.default_rng(5)
    ordinary = rng.standard_normal((2, 5))
    # (mass moved between two classes: a spread past max t / 2, where the row kept
    # autograd's until distfwd3; now the fused kernels' gradient, as the 2-D op's)
    ordinary[0, 0] += 6.0
    ordinary[1, 1] += 6.0
    stack = np.stack([np.vstack([z, ordinary[:1]]), np.vstack([v, ordinary[1:]])])

    def grad() -> np.ndarray:
        leaf = torch.tensor(stack[0][:, :, None], requires_grad=True)
        distillation_loss(leaf, torch.tensor(stack[1][:, :, None])).backward()
        return leaf.grad[:, :, 0].numpy()

    got = grad()
    assert np.abs(got[0] - truth / 2.0).max() <= ULPS * scale / 2.0
    flat = torch.tensor(stack[0], requires_grad=True)  # the 2-D op, the same 'mean'
    distillation_loss(flat, torch.tensor(stack[1])).backward()
    np.testing.assert_array_equal(got[1], flat.grad.numpy()[1])
