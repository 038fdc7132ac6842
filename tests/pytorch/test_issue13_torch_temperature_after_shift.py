r"""Issue 13 follow-up: ``crossent.torch`` divides by the temperature *after* the shift.

``crossent.torch``'s probability targets (``_launch._capped_logits``: ``target_rows``
under autograd, the ``crossent::softmax_ce_probs_v3`` op's float64 blocks and its
backward) and the fused linear loss (``_linear``'s logits blocks) formed
:math:`z' = \operatorname{cap}_s(z)/T` before subtracting the row maximum: for
:math:`T < 1` huge finite logits overflowed to ``inf`` and the log-softmax gave
``inf - inf = NaN`` (float64 targets: loss and gradient NaN; float32 linear: ``InputError``
"logits not finite" at :math:`3.4\cdot 10^{38} T`) where the loss is finite. The NumPy
kernels (``crossent.losses._terms.softmax_rows``) and the vocab-parallel loss form
:math:`\sigma = (\operatorname{cap}_s(z) - m)/T` with :math:`m` the row maximum of the
capped logits, which cannot overflow. Here the same order, checked at such logits with
:math:`T \in \{0.5, 0.1\}`, with and without a cap, against the NumPy path
(``softmax_cross_entropy_with_targets(_grad)``, ``softmax_cross_entropy(_grad)``) and
mpmath (60 digits, which holds :math:`e^{-10^{307}}` without underflow).

Rows: a tie of two maxima at :math:`10^{308}` (the log-partition :math:`\log 2`, lost
where :math:`\operatorname{LSE} = m/T + \ell` is rounded before :math:`p = e^{\sigma -
\ell}` is formed: the backward keeps :math:`m` and :math:`\ell` apart), a gap of
:math:`2\cdot 10^{306}` below the maximum, and an ordinary row. Every case is NaN (or
raises) on main at 0aae628.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")

import crossent  # noqa: E402

DIGITS = 60
TEMPERATURES = [0.5, 0.1]


def _oracle(
    z: list[list[float]], t: list[list[float]], cap: float | None, temperature: float
) -> tuple[list[float], list[float], list[list[float]]]:
    r"""mpmath losses :math:`\sum_c t_c(\operatorname{LSE} - z'_c)`, their scales
    :math:`\sum_c t_c(|c_c| + |m|)/T + \ell` (the size of the terms whose difference
    the loss is: a rounding of the capped :math:`c` moves it by ulps of this) and
    gradients :math:`(A p - t)\operatorname{sech}^2(z/s)/T` of the stored logits."""
    losses, scales, grads = [], [], []
    with mpmath.workdps(DIGITS):
        for zr, tr in zip(z, t, strict=True):
            x = [mpmath.mpf(v) / cap for v in zr] if cap else [mpmath.mpf(v) for v in zr]
            c = [cap * mpmath.tanh(v) for v in x] if cap else x
            # Shifted: m/T + log 2 at 1e308 would need 309 digits to keep the log 2.
            top = max(c)
            sigma = [(v - top) / temperature for v in c]
            ell = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in sigma))
            a = mpmath.fsum(tr)
            terms = (tc * (ell - v) for tc, v in zip(tr, sigma, strict=True) if tc)
            losses.append(float(mpmath.fsum(terms)))
            sizes = (tc * (abs(v) + abs(top)) / temperature for tc, v in zip(tr, c, strict=True))
            scales.append(float(mpmath.fsum(sizes) + ell))
            slope = [mpmath.sech(v) ** 2 if cap else mpmath.mpf(1) for v in x]
            grads.append(
                [
                    float((a * mpmath.exp(v - ell) - tc) * sc / temperature)
                    for v, tc, sc in zip(sigma, tr, slope, strict=True)
                ]
            )
    return losses, scales, grads


def _assert_close(got: object, want: object, ulps: float, scale: object) -> None:
    """Finite, and within ``ulps`` ulps (of ``got``'s dtype) of ``scale``: the size of
    the terms ``want`` is formed from (its own size where nothing cancels)."""
    eps = float(np.finfo(np.asarray(got).dtype).eps)
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.isfinite(got).all(), got
    bound = ulps * eps * np.maximum(np.abs(want), np.asarray(scale, dtype=np.float64))
    assert (np.abs(got - want) <= bound).all(), (got, want, bound)


Z = [
    [1e308, 1e308, 9e307, -1e307],  # a tie of maxima: ell = log 2
    [1e308, 9.8e307, 0.0, -1e307],  # a gap of 2e306 below the maximum
    [1.0, 2.0, -1.0, 0.5],  # an ordinary row
]
T = [[0.25, 0.5, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]


@pytest.mark.parametrize("cap", [None, 1e308])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("path", ["autograd", "op"])
def test_float64_probability_targets_of_huge_logits(
    cap: float | None, temperature: float, path: str
) -> None:
    """Float64: ``cross_entropy`` (``target_rows`` under autograd) and the custom op on
    float64 blocks (its saved log-partition and backward): the NumPy path's loss and
    gradient to a few ulps, and mpmath's."""
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T, dtype=torch.float64)
    if path == "autograd":
        loss = ct.cross_entropy(z, t, temperature=temperature, soft_cap=cap, reduction="none")
    else:
        from crossent.torch import _backend

        opts = _backend.options(
            label_smoothing=0.0, z_loss=0.0, temperature=temperature, soft_cap=cap
        )
        loss = torch.ops.crossent.softmax_ce_probs_v3(z, t, None, _backend.pack(opts))[0]
    loss.sum().backward()
    assert z.grad is not None
    kwargs = {"temperature": temperature, "soft_cap": cap, "reduction": "none"}
    numpy_loss = crossent.softmax_cross_entropy_with_targets(np.array(Z), np.array(T), **kwargs)
    numpy_grad = crossent.softmax_cross_entropy_with_targets_grad(
        np.array(Z), np.array(T), **kwargs
    )
    losses, scales, grads = _oracle(Z, T, cap, temperature)
    got_loss, got_grad = loss.detach().numpy(), z.grad.numpy()
    _assert_close(got_loss, numpy_loss, 4, scales)
    _assert_close(got_grad, numpy_grad, 4, 0.0)
    _assert_close(got_loss, losses, 4, scales)
    _assert_close(got_grad, grads, 8, 0.0)


