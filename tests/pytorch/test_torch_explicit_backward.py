r"""The compiled backward ops of ``softmax_focal_loss`` and of BCE's targets and weights
by closed forms in plain torch operations (``_ops._focal_gradients``,
``_binary.input_gradients``), not by autograd re-entered inside an op kernel (which took
private dispatch-key APIs: ``torch._C._ForceDispatchKeyGuard``).

Oracles: mpmath's numerical derivatives of the focal loss at 80 digits (hard rows: a
label probability within ulps of 1, one rounded to 1, an ignored row, a class of
weight 0), and ``torch.autograd`` of the plain float64 BCE formula
:math:`-w[\pi t'\log\sigma(x) + (1-t')\log\sigma(-x)]` (targets 0 and 1, a weight 0).
"""

from __future__ import annotations

import pathlib
from typing import Any

import mpmath
import pytest

import crossent
from crossent.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
]

_PRIVATE = ("_ForceDispatchKeyGuard", "_dispatch_tls", "DispatchKeyGuard", "_autograd_inside_op")


def test_no_private_dispatch_key_api_in_the_source() -> None:
    """No module of crossent lifts autograd's dispatch keys (private, version-fragile
    APIs that re-enter autograd below its own layer)."""
    root = pathlib.Path(crossent.__file__).parent
    found = [
        f"{path.relative_to(root)}: {name}"
        for path in sorted(root.rglob("*.py"))
        for name in _PRIVATE
        if name in path.read_text(encoding="utf-8")
    ]
    assert not found


# ---------------------------------------------------------------- softmax focal loss

_Z = [
    [40.0, 0.0, -1.0],  # p_0 = 1 - 4.2e-18: within ulps of 1 (log p_0 = -4.2e-18)
    [0.3, 1.2, -0.7],  # ignored
    [0.5, -1.0, 2.0],
    [1.0, 0.5, -0.25],  # label 2, of weight 0
    [800.0, 0.0, 0.0],  # p_0 rounded to 1, log p_0 = 0 exactly
    [-0.4, 0.9, 0.1],
]
_Y = [0, -100, 1, 2, 0, 1]
_W = [0.75, 1.5, 0.0]


def _focal_mp(z: list[list[Any]], w: list[Any], gamma: float, reduction: str, u: list[Any]) -> Any:
    """The focal loss in mpmath, times the upstream ``u`` (summed for ``'none'``)."""
    total, weights, rows = mpmath.mpf(0), mpmath.mpf(0), []
    for zi, yi in zip(z, _Y, strict=True):
        if yi == -100:
            rows.append(mpmath.mpf(0))
            continue
        log_p = zi[yi] - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zi))
        m = (-mpmath.expm1(log_p)) ** gamma if gamma else mpmath.mpf(1)
        rows.append(-w[yi] * m * log_p)
        weights += w[yi]
    if reduction == "none":
        return mpmath.fsum(ui * r for ui, r in zip(u, rows, strict=True))
    total = mpmath.fsum(rows)
    return u[0] * (total / weights if reduction == "mean" else total)


def _focal_oracle(gamma: float, reduction: str, u: list[float]) -> tuple[Any, Any]:
    """The gradients in the logits and the weights, by mpmath's numerical derivatives."""
    with mpmath.workdps(80):
        z = [[mpmath.mpf(v) for v in row] for row in _Z]
        w = [mpmath.mpf(v) for v in _W]
        us = [mpmath.mpf(v) for v in u]

        def along_z(i: int, c: int) -> Any:
            def f(v: Any) -> Any:
                moved = [list(row) for row in z]
                moved[i][c] = v
                return _focal_mp(moved, w, gamma, reduction, us)

            return mpmath.diff(f, z[i][c])

        def along_w(c: int) -> Any:
            def f(v: Any) -> Any:
                return _focal_mp(z, [v if k == c else w[k] for k in range(3)], gamma, reduction, us)

            return mpmath.diff(f, w[c])

        gz = [[float(along_z(i, c)) for c in range(3)] for i in range(len(_Z))]
        gw = [float(along_w(c)) for c in range(3)]
    return torch.tensor(gz, dtype=torch.float64), torch.tensor(gw, dtype=torch.float64)


