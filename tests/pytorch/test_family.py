"""The family under torch names (generic path under autograd) and the package surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")


def _grad(fn, x, *args, **kw):
    leaf = x.detach().clone().requires_grad_(True)
    loss = fn(leaf, *args, **kw)
    (g,) = torch.autograd.grad(loss.sum(), leaf)
    return loss.detach(), g


def test_bce_with_logits_matches_torch_with_weights():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64, generator=gen) * 4
    t = torch.rand(7, 5, dtype=torch.float64, generator=gen)
    w = torch.rand(5, dtype=torch.float64, generator=gen)
    pw = torch.rand(5, dtype=torch.float64, generator=gen) + 0.5
    for reduction in ("mean", "sum", "none"):
        kw = {"weight": w, "pos_weight": pw, "reduction": reduction}
        ours, g = _grad(ct.binary_cross_entropy_with_logits, x, t, **kw)
        ref, g_ref = _grad(F.binary_cross_entropy_with_logits, x, t, **kw)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)
    module = ct.BCEWithLogitsLoss(weight=w, pos_weight=pw)
    torch.testing.assert_close(
        module(x, t), F.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw)
    )
    with pytest.raises(InputError, match="size_average"):
        ct.binary_cross_entropy_with_logits(x, t, size_average=True)


def test_sigmoid_focal_loss_matches_torchvision_formula():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, dtype=torch.float64, generator=gen) * 3
    t = (torch.rand(20, dtype=torch.float64, generator=gen) > 0.5).double()

    def torchvision_formula(inputs, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(inputs)
        ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * ((1 - p_t) ** gamma)
        return (alpha * targets + (1 - alpha) * (1 - targets)) * loss

    ours, g = _grad(ct.sigmoid_focal_loss, x, t)
    ref, g_ref = _grad(torchvision_formula, x, t)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)
    module = ct.SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="sum")
    torch.testing.assert_close(module(x, t), ref.sum(), rtol=1e-10, atol=1e-14)


def test_softmax_focal_loss_gamma_zero_is_cross_entropy_in_torch_layout():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(6, 4, 3, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 4, (6, 3), generator=gen).to(torch.int32)
    y[0, 0] = -100
    ours, g = _grad(ct.softmax_focal_loss, z, y, gamma=0.0)
    ref, g_ref = _grad(F.cross_entropy, z, y.long())
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)
    module = ct.SoftmaxFocalLoss(gamma=0.0)
    torch.testing.assert_close(module(z, y), ref, rtol=1e-12, atol=1e-14)


def test_distillation_loss_matches_the_kl_div_idiom():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(8, 5, dtype=torch.float64, generator=gen)
    v = torch.randn(8, 5, dtype=torch.float64, generator=gen)
    temp = 2.5

    def idiom(z, v):
        return temp**2 * F.kl_div(
            F.log_softmax(z / temp, 1), F.softmax(v / temp, 1), reduction="batchmean"
        )

    ours, g = _grad(ct.distillation_loss, z, v, temperature=temp)
    ref, g_ref = _grad(idiom, z, v)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(ct.DistillationLoss(temperature=temp)(z, v), ref)


def test_all_lists_the_public_names():
    public = {name for name in dir(ct) if not name.startswith("_")}
    modules = {"torch"}  # nothing else: submodules are private
    assert set(ct.__all__) == public - modules - {
        name for name in public if type(getattr(ct, name)).__name__ == "module"
    }


def test_import_crossent_still_imports_no_torch():
    code = "import sys, crossent; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
