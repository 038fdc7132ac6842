"""Every ``crossent.torch`` loss allocates on its inputs' device, never on the default one.

A tensor made without ``device=`` lands on the default device (the CPU), and mixing it
with CUDA inputs fails, in the backward of ``distillation_loss(direction='reverse')``
on an H200 (``Expected all tensors to be on the same device``; ``_numerics.exp_times``'s
``xp.asarray(2.0)``). CI has no GPU, so these tests make the *default* device the meta
device (``with torch.device("meta")``) while the inputs stay on the CPU: any tensor made
without a device is then a meta tensor, and mixing it with the CPU inputs raises just as
mixing CPU and CUDA does. Before the fix of ``exp_times``, 15 of these 39 cases failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

DTYPES = [torch.float64, torch.float32, torch.bfloat16]


def _logits(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 10, generator=g, dtype=torch.float64) * 3
    z[3, 1] = -math.inf  # a class the teacher never gives
    z[5, 0] = 40.0  # a confident row
    return z.to(dtype)


def _targets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    t = torch.softmax(torch.randn(16, 10, generator=g, dtype=torch.float64), 1)
    y = torch.randint(0, 10, (16,), generator=g)
    return t, y


def _cases(dtype: torch.dtype) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    t, y = _targets()
    teacher = _logits(torch.float64).clamp_min(-1e4)
    w = torch.rand(10, generator=torch.Generator().manual_seed(2))
    teachers = {"logits": teacher, "probs": torch.softmax(teacher, 1)}
    teachers["log_probs"] = torch.log_softmax(teacher, 1)
    cases: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "cross_entropy": lambda z: ct.cross_entropy(z, y),
        "cross_entropy options": lambda z: ct.cross_entropy(
            z, y, weight=w, label_smoothing=0.1, z_loss=1e-4, soft_cap=5.0, temperature=2.0
        ),
        "cross_entropy probabilities": lambda z: ct.cross_entropy(z, t.to(z.dtype)),
        "binary_cross_entropy_with_logits": lambda z: ct.binary_cross_entropy_with_logits(
            z, t.to(z.dtype)
        ),
        "sigmoid_focal_loss": lambda z: ct.sigmoid_focal_loss(z, (t > 0.1).to(z.dtype)),
        "softmax_focal_loss": lambda z: ct.softmax_focal_loss(z, y),
    }
    for form, values in teachers.items():
        given = values.to(dtype)
        for direction in ("forward", "reverse"):
            cases[f"distillation_loss {form} {direction}"] = (
                lambda z, v=given, f=form, d=direction: ct.distillation_loss(
                    z, v, teacher_form=f, direction=d
                )
            )
    return cases


CASE_NAMES = sorted(_cases(torch.float64))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_loss_and_gradient_stay_on_the_inputs_device(name: str, dtype: torch.dtype) -> None:
    z = _logits(dtype).clamp_min(-1e4).requires_grad_(True)
    call = _cases(dtype)[name]
    with torch.device("meta"):
        loss = call(z)
        loss.sum().backward()
    assert loss.device.type == "cpu"
    assert z.grad is not None
    assert z.grad.device.type == "cpu"
    # A teacher probability that underflowed to 0 (a logit of -1e4) makes that row's
    # reverse KL +inf: no derivative, a NaN row (the documented semantics); finite
    # elsewhere, as every other row and case.
    undefined = torch.zeros(z.shape[0], dtype=torch.bool)
    if name == "distillation_loss probs reverse":
        undefined = (torch.softmax(_logits(torch.float64).clamp_min(-1e4), 1) == 0).any(1)
        assert bool(undefined.any())  # the case keeps one such row
    assert bool(torch.isfinite(z.grad[~undefined]).all())
    assert bool(torch.isnan(z.grad[undefined]).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_cross_entropy_stays_on_the_inputs_device(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    h = torch.randn(16, 8, generator=g).to(dtype).requires_grad_(True)
    w = torch.randn(10, 8, generator=g).to(dtype).requires_grad_(True)
    y = torch.randint(0, 10, (16,), generator=g)
    with torch.device("meta"):
        loss = ct.linear_cross_entropy(h, w, y, label_smoothing=0.1, z_loss=1e-4)
        loss.sum().backward()
    assert loss.device.type == "cpu"
    assert h.grad is not None
    assert w.grad is not None
    assert h.grad.device.type == "cpu"
