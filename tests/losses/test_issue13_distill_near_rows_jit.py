r"""Issue 13 follow-up (review): distillation in ``jax.jit`` with ``validate=False``.

The project's rule for traced arrays (``_checks._truth``): validation reads values, so
``validate=False`` runs inside ``jax.jit``. The near rows of the generic path
(``_distill._near_rows_of_namespace``) read whether any row is flagged; at
a228ef3..540dca7 that read raised ``TracerBoolConversionError`` in every jitted call
(main computed it). In a traced call every row is now formed and the flagged ones
picked.

Oracle: the same call outside ``jit`` (the generic path on concrete arrays, which
reads the flags), on a batch of an ordinary row and a near one (:math:`T = 10^8`:
:math:`T^2 D` of about 0.47 and 0.81, the near forms' values), loss and gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

STUDENT = [[1.0, 0.2, -0.5], [0.7, -0.3, 2.0]]
TEACHER = [[0.3, -0.4, 0.9], [0.1, 0.4, -1.0]]


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.usefixtures("jax_x64")
def test_jitted_distillation_is_the_eager_one(direction) -> None:
    z, v = jnp.asarray(STUDENT, dtype=jnp.float64), jnp.asarray(TEACHER, dtype=jnp.float64)
    options = {"temperature": 1e8, "direction": direction, "validate": False}

    def loss(a, b):
        return crossent.distillation_loss(a, b, reduction="none", **options)

    def grad(a, b):
        return crossent.distillation_loss_grad(a, b, **options)

    for f in (loss, grad):
        np.testing.assert_allclose(
            np.asarray(jax.jit(f)(z, v)), np.asarray(f(z, v)), rtol=1e-14, atol=0
        )
    assert float(loss(z, v)[0]) > 0.1  # (the near form at 1e8: the common one gives -1.06)
