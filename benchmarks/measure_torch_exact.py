"""Float32 error of crossent.torch's generic paths, in float32 ulps against float64 truth.

    python benchmarks/measure_torch_exact.py [--src PATH] [--only probs,linear,vp]

Issue 13 follow-up. For each hard case (random, near-ties, huge spreads, cancelling
``p - t``, V = 2, large V) the per-row loss and the gradient of float32 inputs, each
entry's error in ulps of float32 at the float64 truth, worst and median (and the 99th
percentile for the classifier's gradients, whose near-zero entries are sums that cancel);
beside them torch eager float32 on the same data. ``--src`` imports crossent from
another tree (main's, side by side).

The truth (:func:`oracle`) is float64 with the formulas that keep every digit:
:math:`\\ell = \\operatorname{log1p}(\\sum_{c \\ne k} e^{\\sigma_c})` (``k`` the row's
argmax), the loss :math:`\\sum_c t_c(\\ell - \\sigma_c)` (no cancellation), the label's
entry :math:`\\operatorname{expm1}(\\sigma_y - \\ell)` and the cap's chain rule
:math:`\\operatorname{sech}^2(z/s)`; torch's float64 autograd loses them at extreme
confidence (a loss of 1e-16 comes out 0).

* ``probs``: ``cross_entropy`` with probability targets, no soft-cap;
* ``linear``: ``linear_cross_entropy`` with ``soft_cap=30`` (and without), reductions
  ``'none'`` (backward recomputes) and ``'mean'`` (gradients formed in the forward).
  Case ``identity``: ``W = I``, so the logits are ``h`` exactly and ``dh`` is
  ``dL/dz`` exactly: the error of the elementwise part alone; the other cases include
  the float32 matrix products' rounding, the floor that the naive form shares;
* ``vp``: the vocab-parallel losses on a one-rank gloo group, with and without soft-cap.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the name everyone reads

CAP = 30.0

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # for :func:`oracle`


def _unit(truth: torch.Tensor) -> torch.Tensor:
    info = torch.finfo(torch.float32)
    magnitude = truth.abs().clamp_min(info.tiny)
    return (torch.exp2(torch.floor(torch.log2(magnitude))) * info.eps).clamp_min(
        info.tiny * info.eps
    )


def ulps(got: torch.Tensor, truth: torch.Tensor, q: float | None = None) -> tuple[float, float]:
    """Worst (or the ``q`` quantile) and median error of ``got`` in float32 ulps at ``truth``."""
    r = ((got.double() - truth).abs() / _unit(truth)).reshape(-1)
    top = float(r.max()) if q is None else float(torch.quantile(r[:1_000_000], q))
    return top, float(r.median())


def oracle(
    z: torch.Tensor, target: torch.Tensor, cap: float | None, upstream: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 per-row losses and ``upstream_i dL_i/dz_i`` (labels or probabilities): the
    tests' oracle (``tests/pytorch/test_issue13_torch_exact.py``), imported once crossent
    is (``--src``)."""
    from pytorch.test_issue13_torch_exact import _oracle

    return _oracle(z, target, cap, upstream)


def _row(name: str, **cols: tuple[float, float]) -> None:
    parts = [f"{k} {w:9.3g} / {m:6.3g}" for k, (w, m) in cols.items()]
    print(f"  {name:<22s}" + " | ".join(parts), flush=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ probability targets


def _prob_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = _gen(1)
    out = {}
    n, c = 64, 1000
    t_rand = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) * 3, -1)
    out["random"] = (torch.randn(n, c, generator=g) * 3, t_rand.float())
    out["near_tie"] = (5 + torch.randn(n, c, generator=g) * 1e-5, t_rand.float())
    out["huge_spread"] = (torch.randn(n, c, generator=g) * 300, t_rand.float())
    z = torch.randn(n, c, generator=g) * 3
    out["cancel t=softmax(z)"] = (z, torch.softmax(z.double(), -1).float())
    zc = torch.randn(n, c, generator=g) * 20
    out["cancel peaked"] = (zc, torch.softmax(zc.double(), -1).float())
    z2 = torch.randn(4096, 2, generator=g) * 8
    t2 = torch.rand(4096, 1, generator=g, dtype=torch.float64)
    out["V=2"] = (z2, torch.cat([t2, 1 - t2], 1).float())
    zl = torch.randn(8, 32000, generator=g) * 3
    out["large_V"] = (zl, torch.softmax(torch.randn(8, 32000, generator=g) * 3, -1))
    return out


def measure_probs(ct) -> None:
    print("cross_entropy, probability targets, float32, no soft_cap (ulps: worst / median)")
    for name, (z, t) in _prob_cases().items():
        u = torch.rand(z.shape[0], generator=_gen(2))
        truth, grad = oracle(z, t, None, u)
        res = {}
        for label, fn in (("crossent", ct.cross_entropy), ("torch", F.cross_entropy)):
            zz = z.clone().requires_grad_(True)
            loss = fn(zz, t, reduction="none")
            (loss * u).sum().backward()
            res[label + " loss"] = ulps(loss.detach(), truth)
            res[label + " grad"] = ulps(zz.grad, grad)
        _row(name, **res)


# ------------------------------------------------------------------ linear cross-entropy


