"""``torch.jit.trace`` of every loss module with trace's own check (``check_trace=True``,
the default).

The check re-traces the call under ``torch.no_grad()`` and compares the two graphs. The
fused ops took a constant from the grad mode (``linear_cross_entropy``'s "form the
gradients in the forward" flag; ``distillation_loss``'s upstream ``1/N`` written
ahead; probability targets that require grad choosing the op or plain torch), so the
graph traced with grad on differed from the check's: ``TracingCheckError`` ("Graphs
differed across invocations"). Under tracing the choice now follows the inputs'
``requires_grad`` only. Oracles: torch.nn / ``F`` in float64 (values and gradients),
at the traced batch size and another.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional

from tolerances import CLOSED_FORM, assert_close  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

Make = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _logits(n: int, g: torch.Generator, c: int = 5) -> torch.Tensor:
    return torch.randn(n, c, dtype=torch.float64, generator=g).requires_grad_()


def _ids(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return _logits(n, g), torch.randint(0, 5, (n,), generator=g)


def _probs(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.randn(n, 5, dtype=torch.float64, generator=g).softmax(1)
    return _logits(n, g), t.requires_grad_()


def _teacher(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return _logits(n, g), torch.randn(n, 5, dtype=torch.float64, generator=g)


def _teacher_grad(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    z, v = _teacher(n, g)
    return z, v.requires_grad_()


def _hidden(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.randn(n, 4, dtype=torch.float64, generator=g).requires_grad_()
    return h, torch.randint(0, 5, (n,), generator=g)


def _binary(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return _logits(n, g), torch.rand(n, 5, dtype=torch.float64, generator=g)


def _distill_ref(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Forward KL ``T^2 KL(softmax(v/T) || softmax(z/T))`` at ``T = 2``, batch mean."""
    t = 2.0
    log_p = F.log_softmax(v / t, 1)
    rows = (log_p.exp() * (log_p - F.log_softmax(z / t, 1))).sum(1)
    return t * t * rows.mean()


def _linear_module() -> torch.nn.Module:
    torch.manual_seed(3)
    return ct.LinearCrossEntropyLoss(4, 5).double()


def _linear_ref(module: torch.nn.Module) -> Callable[..., torch.Tensor]:
    lin = module.linear  # type: ignore[union-attr]
    return lambda h, y: F.cross_entropy(F.linear(h, lin.weight, lin.bias), y)


_CASES: dict[str, tuple[Callable[[], torch.nn.Module], Callable[..., object], Make]] = {
    "cross_entropy_ids": (
        lambda: ct.CrossEntropyLoss(label_smoothing=0.1),
        lambda m: torch.nn.CrossEntropyLoss(label_smoothing=0.1),
        _ids,
    ),
    "cross_entropy_probs_grad": (ct.CrossEntropyLoss, lambda m: F.cross_entropy, _probs),
    "cross_entropy_probs_grad_smoothing": (
        lambda: ct.CrossEntropyLoss(label_smoothing=0.1),
        lambda m: torch.nn.CrossEntropyLoss(label_smoothing=0.1),
        _probs,
    ),
    "linear": (_linear_module, _linear_ref, _hidden),
    "bce": (ct.BCEWithLogitsLoss, lambda m: F.binary_cross_entropy_with_logits, _binary),
    "distillation": (
        lambda: ct.DistillationLoss(temperature=2.0),
        lambda m: _distill_ref,
        _teacher,
    ),
    "distillation_teacher_grad": (
        lambda: ct.DistillationLoss(temperature=2.0),
        lambda m: _distill_ref,
        _teacher_grad,
    ),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_trace_passes_its_own_check(case: str) -> None:
    """``torch.jit.trace`` with its default check, inputs that require grad: no
    ``TracingCheckError``; the traced module's values and gradients are torch's at the
    traced batch size (6) and another (9). Main: ``linear`` and ``distillation`` (and
    ``cross_entropy_probs_grad``) raise ``TracingCheckError``."""
    build, reference, make = _CASES[case]
    module = build()
    ref = reference(module)
    g = torch.Generator().manual_seed(11)
    traced = torch.jit.trace(module, make(6, g))
    for n in (6, 9):
        x, t = make(n, g)
        xr, tr = x.detach().clone().requires_grad_(), t.detach().clone()
        tr.requires_grad_(t.requires_grad)
        got, expected = traced(x, t), ref(xr, tr)  # type: ignore[operator]
        assert_close(got, expected, CLOSED_FORM)
        (gx,) = torch.autograd.grad(got, x)
        (gr,) = torch.autograd.grad(expected, xr)
        assert_close(gx, gr, CLOSED_FORM)


@pytest.mark.parametrize("case", ["linear", "distillation"])
def test_traced_under_no_grad_then_trained(case: str) -> None:
    """A trace taken under ``torch.no_grad()`` (inputs that require grad) gives the
    gradients when called with grad on: the graph does not depend on the grad mode
    of the trace (main baked "no gradient ahead" from the grad mode; guards the
    backward's recomputation when nothing was written ahead)."""
    build, reference, make = _CASES[case]
    module = build()
    ref = reference(module)
    g = torch.Generator().manual_seed(12)
    with torch.no_grad():
        traced = torch.jit.trace(module, make(6, g))
    x, t = make(6, g)
    xr = x.detach().clone().requires_grad_()
    got, expected = traced(x, t), ref(xr, t)  # type: ignore[operator]
    (gx,) = torch.autograd.grad(got, x)
    (gr,) = torch.autograd.grad(expected, xr)
    assert_close(gx, gr, CLOSED_FORM)


def test_traced_graph_called_under_no_grad() -> None:
    """The trace of a training call, run under ``torch.no_grad()``: the loss's value
    (the gradient written ahead is dropped; no error)."""
    module = _linear_module()
    g = torch.Generator().manual_seed(13)
    traced = torch.jit.trace(module, _hidden(6, g))
    h, y = _hidden(9, g)
    with torch.no_grad():
        got = traced(h, y)
        expected = _linear_ref(module)(h, y)
    assert not got.requires_grad
    assert_close(got, expected, CLOSED_FORM)


def test_traced_minus_inf_logit_under_smoothed_probability_targets() -> None:
    """A ``-inf`` logit under label smoothing (the row's loss ``inf``, as torch's):
    trace passes its own check and the traced call's loss and gradients (the target's
    ``+inf`` at the ``-inf`` logit) are ``F.cross_entropy``'s in float64. Main (stop
    59's leftovers12 merge): ``TracingCheckError`` (the targets smoothed under the
    check's ``no_grad`` no longer required grad, another graph); before it, an internal
    assert of ``index_fill_`` in the far-row pass."""
    inf = torch.inf
    z = torch.tensor([[0.0, 1.0, -inf], [0.3, 0.1, 2.0]], dtype=torch.float64)
    t = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]], dtype=torch.float64)

    def loss(zz: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(zz, tt, label_smoothing=0.1, reduction="none")

    traced = torch.jit.trace(loss, (z.clone().requires_grad_(), t.clone().requires_grad_()))
    results = []
    for f in (traced, lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1, reduction="none")):
        zz, tt = z.clone().requires_grad_(), t.clone().requires_grad_()
        rows = f(zz, tt)
        rows.sum().backward()
        results.append((rows.detach(), zz.grad, tt.grad))
    for got, expected in zip(*results, strict=True):
        assert_close(got, expected, CLOSED_FORM)
    assert results[0][2][0, 2] == inf


