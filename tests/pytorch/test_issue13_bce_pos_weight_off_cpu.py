"""``binary_cross_entropy_with_logits``' ``'mean'`` off the CPU with a ``pos_weight``
above 1 on a term near the float32 range (issue 13, branch bcew1).

Off the CPU (no host read) ``mean_of_terms`` scaled only ``weight`` by a power of 2, and
:math:`\\pi t\\,\\mathrm{sp}(-x)` is formed before the weight multiplies it: ``pos_weight``
2 on logits ``-2.55e38`` (target 1) was ``inf`` for a mean of 1.28e38. Now ``pos_weight`` and
:math:`\\mathrm{sp}(x)` are scaled by one power of 2 and ``weight`` by another. There is
no GPU here: the off-CPU branch runs on the CPU, its device test
(``_reduction.reads_on_host``) patched to ``False``. Oracles: float64
``torch.nn.functional`` rounded once to float32, and the on-CPU path's bits.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from crossent.torch import _reduction  # noqa: E402

F = torch.nn.functional
X = torch.tensor([-1.5 * 2.0**127, 0.5, -1.0, 2.0])  # -2.55e38: its products exact
T = torch.tensor([1.0, 0.0, 1.0, 0.5])


@pytest.fixture
def off_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mean_of_terms`` takes its device branch (no host read) on CPU tensors."""
    monkeypatch.setattr(_reduction, "reads_on_host", lambda a, **_: False)


def _want(x: torch.Tensor, t: torch.Tensor, **weights: torch.Tensor | float) -> float:
    """The float64 loss of PyTorch rounded once to float32 (of the targets smoothed in
    float32, as crossent smooths them)."""
    wide = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}
    eps = float(wide.pop("eps", torch.tensor(0.0)))
    smoothed = (1 - eps) * t + eps / 2 if eps else t
    return F.binary_cross_entropy_with_logits(x.double(), smoothed.double(), **wide).float().item()


@pytest.mark.usefixtures("off_cpu")
@pytest.mark.parametrize(
    "weights",
    [
        {"pos_weight": torch.tensor(2.0)},
        {"pos_weight": torch.tensor([2.0, 1.0, 3.0, 1.0])},
        {"pos_weight": torch.tensor(2.0), "weight": torch.tensor([1.5, 2.0, 0.5, 1.0])},
        {"pos_weight": torch.tensor(2.0), "eps": 0.5},
    ],
    ids=["scalar", "elementwise", "with-weight", "smoothed"],
)
def test_pos_weight_term_past_the_range(weights: dict[str, torch.Tensor | float]) -> None:
    """A finite mean of terms past float32's range by ``pos_weight``: PyTorch's float64
    mean rounded once (was ``inf``), and a finite logit gradient."""
    given = dict(weights)
    eps = float(given.pop("eps", 0.0))
    x = X.clone().requires_grad_()
    loss = ct.binary_cross_entropy_with_logits(x, T, label_smoothing=eps, **given)
    want = _want(X, T, **weights)
    assert want < float("inf")
    assert loss.item() == want
    loss.backward()
    assert x.grad is not None
    assert bool(torch.isfinite(x.grad).all())


@pytest.mark.usefixtures("off_cpu")
def test_pos_weight_past_the_range_under_vmap() -> None:
    """Per-example means of the device branch (``torch.func.vmap``)."""
    xs = torch.stack([X, torch.linspace(-2.0, 2.0, 4)])
    pw = torch.tensor(2.0)
    got = torch.func.vmap(lambda a: ct.binary_cross_entropy_with_logits(a, T, pos_weight=pw))(xs)
    assert got.tolist() == [_want(row, T, pos_weight=pw) for row in xs]


def test_same_bits_as_the_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: on ordinary inputs the device branch's scalings are exact, the CPU path's
    bits (kills a scaling by anything but a power of 2, or one not undone)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(512, generator=g) * 30
    t = torch.rand(512, generator=g)
    t[:64] = t[:64].round()
    cases = [
        {"pos_weight": torch.tensor(2.5)},
        {
            "pos_weight": torch.rand(512, generator=g) * 6,
            "weight": torch.rand(512, generator=g) * 3,
        },
        {"pos_weight": torch.tensor(0.75), "weight": torch.tensor(1e20)},
        {"weight": torch.rand(512, generator=g) * 0.9},
    ]
    on = [ct.binary_cross_entropy_with_logits(x, t, label_smoothing=0.05, **c) for c in cases]
    monkeypatch.setattr(_reduction, "reads_on_host", lambda a, **_: False)
    off = [ct.binary_cross_entropy_with_logits(x, t, label_smoothing=0.05, **c) for c in cases]
    assert [v.item() for v in off] == [v.item() for v in on]


@pytest.mark.usefixtures("off_cpu")
@pytest.mark.parametrize("key", ["weight", "pos_weight"])
def test_negative_weight_named_as_given(key: str) -> None:
    """The device branch checks the weights before scaling them: the error names the
    caller's -3.0 (main named the scaled -0.75 of ``weight``)."""
    with pytest.raises(InputError, match=r"got -3\.0 at index 0"):
        ct.binary_cross_entropy_with_logits(
            torch.zeros(2), torch.ones(2), **{key: torch.tensor([-3.0, 4.0])}
        )