def _linear_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = _gen(3)
    out = {}
    n, d, v = 256, 256, 4096
    zi = torch.randn(n, 1024, generator=g) * 25
    out["identity z~25"] = (zi, torch.eye(1024), torch.randint(0, 1024, (n,), generator=g))
    zi = torch.randn(n, 1024, generator=g) * 100
    out["identity z~100"] = (zi, torch.eye(1024), torch.randint(0, 1024, (n,), generator=g))
    zi = torch.randn(4096, 2, generator=g) * 40
    out["identity V=2"] = (zi, torch.eye(2), torch.randint(0, 2, (4096,), generator=g))
    h = torch.randn(n, d, generator=g)
    for scale in (10.0, 60.0):
        w = torch.randn(v, d, generator=g) * (scale / d**0.5)
        out[f"random z~{scale:g}"] = (h, w, torch.randint(0, v, (n,), generator=g))
    w0 = torch.randn(1, d, generator=g) * (20 / d**0.5)
    w = w0 + torch.randn(v, d, generator=g) * 1e-3
    out["near_tie"] = (h, w, torch.randint(0, v, (n,), generator=g))
    w2 = torch.randn(2, d, generator=g) * (40 / d**0.5)
    out["V=2"] = (torch.randn(2048, d, generator=g), w2, torch.randint(0, 2, (2048,), generator=g))
    wl = torch.randn(32000, 128, generator=g) * (30 / 128**0.5)
    hl = torch.randn(64, 128, generator=g)
    out["large_V"] = (hl, wl, torch.randint(0, 32000, (64,), generator=g))
    return out


def _linear_truth(h, w, y, cap, reduction, u):
    h64, w64 = h.double(), w.double()
    if reduction == "mean":
        u = torch.full((h.shape[0],), 1.0 / h.shape[0], dtype=torch.float64)
    loss, g = oracle(h64 @ w64.T, y, cap, u)
    loss = loss.mean() if reduction == "mean" else loss
    return loss, g @ w64, g.T @ h64


def _linear_naive(h, w, y, cap, reduction, u):
    h = h.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    z = h @ w.T
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    loss = F.cross_entropy(z, y, reduction=reduction)
    (loss * u if reduction == "none" else loss).sum().backward()
    return loss.detach(), h.grad, w.grad


def _linear_ours(fn, h, w, y, cap, reduction, u):
    h = h.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    loss = fn(h, w, y, soft_cap=cap, reduction=reduction)
    (loss * u if reduction == "none" else loss).sum().backward()
    return loss.detach(), h.grad, w.grad


def _compare(name, ours, naive, truth, label) -> None:
    res = {}
    for who, got in ((label, ours), ("naive", naive)):
        for part, a, b in zip(("loss", "dh", "dW"), got, truth, strict=True):
            q = None if part == "loss" or name.startswith("identity") else 0.99
            if part == "dW" and name.startswith("identity"):
                q = 0.99
            res[f"{who} {part}"] = ulps(a, b, q)
    _row(name, **res)


def measure_linear(ct) -> None:
    print("(dh, dW: worst or 99th percentile / median; identity: dh = dL/dz, worst)")
    for cap in (CAP, None):
        for reduction in ("none", "mean"):
            print(f"linear_cross_entropy float32, soft_cap={cap}, reduction={reduction!r}")
            for name, (h, w, y) in _linear_cases().items():
                u = torch.rand(h.shape[0], generator=_gen(4))
                truth = _linear_truth(h, w, y, cap, reduction, u)
                ours = _linear_ours(ct.linear_cross_entropy, h, w, y, cap, reduction, u)
                naive = _linear_naive(h, w, y, cap, reduction, u)
                _compare(name, ours, naive, truth, "ce")


# ------------------------------------------------------------------ vocab-parallel


def measure_vp(ct) -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        path = os.path.join(tempfile.mkdtemp(), "pg")
        dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
    for cap in (CAP, None):
        print(f"vocab_parallel_cross_entropy (1 rank) float32, soft_cap={cap}, 'none'")
        for name, (h, w, y) in _linear_cases().items():
            z = (h.double() @ w.double().T).float()
            u = torch.rand(z.shape[0], generator=_gen(5))
            truth, grad = oracle(z, y, cap, u)
            res = {}
            zz = z.clone().requires_grad_(True)
            loss = ct.vocab_parallel_cross_entropy(zz, y, soft_cap=cap, reduction="none")
            (loss * u).sum().backward()
            res["vp loss"] = ulps(loss.detach(), truth)
            res["vp grad"] = ulps(zz.grad, grad)
            zt = z.clone().requires_grad_(True)
            zt_c = zt if cap is None else cap * torch.tanh(zt / cap)
            loss = F.cross_entropy(zt_c, y, reduction="none")
            (loss * u).sum().backward()
            res["torch loss"] = ulps(loss.detach(), truth)
            res["torch grad"] = ulps(zt.grad, grad)
            _row(name, **res)
        print(f"vocab_parallel_linear_cross_entropy (1 rank) float32, soft_cap={cap}, 'none'")
        for name, (h, w, y) in _linear_cases().items():
            u = torch.rand(h.shape[0], generator=_gen(4))
            truth = _linear_truth(h, w, y, cap, "none", u)
            ours = _linear_ours(ct.vocab_parallel_linear_cross_entropy, h, w, y, cap, "none", u)
            _compare(name, ours, _linear_naive(h, w, y, cap, "none", u), truth, "vp")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=None)
    parser.add_argument("--only", default="probs,linear,vp")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import crossent.torch as ct

    print("crossent from", os.path.dirname(ct.__file__))
    torch.set_num_threads(1)
    parts = args.only.split(",")
    if "probs" in parts:
        measure_probs(ct)
    if "linear" in parts:
        measure_linear(ct)
    if "vp" in parts:
        measure_vp(ct)


if __name__ == "__main__":
    main()
