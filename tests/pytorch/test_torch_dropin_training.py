"""crossent.torch's loss modules in a training loop, against torch.nn's in the same loop.

Argument-by-argument parity is test_torch_dropin_parity.py's; here the modules are
used as training code uses them: an optimiser stepping a small model for several
steps (float64: the parameters must stay within rounding of torch's, so every step's
value and gradient agree, including the weighted mean's denominator over the ignored
rows), a hyper-parameter schedule that assigns ``loss.label_smoothing`` between steps
(eager and under ``torch.compile``), a bfloat16 ``torch.autocast`` step and a float16
``GradScaler`` step on the CPU.

These pass on main: they guard behaviour mutants break (each named in its test).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
nn = torch.nn

STEPS = 12


def _batches(
    n: int, classes: int, targets: str, ignored: int = -100
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` float64 batches of 8 rows and 5 features, each with one row labelled
    ``ignored`` (class ids) or soft targets (``'binary'``: multi-label probabilities)."""
    g = torch.Generator().manual_seed(11)
    out = []
    for i in range(n):
        x = torch.randn(8, 5, generator=g, dtype=torch.float64)
        if targets == "binary":
            t = torch.rand(8, classes, generator=g, dtype=torch.float64)
        else:
            t = torch.randint(0, classes, (8,), generator=g)
            t[i % 8] = ignored
        out.append((x, t))
    return out


def _train(
    loss: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    width: int,
    schedule: Callable[[nn.Module, int], None] | None = None,
    compile_model: bool = False,
) -> torch.Tensor:
    """SGD with momentum on ``Linear -> Tanh -> Linear(width)`` then ``loss`` (a module
    with a ``linear`` head is handed the hidden states); the final parameters, flat."""
    torch.manual_seed(3)
    body: nn.Module = nn.Sequential(nn.Linear(5, 6), nn.Tanh()).double()
    if not hasattr(loss, "linear"):
        body = nn.Sequential(body, nn.Linear(6, width).double())
    model = nn.ModuleDict({"body": body, "loss": loss})

    def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model["loss"](model["body"](x), t)

    run = torch.compile(step, backend="aot_eager", fullgraph=True) if compile_model else step
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for i, (x, t) in enumerate(batches):
        if schedule is not None:
            schedule(model["loss"], i)
        opt.zero_grad()
        run(x, t).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


_WEIGHT = torch.tensor([0.3, 1.7, 0.9, 1.2], dtype=torch.float64)
_POS = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)

