"""A weighted ``'mean'`` whose weighted row loss overflows float32 but whose mean does
not (issue 13, branch torchweight1).

Class weights above 1 multiply a float32 row loss before the float64 sum: row 3 of the
batch below has :math:`w_y L = 4.25\\cdot 10^{38}`, ``inf`` in float32, so
``cross_entropy(..., weight=w)`` was ``inf`` where the float64 mean is 1.4937e38 (and
``linear_cross_entropy``, ``vocab_parallel_cross_entropy``, ``CrossEntropyLoss`` the
same; ``binary_cross_entropy_with_logits`` with ``weight`` or ``pos_weight`` 2 on a
term of 3e38 gave ``inf`` for 1.5e38). ``'mean'`` does not change when every weight is
scaled by one power of 2, which now brings the largest weight into ``[1/2, 1)`` (on the
CPU too where it is above 1). Oracles: float64 ``torch.nn.functional`` (the loss
rounded once to float32) and its autograd for the gradient; the BCE means also as exact
Fractions of the float64 terms.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402
from crossent.torch import _launch  # noqa: E402
from spawned import one_rank_group  # noqa: E402

F = torch.nn.functional
W64 = torch.linspace(0.5, 2.0, 9, dtype=torch.float64)
Y = torch.tensor([0, 1, 4, 8, -100, 2])


def _logits() -> torch.Tensor:
    """The float32 logits (as float64): rows near ``3e38/4``, one of them ignored."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(6, 9, generator=g, dtype=torch.float64) * 3e38 / 4).float().double()


def _check(loss_of, want_of, z64: torch.Tensor, *, rtol: float = 2e-7) -> None:  # type: ignore[no-untyped-def]
    """``loss_of(float32 leaf)`` is ``want_of(float64 leaf)`` rounded to float32, and its
    gradient float64 autograd's within ``rtol`` of the largest entry."""
    x = z64.float().requires_grad_()
    loss = loss_of(x)
    x64 = z64.clone().requires_grad_()
    want = want_of(x64)
    assert torch.isfinite(want.float()), want
    assert loss.dtype == torch.float32
    assert loss.item() == want.float().item()
    loss.backward()
    want.backward()
    assert x.grad is not None
    assert x64.grad is not None
    err = (x.grad.double() - x64.grad).abs().max() / x64.grad.abs().max()
    assert err <= rtol, err


def _ce64(smoothing: float = 0.0):  # type: ignore[no-untyped-def]
    return lambda x: F.cross_entropy(x, Y, weight=W64, label_smoothing=smoothing)


def test_the_weighted_row_overflows_float32() -> None:
    """The premise, and a guard: row 3's weighted loss is past float32's range (so its
    ``'none'`` row and the ``'sum'`` stay ``inf``), the mean is not."""
    rows = F.cross_entropy(_logits(), Y, weight=W64, reduction="none")
    assert rows[3] > torch.finfo(torch.float32).max
    z, w = _logits().float(), W64.float()
    assert ct.cross_entropy(z, Y, weight=w, reduction="none")[3] == float("inf")
    assert ct.cross_entropy(z, Y, weight=w, reduction="sum") == float("inf")


