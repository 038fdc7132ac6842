"""Hostile pass 2 over ``crossent.torch``: the bugs it found, each pinned here.

* ``linear_cross_entropy`` with a scalar reduction forms its gradients in the forward
  and saved only those: an input, classifier, bias, label or class weight changed in
  place between the forward and the backward was not noticed, and the backward
  returned the gradients of the old values. ``F.cross_entropy(F.linear(...))`` (whose
  saved tensors carry version counters) raises "modified by an inplace operation";
  so does ``reduction='none'`` (which saves its inputs). On main the scalar cases of
  ``test_linear_in_place_change_refused`` fail (no error). A bias changed in place is
  no error there (``F.linear`` does not save it): nor here, for the scalar reductions.
* The vocab-parallel losses saved neither the labels nor the class weights: changed
  in place before the backward, they were no error, and the class weights' change
  reached the label-smoothing term of the gradient through a view kept in the
  backward's state (a gradient of neither the old nor the new weights). On main
  ``test_vocab_parallel_in_place_change_refused`` fails in its 4 cases.
* Meta tensors (shape inference): ``cross_entropy`` and ``linear_cross_entropy``
  raised ``Tensor.item() cannot be called on meta tensors`` from their eager checks.
* ``linear_cross_entropy(reduction='none')``: a second derivative raised PyTorch's
  "no autograd formula was registered", not the error naming the loss.
* ``torch.jit.trace`` of ``cross_entropy`` and ``linear_cross_entropy``: PyTorch's
  internal assert ``iter->isIntList()`` (the traced batch sizes in the custom ops'
  ``int[]`` argument); ``F``'s trace.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional

from crossent.errors import InputError  # noqa: E402
from spawned import one_rank_group  # noqa: E402

from tolerances import CLOSED_FORM, assert_close  # noqa: E402


def _linear_case() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(2)
    h = torch.randn(6, 4, dtype=torch.float64, generator=g)
    w = torch.randn(9, 4, dtype=torch.float64, generator=g)
    b = torch.randn(9, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 8, -100, 3, 3, 1])
    cw = torch.rand(9, dtype=torch.float64, generator=g)
    return h, w, b, y, cw


def _bump_input(t: dict[str, torch.Tensor]) -> None:
    t["input"].mul_(2)


def _bump_weight(t: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        t["linear_weight"].add_(1)


def _bump_bias(t: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        t["linear_bias"].add_(1)


def _bump_labels(t: dict[str, torch.Tensor]) -> None:
    t["target"][0] = 5


def _bump_class_weight(t: dict[str, torch.Tensor]) -> None:
    t["weight"].mul_(3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("change", [_bump_input, _bump_weight, _bump_labels, _bump_class_weight])
def test_linear_in_place_change_refused(
    reduction: str, change: Callable[[dict[str, torch.Tensor]], None]
) -> None:
    """A tensor of the loss changed in place before the backward: autograd's error, as
    for ``F.cross_entropy(F.linear(...))`` (not the old values' gradients)."""
    h, w, b, y, cw = _linear_case()
    leaf = h.clone().requires_grad_()
    w = w.requires_grad_()
    b = b.requires_grad_()
    tensors = {"input": leaf * 1.0, "linear_weight": w, "linear_bias": b, "target": y}
    tensors["weight"] = cw
    loss = ct.linear_cross_entropy(
        tensors["input"],
        w,
        y,
        linear_bias=b,
        weight=cw,
        ignore_index=-100,
        reduction=reduction,
    ).sum()
    # The torch pair raises on every one of these changes.
    naive = F.cross_entropy(
        F.linear(tensors["input"], w, b), y, weight=cw, ignore_index=-100, reduction=reduction
    ).sum()
    change(tensors)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        naive.backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_linear_unchanged_inputs_still_differentiate() -> None:
    """The inputs saved beside the formed gradients change nothing else: the gradients
    are ``F.cross_entropy(F.linear(...))``'s (float64)."""
    h, w, b, y, cw = _linear_case()
    ours = [t.clone().requires_grad_() for t in (h, w, b)]
    ref = [t.clone().requires_grad_() for t in (h, w, b)]
    ct.linear_cross_entropy(
        ours[0], ours[1], y, linear_bias=ours[2], weight=cw, ignore_index=-100
    ).backward()
    F.cross_entropy(F.linear(*ref), y, weight=cw, ignore_index=-100).backward()
    for a, r in zip(ours, ref, strict=True):
        assert_close(a.grad, r.grad, CLOSED_FORM)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_bias_changed_in_place_as_torch(reduction: str) -> None:
    """``F.linear`` saves no bias, so the torch pair backpropagates after the bias was
    changed in place (its gradients those of the forward's values): so do the formed
    gradients (``'none'`` recomputes the logits from the bias, and refuses)."""
    h, w, b, y, _ = _linear_case()
    ours = [t.clone().requires_grad_() for t in (h, w, b)]
    ref = [t.clone().requires_grad_() for t in (h, w, b)]
    loss = ct.linear_cross_entropy(
        ours[0], ours[1], y, linear_bias=ours[2], ignore_index=-100, reduction=reduction
    )
    naive = F.cross_entropy(F.linear(*ref), y, reduction=reduction)
    with torch.no_grad():
        ours[2].add_(1)
        ref[2].add_(1)
    loss.backward()
    naive.backward()
    for a, r in zip(ours, ref, strict=True):
        assert_close(a.grad, r.grad, CLOSED_FORM)


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.cross_entropy(_meta(6, 5), _meta(6, dtype=torch.long)),
        lambda f: f.cross_entropy(_meta(6, 5), _meta(6, dtype=torch.long), reduction="none"),
        lambda f: f.cross_entropy(_meta(2, 5, 3), _meta(2, 3, dtype=torch.long), reduction="none"),
        lambda f: f.cross_entropy(_meta(6, 5), _meta(6, 5), label_smoothing=0.1),
        lambda f: f.linear_cross_entropy(_meta(6, 4), _meta(5, 4), _meta(6, dtype=torch.long)),
    ],
    ids=["labels", "labels-none", "k-dim", "probabilities", "linear"],
)
def test_meta_tensors_give_shapes(call: Callable[[object], torch.Tensor]) -> None:
    """Meta tensors (shape inference, a model built on ``device='meta'``): no data to
    check, so no check reads them, as while Dynamo traces; the shapes, dtypes and
    device are ``F``'s. On main the eager off-CPU checks called ``.item()`` on them
    (``RuntimeError: Tensor.item() cannot be called on meta tensors``)."""
    got, expected = call(ct), call(F)
    assert got.device.type == "meta"
    assert (got.shape, got.dtype) == (expected.shape, expected.dtype)


