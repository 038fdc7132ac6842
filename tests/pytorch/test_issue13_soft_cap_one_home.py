r"""Issue 13 follow-up: one home for the soft cap and its slope in ``crossent.torch``.

:math:`z' = s\tanh(z/s)/T` is ``_launch._soft_capped``'s (through ``_capped_logits``
where :math:`T` divides before the row maximum) and the chain rule's
:math:`\operatorname{sech}^2(z/s)` is ``_launch._times_cap_slope_``'s :math:`4v/(1+v)^2`,
:math:`v = e^{-2|z|/s}`, in every module: probability targets (float32 logits: the
custom op's float64 blocks; float64 logits: autograd through ``_launch._SoftCap``), the
fused linear loss (one vocabulary block, vocabulary blocks, a per-row upstream) and the
vocab-parallel loss and its linear form (a one-rank gloo group).

Every row holds :math:`|z|/s \in \{0, 0.5, 3, 20, 360, 1000\}`, both signs: at 20 the
slope is 1.7e-17 and :math:`1 - \tanh^2` is 0 (:math:`\tanh` rounds to 1 past 19.06),
at 360 it is the float64 subnormal 8e-313 and :math:`1/\cosh^2` is 0 (:math:`\cosh^2`
overflows past 355), at 1000 it is 0 (:math:`e^{-2000}` underflows; :math:`e^{+2|x|}`
would make it NaN). Oracle: mpmath at 40 digits, the loss and every gradient entry of
the stored values (float64 results within a few float64 ulps, float32 ones within one
float32 ulp: computed in float64 and rounded once).

Mutants caught (run by hand): ``_times_cap_slope_`` as :math:`1 - \tanh^2` fails every
module's gradient at 20 (0 for 1.7e-17); the linear slope as main's :math:`1/\cosh^2`
fails the float64 linear gradients at 360; main's ``_launch`` (torch's ``tanh``
backward) fails the float64 probability targets at 20. The vocab-parallel loss keeps
its temperature after the shift (not ``_capped_logits``'s order): dividing first fails
:func:`test_vocab_parallel_tempers_after_the_shift` (NaN). Its backward, with the
slope in place, holds 5 float64 blocks beside the gradient (main's ``chain_rule``: 6 at
:math:`T = 1`, 7 at :math:`T = 0.7`).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
mpmath = pytest.importorskip("mpmath")

import crossent  # noqa: E402
from crossent.torch import _functional  # noqa: E402

# The one-rank group and the allocator's peak of the existing tests, not copied.
from pytorch.test_issue13_torch_exact import one_rank  # noqa: E402, F401
from pytorch.test_issue13_torch_target_peak import _allocator_peak  # noqa: E402

from tolerances import ulps_apart  # noqa: E402

CAP = 1.5
DIGITS = 40
#: |z|/s of every row (both signs): the slope exact, 1e-17, subnormal, 0.
SCALED = [0.0, 0.5, 3.0, 20.0, 360.0, 1000.0]
ROWS, CLASSES = 4, 2 * len(SCALED)
#: float64 ulps (the softmax and the slope, each a few roundings) and float32 ulps.
FLOAT64_ULPS, FLOAT32_ULPS = 8.0, 1.0


@functools.cache
def _case() -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(ROWS, CLASSES)``, each row a permutation of :math:`\\pm` ``SCALED`` times
    ``CAP`` (exact in float32), and labels (one on a slope of 1e-17, one at 0)."""
    rng = np.random.default_rng(13)
    grid = np.array([sign * x * CAP for x in SCALED for sign in (1.0, -1.0)])
    z = np.stack([rng.permutation(grid) for _ in range(ROWS)])
    labels = np.array([int(np.flatnonzero(np.abs(row) == 20 * CAP)[0]) for row in z])
    labels[1] = int(np.flatnonzero(z[1] == 0.0)[0])
    return z, labels


