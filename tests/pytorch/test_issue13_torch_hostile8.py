"""crossent.torch, eighth hostile pass (issue 13, branch hostiletorch8).

* ``linear_head_cross_entropy(h, head, y)`` promises ``cross_entropy(head(h), y)`` but
  reads ``head.weight`` / ``head.bias`` and never calls ``head``: a subclass's own
  ``forward`` (a LoRA layer: 1.6649 where ``head(h)``'s loss is 3.8259), forward hooks
  (1.8635 vs 2.3369), pre-hooks, the old ``torch.nn.utils.weight_norm`` (1.7796 vs
  2.4945), ``spectral_norm`` and ``prune`` (1.5234 vs 1.5479 after a step of
  ``weight_orig``) were silently left out. Now refused; parametrizations
  and subclasses without their own ``forward`` still work (guards).
* ``cross_entropy`` of unbatched ``(C,)`` logits named the batched shape in its
  target-shape errors (expected ``(1,)``, got ``(1,)``); probability targets of 0 classes
  raised PyTorch's reshape ``RuntimeError``.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.nn.utils.prune as prune  # noqa: E402

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError, InputTypeError  # noqa: E402

D = torch.float64


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, dtype=D, generator=g), torch.tensor([0, 1, 2, 4])


class _LoRALinear(torch.nn.Linear):
    """A LoRA layer as loralib writes it: an ``nn.Linear`` with its own forward."""

    def __init__(self) -> None:
        super().__init__(3, 5, dtype=D)
        self.lora_a = torch.nn.Parameter(torch.ones(2, 3, dtype=D))
        self.lora_b = torch.nn.Parameter(torch.arange(10, dtype=D).reshape(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + x @ self.lora_a.T @ self.lora_b.T


def _hooked(kind: str) -> torch.nn.Linear:
    head = torch.nn.Linear(3, 5, dtype=D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated weight_norm
        if kind == "forward_hook":
            head.register_forward_hook(lambda m, i, o: 2 * o)
        elif kind == "pre_hook":
            head.register_forward_pre_hook(lambda m, i: (2 * i[0],))
        elif kind == "weight_norm":
            head = torch.nn.utils.weight_norm(head)
            with torch.no_grad():
                head.weight_g.mul_(3)  # the weight formed again only in head's pre-hook
        elif kind == "spectral_norm":
            head = torch.nn.utils.spectral_norm(head)
        else:
            prune.l1_unstructured(head, "weight", amount=0.5)
            with torch.no_grad():
                head.weight_orig.mul_(3)  # a step: head.weight formed again in the pre-hook
    return head


def test_head_with_its_own_forward_refused() -> None:
    h, y = _data()
    head = _LoRALinear()
    assert not torch.isclose(
        torch.nn.functional.cross_entropy(head(h), y),
        torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, head.weight, head.bias), y),
    )
    with pytest.raises(InputTypeError, match=r"_LoRALinear.*own forward.*head\(input\)"):
        ct.linear_head_cross_entropy(h, head, y)


@pytest.mark.parametrize(
    "kind", ["forward_hook", "pre_hook", "weight_norm", "spectral_norm", "prune"]
)
def test_head_with_hooks_refused(kind: str) -> None:
    h, y = _data()
    head = _hooked(kind)
    with pytest.raises(InputError, match=r"hooks.*head\(input\)"):
        ct.linear_head_cross_entropy(h, head, y)


@pytest.mark.parametrize("kind", ["parametrized", "subclass"])
def test_heads_the_loss_follows(kind: str) -> None:
    """Guards: a parametrization forms ``head.weight`` on access; a subclass without its
    own forward (``NonDynamicallyQuantizableLinear``, ``nn.MultiheadAttention``'s) is
    ``F.linear``."""
    h, y = _data()
    if kind == "parametrized":
        head = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(3, 5, dtype=D))
    else:
        head = torch.nn.modules.linear.NonDynamicallyQuantizableLinear(3, 5, dtype=D)
    hf = h.clone().requires_grad_()
    got = ct.linear_head_cross_entropy(hf, head, y, label_smoothing=0.1)
    want = torch.nn.functional.cross_entropy(head(h), y, label_smoothing=0.1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    params = [p for p in head.parameters()]
    got_grads = torch.autograd.grad(got, params)
    want_grads = torch.autograd.grad(want, params)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_unbatched_target_shape_errors_name_the_unbatched_shapes() -> None:
    x = torch.randn(3, dtype=D)
    with pytest.raises(InputError, match=r"class axis 0, \(\); got \(1,\)"):
        ct.cross_entropy(x, torch.tensor([1]))
    with pytest.raises(InputError, match=r"shape of `input` \(3,\); got \(1, 3\)"):
        ct.cross_entropy(x, torch.tensor([[0.2, 0.3, 0.5]], dtype=D))


@pytest.mark.parametrize(
    ("shape", "ids"), [((3, 0), False), ((0, 0), False), ((0,), False), ((2, 0, 2), True)]
)
def test_no_classes_named(shape: tuple[int, ...], ids: bool) -> None:
    x = torch.zeros(shape, dtype=D)
    ids_shape = (shape[0], *shape[2:])
    target = torch.zeros(ids_shape, dtype=torch.long) if ids else torch.zeros(shape, dtype=D)
    with pytest.raises(InputError, match="0 classes along axis"):
        ct.cross_entropy(x, target)
