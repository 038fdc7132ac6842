"""A hostile pass over the NumPy-style public functions called with arrays of other
libraries (JAX, PyTorch, array-api-strict): each test is named after the bug it pins and
fails on the code before its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tests.tolerances import CLOSED_FORM, ROUNDING, assert_close

import crossent

_P = [0.25, 0.75]
_Q = [0.75, 0.25]


@pytest.mark.parametrize(
    "measure",
    [
        crossent.kl_divergence,
        lambda p, q, **kw: crossent.cross_entropy_decomposition(p, q, **kw).kl_divergence,
    ],
    ids=["kl_divergence", "cross_entropy_decomposition"],
)
@pytest.mark.parametrize("validate", [True, False])
def test_kl_under_jax_grad_is_the_plain_sum_not_a_host_copy_error(
    measure: object, validate: bool
) -> None:
    """``jax.grad`` of a KL (float32, JAX's default: no float64 to correct the nearly
    equal rows in) raised "InputError: `mass` (LinearizeTracer) could not be read as a
    host array; move it to the CPU first", naming an internal array: its tracers answer
    ``bool`` (so the rows looked correctable) but NumPy cannot copy them, which the
    host-side correction does. Tracers keep the plain sum, as the docstring says and
    as under ``jax.jit``; the gradient is :math:`\\log(p_i/q_i) + 1`."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    q = jnp.asarray(_Q, dtype=jnp.float32)  # float32 also where another test enabled x64

    def total(p: object) -> object:
        return jnp.sum(measure(p, q, validate=validate))

    value, grad = jax.value_and_grad(total)(jnp.asarray(_P, dtype=jnp.float32))
    assert grad.dtype == jnp.float32
    p64, q64 = np.array(_P), np.array(_Q)
    assert_close(np.asarray(grad), np.log(p64 / q64) + 1, CLOSED_FORM)
    assert_close(np.asarray(value), crossent.kl_divergence(p64, q64), CLOSED_FORM, np.float32)


_HUGE = np.array([[1e300, -1e300, 0.0], [0.0, 1.0, 2.0]])
_LABELS = np.array([0, 1])
_TEACHER = np.array([[-1e300, 1e300, 0.0], [2.0, 1.0, 0.0]])

_QUIET = {
    "temperature_1e-300": lambda z, y, t: crossent.softmax_cross_entropy(
        z, y, temperature=1e-300, reduction="none"
    ),
    "temperature_1e-300_grad": lambda z, y, t: crossent.softmax_cross_entropy_grad(
        z, y, temperature=1e-300, reduction="none"
    ),
    "z_loss": lambda z, y, t: crossent.softmax_cross_entropy(
        z, y, z_loss=1.0, label_smoothing=0.5, reduction="none"
    ),
    "z_loss_targets": lambda z, y, t: crossent.softmax_cross_entropy_with_targets(
        z, t * 0 + 1 / 3, z_loss=1.0, reduction="none"
    ),
    "distill_temperature_1e100": lambda z, y, t: crossent.distillation_loss(
        z, t, temperature=1e100, reduction="none"
    ),
    "distill_temperature_1e160_reverse": lambda z, y, t: crossent.distillation_loss(
        z, t, temperature=1e160, direction="reverse", reduction="none"
    ),
    "distill_temperature_1e-100_grad": lambda z, y, t: crossent.distillation_loss_grad(
        z, t, temperature=1e-100, reduction="none"
    ),
    "soft_cap_1e-300": lambda z, y, t: crossent.softmax_cross_entropy(
        z, y, soft_cap=1e-300, reduction="none"
    ),
    "soft_cap_1e-300_grad": lambda z, y, t: crossent.softmax_cross_entropy_grad(
        z, y, soft_cap=1e-300, reduction="none"
    ),
}


