"""The hinge loss's derivative under jax.grad / torch.autograd is the documented
subgradient of ``multiclass_hinge_loss_grad``: 0 at a kink (a margin term exactly 0),
the first of tied Crammer-Singer rivals.

Main: the loss was ``max(0, margins)`` and a row maximum, whose derivative JAX and
PyTorch split at ties: at a Crammer-Singer kink ``jax.grad`` gave ``[-1/6, 1/6, 0]``
(half of ``max(0, 0)``, then a third of a row of equal maxima) where
``multiclass_hinge_loss_grad`` gives 0; tied violated rivals ``[-1, 0.5, 0.5]`` against
``[-1, 1, 0]``; a Weston-Watkins kink ``[-0.5, 0.5, 0]`` against 0. Optax's
``multiclass_hinge_loss`` (``max`` over ``scores + 1 - onehot``, its formula below) takes
half at a kink under ``jax.grad``; away from the kinks it is the oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

# (logits, label, margin, variant, the documented subgradient of the row's loss)
_KINKS = {
    "cs-kink": ([2.0, 1.0, -3.0], 0, 1.0, "crammer_singer", [0.0, 0.0, 0.0]),
    "cs-tied-rivals": ([0.0, 0.5, 0.5], 0, 1.0, "crammer_singer", [-1.0, 1.0, 0.0]),
    "cs-tied-kinks": ([1.5, 0.5, 0.5], 0, 1.0, "crammer_singer", [0.0, 0.0, 0.0]),
    "cs-margin-0": ([1.0, 1.0, 0.0], 0, 0.0, "crammer_singer", [0.0, 0.0, 0.0]),
    "cs-target-last": ([0.5, -0.25, 0.25], 2, 0.75, "crammer_singer", [1.0, 0.0, -1.0]),
    "ww-kink": ([2.0, 1.0, -3.0], 0, 1.0, "weston_watkins", [0.0, 0.0, 0.0]),
    "ww-kink-and-violation": ([1.0, 0.0, 0.25], 0, 1.0, "weston_watkins", [-1.0, 0.0, 1.0]),
    "ww-margin-0": ([1.0, 1.0, 2.0], 0, 0.0, "weston_watkins", [-1.0, 0.0, 1.0]),
}
_DTYPES = ["float32", "float64"]


pytestmark = pytest.mark.usefixtures("jax_x64")


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("case", list(_KINKS))
def test_jax_grad_at_a_kink_is_the_documented_subgradient(case: str, dtype: str) -> None:
    row, label, margin, variant, expected = _KINKS[case]
    z = jnp.asarray([row], dtype=dtype)
    y = jnp.asarray([label], dtype=jnp.int32)
    options = {"margin": margin, "variant": variant, "reduction": "sum"}
    got = jax.grad(lambda x: crossent.multiclass_hinge_loss(x, y, **options))(z)
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.asarray(got), [expected])
    own = crossent.multiclass_hinge_loss_grad(z, y, **options)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(own))


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("dtype", _DTYPES)
def test_jax_grad_of_a_batch_with_kinks_mean(dtype: str, variant: str) -> None:
    """All the rows at once, ``'mean'`` and ``jax.jit``: the rows' subgradients / n."""
    cases = [c for c in _KINKS.values() if c[3] == variant and c[2] == 1.0]
    z = jnp.asarray([c[0] for c in cases], dtype=dtype)
    y = jnp.asarray([c[1] for c in cases], dtype=jnp.int32)

    def mean(x: Any) -> Any:
        return crossent.multiclass_hinge_loss(x, y, variant=variant, validate=False)

    expected = np.asarray([c[4] for c in cases]) / len(cases)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.grad(mean))(z)), expected.astype(dtype))


def _optax_multiclass_hinge(scores: Any, labels: Any) -> Any:
    """Optax's ``multiclass_hinge_loss`` (Crammer-Singer, margin 1), its formula."""
    one_hot = jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
    return jnp.max(scores + 1.0 - one_hot, axis=-1) - jnp.sum(scores * one_hot, axis=-1)


def test_away_from_the_kinks_jax_grad_is_optax_s() -> None:
    """Guards the rewritten loss's values and derivative (passes on main): random scores
    (no ties, no kinks) give Optax's loss and ``jax.grad`` (float64)."""
    rng = np.random.default_rng(7)
    z = jnp.asarray(rng.normal(size=(64, 5)), dtype=jnp.float64)
    y = jnp.asarray(rng.integers(0, 5, size=64), dtype=jnp.int32)
    got = crossent.multiclass_hinge_loss(z, y, reduction="none")
    np.testing.assert_allclose(np.asarray(got), np.asarray(_optax_multiclass_hinge(z, y)), 0, 1e-15)
    ours = jax.grad(lambda x: crossent.multiclass_hinge_loss(x, y, reduction="sum"))(z)
    theirs = jax.grad(lambda x: jnp.sum(_optax_multiclass_hinge(x, y)))(z)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_optax_s_formula_takes_half_at_a_kink() -> None:
    """The difference the docs name (passes on main): Optax's ``jax.grad`` at the
    Crammer-Singer kink is ``[-0.5, 0.5, 0]``; crossent's is 0."""
    z = jnp.asarray([[2.0, 1.0, -3.0]], dtype=jnp.float64)
    y = jnp.asarray([0], dtype=jnp.int32)
    theirs = jax.grad(lambda x: jnp.sum(_optax_multiclass_hinge(x, y)))(z)
    np.testing.assert_array_equal(np.asarray(theirs), [[-0.5, 0.5, 0.0]])


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("case", list(_KINKS))
def test_torch_autograd_at_a_kink_is_the_documented_subgradient(case: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    row, label, margin, variant, expected = _KINKS[case]
    z = torch.tensor([row], dtype=getattr(torch, dtype), requires_grad=True)
    y = torch.tensor([label])
    loss = crossent.multiclass_hinge_loss(z, y, margin=margin, variant=variant, reduction="sum")
    loss.backward()
    assert z.grad is not None
    np.testing.assert_array_equal(z.grad.numpy(), [expected])


@pytest.mark.parametrize("case", list(_KINKS))
def test_values_at_the_kinks_are_unchanged(case: str) -> None:
    """The loss at a kink is the exact margin sum (guards the rewrite; passes on main):
    NumPy float64 against the definition."""
    row, label, margin, variant, _ = _KINKS[case]
    rivals = [margin + z - row[label] for c, z in enumerate(row) if c != label]
    hinge = [max(0.0, m) for m in rivals]
    expected = max(hinge) if variant == "crammer_singer" else sum(hinge)
    got = crossent.multiclass_hinge_loss(np.asarray([row]), [label], margin=margin, variant=variant)
    assert got == expected
