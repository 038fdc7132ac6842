"""Issue 13, hostile pass 10 over ``crossent.torch``: gradients in targets and class
weights at 0 (and 1).

``cross_entropy`` with probability targets (or class weights) that require grad takes
plain torch operations (``_launch.target_rows``), which masked every class of target
weight :math:`w_c\\tilde t_c = 0` before the product, to keep :math:`0 \\cdot (-\\infty)`
out. The mask also removed the derivative there: the gradient of a target entry 0, or of
a class weight 0, was 0 instead of :math:`-\\log p_c` (``F.cross_entropy``'s, float64).
Now only a ``-inf`` log-probability is masked, as the generic ``weighted_term`` does.
Logits [0, 1, 2], targets [0.5, 0.5, 0]: the third target's gradient was -0.0, is 0.4076
(:math:`-\\log p_3`); class weights [1, 0, 2] under targets [0.2, 0.5, 0.3]: the second
weight's was 0.0, is 0.7038. Oracles: float64 ``F.cross_entropy``, the class's gap for a
row formed again at the float64 range's edge.

``sigmoid_focal_loss``'s gradient in targets of exactly 0 or 1 missed the derivative of the
term such a target removes (``losses._sigmoid._log_one_minus_pt``): -0.0136 where
torchvision's formula (float64 autograd, the oracle) gives -0.0813 (logit 0.3, target 1,
alpha 0.25, gamma 2).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import crossent  # noqa: E402
from crossent.torch import cross_entropy, sigmoid_focal_loss  # noqa: E402

F64 = torch.float64


def _logits_and_targets(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(13)
    z = torch.randn(*shape, generator=g, dtype=F64)
    t = torch.rand(*shape, generator=g, dtype=F64)
    t = torch.where(t < 0.4, 0.0, t)  # exact zeros in every row, the rest soft
    t.select(1, 0).fill_(0.5)  # no row of zeros only
    return z, t / t.sum(1, keepdim=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3)], ids=["2d", "kdim"])
def test_target_gradient_at_zero_entries_is_torchs(shape: tuple[int, ...], reduction: str) -> None:
    z, t = _logits_and_targets(shape)
    weight = torch.tensor([1.0, 0.5, 2.0, 0.25], dtype=F64)
    ours, theirs = t.clone().requires_grad_(), t.clone().requires_grad_()
    loss = cross_entropy(z, ours, weight=weight, reduction=reduction)
    want = F.cross_entropy(z, theirs, weight=weight, reduction=reduction)
    upstream = torch.linspace(0.5, 1.5, want.numel(), dtype=F64).reshape(want.shape)
    loss.backward(upstream)
    want.backward(upstream)
    assert bool((t == 0).any())
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14)


def test_zero_class_weight_gradient_is_torchs() -> None:
    z, t = _logits_and_targets((6, 4))
    w = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=F64)
    ours, theirs = w.clone().requires_grad_(), w.clone().requires_grad_()
    cross_entropy(z, t, weight=ours).backward()
    F.cross_entropy(z, t, weight=theirs).backward()
    assert float(theirs.grad[1]) > 0.1  # the class of weight 0 has a gradient
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14)


def test_torch_func_grad_of_zero_targets_is_torchs() -> None:
    z, t = _logits_and_targets((3, 4))
    ours = torch.func.grad(lambda u: cross_entropy(z, u))(t)
    theirs = torch.func.grad(lambda u: F.cross_entropy(z, u))(t)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_far_row_zero_target_gradient() -> None:
    """A row whose common form overflows (a gap of -2e308) is formed again
    (``_far_rows``); its zero target's gradient is :math:`-\\log p_2 = 5\\cdot10^{307}`
    (the class's gap, the log-partition being 0 there), not 0."""
    z = torch.tensor([[1e308, -1e308, 5e307]], dtype=F64)
    t = torch.tensor([[0.5, 0.5, 0.0]], dtype=F64, requires_grad=True)
    loss = cross_entropy(z, t, reduction="sum")
    loss.backward()
    assert loss.item() == 1e308
    assert float(t.grad[0, 0]) == 0.0
    assert float(t.grad[0, 2]) == 5e307


@pytest.mark.parametrize("weight", [None, (1.0, 2.0, 3.0), (1.0, 0.0, 3.0)], ids=["w-", "w+", "w0"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_minus_inf_logit_under_zero_target_gradient_is_torchs(
    weight: tuple[float, ...] | None, reduction: str
) -> None:
    """leftovers11: a ``-inf`` logit under a target of 0. The loss ignores the class (0 log 0),
    but its target's derivative is :math:`-w_c\\log p_c = +\\infty` (``F.cross_entropy``'s,
    float64): it was 0. The logits' gradient stays torch's; where torch's target gradient
    is ``0 * inf = NaN`` (a class weight of 0) ours is 0, the loss being constant in that
    entry; the class weights' is :math:`-\\sum_i t_{ic}\\log p_{ic}` with 0 log 0 = 0 (torch's
    is NaN at the classes of a ``-inf`` logit)."""
    z = torch.tensor([[0.0, 1.0, -torch.inf], [0.3, -torch.inf, 2.0]], dtype=F64)
    t = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]], dtype=F64)
    w = None if weight is None else torch.tensor(weight, dtype=F64)
    grads = []
    for fn in (cross_entropy, F.cross_entropy):
        zz, tt = z.clone().requires_grad_(), t.clone().requires_grad_()
        ww = None if w is None else w.clone().requires_grad_()
        fn(zz, tt, weight=ww, reduction=reduction).sum().backward()
        grads.append([zz.grad, tt.grad, None if ww is None else ww.grad])
    assert float(grads[0][1][0, 2]) == torch.inf  # was 0
    for ours, theirs in zip(grads[0][:2], grads[1][:2], strict=True):
        nan = torch.isnan(theirs)
        assert bool((ours[nan] == 0).all())
        torch.testing.assert_close(ours[~nan], theirs[~nan], rtol=1e-12, atol=1e-14)
    if w is not None:
        log_p = torch.log_softmax(z, 1)
        want = -(t * torch.where(t == 0, 0.0, log_p)).sum(0) / (2 if reduction == "mean" else 1)
        torch.testing.assert_close(grads[0][2], want, rtol=1e-12, atol=1e-14)


