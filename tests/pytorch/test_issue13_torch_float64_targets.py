r"""Issue 13 follow-up: float64 probability targets through ``crossent::softmax_ce_probs_v3``.

float64 logits with probability targets took plain autograd (kept for second
derivatives), whose ``log_softmax`` backward forms :math:`c\,p_c - t_c` from a rounded
:math:`p_c`: at :math:`p_c \to 1` (a one-hot target at the row's maximum) it keeps no
digit of :math:`1 - p_c` (0 for :math:`-1.8\cdot10^{-35}` at logits ``[0, -80]``).
float64 now takes the custom op of float32 (its entry :math:`c(p - 1) + (c - t)`,
:math:`p - 1 = -r/(1 + r)`), whose backward forms :math:`p = q/\sum q`, :math:`q =
e^{\sigma - \sigma_{\max}}` (no rounded exponent :math:`\sigma - \ell`). Checked here:

* every gradient entry against mpmath (:func:`_oracle`, 120 digits from the float
  inputs) within its conditioning, the top entry of a one-hot row to its own digits,
  and no less accurate than plain autograd (the previous float64 path) over the cases;
* the loss bit for bit with the previous path's;
* ``torch.compile(fullgraph=True)`` (the same bits as eager);
* second derivatives (``create_graph``) through the op, float64 and float32 (float32's
  raised: its backward op had no autograd formula).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

from crossent.errors import InputError  # noqa: E402
from crossent.torch import _backend, _launch  # noqa: E402

#: mpmath's working precision for the oracle: a one-hot row's top entry cancels
#: :math:`c\,p - t` to :math:`10^{-35}` of 1 and more.
_DIGITS = 120
_EPS = float(np.finfo(np.float64).eps)

_OPTIONS: tuple[dict[str, Any], ...] = (
    {},
    {"temperature": 0.7},
    {"z_loss": 1e-3},
    {"label_smoothing": 0.1},
    {"soft_cap": 20.0},
    {"weight": True},
    {"temperature": 2.0, "z_loss": 1e-4},
)


def _case(seed: int, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows of 2, 7 and 50 classes at scales 1 to 30, half of them peaked (a gap of 10 to
    80 at class 0); targets one-hot at the maximum, one-hot elsewhere and random."""
    g = np.random.default_rng(seed)
    rows = []
    for classes in (2, 7, 50):
        z = g.standard_normal((6, classes)) * g.choice([1.0, 5.0, 30.0])
        z[::2, 0] += g.choice([10.0, 40.0, 80.0], size=3)
        rows.append(z)
    width = max(r.shape[1] for r in rows)
    z = np.full((len(rows) * 6, width), -np.inf)
    for i, r in enumerate(rows):
        z[6 * i : 6 * i + 6, : r.shape[1]] = r
    z = np.where(np.isinf(z), -1e3, z)  # padding classes far below: p = 0 in float64
    t = np.zeros_like(z)
    at = z.argmax(1)
    t[0::3, :][np.arange(len(at[0::3])), at[0::3]] = 1.0  # one-hot at the maximum
    t[1::3, :][np.arange(len(at[1::3])), (at[1::3] + 1) % 2] = 1.0  # one-hot elsewhere
    soft = np.exp(2 * g.standard_normal(z[2::3].shape))
    t[2::3] = soft / soft.sum(1, keepdims=True)
    w = np.linspace(0.5, 2.0, width) if options.get("weight") else None
    return z, t, w


def _oracle(
    z: np.ndarray, t: np.ndarray, w: np.ndarray | None, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    r"""The gradient of the ``'sum'`` of :math:`\sum_c -v_c \log p_c + \lambda\omega
    \operatorname{LSE}^2`, :math:`v = w\odot\tilde t`, :math:`\omega = \sum_c w_c t_c`,
    :math:`p = \operatorname{softmax}(s\tanh(z/s)/T)`, in mpmath from the float inputs;
    and each entry's size :math:`(|c\,p_c| + v_c)\operatorname{sech}^2(z_c/s)/T`."""
    with mpmath.workdps(_DIGITS):
        eps = mpmath.mpf(options.get("label_smoothing", 0.0))
        lam = mpmath.mpf(options.get("z_loss", 0.0))
        temp = mpmath.mpf(options.get("temperature", 1.0))
        cap = options.get("soft_cap")
        n, classes = z.shape
        grad, size = np.empty((n, classes)), np.empty((n, classes))
        ws = [mpmath.mpf(1)] * classes if w is None else [mpmath.mpf(float(x)) for x in w]
        for i in range(n):
            zs = [mpmath.mpf(float(x)) for x in z[i]]
            capped = [mpmath.mpf(cap) * mpmath.tanh(x / cap) if cap else x for x in zs]
            scaled = [x / temp for x in capped]
            ts = [mpmath.mpf(float(x)) for x in t[i]]
            v = [wc * ((1 - eps) * tc + eps / classes) for wc, tc in zip(ws, ts, strict=True)]
            omega = mpmath.fsum(wc * tc for wc, tc in zip(ws, ts, strict=True))
            lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in scaled))
            coef = mpmath.fsum(v) + 2 * lam * omega * lse
            for c in range(classes):
                p = mpmath.exp(scaled[c] - lse)
                slope = 1 / mpmath.cosh(zs[c] / cap) ** 2 if cap else 1
                grad[i, c] = float((coef * p - v[c]) * slope / temp)
                size[i, c] = float((abs(coef * p) + v[c]) * slope / temp)
    return grad, size


