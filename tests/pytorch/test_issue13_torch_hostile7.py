r"""``crossent.torch`` under a hostile tester's pass (branch hostiletorch7, issue 13).

On main:

* ``sigmoid_focal_loss`` and ``SigmoidFocalLoss`` did not compile with
  ``torch.compile(..., fullgraph=True, dynamic=True)``: under ``dynamic=True`` a float
  argument, a Module's float attribute and a function's float default are symbolic, and
  the losses package's option checks call ``math.isfinite`` on ``gamma``, ``alpha`` and
  its own ``label_smoothing=0.0`` default (Dynamo: "torch.* op returned non-Tensor").
  ``cross_entropy``, ``binary_cross_entropy_with_logits``, ``softmax_focal_loss`` and
  ``distillation_loss`` compiled there already (their options by value,
  ``_arguments._by_value``). Now the focal loss passes its options by value too: one
  graph for every batch size, eager's values and gradients, the checks still raising.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
counters = pytest.importorskip("torch._dynamo.utils").counters

pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]


def _inputs(n: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 5, dtype=torch.float64, generator=g)
    t = torch.rand(n, 5, dtype=torch.float64, generator=g)
    return x, t


_OPTIONS = [{}, {"alpha": 0.3, "gamma": 1.5}, {"alpha": -1.0, "gamma": 0.5}]


_OPTION_IDS = ["defaults", "alpha-gamma", "no-alpha"]
_REDUCTIONS = ["none", "mean", "sum"]
#: The function and the Module (which hands its held options to the function:
#: ``_Loss.forward``) each at every option and every reduction, paired once each, the two
#: forms in other pairs (six of the nine pairs): the symbolic floats are the options' (a
#: Module's float, a function's argument or default) whatever the reduction, a string the
#: graph holds as a constant; each reduction's graph (the mean's division by a symbolic
#: batch size) is traced for both forms. CI time: 6 compiles, not 18 (stop 75: not 12).
_FORMS = [
    *(
        pytest.param("function", o, r, id=f"function-{i}-{r}")
        for o, i, r in zip(_OPTIONS, _OPTION_IDS, _REDUCTIONS[1:] + _REDUCTIONS[:1], strict=True)
    ),
    *(
        pytest.param("module", o, r, id=f"module-{i}-{r}")
        for o, i, r in zip(_OPTIONS, _OPTION_IDS, _REDUCTIONS, strict=True)
    ),
]


@pytest.mark.parametrize(("form", "options", "reduction"), _FORMS)
def test_sigmoid_focal_compiles_dynamic_fullgraph(
    form: str, options: dict[str, float], reduction: str
) -> None:
    if form == "module":
        module = ct.SigmoidFocalLoss(**options, reduction=reduction)

        def f(x: Any, t: Any) -> Any:
            return module(x, t)

    else:

        def f(x: Any, t: Any) -> Any:
            return ct.sigmoid_focal_loss(x, t, **options, reduction=reduction)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, dynamic=True, backend="eager")
    for n in (3, 3, 3, 6, 11):
        if n == 6:  # (the first calls may recompile while the losses package's table
            counters.clear()  # of checked options fills: a guard on its length)
        x, t = _inputs(n)
        xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        eager, ours = f(xe, t), compiled(xc, t)
        torch.testing.assert_close(ours, eager, rtol=0, atol=0)
        eager.sum().backward()
        ours.sum().backward()
        # Eager's logits' gradient at gamma > 0 is the focal twin's (branch focal2), and
        # the compiled graph's too, bit for bit (crossent::sigmoid_focal_terms_v1, branch
        # focal3; it kept autograd's of the formula, a few float64 ulps apart).
        torch.testing.assert_close(xc.grad, xe.grad, rtol=0, atol=0)
    assert counters["stats"]["unique_graphs"] == 0  # no new graph for a new batch size


def test_sigmoid_focal_dynamic_still_checks() -> None:
    """The option checks and the data checks still raise in the dynamic graph."""
    options = {"gamma": -1.0}
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x, t: ct.sigmoid_focal_loss(x, t, **options),
        fullgraph=True,
        dynamic=True,
        backend="eager",
    )
    x, t = _inputs(4)
    with pytest.raises(InputError, match="`gamma` must be"):
        compiled(x, t)
    options["gamma"] = 2.0
    x[1, 2] = float("nan")
    with pytest.raises(InputError, match=r"`inputs`.*NaN"):
        compiled(x, t)


# On main, the fused linear losses and the vocab-parallel losses, whose gradients taken
# with ``create_graph=True`` have no second derivative, raised that error only for
# ``penalty.backward()``: ``torch.autograd.grad(penalty, inputs)`` runs only the nodes on
# a path to ``inputs``, and the error node hung from new leaves, off every such path. A
# gradient penalty's gradient came out 0 (``linear_cross_entropy``: 0 and 0 for the input
# and the classifier, where ``F.cross_entropy(F.linear(...))`` gives 0.21 and 0.54 in
# norm), or, for ``vocab_parallel_cross_entropy`` of ``F.linear``'s logits, only the part
# outside the loss (0 and 0.47), silently. Now the error names the loss there too.


def _penalty_inputs() -> tuple[Any, Any, Any, Any]:
    g = torch.Generator().manual_seed(5)
    h = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True)
    return h, w, b, torch.tensor([0, 5, 2, 3])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_gradient_penalty_by_autograd_grad_raises(reduction: str) -> None:
    h, w, b, y = _penalty_inputs()
    loss = ct.linear_cross_entropy(h, w, y, linear_bias=b, reduction=reduction).sum()
    grads = torch.autograd.grad(loss, (h, w), create_graph=True)
    penalty = sum((g * g).sum() for g in grads)
    for inputs in [(h, w), (h,), (w,)]:
        with pytest.raises(RuntimeError, match="linear_cross_entropy has no second"):
            torch.autograd.grad(penalty, inputs, allow_unused=True, retain_graph=True)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_autograd_functional_jvp_raises_not_zero(reduction: str) -> None:
    """``torch.autograd.functional.jvp`` differentiates a ``create_graph`` gradient with
    respect to the upstream gradient (the double-vjp trick): the formed gradients had
    no path to it, and the tangent came out 0 (F.cross_entropy(F.linear(...)): -1.2479
    along ``h = ones`` at 'mean'; [-0.6495, -0.3950, -2.1438, -1.8031] at 'none')."""
    h, w, _, y = _penalty_inputs()
    h, w = h.detach(), w.detach()
    cases = [
        (lambda x: ct.linear_cross_entropy(x, w, y, reduction=reduction), h),
        (lambda x: ct.linear_cross_entropy(h, x, y, reduction=reduction), w),
    ]
    for loss_of, at in cases:
        with pytest.raises(RuntimeError, match="linear_cross_entropy has no second"):
            torch.autograd.functional.jvp(loss_of, at, torch.ones_like(at))


def test_vocab_parallel_gradient_penalty_by_autograd_grad_raises(tmp_path: Any) -> None:
    from spawned import one_rank_group

    h, w, b, y = _penalty_inputs()
    with one_rank_group(str(tmp_path)):
        cases = [
            (
                "vocab_parallel_cross_entropy",
                lambda: ct.vocab_parallel_cross_entropy(torch.nn.functional.linear(h, w, b), y),
            ),
            (
                "vocab_parallel_linear_cross_entropy",
                lambda: ct.vocab_parallel_linear_cross_entropy(h, w, y, bias=b),
            ),
        ]
        for name, loss in cases:
            grads = torch.autograd.grad(loss(), (h, w), create_graph=True)
            penalty = sum((g * g).sum() for g in grads)
            for inputs in [(h, w), (h,)]:
                with pytest.raises(RuntimeError, match=rf"{name} has no second"):
                    torch.autograd.grad(penalty, inputs, allow_unused=True, retain_graph=True)
        # torch.autograd.functional.jvp's double-vjp trick (its tangents were 0)
        of_hidden = [
            lambda x: ct.vocab_parallel_cross_entropy(torch.nn.functional.linear(x, w, b), y),
            lambda x: ct.vocab_parallel_linear_cross_entropy(x, w, y, bias=b),
        ]
        for (name, _), loss_of in zip(cases, of_hidden, strict=True):
            with pytest.raises(RuntimeError, match=rf"{name} has no second"):
                torch.autograd.functional.jvp(loss_of, h.detach(), torch.ones_like(h))


@pytest.mark.parametrize("teacher_requires_grad", [False, True])
@pytest.mark.parametrize("temperature", [1e-200, 1e200])
def test_distillation_host_rows_penalty_by_autograd_grad_raises(
    temperature: float, teacher_requires_grad: bool
) -> None:
    """The same for ``distillation_loss``' rows formed on the host (here: temperatures
    whose square leaves float64): ``penalty.backward()`` raised, ``torch.autograd.grad``
    of the student's logits gave a zero gradient (at T = 1e200 the loss is 0.0556 and its
    second derivative is not 0)."""
    z = torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.1, 0.2]], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([[0.0, 1.0, 2.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    v.requires_grad_(teacher_requires_grad)
    (gz,) = torch.autograd.grad(ct.distillation_loss(z, v, temperature), z, create_graph=True)
    with pytest.raises(RuntimeError, match="have no second derivative"):
        torch.autograd.grad((gz * gz).sum(), z, allow_unused=True)