@pytest.mark.parametrize(
    ("call", "namespace"),
    [(call, "array_api_strict") for call in _QUIET]
    + [(call, "numpy") for call in _QUIET if call.startswith("soft_cap")],
)
def test_array_api_strict_losses_raise_no_numpy_overflow_warning(call: str, namespace: str) -> None:
    """array-api-strict computes with NumPy, so NumPy's floating-point warnings reach
    the caller where the code guarded only ``numpy.ndarray`` values: a temperature of
    1e-300 ("overflow encountered in divide" in ``x / T``), the z-loss of a row whose
    log-sum-exp squares past the float range ("in multiply"), :math:`T^2 D` of a
    distillation at a huge temperature; ``-W error`` made them errors. A soft cap of
    1e-300 warned on plain NumPy too (``z / s`` in ``s tanh(z / s)``: its quotient's
    overflow is the limit ``tanh(inf) = 1``). The values are those of the same call on
    PyTorch float64, which warns of nothing (NumPy's far-row rebuilds aside: these
    rows have none)."""
    torch = pytest.importorskip("torch")
    xp = pytest.importorskip(namespace)
    args = (_HUGE, _LABELS, _TEACHER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _QUIET[call](*(xp.asarray(a) for a in args))
    expected = _QUIET[call](*(torch.from_numpy(a) for a in args)).numpy()
    assert_close(np.asarray(got), expected, ROUNDING)  # (NumPy's huge-T path: 1 ulp)


_P_HARD = np.array([[1.0, 0.0, 0.0], [5e-324, 1.0, 0.0], [0.5, 0.5, 0.0]])
_Q_HARD = np.array([[5e-324, 1.0, 0.0], [1.0, 0.0, 0.0], [1e-300, 0.5, 0.5]])

_QUIET_MEASURES = {
    "perplexity": lambda p, q: crossent.perplexity(p, q),
    "binary_cross_entropy_grad": lambda p, q: crossent.binary_cross_entropy_grad(p, q),
}


@pytest.mark.parametrize("call", list(_QUIET_MEASURES))
def test_array_api_strict_measures_raise_no_numpy_overflow_warning(call: str) -> None:
    """As the losses above: on array-api-strict the perplexity of a cross-entropy past
    709.78 nats ("overflow encountered in exp": the ``errstate`` guarded NumPy's own
    values only) and the binary cross-entropy gradient ``-p / q`` at ``q = 5e-324``
    ("in divide") warned. Their values: +inf (a true overflow) and the finite
    1.4e150 of the last row, as on PyTorch float64."""
    torch = pytest.importorskip("torch")
    xp = pytest.importorskip("array_api_strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _QUIET_MEASURES[call](xp.asarray(_P_HARD), xp.asarray(_Q_HARD))
    expected = _QUIET_MEASURES[call](torch.from_numpy(_P_HARD), torch.from_numpy(_Q_HARD))
    if call == "perplexity":
        # both e^H with H in double-double (branch ppl1; array-api-strict, which has no
        # frexp, since pplx2): 345.7 nats, once 306 ulps apart (1.4142135623730394e150
        # against sqrt(2) 1e150 on array-api-strict)
        np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=2.0**-52)
        return
    assert_close(np.asarray(got), expected.numpy(), ROUNDING)


def test_array_api_strict_reverse_distillation_gradient_of_an_infinite_kl_is_quiet() -> None:
    """The reverse-KL gradient of a row whose :math:`D(s\\,\\|\\,t)` is infinite (the
    teacher's probability 0 where the student's is 1) formed ``inf - inf`` before
    setting the documented NaN: on array-api-strict NumPy's "invalid value encountered
    in subtract" reached the caller. Values: PyTorch float64's (NaN, and the finite row
    as it is)."""
    torch = pytest.importorskip("torch")
    xp = pytest.importorskip("array_api_strict")
    student = np.array([[1e300, -1e300, 0.0], [0.0, 1.0, 2.0]])
    teacher = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])

    def call(s: object, t: object) -> object:
        return crossent.distillation_loss_grad(s, t, teacher_form="probs", direction="reverse")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = call(xp.asarray(student), xp.asarray(teacher))
    expected = call(torch.from_numpy(student), torch.from_numpy(teacher)).numpy()
    assert np.isnan(expected[0]).all()
    assert_close(np.asarray(got), expected, ROUNDING)