def test_minus_inf_logit_zero_target_far_row_and_torch_func() -> None:
    """The same derivative in a row formed again (``_far_rows``: a gap of -2e308) and
    through ``torch.func.grad``: ``+inf``, not 0."""
    z = torch.tensor([[1e308, -1e308, -torch.inf]], dtype=F64)
    t = torch.tensor([[0.5, 0.5, 0.0]], dtype=F64, requires_grad=True)
    loss = cross_entropy(z, t, reduction="sum")
    loss.backward()
    assert loss.item() == 1e308
    assert t.grad.tolist() == [[0.0, torch.inf, torch.inf]]
    near = torch.tensor([[0.0, 1.0, -torch.inf]], dtype=F64)
    g = torch.func.grad(lambda u: cross_entropy(near, u))(t.detach())
    assert float(g[0, 2]) == torch.inf


_NEAR_Z = ((0.0, 1.0, -torch.inf), (0.3, -torch.inf, 2.0))
_NEAR_T = ((0.5, 0.5, 0.0), (0.2, 0.0, 0.8))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch.func.jvp's import
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_minus_inf_logit_zero_target_forward_mode_and_trace() -> None:
    """leftovers12: forward-mode AD (``torch.func.jvp``/``jacfwd``,
    ``torch.autograd.forward_ad``) and ``torch.jit.trace`` took the masked product: the
    target's derivative at a ``-inf`` logit under a target of 0 was 0, is ``+inf`` as in
    eager calls (``F.cross_entropy``'s); the class weights' and logits' Jacobians are
    reverse mode's. ``jacfwd(jacrev(...))`` through the targets was PyTorch's
    ``NotImplementedError`` (no forward-mode rule); its mixed second derivative is
    ``jacrev(jacrev(...))``'s."""
    z, t = torch.tensor(_NEAR_Z, dtype=F64), torch.tensor(_NEAR_T, dtype=F64)
    w = torch.tensor([1.0, 2.0, 3.0], dtype=F64)

    def loss(zz: torch.Tensor, tt: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        return cross_entropy(zz, tt, weight=ww)

    forward = torch.func.jacfwd(loss, argnums=(0, 1, 2))(z, t, w)
    reverse = torch.func.jacrev(loss, argnums=(0, 1, 2))(z, t, w)
    assert forward[1][0, 2].item() == forward[1][1, 1].item() == torch.inf  # were 0
    for ours, theirs in zip(forward, reverse, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-15)
    tangent = torch.zeros_like(t)
    tangent[1, 1] = 1.0
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(t, tangent)
        assert float(torch.autograd.forward_ad.unpack_dual(loss(z, dual, w)).tangent) == torch.inf
    mixed = torch.func.jacfwd(torch.func.jacrev(loss, argnums=1))(z, t, w)
    torch.testing.assert_close(
        mixed, torch.func.jacrev(torch.func.jacrev(loss, argnums=1))(z, t, w)
    )
    traced = torch.jit.trace(
        lambda zz, tt: cross_entropy(zz, tt, weight=w), (z, t.clone().requires_grad_())
    )
    tt = t.clone().requires_grad_()
    traced(z, tt).backward()
    torch.testing.assert_close(tt.grad, reverse[1], rtol=1e-14, atol=1e-15)


def _torchvision_focal(
    x: torch.Tensor, t: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """``torchvision.ops.sigmoid_focal_loss``'s formula (``reduction='none'``), float64."""
    p = torch.sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none") * (1 - p_t) ** gamma
    return loss if alpha < 0 else (alpha * t + (1 - alpha) * (1 - t)) * loss


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 0.5)])
def test_sigmoid_focal_target_gradient_at_hard_targets(alpha: float, gamma: float) -> None:
    """The focal loss's gradient in targets of exactly 0 and 1 (log-space
    :math:`\\log(1 - p_t)`, ``losses._sigmoid._edge_ratio``): the removed term's derivative
    was missing (-0.0136 for -0.0813 at the first 1 below), on ``crossent.torch`` and on
    the generic function of torch tensors alike."""
    x = torch.tensor([0.3, -1.7, 2.5, 0.9, -0.4, 4.0], dtype=F64)
    t = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.3, 1.0], dtype=F64)
    theirs = t.clone().requires_grad_()
    _torchvision_focal(x, theirs, alpha, gamma).sum().backward()
    for loss in (
        lambda u: sigmoid_focal_loss(x, u, alpha, gamma, "sum"),
        lambda u: crossent.sigmoid_focal_loss(
            x, u, gamma=gamma, alpha=None if alpha < 0 else alpha, reduction="sum"
        ),
    ):
        ours = t.clone().requires_grad_()
        loss(ours).backward()
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-15)