def test_meta_tensors_differentiate() -> None:
    """The meta backward gives gradients of the inputs' shapes (as ``F``'s)."""
    z = _meta(6, 5).requires_grad_()
    h, w = _meta(6, 4).requires_grad_(), _meta(5, 4).requires_grad_()
    y = _meta(6, dtype=torch.long)
    (gz,) = torch.autograd.grad(ct.cross_entropy(z, y), z)
    gh, gw = torch.autograd.grad(ct.linear_cross_entropy(h, w, y), (h, w))
    assert (gz.shape, gh.shape, gw.shape) == (z.shape, h.shape, w.shape)
    assert gz.device.type == gh.device.type == gw.device.type == "meta"


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_second_derivative_names_the_loss(reduction: str) -> None:
    """A gradient penalty through ``linear_cross_entropy``: an error naming the loss
    and ``cross_entropy(F.linear(...))``, for every reduction. On main ``'none'`` (whose
    backward recomputes the logits in a custom op without autograd) raised PyTorch's
    "no autograd formula was registered" for ``crossent.linear_cross_entropy_v4_backward``
    instead."""
    h, w, _, y, _ = _linear_case()
    h = h.requires_grad_()
    loss = ct.linear_cross_entropy(h, w.requires_grad_(), y, ignore_index=-100, reduction=reduction)
    (g,) = torch.autograd.grad(loss.sum(), h, create_graph=True)
    with pytest.raises(RuntimeError, match=r"has no second derivative.*cross_entropy\(F\.linear"):
        g.pow(2).sum().backward()