def _gradient(
    z: np.ndarray, t: np.ndarray, w: np.ndarray | None, options: dict[str, Any]
) -> np.ndarray:
    logits = torch.tensor(z, requires_grad=True)
    kw = {k: v for k, v in options.items() if k != "weight"}
    weight = None if w is None else torch.tensor(w)
    ct.cross_entropy(logits, torch.tensor(t), weight=weight, reduction="sum", **kw).backward()
    assert logits.grad is not None
    return logits.grad.numpy()


def _conditioned_errors(
    got: np.ndarray, want: np.ndarray, size: np.ndarray, z: np.ndarray, options: dict[str, Any]
) -> np.ndarray:
    r"""Each entry's error in ulps of its size, over :math:`4 + |m'| + |z'_c - m'|` (the
    roundings of :math:`z' - m'` and of the log-sum-exp, which every float path has)."""
    temp = options.get("temperature", 1.0)
    top = z.max(1, keepdims=True)
    widen = (np.abs(top) + np.abs(z - top)) / temp
    floor = np.finfo(np.float64).smallest_subnormal  # (padding classes: p = 0, v = 0)
    return np.abs(got - want) / np.maximum(_EPS * size, floor) / (4 + widen)


@pytest.mark.parametrize("options", _OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_float64_target_gradient_against_mpmath(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    """Every entry within its conditioning (:func:`_conditioned_errors` at most 1); the
    top entry of a one-hot row at its maximum (:math:`-(1 - p)`, down to 1e-35) within
    :math:`4 + \\max_c|\\sigma_c|` ulps of itself (on main: 0, a relative error of 1);
    and over all entries no less accurate than plain autograd's (the previous path):
    the mean and the largest conditioned error."""
    z, t, w = _case(3, options)
    want, size = _oracle(z, t, w, options)
    got = _gradient(z, t, w, options)
    errors = _conditioned_errors(got, want, size, z, options)
    assert errors.max() <= 1.0, np.unravel_index(errors.argmax(), errors.shape)
    rows = np.arange(0, z.shape[0], 3)  # one-hot at the maximum
    at = z[rows].argmax(1)
    sigma = np.abs(z[rows] - z[rows].max(1, keepdims=True)).max(1) / options.get("temperature", 1.0)
    top_got, top_want = got[rows, at], want[rows, at]
    relative = np.abs(top_got - top_want) / (np.abs(top_want) * _EPS)
    assert (relative <= 4 + sigma).all(), (relative, top_got, top_want)
    monkeypatch.setattr(_launch, "uses_target_op", lambda z, opts: False)
    plain = _conditioned_errors(_gradient(z, t, w, options), want, size, z, options)
    assert errors.mean() <= plain.mean()
    assert errors.max() <= plain.max() + 0.25


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("options", _OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_float64_target_loss_equals_the_generic_path(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], reduction: str
) -> None:
    """The op's forward is the generic path's float64 operations by blocks: the loss bit
    for bit (the layout (N, C, d) too)."""
    z, t, w = _case(5, options)
    kw = {k: v for k, v in options.items() if k != "weight"}
    weight = None if w is None else torch.tensor(w)
    logits = torch.tensor(z).reshape(6, 3, -1).movedim(2, 1)  # (N, C, d)
    targets = torch.tensor(t).reshape(6, 3, -1).movedim(2, 1)
    got = ct.cross_entropy(logits, targets, weight=weight, reduction=reduction, **kw)
    monkeypatch.setattr(_launch, "uses_target_op", lambda z, opts: False)
    want = ct.cross_entropy(logits, targets, weight=weight, reduction=reduction, **kw)
    assert got.dtype == torch.float64
    assert torch.equal(got, want)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_float64_targets_compile_fullgraph() -> None:
    """``torch.compile(fullgraph=True)`` of float64 probability targets: the op's loss
    and gradient, eager's bits, the top entry :math:`-1.8\\cdot10^{-35}` (on main 0)."""
    z = torch.tensor([[0.0, -80.0, -90.0], [1.5, 0.25, -3.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.5, 0.25]], dtype=torch.float64)
    w = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, t, weight=w, z_loss=1e-4, reduction="sum")

    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    a, b = z.clone().requires_grad_(), z.clone().requires_grad_()
    got, ref = compiled(a), loss_fn(b)
    got.backward()
    ref.backward()
    assert torch.equal(got, ref)
    assert a.grad is not None
    assert b.grad is not None
    assert torch.equal(a.grad, b.grad)
    # c (p - 1) + (c - t): c = 1 + 2e-4 LSE, LSE = log1p(e^-80 + e^-90) (w_0 = 1)
    with mpmath.workdps(_DIGITS):
        r = mpmath.exp(-80) + mpmath.exp(-90)
        c = 1 + 2 * mpmath.mpf(1e-4) * mpmath.log1p(r)
        want = float(c * (-r / (1 + r)) + (c - 1))
    assert abs(float(a.grad[0, 0]) - want) <= 4 * _EPS * abs(want)


def _second_derivative_case(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(11)
    z = (torch.randn(3, 5, generator=g, dtype=torch.float64) * 3).to(dtype)
    t = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), 1).to(dtype)
    w = (torch.rand(5, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    probe = torch.randn(3, 5, generator=g, dtype=torch.float64)
    return z, t, w, probe


def _plain(logits: torch.Tensor, t: torch.Tensor, w: torch.Tensor, **kw: Any) -> torch.Tensor:
    """The loss by plain float64 torch operations (autograd's oracle of derivatives)."""
    cap, temp = kw.get("soft_cap"), kw.get("temperature", 1.0)
    eps, lam = kw.get("label_smoothing", 0.0), kw.get("z_loss", 0.0)
    x = cap * torch.tanh(logits / cap) if cap else logits
    x = x / temp
    smoothed = (1 - eps) * t + eps / t.shape[1]
    lse = torch.logsumexp(x, 1)
    rows = -(w * smoothed * torch.log_softmax(x, 1)).sum(1) + lam * (w * t).sum(1) * lse**2
    return rows.sum()


_SECOND = (
    {},
    {"label_smoothing": 0.1, "z_loss": 1e-2},
    {"temperature": 0.7, "soft_cap": 4.0},
)


@pytest.mark.parametrize("options", _SECOND, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_probability_targets_second_derivative(dtype: torch.dtype, options: dict[str, Any]) -> None:
    """``create_graph`` through the op: the gradient's values are the op's (first-order
    exact), its derivatives those of autograd's of the generic rows. Against plain
    float64 torch operations (the Hessian-vector product), and ``gradgradcheck`` in
    float64 (on main float32 raised: the op's backward had no autograd formula)."""
    z, t, w, probe = _second_derivative_case(dtype)
    logits = z.clone().requires_grad_()
    loss = ct.cross_entropy(logits, t, weight=w, reduction="sum", **options)
    (grad,) = torch.autograd.grad(loss, logits, create_graph=True)
    eager = z.clone().requires_grad_()
    ct.cross_entropy(eager, t, weight=w, reduction="sum", **options).backward()
    assert torch.equal(grad.detach(), eager.grad)  # the op's values
    (second,) = torch.autograd.grad((grad * probe.to(dtype)).sum(), logits)
    z64 = z.double().requires_grad_()
    (grad64,) = torch.autograd.grad(
        _plain(z64, t.double(), w.double(), **options), z64, create_graph=True
    )
    (want,) = torch.autograd.grad((grad64 * probe).sum(), z64)
    tol = {"rtol": 1e-10, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(second.double(), want, **tol)
    if dtype == torch.float64:
        assert torch.autograd.gradgradcheck(
            lambda x: ct.cross_entropy(x, t, weight=w, **options), (z.clone().requires_grad_(),)
        )


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_a_row_with_an_infinite_logit_stays_nan(dtype: torch.dtype, temperature: float) -> None:
    """A row with a ``+inf`` logit has a NaN loss and an all-NaN gradient (as plain
    autograd's) in the op's forward and backward, its neighbour its own: the backward's
    :math:`q/\\sum q` must not give it finite entries beside the NaN (a mutant without
    the forward's NaN gave ``[nan, 0, 0]`` at :math:`T = 0.5`). The public call names
    the logit (issue 13, branch hostile24: it returned that NaN row)."""
    z = torch.tensor([[torch.inf, 0.0, 1.0], [2.0, 0.0, 1.0]], dtype=dtype)
    t = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25]], dtype=dtype)
    opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=temperature, soft_cap=None)
    rows, lse = _launch.target_forward(z, t, None, opts)
    grad = _launch.target_backward(torch.ones(2, dtype=torch.float64), z, t, None, lse, opts)
    assert torch.isnan(rows[0])
    assert torch.isnan(grad[0]).all()
    assert torch.isfinite(grad[1]).all()
    with pytest.raises(InputError, match=r"must not be \+inf; got \+inf at index \(0, 0\)"):
        ct.cross_entropy(z, t, temperature=temperature, reduction="none")
