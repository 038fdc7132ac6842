"""Issue 13 leftovers (branch tracedrows): arrays without a host copy, and far rows there.

One predicate, ``_xp.cannot_copy_to_host``, answers "can this array be copied to the host
as float64?" for the far-row passes of the measures and losses: JAX tracers,
``torch.func`` tensors (grad's wrapper, vmap's batched tensor), fake and meta tensors.
On main ``host_float64`` knew JAX tracers only: ``cross_entropy`` with a far gap under
``torch.func.grad`` raised "`result` (Tensor) could not be read as a host array".

Far rows under a transformation keep the common path's value (``inf``). Their gradient
was the common path's, silently wrong where it is not exact: ``distillation_loss`` at
``T = 1e-100`` of logits 1e210 apart had 0 in the far row's student logits under
``jax.grad``, ``jax.jit(jax.grad)`` and ``torch.func.grad`` (truth ``T(s - t)``:
``+-1e-100``), and ``cross_entropy`` of logits ``[1.7e308, -1.7e308]`` had 0 (truth
``softmax(x) - p = [0.4, -0.4]``). Now NaN there. The softmax losses' common-path
gradient is exact in far rows (the chain rule with ``p = 0`` at a far gap) and stays.
Oracles: mpmath at 400 digits; the rows that stay finite against NumPy's ``*_grad``
twins and central finite differences.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _xp

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

# Three samples, two classes: sample 1 is far (logits 1e210 apart at T = 1e-100), 0 and 2
# finite. One shape for every JAX call of distillation: eager JAX compiles each operation
# once per shape (3.6 s of CPU for a first eager jax.grad of this loss, a second shape as
# much again), so the far-row tests and the class-axis ones below share those programs.
STUDENT = np.array([[0.1, 0.2], [1e210, 0.0], [0.5, -0.2]])
TEACHER = np.array([[0.3, 0.1], [0.0, 1e210], [0.1, 0.4]])
FAR, FINITE = 1, [0, 2]
TINY = 1e-100
P = np.array([[0.6, 0.4], [1.0, 0.0]])
X = np.array([[1.7e308, -1.7e308], [0.0, 1.0]])
LOGITS = np.array([[1e308, -1e308], [1.0, 2.0]])
LABELS = np.array([0, 1])


pytestmark = [
    pytest.mark.usefixtures("jax_x64"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # the common path's overflow
]


def _softmax_mp(row: np.ndarray, temperature: float = 1.0) -> list[Any]:
    x = [mpmath.mpf(float(v)) / mpmath.mpf(temperature) for v in row]
    top = max(x)
    e = [mpmath.exp(v - top) for v in x]
    total = mpmath.fsum(e)
    return [v / total for v in e]


def _forward_distillation_gradient(z: np.ndarray, v: np.ndarray, temperature: float) -> list:
    """d/dz of T^2 D(t || s): T (s - t), at 400 digits."""
    with mpmath.workdps(400):
        s, t = _softmax_mp(z, temperature), _softmax_mp(v, temperature)
        return [float(mpmath.mpf(temperature) * (a - b)) for a, b in zip(s, t, strict=True)]


def _distill_rows(z: Any, v: Any, direction: str = "forward", axis: int = -1) -> Any:
    return crossent.distillation_loss(
        z, v, temperature=TINY, direction=direction, axis=axis, reduction="none", validate=False
    )


def _distill_total(z: Any, v: Any, direction: str, axis: int) -> Any:
    return _distill_rows(z, v, direction, axis).sum()


#: One jitted gradient for every jax.jit test of distillation below (options static): a
#: program compiled for one test is the next one's with the same shapes and options.
_JIT_DISTILL_GRADIENT = jax.jit(jax.grad(_distill_total), static_argnames=("direction", "axis"))


# ------------------------------------------------------------------ the predicate


def test_cannot_copy_to_host_of_each_kind_of_array() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    plain = [np.ones(2), torch.ones(2), jnp.ones(2), 1.0, [1.0]]
    assert [_xp.cannot_copy_to_host(x) for x in plain] == [False] * 5
    assert _xp.cannot_copy_to_host(torch.ones(2, device="meta"))
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(torch.ones(2))
    assert _xp.cannot_copy_to_host(fake)
    seen: list[bool] = []

    def look(x: Any) -> Any:
        seen.append(_xp.cannot_copy_to_host(x))
        return (x * x).sum()

    func.grad(look)(torch.ones(2))
    func.vmap(look)(torch.ones(3, 2))
    jax.grad(look)(jnp.ones(2))
    jax.jit(look)(jnp.ones(2))
    jax.vmap(look)(jnp.ones((3, 2)))
    assert seen == [True] * 5


def test_host_float64_refuses_torch_func_tensors_instead_of_raising() -> None:
    """Main: ``InputError`` (``to_numpy`` of grad's wrapper)."""
    got: list[Any] = []

    def look(x: Any) -> Any:
        got.append(_xp.host_float64(x, name="x"))
        return x.sum()

    func.grad(look)(torch.ones(2, dtype=torch.float64))
    assert got == [None]
    assert np.array_equal(_xp.host_float64(torch.ones(2), name="x"), np.ones(2))


# ------------------------------------------------------------------ the measures


def _cross_entropy_sum(p: Any, x: Any) -> Any:
    return crossent.cross_entropy(p, x, q_form="logits", validate=False).sum()


def _analytic_cross_entropy_gradient(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum(p) softmax(x) - p at 400 digits."""
    with mpmath.workdps(400):
        return np.array([float(sum(p) * s - a) for s, a in zip(_softmax_mp(x), p, strict=True)])


@pytest.mark.parametrize("transform", ["torch.func.grad", "jax.grad", "jax.jit(jax.grad)"])
def test_far_gap_measure_gradient_is_the_truth_not_a_silent_zero(transform: str) -> None:
    """The far row's truth is [0.4, -0.4]; stop 52's main gave 0 (JAX) or raised
    (torch.func), then NaN; since branch jaxexact1 the traced far row is formed again in
    its own namespace (``_numerics.far_gap_cross_entropy``), with that row's gradient."""
    assert np.allclose(_analytic_cross_entropy_gradient(P[0], X[0]), [0.4, -0.4])
    if transform == "torch.func.grad":
        p = torch.tensor(P)
        g = func.grad(lambda x: _cross_entropy_sum(p, x))(torch.tensor(X)).numpy()
    else:
        grad = jax.grad(lambda x: _cross_entropy_sum(jnp.asarray(P), x))
        grad = jax.jit(grad) if "jit" in transform else grad
        g = np.asarray(grad(jnp.asarray(X)))
    np.testing.assert_allclose(g[0], _analytic_cross_entropy_gradient(P[0], X[0]), rtol=1e-14)
    np.testing.assert_allclose(g[1], _analytic_cross_entropy_gradient(P[1], X[1]), rtol=1e-14)


def test_far_gap_measure_under_vmap_keeps_the_common_value() -> None:
    """No host copy under vmap: the far row formed again in JAX (branch jaxexact1; it
    stayed inf before), NumPy's value; the other exact."""
    got = jax.vmap(lambda p, x: crossent.cross_entropy(p, x, q_form="logits", validate=False))(
        jnp.asarray(P), jnp.asarray(X)
    )
    assert float(got[0]) == pytest.approx(
        float(crossent.cross_entropy(P[0], X[0], q_form="logits")), rel=1e-15
    )
    assert float(got[1]) == pytest.approx(
        float(crossent.cross_entropy(P[1], X[1], q_form="logits")), rel=1e-15
    )


# ------------------------------------------------------------------ distillation


def _jax_distill_gradient(transform: str, direction: str) -> np.ndarray:
    teacher = jnp.asarray(TEACHER)
    if transform == "jax.vmap(jax.grad)":  # each row a call of its own
        row = jax.grad(lambda z, v: _distill_rows(z, v, direction))
        return np.asarray(jax.vmap(row)(jnp.asarray(STUDENT), teacher))
    grad = _JIT_DISTILL_GRADIENT if "jit" in transform else jax.grad(_distill_total)
    return np.asarray(grad(jnp.asarray(STUDENT), teacher, direction=direction, axis=-1))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("transform", ["jax.grad", "jax.jit(jax.grad)", "jax.vmap(jax.grad)"])
def test_jax_far_distillation_row_gradient_is_nan(transform: str, direction: str) -> None:
    """Main: 0 in the far row (forward truth: +-1e-100); the other rows as NumPy's twin."""
    truth = _forward_distillation_gradient(STUDENT[FAR], TEACHER[FAR], TINY)
    assert truth == pytest.approx([1e-100, -1e-100], rel=1e-14)
    g = _jax_distill_gradient(transform, direction)
    assert np.isnan(g[FAR]).all()
    twin = crossent.distillation_loss_grad(
        STUDENT[FINITE], TEACHER[FINITE], temperature=TINY, direction=direction, reduction="sum"
    )
    np.testing.assert_allclose(g[FINITE], twin, rtol=1e-14, atol=0)


def test_torch_func_far_distillation_row_gradient_is_nan() -> None:
    """Main: 0 (eager autograd of the same call: the exact +-5e-101 of a mean)."""
    teacher = torch.tensor(TEACHER)
    g = func.grad(lambda z: _distill_rows(z, teacher).sum())(torch.tensor(STUDENT))
    assert torch.isnan(g[FAR]).all()
    z = torch.tensor(STUDENT, requires_grad=True)
    _distill_rows(z, teacher).sum().backward()
    np.testing.assert_allclose(
        z.grad[FAR].numpy(),
        _forward_distillation_gradient(STUDENT[FAR], TEACHER[FAR], TINY),
        rtol=1e-14,
    )
    np.testing.assert_allclose(g[FINITE].numpy(), z.grad[FINITE].numpy(), rtol=1e-14)


def _central_difference(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (f(up) - f(down)) / (2 * h)
    return g


def test_finite_distillation_gradients_keep_forward_and_reverse_mode() -> None:
    """A call with no far row: the NaN term adds nothing (jax.grad and torch.func.grad
    agree with finite differences), and forward mode still runs (jax.jacfwd,
    torch.func.jacfwd: a custom_vjp would refuse it). Guards mutants: the mask
    inverted (NaN everywhere), a custom_vjp for the custom_jvp. JAX's under ``jax.jit``
    (one compiled program, not each operation's: the eager transforms run above; both
    mutants fail either way, tests/MUTATION.md 2026-12-06)."""
    z, v = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5]]), np.array([[0.1, 0.2, 0.7]] * 2)

    def loss(zz: Any, lib: Any) -> Any:
        return crossent.distillation_loss(zz, lib.asarray(v), temperature=2.0, validate=False)

    fd = _central_difference(lambda a: float(loss(a, np)), z)
    warnings.simplefilter("ignore", DeprecationWarning)  # (torch.func.jacfwd's own, main too)
    for g in (
        np.asarray(jax.jit(jax.grad(lambda a: loss(a, jnp)))(jnp.asarray(z))),
        np.asarray(jax.jit(jax.jacfwd(lambda a: loss(a, jnp)))(jnp.asarray(z))),
        func.grad(lambda a: loss(a, torch))(torch.tensor(z)).numpy(),
        func.jacfwd(lambda a: loss(a, torch))(torch.tensor(z)).numpy(),
    ):
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------ softmax losses