@pytest.mark.parametrize(
    ("reduction", "gamma", "backend"),
    [
        *((r, g, "aot_eager") for r in ("none", "mean", "sum") for g in (0.0, 0.5, 2.0)),
        ("mean", 0.5, "inductor"),  # (one Inductor case: its compile is slow)
    ],
)
def test_compiled_focal_gradients_are_the_mpmath_derivatives(
    reduction: str, gamma: float, backend: str
) -> None:
    """Compiled (``fullgraph``) float64 gradients in the logits and the
    class weights within a few ulps of mpmath's: at a label probability within ulps of
    1 and one rounded to 1 (for ``gamma`` in (0, 1) too, where
    :math:`(1-p_y)^{\\gamma-1}` is unbounded), an ignored row, a class of weight 0
    (its true derivative: autograd of the eager graph gives 0 there)."""
    z, w = (torch.tensor(a, dtype=torch.float64) for a in (_Z, _W))
    y = torch.tensor(_Y)
    u = [0.5, 2.0, 1.25, 0.75, 1.5, -1.0] if reduction == "none" else [1.5]

    def f(z: Any, w: Any) -> Any:
        return ct.softmax_focal_loss(z, y, gamma=gamma, weight=w, reduction=reduction)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    zc, wc = z.clone().requires_grad_(), w.clone().requires_grad_()
    loss = compiled(zc, wc)
    torch.testing.assert_close(loss, f(z, w), rtol=0, atol=0)
    upstream = torch.tensor(u if reduction == "none" else u[0], dtype=torch.float64)
    loss.backward(upstream)
    gz, gw = _focal_oracle(gamma, reduction, u)
    assert torch.isfinite(zc.grad).all()
    # rtol: the modulation exp(gamma log(1 - p_y)) of the loss itself carries a relative
    # error of |gamma log(1 - p_y)| ulps (80 in the first row at gamma 2: 4.3e-15 seen).
    torch.testing.assert_close(zc.grad, gz, rtol=1e-14, atol=1e-300)
    torch.testing.assert_close(wc.grad, gw, rtol=1e-14, atol=1e-300)
    assert (zc.grad[1] == 0).all()  # the ignored row
    assert (zc.grad[4] == 0).all()  # p_y = 1: 0 (its true values underflow)


def test_focal_backward_op_of_huge_weights_is_scale_equivariant() -> None:
    """Class weights near the float64 maximum (their sum overflows): the weights'
    gradient of the ``'mean'`` is that of the weights :math:`2^{1022}` smaller divided
    by :math:`2^{1022}`, not 0; the logits' equal."""
    _ops = pytest.importorskip("crossent.torch._ops")
    z, w = (torch.tensor(a, dtype=torch.float64) for a in (_Z, _W))
    y = torch.tensor(_Y)
    one = torch.ones((), dtype=torch.float64)
    small = _ops.softmax_focal_backward(one, z, y, w, True, 2.0, -100, "mean")
    huge = _ops.softmax_focal_backward(one, z, y, w * 2.0**1022, True, 2.0, -100, "mean")
    torch.testing.assert_close(huge[0], small[0], rtol=1e-15, atol=0)
    assert (huge[1][:2] != 0).all()
    torch.testing.assert_close(huge[1] * 2.0**1022, small[1], rtol=4e-15, atol=0)


# ------------------------------------------------------------------ binary (BCE)


def _binary_hard(dtype: Any) -> tuple[Any, Any, Any, Any]:
    x = torch.tensor([[0.3, -1.2, 2.0, 4.0], [-3.0, 0.0, 1.5, -0.5]], dtype=dtype)
    t = torch.tensor([[0.0, 1.0, 0.5, 1.0], [0.0, 0.25, 1.0, 0.0]], dtype=dtype)
    w = torch.tensor([0.0, 1.0, 2.0, 0.5], dtype=dtype)  # a weight 0
    pw = torch.tensor([1.5, 0.0, 0.75, 2.0], dtype=dtype)  # a pos_weight 0
    return x, t, w, pw


