r"""The sigmoid focal loss at :math:`\gamma > 0` under ``torch.compile`` and ``torch.export``
(issue 13, stop 74, branch focal3).

Since branch focal2 eager autograd of ``crossent.sigmoid_focal_loss`` (and of
``crossent.torch.sigmoid_focal_loss``) at :math:`\gamma > 0` takes the focal twin's
logits' gradient (``crossent._torch_binary.FocalTerms``), but a call that Dynamo traced
kept autograd's gradient of the formula, whose two terms cancel near the gradient's root
(float32 up to 2.7e7 ulps off with the wrong sign; float64 a relative error up to 77).
Now such a call is the custom op ``crossent::sigmoid_focal_terms_v1``, whose autograd is
``FocalTerms``' gradients: the compiled values and gradients (logits and targets) are
eager's bit for bit. Oracles: the eager call, and mpmath at 200 bits
(``oracles.sigmoid_focal_gradient``). Cheap: two compiled graphs (``dynamic=True``, one
per dtype, the three gammas in one function) and one export.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

import oracles  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]

#: (gamma, t, alpha, a float64 root of the logits' gradient); the gamma-5 roots by
#: bisection of the oracle (its sign changes between neighbouring float64 values).
CASES = [
    (0.5, 0.9, None, 2.9012182062934073),
    (2.0, 0.80292, 0.25, 3.0421665295844433),
    (5.0, 0.7, None, 3.08145078025162),
]
OFFSETS = (0.0, 1e-12, -1e-9, 1e-6, -1e-4)
OTHERS = ((-0.5, 0.2), (4.0, 1.0), (40.0, 0.0))  # away from the root; hard targets
ROWS = len(OFFSETS) + len(OTHERS)  # 8: 'mean' scales by an exact power of two


def _inputs(dtype: torch.dtype, root: float, t: float) -> tuple[Any, Any]:
    x = [root + off for off in OFFSETS] + [x for x, _ in OTHERS]
    tt = [t] * len(OFFSETS) + [t for _, t in OTHERS]
    return (
        torch.tensor(x, dtype=torch.float64).to(dtype),
        torch.tensor(tt, dtype=torch.float64).to(dtype),
    )


def _losses(x1: Any, x2: Any, x3: Any, t1: Any, t2: Any, t3: Any) -> Any:
    """The three gammas in one graph: the losses package (``'sum'``; ``validate=False``,
    whose checks read values, and ``'mean'``, whose division reads one, break a full
    graph), and the drop-in (``'mean'``; its checks in an op)."""
    (g1, _, a1, _), (g2, _, a2, _), (g3, _, _, _) = CASES
    options = {"reduction": "sum", "validate": False}
    first = crossent.sigmoid_focal_loss(x1, t1, gamma=g1, alpha=a1, **options)
    second = crossent.sigmoid_focal_loss(x2, t2, gamma=g2, alpha=a2, **options)
    third = ct.sigmoid_focal_loss(x3, t3, alpha=-1.0, gamma=g3, reduction="mean")
    return first + second + third * ROWS


def _ulps(got: float, true: Any, bits: int) -> float:
    unit = 2.0 ** (math.floor(math.log2(abs(float(true)))) - bits) if true else 2.0**-1074
    return float(abs(mpmath.mpf(got) - true)) / unit


@pytest.mark.parametrize(
    ("dtype", "bits", "limit"),
    [(torch.float32, 23, 1.0), (torch.float64, 52, 64.0)],
    ids=["float32", "float64"],
)
def test_compiled_gradient_is_eagers_and_exact_near_the_root(
    dtype: torch.dtype, bits: int, limit: float
) -> None:
    """``fullgraph=True, dynamic=True``: the loss and the gradients in the logits (and in
    the targets of the gamma-2 call) are eager's bit for bit, for two batch sizes; the
    logits' gradient is within an ulp (float32) or 64 ulps (float64) of mpmath's and of
    its sign. On main the compiled logits' gradient was autograd's of the formula."""
    pairs = [_inputs(dtype, root, t) for _, t, _, root in CASES]
    compiled = torch.compile(_losses, fullgraph=True, dynamic=True, backend="aot_eager")
    for repeat in (2, 1):  # (two batch sizes: the same graph)
        xs = [x.repeat(repeat) for x, _ in pairs]
        ts = [t.repeat(repeat) for _, t in pairs]
        grads = []
        for fn in (_losses, compiled):
            xr = [x.clone().requires_grad_() for x in xs]
            t2 = ts[1].clone().requires_grad_()
            loss = fn(*xr, ts[0], t2, ts[2])
            loss.backward()
            grads.append((loss.detach(), *(x.grad for x in xr), t2.grad))
        for eager, ours in zip(*grads, strict=True):
            assert torch.equal(ours, eager)
            assert torch.equal(torch.signbit(ours), torch.signbit(eager))
    x_grads = grads[1][1:4]  # (the batch of ROWS entries)
    for (gamma, _, alpha, _), (x, t), g in zip(CASES, pairs, x_grads, strict=True):
        for i in range(ROWS):  # (the third's 'mean' times ROWS: the twin's gradient)
            true = oracles.sigmoid_focal_gradient(float(x[i]), float(t[i]), gamma, alpha)
            got = float(g[i])
            assert math.copysign(1.0, got) == math.copysign(1.0, float(true)) or got == 0.0
            assert _ulps(got, true, bits) <= limit, (gamma, i, got, float(true))


def test_exported_module_keeps_the_op_and_eagers_gradients() -> None:
    """``torch.export`` of a module whose logits require a gradient records the op (no
    formula), and the exported module's value and parameter gradients are eager's."""

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 1, dtype=torch.float64)

        def forward(self, h: Any, t: Any) -> Any:
            logits = self.linear(h)[:, 0]
            return crossent.sigmoid_focal_loss(
                logits, t, gamma=2.0, reduction="sum", validate=False
            )

    torch.manual_seed(0)
    head = Head()
    h = torch.randn(6, 3, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64)
    program = torch.export.export(head, (h, t))
    assert "sigmoid_focal_terms_v1" in str(program.graph)
    exported = program.module()
    grads = []
    for module in (head, exported):
        module.zero_grad()
        loss = module(h, t)
        loss.backward()
        grads.append((loss.detach(), *(p.grad for p in module.parameters())))
    for eager, ours in zip(*grads, strict=True):
        assert torch.equal(ours, eager)


def test_focal_op_passes_opcheck() -> None:
    """The op's schema, fake kernel and autograd registration (``torch.library.opcheck``),
    the targets requiring a gradient too."""
    from crossent import _torch_binary

    x = torch.tensor([3.04, -0.5, 40.0], dtype=torch.float32, requires_grad=True)
    t = torch.tensor([0.8, 0.2, 0.0], dtype=torch.float32, requires_grad=True)
    torch.library.opcheck(_torch_binary.sigmoid_focal_terms, (x, t, 0.1, 2.0, 0.25))