def _label_smoothing_truth() -> np.ndarray:
    """Per row, softmax(z) - v with v = 0.95 e_y + 0.05 (the mean's 1/2 applied)."""
    rows = []
    with mpmath.workdps(400):
        for z, y in zip(LOGITS, LABELS, strict=True):
            v = [0.05 + 0.9 * (c == y) for c in range(2)]
            rows.append([float((s - a) / 2) for s, a in zip(_softmax_mp(z), v, strict=True)])
    return np.array(rows)


@pytest.mark.parametrize("transform", ["jax.grad", "jax.jit(jax.grad)", "torch.func.grad"])
def test_softmax_far_row_gradient_stays_exact_under_transforms(transform: str) -> None:
    """The softmax losses' common-path gradient is exact in a far row (0.025 here):
    passes on main; guards the mutant that marks the softmax losses' far rows NaN."""

    def loss(z: Any, y: Any) -> Any:
        return crossent.softmax_cross_entropy(z, y, label_smoothing=0.1, validate=False)

    if transform == "torch.func.grad":
        g = func.grad(loss)(torch.tensor(LOGITS), torch.tensor(LABELS)).numpy()
    else:
        grad = jax.jit(jax.grad(loss)) if "jit" in transform else jax.grad(loss)
        g = np.asarray(grad(jnp.asarray(LOGITS), jnp.asarray(LABELS)))
    np.testing.assert_allclose(g, _label_smoothing_truth(), rtol=1e-14)