@functools.cache
def _truth(temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """mpmath per-row losses :math:`\\mathrm{LSE}(z') - z'_y` and gradients
    :math:`(p - e_y)\\operatorname{sech}^2(z/s)/T` of :func:`_case`."""
    z, labels = _case()
    losses, grads = [], []
    with mpmath.workdps(DIGITS):
        for row, label in zip(z.tolist(), labels.tolist(), strict=True):
            x = [mpmath.mpf(v) / CAP for v in row]
            capped = [CAP * mpmath.tanh(v) / temperature for v in x]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in capped))
            losses.append(float(lse - capped[label]))
            grads.append(
                [
                    float((mpmath.exp(v - lse) - (c == label)) * mpmath.sech(xc) ** 2 / temperature)
                    for c, (v, xc) in enumerate(zip(capped, x, strict=True))
                ]
            )
    return np.array(losses), np.array(grads)


def _assert_exact(loss: torch.Tensor, grad: torch.Tensor | None, temperature: float) -> None:
    """Per-row ``loss`` and ``grad`` (of the summed loss) against :func:`_truth`."""
    assert grad is not None
    losses, grads = _truth(temperature)
    fmt = str(grad.dtype).removeprefix("torch.")
    tolerance = FLOAT64_ULPS if grad.dtype == torch.float64 else FLOAT32_ULPS
    got = grad.detach().double().numpy()
    assert np.isfinite(got).all()
    off = ulps_apart(got, grads, fmt)
    assert off.max() <= tolerance, (off.max(), grads.flat[off.argmax()], got.flat[off.argmax()])
    off = ulps_apart(loss.detach().double().numpy(), losses, fmt)
    assert off.max() <= tolerance, off.max()