# Linear: z = h W^T with h = 1e30 (float32; 1e300 float64) and W of order 3e8 (3e7):
# z near 3e38 (3e307), z/T past the dtype's largest finite value, the gradients
# G W and G^T h (G of order 1/T) far inside it.
LINEAR = {
    torch.float32: (1e30, [3e8, 3e8, 2.99e8, 0.0, -3e8]),
    torch.float64: (1e300, [3e7, 3e7, 2.99e7, 0.0, -3e7]),
}
LABELS = [0, 2, 3]


def _linear_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    scale, column = LINEAR[dtype]
    h = torch.tensor([[scale], [scale], [1e-30 * scale]], dtype=dtype)
    w = torch.tensor([[v] for v in column], dtype=dtype)
    return h, w


@pytest.mark.parametrize("cap", [None, "huge"])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_linear_cross_entropy_of_huge_products(
    cap: str | None, temperature: float, dtype: torch.dtype, reduction: str
) -> None:
    """The fused linear loss (``'none'``: the backward recomputes each block from the
    saved :math:`m` and :math:`\\ell`; ``'sum'``: the forward forms the gradients) at
    products whose :math:`z/T` overflows: loss, ``dh`` and ``dW`` as the NumPy path's
    on the same float32/float64 logits and as mpmath's, to a few ulps of the dtype."""
    h, w = _linear_case(dtype)
    soft_cap = None if cap is None else 0.5 * float(torch.finfo(dtype).max)
    labels = torch.tensor(LABELS)
    hl, wl = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = ct.linear_cross_entropy(
        hl, wl, labels, temperature=temperature, soft_cap=soft_cap, reduction=reduction
    )
    loss.sum().backward()
    assert hl.grad is not None
    assert wl.grad is not None

    z = (h @ w.T).numpy()  # the logits as the product rounds them
    kwargs = {"temperature": temperature, "soft_cap": soft_cap, "reduction": "none"}
    numpy_loss = crossent.softmax_cross_entropy(z, labels.numpy(), **kwargs)
    numpy_g = crossent.softmax_cross_entropy_grad(z.astype(np.float64), labels.numpy(), **kwargs)
    onehot = np.eye(w.shape[0])[LABELS].tolist()
    losses, scales, grads = _oracle(z.astype(np.float64).tolist(), onehot, soft_cap, temperature)
    g = np.array(grads)
    _assert_close(numpy_g, g, 8, 0.0)

    got = loss.detach().numpy()
    if reduction == "none":
        _assert_close(got, losses, 4, scales)
        _assert_close(got, numpy_loss, 4, scales)
    else:
        _assert_close(got, sum(losses), 4, sum(scales))
    # dh = G W and dW = G^T h, within ulps of |G| |W| and |G|^T |h| (the sums cancel).
    hd, wd = h.double().numpy(), w.double().numpy()
    _assert_close(hl.grad.numpy(), g @ wd, 8, np.abs(g) @ np.abs(wd))
    _assert_close(wl.grad.numpy(), g.T @ hd, 8, np.abs(g.T) @ np.abs(hd))