def test_torch_func_vmap_of_grad_far_rows() -> None:
    """torch.func.vmap(torch.func.grad) of a row: NaN in the far distillation and
    cross-entropy rows (main: 0, and "could not be read as a host array"), the other
    rows as NumPy's twins; vmap's values: the far rows inf, the others exact."""
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    g = func.vmap(func.grad(lambda z, v: _distill_rows(z, v)))(s, t).numpy()
    assert np.isnan(g[FAR]).all()
    twin = crossent.distillation_loss_grad(
        STUDENT[FINITE], TEACHER[FINITE], temperature=TINY, reduction="sum"
    )
    np.testing.assert_allclose(g[FINITE], twin, rtol=1e-14, atol=0)
    p, x = torch.tensor(P), torch.tensor(X)

    def row(pp: Any, xx: Any) -> Any:
        return crossent.cross_entropy(pp, xx, q_form="logits", validate=False)

    g = func.vmap(func.grad(row, argnums=1))(p, x).numpy()
    # (the cross-entropy's far row formed again in torch since branch jaxexact1: its truth)
    np.testing.assert_allclose(g[0], _analytic_cross_entropy_gradient(P[0], X[0]), rtol=1e-14)
    np.testing.assert_allclose(g[1], _analytic_cross_entropy_gradient(P[1], X[1]), rtol=1e-14)
    values = func.vmap(row)(p, x).numpy()
    assert values[0] == pytest.approx(float(row(P[0], X[0])), rel=1e-15)
    assert values[1] == pytest.approx(float(row(P[1], X[1])), rel=1e-15)


