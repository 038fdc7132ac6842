"""Labels that are no class, under ``jax.jit`` / ``jax.grad`` (issue 13, hostile JAX pass).

Concrete labels outside ``[0, C)`` are an ``InputError`` whatever ``validate`` says.
Traced labels cannot be read, so the check cannot run; JAX's own indexing then read
label -1 as the last class (a finite, wrong loss and gradient), and label ``C`` as NaN
in the loss but a finite gradient, and a weighted mean of 0.0. Now such a row's loss,
gradient and every reduction over it are NaN (oracle: the same call on the valid
labels is finite, so the NaN is the bad row's).
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import crossent  # noqa: E402

LOSSES = ["softmax_cross_entropy", "softmax_focal_loss", "poly1_cross_entropy"]
LOGITS = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5], [-0.7, 0.1, 0.9], [2.2, -0.3, 0.4]])


#: Labels that are no class (row 2's). The labels are traced: each jitted function below
#: is one program for all of them (the same lowered text; tests/MUTATION.md), so it is
#: traced once per loss and run on each.
BAD = (-1, -3, 3, 7)


@pytest.mark.parametrize("name", LOSSES)
def test_traced_bad_label_is_nan_in_loss_and_gradient(name: str) -> None:
    loss = getattr(crossent, name)
    explicit = getattr(crossent, name + "_grad")
    logits = jnp.asarray(LOGITS, dtype=jnp.float32)
    good = jnp.asarray([0, 1, 2, 1], dtype=jnp.int32)
    weight = jnp.asarray([1.0, 2.0, 0.5], dtype=jnp.float32)

    def rows(z, y):
        return loss(z, y, reduction="none", validate=False)

    jitted_rows = jax.jit(rows)
    grad = jax.jit(jax.grad(lambda z, y: jnp.sum(rows(z, y))))
    explicit_rows = jax.jit(lambda z, y: explicit(z, y, reduction="none", validate=False))
    mean = jax.jit(lambda z, y: loss(z, y, weight=weight, validate=False))
    assert np.isfinite(np.asarray(jitted_rows(logits, good))).all()
    assert np.isfinite(np.asarray(grad(logits, good))).all()
    assert np.isfinite(float(mean(logits, good)))
    for bad in BAD:
        labels = good.at[2].set(bad)
        with pytest.raises(crossent.InputError, match="labels"):
            loss(logits, labels, validate=False)  # concrete: refused

        value = np.asarray(jitted_rows(logits, labels))
        assert np.isnan(value[2]), bad
        assert np.isfinite(np.delete(value, 2)).all(), bad
        assert np.isnan(np.asarray(grad(logits, labels))[2]).all(), bad
        assert np.isnan(np.asarray(explicit_rows(logits, labels))[2]).all(), bad
        assert np.isnan(float(mean(logits, labels))), bad


def test_traced_bad_label_hinge_value_is_nan() -> None:
    logits = jnp.asarray(LOGITS, dtype=jnp.float32)
    f = jax.jit(lambda z, y: crossent.multiclass_hinge_loss(z, y, reduction="none", validate=False))
    g = jax.jit(
        lambda z, y: crossent.multiclass_hinge_loss_grad(z, y, reduction="none", validate=False)
    )
    for bad in (-1, 3):
        labels = jnp.asarray([0, 1, bad, 1], dtype=jnp.int32)
        value = np.asarray(f(logits, labels))
        assert np.isnan(value[2]), bad
        assert np.isfinite(np.delete(value, 2)).all(), bad
        assert np.isnan(np.asarray(g(logits, labels))[2]).all(), bad


def test_traced_ignored_label_still_ignored() -> None:
    logits = jnp.asarray(LOGITS, dtype=jnp.float32)
    labels = jnp.asarray([0, -100, 2, 1], dtype=jnp.int32)
    f = jax.jit(
        lambda z, y: crossent.softmax_cross_entropy(z, y, ignore_index=-100, validate=False)
    )
    want = crossent.softmax_cross_entropy(LOGITS[[0, 2, 3]], np.array([0, 2, 1]))
    np.testing.assert_allclose(float(f(logits, labels)), float(want), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "sum"])
@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
def test_traced_bad_label_hinge_autodiff_gradient_is_nan(variant: str, reduction: str) -> None:
    # jax.grad through the loss gave row 2 a gradient of 0 (the NaN loss came from a
    # where, which passes no gradient); it is NaN, as the explicit gradient and the
    # softmax losses give it. Oracle: the other rows are those of the same call on
    # valid labels (row 2 relabelled 0). One jitted gradient for every label (traced).
    logits = jnp.asarray(LOGITS, dtype=jnp.float32)

    def total(z, y):
        rows = crossent.multiclass_hinge_loss(
            z, y, variant=variant, reduction=reduction, validate=False
        )
        return jnp.sum(rows)

    grad = jax.jit(jax.grad(total))
    good = np.asarray(grad(logits, jnp.asarray([0, 1, 0, 1], dtype=jnp.int32)))
    assert np.isfinite(good).all()
    for bad in (-1, 3):
        g = np.asarray(grad(logits, jnp.asarray([0, 1, bad, 1], dtype=jnp.int32)))
        assert np.isnan(g[2]).all(), bad
        np.testing.assert_array_equal(np.delete(g, 2, axis=0), np.delete(good, 2, axis=0))
