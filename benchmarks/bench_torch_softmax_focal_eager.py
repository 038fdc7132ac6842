r"""crossent.torch.softmax_focal_loss eagerly: autograd's graph of the formula against the
closed-form gradient of the compiled path (``crossent::softmax_focal_v2``), forward +
backward, interleaved in one process (issue 13, branch ``torchleft4``)::

    PYTHONPATH=../src python bench_torch_softmax_focal_eager.py 4096 32000 --repeats 5

``autograd``: ``crossent.losses.softmax_focal_loss`` on torch tensors, its gradient by
autograd operation by operation (the eager path before); ``closed``: the custom op, its
gradient by ``_ops._focal_gradients`` (``closed_wg``: the class weights requiring
grad, their gradient formed too, as ``crossent::softmax_focal_v1``'s backward did on
every call); ``public``: ``crossent.torch.softmax_focal_loss``
as this tree has it; ``native``: a prototype (branch ``torchleft5``, not in the library)
of the same closed form in four torch passes over the logits (the rows' maxima,
:math:`e = \exp(z - \max)` in place, its row sums in float64, and in the backward
:math:`e` scaled in place by :math:`c_i / s_i`, the label entries set to
:math:`c_i\,\mathrm{expm1}(\log p_{iy_i})`), its per-row coefficients :math:`c_i` in
float64; no ignored rows, the weights' gradient not formed (``crossent.torch``'s eager
path since torchleft5: ``_focal_eager``). Prints the best time of each and the
largest error of each logit gradient in float32 ulps of the float64 truth (float64
autograd), on a 256-row slice.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import crossent.torch as ct
from crossent import losses
from crossent.torch import _ops


class _Native(torch.autograd.Function):
    """The prototype ``native``: loss and logit gradient of the softmax focal loss,
    float32 logits (N, V), class weights ``w`` (or None), ``'mean'`` or ``'sum'``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: object,
        z: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor | None,
        gamma: float,
        reduction: str,
    ) -> torch.Tensor:
        top = z.amax(1, keepdim=True)
        e = torch.sub(z, top).exp_()  # exp(z - max): p = e / s, to a few ulps
        s = e.sum(1, dtype=torch.float64)
        lpy = (z.gather(1, y[:, None]) - top)[:, 0].double() - s.log()
        m = (-torch.expm1(lpy)) ** gamma
        wy = torch.ones_like(lpy) if w is None else w.double()[y]
        total = wy.sum() if reduction == "mean" else torch.ones((), dtype=torch.float64)
        ctx.save_for_backward(e, y, lpy, m, wy, total, s)  # type: ignore[attr-defined]
        ctx.gamma = gamma  # type: ignore[attr-defined]
        return ((-wy * m * lpy).sum() / total).to(z.dtype)

    @staticmethod
    def backward(ctx: object, up: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        e, y, lpy, m, wy, total, s = ctx.saved_tensors  # type: ignore[attr-defined]
        one_minus = -torch.expm1(lpy)
        inside = one_minus > 0
        ratio = torch.where(
            inside, lpy.exp() * lpy / torch.where(inside, one_minus, 1.0), -torch.ones_like(lpy)
        )
        coef = wy * m * (1 - ctx.gamma * ratio) * (up.double() / total)  # type: ignore[attr-defined]
        grad = e.mul_((coef / s).to(e.dtype)[:, None])  # (e is not used again)
        grad.scatter_(1, y[:, None], (coef * torch.expm1(lpy)).to(grad.dtype)[:, None])
        return grad, None, None, None, None


def _variants(gamma: float, reduction: str) -> dict[str, Callable[..., torch.Tensor]]:
    return {
        "autograd": lambda z, y, w: losses.softmax_focal_loss(
            z, y, gamma=gamma, axis=1, weight=w, reduction=reduction
        ),
        "closed": lambda z, y, w: _ops.softmax_focal(z, y, w, gamma, -100, reduction),
        # The weights requiring grad: their gradient formed too, as crossent::softmax_focal_v1
        # did on every call (branch vpcompile: v2 skips it where they require none).
        "closed_wg": lambda z, y, w: _ops.softmax_focal(
            z, y, None if w is None else w.detach().requires_grad_(), gamma, -100, reduction
        ),
        "public": lambda z, y, w: ct.softmax_focal_loss(
            z, y, gamma=gamma, weight=w, reduction=reduction
        ),
        "native": lambda z, y, w: _Native.apply(z, y, w, gamma, reduction),
    }


def _ulps(got: torch.Tensor, truth: torch.Tensor) -> float:
    t32 = truth.float().abs().clamp_min(torch.finfo(torch.float32).tiny)
    ulp = (torch.nextafter(t32, torch.tensor(float("inf"))) - t32).double()
    return float(((got.double() - truth).abs() / ulp).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gamma", type=float, default=2.0)
    parser.add_argument("--reduction", default="mean")
    parser.add_argument("--no-weight", action="store_true", help="no class weights")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.rows, args.classes, generator=g) * 3
    y = torch.randint(0, args.classes, (args.rows,), generator=g)
    w = None if args.no_weight else torch.rand(args.classes, generator=g) + 0.5
    variants = _variants(args.gamma, args.reduction)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeats):
        for name, loss in variants.items():
            x = z.clone().requires_grad_()
            start = time.perf_counter()
            loss(x, y, w).backward()
            best[name] = min(best[name], time.perf_counter() - start)
            del x
    rows = min(args.rows, 256)
    x64 = z[:rows].double().requires_grad_()
    variants["autograd"](x64, y[:rows], None if w is None else w.double()).backward()
    assert x64.grad is not None
    for name, loss in variants.items():
        x = z[:rows].clone().requires_grad_()
        loss(x, y[:rows], w).backward()
        assert x.grad is not None
        print(
            f"{name:9s} {args.rows}x{args.classes} float32 gamma {args.gamma} "
            f"{args.reduction}{'' if w is None else ' weighted'}: "
            f"best of {args.repeats} {best[name] * 1e3:8.1f} ms, "
            f"logit gradient {_ulps(x.grad, x64.grad):8.1f} ulps from float64"
        )


if __name__ == "__main__":
    main()
