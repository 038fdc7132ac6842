"""A scalar option passed as a traced value (issue 13, jaxleft).

Options such as ``label_smoothing`` are checked and branched on in Python, so they
must be concrete. A traced one (a ``jax.jit`` argument, a ``jax.grad`` variable, a
``torch.func.grad`` input) was refused as "`label_smoothing` must be a real number;
got JitTracer(...)", which reads as if 0.1 were not a real number. The refusal now
says what is wrong (traced, not concrete) and what to do (make it static).
"""

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = jax.numpy

LOGITS = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5]])
LABELS = np.array([0, 2])
OPTIONS = [
    ("softmax_cross_entropy", "label_smoothing"),
    ("softmax_cross_entropy", "temperature"),
    ("softmax_cross_entropy", "z_loss"),
    ("softmax_focal_loss", "gamma"),
    ("poly1_cross_entropy", "epsilon"),
]


@pytest.mark.parametrize(("name", "option"), OPTIONS)
def test_traced_option_is_refused_as_not_static(name: str, option: str) -> None:
    loss = getattr(crossent, name)
    z = jnp.asarray(LOGITS, dtype=jnp.float32)
    y = jnp.asarray(LABELS, dtype=jnp.int32)

    def f(z, y, a):
        return loss(z, y, validate=False, **{option: a})

    with pytest.raises(crossent.InputError, match=f"`{option}` must be a concrete Python number"):
        jax.jit(f)(z, y, jnp.float32(0.5))
    with pytest.raises(crossent.InputError, match="static_argnames"):
        jax.grad(lambda a: f(z, y, a))(0.5)
    # The way out the message names works, and gives the eager value.
    static = jax.jit(f, static_argnames="a")(z, y, a=0.5)
    eager = loss(LOGITS.astype(np.float32), LABELS, **{option: 0.5})
    np.testing.assert_allclose(float(static), float(eager), rtol=1e-6)


def test_torch_func_traced_option_is_refused_as_not_static() -> None:
    torch = pytest.importorskip("torch")
    z = torch.tensor(LOGITS, dtype=torch.float64)
    y = torch.tensor(LABELS)
    with pytest.raises(crossent.InputError, match="`label_smoothing` must be a concrete"):
        torch.func.grad(lambda a: crossent.softmax_cross_entropy(z, y, label_smoothing=a))(
            torch.tensor(0.1, dtype=torch.float64)
        )


@pytest.mark.parametrize("value", ["0.1", None, np.array([0.1, 0.2])])
def test_concrete_non_number_keeps_its_message(value: object) -> None:
    # Guards the branch: only traced values get the "concrete" message.
    with pytest.raises(crossent.InputError, match="must be a real number"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=value)