# ------------------------------------------------------------------ classes not last
# (branch jaxleft) Every test above has the classes last; the mutation pass
# (tests/MUTATION.md) left alive the mutants that put the class axis at -1 in JAX's
# ``expand_dims(far, axis)`` and ``within = (axis,)`` and PyTorch's
# ``unsqueeze(ctx.axis)`` (forward and backward rules). Oracle: the same call with the
# classes last, transposed (the NaN entries are the far sample's, not a class's), and
# NumPy's ``distillation_loss_grad`` for the finite samples. The samples: STUDENT and
# TEACHER above (sample 1 far).


def _check3(g_last: np.ndarray, g_first: np.ndarray) -> None:
    """``g_last`` (samples, classes) from axis=-1; ``g_first`` (classes, samples), axis=0."""
    assert g_first.shape == (2, 3)
    assert np.isnan(g_first[:, FAR]).all()
    assert np.isfinite(g_first[:, FINITE]).all()
    twin = crossent.distillation_loss_grad(
        STUDENT[FINITE], TEACHER[FINITE], temperature=TINY, reduction="sum"
    )
    np.testing.assert_allclose(g_first[:, FINITE].T, twin, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(g_first, g_last.T)


@pytest.mark.parametrize("transform", ["jax.grad", "jax.jit(jax.grad)"])
def test_jax_far_row_gradient_class_axis_first(transform: str) -> None:
    def grad(axis: int, z: np.ndarray, v: np.ndarray) -> np.ndarray:
        g = _JIT_DISTILL_GRADIENT if "jit" in transform else jax.grad(_distill_total)
        return np.asarray(g(jnp.asarray(z), jnp.asarray(v), direction="forward", axis=axis))

    _check3(grad(-1, STUDENT, TEACHER), grad(0, STUDENT.T.copy(), TEACHER.T.copy()))


def test_jax_far_row_tangent_class_axis_first() -> None:
    """Forward mode: the tangent of each sample's loss, NaN for the far sample only."""

    def tangent(axis: int, z: np.ndarray, v: np.ndarray, dz: np.ndarray) -> np.ndarray:
        def rows(zz: Any) -> Any:
            return crossent.distillation_loss(
                zz, jnp.asarray(v), temperature=TINY, axis=axis, reduction="none", validate=False
            )

        return np.asarray(jax.jvp(rows, (jnp.asarray(z),), (jnp.asarray(dz),))[1])

    dz = np.ones_like(STUDENT)
    last = tangent(-1, STUDENT, TEACHER, dz)
    first = tangent(0, STUDENT.T.copy(), TEACHER.T.copy(), dz.T.copy())
    assert first.shape == (3,)
    assert np.isnan(first[1])
    assert np.isfinite(first[[0, 2]]).all()
    np.testing.assert_array_equal(first, last)


def test_torch_func_far_row_gradient_class_axis_first() -> None:
    def grad(axis: int, z: np.ndarray, v: np.ndarray) -> np.ndarray:
        teacher = torch.tensor(v)
        return func.grad(_distill_total)(torch.tensor(z), teacher, "forward", axis).numpy()

    _check3(grad(-1, STUDENT, TEACHER), grad(0, STUDENT.T.copy(), TEACHER.T.copy()))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch.func.jvp's import
def test_torch_func_far_row_tangent_class_axis_first() -> None:
    def tangent(axis: int, z: np.ndarray, v: np.ndarray) -> np.ndarray:
        teacher = torch.tensor(v)

        def rows(zz: Any) -> Any:
            return crossent.distillation_loss(
                zz, teacher, temperature=TINY, axis=axis, reduction="none", validate=False
            )

        zt = torch.tensor(z)
        return func.jvp(rows, (zt,), (torch.ones_like(zt),))[1].numpy()

    last = tangent(-1, STUDENT, TEACHER)
    first = tangent(0, STUDENT.T.copy(), TEACHER.T.copy())
    assert first.shape == (3,)
    assert np.isnan(first[1])
    assert np.isfinite(first[[0, 2]]).all()
    np.testing.assert_array_equal(first, last)