@pytest.mark.parametrize(
    ("reduction", "eps", "backend"),
    [
        *((r, e, "aot_eager") for r in ("none", "mean", "sum") for e in (0.0, 0.1)),
        ("mean", 0.1, "inductor"),  # (one Inductor case: its compile is slow)
    ],
)
def test_binary_input_gradients_are_the_plain_formulas(
    reduction: str, eps: float, backend: str
) -> None:
    """The gradients in the targets (0 and 1 among them), the weight (0 among them)
    and ``pos_weight``, compiled and eager, are float64 autograd's of the plain formula
    (on main both gave 0 for the masked term: at t = 0 the :math:`\\pi\\,\\mathrm{sp}(-x)`
    term, at t = 1 the :math:`-\\mathrm{sp}(x)` term, at w = 0 the row's loss), and
    equal to each other bit for bit."""
    x, t, w, pw = _binary_hard(torch.float64)

    def f(x: Any, t: Any, w: Any, pw: Any) -> Any:
        return ct.binary_cross_entropy_with_logits(
            x, t, w, reduction=reduction, pos_weight=pw, label_smoothing=eps
        )

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    ours = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    eager = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    truth = [a.clone().requires_grad_() for a in (x, t, w, pw)]
    upstream = torch.linspace(0.5, 2, 8, dtype=torch.float64).reshape(2, 4)
    upstream = upstream if reduction == "none" else torch.tensor(1.5, dtype=torch.float64)
    compiled(*ours).backward(upstream)
    f(*eager).backward(upstream)
    xt, tt, wt, pwt = truth
    ts = (1 - eps) * tt + eps / 2
    plain = -wt * (pwt * ts * F.logsigmoid(xt) + (1 - ts) * F.logsigmoid(-xt))
    plain = {"mean": plain.mean(), "sum": plain.sum(), "none": plain}[reduction]
    plain.backward(upstream)
    for a, b, c in zip(ours, eager, truth, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
        torch.testing.assert_close(a.grad, c.grad, rtol=1e-14, atol=1e-16)


def test_binary_eager_second_derivatives_mix_logits_and_targets() -> None:
    """``gradgradcheck`` of the eager loss in the logits and the (soft) targets: the
    targets' gradient carries its graph in the logits too (on main it was taken at the
    logits detached, so the mixed second derivative was one-sided)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, dtype=torch.float64, generator=g).requires_grad_()
    t = (0.2 + 0.6 * torch.rand(2, 3, dtype=torch.float64, generator=g)).requires_grad_()
    w = (0.5 + torch.rand(3, dtype=torch.float64, generator=g)).requires_grad_()

    def f(x: Any, t: Any, w: Any) -> Any:
        return ct.binary_cross_entropy_with_logits(x, t, w, label_smoothing=0.1)

    assert torch.autograd.gradcheck(f, (x, t, w))
    assert torch.autograd.gradgradcheck(f, (x, t, w))


# ------------------------------------------------- distillation_loss's refused options

_REFUSED = [
    ("temperature", -1.0, InputError, r"`temperature` must be in \(0, inf\); got -1.0"),
    ("temperature", "2", InputError, r"`temperature` must be a real number"),
    ("teacher_form", "bogus", InputError, r"`teacher_form` must be one of"),
    ("direction", "sideways", InputError, r"`direction` must be 'forward' or 'reverse'"),
    ("reduction", "batchmean", InputError, r"`reduction` must be one of"),
]


@pytest.mark.parametrize(("option", "value", "error", "match"), _REFUSED)
def test_compiled_distillation_refuses_an_option_with_crossents_error(
    option: str, value: object, error: type[Exception], match: str
) -> None:
    """``torch.compile(fullgraph=True)`` of ``distillation_loss`` with an option it
    refuses raises eager's error (type and message), not Dynamo's ``Unsupported:
    Observed exception`` (main); good options of the same function still compile."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 4, generator=g, requires_grad=True)
    v = torch.randn(3, 4, generator=g)
    kwargs: dict[str, Any] = {option: value}

    def f(z: Any, v: Any) -> Any:
        return ct.distillation_loss(z, v, **kwargs)

    with pytest.raises(error, match=match) as eager:
        f(z, v)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    with pytest.raises(error, match=match) as ours:
        compiled(z, v)
    assert type(ours.value) is type(eager.value)
    assert str(ours.value) == str(eager.value)
    kwargs[option] = {"temperature": 2.0, "reduction": "sum"}.get(option, "reverse")
    if option == "teacher_form":
        kwargs[option], v = "probs", torch.softmax(v, 1)
    torch.testing.assert_close(compiled(z, v), f(z, v), rtol=1e-6, atol=1e-7)