def test_traced_far_row_of_probability_targets() -> None:
    """A far row (logits 1e308 apart, targets 1e-300 there: the loss's common form
    overflows to ``inf``, its value 3e8) in a call of a trace taken on rows without
    one, targets that require grad: the traced call's loss is mpmath's, its gradients
    the closed forms :math:`p - t` and :math:`-\\log p` (``inf`` where
    :math:`-\\log p_c = 2\\cdot 10^{308}` overflows), the near row's float64
    ``F.cross_entropy``'s. Main: the trace skipped the far-row pass, ``inf`` (eager:
    3e8)."""
    mpmath = pytest.importorskip("mpmath")
    near_z = [[0.5, 1.0, -2.0], [0.0, 0.3, 0.1]]
    near_t = [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]

    def loss(zz: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(zz, tt, reduction="none")

    example = (
        torch.tensor(near_z, dtype=torch.float64).requires_grad_(),
        torch.tensor(near_t, dtype=torch.float64).requires_grad_(),
    )
    traced = torch.jit.trace(loss, example)
    far_z, far_t = [-1e308, 1e308, 0.0], [1e-300, 1.0 - 2e-300, 1e-300]
    z = torch.tensor([near_z[0], far_z], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([near_t[0], far_t], dtype=torch.float64, requires_grad=True)
    rows = traced(z, t)
    gz, gt = torch.autograd.grad(rows.sum(), (z, t))
    zr, tr = z[:1].detach().clone().requires_grad_(), t[:1].detach().clone().requires_grad_()
    near = F.cross_entropy(zr, tr, reduction="none")
    gzr, gtr = torch.autograd.grad(near.sum(), (zr, tr))
    with mpmath.workdps(60):
        zm = [mpmath.mpf(v) for v in far_z]
        lse = mpmath.log(sum(mpmath.exp(v - zm[1]) for v in zm)) + zm[1]
        want = float(sum(mpmath.mpf(q) * (lse - v) for q, v in zip(far_t, zm, strict=True)))
    assert_close(rows[0], near[0], CLOSED_FORM)
    assert rows[1].item() == pytest.approx(want, rel=1e-15)  # 3e8
    assert_close(gz[0], gzr[0], CLOSED_FORM)
    assert_close(gt[0], gtr[0], CLOSED_FORM)
    assert gz[1].tolist() == [0.0 - far_t[0], 1.0 - far_t[1], 0.0 - far_t[2]]
    assert gt[1].tolist() == [torch.inf, 0.0, 1e308]


def test_traced_powers_of_two_are_exact() -> None:
    """The traced far rows' :math:`2^k` (``torch.exp2`` of an integer) is ``math.ldexp``'s
    for every float64 power of two, one at a time and vectorized. Not a main failure:
    it guards the exactness the traced far-row pass assumes (a ``2^k`` one ulp off
    rounds every scaled gap)."""
    import math

    from crossent.torch._tensor_powers import power_of_two

    k = torch.arange(-1074, 1024)
    expected = [math.ldexp(1.0, int(e)) for e in k]
    assert power_of_two(k).tolist() == expected
    assert [power_of_two(e).item() for e in k[::97]] == expected[::97]