def test_weights_far_apart_keep_the_small_one() -> None:
    """A guard (passes on main): weights ``2e-38`` and ``1e19`` in float32, every label of
    the small one. Brought into ``[1/2, 1)`` the small weight would be 0 (a mean of 0):
    weights up to ``2**64`` this far apart stay as given, the mean is the rows' mean.
    Kills the mutant that scales every weight above 1."""
    g = torch.Generator().manual_seed(1)
    z64 = torch.randn(4, 2, generator=g, dtype=torch.float64).float().double()
    y = torch.zeros(4, dtype=torch.int64)
    w = torch.tensor([2e-38, 1e19])
    _check(
        lambda x: ct.cross_entropy(x, y, weight=w),
        lambda x: F.cross_entropy(x, y, weight=w.double()),
        z64,
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("path", ["op", "generic", "torch.func"])
def test_cross_entropy(path: str, smoothing: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The custom op over the Numba kernels, the generic path (no fused kernels), and
    ``LabelsFunction`` (under ``torch.func.grad``)."""
    w = W64.float()
    if path == "generic":
        monkeypatch.setattr(_launch, "uses_fused_kernels", lambda z, opts: False)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, Y, weight=w, label_smoothing=smoothing)

    if path != "torch.func":
        _check(ours, _ce64(smoothing), _logits())
        return
    z64 = _logits()
    grad, loss = torch.func.grad_and_value(ours)(z64.float())
    x64 = z64.clone().requires_grad_()
    want = _ce64(smoothing)(x64)
    want.backward()
    assert loss.item() == want.float().item()
    assert x64.grad is not None
    assert (grad.double() - x64.grad).abs().max() <= 2e-7 * x64.grad.abs().max()


def test_cross_entropy_module_and_bfloat16() -> None:
    _check(lambda x: ct.CrossEntropyLoss(weight=W64.float())(x, Y), _ce64(), _logits())
    # bfloat16 logits: a float32 loss, the float64 loss of the bfloat16 values rounded.
    z16 = _logits().bfloat16().double()
    _check(
        lambda x: ct.cross_entropy(x.bfloat16(), Y, weight=W64.float()),
        lambda x: F.cross_entropy(x, Y, weight=W64),
        z16,
        rtol=1e-2,
    )


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_linear_cross_entropy(chunk_size: int | None) -> None:
    """The fused linear loss, whole and in chunks of 2 rows (identity classifier)."""
    eye = torch.eye(9)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.linear_cross_entropy(
            x, eye, Y, weight=W64.float(), ignore_index=-100, chunk_size=chunk_size
        )

    _check(ours, _ce64(), _logits())


@pytest.mark.parametrize("linear", [False, True])
def test_vocab_parallel(linear: bool, tmp_path: object) -> None:
    """One gloo rank in this process: the logits loss, and the linear one."""
    w = W64.float()

    def ours(x: torch.Tensor) -> torch.Tensor:
        if linear:
            return ct.vocab_parallel_linear_cross_entropy(
                x, torch.eye(9), Y, class_weight=w, label_smoothing=0.1
            )
        return ct.vocab_parallel_cross_entropy(x, Y, weight=w, label_smoothing=0.1)

    with one_rank_group(str(tmp_path)):
        _check(ours, _ce64(0.1), _logits())


def _bce_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x64 = torch.tensor([-3e38, 1.0, 2.0, -1.0], dtype=torch.float32).double()
    return x64, torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([2.0, 1.0, 1.0, 1.0])


def _exact_mean(terms: torch.Tensor) -> float:
    """The float32 number nearest the exact mean of float64 ``terms``."""
    total = sum((Fraction(v) for v in terms.tolist()), Fraction(0))
    mean = total / len(terms)
    return torch.tensor(float(mean), dtype=torch.float64).float().item()


@pytest.mark.parametrize("which", ["weight", "pos_weight", "module"])
def test_binary_cross_entropy_with_logits(which: str) -> None:
    """``weight`` 2 or ``pos_weight`` 2 on the term ``softplus(3e38)``: 6e38 in float32,
    a mean of 1.5e38 over the four terms."""
    x64, t, v = _bce_case()
    key = "pos_weight" if which == "pos_weight" else "weight"

    def ours(x: torch.Tensor) -> torch.Tensor:
        if which == "module":
            return ct.BCEWithLogitsLoss(weight=v)(x, t)
        return ct.binary_cross_entropy_with_logits(x, t, **{key: v})

    def want(x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            x, t.double(), reduction=reduction, **{key: v.double()}
        )

    _check(ours, want, x64)
    assert ours(x64.float()).item() == _exact_mean(want(x64, "none"))


def test_binary_cross_entropy_with_logits_under_vmap() -> None:
    """Per-example means (``torch.func.vmap``): the overflowing example's is the float64
    mean rounded, and the ordinary example's too."""
    x64, t, v = _bce_case()
    xs = torch.stack([x64, torch.linspace(-2.0, 2.0, 4, dtype=torch.float64)]).float()
    got = torch.func.vmap(lambda a: ct.binary_cross_entropy_with_logits(a, t, pos_weight=v))(xs)
    for row, value in zip(xs.double(), got.tolist(), strict=True):
        want = F.binary_cross_entropy_with_logits(row, t.double(), pos_weight=v.double())
        assert value == want.float().item()
