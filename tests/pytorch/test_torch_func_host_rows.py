r"""``crossent.torch.distillation_loss`` rows formed on the host under ``torch.func``.

Reverse-KL rows of :math:`D(s\,\|\,t) = +\infty` (a teacher probability 0 where the
student's is not) have eagerly NaN gradients in every class of a finite student logit
and 0 in a masked class (NumPy's :func:`crossent.distillation_loss_grad`), 0 where the
row's upstream is 0. On main ``torch.func.grad``, ``vjp`` and ``jacrev`` kept the
generic graph's finite gradient there (the finite terms' alone): ``_HostRows``, which
forms those rows, had no ``setup_context`` and torch.func could not run it; rows whose
gaps pass the float range (far rows) raised PyTorch's "must override the setup_context
staticmethod" under every transform. Now ``_HostRows`` is torch.func's form: the same
NumPy gradients in reverse mode, an :class:`InputError` naming what works under
forward mode, and a second derivative an InputError as in eager calls.

Oracles: the eager call's gradient (itself NumPy's, tested in
``test_reverse_kl_zero_teacher_gradient.py``) and the NumPy gradient twin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

import crossent  # noqa: E402
from crossent.torch import distillation_loss  # noqa: E402
from reverse_kl_zero_teacher import FORMS, INFINITE, inputs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _eager(loss: Callable[..., torch.Tensor], *args: torch.Tensor, argnum: int = 0) -> torch.Tensor:
    call = [a.clone() for a in args]
    call[argnum].requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(*call), call[argnum])
    return grad


def _same(got: torch.Tensor, want: torch.Tensor) -> None:
    """The same values, NaN in the same entries, up to the rounding of the ordinary
    rows (eager calls take the fused CPU kernels there, torch.func the generic path; a
    float32 generic row is up to some 16 units of 2^-23 off: 4e-6 relative. Since branch
    distrev1 an eager call with an infinite row takes the kernels too: 1.4e-6 here)."""
    assert got.dtype == want.dtype
    tol = 1e-12 if got.dtype == torch.float64 else 4e-6
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * 1e-3, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_reverse_infinite_rows_nan_gradient_under_torch_func(form: str, dtype: torch.dtype) -> None:
    """``grad``, ``vjp`` and ``jacrev`` of the sum: eager's gradient (NaN in the infinite
    rows' finite classes, 0 in their masked ones, NumPy's elsewhere); on main the
    finite gradient of the generic graph."""
    z64, t64 = inputs(form, np.float64)
    z, t = torch.tensor(z64, dtype=dtype), torch.tensor(t64, dtype=dtype)

    def loss(x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return distillation_loss(x, teacher, 3.0, "sum", teacher_form=form, direction="reverse")

    want = _eager(loss, z, t)
    numpy = crossent.distillation_loss_grad(
        z64, t64, temperature=3.0, teacher_form=form, direction="reverse", reduction="sum"
    )
    assert np.array_equal(np.isnan(want.double().numpy()), np.isnan(numpy))
    assert bool(torch.isnan(want[torch.from_numpy(INFINITE)]).any())
    one = torch.ones((), dtype=loss(z, t).dtype)
    for got in (
        func.grad(loss)(z, t),
        func.vjp(lambda x: loss(x, t), z)[1](one)[0],
        func.jacrev(loss)(z, t),
    ):
        _same(got, want)


@pytest.mark.parametrize("form", FORMS)
def test_reverse_infinite_rows_with_upstream_zero_send_zero(form: str) -> None:
    """``reduction='none'``, the infinite rows dropped by ``torch.where`` (upstream 0),
    and a ``vjp`` whose cotangent is 0 on them: 0 there, eager's gradient elsewhere
    (NaN nowhere)."""
    z64, t64 = inputs(form, np.float64)
    z, t = torch.tensor(z64), torch.tensor(t64)

    def rows(x: torch.Tensor) -> torch.Tensor:
        return distillation_loss(x, t, 3.0, "none", teacher_form=form, direction="reverse")

    def masked(x: torch.Tensor) -> torch.Tensor:
        out = rows(x)
        return torch.where(torch.isfinite(out), out, 0.0).sum()

    want = _eager(masked, z)
    assert not bool(torch.isnan(want).any())
    _same(func.grad(masked)(z), want)
    cotangent = torch.from_numpy((~INFINITE).astype(np.float64))
    (got,) = func.vjp(rows, z)[1](cotangent)
    _same(got, want)
    # the Jacobian of the rows: NaN on an infinite row's own entries only
    jac = func.jacrev(rows)(z)
    for i in range(len(INFINITE)):
        _same(jac[i, i], _eager(lambda x, i=i: rows(x)[i], z)[i])
        others = torch.cat([jac[i, :i], jac[i, i + 1 :]])
        assert bool((others == 0).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_far_rows_under_torch_func_grad(dtype: torch.dtype) -> None:
    """Rows whose gaps pass the float range (formed on the host in eager calls), the
    student's and a teacher's gradient (the teacher requiring one: its far gaps go to
    the host too): ``torch.func.grad`` gives eager's (on main PyTorch's setup_context
    RuntimeError)."""
    big = torch.finfo(dtype).max
    z = torch.tensor([[big, -big, 0.0], [0.1, 0.2, 0.3], [1.0, -2.0, 0.5]], dtype=dtype)
    v = torch.tensor([[0.3, 0.2, 0.1], [0.3, -big, big], [0.0, 1.0, 2.0]], dtype=dtype)

    def loss(x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return distillation_loss(x, teacher, 2.0, "mean")

    student = func.grad(loss)(z, v)
    _same(student, _eager(loss, z, v))
    assert bool(torch.isfinite(student).all())
    _same(func.grad(loss, argnums=1)(z, v), _eager(loss, z, v, argnum=1))


def test_host_rows_second_derivative_and_forward_mode_name_the_loss() -> None:
    """A second derivative through host rows (``grad`` of ``grad``): an InputError, as
    the error of an eager ``create_graph`` backward through them; forward mode
    (``jacfwd``, ``jvp``, ``hessian``) and vmap of such rows: an InputError naming the
    reverse-mode transforms (on main PyTorch's setup_context RuntimeError)."""
    z = torch.tensor([[1e308, -1e308, 0.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    v = torch.tensor([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]], dtype=torch.float64)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return distillation_loss(x, v, 1.0, "sum")

    with pytest.raises(InputError, match="have no second derivative"):
        func.grad(lambda x: func.grad(loss)(x).pow(2).sum())(z)
    for transform in (func.jacfwd, func.hessian):
        with pytest.raises(InputError, match=r"reverse-mode derivatives only.*\(grad, vjp"):
            transform(loss)(z)
    with pytest.raises(InputError, match="reverse-mode derivatives only"):
        func.jvp(loss, (z,), (torch.ones_like(z),))
