r"""``crossent.torch``'s family under ``torch.compile(fullgraph=True)``: the gaps left
after the last stop.

On main:

* ``softmax_focal_loss`` did not compile with ``fullgraph=True``: its checks read
  values while Dynamo traced ("Could not guard on data-dependent expression"). Now
  the eager call runs in the custom op ``crossent::softmax_focal_v2`` (its checks at
  run time): eager's loss bit for bit, Inductor too; its gradients by their closed
  forms (``_ops._focal_gradients``), within float rounding of eager's autograd (and
  closer to the truth: ``test_torch_explicit_backward``).
* ``binary_cross_entropy_with_logits`` whose targets, weight or pos_weight require a
  gradient broke the graph (Dynamo refuses ``BinaryFunction``'s custom ``jvp``). Now
  ``crossent::sigmoid_ce_v1`` takes them too, its backward giving their gradients by
  ``crossent::sigmoid_ce_v1_input_grads`` (the eager backward's closed forms): checked by
  ``gradcheck`` against float64 ``torch.nn.functional`` and equal to eager's.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]


def _focal_inputs(dtype: torch.dtype, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
    g = torch.Generator().manual_seed(7)
    z = (3 * torch.randn(*shape, dtype=torch.float64, generator=g)).to(dtype)
    batch = (shape[0], *shape[2:])
    y = torch.randint(0, shape[1], batch, generator=g)
    y.reshape(-1)[1] = -100
    w = torch.rand(shape[1], dtype=torch.float64, generator=g).to(dtype) + 0.25
    return z, y, w


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_focal_compiles_fullgraph_as_eager(reduction: str, backend: str) -> None:
    if backend == "inductor" and reduction != "mean":
        pytest.skip("one Inductor case (its compile is slow); the op is opaque to it")
    for dtype, shape in ((torch.float32, (5, 4)), (torch.float64, (3, 4, 2))):
        z, y, w = _focal_inputs(dtype, shape)

        def f(z: Any, y: Any, w: Any) -> Any:
            return ct.softmax_focal_loss(z, y, gamma=2.0, weight=w, reduction=reduction)

        torch._dynamo.reset()
        compiled = torch.compile(f, fullgraph=True, backend=backend)
        ze, zc = z.clone().requires_grad_(), z.clone().requires_grad_()
        we, wc = w.clone().requires_grad_(), w.clone().requires_grad_()
        eager, ours = f(ze, y, we), compiled(zc, y, wc)
        assert ours.dtype == eager.dtype
        assert ours.shape == eager.shape
        torch.testing.assert_close(ours, eager, rtol=0, atol=0)
        upstream = torch.linspace(0.5, 2.0, eager.numel(), dtype=dtype).reshape(eager.shape)
        eager.backward(upstream)
        ours.backward(upstream)
        # The closed forms, not autograd of the eager graph: float rounding apart (the
        # accuracy against a float64 oracle: test_torch_explicit_backward).
        tol = (
            {"rtol": 1e-4, "atol": 1e-6}
            if dtype == torch.float32
            else {"rtol": 1e-12, "atol": 1e-15}
        )
        torch.testing.assert_close(zc.grad, ze.grad, **tol)
        torch.testing.assert_close(wc.grad, we.grad, **tol)


def test_softmax_focal_compiled_checks_and_oracle() -> None:
    """The checks run at run time (a label out of range named by its row), and the
    compiled loss of ``gamma=0`` is float64 ``F.cross_entropy`` (the independent
    oracle), its gradient too; an int32 target and no weight take the op as well."""
    z, y, w = _focal_inputs(torch.float64, (6, 5))

    def f(z: Any, y: Any) -> Any:
        return ct.softmax_focal_loss(z, y, gamma=0.0, weight=w)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    zc, zf = z.clone().requires_grad_(), z.clone().requires_grad_()
    ours, truth = compiled(zc, y.to(torch.int32)), F.cross_entropy(zf, y, weight=w)
    torch.testing.assert_close(ours, truth, rtol=1e-13, atol=0)
    ours.backward()
    truth.backward()
    torch.testing.assert_close(zc.grad, zf.grad, rtol=1e-12, atol=1e-15)
    bad = y.clone()
    bad[3] = 5
    with pytest.raises(InputError, match=r"row 3 has 5"):
        compiled(z, bad)


def test_softmax_focal_op_passes_opcheck() -> None:
    _ops = pytest.importorskip("crossent.torch._ops")
    z, y, w = _focal_inputs(torch.float32, (5, 4))
    for reduction in ("mean", "none"):
        args = (z.clone().requires_grad_(), y, w.clone().requires_grad_(), 2.0, -100, reduction)
        torch.library.opcheck(_ops.softmax_focal, args)
        torch.library.opcheck(_ops.softmax_focal, (z, y.clamp(min=0), None, 1.5, None, reduction))


def _binary_inputs(dtype: torch.dtype) -> tuple[Any, Any, Any, Any]:
    g = torch.Generator().manual_seed(11)
    x = (2 * torch.randn(3, 4, dtype=torch.float64, generator=g)).to(dtype)
    t = (0.1 + 0.8 * torch.rand(3, 4, dtype=torch.float64, generator=g)).to(dtype)
    w = (0.5 + torch.rand(4, dtype=torch.float64, generator=g)).to(dtype)
    pw = (0.5 + torch.rand(4, dtype=torch.float64, generator=g)).to(dtype)
    return x, t, w, pw


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_grad_requiring_targets_and_weights_compile_fullgraph(reduction: str) -> None:
    """Targets, weight and pos_weight that require grad: compiled with ``fullgraph``,
    gradcheck of all four (finite differences) passes, the gradients are those of
    the float64 torch formula and eager's bit for bit."""
    x, t, w, pw = _binary_inputs(torch.float64)

    def f(x: Any, t: Any, w: Any, pw: Any) -> Any:
        return ct.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    ours = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    eager = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    truth = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    upstream = torch.ones(()) if reduction != "none" else torch.linspace(0.5, 2, 12).reshape(3, 4)
    upstream = upstream.to(torch.float64)
    loss = compiled(*ours)
    torch.testing.assert_close(loss, f(*eager), rtol=0, atol=0)
    loss.backward(upstream)
    f(*eager).backward(upstream)
    # float64 torch's formula (F.binary_cross_entropy_with_logits has no weight gradient)
    xt, tt, wt, pwt = truth
    reference = -wt * (pwt * tt * F.logsigmoid(xt) + (1 - tt) * F.logsigmoid(-xt))
    reference = {"mean": reference.mean(), "sum": reference.sum(), "none": reference}[reduction]
    torch.testing.assert_close(loss, reference, rtol=1e-13, atol=0)
    reference.backward(upstream)
    for a, b, c in zip(ours, eager, truth, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
        torch.testing.assert_close(a.grad, c.grad, rtol=1e-12, atol=1e-15)
    inputs = tuple(a.clone().requires_grad_() for a in (x, t, w, pw))
    assert torch.autograd.gradcheck(compiled, inputs)


def test_binary_target_only_grad_compiles_with_smoothing_and_checks() -> None:
    """A target alone requiring grad (label smoothing; float32 logits): compiled as
    eager, the target's gradient float64 ``F``'s of the smoothed target (within
    float32 rounding), and a target out of [0, 1] still an InputError at run time."""
    x, t, _, _ = _binary_inputs(torch.float32)
    eps = 0.2

    def f(x: Any, t: Any) -> Any:
        return ct.binary_cross_entropy_with_logits(x, t, label_smoothing=eps)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    tc, te = t.clone().requires_grad_(), t.clone().requires_grad_()
    ours, eager = compiled(x, tc), f(x, te)
    torch.testing.assert_close(ours, eager, rtol=0, atol=0)
    ours.backward()
    eager.backward()
    torch.testing.assert_close(tc.grad, te.grad, rtol=0, atol=0)
    t64 = t.double().requires_grad_()
    F.binary_cross_entropy_with_logits(x.double(), (1 - eps) * t64 + eps / 2).backward()
    torch.testing.assert_close(tc.grad.double(), t64.grad, rtol=2e-6, atol=1e-9)
    bad = t.clone()
    bad[0, 1] = 1.25
    with pytest.raises(InputError, match=r"`target` must be probabilities .* index \(0, 1\)"):
        compiled(x, bad.requires_grad_())


def test_binary_input_grads_op_passes_opcheck() -> None:
    _ops = pytest.importorskip("crossent.torch._ops")
    x, t, w, pw = _binary_inputs(torch.float64)
    for reduction in ("mean", "none"):
        args = tuple(a.clone().requires_grad_() for a in (x, t, w, pw))
        torch.library.opcheck(_ops.sigmoid_ce, (*args, 0.1, reduction))
        target = t.clone().requires_grad_()
        torch.library.opcheck(_ops.sigmoid_ce, (x, target, None, None, 0.0, reduction))
        up = torch.ones(() if reduction == "mean" else x.shape, dtype=x.dtype)
        for needs in ([True, True, True], [True, False, False], [False, False, True]):
            torch.library.opcheck(
                _ops.sigmoid_ce_input_grads, (up, x, t.detach(), w, pw, 0.1, reduction, needs)
            )
        torch.library.opcheck(
            _ops.sigmoid_ce_input_grads,
            (up, x, t.detach(), None, None, 0.0, reduction, [True, False, False]),
        )


@pytest.mark.parametrize("changed", ["input", "linear_weight"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_compiled_scalar_linear_loss_refuses_inputs_changed_in_place(
    reduction: str, changed: str
) -> None:
    """Compiled ``F.cross_entropy(F.linear(...))`` raises autograd's version-counter
    error when its input or classifier was changed in place before ``backward``, as
    the eager one does (and ours eagerly). Ours compiled returned the gradients of the
    old values (on main): its backward graph read only the formed gradients, so
    AOTAutograd saved nothing else. Unchanged, the compiled gradients are eager's."""
    g = torch.Generator().manual_seed(3)
    h0 = torch.randn(6, 5, generator=g)
    w0 = torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 1, 2, 3, 1, -100])

    def ours(h: Any, w: Any) -> Any:
        return ct.linear_cross_entropy(h, w, y, ignore_index=-100, reduction=reduction)

    def torchs(h: Any, w: Any) -> Any:
        return F.cross_entropy(F.linear(h, w), y, reduction=reduction)

    torch._dynamo.reset()
    for f in (torchs, ours):
        compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = compiled(h, w)
        with torch.no_grad():  # (as an optimizer step changes a leaf)
            (h if changed == "input" else w).add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            (2.5 * loss).backward()
    ce, cc = (
        [a.clone().requires_grad_() for a in (h0, w0)],
        [a.clone().requires_grad_() for a in (h0, w0)],
    )
    (2.5 * ours(*ce)).backward()
    (2.5 * torch.compile(ours, fullgraph=True, backend="aot_eager")(*cc)).backward()
    for a, b in zip(cc, ce, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


@pytest.mark.parametrize("value", [1.5, "-100", True, -100.0], ids=repr)
@pytest.mark.parametrize("call", ["cross_entropy", "linear", "module", "focal"])
def test_ignore_index_of_a_wrong_type_is_a_type_error(call: str, value: object) -> None:
    """A wrong Python type of ``ignore_index`` is an InputTypeError naming the argument
    and the value in every family wrapper, as the NumPy API's (on main: InputError in
    all but ``softmax_focal_loss``)."""
    from crossent.errors import InputTypeError

    z, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    calls = {
        "cross_entropy": lambda: ct.cross_entropy(z, y, ignore_index=value),
        "linear": lambda: ct.linear_cross_entropy(
            torch.randn(3, 5), torch.randn(4, 5), y, ignore_index=value
        ),
        "module": lambda: ct.CrossEntropyLoss(ignore_index=value)(z, y),
        "focal": lambda: ct.softmax_focal_loss(z, y, ignore_index=value),
    }
    with pytest.raises(
        InputTypeError, match=rf"`ignore_index` must be an integer or None; got {value!r}"
    ):
        calls[call]()