#: (id, crossent module, torch.nn module, targets, width of the model's output)
_LOOPS = [
    ("ce-plain", ct.CrossEntropyLoss(), nn.CrossEntropyLoss(), "ids", 4),
    (
        "ce-ignore-valid-class",
        ct.CrossEntropyLoss(weight=_WEIGHT, ignore_index=3, reduction="sum"),
        nn.CrossEntropyLoss(weight=_WEIGHT, ignore_index=3, reduction="sum"),
        "ids-3",
        4,
    ),
    (
        "ce-weight-smoothing",
        ct.CrossEntropyLoss(weight=_WEIGHT, label_smoothing=0.1),
        nn.CrossEntropyLoss(weight=_WEIGHT, label_smoothing=0.1),
        "ids",
        4,
    ),
    (
        "bce-weight-pos-weight",
        ct.BCEWithLogitsLoss(weight=_WEIGHT, pos_weight=_POS),
        nn.BCEWithLogitsLoss(weight=_WEIGHT, pos_weight=_POS),
        "binary",
        4,
    ),
    (
        "linear-head-weight",
        ct.LinearCrossEntropyLoss(6, 4, bias=True, dtype=torch.float64, ignore_index=-100,
                                  weight=_WEIGHT),
        nn.LinearCrossEntropyLoss(6, 4, bias=True, dtype=torch.float64, ignore_index=-100,
                                  weight=_WEIGHT),
        "ids",
        4,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ours", "theirs", "targets", "width"),
    [case[1:] for case in _LOOPS],
    ids=[case[0] for case in _LOOPS],
)
def test_sgd_loop_float64_ends_where_torch_nn_ends(ours, theirs, targets, width) -> None:
    """Twelve SGD-with-momentum steps, one ignored row a batch: the parameters agree
    with torch.nn's loop to 1e-12 (the losses' rounding, carried through the steps).

    Mutants caught: ``_reduction.label_weight_sum`` counting the rows instead of
    summing their class weights (the weighted ``'mean'`` loop: parameters 0.13 apart),
    ``LinearCrossEntropyLoss.forward`` not passing the head's bias (0.97 apart).
    """
    ours, theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
    if hasattr(theirs, "linear"):
        torch.manual_seed(4)
        theirs.linear.reset_parameters()
        ours.load_state_dict(theirs.state_dict())
    batches = _batches(STEPS, width, targets, ignored=3 if targets == "ids-3" else -100)
    want = _train(theirs, batches, width=width)
    got = _train(ours, batches, width=width)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def _smoothing_schedule(loss: nn.Module, step: int) -> None:
    """Label smoothing stepped down 0.2, 0.1, 0 (each value a graph of its own under
    ``torch.compile``, as for torch.nn's module: few values, below Dynamo's recompile
    limit), ``ignore_index`` switched half-way (from class 3, each batch's marked row,
    to class 2)."""
    loss.label_smoothing = (0.2, 0.1, 0.0)[3 * step // STEPS]
    loss.ignore_index = 3 if step < STEPS // 2 else 2


@pytest.mark.parametrize("compile_model", [False, True], ids=["eager", "compiled"])
def test_options_assigned_between_steps_are_used_as_torch(compile_model) -> None:
    """A schedule assigning ``loss.label_smoothing`` and ``loss.ignore_index`` before
    each step: torch.nn reads the attributes at every call, so must crossent, also
    inside a model compiled once (``fullgraph=True``: the attribute guards recompile).

    Mutant caught: ``_Loss._held`` reading the options from a dict built on the first
    forward (the schedule ignored: parameters 1.16 apart).
    """
    batches = _batches(STEPS, 4, "ids", ignored=3)
    torch._dynamo.reset()
    want = _train(nn.CrossEntropyLoss(weight=_WEIGHT), batches, width=4,
                  schedule=_smoothing_schedule)  # fmt: skip
    got = _train(ct.CrossEntropyLoss(weight=_WEIGHT), batches, width=4,
                 schedule=_smoothing_schedule, compile_model=compile_model)  # fmt: skip
    torch._dynamo.reset()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def _low_precision_step(
    loss: nn.Module, dtype: torch.dtype, scaler: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Three float32 SGD steps of a linear model under a CPU ``torch.autocast`` region
    of ``dtype`` (its forward in ``dtype``, the loss autocast to float32 by torch), with
    a ``GradScaler`` when ``scaler``; the last loss and the final parameters."""
    torch.manual_seed(5)
    model = nn.Linear(5, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12) if scaler else None
    g = torch.Generator().manual_seed(6)
    x = torch.randn(16, 5, generator=g)
    y = torch.randint(0, 4, (16,), generator=g)
    y[3] = -100
    for _ in range(3):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            value = loss(model(x), y)
        if grad_scaler is None:
            value.backward()
            opt.step()
        else:
            grad_scaler.scale(value).backward()
            grad_scaler.step(opt)
            grad_scaler.update()
    return value.detach(), [p.detach() for p in model.parameters()]


@pytest.mark.parametrize(
    ("dtype", "scaler"),
    [(torch.bfloat16, False), (torch.float16, True)],
    ids=["autocast-bfloat16", "gradscaler-float16"],
)
def test_autocast_and_grad_scaler_steps_as_torch(dtype, scaler) -> None:
    """Inside a CPU autocast region torch computes ``cross_entropy`` in float32 from
    the low-precision logits; crossent's fused op reads them as stored and gives the
    same float32 loss and gradients, so the steps (with a GradScaler's scaled
    backward, unscale and step) end at torch's parameters.

    Mutants caught: the class-id op's backward clamping its upstream to 1 (only the
    GradScaler's scaled upstream, 2^12 / 15, exceeds it), ``label_weight_sum``
    counting the rows (both steps).
    """
    options = {"weight": _WEIGHT.float(), "label_smoothing": 0.05}
    want_loss, want = _low_precision_step(nn.CrossEntropyLoss(**options), dtype, scaler)
    got_loss, got = _low_precision_step(ct.CrossEntropyLoss(**options), dtype, scaler)
    assert got_loss.dtype == want_loss.dtype == torch.float32
    torch.testing.assert_close(got_loss, want_loss, rtol=2e-6, atol=0)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
