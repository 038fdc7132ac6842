"""Hostile round (issue 13, branch hostiletorch3): class weights near the ends of the
float32 range under ``'mean'``, and option values that crashed without an InputError.

Off the CPU ``mean_scaled_weight`` read nothing on the host and scaled nothing, so CUDA
weights of ``1e-40`` or ``1e38`` still gave the NaN gradient or NaN/``inf`` loss that the
CPU had lost (issue 13, branch leftovers14): the ``off_cpu`` cases take that branch on
the CPU (``_reduction.reads_on_host`` patched to ``False``: every device branch).

Oracle: ``torch.nn.functional.cross_entropy`` in float64 on the same (float32-rounded)
logits, hidden states and weights.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError, InputTypeError  # noqa: E402
from crossent.torch import _reduction  # noqa: E402

BRANCHES = ["cpu", "off_cpu"]


def _take(branch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``'off_cpu'``: the branch that CUDA (any device but the CPU) takes eagerly."""
    if branch == "off_cpu":
        monkeypatch.setattr(_reduction, "reads_on_host", lambda a, **_: False)


def _case(scale: float) -> tuple:
    g = torch.Generator().manual_seed(3)
    h = torch.randn(6, 3, generator=g)
    linear_weight = torch.randn(5, 3, generator=g)
    weight = (torch.rand(5, generator=g) + 0.5) * scale  # float32: 1e-40 is subnormal
    y = torch.tensor([0, 1, -100, 3, 4, 2])
    return h, linear_weight, weight, y


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize("loss", ["cross_entropy", "linear_cross_entropy"])
@pytest.mark.parametrize("scale", [1e-40, 1e38])
def test_mean_with_extreme_class_weights_is_the_float64_mean(
    loss: str, scale: float, branch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: cross_entropy's gradient was NaN at 1e-40 (1/sum(w) overflowed float32)
    # and its loss NaN at 1e38 (inf/inf); linear_cross_entropy's loss was inf at both;
    # the float64 means are about 2 and 3. Off the CPU so until branch leftovers14.
    _take(branch, monkeypatch)
    h, linear_weight, weight, y = _case(scale)
    h.requires_grad_()
    options = {"weight": weight, "label_smoothing": 0.1, "ignore_index": -100}
    if loss == "cross_entropy":
        ours = ct.cross_entropy(F.linear(h, linear_weight), y, **options)
    else:
        ours = ct.linear_cross_entropy(h, linear_weight, y, **options)
    (grad,) = torch.autograd.grad(ours, h)
    h64 = h.detach().double().requires_grad_()
    options["weight"] = weight.double()
    exact = F.cross_entropy(F.linear(h64, linear_weight.double()), y, **options)
    (grad64,) = torch.autograd.grad(exact, h64)
    assert 1.0 < float(exact.detach()) < 5.0
    torch.testing.assert_close(ours.double(), exact, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-5, atol=1e-7)


def test_mean_of_weights_scaled_by_a_power_of_two_keeps_its_bits() -> None:
    # Guards the fix's exactness: weights 2**100 times others (rescaled by the fix,
    # exact on main) give the same mean and gradient bit for bit (a rescaling by
    # 1/max(w), not a power of 2, rounds every weight again and fails here).
    g = torch.Generator().manual_seed(5)
    z, weight = torch.randn(64, 7, generator=g), torch.rand(7, generator=g) + 0.1
    y = torch.randint(0, 7, (64,), generator=g)
    y[::5] = -100
    results = []
    for w in (weight, weight * 2.0**100):
        x = z.clone().requires_grad_()
        mean = ct.cross_entropy(x, y, weight=w, label_smoothing=0.1, z_loss=1e-3)
        results.append((mean, *torch.autograd.grad(mean, x)))
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_off_cpu_scaling_of_ordinary_weights_keeps_the_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ordinary weights (largest 2.77: scaled by 1/4 off the CPU, left alone on it) give
    # the same mean and gradient bit for bit on both branches; also under vmap (one
    # weight vector per example). Kills a scaling by 1/max(w), not a power of 2.
    g = torch.Generator().manual_seed(5)
    z, weight = torch.randn(64, 7, generator=g), torch.rand(7, generator=g) * 3 + 0.2
    y = torch.randint(0, 7, (64,), generator=g)
    y[::5] = -100
    weights = torch.stack([weight, weight * 7.0, weight / 3.0])

    def loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, y, weight=w, label_smoothing=0.1, z_loss=1e-3)

    results = []
    for branch in BRANCHES:
        _take(branch, monkeypatch)
        x = z.clone().requires_grad_()
        mean = loss(x, weight)
        batched = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(z, weights)
        results.append((mean, *torch.autograd.grad(mean, x), batched))
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_ignore_index_beyond_int64_is_an_input_error() -> None:
    # Before: a RuntimeError from the custom op's schema (int64 argument).
    z = torch.randn(3, 4)
    with pytest.raises(InputError, match="ignore_index"):
        ct.cross_entropy(z, torch.tensor([0, 1, 2]), ignore_index=2**70)


def test_sigmoid_focal_alpha_none_is_an_input_error() -> None:
    # Before: TypeError "'<' not supported between instances of 'NoneType' and 'int'".
    x = torch.randn(2, 3)
    with pytest.raises(InputError, match="alpha"):
        ct.sigmoid_focal_loss(x, torch.rand(2, 3), alpha=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ct.cross_entropy(x, torch.tensor([0, 1, 2, 3])),
        lambda x: ct.binary_cross_entropy_with_logits(x, torch.rand(4, 5)),
    ],
    ids=["cross_entropy", "binary_cross_entropy_with_logits"],
)
def test_sparse_input_is_an_input_type_error(call) -> None:  # type: ignore[no-untyped-def]
    # Before: cross_entropy raised RuntimeError "unsupported memory format option
    # Contiguous" (found by hostiletorch3, fixed by the lead); now _xp.check_dense's
    # InputTypeError, as binary_cross_entropy_with_logits already gave (a guard there).
    with pytest.raises(InputTypeError, match=r"is a sparse tensor \(layout torch\.sparse_coo\)"):
        call(torch.randn(4, 5).to_sparse())


@pytest.mark.parametrize("scale", [1.5e-40, 3e-10, 2.77, 4e20, 9e37])
def test_scaling_in_float32_keeps_the_bits_of_float64(scale: float) -> None:
    # MPS has no float64: there the power of 2 is applied in float32 as two factors (each
    # at most 2^75, a normal float32). Over float32 weights from subnormal to near the top,
    # including entries far below the largest, the two float32 factors give the bits of
    # one float64 factor. Before (lead61) an MPS device would have raised on the float64
    # cast; a single float32 factor 2^-e overflows for the subnormal weights (2^133).
    g = torch.Generator().manual_seed(11)
    weight = torch.rand(9, generator=g) * scale
    weight[0] = scale
    weight[1] = scale * 2.0**-20
    narrow = _reduction.power_of_two_scaled(weight, torch.float32)
    wide = _reduction.power_of_two_scaled(weight, torch.float64)
    assert torch.equal(narrow, wide)
    assert 0.5 <= float(wide.max()) < 1.0
