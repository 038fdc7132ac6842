r"""Issue 13 follow-up: the soft cap's one home per backend for probability targets.

``crossent.torch._launch._capped_logits`` forms :math:`z' = s\tanh(z/s)/T` for
``target_rows``, the custom op's forward (whose row maximum is read off it) and its
backward; ``_launch._times_cap_slope_`` multiplies by the cap's slope
:math:`\operatorname{sech}^2(z/s) = 4v/(1+v)^2`, :math:`v = e^{-2|z|/s}`, in place on
the op's float64 blocks, the torch twin of ``crossent.losses._terms.chain_rule``.

Oracles: mpmath at 40 digits (the slope, the loss, the log-sum-exp and the gradient at
:math:`|z|/s` from 0 to 40), finite differences (``gradcheck`` of the soft-capped op
in float64). Mutants caught: the slope with the wrong sign of :math:`|z|`
(:math:`v = e^{+2|z|/s}`, NaN past :math:`|z|/s = 355`) or without the absolute value
(NaN for :math:`z/s < -355`), in either home; :math:`1 - \tanh^2` (0 past
:math:`|z|/s = 19`); the row maximum of the forward's LSE taken uncapped. And the op's
float64 blocks alive at once: at most 5 in the forward and 3 in the backward (main
held 6 and 5, commit d4fbf85 6 and 6).
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
mpmath = pytest.importorskip("mpmath")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from crossent._xp import namespace  # noqa: E402
from crossent.losses._terms import chain_rule  # noqa: E402
from crossent.torch import _backend, _launch  # noqa: E402

# The ulp measure of the exactness tests, not copied.
from pytorch.test_issue13_soft_cap_float64 import _ulps_off  # noqa: E402

DIGITS = 40
#: |z|/s: the range of the brief (0 to 40: tanh rounds to 1 past 19, where 1 - tanh^2
#: is 0), then where e^{+2|x|} overflows (355) and the slope leaves float64 (372).
SCALED = [0.0, 1e-300, 1e-8, 0.3, 1.0, 5.0, 10.0, 16.0, 19.5, 25.0, 40.0]
HUGE = [200.0, 354.0, 356.0, 400.0, 1e4, 1e308]


def _sech2(x: float) -> float:
    """:math:`\\operatorname{sech}^2 x` by mpmath at :data:`DIGITS` digits, rounded once."""
    with mpmath.workdps(DIGITS):
        return float(mpmath.sech(mpmath.mpf(x)) ** 2)


def _within(got: float, truth: float, ulps: float) -> bool:
    """``got`` within ``ulps`` float64 ulps of ``truth`` (subnormal ulps near 0)."""
    return abs(got - truth) <= ulps * math.ulp(truth)


@pytest.mark.parametrize("home", ["torch", "array_api"])
def test_cap_slope_is_sech2_at_every_magnitude(home: str) -> None:
    """Both homes of the slope, at :math:`\\pm x`, within 8 float64 ulps of mpmath's
    :math:`\\operatorname{sech}^2 x`: no cancellation past 19, no NaN or overflow past 355."""
    xs = [sign * x for x in SCALED + HUGE for sign in (1.0, -1.0)]
    cap = 1.0  # z / s = z exactly: the slope's argument is the value given
    if home == "torch":
        scaled = torch.tensor(xs, dtype=torch.float64)
        got = _launch._times_cap_slope_(torch.ones_like(scaled), scaled).tolist()
    else:
        z = np.array(xs)
        xp, _ = namespace(z, names=("z",))
        got = chain_rule(np.ones_like(z), z, soft_cap=cap, temperature=1.0, xp=xp).tolist()
    bad = [(x, g, _sech2(x)) for x, g in zip(xs, got, strict=True) if not _within(g, _sech2(x), 8)]
    assert not bad


def test_cap_slope_scales_the_gradient_in_place() -> None:
    grad = torch.tensor([[2.0, -3.0, 0.5]], dtype=torch.float64)
    scaled = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)
    out = _launch._times_cap_slope_(grad, scaled)
    assert out.data_ptr() == grad.data_ptr()
    expected = [2.0 * _sech2(0.0), -3.0 * _sech2(1.0), 0.5 * _sech2(-2.0)]
    assert all(_within(g, e, 8) for g, e in zip(out[0].tolist(), expected, strict=True))


@pytest.mark.parametrize(("cap", "temperature"), [(None, 1.0), (None, 0.7), (3.0, 1.0), (3.0, 0.7)])
def test_capped_logits_overwrite_gives_the_same_bits(cap: float | None, temperature: float) -> None:
    """Overwriting the caller's float64 block (the op) and out of place (``target_rows``
    under autograd): the same :math:`z'` bit for bit, and :math:`z/s` in the block."""
    opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=temperature, soft_cap=cap)
    z = torch.randn(5, 33, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 40
    given = z.clone()
    kept, kept_m, kept_scaled = _launch._capped_logits(given, opts)
    assert torch.equal(given, z)  # out of place: the input untouched
    block = z.clone()
    capped, m, scaled = _launch._capped_logits(block, opts, overwrite=True)
    assert torch.equal(capped, kept)
    truth = z if cap is None else cap * torch.tanh(z / cap)
    if temperature == 1.0:  # unshifted: torch.log_softmax shifts by itself
        assert m is None
        assert kept_m is None
        assert torch.equal(kept, truth)
    else:  # shifted by the undivided row maximum, then divided (the NumPy order)
        top = truth.amax(-1, keepdim=True)
        assert m is not None
        assert torch.equal(m, top)
        assert torch.equal(kept_m, top)
        assert torch.equal(kept, (truth - top) / temperature)
    if cap is None:
        assert scaled is None
        assert kept_scaled is None
    else:
        assert scaled is not None
        assert scaled.data_ptr() == block.data_ptr()
        assert torch.equal(scaled, z / cap)


def _oracle(
    z: torch.Tensor, t: torch.Tensor, cap: float, temperature: float
) -> tuple[list[float], list[float], list[list[float]]]:
    """mpmath losses, log-sum-exps of :math:`z'` and gradients :math:`(A p - t)
    \\operatorname{sech}^2(z/s)/T` of the stored values, row by row."""
    losses, lses, grads = [], [], []
    with mpmath.workdps(DIGITS):
        for zr, tr in zip(z.double().tolist(), t.double().tolist(), strict=True):
            x = [mpmath.mpf(v) / cap for v in zr]
            zp = [cap * mpmath.tanh(v) / temperature for v in x]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zp))
            a = mpmath.fsum(tr)
            losses.append(float(mpmath.fsum(tc * (lse - v) for tc, v in zip(tr, zp, strict=True))))
            lses.append(float(lse))
            grads.append(
                [
                    float((a * mpmath.exp(v - lse) - tc) * mpmath.sech(xc) ** 2 / temperature)
                    for v, tc, xc in zip(zp, tr, x, strict=True)
                ]
            )
    return losses, lses, grads


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_capped_loss_lse_and_gradient_against_mpmath(temperature: float) -> None:
    """|z|/s from 0 to 40 (both signs) in every row: the public call's float32 loss and
    gradient within an ulp of mpmath, the op's float64 LSE to 1e-14 (its row maximum
    capped as the rest)."""
    cap = 1.5
    g = torch.Generator().manual_seed(4)
    grid = torch.linspace(-40.0, 40.0, 81, dtype=torch.float64)
    z = torch.stack([grid[torch.randperm(81, generator=g)] * cap for _ in range(4)]).float()
    t = torch.softmax(torch.randn(4, 81, generator=g, dtype=torch.float64) * 2, -1).float()
    losses, lses, grads = _oracle(z, t, cap, temperature)

    leaf = z.clone().requires_grad_(True)
    loss = ct.cross_entropy(leaf, t, soft_cap=cap, temperature=temperature, reduction="none")
    loss.sum().backward()
    assert leaf.grad is not None
    assert _ulps_off(loss.detach(), torch.tensor(losses, dtype=torch.float64)) <= 1.0
    assert _ulps_off(leaf.grad, torch.tensor(grads, dtype=torch.float64)) <= 1.0

    opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=temperature, soft_cap=cap)
    # The op saves ell = lse(sigma) of the shifted logits; LSE = m/T + ell.
    _, ell = _launch.target_forward(z, t, None, opts)
    m = _launch._capped_logits(z.double(), opts)[1]
    lse = _launch._unshifted_lse(None if m is None else m[:, 0], ell, opts.temperature)
    truth = torch.tensor(lses, dtype=torch.float64)
    assert torch.allclose(lse, truth, rtol=1e-14, atol=0.0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_gradcheck_of_the_soft_capped_op(temperature: float) -> None:
    """The soft-capped op's backward against finite differences of its forward (float64
    logits, |z|/s up to about 3), with smoothing, z-loss and class weights."""
    g = torch.Generator().manual_seed(8)
    z = (torch.randn(3, 6, generator=g, dtype=torch.float64) * 3).requires_grad_()
    t = torch.softmax(torch.randn(3, 6, generator=g, dtype=torch.float64), -1)
    w = torch.rand(6, generator=g, dtype=torch.float64) + 0.25
    packed = _backend.pack(
        _backend.options(label_smoothing=0.1, z_loss=1e-2, temperature=temperature, soft_cap=2.0)
    )
    op = torch.ops.crossent.softmax_ce_probs_v3
    given = z.detach().clone()
    assert torch.autograd.gradcheck(lambda x: op(x, t, w, packed)[0], (z,))
    assert torch.equal(z.detach(), given)  # float64 logits: the op capped a copy


class _LiveFloat64(TorchDispatchMode):
    """The peak bytes of float64 tensors alive at once (views of ``given`` not counted)."""

    def __init__(self, given: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.given = {x.untyped_storage().data_ptr() for x in given}
        self.alive: set[int] = set()
        self.live = self.peak = self.largest = 0

    def _free(self, key: int, size: int) -> None:
        self.alive.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for o in torch.utils._pytree.tree_leaves(out):
            if not isinstance(o, torch.Tensor) or o.dtype != torch.float64:
                continue
            key, size = o.untyped_storage().data_ptr(), o.untyped_storage().nbytes()
            if key in self.given or key in self.alive:
                continue
            self.alive.add(key)
            self.live += size
            self.peak, self.largest = max(self.peak, self.live), max(self.largest, size)
            weakref.finalize(o, self._free, key, size)
        return out


def test_float64_blocks_alive_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block's float64 temporaries die with it (the next block's copy is not made
    beside them): the forward holds at most 5 blocks at once, the backward 3 (its
    copy, which becomes z/s and then the slope, z' and then the gradient, the targets)."""
    monkeypatch.setattr(_launch, "_BLOCK_BYTES", 64 * 1024)
    g = torch.Generator().manual_seed(12)
    z = torch.randn(48, 500, generator=g) * 40
    t = torch.softmax(torch.randn(48, 500, generator=g), -1)
    opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=3.0)
    _, lse = _launch.target_forward(z, t, None, opts)
    upstream = torch.ones(48)
    for run, most in (
        (lambda: _launch.target_forward(z, t, None, opts), 5),
        (lambda: _launch.target_backward(upstream, z, t, None, lse, opts), 3),
    ):
        record = _LiveFloat64((z, t, lse, upstream))
        with record:
            run()
        block = 16 * 500 * 8
        assert record.largest == block
        assert record.peak <= most * block + 4096  # and row vectors
