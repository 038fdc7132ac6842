"""The sigmoid focal loss's autograd gradient near its root against mpmath (issue 13, wrap1).

``crossent.sigmoid_focal_loss`` of PyTorch tensors at ``gamma > 0`` takes autograd's
logits' gradient, the sum of :math:`\\partial(1-p_t)^\\gamma` times the cross-entropy and
:math:`(1-p_t)^\\gamma` times its slope: two terms that cancel where :math:`t` lies between
:math:`\\sigma(x)` and the focal optimum. This prints, for float64 and float32 logits at
the float64 roots of ``tests/losses/test_issue13_sigmoid_focal_grad_root.py`` (gamma 0.5,
1, 2, 3) and offsets from them, the error of autograd's gradient and of the NumPy gradient
twin ``sigmoid_focal_loss_grad`` (float64: refined by ``_focal_root``), in units of the
truth's ulp (float64: 2**-52 relative; float32 likewise 2**-23) and relative, and (issue
13, branch focal3) the same call compiled (``torch.compile(fullgraph=True, dynamic=False,
backend="aot_eager")``, a graph per gamma, alpha and dtype): until focal3 it took autograd's
gradient of the formula, now the op ``crossent::sigmoid_focal_terms_v1`` with eager's.

Run: ``cd benchmarks && PYTHONPATH=../src:.:../tests python check_focal_autograd_root.py``
"""

from __future__ import annotations

import math

import mpmath
import torch

import crossent

import oracles

ROOTS = [  # (gamma, t, alpha, a float64 root)
    (0.5, 0.9, None, 2.9012182062934073),
    (1.0, 0.3, 0.75, -1.4268908310435033),
    (2.0, 0.80292, None, 3.0421665295844433),
    (2.0, 0.05, None, -5.275197892857137),
    (3.0, 0.7, None, 2.4261147505032614),
]
OFFSETS = (0.0, 1e-12, -1e-9, 1e-6, -1e-4, 3e-3, -0.01, 0.03, 0.3)


def _loss(x: torch.Tensor, t: torch.Tensor, gamma: float, alpha: float | None) -> torch.Tensor:
    return crossent.sigmoid_focal_loss(
        x, t, gamma=gamma, alpha=alpha, reduction="sum", validate=False
    )


_compiled = torch.compile(_loss, fullgraph=True, dynamic=False, backend="aot_eager")
torch._dynamo.config.recompile_limit = 64  # (a graph per gamma, alpha and dtype)


def main() -> None:
    print(
        f"{'gamma':>5} {'t':>8} {'offset':>8} {'dtype':>7} {'truth':>11} "
        f"{'autograd ulps':>13} {'compiled ulps':>13} {'twin ulps':>10} {'autograd rel':>12}"
    )
    worst: dict[tuple[float, str], float] = {}
    worst_compiled: dict[tuple[float, str], float] = {}
    for gamma, t, alpha, root in ROOTS:
        for off in OFFSETS:
            for dtype, bits in ((torch.float64, 52), (torch.float32, 23)):
                x = torch.tensor([root + off], dtype=torch.float64).to(dtype)
                tt = torch.tensor([t], dtype=torch.float64).to(dtype)
                xr = x.clone().requires_grad_()
                crossent.sigmoid_focal_loss(
                    xr, tt, gamma=gamma, alpha=alpha, reduction="sum"
                ).backward()
                got = float(xr.grad[0])
                xc = x.clone().requires_grad_()
                _compiled(xc, tt, gamma, alpha).backward()
                compiled = float(xc.grad[0])
                twin = float(
                    crossent.sigmoid_focal_loss_grad(
                        x.numpy(), tt.numpy(), gamma=gamma, alpha=alpha, reduction="sum"
                    )[0]
                )
                # the truth at the dtype's rounded x and t
                true = oracles.sigmoid_focal_gradient(float(x[0]), float(tt[0]), gamma, alpha)
                unit = (
                    2.0 ** (math.floor(math.log2(abs(float(true)))) - bits) if true else 2.0**-1074
                )
                ulps = float(abs(mpmath.mpf(got) - true)) / unit
                twin_ulps = float(abs(mpmath.mpf(twin) - true)) / unit
                compiled_ulps = float(abs(mpmath.mpf(compiled) - true)) / unit
                rel = float(abs(mpmath.mpf(got) - true) / abs(true)) if true else math.inf
                key = (gamma, str(dtype)[6:])
                worst[key] = max(worst.get(key, 0.0), ulps)
                worst_compiled[key] = max(worst_compiled.get(key, 0.0), compiled_ulps)
                print(
                    f"{gamma:5.1f} {t:8.5f} {off:8.0e} {str(dtype)[6:]:>7} "
                    f"{float(true):11.3e} {ulps:13.3g} {compiled_ulps:13.3g} "
                    f"{twin_ulps:10.3g} {rel:12.3g}"
                )
    print("worst autograd ulps:", {f"{g} {d}": f"{u:.3g}" for (g, d), u in worst.items()})
    print(
        "worst compiled ulps:",
        {f"{g} {d}": f"{u:.3g}" for (g, d), u in worst_compiled.items()},
    )


if __name__ == "__main__":
    main()
