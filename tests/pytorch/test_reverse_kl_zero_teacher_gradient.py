r"""``crossent.torch.distillation_loss(..., direction="reverse")`` beside a teacher
probability of exactly 0: the student's gradient of a row whose :math:`D(s\,\|\,t)` is
:math:`+\infty` is NaN (0 in a class whose logit is ``-inf``), as the NumPy
:func:`crossent.distillation_loss_grad` gives it, eagerly and under ``torch.compile``;
a row that enters the result with upstream 0 sends 0. Rows whose zero classes are all
masked in the student (a ``-inf`` logit: :math:`0\log 0 = 0`) are finite, and their
gradient is float64 torch autograd's of the masked formula (the NumPy test's oracle).

On main every test here fails: the generic graph gave such rows the finite gradient
of their finite terms alone (e.g. ``[-0.0443, 0.1757, -0.1046, -0.0269]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
from crossent.torch import distillation_loss  # noqa: E402
from reverse_kl_zero_teacher import FORMS, INFINITE, inputs, masked_oracle  # noqa: E402

DTYPES = (torch.float64, torch.float32)
TEMPERATURES = (1.0, 3.0)


def _expected_gradient(z64: np.ndarray, t64: np.ndarray, form: str, temperature: float) -> Any:
    """The NumPy gradient of the rows' sum (float64), and its finite rows checked
    against the masked oracle first."""
    options = {"temperature": temperature, "teacher_form": form, "direction": "reverse"}
    grad = crossent.distillation_loss_grad(z64, t64, reduction="sum", **options)
    for k in np.flatnonzero(~INFINITE):
        oracle = masked_oracle(z64[k], t64[k], form, temperature)
        np.testing.assert_allclose(grad[k], oracle[1:], rtol=1e-12, atol=1e-14)
    return grad


def _compare(got: torch.Tensor, want: np.ndarray, dtype: torch.dtype) -> None:
    got64 = got.detach().double().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got64), nan)
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(got64[~nan], want[~nan], rtol=rtol, atol=rtol * 0.1)


def _layouts(z: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Rows x classes (the CPU op's layout), and (N, C, 1) (the generic path's)."""
    return [("2d", z), ("3d", z[:, :, None])]


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", FORMS)
def test_eager_gradient_is_numpys(form: str, dtype: torch.dtype, temperature: float) -> None:
    """Rows x classes (the CPU op's call) and (N, C, 1) (the generic path's), 'sum':
    NumPy's gradient; then 'none' with the infinite rows masked out."""
    z64, t64 = inputs(form, np.float64)
    want = _expected_gradient(z64, t64, form, temperature)
    for layout, _ in _layouts(torch.tensor(z64)):
        z = torch.tensor(z64, dtype=dtype, requires_grad=True)
        t = torch.tensor(t64, dtype=dtype)
        zz, tt = (z, t) if layout == "2d" else (z[:, :, None], t[:, :, None])
        loss = distillation_loss(zz, tt, temperature, "sum", teacher_form=form, direction="reverse")
        assert loss.item() == np.inf
        loss.backward()
        assert z.grad is not None
        _compare(z.grad, want, dtype)
    _check_masked_out(form, dtype, temperature)


def _check_masked_out(form: str, dtype: torch.dtype, temperature: float) -> None:
    """``reduction='none'``, the infinite rows dropped by ``torch.where`` (upstream 0):
    their gradient is 0, the finite rows' the masked oracle's (NaN nowhere; a NaN
    gradient times a zero upstream would be NaN)."""
    z64, t64 = inputs(form, np.float64)
    want = _expected_gradient(z64, t64, form, temperature)
    want[INFINITE] = 0.0
    z = torch.tensor(z64, dtype=dtype, requires_grad=True)
    rows = distillation_loss(
        z,
        torch.tensor(t64, dtype=dtype),
        temperature,
        "none",
        teacher_form=form,
        direction="reverse",
    )
    assert torch.isinf(rows[torch.from_numpy(INFINITE)]).all()
    torch.where(torch.isfinite(rows), rows, 0.0).sum().backward()
    assert z.grad is not None
    _compare(z.grad, want, dtype)


#: Each form compiled once, the dtypes taking turns (each form and each dtype compiled;
#: every form at every dtype: the eager test above). CI time: a compile is about 2 s
#: of CPU, and form x dtype took 6 (15.7 s for the file on 2 cores).
_COMPILED_CASES = [
    pytest.param(form, DTYPES[i % len(DTYPES)], id=f"{form}-{DTYPES[i % len(DTYPES)]}")
    for i, form in enumerate(FORMS)
]


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
@pytest.mark.parametrize(("form", "dtype"), _COMPILED_CASES)
def test_compiled_gradient_is_eagers(form: str, dtype: torch.dtype) -> None:
    """``torch.compile(fullgraph=True)``: the loss ``inf``, the gradient NumPy's (NaN
    rows, 0 in their ``-inf`` classes); with the infinite rows masked out, 0 there.

    Both losses in one compiled graph (one trace, not two: CI time), each one's gradient
    taken alone (``torch.autograd.grad``): the other output's upstream is then 0, and its
    rows send 0 (the rule the masked loss checks), so each gradient is still exactly the
    one loss's."""

    def both(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        summed = distillation_loss(z, t, 3.0, "sum", teacher_form=form, direction="reverse")
        rows = distillation_loss(z, t, 3.0, "none", teacher_form=form, direction="reverse")
        return summed, torch.where(torch.isfinite(rows), rows, 0.0).sum()

    torch._dynamo.reset()
    z64, t64 = inputs(form, np.float64)
    want = _expected_gradient(z64, t64, form, 3.0)
    dropped = want.copy()
    dropped[INFINITE] = 0.0
    compiled = torch.compile(both, fullgraph=True, backend="aot_eager")
    z = torch.tensor(z64, dtype=dtype, requires_grad=True)
    summed, masked = compiled(z, torch.tensor(t64, dtype=dtype))
    assert summed.item() == np.inf
    assert np.isfinite(masked.item())
    for loss, expected in ((summed, want), (masked, dropped)):
        (grad,) = torch.autograd.grad(loss, z, retain_graph=True)
        _compare(grad, expected, dtype)
