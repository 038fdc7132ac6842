"""Issue 13, hostile pass 71 over the losses under autograd (``crossent.torch`` and the
NumPy-style API given PyTorch tensors or ``jax.grad``).

* A loss of one row (1-D logits, a 0-d loss) whose value was not finite crashed the
  far-row pass of other libraries (``losses._far_gaps._again_elsewhere``: ``far[far] =``
  on a NumPy bool scalar): ``crossent.torch.distillation_loss(s, t,
  direction='reverse')`` of a student that requires grad and a teacher logit ``-inf``
  raised ``TypeError: 'numpy.bool' object does not support item assignment``.
* The exact gradient of a far or infinite row is carried by ``g (x - detach(x))``
  (``_far_row_gradients.gradient_term``), NaN at a ``-inf`` logit: the forward
  distillation loss of a student ``[-inf, 1, 2]`` under a teacher of probabilities
  ``[1, 0, 0]`` (its value ``+inf``) was NaN where the student or the teacher requires grad.
* The focal losses formed by autograd (``crossent.softmax_focal_loss`` of tensors,
  ``crossent.torch.sigmoid_focal_loss``, ``jax.grad``) multiplied the modulation's
  derivative, 0 where :math:`p_y` (or :math:`e^{-|x|}`) underflows, by its upstream
  :math:`\\gamma\\,\\ell`, which overflowed first: NaN logits' gradients of rows of a
  finite loss (float32 ``[-1e38, 0, 1e38]``, label 0, ``gamma=2``: true ``[-1, 0, 1]``;
  sigmoid logit 1e38, target 0, ``gamma=5``: true 0.75) and of infinite wrong logits.

Oracles: the closed forms (the rows saturate: :math:`p - e_y`, :math:`\\alpha_t(\\sigma(x)
- t)`) and the losses' NumPy gradient twins on float64 copies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

INF = math.inf


def _student_gradient(loss_fn, s, t, *, teacher_grad: bool = False, **options):
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(teacher_grad)
    loss = loss_fn(s, t, **options)
    loss.sum().backward()
    return loss.detach(), s.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_row_reverse_distillation_of_an_infinite_row_does_not_crash(dtype):
    s = torch.tensor([0.0, 1.0, 2.0], dtype=dtype)
    t = torch.tensor([-INF, 0.0, 1.0], dtype=dtype)
    loss, grad = _student_gradient(ct.distillation_loss, s, t, direction="reverse")
    assert loss.shape == ()
    assert loss.item() == INF
    twin = crossent.distillation_loss_grad(
        s.double().numpy(), t.double().numpy(), direction="reverse"
    )
    np.testing.assert_array_equal(grad.double().numpy(), twin)  # NaN (Notes): D is +inf


def test_one_row_far_label_smoothed_row_keeps_its_value_and_gradient():
    # a gap of 2e308 weighed by the smoothing: 0.1/3 (0 + 2e308 + 1e308) = 1e307
    z = torch.tensor([1e308, -1e308, 0.0], dtype=torch.float64, requires_grad=True)
    loss = crossent.softmax_cross_entropy(z, torch.tensor(0), label_smoothing=0.1, reduction="none")
    loss.backward()
    assert loss.shape == ()
    assert loss.item() == pytest.approx(1e307, rel=1e-15)
    twin = crossent.softmax_cross_entropy_grad(
        z.detach().numpy(), np.array(0), label_smoothing=0.1, reduction="none"
    )
    np.testing.assert_allclose(z.grad.numpy(), twin, rtol=1e-15, atol=0)


@pytest.mark.parametrize("teacher_grad", [False, True])
@pytest.mark.parametrize("entry", ["crossent.torch", "crossent"])
def test_infinite_forward_distillation_row_is_inf_not_nan_under_autograd(entry, teacher_grad):
    s = torch.tensor([[-INF, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    fn = ct.distillation_loss if entry == "crossent.torch" else crossent.distillation_loss
    loss, grad = _student_gradient(
        fn, s, t, teacher_grad=teacher_grad, teacher_form="probs", reduction="none"
    )
    assert loss[0].item() == INF  # D([1, 0, 0] || [0, .27, .73]) = -log 0
    twin = crossent.distillation_loss_grad(
        s.numpy(), t.numpy(), teacher_form="probs", reduction="none"
    )
    np.testing.assert_allclose(grad.numpy(), twin, rtol=1e-15, atol=0)
    # the saturated row's closed form: T (s - t) = [-1, s_1, s_2]
    assert grad[0, 0].item() == -1.0


def test_finite_far_row_with_a_minus_inf_logit_is_finite_under_autograd():
    # a gap past the float64 range weighed by 0.001: 0.001 * 2e308 = 2e305, and a -inf
    # logit under a target 0 (was NaN under autograd: -inf - (-inf) in gradient_term)
    z = np.array([[1e308, -1e308, -INF], [0.0, 1.0, 2.0]])
    t = np.array([[0.999, 0.001, 0.0], [0.2, 0.3, 0.5]])
    logits = torch.tensor(z, requires_grad=True)
    loss = crossent.softmax_cross_entropy_with_targets(logits, torch.tensor(t), reduction="none")
    loss.sum().backward()
    assert loss[0].item() == pytest.approx(2e305, rel=1e-15)
    twin = crossent.softmax_cross_entropy_with_targets_grad(z, t, reduction="none")
    np.testing.assert_allclose(logits.grad.numpy(), twin, rtol=1e-14, atol=0)


@pytest.mark.parametrize("measure", ["cross_entropy", "kl_divergence"])
def test_measure_of_a_far_row_with_a_minus_inf_logit_under_autograd(measure):
    # the measures share gradient_term: H(p, q) of q logits [1e308, -1e308, -inf] under
    # p = [0.999, 0.001, 0] is 0.001 * 2e308 (H(p) ~ 0.008 is below its ulp), was NaN
    q = torch.tensor([[1e308, -1e308, -INF]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[0.999, 0.001, 0.0]], dtype=torch.float64)
    value = getattr(crossent, measure)(p, q, p_form="probs", q_form="logits")
    value.sum().backward()
    assert value.item() == pytest.approx(2e305, rel=1e-15)
    assert q.grad[0].tolist() == pytest.approx([0.001, -0.001, 0.0], rel=1e-15)


_FOCAL_ROWS = {
    # logits, label, the gradient's closed form p - e_y (the modulation is 1: p_y = 0)
    "float32 gap 2e38": ([-1e38, 0.0, 1e38], torch.float32, [-1.0, 0.0, 1.0]),
    "float64 gap 1e308": ([-5e307, 0.0, 5e307], torch.float64, [-1.0, 0.0, 1.0]),
    "-inf label logit": ([-INF, 1.0, 2.0], torch.float64, None),
}


@pytest.mark.parametrize("row", list(_FOCAL_ROWS))
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_softmax_focal_loss_autograd_of_underflowed_label_probability(row, gamma):
    values, dtype, closed = _FOCAL_ROWS[row]
    z = torch.tensor([values], dtype=dtype, requires_grad=True)
    crossent.softmax_focal_loss(z, torch.tensor([0]), gamma=gamma).backward()
    twin = crossent.softmax_focal_loss_grad(np.array([values]), np.array([0]), gamma=gamma)
    np.testing.assert_allclose(z.grad.double().numpy(), twin, rtol=1e-7, atol=0)
    if closed is not None:
        assert z.grad[0].tolist() == closed


_SIGMOID_ENTRIES = {
    # logit, target: alpha_t (sigma(x) - t) with alpha = 0.25
    "float32 1e38, target 0": (1e38, 0.0, torch.float32, 0.75),
    "float32 -3e38, target 1": (-3e38, 1.0, torch.float32, -0.25),
    "+inf, target 0": (INF, 0.0, torch.float64, 0.75),
    "-inf, target 1": (-INF, 1.0, torch.float64, -0.25),
}


@pytest.mark.parametrize("entry", list(_SIGMOID_ENTRIES))
@pytest.mark.parametrize("fn", ["crossent.torch", "crossent"])
def test_sigmoid_focal_loss_autograd_of_saturated_wrong_logits(entry, fn):
    x, t, dtype, closed = _SIGMOID_ENTRIES[entry]
    logits = torch.tensor([x, 0.5], dtype=dtype, requires_grad=True)
    targets = torch.tensor([t, 1.0], dtype=dtype)
    if fn == "crossent.torch":
        loss = ct.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=5.0, reduction="sum")
    else:
        loss = crossent.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=5.0, reduction="sum")
    loss.backward()
    assert logits.grad[0].item() == closed
    twin = crossent.sigmoid_focal_loss_grad(
        np.array([x, 0.5]), np.array([t, 1.0]), alpha=0.25, gamma=5.0, reduction="sum"
    )
    np.testing.assert_allclose(logits.grad.double().numpy(), twin, rtol=1e-6, atol=0)


def test_sigmoid_focal_loss_targets_gradient_kept_where_the_logits_are_held():
    # targets that require grad: the modulation's slope in t is kept (gamma D / (1 - p_t),
    # D = -tanh(x/2) = -1 at x = 40), only the logits' is held where log(1 - p_t) = 0
    x = torch.tensor([800.0, 0.3], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    crossent.sigmoid_focal_loss(x, t, alpha=None, gamma=2.0, reduction="sum").backward()
    # L = m * bce, m = (1 - p_t)^2 = 1 at t = 0; dL/dt = d bce/dt + bce * 2 * (-1) = -x - 2x
    assert t.grad[0].item() == -3 * 800.0
    assert x.grad[0].item() == 1.0


def test_jax_grad_of_the_sigmoid_focal_loss_at_saturated_logits():
    # JAX tracers take jax.lax.stop_gradient where tensors take detach (_stopped_target);
    # the softmax focal loss's fix is a plain where, covered by the tensors above (its
    # jax.grad cost 2.3 s of CPU for XLA's compiles, and is left out)
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.array([1e38, -INF, 0.5], dtype=jnp.float32)
    t = jnp.array([0.0, 1.0, 1.0], dtype=jnp.float32)
    g = jax.grad(
        lambda a: crossent.sigmoid_focal_loss(a, t, gamma=5.0, alpha=0.25, reduction="sum")
    )(x)
    twin = crossent.sigmoid_focal_loss_grad(
        np.asarray(x), np.asarray(t), gamma=5.0, alpha=0.25, reduction="sum"
    )
    np.testing.assert_allclose(np.asarray(g), twin, rtol=1e-6, atol=0)


def test_plus_inf_logit_of_a_tensor_requiring_grad_is_an_input_error_not_a_warning():
    # the error read the value with float() of a tensor requiring grad: PyTorch's
    # UserWarning first (an error under -W error, pytest's setting here)
    z = torch.tensor([[INF, 0.0, 0.0]], requires_grad=True)
    with pytest.raises(crossent.InputError, match=r"\+inf at index \(0, 0\)"):
        crossent.softmax_cross_entropy(z, torch.tensor([0]))
