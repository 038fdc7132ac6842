"""Issue 13 (branch compile2): new option values do not recompile ``cross_entropy``.

A compiled step that calls ``crossent.torch.cross_entropy`` (class ids) with a new
Python-float ``label_smoothing``, ``z_loss``, ``temperature`` or ``soft_cap`` each call
(a smoothing or temperature schedule) compiled a new graph per value on main: the
options were read by value (``float.hex``) and reached the custom op as a ``float[]``,
a guard on each value, until Dynamo's recompile limit (8) sent the step back to eager.
``torch.nn.functional.cross_entropy`` specialises on ``label_smoothing`` too (8 graphs
for 10 values, torch 2.13); crossent now keeps the options symbolic (range guards
only) and hands them to the op as a float64 tensor: 2 graphs for any number of
values (the first call's constants, then Dynamo's automatic dynamic), the loss and
gradient bits eager's, ``label_smoothing=0`` the unsmoothed loss exactly.

Backend ``aot_eager`` (autograd traced through the op, no inductor build). On main
1 of 2 fails (``test_new_values_compile_no_new_graph``: 3 frames for 3 values); the
other guards the range checks of symbolic options while traced (the mutant that
drops them leaves the check to the op at run time, after the shape checks: the
error named the target's shape, not the option).

Branch compile3: ``distillation_loss``' ``temperature`` on the fused CPU op (an
annealing schedule) likewise: 2 graphs, eager's loss and gradient bits, teacher
logits and probabilities. On main 2 of 2 fail (5 frames for 4 values each); the
refusal of a symbolic ``T = 0`` kills the mutant without the range comparisons (it
sent 0 to the op: a ZeroDivisionError). ``cross_entropy`` of probability targets
too (the target op's twin, ``test_new_values_compile_no_new_graph[probs]``): fails on
main (4 frames for 3 values).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

from crossent.errors import InputError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# label_smoothing, z_loss, temperature, soft_cap: every option new on each call, the
# first smoothing 0 (no smoothing: its own branch in the kernels, read in the op).
_SCHEDULE = [
    (0.0, 0.0, 1.0, 30.0),
    (0.1, 1e-4, 0.7, 12.5),
    (1.0 / 3.0, 0.0, 1.0 / 7.0, 0.9),
]


def _loss(x: torch.Tensor, y: torch.Tensor, s: float, z: float, t: float, c: float):
    return ct.cross_entropy(x, y, label_smoothing=s, z_loss=z, temperature=t, soft_cap=c)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float32) * 3
    return x, torch.tensor([0, 4, 2, -100, 1, 3])


@pytest.mark.parametrize("targets", ["ids", "probs"])
def test_new_values_compile_no_new_graph(targets: str) -> None:
    # probs (branch compile3): probability targets, the target op's twin.
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_loss, backend=counter, fullgraph=True)
    x, y = _data()
    if targets == "probs":
        y = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(5)), 1)
    for options in _SCHEDULE:
        got_x = x.clone().requires_grad_()
        got = step(got_x, y, *options)
        got.backward()
        want_x = x.clone().requires_grad_()
        want = _loss(want_x, y, *options)
        want.backward()
        assert torch.equal(got, want), options
        assert torch.equal(got_x.grad, want_x.grad), options
    assert counter.frame_count <= 2  # main: one per value (3; probs 4)


def test_symbolic_option_out_of_range_refused_first() -> None:
    # Eager checks the options before the shapes: so does the compiled call with a
    # symbolic option (the op's own check would name the target's shape first).
    torch._dynamo.reset()
    step = torch.compile(_loss, backend="aot_eager", fullgraph=True)
    x, y = _data()
    step(x, y, 0.1, 0.0, 1.0, 30.0)
    step(x, y, 0.2, 0.0, 1.0, 30.0)  # the options now symbolic
    with pytest.raises(InputError, match=r"`label_smoothing` must be in \[0, 1\]; got nan"):
        step(x, y[:5], math.nan, 0.0, 1.0, 30.0)
    with pytest.raises(InputError, match=r"`temperature` must be in \(0, inf\); got"):
        step(x, y[:5], 0.1, 0.0, 0.0, 30.0)


# distillation_loss' temperature (branch compile3): an annealing schedule, T = 1 among
# the values (the op's own branch for a teacher's probabilities at T = 1).
_TEMPERATURES = [2.0, 1.0, 1.0 / 3.0, 4.5]


def _distill(z: torch.Tensor, v: torch.Tensor, t: float, form: str) -> torch.Tensor:
    return ct.distillation_loss(z, v, temperature=t, teacher_form=form)


@pytest.mark.parametrize("form", ["logits", "probs"])
def test_distillation_new_temperatures_compile_no_new_graph(form: str) -> None:
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_distill, backend=counter, fullgraph=True)
    x, _ = _data()
    v = torch.randn(6, 5, generator=torch.Generator().manual_seed(7)) * 2
    v = v.softmax(1) if form == "probs" else v
    for t in _TEMPERATURES:
        got_x = x.clone().requires_grad_()
        got = step(got_x, v, t, form)
        got.backward()
        want_x = x.clone().requires_grad_()
        want = _distill(want_x, v, t, form)
        want.backward()
        assert torch.equal(got, want), t
        assert torch.equal(got_x.grad, want_x.grad), t
    assert counter.frame_count <= 2  # main: one per value (4; 'probs': 5)
    # A symbolic temperature out of range: eager's error (the mutant that drops the
    # range comparisons sent 0 to the op: a ZeroDivisionError).
    with pytest.raises(InputError, match=r"`temperature` must be in \(0, inf\); got 0.0"):
        step(x, v, 0.0, form)


# linear_cross_entropy (branch compile4): the fused op's twin. 'mean' forms the
# gradients in the forward (the backward reads no option); 'none' recomputes them in
# the backward op's twin.


def _linear(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, red: str, *options: float):
    s, z, t, c = options
    return ct.linear_cross_entropy(
        h, w, y, reduction=red, label_smoothing=s, z_loss=z, temperature=t, soft_cap=c
    )


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_new_values_compile_no_new_graph(reduction: str) -> None:
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_linear, backend=counter, fullgraph=True)
    gen = torch.Generator().manual_seed(17)
    h, w = torch.randn(5, 4, generator=gen), torch.randn(7, 4, generator=gen)
    y = torch.tensor([0, 6, 2, 3, 1])
    for options in _SCHEDULE:
        got = [h.clone().requires_grad_(), w.clone().requires_grad_()]
        loss = step(*got, y, reduction, *options)
        loss.sum().backward()
        want = [h.clone().requires_grad_(), w.clone().requires_grad_()]
        expected = _linear(*want, y, reduction, *options)
        expected.sum().backward()
        assert torch.equal(loss, expected), options
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a.grad, b.grad), options
    assert counter.frame_count <= 2  # main: one per value (4)


def _bce(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, s: float) -> torch.Tensor:
    return ct.binary_cross_entropy_with_logits(x, t, w, label_smoothing=s, reduction="none")


def test_bce_new_smoothing_compile_no_new_graph() -> None:
    # binary_cross_entropy_with_logits (branch compile4): label_smoothing as a tensor to
    # the op's twin; gradients of the logits, the targets and the weights (its two
    # backward ops' twins). A symbolic smoothing out of range: the op's eager error.
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_bce, backend=counter, fullgraph=True)
    gen = torch.Generator().manual_seed(19)
    data = (torch.randn(3, 4, generator=gen), torch.rand(3, 4, generator=gen), torch.rand(4))
    for s in (0.05, 0.1, 1.0 / 3.0):
        got = [a.clone().requires_grad_() for a in data]
        loss = step(*got, s)
        loss.sum().backward()
        want = [a.clone().requires_grad_() for a in data]
        expected = _bce(*want, s)
        expected.sum().backward()
        assert torch.equal(loss, expected), s
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a.grad, b.grad), s
    assert counter.frame_count <= 2  # main: one per value (4)
    with pytest.raises(InputError, match=r"`label_smoothing` must be in \[0, 1\]; got 1.5"):
        step(*data, 1.5)
    _donated_buffer_note(step, data, 0.2)


def _donated_buffer_note(step: Any, data: tuple[torch.Tensor, ...], s: float) -> None:
    """The module docstring's note (branch torchrev1): the symbolic graph, whose backward
    ran without ``retain_graph`` above (its saved buffers donated), refuses one with
    ``retain_graph=True`` (PyTorch's error, any graph that saves an intermediate; the
    twin's options tensor is one); ``donated_buffer = False`` lets it run, and twice."""
    args = [a.clone().requires_grad_() for a in data]  # (the graph's requires_grad guards)
    loss = step(*args, s).sum()
    with pytest.raises(RuntimeError, match="non-empty donated buffers"):
        torch.autograd.grad(loss, args, retain_graph=True)
    want = torch.autograd.grad(_bce(*args, s).sum(), args)
    with torch._functorch.config.patch(donated_buffer=False):
        for retain in (True, False):
            got = torch.autograd.grad(loss, args, retain_graph=retain)
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def _focal(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gamma: float) -> torch.Tensor:
    return ct.softmax_focal_loss(x, y, gamma=gamma, weight=w, reduction="none")


def test_softmax_focal_new_gamma_compile_no_new_graph() -> None:
    # softmax_focal_loss (branch compile4): gamma as a tensor to the focal op's twin. The
    # compiled call's bits are the op's (its closed-form gradients: within rounding of
    # eager's, as on main), here called eagerly with the Python float.
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(_focal, backend=counter, fullgraph=True)
    x, y = _data()
    w = torch.rand(5, generator=torch.Generator().manual_seed(3))
    for gamma in (0.0, 2.0, 1.0 / 3.0):
        got = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        loss = step(got[0], y, got[1], gamma)
        loss.sum().backward()
        want = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        expected = torch.ops.crossent.softmax_focal_v2(want[0], y, want[1], gamma, -100, "none")
        expected.sum().backward()
        assert torch.equal(loss, expected), gamma
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a.grad, b.grad), gamma
    assert counter.frame_count <= 2  # main: one per value (4)
    with pytest.raises(InputError, match=r"`gamma` must be in \[0, inf\); got nan"):
        step(x, y, w, math.nan)