@pytest.mark.parametrize("changed", ["target", "weight"])
@pytest.mark.parametrize("loss", ["logits", "linear"])
def test_vocab_parallel_in_place_change_refused(tmp_path: object, loss: str, changed: str) -> None:
    """Labels or class weights changed in place between the forward and the backward of
    a vocab-parallel loss: autograd's error, as ``F.cross_entropy``'s (one rank)."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    h = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    tensors = {"target": torch.tensor([0, 1, 2, 3, 5]), "weight": torch.rand(6, generator=g)}
    tensors["weight"] = tensors["weight"].double()
    with one_rank_group(str(tmp_path)):
        if loss == "logits":
            out = ct.vocab_parallel_cross_entropy(
                z, tensors["target"], weight=tensors["weight"], label_smoothing=0.5
            )
        else:
            out = ct.vocab_parallel_linear_cross_entropy(
                h, w, tensors["target"], class_weight=tensors["weight"], label_smoothing=0.5
            )
        naive = F.cross_entropy(z, tensors["target"], tensors["weight"], label_smoothing=0.5)
        tensors[changed][0] = 4
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            naive.backward()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.backward()


_W = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))

_TRACED = {
    "labels": (
        lambda z, y: ct.cross_entropy(z, y, label_smoothing=0.1),
        lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
        lambda n, g: (torch.randn(n, 5, dtype=torch.float64, generator=g), _labels(n, g)),
    ),
    "k-dim": (
        lambda z, y: ct.cross_entropy(z, y, reduction="none"),
        lambda z, y: F.cross_entropy(z, y, reduction="none"),
        lambda n, g: (
            torch.randn(n, 5, 2, dtype=torch.float64, generator=g),
            torch.randint(0, 5, (n, 2), generator=g),
        ),
    ),
    "probabilities": (
        lambda z, t: ct.cross_entropy(z, t),
        lambda z, t: F.cross_entropy(z, t),
        lambda n, g: (
            torch.randn(n, 5, dtype=torch.float64, generator=g),
            torch.randn(n, 5, dtype=torch.float64, generator=g).softmax(1),
        ),
    ),
    "linear": (
        lambda h, y: ct.linear_cross_entropy(h, _W, y),
        lambda h, y: F.cross_entropy(h @ _W.T, y),
        lambda n, g: (torch.randn(n, 4, dtype=torch.float64, generator=g), _labels(n, g)),
    ),
}


def _labels(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 5, (n,), generator=g)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("case", list(_TRACED))
def test_jit_trace(case: str) -> None:
    """``torch.jit.trace`` of the losses, run at the traced batch size and another:
    ``F``'s values and gradients (float64)."""
    ours, ref, make = _TRACED[case]
    g = torch.Generator().manual_seed(8)
    traced = torch.jit.trace(ours, make(6, g))
    for n in (6, 9):
        args = make(n, g)
        x = args[0].clone().requires_grad_()
        xr = args[0].clone().requires_grad_()
        got, expected = traced(x, args[1]), ref(xr, args[1])
        assert_close(got, expected, CLOSED_FORM)
        up = torch.ones_like(got)
        (gx,) = torch.autograd.grad(got, x, up)
        (gr,) = torch.autograd.grad(expected, xr, up)
        assert_close(gx, gr, CLOSED_FORM)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace_names_the_row_at_another_size() -> None:
    """A traced graph holds the traced batch shape as a constant: a bad label of a
    batch of another size is named by its own row (not its index modulo the traced
    size: row 8 of 9 was "row 2" after a trace at 6)."""
    traced = torch.jit.trace(
        lambda z, y: ct.cross_entropy(z, y),
        (torch.zeros(6, 5), torch.zeros(6, dtype=torch.long)),
        check_trace=False,
    )
    y = torch.zeros(9, dtype=torch.long)
    y[8] = 99
    with pytest.raises((InputError, RuntimeError), match=r"row 8 has 99"):
        traced(torch.zeros(9, 5), y)
