"""Far rows under a transformation with the classes not last (issue 13, jaxleft).

``_traced_far_rows.poisoned`` gives a far row (a finite loss the common path forms as
``inf``) a NaN gradient under ``jax.grad`` / ``torch.func.grad`` and a NaN tangent in
forward mode. Every earlier test had the classes last; the mutation pass
(tests/MUTATION.md) left alive the mutants that put the class axis at -1 in JAX's
``expand_dims(far, axis)`` and ``within = (axis,)`` and PyTorch's ``unsqueeze(ctx.axis)``.
Oracle: the same call with the classes last, transposed (the NaN entries are the far
sample's, not a class's), and NumPy's ``distillation_loss_grad`` for the finite rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

# Three samples, two classes: sample 1 is far (logits 1e210 apart at T = 1e-100).
STUDENT = np.array([[0.1, 0.2], [1e210, 0.0], [0.5, -0.2]])
TEACHER = np.array([[0.3, 0.1], [0.0, 1e210], [0.1, 0.4]])
TINY = 1e-100


@pytest.fixture(autouse=True)
def _x64() -> Any:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        yield
    jax.config.update("jax_enable_x64", before)


def _total(z: Any, v: Any, axis: int) -> Any:
    rows = crossent.distillation_loss(
        z, v, temperature=TINY, axis=axis, reduction="none", validate=False
    )
    return rows.sum()


def _check(g_last: np.ndarray, g_first: np.ndarray) -> None:
    """``g_last`` (samples, classes) from axis=-1; ``g_first`` (classes, samples), axis=0."""
    assert g_first.shape == (2, 3)
    assert np.isnan(g_first[:, 1]).all()
    assert np.isfinite(np.delete(g_first, 1, axis=1)).all()
    twin = crossent.distillation_loss_grad(
        STUDENT[[0, 2]], TEACHER[[0, 2]], temperature=TINY, reduction="sum"
    )
    np.testing.assert_allclose(np.delete(g_first, 1, axis=1).T, twin, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(g_first, g_last.T)


@pytest.mark.parametrize("transform", ["jax.grad", "jax.jit(jax.grad)"])
def test_jax_far_row_gradient_class_axis_first(transform: str) -> None:
    def grad(axis: int, z: np.ndarray, v: np.ndarray) -> np.ndarray:
        g = jax.grad(lambda zz: _total(zz, jnp.asarray(v), axis))
        g = jax.jit(g) if "jit" in transform else g
        return np.asarray(g(jnp.asarray(z)))

    _check(grad(-1, STUDENT, TEACHER), grad(0, STUDENT.T.copy(), TEACHER.T.copy()))


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
        return func.grad(lambda zz: _total(zz, teacher, axis))(torch.tensor(z)).numpy()

    _check(grad(-1, STUDENT, TEACHER), grad(0, STUDENT.T.copy(), TEACHER.T.copy()))


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