def _logits(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    z, labels = _case()
    return torch.tensor(z, dtype=dtype).requires_grad_(), torch.tensor(labels)


DTYPES = [torch.float64, torch.float32]
TEMPERATURES = [1.0, 0.7]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_probability_targets(dtype: torch.dtype, temperature: float) -> None:
    """One-hot probability targets: float32 through the custom op, float64 through
    ``_SoftCap`` (torch's ``tanh`` backward gave 0 at 20)."""
    z, labels = _logits(dtype)
    targets = torch.nn.functional.one_hot(labels, CLASSES).to(dtype)
    loss = ct.cross_entropy(z, targets, soft_cap=CAP, temperature=temperature, reduction="none")
    loss.sum().backward()
    _assert_exact(loss, z.grad, temperature)


@pytest.fixture
def vocab_chunk():
    """Sets ``_functional._VOCAB_CHUNK`` for the test (0: automatic) and restores it."""
    saved = _functional._VOCAB_CHUNK
    yield lambda value: setattr(_functional, "_VOCAB_CHUNK", value)
    _functional._VOCAB_CHUNK = saved


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize(("reduction", "split"), [("sum", False), ("sum", True), ("none", False)])
def test_linear(
    dtype: torch.dtype, temperature: float, reduction: str, split: bool, vocab_chunk
) -> None:
    """``W = I``: the logits are ``h`` exactly and ``dh`` is the gradient block. The
    forward's gradients (``'sum'``, one block and vocabulary blocks of 5) and the
    backward's (``'none'``)."""
    vocab_chunk(5 if split else 0)
    h, labels = _logits(dtype)
    loss = ct.linear_cross_entropy(
        h,
        torch.eye(CLASSES, dtype=dtype),
        labels,
        soft_cap=CAP,
        temperature=temperature,
        reduction="none" if reduction == "none" else "sum",
    )
    if reduction == "none":
        loss.sum().backward()
        _assert_exact(loss, h.grad, temperature)
    else:
        loss.backward()
        assert h.grad is not None
        _assert_exact(_per_row(h, labels, temperature), h.grad, temperature)


def _per_row(h: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """The per-row losses of the linear call (``'none'``, no gradient)."""
    with torch.no_grad():
        eye = torch.eye(CLASSES, dtype=h.dtype)
        return ct.linear_cross_entropy(
            h, eye, labels, soft_cap=CAP, temperature=temperature, reduction="none"
        )


@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_vocab_parallel(dtype: torch.dtype, temperature: float) -> None:
    """The vocab-parallel loss and its linear form (``W = I``) on one rank."""
    z, labels = _logits(dtype)
    options = {"soft_cap": CAP, "temperature": temperature, "reduction": "none"}
    loss = ct.vocab_parallel_cross_entropy(z, labels, **options)
    loss.sum().backward()
    _assert_exact(loss, z.grad, temperature)

    h = z.detach().clone().requires_grad_()
    eye = torch.eye(CLASSES, dtype=dtype)
    loss = ct.vocab_parallel_linear_cross_entropy(h, eye, labels, **options, chunk_size=3)
    loss.sum().backward()
    _assert_exact(loss, h.grad, temperature)


@pytest.mark.usefixtures("one_rank")
def test_vocab_parallel_tempers_after_the_shift() -> None:
    """Without a cap, :math:`T < 1` and logits of :math:`\\pm 10^{308}`: the temperature
    divides :math:`z - \\max z` (``softmax_rows``' order, the reason the vocab-parallel
    loss does not take ``_capped_logits``), so the loss is finite and the unsharded
    one's; :math:`z/T` first would be ``inf - inf``."""
    z = torch.tensor([[1e308, 9e307, 0.0, -5e307]], dtype=torch.float64)
    labels = torch.tensor([1])  # the loss 2e307 (and log1p of e^-2e307)
    got = ct.vocab_parallel_cross_entropy(z, labels, temperature=0.5, reduction="none")
    want = crossent.softmax_cross_entropy(
        z.numpy(), labels.numpy(), temperature=0.5, reduction="none"
    )
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-15)


@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_vocab_parallel_backward_peak(temperature: float) -> None:
    """The backward of float32 logits (float64 work, one block of rows) holds at most
    5 float64 blocks beside the float32 gradient: the slope in place on the chunk's own
    gradient and one new :math:`z/s` (main's array-API ``chain_rule``: 6 and 7)."""
    rows, classes = 16, 500
    g = torch.Generator().manual_seed(5)
    z = (torch.randn(rows, classes, generator=g) * 40).requires_grad_()
    labels = torch.randint(0, classes, (rows,), generator=g)

    def loss() -> torch.Tensor:
        return ct.vocab_parallel_cross_entropy(
            z, labels, soft_cap=3.0, temperature=temperature, reduction="sum"
        )

    loss().backward()  # warm-up: the slice sizes, first calls
    z.grad = None
    value = loss()
    peak = _allocator_peak(value.backward)
    block, gradient = rows * classes * 8, rows * classes * 4
    assert peak <= gradient + 5 * block + 4096, (peak - gradient) / block


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_probability_targets_twice_differentiable(temperature: float) -> None:
    """float64 probability targets with a cap: second derivatives through ``_SoftCap``
    (its backward under ``create_graph``) agree with autograd's of the plain formula
    ``s * tanh(z / s)`` (exact enough at these moderate ``|z|/s``) and with finite
    differences (``gradgradcheck``); with ``once_differentiable`` they were silently 0
    through the cap."""
    gen = torch.Generator().manual_seed(7)
    z = (torch.randn(3, 5, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    t = torch.softmax(torch.randn(3, 5, generator=gen, dtype=torch.float64), dim=1)
    cap = 2.5

    def ours(logits: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(logits, t, soft_cap=cap, temperature=temperature)

    def plain(logits: torch.Tensor) -> torch.Tensor:
        capped = cap * torch.tanh(logits / cap) / temperature
        return -(t * torch.log_softmax(capped, dim=1)).sum(dim=1).mean()

    (grad,) = torch.autograd.grad(ours(z), z, create_graph=True)
    (grad_plain,) = torch.autograd.grad(plain(z), z, create_graph=True)
    probe = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    (second,) = torch.autograd.grad((grad * probe).sum(), z)
    (second_plain,) = torch.autograd.grad((grad_plain * probe).sum(), z)
    torch.testing.assert_close(grad, grad_plain, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(second, second_plain, rtol=1e-10, atol=1e-13)
    assert torch.autograd.gradgradcheck(ours, (z,))
