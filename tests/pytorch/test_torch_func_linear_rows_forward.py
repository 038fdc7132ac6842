r"""Forward mode through ``linear_cross_entropy(..., reduction='none')``.

On main ``jacfwd``, ``jvp`` and ``torch.autograd.forward_ad`` of the fused linear loss
with ``reduction='none'`` raised an InputError ("carries a forward-mode AD tangent ...
with reduction='none'"): its forward-mode rule formed the scalar reductions' tangent
from one backward pass, which sums the rows away. Now each row's tangent is
:math:`g_i \cdot \dot z_i` (``_ops._linear_rows_tangent``). Oracle: float64 plain
autograd's Jacobians (``torch.autograd.functional.jacobian``) of
``F.cross_entropy(F.linear(...))`` with the textbook soft cap, temperature and z-loss.
"""

from __future__ import annotations

from typing import Any

import pytest

from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")
func = pytest.importorskip("torch.func")
forward_ad = pytest.importorskip("torch.autograd.forward_ad")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

N, C, D = 5, 7, 3


def _rows_reference(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-row ``F.cross_entropy`` of the capped tempered logits plus
    :math:`\\lambda w_y \\operatorname{LSE}^2` (0 on ignored rows)."""
    z = F.linear(h, w, b)
    z = z if soft_cap is None else soft_cap * torch.tanh(z / soft_cap)
    z = z / temperature
    rows = F.cross_entropy(
        z, y, weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    kept = y != ignore_index
    w_y = torch.where(kept, 1.0 if weight is None else weight[y.clamp(min=0)], 0.0).to(z.dtype)
    return rows + z_loss * w_y * torch.logsumexp(z, 1) ** 2


_OPTIONS: list[dict[str, Any]] = [
    {},
    {"label_smoothing": 0.1, "weight": True},
    {"z_loss": 1e-2, "soft_cap": 2.0},
    {"temperature": 0.6, "label_smoothing": 0.2},
]


@pytest.mark.parametrize("options", _OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_jacfwd_of_rows(dtype: torch.dtype, options: dict[str, Any]) -> None:
    """``jacfwd`` in the hidden states, the classifier and its bias (an ignored row),
    and ``jvp`` with all three tangents, against float64 autograd."""
    g = torch.Generator().manual_seed(11)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, -100, 6, 2])
    kw = dict(options)
    if kw.pop("weight", False):
        kw["weight"] = torch.rand(C, generator=g, dtype=torch.float64) + 0.5

    def ours(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        cw = kw.get("weight")
        extra = {**kw, "weight": None if cw is None else cw.to(x.dtype)}
        return ct.linear_cross_entropy(
            x, m, y, linear_bias=c, ignore_index=-100, reduction="none", **extra
        )

    def reference(x: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return _rows_reference(x, m, c, y, **kw)

    tol = {"rtol": 1e-11, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 3e-5, "atol": 3e-6}
    args = (h.to(dtype), w.to(dtype), b.to(dtype))
    got = func.jacfwd(ours, argnums=(0, 1, 2))(*args)
    want = torch.autograd.functional.jacobian(reference, (h, w, b))
    for a, e in zip(got, want, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a.double(), e, **tol)
    tangents = tuple(torch.randn(x.shape, generator=g, dtype=torch.float64) for x in (h, w, b))
    _, got_t = func.jvp(ours, args, tuple(t.to(dtype) for t in tangents))
    _, want_t = torch.autograd.functional.jvp(reference, (h, w, b), tangents)
    torch.testing.assert_close(got_t.double(), want_t, **tol)


def test_forward_ad_and_linear_head() -> None:
    """``torch.autograd.forward_ad`` of ``linear_cross_entropy`` and
    ``jacfwd`` of ``linear_head_cross_entropy`` (a (N, d) batch), ``'none'``."""
    g = torch.Generator().manual_seed(12)
    h = torch.randn(2, N, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (2, N), generator=g)
    dh = torch.randn(h.shape, generator=g, dtype=torch.float64)
    with forward_ad.dual_level():
        out = ct.linear_cross_entropy(forward_ad.make_dual(h, dh), w, y, reduction="none")
        tangent = forward_ad.unpack_dual(out).tangent
    want = torch.autograd.functional.jvp(
        lambda x: F.cross_entropy(F.linear(x, w).movedim(-1, 1), y, reduction="none"), h, dh
    )[1]
    assert tangent is not None
    torch.testing.assert_close(tangent, want, rtol=1e-12, atol=1e-14)
    head = torch.nn.Linear(D, C).double()

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ct.linear_head_cross_entropy(x, head, y[0], reduction="none")

    def theirs(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(x), y[0], reduction="none")

    torch.testing.assert_close(
        func.jacfwd(ours)(h[0]),
        torch.autograd.functional.jacobian(theirs, h[0]),
        rtol=1e-12,
        atol=1e-14,
    )


def test_derivative_of_the_rows_tangent_names_the_loss() -> None:
    """``jacrev(jacfwd(...))`` of the rows: the InputError of the linear losses' second
    derivatives (the rows' gradient is a kernel's), naming what to use."""
    h, w = torch.randn(N, D, dtype=torch.float64), torch.randn(C, D, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4])
    with pytest.raises(InputError, match=r"linear_cross_entropy has no second derivative"):
        func.jacrev(func.jacfwd(lambda x: ct.linear_cross_entropy(x, w, y, reduction="none")))(h)
